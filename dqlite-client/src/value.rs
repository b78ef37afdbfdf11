//! Reading values back into Rust types: [`FromValue`].
//!
//! The value type itself is [`dqlite_wire::Value`] (re-exported as [`crate::Value`]): the one
//! type from the wire to the user, with its conversions from Rust types (`Value::from`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::Value;

/// Why a value could not be converted to the requested Rust type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot convert {found} to {wanted}{}", .reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
pub struct FromValueError {
    /// The value's type (`"TEXT"`, `"INTEGER"`, ...).
    pub found: &'static str,
    /// The requested Rust type.
    pub wanted: &'static str,
    /// Why, when the type alone does not say it (out of range, unreadable date, ...).
    pub reason: Option<String>,
}

impl FromValueError {
    /// The value's type does not convert to `T` at all.
    pub fn mismatch<T>(value: &Value) -> FromValueError {
        FromValueError {
            found: value.type_name(),
            wanted: std::any::type_name::<T>(),
            reason: None,
        }
    }

    /// The value's type converts to `T`, but not this value.
    pub fn invalid<T>(value: &Value, reason: impl Into<String>) -> FromValueError {
        FromValueError {
            found: value.type_name(),
            wanted: std::any::type_name::<T>(),
            reason: Some(reason.into()),
        }
    }
}

/// Conversion from a row value to a Rust type (see [`crate::Row::get`]).
///
/// Implemented for every integer width (range-checked), `f32`/`f64`, `bool`, `String`,
/// `Vec<u8>`, [`Value`] itself, [`SystemTime`], `Option<T>` (NULL, and the empty ISO-8601
/// text C servers send for NULL in a DATETIME column, are `None`), and behind the features
/// `chrono`, `time`, `uuid` and `serde_json` for their types.
///
/// ```
/// use dqlite_client::{FromValue, Value};
/// assert_eq!(u8::from_value(&Value::Integer(7))?, 7);
/// assert!(u8::from_value(&Value::Integer(300)).is_err());
/// assert_eq!(bool::from_value(&Value::Boolean(1))?, true);
/// assert_eq!(Option::<String>::from_value(&Value::Null)?, None);
/// # Ok::<(), dqlite_client::FromValueError>(())
/// ```
pub trait FromValue: Sized {
    /// The value as `Self`, or why not.
    fn from_value(value: &Value) -> Result<Self, FromValueError>;
}

impl FromValue for Value {
    fn from_value(value: &Value) -> Result<Value, FromValueError> {
        Ok(value.clone())
    }
}

/// The integer a value holds: INTEGER, UNIXTIME, and BOOLEAN's stored integer.
fn integer(value: &Value) -> Option<i128> {
    match value {
        Value::Integer(i) | Value::UnixTime(i) => Some(i128::from(*i)),
        Value::Boolean(b) => Some(i128::from(*b)),
        _ => None,
    }
}

macro_rules! from_value_int {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(value: &Value) -> Result<$t, FromValueError> {
                let i = integer(value).ok_or_else(|| FromValueError::mismatch::<$t>(value))?;
                <$t>::try_from(i)
                    .map_err(|_| FromValueError::invalid::<$t>(value, format!("{i} is out of range")))
            }
        }
    )*};
}
from_value_int!(
    i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize
);

impl FromValue for f64 {
    fn from_value(value: &Value) -> Result<f64, FromValueError> {
        match value {
            Value::Float(x) => Ok(*x),
            Value::Integer(i) => Ok(*i as f64),
            v => Err(FromValueError::mismatch::<f64>(v)),
        }
    }
}

impl FromValue for f32 {
    /// Rounded to the nearest `f32`, as `as` does.
    fn from_value(value: &Value) -> Result<f32, FromValueError> {
        f64::from_value(value)
            .map(|x| x as f32)
            .map_err(|_| FromValueError::mismatch::<f32>(value))
    }
}

impl FromValue for bool {
    fn from_value(value: &Value) -> Result<bool, FromValueError> {
        match value {
            Value::Boolean(b) => Ok(*b != 0),
            Value::Integer(i) => Ok(*i != 0),
            v => Err(FromValueError::mismatch::<bool>(v)),
        }
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Result<String, FromValueError> {
        match value {
            Value::Text(s) | Value::Iso8601(s) => Ok(s.clone()),
            v => Err(FromValueError::mismatch::<String>(v)),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Result<Vec<u8>, FromValueError> {
        match value {
            Value::Blob(b) => Ok(b.clone()),
            Value::Text(s) => Ok(s.as_bytes().to_vec()),
            v => Err(FromValueError::mismatch::<Vec<u8>>(v)),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Result<Option<T>, FromValueError> {
        match value {
            Value::Null => Ok(None),
            // An empty ISO-8601 text is how C servers send NULL in a DATETIME column.
            Value::Iso8601(s) if s.is_empty() => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// Seconds since the Unix epoch as a time (negative: before it).
pub(crate) fn from_unix_seconds(secs: i64) -> Option<SystemTime> {
    let d = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        UNIX_EPOCH.checked_add(d)
    } else {
        UNIX_EPOCH.checked_sub(d)
    }
}

impl FromValue for SystemTime {
    /// From an ISO-8601 text in any layout go-dqlite reads (see
    /// [`dqlite_wire::time::parse_iso8601`]), or from seconds since the Unix epoch (UNIXTIME,
    /// INTEGER).
    fn from_value(value: &Value) -> Result<SystemTime, FromValueError> {
        let t = match value {
            Value::Iso8601(s) | Value::Text(s) => {
                dqlite_wire::time::parse_iso8601(s).ok_or_else(|| {
                    FromValueError::invalid::<SystemTime>(
                        value,
                        format!("{s:?} is not an ISO-8601 time"),
                    )
                })?
            }
            Value::UnixTime(i) | Value::Integer(i) => from_unix_seconds(*i).ok_or_else(|| {
                FromValueError::invalid::<SystemTime>(value, format!("{i} s is out of range"))
            })?,
            v => return Err(FromValueError::mismatch::<SystemTime>(v)),
        };
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<T: FromValue>(v: Value) -> Result<T, FromValueError> {
        T::from_value(&v)
    }

    #[test]
    fn every_integer_width_is_range_checked() {
        assert_eq!(get::<i8>(Value::Integer(-128)).unwrap(), -128);
        assert!(get::<i8>(Value::Integer(128)).is_err());
        assert_eq!(get::<u16>(Value::Integer(65_535)).unwrap(), 65_535);
        assert!(get::<u32>(Value::Integer(-1)).is_err());
        assert_eq!(get::<u64>(Value::UnixTime(5)).unwrap(), 5);
        assert_eq!(get::<usize>(Value::Boolean(7)).unwrap(), 7);
        assert_eq!(
            get::<i128>(Value::Integer(i64::MIN)).unwrap(),
            i128::from(i64::MIN)
        );
        assert_eq!(
            get::<u128>(Value::Integer(i64::MAX)).unwrap(),
            i64::MAX as u128
        );
        let e = get::<u8>(Value::Integer(300)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot convert INTEGER to u8: 300 is out of range"
        );
        assert!(get::<i64>(Value::Text("1".into())).is_err());
    }

    #[test]
    fn floats_bools_texts_blobs() {
        assert_eq!(get::<f32>(Value::Float(0.5)).unwrap(), 0.5);
        assert_eq!(get::<f64>(Value::Integer(2)).unwrap(), 2.0);
        assert!(get::<bool>(Value::Integer(2)).unwrap());
        assert!(!get::<bool>(Value::Boolean(0)).unwrap());
        assert_eq!(get::<String>(Value::Iso8601("x".into())).unwrap(), "x");
        assert_eq!(get::<Vec<u8>>(Value::Text("ab".into())).unwrap(), b"ab");
        assert_eq!(get::<Option<i64>>(Value::Null).unwrap(), None);
        assert_eq!(
            get::<Option<String>>(Value::Iso8601(String::new())).unwrap(),
            None
        );
        assert_eq!(get::<Option<i64>>(Value::Integer(3)).unwrap(), Some(3));
    }

    #[test]
    fn system_time_both_ways() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 250_000_000);
        assert_eq!(get::<SystemTime>(Value::from(t)).unwrap(), t);
        let whole = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            get::<SystemTime>(Value::UnixTime(1_700_000_000)).unwrap(),
            whole
        );
        assert_eq!(
            get::<SystemTime>(Value::Integer(-1)).unwrap(),
            UNIX_EPOCH - Duration::from_secs(1)
        );
        assert!(get::<SystemTime>(Value::Text("soon".into())).is_err());
        assert_eq!(
            get::<Option<SystemTime>>(Value::Iso8601(String::new())).unwrap(),
            None
        );
    }
}
