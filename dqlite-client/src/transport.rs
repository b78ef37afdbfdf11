//! Dialing a node: TCP or Unix abstract socket, with a connect timeout and optional TLS.
//!
//! This layer moves bytes only; it knows nothing of the dqlite protocol.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::error::{Error, Result};

/// Where a node listens, as written in a dqlite cluster configuration.
///
/// `@name` is a Linux abstract Unix socket (as go-dqlite dials it); anything else is a TCP
/// `host:port` (a host name is resolved at dial time, an IPv6 literal is written `[::1]:9001`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// TCP `host:port`.
    Tcp(String),
    /// Abstract Unix socket name (without the leading `@`).
    Unix(String),
}

impl Address {
    /// Parse an address. Errors name the address and what is wrong with it.
    pub fn parse(s: &str) -> Result<Address> {
        let s = s.trim();
        let invalid = |reason: &str| Error::InvalidAddress {
            address: s.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(name) = s.strip_prefix('@') {
            if name.is_empty() {
                return Err(invalid("empty abstract socket name"));
            }
            return Ok(Address::Unix(name.to_owned()));
        }
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| invalid("expected host:port or @name"))?;
        if host.is_empty() {
            return Err(invalid("empty host"));
        }
        port.parse::<u16>()
            .map_err(|_| invalid("port is not a number in 0..=65535"))?;
        Ok(Address::Tcp(s.to_owned()))
    }

    /// The host part of a TCP address (without brackets), used as the TLS server name.
    pub fn host(&self) -> Option<&str> {
        match self {
            Address::Tcp(s) => s
                .rsplit_once(':')
                .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']')),
            Address::Unix(_) => None,
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(s) => f.write_str(s),
            Address::Unix(n) => write!(f, "@{n}"),
        }
    }
}

impl std::str::FromStr for Address {
    type Err = Error;
    fn from_str(s: &str) -> Result<Address> {
        Address::parse(s)
    }
}

/// Something bytes can be read from and written to.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connected byte stream to a node.
pub(crate) struct Stream(Box<dyn Io>);

impl Stream {
    /// Wrap any byte stream (used by tests to speak to in-process fake servers).
    pub(crate) fn new(io: impl Io + 'static) -> Stream {
        Stream(Box::new(io))
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

/// TLS settings for connections to the nodes (feature `tls`).
#[cfg(feature = "tls")]
#[derive(Clone)]
pub struct TlsConfig {
    config: std::sync::Arc<rustls::ClientConfig>,
    server_name: Option<String>,
}

#[cfg(feature = "tls")]
impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "tls")]
impl TlsConfig {
    /// Use this rustls configuration; the server name checked is the host of each address.
    pub fn new(config: std::sync::Arc<rustls::ClientConfig>) -> TlsConfig {
        TlsConfig {
            config,
            server_name: None,
        }
    }

    /// Check every node's certificate against this name instead of the address's host (dqlite
    /// clusters commonly share one certificate).
    pub fn with_server_name(mut self, name: impl Into<String>) -> TlsConfig {
        self.server_name = Some(name.into());
        self
    }

    /// The configuration dqlite clusters use: one certificate and key (PEM files) that every
    /// node and client shares; the certificate is both the client identity and the only trusted
    /// root. The server name checked is `server_name`.
    pub fn from_shared_cert(
        cert: &std::path::Path,
        key: &std::path::Path,
        server_name: &str,
    ) -> Result<TlsConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let tls_err = |reason: String| Error::Tls {
            node: String::new(),
            reason,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .map_err(|e| tls_err(format!("{}: {e}", cert.display())))?
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| tls_err(format!("{}: {e}", cert.display())))?;
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| tls_err(format!("{}: {e}", key.display())))?;
        let mut roots = rustls::RootCertStore::empty();
        for c in &certs {
            roots
                .add(c.clone())
                .map_err(|e| tls_err(format!("{}: {e}", cert.display())))?;
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .map_err(|e| tls_err(e.to_string()))?;
        Ok(TlsConfig::new(std::sync::Arc::new(config)).with_server_name(server_name))
    }
}

/// What [`dial`] needs besides the address.
#[derive(Debug, Clone)]
pub(crate) struct DialOptions {
    pub connect_timeout: Duration,
    #[cfg(feature = "tls")]
    pub tls: Option<TlsConfig>,
}

/// Connect to `address` within the connect timeout (TLS handshake included).
pub(crate) async fn dial(address: &Address, opts: &DialOptions) -> Result<Stream> {
    let node = address.to_string();
    let io_err = |source: std::io::Error| Error::Io {
        node: node.clone(),
        op: "connect",
        source,
    };
    let connect = async {
        match address {
            Address::Tcp(hostport) => {
                let s = TcpStream::connect(hostport.as_str())
                    .await
                    .map_err(io_err)?;
                // Requests are small and answered one at a time: Nagle only adds latency.
                s.set_nodelay(true).map_err(io_err)?;
                #[cfg(feature = "tls")]
                if let Some(tls) = &opts.tls {
                    return tls_wrap(s, address, tls).await;
                }
                Ok(Stream::new(s))
            }
            Address::Unix(name) => {
                let s = connect_abstract(name).map_err(io_err)?;
                Ok(Stream::new(s))
            }
        }
    };
    tokio::time::timeout(opts.connect_timeout, connect)
        .await
        .map_err(|_| Error::Timeout {
            node: node.clone(),
            op: "connect",
            after: opts.connect_timeout,
        })?
}

#[cfg(feature = "tls")]
async fn tls_wrap(s: TcpStream, address: &Address, tls: &TlsConfig) -> Result<Stream> {
    use rustls::pki_types::ServerName;
    let node = address.to_string();
    let name = tls
        .server_name
        .as_deref()
        .or(address.host())
        .unwrap_or("localhost")
        .to_owned();
    let server_name = ServerName::try_from(name.clone()).map_err(|e| Error::Tls {
        node: node.clone(),
        reason: format!("invalid server name {name:?}: {e}"),
    })?;
    let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
    let stream = connector
        .connect(server_name, s)
        .await
        .map_err(|e| Error::Tls {
            node,
            reason: e.to_string(),
        })?;
    Ok(Stream::new(stream))
}

/// Connect to a Linux abstract Unix socket. Connecting to a local socket does not block for
/// long (it either succeeds or is refused at once), so the std call is fine here.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn connect_abstract(name: &str) -> std::io::Result<UnixStream> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    let s = std::os::unix::net::UnixStream::connect_addr(&addr)?;
    s.set_nonblocking(true)?;
    UnixStream::from_std(s)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn connect_abstract(_name: &str) -> std::io::Result<UnixStream> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "abstract Unix sockets exist only on Linux",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn parse_addresses() {
        assert_eq!(
            Address::parse("127.0.0.1:9001").unwrap(),
            Address::Tcp("127.0.0.1:9001".into())
        );
        assert_eq!(
            Address::parse("@dqlite-1").unwrap(),
            Address::Unix("dqlite-1".into())
        );
        assert_eq!(Address::parse("@x").unwrap().to_string(), "@x");
        assert_eq!(Address::parse("[::1]:9001").unwrap().host(), Some("::1"));
        assert_eq!(Address::parse("node1:9001").unwrap().host(), Some("node1"));
        for bad in ["", "@", "nohost", ":9001", "h:port", "h:70000"] {
            let e = Address::parse(bad).unwrap_err();
            assert!(matches!(e, Error::InvalidAddress { .. }), "{bad}: {e}");
        }
    }

    fn opts() -> DialOptions {
        DialOptions {
            connect_timeout: Duration::from_secs(2),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    #[tokio::test]
    async fn dial_tcp_and_refused() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = Address::Tcp(l.local_addr().unwrap().to_string());
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut b = [0u8; 4];
            s.read_exact(&mut b).await.unwrap();
            b
        });
        let mut s = dial(&a, &opts()).await.unwrap();
        s.write_all(b"ping").await.unwrap();
        assert_eq!(&server.await.unwrap(), b"ping");

        // A port nobody listens on: refused, reported as a connect error naming the node.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = Address::Tcp(l.local_addr().unwrap().to_string());
        drop(l);
        let e = dial(&a, &opts()).await.err().unwrap();
        assert!(e.is_retryable(), "{e}");
        assert_eq!(e.node(), Some(a.to_string().as_str()));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn dial_abstract_unix() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("dqlite-client-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let l = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
        l.set_nonblocking(true).unwrap();
        let l = tokio::net::UnixListener::from_std(l).unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            s.write_all(b"pong").await.unwrap();
        });
        let mut s = dial(&Address::parse(&format!("@{name}")).unwrap(), &opts())
            .await
            .unwrap();
        let mut b = [0u8; 4];
        s.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"pong");
        server.await.unwrap();
    }
}
