//! A durable Raft storage engine and TCP network for [openraft] 0.9 (storage-v2).
//!
//! ```
//! use std::time::Duration;
//! use dqlite_raft::network::TcpConnector;
//! use dqlite_raft::node::{NodeOptions, RaftNode};
//! use dqlite_raft::testing::{DigestStateMachine, TestConfig};
//! use openraft::{BasicNode, ServerState};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! // Log segments go to dir/log, snapshots to dir/snapshots.
//! let node = RaftNode::<TestConfig, _>::start(
//!     1,
//!     dir.path(),
//!     NodeOptions::default(),
//!     DigestStateMachine::default(),
//!     TcpConnector::default(),
//! )
//! .await?;
//! node.initialize([(1, BasicNode::new("127.0.0.1:9001"))].into()).await?;
//! node.raft()
//!     .wait(Some(Duration::from_secs(5)))
//!     .state(ServerState::Leader, "single member elects itself")
//!     .await?;
//!
//! // Returns once the entry is fsynced (on a majority, here: this node) and applied.
//! let proposed = node.propose(b"hello".to_vec()).await?;
//! assert_eq!(proposed.response, 1); // DigestStateMachine answers with its entry count
//! node.read_barrier().await?; // linearizable reads from here on
//! node.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Pieces
//! - [`log_store::LogStore`]: openraft's `RaftLogStorage` over preallocated segment files;
//!   every record framed with length + CRC32C ([`frame`]), group commit on a dedicated I/O
//!   thread, conflict truncation and purge as records (live data is never rewritten),
//!   poisoning after a failed fsync. The vote is an atomically replaced file ([`atomic_file`]).
//! - [`recovery`]: on open, a torn tail is cut and reported; damage before the tail is
//!   [`error::StoreError::Corrupt`] naming file and offset.
//! - [`state_machine`]: the [`state_machine::StateMachine`] trait an application implements,
//!   and the openraft `RaftStateMachine` adapter with self-validating snapshot files
//!   ([`snapshot`]).
//! - [`reconfigure`]: disaster recovery, rewriting the membership of a stopped member.
//! - [`network`]: openraft's RPCs over any byte stream, framed with version, length and
//!   CRC32C; [`network::Connector`]s for TCP, TLS and a preamble (for sharing a port).
//! - [`node::RaftNode`]: the facade the rest of an application talks to.
//!
//! Type configurations: anything implementing [`TypeConfig`] (declare it with
//! `openraft::declare_raft_types!` using `openraft::Entry<Self>` entries,
//! [`snapshot::SnapshotFile`] snapshot data and the tokio runtime); see `testing::TestConfig`.
//!
//! # Features
//! - `testing`: the `testing` module, a small state machine and type configuration for tests,
//!   benches and examples (the example above uses it). Not part of the stable API.
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
mod read_barrier;
pub mod reconfigure;
pub mod recovery;
pub mod segment;
pub mod snapshot;
pub mod state_machine;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

/// The openraft this crate is built on (pinned to `=0.9.25`): its types appear in this crate's
/// API (`openraft::Config`, `Raft`, `RaftMetrics`, `Entry`, …), so use them from here.
pub use openraft;

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

// The README's examples are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
