//! Parameter tuples (request schema 0: u8 count, schema 1: u32 count) and row tuples
//! (4-bit type nibbles), §3.2-§3.4 of the protocol reference.

use bytes::BufMut;

use crate::error::EncodeError;
use crate::primitive::{check_text, copy_short, has_nul, pad8};
use crate::value::{Value, ValueRef, ValueType, params_header_len};

/// Largest parameter count the schema-0 (u8 count) tuple can carry.
pub const MAX_SCHEMA0_PARAMS: usize = 255;

/// Which parameter-tuple layout a request should use on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ParamsSchema {
    /// Schema 0 (u8 count) when there are at most 255 parameters, schema 1 (u32 count)
    /// otherwise. This is what decoding a schema-0 request yields.
    #[default]
    Auto,
    /// Always schema 1 (u32 count), as sent by newer clients; decoding a schema-1 request
    /// yields this, so re-encoding it is byte-exact.
    Wide,
}

/// The parameter tuple of EXEC, QUERY, EXEC_SQL and QUERY_SQL.
///
/// Invariant kept by the codec: `values == None` means the tuple is **absent** from the body
/// (zero parameters, the form go-dqlite sends); `Some(vec![])` is an explicit header with
/// count 0. Both mean "no parameters" to a server but encode differently, so they are kept
/// apart for byte-exact re-encoding. Values must not be [`Value::UnixTime`] (servers reject
/// type 9 in parameters: encoding fails and decoding reports an error).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Params {
    /// The values, or `None` when the tuple is omitted.
    pub values: Option<Vec<Value>>,
    /// The wire layout.
    pub schema: ParamsSchema,
}

impl Params {
    /// No parameters, tuple omitted (the usual encoding of zero parameters).
    pub fn omitted() -> Self {
        Params::default()
    }

    /// The given values; an empty list omits the tuple, like go-dqlite.
    pub fn new(values: Vec<Value>) -> Self {
        if values.is_empty() {
            Params::omitted()
        } else {
            Params::explicit(values)
        }
    }

    /// The given values with an explicit tuple header even when empty.
    pub fn explicit(values: Vec<Value>) -> Self {
        Params {
            values: Some(values),
            schema: ParamsSchema::Auto,
        }
    }

    /// The same parameters, always encoded with schema 1 (u32 count).
    pub fn wide(mut self) -> Self {
        self.schema = ParamsSchema::Wide;
        self
    }

    /// The values (empty when omitted).
    pub fn values(&self) -> &[Value] {
        self.values.as_deref().unwrap_or(&[])
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.values().len()
    }

    /// True when there are no values (omitted or explicitly empty).
    pub fn is_empty(&self) -> bool {
        self.values().is_empty()
    }

    /// True when the tuple is absent from the body.
    pub fn is_omitted(&self) -> bool {
        self.values.is_none()
    }

    /// The header schema byte these parameters are sent with: 1 if [`ParamsSchema::Wide`] or
    /// more than 255 values, else 0.
    pub fn header_schema(&self) -> u8 {
        if self.schema == ParamsSchema::Wide || self.len() > MAX_SCHEMA0_PARAMS {
            1
        } else {
            0
        }
    }

    /// Checks encodability and returns the encoded size.
    pub(crate) fn encoded_len(&self, message: &'static str) -> Result<usize, EncodeError> {
        let Some(values) = &self.values else {
            return Ok(0);
        };
        let count_size = if self.header_schema() == 1 { 4 } else { 1 };
        let mut len = count_size + params_header_len(count_size, values.len());
        for (index, v) in values.iter().enumerate() {
            let v = v.as_ref();
            match v {
                ValueRef::UnixTime(_) => {
                    return Err(EncodeError::UnixTimeParam { message, index });
                }
                ValueRef::Text(s) | ValueRef::Iso8601(s) => {
                    check_text(s, message, || format!("params[{index}]").into())?;
                }
                _ => {}
            }
            len += v.encoded_len();
        }
        Ok(len)
    }

    /// Writes the tuple (after [`Params::encoded_len`] succeeded).
    pub(crate) fn put(&self, buf: &mut impl BufMut) {
        let Some(values) = &self.values else {
            return;
        };
        let count_size = if self.header_schema() == 1 {
            // The count fits: a Vec cannot hold more than u32::MAX values that each take at
            // least 8 bytes within a body whose word count is a u32 (checked by the caller).
            buf.put_u32_le(values.len() as u32);
            4
        } else {
            buf.put_u8(values.len() as u8);
            1
        };
        for v in values {
            buf.put_u8(v.value_type().code());
        }
        buf.put_bytes(
            0,
            params_header_len(count_size, values.len()) - values.len(),
        );
        for v in values {
            v.as_ref().put(buf);
        }
    }
}

impl From<Vec<Value>> for Params {
    fn from(values: Vec<Value>) -> Self {
        Params::new(values)
    }
}

/// Anything that can be viewed as a [`ValueRef`]: lets row encoders take `&[Value]` or
/// `&[ValueRef]` alike.
pub trait AsValueRef {
    /// Borrows the value.
    fn as_value_ref(&self) -> ValueRef<'_>;
}

impl AsValueRef for Value {
    #[inline]
    fn as_value_ref(&self) -> ValueRef<'_> {
        self.as_ref()
    }
}

impl AsValueRef for ValueRef<'_> {
    #[inline]
    fn as_value_ref(&self) -> ValueRef<'_> {
        *self
    }
}

/// Size of the nibble header of a row with `n` columns, padding included.
#[inline]
pub(crate) const fn row_header_len(n: usize) -> usize {
    pad8(n.div_ceil(2))
}

/// Checks a row for encodability and returns its encoded size.
#[inline]
pub(crate) fn row_encoded_len<V: AsValueRef>(
    row: &[V],
    message: &'static str,
    row_index: usize,
) -> Result<usize, EncodeError> {
    let mut len = row_header_len(row.len());
    for v in row {
        len += match v.as_value_ref() {
            ValueRef::Text(s) | ValueRef::Iso8601(s) => {
                if has_nul(s.as_bytes()) {
                    return Err(nul_in_row(row, message, row_index));
                }
                pad8(s.len() + 1)
            }
            ValueRef::Blob(b) => 8 + pad8(b.len()),
            _ => 8,
        };
    }
    Ok(len)
}

/// The error for a row holding a text with a NUL, naming the first such column (kept out of
/// the hot loop of [`row_encoded_len`]).
#[cold]
#[inline(never)]
fn nul_in_row<V: AsValueRef>(row: &[V], message: &'static str, row_index: usize) -> EncodeError {
    let c = row
        .iter()
        .position(|v| {
            v.as_value_ref()
                .text()
                .is_some_and(|s| has_nul(s.as_bytes()))
        })
        .unwrap_or_default();
    EncodeError::NulInText {
        message,
        field: format!("rows[{row_index}][{c}]").into(),
    }
}

/// Encoded size of a row already checked by [`row_encoded_len`].
#[inline]
fn row_len<V: AsValueRef>(row: &[V]) -> usize {
    row_header_len(row.len())
        + row
            .iter()
            .map(|v| v.as_value_ref().encoded_len())
            .sum::<usize>()
}

/// Size of the zeroed block [`put_rows`] assembles rows in before handing them to the buffer.
const ROWS_BLOCK: usize = 4096;

/// Writes row tuples (each checked by [`row_encoded_len`]) to `buf`.
///
/// Rows are laid out with [`write_row`] in a zeroed block on the stack, which goes to `buf`
/// in one `put_slice` whenever the next row does not fit: a generic [`BufMut`] then costs one
/// capacity check per block instead of one per field, and padding needs no writes at all. A
/// row larger than the block gets a zeroed heap buffer of its own.
pub(crate) fn put_rows<R: AsRef<[V]>, V: AsValueRef>(buf: &mut impl BufMut, rows: &[R]) {
    let mut block = [0u8; ROWS_BLOCK];
    let mut used = 0;
    for row in rows {
        let row = row.as_ref();
        let len = row_len(row);
        if used + len > ROWS_BLOCK {
            buf.put_slice(&block[..used]);
            block[..used].fill(0);
            used = 0;
            if len > ROWS_BLOCK {
                let mut big = vec![0u8; len];
                write_row(&mut big, row);
                buf.put_slice(&big);
                continue;
            }
        }
        write_row(&mut block[used..used + len], row);
        used += len;
    }
    buf.put_slice(&block[..used]);
}

/// Writes one row tuple (after [`row_encoded_len`] succeeded).
#[cfg(test)]
pub(crate) fn put_row<V: AsValueRef>(buf: &mut impl BufMut, row: &[V]) {
    put_rows(buf, std::slice::from_ref(&row));
}

/// Writes a row tuple (after [`row_encoded_len`] succeeded and returned `dst.len()`) into
/// `dst`, which must be zeroed: padding is left as it is. Writing into a slice sized in
/// advance keeps the per-value cost to plain stores (short texts and blobs are copied with
/// fixed-size moves, the nibbles of up to 16 columns are stored as one word), which is what
/// makes the server's [`RowsEncoder`](crate::RowsEncoder) fast.
#[inline]
pub(crate) fn write_row<V: AsValueRef>(dst: &mut [u8], row: &[V]) {
    let header_len = row_header_len(row.len());
    let mut o = header_len;
    // Nibbles of the first 16 columns, stored as one word at the end.
    let mut nibbles = 0u64;
    for (i, v) in row.iter().enumerate() {
        // One match per value gives both the bytes and the type code.
        let ty = match v.as_value_ref() {
            ValueRef::Integer(x) => {
                o = write_word(dst, o, x as u64);
                ValueType::Integer
            }
            ValueRef::UnixTime(x) => {
                o = write_word(dst, o, x as u64);
                ValueType::UnixTime
            }
            ValueRef::Float(x) => {
                o = write_word(dst, o, x.to_bits());
                ValueType::Float
            }
            ValueRef::Boolean(x) => {
                o = write_word(dst, o, x);
                ValueType::Boolean
            }
            ValueRef::Null => {
                o += 8;
                ValueType::Null
            }
            ValueRef::Text(t) => {
                o = write_text(dst, o, t);
                ValueType::Text
            }
            ValueRef::Iso8601(t) => {
                o = write_text(dst, o, t);
                ValueType::Iso8601
            }
            ValueRef::Blob(b) => {
                o = write_word(dst, o, b.len() as u64);
                let end = o + pad8(b.len());
                copy_short(&mut dst[o..end], b);
                o = end;
                ValueType::Blob
            }
        };
        let code = ty.code();
        if i < 16 {
            nibbles |= u64::from(code) << (4 * i);
        } else {
            dst[i / 2] |= if i & 1 == 0 { code } else { code << 4 };
        }
    }
    if header_len > 0 {
        dst[..8].copy_from_slice(&nibbles.to_le_bytes());
    }
    debug_assert_eq!(o, dst.len(), "row size computed by row_encoded_len");
}

/// Stores a little-endian word at `o`; returns the offset after it.
#[inline(always)]
fn write_word(dst: &mut [u8], o: usize, word: u64) -> usize {
    dst[o..o + 8].copy_from_slice(&word.to_le_bytes());
    o + 8
}

/// Copies a text to `o` (NUL and padding are the zeros already there); returns the offset
/// after its padding.
#[inline(always)]
fn write_text(dst: &mut [u8], o: usize, t: &str) -> usize {
    let end = o + pad8(t.len() + 1);
    copy_short(&mut dst[o..end], t.as_bytes());
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{DecodeError, DecodeErrorKind};
    use crate::parse::{self, params};

    fn decode<'a, T: std::fmt::Debug>(
        body: &'a [u8],
        p: impl nom::Parser<&'a [u8], Output = T, Error = parse::Error>,
    ) -> DecodeError {
        parse::run("T", body, p).unwrap_err()
    }

    fn encode(p: &Params) -> Vec<u8> {
        let mut out = Vec::new();
        let len = p.encoded_len("T").unwrap();
        p.put(&mut out);
        assert_eq!(out.len(), len);
        out
    }

    #[test]
    fn worked_example_of_the_reference() {
        let p = Params::new(vec![Value::Integer(42), Value::Text("hi".into())]);
        let out = encode(&p);
        assert_eq!(
            out,
            [
                2, 1, 3, 0, 0, 0, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0, b'h', b'i', 0, 0, 0, 0, 0, 0
            ]
        );
        assert_eq!(params(0)(&out).unwrap().1, p);
    }

    #[test]
    fn header_sizes() {
        assert_eq!(params_header_len(1, 0), 7);
        assert_eq!(params_header_len(1, 7), 7);
        assert_eq!(params_header_len(1, 8), 15);
        assert_eq!(params_header_len(4, 4), 4);
        assert_eq!(params_header_len(4, 5), 12);
        assert_eq!(row_header_len(0), 0);
        assert_eq!(row_header_len(3), 8);
        assert_eq!(row_header_len(16), 8);
        assert_eq!(row_header_len(17), 16);
    }

    #[test]
    fn omitted_vs_empty() {
        let omitted = Params::omitted();
        assert!(encode(&omitted).is_empty());
        let empty = Params::explicit(vec![]);
        assert_eq!(encode(&empty), [0; 8]);
        assert_eq!(params(0)(&[]).unwrap().1, omitted);
        assert_eq!(params(0)(&[0; 8]).unwrap().1, empty);
        assert_eq!(params(1)(&[0; 8]).unwrap().1, empty.clone().wide());
    }

    #[test]
    fn schema1_chosen_above_255() {
        let p = Params::new(vec![Value::Null; 256]);
        assert_eq!(p.header_schema(), 1);
        let out = encode(&p);
        assert_eq!(&out[..4], &256u32.to_le_bytes());
        assert_eq!(params(1)(&out).unwrap().1, p.clone().wide());
        assert_eq!(Params::new(vec![Value::Null; 255]).header_schema(), 0);
    }

    #[test]
    fn unixtime_param_is_rejected_both_ways() {
        let p = Params::new(vec![Value::Integer(1), Value::UnixTime(5)]);
        assert_eq!(
            p.encoded_len("EXEC"),
            Err(EncodeError::UnixTimeParam {
                message: "EXEC",
                index: 1
            })
        );
        let body = [1u8, 9, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0];
        let e = decode(&body, params(0));
        assert_eq!(e.kind, DecodeErrorKind::UnixTimeParam);
        assert_eq!(e.offset, 1);
    }

    #[test]
    fn huge_params32_count_is_rejected_without_allocating() {
        let mut body = vec![0xff, 0xff, 0xff, 0xff, 1, 1, 1, 1];
        body.extend_from_slice(&[0; 8]);
        let e = decode(&body, params(1));
        assert!(matches!(e.kind, DecodeErrorKind::CountTooLarge { .. }));
    }

    #[test]
    fn row_nibbles() {
        let row = [ValueRef::Integer(1), ValueRef::Text("x"), ValueRef::Null];
        let mut out = Vec::new();
        let len = row_encoded_len(&row, "ROWS", 0).unwrap();
        put_row(&mut out, &row);
        assert_eq!(out.len(), len);
        assert_eq!(&out[..8], &[0x31, 0x05, 0, 0, 0, 0, 0, 0]);
        let got = parse::row(3)(&out).unwrap().1;
        assert_eq!(got, row);
    }

    #[test]
    fn unused_nibble_is_ignored_on_decode_and_zeroed_on_encode() {
        // One column of INTEGER; the high nibble of the header byte is padding.
        let mut body = vec![0x31, 0xaa, 0, 0, 0, 0, 0, 0];
        body.extend_from_slice(&7u64.to_le_bytes());
        let got = parse::row(1)(&body).unwrap().1;
        assert_eq!(got, [ValueRef::Integer(7)]);
        let mut out = Vec::new();
        put_row(&mut out, &got);
        assert_eq!(&out[..8], &[0x01, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn wide_rows_use_a_heap_header() {
        let row = vec![Value::Integer(7); 300];
        let mut out = Vec::new();
        put_row(&mut out, &row);
        let got = parse::row(300)(&out).unwrap().1;
        assert_eq!(got.len(), 300);
        assert!(got.iter().all(|v| *v == ValueRef::Integer(7)));
    }
}
