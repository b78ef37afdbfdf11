//! The cases where C dqlite 1.11 fails and dqlite-rs must work, through `dqlite-client`
//! against an in-process single node: more than 255 parameters (schema 1), rows wider than
//! one 4096-byte batch, several connections writing at once without "database is locked",
//! and `INSERT … RETURNING` in autocommit (which aborts a C leader).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dqlite_client::{Client, Value};
use dqlite_node::{Node, NodeOptions};

async fn single(dir: &std::path::Path) -> Node {
    single_at(dir, "127.0.0.1:0").await
}

async fn single_at(dir: &std::path::Path, address: &str) -> Node {
    let node = Node::builder(1, address, dir)
        .options(NodeOptions::default())
        .start()
        .await
        .unwrap();
    node.handle()
        .unwrap()
        .wait_for_leader(Duration::from_secs(20))
        .await
        .unwrap();
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_255_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path()).await;
    let client = Client::connect([node.local_addr().to_string()])
        .await
        .unwrap();
    let mut db = client.open("params.db").await.unwrap();
    db.exec("CREATE TABLE t(v INTEGER)", ()).await.unwrap();

    // 300 parameters in one INSERT: the client encodes them with schema 1 (u32 count).
    let n = 300;
    let placeholders = vec!["(?)"; n].join(",");
    let values: Vec<Value> = (0..n as i64).map(Value::Integer).collect();
    let r = db
        .exec(
            &format!("INSERT INTO t VALUES {placeholders}"),
            values.clone(),
        )
        .await
        .unwrap();
    assert_eq!(r.rows_affected, n as u64);

    // And in a query, prepared or not.
    let in_list = vec!["?"; n].join(",");
    let sql = format!("SELECT count(*), sum(v) FROM t WHERE v IN ({in_list})");
    let rows = db.query_all(&sql, values.clone()).await.unwrap();
    let (count, sum): (i64, i64) = (rows[0].get(0).unwrap(), rows[0].get(1).unwrap());
    assert_eq!((count, sum), (n as i64, (0..n as i64).sum()));
    let mut stmt = db.prepare(&sql).await.unwrap();
    assert_eq!(stmt.param_count(), n as u64);
    let rows = db
        .query_prepared(&mut stmt, values)
        .await
        .unwrap()
        .collect_all()
        .await
        .unwrap();
    assert_eq!(rows[0].get::<i64>(0).unwrap(), n as i64);
    drop(db);
    drop(client);
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_wider_than_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path()).await;
    let client = Client::connect([node.local_addr().to_string()])
        .await
        .unwrap();
    let mut db = client.open("wide.db").await.unwrap();
    db.exec("CREATE TABLE w(id INTEGER, a TEXT, b BLOB)", ())
        .await
        .unwrap();
    // Each row is ~30 KB: far over C's 4096-byte batch, which it cannot send at all.
    let text = "x".repeat(10_000);
    let blob: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    for id in 0..5i64 {
        db.exec(
            "INSERT INTO w VALUES (?, ?, ?)",
            (id, text.clone(), blob.clone()),
        )
        .await
        .unwrap();
    }
    let rows = db
        .query_all("SELECT id, a, b FROM w ORDER BY id", ())
        .await
        .unwrap();
    assert_eq!(rows.len(), 5);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.get::<i64>(0).unwrap(), i as i64);
        assert_eq!(row.get::<String>(1).unwrap(), text);
        assert_eq!(row.get::<Vec<u8>>(2).unwrap(), blob);
    }
    drop(db);
    drop(client);
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_never_see_database_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path()).await;
    let client = Client::connect([node.local_addr().to_string()])
        .await
        .unwrap();
    let mut db = client.open("busy.db").await.unwrap();
    db.exec("CREATE TABLE c(writer INTEGER, n INTEGER)", ())
        .await
        .unwrap();

    // 8 connections, each 25 autocommit inserts plus one explicit transaction, all at once.
    let mut tasks = Vec::new();
    for w in 0..8i64 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut db = client.open("busy.db").await.unwrap();
            for n in 0..25i64 {
                db.exec("INSERT INTO c VALUES (?, ?)", (w, n))
                    .await
                    .unwrap();
            }
            let mut tx = db.transaction().await.unwrap();
            tx.exec("INSERT INTO c VALUES (?, ?)", (w, 100))
                .await
                .unwrap();
            tx.exec("UPDATE c SET n = n + 1 WHERE writer = ? AND n = 100", (w,))
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rows = db
        .query_all(
            "SELECT count(*), sum(n = 101) FROM c GROUP BY writer ORDER BY writer",
            (),
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 8);
    for row in rows {
        assert_eq!(row.get::<i64>(0).unwrap(), 26);
        assert_eq!(row.get::<i64>(1).unwrap(), 1);
    }
    drop(db);
    drop(client);
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_returning_in_autocommit_is_replicated() {
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path()).await;
    let addr = node.local_addr().to_string();
    {
        let client = Client::connect([addr.clone()]).await.unwrap();
        let mut db = client.open("ret.db").await.unwrap();
        db.exec(
            "CREATE TABLE r(id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)",
            (),
        )
        .await
        .unwrap();
        for i in 1..=3i64 {
            let rows = db
                .query_all(
                    "INSERT INTO r(v) VALUES (?) RETURNING id, v",
                    (format!("v{i}"),),
                )
                .await
                .unwrap();
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0].get::<i64>(0).unwrap(), i);
            assert_eq!(rows[0].get::<String>(1).unwrap(), format!("v{i}"));
        }
        // RETURNING many rows: several batches, one commit.
        let rows = db
            .query_all(
                "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < 2000) \
                 INSERT INTO r(v) SELECT 'bulk' || x FROM s RETURNING id",
                (),
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 2000);
        // The writes are visible to another connection, so they committed.
        let mut other = client.open("ret.db").await.unwrap();
        let n: i64 = other.query_all("SELECT count(*) FROM r", ()).await.unwrap()[0]
            .get(0)
            .unwrap();
        assert_eq!(n, 2003);
    }
    // ... and replicated through the log: they survive a restart (on the same address, the
    // one the membership records).
    node.shutdown().await.unwrap();
    let node = single_at(dir.path(), &addr).await;
    let client = Client::connect([node.local_addr().to_string()])
        .await
        .unwrap();
    let mut db = client.open("ret.db").await.unwrap();
    let n: i64 = db.query_all("SELECT count(*) FROM r", ()).await.unwrap()[0]
        .get(0)
        .unwrap();
    assert_eq!(n, 2003);
    drop(db);
    drop(client);
    node.shutdown().await.unwrap();
}
