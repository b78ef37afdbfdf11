//! A durable Raft storage engine and TCP network for openraft.
//!
//! ```
//! use dqlite_raft::log_store::{LogConfig, LogStore};
//! use dqlite_raft::testing::TestConfig;
//! use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let (mut log, report) = LogStore::<TestConfig>::open(dir.path(), LogConfig::default())?;
//! assert!(report.torn_tail.is_none());
//! let entry = Entry {
//!     log_id: LogId::new(CommittedLeaderId::new(1, 1), 0),
//!     payload: EntryPayload::Normal(b"hello".to_vec()),
//! };
//! log.append_durable([entry]).await?; // returns once fdatasync covered it
//! assert_eq!(log.reader().read_range(0..1)?.len(), 1);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod atomic_file;
pub mod error;
pub mod frame;
pub mod index;
mod io_thread;
pub mod log_store;
pub mod network;
pub mod node;
pub mod recovery;
pub mod segment;
pub mod snapshot;
pub mod state_machine;
pub mod testing;

use openraft::{Entry, RaftTypeConfig};

/// What the log store needs of an openraft type configuration: openraft's own [`Entry`] type
/// and a cloneable application payload (entries are cached and handed out by value).
///
/// Implemented automatically for every matching configuration.
pub trait LogTypes: RaftTypeConfig<Entry = Entry<Self>, D: Clone> {}

impl<T> LogTypes for T where T: RaftTypeConfig<Entry = Entry<T>, D: Clone> {}

/// What the whole engine needs of an openraft type configuration: [`LogTypes`], snapshots as
/// [`snapshot::SnapshotFile`]s, and the tokio runtime.
///
/// Implemented automatically for every matching configuration; declare yours with
/// `openraft::declare_raft_types!` (see the crate example).
pub trait TypeConfig:
    LogTypes<
        SnapshotData = snapshot::SnapshotFile,
        AsyncRuntime = openraft::TokioRuntime,
        Responder = openraft::impls::OneshotResponder<Self>,
    >
{
}

impl<T> TypeConfig for T where
    T: LogTypes<
            SnapshotData = snapshot::SnapshotFile,
            AsyncRuntime = openraft::TokioRuntime,
            Responder = openraft::impls::OneshotResponder<T>,
        >
{
}
