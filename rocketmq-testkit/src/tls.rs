//! TLS for a cluster on loopback: the servers' identity
//! ([`TestClusterBuilder::tls`](crate::TestClusterBuilder::tls)), a
//! [`TestCertificates`] generator for tests, and the listeners a TCP or TLS
//! cluster binds.

use std::fmt;
use std::io;
use std::sync::Arc;

use futures::future::BoxFuture;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use rocketmq_remoting::transport::tls::rustls::ServerConfig;
use rocketmq_remoting::transport::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rocketmq_remoting::transport::tls::server_config;
use rocketmq_remoting::transport::{Accepted, Listener};
use rocketmq_remoting::{TcpListener, TlsListener, TlsTransport};

use crate::error::{Result, TestkitError};

/// The names a [`TestCertificates`] server certificate is valid for.
pub const TEST_SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A certificate authority and a server certificate it issued for
/// [`TEST_SERVER_NAMES`], made fresh (ECDSA P-256) for a test.
///
/// ```
/// # async fn demo() -> Result<(), rocketmq_testkit::TestkitError> {
/// use rocketmq_testkit::{TestCertificates, TestCluster};
///
/// let certs = TestCertificates::generate()?;
/// let cluster = TestCluster::builder()
///     .tls(certs.chain(), certs.key())
///     .start_tcp()
///     .await?;
/// let transport = certs.client_transport()?; // trusts certs.ca() only
/// # drop(transport);
/// cluster.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TestCertificates {
    ca: CertificateDer<'static>,
    server: CertificateDer<'static>,
    key_der: Vec<u8>,
    ca_pem: String,
    server_pem: String,
    key_pem: String,
}

impl fmt::Debug for TestCertificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCertificates")
            .field("names", &TEST_SERVER_NAMES)
            .finish_non_exhaustive()
    }
}

impl TestCertificates {
    /// A new CA ("rocketmq-testkit CA") and a server certificate it signed.
    pub fn generate() -> Result<Self> {
        let mut ca_params = CertificateParams::new(Vec::new()).map_err(certificate_error)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "rocketmq-testkit CA");
        let ca_key = KeyPair::generate().map_err(certificate_error)?;
        let ca = ca_params.self_signed(&ca_key).map_err(certificate_error)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let names = TEST_SERVER_NAMES.map(str::to_owned).to_vec();
        let mut params = CertificateParams::new(names).map_err(certificate_error)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "rocketmq-testkit server");
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
        let key = KeyPair::generate().map_err(certificate_error)?;
        let server = params.signed_by(&key, &issuer).map_err(certificate_error)?;
        Ok(TestCertificates {
            ca: ca.der().clone(),
            server: server.der().clone(),
            key_der: key.serialize_der(),
            ca_pem: ca.pem(),
            server_pem: server.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The CA certificate, for a client to trust.
    pub fn ca(&self) -> CertificateDer<'static> {
        self.ca.clone()
    }

    /// The chain a server presents: the server certificate, then the CA.
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.server.clone(), self.ca.clone()]
    }

    /// The server certificate's private key (PKCS#8).
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key_der.clone().into())
    }

    /// [`ca`](Self::ca) as PEM, for clients configured with files.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// [`chain`](Self::chain) as PEM (for the binary's `--tls-cert`).
    pub fn chain_pem(&self) -> String {
        format!("{}{}", self.server_pem, self.ca_pem)
    }

    /// [`key`](Self::key) as PEM (for the binary's `--tls-key`).
    pub fn key_pem(&self) -> String {
        self.key_pem.clone()
    }

    /// A client transport verifying servers against [`ca`](Self::ca) only.
    pub fn client_transport(&self) -> Result<TlsTransport> {
        Ok(TlsTransport::builder()
            .trust_ca_certificates([self.ca()])
            .build()?)
    }
}

fn certificate_error(error: rcgen::Error) -> TestkitError {
    TestkitError::Certificate(error.to_string())
}

/// The identity the servers of a TLS cluster present. `Debug` does not show
/// the key.
#[derive(Clone)]
pub(crate) struct TlsIdentity {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: Arc<PrivateKeyDer<'static>>,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// What a TLS cluster serves with, and the transport its
/// [`TestCluster::transport`](crate::TestCluster::transport) hands out.
#[derive(Clone)]
pub(crate) struct TlsServing {
    pub(crate) server: Arc<ServerConfig>,
    pub(crate) client: TlsTransport,
}

impl fmt::Debug for TlsServing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServing")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl TlsServing {
    /// The server configuration of `identity`, and a client transport
    /// trusting the last certificate of its chain (its root end).
    pub(crate) fn new(identity: &TlsIdentity) -> Result<Self> {
        let root = identity.chain.last().cloned().ok_or_else(|| {
            TestkitError::InvalidSetting("the TLS certificate chain is empty".into())
        })?;
        let server = server_config(identity.chain.clone(), identity.key.clone_key())?;
        let client = TlsTransport::builder()
            .trust_ca_certificates([root])
            .build()?;
        Ok(TlsServing { server, client })
    }
}

/// A bound listener of a cluster on loopback: plain TCP or TLS.
#[derive(Debug)]
pub(crate) enum SocketListener {
    Tcp(TcpListener),
    Tls(TlsListener),
}

impl SocketListener {
    /// Binds `addr`, with TLS when `tls` is given.
    pub(crate) async fn bind(addr: &str, tls: Option<&TlsServing>) -> Result<Self> {
        let bound = match tls {
            None => TcpListener::bind(addr).await.map(SocketListener::Tcp),
            Some(tls) => TlsListener::bind_with_config(addr, Arc::clone(&tls.server))
                .await
                .map(SocketListener::Tls),
        };
        bound.map_err(|source: io::Error| TestkitError::Bind {
            addr: addr.to_owned(),
            source,
        })
    }
}

impl Listener for SocketListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>> {
        match self {
            SocketListener::Tcp(listener) => listener.accept(),
            SocketListener::Tls(listener) => listener.accept(),
        }
    }

    fn local_addr(&self) -> String {
        match self {
            SocketListener::Tcp(listener) => listener.local_addr(),
            SocketListener::Tls(listener) => listener.local_addr(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificates_make_a_server_config_and_hide_the_key() {
        let certs = TestCertificates::generate().unwrap();
        assert_eq!(certs.chain().len(), 2);
        assert_eq!(certs.chain()[1], certs.ca());
        let identity = TlsIdentity {
            chain: certs.chain(),
            key: Arc::new(certs.key()),
        };
        assert!(TlsServing::new(&identity).is_ok());
        assert!(!format!("{identity:?} {certs:?}").contains("key"));
        let pem_chain =
            rocketmq_remoting::transport::tls::certificates_from_pem(certs.chain_pem().as_bytes())
                .unwrap();
        assert_eq!(pem_chain, certs.chain());
        let pem_key =
            rocketmq_remoting::transport::tls::private_key_from_pem(certs.key_pem().as_bytes())
                .unwrap();
        assert_eq!(pem_key.secret_der(), certs.key().secret_der());
        assert!(certs.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    }

    #[test]
    fn an_empty_chain_or_a_bad_key_is_refused() {
        let certs = TestCertificates::generate().unwrap();
        let empty = TlsIdentity {
            chain: Vec::new(),
            key: Arc::new(certs.key()),
        };
        assert!(TlsServing::new(&empty).is_err());
        let other = TestCertificates::generate().unwrap();
        let mismatched = TlsIdentity {
            chain: certs.chain(),
            key: Arc::new(other.key()),
        };
        let error = TlsServing::new(&mismatched).unwrap_err();
        assert!(matches!(error, TestkitError::Tls(_)), "{error}");
    }
}
