//! The state machine side: the trait the application implements, and the adapter that turns it
//! into openraft's [`RaftStateMachine`] with snapshots kept in a [`SnapshotStore`].
//!
//! Model (the one dqlite uses): the application's state is rebuilt on start from the latest
//! snapshot plus the committed log, so the adapter keeps `last_applied` and the membership in
//! memory and in snapshot metadata; the application only applies, snapshots and restores.

use std::future::Future;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::{
    EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, SnapshotMeta, StorageError,
    StoredMembership,
};
use tokio::sync::Mutex;

use crate::TypeConfig;
use crate::error::StoreError;
use crate::log_store::sto_err;
use crate::snapshot::{SnapshotFile, SnapshotPayload, SnapshotStore, read_validated};

/// Error type the application's state machine returns.
pub type SmError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A consistent view of the application state, captured quickly and serialized later on a
/// blocking thread (so that applying can continue while a large snapshot is written).
pub trait SnapshotWriter: Send + 'static {
    /// Writes the snapshot payload.
    fn write_to(self, out: &mut dyn Write) -> io::Result<()>;
}

impl SnapshotWriter for Vec<u8> {
    fn write_to(self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(&self)
    }
}

/// What the application implements: the replicated state machine.
pub trait StateMachine<C: TypeConfig>: Send + Sync + 'static {
    /// The captured view [`StateMachine::snapshot`] returns.
    type Snapshot: SnapshotWriter;

    /// Applies committed entries in order and returns one response per entry, in order.
    /// Blank and membership entries are passed too (the response for them is up to the
    /// application); an error stops the node (openraft treats it as a storage failure).
    fn apply(
        &mut self,
        entries: Vec<openraft::Entry<C>>,
    ) -> impl Future<Output = Result<Vec<C::R>, SmError>> + Send;

    /// Captures the current state (everything applied so far) for a snapshot.
    fn snapshot(&mut self) -> impl Future<Output = Result<Self::Snapshot, SmError>> + Send;

    /// Replaces the whole state with a snapshot's payload (written earlier by
    /// [`SnapshotWriter::write_to`], checksum-verified already).
    fn restore(
        &mut self,
        payload: SnapshotPayload,
    ) -> impl Future<Output = Result<(), SmError>> + Send;
}

struct Inner<C: TypeConfig, S> {
    sm: S,
    last_applied: Option<LogId<C::NodeId>>,
    membership: StoredMembership<C::NodeId, C::Node>,
}

/// openraft's [`RaftStateMachine`] over an application [`StateMachine`] and a snapshot
/// directory.
///
/// Invariant: `last_applied` and `membership` describe exactly the state inside `sm` (they are
/// changed under the same lock, after `sm` accepted the change).
pub struct StateMachineStore<C: TypeConfig, S> {
    inner: Arc<Mutex<Inner<C, S>>>,
    snapshots: Arc<SnapshotStore>,
}

/// Builds snapshots for a [`StateMachineStore`].
pub struct SnapshotBuilder<C: TypeConfig, S> {
    inner: Arc<Mutex<Inner<C, S>>>,
    snapshots: Arc<SnapshotStore>,
}

static SNAPSHOT_NONCE: AtomicU64 = AtomicU64::new(0);

fn sm_err<NID: openraft::NodeId>(verb: ErrorVerb, e: SmError) -> StorageError<NID> {
    StorageError::IO {
        source: openraft::StorageIOError::new(
            ErrorSubject::StateMachine,
            verb,
            openraft::AnyError::from_dyn(&*e, None),
        ),
    }
}

fn snap_err<NID: openraft::NodeId>(verb: ErrorVerb, e: StoreError) -> StorageError<NID> {
    sto_err(ErrorSubject::Snapshot(None), verb, e)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::io("blocking task", "", io::Error::other(e.to_string())))?
}

impl<C: TypeConfig, S: StateMachine<C>> StateMachineStore<C, S> {
    /// Opens the snapshot directory `dir` and restores `sm` from the current snapshot, if any.
    pub async fn open(dir: &Path, mut sm: S) -> Result<Self, StoreError> {
        let snapshots = Arc::new(SnapshotStore::open(dir)?);
        let s2 = snapshots.clone();
        let current = blocking(move || {
            let Some(cur) = s2.current::<C::NodeId, C::Node>()? else {
                return Ok(None);
            };
            let payload = cur.open_payload()?;
            Ok(Some((cur.meta, payload)))
        })
        .await?;
        let (last_applied, membership) = match current {
            Some((meta, payload)) => {
                sm.restore(payload)
                    .await
                    .map_err(|e| StoreError::Snapshot {
                        path: dir.to_path_buf(),
                        reason: format!("restore failed: {e}"),
                    })?;
                (meta.last_log_id, meta.last_membership)
            }
            None => (None, StoredMembership::default()),
        };
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner {
                sm,
                last_applied,
                membership,
            })),
            snapshots,
        })
    }

    /// Runs `f` on the application state machine (for reads), under the apply lock.
    pub async fn with_state<T>(&self, f: impl FnOnce(&S) -> T) -> T {
        f(&self.inner.lock().await.sm)
    }

    /// A second handle on the same state (e.g. for the application to read while openraft owns
    /// the first one).
    pub fn handle(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            snapshots: self.snapshots.clone(),
        }
    }
}

impl<C: TypeConfig, S: StateMachine<C>> RaftSnapshotBuilder<C> for SnapshotBuilder<C, S> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<C>, StorageError<C::NodeId>> {
        let (last_log_id, last_membership, view) = {
            let mut g = self.inner.lock().await;
            let view =
                g.sm.snapshot()
                    .await
                    .map_err(|e| sm_err(ErrorVerb::Read, e))?;
            (g.last_applied.clone(), g.membership.clone(), view)
        };
        let snapshot_id = match &last_log_id {
            Some(l) => format!(
                "{}-{}-{}",
                l.leader_id.term,
                l.index,
                SNAPSHOT_NONCE.fetch_add(1, Ordering::Relaxed)
            ),
            None => format!("0-0-{}", SNAPSHOT_NONCE.fetch_add(1, Ordering::Relaxed)),
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id,
        };
        tracing::info!(snapshot = %meta.snapshot_id, "building a snapshot");
        let store = self.snapshots.clone();
        let m = meta.clone();
        let path = blocking(move || store.create(&m, |w| view.write_to(w)))
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        let file = SnapshotFile::open(&path)
            .await
            .map_err(|e| snap_err(ErrorVerb::Read, e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(file),
        })
    }
}

impl<C: TypeConfig, S: StateMachine<C>> RaftStateMachine<C> for StateMachineStore<C, S> {
    type SnapshotBuilder = SnapshotBuilder<C, S>;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<LogId<C::NodeId>>,
            StoredMembership<C::NodeId, C::Node>,
        ),
        StorageError<C::NodeId>,
    > {
        let g = self.inner.lock().await;
        Ok((g.last_applied.clone(), g.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<C::R>, StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = openraft::Entry<C>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        let Some(last) = entries.last().map(|e| e.log_id.clone()) else {
            return Ok(Vec::new());
        };
        let membership = entries.iter().rev().find_map(|e| match &e.payload {
            EntryPayload::Membership(m) => {
                Some(StoredMembership::new(Some(e.log_id.clone()), m.clone()))
            }
            _ => None,
        });
        let n = entries.len();
        let mut g = self.inner.lock().await;
        let out =
            g.sm.apply(entries)
                .await
                .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        if out.len() != n {
            return Err(sm_err(
                ErrorVerb::Write,
                format!(
                    "state machine returned {} responses for {n} entries",
                    out.len()
                )
                .into(),
            ));
        }
        g.last_applied = Some(last);
        if let Some(m) = membership {
            g.membership = m;
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            inner: self.inner.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<SnapshotFile>, StorageError<C::NodeId>> {
        let f = self
            .snapshots
            .begin_receiving()
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        Ok(Box::new(f))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<C::NodeId, C::Node>,
        snapshot: Box<SnapshotFile>,
    ) -> Result<(), StorageError<C::NodeId>> {
        let mut snapshot = snapshot;
        // tokio's File finishes writes in the background: wait for them before reading the path.
        tokio::io::AsyncWriteExt::flush(&mut *snapshot)
            .await
            .map_err(|e| {
                snap_err(
                    ErrorVerb::Write,
                    StoreError::io("flush", snapshot.path(), e),
                )
            })?;
        let received = snapshot.path().to_path_buf();
        drop(snapshot);
        let store = self.snapshots.clone();
        let m = meta.clone();
        let payload = blocking(move || {
            let path = store.install(&m, &received)?;
            read_validated::<C::NodeId, C::Node>(&path)?.open_payload()
        })
        .await
        .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        let mut g = self.inner.lock().await;
        g.sm.restore(payload)
            .await
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        tracing::info!(
            snapshot = %meta.snapshot_id,
            replaced = ?g.last_applied,
            "installed a snapshot"
        );
        g.last_applied = meta.last_log_id.clone();
        g.membership = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<C>>, StorageError<C::NodeId>> {
        let store = self.snapshots.clone();
        let cur = blocking(move || store.current::<C::NodeId, C::Node>())
            .await
            .map_err(|e| snap_err(ErrorVerb::Read, e))?;
        let Some(cur) = cur else {
            return Ok(None);
        };
        let meta = cur.meta;
        let file = SnapshotFile::open(&cur.path)
            .await
            .map_err(|e| snap_err(ErrorVerb::Read, e))?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(file),
        }))
    }
}
