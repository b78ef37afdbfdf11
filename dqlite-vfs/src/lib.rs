//! An in-memory SQLite VFS that captures the WAL frames of each commit, keeps the commit
//! invisible until it is replicated, and applies replicated frames.
//!
//! ```
//! use dqlite_vfs::{Vfs, VfsConfig};
//!
//! let vfs = Vfs::register("doc-example", VfsConfig::default())?;
//! let leader = vfs.open_database("leader.db")?;
//! let follower = vfs.open_database("follower.db")?;
//!
//! // Write on the leader and capture the commit (one transaction: until it is applied or
//! // aborted, it holds the write lock).
//! let conn = leader.connect()?;
//! conn.execute_batch("BEGIN; CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('hello'); COMMIT")?;
//! let frames = conn.poll().expect("the batch committed");
//!
//! // Not visible yet, not even to a new connection on the leader.
//! let reader = leader.connect()?;
//! let tables: i64 = reader.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
//! assert_eq!(tables, 0);
//!
//! // (Replicate `frames` here: page_size(), db_size(), iter() give everything.)
//! follower.apply(&frames)?;
//! leader.apply(&frames)?;
//!
//! for db in [&leader, &follower] {
//!     let c = db.connect()?;
//!     let x: String = c.query_row("SELECT x FROM t", [], |r| r.get(0))?;
//!     assert_eq!(x, "hello");
//! }
//! assert_eq!(leader.snapshot(), follower.snapshot());
//! # Ok::<(), dqlite_vfs::Error>(())
//! ```
//!
//! # Model
//!
//! - A [`Vfs`] is registered once under a name (`Send + Sync`, cheap to clone). It holds
//!   databases by name: main file pages, WAL frames and the WAL-index, all in memory.
//!   Temporary files go to SQLite's default VFS. Only WAL mode is used: the rollback
//!   journal is accepted and discarded (it is written only once, when a new database is
//!   switched to WAL mode).
//! - [`Vfs::open_database`] ties a database to the calling thread and returns a
//!   [`Database`] handle; [`Database::connect`] opens configured [`Connection`]s. Both are
//!   `!Send`, so every SQLite call on a database runs on that one thread. The VFS also
//!   refuses to open a database's files on any other thread.
//! - After a commit, [`Connection::poll`] returns its [`Frames`]. The commit is invisible
//!   until [`Database::apply`] (same frames: published) or [`Database::abort`]. Followers
//!   call [`Database::apply`] with frames from elsewhere.
//! - [`Database::checkpoint`] (also automatic after `apply` past
//!   [`VfsConfig::checkpoint_threshold`] frames), [`Database::snapshot`],
//!   [`Database::restore`], [`Database::files`] (DUMP), [`Database::memory_usage`].
//!
//! # How commits are hidden (the invariants)
//!
//! This is C dqlite's "classic" mechanism, which is sound because of the single-thread rule:
//!
//! 1. SQLite releases the WAL write lock at the end of every write transaction. At that
//!    moment (in `xShmLock`) the VFS looks at the frames the transaction wrote. Without a
//!    commit frame they are dropped (rollback, spilled cache). With one, they become the
//!    *pending* commit: the WAL-index header is rewound to the last applied commit
//!    (`mxFrame`, `nPage`, frame checksum; header checksum recomputed) and the write lock
//!    stays held on behalf of the pending commit, so no other writer can start.
//! 2. Because SQLite's own header update and our rewind happen within one call on one
//!    thread, no reader can observe the commit in between. Pending frames are not part of
//!    the WAL file's size, so a WAL recovery cannot resurrect them either.
//! 3. `apply` of the pending frames writes back the header SQLite had written and releases
//!    the lock. `apply` of other frames appends them with freshly computed salts and
//!    checksums and zeroes the WAL-index header, so the next reader rebuilds the index
//!    from the WAL. `abort` just releases the lock: SQLite's next writer discards the stale
//!    hash entries beyond `mxFrame` itself.
//! 4. Checkpoints run only with no pending commit and no shm lock held by anyone.
//!
//! See `storage.rs` (`DbState`, `Pending`) and `shm.rs` (`Shm`) for the invariants kept by
//! each type.
#![deny(missing_docs)]

mod connection;
mod database;
mod error;
mod file;
mod format;
mod frames;
pub mod heap;
mod math;
mod shm;
mod snapshot;
mod storage;
mod vfs;

/// The rusqlite this crate is built on: [`Connection`] dereferences to
/// [`rusqlite::Connection`], and its errors and values are rusqlite's.
pub use rusqlite;

pub use connection::Connection;
pub use database::{ApplyOutcome, CheckpointOutcome, Database};
pub use error::Error;
pub use frames::Frames;
pub use snapshot::{DatabaseFiles, Snapshot};
pub use vfs::{Vfs, VfsConfig};

// The README's examples are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
