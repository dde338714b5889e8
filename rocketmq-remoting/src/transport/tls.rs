//! TLS over TCP with [rustls] (the `ring` crypto provider): a [`TlsTransport`]
//! for clients and a [`TlsListener`] for servers.
//!
//! The server's certificate is verified by default, against the system's trust
//! store (read with `rustls-native-certs`) unless CA certificates are given
//! ([`TlsTransportBuilder::trust_ca_file`]); the name checked is the dialed
//! address's host unless overridden. Mutual TLS is a client identity on the
//! transport and a client verifier in the listener's [`rustls::ServerConfig`].
//! Skipping verification takes a switch whose name says what it does
//! ([`TlsTransportBuilder::danger_accept_invalid_certs_insecure`]); it is what
//! Java clients do by default (`tls.test.mode.enable=true`), not what we do.
//!
//! ```no_run
//! use rocketmq_remoting::client::RemotingClient;
//! use rocketmq_remoting::transport::TlsTransport;
//!
//! # fn run() -> Result<(), rocketmq_remoting::transport::TlsConfigError> {
//! let tls = TlsTransport::builder()
//!     .trust_ca_file("/etc/rocketmq/ca.pem")
//!     .build()?;
//! let client = RemotingClient::builder().transport(tls).build();
//! # Ok(())
//! # }
//! ```

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

mod connector;
mod insecure;
mod listener;

pub use connector::{TlsTransport, TlsTransportBuilder};
pub use listener::{DEFAULT_HANDSHAKE_TIMEOUT, TlsListener, server_config};
/// The rustls version this crate builds on, for custom client and server
/// configurations ([`TlsTransport::from_config`], [`TlsListener::bind_with_config`]).
pub use rustls;

use crate::error::RemotingError;

/// A TLS configuration that could not be built: unreadable or empty PEM, a bad
/// key, no trust anchors, or a setting rustls refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// A PEM file could not be read or parsed.
    #[error("cannot read PEM from {path}: {message}")]
    Pem {
        /// The file (or `<memory>` for in-memory PEM).
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A PEM source held no item of the kind needed.
    #[error("no {what} found in {path}")]
    Missing {
        /// What was looked for, e.g. "certificate" or "private key".
        what: &'static str,
        /// The file (or `<memory>`).
        path: PathBuf,
    },
    /// Nothing to verify the server's certificate against: no CA was given and
    /// the system trust store is empty or unreadable.
    #[error("no trust anchors: {0}")]
    NoTrustAnchors(String),
    /// The server name override is neither a DNS name nor an IP address.
    #[error("invalid TLS server name {0:?}")]
    InvalidServerName(String),
    /// A CA certificate of a PEM file that rustls cannot use as a trust anchor.
    #[error("cannot trust the CA certificate in {path}: {source}")]
    CaCertificate {
        /// The file.
        path: PathBuf,
        /// rustls's reason.
        #[source]
        source: rustls::Error,
    },
    /// A client certificate chain and key from PEM files that rustls refused
    /// (e.g. a key that does not match the certificate).
    #[error("client certificate {chain} with key {key} rejected: {source}")]
    ClientIdentity {
        /// The certificate chain file.
        chain: PathBuf,
        /// The private key file.
        key: PathBuf,
        /// rustls's reason.
        #[source]
        source: rustls::Error,
    },
    /// rustls refused the configuration (e.g. a key that does not match the
    /// certificate, or a CA certificate it cannot parse).
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
}

impl From<TlsConfigError> for RemotingError {
    /// An [`io::ErrorKind::InvalidInput`] I/O error carrying the configuration error.
    fn from(error: TlsConfigError) -> Self {
        RemotingError::Io(io::Error::new(io::ErrorKind::InvalidInput, error))
    }
}

/// Where in-memory PEM is said to come from in errors.
const IN_MEMORY: &str = "<memory>";

/// The certificates of a PEM file, in order (a chain is leaf first).
pub fn certificates_from_pem_file(
    path: impl AsRef<Path>,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let path = path.as_ref();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|error| pem_error(path, &error))?;
    non_empty(certs, "certificate", path)
}

/// The certificates of in-memory PEM text, in order (a chain is leaf first).
pub fn certificates_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let path = Path::new(IN_MEMORY);
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| pem_error(path, &error))?;
    non_empty(certs, "certificate", path)
}

/// The first unencrypted private key (PKCS#8, PKCS#1 or SEC1) of a PEM file;
/// an `ENCRYPTED PRIVATE KEY` is not read (decrypt it with `openssl pkcs8`).
pub fn private_key_from_pem_file(
    path: impl AsRef<Path>,
) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    let path = path.as_ref();
    PrivateKeyDer::from_pem_file(path).map_err(|error| key_error(path, &error))
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) of in-memory PEM text.
pub fn private_key_from_pem(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|error| key_error(Path::new(IN_MEMORY), &error))
}

fn non_empty(
    certs: Vec<CertificateDer<'static>>,
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    if certs.is_empty() {
        return Err(TlsConfigError::Missing {
            what,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn pem_error(path: &Path, error: &rustls::pki_types::pem::Error) -> TlsConfigError {
    TlsConfigError::Pem {
        path: path.to_owned(),
        message: error.to_string(),
    }
}

fn key_error(path: &Path, error: &rustls::pki_types::pem::Error) -> TlsConfigError {
    match error {
        rustls::pki_types::pem::Error::NoItemsFound => TlsConfigError::Missing {
            what: "private key",
            path: path.to_owned(),
        },
        other => pem_error(path, other),
    }
}

/// The crypto provider of every configuration made here: `ring`, named
/// explicitly so that no process-wide default (or a second provider compiled
/// in by another crate) changes it.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_helpers_reject_empty_and_garbage_input() {
        let err = certificates_from_pem(b"no pem here").unwrap_err();
        assert!(
            matches!(
                err,
                TlsConfigError::Missing {
                    what: "certificate",
                    ..
                }
            ),
            "{err}"
        );
        let err = private_key_from_pem(b"").unwrap_err();
        assert!(
            matches!(
                err,
                TlsConfigError::Missing {
                    what: "private key",
                    ..
                }
            ),
            "{err}"
        );
        let broken = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        let err = certificates_from_pem(broken).unwrap_err();
        assert!(matches!(err, TlsConfigError::Pem { .. }), "{err}");
    }

    #[test]
    fn an_encrypted_key_is_not_taken_for_a_key() {
        let encrypted =
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let err = private_key_from_pem(encrypted).unwrap_err();
        assert!(
            matches!(
                err,
                TlsConfigError::Missing {
                    what: "private key",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn missing_file_names_its_path() {
        let err = certificates_from_pem_file("/nonexistent/ca.pem").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
        let remoting: RemotingError = err.into();
        assert!(
            matches!(&remoting, RemotingError::Io(io) if io.kind() == io::ErrorKind::InvalidInput),
            "{remoting}"
        );
    }
}
