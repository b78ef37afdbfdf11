//! TLS for a node's one port (rustls with the ring provider).
//!
//! With TLS configured, every connection to the node, client or Raft peer, starts with a TLS
//! handshake; the dqlite handshake and messages follow inside it, exactly as C dqlite does.
//! Both sides must present a certificate signed by one of the trusted roots (mutual TLS):
//! Raft traffic from an unauthenticated peer would let anyone rewrite the log. Peers check
//! each other's certificate against one server name for the whole cluster, since dqlite
//! clusters usually share a single certificate.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::error::NodeError;

/// TLS settings of a node: its certificate chain and key, the roots it trusts, and the name
/// peer certificates must carry.
#[derive(Clone)]
pub struct TlsConfig {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

fn tls_err(reason: impl Into<String>) -> NodeError {
    NodeError::Tls {
        reason: reason.into(),
    }
}

impl TlsConfig {
    /// From DER: the node's certificate `chain` (leaf first) and `key`, the trusted `roots`,
    /// and the name every node's certificate is checked against.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        roots: Vec<CertificateDer<'static>>,
        server_name: &str,
    ) -> Result<TlsConfig, NodeError> {
        let mut store = RootCertStore::empty();
        for (i, r) in roots.into_iter().enumerate() {
            store
                .add(r)
                .map_err(|e| tls_err(format!("trusted root {i}: {e}")))?;
        }
        let store = Arc::new(store);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(store.clone(), provider.clone())
            .build()
            .map_err(|e| tls_err(format!("client verifier: {e}")))?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| tls_err(format!("certificate and key: {e}")))?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err(e.to_string()))?
            .with_root_certificates(store)
            .with_client_auth_cert(chain, key)
            .map_err(|e| tls_err(format!("certificate and key: {e}")))?;
        let server_name = ServerName::try_from(server_name.to_string())
            .map_err(|e| tls_err(format!("server name {server_name:?}: {e}")))?;
        Ok(TlsConfig {
            server: Arc::new(server),
            client: Arc::new(client),
            server_name,
        })
    }

    /// From PEM files: the certificate chain `cert`, its private `key`, and the trusted roots
    /// `ca` (the certificate itself when `None`, for a cluster sharing one self-signed
    /// certificate).
    pub fn from_pem_files(
        cert: &Path,
        key: &Path,
        ca: Option<&Path>,
        server_name: &str,
    ) -> Result<TlsConfig, NodeError> {
        let certs = |path: &Path| -> Result<Vec<CertificateDer<'static>>, NodeError> {
            let v = CertificateDer::pem_file_iter(path)
                .map_err(|e| tls_err(format!("{}: {e}", path.display())))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| tls_err(format!("{}: {e}", path.display())))?;
            if v.is_empty() {
                return Err(tls_err(format!("{}: no certificate", path.display())));
            }
            Ok(v)
        };
        let chain = certs(cert)?;
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| tls_err(format!("{}: {e}", key.display())))?;
        let roots = match ca {
            Some(ca) => certs(ca)?,
            None => chain.clone(),
        };
        TlsConfig::from_der(chain, key, roots, server_name)
    }

    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.server.clone())
    }

    pub(crate) fn connector(&self) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(self.client.clone())
    }

    pub(crate) fn server_name(&self) -> ServerName<'static> {
        self.server_name.clone()
    }

    /// The same client side for `dqlite-client`, for the node's own client requests (joining,
    /// handing leadership over).
    pub(crate) fn client_tls(&self) -> dqlite_client::TlsConfig {
        dqlite_client::TlsConfig::new(self.client.clone())
            .with_server_name(self.server_name.to_str().into_owned())
    }
}
