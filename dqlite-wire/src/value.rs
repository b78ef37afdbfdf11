//! Values carried in parameter and row tuples (§3.1 of the protocol reference).

use bytes::BufMut;

use crate::primitive::{blob_len, pad8, put_blob, put_text, text_len};

/// The type code of a value, as it appears in tuple headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ValueType {
    /// 1: signed 64-bit integer.
    Integer = 1,
    /// 2: IEEE-754 double.
    Float = 2,
    /// 3: UTF-8 text.
    Text = 3,
    /// 4: binary blob.
    Blob = 4,
    /// 5: NULL (one zero word).
    Null = 5,
    /// 9: integer from a DATETIME/DATE/TIMESTAMP column (rows only, never a parameter).
    UnixTime = 9,
    /// 10: ISO-8601 text (from a date column, or a time parameter).
    Iso8601 = 10,
    /// 11: boolean as a u64 (the raw stored integer in rows).
    Boolean = 11,
}

impl ValueType {
    /// The wire code.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The type with wire code `code`, if any.
    pub const fn from_code(code: u8) -> Option<ValueType> {
        Some(match code {
            1 => ValueType::Integer,
            2 => ValueType::Float,
            3 => ValueType::Text,
            4 => ValueType::Blob,
            5 => ValueType::Null,
            9 => ValueType::UnixTime,
            10 => ValueType::Iso8601,
            11 => ValueType::Boolean,
            _ => return None,
        })
    }
}

/// An owned value of a parameter or row tuple.
///
/// Equality compares floats **bit for bit** (so `NaN == NaN` with the same payload and
/// `0.0 != -0.0`), which is what a byte-exact codec needs.
///
/// Texts must not contain NUL bytes to be encodable (the wire format is NUL-terminated);
/// use [`Value::Blob`] for binary data.
#[derive(Debug, Clone)]
pub enum Value {
    /// Type 1.
    Integer(i64),
    /// Type 2.
    Float(f64),
    /// Type 3.
    Text(String),
    /// Type 4.
    Blob(Vec<u8>),
    /// Type 5.
    Null,
    /// Type 9: only in rows; encoding it as a parameter is an error.
    UnixTime(i64),
    /// Type 10.
    Iso8601(String),
    /// Type 11: the raw u64 (servers send the stored integer, e.g. 7).
    Boolean(u64),
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.as_ref() == other.as_ref()
    }
}

/// A value borrowed from a message body (zero-copy decoding) or from the caller (encoding
/// without building owned values). Equality is bitwise for floats, as for [`Value`].
#[derive(Debug, Clone, Copy)]
pub enum ValueRef<'a> {
    /// Type 1.
    Integer(i64),
    /// Type 2.
    Float(f64),
    /// Type 3.
    Text(&'a str),
    /// Type 4.
    Blob(&'a [u8]),
    /// Type 5.
    Null,
    /// Type 9.
    UnixTime(i64),
    /// Type 10.
    Iso8601(&'a str),
    /// Type 11.
    Boolean(u64),
}

impl PartialEq for ValueRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        use ValueRef::*;
        match (self, other) {
            (Integer(a), Integer(b)) | (UnixTime(a), UnixTime(b)) => a == b,
            (Float(a), Float(b)) => a.to_bits() == b.to_bits(),
            (Text(a), Text(b)) | (Iso8601(a), Iso8601(b)) => a == b,
            (Blob(a), Blob(b)) => a == b,
            (Null, Null) => true,
            (Boolean(a), Boolean(b)) => a == b,
            _ => false,
        }
    }
}

impl Value {
    /// The value's type code.
    pub fn value_type(&self) -> ValueType {
        self.as_ref().value_type()
    }

    /// Borrows the value.
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Integer(v) => ValueRef::Integer(*v),
            Value::Float(v) => ValueRef::Float(*v),
            Value::Text(v) => ValueRef::Text(v),
            Value::Blob(v) => ValueRef::Blob(v),
            Value::Null => ValueRef::Null,
            Value::UnixTime(v) => ValueRef::UnixTime(*v),
            Value::Iso8601(v) => ValueRef::Iso8601(v),
            Value::Boolean(v) => ValueRef::Boolean(*v),
        }
    }
}

impl ValueRef<'_> {
    /// The value's type code.
    pub fn value_type(&self) -> ValueType {
        match self {
            ValueRef::Integer(_) => ValueType::Integer,
            ValueRef::Float(_) => ValueType::Float,
            ValueRef::Text(_) => ValueType::Text,
            ValueRef::Blob(_) => ValueType::Blob,
            ValueRef::Null => ValueType::Null,
            ValueRef::UnixTime(_) => ValueType::UnixTime,
            ValueRef::Iso8601(_) => ValueType::Iso8601,
            ValueRef::Boolean(_) => ValueType::Boolean,
        }
    }

    /// Copies the value into an owned [`Value`].
    pub fn to_value(&self) -> Value {
        match *self {
            ValueRef::Integer(v) => Value::Integer(v),
            ValueRef::Float(v) => Value::Float(v),
            ValueRef::Text(v) => Value::Text(v.to_owned()),
            ValueRef::Blob(v) => Value::Blob(v.to_vec()),
            ValueRef::Null => Value::Null,
            ValueRef::UnixTime(v) => Value::UnixTime(v),
            ValueRef::Iso8601(v) => Value::Iso8601(v.to_owned()),
            ValueRef::Boolean(v) => Value::Boolean(v),
        }
    }

    /// Size of the encoded value (without its type code).
    #[inline]
    pub(crate) fn encoded_len(&self) -> usize {
        match self {
            ValueRef::Text(s) | ValueRef::Iso8601(s) => text_len(s),
            ValueRef::Blob(b) => blob_len(b),
            _ => 8,
        }
    }

    /// The text content if this is a TEXT or ISO8601 value (checked for NULs before encoding).
    #[inline]
    pub(crate) fn text(&self) -> Option<&str> {
        match self {
            ValueRef::Text(s) | ValueRef::Iso8601(s) => Some(s),
            _ => None,
        }
    }

    /// Writes the encoded value (the caller has checked texts for NULs).
    #[inline]
    pub(crate) fn put(&self, buf: &mut impl BufMut) {
        match *self {
            ValueRef::Integer(v) | ValueRef::UnixTime(v) => buf.put_i64_le(v),
            ValueRef::Float(v) => buf.put_u64_le(v.to_bits()),
            ValueRef::Text(s) | ValueRef::Iso8601(s) => put_text(buf, s),
            ValueRef::Blob(b) => put_blob(buf, b),
            ValueRef::Null => buf.put_u64_le(0),
            ValueRef::Boolean(v) => buf.put_u64_le(v),
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Integer(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Boolean(u64::from(v))
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Blob(v)
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Blob(v.to_vec())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// Size of a tuple header of `n` type bytes after a count of `count_size` bytes, padding
/// included but the count excluded.
#[inline]
pub(crate) const fn params_header_len(count_size: usize, n: usize) -> usize {
    pad8(count_size + n) - count_size
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in 0..=255u8 {
            if let Some(t) = ValueType::from_code(code) {
                assert_eq!(t.code(), code);
            }
        }
        assert_eq!(ValueType::from_code(9), Some(ValueType::UnixTime));
        assert_eq!(ValueType::from_code(6), None);
        assert_eq!(ValueType::from_code(0), None);
    }

    #[test]
    fn float_equality_is_bitwise() {
        assert_eq!(Value::Float(f64::NAN), Value::Float(f64::NAN));
        assert_ne!(Value::Float(0.0), Value::Float(-0.0));
        assert_ne!(Value::Integer(1), Value::Boolean(1));
        assert_ne!(Value::Text("a".into()), Value::Iso8601("a".into()));
    }

    #[test]
    fn conversions() {
        assert_eq!(Value::from(true), Value::Boolean(1));
        assert_eq!(Value::from(None::<i64>), Value::Null);
        assert_eq!(Value::from("x"), Value::Text("x".into()));
    }
}
