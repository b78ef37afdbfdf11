//! Field parsers (§2 of the protocol reference): little-endian integers, NUL-terminated padded
//! text, length-prefixed padded blobs, padding, counts and the end of a body.
//!
//! Padding content is never checked (C servers leave stale bytes in blob padding). Fixed-size
//! fields are plain slice splits (they are the hot path of ROWS); texts are found with nom's
//! `take_until`, which uses `memchr`.

use nom::Parser;
use nom::bytes::complete::take_until;

use super::error::{IResult, fail, fail_at, truncated};
use crate::error::DecodeErrorKind;
use crate::primitive::pad8;

/// Reads `N` bytes.
#[inline(always)]
fn chunk<'a, const N: usize>(input: &'a [u8], field: &'static str) -> IResult<'a, [u8; N]> {
    match input.split_first_chunk::<N>() {
        Some((chunk, rest)) => Ok((rest, *chunk)),
        None => Err(truncated(input, field, N as u64)),
    }
}

/// One byte.
#[inline]
pub fn u8<'a>(field: &'static str) -> impl Fn(&'a [u8]) -> IResult<'a, u8> {
    move |input| chunk::<1>(input, field).map(|(rest, [b])| (rest, b))
}

/// A little-endian u32.
#[inline]
pub fn u32<'a>(field: &'static str) -> impl Fn(&'a [u8]) -> IResult<'a, u32> {
    move |input| chunk(input, field).map(|(rest, b)| (rest, u32::from_le_bytes(b)))
}

/// A little-endian u64 (one word).
#[inline]
pub fn u64<'a>(field: &'static str) -> impl Fn(&'a [u8]) -> IResult<'a, u64> {
    move |input| chunk(input, field).map(|(rest, b)| (rest, u64::from_le_bytes(b)))
}

/// A little-endian i64 (one word).
#[inline]
pub fn i64<'a>(field: &'static str) -> impl Fn(&'a [u8]) -> IResult<'a, i64> {
    move |input| chunk(input, field).map(|(rest, b)| (rest, i64::from_le_bytes(b)))
}

/// `n` raw bytes.
#[inline]
pub fn take<'a>(field: &'static str, n: usize) -> impl Fn(&'a [u8]) -> IResult<'a, &'a [u8]> {
    move |input: &'a [u8]| match input.split_at_checked(n) {
        Some((taken, rest)) => Ok((rest, taken)),
        None => Err(truncated(input, field, n as u64)),
    }
}

/// `len` raw bytes, `len` read from the wire: never more than the input holds, whatever the
/// length says.
#[inline]
pub fn take_len<'a>(field: &'static str, len: u64) -> impl Fn(&'a [u8]) -> IResult<'a, &'a [u8]> {
    move |input: &'a [u8]| {
        if len > input.len() as u64 {
            return Err(truncated(input, field, len));
        }
        // Fits in usize: it is at most `input.len()`.
        take(field, len as usize)(input)
    }
}

/// `n` bytes of padding, skipped without looking at them.
#[inline]
pub fn padding<'a>(field: &'static str, n: usize) -> impl Fn(&'a [u8]) -> IResult<'a, ()> {
    move |input| take(field, n)(input).map(|(rest, _)| (rest, ()))
}

/// A NUL-terminated UTF-8 text padded to a multiple of 8 bytes (padding content ignored).
#[inline]
pub fn text<'a>(field: &'static str) -> impl Fn(&'a [u8]) -> IResult<'a, &'a str> {
    move |input: &'a [u8]| {
        let found: nom::IResult<&'a [u8], &'a [u8], ()> = take_until(&b"\0"[..]).parse(input);
        let Ok((_, bytes)) = found else {
            return Err(fail(input, field, DecodeErrorKind::MissingNul));
        };
        let total = pad8(bytes.len() + 1);
        if total > input.len() {
            return Err(truncated(input, field, total as u64));
        }
        let Ok(s) = std::str::from_utf8(bytes) else {
            return Err(fail(input, field, DecodeErrorKind::InvalidUtf8));
        };
        Ok((&input[total..], s))
    }
}

/// A blob: u64 length, the bytes, padding to 8 (padding content ignored).
#[inline]
pub fn blob<'a>(field: &'static str) -> impl Fn(&'a [u8]) -> IResult<'a, &'a [u8]> {
    move |input: &'a [u8]| {
        let (rest, len) = u64(field)(input)?;
        let padded = len.saturating_add(7) & !7;
        if padded > rest.len() as u64 {
            return Err(fail(
                input,
                field,
                DecodeErrorKind::Truncated {
                    needed: padded.saturating_add(8),
                    available: input.len(),
                },
            ));
        }
        // `padded <= rest.len()`, so both fit in usize.
        let (bytes, rest) = rest.split_at(padded as usize);
        Ok((rest, &bytes[..len as usize]))
    }
}

/// Checks that `count` items of at least `min_size` bytes each fit in `input` (what is left
/// after the count), so that a count read from the wire never drives an allocation larger
/// than the input; returns it as a `usize`.
#[inline]
pub fn check_count<'a>(
    input: &'a [u8],
    field: &'static str,
    count: u64,
    min_size: usize,
) -> IResult<'a, usize> {
    let available = input.len();
    if count.saturating_mul(min_size.max(1) as u64) > available as u64 {
        return Err(fail(
            input,
            field,
            DecodeErrorKind::CountTooLarge { count, available },
        ));
    }
    // count * min_size <= available, so count fits in usize.
    Ok((input, count as usize))
}

/// A u64 count of items that take at least `min_size` bytes each, checked against the bytes
/// left after it (see [`check_count`]).
#[inline]
pub fn count<'a>(field: &'static str, min_size: usize) -> impl Fn(&'a [u8]) -> IResult<'a, usize> {
    move |input| {
        let (rest, n) = u64(field)(input)?;
        check_count(rest, field, n, min_size)
    }
}

/// Succeeds only at the end of the input (no bytes left).
#[inline]
pub fn end(input: &[u8]) -> IResult<'_, ()> {
    if input.is_empty() {
        Ok((input, ()))
    } else {
        Err(fail_at(
            input.len(),
            "end",
            DecodeErrorKind::TrailingBytes(input.len()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitive::{put_blob, put_text};

    fn kind<T: std::fmt::Debug>(r: IResult<'_, T>) -> DecodeErrorKind {
        match r {
            Err(nom::Err::Error(e)) => e.kind().clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn text_padding_is_ignored_and_written_as_zero() {
        let body = b"abc\0\xaa\xbb\xcc\xdd";
        let (rest, s) = text("t")(body).unwrap();
        assert_eq!((rest.len(), s), (0, "abc"));
        let mut out = Vec::new();
        put_text(&mut out, "abc");
        assert_eq!(out, b"abc\0\0\0\0\0");
    }

    #[test]
    fn text_of_eight_bytes_takes_two_words() {
        let mut out = Vec::new();
        put_text(&mut out, "abcdefgh");
        assert_eq!(out.len(), 16);
        let (rest, s) = text("t")(&out).unwrap();
        assert_eq!(s, "abcdefgh");
        assert!(end(rest).is_ok());
    }

    #[test]
    fn text_without_nul_is_an_error_with_offset() {
        let body = b"\0\0\0\0\0\0\0\0abcdefgh";
        let e = (u64("x"), text("name")).parse(&body[..]).unwrap_err();
        let nom::Err::Error(e) = e else {
            panic!("{e:?}")
        };
        assert_eq!(e.kind(), &DecodeErrorKind::MissingNul);
        assert_eq!(e.offset_in(body), 8);
        assert_eq!(e.field(), "name");
    }

    #[test]
    fn text_with_padding_past_the_end_is_truncated() {
        assert!(matches!(
            kind(text("t")(b"ab\0")),
            DecodeErrorKind::Truncated { .. }
        ));
        assert_eq!(
            kind(text("t")(b"\xff\0")),
            DecodeErrorKind::Truncated {
                needed: 8,
                available: 2
            }
        );
        assert_eq!(
            kind(text("t")(b"\xff\0\0\0\0\0\0\0")),
            DecodeErrorKind::InvalidUtf8
        );
    }

    #[test]
    fn huge_blob_length_is_truncated_not_allocated() {
        let mut body = Vec::new();
        body.extend_from_slice(&u64::MAX.to_le_bytes());
        body.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(matches!(
            kind(blob("b")(&body)),
            DecodeErrorKind::Truncated { .. }
        ));
        assert!(matches!(
            kind(take_len("b", u64::MAX)(&body)),
            DecodeErrorKind::Truncated { .. }
        ));
    }

    #[test]
    fn count_check_rejects_impossible_counts() {
        let input = [0u8; 16];
        assert_eq!(check_count(&input, "n", 2, 8).unwrap().1, 2);
        assert!(check_count(&input, "n", 1 << 60, 8).is_err());
        assert!(check_count(&input, "n", u64::MAX, 16).is_err());
        assert!(check_count(&input, "n", 17, 0).is_err());
    }

    #[test]
    fn blob_padding_is_ignored() {
        let mut body = Vec::new();
        body.extend_from_slice(&3u64.to_le_bytes());
        body.extend_from_slice(&[1, 2, 3, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(blob("b")(&body).unwrap().1, &[1, 2, 3]);
        let mut out = Vec::new();
        put_blob(&mut out, &[1, 2, 3]);
        assert_eq!(&out[..11], &body[..11]);
        assert_eq!(&out[11..], &[0; 5]);
    }

    #[test]
    fn combines_with_nom() {
        use nom::multi::count as repeat;
        let mut body = Vec::new();
        for i in 0..3u64 {
            body.extend_from_slice(&i.to_le_bytes());
        }
        let (rest, v) = repeat(u64("n"), 3).parse(&body[..]).unwrap();
        assert_eq!((rest.len(), v), (0, vec![0, 1, 2]));
        let e = nom::error::context("ids", repeat(u64(""), 4))
            .parse(&body[..])
            .unwrap_err();
        let nom::Err::Error(e) = e else {
            panic!("{e:?}")
        };
        assert_eq!((e.field(), e.offset_in(&body)), ("ids", 24));
    }
}
