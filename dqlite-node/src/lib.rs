//! A dqlite node: replicated SQLite over Raft, serving the dqlite wire protocol.
//!
//! ```
//! use dqlite_node::{Node, NodeRole};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! // No join addresses: a fresh data directory bootstraps a one-member cluster.
//! let node = Node::builder(1, "127.0.0.1:0", dir.path()).start().await?;
//! let handle = node.handle().expect("running");
//! let leader = handle.wait_for_leader(Duration::from_secs(10)).await;
//! assert_eq!(leader.map(|l| l.id), Some(1));
//! assert_eq!(handle.role(), NodeRole::Leader);
//! println!("serving dqlite clients on {}", node.local_addr());
//! drop(handle);
//! node.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! To embed a replicated database in a program (role management, readiness, a connected
//! client, handover on shutdown), see [`App`].
//!
//! # Architecture
//!
//! * [`Node`] binds one TCP address. Each accepted stream starts with the dqlite handshake;
//!   a first message of type CONNECT (11) marks a Raft peer and the stream is handed to
//!   `dqlite-raft`, anything else is a client served by the **gateway** (one task per
//!   connection, one request at a time, C dqlite's semantics).
//! * Each open database has a **worker** thread owning its SQLite connections on the
//!   WAL-capturing VFS (`dqlite-vfs`). A write that commits hands its frames to the
//!   **commit pipeline**, which proposes one Raft entry ([`command::Command::Frames`]) and
//!   answers only once the entry is committed and applied; if the proposal fails the commit is
//!   aborted and the client gets 10506 (leadership lost).
//! * The **FSM** applies committed commands in log order on every node and takes snapshots of
//!   all databases (versioned, checksummed).
//! * Reads are linearizable by default (a read-index barrier before each query on the
//!   leader); [`NodeOptions::leader_local_reads`] trades that for latency like C dqlite.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod app;
mod data_dir;
mod database;
mod error;
mod gateway;
mod heap;
mod http;
mod membership;
mod metrics;
mod node;
pub mod recover;
mod replication;
mod tls;

// The crates whose types appear in this crate's API, so that an embedding program uses the
// very versions this crate is built with (openraft is pinned to `=0.9.25`).
/// The Raft storage engine and network ([`NodeOptions::raft`] is its `node::NodeOptions`).
pub use dqlite_raft;
/// The VFS under every database ([`SqlFailure::from_vfs`]); its `rusqlite` re-export is the
/// rusqlite of [`SqlFailure::from_sqlite`].
pub use dqlite_vfs;
/// openraft, pinned to `=0.9.25` ([`NodeHandle::metrics`], [`NodeConfig`]).
pub use openraft;
/// rustls, for the certificate and key types of [`TlsConfig::from_der`].
pub use rustls;

pub use app::{App, AppBuilder};
pub use data_dir::Identity;
pub use error::{NodeError, SqlFailure};
pub use membership::{Member, RoleOptions};
pub use node::{
    DEFAULT_READ_LEASE, LeaderInfo, MemberInfo, MemberRole, Node, NodeBuilder, NodeHandle,
    NodeOptions, NodeRole,
};
pub use replication::{NodeConfig, command};
pub use tls::TlsConfig;

/// SQLITE_IOERR_NOT_LEADER: this node does not lead.
pub const NOT_LEADER: u64 = error::code::NOT_LEADER;
/// SQLITE_IOERR_LEADERSHIP_LOST: leadership changed under a request.
pub const LEADERSHIP_LOST: u64 = error::code::LEADERSHIP_LOST;

// The README's examples are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
