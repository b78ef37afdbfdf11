//! Times as ISO-8601 texts (value type 10), written and read the way go-dqlite does.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use dqlite_wire::time::{format_iso8601, parse_iso8601};
//!
//! let t = UNIX_EPOCH + Duration::new(1_700_000_000, 500_000_000);
//! assert_eq!(format_iso8601(t), "2023-11-14 22:13:20.5+00:00");
//! assert_eq!(parse_iso8601("2023-11-14T23:13:20.5+01:00"), Some(t));
//! assert_eq!(parse_iso8601("2023-11-14"), Some(UNIX_EPOCH + Duration::from_secs(1_699_920_000)));
//! assert_eq!(parse_iso8601("yesterday"), None);
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const NANOS: i128 = 1_000_000_000;

/// A time as go-dqlite sends it, in UTC with the fraction trimmed:
/// `2006-01-02 15:04:05.999999999+00:00`. SQLite's date functions understand it.
pub fn format_iso8601(t: SystemTime) -> String {
    let (secs, nanos) = match t.duration_since(UNIX_EPOCH) {
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

/// A time read from ISO-8601 text: the instant, and the zone offset the text gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timestamp {
    /// Seconds since the Unix epoch (UTC; negative before it).
    pub seconds: i64,
    /// Nanoseconds within the second (`0..1_000_000_000`).
    pub nanos: u32,
    /// The offset from UTC in seconds (`+01:00` is 3600), `None` when the text had none
    /// (read as UTC).
    pub offset: Option<i32>,
}

impl Timestamp {
    /// The instant as a [`SystemTime`], if it can hold it.
    pub fn to_system_time(self) -> Option<SystemTime> {
        let total = i128::from(self.seconds) * NANOS + i128::from(self.nanos);
        let magnitude = Duration::new(
            (total.unsigned_abs() / NANOS as u128) as u64,
            (total.unsigned_abs() % NANOS as u128) as u32,
        );
        if total >= 0 {
            UNIX_EPOCH.checked_add(magnitude)
        } else {
            UNIX_EPOCH.checked_sub(magnitude)
        }
    }
}

/// Reads a time in any of the layouts go-dqlite accepts (see [`parse_iso8601_parts`]).
pub fn parse_iso8601(s: &str) -> Option<SystemTime> {
    parse_iso8601_parts(s)?.to_system_time()
}

/// Reads a time in any of the layouts go-dqlite accepts: `YYYY-MM-DD`, then optionally a
/// space or `T`, `HH:MM`, `:SS`, a fraction of up to 9 digits, and `Z` or `±HH:MM` (no zone
/// means UTC). `None` for anything else, or a date that does not exist.
pub fn parse_iso8601_parts(s: &str) -> Option<Timestamp> {
    let b = s.trim().as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = b.get(from..from + len)?;
        digits.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let year = num(0, 4)?;
    let month = num(5, 2)?;
    let day = num(8, 2)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut i = 10;
    let (mut hour, mut minute, mut second, mut nanos) = (0, 0, 0, 0i64);
    if matches!(b.get(i), Some(b' ' | b'T')) {
        hour = num(i + 1, 2)?;
        if b.get(i + 3) != Some(&b':') {
            return None;
        }
        minute = num(i + 4, 2)?;
        i += 6;
        if b.get(i) == Some(&b':') {
            second = num(i + 1, 2)?;
            i += 3;
            if b.get(i) == Some(&b'.') {
                i += 1;
                let start = i;
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                let digits = i - start;
                if digits == 0 || digits > 9 {
                    return None;
                }
                nanos = num(start, digits)? * 10i64.pow(9 - digits as u32);
            }
        }
        if hour > 23 || minute > 59 || second > 60 {
            return None;
        }
    }
    let offset = match b.get(i) {
        None => None,
        Some(b'Z') if i + 1 == b.len() => Some(0),
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b.get(i + 3) == Some(&b':') => {
            let off = num(i + 1, 2)? * 3600 + num(i + 4, 2)? * 60;
            Some(if sign == b'+' { off } else { -off })
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset.unwrap_or(0);
    Some(Timestamp {
        seconds,
        nanos: nanos as u32,
        offset: offset.map(|o| o as i32),
    })
}

/// The date and time of day of `seconds` since the Unix epoch: (year, month, day, hour,
/// minute, second).
pub fn civil(seconds: i64) -> (i64, u32, u32, u32, u32, u32) {
    let (y, m, d) = civil_from_days(seconds.div_euclid(86_400));
    let sod = seconds.rem_euclid(86_400) as u32;
    (y, m, d, sod / 3600, sod % 3600 / 60, sod % 60)
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// (year, month, day) of the proleptic Gregorian calendar to days since 1970-01-01 (Howard
/// Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format() {
        assert_eq!(format_iso8601(UNIX_EPOCH), "1970-01-01 00:00:00+00:00");
        let t = UNIX_EPOCH - Duration::from_secs(86_400 + 1);
        assert_eq!(format_iso8601(t), "1969-12-30 23:59:59+00:00");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // leap day 2000
        assert_eq!(format_iso8601(t), "2000-02-29 00:00:00+00:00");
    }

    #[test]
    fn parse_every_layout() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_000_000);
        for s in [
            "2023-11-14 22:13:20.123+00:00",
            "2023-11-14T22:13:20.123Z",
            "2023-11-14 22:13:20.123000000",
            "2023-11-14T22:13:20.123",
            "2023-11-14 23:43:20.123+01:30",
            "2023-11-14 20:13:20.123-02:00",
        ] {
            assert_eq!(parse_iso8601(s), Some(t), "{s}");
        }
        let min = UNIX_EPOCH + Duration::from_secs(1_699_999_980);
        assert_eq!(parse_iso8601("2023-11-14 22:13"), Some(min));
        assert_eq!(parse_iso8601("2023-11-14T22:13:00"), Some(min));
        for bad in [
            "",
            "2023-11-14 22",
            "2023-02-29",
            "2023-13-01",
            "2023-11-14 24:00",
            "2023-11-14x",
            "2023-11-14 22:13:20.",
            "2023-11-14 22:13:20.1234567891",
            "2023-11-14 22:13+1:00",
        ] {
            assert_eq!(parse_iso8601(bad), None, "{bad}");
        }
        let before = UNIX_EPOCH - Duration::from_millis(500);
        assert_eq!(parse_iso8601("1969-12-31 23:59:59.5"), Some(before));
    }

    #[test]
    fn format_then_parse() {
        for secs in [0i64, 1, -1, 951_782_400, -2_208_988_800, 4_102_444_800] {
            for nanos in [0u32, 1, 999_999_999] {
                let t = if secs >= 0 {
                    UNIX_EPOCH + Duration::new(secs as u64, nanos)
                } else {
                    UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::new(0, nanos)
                };
                assert_eq!(parse_iso8601(&format_iso8601(t)), Some(t), "{secs} {nanos}");
                assert_eq!(days_from_civil(1970, 1, 1), 0);
            }
        }
    }
}
