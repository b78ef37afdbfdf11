//! Typed errors of the crate.

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQLite returned an error.
    #[error("{context}: SQLite error {code} (extended {extended_code}): {message}")]
    Sqlite {
        /// What we were doing.
        context: String,
        /// Primary result code (`extended_code & 0xff`).
        code: i32,
        /// Extended result code.
        extended_code: i32,
        /// SQLite's error message.
        message: String,
    },
    /// A rusqlite error that is not an SQLite result code (type conversion, etc.).
    #[error("{context}: {source}")]
    Rusqlite {
        /// What we were doing.
        context: String,
        /// The underlying error.
        source: rusqlite::Error,
    },
    /// The database is busy: a polled commit is pending, a local transaction holds the
    /// write lock, or readers prevent the operation. Retry later.
    #[error("database {database:?} is busy: {reason}")]
    Busy {
        /// Database name.
        database: String,
        /// Why.
        reason: String,
    },
    /// The database is already driven by another thread (or by another [`Database`] handle
    /// on this thread).
    ///
    /// [`Database`]: crate::Database
    #[error("database {0:?} is already open on another thread or handle")]
    AlreadyOpen(String),
    /// The database name cannot be used (empty, NUL byte, or reserved suffix).
    #[error("invalid database name {0:?}")]
    InvalidName(String),
    /// The frames or page size do not fit the database.
    #[error("database {database:?}: page size {got} does not match the database's {expected}")]
    PageSizeMismatch {
        /// Database name.
        database: String,
        /// The database's page size.
        expected: u32,
        /// The page size given.
        got: u32,
    },
    /// Malformed frames.
    #[error("invalid frames: {0}")]
    InvalidFrames(String),
    /// A malformed snapshot or file image.
    #[error("invalid snapshot: {0}")]
    InvalidSnapshot(String),
    /// Invalid configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Registering the VFS with SQLite failed.
    #[error("registering VFS {name:?} failed with SQLite code {code}")]
    Register {
        /// VFS name.
        name: String,
        /// SQLite result code.
        code: i32,
    },
}

impl Error {
    /// Map a rusqlite error, keeping SQLite's code and message, with `context` saying what
    /// was being done.
    pub fn sqlite(context: impl Into<String>, e: rusqlite::Error) -> Self {
        let context = context.into();
        match e {
            rusqlite::Error::SqliteFailure(f, msg) => Error::Sqlite {
                context,
                code: f.extended_code & 0xff,
                extended_code: f.extended_code,
                message: msg.unwrap_or_else(|| f.to_string()),
            },
            source => Error::Rusqlite { context, source },
        }
    }

    /// The SQLite extended result code, if this is an SQLite error.
    pub fn sqlite_code(&self) -> Option<i32> {
        match self {
            Error::Sqlite { extended_code, .. } => Some(*extended_code),
            _ => None,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::sqlite("executing SQL", e)
    }
}
