//! Typed errors of the storage engine.

use std::io;
use std::path::PathBuf;

/// Why a frame or header could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Fewer bytes than the fixed part needs.
    #[error("truncated")]
    Short,
    /// The segment does not start with the expected magic bytes.
    #[error("bad magic")]
    BadMagic,
    /// Written by a format version this build does not read.
    #[error("unsupported format version {0}")]
    Version(u8),
    /// The length field is zero, too large, or runs past the end of the file.
    #[error("implausible length {0}")]
    Length(usize),
    /// The checksum does not match the content.
    #[error("checksum mismatch")]
    Checksum,
    /// An unknown record kind.
    #[error("unknown record kind {0}")]
    Kind(u8),
    /// The payload did not decode.
    #[error("payload does not decode: {0}")]
    Payload(String),
}

/// Errors of the log store, the metadata files and the snapshot store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`"open"`, `"fdatasync"`, ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Data before the tail of the log (or a metadata file) is damaged: refusing to guess.
    #[error("corrupt data in {path} at offset {offset}: {reason}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the first bad byte range.
        offset: u64,
        /// What is wrong there.
        reason: FrameError,
    },
    /// The log's records are individually intact but contradict each other (e.g. an index gap).
    #[error("inconsistent log in {path} at offset {offset}: {reason}")]
    Inconsistent {
        /// The file holding the offending record.
        path: PathBuf,
        /// Offset of the offending record.
        offset: u64,
        /// What is inconsistent.
        reason: String,
    },
    /// An earlier fsync failed; the store refuses all further writes (the page cache can no
    /// longer be trusted to match the disk, see "fsyncgate").
    #[error("log store is poisoned after a failed write or fsync; reopen it to recover")]
    Poisoned,
    /// The background I/O thread has stopped.
    #[error("log I/O thread is gone")]
    Closed,
    /// An entry could not be encoded or decoded.
    #[error("codec: {0}")]
    Codec(String),
    /// A snapshot was rejected.
    #[error("snapshot {path}: {reason}")]
    Snapshot {
        /// The snapshot file.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },
    /// Appended entries do not follow the last entry.
    #[error("append of index {got} but the next index is {expected}")]
    NonContiguous {
        /// The index the log expected.
        expected: u64,
        /// The index it got.
        got: u64,
    },
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Converts into an `io::Error` (for openraft callbacks), keeping the message.
    pub fn into_io(self) -> io::Error {
        match self {
            StoreError::Io { source, .. } if source.raw_os_error().is_some() => {
                io::Error::new(source.kind(), source)
            }
            other => io::Error::other(other),
        }
    }
}
