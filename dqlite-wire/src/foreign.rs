//! `Value::from` for the types of optional crates, each behind the feature of the crate's
//! name: dates and times as ISO-8601 text (go-dqlite's layout, with the value's zone offset;
//! none for a naive date-time), UUIDs as 16-byte blobs, JSON as its text.

#[cfg(any(feature = "chrono", feature = "time"))]
use crate::Value;

/// `YYYY-MM-DD HH:MM:SS[.fraction][±HH:MM]`, the fraction without trailing zeros.
#[cfg(any(feature = "chrono", feature = "time"))]
fn date_time_text(
    date: (i64, u32, u32),
    time: (u32, u32, u32),
    nanos: u32,
    offset: Option<i32>,
) -> String {
    let (y, mo, d) = date;
    let (h, mi, s) = time;
    let mut out = format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}");
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    if let Some(off) = offset {
        let sign = if off < 0 { '-' } else { '+' };
        let off = off.unsigned_abs();
        out.push_str(&format!("{sign}{:02}:{:02}", off / 3600, off % 3600 / 60));
    }
    out
}

#[cfg(feature = "chrono")]
mod chrono_impls {
    use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike};

    use super::{Value, date_time_text};

    fn naive_text(dt: &NaiveDateTime, offset: Option<i32>) -> String {
        date_time_text(
            (i64::from(dt.year()), dt.month(), dt.day()),
            (dt.hour(), dt.minute(), dt.second()),
            dt.nanosecond(),
            offset,
        )
    }

    /// ISO-8601 text in the value's own zone, with its offset.
    impl<Tz: TimeZone> From<DateTime<Tz>> for Value {
        fn from(t: DateTime<Tz>) -> Value {
            let offset = t.offset().fix().local_minus_utc();
            Value::Iso8601(naive_text(&t.naive_local(), Some(offset)))
        }
    }

    /// ISO-8601 text without a zone.
    impl From<NaiveDateTime> for Value {
        fn from(t: NaiveDateTime) -> Value {
            Value::Iso8601(naive_text(&t, None))
        }
    }

    /// ISO-8601 date text, `YYYY-MM-DD`.
    impl From<NaiveDate> for Value {
        fn from(d: NaiveDate) -> Value {
            Value::Iso8601(format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day()))
        }
    }
}

#[cfg(feature = "time")]
mod time_impls {
    use time::{Date, OffsetDateTime, PrimitiveDateTime};

    use super::{Value, date_time_text};

    fn parts(date: Date) -> (i64, u32, u32) {
        (
            i64::from(date.year()),
            u32::from(u8::from(date.month())),
            u32::from(date.day()),
        )
    }

    /// ISO-8601 text with the value's offset.
    impl From<OffsetDateTime> for Value {
        fn from(t: OffsetDateTime) -> Value {
            Value::Iso8601(date_time_text(
                parts(t.date()),
                (
                    u32::from(t.hour()),
                    u32::from(t.minute()),
                    u32::from(t.second()),
                ),
                t.nanosecond(),
                Some(t.offset().whole_seconds()),
            ))
        }
    }

    /// ISO-8601 text without a zone.
    impl From<PrimitiveDateTime> for Value {
        fn from(t: PrimitiveDateTime) -> Value {
            Value::Iso8601(date_time_text(
                parts(t.date()),
                (
                    u32::from(t.hour()),
                    u32::from(t.minute()),
                    u32::from(t.second()),
                ),
                t.nanosecond(),
                None,
            ))
        }
    }

    /// ISO-8601 date text, `YYYY-MM-DD`.
    impl From<Date> for Value {
        fn from(d: Date) -> Value {
            let (y, m, day) = parts(d);
            Value::Iso8601(format!("{y:04}-{m:02}-{day:02}"))
        }
    }
}

/// The 16 bytes of the UUID, as a blob.
#[cfg(feature = "uuid")]
impl From<uuid::Uuid> for crate::Value {
    fn from(u: uuid::Uuid) -> crate::Value {
        crate::Value::Blob(u.as_bytes().to_vec())
    }
}

/// The JSON text.
#[cfg(feature = "serde_json")]
impl From<serde_json::Value> for crate::Value {
    fn from(v: serde_json::Value) -> crate::Value {
        crate::Value::Text(v.to_string())
    }
}

#[cfg(test)]
mod tests {
    #[cfg(feature = "chrono")]
    #[test]
    fn chrono_values() {
        use chrono::{FixedOffset, NaiveDate, TimeZone, Utc};
        let t = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).single().unwrap();
        assert_eq!(
            crate::Value::from(t),
            crate::Value::Iso8601("2024-01-02 03:04:05+00:00".into())
        );
        let east = FixedOffset::east_opt(5400).unwrap();
        let t = east.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).single().unwrap();
        assert_eq!(
            crate::Value::from(t),
            crate::Value::Iso8601("2024-01-02 03:04:05+01:30".into())
        );
        let d = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        assert_eq!(
            crate::Value::from(d),
            crate::Value::Iso8601("2024-02-29".into())
        );
    }
}
