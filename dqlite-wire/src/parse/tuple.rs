//! Tuple parsers: parameter tuples (u8 or u32 count, one type byte per value, §3.2-§3.3) and
//! row tuples (one type nibble per column, §3.4).

use super::error::{Error, IResult, fail_at, map_err};
use super::primitive::{check_count, padding, take, u8, u32};
use super::value::{value, value_owned, value_type_at};
use crate::error::DecodeErrorKind;
use crate::tuple::{Params, ParamsSchema, row_header_len};
use crate::value::{Value, ValueRef, ValueType, params_header_len};

/// The parameter tuple that fills the rest of a request body, for header schema `schema`
/// (0: u8 count, 1: u32 count). Empty input means the tuple is omitted.
///
/// Errors name `params.count`, `params.types[i]` (unknown type, or UNIXTIME, which servers
/// never accept) or `params[i]`.
pub fn params<'a>(schema: u8) -> impl Fn(&'a [u8]) -> IResult<'a, Params> {
    move |input: &'a [u8]| {
        let wide = schema == 1;
        let layout = if wide {
            ParamsSchema::Wide
        } else {
            ParamsSchema::Auto
        };
        if input.is_empty() {
            return Ok((
                input,
                Params {
                    values: None,
                    schema: layout,
                },
            ));
        }
        let (rest, count, count_size) = if wide {
            let (rest, n) = u32("params.count")(input)?;
            (rest, u64::from(n), 4)
        } else {
            let (rest, n) = u8("params.count")(input)?;
            (rest, u64::from(n), 1)
        };
        // Each value has a type byte, so the count is bounded by the bytes left.
        let (rest, n) = check_count(rest, "params.count", count, 1)?;
        let (rest, codes) = take("params.types", n)(rest)?;
        let types_remaining = rest.len() + n;
        let (mut rest, ()) = padding("params.padding", params_header_len(count_size, n) - n)(rest)?;
        // Each value takes at least one word.
        let mut values = Vec::with_capacity(n.min(rest.len() / 8));
        for (i, &code) in codes.iter().enumerate() {
            let field = || format!("params.types[{i}]");
            let ty = value_type_at(code, types_remaining - i, field)?;
            if ty == ValueType::UnixTime {
                return Err(fail_at(
                    types_remaining - i,
                    field(),
                    DecodeErrorKind::UnixTimeParam,
                ));
            }
            let (next, v) = value_owned(ty, "params")(rest)
                .map_err(|e| map_err(e, |e| e.with_field(format!("params[{i}]"))))?;
            values.push(v);
            rest = next;
        }
        Ok((
            rest,
            Params {
                values: Some(values),
                schema: layout,
            },
        ))
    }
}

/// Renames a row-level field (`row...`) to name row `index` (`rows[index]...`).
#[cold]
pub(crate) fn row_error(e: Error, index: usize) -> Error {
    e.map_field(|f| format!("rows[{index}]{}", f.strip_prefix("row").unwrap_or(f)))
}

/// The type of column `c` from a row's nibble header; `remaining` is the input length at the
/// header's start.
#[inline(always)]
fn column_type(header: &[u8], remaining: usize, c: usize) -> Result<ValueType, nom::Err<Error>> {
    let byte = header[c / 2];
    let code = if c & 1 == 0 { byte & 0x0f } else { byte >> 4 };
    match ValueType::from_code(code) {
        Some(t) => Ok(t),
        None => value_type_at(code, remaining - c / 2, || format!("row.types[{c}]")),
    }
}

/// One row tuple of `columns` values, appended to `out` after clearing it; texts and blobs
/// are borrowed from the input. Reusing `out` across rows makes streaming allocation-free.
///
/// Errors name `row.header`, `row.types[c]` or `row[c]` (the ROWS parsers rename them to
/// `rows[i]...`).
#[inline]
pub fn row_into<'a, 'o>(
    columns: usize,
    out: &'o mut Vec<ValueRef<'a>>,
) -> impl FnMut(&'a [u8]) -> IResult<'a, ()> + 'o {
    move |input: &'a [u8]| {
        out.clear();
        row_extend(columns, out)(input)
    }
}

/// One row tuple of `columns` values, appended to `out` (which keeps what it held: several
/// rows can go into one vector); texts and blobs are borrowed from the input. After an error
/// `out` may hold part of the row.
#[inline]
pub fn row_extend<'a, 'o>(
    columns: usize,
    out: &'o mut Vec<ValueRef<'a>>,
) -> impl FnMut(&'a [u8]) -> IResult<'a, ()> + 'o {
    move |input: &'a [u8]| {
        let (mut rest, header) = take("row.header", row_header_len(columns))(input)?;
        out.reserve(columns);
        for c in 0..columns {
            let ty = column_type(header, input.len(), c)?;
            let (next, v) = value(ty, "row")(rest)
                .map_err(|e| map_err(e, |e| e.with_field(format!("row[{c}]"))))?;
            out.push(v);
            rest = next;
        }
        Ok((rest, ()))
    }
}

/// One row tuple of `columns` values, borrowing texts and blobs from the input.
pub fn row<'a>(columns: usize) -> impl Fn(&'a [u8]) -> IResult<'a, Vec<ValueRef<'a>>> {
    move |input| {
        let mut out = Vec::with_capacity(columns.min(input.len() / 8));
        let (rest, ()) = row_into(columns, &mut out)(input)?;
        Ok((rest, out))
    }
}

/// One row tuple of `columns` values, copied into owned [`Value`]s.
#[inline]
pub fn row_owned<'a>(columns: usize) -> impl Fn(&'a [u8]) -> IResult<'a, Vec<Value>> {
    move |input: &'a [u8]| {
        let (mut rest, header) = take("row.header", row_header_len(columns))(input)?;
        let mut row = Vec::with_capacity(columns);
        for c in 0..columns {
            let ty = column_type(header, input.len(), c)?;
            let (next, v) = value_owned(ty, "row")(rest)
                .map_err(|e| map_err(e, |e| e.with_field(format!("row[{c}]"))))?;
            row.push(v);
            rest = next;
        }
        Ok((rest, row))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuple::put_row;
    use crate::value::Value;

    #[test]
    fn params_omitted_and_empty() {
        assert_eq!(params(0)(&[]).unwrap().1, Params::omitted());
        assert_eq!(params(0)(&[0; 8]).unwrap().1, Params::explicit(vec![]));
        assert_eq!(
            params(1)(&[0; 8]).unwrap().1,
            Params::explicit(vec![]).wide()
        );
    }

    #[test]
    fn unixtime_param_is_rejected_at_its_type_byte() {
        let body = [1u8, 9, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0];
        let nom::Err::Error(e) = params(0)(&body).unwrap_err() else {
            panic!()
        };
        assert_eq!(e.kind(), &DecodeErrorKind::UnixTimeParam);
        assert_eq!((e.field(), e.offset_in(&body)), ("params.types[0]", 1));
    }

    #[test]
    fn rows_borrowed_and_owned() {
        let row_values = [ValueRef::Integer(1), ValueRef::Text("x"), ValueRef::Null];
        let mut out = Vec::new();
        put_row(&mut out, &row_values);
        assert_eq!(row(3)(&out).unwrap().1, row_values);
        let owned: Vec<Value> = row_values.iter().map(ValueRef::to_value).collect();
        assert_eq!(row_owned(3)(&out).unwrap().1, owned);
        // Type 6 in column 1.
        out[0] = 0x61;
        let nom::Err::Error(e) = row(3)(&out).unwrap_err() else {
            panic!()
        };
        assert_eq!(e.kind(), &DecodeErrorKind::UnknownValueType(6));
        assert_eq!((e.field(), e.offset_in(&out)), ("row.types[1]", 0));
        assert_eq!(row_error(e, 4).field(), "rows[4].types[1]");
    }
}
