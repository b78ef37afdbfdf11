//! Disaster recovery: rewriting the membership of a **stopped** member whose quorum is gone
//! for good (C dqlite's `dqlite_node_recover_ext`, go-dqlite's `ReconfigureMembershipExt`).
//!
//! [`rewrite_membership`] appends one membership entry to the member's log, after its last
//! entry (or after its snapshot, if the snapshot reaches further), with a term higher than any
//! the member has seen or voted in, and records a vote for itself in that term (not a
//! leader's). openraft takes the newest membership entry of the log as the configuration in
//! force, so when the member starts again it runs with the new membership: as the only voter it
//! elects itself and commits every entry its log holds — every write that was acknowledged to a
//! client is among them if this member was the most up-to-date survivor ([`inspect`] tells
//! which one that is: the highest `last_log_id`).
//!
//! On disk: one entry record appended to the active segment of `log/` (fsynced), the `log/vote`
//! file replaced atomically. Nothing is rewritten or deleted (if the snapshot reaches past the
//! log, a purge record up to the snapshot is appended first so that the new entry follows it).
//!
//! Run it on one member only, then start that member alone (or with members that start from
//! an empty data directory, or from a copy of its directory): a second survivor recovered on
//! its own would hold a different history under the same term.
//!
//! ```
//! use std::collections::{BTreeMap, BTreeSet};
//! use dqlite_raft::reconfigure::{inspect, rewrite_membership};
//! use dqlite_raft::testing::TestConfig;
//! use openraft::{BasicNode, Membership};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # {
//! #     use openraft::storage::RaftLogStorage;
//! #     let (mut log, _) = dqlite_raft::log_store::LogStore::<TestConfig>::open(
//! #         &dir.path().join("log"), Default::default())?;
//! #     let e = openraft::Entry::<TestConfig> {
//! #         log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(3, 1), 1),
//! #         payload: openraft::EntryPayload::Normal(vec![1]),
//! #     };
//! #     log.append_durable([e]).await?;
//! #     log.save_vote(&openraft::Vote::new_committed(3, 1)).await?;
//! #     let waiter = log.close_waiter();
//! #     drop(log);
//! #     waiter.wait();
//! # }
//! // Member 2's data directory; members 1 and 3 are lost for good.
//! let before = inspect::<TestConfig>(dir.path()).await?;
//! let nodes = BTreeMap::from([(2, BasicNode::new("10.0.0.2:9001"))]);
//! let membership = Membership::new(vec![BTreeSet::from([2])], nodes);
//! let done = rewrite_membership::<TestConfig>(dir.path(), 2, membership).await?;
//! assert_eq!(done.appended.index, before.last_log_id.unwrap().index + 1);
//! assert!(done.appended.leader_id.term > before.last_log_id.unwrap().leader_id.term);
//! # Ok(())
//! # }
//! ```

use std::path::Path;

use openraft::storage::RaftLogStorage;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership, Vote};

use crate::TypeConfig;
use crate::error::StoreError;
use crate::log_store::{LogConfig, LogStore};
use crate::snapshot::SnapshotStore;

/// What a stopped member's data directory holds, for choosing whom to recover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary<NID: openraft::NodeId> {
    /// The last entry of the log, or of the snapshot if it reaches further.
    pub last_log_id: Option<LogId<NID>>,
    /// The last committed entry the member knew of (a hint; may lag).
    pub committed: Option<LogId<NID>>,
    /// The saved vote.
    pub vote: Option<Vote<NID>>,
}

/// What [`rewrite_membership`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconfigured<NID: openraft::NodeId> {
    /// The member's state before.
    pub before: Summary<NID>,
    /// Where the new membership entry went.
    pub appended: LogId<NID>,
}

/// Errors of [`inspect`] and [`rewrite_membership`].
#[derive(Debug, thiserror::Error)]
pub enum ReconfigureError {
    /// The storage could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The directory holds no log and no snapshot: nothing to recover.
    #[error("{0}: no Raft log or snapshot here (never initialized?)")]
    Empty(String),
    /// openraft's storage call failed.
    #[error("storage: {0}")]
    Storage(String),
}

async fn open<C: TypeConfig>(
    dir: &Path,
) -> Result<(LogStore<C>, Summary<C::NodeId>, Option<LogId<C::NodeId>>), ReconfigureError> {
    let (mut log, _) = LogStore::<C>::open(&dir.join("log"), LogConfig::default())?;
    let snapshot_dir = dir.join("snapshots");
    let snapshot = if snapshot_dir.exists() {
        SnapshotStore::open(&snapshot_dir)?
            .current::<C::NodeId, C::Node>()?
            .and_then(|s| s.meta.last_log_id)
    } else {
        None
    };
    let state = log.log_state();
    let vote = log
        .read_vote()
        .await
        .map_err(|e| ReconfigureError::Storage(e.to_string()))?;
    let committed = log
        .read_committed()
        .await
        .map_err(|e| ReconfigureError::Storage(e.to_string()))?;
    let last_log_id = state.last_log_id.clone().max(snapshot.clone());
    let summary = Summary {
        last_log_id,
        committed,
        vote,
    };
    Ok((
        log,
        summary,
        state.last_log_id.max(state.last_purged_log_id),
    ))
}

async fn close<C: TypeConfig>(log: LogStore<C>) {
    let waiter = log.close_waiter();
    drop(log);
    let _ = tokio::task::spawn_blocking(move || waiter.wait()).await;
}

/// The last entry, committed hint and vote of the stopped member whose data directory (the one
/// given to [`RaftNode::start`](crate::node::RaftNode::start)) is `dir`.
pub async fn inspect<C: TypeConfig>(dir: &Path) -> Result<Summary<C::NodeId>, ReconfigureError> {
    let (log, summary, _) = open::<C>(dir).await?;
    close(log).await;
    Ok(summary)
}

/// Makes `membership` the configuration of the stopped member `me` whose data directory is
/// `dir` (see the module documentation for what it writes and how to use it).
pub async fn rewrite_membership<C: TypeConfig>(
    dir: &Path,
    me: C::NodeId,
    membership: Membership<C::NodeId, C::Node>,
) -> Result<Reconfigured<C::NodeId>, ReconfigureError> {
    let (mut log, before, log_last) = open::<C>(dir).await?;
    let Some(last) = before.last_log_id.clone() else {
        close(log).await;
        return Err(ReconfigureError::Empty(dir.display().to_string()));
    };
    let result = async {
        if log_last.as_ref().is_none_or(|l| l.index < last.index) {
            // The snapshot reaches past the log: the new entry must follow the snapshot.
            log.purge(last.clone())
                .await
                .map_err(|e| ReconfigureError::Storage(e.to_string()))?;
        }
        let term = before
            .vote
            .as_ref()
            .map_or(0, |v| v.leader_id().term)
            .max(last.leader_id.term)
            + 1;
        let appended = LogId::new(CommittedLeaderId::new(term, me.clone()), last.index + 1);
        let entry = Entry::<C> {
            log_id: appended.clone(),
            payload: EntryPayload::Membership(membership),
        };
        log.append_durable([entry]).await?;
        log.save_vote(&Vote::new(term, me))
            .await
            .map_err(|e| ReconfigureError::Storage(e.to_string()))?;
        log.sync().await?;
        Ok::<_, ReconfigureError>(appended)
    }
    .await;
    close(log).await;
    Ok(Reconfigured {
        before,
        appended: result?,
    })
}
