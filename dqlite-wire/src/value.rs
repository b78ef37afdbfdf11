//! Values carried in parameter and row tuples (§3.1 of the protocol reference).

use std::fmt;

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

    /// The protocol name, e.g. `"INTEGER"` or `"ISO8601"`.
    pub const fn name(self) -> &'static str {
        match self {
            ValueType::Integer => "INTEGER",
            ValueType::Float => "FLOAT",
            ValueType::Text => "TEXT",
            ValueType::Blob => "BLOB",
            ValueType::Null => "NULL",
            ValueType::UnixTime => "UNIXTIME",
            ValueType::Iso8601 => "ISO8601",
            ValueType::Boolean => "BOOLEAN",
        }
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

/// An owned value of a parameter or row tuple: one SQL value, with every type the protocol
/// has. It is also the value type of `dqlite-client` (one type from the wire to the user).
///
/// Parameters can be any variant except [`Value::UnixTime`] (servers refuse it in parameters).
/// Rows can hold all of them: a column declared `DATETIME`/`DATE`/`TIMESTAMP` arrives as
/// `UnixTime` (integer storage) or `Iso8601` (text storage; C servers send NULL and `''` both
/// as an empty `Iso8601`), a `BOOLEAN` column as `Boolean` with the stored integer (NULL as 0).
///
/// Equality compares floats **bit for bit** (so `NaN == NaN` with the same payload and
/// `0.0 != -0.0`), which is what a byte-exact codec needs.
///
/// Texts must not contain NUL bytes to be encodable (the wire format is NUL-terminated);
/// use [`Value::Blob`] for binary data.
///
/// ```
/// use dqlite_wire::Value;
/// assert_eq!(Value::from(7u8), Value::Integer(7));
/// assert_eq!(Value::from(Some("x")), Value::Text("x".into()));
/// assert_eq!(Value::from(None::<i64>), Value::Null);
/// assert_eq!(Value::from(true), Value::Boolean(1));
/// assert_eq!(Value::Blob(vec![0xde, 0xad]).to_string(), "X'DEAD'");
/// assert_eq!(Value::Integer(1).type_name(), "INTEGER");
/// ```
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

    /// The name of the value's type (`"INTEGER"`, `"TEXT"`, ...), for messages.
    pub fn type_name(&self) -> &'static str {
        self.value_type().name()
    }

    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
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

/// Shown the way `sqlite3` prints values: NULL as empty text, blobs as `X'hex'`, booleans as
/// the stored integer.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Integer(i) | Value::UnixTime(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Text(s) | Value::Iso8601(s) => f.write_str(s),
            Value::Blob(b) => {
                f.write_str("X'")?;
                for byte in b {
                    write!(f, "{byte:02X}")?;
                }
                f.write_str("'")
            }
            Value::Null => Ok(()),
            Value::Boolean(b) => write!(f, "{b}"),
        }
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::Integer(i64::from(v))
            }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::Float(f64::from(v))
    }
}
impl From<()> for Value {
    fn from(_: ()) -> Self {
        Value::Null
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}
impl<const N: usize> From<[u8; N]> for Value {
    fn from(v: [u8; N]) -> Self {
        Value::Blob(v.to_vec())
    }
}
impl From<std::borrow::Cow<'_, str>> for Value {
    fn from(v: std::borrow::Cow<'_, str>) -> Self {
        Value::Text(v.into_owned())
    }
}
/// A time is sent as ISO-8601 text in UTC with nanoseconds
/// (`2006-01-02 15:04:05.999999999+00:00`, go-dqlite's layout, see [`crate::time`]), which
/// SQLite's date functions understand.
impl From<std::time::SystemTime> for Value {
    fn from(t: std::time::SystemTime) -> Self {
        Value::Iso8601(crate::time::format_iso8601(t))
    }
}
impl From<ValueRef<'_>> for Value {
    fn from(v: ValueRef<'_>) -> Self {
        v.to_value()
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
    fn display_like_sqlite3() {
        assert_eq!(Value::Null.to_string(), "");
        assert_eq!(Value::Float(1.0).to_string(), "1.0");
        assert_eq!(Value::Boolean(7).to_string(), "7");
        assert_eq!(Value::UnixTime(-3).to_string(), "-3");
    }

    #[test]
    fn conversions() {
        assert_eq!(Value::from(-3i8), Value::Integer(-3));
        assert_eq!(Value::from(u32::MAX), Value::Integer(4_294_967_295));
        assert_eq!(Value::from(0.5f32), Value::Float(0.5));
        assert_eq!(Value::from(()), Value::Null);
        assert_eq!(Value::from([1u8, 2]), Value::Blob(vec![1, 2]));
        assert_eq!(
            Value::from(std::time::UNIX_EPOCH),
            Value::Iso8601("1970-01-01 00:00:00+00:00".into())
        );
        assert!(Value::Null.is_null() && !Value::Integer(0).is_null());
        assert_eq!(Value::Iso8601(String::new()).type_name(), "ISO8601");
        assert_eq!(Value::from(true), Value::Boolean(1));
        assert_eq!(Value::from(None::<i64>), Value::Null);
        assert_eq!(Value::from("x"), Value::Text("x".into()));
    }
}
