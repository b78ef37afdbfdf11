//! How a node reaches a peer: a [`Connector`] yields a ready byte stream.
//!
//! Connectors compose: [`TcpConnector`] dials, [`TlsConnector`] wraps any connector in TLS
//! (rustls with the ring provider), [`WithPreamble`] writes fixed bytes first (the dqlite node
//! uses it for its handshake and CONNECT message, so raft traffic can share the client port).

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use openraft::BasicNode;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// A byte stream raft frames can flow over.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static> Stream for T {}

/// A node description that carries a dialable address.
pub trait NodeAddr {
    /// `host:port` of the node's raft endpoint.
    fn addr(&self) -> &str;
}

impl NodeAddr for BasicNode {
    fn addr(&self) -> &str {
        &self.addr
    }
}

/// Opens streams to peers.
pub trait Connector<N>: Send + Sync + 'static {
    /// The stream type.
    type Stream: Stream;
    /// Connects to `node`; the stream is ready for raft frames when returned.
    fn connect(&self, node: &N) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// Plain TCP with `TCP_NODELAY` and a connect timeout.
#[derive(Debug, Clone)]
pub struct TcpConnector {
    /// Give up connecting after this long.
    pub connect_timeout: Duration,
}

impl Default for TcpConnector {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
        }
    }
}

impl<N: NodeAddr + Send + Sync> Connector<N> for TcpConnector {
    type Stream = TcpStream;

    async fn connect(&self, node: &N) -> io::Result<TcpStream> {
        let s = tokio::time::timeout(self.connect_timeout, TcpStream::connect(node.addr()))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        s.set_nodelay(true)?;
        Ok(s)
    }
}

/// Writes `preamble` right after the inner connector's stream is up.
#[derive(Debug, Clone)]
pub struct WithPreamble<K> {
    /// The wrapped connector.
    pub inner: K,
    /// Bytes written first on every new connection.
    pub preamble: Arc<[u8]>,
}

impl<N: Sync, K: Connector<N>> Connector<N> for WithPreamble<K> {
    type Stream = K::Stream;

    async fn connect(&self, node: &N) -> io::Result<K::Stream> {
        let mut s = self.inner.connect(node).await?;
        s.write_all(&self.preamble).await?;
        Ok(s)
    }
}

/// TLS (rustls, ring provider) over an inner connector.
#[derive(Clone)]
pub struct TlsConnector<K> {
    /// The wrapped connector (usually [`TcpConnector`]).
    pub inner: K,
    /// The rustls client configuration.
    pub tls: tokio_rustls::TlsConnector,
    /// Server name to verify the peer certificate against (one name for the whole cluster,
    /// as dqlite clusters share one certificate).
    pub server_name: tokio_rustls::rustls::pki_types::ServerName<'static>,
}

impl<N: Sync, K: Connector<N>> Connector<N> for TlsConnector<K> {
    type Stream = tokio_rustls::client::TlsStream<K::Stream>;

    async fn connect(&self, node: &N) -> io::Result<Self::Stream> {
        let s = self.inner.connect(node).await?;
        self.tls.connect(self.server_name.clone(), s).await
    }
}
