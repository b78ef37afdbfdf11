//! Printing result sets: aligned table, CSV or JSON.

use std::io::{self, Write};

use dqlite_client::Value;

/// Output format chosen with `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Columns aligned, a header line and a rule under it.
    Table,
    /// RFC 4180 CSV with a header line.
    Csv,
    /// A JSON array with one object per row.
    Json,
}

/// Write a result set in the chosen format.
pub fn write_rows(
    out: &mut impl Write,
    format: Format,
    columns: &[String],
    rows: &[Vec<Value>],
) -> io::Result<()> {
    match format {
        Format::Table => write_table(out, columns, rows),
        Format::Csv => write_csv(out, columns, rows),
        Format::Json => write_json(out, columns, rows),
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "NULL".to_owned(),
        v => v.to_string().replace('\n', "\\n"),
    }
}

fn is_numeric(v: &Value) -> bool {
    matches!(
        v,
        Value::Integer(_) | Value::Float(_) | Value::UnixTime(_) | Value::Boolean(_)
    )
}

fn write_table(out: &mut impl Write, columns: &[String], rows: &[Vec<Value>]) -> io::Result<()> {
    let cells: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(cell).collect()).collect();
    let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
    for r in &cells {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |out: &mut dyn Write, parts: Vec<(String, bool)>| -> io::Result<()> {
        let mut s = String::new();
        for (i, (text, right)) in parts.into_iter().enumerate() {
            if i > 0 {
                s.push_str(" | ");
            }
            let w = widths.get(i).copied().unwrap_or(0);
            if right {
                s.push_str(&format!("{text:>w$}"));
            } else {
                s.push_str(&format!("{text:<w$}"));
            }
        }
        writeln!(out, "{}", s.trim_end())
    };
    line(out, columns.iter().map(|c| (c.clone(), false)).collect())?;
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    writeln!(out, "{}", rule.join("-+-"))?;
    for (r, values) in cells.into_iter().zip(rows) {
        line(
            out,
            r.into_iter()
                .zip(values)
                .map(|(c, v)| (c, is_numeric(v)))
                .collect(),
        )?;
    }
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn write_csv(out: &mut impl Write, columns: &[String], rows: &[Vec<Value>]) -> io::Result<()> {
    let header: Vec<String> = columns.iter().map(|c| csv_field(c)).collect();
    writeln!(out, "{}", header.join(","))?;
    for r in rows {
        let fields: Vec<String> = r.iter().map(|v| csv_field(&v.to_string())).collect();
        writeln!(out, "{}", fields.join(","))?;
    }
    Ok(())
}

/// A value as JSON: numbers stay numbers (non-finite floats become strings), blobs become
/// lowercase hex strings, NULL becomes null.
pub fn json_value(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Integer(i) | Value::UnixTime(i) => J::from(*i),
        Value::Float(x) => serde_json::Number::from_f64(*x)
            .map(J::Number)
            .unwrap_or_else(|| J::String(x.to_string())),
        Value::Text(s) | Value::Iso8601(s) => J::String(s.clone()),
        Value::Blob(b) => J::String(b.iter().map(|x| format!("{x:02x}")).collect()),
        Value::Null => J::Null,
        Value::Boolean(b) => J::Bool(*b != 0),
    }
}

fn write_json(out: &mut impl Write, columns: &[String], rows: &[Vec<Value>]) -> io::Result<()> {
    let arr: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let mut obj = serde_json::Map::new();
            for (c, v) in columns.iter().zip(r) {
                obj.insert(c.clone(), json_value(v));
            }
            serde_json::Value::Object(obj)
        })
        .collect();
    let s =
        serde_json::to_string_pretty(&serde_json::Value::Array(arr)).map_err(io::Error::other)?;
    writeln!(out, "{s}")
}

/// Write a list of records (name → value) as a table, CSV or JSON; used by the dot commands.
pub fn write_records(
    out: &mut impl Write,
    format: Format,
    columns: &[&str],
    rows: Vec<Vec<Value>>,
) -> io::Result<()> {
    let cols: Vec<String> = columns.iter().map(|s| (*s).to_owned()).collect();
    write_rows(out, format, &cols, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(f: Format) -> String {
        let mut out = Vec::new();
        write_rows(
            &mut out,
            f,
            &["id".into(), "name".into()],
            &[
                vec![Value::Integer(1), Value::Text("alice".into())],
                vec![Value::Integer(22), Value::Null],
                vec![Value::Float(0.5), Value::Text("a,\"b\"".into())],
            ],
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn table_is_aligned() {
        assert_eq!(
            render(Format::Table),
            "id  | name\n----+------\n  1 | alice\n 22 | NULL\n0.5 | a,\"b\"\n"
        );
    }

    #[test]
    fn csv_quotes() {
        assert_eq!(
            render(Format::Csv),
            "id,name\n1,alice\n22,\n0.5,\"a,\"\"b\"\"\"\n"
        );
    }

    #[test]
    fn json_objects() {
        let v: serde_json::Value = serde_json::from_str(&render(Format::Json)).unwrap();
        assert_eq!(v[0]["name"], "alice");
        assert_eq!(v[1]["name"], serde_json::Value::Null);
        assert_eq!(v[2]["id"], 0.5);
        assert_eq!(json_value(&Value::Blob(vec![1, 255])), "01ff");
        assert_eq!(json_value(&Value::Float(f64::INFINITY)), "inf");
    }
}
