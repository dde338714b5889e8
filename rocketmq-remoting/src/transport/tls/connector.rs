//! The client side: [`TlsTransport`] dials TCP and runs a TLS handshake that
//! verifies the server, built by [`TlsTransportBuilder`].

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use super::insecure::AcceptAnyServerCert;
use super::{TlsConfigError, certificates_from_pem_file, private_key_from_pem_file, provider};
use crate::transport::{BoxedIo, Transport};

/// Dials TCP (with `TCP_NODELAY`, like [`TcpTransport`](crate::transport::TcpTransport))
/// and runs a TLS handshake; the stream it hands out is encrypted.
///
/// The server's certificate must chain to a trusted root and name the host
/// dialed (or the [override](TlsTransportBuilder::server_name)). The handshake
/// is part of [`Transport::connect`], so the caller's connect timeout
/// ([`RemotingClient`](crate::client::RemotingClient) applies one) bounds it.
/// A failed handshake is an I/O error naming the address, the server name and
/// rustls's reason (kind [`io::ErrorKind::InvalidData`] for a rejected
/// certificate); the client reports it as
/// [`RemotingError::Connect`](crate::RemotingError::Connect).
#[derive(Clone)]
pub struct TlsTransport {
    connector: TlsConnector,
    server_name: Option<ServerName<'static>>,
    insecure: bool,
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTransport")
            .field("server_name", &self.server_name)
            .field("insecure", &self.insecure)
            .finish_non_exhaustive()
    }
}

impl TlsTransport {
    /// A builder: system roots, the dialed host as server name, no client
    /// certificate, verification on.
    pub fn builder() -> TlsTransportBuilder {
        TlsTransportBuilder::default()
    }

    /// A transport with a rustls configuration of your own (it decides how the
    /// server is verified); the server name is the dialed host.
    pub fn from_config(config: Arc<ClientConfig>) -> Self {
        TlsTransport {
            connector: TlsConnector::from(config),
            server_name: None,
            insecure: false,
        }
    }

    /// The name the server's certificate is checked against when dialing `addr`.
    fn server_name_for(&self, addr: &str) -> io::Result<ServerName<'static>> {
        if let Some(name) = &self.server_name {
            return Ok(name.clone());
        }
        let host = host_of(addr);
        ServerName::try_from(host.to_owned()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{addr}: host {host:?} is not a valid TLS server name"),
            )
        })
    }

    async fn dial(&self, addr: &str) -> io::Result<BoxedIo> {
        let name = self.server_name_for(addr)?;
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        if self.insecure {
            tracing::warn!(
                %addr,
                "TLS connection without certificate verification \
                 (danger_accept_invalid_certs_insecure): the peer is not authenticated"
            );
        }
        let stream = self
            .connector
            .connect(name.clone(), tcp)
            .await
            .map_err(|error| handshake_failed(addr, &name, &error))?;
        Ok(Box::new(stream))
    }
}

impl Transport for TlsTransport {
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<BoxedIo>> {
        self.dial(addr).boxed()
    }
}

/// The host part of `host:port`, `[v6]:port`, or of a bare host.
fn host_of(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(host, _)| host);
    }
    addr.rsplit_once(':').map_or(addr, |(host, _)| host)
}

fn handshake_failed(addr: &str, name: &ServerName<'_>, error: &io::Error) -> io::Error {
    // A peer that closes on a ClientHello is most likely not a TLS server
    // (a plain broker drops the connection on a frame length it refuses).
    let hint = if error.kind() == io::ErrorKind::UnexpectedEof {
        " (the peer closed the connection: does the peer speak TLS?)"
    } else {
        ""
    };
    io::Error::new(
        error.kind(),
        format!(
            "TLS handshake with {addr} (server name {}) failed: {error}{hint}",
            name.to_str()
        ),
    )
}

/// A client certificate chain and its key, from memory or PEM files.
enum ClientIdentity {
    Der(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
    PemFiles { chain: PathBuf, key: PathBuf },
}

impl ClientIdentity {
    /// The chain and key files, for errors.
    fn files(&self) -> Option<(PathBuf, PathBuf)> {
        match self {
            ClientIdentity::Der(..) => None,
            ClientIdentity::PemFiles { chain, key } => Some((chain.clone(), key.clone())),
        }
    }

    fn load(
        self,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsConfigError> {
        match self {
            ClientIdentity::Der(chain, key) => Ok((chain, key)),
            ClientIdentity::PemFiles { chain, key } => Ok((
                certificates_from_pem_file(chain)?,
                private_key_from_pem_file(key)?,
            )),
        }
    }
}

/// Builds a [`TlsTransport`]. Verification is on unless
/// [`danger_accept_invalid_certs_insecure`](Self::danger_accept_invalid_certs_insecure)
/// is called.
///
/// Trust: with no CA given, the system's trust store (read with
/// `rustls-native-certs`: the OpenSSL locations on Linux, honouring
/// `SSL_CERT_FILE`/`SSL_CERT_DIR`; the platform store on macOS and Windows).
/// Giving a CA ([`trust_ca_file`](Self::trust_ca_file),
/// [`trust_ca_certificates`](Self::trust_ca_certificates)) trusts only the
/// CAs given, unless [`trust_system_roots`](Self::trust_system_roots) adds the
/// system's too.
#[derive(Default)]
pub struct TlsTransportBuilder {
    ca_files: Vec<PathBuf>,
    ca_certs: Vec<CertificateDer<'static>>,
    system_roots: bool,
    server_name: Option<String>,
    identity: Option<ClientIdentity>,
    insecure: bool,
}

impl fmt::Debug for TlsTransportBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTransportBuilder")
            .field("ca_files", &self.ca_files)
            .field("ca_certs", &self.ca_certs.len())
            .field("system_roots", &self.system_roots)
            .field("server_name", &self.server_name)
            .field("client_identity", &self.identity.is_some())
            .field("insecure", &self.insecure)
            .finish()
    }
}

impl TlsTransportBuilder {
    /// Trusts the CA certificates of a PEM file (read by [`build`](Self::build)).
    pub fn trust_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_files.push(path.into());
        self
    }

    /// Trusts these CA certificates (DER).
    pub fn trust_ca_certificates(
        mut self,
        certs: impl IntoIterator<Item = CertificateDer<'static>>,
    ) -> Self {
        self.ca_certs.extend(certs);
        self
    }

    /// Trusts the system's roots as well as any CA given.
    pub fn trust_system_roots(mut self) -> Self {
        self.system_roots = true;
        self
    }

    /// Checks the server's certificate against `name` (a DNS name or an IP
    /// address) instead of the dialed address's host; also sent as SNI.
    ///
    /// Brokers are dialed at the IP addresses the nameserver publishes, and the
    /// Java client (Netty 4.1) checks the chain but not the name, so broker
    /// certificates often name no IP: then set the name the certificates carry.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Presents this client certificate chain (leaf first) and key when the
    /// server asks for one (mutual TLS).
    pub fn client_identity(
        mut self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Self {
        self.identity = Some(ClientIdentity::Der(chain, key));
        self
    }

    /// Like [`client_identity`](Self::client_identity), from PEM files (read by
    /// [`build`](Self::build)). The key must be unencrypted (PKCS#8, PKCS#1 or
    /// SEC1); decrypt a Java-style password-protected PKCS#8 key first
    /// (`openssl pkcs8 -in client.key -out client-plain.key`).
    pub fn client_identity_pem_files(
        mut self,
        chain: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.identity = Some(ClientIdentity::PemFiles {
            chain: chain.into(),
            key: key.into(),
        });
        self
    }

    /// **Insecure.** Accepts any server certificate: expired, self-signed, for
    /// another name. The connection is encrypted but the server is not
    /// authenticated, so anyone on the path can impersonate it. For tests and
    /// for brokers run with Java's `tls.test.mode.enable` self-signed
    /// certificates only. Logs a warning when built and on every connection.
    pub fn danger_accept_invalid_certs_insecure(mut self) -> Self {
        self.insecure = true;
        self
    }

    /// The transport. Reads the PEM files and the system trust store now.
    pub fn build(self) -> Result<TlsTransport, TlsConfigError> {
        let server_name = self
            .server_name
            .as_deref()
            .map(parse_server_name)
            .transpose()?;
        let provider = provider();
        let versions = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?;
        let verified = if self.insecure {
            tracing::warn!(
                "TLS server certificate verification is DISABLED \
                 (danger_accept_invalid_certs_insecure): never use this in production"
            );
            versions
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert::new(provider)))
        } else {
            versions.with_root_certificates(self.root_store()?)
        };
        let config = match self.identity {
            Some(identity) => {
                let files = identity.files();
                let (chain, key) = identity.load()?;
                verified
                    .with_client_auth_cert(chain, key)
                    .map_err(|error| match files {
                        Some((chain, key)) => TlsConfigError::ClientIdentity {
                            chain,
                            key,
                            source: error,
                        },
                        None => TlsConfigError::Rustls(error),
                    })?
            }
            None => verified.with_no_client_auth(),
        };
        Ok(TlsTransport {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
            insecure: self.insecure,
        })
    }

    fn root_store(&self) -> Result<RootCertStore, TlsConfigError> {
        let mut roots = RootCertStore::empty();
        for path in &self.ca_files {
            for cert in certificates_from_pem_file(path)? {
                roots
                    .add(cert)
                    .map_err(|source| TlsConfigError::CaCertificate {
                        path: path.clone(),
                        source,
                    })?;
            }
        }
        for cert in &self.ca_certs {
            roots.add(cert.clone())?;
        }
        let no_ca_given = self.ca_files.is_empty() && self.ca_certs.is_empty();
        if self.system_roots || no_ca_given {
            add_system_roots(&mut roots)?;
        }
        Ok(roots)
    }
}

fn parse_server_name(name: &str) -> Result<ServerName<'static>, TlsConfigError> {
    ServerName::try_from(name.to_owned())
        .map_err(|_| TlsConfigError::InvalidServerName(name.to_owned()))
}

/// Adds the system's trust store; fails when it yields no usable certificate.
fn add_system_roots(roots: &mut RootCertStore) -> Result<(), TlsConfigError> {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::debug!(%error, "system trust store: unreadable entry");
    }
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    tracing::debug!(added, ignored, "system trust store loaded");
    if added == 0 {
        let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
        return Err(TlsConfigError::NoTrustAnchors(format!(
            "the system trust store has no usable certificate ({} ignored; errors: [{}]); \
             give a CA file",
            ignored,
            errors.join("; ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_handles_ipv4_ipv6_and_names() {
        assert_eq!(host_of("127.0.0.1:10911"), "127.0.0.1");
        assert_eq!(host_of("broker-a.example:10911"), "broker-a.example");
        assert_eq!(host_of("[::1]:10911"), "::1");
        assert_eq!(host_of("broker-a"), "broker-a");
    }

    #[test]
    fn server_name_defaults_to_the_host_and_can_be_overridden() {
        let tls = TlsTransport::builder()
            .danger_accept_invalid_certs_insecure()
            .build()
            .unwrap();
        let name = tls.server_name_for("[::1]:10911").unwrap();
        assert_eq!(name.to_str(), "::1");
        assert!(matches!(name, ServerName::IpAddress(_)));
        let name = tls.server_name_for("broker-a.example:10911").unwrap();
        assert!(matches!(name, ServerName::DnsName(_)));
        let err = tls.server_name_for("bad name:1").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);

        let tls = TlsTransport::builder()
            .server_name("broker.internal")
            .danger_accept_invalid_certs_insecure()
            .build()
            .unwrap();
        let name = tls.server_name_for("10.0.0.1:10911").unwrap();
        assert_eq!(name.to_str(), "broker.internal");
    }

    #[test]
    fn invalid_server_name_override_is_a_config_error() {
        let err = TlsTransport::builder()
            .server_name("not a name!")
            .danger_accept_invalid_certs_insecure()
            .build()
            .unwrap_err();
        assert!(matches!(err, TlsConfigError::InvalidServerName(_)), "{err}");
    }

    #[test]
    fn unreadable_ca_file_fails_the_build() {
        let err = TlsTransport::builder()
            .trust_ca_file("/nonexistent/ca.pem")
            .build()
            .unwrap_err();
        assert!(matches!(err, TlsConfigError::Pem { .. }), "{err}");
    }
}
