//! [`nom`] parsers of every part of the protocol, over complete input, for clients and tools
//! that build their own decoders.
//!
//! Every decoder of this crate is made of these: [`Request::decode`](crate::Request::decode),
//! [`Response::decode`](crate::Response::decode), [`RowsBatch::decode`](crate::RowsBatch),
//! [`RowsReader`](crate::RowsReader) and the rest are thin wrappers that turn a parser's
//! [`Error`] into a [`DecodeError`](crate::DecodeError). The parsers are ordinary nom parsers
//! (`Fn(&[u8]) -> IResult<&[u8], T, Error>`), so they combine with nom's combinators and with
//! a caller's own:
//!
//! ```
//! use dqlite_wire::nom::{Parser, multi::count, sequence::pair};
//! use dqlite_wire::{parse, Request, Response, RowsBatch, RowsEnd, Value};
//!
//! // Three messages in one buffer: parse::message cuts them one by one.
//! let mut buf = Vec::new();
//! for n in 0..3 {
//!     let rows = RowsBatch {
//!         columns: vec!["n".into()],
//!         rows: vec![vec![Value::Integer(n)]],
//!         end: if n < 2 { RowsEnd::Part } else { RowsEnd::Done },
//!     };
//!     buf.extend_from_slice(&Response::Rows(rows).to_bytes()?);
//! }
//! let (rest, messages) = count(parse::message, 3).parse(&buf[..])?;
//! assert!(rest.is_empty());
//! // Each body: its column header, one row, the marker.
//! for (n, (_header, body)) in messages.iter().enumerate() {
//!     let (rest, columns) = parse::columns(body)?;
//!     let (rest, row) = parse::row(columns.len())(rest)?;
//!     let (_, end) = parse::rows_end(rest)?;
//!     assert_eq!(row, [dqlite_wire::ValueRef::Integer(n as i64)]);
//!     assert_eq!(end == RowsEnd::Done, n == 2);
//! }
//!
//! // Fields combine too; errors name the field and where it is.
//! let body = Request::Open { name: "db".into(), flags: 0, vfs: "x".into() }.to_bytes()?;
//! let (_, (name, flags)) = pair(parse::text("name"), parse::u64("flags")).parse(&body[8..])?;
//! assert_eq!((name, flags), ("db", 0));
//! let err = parse::text("name")(&body[8..12]).unwrap_err();
//! let dqlite_wire::nom::Err::Error(err) = err else { unreachable!() };
//! assert_eq!((err.field(), err.offset_in(&body[8..12])), ("name", 0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What is here, by layer:
//!
//! * messages: [`handshake`], [`header`], [`message`] (header + body, the rest left for the
//!   next);
//! * fields: [`u8`](fn@u8), [`u32`](fn@u32), [`u64`](fn@u64), [`i64`](fn@i64), [`text`],
//!   [`blob`], [`take`], [`take_len`], [`padding`], [`count`] / [`check_count`] (counts from
//!   the wire checked against the bytes left), [`end`];
//! * values and tuples: [`value_type`], [`value`], [`value_owned`], [`params`], [`row`],
//!   [`row_into`], [`row_extend`], [`row_owned`];
//! * ROWS: [`columns`], [`rows_end`], [`last_rows_end`], [`at_rows_end`], [`rows_batch`]
//!   (owned), [`rows_batch_ref`] (borrowed, one allocation per batch);
//! * requests: [`request`], or [`request_fields`] then [`request_params`];
//! * responses: [`response`], [`failure`], [`servers`], [`servers_format0`], [`files`].
//!
//! The parsers never panic, never require padding to be zero, and never allocate more than
//! the input justifies: every count read from the wire is checked against the bytes left
//! before anything is reserved. They never return `Incomplete`: input is a whole message
//! body (use a [`Framer`](crate::Framer) or [`message`] to get one).
//!
//! **Errors.** [`Error`] names the message (set by message-level parsers), the field and the
//! bytes left where the field starts; [`Error::offset_in`] gives the offset from the start of
//! a body and [`run`] turns any parser's error into a [`DecodeError`](crate::DecodeError).

mod error;
mod message;
mod primitive;
mod request;
mod response;
mod rows;
mod tuple;
mod value;

pub use error::{Error, IResult, run};
pub use message::{handshake, header, message};
pub use primitive::{
    blob, check_count, count, end, i64, padding, take, take_len, text, u8, u32, u64,
};
pub use request::{request, request_fields, request_params};
pub use response::{failure, files, response, servers, servers_format0};
pub use rows::{at_rows_end, columns, last_rows_end, rows_batch, rows_batch_ref, rows_end};
pub use tuple::{params, row, row_extend, row_into, row_owned};
pub use value::{value, value_owned, value_type, value_type_at};

pub(crate) use error::to_decode_error;
pub(crate) use request::max_schema;
pub(crate) use tuple::row_error;
