//! The one error type of the client.
//!
//! Every error says which node it concerns (when one is involved) and, for a FAILURE answered by
//! a server, carries the server's code and message. The helper methods answer the questions a
//! caller has: may I retry ([`Error::is_retryable`])? did my write happen
//! ([`Error::is_outcome_unknown`])? is this connection still usable
//! ([`Error::is_connection_error`])?

use std::time::Duration;

/// `SQLITE_IOERR_NOT_LEADER`: the node that answered is not the leader.
pub const CODE_NOT_LEADER: u64 = 10250;
/// `SQLITE_IOERR_LEADERSHIP_LOST`: leadership was lost while the request was in flight; the
/// outcome of a write is unknown.
pub const CODE_LEADERSHIP_LOST: u64 = 10506;
/// `SQLITE_NOTFOUND` as used by dqlite: "no database opened" (also after a leadership change) or
/// "no statement with the given id".
pub const CODE_NOT_FOUND: u64 = 12;
/// Legacy (pre-1.0) not-leader code, still mapped by go-dqlite.
pub const CODE_LEGACY_NOT_LEADER: u64 = 8202;
/// Legacy (pre-1.0) leadership-lost code.
pub const CODE_LEGACY_LEADERSHIP_LOST: u64 = 8458;
/// `SQLITE_BUSY`: the database is locked by another connection's write transaction.
pub const CODE_BUSY: u64 = 5;

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
    #[error("column {column}: cannot convert {found} to {wanted}")]
    Conversion {
        /// Column index.
        column: usize,
        /// The value's type.
        found: &'static str,
        /// The requested type.
        wanted: &'static str,
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
    /// The server's error code, if a server answered with a FAILURE (looking through
    /// [`Error::OutcomeUnknown`]).
    pub fn code(&self) -> Option<u64> {
        match self {
            Error::Server { code, .. } => Some(*code),
            Error::OutcomeUnknown { source } => source.code(),
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
                code: CODE_NOT_LEADER | CODE_LEGACY_NOT_LEADER,
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
                *code == CODE_LEADERSHIP_LOST || *code == CODE_LEGACY_LEADERSHIP_LOST
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
                    CODE_NOT_LEADER
                        | CODE_LEADERSHIP_LOST
                        | CODE_LEGACY_NOT_LEADER
                        | CODE_LEGACY_LEADERSHIP_LOST
                        | 0
                ) || (*code == CODE_NOT_FOUND && self.message() == Some("no database opened"))
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
                matches!(*code, CODE_NOT_LEADER | CODE_LEGACY_NOT_LEADER)
                    || (*code == CODE_NOT_FOUND && message == "no database opened")
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
        let nl = server(CODE_NOT_LEADER, "not leader");
        assert!(nl.is_not_leader() && nl.is_retryable() && nl.is_connection_error());
        assert!(!nl.is_outcome_unknown());

        let lost = server(CODE_LEADERSHIP_LOST, "disk I/O error");
        assert!(lost.is_outcome_unknown() && !lost.is_retryable());

        let nodb = server(CODE_NOT_FOUND, "no database opened");
        assert!(nodb.is_retryable() && nodb.is_connection_error());
        let nostmt = server(CODE_NOT_FOUND, "no statement with the given id");
        assert!(!nostmt.is_retryable() && !nostmt.is_connection_error());

        let unique = server(2067, "UNIQUE constraint failed: t.k");
        assert!(!unique.is_retryable() && !unique.is_connection_error());
        assert_eq!(unique.code(), Some(2067));
        assert_eq!(unique.node(), Some("n1"));

        let wrapped = server(2067, "x").outcome_unknown();
        assert!(wrapped.is_outcome_unknown() && !wrapped.is_retryable());
        assert_eq!(wrapped.code(), Some(2067));
        assert!(matches!(
            wrapped.outcome_unknown(),
            Error::OutcomeUnknown { source } if matches!(*source, Error::Server { .. })
        ));
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
