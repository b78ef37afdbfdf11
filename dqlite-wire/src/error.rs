//! Typed errors of decoding, encoding and framing.

use std::borrow::Cow;

use crate::request::RequestType;

/// What was wrong with a field that failed to decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The field needs more bytes than the body has left.
    #[error("truncated: needs {needed} bytes, {available} left")]
    Truncated {
        /// Bytes the field needs.
        needed: u64,
        /// Bytes left in the body.
        available: usize,
    },
    /// A text field has no NUL terminator before the end of the body.
    #[error("text has no NUL terminator")]
    MissingNul,
    /// A text field is not valid UTF-8.
    #[error("text is not valid UTF-8")]
    InvalidUtf8,
    /// A value type code that is not one of 1-5, 9-11.
    #[error("unknown value type {0}")]
    UnknownValueType(u8),
    /// Type 9 (UNIXTIME) in a parameter tuple: servers never accept it.
    #[error("UNIXTIME (type 9) is not accepted as a parameter")]
    UnixTimeParam,
    /// A ROWS batch ends with a word that is neither the PART nor the DONE marker.
    #[error("bad ROWS end marker {0:#018x}")]
    BadMarker(u64),
    /// A count that the remaining bytes cannot possibly hold.
    #[error("count {count} cannot fit in the {available} bytes left")]
    CountTooLarge {
        /// The count read from the wire.
        count: u64,
        /// Bytes left in the body.
        available: usize,
    },
    /// Bytes left over after the last field of a message that does not allow them.
    #[error("{0} unexpected trailing bytes")]
    TrailingBytes(usize),
    /// A role code that is not 0 (voter), 1 (stand-by) or 2 (spare).
    #[error("unknown role {0}")]
    UnknownRole(u64),
    /// A response type code this crate does not know.
    #[error("unknown response type {0}")]
    UnknownResponseType(u8),
    /// A header schema byte that this message type does not have.
    #[error("unsupported schema {0}")]
    UnsupportedSchema(u8),
    /// A FAILURE answering a query has leftover bytes that do not parse as a ROWS prefix
    /// followed by code and message.
    #[error("FAILURE body is neither code + message nor a ROWS prefix + code + message")]
    BadFailurePrefix,
    /// A request type code this crate does not know.
    #[error("unknown request type {0}")]
    UnknownRequestType(u8),
    /// A handshake with a protocol version that is neither 1 nor the legacy one.
    #[error("unknown protocol version {0:#x}")]
    UnknownProtocolVersion(u64),
    /// A nom combinator of a caller's parser failed (see [`crate::parse`]).
    #[error("{}", .0.description())]
    Nom(nom::error::ErrorKind),
}

/// A message body that failed to decode: which message, which field, at which body offset.
///
/// `offset` counts bytes from the start of the body (the 8-byte header is not included).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}: field `{field}` at body offset {offset}: {kind}")]
pub struct DecodeError {
    /// Name of the message being decoded, e.g. `"EXEC_SQL"` or `"ROWS"`.
    pub message: &'static str,
    /// The field that failed, e.g. `"sql"`, `"params[2]"` or `"rows[3][1]"`.
    pub field: Cow<'static, str>,
    /// Byte offset of the failing field within the body.
    pub offset: usize,
    /// What was wrong.
    pub kind: DecodeErrorKind,
}

impl DecodeError {
    /// Builds an error.
    pub fn new(
        message: &'static str,
        field: impl Into<Cow<'static, str>>,
        offset: usize,
        kind: DecodeErrorKind,
    ) -> Self {
        DecodeError {
            message,
            field: field.into(),
            offset,
            kind,
        }
    }
}

/// Why a request could not be decoded, sorted by what a server should do about it
/// (wire-protocol.md §11.2).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The header's type code is not a known request: answer FAILURE(1005,
    /// "unrecognized request type") and keep the connection.
    #[error("unrecognized request type {0}")]
    UnknownType(u8),
    /// The header's schema byte is not one this request has: answer FAILURE (1005 on classic
    /// servers, 1 on HEAD for the params-carrying requests) and keep the connection.
    #[error("{request}: unrecognized schema version {schema}")]
    UnsupportedSchema {
        /// The request type.
        request: RequestType,
        /// The schema byte received.
        schema: u8,
    },
    /// A fixed field (ids, texts) is truncated or malformed: C servers close the connection
    /// without answering.
    #[error(transparent)]
    Malformed(DecodeError),
    /// The fixed fields decoded but the parameter tuple did not (truncated header, unknown or
    /// UNIXTIME value type, truncated values): answer FAILURE ("bind parameters") and keep the
    /// connection.
    #[error("{}: undecodable parameters: {error}", partial.request_type())]
    Params {
        /// The request with its fixed fields decoded and its params omitted.
        partial: Box<crate::Request>,
        /// What was wrong with the tuple.
        error: DecodeError,
    },
}

impl RequestError {
    /// The FAILURE a classic (≤ v1.18.1) C server answers with, or `None` when it closes the
    /// connection instead (a malformed fixed field).
    pub fn classic_failure(&self) -> Option<(u64, &'static str)> {
        use crate::constants::error_code::DQLITE_PARSE;
        match self {
            RequestError::UnknownType(_) => Some((DQLITE_PARSE, "unrecognized request type")),
            RequestError::UnsupportedSchema { .. } => {
                Some((DQLITE_PARSE, "unrecognized schema version"))
            }
            RequestError::Malformed(_) => None,
            RequestError::Params { .. } => Some((DQLITE_PARSE, "bind parameters")),
        }
    }
}

/// A message that cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A text field contains a NUL byte, which would truncate it on the wire.
    #[error("{message}: field `{field}` contains a NUL byte")]
    NulInText {
        /// Message name.
        message: &'static str,
        /// Field name.
        field: Cow<'static, str>,
    },
    /// A UNIXTIME value in a parameter tuple: servers never accept it.
    #[error("{message}: params[{index}] is UNIXTIME, which servers never accept as a parameter")]
    UnixTimeParam {
        /// Message name.
        message: &'static str,
        /// Index of the offending parameter.
        index: usize,
    },
    /// The body would be longer than the header's u32 word count can express.
    #[error("{message}: body of {len} bytes is too large for one message")]
    TooLarge {
        /// Message name.
        message: &'static str,
        /// Body length in bytes.
        len: usize,
    },
    /// The values of a row do not match the batch's column count.
    #[error("ROWS: row has {got} values but the batch has {expected} columns")]
    ColumnCount {
        /// Number of columns of the batch.
        expected: usize,
        /// Number of values in the row.
        got: usize,
    },
}

/// A byte stream that cannot be split into messages. After one of these the stream is
/// unusable: close the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The header announces a body larger than the configured maximum. Raised from the header
    /// alone, before buffering or allocating anything for the body.
    #[error("message type {type_code}: body of {words} words exceeds the {max} byte limit")]
    BodyTooLarge {
        /// Word count from the header.
        words: u32,
        /// Message type code from the header.
        type_code: u8,
        /// Configured maximum body size in bytes.
        max: usize,
    },
    /// The header announces an empty body (`words == 0`), which no message has (a C server
    /// hangs or aborts on it).
    #[error("message type {type_code}: zero-length body")]
    EmptyBody {
        /// Message type code from the header.
        type_code: u8,
    },
    /// The handshake carries an unknown protocol version (a C server closes silently).
    #[error("unknown protocol version {0:#x}")]
    UnknownVersion(u64),
    /// A message was asked for while the server-side handshake has not been read yet.
    #[error("handshake not read yet")]
    HandshakePending,
    /// A handshake was asked for but the framer is not expecting one.
    #[error("no handshake expected")]
    NoHandshakeExpected,
    /// An earlier error made the stream unusable.
    #[error("stream already failed: {0}")]
    Poisoned(Box<FrameError>),
}
