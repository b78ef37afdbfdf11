//! Conversions between wire values and SQLite values, by a result column's declared type.

use dqlite_wire::Value;
use rusqlite::types::{Value as SqlValue, ValueRef as SqlValueRef};

/// A wire parameter as an SQLite value (BOOLEAN → 0/1, ISO8601 → TEXT).
pub fn to_sql_value(v: &Value) -> SqlValue {
    match v {
        Value::Integer(i) | Value::UnixTime(i) => SqlValue::Integer(*i),
        Value::Float(f) => SqlValue::Real(*f),
        Value::Text(s) | Value::Iso8601(s) => SqlValue::Text(s.clone()),
        Value::Blob(b) => SqlValue::Blob(b.clone()),
        Value::Null => SqlValue::Null,
        Value::Boolean(b) => SqlValue::Integer(i64::from(*b != 0)),
    }
}

/// What kind of declared type a result column has (C's `query.c:value_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// No special treatment.
    Plain,
    /// `DATETIME`, `DATE`, `TIMESTAMP`.
    Time,
    /// `BOOLEAN`.
    Boolean,
}

impl ColumnKind {
    /// Classifies a declared type (case-insensitive exact match, as C does).
    pub fn from_decltype(decl: Option<&str>) -> ColumnKind {
        match decl {
            Some(d)
                if d.eq_ignore_ascii_case("DATETIME")
                    || d.eq_ignore_ascii_case("DATE")
                    || d.eq_ignore_ascii_case("TIMESTAMP") =>
            {
                ColumnKind::Time
            }
            Some(d) if d.eq_ignore_ascii_case("BOOLEAN") => ColumnKind::Boolean,
            _ => ColumnKind::Plain,
        }
    }
}

/// A result value as a wire value. NULL is sent as NULL whatever the declared type (C 1.11
/// sends `false` in a BOOLEAN column and an empty ISO-8601 text in a DATETIME one, so clients
/// read a stored NULL back as a value). Where C asserts (FLOAT in a DATETIME column, TEXT in a
/// BOOLEAN column) the storage class is kept instead.
pub fn to_wire_value(v: SqlValueRef<'_>, kind: ColumnKind) -> Value {
    match (v, kind) {
        (SqlValueRef::Integer(i), ColumnKind::Time) => Value::UnixTime(i),
        (SqlValueRef::Text(t), ColumnKind::Time) => {
            Value::Iso8601(String::from_utf8_lossy(t).into_owned())
        }
        (SqlValueRef::Integer(i), ColumnKind::Boolean) => Value::Boolean(i as u64),
        (SqlValueRef::Integer(i), _) => Value::Integer(i),
        (SqlValueRef::Real(f), _) => Value::Float(f),
        (SqlValueRef::Text(t), _) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        (SqlValueRef::Blob(b), _) => Value::Blob(b.to_vec()),
        (SqlValueRef::Null, _) => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boolean_column_with_text_does_not_crash() {
        let v = to_wire_value(SqlValueRef::Text(b"yes"), ColumnKind::Boolean);
        assert_eq!(v, Value::Text("yes".into()));
    }

    #[test]
    fn null_is_null_whatever_the_declared_type() {
        for kind in [ColumnKind::Plain, ColumnKind::Boolean, ColumnKind::Time] {
            assert_eq!(
                to_wire_value(SqlValueRef::Null, kind),
                Value::Null,
                "{kind:?}"
            );
        }
        assert_eq!(
            to_wire_value(SqlValueRef::Integer(0), ColumnKind::Boolean),
            Value::Boolean(0)
        );
        assert_eq!(
            to_wire_value(SqlValueRef::Text(b""), ColumnKind::Time),
            Value::Iso8601(String::new())
        );
    }
}
