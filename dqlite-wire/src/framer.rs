//! Splitting a byte stream into messages (sans-IO), and the 8-byte handshake (§1.1).

use bytes::{Buf, Bytes, BytesMut};

use crate::constants::{DEFAULT_MAX_BODY, PROTOCOL_VERSION, PROTOCOL_VERSION_LEGACY};
use crate::error::{DecodeError, FrameError, RequestError};
use crate::header::Header;
use crate::request::Request;
use crate::response::{Response, ResponseContext};

/// The protocol version a client sends as its first 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolVersion {
    /// Version 1 (dqlite ≥ 1.0).
    V1,
    /// The pre-1.0 version `0x86104dd760433fe5`; LEADER is then answered with SERVER_LEGACY.
    Legacy,
}

impl ProtocolVersion {
    /// The u64 sent on the wire.
    pub const fn code(self) -> u64 {
        match self {
            ProtocolVersion::V1 => PROTOCOL_VERSION,
            ProtocolVersion::Legacy => PROTOCOL_VERSION_LEGACY,
        }
    }

    /// The version a handshake word stands for.
    pub const fn from_code(code: u64) -> Option<ProtocolVersion> {
        match code {
            PROTOCOL_VERSION => Some(ProtocolVersion::V1),
            PROTOCOL_VERSION_LEGACY => Some(ProtocolVersion::Legacy),
            _ => None,
        }
    }

    /// The 8 handshake bytes.
    pub const fn to_bytes(self) -> [u8; 8] {
        self.code().to_le_bytes()
    }

    /// Parses the 8 handshake bytes; an unknown version is an error (C servers close the
    /// connection without a reply).
    pub fn decode(bytes: [u8; 8]) -> Result<ProtocolVersion, FrameError> {
        let code = u64::from_le_bytes(bytes);
        ProtocolVersion::from_code(code).ok_or(FrameError::UnknownVersion(code))
    }

    /// True for the legacy version.
    pub const fn is_legacy(self) -> bool {
        matches!(self, ProtocolVersion::Legacy)
    }
}

/// Most the framer reserves ahead of bytes actually received.
const RESERVE_AHEAD: usize = 64 * 1024;

/// One whole message cut from a stream: its header and exactly `header.words × 8` body bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The header.
    pub header: Header,
    /// The body.
    pub body: Bytes,
}

impl Frame {
    /// Decodes the frame as a request.
    pub fn decode_request(&self) -> Result<Request, RequestError> {
        Request::decode(&self.header, &self.body)
    }

    /// Decodes the frame as a response.
    pub fn decode_response(&self, ctx: &ResponseContext) -> Result<Response, DecodeError> {
        Response::decode(&self.header, &self.body, ctx)
    }
}

/// Cuts a byte stream, fed in arbitrary chunks, into [`Frame`]s.
///
/// * A header announcing a body above the maximum (default 64 MiB) is rejected as soon as the
///   header is complete, before anything is reserved for the body.
/// * A header announcing an empty body (`words == 0`) is an error, not a wait.
/// * [`Framer::server`] expects the 8-byte handshake first ([`Framer::next_handshake`]).
/// * After an error the framer is poisoned: every later call returns
///   [`FrameError::Poisoned`]; the connection should be closed.
///
/// Memory use is what the caller pushed plus at most 64 KiB reserved ahead: a header alone
/// never makes the framer allocate its announced body size.
#[derive(Debug)]
pub struct Framer {
    buf: BytesMut,
    max_body: usize,
    expect_handshake: bool,
    poisoned: Option<FrameError>,
}

impl Default for Framer {
    fn default() -> Self {
        Framer::new()
    }
}

impl Framer {
    /// A framer for a stream of messages with no handshake (e.g. responses read by a client).
    pub fn new() -> Framer {
        Framer {
            buf: BytesMut::new(),
            max_body: DEFAULT_MAX_BODY,
            expect_handshake: false,
            poisoned: None,
        }
    }

    /// A framer for the server side of a connection: the 8-byte handshake, then requests.
    pub fn server() -> Framer {
        Framer {
            expect_handshake: true,
            ..Framer::new()
        }
    }

    /// Sets the largest accepted body, in bytes.
    pub fn with_max_body(mut self, max_body: usize) -> Framer {
        self.max_body = max_body;
        self
    }

    /// The largest accepted body, in bytes.
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// True while the handshake has not been read (server side only).
    pub fn expects_handshake(&self) -> bool {
        self.expect_handshake
    }

    /// Appends received bytes.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The receive buffer, for reading into it directly (e.g. `read_buf`).
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Bytes received but not yet returned as a handshake or frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// How many more bytes are needed before the next handshake or frame can be returned
    /// (0 when one is ready). Never more than the maximum message size.
    pub fn needed(&self) -> usize {
        let want = if self.expect_handshake {
            8
        } else {
            match Header::from_prefix(&self.buf) {
                None => Header::LEN,
                Some(h) => Header::LEN + h.body_len().min(self.max_body),
            }
        };
        want.saturating_sub(self.buf.len())
    }

    fn check(&self) -> Result<(), FrameError> {
        match &self.poisoned {
            Some(e) => Err(FrameError::Poisoned(Box::new(e.clone()))),
            None => Ok(()),
        }
    }

    fn fail<T>(&mut self, e: FrameError) -> Result<T, FrameError> {
        self.poisoned = Some(e.clone());
        Err(e)
    }

    /// Returns the handshake once its 8 bytes have arrived (server side).
    pub fn next_handshake(&mut self) -> Result<Option<ProtocolVersion>, FrameError> {
        self.check()?;
        if !self.expect_handshake {
            return Err(FrameError::NoHandshakeExpected);
        }
        let Some(word) = self.buf.get(..8) else {
            return Ok(None);
        };
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        match ProtocolVersion::decode(bytes) {
            Ok(v) => {
                self.buf.advance(8);
                self.expect_handshake = false;
                Ok(Some(v))
            }
            Err(e) => self.fail(e),
        }
    }

    /// Returns the next whole message, `None` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        self.check()?;
        if self.expect_handshake {
            return Err(FrameError::HandshakePending);
        }
        let Some(header) = Header::from_prefix(&self.buf) else {
            return Ok(None);
        };
        if header.words == 0 {
            return self.fail(FrameError::EmptyBody {
                type_code: header.type_code,
            });
        }
        let body_len = header.words as u64 * 8;
        if body_len > self.max_body as u64 {
            return self.fail(FrameError::BodyTooLarge {
                words: header.words,
                type_code: header.type_code,
                max: self.max_body,
            });
        }
        // Fits in usize: at most max_body.
        let total = Header::LEN + body_len as usize;
        if self.buf.len() < total {
            // Reserve a little ahead, never the announced size: a peer that sends only a
            // header must not make us hold megabytes. The buffer grows as bytes arrive.
            self.buf
                .reserve((total - self.buf.len()).min(RESERVE_AHEAD));
            return Ok(None);
        }
        let mut message = self.buf.split_to(total);
        let body = message.split_off(Header::LEN).freeze();
        Ok(Some(Frame { header, body }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader() -> Vec<u8> {
        Request::Leader.to_bytes().unwrap().to_vec()
    }

    #[test]
    fn byte_by_byte() {
        let mut stream = ProtocolVersion::V1.to_bytes().to_vec();
        stream.extend(leader());
        stream.extend(leader());
        let mut f = Framer::server();
        let mut handshakes = 0;
        let mut frames = 0;
        for b in stream {
            f.push(&[b]);
            if f.expects_handshake() {
                if let Some(v) = f.next_handshake().unwrap() {
                    assert_eq!(v, ProtocolVersion::V1);
                    handshakes += 1;
                }
            } else {
                while let Some(frame) = f.next_frame().unwrap() {
                    assert_eq!(frame.decode_request().unwrap(), Request::Leader);
                    frames += 1;
                }
            }
        }
        assert_eq!((handshakes, frames), (1, 2));
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn needed_counts_down() {
        let mut f = Framer::new();
        assert_eq!(f.needed(), 8);
        let m = leader();
        f.push(&m[..8]);
        assert_eq!(f.needed(), 8);
        f.push(&m[8..12]);
        assert_eq!(f.needed(), 4);
        f.push(&m[12..]);
        assert_eq!(f.needed(), 0);
        assert!(f.next_frame().unwrap().is_some());
    }

    #[test]
    fn oversize_is_rejected_from_the_header_alone() {
        let mut f = Framer::new().with_max_body(1024);
        let h = Header {
            words: u32::MAX,
            type_code: 7,
            schema: 0,
            extra: 0,
        };
        f.push(&h.to_bytes());
        assert_eq!(
            f.next_frame(),
            Err(FrameError::BodyTooLarge {
                words: u32::MAX,
                type_code: 7,
                max: 1024
            })
        );
        // Nothing was reserved for the 32 GiB body.
        assert!(f.buffer_mut().capacity() < 1024);
        assert!(matches!(f.next_frame(), Err(FrameError::Poisoned(_))));
    }

    #[test]
    fn a_header_alone_does_not_allocate_the_body() {
        let mut f = Framer::new();
        let h = Header {
            words: (DEFAULT_MAX_BODY / 8) as u32,
            type_code: 9,
            schema: 0,
            extra: 0,
        };
        f.push(&h.to_bytes());
        assert_eq!(f.next_frame(), Ok(None));
        assert!(f.buffer_mut().capacity() <= RESERVE_AHEAD + 64);
        assert_eq!(f.needed(), DEFAULT_MAX_BODY);
    }

    #[test]
    fn body_at_the_limit_is_accepted() {
        let mut f = Framer::new().with_max_body(16);
        f.push(&[2, 0, 0, 0, 8, 0, 0, 0]);
        f.push(&[0; 16]);
        assert_eq!(f.next_frame().unwrap().unwrap().body.len(), 16);
    }

    #[test]
    fn zero_length_body_is_an_error() {
        let mut f = Framer::new();
        f.push(&[0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(f.next_frame(), Err(FrameError::EmptyBody { type_code: 0 }));
    }

    #[test]
    fn handshake_rules() {
        let mut f = Framer::server();
        assert_eq!(f.next_frame(), Err(FrameError::HandshakePending));
        f.push(&ProtocolVersion::Legacy.to_bytes()[..4]);
        assert_eq!(f.next_handshake(), Ok(None));
        f.push(&ProtocolVersion::Legacy.to_bytes()[4..]);
        assert_eq!(f.next_handshake(), Ok(Some(ProtocolVersion::Legacy)));
        assert_eq!(f.next_handshake(), Err(FrameError::NoHandshakeExpected));

        let mut f = Framer::server();
        f.push(&2u64.to_le_bytes());
        assert_eq!(f.next_handshake(), Err(FrameError::UnknownVersion(2)));
        assert!(f.next_handshake().is_err());
        assert_eq!(ProtocolVersion::V1.to_bytes(), [1, 0, 0, 0, 0, 0, 0, 0]);
    }
}
