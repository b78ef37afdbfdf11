//! Two in-process nodes: the second joins after the first has written and snapshotted, is
//! caught up, snapshots itself, and both end with the same database image (DUMP from each
//! node, folded into one SQLite file).
//!
//! Both are `#[ignore]`d for now (run them with `cargo test -p dqlite-node --test replication
//! -- --ignored`): the first fails about one run in three, the second almost always, on the
//! same openraft panic described below. The second writes larger rows and makes the leader
//! purge its log before the join, so that the new member must be caught up by snapshot
//! install.
//!
//! Diagnosis (RUST_LOG=openraft=debug): openraft wraps every AppendEntries in its own
//! timeout (`replication/mod.rs:457`, the heartbeat interval), which fires before the one
//! inside `dqlite_raft::network::PeerClient::call` and drops the call mid-exchange, so the
//! connection is kept with the stale response still unread; the next request then reads the
//! previous request's answer. Seen here: request 5 (prev_log_id None) got the Conflict of
//! request 3 (prev_log_id T1-N1-7), and openraft panics (`prev_log_id=None never
//! conflict`). Needs a cancellation-safe `PeerClient::call` in dqlite-raft (drop the
//! connection if a previous exchange did not complete). Slow appends (debug builds, large
//! entries) make it likely.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use dqlite_node::{Node, NodeOptions, NodeRole};
use dqlite_wire::{Request, Response, Value};
use support::{Client, open};

fn options(keep: u64) -> NodeOptions {
    let mut o = NodeOptions::default();
    o.raft.raft.snapshot_policy = openraft::SnapshotPolicy::LogsSinceLast(20);
    o.raft.raft.max_in_snapshot_log_to_keep = keep;
    o.raft.raft.election_timeout_min = 600;
    o.raft.raft.election_timeout_max = 1200;
    o.raft.raft.heartbeat_interval = 150;
    o
}

/// The database image a node holds, as one SQLite file.
async fn image(address: &str, db: &str) -> Vec<u8> {
    let mut c = Client::connect(address).await.unwrap();
    match c.call(Request::Dump { name: db.into() }).await.unwrap() {
        Response::Files { files } => {
            dqlite_vfs::Snapshot::from_files(&files[0].data, &files[1].data, 4096)
                .unwrap()
                .to_bytes()
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "intermittent openraft replication panic when a learner joins; see the module docs"]
async fn a_late_member_catches_up_and_converges() {
    late_member(1000, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "openraft panics replicating to a fresh learner after a purge; see the module docs"]
async fn a_late_member_is_caught_up_by_snapshot_install_after_a_purge() {
    late_member(2, 3000).await;
}

async fn late_member(keep: u64, blob: i64) {
    // RUST_LOG=openraft=debug shows the replication exchange when diagnosing.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let n1 = Node::builder(1, "127.0.0.1:0", d1.path())
        .options(options(keep))
        .start()
        .await
        .unwrap();
    let h1 = n1.handle().unwrap();
    h1.wait_for_leader(Duration::from_secs(20)).await.unwrap();
    let a1 = n1.local_addr().to_string();
    let mut c = open(&a1, "r.db").await.unwrap();
    let r = c
        .call(Request::exec_sql(
            "CREATE TABLE t(x, y BLOB)",
            Vec::<Value>::new(),
        ))
        .await
        .unwrap();
    assert!(matches!(r, Response::Result { .. }), "{r:?}");
    for i in 0..50 {
        let r = c
            .call(Request::exec_sql(
                "INSERT INTO t VALUES(?, zeroblob(?))",
                vec![Value::Integer(i), Value::Integer(blob)],
            ))
            .await
            .unwrap();
        assert!(matches!(r, Response::Result { .. }), "{r:?}");
    }
    assert!(h1.metrics().snapshot.is_some(), "leader snapshotted");

    let n2 = Node::builder(2, "127.0.0.1:0", d2.path())
        .options(options(keep))
        .join([a1.clone()])
        .start()
        .await
        .unwrap();
    let h2 = n2.handle().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while h2.role() != NodeRole::Voter {
        assert!(Instant::now() < deadline, "node 2 did not become a voter");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // More writes after the join arrive as entries.
    for i in 50..60 {
        let r = c
            .call(Request::exec_sql(
                "INSERT INTO t VALUES(?, NULL)",
                vec![Value::Integer(i)],
            ))
            .await
            .unwrap();
        assert!(matches!(r, Response::Result { .. }), "{r:?}");
    }
    let last = h1.metrics().last_applied;
    let deadline = Instant::now() + Duration::from_secs(20);
    while h2.metrics().last_applied != last {
        assert!(Instant::now() < deadline, "node 2 did not catch up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(h2.metrics().snapshot.is_some(), "node 2 has a snapshot");
    let a2 = n2.local_addr().to_string();
    let i1 = image(&a1, "r.db").await;
    let i2 = image(&a2, "r.db").await;
    assert!(i1.len() > 50 * blob as usize);
    assert!(i1 == i2, "database images differ");

    drop((c, h1, h2));
    n2.shutdown().await.unwrap();
    n1.shutdown().await.unwrap();
}
