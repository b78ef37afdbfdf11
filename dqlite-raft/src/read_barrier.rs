//! Read barriers shared by the readers that arrive while one is running.
//!
//! A read barrier (openraft's `ensure_linearizable`) confirms with a quorum that this node is
//! still the leader, takes the commit index as the read index and waits until it is applied
//! here. One round answers every reader that arrived *before the round started*: the
//! leadership it confirms and the read index it takes are then at least as new as anything
//! those readers could have observed, which is all linearizability asks. A reader arriving
//! while a round runs waits for the next round, which starts when the running one ends and
//! covers everyone who arrived meanwhile. So `n` concurrent readers cost about one quorum round
//! trip each round, instead of `n`.
//!
//! With a read lease (`NodeOptions::read_lease`), a round that succeeded also records a lease
//! ending `lease` after the round *started* (when the quorum's heartbeats were not yet sent,
//! so every follower's own lease on this leader ends later than ours), under the term the node
//! was in before the round, and holds this node's votes until the lease ends (it must not help
//! elect a successor while it answers reads from the lease). Until it ends, a barrier in the same term on a node that still
//! reports itself leader answers at once, with the last applied log id. On the leader,
//! everything a client saw acknowledged is applied (writes answer after apply), so a read
//! from the local state then sees every write that completed before it.
//!
//! Invariant: `in_flight` is true exactly while a driver task runs, and every waiting sender
//! is answered by it (a driver only stops when no one waits).

use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{CheckIsLeaderError, Fatal, RaftError};
use openraft::{LogId, Raft, ServerState};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::TypeConfig;
use crate::network::VoteHold;

/// What a read barrier answers: the read index, or why there is none.
pub(crate) type BarrierResult<C> = Result<
    Option<LogId<<C as openraft::RaftTypeConfig>::NodeId>>,
    RaftError<
        <C as openraft::RaftTypeConfig>::NodeId,
        CheckIsLeaderError<
            <C as openraft::RaftTypeConfig>::NodeId,
            <C as openraft::RaftTypeConfig>::Node,
        >,
    >,
>;

struct Waiting<C: TypeConfig> {
    in_flight: bool,
    next: Vec<oneshot::Sender<BarrierResult<C>>>,
    /// The current lease: the term it was granted in and when it ends.
    lease: Option<(u64, Instant)>,
}

/// The read barriers of one node.
pub(crate) struct ReadBarriers<C: TypeConfig> {
    raft: Raft<C>,
    waiting: Arc<Mutex<Waiting<C>>>,
    lease: Option<Duration>,
    /// Extended to the end of every lease taken: no vote for a successor meanwhile.
    vote_hold: VoteHold,
}

impl<C: TypeConfig> ReadBarriers<C> {
    pub fn new(raft: Raft<C>, lease: Option<Duration>, vote_hold: VoteHold) -> Self {
        Self {
            raft,
            waiting: Arc::new(Mutex::new(Waiting {
                in_flight: false,
                next: Vec::new(),
                lease: None,
            })),
            lease,
            vote_hold,
        }
    }

    /// The last applied log id, if a lease is running (the answer of a barrier under it).
    fn under_lease(&self) -> Option<Option<LogId<C::NodeId>>> {
        let (term, until) = self.waiting.lock().lease?;
        if Instant::now() >= until {
            return None;
        }
        // Borrowed, not cloned: this runs on every read.
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        (m.state == ServerState::Leader && m.current_term == term).then(|| m.last_applied.clone())
    }

    /// Answers from a running lease, or else waits for a round that started after this call
    /// and returns its answer. Cancel-safe: the round runs in a task of its own.
    pub async fn barrier(&self) -> BarrierResult<C> {
        if let Some(applied) = self.under_lease() {
            return Ok(applied);
        }
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut w = self.waiting.lock();
            w.next.push(tx);
            !std::mem::replace(&mut w.in_flight, true)
        };
        if start {
            tokio::spawn(drive(
                self.raft.clone(),
                self.waiting.clone(),
                self.lease,
                self.vote_hold.clone(),
            ));
        }
        match rx.await {
            Ok(r) => r,
            // The driver was dropped: the runtime is shutting down.
            Err(_) => Err(RaftError::Fatal(Fatal::Stopped)),
        }
    }
}

/// Runs rounds until no reader waits.
async fn drive<C: TypeConfig>(
    raft: Raft<C>,
    waiting: Arc<Mutex<Waiting<C>>>,
    lease: Option<Duration>,
    vote_hold: VoteHold,
) {
    loop {
        let batch = {
            let mut w = waiting.lock();
            if w.next.is_empty() {
                w.in_flight = false;
                return;
            }
            std::mem::take(&mut w.next)
        };
        let started = Instant::now();
        let term = raft.metrics().borrow().current_term;
        let r = raft.ensure_linearizable().await;
        if let (Some(lease), Ok(_)) = (lease, &r) {
            // Hold votes first: from the moment the lease can be used, this node must not
            // help elect another leader.
            vote_hold.extend(started + lease);
            waiting.lock().lease = Some((term, started + lease));
        }
        for tx in batch {
            // A reader that gave up dropped its receiver; nothing to tell it.
            let _ = tx.send(r.clone());
        }
    }
}
