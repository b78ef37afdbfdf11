//! Eager replication: the leader ships its new entries to the voters while its own `fsync`
//! runs. See the [module docs of `network`](super) ("Eager push") for why and why it is safe.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::AppendEntriesResponse;
use openraft::{Raft, ServerState};
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;

use super::client::Network;
use super::connector::Connector;
use crate::TypeConfig;
use crate::log_store::{LogReader, PushHint};

/// After a voter rejected a pushed batch (it lacks the entry before it, i.e. it is catching
/// up through openraft's own replication), leave it alone this long.
const REJECT_PAUSE: Duration = Duration::from_millis(50);

/// The batch waiting for one voter.
struct Pending<NID: openraft::NodeId> {
    hint: Mutex<Option<PushHint<NID>>>,
    notify: Notify,
}

impl<NID: openraft::NodeId> Pending<NID> {
    /// Adds `h` to what is waiting: contiguous batches of one vote merge (at most `max`
    /// entries, the newest), anything else replaces what was waiting.
    fn offer(&self, h: &PushHint<NID>, max: u64) {
        let mut slot = self.hint.lock();
        let merged = match slot.take() {
            Some(mut p) if p.vote == h.vote && h.first <= p.last + 1 && h.last >= p.first => {
                p.last = p.last.max(h.last);
                p
            }
            _ => h.clone(),
        };
        let mut merged = merged;
        if merged.last - merged.first + 1 > max {
            merged.first = merged.last + 1 - max;
        }
        *slot = Some(merged);
        drop(slot);
        self.notify.notify_one();
    }
}

/// The voters being pushed to: their node record and what waits for them.
type Peers<C> = BTreeMap<
    <C as openraft::RaftTypeConfig>::NodeId,
    (
        <C as openraft::RaftTypeConfig>::Node,
        Arc<Pending<<C as openraft::RaftTypeConfig>::NodeId>>,
    ),
>;

/// Runs the pusher of a node until `rx` closes (the log store is gone) or the task is
/// aborted (which aborts the per-voter tasks too).
pub(crate) async fn run<C, K>(
    raft: Raft<C>,
    mut factory: Network<K>,
    reader: LogReader<C>,
    me: C::NodeId,
    mut rx: mpsc::UnboundedReceiver<PushHint<C::NodeId>>,
    ttl: Duration,
    max_entries: u64,
) where
    C: TypeConfig,
    K: Connector<C::Node>,
{
    let metrics = raft.metrics();
    let mut peers: Peers<C> = BTreeMap::new();
    let mut tasks = JoinSet::new();
    while let Some(hint) = rx.recv().await {
        let (voters, leader) = {
            let m = metrics.borrow();
            let membership = m.membership_config.membership();
            let voters: Vec<(C::NodeId, C::Node)> = membership
                .voter_ids()
                .filter(|id| *id != me)
                .filter_map(|id| membership.get_node(&id).map(|n| (id, n.clone())))
                .collect();
            (voters, m.state == ServerState::Leader)
        };
        if !leader {
            // The appends of a leader that just stepped down, or of one whose election the
            // metrics do not show yet: openraft's replication takes care of them.
            continue;
        }
        if voters.len() != peers.len()
            || voters
                .iter()
                .any(|(id, n)| peers.get(id).is_none_or(|(known, _)| known != n))
        {
            // Membership changed: restart the per-voter tasks.
            tasks.abort_all();
            peers.clear();
            for (id, node) in voters {
                let pending = Arc::new(Pending {
                    hint: Mutex::new(None),
                    notify: Notify::new(),
                });
                let client = factory.new_client(id.clone(), &node).await;
                tasks.spawn(push_to(client, reader.clone(), pending.clone(), ttl));
                peers.insert(id, (node, pending));
            }
        }
        for (_, pending) in peers.values() {
            pending.offer(&hint, max_entries);
        }
    }
}

/// Pushes whatever is pending for one voter, one request at a time.
async fn push_to<C, N>(
    mut client: N,
    reader: LogReader<C>,
    pending: Arc<Pending<C::NodeId>>,
    ttl: Duration,
) where
    C: TypeConfig,
    N: RaftNetwork<C>,
{
    loop {
        pending.notify.notified().await;
        let Some(hint) = pending.hint.lock().take() else {
            continue;
        };
        let req = match reader.leader_request(&hint) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "eager push: reading the batch failed");
                continue;
            }
        };
        match client.append_entries(req, RPCOption::new(ttl)).await {
            Ok(AppendEntriesResponse::Success | AppendEntriesResponse::PartialSuccess(_)) => {}
            Ok(AppendEntriesResponse::Conflict | AppendEntriesResponse::HigherVote(_)) => {
                tokio::time::sleep(REJECT_PAUSE).await;
            }
            Err(e) => {
                // The client reconnects (with backoff) on the next request by itself.
                tracing::debug!(error = %e, "eager push failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::Vote;

    fn hint(term: u64, first: u64, last: u64) -> PushHint<u64> {
        PushHint {
            vote: Vote::new_committed(term, 1),
            first,
            last,
        }
    }

    fn pending() -> Pending<u64> {
        Pending {
            hint: Mutex::new(None),
            notify: Notify::new(),
        }
    }

    #[test]
    fn contiguous_batches_merge_and_others_replace() {
        let p = pending();
        p.offer(&hint(2, 5, 6), 100);
        p.offer(&hint(2, 7, 9), 100);
        let h = p.hint.lock().clone().unwrap();
        assert_eq!((h.first, h.last), (5, 9));
        // A gap: the older batch cannot be sent with the newer one.
        p.offer(&hint(2, 12, 12), 100);
        let h = p.hint.lock().clone().unwrap();
        assert_eq!((h.first, h.last), (12, 12));
        // Another leader's batch replaces everything.
        p.offer(&hint(3, 13, 13), 100);
        let h = p.hint.lock().clone().unwrap();
        assert_eq!((h.vote.leader_id().term, h.first, h.last), (3, 13, 13));
    }

    #[test]
    fn merged_batches_keep_the_newest_entries() {
        let p = pending();
        p.offer(&hint(2, 1, 60), 64);
        p.offer(&hint(2, 61, 100), 64);
        let h = p.hint.lock().clone().unwrap();
        assert_eq!((h.first, h.last), (37, 100));
    }
}
