//! Deterministic scenarios of the write path across leadership changes, played on two
//! simulated nodes (each a VFS, its databases' workers and an FSM) by applying the same
//! log entries to both, without Raft or sockets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dqlite_raft::state_machine::StateMachine;
use dqlite_vfs::{Vfs, VfsConfig};
use dqlite_wire::{RowsBatch, Value};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};

use super::NodeConfig;
use super::command::Command;
use super::fsm::{Fsm, Metadata};
use crate::database::worker::{Applied, Capture, Commit, ConnId, QueryMsg};
use crate::database::{DatabaseHandle, Registry};
use crate::error::{SqlFailure, code};

const DB: &str = "s.db";

/// One simulated node.
struct SimNode {
    registry: Arc<Registry>,
    fsm: Fsm,
}

impl SimNode {
    fn new() -> SimNode {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "scenario-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let vfs = Vfs::register(&name, VfsConfig::default()).unwrap();
        let registry = Arc::new(Registry::new(vfs, crate::node::DEFAULT_SPIN));
        let fsm = Fsm::new(registry.clone(), Arc::new(Mutex::new(Metadata::new())));
        SimNode { registry, fsm }
    }

    fn db(&self) -> DatabaseHandle {
        self.registry.get_or_start(DB).unwrap()
    }

    async fn connect(&self, conn: ConnId) {
        self.db().connect(conn).await.unwrap();
    }

    /// Runs one statement; the commit it captured (still pending), if any.
    async fn exec(&self, conn: ConnId, sql: &str) -> Result<Option<Capture>, SqlFailure> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let e = self
            .db()
            .exec(conn, sql.to_string(), Vec::new(), deadline)
            .await?;
        Ok(e.commit.map(|c| match c {
            Commit::Lead(capture) => capture,
            Commit::Join(_) => panic!("{sql}: joined a group commit"),
        }))
    }

    /// Applies entries at `index`, `index + 1`, …; their outcomes.
    async fn apply(&mut self, index: u64, cmds: &[Command]) -> Vec<Applied> {
        let entries = cmds
            .iter()
            .enumerate()
            .map(|(i, cmd)| Entry::<NodeConfig> {
                log_id: LogId::new(CommittedLeaderId::new(1, 1), index + i as u64),
                payload: EntryPayload::Normal(cmd.encode()),
            })
            .collect();
        self.fsm.apply(entries).await.unwrap()
    }

    async fn rows(&self, conn: ConnId, sql: &str) -> Vec<Vec<Value>> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut q = self
            .db()
            .query(conn, sql.to_string(), Vec::new(), deadline, true);
        let mut rows = Vec::new();
        loop {
            match q.next().await.unwrap() {
                QueryMsg::Batch(b) => rows.extend(RowsBatch::decode(&b[8..]).unwrap().rows),
                QueryMsg::Done(b, None) => {
                    rows.extend(RowsBatch::decode(&b[8..]).unwrap().rows);
                    return rows;
                }
                QueryMsg::Done(_, Some(_)) => panic!("{sql}: a query that wrote"),
                QueryMsg::Failed(f) => panic!("{sql}: {f}"),
            }
        }
    }

    async fn files(&self) -> dqlite_vfs::DatabaseFiles {
        self.db().dump().await.unwrap()
    }
}

fn frames(capture: Capture) -> Command {
    Command::Frames {
        db: DB.into(),
        base: capture.base,
        frames: capture.frames,
    }
}

/// Two nodes holding `CREATE TABLE t(id, v); INSERT (1, 0)` committed at index 1.
async fn two_nodes() -> (SimNode, SimNode) {
    let (mut a, mut b) = (SimNode::new(), SimNode::new());
    a.connect(1).await;
    let c = a
        .exec(
            1,
            "CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER); INSERT INTO t VALUES(1, 0)",
        )
        .await
        .unwrap();
    // (EXEC runs only the first statement: create, then insert.)
    let create = frames(c.unwrap());
    assert_eq!(
        a.apply(1, std::slice::from_ref(&create)).await,
        [Applied::Done]
    );
    let insert = frames(
        a.exec(1, "INSERT INTO t VALUES(1, 0)")
            .await
            .unwrap()
            .unwrap(),
    );
    assert_eq!(
        a.apply(2, std::slice::from_ref(&insert)).await,
        [Applied::Done]
    );
    assert_eq!(b.apply(1, &[create, insert]).await, [Applied::Done; 2]);
    b.connect(1).await;
    (a, b)
}

/// F1 (lost update): node A captured a commit computed on the state before another leader's
/// acknowledged entry F, and proposed it after F. Applying F discards A's pending commit;
/// A's entry must then be skipped on every node, not laid on top of F (which would undo F's
/// change of the shared page while A's client is told it succeeded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_computed_before_another_leaders_entry_is_skipped_everywhere() {
    let (mut a, mut b) = two_nodes().await;
    // Node B, leader of a later term, commits F: v = v + 10.
    let f = frames(b.exec(1, "UPDATE t SET v = v + 10").await.unwrap().unwrap());
    // Node A, back in charge before applying F, runs C1's UPDATE on the state without F.
    let c1 = frames(a.exec(1, "UPDATE t SET v = v + 1").await.unwrap().unwrap());
    // The log: F (index 3), then A's entry (index 4), applied in order on both nodes.
    let outcomes = [Applied::Done, Applied::Superseded];
    assert_eq!(b.apply(3, &[f.clone(), c1.clone()]).await, outcomes);
    assert_eq!(a.apply(3, &[f, c1]).await, outcomes);
    for n in [&a, &b] {
        assert_eq!(
            n.rows(1, "SELECT v FROM t").await,
            [[Value::Integer(10)]],
            "F's update survives and C1's is not applied"
        );
    }
    // Both nodes hold the same database, and A's write path works again.
    let (fa, fb) = (a.files().await, b.files().await);
    assert_eq!(fa.main, fb.main);
    let next = frames(a.exec(1, "UPDATE t SET v = v + 1").await.unwrap().unwrap());
    assert_eq!(
        a.apply(5, std::slice::from_ref(&next)).await,
        [Applied::Done]
    );
    assert_eq!(b.apply(5, &[next]).await, [Applied::Done]);
    for n in [&a, &b] {
        assert_eq!(n.rows(1, "SELECT v FROM t").await, [[Value::Integer(11)]]);
    }
}

/// The FSM queues every entry of a batch on its worker before it waits for any answer
/// (`DatabaseHandle::queue_apply`). An entry that fails to apply fails the batch, and the
/// entries queued behind it are refused rather than laid on a state that lacks it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_queued_behind_a_failed_apply_are_not_applied() {
    let (mut a, b) = two_nodes().await;
    // Frames of another page size cannot apply (the database's pages are 4096 bytes).
    let bad = Command::Frames {
        db: DB.into(),
        base: Some(2),
        frames: dqlite_vfs::Frames::from_contiguous(512, 1, &[1], &[0u8; 512]).unwrap(),
    };
    // A valid commit built on index 2, which the failed entry did not move.
    let good = frames(b.exec(1, "UPDATE t SET v = v + 5").await.unwrap().unwrap());
    let entries = [bad, good]
        .iter()
        .enumerate()
        .map(|(i, cmd)| Entry::<NodeConfig> {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), 3 + i as u64),
            payload: EntryPayload::Normal(cmd.encode()),
        })
        .collect();
    let r = a.fsm.apply(entries).await;
    assert!(r.is_err(), "a batch with a failed apply succeeded: {r:?}");
    assert_eq!(
        a.rows(1, "SELECT v FROM t").await,
        [[Value::Integer(0)]],
        "the entry queued behind the failed one was applied"
    );
}

/// F2 (half-applied transaction): a transaction the node rolled back itself (another
/// leader's commit needed the write lock) must be reported to its connection, and nothing
/// the connection sends afterwards may run outside it (in autocommit) until its client ends
/// it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_rolled_back_by_the_node_refuses_statements_until_its_client_ends_it() {
    let (mut a, mut b) = two_nodes().await;
    for sql in ["BEGIN", "INSERT INTO t VALUES(2, 1)"] {
        assert!(a.exec(1, sql).await.unwrap().is_none(), "{sql}");
    }
    // Another leader's autocommit INSERT 3 arrives while the transaction holds the lock.
    let other = frames(
        b.exec(1, "INSERT INTO t VALUES(3, 2)")
            .await
            .unwrap()
            .unwrap(),
    );
    assert_eq!(
        b.apply(3, std::slice::from_ref(&other)).await,
        [Applied::Done]
    );
    assert_eq!(a.apply(3, &[other]).await, [Applied::Done]);
    // The client's next statements: refused, not run in autocommit.
    let lost = a.exec(1, "INSERT INTO t VALUES(4, 3)").await.unwrap_err();
    assert_eq!(lost.code, code::LEADERSHIP_LOST, "{lost}");
    let lost = a.exec(1, "COMMIT").await.unwrap_err();
    assert_eq!(lost.code, code::LEADERSHIP_LOST, "{lost}");
    assert_eq!(
        a.rows(1, "SELECT id FROM t ORDER BY id").await,
        [[Value::Integer(1)], [Value::Integer(3)]],
        "only the other leader's row; nothing of the lost transaction"
    );
    // After COMMIT (or ROLLBACK) the connection works again, in autocommit.
    let c = a.exec(1, "INSERT INTO t VALUES(5, 4)").await.unwrap();
    assert!(c.is_some());
}

/// F2, ROLLBACK: a client that rolls back after the node did gets success, and the
/// connection is usable again; a `ROLLBACK TO` savepoint does not count as ending it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_ends_a_transaction_the_node_rolled_back() {
    let (a, _b) = two_nodes().await;
    for sql in ["BEGIN", "SAVEPOINT sp", "INSERT INTO t VALUES(2, 1)"] {
        a.exec(1, sql).await.unwrap();
    }
    assert!(a.db().rollback(1).await, "a transaction was open");
    for sql in ["ROLLBACK TO sp", "SELECT 1"] {
        let e = a.exec(1, sql).await.unwrap_err();
        assert_eq!(e.code, code::LEADERSHIP_LOST, "{sql}: {e}");
    }
    assert!(a.exec(1, "ROLLBACK").await.unwrap().is_none());
    assert!(
        a.exec(1, "INSERT INTO t VALUES(6, 5)")
            .await
            .unwrap()
            .is_some()
    );
}

/// F5: a pending commit whose own entry never comes (a deposed leader's, passed by another
/// leader's entry or by a snapshot) tells its proposer how it ended, so the client is
/// answered even though openraft never resolves such a proposal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_commit_says_how_it_was_settled_when_its_entry_never_comes() {
    use crate::database::worker::Settled;
    let (mut a, mut b) = two_nodes().await;
    // Another leader's entry settles it first: superseded (known not to happen).
    let mine = a.exec(1, "UPDATE t SET v = 5").await.unwrap().unwrap();
    let theirs = frames(b.exec(1, "UPDATE t SET v = 7").await.unwrap().unwrap());
    assert_eq!(
        b.apply(3, std::slice::from_ref(&theirs)).await,
        [Applied::Done]
    );
    assert_eq!(a.apply(3, &[theirs]).await, [Applied::Done]);
    assert_eq!(mine.settled.await.unwrap(), Settled::Superseded);
    // A snapshot replaces the database under it: the outcome is unknown.
    let mine = a.exec(1, "UPDATE t SET v = 9").await.unwrap().unwrap();
    let image = b.db().snapshot().await.unwrap();
    a.db().restore(image).await.unwrap();
    assert_eq!(mine.settled.await.unwrap(), Settled::Replaced);
    assert_eq!(a.rows(1, "SELECT v FROM t").await, [[Value::Integer(7)]]);
    // Its own entry: published.
    let mine = a.exec(1, "UPDATE t SET v = 11").await.unwrap().unwrap();
    let settled = mine.settled;
    let entry = Command::Frames {
        db: DB.into(),
        base: mine.base,
        frames: mine.frames,
    };
    assert_eq!(a.apply(4, &[entry]).await, [Applied::Done]);
    assert_eq!(settled.await.unwrap(), Settled::Published);
}

/// Group commit: writes of several connections that queued behind a commit in flight run as
/// one transaction when it is applied, and share one entry; each answer is its own
/// statement's, a failing statement fails alone, and one that rolls back the whole
/// transaction fails alone while the others commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_queued_behind_a_commit_share_the_next_one() {
    let (mut a, mut b) = two_nodes().await;
    for conn in 2..=6 {
        a.connect(conn).await;
    }
    let db = a.db();
    // Commit in flight (not applied yet): everyone else queues behind it.
    let first = a
        .exec(2, "INSERT INTO t VALUES (10, 0)")
        .await
        .unwrap()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut queued = Vec::new();
    for (conn, sql) in [
        (3, "INSERT INTO t VALUES (11, 1)"),
        (4, "INSERT INTO t VALUES (10, 2)"), // fails: the key exists (in the first commit)
        (5, "UPDATE t SET v = v + 100 WHERE id = 1"),
        (6, "INSERT INTO t VALUES (12, 3)"),
    ] {
        let db = db.clone();
        queued.push((
            conn,
            tokio::spawn(async move { db.exec(conn, sql.into(), Vec::new(), deadline).await }),
        ));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let first = frames(first);
    assert_eq!(
        a.apply(3, std::slice::from_ref(&first)).await,
        [Applied::Done]
    );
    let mut lead = None;
    let mut joined = Vec::new();
    for (conn, task) in queued {
        match task.await.unwrap() {
            Ok(e) => match e.commit {
                Some(Commit::Lead(c)) => {
                    assert_eq!(conn, 3, "the oldest successful statement leads");
                    assert_eq!(e.last_insert_id, 11);
                    lead = Some(c);
                }
                Some(Commit::Join(rx)) => {
                    if conn == 6 {
                        assert_eq!(e.last_insert_id, 12);
                    }
                    if conn == 5 {
                        assert_eq!(e.rows_affected, 1);
                    }
                    joined.push((conn, rx));
                }
                None => panic!("conn {conn}: no commit"),
            },
            Err(f) => {
                assert_eq!(conn, 4, "{f}");
                assert_eq!(f.code & 0xff, 19, "constraint: {f}");
            }
        }
    }
    let mut lead = lead.expect("a lead");
    assert_eq!(lead.group.len(), 2);
    assert_eq!(joined.len(), 2);
    // The proposer tells the group; the entry applies on both nodes.
    for tx in std::mem::take(&mut lead.group) {
        tx.send(Ok(())).unwrap();
    }
    for (_, rx) in joined {
        rx.await.unwrap().unwrap();
    }
    let entry = frames(lead);
    assert_eq!(b.apply(3, &[first]).await, [Applied::Done]);
    assert_eq!(
        a.apply(4, std::slice::from_ref(&entry)).await,
        [Applied::Done]
    );
    assert_eq!(b.apply(4, &[entry]).await, [Applied::Done]);
    for n in [&a, &b] {
        assert_eq!(
            n.rows(1, "SELECT id, v FROM t ORDER BY id").await,
            [
                [Value::Integer(1), Value::Integer(100)],
                [Value::Integer(10), Value::Integer(0)],
                [Value::Integer(11), Value::Integer(1)],
                [Value::Integer(12), Value::Integer(3)],
            ]
        );
    }
}

/// Group commit: a statement whose conflict resolution rolls back the whole transaction
/// fails alone and the rest of its group commits; a connection that set a pragma runs alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_survives_a_statement_that_rolls_back_and_skips_connection_local_state() {
    let (mut a, _b) = two_nodes().await;
    for conn in 2..=5 {
        a.connect(conn).await;
    }
    let ddl = a
        .exec(1, "CREATE TABLE u(k TEXT UNIQUE ON CONFLICT ROLLBACK)")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.apply(3, &[frames(ddl)]).await, [Applied::Done]);
    let seed = a
        .exec(1, "INSERT INTO u VALUES ('x')")
        .await
        .unwrap()
        .unwrap();
    a.exec(5, "PRAGMA recursive_triggers = ON").await.unwrap();
    let db = a.db();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut queued = Vec::new();
    for (conn, sql) in [
        (2, "INSERT INTO u VALUES ('a')"),
        (3, "INSERT INTO u VALUES ('x')"), // ON CONFLICT ROLLBACK: rolls back the group
        (4, "INSERT INTO u VALUES ('b')"),
        (5, "INSERT INTO u VALUES ('c')"), // set a pragma: alone
    ] {
        let db = db.clone();
        queued.push((
            conn,
            tokio::spawn(async move { db.exec(conn, sql.into(), Vec::new(), deadline).await }),
        ));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(a.apply(4, &[frames(seed)]).await, [Applied::Done]);
    let mut results = Vec::new();
    for (conn, task) in queued.drain(..3) {
        results.push((conn, task.await.unwrap()));
    }
    let lead = match &mut results[0] {
        (2, Ok(e)) => match e.commit.take() {
            Some(Commit::Lead(c)) => c,
            other => panic!("{other:?}"),
        },
        other => panic!("{:?}", other.0),
    };
    assert!(
        matches!(&results[1], (3, Err(f)) if f.code & 0xff == 19),
        "{:?}",
        results[1].1
    );
    assert!(matches!(&results[2], (4, Ok(e)) if matches!(e.commit, Some(Commit::Join(_)))));
    assert_eq!(lead.group.len(), 1);
    let mut lead = lead;
    for tx in std::mem::take(&mut lead.group) {
        tx.send(Ok(())).unwrap();
    }
    assert_eq!(a.apply(5, &[frames(lead)]).await, [Applied::Done]);
    // Connection 5 ran alone, after the group.
    let (conn, alone) = queued.pop().unwrap();
    assert_eq!(conn, 5);
    let alone = match alone.await.unwrap().unwrap().commit {
        Some(Commit::Lead(c)) => c,
        other => panic!("{other:?}"),
    };
    assert!(alone.group.is_empty());
    assert_eq!(a.apply(6, &[frames(alone)]).await, [Applied::Done]);
    assert_eq!(
        a.rows(1, "SELECT k FROM u ORDER BY k").await,
        [
            [Value::Text("a".into())],
            [Value::Text("b".into())],
            [Value::Text("c".into())],
            [Value::Text("x".into())],
        ]
    );
}

/// An abandoned streaming query (the client sent INTERRUPT or went away) stops before its
/// connection's next request runs. `INSERT … RETURNING` inserts every row on its first step
/// and commits only when reset: a next request served while the worker waited for room in the
/// abandoned stream ran inside that statement's transaction and counted rows that were then
/// discarded (`tests/gateway_stalls.rs` saw it in 7 of 20 runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connections_next_request_does_not_run_inside_its_abandoned_query() {
    const N: i64 = 3000;
    let mut a = SimNode::new();
    a.connect(1).await;
    let create = frames(
        a.exec(1, "CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER)")
            .await
            .unwrap()
            .unwrap(),
    );
    assert_eq!(a.apply(1, &[create]).await, [Applied::Done]);
    let fill = frames(
        a.exec(
            1,
            &format!(
                "INSERT INTO t(v) WITH RECURSIVE c(x) AS \
                 (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {N}) SELECT x FROM c"
            ),
        )
        .await
        .unwrap()
        .unwrap(),
    );
    assert_eq!(a.apply(2, &[fill]).await, [Applied::Done]);

    let deadline = Instant::now() + Duration::from_secs(5);
    let mut q = a.db().query(
        1,
        "INSERT INTO t(v) SELECT v FROM t RETURNING id, v".into(),
        Vec::new(),
        deadline,
        true,
    );
    assert!(matches!(q.next().await, Some(QueryMsg::Batch(_))));
    // Let the worker fill the stream again and wait for room (the case that went wrong).
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(q);
    assert_eq!(
        a.rows(1, "SELECT count(*) FROM t").await,
        vec![vec![Value::Integer(N)]]
    );
    // Nothing pending is left behind: another connection writes at once.
    a.connect(2).await;
    assert!(
        a.exec(2, "INSERT INTO t(v) VALUES (0)")
            .await
            .unwrap()
            .is_some()
    );
}
