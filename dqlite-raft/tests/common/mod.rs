//! What the multi-node tests of this directory share: a node over the digest state machine,
//! started on a directory and serving Raft on a listener.

#![allow(clippy::unwrap_used, dead_code)]

use std::path::Path;

use dqlite_raft::network::{TcpConnector, serve_listener};
use dqlite_raft::node::{NodeOptions, RaftNode};
use dqlite_raft::testing::{DigestStateMachine, TestConfig};

/// A test node.
pub type Node = RaftNode<TestConfig, DigestStateMachine>;

/// Starts node `id` on `dir` with options `o`, serving Raft on `listener` (abort the returned
/// task to free the address).
pub async fn start(
    id: u64,
    dir: &Path,
    listener: tokio::net::TcpListener,
    o: NodeOptions,
) -> (Node, tokio::task::JoinHandle<()>) {
    let node = Node::start(
        id,
        dir,
        o,
        DigestStateMachine::default(),
        TcpConnector::default(),
    )
    .await
    .unwrap();
    let serving = tokio::spawn(serve_listener(
        node.raft().clone(),
        listener,
        node.net_config().clone(),
    ));
    (node, serving)
}
