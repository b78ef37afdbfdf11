//! The one error type of the client.
//!
//! Every error says which node it concerns (when one is involved) and, for a FAILURE answered by
//! a server, carries the server's code and message. The helper methods answer the questions a
//! caller has: may I retry ([`Error::is_retryable`])? did my write happen
//! ([`Error::is_outcome_unknown`])? is this connection still usable
//! ([`Error::is_connection_error`])?

use std::time::Duration;

use dqlite_wire::constants::error_code as code;

/// What a server's FAILURE code means, for the errors a program acts on: [`Error::code`]
/// classifies the raw code ([`Error::raw_code`]) by its SQLite primary code (2067, a UNIQUE
/// violation, is [`ErrorCode::Constraint`]) or its dqlite meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 0: the SQL held no statement (go-dqlite treats it as a bad connection).
    EmptyStatement,
    /// 1 SQLITE_ERROR: SQL error (syntax, missing table, ...).
    Error,
    /// 2 SQLITE_INTERNAL.
    Internal,
    /// 3 SQLITE_PERM.
    Permission,
    /// 4 SQLITE_ABORT.
    Abort,
    /// 5 SQLITE_BUSY (and its extended codes): the database is locked by another writer.
    Busy,
    /// 6 SQLITE_LOCKED: a table is locked.
    Locked,
    /// 7 SQLITE_NOMEM.
    NoMemory,
    /// 8 SQLITE_READONLY.
    ReadOnly,
    /// 9 SQLITE_INTERRUPT: the statement was interrupted.
    Interrupted,
    /// 10 SQLITE_IOERR (other than the two dqlite leadership codes).
    IoError,
    /// 11 SQLITE_CORRUPT.
    Corrupt,
    /// 12 SQLITE_NOTFOUND ("no database opened", "no statement with the given id") and
    /// dqlite's 1002.
    NotFound,
    /// 13 SQLITE_FULL.
    Full,
    /// 14 SQLITE_CANTOPEN.
    CantOpen,
    /// 15 SQLITE_PROTOCOL and dqlite's 1001.
    Protocol,
    /// 17 SQLITE_SCHEMA.
    Schema,
    /// 18 SQLITE_TOOBIG.
    TooBig,
    /// 19 SQLITE_CONSTRAINT and its extended codes (UNIQUE, NOT NULL, CHECK, ...).
    Constraint,
    /// 20 SQLITE_MISMATCH.
    Mismatch,
    /// 21 SQLITE_MISUSE.
    Misuse,
    /// 23 SQLITE_AUTH.
    Auth,
    /// 25 SQLITE_RANGE: a parameter index out of range.
    Range,
    /// 26 SQLITE_NOTADB.
    NotADatabase,
    /// 1005 DQLITE_PARSE: the server could not parse the request (unknown type or schema,
    /// undecodable parameters on classic servers).
    Parse,
    /// 10250 (and the pre-1.0 8202): the node is not the leader.
    NotLeader,
    /// 10506 (and the pre-1.0 8458): leadership was lost while the request was in flight; a
    /// write's outcome is unknown.
    LeadershipLost,
    /// Any other code (see [`Error::raw_code`]).
    Other,
}

impl ErrorCode {
    /// The meaning of a raw FAILURE code.
    pub fn from_raw(raw: u64) -> ErrorCode {
        match raw {
            code::NOT_LEADER | code::LEGACY_NOT_LEADER => return ErrorCode::NotLeader,
            code::LEADERSHIP_LOST | code::LEGACY_LEADERSHIP_LOST => {
                return ErrorCode::LeadershipLost;
            }
            code::DQLITE_PARSE => return ErrorCode::Parse,
            code::DQLITE_PROTO => return ErrorCode::Protocol,
            code::DQLITE_NOTFOUND => return ErrorCode::NotFound,
            code::EMPTY_STATEMENT => return ErrorCode::EmptyStatement,
            _ => {}
        }
        if raw > u64::from(u32::MAX) {
            return ErrorCode::Other;
        }
        match code::primary(raw) {
            code::ERROR => ErrorCode::Error,
            code::INTERNAL => ErrorCode::Internal,
            code::PERM => ErrorCode::Permission,
            code::ABORT => ErrorCode::Abort,
            code::BUSY => ErrorCode::Busy,
            code::LOCKED => ErrorCode::Locked,
            code::NOMEM => ErrorCode::NoMemory,
            code::READONLY => ErrorCode::ReadOnly,
            code::INTERRUPT => ErrorCode::Interrupted,
            code::IOERR => ErrorCode::IoError,
            code::CORRUPT => ErrorCode::Corrupt,
            code::NOTFOUND => ErrorCode::NotFound,
            code::FULL => ErrorCode::Full,
            code::CANTOPEN => ErrorCode::CantOpen,
            code::PROTOCOL => ErrorCode::Protocol,
            code::SCHEMA => ErrorCode::Schema,
            code::TOOBIG => ErrorCode::TooBig,
            code::CONSTRAINT => ErrorCode::Constraint,
            code::MISMATCH => ErrorCode::Mismatch,
            code::MISUSE => ErrorCode::Misuse,
            code::AUTH => ErrorCode::Auth,
            code::RANGE => ErrorCode::Range,
            code::NOTADB => ErrorCode::NotADatabase,
            _ => ErrorCode::Other,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to a dqlite cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with a FAILURE message.
    #[error("{node}: server error {code}: {message}")]
    Server {
        /// The node that answered.
        node: String,
        /// SQLite extended error code or dqlite code (e.g. 10250 not leader).
        code: u64,
        /// The server's message.
        message: String,
    },
    /// A write was sent but its outcome is unknown: the leader lost leadership while it was in
    /// flight (code 10506) or the connection broke before the answer arrived. The write may or
    /// may not have been committed; it is never retried silently.
    #[error("outcome of the request is unknown: {source}")]
    OutcomeUnknown {
        /// What happened.
        source: Box<Error>,
    },
    /// An I/O error on the connection to a node.
    #[error("{node}: {op}: {source}")]
    Io {
        /// The node.
        node: String,
        /// What the client was doing ("connect", "write", "read").
        op: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A connect, read or write did not complete in time.
    #[error("{node}: {op} timed out after {after:?}")]
    Timeout {
        /// The node.
        node: String,
        /// What the client was doing.
        op: &'static str,
        /// The configured limit that was hit.
        after: Duration,
    },
    /// The server closed the connection.
    #[error("{node}: connection closed by the server while waiting for the answer to {request}")]
    Closed {
        /// The node.
        node: String,
        /// The request whose answer was awaited.
        request: &'static str,
    },
    /// The server sent bytes that do not form a valid answer (garbage, a truncated or oversized
    /// message, a field of the wrong type). The connection is unusable afterwards.
    #[error("{node}: malformed answer to {request}: {detail}")]
    Protocol {
        /// The node.
        node: String,
        /// The request whose answer was malformed.
        request: &'static str,
        /// What was wrong (from the codec).
        detail: String,
    },
    /// The server answered with a well-formed message of a type that does not answer the request.
    #[error("{node}: unexpected {got} in answer to {request}")]
    UnexpectedResponse {
        /// The node.
        node: String,
        /// The request.
        request: &'static str,
        /// The response type received.
        got: String,
    },
    /// No node could be confirmed as leader within the configured time.
    #[error("no dqlite leader found among [{}] within {waited:?} ({attempts} sweeps); last error: {}",
        .tried.join(", "), .last.as_ref().map_or_else(|| "none".to_owned(), |e| e.to_string()))]
    NoLeader {
        /// The addresses that were probed.
        tried: Vec<String>,
        /// How many full sweeps were made.
        attempts: u32,
        /// How long the client tried.
        waited: Duration,
        /// The last error seen while probing.
        last: Option<Box<Error>>,
    },
    /// An address could not be parsed or resolved.
    #[error("invalid address {address:?}: {reason}")]
    InvalidAddress {
        /// The address as given.
        address: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The connection is unusable after an earlier error (a broken stream cannot be resynchronised).
    #[error("{node}: connection unusable after an earlier error; open a new one")]
    Broken {
        /// The node.
        node: String,
    },
    /// A value could not be converted to the requested Rust type.
    #[error("column {column}: {source}")]
    Conversion {
        /// The column, as a number (`3`) or a quoted name (`"name"`).
        column: String,
        /// What could not be converted, and why.
        source: crate::FromValueError,
    },
    /// A query that must return a row returned none ([`crate::Database::query_row`]).
    #[error("query returned no rows: {sql}")]
    NoRows {
        /// The SQL.
        sql: String,
    },
    /// No pooled connection came free within the pool's acquire timeout.
    #[error("no connection of the pool came free within {waited:?}")]
    PoolTimeout {
        /// How long the caller waited.
        waited: Duration,
    },
    /// A caller-side misuse (e.g. a parameter that cannot be sent, a column index out of range).
    #[error("invalid use: {0}")]
    Usage(String),
    /// TLS configuration or handshake error.
    #[error("{node}: TLS: {reason}")]
    Tls {
        /// The node ("" for configuration errors).
        node: String,
        /// What failed.
        reason: String,
    },
}

impl Error {
    /// What the server's error code means, if a server answered with a FAILURE (looking
    /// through [`Error::OutcomeUnknown`]); the code itself is [`Error::raw_code`].
    pub fn code(&self) -> Option<ErrorCode> {
        self.raw_code().map(ErrorCode::from_raw)
    }

    /// The server's error code as sent (SQLite extended code or a dqlite code, e.g. 2067 or
    /// 10250), if a server answered with a FAILURE (looking through
    /// [`Error::OutcomeUnknown`]).
    pub fn raw_code(&self) -> Option<u64> {
        match self {
            Error::Server { code, .. } => Some(*code),
            Error::OutcomeUnknown { source } => source.raw_code(),
            _ => None,
        }
    }

    /// The server's message, if a server answered with a FAILURE.
    pub fn message(&self) -> Option<&str> {
        match self {
            Error::Server { message, .. } => Some(message),
            Error::OutcomeUnknown { source } => source.message(),
            _ => None,
        }
    }

    /// The node this error concerns, if any.
    pub fn node(&self) -> Option<&str> {
        match self {
            Error::Server { node, .. }
            | Error::Io { node, .. }
            | Error::Timeout { node, .. }
            | Error::Closed { node, .. }
            | Error::Protocol { node, .. }
            | Error::UnexpectedResponse { node, .. }
            | Error::Broken { node } => Some(node),
            Error::Tls { node, .. } if !node.is_empty() => Some(node),
            Error::OutcomeUnknown { source } => source.node(),
            _ => None,
        }
    }

    /// True when the node that answered is not the leader (10250, or the legacy 8202).
    pub fn is_not_leader(&self) -> bool {
        matches!(
            self,
            Error::Server {
                code: code::NOT_LEADER | code::LEGACY_NOT_LEADER,
                ..
            }
        )
    }

    /// True when the write may or may not have happened: leadership lost while in flight
    /// (10506), or the connection failed after the request was sent.
    pub fn is_outcome_unknown(&self) -> bool {
        match self {
            Error::OutcomeUnknown { .. } => true,
            Error::Server { code, .. } => {
                *code == code::LEADERSHIP_LOST || *code == code::LEGACY_LEADERSHIP_LOST
            }
            _ => false,
        }
    }

    /// True when the connection this error came from cannot be used any more (broken stream,
    /// malformed input, timeout) or lost its state on the server (no database opened after a
    /// leadership change, not leader): the caller must reconnect, possibly to another node.
    pub fn is_connection_error(&self) -> bool {
        match self {
            Error::Io { .. }
            | Error::Timeout { .. }
            | Error::Closed { .. }
            | Error::Protocol { .. }
            | Error::UnexpectedResponse { .. }
            | Error::Broken { .. }
            | Error::Tls { .. } => true,
            Error::Server { code, .. } => {
                matches!(
                    *code,
                    code::NOT_LEADER
                        | code::LEADERSHIP_LOST
                        | code::LEGACY_NOT_LEADER
                        | code::LEGACY_LEADERSHIP_LOST
                        | code::EMPTY_STATEMENT
                ) || (*code == code::NOTFOUND && self.message() == Some("no database opened"))
            }
            Error::OutcomeUnknown { source } => source.is_connection_error(),
            _ => false,
        }
    }

    /// True when repeating the same request on a fresh connection to the (new) leader is safe
    /// and may succeed: the server refused it before doing anything (not leader, no database
    /// opened) or no connection could be made. Never true for an unknown outcome.
    pub fn is_retryable(&self) -> bool {
        if self.is_outcome_unknown() {
            return false;
        }
        match self {
            Error::Server { code, message, .. } => {
                matches!(*code, code::NOT_LEADER | code::LEGACY_NOT_LEADER)
                    || (*code == code::NOTFOUND && message == "no database opened")
            }
            Error::Io { op, .. } | Error::Timeout { op, .. } => *op == "connect",
            Error::NoLeader { .. } => true,
            _ => false,
        }
    }

    /// Wrap as [`Error::OutcomeUnknown`] (no-op if it already is one).
    pub(crate) fn outcome_unknown(self) -> Error {
        match self {
            e @ Error::OutcomeUnknown { .. } => e,
            e => Error::OutcomeUnknown {
                source: Box::new(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: u64, message: &str) -> Error {
        Error::Server {
            node: "n1".into(),
            code,
            message: message.into(),
        }
    }

    #[test]
    fn classification() {
        let nl = server(code::NOT_LEADER, "not leader");
        assert_eq!(nl.code(), Some(ErrorCode::NotLeader));
        assert!(nl.is_not_leader() && nl.is_retryable() && nl.is_connection_error());
        assert!(!nl.is_outcome_unknown());

        let lost = server(code::LEADERSHIP_LOST, "disk I/O error");
        assert_eq!(lost.code(), Some(ErrorCode::LeadershipLost));
        assert!(lost.is_outcome_unknown() && !lost.is_retryable());

        let nodb = server(code::NOTFOUND, "no database opened");
        assert!(nodb.is_retryable() && nodb.is_connection_error());
        let nostmt = server(code::NOTFOUND, "no statement with the given id");
        assert!(!nostmt.is_retryable() && !nostmt.is_connection_error());

        let unique = server(2067, "UNIQUE constraint failed: t.k");
        assert!(!unique.is_retryable() && !unique.is_connection_error());
        assert_eq!(unique.code(), Some(ErrorCode::Constraint));
        assert_eq!(unique.raw_code(), Some(2067));
        assert_eq!(unique.node(), Some("n1"));

        let wrapped = server(2067, "x").outcome_unknown();
        assert!(wrapped.is_outcome_unknown() && !wrapped.is_retryable());
        assert_eq!(wrapped.raw_code(), Some(2067));
        assert!(matches!(
            wrapped.outcome_unknown(),
            Error::OutcomeUnknown { source } if matches!(*source, Error::Server { .. })
        ));
    }

    #[test]
    fn codes_are_typed() {
        for (raw, kind) in [
            (0, ErrorCode::EmptyStatement),
            (1, ErrorCode::Error),
            (5, ErrorCode::Busy),
            (517, ErrorCode::Busy),
            (6, ErrorCode::Locked),
            (9, ErrorCode::Interrupted),
            (12, ErrorCode::NotFound),
            (1002, ErrorCode::NotFound),
            (19, ErrorCode::Constraint),
            (1299, ErrorCode::Constraint),
            (25, ErrorCode::Range),
            (1005, ErrorCode::Parse),
            (8202, ErrorCode::NotLeader),
            (8458, ErrorCode::LeadershipLost),
            (778, ErrorCode::IoError),
            (99, ErrorCode::Other),
            (1 << 40, ErrorCode::Other),
        ] {
            assert_eq!(ErrorCode::from_raw(raw), kind, "{raw}");
        }
    }

    #[test]
    fn messages_name_the_node() {
        let e = Error::Timeout {
            node: "127.0.0.1:9001".into(),
            op: "read",
            after: Duration::from_secs(2),
        };
        assert_eq!(e.to_string(), "127.0.0.1:9001: read timed out after 2s");
        let e = Error::NoLeader {
            tried: vec!["a:1".into(), "b:2".into()],
            attempts: 3,
            waited: Duration::from_secs(1),
            last: None,
        };
        assert!(e.to_string().contains("[a:1, b:2]"));
        assert!(e.is_retryable());
    }
}
