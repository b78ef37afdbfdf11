//! Gateway behaviour against an in-process single node, over TCP: the cases where C dqlite
//! crashes or hangs, statement ids, multi-statement EXEC_SQL, queued writers, explicit
//! transactions across requests, streaming, and restart from snapshot + log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use dqlite_node::NodeOptions;
use dqlite_wire::{Failure, Request, Response, RowsEnd, Value};
use support::{Client, open, single};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn fail(r: &Response) -> (u64, &str) {
    match r {
        Response::Failure(Failure { code, message, .. }) => (*code, message.as_str()),
        other => panic!("expected FAILURE, got {other:?}"),
    }
}

async fn exec(c: &mut Client, sql: &str, params: Vec<Value>) -> Response {
    c.call(Request::exec_sql(sql, params)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_c_crashes_we_answer() {
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path(), NodeOptions::default()).await;
    let addr = node.local_addr().to_string();
    let mut c = open(&addr, "g.db").await.unwrap();

    // Unknown request type: FAILURE(1005), connection kept.
    c.s.write_all(&[1, 0, 0, 0, 99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        .await
        .unwrap();
    let r = c
        .recv(&dqlite_wire::ResponseContext::new(
            dqlite_wire::RequestType::Leader,
        ))
        .await
        .unwrap();
    assert_eq!(fail(&r), (1005, "unrecognized request type"));

    // DESCRIBE with a bad format: only FAILURE(15), then the connection still works.
    let r = c.call(Request::Describe { format: 3 }).await.unwrap();
    assert_eq!(fail(&r), (15, "bad format version"));
    let r = c.call(Request::Describe { format: 0 }).await.unwrap();
    assert!(matches!(r, Response::Metadata { .. }), "{r:?}");

    // A finalized statement id.
    assert!(matches!(
        exec(&mut c, "CREATE TABLE b(flag BOOLEAN, t DATETIME)", vec![]).await,
        Response::Result { .. }
    ));
    let r = c
        .call(Request::Prepare {
            db_id: 0,
            sql: "SELECT * FROM b".into(),
        })
        .await
        .unwrap();
    assert!(matches!(r, Response::Stmt { stmt_id: 0, .. }), "{r:?}");
    let r = c
        .call(Request::Finalize {
            db_id: 0,
            stmt_id: 0,
        })
        .await
        .unwrap();
    assert_eq!(r, Response::Empty);
    for req in [
        Request::Finalize {
            db_id: 0,
            stmt_id: 0,
        },
        Request::Exec {
            db_id: 0,
            stmt_id: 0,
            params: Default::default(),
        },
        Request::Query {
            db_id: 0,
            stmt_id: 0,
            params: Default::default(),
        },
    ] {
        let r = c.call(req).await.unwrap();
        assert_eq!(fail(&r), (12, "no statement with the given id"));
    }

    // TEXT in a BOOLEAN column, NULL in both: no crash, storage class kept, NULL as NULL.
    assert!(matches!(
        exec(
            &mut c,
            "INSERT INTO b VALUES('yes', NULL), (1, '2024-01-01'), (NULL, NULL)",
            vec![]
        )
        .await,
        Response::Result {
            rows_affected: 3,
            ..
        }
    ));
    let rows = c
        .rows("SELECT flag, t FROM b ORDER BY rowid")
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![
            vec![Value::Text("yes".into()), Value::Null],
            vec![Value::Boolean(1), Value::Iso8601("2024-01-01".into())],
            // NULL stays NULL in BOOLEAN and DATETIME columns (C 1.11 sends false and '').
            vec![Value::Null, Value::Null],
        ]
    );

    // A step error in a query: a clean FAILURE (no ROWS prefix), connection kept.
    let r = c
        .call(Request::query_sql(
            "SELECT abs(-9223372036854775807-1) AS boom",
            Vec::<Value>::new(),
        ))
        .await
        .unwrap();
    match &r {
        Response::Failure(f) => {
            assert_eq!(f.message, "integer overflow");
            assert!(f.rows_prefix.is_none());
        }
        other => panic!("{other:?}"),
    }

    // Multi-statement EXEC_SQL, parameters consumed across statements.
    let r = exec(
        &mut c,
        "CREATE TABLE m(x); INSERT INTO m VALUES(?); INSERT INTO m VALUES(?)",
        vec![Value::Integer(7), Value::Integer(8)],
    )
    .await;
    assert!(
        matches!(
            r,
            Response::Result {
                last_insert_id: 2,
                rows_affected: 1
            }
        ),
        "{r:?}"
    );
    assert_eq!(
        c.rows("SELECT x FROM m").await.unwrap(),
        vec![vec![Value::Integer(7)], vec![Value::Integer(8)]]
    );
    // QUERY_SQL wants exactly one statement; empty SQL has code 0.
    let r = c
        .call(Request::query_sql(
            "SELECT 1; SELECT 2",
            Vec::<Value>::new(),
        ))
        .await
        .unwrap();
    assert_eq!(fail(&r), (1, "nonempty statement tail"));
    let r = c
        .call(Request::query_sql("  -- nothing", Vec::<Value>::new()))
        .await
        .unwrap();
    assert_eq!(fail(&r).0, 0);
    // SQLite errors keep their extended code.
    let r = exec(
        &mut c,
        "CREATE TABLE u(x UNIQUE); INSERT INTO u VALUES(1)",
        vec![],
    )
    .await;
    assert!(matches!(r, Response::Result { .. }), "{r:?}");
    let r = exec(&mut c, "INSERT INTO u VALUES(1)", vec![]).await;
    assert_eq!(fail(&r).0, 2067);
    // A second OPEN on the same connection.
    let r = c
        .call(Request::Open {
            name: "other".into(),
            flags: 0,
            vfs: "volatile".into(),
        })
        .await
        .unwrap();
    assert_eq!(fail(&r).0, 5);

    // A zero-length body closes the connection cleanly.
    c.s.write_all(&[0, 0, 0, 0, 8, 0, 0, 0]).await.unwrap();
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(Duration::from_secs(5), c.s.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "connection closed");
    // An oversized body: FAILURE naming the sizes, then the connection is closed.
    let mut c = Client::connect(&addr).await.unwrap();
    c.s.write_all(&[0xff, 0xff, 0xff, 0x7f, 8, 0, 0, 0])
        .await
        .unwrap();
    let r = c
        .recv(&dqlite_wire::ResponseContext::new(
            dqlite_wire::RequestType::ExecSql,
        ))
        .await
        .unwrap();
    assert_eq!(
        fail(&r),
        (
            1,
            "request body of 17179869176 bytes exceeds the limit of 67108864 bytes"
        )
    );
    let n = tokio::time::timeout(Duration::from_secs(5), c.s.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "connection closed");
    // An unknown handshake version: closed without an answer.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(&7u64.to_le_bytes()).await.unwrap();
    s.write_all(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        .await
        .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);

    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_queue_behind_an_explicit_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path(), NodeOptions::default()).await;
    let addr = node.local_addr().to_string();
    let mut a = open(&addr, "q.db").await.unwrap();
    let mut b = open(&addr, "q.db").await.unwrap();
    assert!(matches!(
        exec(&mut a, "CREATE TABLE t(x)", vec![]).await,
        Response::Result { .. }
    ));
    assert!(matches!(
        exec(&mut a, "BEGIN; INSERT INTO t VALUES('a')", vec![]).await,
        Response::Result { .. }
    ));
    // B's write waits for A's transaction instead of failing with SQLITE_BUSY.
    let waiter = tokio::spawn(async move {
        let r = exec(&mut b, "INSERT INTO t VALUES('b')", vec![]).await;
        (r, b)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "B must wait for A's transaction");
    // A's uncommitted row is invisible to others; A commits.
    assert!(matches!(
        exec(&mut a, "COMMIT", vec![]).await,
        Response::Result { .. }
    ));
    let (r, mut b) = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(r, Response::Result { .. }), "{r:?}");
    assert_eq!(
        b.rows("SELECT x FROM t ORDER BY rowid").await.unwrap(),
        vec![vec![Value::Text("a".into())], vec![Value::Text("b".into())]]
    );

    // Many concurrent autocommit writers: no BUSY.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = open(&addr, "q.db").await.unwrap();
            for j in 0..10 {
                let r = exec(
                    &mut c,
                    "INSERT INTO t VALUES(?)",
                    vec![Value::Integer(i * 100 + j)],
                )
                .await;
                assert!(matches!(r, Response::Result { .. }), "{r:?}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        b.rows("SELECT count(*) FROM t").await.unwrap(),
        vec![vec![Value::Integer(82)]]
    );
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_stream_in_batches_and_state_survives_restart_from_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = NodeOptions::default();
    options.raft.raft.snapshot_policy = openraft::SnapshotPolicy::LogsSinceLast(20);
    options.raft.raft.max_in_snapshot_log_to_keep = 5;
    let node = single(dir.path(), options.clone()).await;
    let addr = node.local_addr().to_string();
    let mut c = open(&addr, "s.db").await.unwrap();
    assert!(matches!(
        exec(&mut c, "CREATE TABLE big(n INTEGER, s TEXT)", vec![]).await,
        Response::Result { .. }
    ));
    for i in 0..60 {
        let r = exec(
            &mut c,
            "INSERT INTO big SELECT x, printf('row-%05d', x) FROM (WITH RECURSIVE c(x) AS (SELECT ? UNION ALL SELECT x + 1 FROM c WHERE x < ? + 19) SELECT x FROM c)",
            vec![Value::Integer(i * 20), Value::Integer(i * 20)],
        )
        .await;
        assert!(
            matches!(
                r,
                Response::Result {
                    rows_affected: 20,
                    ..
                }
            ),
            "{r:?}"
        );
    }
    // 1200 rows of ~32 bytes: several PART batches of at most ~4 KiB, then DONE.
    let req = Request::query_sql("SELECT n, s FROM big ORDER BY n", Vec::<Value>::new());
    c.s.write_all(&req.to_bytes().unwrap()).await.unwrap();
    let ctx = dqlite_wire::ResponseContext::for_request(&req);
    let (mut batches, mut rows) = (0, 0);
    loop {
        match c.recv(&ctx).await.unwrap() {
            Response::Rows(b) => {
                batches += 1;
                rows += b.rows.len();
                if b.end == RowsEnd::Done {
                    break;
                }
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(rows, 1200);
    assert!(batches >= 9, "{batches} batches");
    drop(c);
    let snaps_before = node.handle().unwrap().metrics().snapshot;
    assert!(snaps_before.is_some(), "a snapshot was taken");
    node.shutdown().await.unwrap();

    let node = single(dir.path(), options).await;
    let mut c = open(&node.local_addr().to_string(), "s.db").await.unwrap();
    assert_eq!(
        c.rows("SELECT count(*), sum(n) FROM big").await.unwrap(),
        vec![vec![Value::Integer(1200), Value::Integer(1199 * 1200 / 2)]]
    );
    drop(c);
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_of_a_database_over_the_limit_fails_and_the_others_stay_open() {
    let dir = tempfile::tempdir().unwrap();
    let options = NodeOptions {
        max_databases: 2,
        ..NodeOptions::default()
    };
    let node = single(dir.path(), options).await;
    let addr = node.local_addr().to_string();
    let mut a = open(&addr, "a.db").await.unwrap();
    assert!(matches!(
        exec(&mut a, "CREATE TABLE t(x); INSERT INTO t VALUES(1)", vec![]).await,
        Response::Result { .. }
    ));
    let _b = open(&addr, "b.db").await.unwrap();
    // A third database is over the limit; the connection stays usable for another OPEN.
    let mut c = Client::connect(&addr).await.unwrap();
    let open_request = |name: &str| Request::Open {
        name: name.into(),
        flags: 0,
        vfs: "volatile".into(),
    };
    let r = c.call(open_request("c.db")).await.unwrap();
    assert_eq!(
        fail(&r),
        (14, "too many databases (this node serves at most 2)"),
        "{r:?}"
    );
    let r = c.call(open_request("a.db")).await.unwrap();
    assert!(matches!(r, Response::Db { .. }), "{r:?}");
    assert_eq!(
        c.rows("SELECT x FROM t").await.unwrap(),
        vec![vec![Value::Integer(1)]]
    );
    drop((a, c));
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_local_reads_and_connection_limit() {
    let dir = tempfile::tempdir().unwrap();
    let options = NodeOptions {
        leader_local_reads: true,
        max_connections: 2,
        ..NodeOptions::default()
    };
    let node = single(dir.path(), options).await;
    let addr = node.local_addr().to_string();
    let mut a = open(&addr, "l.db").await.unwrap();
    assert!(matches!(
        exec(&mut a, "CREATE TABLE t(x); INSERT INTO t VALUES(1)", vec![]).await,
        Response::Result { .. }
    ));
    assert_eq!(
        a.rows("SELECT x FROM t").await.unwrap(),
        vec![vec![Value::Integer(1)]]
    );
    let _b = open(&addr, "l.db").await.unwrap();
    // A third client connection is over the limit: its first request gets a FAILURE naming
    // the limit, then the connection is closed.
    let mut c = Client::connect(&addr).await.unwrap();
    let r = c.call(Request::Leader).await.unwrap();
    assert_eq!(
        fail(&r),
        (1, "too many connections (this node allows 2)"),
        "{r:?}"
    );
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(Duration::from_secs(5), c.s.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "over-limit connection closed");
    // Once a connection goes, a new one is served.
    drop(c);
    drop(_b);
    let mut d = None;
    for _ in 0..50 {
        let mut c = Client::connect(&addr).await.unwrap();
        if matches!(c.call(Request::Leader).await, Ok(Response::Server { .. })) {
            d = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(d.is_some(), "no connection served after one was closed");
    drop((a, d));
    node.shutdown().await.unwrap();
}
