//! The client API of issue 16 against a real 3-node cluster, once against C dqlite 1.11
//! (`c_client_api`) and once against dqlite-rs (`rs_client_api`), with the same case bodies:
//! the builder and the file node store, rows into Rust types (tuples, derived structs, every
//! integer width, times, the optional crates' types), parameters from collections, statements
//! finalized on drop, transactions with nested savepoints, pool settings and typed error
//! codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dqlite_client::{Client, Error, ErrorCode, FromRow, PoolOptions, Row, Value, params};
use support::{Backend, Case, Select, run_cases, start_cluster, test_config};

cluster_test!(c_client_api, Backend::C, api);
cluster_test!(rs_client_api, Backend::Rs, api);

async fn api(backend: Backend, select: Select) {
    let (mut cluster, client) = start_cluster(backend, 3).await;
    let servers = cluster.servers();
    let c = || client.clone();
    let cases: Vec<Case> = vec![
        (
            "builder_and_file_node_store",
            Box::pin(builder_and_store(servers.clone())),
        ),
        ("rows_into_rust_types", Box::pin(rows_into_types(c()))),
        (
            "params_from_collections",
            Box::pin(params_from_collections(c())),
        ),
        (
            "dropped_statements_are_finalized",
            Box::pin(dropped_statements(c())),
        ),
        ("transactions_and_savepoints", Box::pin(savepoints(c()))),
        ("pool_settings", Box::pin(pool_settings(c()))),
        ("typed_error_codes", Box::pin(error_codes(c()))),
    ];
    run_cases(&cluster, cases, select).await;
    if select.runs("pool_health_check_after_leader_loss") {
        pool_health_check(&mut cluster, &client).await;
    }
    drop(client);
    cluster.kill_all().unwrap();
}

/// Last, as it kills the leader: an idle pooled connection to a dead node is checked and
/// replaced before it is handed out, so the first write on it succeeds (without the check it
/// would be sent into a dead socket and fail with an unknown outcome).
async fn pool_health_check(cluster: &mut support::Cluster, client: &Client) {
    let pool = client.pool_with("pool_health", PoolOptions::new(1).health_check(true));
    let mut conn = pool.get().await.unwrap();
    conn.exec("CREATE TABLE IF NOT EXISTS h (x)", ())
        .await
        .unwrap();
    let old = conn.node().unwrap().to_owned();
    drop(conn);
    assert_eq!(pool.idle_count(), 1);
    let i = cluster
        .index_of(&old)
        .expect("the leader is one of the nodes");
    tokio::task::block_in_place(|| cluster.nodes[i].kill()).unwrap();
    let mut conn = pool.get().await.unwrap();
    conn.exec("INSERT INTO h VALUES (1)", ()).await.unwrap();
    assert_ne!(conn.node(), Some(old.as_str()));
}

async fn builder_and_store(servers: Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster.yaml");
    // One seed; the CLUSTER answer fills the store, and the file.
    let client = Client::builder()
        .servers([servers[0].as_str()])
        .config(test_config())
        .leader_timeout(Duration::from_secs(30))
        .node_store_file(&file)
        .connect()
        .await
        .unwrap();
    assert_eq!(client.members().len(), 3);
    let text = std::fs::read_to_string(&file).unwrap();
    for s in &servers {
        assert!(
            text.contains(&format!("Address: {s}")),
            "{s} not in\n{text}"
        );
    }
    let mut db = client.open("builder").await.unwrap();
    db.exec("CREATE TABLE IF NOT EXISTS t (x)", ())
        .await
        .unwrap();
    drop(db);
    drop(client);
    // A client started again from the file alone (no servers given) finds the cluster.
    let again = Client::builder()
        .config(test_config())
        .node_store_file(&file)
        .connect()
        .await
        .unwrap();
    assert!(again.leader().await.unwrap().is_some());
    assert_eq!(again.members().len(), 3);
    // Neither servers nor a store: a usage error, at once.
    assert!(matches!(Client::builder().build(), Err(Error::Usage(_))));
}

/// Every integer and float width in one row.
type Wide = (
    i8,
    i16,
    i32,
    i64,
    u16,
    u32,
    u64,
    usize,
    isize,
    f32,
    f64,
    bool,
);

#[derive(Debug, PartialEq, FromRow)]
struct Item {
    id: i64,
    #[dqlite(rename = "label")]
    name: String,
    weight: Option<f64>,
    #[dqlite(default)]
    missing: Option<i64>,
}

async fn rows_into_types(client: Client) {
    let mut db = client.open("types").await.unwrap();
    db.exec(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT, weight REAL, data BLOB, \
         at DATETIME, flag BOOLEAN)",
        (),
    )
    .await
    .unwrap();
    let at = UNIX_EPOCH + Duration::new(1_700_000_000, 250_000_000);
    for (id, label, weight) in [
        (1, "one", Some(1.5)),
        (2, "two", None),
        (3, "three", Some(-2.0)),
    ] {
        db.exec(
            "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?)",
            params![id, label, weight, vec![id as u8; 3], at, id % 2 == 1],
        )
        .await
        .unwrap();
    }

    // Tuples of every width, derived structs, rows.
    let pairs: Vec<(u8, String)> = db
        .query_as("SELECT id, label FROM items ORDER BY id", ())
        .await
        .unwrap();
    assert_eq!(
        pairs,
        [(1, "one".into()), (2, "two".into()), (3, "three".into())]
    );
    let wide: Vec<Wide> = db
        .query_as(
            "SELECT id, id, id, id, id, id, id, id, id, weight, weight, flag FROM items \
             WHERE weight IS NOT NULL ORDER BY id",
            (),
        )
        .await
        .unwrap();
    assert_eq!(wide.len(), 2);
    assert_eq!(
        (wide[0].0, wide[0].6, wide[0].9, wide[0].11),
        (1, 1, 1.5, true)
    );
    assert_eq!((wide[1].10, wide[1].11), (-2.0, true));
    let items: Vec<Item> = db
        .query_as("SELECT id, label, weight FROM items ORDER BY id", ())
        .await
        .unwrap();
    assert_eq!(
        items[1],
        Item {
            id: 2,
            name: "two".into(),
            weight: None,
            missing: None
        }
    );
    let e = db
        .query_as::<Item>("SELECT id, weight FROM items", ())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no column \"label\""), "{e}");

    // One row, by number and by name; maybe a row.
    let row: Row = db
        .query_row("SELECT id, label, data, at FROM items WHERE id = ?", [2])
        .await
        .unwrap();
    assert_eq!(row.get::<String>("label").unwrap(), "two");
    assert_eq!(row.get::<Vec<u8>>(2).unwrap(), [2, 2, 2]);
    assert_eq!(row.get::<SystemTime>("at").unwrap(), at);
    let e = db
        .query_row("SELECT id FROM items WHERE id = ?", [9])
        .await
        .unwrap_err();
    assert!(matches!(&e, Error::NoRows { .. }), "{e}");
    assert!(
        db.query_opt("SELECT id FROM items WHERE id = ?", [9])
            .await
            .unwrap()
            .is_none()
    );
    let some = db
        .query_opt("SELECT id FROM items ORDER BY id", ())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(some.get::<u64>(0).unwrap(), 1);
    // The rest of that result was discarded: the connection goes on.
    assert_eq!(
        db.query_value("SELECT count(*) FROM items", ())
            .await
            .unwrap(),
        Value::Integer(3)
    );
    // Out of range for the width asked for.
    let e = db
        .query_row("SELECT 300", ())
        .await
        .unwrap()
        .get::<u8>(0)
        .unwrap_err();
    assert!(matches!(&e, Error::Conversion { .. }), "{e}");

    // The optional crates' types, there and back.
    db.exec(
        "CREATE TABLE ext (t DATETIME, o DATETIME, u BLOB, j TEXT)",
        (),
    )
    .await
    .unwrap();
    let utc = chrono::DateTime::<chrono::Utc>::from_timestamp(1_700_000_000, 5_000).unwrap();
    let offset = time::OffsetDateTime::from_unix_timestamp(1_600_000_000)
        .unwrap()
        .to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap());
    let id = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
    let json = serde_json::json!({"a": [1, 2], "b": null});
    db.exec(
        "INSERT INTO ext VALUES (?, ?, ?, ?)",
        (utc, offset, id, json.clone()),
    )
    .await
    .unwrap();
    let back: (
        chrono::DateTime<chrono::Utc>,
        time::OffsetDateTime,
        uuid::Uuid,
        serde_json::Value,
    ) = db
        .query_row("SELECT t, o, u, j FROM ext", ())
        .await
        .unwrap()
        .to()
        .unwrap();
    assert_eq!(back, (utc, offset, id, json));
    assert_eq!(back.1.offset(), offset.offset());
}

async fn params_from_collections(client: Client) {
    let mut db = client.open("params_collections").await.unwrap();
    db.exec("CREATE TABLE p (a INTEGER, b INTEGER, c INTEGER)", ())
        .await
        .unwrap();
    let array = [1i64, 2, 3];
    let slice: &[u32] = &[4, 5, 6];
    let vec = vec![7u16, 8, 9];
    let strings = vec!["10".to_string(), "11".into(), "12".into()];
    db.exec("INSERT INTO p VALUES (?, ?, ?)", array)
        .await
        .unwrap();
    db.exec("INSERT INTO p VALUES (?, ?, ?)", &array)
        .await
        .unwrap();
    db.exec("INSERT INTO p VALUES (?, ?, ?)", slice)
        .await
        .unwrap();
    db.exec("INSERT INTO p VALUES (?, ?, ?)", &vec)
        .await
        .unwrap();
    db.exec("INSERT INTO p VALUES (?, ?, ?)", vec)
        .await
        .unwrap();
    db.exec("INSERT INTO p VALUES (?, ?, ?)", strings.as_slice())
        .await
        .unwrap();
    db.exec("INSERT INTO p VALUES (?, ?, ?)", (13, 14u8, 15i8))
        .await
        .unwrap();
    db.exec("INSERT INTO p VALUES (?, ?, ?)", params![16, 17, 18])
        .await
        .unwrap();
    let sums: Vec<(i64,)> = db
        .query_as("SELECT a + b + c FROM p ORDER BY rowid", ())
        .await
        .unwrap();
    let sums: Vec<i64> = sums.into_iter().map(|(s,)| s).collect();
    assert_eq!(sums, [6, 6, 15, 24, 24, 33, 42, 51]);
}

async fn dropped_statements(client: Client) {
    let mut db = client.open("statements").await.unwrap();
    db.exec("CREATE TABLE s (x)", ()).await.unwrap();
    // More than a dqlite-rs node keeps per connection (1,024): every statement dropped
    // without finalize must be finalized by the client, or PREPARE starts failing.
    for i in 0..1_100 {
        let mut stmt = db.prepare("INSERT INTO s VALUES (?)").await.unwrap();
        if i % 100 == 0 {
            db.exec_prepared(&mut stmt, [i]).await.unwrap();
        }
    }
    assert_eq!(
        db.query_value("SELECT count(*) FROM s", ()).await.unwrap(),
        Value::Integer(11)
    );
    // The same through a pool, whose connection outlives the statements.
    let pool = client.pool("statements", 1);
    for _ in 0..1_100 {
        let mut conn = pool.get().await.unwrap();
        let stmt = conn.prepare("SELECT x FROM s").await.unwrap();
        assert_eq!(stmt.param_count(), 0);
    }
    // An explicit finalize still works, and is not repeated on drop.
    let stmt = db.prepare("SELECT 1").await.unwrap();
    db.finalize(stmt).await.unwrap();
    db.query_value("SELECT 1", ()).await.unwrap();
}

async fn savepoints(client: Client) {
    let mut db = client.open("savepoints").await.unwrap();
    db.exec("CREATE TABLE v (x INTEGER)", ()).await.unwrap();
    let count = |rows: Vec<Row>| rows[0].get::<i64>(0).unwrap();
    {
        let mut tx = db.transaction().await.unwrap();
        tx.exec("INSERT INTO v VALUES (1)", ()).await.unwrap();
        // A savepoint rolled back.
        let mut sp = tx.savepoint().await.unwrap();
        sp.exec("INSERT INTO v VALUES (2)", ()).await.unwrap();
        sp.rollback().await.unwrap();
        // Savepoints nested two deep, released.
        let mut sp = tx.savepoint().await.unwrap();
        sp.exec("INSERT INTO v VALUES (3)", ()).await.unwrap();
        let mut inner = sp.savepoint().await.unwrap();
        inner.exec("INSERT INTO v VALUES (4)", ()).await.unwrap();
        assert!(inner.savepoint_name().is_some());
        inner.commit().await.unwrap();
        sp.commit().await.unwrap();
        // A savepoint dropped without commit is rolled back before the next request.
        {
            let mut dropped = tx.savepoint().await.unwrap();
            dropped.exec("INSERT INTO v VALUES (5)", ()).await.unwrap();
        }
        // Every query method works inside the transaction.
        let n: (i64,) = tx
            .query_row("SELECT count(*) FROM v", ())
            .await
            .unwrap()
            .to()
            .unwrap();
        assert_eq!(n, (3,));
        let xs: Vec<(i64,)> = tx.query_as("SELECT x FROM v ORDER BY x", ()).await.unwrap();
        assert_eq!(xs, [(1,), (3,), (4,)]);
        let mut stmt = tx
            .prepare("SELECT count(*) FROM v WHERE x > ?")
            .await
            .unwrap();
        let rows = tx
            .query_prepared(&mut stmt, [1])
            .await
            .unwrap()
            .collect_all()
            .await
            .unwrap();
        assert_eq!(count(rows), 2);
        assert!(tx.in_transaction());
        tx.commit().await.unwrap();
    }
    assert!(!db.in_transaction());
    let rows = db.query_all("SELECT count(*) FROM v", ()).await.unwrap();
    assert_eq!(count(rows), 3);
    // A transaction dropped without commit rolls back.
    {
        let mut tx = db.transaction().await.unwrap();
        tx.exec("DELETE FROM v", ()).await.unwrap();
    }
    let rows = db.query_all("SELECT count(*) FROM v", ()).await.unwrap();
    assert_eq!(count(rows), 3);
    // A savepoint outside a transaction is one.
    let mut sp = db.savepoint().await.unwrap();
    sp.exec("INSERT INTO v VALUES (6)", ()).await.unwrap();
    assert!(sp.in_transaction());
    sp.commit().await.unwrap();
    assert!(!db.in_transaction());
    let mut other = client.open("savepoints").await.unwrap();
    let rows = other.query_all("SELECT count(*) FROM v", ()).await.unwrap();
    assert_eq!(count(rows), 4);
}

async fn pool_settings(client: Client) {
    let mut db = client.open("pool_settings").await.unwrap();
    db.exec("CREATE TABLE IF NOT EXISTS t (x)", ())
        .await
        .unwrap();
    // Acquire timeout.
    let pool = client.pool_with(
        "pool_settings",
        PoolOptions::new(1).acquire_timeout(Duration::from_millis(300)),
    );
    let held = pool.get().await.unwrap();
    let started = Instant::now();
    let e = pool.get().await.unwrap_err();
    assert!(matches!(e, Error::PoolTimeout { .. }), "{e}");
    assert!(started.elapsed() >= Duration::from_millis(250));
    let first = held.opened_at();
    drop(held);
    // Given back and handed out again (after its health check).
    let again = pool.get().await.unwrap();
    assert_eq!(again.opened_at(), first);
    drop(again);
    assert_eq!(pool.idle_count(), 1);

    // Maximum lifetime: an old connection is replaced.
    let pool = client.pool_with(
        "pool_settings",
        PoolOptions::new(2).max_lifetime(Duration::from_millis(200)),
    );
    let first = pool.get().await.unwrap().opened_at();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let conn = pool.get().await.unwrap();
    assert!(conn.opened_at() > first);
    drop(conn);

    // Idle timeout and idle limit.
    let pool = client.pool_with(
        "pool_settings",
        PoolOptions::new(3)
            .idle_timeout(Duration::from_millis(200))
            .max_idle(1)
            .health_check(false),
    );
    let (a, b) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    drop(a);
    drop(b);
    assert_eq!(pool.idle_count(), 1, "one idle connection at most");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let fresh = pool.get().await.unwrap();
    assert_eq!(pool.idle_count(), 0, "the expired one was closed");
    drop(fresh);
}

async fn error_codes(client: Client) {
    let mut db = client.open("codes").await.unwrap();
    db.exec("CREATE TABLE c (k TEXT UNIQUE NOT NULL)", ())
        .await
        .unwrap();
    db.exec("INSERT INTO c VALUES ('a')", ()).await.unwrap();
    let e = db.exec("INSERT INTO c VALUES ('a')", ()).await.unwrap_err();
    assert_eq!(
        (e.code(), e.raw_code()),
        (Some(ErrorCode::Constraint), Some(2067))
    );
    let e = db
        .exec("INSERT INTO c VALUES (NULL)", ())
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.raw_code()),
        (Some(ErrorCode::Constraint), Some(1299))
    );
    let e = db
        .exec("INSERT INTO nope VALUES (1)", ())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Error));
    let e = db.exec("COMMIT", ()).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Error), "{e}");
    // The constants the codes come from are dqlite-wire's, shared with the node.
    assert_eq!(e.raw_code(), Some(dqlite_client::error_code::ERROR), "{e}");
    // Not an error of the server: no code.
    let e = db.query_row("SELECT 1 WHERE 0", ()).await.unwrap_err();
    assert_eq!(e.code(), None);
}
