//! One protocol connection to one node: handshake, then strictly one request at a time.
//!
//! Bytes are produced and parsed by `dqlite-wire` (through [`crate::codec`]); this module owns
//! the socket, the timeouts and the "broken" state.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::codec::{self, FrameReader, Req, Resp};
use crate::error::{Error, Result};
use crate::transport::{Address, DialOptions, Stream, dial};

/// Timeouts and limits of one connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    /// Longest wait for one whole response message.
    pub read_timeout: Duration,
    /// Longest wait for a request to be written.
    pub write_timeout: Duration,
    /// Largest response body accepted (bytes).
    pub max_body: usize,
}

/// A connection after the handshake.
///
/// Invariant: `broken` is set as soon as the byte stream may be out of step with the protocol
/// (I/O error, timeout, malformed or unexpected message); every later call then fails with
/// [`Error::Broken`] instead of reading garbage.
pub(crate) struct Conn {
    stream: Stream,
    node: String,
    wbuf: BytesMut,
    frames: FrameReader,
    limits: ConnLimits,
    broken: bool,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("node", &self.node)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// Dial `address` and send the protocol version.
    pub(crate) async fn connect(
        address: &Address,
        dial_opts: &DialOptions,
        limits: ConnLimits,
    ) -> Result<Conn> {
        let stream = dial(address, dial_opts).await?;
        Conn::handshake(stream, address.to_string(), limits).await
    }

    /// Send the protocol version on an already connected stream.
    pub(crate) async fn handshake(
        stream: Stream,
        node: String,
        limits: ConnLimits,
    ) -> Result<Conn> {
        let mut conn = Conn {
            stream,
            node,
            wbuf: BytesMut::with_capacity(1024),
            frames: FrameReader::new(limits.max_body),
            limits,
            broken: false,
        };
        codec::encode_handshake(&mut conn.wbuf);
        conn.flush_wbuf().await?;
        Ok(conn)
    }

    /// The node's address.
    pub(crate) fn node(&self) -> &str {
        &self.node
    }

    /// False once the connection is out of step with the server.
    pub(crate) fn is_usable(&self) -> bool {
        !self.broken
    }

    fn check(&self) -> Result<()> {
        if self.broken {
            Err(Error::Broken {
                node: self.node.clone(),
            })
        } else {
            Ok(())
        }
    }

    /// Write one request.
    pub(crate) async fn send(&mut self, req: &Req<'_>) -> Result<()> {
        self.check()?;
        self.wbuf.clear();
        codec::encode_request(req, &mut self.wbuf)?;
        self.flush_wbuf().await
    }

    async fn flush_wbuf(&mut self) -> Result<()> {
        let write = self.stream.write_all(&self.wbuf);
        let res = match tokio::time::timeout(self.limits.write_timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(Error::Io {
                node: self.node.clone(),
                op: "write",
                source,
            }),
            Err(_) => Err(Error::Timeout {
                node: self.node.clone(),
                op: "write",
                after: self.limits.write_timeout,
            }),
        };
        if res.is_err() {
            self.broken = true;
        }
        res
    }

    /// Read one response message answering `answers` (FAILURE comes back as `Resp::Failure`).
    pub(crate) async fn recv(&mut self, answers: &Req<'_>) -> Result<Resp> {
        self.check()?;
        let res = tokio::time::timeout(self.limits.read_timeout, self.recv_inner(answers)).await;
        let res = match res {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                node: self.node.clone(),
                op: "read",
                after: self.limits.read_timeout,
            }),
        };
        if res.is_err() {
            self.broken = true;
        }
        res
    }

    async fn recv_inner(&mut self, answers: &Req<'_>) -> Result<Resp> {
        loop {
            match self.frames.next_frame() {
                Ok(Some(frame)) => {
                    return codec::decode_response(&frame, answers).map_err(|detail| {
                        Error::Protocol {
                            node: self.node.clone(),
                            request: answers.name(),
                            detail,
                        }
                    });
                }
                Ok(None) => {}
                Err(detail) => {
                    return Err(Error::Protocol {
                        node: self.node.clone(),
                        request: answers.name(),
                        detail,
                    });
                }
            }
            let buf = self.frames.buffer_mut();
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(16 * 1024);
            }
            let n = self
                .stream
                .read_buf(buf)
                .await
                .map_err(|source| Error::Io {
                    node: self.node.clone(),
                    op: "read",
                    source,
                })?;
            if n == 0 {
                return Err(Error::Closed {
                    node: self.node.clone(),
                    request: answers.name(),
                });
            }
        }
    }

    /// Send a request and read its (first) response; a FAILURE becomes [`Error::Server`].
    pub(crate) async fn call(&mut self, req: &Req<'_>) -> Result<Resp> {
        self.send(req).await?;
        let resp = self.recv(req).await?;
        self.failure_to_error(resp)
    }

    /// Turn a FAILURE into an error naming this node.
    pub(crate) fn failure_to_error(&self, resp: Resp) -> Result<Resp> {
        match resp {
            Resp::Failure { code, message } => Err(Error::Server {
                node: self.node.clone(),
                code,
                message,
            }),
            other => Ok(other),
        }
    }

    /// An error for a well-formed response of the wrong type. The stream is still in step, but
    /// a server that answers nonsense is not trusted further.
    pub(crate) fn unexpected(&mut self, req: &Req<'_>, got: &Resp) -> Error {
        self.broken = true;
        Error::UnexpectedResponse {
            node: self.node.clone(),
            request: req.name(),
            got: got.name().to_owned(),
        }
    }

    /// Send INTERRUPT and drop every message until its EMPTY arrives (C servers finish
    /// streaming a query before they read the INTERRUPT).
    pub(crate) async fn interrupt_and_drain(&mut self) -> Result<()> {
        let req = Req::Interrupt;
        self.send(&req).await?;
        loop {
            match self.recv(&req).await? {
                Resp::Empty => return Ok(()),
                Resp::Rows(_) | Resp::Failure { .. } => continue,
                other => return Err(self.unexpected(&req, &other)),
            }
        }
    }
}
