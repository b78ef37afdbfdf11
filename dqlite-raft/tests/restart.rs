//! A leader that restarts comes back as a follower and leads again only from a new term: as
//! leader of its old term it could create new entries under log ids its followers already hold
//! with other contents (entries it had sent but lost in the crash).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use dqlite_raft::node::NodeOptions;
use openraft::{BasicNode, ServerState};

mod common;

use common::{Node, start};

fn options() -> NodeOptions {
    let mut o = NodeOptions::default();
    o.raft.election_timeout_min = 300;
    o.raft.election_timeout_max = 600;
    o.raft.heartbeat_interval = 100;
    o
}

async fn leading_term(node: &Node) -> u64 {
    node.raft()
        .wait(Some(Duration::from_secs(30)))
        .state(ServerState::Leader, "leads")
        .await
        .unwrap()
        .current_term
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_leader_leads_again_only_in_a_new_term() {
    let dir = tempfile::tempdir().unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (node, serving) = start(1, dir.path(), l, options()).await;
    node.initialize(BTreeMap::from([(1, BasicNode::new(addr.to_string()))]))
        .await
        .unwrap();
    let before = leading_term(&node).await;
    node.propose(b"kept".to_vec()).await.unwrap();
    node.shutdown().await.unwrap();
    serving.abort();
    let _ = serving.await;

    let l = tokio::net::TcpListener::bind(addr).await.unwrap();
    let (node, _serving) = start(1, dir.path(), l, options()).await;
    let after = leading_term(&node).await;
    assert!(
        after > before,
        "restarted as leader of its old term {before} (now {after})"
    );
    let digest = node.state_machine().with_state(|s| s.digest).await;
    assert_eq!(digest.count, 1, "the write made before the restart is kept");
    node.shutdown().await.unwrap();
}
