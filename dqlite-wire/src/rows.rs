//! ROWS batches (§5.1): the owned [`RowsBatch`], the zero-copy streaming [`RowsReader`] for
//! clients and the budgeted [`RowsEncoder`] for servers.

use bytes::{BufMut, Bytes, BytesMut};

use crate::constants::{DEFAULT_ROWS_BUDGET, ROWS_DONE, ROWS_PART, response};
use crate::error::{DecodeError, EncodeError};
use crate::header::Header;
use crate::parse;
use crate::primitive::{check_text, put_text, text_len};
use crate::tuple::{AsValueRef, put_rows, row_encoded_len, write_row};
use crate::value::{Value, ValueRef};

/// One row of owned values, in column order.
pub type Row = Vec<Value>;

/// How a ROWS batch ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowsEnd {
    /// Marker `0xEE × 8`: more batches follow, pushed by the server without a request.
    Part,
    /// Marker `0xFF × 8`: the result set is complete.
    Done,
}

impl RowsEnd {
    /// The marker word.
    pub const fn marker(self) -> u64 {
        match self {
            RowsEnd::Part => ROWS_PART,
            RowsEnd::Done => ROWS_DONE,
        }
    }

    /// The end a marker word stands for, if it is one.
    pub const fn from_marker(word: u64) -> Option<RowsEnd> {
        match word {
            ROWS_PART => Some(RowsEnd::Part),
            ROWS_DONE => Some(RowsEnd::Done),
            _ => None,
        }
    }
}

/// One decoded ROWS message: the column names (repeated in every batch), the rows of this
/// batch and whether more batches follow.
#[derive(Debug, Clone, PartialEq)]
pub struct RowsBatch {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows of this batch; each has `columns.len()` values.
    pub rows: Vec<Row>,
    /// PART (more batches follow) or DONE.
    pub end: RowsEnd,
}

/// The part of a ROWS batch a C server had already written when a query failed while
/// stepping; it prefixes the FAILURE body (see [`Failure`](crate::Failure)).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RowsPrefix {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows written before the error.
    pub rows: Vec<Row>,
}

/// Size of the column header: count word and names.
pub(crate) fn columns_len<S: AsRef<str>>(
    columns: &[S],
    message: &'static str,
) -> Result<usize, EncodeError> {
    let mut len = 8;
    for (i, c) in columns.iter().enumerate() {
        check_text(c.as_ref(), message, || format!("columns[{i}]").into())?;
        len += text_len(c.as_ref());
    }
    Ok(len)
}

pub(crate) fn put_columns<S: AsRef<str>>(buf: &mut impl BufMut, columns: &[S]) {
    buf.put_u64_le(columns.len() as u64);
    for c in columns {
        put_text(buf, c.as_ref());
    }
}

/// Size of a list of rows, checking each has `ncols` values.
pub(crate) fn rows_len(
    rows: &[Row],
    ncols: usize,
    message: &'static str,
) -> Result<usize, EncodeError> {
    let mut len = 0;
    for (i, row) in rows.iter().enumerate() {
        if row.len() != ncols {
            return Err(EncodeError::ColumnCount {
                expected: ncols,
                got: row.len(),
            });
        }
        len += row_encoded_len(row, message, i)?;
    }
    Ok(len)
}

impl RowsBatch {
    /// Size of the encoded body.
    pub(crate) fn encoded_len(&self) -> Result<usize, EncodeError> {
        Ok(columns_len(&self.columns, "ROWS")?
            + rows_len(&self.rows, self.columns.len(), "ROWS")?
            + 8)
    }

    /// Writes the body (after `encoded_len` succeeded).
    pub(crate) fn put(&self, buf: &mut impl BufMut) {
        put_columns(buf, &self.columns);
        put_rows(buf, &self.rows);
        buf.put_u64_le(self.end.marker());
    }

    /// Decodes a whole ROWS body into owned values (see [`parse::rows_batch`]).
    pub fn decode(body: &[u8]) -> Result<RowsBatch, DecodeError> {
        parse::run("ROWS", body, parse::rows_batch)
    }
}

/// A whole ROWS batch decoded without copying: texts and blobs borrow from the body, and the
/// values of all rows sit in one vector, row after row. Decoding costs one allocation for the
/// column names and one for the values, whatever the number of rows; use
/// [`RowsBatchRef::to_owned_batch`] for a [`RowsBatch`] that outlives the body.
///
/// ```
/// use dqlite_wire::{Response, RowsBatch, RowsBatchRef, RowsEnd, Value, ValueRef};
/// let batch = RowsBatch {
///     columns: vec!["id".into(), "name".into()],
///     rows: vec![
///         vec![Value::Integer(1), Value::Text("one".into())],
///         vec![Value::Integer(2), Value::Text("two".into())],
///     ],
///     end: RowsEnd::Done,
/// };
/// let message = Response::Rows(batch.clone()).to_bytes()?;
/// let rows = RowsBatchRef::decode(&message[8..])?;
/// assert_eq!(rows.columns(), ["id", "name"]);
/// assert_eq!(rows.len(), 2);
/// assert_eq!(rows.row(1), Some(&[ValueRef::Integer(2), ValueRef::Text("two")][..]));
/// for row in rows.rows() {
///     assert!(matches!(row, [ValueRef::Integer(_), ValueRef::Text(_)]));
/// }
/// assert_eq!(rows.to_owned_batch(), batch);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RowsBatchRef<'a> {
    columns: Vec<&'a str>,
    /// Invariant: a whole number of rows (`columns.len()` values each; none without columns).
    values: Vec<ValueRef<'a>>,
    end: RowsEnd,
}

impl<'a> RowsBatchRef<'a> {
    /// Decodes a whole ROWS body (see [`parse::rows_batch_ref`]).
    pub fn decode(body: &'a [u8]) -> Result<RowsBatchRef<'a>, DecodeError> {
        parse::run("ROWS", body, parse::rows_batch_ref)
    }

    /// Builds a batch from its parts, checking that `values` holds whole rows.
    pub fn new(
        columns: Vec<&'a str>,
        values: Vec<ValueRef<'a>>,
        end: RowsEnd,
    ) -> Result<RowsBatchRef<'a>, EncodeError> {
        let n = columns.len();
        // Without columns, only an empty list (`x.is_multiple_of(0)` is `x == 0`).
        let whole = values.len().is_multiple_of(n);
        if !whole {
            return Err(EncodeError::ColumnCount {
                expected: n,
                got: values.len() % n.max(1),
            });
        }
        Ok(RowsBatchRef::from_parts(columns, values, end))
    }

    /// From parts already known to hold whole rows.
    pub(crate) fn from_parts(
        columns: Vec<&'a str>,
        values: Vec<ValueRef<'a>>,
        end: RowsEnd,
    ) -> RowsBatchRef<'a> {
        RowsBatchRef {
            columns,
            values,
            end,
        }
    }

    /// Column names.
    pub fn columns(&self) -> &[&'a str] {
        &self.columns
    }

    /// Every value of every row, row after row.
    pub fn values(&self) -> &[ValueRef<'a>] {
        &self.values
    }

    /// PART (more batches follow) or DONE.
    pub fn end(&self) -> RowsEnd {
        self.end
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.values
            .len()
            .checked_div(self.columns.len())
            .unwrap_or(0)
    }

    /// True when the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Row `index`, if there is one.
    pub fn row(&self, index: usize) -> Option<&[ValueRef<'a>]> {
        let n = self.columns.len();
        let start = index.checked_mul(n)?;
        self.values
            .get(start..start.checked_add(n)?)
            .filter(|_| n > 0)
    }

    /// The rows, in order.
    pub fn rows(&self) -> std::slice::ChunksExact<'_, ValueRef<'a>> {
        // Without columns there are no values, so the chunk size does not matter then.
        self.values.chunks_exact(self.columns.len().max(1))
    }

    /// Copies the batch into an owned [`RowsBatch`].
    pub fn to_owned_batch(&self) -> RowsBatch {
        RowsBatch {
            columns: self.columns.iter().map(|c| (*c).to_owned()).collect(),
            rows: self
                .rows()
                .map(|r| r.iter().map(ValueRef::to_value).collect())
                .collect(),
            end: self.end,
        }
    }
}

/// Lazily iterates the rows of one ROWS body without copying texts or blobs.
///
/// The end marker is checked when the reader is created (it is the body's last word), so
/// [`RowsReader::end`] is known before any row is read; rows are decoded one by one on demand
/// (with [`parse::row_into`]). After an error the reader yields nothing more.
#[derive(Debug, Clone)]
pub struct RowsReader<'a> {
    body: &'a [u8],
    rest: &'a [u8],
    columns: Vec<&'a str>,
    rows_read: usize,
    end: RowsEnd,
    finished: bool,
}

impl<'a> RowsReader<'a> {
    /// Reads the column header of a ROWS body and checks its end marker.
    pub fn new(body: &'a [u8]) -> Result<RowsReader<'a>, DecodeError> {
        let head = |input: &'a [u8]| {
            let (rest, columns) = parse::columns(input)?;
            let end = parse::last_rows_end(rest)?;
            Ok((rest, (rest, columns, end)))
        };
        let (rest, columns, end) = parse::run("ROWS", body, head)?;
        Ok(RowsReader {
            body,
            rest,
            columns,
            rows_read: 0,
            end,
            finished: false,
        })
    }

    /// Column names of the batch.
    pub fn columns(&self) -> &[&'a str] {
        &self.columns
    }

    /// Whether this batch is PART (more batches follow) or DONE.
    pub fn end(&self) -> RowsEnd {
        self.end
    }

    /// Rows returned so far.
    pub fn rows_read(&self) -> usize {
        self.rows_read
    }

    /// Decodes the next row into `out` (cleared first). Returns `false` once the marker is
    /// reached.
    pub fn next_row_into(&mut self, out: &mut Vec<ValueRef<'a>>) -> Result<bool, DecodeError> {
        let columns = self.columns.len();
        Ok(self.step(parse::row_into(columns, out))?.is_some())
    }

    /// Decodes the next row into owned values, or `None` at the marker.
    pub fn next_owned_row(&mut self) -> Result<Option<Row>, DecodeError> {
        let columns = self.columns.len();
        self.step(parse::row_owned(columns))
    }

    /// Decodes one row with `row`, or checks the marker; stops for good after an error.
    #[inline]
    fn step<T>(
        &mut self,
        row: impl FnOnce(&'a [u8]) -> parse::IResult<'a, T>,
    ) -> Result<Option<T>, DecodeError> {
        if self.finished {
            return Ok(None);
        }
        let result = self.step_inner(row);
        if !matches!(result, Ok(Some(_))) {
            self.finished = true;
        }
        result.map_err(|e| parse::to_decode_error("ROWS", self.body, e))
    }

    #[inline]
    fn step_inner<T>(
        &mut self,
        row: impl FnOnce(&'a [u8]) -> parse::IResult<'a, T>,
    ) -> Result<Option<T>, nom::Err<parse::Error>> {
        if parse::at_rows_end(self.rest, self.columns.len()) {
            let (rest, _) = parse::rows_end(self.rest)?;
            parse::end(rest)?;
            self.rest = rest;
            return Ok(None);
        }
        let index = self.rows_read;
        let (rest, value) = row(self.rest).map_err(|e| e.map(|e| parse::row_error(e, index)))?;
        self.rest = rest;
        self.rows_read += 1;
        Ok(Some(value))
    }

    /// Decodes the next row, or `None` at the marker.
    pub fn next_row(&mut self) -> Result<Option<Vec<ValueRef<'a>>>, DecodeError> {
        let mut row = Vec::with_capacity(self.columns.len());
        Ok(self.next_row_into(&mut row)?.then_some(row))
    }
}

impl<'a> Iterator for RowsReader<'a> {
    type Item = Result<Vec<ValueRef<'a>>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_row().transpose()
    }
}

/// Builds ROWS messages for a server, filling each batch up to a byte budget.
///
/// The default budget (4096) reproduces C dqlite exactly: **before stepping each next row**,
/// call [`RowsEncoder::is_full`]; if it is true, send [`RowsEncoder::finish`]`(Part)` and go on.
/// A batch is full once the 8-byte header plus the body so far (without the marker) reaches the
/// budget, so a full batch ends as PART even when no row follows, and the result then ends with
/// an empty DONE batch carrying only the column header. One large row can exceed the budget.
///
/// ```
/// use dqlite_wire::{RowsEncoder, RowsEnd, Value};
/// let mut enc = RowsEncoder::new(&["n"]).unwrap();
/// let mut batches = Vec::new();
/// let mut rows = (0..1000i64).map(|n| [Value::Integer(n)]);
/// loop {
///     // Checked before every step, including the one that finds no more rows.
///     if enc.is_full() {
///         batches.push(enc.finish(RowsEnd::Part).unwrap());
///     }
///     match rows.next() {
///         Some(row) => enc.push_row(&row).unwrap(),
///         None => break,
///     }
/// }
/// batches.push(enc.finish(RowsEnd::Done).unwrap());
/// assert_eq!(batches.len(), 4); // 24 B header, 16 B rows: 255 rows per PART batch
/// ```
#[derive(Debug, Clone)]
pub struct RowsEncoder {
    /// The batch so far in `buf[..len]`, followed by bytes that are all zero: rows are laid
    /// out in that zeroed tail, which is extended in blocks rather than row by row.
    buf: BytesMut,
    len: usize,
    columns: Bytes,
    ncols: usize,
    budget: usize,
    rows: usize,
}

impl RowsEncoder {
    /// An encoder for a result with these column names, with the C budget of 4096 bytes.
    pub fn new<S: AsRef<str>>(columns: &[S]) -> Result<RowsEncoder, EncodeError> {
        let mut header = BytesMut::with_capacity(columns_len(columns, "ROWS")?);
        put_columns(&mut header, columns);
        let mut enc = RowsEncoder {
            buf: BytesMut::new(),
            len: 0,
            columns: header.freeze(),
            ncols: columns.len(),
            budget: DEFAULT_ROWS_BUDGET,
            rows: 0,
        };
        enc.start_batch();
        Ok(enc)
    }

    /// Sets the batch budget in bytes (header + body without marker).
    pub fn with_budget(mut self, budget: usize) -> RowsEncoder {
        self.budget = budget;
        self
    }

    fn start_batch(&mut self) {
        // Room for a typical batch; a huge budget must not reserve huge memory up front.
        let want = self.budget.min(1 << 16).max(self.columns.len() + 16);
        // The slack covers the row that crosses the budget, so that a batch of ordinary rows
        // never has to grow.
        let room = want.saturating_add(512);
        self.buf.reserve(room);
        self.buf.put_bytes(0, Header::LEN);
        self.buf.put_slice(&self.columns);
        self.len = self.buf.len();
        // Zero the batch's room in one go.
        self.buf.resize(room.max(self.len), 0);
        self.rows = 0;
    }

    /// True when the current batch has reached the budget and must be finished as PART
    /// before another row is stepped.
    pub fn is_full(&self) -> bool {
        self.len >= self.budget
    }

    /// Rows in the current batch.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes of the current batch so far: 8-byte header + body without the marker.
    pub fn batch_len(&self) -> usize {
        self.len
    }

    /// Appends a row to the current batch (it does not check the budget: see
    /// [`RowsEncoder::is_full`]).
    pub fn push_row<V: AsValueRef>(&mut self, row: &[V]) -> Result<(), EncodeError> {
        if row.len() != self.ncols {
            return Err(EncodeError::ColumnCount {
                expected: self.ncols,
                got: row.len(),
            });
        }
        let len = row_encoded_len(row, "ROWS", self.rows)?;
        let start = self.len;
        let end = start + len;
        if end > self.buf.len() {
            // Past the zeroed room: zero at least another block.
            let grow = end.max(self.buf.len() + (1 << 12).min(self.buf.len()));
            self.buf.resize(grow, 0);
        }
        write_row(&mut self.buf[start..end], row);
        self.len = end;
        self.rows += 1;
        Ok(())
    }

    /// Ends the current batch with `end` and returns the complete message (header + body);
    /// the encoder starts a new batch with the same columns.
    pub fn finish(&mut self, end: RowsEnd) -> Result<Bytes, EncodeError> {
        self.buf.truncate(self.len);
        self.buf.put_u64_le(end.marker());
        let body_len = self.buf.len() - Header::LEN;
        let header = Header::for_body(response::ROWS, 0, body_len, "ROWS")?;
        header.write_to(&mut self.buf[..Header::LEN]);
        let message = self.buf.split().freeze();
        self.start_batch();
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Response;
    use crate::error::DecodeErrorKind;

    fn batches(enc: &mut RowsEncoder, rows: &[Row]) -> Vec<(usize, usize, RowsEnd)> {
        let mut out = Vec::new();
        let mut record = |m: Bytes| {
            let b = RowsBatch::decode(&m[8..]).unwrap();
            out.push((m.len() - 8, b.rows.len(), b.end));
        };
        for row in rows {
            if enc.is_full() {
                record(enc.finish(RowsEnd::Part).unwrap());
            }
            enc.push_row(row).unwrap();
        }
        // C checks before the step that reports the end, too.
        if enc.is_full() {
            record(enc.finish(RowsEnd::Part).unwrap());
        }
        record(enc.finish(RowsEnd::Done).unwrap());
        out
    }

    fn int_text_rows(n: usize, text: &str) -> Vec<Row> {
        (0..n)
            .map(|i| vec![Value::Integer(i as i64), Value::Text(text.into())])
            .collect()
    }

    // Numbers from wire-observed-c-1.11.md §2.
    #[test]
    fn c_batches_200_rows_of_32_bytes() {
        let mut enc = RowsEncoder::new(&["n", "s"]).unwrap();
        let got = batches(&mut enc, &int_text_rows(200, "abcdefgh"));
        assert_eq!(got, [(4096, 127, RowsEnd::Part), (2368, 73, RowsEnd::Done)]);
    }

    #[test]
    fn c_batches_1000_rows() {
        let mut enc = RowsEncoder::new(&["n", "s"]).unwrap();
        let got = batches(&mut enc, &int_text_rows(1000, "row-00001"));
        let mut want = vec![(4096, 127, RowsEnd::Part); 7];
        want.push((3584, 111, RowsEnd::Done));
        assert_eq!(got, want);
    }

    #[test]
    fn c_batches_exactly_full_batch_is_part_then_empty_done() {
        let mut enc = RowsEncoder::new(&["n", "s"]).unwrap();
        let got = batches(&mut enc, &int_text_rows(127, "abcdefgh"));
        assert_eq!(got, [(4096, 127, RowsEnd::Part), (32, 0, RowsEnd::Done)]);
    }

    #[test]
    fn c_batches_one_row_of_255_columns() {
        let names: Vec<String> = (0..255).map(|i| format!("c{i}")).collect();
        let mut enc = RowsEncoder::new(&names).unwrap();
        // 255 values whose sizes give C's 4528-byte first batch: 2048 column header,
        // 128-byte nibble header, 2344 bytes of values.
        let mut row = vec![Value::Integer(1); 255];
        row[0] = Value::Text("x".repeat(2344 - 254 * 8 - 1));
        let got = batches(&mut enc, &[row]);
        assert_eq!(got, [(4528, 1, RowsEnd::Part), (2056, 0, RowsEnd::Done)]);
    }

    #[test]
    fn reader_knows_the_end_before_reading_rows() {
        let mut enc = RowsEncoder::new(&["a"]).unwrap();
        enc.push_row(&[ValueRef::Text("x")]).unwrap();
        let m = enc.finish(RowsEnd::Part).unwrap();
        let mut r = RowsReader::new(&m[8..]).unwrap();
        assert_eq!(r.end(), RowsEnd::Part);
        assert_eq!(r.columns(), ["a"]);
        assert_eq!(r.next_row().unwrap(), Some(vec![ValueRef::Text("x")]));
        assert_eq!(r.next_row().unwrap(), None);
        assert_eq!(r.rows_read(), 1);
    }

    #[test]
    fn bad_marker_and_trailing_bytes() {
        let mut body = Vec::new();
        put_columns(&mut body, &["a"]);
        body.extend_from_slice(&[0x11; 8]);
        let e = RowsReader::new(&body).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::BadMarker(0x1111_1111_1111_1111));
        // A marker in the middle, then another one.
        let mut body = Vec::new();
        put_columns(&mut body, &["a"]);
        body.extend_from_slice(&ROWS_DONE.to_le_bytes());
        body.extend_from_slice(&ROWS_DONE.to_le_bytes());
        let e = RowsBatch::decode(&body).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::TrailingBytes(8));
    }

    #[test]
    fn zero_columns() {
        let b = RowsBatch {
            columns: vec![],
            rows: vec![],
            end: RowsEnd::Done,
        };
        let mut body = Vec::new();
        b.put(&mut body);
        assert_eq!(body.len(), b.encoded_len().unwrap());
        assert_eq!(RowsBatch::decode(&body).unwrap(), b);
        // Zero columns and a non-marker word: an error, not an endless stream of empty rows.
        let mut body = vec![0u8; 8];
        body.extend_from_slice(&[0; 8]);
        body.extend_from_slice(&ROWS_DONE.to_le_bytes());
        assert!(RowsBatch::decode(&body).is_err());
    }

    #[test]
    fn a_rejected_row_leaves_the_batch_unchanged() {
        let mut enc = RowsEncoder::new(&["a", "b"]).unwrap();
        enc.push_row(&[ValueRef::Integer(1), ValueRef::Text("ok")])
            .unwrap();
        let len = enc.batch_len();
        assert!(matches!(
            enc.push_row(&[ValueRef::Integer(2), ValueRef::Text("n\0ul")]),
            Err(EncodeError::NulInText { .. })
        ));
        assert_eq!((enc.batch_len(), enc.rows()), (len, 1));
        let m = enc.finish(RowsEnd::Done).unwrap();
        assert_eq!(RowsBatch::decode(&m[8..]).unwrap().rows.len(), 1);
    }

    #[test]
    fn unbounded_budget() {
        let mut enc = RowsEncoder::new(&["a"]).unwrap().with_budget(usize::MAX);
        for i in 0..10_000 {
            assert!(!enc.is_full());
            enc.push_row(&[Value::Integer(i)]).unwrap();
        }
        let m = enc.finish(RowsEnd::Done).unwrap();
        assert_eq!(RowsBatch::decode(&m[8..]).unwrap().rows.len(), 10_000);
        assert_eq!(enc.rows(), 0);
    }

    #[test]
    fn encoder_and_response_write_the_same_bytes() {
        // Every short-copy and NUL-check size class (0..=70 bytes), wide rows (nibbles past
        // the first word) and one row larger than `put_rows`' stack block.
        for ncols in [1usize, 5, 16, 17, 40] {
            let columns: Vec<String> = (0..ncols).map(|c| format!("c{c}")).collect();
            let rows: Vec<Row> = (0..=70usize)
                .chain([5000])
                .map(|n| {
                    (0..ncols)
                        .map(|c| match (n + c) % 6 {
                            0 => Value::Text("t".repeat(n)),
                            1 => Value::Blob(vec![0xa5; n]),
                            2 => Value::Iso8601("é".repeat(n / 2)),
                            3 => Value::Float(-(n as f64)),
                            4 => Value::Null,
                            _ => Value::Integer(n as i64 - 3),
                        })
                        .collect()
                })
                .collect();
            let batch = RowsBatch {
                columns: columns.clone(),
                rows: rows.clone(),
                end: RowsEnd::Done,
            };
            let whole = Response::Rows(batch.clone()).to_bytes().unwrap();
            let mut generic = Vec::new();
            Response::Rows(batch.clone()).encode(&mut generic).unwrap();
            assert_eq!(generic, whole);
            let mut enc = RowsEncoder::new(&columns).unwrap().with_budget(usize::MAX);
            for row in &rows {
                enc.push_row(row).unwrap();
            }
            assert_eq!(enc.finish(RowsEnd::Done).unwrap(), whole);
            assert_eq!(RowsBatch::decode(&whole[8..]).unwrap(), batch);
        }
    }

    #[test]
    fn nul_is_found_at_every_position() {
        for n in 1..=80usize {
            for at in 0..n {
                let mut s = "x".repeat(n);
                s.replace_range(at..=at, "\0");
                let mut enc = RowsEncoder::new(&["a", "b"]).unwrap();
                let e = enc
                    .push_row(&[Value::Integer(1), Value::Text(s)])
                    .unwrap_err();
                assert!(
                    matches!(&e, EncodeError::NulInText { field, .. } if field == "rows[0][1]"),
                    "{e:?}"
                );
            }
            assert!(!crate::primitive::has_nul("y".repeat(n).as_bytes()));
        }
    }

    #[test]
    fn push_row_checks_column_count() {
        let mut enc = RowsEncoder::new(&["a", "b"]).unwrap();
        assert_eq!(
            enc.push_row(&[Value::Null]),
            Err(EncodeError::ColumnCount {
                expected: 2,
                got: 1
            })
        );
    }
}
