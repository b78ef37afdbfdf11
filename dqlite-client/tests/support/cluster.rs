//! Throw-away clusters for the integration tests and benches: C dqlite 1.11 nodes (Debian's
//! `dqlite-demo`) or dqlite-rs nodes (`dqlite-node`), started by the workspace's launcher,
//! `dqlite-cluster`. Every node listens on a free 127.0.0.1 port, keeps its data in a temporary
//! directory and is SIGKILLed by pid when the cluster is dropped.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub use dqlite_cluster::{Backend, Cluster, ClusterOptions};

/// Starts `n` nodes of `backend` (node 1 bootstraps, the others join it) once no other test
/// cluster runs on this machine (`dqlite_cluster::Turn`); panics with the reason (a missing `dqlite-demo`
/// included: the C tests must fail, not pass silently, where C dqlite is missing).
pub fn start(backend: Backend, n: usize) -> Cluster {
    let mut options = ClusterOptions::new(backend, n);
    options.take_turn = true;
    Cluster::start(options).unwrap_or_else(|e| panic!("starting a {} cluster: {e}", backend.name()))
}

/// A loopback port that is free right now.
pub fn free_port() -> u16 {
    dqlite_cluster::free_port("127.0.0.1").unwrap()
}
