//! ROWS parsers (§5.1): the column header, the end marker and whole batches, owned or
//! borrowed.

use super::error::{Error, IResult, fail, fail_at, map_err};
use super::primitive::{count, end, text, u64};
use super::tuple::{row_error, row_extend, row_owned};
use crate::error::DecodeErrorKind;
use crate::rows::{RowsBatch, RowsBatchRef, RowsEnd};
use crate::tuple::row_header_len;

/// The column header of a ROWS body: a u64 count and that many names.
pub fn columns(input: &[u8]) -> IResult<'_, Vec<&str>> {
    // Each name takes at least one word.
    let (mut rest, n) = count("columns.count", 8)(input)?;
    let mut names = Vec::with_capacity(n);
    for i in 0..n {
        let (next, name) = text("columns")(rest)
            .map_err(|e| map_err(e, |e| e.with_field(format!("columns[{i}]"))))?;
        names.push(name);
        rest = next;
    }
    Ok((rest, names))
}

/// True when `rest` (after the column header or a row) is at the end marker rather than at a
/// row: `0xEE`/`0xFF` cannot start a row header (types 14 and 15 do not exist), and a batch
/// without columns has no rows.
#[inline(always)]
pub fn at_rows_end(rest: &[u8], columns: usize) -> bool {
    columns == 0 || matches!(rest.first(), Some(0xEE | 0xFF))
}

/// The marker word that ends a ROWS batch: PART or DONE.
pub fn rows_end(input: &[u8]) -> IResult<'_, RowsEnd> {
    let (rest, word) = u64("marker")(input)?;
    match RowsEnd::from_marker(word) {
        Some(end) => Ok((rest, end)),
        None => Err(fail(input, "marker", DecodeErrorKind::BadMarker(word))),
    }
}

/// The end of a whole ROWS body, read from its **last** word (so that it is known before any
/// row is parsed, as [`RowsReader`](crate::RowsReader) needs); the input is not consumed.
/// Fails when fewer than 8 bytes are left or the word is no marker.
pub fn last_rows_end(input: &[u8]) -> Result<RowsEnd, nom::Err<Error>> {
    let Some(last) = input.last_chunk::<8>() else {
        return Err(fail(
            input,
            "marker",
            DecodeErrorKind::Truncated {
                needed: 8,
                available: input.len(),
            },
        ));
    };
    let word = u64::from_le_bytes(*last);
    RowsEnd::from_marker(word).ok_or_else(|| fail_at(8, "marker", DecodeErrorKind::BadMarker(word)))
}

/// An upper bound on the rows left in `rest` for `columns` columns: each row takes at least
/// its nibble header and a word per value, and the marker follows. Never more than the
/// input can hold, and tight for rows of fixed-size values.
#[inline]
fn max_rows(rest: &[u8], columns: usize) -> usize {
    let min_row = row_header_len(columns) + 8 * columns;
    rest.len()
        .saturating_sub(8)
        .checked_div(min_row)
        .unwrap_or(0)
}

/// The rows and the marker of a ROWS body after its column header, each row handed to
/// `each`; ends at the end of the input.
#[inline]
fn rows_body<'a>(
    mut rest: &'a [u8],
    columns: usize,
    mut each: impl FnMut(&'a [u8], usize) -> IResult<'a, ()>,
) -> IResult<'a, RowsEnd> {
    let mut index = 0;
    while !at_rows_end(rest, columns) {
        let (next, ()) = each(rest, index).map_err(|e| map_err(e, |e| row_error(e, index)))?;
        rest = next;
        index += 1;
    }
    let (rest, marker) = rows_end(rest)?;
    let (rest, ()) = end(rest)?;
    Ok((rest, marker))
}

/// A whole ROWS body, copied into an owned [`RowsBatch`]: one `String`/`Vec` per text and
/// blob, one `Vec` per row.
pub fn rows_batch(input: &[u8]) -> IResult<'_, RowsBatch> {
    rows_batch_inner(input).map_err(|e| map_err(e, |e| e.in_message("ROWS")))
}

fn rows_batch_inner(input: &[u8]) -> IResult<'_, RowsBatch> {
    let (rest, names) = columns(input)?;
    last_rows_end(rest)?;
    let ncols = names.len();
    let mut rows = Vec::with_capacity(max_rows(rest, ncols));
    let (rest, end) = rows_body(rest, ncols, |input, _| {
        let (rest, row) = row_owned(ncols)(input)?;
        rows.push(row);
        Ok((rest, ()))
    })?;
    let columns = names.into_iter().map(str::to_owned).collect();
    Ok((rest, RowsBatch { columns, rows, end }))
}

/// A whole ROWS body, decoded without copying: texts and blobs borrow from the input and
/// the values of every row go into one vector (see [`RowsBatchRef`]).
pub fn rows_batch_ref(input: &[u8]) -> IResult<'_, RowsBatchRef<'_>> {
    rows_batch_ref_inner(input).map_err(|e| map_err(e, |e| e.in_message("ROWS")))
}

fn rows_batch_ref_inner(input: &[u8]) -> IResult<'_, RowsBatchRef<'_>> {
    let (rest, columns) = columns(input)?;
    last_rows_end(rest)?;
    let ncols = columns.len();
    let mut values = Vec::with_capacity(max_rows(rest, ncols) * ncols);
    let (rest, end) = rows_body(rest, ncols, |input, _| {
        row_extend(ncols, &mut values)(input)
    })?;
    Ok((rest, RowsBatchRef::from_parts(columns, values, end)))
}
