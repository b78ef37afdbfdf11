//! Disaster recovery: a 3-member cluster loses two members for good; the survivor's membership
//! is rewritten while it is stopped, and it restarts as a one-member cluster holding every
//! committed entry (with the log purged into a snapshot, and without).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use dqlite_raft::node::NodeOptions;
use dqlite_raft::reconfigure::{ReconfigureError, inspect, rewrite_membership};
use dqlite_raft::testing::TestConfig;
use openraft::{BasicNode, Membership, ServerState, SnapshotPolicy};

mod common;

use common::{Node, start};

fn options(snapshot_every: u64) -> NodeOptions {
    let mut o = NodeOptions::default();
    o.raft.snapshot_policy = SnapshotPolicy::LogsSinceLast(snapshot_every);
    o.raft.max_in_snapshot_log_to_keep = 0;
    o.raft.election_timeout_min = 600;
    o.raft.election_timeout_max = 1200;
    o.raft.heartbeat_interval = 150;
    o
}

async fn wait_leader(node: &Node) {
    node.raft()
        .wait(Some(Duration::from_secs(30)))
        .state(ServerState::Leader, "leads")
        .await
        .unwrap();
}

async fn lose_two_and_recover(snapshot_every: u64, writes: u64) {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut listeners = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..3 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(l.local_addr().unwrap().to_string());
        listeners.push(l);
    }
    let mut nodes = Vec::new();
    let mut serving = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let (n, s) = start(i as u64 + 1, dirs[i].path(), l, options(snapshot_every)).await;
        nodes.push(n);
        serving.push(s);
    }
    let members: BTreeMap<u64, BasicNode> = (1..=3)
        .map(|i| (i, BasicNode::new(addrs[i as usize - 1].clone())))
        .collect();
    nodes[0].initialize(members).await.unwrap();
    wait_leader(&nodes[0]).await;
    for i in 0..writes {
        nodes[0].propose(i.to_le_bytes().to_vec()).await.unwrap();
    }
    let digest = nodes[0].state_machine().with_state(|s| s.digest).await;
    assert_eq!(digest.count, writes);
    // Node 3 applied everything too (it will be the survivor). The leader's metrics are
    // published after its proposals return, and node 3 may apply several entries at once:
    // wait for the leader to report all its log applied, then for node 3 to reach at least
    // that (waiting for an exact index could miss it).
    let settled = nodes[0]
        .raft()
        .wait(Some(Duration::from_secs(30)))
        .metrics(
            |m| m.last_applied.as_ref().map(|l| l.index) == m.last_log_index,
            "leader applied its whole log",
        )
        .await
        .unwrap();
    let target = settled.last_applied;
    nodes[2]
        .raft()
        .wait(Some(Duration::from_secs(30)))
        .applied_index_at_least(target.as_ref().map(|l| l.index), "caught up")
        .await
        .unwrap();
    for n in nodes {
        n.shutdown().await.unwrap();
    }
    for s in serving {
        s.abort();
        let _ = s.await;
    }

    let dir = dirs[2].path();
    let before = inspect::<TestConfig>(dir).await.unwrap();
    assert!(before.last_log_id.unwrap().index >= target.unwrap().index);
    let membership = Membership::new(
        vec![BTreeSet::from([3])],
        BTreeMap::from([(3, BasicNode::new(addrs[2].clone()))]),
    );
    let done = rewrite_membership::<TestConfig>(dir, 3, membership)
        .await
        .unwrap();
    assert_eq!(
        done.appended.index,
        before.last_log_id.unwrap().index + 1,
        "the entry follows the last one"
    );
    assert!(done.appended.leader_id.term > before.vote.unwrap().leader_id().term);
    let after = inspect::<TestConfig>(dir).await.unwrap();
    assert_eq!(after.last_log_id, Some(done.appended));

    // Alone, on the same address, it leads and holds every committed write.
    let l = tokio::net::TcpListener::bind(&addrs[2]).await.unwrap();
    let (survivor, _serving) = start(3, dir, l, options(snapshot_every)).await;
    wait_leader(&survivor).await;
    let voters: Vec<u64> = survivor
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .collect();
    assert_eq!(voters, vec![3]);
    let proposed = survivor.propose(b"after".to_vec()).await.unwrap();
    assert_eq!(proposed.response, writes + 1);
    let digest_after = survivor.state_machine().with_state(|s| s.digest).await;
    assert_eq!(digest_after.count, writes + 1);
    survivor.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_survivor_recovers_every_committed_entry_from_its_log() {
    lose_two_and_recover(100_000, 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_survivor_recovers_when_its_log_was_purged_into_a_snapshot() {
    lose_two_and_recover(20, 65).await;
}

#[tokio::test]
async fn an_empty_directory_has_nothing_to_recover() {
    let dir = tempfile::tempdir().unwrap();
    let m = Membership::new(
        vec![BTreeSet::from([1])],
        BTreeMap::from([(1, BasicNode::new("a"))]),
    );
    let e = rewrite_membership::<TestConfig>(dir.path(), 1, m)
        .await
        .unwrap_err();
    assert!(matches!(e, ReconfigureError::Empty(_)), "{e}");
}
