//! [`Database`]: the per-thread handle of one database of the VFS.

use std::hash::{BuildHasher, RandomState};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::connection::{Connection, ConnectionKind};
use crate::error::Error;
use crate::frames::Frames;
use crate::snapshot::{DatabaseFiles, Snapshot};
use crate::storage::ApplyPath;
use crate::vfs::{DbShared, Vfs};

/// Result of [`Database::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// The frames were this database's own polled commit, published as captured (leader).
    /// False: appended as a follower (including when a different pending commit had to be
    /// discarded first).
    pub was_pending: bool,
    /// A pending commit with other content than these frames was discarded first (another
    /// transaction won).
    pub discarded_pending: bool,
    /// A checkpoint ran after the apply.
    pub checkpointed: bool,
}

/// Why [`Database::checkpoint`] did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointOutcome {
    /// The WAL was folded into the main file and truncated.
    Done,
    /// The WAL was empty already.
    NothingToDo,
    /// A polled commit is pending, a transaction is open, or a reader holds a snapshot.
    Busy,
}

pub(crate) struct DbHandle {
    /// Our own connection for checkpoints and for initialising a new database. Declared
    /// first so that it is closed before the claim on the database is released.
    pub maint: Connection,
    pub shared: Arc<DbShared>,
    pub vfs: Vfs,
    _claim: Claim,
}

/// The calling thread's claim on a database; released on drop (after `maint` closed).
struct Claim(Arc<DbShared>);

impl Drop for Claim {
    fn drop(&mut self) {
        *self.0.owner.lock() = None;
    }
}

/// The handle of one database, tied to the thread that opened it (`!Send`).
///
/// All SQLite calls for a database happen on one thread: the one holding this handle and
/// the [`Connection`]s made from it. That is what makes the capture mechanism sound (see
/// the crate docs, "How commits are hidden"). Cloning gives another handle to the same
/// database on the same thread.
#[derive(Clone)]
pub struct Database {
    pub(crate) inner: Rc<DbHandle>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("name", &self.name())
            .finish()
    }
}

fn fresh_salts() -> [u8; 8] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    RandomState::new().hash_one(n).to_le_bytes()
}

impl Database {
    pub(crate) fn open(vfs: Vfs, shared: Arc<DbShared>) -> Result<Self, Error> {
        let claim = Claim(shared.clone());
        let maint = Connection::open_raw(&vfs, &shared.name, ConnectionKind::Maintenance, None)?;
        Ok(Self {
            inner: Rc::new(DbHandle {
                maint,
                shared,
                vfs,
                _claim: claim,
            }),
        })
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.inner.shared.name
    }

    /// The VFS this database lives in.
    pub fn vfs(&self) -> &Vfs {
        &self.inner.vfs
    }

    /// Open a configured connection (see [`Connection`]).
    pub fn connect(&self) -> Result<Connection, Error> {
        Connection::open(self)
    }

    /// Page size in bytes.
    pub fn page_size(&self) -> u32 {
        self.inner.shared.state.lock().page_size
    }

    /// Database size in pages as of the last applied commit.
    pub fn page_count(&self) -> u32 {
        self.inner.shared.state.lock().committed_db_size()
    }

    /// Number of committed frames in the WAL.
    pub fn wal_frames(&self) -> usize {
        self.inner.shared.state.lock().wal.len()
    }

    /// Bytes of memory this database holds (pages, WAL frames, pending commit, WAL-index).
    pub fn memory_usage(&self) -> usize {
        self.inner.shared.state.lock().memory_usage()
    }

    /// True while a captured commit waits for [`apply`](Self::apply) or
    /// [`abort`](Self::abort).
    pub fn has_pending(&self) -> bool {
        self.inner.shared.state.lock().pending.is_some()
    }

    /// Frames of the commit that connection `file_id` captured, once.
    pub(crate) fn poll_file(&self, file_id: u64) -> Option<Frames> {
        self.inner.shared.state.lock().poll(file_id)
    }

    /// Make a committed transaction's frames visible.
    ///
    /// If they are this database's pending (captured) commit, it is published as SQLite
    /// wrote it and the write lock is released (leader path). Otherwise they are appended
    /// with recomputed WAL headers and the WAL-index is invalidated so that readers rebuild
    /// it (follower path); a pending commit that differs is discarded first, since another
    /// transaction won. Fails with [`Error::Busy`] if a local transaction holds the write
    /// lock (retry after it ends), and with [`Error::PageSizeMismatch`] if the page sizes
    /// differ. May checkpoint afterwards (see [`crate::VfsConfig::checkpoint_threshold`]).
    pub fn apply(&self, frames: &Frames) -> Result<ApplyOutcome, Error> {
        let path = {
            let mut st = self.inner.shared.state.lock();
            if frames.page_size() != st.page_size {
                return Err(Error::PageSizeMismatch {
                    database: self.name().into(),
                    expected: st.page_size,
                    got: frames.page_size(),
                });
            }
            st.apply(frames, fresh_salts())
                .map_err(|reason| Error::Busy {
                    database: self.name().into(),
                    reason,
                })?
        };
        let threshold = self.inner.vfs.config().checkpoint_threshold as usize;
        // The frames are applied at this point: a failed checkpoint must not turn this
        // into an error (the caller could apply the entry twice); it is retried later.
        let checkpointed = threshold > 0
            && self.wal_frames() >= threshold
            && matches!(self.checkpoint(), Ok(CheckpointOutcome::Done));
        Ok(ApplyOutcome {
            was_pending: path == ApplyPath::Leader,
            discarded_pending: path == ApplyPath::Follower { discarded: true },
            checkpointed,
        })
    }

    /// Discard the pending commit (leadership lost, entry not committed) and release the
    /// write lock. The database is exactly as before that commit. Returns whether there was
    /// one.
    pub fn abort(&self) -> bool {
        self.inner.shared.state.lock().abort()
    }

    /// Fold the WAL into the main file and truncate it (SQLite TRUNCATE checkpoint), unless
    /// a commit is pending or any connection holds a shm lock (an open read or write
    /// transaction): then [`CheckpointOutcome::Busy`].
    pub fn checkpoint(&self) -> Result<CheckpointOutcome, Error> {
        {
            let st = self.inner.shared.state.lock();
            if st.wal.is_empty() {
                return Ok(CheckpointOutcome::NothingToDo);
            }
            if !st.checkpoint_allowed() {
                return Ok(CheckpointOutcome::Busy);
            }
        }
        let (busy, _log, _done): (i64, i64, i64) = self
            .inner
            .maint
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(|e| Error::sqlite(format!("checkpoint of {:?}", self.name()), e))?;
        Ok(if busy == 0 && self.wal_frames() == 0 {
            CheckpointOutcome::Done
        } else {
            CheckpointOutcome::Busy
        })
    }

    /// A consistent image of the committed database (main file with the WAL overlaid).
    /// Copies no page data; other connections keep reading and writing meanwhile. A
    /// pending (unapplied) commit is not included.
    pub fn snapshot(&self) -> Snapshot {
        let st = self.inner.shared.state.lock();
        Snapshot::from_pages(st.page_size, st.logical_pages())
    }

    /// The main file and WAL images (for DUMP).
    pub fn files(&self) -> DatabaseFiles {
        let st = self.inner.shared.state.lock();
        DatabaseFiles {
            main: st.main_image(),
            wal: st.wal_image(),
        }
    }

    /// Replace the database content with `snapshot`. Connections may stay open but must
    /// not be inside a transaction (no shm lock held) and no commit may be pending;
    /// otherwise [`Error::Busy`]. The page size must be the database's.
    pub fn restore(&self, snapshot: &Snapshot) -> Result<(), Error> {
        if snapshot.page_count() == 0 {
            // Every database has at least page 1 once created; an empty main file would
            // make SQLite discard the WAL and fall back to rollback mode.
            return Err(Error::InvalidSnapshot(
                "a database image has at least one page".into(),
            ));
        }
        {
            let mut st = self.inner.shared.state.lock();
            if snapshot.page_size() != st.page_size {
                return Err(Error::PageSizeMismatch {
                    database: self.name().into(),
                    expected: st.page_size,
                    got: snapshot.page_size(),
                });
            }
            let ps = st.page_size;
            st.restore(ps, snapshot.shared_pages().to_vec(), fresh_salts())
                .map_err(|reason| Error::Busy {
                    database: self.name().into(),
                    reason,
                })?;
        }
        self.checkpoint()?;
        Ok(())
    }
}
