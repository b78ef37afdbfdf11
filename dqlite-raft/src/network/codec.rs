//! Node-to-node framing and messages (sans-IO encode/decode plus async read/write helpers).
//!
//! A frame is a 10-byte header followed by a postcard body:
//!
//! ```text
//! u8      protocol version (1)
//! u8      kind (1 request, 2 response)
//! u32 LE  body length (bounded by the receiver's `max_frame`)
//! u32 LE  CRC32C of the body
//! ```

use openraft::RaftTypeConfig;
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Protocol version carried in every frame.
pub const PROTOCOL_VERSION: u8 = 1;
/// Frame header length.
pub const HEADER_LEN: usize = 10;
/// Kind byte of a request frame.
pub const KIND_REQUEST: u8 = 1;
/// Kind byte of a response frame.
pub const KIND_RESPONSE: u8 = 2;

/// A request from a Raft peer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub enum Request<C: RaftTypeConfig> {
    /// Log replication and heartbeats.
    AppendEntries(AppendEntriesRequest<C>),
    /// Leader election.
    Vote(VoteRequest<C::NodeId>),
    /// One chunk of a snapshot.
    InstallSnapshot(InstallSnapshotRequest<C>),
}

/// The answer to a [`Request`], carrying the remote Raft's result as is.
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub enum Response<C: RaftTypeConfig> {
    /// Answer to [`Request::AppendEntries`].
    AppendEntries(Result<AppendEntriesResponse<C::NodeId>, RaftError<C::NodeId>>),
    /// Answer to [`Request::Vote`].
    Vote(Result<VoteResponse<C::NodeId>, RaftError<C::NodeId>>),
    /// Answer to [`Request::InstallSnapshot`].
    InstallSnapshot(
        Result<InstallSnapshotResponse<C::NodeId>, RaftError<C::NodeId, InstallSnapshotError>>,
    ),
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The stream failed or closed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The peer speaks another protocol version.
    #[error("unsupported protocol version {0}")]
    Version(u8),
    /// A frame of the wrong kind arrived (e.g. a response where a request was expected).
    #[error("unexpected frame kind {0}")]
    Kind(u8),
    /// The announced body is larger than allowed.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// Configured limit.
        max: usize,
    },
    /// The body does not match its checksum.
    #[error("frame checksum mismatch")]
    Checksum,
    /// The body does not decode.
    #[error("body does not decode: {0}")]
    Decode(String),
    /// The message could not be encoded.
    #[error("message does not encode: {0}")]
    Encode(String),
}

/// Encodes `msg` as one frame.
pub fn encode<T: Serialize>(kind: u8, msg: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = postcard::serialize_with_flavor(msg, Framed(vec![0u8; HEADER_LEN]))
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    let body_len = out.len() - HEADER_LEN;
    let crc = crc32c::crc32c(&out[HEADER_LEN..]);
    out[0] = PROTOCOL_VERSION;
    out[1] = kind;
    out[2..6].copy_from_slice(&(body_len as u32).to_le_bytes());
    out[6..10].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// postcard output into a `Vec` that already holds the frame header. Unlike
/// `postcard::to_extend`, which pushes a byte string through `Extend` one byte at a time (in an
/// unoptimized build, ~0.5 s per 18 MiB entry, on the runtime), it copies slices whole.
struct Framed(Vec<u8>);

impl postcard::ser_flavors::Flavor for Framed {
    type Output = Vec<u8>;

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Vec<u8>> {
        Ok(self.0)
    }
}

/// Checks a header; returns the body length and CRC.
pub fn parse_header(
    h: &[u8; HEADER_LEN],
    kind: u8,
    max: usize,
) -> Result<(usize, u32), CodecError> {
    if h[0] != PROTOCOL_VERSION {
        return Err(CodecError::Version(h[0]));
    }
    if h[1] != kind {
        return Err(CodecError::Kind(h[1]));
    }
    let len = u32::from_le_bytes([h[2], h[3], h[4], h[5]]) as usize;
    if len > max {
        return Err(CodecError::TooLarge { len, max });
    }
    Ok((len, u32::from_le_bytes([h[6], h[7], h[8], h[9]])))
}

/// Checks and decodes a body.
pub fn decode_body<T: DeserializeOwned>(body: &[u8], crc: u32) -> Result<T, CodecError> {
    if crc32c::crc32c(body) != crc {
        return Err(CodecError::Checksum);
    }
    postcard::from_bytes(body).map_err(|e| CodecError::Decode(e.to_string()))
}

/// Reads one frame of `kind` from `r`. Returns `Ok(None)` on a clean end of stream before a
/// frame starts.
pub async fn read_frame<T: DeserializeOwned + Send + 'static, R: AsyncRead + Unpin>(
    r: &mut R,
    kind: u8,
    max: usize,
    buf: &mut Vec<u8>,
) -> Result<Option<T>, CodecError> {
    let mut h = [0u8; HEADER_LEN];
    let n = r.read(&mut h).await?;
    if n == 0 {
        return Ok(None);
    }
    r.read_exact(&mut h[n..]).await?;
    let (len, crc) = parse_header(&h, kind, max)?;
    if len > BIG_FRAME {
        // A large transaction. Its own zeroed allocation (`resize` would write every byte,
        // slow in an unoptimized build), not kept for the next frame, and checked and decoded
        // on the blocking pool: done on the runtime, it held up the node's other tasks
        // (openraft's heartbeats among them) for as long as it took.
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).await?;
        return match tokio::task::spawn_blocking(move || decode_body(&body, crc)).await {
            Ok(decoded) => decoded.map(Some),
            Err(e) => Err(CodecError::Decode(format!("decoding task failed: {e}"))),
        };
    }
    buf.resize(len, 0);
    r.read_exact(buf).await?;
    decode_body(buf, crc).map(Some)
}

/// Frames with a body larger than this are read into their own buffer and decoded off the
/// runtime by [`read_frame`].
const BIG_FRAME: usize = 1 << 20;

/// Writes one encoded frame and flushes.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &[u8]) -> Result<(), CodecError> {
    w.write_all(frame).await?;
    w.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestConfig;
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};
    use proptest::prelude::*;

    fn append(payloads: Vec<Vec<u8>>) -> Request<TestConfig> {
        Request::AppendEntries(AppendEntriesRequest {
            vote: Vote::new_committed(3, 1),
            prev_log_id: Some(LogId::new(CommittedLeaderId::new(3, 1), 7)),
            entries: payloads
                .into_iter()
                .enumerate()
                .map(|(i, p)| Entry {
                    log_id: LogId::new(CommittedLeaderId::new(3, 1), 8 + i as u64),
                    payload: EntryPayload::Normal(p),
                })
                .collect(),
            leader_commit: None,
        })
    }

    proptest! {
        #[test]
        fn request_round_trip(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
            let req = append(payloads);
            let frame = encode(KIND_REQUEST, &req).unwrap();
            let mut h = [0u8; HEADER_LEN];
            h.copy_from_slice(&frame[..HEADER_LEN]);
            let (len, crc) = parse_header(&h, KIND_REQUEST, 1 << 20).unwrap();
            prop_assert_eq!(len, frame.len() - HEADER_LEN);
            let back: Request<TestConfig> = decode_body(&frame[HEADER_LEN..], crc).unwrap();
            prop_assert_eq!(format!("{back:?}"), format!("{req:?}"));
        }

        #[test]
        fn corrupt_bodies_are_rejected(flip in any::<usize>()) {
            let req = append(vec![b"hello".to_vec()]);
            let mut frame = encode(KIND_REQUEST, &req).unwrap();
            let body = frame.len() - HEADER_LEN;
            let bit = flip % (body * 8);
            frame[HEADER_LEN + bit / 8] ^= 1 << (bit % 8);
            let crc = u32::from_le_bytes([frame[6], frame[7], frame[8], frame[9]]);
            let r: Result<Request<TestConfig>, _> = decode_body(&frame[HEADER_LEN..], crc);
            prop_assert!(matches!(r, Err(CodecError::Checksum)));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _: Result<Request<TestConfig>, _> = postcard::from_bytes(&bytes).map_err(|e| e.to_string());
            let _: Result<Response<TestConfig>, _> = postcard::from_bytes(&bytes).map_err(|e| e.to_string());
        }
    }

    #[test]
    fn header_checks() {
        let f = encode(KIND_RESPONSE, &5u32).unwrap();
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(&f[..HEADER_LEN]);
        assert!(matches!(
            parse_header(&h, KIND_REQUEST, 100),
            Err(CodecError::Kind(2))
        ));
        assert!(matches!(
            parse_header(&h, KIND_RESPONSE, 0),
            Err(CodecError::TooLarge { .. })
        ));
        h[0] = 9;
        assert!(matches!(
            parse_header(&h, KIND_RESPONSE, 100),
            Err(CodecError::Version(9))
        ));
    }
}
