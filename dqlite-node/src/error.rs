//! Typed errors of the node.

use std::path::PathBuf;

pub use dqlite_wire::constants::error_code as code;

/// A FAILURE to send to a client: code (SQLite extended code or dqlite code) and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (code {code})")]
pub struct SqlFailure {
    /// The code.
    pub code: u64,
    /// The message.
    pub message: String,
}

impl SqlFailure {
    /// A failure with this code and message.
    pub fn new(code: u64, message: impl Into<String>) -> Self {
        SqlFailure {
            code,
            message: message.into(),
        }
    }

    /// SQLITE_ERROR (1) with a message.
    pub fn error(message: impl Into<String>) -> Self {
        SqlFailure::new(code::ERROR, message)
    }

    /// This node does not lead (10250): the client asks for the leader and retries there.
    pub fn not_leader() -> Self {
        SqlFailure::new(code::NOT_LEADER, "not leader")
    }

    /// Leadership changed under the request (10506). For a write whose commit was proposed,
    /// its outcome is unknown unless the message says otherwise.
    pub fn leadership_lost(message: impl Into<String>) -> Self {
        SqlFailure::new(code::LEADERSHIP_LOST, message)
    }

    /// The connection has no open database (SQLITE_NOTFOUND, as C dqlite answers).
    pub fn no_database() -> Self {
        SqlFailure::new(code::NOTFOUND, "no database opened")
    }

    /// The database worker thread is gone (the node is stopping).
    pub fn worker_stopped() -> Self {
        SqlFailure::error("database worker stopped")
    }

    /// SQLITE_BUSY: the write lock stayed taken until the request's deadline.
    pub fn busy() -> Self {
        SqlFailure::new(code::BUSY, "database is locked")
    }

    /// From a rusqlite error: SQLite's extended code and message.
    pub fn from_sqlite(_conn: &rusqlite::Connection, e: &rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::SqliteFailure(f, msg) => SqlFailure::new(
                f.extended_code as u32 as u64,
                msg.clone()
                    .unwrap_or_else(|| rusqlite::ffi::code_to_str(f.extended_code).to_string()),
            ),
            // A prepare error that names a token: C dqlite answers sqlite3_errmsg() alone,
            // without rusqlite's " in <sql> at offset N" suffix.
            rusqlite::Error::SqlInputError { error, msg, .. } => {
                SqlFailure::new(error.extended_code as u32 as u64, msg.clone())
            }
            other => SqlFailure::error(other.to_string()),
        }
    }

    /// From a VFS error.
    pub fn from_vfs(e: &dqlite_vfs::Error) -> Self {
        match e {
            dqlite_vfs::Error::Sqlite {
                extended_code,
                message,
                ..
            } => SqlFailure::new(*extended_code as u32 as u64, message.clone()),
            dqlite_vfs::Error::Busy { .. } => SqlFailure::busy(),
            other => SqlFailure::error(other.to_string()),
        }
    }

    /// True for SQLITE_BUSY and its extended codes except BUSY_SNAPSHOT (517), which no
    /// amount of waiting fixes.
    pub fn is_busy(&self) -> bool {
        self.code & 0xff == code::BUSY && self.code != code::BUSY_SNAPSHOT
    }
}

/// Errors starting or running a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Binding the listening address failed.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The data directory cannot be used.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The VFS could not be registered.
    #[error("vfs: {0}")]
    Vfs(#[from] dqlite_vfs::Error),
    /// Raft failed to start or stopped.
    #[error("raft: {0}")]
    Raft(String),
    /// Invalid configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The TLS configuration is unusable (which file or setting, and why).
    #[error("tls: {reason}")]
    Tls {
        /// Why.
        reason: String,
    },
    /// Handing leadership over failed (this node may still lead).
    #[error("leadership handover failed: {reason}")]
    Handover {
        /// Why.
        reason: String,
    },
    /// Joining the cluster failed.
    #[error("joining via {address}: {reason}")]
    Join {
        /// The member contacted.
        address: String,
        /// Why it failed.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syntax_error_carries_sqlites_message_alone_like_c_dqlite() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let e = conn.prepare("SELEC 1").err().unwrap();
        let f = SqlFailure::from_sqlite(&conn, &e);
        assert_eq!(f.code, 1);
        assert_eq!(f.message, "near \"SELEC\": syntax error");
    }
}
