//! The reading side of a client connection: frames requests out of the byte stream, and
//! while a query streams its rows, watches for an INTERRUPT.
//!
//! C dqlite reads nothing while a query streams, so its INTERRUPT only ever drains the rest
//! of a result; here an INTERRUPT that arrives mid-stream stops the query. Anything else the
//! client sends meanwhile is kept, in order, for after the query.

use dqlite_wire::{Frame, FrameError, Framer, Request};
use tokio::io::{AsyncRead, AsyncReadExt};

/// What came in.
pub(super) enum Incoming {
    /// A whole request message.
    Frame(Frame),
    /// A message larger than the limit (its body is never read).
    TooLarge {
        /// Its announced size.
        bytes: u64,
        /// The limit.
        max: usize,
    },
    /// The client closed the connection, or sent bytes that are not a message stream.
    Closed,
}

/// The reading side of a client connection.
pub(super) struct Reader<R> {
    rd: R,
    framer: Framer,
    /// Read while a query streamed, for after it.
    early: Option<Incoming>,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    /// A reader whose framer already holds `prefix` (handshake included).
    pub fn new(rd: R, max_body: usize, prefix: &[u8]) -> Option<Reader<R>> {
        let mut framer = Framer::server().with_max_body(max_body);
        framer.push(prefix);
        if !matches!(framer.next_handshake(), Ok(Some(_))) {
            return None;
        }
        Some(Reader {
            rd,
            framer,
            early: None,
        })
    }

    /// A message already buffered, if any.
    fn buffered(&mut self) -> Option<Incoming> {
        match self.framer.next_frame() {
            Ok(Some(f)) => Some(Incoming::Frame(f)),
            Ok(None) => None,
            Err(FrameError::BodyTooLarge { words, max, .. }) => Some(Incoming::TooLarge {
                bytes: u64::from(words) * 8,
                max,
            }),
            Err(e) => {
                tracing::debug!(error = %e, "closing client connection");
                Some(Incoming::Closed)
            }
        }
    }

    /// Reads more bytes; false if the client is gone. Cancel-safe.
    async fn fill(&mut self) -> bool {
        matches!(self.rd.read_buf(self.framer.buffer_mut()).await, Ok(n) if n > 0)
    }

    /// The next request. Cancel-safe (an idle timeout may drop it).
    pub async fn next(&mut self) -> Incoming {
        if let Some(i) = self.early.take() {
            return i;
        }
        loop {
            if let Some(i) = self.buffered() {
                return i;
            }
            if !self.fill().await {
                return Incoming::Closed;
            }
        }
    }

    /// Resolves when the client sends INTERRUPT (true) or goes away (false) while a query
    /// streams; any other message is kept for [`Reader::next`] and stops the watch (it then
    /// never resolves). Cancel-safe.
    pub async fn interrupted(&mut self) -> bool {
        loop {
            if self.early.is_some() {
                return std::future::pending().await;
            }
            match self.buffered() {
                Some(Incoming::Frame(f)) => {
                    if matches!(f.decode_request(), Ok(Request::Interrupt { .. })) {
                        return true;
                    }
                    self.early = Some(Incoming::Frame(f));
                    continue;
                }
                Some(Incoming::Closed) => return false,
                Some(other) => {
                    self.early = Some(other);
                    continue;
                }
                None => {}
            }
            if !self.fill().await {
                return false;
            }
        }
    }
}
