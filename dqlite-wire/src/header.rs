//! The 8-byte message header (§1.2).

use bytes::BufMut;

use crate::error::EncodeError;

/// Message header: body length in words, type code, schema, and an unused `extra` field.
///
/// The body that follows is exactly `words × 8` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Body length in 8-byte words.
    pub words: u32,
    /// Request or response type code.
    pub type_code: u8,
    /// Schema (revision) of the body layout.
    pub schema: u8,
    /// Unused; written as 0, ignored on input.
    pub extra: u16,
}

impl Header {
    /// Encoded size of a header.
    pub const LEN: usize = 8;

    /// Parses a header from its 8 bytes.
    pub fn decode(bytes: [u8; 8]) -> Header {
        Header {
            words: u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            type_code: bytes[4],
            schema: bytes[5],
            extra: u16::from_le_bytes([bytes[6], bytes[7]]),
        }
    }

    /// Parses a header from the start of `bytes`, if there are at least 8.
    pub fn from_prefix(bytes: &[u8]) -> Option<Header> {
        let head: [u8; 8] = bytes.get(..Header::LEN)?.try_into().ok()?;
        Some(Header::decode(head))
    }

    /// The header's 8 bytes.
    pub fn to_bytes(&self) -> [u8; 8] {
        let mut out = [0u8; 8];
        self.write_to(&mut out);
        out
    }

    /// Writes the header into the first 8 bytes of `out` (which must be at least 8 long).
    pub(crate) fn write_to(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.words.to_le_bytes());
        out[4] = self.type_code;
        out[5] = self.schema;
        out[6..8].copy_from_slice(&self.extra.to_le_bytes());
    }

    /// Appends the header to `buf`.
    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.to_bytes());
    }

    /// Body length in bytes (`words × 8`).
    pub fn body_len(&self) -> usize {
        self.words as usize * 8
    }

    /// The header for a body of `body_len` bytes (a multiple of 8 that fits the u32 word
    /// count), with `extra` zero.
    pub(crate) fn for_body(
        type_code: u8,
        schema: u8,
        body_len: usize,
        message: &'static str,
    ) -> Result<Header, EncodeError> {
        debug_assert_eq!(body_len % 8, 0, "{message} body must be word-aligned");
        let words = u32::try_from(body_len / 8).map_err(|_| EncodeError::TooLarge {
            message,
            len: body_len,
        })?;
        Ok(Header {
            words,
            type_code,
            schema,
            extra: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = Header {
            words: 0x0102_0304,
            type_code: 9,
            schema: 1,
            extra: 0xbeef,
        };
        assert_eq!(h.to_bytes(), [4, 3, 2, 1, 9, 1, 0xef, 0xbe]);
        assert_eq!(Header::decode(h.to_bytes()), h);
        assert_eq!(Header::from_prefix(&h.to_bytes()[..7]), None);
        assert_eq!(h.body_len(), 0x0102_0304 * 8);
    }

    #[test]
    fn too_large_body() {
        assert!(Header::for_body(7, 0, (u32::MAX as usize + 1) * 8, "ROWS").is_err());
        assert_eq!(Header::for_body(7, 0, 16, "ROWS").unwrap().words, 2);
    }
}
