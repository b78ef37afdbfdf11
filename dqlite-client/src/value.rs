//! SQL values as the client sees them, and their conversions from and to Rust types.

use std::fmt;

use crate::error::{Error, Result};

/// One SQL value, with every type the dqlite wire protocol has.
///
/// Parameters can be any variant except [`Value::UnixTime`] (servers refuse it in parameters;
/// the client sends it as an [`Value::Integer`] instead). Rows can hold all of them: a column
/// declared `DATETIME`/`DATE`/`TIMESTAMP` arrives as `UnixTime` (integer storage) or `Iso8601`
/// (text storage; NULL and `''` both arrive as an empty `Iso8601`), a `BOOLEAN` column as
/// `Boolean` (NULL arrives as `false`).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// 64-bit signed integer (type 1).
    Integer(i64),
    /// IEEE-754 double (type 2).
    Float(f64),
    /// UTF-8 text (type 3). Servers truncate text at the first NUL: use a blob for binary data.
    Text(String),
    /// Bytes (type 4).
    Blob(Vec<u8>),
    /// SQL NULL (type 5).
    Null,
    /// Seconds since the Unix epoch, as stored (type 9, rows only).
    UnixTime(i64),
    /// An ISO-8601 date/time as text, e.g. `2024-01-02 03:04:05` (type 10).
    Iso8601(String),
    /// A boolean (type 11); the server stores it as integer 0 or 1.
    Boolean(bool),
}

impl Value {
    /// The name of the value's type, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Integer(_) => "INTEGER",
            Value::Float(_) => "FLOAT",
            Value::Text(_) => "TEXT",
            Value::Blob(_) => "BLOB",
            Value::Null => "NULL",
            Value::UnixTime(_) => "UNIXTIME",
            Value::Iso8601(_) => "ISO8601",
            Value::Boolean(_) => "BOOLEAN",
        }
    }

    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Convert to a Rust type; `column` only names the value in the error.
    pub fn get<T: FromValue>(&self, column: usize) -> Result<T> {
        T::from_value(self).ok_or(Error::Conversion {
            column,
            found: self.type_name(),
            wanted: std::any::type_name::<T>(),
        })
    }
}

/// Shown the way `sqlite3` prints values: NULL as empty text, blobs as `X'hex'`.
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
            Value::Boolean(b) => write!(f, "{}", u8::from(*b)),
        }
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value { Value::Integer(i64::from(v)) }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}
impl From<f32> for Value {
    fn from(v: f32) -> Value {
        Value::Float(f64::from(v))
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Boolean(v)
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_owned())
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Blob(v)
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Value {
        Value::Blob(v.to_vec())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}
impl From<()> for Value {
    fn from(_: ()) -> Value {
        Value::Null
    }
}
/// A time is sent as ISO-8601 text in UTC with nanoseconds (`2006-01-02 15:04:05.999999999+00:00`,
/// go-dqlite's layout), which SQLite's date functions understand.
impl From<std::time::SystemTime> for Value {
    fn from(t: std::time::SystemTime) -> Value {
        Value::Iso8601(format_iso8601(t))
    }
}

/// Format a time as go-dqlite does, in UTC.
pub fn format_iso8601(t: std::time::SystemTime) -> String {
    let (secs, nanos) = match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            let mut s = -(d.as_secs() as i64);
            let mut n = d.subsec_nanos();
            if n > 0 {
                s -= 1;
                n = 1_000_000_000 - n;
            }
            (s, n)
        }
    };
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    );
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push_str("+00:00");
    out
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Conversion from a row value to a Rust type (see [`Value::get`], [`crate::Row::get`]).
pub trait FromValue: Sized {
    /// `None` when the value cannot be represented as `Self`.
    fn from_value(v: &Value) -> Option<Self>;
}

impl FromValue for Value {
    fn from_value(v: &Value) -> Option<Value> {
        Some(v.clone())
    }
}
impl FromValue for i64 {
    fn from_value(v: &Value) -> Option<i64> {
        match v {
            Value::Integer(i) | Value::UnixTime(i) => Some(*i),
            Value::Boolean(b) => Some(i64::from(*b)),
            _ => None,
        }
    }
}
impl FromValue for i32 {
    fn from_value(v: &Value) -> Option<i32> {
        i64::from_value(v).and_then(|i| i32::try_from(i).ok())
    }
}
impl FromValue for u64 {
    fn from_value(v: &Value) -> Option<u64> {
        i64::from_value(v).and_then(|i| u64::try_from(i).ok())
    }
}
impl FromValue for f64 {
    fn from_value(v: &Value) -> Option<f64> {
        match v {
            Value::Float(x) => Some(*x),
            Value::Integer(i) => Some(*i as f64),
            _ => None,
        }
    }
}
impl FromValue for bool {
    fn from_value(v: &Value) -> Option<bool> {
        match v {
            Value::Boolean(b) => Some(*b),
            Value::Integer(i) => Some(*i != 0),
            _ => None,
        }
    }
}
impl FromValue for String {
    fn from_value(v: &Value) -> Option<String> {
        match v {
            Value::Text(s) | Value::Iso8601(s) => Some(s.clone()),
            _ => None,
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> Option<Vec<u8>> {
        match v {
            Value::Blob(b) => Some(b.clone()),
            Value::Text(s) => Some(s.as_bytes().to_vec()),
            _ => None,
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Option<Option<T>> {
        match v {
            Value::Null => Some(None),
            // An empty ISO-8601 text is how servers send NULL in a DATETIME column.
            Value::Iso8601(s) if s.is_empty() => Some(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// Parameters for a statement: anything that turns into a list of [`Value`]s.
///
/// Implemented for slices and arrays of values, `Vec<Value>`, `()` (no parameters) and tuples
/// of up to 8 elements of types convertible into [`Value`]. Use the [`crate::params!`] macro for
/// mixed types of any count.
pub trait Params {
    /// The values, in placeholder order.
    fn into_values(self) -> Vec<Value>;
}

impl Params for () {
    fn into_values(self) -> Vec<Value> {
        Vec::new()
    }
}
impl Params for Vec<Value> {
    fn into_values(self) -> Vec<Value> {
        self
    }
}
impl Params for &[Value] {
    fn into_values(self) -> Vec<Value> {
        self.to_vec()
    }
}
impl<const N: usize> Params for [Value; N] {
    fn into_values(self) -> Vec<Value> {
        self.into()
    }
}
impl<const N: usize> Params for &[Value; N] {
    fn into_values(self) -> Vec<Value> {
        self.to_vec()
    }
}

macro_rules! params_tuple {
    ($($n:ident),+) => {
        impl<$($n: Into<Value>),+> Params for ($($n,)+) {
            #[allow(non_snake_case)]
            fn into_values(self) -> Vec<Value> {
                let ($($n,)+) = self;
                vec![$($n.into()),+]
            }
        }
    };
}
params_tuple!(A);
params_tuple!(A, B);
params_tuple!(A, B, C);
params_tuple!(A, B, C, D);
params_tuple!(A, B, C, D, E);
params_tuple!(A, B, C, D, E, F);
params_tuple!(A, B, C, D, E, F, G);
params_tuple!(A, B, C, D, E, F, G, H);

/// Build a `Vec<Value>` of parameters from expressions of mixed types.
///
/// ```
/// use dqlite_client::{params, Value};
/// let p = params![1, "two", 3.0, None::<i64>, true];
/// assert_eq!(p[1], Value::Text("two".into()));
/// assert_eq!(p[3], Value::Null);
/// ```
#[macro_export]
macro_rules! params {
    () => { ::std::vec::Vec::<$crate::Value>::new() };
    ($($v:expr),+ $(,)?) => { ::std::vec![$($crate::Value::from($v)),+] };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn conversions_both_ways() {
        assert_eq!(Value::from(7u8), Value::Integer(7));
        assert_eq!(Value::from(Some("x")), Value::Text("x".into()));
        assert_eq!(Value::from(None::<i64>), Value::Null);
        assert_eq!(Value::from(&b"ab"[..]), Value::Blob(b"ab".to_vec()));
        assert_eq!(Value::Integer(5).get::<i64>(0).unwrap(), 5);
        assert_eq!(Value::UnixTime(-5).get::<i64>(0).unwrap(), -5);
        assert!(Value::Integer(1).get::<bool>(0).unwrap());
        assert_eq!(Value::Null.get::<Option<String>>(0).unwrap(), None);
        assert_eq!(
            Value::Iso8601(String::new())
                .get::<Option<String>>(0)
                .unwrap(),
            None
        );
        assert_eq!(Value::Integer(-1).get::<u64>(0).ok(), None);
        let e = Value::Text("x".into()).get::<i64>(3).unwrap_err();
        assert!(e.to_string().contains("column 3"), "{e}");
        assert_eq!((1, "a", 2.5, false).into_values().len(), 4);
        assert_eq!(crate::params![1, "a"].len(), 2);
    }

    #[test]
    fn display_like_sqlite3() {
        assert_eq!(Value::Blob(vec![0xde, 0xad]).to_string(), "X'DEAD'");
        assert_eq!(Value::Null.to_string(), "");
        assert_eq!(Value::Float(1.0).to_string(), "1.0");
        assert_eq!(Value::Boolean(true).to_string(), "1");
    }

    #[test]
    fn iso8601_format() {
        assert_eq!(format_iso8601(UNIX_EPOCH), "1970-01-01 00:00:00+00:00");
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 500_000_000);
        assert_eq!(format_iso8601(t), "2023-11-14 22:13:20.5+00:00");
        let t = UNIX_EPOCH - Duration::from_secs(86_400 + 1);
        assert_eq!(format_iso8601(t), "1969-12-30 23:59:59+00:00");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // leap day 2000
        assert_eq!(format_iso8601(t), "2000-02-29 00:00:00+00:00");
    }
}
