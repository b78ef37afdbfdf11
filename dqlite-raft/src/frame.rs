//! On-disk framing of the log: the segment header and the record frames (sans-IO).
//!
//! A segment file is a [`SegmentHeader`] followed by frames, then zeros up to the preallocated
//! size. Every frame is 8-byte aligned:
//!
//! ```text
//! u32 LE  body length (kind byte + payload), never 0
//! u32 LE  CRC32C over (length bytes ‖ batch bytes ‖ body)
//! u64 LE  batch number (one per write+fsync; lets recovery tell a torn tail from corruption)
//! u8      kind (1 entry, 2 truncate, 3 purge, 4 committed)
//! ...     payload
//! zeros   padding to the next multiple of 8
//! ```
//!
//! A length of zero marks the end of the written part of a segment (the file is zero-filled).

use crate::error::FrameError;

/// Magic bytes at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"DQRSLOG\0";
/// The only segment format version this crate writes and reads.
pub const SEGMENT_VERSION: u8 = 1;
/// Size of the segment header in bytes.
pub const SEGMENT_HEADER_LEN: usize = 32;
/// Size of the fixed part of a frame (length, CRC, batch).
pub const FRAME_HEADER_LEN: usize = 16;
/// Largest body a frame may carry (sanity bound for recovery: a length above it is garbage).
pub const MAX_FRAME_BODY: usize = 256 * 1024 * 1024;

/// The header at offset 0 of every segment.
///
/// Layout: magic (8), version (1), 3 zero bytes, u32 reserved (0), u64 segment sequence number,
/// u32 reserved, u32 CRC32C of the first 28 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Sequence number of the segment (also in its file name); strictly increasing.
    pub seq: u64,
}

impl SegmentHeader {
    /// Encodes the header into its 32 bytes.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8] = SEGMENT_VERSION;
        b[16..24].copy_from_slice(&self.seq.to_le_bytes());
        let crc = crc32c::crc32c(&b[0..28]);
        b[28..32].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a header.
    pub fn decode(b: &[u8]) -> Result<Self, FrameError> {
        if b.len() < SEGMENT_HEADER_LEN {
            return Err(FrameError::Short);
        }
        if b[0..8] != SEGMENT_MAGIC {
            return Err(FrameError::BadMagic);
        }
        let crc = u32::from_le_bytes([b[28], b[29], b[30], b[31]]);
        if crc != crc32c::crc32c(&b[0..28]) {
            return Err(FrameError::Checksum);
        }
        if b[8] != SEGMENT_VERSION {
            return Err(FrameError::Version(b[8]));
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&b[16..24]);
        Ok(Self {
            seq: u64::from_le_bytes(seq),
        })
    }
}

/// What a frame holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// A log entry: u32 LE length of the encoded log id, the log id, then the encoded entry.
    Entry = 1,
    /// Entries with index >= the u64 LE payload are deleted.
    Truncate = 2,
    /// Entries up to and including the encoded log id are purged.
    Purge = 3,
    /// The encoded log id is committed (a hint: losing it is safe).
    Committed = 4,
}

impl FrameKind {
    fn from_u8(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Entry),
            2 => Some(Self::Truncate),
            3 => Some(Self::Purge),
            4 => Some(Self::Committed),
            _ => None,
        }
    }
}

/// Total on-disk size of a frame with a payload of `payload_len` bytes (header, kind, padding).
pub fn frame_len(payload_len: usize) -> usize {
    (FRAME_HEADER_LEN + 1 + payload_len).next_multiple_of(8)
}

/// Appends one frame to `out`.
pub fn encode_frame(out: &mut Vec<u8>, batch: u64, kind: FrameKind, payload: &[u8]) {
    let start = out.len();
    let body_len = (1 + payload.len()) as u32;
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&batch.to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(payload);
    let crc = frame_crc(&out[start..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    out.resize(start + frame_len(payload.len()), 0);
}

fn frame_crc(frame: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&frame[0..4]);
    crc32c::crc32c_append(crc, &frame[8..])
}

/// A frame decoded from a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Batch number of the write that produced the frame.
    pub batch: u64,
    /// What the frame holds.
    pub kind: FrameKind,
    /// The payload (without padding).
    pub payload: &'a [u8],
    /// Bytes the frame occupies, padding included.
    pub len: usize,
}

/// Result of looking at the bytes at a frame position.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A complete frame with a valid checksum.
    Frame(Frame<'a>),
    /// A zero length field: nothing was written here.
    End,
    /// Anything else: torn, corrupt or not a frame.
    Invalid(FrameError),
}

/// Decodes the frame at the start of `buf` (the rest of the segment).
pub fn decode_frame(buf: &[u8]) -> Decoded<'_> {
    if buf.len() < FRAME_HEADER_LEN + 1 {
        if buf.iter().all(|b| *b == 0) {
            return Decoded::End;
        }
        return Decoded::Invalid(FrameError::Short);
    }
    let body_len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if body_len == 0 {
        return Decoded::End;
    }
    if body_len > MAX_FRAME_BODY || FRAME_HEADER_LEN + body_len > buf.len() {
        return Decoded::Invalid(FrameError::Length(body_len));
    }
    let end = FRAME_HEADER_LEN + body_len;
    let stored = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if stored != frame_crc(&buf[..end]) {
        return Decoded::Invalid(FrameError::Checksum);
    }
    let mut batch = [0u8; 8];
    batch.copy_from_slice(&buf[8..16]);
    let Some(kind) = FrameKind::from_u8(buf[16]) else {
        return Decoded::Invalid(FrameError::Kind(buf[16]));
    };
    Decoded::Frame(Frame {
        batch: u64::from_le_bytes(batch),
        kind,
        payload: &buf[FRAME_HEADER_LEN + 1..end],
        len: end.next_multiple_of(8).min(buf.len()),
    })
}

/// Splits an entry payload into (encoded log id, encoded entry).
pub fn split_entry_payload(payload: &[u8]) -> Result<(&[u8], &[u8]), FrameError> {
    if payload.len() < 4 {
        return Err(FrameError::Short);
    }
    let n = u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]) as usize;
    if 4 + n > payload.len() {
        return Err(FrameError::Length(n));
    }
    Ok((&payload[4..4 + n], &payload[4 + n..]))
}

/// Builds an entry payload from the encoded log id and the encoded entry.
pub fn entry_payload(out: &mut Vec<u8>, log_id: &[u8], entry: &[u8]) {
    out.extend_from_slice(&(log_id.len() as u32).to_le_bytes());
    out.extend_from_slice(log_id);
    out.extend_from_slice(entry);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_round_trip_and_checks() {
        let h = SegmentHeader { seq: 42 };
        let b = h.encode();
        assert_eq!(SegmentHeader::decode(&b), Ok(h));
        let mut bad = b;
        bad[17] ^= 1;
        assert_eq!(SegmentHeader::decode(&bad), Err(FrameError::Checksum));
        let mut bad = b;
        bad[0] = b'X';
        assert_eq!(SegmentHeader::decode(&bad), Err(FrameError::BadMagic));
        assert_eq!(SegmentHeader::decode(&b[..10]), Err(FrameError::Short));
    }

    #[test]
    fn zeros_are_end() {
        assert_eq!(decode_frame(&[0u8; 64]), Decoded::End);
        assert_eq!(decode_frame(&[0u8; 3]), Decoded::End);
    }

    proptest! {
        #[test]
        fn frame_round_trip(batch in any::<u64>(), payload in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut buf = Vec::new();
            encode_frame(&mut buf, batch, FrameKind::Entry, &payload);
            prop_assert_eq!(buf.len(), frame_len(payload.len()));
            prop_assert_eq!(buf.len() % 8, 0);
            buf.extend_from_slice(&[0u8; 24]);
            match decode_frame(&buf) {
                Decoded::Frame(f) => {
                    prop_assert_eq!(f.batch, batch);
                    prop_assert_eq!(f.kind, FrameKind::Entry);
                    prop_assert_eq!(f.payload, &payload[..]);
                    prop_assert_eq!(f.len, frame_len(payload.len()));
                    prop_assert_eq!(decode_frame(&buf[f.len..]), Decoded::End);
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }

        #[test]
        fn any_bit_flip_is_detected(payload in proptest::collection::vec(any::<u8>(), 1..100), bit in any::<usize>()) {
            let mut buf = Vec::new();
            encode_frame(&mut buf, 7, FrameKind::Entry, &payload);
            let body_end = FRAME_HEADER_LEN + 1 + payload.len();
            let bit = bit % (body_end * 8);
            buf[bit / 8] ^= 1 << (bit % 8);
            match decode_frame(&buf) {
                Decoded::Frame(f) => prop_assert!(false, "accepted corrupt frame {:?}", f),
                Decoded::End | Decoded::Invalid(_) => {}
            }
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_frame(&bytes);
            let _ = SegmentHeader::decode(&bytes);
            let _ = split_entry_payload(&bytes);
        }
    }
}
