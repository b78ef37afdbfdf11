//! Leadership handover: a leader that is about to stop (or is asked to by TRANSFER) passes
//! leadership to an up-to-date voter instead of leaving the cluster to notice its absence.
//!
//! openraft 0.9 has no TimeoutNow message, and a follower refuses to vote while its leader
//! lease (the longest election timeout since the leader last reached it) runs. So the leader
//! 1. stops taking statements (gateways answer "not leader", as C dqlite does during a
//!    transfer), stops sending heartbeats, which lets every follower's lease run out, and
//!    stops running elections itself,
//! 2. waits for the commits that were already being proposed (they count themselves in
//!    before checking for a handover), then until its own log is applied and the target holds
//!    all of it (a candidate with less loses; a late entry once left the target behind, no
//!    voter could win, and the handover failed),
//! 3. asks the target, over the client protocol, to run an election now (a TRANSFER naming
//!    the target itself, which a voter that is not leader takes as "start an election"),
//! 4. waits until some other node leads, and turns heartbeats back on if that never happens
//!    (the handover failed and it is still in charge).
//!
//! The old leader votes for the target as soon as its own lease is over, so in a three-node
//! cluster the target usually wins at once; larger clusters wait for the other followers'
//! leases, at most the longest election timeout after the last heartbeat.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use dqlite_wire::{Request, Response};
use openraft::ServerState;

use super::join::Conn;
use crate::error::NodeError;
use crate::node::Shared;

/// Keeps a handover and the proposals of statements' commits apart.
///
/// A handover sets `handing_over`, then waits for `proposing` to reach zero; a proposal
/// counts itself in before it checks `handing_over` (both sequentially consistent). Either
/// the proposal sees the flag and stays out, or the handover sees the count and waits, so
/// the target holds every entry the old leader appends.
#[derive(Debug, Default)]
pub(crate) struct HandoverGate {
    /// Set while this leader hands leadership over: it then reports itself as not leader,
    /// so gateways answer "not leader" instead of proposing entries the target would lack.
    handing_over: AtomicBool,
    /// Proposals under way.
    proposing: AtomicUsize,
}

/// A proposal counted in by [`HandoverGate::enter`]; counted out when dropped.
pub(crate) struct Proposal<'a>(&'a HandoverGate);

impl Drop for Proposal<'_> {
    fn drop(&mut self) {
        self.0.proposing.fetch_sub(1, Ordering::SeqCst);
    }
}

impl HandoverGate {
    /// True while a handover runs.
    pub fn handing_over(&self) -> bool {
        self.handing_over.load(Ordering::Acquire)
    }

    /// Counts a proposal in, unless a handover runs (then `None`: do not propose).
    pub fn enter(&self) -> Option<Proposal<'_>> {
        self.proposing.fetch_add(1, Ordering::SeqCst);
        let p = Proposal(self);
        (!self.handing_over.load(Ordering::SeqCst)).then_some(p)
    }

    /// Starts a handover; false if one runs already.
    fn begin(&self) -> bool {
        !self.handing_over.swap(true, Ordering::SeqCst)
    }

    fn end(&self) {
        self.handing_over.store(false, Ordering::Release);
    }

    /// Waits until no proposal is under way; false at `deadline`.
    async fn drained(&self, deadline: tokio::time::Instant) -> bool {
        while self.proposing.load(Ordering::SeqCst) > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }
}

impl Shared {
    /// The voter (other than this node) whose replicated log reaches furthest, as the leader
    /// sees it; ties go to the lowest id.
    pub(crate) fn most_up_to_date_voter(&self) -> Option<u64> {
        let m = self.raft.metrics().borrow().clone();
        let replication = m.replication.unwrap_or_default();
        self.members()
            .into_iter()
            .filter(|(id, _, voter)| *voter && *id != self.id)
            .map(|(id, _, _)| {
                let matched = replication.get(&id).cloned().flatten().map(|l| l.index);
                (matched, std::cmp::Reverse(id))
            })
            .max()
            .map(|(_, std::cmp::Reverse(id))| id)
    }

    /// Hands leadership to `target` (the most up-to-date voter if `None`) and returns the id
    /// of the node that leads afterwards. Errors if this node is not the leader, there is no
    /// other voter, or no other node took over within `timeout`.
    pub(crate) async fn hand_over(
        &self,
        target: Option<u64>,
        timeout: Duration,
    ) -> Result<u64, NodeError> {
        let fail = |reason: String| NodeError::Handover { reason };
        if !self.is_raft_leader() || self.gate.handing_over() {
            return Err(fail("this node is not the leader".into()));
        }
        let target = match target {
            Some(t) => t,
            None => self
                .most_up_to_date_voter()
                .ok_or_else(|| fail("no other voter".into()))?,
        };
        if target == self.id {
            return Err(fail("this node is already the leader".into()));
        }
        let Some((_, address, true)) = self.members().into_iter().find(|m| m.0 == target) else {
            return Err(fail(format!("node {target} is not a voter")));
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let raft = self.raft.raft();
        if !self.gate.begin() {
            return Err(fail("a handover is already running".into()));
        }
        raft.runtime_config().heartbeat(false);
        raft.runtime_config().elect(false);
        let result = self.run_handover(target, &address, deadline).await;
        // Back to normal either way: still leader after a failure, or a follower that
        // must be able to stand for election again.
        raft.runtime_config().heartbeat(true);
        raft.runtime_config().elect(true);
        self.gate.end();
        result
    }

    async fn run_handover(
        &self,
        target: u64,
        address: &str,
        deadline: tokio::time::Instant,
    ) -> Result<u64, NodeError> {
        let fail = |reason: String| NodeError::Handover { reason };
        // Proposals that passed the leader check before the flag was set: let them append
        // (or fail) first, so that the check below covers their entries (`HandoverGate`).
        if !self.gate.drained(deadline).await {
            return Err(fail("statements under way did not finish in time".into()));
        }
        let mut rx = self.raft.metrics();
        // The target must hold every entry, or the other voters will not elect it.
        loop {
            {
                let m = rx.borrow_and_update();
                if m.state != ServerState::Leader {
                    break;
                }
                // Statements that passed the leader check before the flag was set may
                // still append: wait until everything appended is applied here and held
                // by the target.
                let last = m.last_log_index;
                let matched = m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&target).cloned().flatten())
                    .map(|l| l.index);
                if matched >= last && m.last_applied.map(|l| l.index) >= last {
                    break;
                }
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return Err(fail(format!("node {target} did not catch up in time")));
            }
        }
        // The target answers once it leads or has given up; watch our own state meanwhile.
        let ask = async {
            match Conn::connect_with(address, self.tls.as_ref()).await {
                Ok(mut c) => match c.call(Request::Transfer { node_id: target }).await {
                    Ok(Response::Empty) => Ok(()),
                    Ok(Response::Failure(f)) => Err(format!("{} ({})", f.message, f.code)),
                    Ok(other) => Err(format!("unexpected answer {other:?}")),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            }
        };
        let taken_over = async {
            loop {
                {
                    let m = rx.borrow_and_update();
                    if m.state != ServerState::Leader
                        && let Some(l) = m.current_leader
                        && l != self.id
                    {
                        return l;
                    }
                }
                if rx.changed().await.is_err() {
                    // Raft stopped: nobody to wait for.
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::pin!(ask, taken_over);
        let mut asked = None;
        loop {
            tokio::select! {
                l = &mut taken_over => return Ok(l),
                r = &mut ask, if asked.is_none() => asked = Some(r),
                _ = tokio::time::sleep_until(deadline) => {
                    let why = match asked {
                        Some(Err(e)) => format!("node {target} could not take over: {e}"),
                        _ => format!("node {target} did not take over in time"),
                    };
                    return Err(fail(why));
                }
            }
        }
    }
}
