//! Primitive field encoders (§2 of the protocol reference): sizes and writers of NUL-terminated
//! padded text and length-prefixed padded blobs. Encoding always writes zero padding; the
//! matching parsers are in [`crate::parse`].

use std::borrow::Cow;

use bytes::BufMut;

use crate::error::EncodeError;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!((pad8(0), pad8(1), pad8(8), pad8(9)), (0, 8, 8, 16));
        assert_eq!(
            (text_len(""), text_len("abcdefg"), text_len("abcdefgh")),
            (8, 8, 16)
        );
        assert_eq!((blob_len(&[]), blob_len(&[1])), (8, 16));
        let mut out = Vec::new();
        put_blob(&mut out, &[7; 70]);
        assert_eq!(out.len(), blob_len(&[7; 70]));
        assert!(check_text("a\0b", "T", || "t".into()).is_err());
    }
}
