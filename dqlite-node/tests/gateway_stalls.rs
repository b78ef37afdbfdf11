//! Clients that stall, vanish or push limits must not block or damage anyone else: a client
//! that stops reading a large result, a client that disappears with an open transaction, in
//! the middle of a request or of a ROWS stream, and the limits on message size and open
//! statements. Raw wire client (tests/support) against an in-process single node.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use dqlite_node::NodeOptions;
use dqlite_wire::{Request, Response, ResponseContext, RowsEnd, Value};
use support::{Client, open, single};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What another client may take for a small read or write while someone misbehaves. Far below
/// `write_wait` (30 s here), so a write that only went through because a lock wait expired
/// would fail this bound.
const BOUND: Duration = Duration::from_secs(8);

fn options() -> NodeOptions {
    NodeOptions {
        write_wait: Duration::from_secs(30),
        ..NodeOptions::default()
    }
}

async fn exec(c: &mut Client, sql: &str) -> Response {
    c.call(Request::exec_sql(sql, Vec::<Value>::new()))
        .await
        .unwrap()
}

async fn count(c: &mut Client, table: &str) -> i64 {
    match c
        .rows(&format!("SELECT count(*) FROM {table}"))
        .await
        .unwrap()[0][0]
    {
        Value::Integer(n) => n,
        ref other => panic!("{other:?}"),
    }
}

/// Fills `big` with `n` rows of ~250 bytes (far more than the socket buffers hold).
async fn fill_big(c: &mut Client, n: i64) {
    let r = exec(c, "CREATE TABLE big(id INTEGER, pad TEXT)").await;
    assert!(matches!(r, Response::Result { .. }), "{r:?}");
    let per = 10_000;
    for start in (0..n).step_by(per as usize) {
        let r = c
            .call(Request::exec_sql(
                "INSERT INTO big SELECT x, printf('%0250d', x) FROM \
                 (WITH RECURSIVE s(x) AS (SELECT ? UNION ALL SELECT x + 1 FROM s WHERE x < ?) \
                 SELECT x FROM s)",
                vec![Value::Integer(start), Value::Integer(start + per - 1)],
            ))
            .await
            .unwrap();
        assert!(matches!(r, Response::Result { .. }), "{r:?}");
    }
}

/// Reads ROWS batches until DONE; returns the number of rows.
async fn read_all_rows(c: &mut Client, req: &Request) -> usize {
    let ctx = ResponseContext::for_request(req);
    let mut n = 0;
    loop {
        match c.recv(&ctx).await.unwrap() {
            Response::Rows(b) => {
                n += b.rows.len();
                if b.end == RowsEnd::Done {
                    return n;
                }
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_does_not_block_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path(), options()).await;
    let addr = node.local_addr().to_string();
    let mut b = open(&addr, "s.db").await.unwrap();
    fill_big(&mut b, 100_000).await;

    // A asks for 100k rows (~25 MB) and stops reading.
    let mut a = open(&addr, "s.db").await.unwrap();
    let query = Request::query_sql("SELECT id, pad FROM big", Vec::<Value>::new());
    a.s.write_all(&query.to_bytes().unwrap()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // B reads and writes the same database meanwhile, within a bound.
    tokio::time::timeout(BOUND, async {
        assert_eq!(count(&mut b, "big").await, 100_000);
        let r = exec(&mut b, "INSERT INTO big VALUES (-1, 'while A stalls')").await;
        assert!(matches!(r, Response::Result { .. }), "{r:?}");
        assert_eq!(count(&mut b, "big").await, 100_001);
        // A third connection opens and writes too.
        let mut c = open(&addr, "s.db").await.unwrap();
        let r = exec(&mut c, "CREATE TABLE other(x)").await;
        assert!(matches!(r, Response::Result { .. }), "{r:?}");
    })
    .await
    .expect("other connections were blocked by a stalled reader");

    // A resumes: its result is complete and from its own snapshot (without B's row).
    assert_eq!(read_all_rows(&mut a, &query).await, 100_000);
    // And A's connection still works.
    assert_eq!(count(&mut a, "big").await, 100_001);
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stalled_readers_and_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path(), options()).await;
    let addr = node.local_addr().to_string();
    let mut b = open(&addr, "s.db").await.unwrap();
    fill_big(&mut b, 50_000).await;
    let query = Request::query_sql("SELECT id, pad FROM big", Vec::<Value>::new());
    let mut a1 = open(&addr, "s.db").await.unwrap();
    let mut a2 = open(&addr, "s.db").await.unwrap();
    a1.s.write_all(&query.to_bytes().unwrap()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    a2.s.write_all(&query.to_bytes().unwrap()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::time::timeout(BOUND, async {
        let r = exec(&mut b, "INSERT INTO big VALUES (-1, 'x')").await;
        assert!(matches!(r, Response::Result { .. }), "{r:?}");
    })
    .await
    .expect("blocked");
    // The inner (later) query finishes first, then the outer one resumes.
    let (n1, n2) = tokio::join!(read_all_rows(&mut a1, &query), async {
        read_all_rows(&mut a2, &query).await
    });
    assert_eq!((n1, n2), (50_000, 50_000));
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_transaction_is_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path(), options()).await;
    let addr = node.local_addr().to_string();
    let mut b = open(&addr, "t.db").await.unwrap();
    let r = exec(&mut b, "CREATE TABLE t(x TEXT)").await;
    assert!(matches!(r, Response::Result { .. }), "{r:?}");

    let mut a = open(&addr, "t.db").await.unwrap();
    for sql in ["BEGIN", "INSERT INTO t VALUES ('uncommitted')"] {
        let r = exec(&mut a, sql).await;
        assert!(matches!(r, Response::Result { .. }), "{r:?}");
    }
    drop(a);

    // B's write would wait for A's lock for up to 30 s; it goes through at once.
    tokio::time::timeout(BOUND, async {
        let r = exec(&mut b, "INSERT INTO t VALUES ('b')").await;
        assert!(matches!(r, Response::Result { .. }), "{r:?}");
    })
    .await
    .expect("the vanished client's transaction still holds the write lock");
    assert_eq!(
        b.rows("SELECT x FROM t").await.unwrap(),
        vec![vec![Value::Text("b".into())]]
    );
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnects_mid_request_and_mid_rows_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path(), options()).await;
    let addr = node.local_addr().to_string();
    let mut b = open(&addr, "d.db").await.unwrap();
    fill_big(&mut b, 30_000).await;

    // Mid-request: a write sent, the client gone before the answer. The write either
    // committed whole or not at all.
    let mut a = open(&addr, "d.db").await.unwrap();
    a.s.write_all(
        &Request::exec_sql(
            "INSERT INTO big SELECT -id, pad FROM big",
            Vec::<Value>::new(),
        )
        .to_bytes()
        .unwrap(),
    )
    .await
    .unwrap();
    drop(a);
    // Half a request: header and part of the body.
    let mut a = open(&addr, "d.db").await.unwrap();
    let bytes = Request::exec_sql("INSERT INTO big VALUES (0, 'half')", Vec::<Value>::new())
        .to_bytes()
        .unwrap();
    a.s.write_all(&bytes[..bytes.len() / 2]).await.unwrap();
    drop(a);

    // Mid-ROWS, inside an explicit transaction that wrote: one batch read, then gone.
    let mut a = open(&addr, "d.db").await.unwrap();
    for sql in ["BEGIN", "INSERT INTO big VALUES (-999999, 'in tx')"] {
        let r = exec(&mut a, sql).await;
        assert!(matches!(r, Response::Result { .. }), "{r:?}");
    }
    let query = Request::query_sql("SELECT id, pad FROM big", Vec::<Value>::new());
    a.s.write_all(&query.to_bytes().unwrap()).await.unwrap();
    match a.recv(&ResponseContext::for_request(&query)).await.unwrap() {
        Response::Rows(batch) => assert_eq!(batch.end, RowsEnd::Part),
        other => panic!("{other:?}"),
    }
    drop(a);

    // The next client writes at once: no statement or transaction was left behind.
    tokio::time::timeout(BOUND, async {
        let r = exec(&mut b, "INSERT INTO big VALUES (1000000, 'after')").await;
        assert!(matches!(r, Response::Result { .. }), "{r:?}");
    })
    .await
    .expect("a disconnected client left the write lock held");
    let n = count(&mut b, "big").await;
    assert!(
        n == 30_001 || n == 60_001,
        "all or nothing of the mid-request write: {n}"
    );
    assert_eq!(
        b.rows("SELECT count(*) FROM big WHERE pad IN ('half', 'in tx')")
            .await
            .unwrap(),
        vec![vec![Value::Integer(0)]]
    );
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_answer_clearly_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = single(
        dir.path(),
        NodeOptions {
            max_message: 16 * 1024,
            max_statements: 4,
            ..options()
        },
    )
    .await;
    let addr = node.local_addr().to_string();
    let mut c = open(&addr, "l.db").await.unwrap();
    let r = exec(&mut c, "CREATE TABLE t(x)").await;
    assert!(matches!(r, Response::Result { .. }), "{r:?}");

    // Open statements: the fifth is refused with a clear FAILURE, the four still work, and
    // finalizing one frees a slot.
    let mut ids = Vec::new();
    for i in 0..4 {
        match c
            .call(Request::Prepare {
                db_id: 0,
                sql: format!("INSERT INTO t VALUES ({i})"),
            })
            .await
            .unwrap()
        {
            Response::Stmt { stmt_id, .. } => ids.push(stmt_id),
            other => panic!("{other:?}"),
        }
    }
    let prepare = Request::Prepare {
        db_id: 0,
        sql: "SELECT 1".into(),
    };
    match c.call(prepare.clone()).await.unwrap() {
        Response::Failure(f) => {
            assert_eq!(f.code, 1);
            assert!(f.message.contains("too many prepared statements"), "{f:?}");
        }
        other => panic!("{other:?}"),
    }
    for id in &ids {
        let r = c
            .call(Request::Exec {
                db_id: 0,
                stmt_id: *id,
                params: Vec::<Value>::new().into(),
            })
            .await
            .unwrap();
        assert!(matches!(r, Response::Result { .. }), "{r:?}");
    }
    let r = c
        .call(Request::Finalize {
            db_id: 0,
            stmt_id: ids[1],
        })
        .await
        .unwrap();
    assert_eq!(r, Response::Empty);
    assert!(matches!(
        c.call(prepare).await.unwrap(),
        Response::Stmt { .. }
    ));

    // A message over the limit: a FAILURE naming the limit, then the connection closes;
    // nothing of it was executed and other connections are unaffected.
    let big = format!("INSERT INTO t VALUES ('{}')", "x".repeat(20 * 1024));
    let req = Request::exec_sql(big, Vec::<Value>::new());
    c.s.write_all(&req.to_bytes().unwrap()).await.unwrap();
    match c.recv(&ResponseContext::for_request(&req)).await.unwrap() {
        Response::Failure(f) => {
            assert_eq!(f.code, 1);
            assert!(f.message.contains("16384"), "{f:?}");
        }
        other => panic!("{other:?}"),
    }
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(Duration::from_secs(5), c.s.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "closed after the FAILURE");
    let mut d = open(&addr, "l.db").await.unwrap();
    assert_eq!(count(&mut d, "t").await, 4);
    node.shutdown().await.unwrap();
}

/// F6: a client that leaves a write transaction open and goes silent (vanished behind a
/// half-open connection, or hung) loses it after the idle timeout: another writer gets the
/// lock instead of waiting for ever, and the silent client's next statement says its
/// transaction is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_transaction_is_rolled_back_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let node = single(
        dir.path(),
        NodeOptions {
            idle_transaction_timeout: Some(Duration::from_millis(500)),
            ..options()
        },
    )
    .await;
    let addr = node.local_addr().to_string();
    let mut silent = open(&addr, "idle.db").await.unwrap();
    for sql in ["CREATE TABLE t(x)", "BEGIN", "INSERT INTO t VALUES (1)"] {
        assert!(
            matches!(exec(&mut silent, sql).await, Response::Result { .. }),
            "{sql}"
        );
    }
    let mut other = open(&addr, "idle.db").await.unwrap();
    let started = std::time::Instant::now();
    let r = tokio::time::timeout(BOUND, exec(&mut other, "INSERT INTO t VALUES (2)"))
        .await
        .expect("the idle transaction must not hold the lock for ever");
    assert!(matches!(r, Response::Result { .. }), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    match exec(&mut silent, "INSERT INTO t VALUES (3)").await {
        Response::Failure(f) => assert_eq!(f.code, dqlite_node::LEADERSHIP_LOST, "{f:?}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        exec(&mut silent, "ROLLBACK").await,
        Response::Result { .. }
    ));
    assert_eq!(count(&mut silent, "t").await, 1);
    drop((silent, other));
    node.shutdown().await.unwrap();
}

/// F6: INTERRUPT in the middle of a long result stops the stream (C 1.11 sends every
/// remaining batch first), and an interrupted `INSERT … RETURNING` leaves nothing behind:
/// no row, and no write lock held by a commit nobody proposes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_stops_a_streaming_query() {
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path(), options()).await;
    let addr = node.local_addr().to_string();
    let mut c = open(&addr, "int.db").await.unwrap();
    fill_big(&mut c, 20_000).await;

    for sql in [
        "SELECT * FROM big",
        "INSERT INTO big SELECT id + 100000, pad FROM big RETURNING id, pad",
    ] {
        let req = Request::query_sql(sql, Vec::<Value>::new());
        c.s.write_all(&req.to_bytes().unwrap()).await.unwrap();
        let ctx = ResponseContext::for_request(&req);
        match c.recv(&ctx).await.unwrap() {
            Response::Rows(b) => assert_eq!(b.end, RowsEnd::Part, "{sql}"),
            other => panic!("{sql}: {other:?}"),
        }
        let interrupt = Request::Interrupt { db_id: 0 };
        c.s.write_all(&interrupt.to_bytes().unwrap()).await.unwrap();
        // What the client reads until EMPTY (go-dqlite's drain): at most the batches already
        // in flight, not the ~1,200 of the whole result.
        let mut after = 0;
        loop {
            match c.recv(&ctx).await.unwrap() {
                Response::Rows(b) => {
                    after += 1;
                    assert_ne!(b.end, RowsEnd::Done, "{sql}: the whole result was sent");
                }
                Response::Empty => break,
                other => panic!("{sql}: {other:?}"),
            }
        }
        assert!(after < 100, "{sql}: {after} batches after INTERRUPT");
    }
    // Nothing of the interrupted INSERT, and writes go on at once.
    assert_eq!(count(&mut c, "big").await, 20_000);
    let mut other = open(&addr, "int.db").await.unwrap();
    let r = tokio::time::timeout(BOUND, exec(&mut other, "INSERT INTO big VALUES (0, 'x')"))
        .await
        .expect("no write lock left behind");
    assert!(matches!(r, Response::Result { .. }), "{r:?}");
    drop((c, other));
    node.shutdown().await.unwrap();
}
