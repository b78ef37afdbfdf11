//! A connection with an open write transaction on a leader that loses leadership: its
//! requests are answered (10250 not leader, with LEADER naming the new leader) instead of
//! hanging, its transaction never commits, and when the node leads again in a later term
//! the stale transaction is rolled back and reported with 10506. Three in-process nodes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use dqlite_node::{LEADERSHIP_LOST, NOT_LEADER, Node, NodeHandle, NodeOptions, NodeRole};
use dqlite_wire::{Request, Response, Value};
use support::{Client, open};

/// A request on a deposed leader must be answered within this.
const BOUND: Duration = Duration::from_secs(5);

fn options() -> NodeOptions {
    let mut o = NodeOptions::default();
    o.raft.raft.election_timeout_min = 600;
    o.raft.raft.election_timeout_max = 1200;
    o.raft.raft.heartbeat_interval = 150;
    o
}

async fn start(id: u64, dir: &std::path::Path, join: Option<&str>) -> Node {
    let mut b = Node::builder(id, "127.0.0.1:0", dir).options(options());
    if let Some(j) = join {
        b = b.join([j.to_string()]);
    }
    b.start().await.unwrap()
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn call(c: &mut Client, sql: &str) -> Response {
    tokio::time::timeout(BOUND, c.call(Request::exec_sql(sql, Vec::<Value>::new())))
        .await
        .unwrap_or_else(|_| panic!("{sql}: no answer within {BOUND:?}"))
        .unwrap()
}

fn code(r: &Response) -> u64 {
    match r {
        Response::Failure(f) => f.code,
        other => panic!("expected FAILURE, got {other:?}"),
    }
}

/// Moves leadership from `from` to node `to` with TRANSFER.
async fn transfer(from: &NodeHandle, to: &NodeHandle) {
    let mut t = Client::connect(from.address()).await.unwrap();
    let r = t
        .call(Request::Transfer { node_id: to.id() })
        .await
        .unwrap();
    assert_eq!(r, Response::Empty, "transfer {} -> {}", from.id(), to.id());
    let to = to.clone();
    wait_until("the target leads", || to.role() == NodeRole::Leader).await;
}

/// Three in-process nodes, node 1 leading; their data directories live as long as the nodes.
async fn three_nodes(dirs: &[tempfile::TempDir]) -> [Node; 3] {
    let n1 = start(1, dirs[0].path(), None).await;
    let h1 = n1.handle().unwrap();
    wait_until("node 1 leads", || h1.role() == NodeRole::Leader).await;
    let a1 = n1.local_addr().to_string();
    let n2 = start(2, dirs[1].path(), Some(&a1)).await;
    let n3 = start(3, dirs[2].path(), Some(&a1)).await;
    for n in [&n2, &n3] {
        let h = n.handle().unwrap();
        wait_until("voter", move || h.role() == NodeRole::Voter).await;
    }
    [n1, n2, n3]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_transactions_fail_cleanly_when_leadership_moves() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let [n1, n2, n3] = three_nodes(&dirs).await;
    let (h1, h2, h3) = (
        n1.handle().unwrap(),
        n2.handle().unwrap(),
        n3.handle().unwrap(),
    );
    let a1 = n1.local_addr().to_string();

    let mut a = open(&a1, "l.db").await.unwrap();
    for sql in [
        "CREATE TABLE t(x TEXT)",
        "BEGIN",
        "INSERT INTO t VALUES ('lost')",
    ] {
        assert!(matches!(call(&mut a, sql).await, Response::Result { .. }));
    }

    // Leadership moves away: every request on A is answered with 10250, and LEADER on the
    // same connection names the new leader.
    transfer(&h1, &h2).await;
    assert_eq!(
        code(&call(&mut a, "INSERT INTO t VALUES ('more')").await),
        NOT_LEADER
    );
    assert_eq!(code(&call(&mut a, "COMMIT").await), NOT_LEADER);
    // (node 1 learns who leads from node 2's first heartbeat: ask until it knows.)
    let deadline = Instant::now() + BOUND;
    loop {
        match a.call(Request::Leader).await.unwrap() {
            Response::Server { node_id: 0, .. } if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Response::Server { node_id, address } => {
                assert_eq!((node_id, address.as_str()), (2, h2.address()));
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    // The new leader serves writes at once (the old transaction holds no lock anywhere).
    let mut b = open(h2.address(), "l.db").await.unwrap();
    assert!(matches!(
        call(&mut b, "INSERT INTO t VALUES ('b')").await,
        Response::Result { .. }
    ));

    // A second transaction on node 2; leadership goes to node 3 and back to node 2 (a later
    // term) with no write in between: the stale transaction is rolled back and reported.
    let mut c = open(h2.address(), "l.db").await.unwrap();
    for sql in ["BEGIN", "INSERT INTO t VALUES ('stale')"] {
        assert!(matches!(call(&mut c, sql).await, Response::Result { .. }));
    }
    transfer(&h2, &h3).await;
    transfer(&h3, &h2).await;
    assert_eq!(
        code(&call(&mut c, "INSERT INTO t VALUES ('after')").await),
        LEADERSHIP_LOST
    );
    // The transaction is gone: COMMIT fails too (ending it), and the connection works.
    assert_eq!(code(&call(&mut c, "COMMIT").await), LEADERSHIP_LOST);
    assert!(matches!(
        call(&mut c, "INSERT INTO t VALUES ('c')").await,
        Response::Result { .. }
    ));
    assert_eq!(
        c.rows("SELECT x FROM t ORDER BY x").await.unwrap(),
        vec![vec![Value::Text("b".into())], vec![Value::Text("c".into())]]
    );
    drop((a, b, c));
    for n in [n3, n1, n2] {
        n.shutdown().await.unwrap();
    }
}

/// F2: a transaction on node 1; leadership moves to node 2, which commits an autocommit
/// INSERT (its apply on node 1 rolls the transaction back there), and back to node 1. The
/// first connection's next INSERT and its COMMIT must both fail: nothing it sends may run
/// outside the transaction it opened (before the fix, INSERT 3 ran in autocommit and
/// committed, and only COMMIT failed). C dqlite 1.11 refuses both too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_after_a_transaction_the_node_rolled_back_do_not_run_in_autocommit() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let [n1, n2, n3] = three_nodes(&dirs).await;
    let (h1, h2) = (n1.handle().unwrap(), n2.handle().unwrap());
    let mut a = open(h1.address(), "f2.db").await.unwrap();
    for sql in [
        "CREATE TABLE t(x INTEGER)",
        "BEGIN",
        "INSERT INTO t VALUES (1)",
    ] {
        assert!(
            matches!(call(&mut a, sql).await, Response::Result { .. }),
            "{sql}"
        );
    }
    transfer(&h1, &h2).await;
    let mut b = open(h2.address(), "f2.db").await.unwrap();
    assert!(matches!(
        call(&mut b, "INSERT INTO t VALUES (2)").await,
        Response::Result { .. }
    ));
    transfer(&h2, &h1).await;
    let r = call(&mut a, "INSERT INTO t VALUES (3)").await;
    assert_eq!(code(&r), LEADERSHIP_LOST, "{r:?}");
    let r = call(&mut a, "COMMIT").await;
    assert_eq!(code(&r), LEADERSHIP_LOST, "{r:?}");
    let mut c = open(h1.address(), "f2.db").await.unwrap();
    assert_eq!(
        c.rows("SELECT x FROM t ORDER BY x").await.unwrap(),
        vec![vec![Value::Integer(2)]],
        "only the other leader's autocommit INSERT is durable"
    );
    drop((a, b, c));
    for n in [n3, n2, n1] {
        n.shutdown().await.unwrap();
    }
}
