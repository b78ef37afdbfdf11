//! A byte stream fed in arbitrary chunks to the [`Framer`], and the messages it cuts decoded
//! with the nom parsers of [`dqlite_wire::parse`]; the same stream cut with
//! [`parse::message`] alone when it is all in one buffer.
//!
//! ```text
//! cargo run -p dqlite-wire --example stream
//! ```
//!
//! The stream is what a server sends for a query answered in several ROWS batches (built with
//! the server-side [`RowsEncoder`]), then a FAILURE. Whatever the chunk sizes, every chunking
//! gives the same messages.

use dqlite_wire::nom::Parser;
use dqlite_wire::nom::multi::many1;
use dqlite_wire::{
    Framer, Header, Response, RowsEncoder, RowsEnd, Value, ValueRef, constants, parse,
};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A server's answer to `SELECT id, name FROM t` (3,000 rows), then a FAILURE.
fn server_stream() -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut enc = RowsEncoder::new(&["id", "name"])?;
    for id in 0..3000i64 {
        if enc.is_full() {
            out.extend_from_slice(&enc.finish(RowsEnd::Part)?);
        }
        enc.push_row(&[Value::Integer(id), Value::Text(format!("name {id}"))])?;
    }
    out.extend_from_slice(&enc.finish(RowsEnd::Done)?);
    let failure = Response::failure(constants::error_code::BUSY, "database is locked");
    out.extend_from_slice(&failure.to_bytes()?);
    Ok(out)
}

/// What one message says, decoded with the parsers: (rows, sum of ids, done) for a ROWS
/// batch, the code for a FAILURE.
#[derive(Debug, PartialEq)]
enum Seen {
    Rows(usize, i64, bool),
    Failure(u64),
}

fn decode(header: &Header, body: &[u8]) -> std::result::Result<Seen, dqlite_wire::DecodeError> {
    let batch_parser = |input| {
        let (rest, columns) = parse::columns(input)?;
        let (mut rest, mut rows, mut sum) = (rest, 0, 0);
        let mut row = Vec::new();
        while !parse::at_rows_end(rest, columns.len()) {
            (rest, ()) = parse::row_into(columns.len(), &mut row)(rest)?;
            if let [ValueRef::Integer(id), ValueRef::Text(_)] = row[..] {
                sum += id;
            }
            rows += 1;
        }
        let (rest, end) = parse::rows_end(rest)?;
        Ok((rest, Seen::Rows(rows, sum, end == RowsEnd::Done)))
    };
    match header.type_code {
        constants::response::ROWS => parse::run("ROWS", body, batch_parser),
        _ => parse::run("FAILURE", body, parse::failure(true)).map(|f| Seen::Failure(f.code)),
    }
}

/// Pushes `stream` into a framer in chunks of the sizes `sizes` yields, decoding every
/// message as soon as it is whole.
fn feed(stream: &[u8], mut sizes: impl FnMut() -> usize) -> Result<Vec<Seen>> {
    let mut framer = Framer::new();
    let mut seen = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(sizes().clamp(1, rest.len()));
        framer.push(chunk);
        rest = tail;
        while let Some(frame) = framer.next_frame()? {
            seen.push(decode(&frame.header, &frame.body)?);
        }
    }
    assert_eq!(framer.buffered(), 0);
    Ok(seen)
}

fn main() -> Result<()> {
    let stream = server_stream()?;

    // All in one buffer: nom cuts it into messages.
    let (rest, messages) = many1(parse::message)
        .parse(&stream[..])
        .map_err(|e| e.to_string())?;
    assert!(rest.is_empty());
    let whole = messages
        .iter()
        .map(|(header, body)| decode(header, body))
        .collect::<std::result::Result<Vec<Seen>, _>>()?;
    let rows: usize = whole
        .iter()
        .map(|s| if let Seen::Rows(n, ..) = s { *n } else { 0 })
        .sum();
    println!(
        "{} bytes: {} messages, {rows} rows, last {:?}",
        stream.len(),
        whole.len(),
        whole.last()
    );
    assert_eq!(rows, 3000);

    // The same stream in chunks: one byte at a time, fixed sizes, and pseudo-random sizes.
    assert_eq!(feed(&stream, || 1)?, whole);
    for size in [7, 8, 4095, 4096, 65_536] {
        assert_eq!(feed(&stream, || size)?, whole, "chunks of {size}");
    }
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let random = feed(&stream, || {
        // xorshift: sizes from 1 to 1,000 bytes.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 1000) as usize + 1
    })?;
    assert_eq!(random, whole);
    println!("every chunking gave the same {} messages", whole.len());
    Ok(())
}
