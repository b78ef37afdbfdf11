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
//! Invariant: `in_flight` is true exactly while a driver task runs, and every waiting sender
//! is answered by it (a driver only stops when no one waits).

use std::sync::Arc;

use openraft::error::{CheckIsLeaderError, Fatal, RaftError};
use openraft::{LogId, Raft};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::TypeConfig;

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
}

/// The read barriers of one node.
pub(crate) struct ReadBarriers<C: TypeConfig> {
    raft: Raft<C>,
    waiting: Arc<Mutex<Waiting<C>>>,
}

impl<C: TypeConfig> ReadBarriers<C> {
    pub fn new(raft: Raft<C>) -> Self {
        Self {
            raft,
            waiting: Arc::new(Mutex::new(Waiting {
                in_flight: false,
                next: Vec::new(),
            })),
        }
    }

    /// Waits for a round that started after this call, and returns its answer. Cancel-safe:
    /// the round runs in a task of its own.
    pub async fn barrier(&self) -> BarrierResult<C> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut w = self.waiting.lock();
            w.next.push(tx);
            !std::mem::replace(&mut w.in_flight, true)
        };
        if start {
            tokio::spawn(drive(self.raft.clone(), self.waiting.clone()));
        }
        match rx.await {
            Ok(r) => r,
            // The driver was dropped: the runtime is shutting down.
            Err(_) => Err(RaftError::Fatal(Fatal::Stopped)),
        }
    }
}

/// Runs rounds until no reader waits.
async fn drive<C: TypeConfig>(raft: Raft<C>, waiting: Arc<Mutex<Waiting<C>>>) {
    loop {
        let batch = {
            let mut w = waiting.lock();
            if w.next.is_empty() {
                w.in_flight = false;
                return;
            }
            std::mem::take(&mut w.next)
        };
        let r = raft.ensure_linearizable().await;
        for tx in batch {
            // A reader that gave up dropped its receiver; nothing to tell it.
            let _ = tx.send(r.clone());
        }
    }
}
