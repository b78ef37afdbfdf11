//! Sans-IO codec of the dqlite client wire protocol.
//!
//! ```
//! use dqlite_wire::{Framer, Request, Response, ResponseContext, Value, Params};
//!
//! // A client encodes a request: 8-byte header + body, all padding zero.
//! let request = Request::exec_sql(
//!     "INSERT INTO t VALUES(?, ?)",
//!     vec![Value::Integer(42), Value::Text("hi".into())],
//! );
//! let bytes = request.to_bytes()?;
//! assert_eq!(bytes.len(), 8 + 8 * 8);
//!
//! // A server frames the stream (here the handshake, then the request in two chunks)...
//! let mut framer = Framer::server();
//! framer.push(&dqlite_wire::ProtocolVersion::V1.to_bytes());
//! framer.push(&bytes[..5]);
//! assert!(framer.next_handshake()?.is_some());
//! assert!(framer.next_frame()?.is_none());
//! framer.push(&bytes[5..]);
//! let frame = framer.next_frame()?.expect("a whole message");
//!
//! // ...and decodes it.
//! let decoded = frame.decode_request()?;
//! assert_eq!(decoded, request);
//!
//! // Responses need to know what they answer.
//! let reply = Response::Result { last_insert_id: 1, rows_affected: 1 }.to_bytes()?;
//! let ctx = ResponseContext::for_request(&decoded);
//! let response = Response::decode_message(&reply, &ctx)?;
//! assert_eq!(response, Response::Result { last_insert_id: 1, rows_affected: 1 });
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! This crate knows bytes, not sockets: it decodes and encodes every request and response
//! of the protocol spoken by C dqlite 1.x and its clients, byte for byte (see the
//! [protocol reference](https://github.com/dqlite-rs/dqlite-rs/blob/main/docs/wire-protocol.md)
//! in the repository's `docs/`).
//!
//! * [`Header`]: the 8-byte message header; [`Framer`] cuts a byte stream into [`Frame`]s,
//!   with a maximum body size, and reads the server-side [`ProtocolVersion`] handshake.
//! * [`Request`] and [`Response`]: one variant per message type and schema, with `encode` /
//!   `to_bytes` (header included) and `decode(header, body)`. Responses need a
//!   [`ResponseContext`] (which request they answer, legacy handshake, CLUSTER format).
//! * [`Value`] / [`ValueRef`]: the eight value types; [`Params`]: parameter tuples (schema 0
//!   u8 count or schema 1 u32 count, chosen automatically above 255 values; omitted vs empty
//!   kept apart); [`RowsBatch`]: a ROWS message.
//! * [`RowsEncoder`]: server-side batching with C's 4096-byte budget; [`RowsReader`]:
//!   client-side zero-copy row iteration; [`RowsBatchRef`]: a whole batch with borrowed
//!   values in one vector.
//! * [`parse`]: the [`nom`] parsers every decoder above is made of, public for clients that
//!   build their own decoders (their error, [`parse::Error`], names message, field and
//!   position).
//! * [`time`]: ISO-8601 texts as go-dqlite writes and reads them; [`constants`]: type codes,
//!   markers and the FAILURE codes by name.
//! * Errors: [`DecodeError`] (message, field, body offset, [`DecodeErrorKind`]),
//!   [`RequestError`] (sorted by what a server does: close vs FAILURE), [`EncodeError`],
//!   [`FrameError`].
//!
//! Decoding never panics, tolerates any padding content, and never allocates more than the
//! input justifies: every count read from the wire is checked against the bytes left.
//! Encoding writes zero padding, so `encode(decode(bytes)) == bytes` for every message except
//! where the input had non-zero padding (C servers leave stale bytes in blob padding), a
//! non-zero unused word (LEADER, EMPTY, DB padding, NULL values, header `extra`) or bytes after
//! the last field of a request (ignored, as C servers do).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod cluster;
pub mod constants;
mod error;
mod foreign;
mod framer;
mod header;
pub mod parse;
mod primitive;
mod request;
mod response;
mod rows;
pub mod time;
mod tuple;
mod value;

pub use cluster::{File, NodeAddress, NodeInfo, Role};
pub use error::{DecodeError, DecodeErrorKind, EncodeError, FrameError, RequestError};
pub use framer::{Frame, Framer, ProtocolVersion};
pub use header::Header;
pub use request::{Request, RequestType};
pub use response::{Failure, Response, ResponseContext, ResponseType};
pub use rows::{Row, RowsBatch, RowsBatchRef, RowsEncoder, RowsEnd, RowsPrefix, RowsReader};
pub use tuple::{AsValueRef, MAX_SCHEMA0_PARAMS, Params, ParamsSchema};
pub use value::{Value, ValueRef, ValueType};

/// The parser library of [`parse`], re-exported so that callers combine its parsers with the
/// same nom version.
pub use nom;

// The README's examples are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
