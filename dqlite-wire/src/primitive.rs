//! Primitive field codecs (§2 of the protocol reference): little-endian integers, NUL-terminated
//! padded text, length-prefixed padded blobs.
//!
//! Decoding goes through [`Cursor`], which turns every failure into a [`DecodeError`] naming
//! the message, the field and the body offset. Fixed-size fields are plain slice splits (they
//! are the hot path of ROWS decoding); texts are found with `nom`'s `take_until`, which uses
//! `memchr`. Decoding never requires
//! padding bytes to be zero (C servers leave stale bytes in blob padding); encoding always
//! writes zeros.

use std::borrow::Cow;

use bytes::BufMut;
use nom::IResult;
use nom::Parser;
use nom::bytes::complete::take_until;

use crate::error::{DecodeError, DecodeErrorKind, EncodeError};

/// Rounds `n` up to the next multiple of 8.
#[inline]
pub(crate) const fn pad8(n: usize) -> usize {
    (n + 7) & !7
}

/// Wire size of a text field holding `s`: the bytes, a NUL, zero padding to 8.
#[inline]
pub(crate) const fn text_len(s: &str) -> usize {
    pad8(s.len() + 1)
}

/// Wire size of a blob field: u64 length, the bytes, padding to 8.
#[inline]
pub(crate) const fn blob_len(b: &[u8]) -> usize {
    8 + pad8(b.len())
}

/// Fails if a text to be encoded contains a NUL (the peer would truncate it there).
#[inline]
pub(crate) fn check_text(
    s: &str,
    message: &'static str,
    field: impl FnOnce() -> Cow<'static, str>,
) -> Result<(), EncodeError> {
    if has_nul(s.as_bytes()) {
        return Err(EncodeError::NulInText {
            message,
            field: field(),
        });
    }
    Ok(())
}

/// True if `b` holds a zero byte.
///
/// Texts in rows are mostly short, where `<[u8]>::contains` goes byte by byte; this looks at
/// whole words instead (overlapping the last one), and leaves long texts to `contains`, which
/// is word-at-a-time with aligned reads.
#[inline]
pub(crate) fn has_nul(b: &[u8]) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    // Exact for "some byte is zero" (the classic test can only misflag bytes *above* a zero).
    let zero = |x: u64| x.wrapping_sub(LO) & !x & HI != 0;
    if b.len() > 64 {
        return b.contains(&0);
    }
    match b.last_chunk::<8>() {
        Some(last) => {
            let (words, _) = b.as_chunks::<8>();
            words.iter().any(|w| zero(u64::from_le_bytes(*w))) || zero(u64::from_le_bytes(*last))
        }
        None => {
            // Fewer than 8 bytes: gather them into one word, padded with 0xFF (not zero).
            let mut w = [0xFFu8; 8];
            for (d, s) in w.iter_mut().zip(b) {
                *d = *s;
            }
            zero(u64::from_le_bytes(w))
        }
    }
}

/// Copies `src` to the start of `dst` (at least as long) with fixed-size moves only, so that
/// the short texts and blobs of rows do not each cost a `memcpy` call. Bytes of `dst` past
/// `src.len()` are left as they are.
#[inline(always)]
pub(crate) fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if n > 64 {
        dst[..n].copy_from_slice(src);
    } else if n >= 8 {
        let (words, _) = src.as_chunks::<8>();
        for (i, w) in words.iter().enumerate() {
            dst[i * 8..i * 8 + 8].copy_from_slice(w);
        }
        // The tail as one overlapping word.
        dst[n - 8..n].copy_from_slice(&src[n - 8..]);
    } else if n >= 4 {
        dst[..4].copy_from_slice(&src[..4]);
        dst[n - 4..n].copy_from_slice(&src[n - 4..]);
    } else if n > 0 {
        dst[0] = src[0];
        dst[n / 2] = src[n / 2];
        dst[n - 1] = src[n - 1];
    }
}

/// Writes a text field (the caller has checked it for NULs).
#[inline]
pub(crate) fn put_text(buf: &mut impl BufMut, s: &str) {
    let bytes = s.as_bytes();
    let len = text_len(s);
    // Short texts (the common case: names, small values) go out as one padded chunk.
    if len <= SMALL {
        let mut chunk = [0u8; SMALL];
        chunk[..bytes.len()].copy_from_slice(bytes);
        buf.put_slice(&chunk[..len]);
    } else {
        buf.put_slice(bytes);
        buf.put_bytes(0, len - bytes.len());
    }
}

/// Largest field written through a stack chunk.
const SMALL: usize = 64;

/// Writes a blob field with zero padding.
#[inline]
pub(crate) fn put_blob(buf: &mut impl BufMut, b: &[u8]) {
    let len = blob_len(b);
    if len <= SMALL {
        let mut chunk = [0u8; SMALL];
        chunk[..8].copy_from_slice(&(b.len() as u64).to_le_bytes());
        chunk[8..8 + b.len()].copy_from_slice(b);
        buf.put_slice(&chunk[..len]);
    } else {
        buf.put_u64_le(b.len() as u64);
        buf.put_slice(b);
        buf.put_bytes(0, pad8(b.len()) - b.len());
    }
}

/// A read position in one message body. Offsets in errors are relative to the body start.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    rest: &'a [u8],
    body_len: usize,
    message: &'static str,
}

type NomResult<'a, T> = IResult<&'a [u8], T, nom::error::Error<&'a [u8]>>;

impl<'a> Cursor<'a> {
    /// A cursor at the start of `body`, decoding the message named `message`.
    pub(crate) fn new(body: &'a [u8], message: &'static str) -> Self {
        Cursor {
            rest: body,
            body_len: body.len(),
            message,
        }
    }

    /// Name of the message being decoded.
    pub(crate) fn message(&self) -> &'static str {
        self.message
    }

    /// Offset of the next unread byte from the body start.
    #[inline]
    pub(crate) fn offset(&self) -> usize {
        self.body_len - self.rest.len()
    }

    /// Bytes not read yet.
    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// The unread bytes.
    #[inline]
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// Builds an error at the current offset.
    pub(crate) fn error(
        &self,
        field: impl Into<Cow<'static, str>>,
        kind: DecodeErrorKind,
    ) -> DecodeError {
        DecodeError::new(self.message, field, self.offset(), kind)
    }

    fn truncated(&self, field: &'static str, needed: u64) -> DecodeError {
        self.error(
            field,
            DecodeErrorKind::Truncated {
                needed,
                available: self.rest.len(),
            },
        )
    }

    /// Reads a fixed-size chunk.
    #[inline]
    fn chunk<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        match self.rest.split_first_chunk::<N>() {
            Some((chunk, rest)) => {
                self.rest = rest;
                Ok(*chunk)
            }
            None => Err(self.truncated(field, N as u64)),
        }
    }

    /// Reads one byte.
    #[inline]
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        self.chunk::<1>(field).map(|[b]| b)
    }

    /// Reads a little-endian u32.
    #[inline]
    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.chunk(field).map(u32::from_le_bytes)
    }

    /// Reads a little-endian u64.
    #[inline]
    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        self.chunk(field).map(u64::from_le_bytes)
    }

    /// Reads `n` raw bytes.
    #[inline]
    pub(crate) fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], DecodeError> {
        match self.rest.split_at_checked(n) {
            Some((taken, rest)) => {
                self.rest = rest;
                Ok(taken)
            }
            None => Err(self.truncated(field, n as u64)),
        }
    }

    /// Reads a length that must fit in the remaining bytes, as raw bytes; used for sizes read
    /// from the wire so that no length can exceed what the input holds.
    #[inline]
    pub(crate) fn take_u64_len(
        &mut self,
        field: &'static str,
        len: u64,
    ) -> Result<&'a [u8], DecodeError> {
        if len > self.rest.len() as u64 {
            return Err(self.truncated(field, len));
        }
        // Fits in usize: it is at most `rest.len()`.
        self.take(field, len as usize)
    }

    /// Skips `n` padding bytes without looking at them.
    #[inline]
    pub(crate) fn skip(&mut self, field: &'static str, n: usize) -> Result<(), DecodeError> {
        self.take(field, n).map(|_| ())
    }

    /// Reads a NUL-terminated text padded to 8 bytes (padding content ignored).
    #[inline]
    pub(crate) fn text(&mut self, field: &'static str) -> Result<&'a str, DecodeError> {
        let start = self.offset();
        let found: NomResult<'a, &'a [u8]> = take_until(&b"\0"[..]).parse(self.rest);
        let bytes = match found {
            Ok((_, bytes)) => bytes,
            Err(_) => return Err(self.error(field, DecodeErrorKind::MissingNul)),
        };
        let total = text_len_raw(bytes.len());
        if total > self.rest.len() {
            return Err(self.truncated(field, total as u64));
        }
        let s = std::str::from_utf8(bytes).map_err(|_| {
            DecodeError::new(self.message, field, start, DecodeErrorKind::InvalidUtf8)
        })?;
        self.rest = &self.rest[total..];
        Ok(s)
    }

    /// Reads a blob: u64 length, bytes, padding to 8 (padding content ignored).
    #[inline]
    pub(crate) fn blob(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let start = self.offset();
        let len = self.u64(field)?;
        let padded = (len.saturating_add(7)) & !7;
        if padded > self.rest.len() as u64 {
            return Err(DecodeError::new(
                self.message,
                field,
                start,
                DecodeErrorKind::Truncated {
                    needed: padded.saturating_add(8),
                    available: self.rest.len() + 8,
                },
            ));
        }
        // `padded <= rest.len()`, so both fit in usize.
        let (bytes, rest) = self.rest.split_at(padded as usize);
        self.rest = rest;
        Ok(&bytes[..len as usize])
    }

    /// Fails unless every byte was consumed.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.error("end", DecodeErrorKind::TrailingBytes(self.rest.len())))
        }
    }

    /// Checks that `count` items of at least `min_size` bytes each can fit in what is left,
    /// so that a count read from the wire never drives an allocation larger than the input.
    pub(crate) fn check_count(
        &self,
        field: &'static str,
        count: u64,
        min_size: usize,
    ) -> Result<usize, DecodeError> {
        let available = self.rest.len();
        if count.saturating_mul(min_size as u64) > available as u64 {
            return Err(self.error(field, DecodeErrorKind::CountTooLarge { count, available }));
        }
        // count * min_size <= available, so count fits in usize (min_size >= 1).
        Ok(count as usize)
    }
}

/// Wire size of a text with `len` bytes before its NUL.
#[inline]
const fn text_len_raw(len: usize) -> usize {
    pad8(len + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_padding_is_ignored_and_written_as_zero() {
        let body = b"abc\0\xaa\xbb\xcc\xdd";
        let mut c = Cursor::new(body, "T");
        assert_eq!(c.text("t").unwrap(), "abc");
        assert_eq!(c.remaining(), 0);
        let mut out = Vec::new();
        put_text(&mut out, "abc");
        assert_eq!(out, b"abc\0\0\0\0\0");
    }

    #[test]
    fn text_of_eight_bytes_takes_two_words() {
        let mut out = Vec::new();
        put_text(&mut out, "abcdefgh");
        assert_eq!(out.len(), 16);
        let mut c = Cursor::new(&out, "T");
        assert_eq!(c.text("t").unwrap(), "abcdefgh");
        assert!(c.finish().is_ok());
    }

    #[test]
    fn text_without_nul_is_an_error_with_offset() {
        let body = b"\0\0\0\0\0\0\0\0abcdefgh";
        let mut c = Cursor::new(body, "DUMP");
        c.u64("x").unwrap();
        let e = c.text("name").unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::MissingNul);
        assert_eq!(e.offset, 8);
        assert_eq!(e.field, "name");
    }

    #[test]
    fn text_with_padding_past_the_end_is_truncated() {
        let mut c = Cursor::new(b"ab\0", "T");
        assert!(matches!(
            c.text("t").unwrap_err().kind,
            DecodeErrorKind::Truncated { .. }
        ));
    }

    #[test]
    fn huge_blob_length_is_truncated_not_allocated() {
        let mut body = Vec::new();
        body.extend_from_slice(&u64::MAX.to_le_bytes());
        body.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let mut c = Cursor::new(&body, "B");
        assert!(matches!(
            c.blob("b").unwrap_err().kind,
            DecodeErrorKind::Truncated { .. }
        ));
    }

    #[test]
    fn count_check_rejects_impossible_counts() {
        let c = Cursor::new(&[0u8; 16], "S");
        assert_eq!(c.check_count("n", 2, 8).unwrap(), 2);
        assert!(c.check_count("n", 1 << 60, 8).is_err());
        assert!(c.check_count("n", u64::MAX, 16).is_err());
    }

    #[test]
    fn blob_padding_is_ignored() {
        let mut body = Vec::new();
        body.extend_from_slice(&3u64.to_le_bytes());
        body.extend_from_slice(&[1, 2, 3, 0xff, 0xff, 0xff, 0xff, 0xff]);
        let mut c = Cursor::new(&body, "B");
        assert_eq!(c.blob("b").unwrap(), &[1, 2, 3]);
        let mut out = Vec::new();
        put_blob(&mut out, &[1, 2, 3]);
        assert_eq!(&out[..11], &body[..11]);
        assert_eq!(&out[11..], &[0; 5]);
    }
}
