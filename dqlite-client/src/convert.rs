//! [`FromValue`](crate::FromValue) for the types of optional crates: `chrono`, `time`, `uuid`
//! and `serde_json` (each behind the feature of the same name; the matching `Value::from`
//! conversions for parameters are `dqlite-wire`'s, behind the same features).

#[cfg(any(feature = "chrono", feature = "time"))]
use dqlite_wire::time::{Timestamp, parse_iso8601_parts};

#[cfg(any(feature = "chrono", feature = "time"))]
use crate::{FromValueError, Value};

/// The instant and offset a value stands for: ISO-8601 text (any layout go-dqlite reads), or
/// seconds since the Unix epoch (UNIXTIME, INTEGER).
#[cfg(any(feature = "chrono", feature = "time"))]
fn timestamp<T>(value: &Value) -> Result<Timestamp, FromValueError> {
    match value {
        Value::Iso8601(s) | Value::Text(s) => parse_iso8601_parts(s).ok_or_else(|| {
            FromValueError::invalid::<T>(value, format!("{s:?} is not an ISO-8601 time"))
        }),
        Value::UnixTime(i) | Value::Integer(i) => Ok(Timestamp {
            seconds: *i,
            nanos: 0,
            offset: None,
        }),
        v => Err(FromValueError::mismatch::<T>(v)),
    }
}

#[cfg(feature = "chrono")]
mod chrono_impls {
    use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, Utc};

    use super::timestamp;
    use crate::{FromValue, FromValueError, Value};

    fn out_of_range<T>(value: &Value) -> FromValueError {
        FromValueError::invalid::<T>(value, "out of range")
    }

    impl FromValue for DateTime<Utc> {
        fn from_value(value: &Value) -> Result<Self, FromValueError> {
            let t = timestamp::<Self>(value)?;
            DateTime::from_timestamp(t.seconds, t.nanos).ok_or_else(|| out_of_range::<Self>(value))
        }
    }

    /// In the offset the text gave (UTC when none).
    impl FromValue for DateTime<FixedOffset> {
        fn from_value(value: &Value) -> Result<Self, FromValueError> {
            let t = timestamp::<Self>(value)?;
            let offset = FixedOffset::east_opt(t.offset.unwrap_or(0))
                .ok_or_else(|| out_of_range::<Self>(value))?;
            DateTime::from_timestamp(t.seconds, t.nanos)
                .map(|utc| utc.with_timezone(&offset))
                .ok_or_else(|| out_of_range::<Self>(value))
        }
    }

    /// The wall-clock time the text wrote (its offset, if any, dropped).
    impl FromValue for NaiveDateTime {
        fn from_value(value: &Value) -> Result<Self, FromValueError> {
            let t = timestamp::<Self>(value)?;
            let local = t.seconds + i64::from(t.offset.unwrap_or(0));
            DateTime::from_timestamp(local, t.nanos)
                .map(|d| d.naive_utc())
                .ok_or_else(|| out_of_range::<Self>(value))
        }
    }

    /// The date the text wrote.
    impl FromValue for NaiveDate {
        fn from_value(value: &Value) -> Result<Self, FromValueError> {
            NaiveDateTime::from_value(value).map(|t| t.date())
        }
    }
}

#[cfg(feature = "time")]
mod time_impls {
    use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

    use super::timestamp;
    use crate::{FromValue, FromValueError, Value};

    fn out_of_range<T>(value: &Value) -> FromValueError {
        FromValueError::invalid::<T>(value, "out of range")
    }

    /// In the offset the text gave (UTC when none).
    impl FromValue for OffsetDateTime {
        fn from_value(value: &Value) -> Result<Self, FromValueError> {
            let t = timestamp::<Self>(value)?;
            let nanos = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
            let utc = OffsetDateTime::from_unix_timestamp_nanos(nanos)
                .map_err(|_| out_of_range::<Self>(value))?;
            let offset = UtcOffset::from_whole_seconds(t.offset.unwrap_or(0))
                .map_err(|_| out_of_range::<Self>(value))?;
            Ok(utc.to_offset(offset))
        }
    }

    /// The wall-clock time the text wrote (its offset, if any, dropped).
    impl FromValue for PrimitiveDateTime {
        fn from_value(value: &Value) -> Result<Self, FromValueError> {
            let t = OffsetDateTime::from_value(value)?;
            let (y, m, d, h, mi, s) = dqlite_wire::time::civil(
                t.unix_timestamp() + i64::from(t.offset().whole_seconds()),
            );
            let date = Month::try_from(m as u8)
                .ok()
                .and_then(|m| Date::from_calendar_date(y as i32, m, d as u8).ok())
                .ok_or_else(|| out_of_range::<Self>(value))?;
            let time = Time::from_hms_nano(h as u8, mi as u8, s as u8, t.nanosecond())
                .map_err(|_| out_of_range::<Self>(value))?;
            Ok(PrimitiveDateTime::new(date, time))
        }
    }

    /// The date the text wrote.
    impl FromValue for Date {
        fn from_value(value: &Value) -> Result<Self, FromValueError> {
            PrimitiveDateTime::from_value(value).map(|t| t.date())
        }
    }
}

/// From the 16 bytes of a blob, or from the text of a UUID.
#[cfg(feature = "uuid")]
impl crate::FromValue for uuid::Uuid {
    fn from_value(value: &crate::Value) -> Result<Self, crate::FromValueError> {
        use crate::{FromValueError, Value};
        match value {
            Value::Blob(b) => uuid::Uuid::from_slice(b)
                .map_err(|e| FromValueError::invalid::<Self>(value, e.to_string())),
            Value::Text(s) => uuid::Uuid::parse_str(s)
                .map_err(|e| FromValueError::invalid::<Self>(value, e.to_string())),
            v => Err(FromValueError::mismatch::<Self>(v)),
        }
    }
}

/// From JSON text; numbers, booleans and NULL as the JSON value they are.
#[cfg(feature = "serde_json")]
impl crate::FromValue for serde_json::Value {
    fn from_value(value: &crate::Value) -> Result<Self, crate::FromValueError> {
        use crate::{FromValueError, Value};
        match value {
            Value::Text(s) => serde_json::from_str(s)
                .map_err(|e| FromValueError::invalid::<Self>(value, e.to_string())),
            Value::Integer(i) => Ok((*i).into()),
            Value::Float(x) => serde_json::Number::from_f64(*x)
                .map(serde_json::Value::Number)
                .ok_or_else(|| FromValueError::invalid::<Self>(value, "not a finite number")),
            Value::Boolean(b) => Ok(serde_json::Value::Bool(*b != 0)),
            Value::Null => Ok(serde_json::Value::Null),
            v => Err(FromValueError::mismatch::<Self>(v)),
        }
    }
}

#[cfg(test)]
mod tests {
    #[allow(unused_imports)]
    use crate::{FromValue, Value};

    #[cfg(feature = "chrono")]
    #[test]
    fn chrono_round_trips() {
        use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
        let t = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).single().unwrap()
            + chrono::Duration::nanoseconds(120);
        assert_eq!(DateTime::<Utc>::from_value(&Value::from(t)).unwrap(), t);
        let east = FixedOffset::east_opt(-7200).unwrap();
        let t = east
            .with_ymd_and_hms(2024, 6, 30, 23, 0, 0)
            .single()
            .unwrap();
        let back = DateTime::<FixedOffset>::from_value(&Value::from(t)).unwrap();
        assert_eq!((back, back.offset().local_minus_utc()), (t, -7200));
        assert_eq!(
            NaiveDateTime::from_value(&Value::from(t)).unwrap(),
            t.naive_local()
        );
        let d = NaiveDate::from_ymd_opt(1999, 12, 31).unwrap();
        assert_eq!(NaiveDate::from_value(&Value::from(d)).unwrap(), d);
        assert_eq!(
            DateTime::<Utc>::from_value(&Value::UnixTime(86_400)).unwrap(),
            Utc.with_ymd_and_hms(1970, 1, 2, 0, 0, 0).single().unwrap()
        );
        assert!(DateTime::<Utc>::from_value(&Value::Text("x".into())).is_err());
    }

    #[cfg(feature = "time")]
    #[test]
    fn time_round_trips() {
        use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};
        let date = Date::from_calendar_date(2024, Month::February, 29).unwrap();
        let naive = PrimitiveDateTime::new(date, Time::from_hms_nano(1, 2, 3, 4).unwrap());
        assert_eq!(
            PrimitiveDateTime::from_value(&Value::from(naive)).unwrap(),
            naive
        );
        let t = naive.assume_offset(UtcOffset::from_hms(5, 30, 0).unwrap());
        let back = OffsetDateTime::from_value(&Value::from(t)).unwrap();
        assert_eq!((back, back.offset()), (t, t.offset()));
        assert_eq!(Date::from_value(&Value::from(date)).unwrap(), date);
    }

    #[cfg(feature = "uuid")]
    #[test]
    fn uuid_round_trips() {
        let u = uuid::Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0);
        assert_eq!(uuid::Uuid::from_value(&Value::from(u)).unwrap(), u);
        assert_eq!(
            uuid::Uuid::from_value(&Value::Text(u.to_string())).unwrap(),
            u
        );
        assert!(uuid::Uuid::from_value(&Value::Blob(vec![1, 2])).is_err());
    }

    #[cfg(feature = "serde_json")]
    #[test]
    fn json_round_trips() {
        let j = serde_json::json!({"a": [1, 2.5, null, true], "b": "x"});
        assert_eq!(
            serde_json::Value::from_value(&Value::from(j.clone())).unwrap(),
            j
        );
        assert_eq!(
            serde_json::Value::from_value(&Value::Integer(3)).unwrap(),
            serde_json::json!(3)
        );
        assert!(serde_json::Value::from_value(&Value::Text("{".into())).is_err());
    }
}
