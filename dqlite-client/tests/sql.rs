//! SQL against a real 3-node cluster, through the library and through the `dqlite` shell, once
//! against C dqlite 1.11 (Debian `dqlite-demo`, tests `c_*`) and once against dqlite-rs (the
//! `dqlite-node` binary, tests `rs_*`), with the same case bodies. One cluster per backend is
//! shared by every case; each case uses its own database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use dqlite_client::{Client, ErrorCode, FromValue, Value, params};
use futures::StreamExt;
use support::{Backend, Case, Select, run_cases, start_cluster, test_config};

cluster_test!(c_cluster_sql_and_shell, Backend::C, sql_and_shell);
cluster_test!(
    rs_cluster_sql_and_shell,
    Backend::Rs,
    sql_and_shell,
    Select::Except(RS_KNOWN_BUGS)
);
cluster_test!(
    #[ignore = "not yet shown reliable under CPU load in a debug build (one run took 193 s); \
                see RS_KNOWN_BUGS in tests/sql.rs"]
    rs_known_bug_large_entry_replication,
    Backend::Rs,
    sql_and_shell,
    Select::Only(RS_KNOWN_BUGS)
);

/// Cases left out of the `rs_` test until they are shown reliable, run only by the ignored
/// `rs_known_bug_*` test.
///
/// `one_million_row_insert`: one commit, i.e. one Raft entry, of ~18 MiB of WAL frames. With
/// the release build it commits in 2.6 s (C 1.11: 5.2 s). With the debug build it used to
/// fail: followers elected a new leader while the entry was in flight, because the nodes'
/// runtime threads, where openraft's heartbeat timer runs, spent seconds of CPU on it (the
/// leader re-read it from disk for every AppendEntries attempt, and postcard serialized it
/// into each AppendEntries one byte at a time), and the INSERT ended in 10506 "leadership
/// lost": 5 of 11 runs by hand (some beside a CI run), and 3 of 4 runs beside a CI run after
/// the disk reads were fixed. With the serialization fixed too (dqlite-raft's codec copies
/// byte strings whole) it passed 15 of 15 runs: 10 beside a CI run (load average ~3) and 5
/// with two CPU hogs on the 2 cores, but one of those took 193 s instead of 5-14 s, and
/// that is not explained yet, so the case stays out of CI for now. Still on the runtime:
/// the leader's and followers' log records of the entry and the decoding of the command to
/// apply it (about a tenth of the CPU the two fixed steps took, by perf).
const RS_KNOWN_BUGS: &[&str] = &["one_million_row_insert"];

async fn sql_and_shell(backend: Backend, select: Select) {
    let (mut cluster, client) = start_cluster(backend, 3).await;
    let servers = cluster.servers();
    let leader = client.leader().await.unwrap().expect("a leader").address;
    let follower = servers.iter().find(|s| **s != leader).unwrap().clone();

    let c = || client.clone();
    let mut cases: Vec<Case> = vec![
        ("value_types", Box::pin(value_types(c(), backend))),
        ("streaming_10000_rows", Box::pin(streaming(c()))),
        ("prepared_statements", Box::pin(prepared(c()))),
        ("transactions", Box::pin(transactions(c()))),
        (
            "errors_keep_connection_usable",
            Box::pin(errors(c(), backend)),
        ),
        ("more_than_255_params", Box::pin(many_params(c(), backend))),
        (
            "concurrent_writers",
            Box::pin(concurrent_writers(c(), backend)),
        ),
        ("interrupt", Box::pin(interrupt(c()))),
        ("multi_statement_exec", Box::pin(multi_statement(c()))),
        ("pool", Box::pin(pool(c()))),
        (
            "leader_discovery_via_follower",
            Box::pin(via_follower(follower.clone(), leader.clone())),
        ),
        (
            "shell_one_shot",
            Box::pin(shell_one_shot(servers.join(","), leader.clone())),
        ),
        (
            "shell_interactive",
            Box::pin(shell_interactive(servers.join(","))),
        ),
        ("shell_no_leader_is_bounded", Box::pin(shell_no_leader())),
    ];
    if backend == Backend::Rs {
        // Not run on C 1.11: a QUERY of `INSERT ... RETURNING` in autocommit aborts the C leader
        // (assertion `wal->n_tx == 0`, go-dqlite#192; fixed in 1.18.3), which would end the
        // shared cluster. dqlite-rs must stream the rows and replicate the insert.
        cases.push(("insert_returning", Box::pin(insert_returning(c()))));
        cases.push(("one_million_row_insert", Box::pin(million_rows(c()))));
    }
    run_cases(&cluster, cases, select).await;
    drop(client);
    cluster.kill_all().unwrap();
}

async fn value_types(client: Client, backend: Backend) {
    let mut db = client.open("values").await.unwrap();
    db.exec(
        "CREATE TABLE v (i INTEGER, f REAL, t TEXT, b BLOB, n, d DATETIME, u DATETIME, \
         bo BOOLEAN, nb BOOLEAN, nd DATETIME)",
        (),
    )
    .await
    .unwrap();
    let blob: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let sent = vec![
        Value::Integer(i64::MIN),
        Value::Float(-1.5e300),
        Value::Text("héllo ✓ 'quoted'".into()),
        Value::Blob(blob.clone()),
        Value::Null,
        Value::Iso8601("2024-01-02 03:04:05".into()),
        // UNIXTIME cannot be a parameter: the client sends the integer it holds.
        Value::UnixTime(1_700_000_000),
        Value::Boolean(1),
        Value::Null,
        Value::Null,
    ];
    let r = db
        .exec("INSERT INTO v VALUES (?,?,?,?,?,?,?,?,?,?)", sent.clone())
        .await
        .unwrap();
    assert_eq!(r.rows_affected, 1);
    assert_eq!(r.last_insert_id, 1);
    db.exec(
        "INSERT INTO v (i, f, t, b, bo) VALUES (?, ?, ?, ?, ?)",
        params![i64::MAX, f64::INFINITY, "", Vec::<u8>::new(), false],
    )
    .await
    .unwrap();

    // What C stored: storage classes as SQLite sees them.
    let types = db
        .query_all(
            "SELECT typeof(i), typeof(f), typeof(t), typeof(b), typeof(n), typeof(d), \
             typeof(u), typeof(bo), typeof(nb), typeof(nd) FROM v WHERE rowid = 1",
            (),
        )
        .await
        .unwrap();
    let types: Vec<String> = types[0]
        .values()
        .iter()
        .map(|v| String::from_value(v).unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "integer", "real", "text", "blob", "null", "text", "integer", "integer", "null", "null"
        ]
    );

    // And how it comes back, typed by the declared column types.
    let rows = db
        .query_all("SELECT * FROM v ORDER BY rowid", ())
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let got = rows[0].values();
    assert_eq!(got[0], Value::Integer(i64::MIN));
    assert_eq!(got[1], Value::Float(-1.5e300));
    assert_eq!(got[2], Value::Text("héllo ✓ 'quoted'".into()));
    assert_eq!(got[3], Value::Blob(blob));
    assert_eq!(got[4], Value::Null);
    assert_eq!(got[5], Value::Iso8601("2024-01-02 03:04:05".into()));
    assert_eq!(got[6], Value::UnixTime(1_700_000_000));
    assert_eq!(got[7], Value::Boolean(1));
    match backend {
        // C 1.11 sends NULL in a BOOLEAN column as false and in a DATETIME column as ''.
        Backend::C => {
            assert_eq!(
                got[8],
                Value::Boolean(0),
                "C: NULL in a BOOLEAN column is false"
            );
            assert_eq!(
                got[9],
                Value::Iso8601(String::new()),
                "C: NULL DATETIME is ''"
            );
        }
        // dqlite-rs sends NULL as NULL (dqlite-node's F7).
        Backend::Rs => {
            assert_eq!(
                got[8],
                Value::Null,
                "dqlite-rs: NULL in a BOOLEAN column is NULL"
            );
            assert_eq!(
                got[9],
                Value::Null,
                "dqlite-rs: NULL in a DATETIME column is NULL"
            );
        }
    }
    assert_eq!(rows[0].get::<Option<String>>(9).unwrap(), None);
    assert_eq!(rows[0].get_by_name::<i64>("u").unwrap(), 1_700_000_000);
    let second = rows[1].values();
    assert_eq!(second[0], Value::Integer(i64::MAX));
    assert_eq!(second[1], Value::Float(f64::INFINITY));
    assert_eq!(second[2], Value::Text(String::new()));
    assert_eq!(second[3], Value::Blob(vec![]));
    assert_eq!(second[7], Value::Boolean(0));

    // Expressions keep their storage class; parameters of every type round-trip through SELECT.
    let echo = db
        .query_all(
            "SELECT ?, ?, ?, ?, ?, ?, ?",
            params![
                42,
                0.25,
                "x",
                vec![1u8, 2],
                None::<i64>,
                true,
                Value::Iso8601("2020-02-02".into())
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        echo[0].values(),
        &[
            Value::Integer(42),
            Value::Float(0.25),
            Value::Text("x".into()),
            Value::Blob(vec![1, 2]),
            Value::Null,
            Value::Integer(1),
            Value::Text("2020-02-02".into()),
        ]
    );
    // A SystemTime goes as ISO-8601 text SQLite understands.
    let t = std::time::UNIX_EPOCH + Duration::from_secs(86_400);
    let v = db
        .query_value("SELECT strftime('%s', ?)", params![t])
        .await
        .unwrap();
    assert_eq!(v, Value::Text("86400".into()));
}

async fn streaming(client: Client) {
    let mut db = client.open("stream").await.unwrap();
    db.exec("CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT)", ())
        .await
        .unwrap();
    let r = db
        .exec(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000) \
             INSERT INTO big SELECT x, printf('row-%05d', x) FROM c",
            (),
        )
        .await
        .unwrap();
    assert_eq!(r.rows_affected, 10_000);
    let mut rows = db
        .query("SELECT id, v FROM big ORDER BY id", ())
        .await
        .unwrap();
    assert_eq!(rows.columns(), ["id", "v"]);
    let mut n = 0i64;
    while let Some(row) = rows.next().await {
        let row = row.unwrap();
        n += 1;
        assert_eq!(row.get::<i64>(0).unwrap(), n);
        assert_eq!(row.get::<String>(1).unwrap(), format!("row-{n:05}"));
    }
    assert_eq!(n, 10_000);
    drop(rows);
    // The connection is idle again.
    assert_eq!(
        db.query_value("SELECT count(*) FROM big", ())
            .await
            .unwrap(),
        Value::Integer(10_000)
    );
}

/// One INSERT of a million rows: a single commit (one Raft entry) of about 18 MiB of pages.
async fn million_rows(client: Client) {
    let mut db = client.open("million").await.unwrap();
    db.exec("CREATE TABLE m (id INTEGER PRIMARY KEY, v TEXT)", ())
        .await
        .unwrap();
    let r = db
        .exec(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000) \
             INSERT INTO m SELECT x, printf('row-%07d', x) FROM c",
            (),
        )
        .await
        .unwrap();
    assert_eq!(r.rows_affected, 1_000_000);
    assert_eq!(count(&mut db, "m").await, 1_000_000);
}

async fn prepared(client: Client) {
    let mut db = client.open("prepared").await.unwrap();
    db.exec("CREATE TABLE p (id INTEGER PRIMARY KEY, name TEXT)", ())
        .await
        .unwrap();
    let mut ins = db
        .prepare("INSERT INTO p (id, name) VALUES (?, ?)")
        .await
        .unwrap();
    assert_eq!(ins.param_count(), 2);
    for i in 1..=50 {
        let r = db
            .exec_prepared(&mut ins, params![i, format!("n{i}")])
            .await
            .unwrap();
        assert_eq!(r.last_insert_id, i as u64);
    }
    let mut sel = db.prepare("SELECT name FROM p WHERE id = ?").await.unwrap();
    for i in [1, 25, 50] {
        let rows = db
            .query_prepared(&mut sel, params![i])
            .await
            .unwrap()
            .collect_all()
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get::<String>(0).unwrap(), format!("n{i}"));
    }
    let none = db
        .query_prepared(&mut sel, params![999])
        .await
        .unwrap()
        .collect_all()
        .await
        .unwrap();
    assert!(none.is_empty());
    db.finalize(sel).await.unwrap();
    db.finalize(ins).await.unwrap();
    // A statement with a syntax error fails to prepare and the connection stays usable.
    let e = db.prepare("SELEC 1").await.unwrap_err();
    assert_eq!(e.raw_code(), Some(1), "{e}");
    let mut again = db.prepare("SELECT count(*) FROM p").await.unwrap();
    let rows = db
        .query_prepared(&mut again, ())
        .await
        .unwrap()
        .collect_all()
        .await
        .unwrap();
    assert_eq!(rows[0].get::<i64>(0).unwrap(), 50);
    db.finalize(again).await.unwrap();
}

async fn count(db: &mut dqlite_client::Database, table: &str) -> i64 {
    db.query_row(&format!("SELECT count(*) FROM {table}"), ())
        .await
        .unwrap()
        .get(0)
        .unwrap()
}

async fn transactions(client: Client) {
    let mut db = client.open("tx").await.unwrap();
    db.exec("CREATE TABLE t (x INTEGER)", ()).await.unwrap();

    let mut tx = db.transaction().await.unwrap();
    tx.exec("INSERT INTO t VALUES (1)", ()).await.unwrap();
    tx.exec("INSERT INTO t VALUES (2)", ()).await.unwrap();
    let inside = tx.query_all("SELECT count(*) FROM t", ()).await.unwrap();
    assert_eq!(inside[0].get::<i64>(0).unwrap(), 2);
    tx.commit().await.unwrap();
    assert_eq!(count(&mut db, "t").await, 2);

    let mut tx = db.transaction().await.unwrap();
    tx.exec("INSERT INTO t VALUES (3)", ()).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(count(&mut db, "t").await, 2);

    // Dropped without commit: rolled back before the next request.
    {
        let mut tx = db.transaction().await.unwrap();
        tx.exec("INSERT INTO t VALUES (4)", ()).await.unwrap();
        assert!(tx.exec("INSERT INTO nope VALUES (1)", ()).await.is_err());
    }
    assert_eq!(count(&mut db, "t").await, 2);
    assert!(!db.in_transaction());

    // Another connection does not see uncommitted rows.
    let mut other = client.open("tx").await.unwrap();
    let mut tx = db.transaction().await.unwrap();
    tx.exec("INSERT INTO t VALUES (5)", ()).await.unwrap();
    assert_eq!(count(&mut other, "t").await, 2);
    tx.commit().await.unwrap();
    assert_eq!(count(&mut other, "t").await, 3);
}

async fn errors(client: Client, backend: Backend) {
    let mut db = client.open("errors").await.unwrap();
    db.exec(
        "CREATE TABLE e (k TEXT UNIQUE NOT NULL, n INTEGER CHECK (n >= 0))",
        (),
    )
    .await
    .unwrap();
    db.exec("INSERT INTO e VALUES ('a', 1)", ()).await.unwrap();
    let cases: Vec<(&str, u64, &str)> = vec![
        (
            "INSERT INTO e VALUES ('a', 2)",
            2067,
            "UNIQUE constraint failed: e.k",
        ),
        (
            "INSERT INTO e VALUES (NULL, 2)",
            1299,
            "NOT NULL constraint failed: e.k",
        ),
        (
            "INSERT INTO e VALUES ('b', -1)",
            275,
            "CHECK constraint failed",
        ),
        ("INSERT INTO nope VALUES (1)", 1, "no such table: nope"),
        ("CREAT TABLE x (y)", 1, "syntax error"),
    ];
    for (sql, code, msg) in cases {
        let e = db.exec(sql, ()).await.unwrap_err();
        assert_eq!(e.raw_code(), Some(code), "{sql}: {e}");
        assert!(e.message().unwrap().contains(msg), "{sql}: {e}");
        assert!(!e.is_retryable() && !e.is_connection_error() && !e.is_outcome_unknown());
        assert_eq!(e.node(), db.node(), "the error names the node");
        // Still usable.
        assert_eq!(count(&mut db, "e").await, 1);
    }
    // Query errors: at prepare time, and while stepping (C prefixes that FAILURE with the
    // batch's column header; the client must still see the real code and message).
    let e = db.query_all("SELECT * FROM nope", ()).await.unwrap_err();
    assert_eq!(e.raw_code(), Some(1));
    let e = db
        .query_all("SELECT abs(-9223372036854775807 - 1) AS boom", ())
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.raw_code(), e.message()),
        (Some(ErrorCode::Error), Some(1), Some("integer overflow")),
        "{e}"
    );
    let e = db
        .query_all("SELECT k, abs(-9223372036854775807 - 1 + n - 1) FROM e", ())
        .await
        .unwrap_err();
    assert_eq!(e.message(), Some("integer overflow"), "{e}");
    // More parameters than the statement has placeholders.
    let r = db
        .exec("INSERT INTO e VALUES (?, ?)", params!["c", 1, 2])
        .await;
    match backend {
        // C 1.11 binds every value it got: the third bind fails with SQLITE_RANGE.
        Backend::C => {
            let e = r.unwrap_err();
            assert_eq!(e.raw_code(), Some(25), "{e}");
            assert_eq!(count(&mut db, "e").await, 1);
        }
        // dqlite-rs follows current C dqlite (>= 1.18.2, `wire-protocol.md` §3.3): it binds as
        // many values as there are placeholders and ignores the rest, so the row goes in.
        Backend::Rs => {
            assert_eq!(r.unwrap().rows_affected, 1);
            let c = db
                .query_value("SELECT n FROM e WHERE k = 'c'", ())
                .await
                .unwrap();
            assert_eq!(c, Value::Integer(1));
            db.exec("DELETE FROM e WHERE k = 'c'", ()).await.unwrap();
            assert_eq!(count(&mut db, "e").await, 1);
        }
    }
}

async fn many_params(client: Client, backend: Backend) {
    let mut db = client.open("params").await.unwrap();
    db.exec("CREATE TABLE w (x INTEGER)", ()).await.unwrap();
    let n = 300usize;
    let sql = format!("INSERT INTO w VALUES {}", vec!["(?)"; n].join(", "));
    let values: Vec<Value> = (1..=n as i64).map(Value::Integer).collect();
    let r = db.exec(&sql, values.clone()).await;
    let select = format!("SELECT {}", vec!["?"; n].join(" + "));
    let q = db.query_all(&select, values).await;
    match backend {
        // The client sends more than 255 parameters with the 32-bit count (request schema 1),
        // which C 1.11 does not know (it came with 1.15): FAILURE(1005 DQLITE_PARSE, "not an
        // error"), and the connection stays usable.
        Backend::C => {
            for e in [r.unwrap_err(), q.unwrap_err()] {
                assert_eq!(e.raw_code(), Some(1005), "{e}");
            }
            assert_eq!(count(&mut db, "w").await, 0);
        }
        // dqlite-rs decodes schema 1 and binds all of them.
        Backend::Rs => {
            assert_eq!(r.unwrap().rows_affected, n as u64);
            let sum = db.query_value("SELECT sum(x) FROM w", ()).await.unwrap();
            assert_eq!(sum, Value::Integer((n * (n + 1) / 2) as i64));
            let rows = q.unwrap();
            assert_eq!(rows[0].get::<i64>(0).unwrap(), (n * (n + 1) / 2) as i64);
        }
    }
}

async fn insert_returning(client: Client) {
    let mut db = client.open("returning").await.unwrap();
    db.exec("CREATE TABLE r (id INTEGER PRIMARY KEY, x TEXT)", ())
        .await
        .unwrap();
    let (a, b) = ("returning-marker-a-7f3e", "returning-marker-b-91c2");
    let rows = db
        .query_all(
            "INSERT INTO r (x) VALUES (?), (?) RETURNING id, x",
            params![a, b],
        )
        .await
        .unwrap();
    let got: Vec<(i64, String)> = rows
        .iter()
        .map(|r| (r.get(0).unwrap(), r.get(1).unwrap()))
        .collect();
    assert_eq!(got, [(1, a.to_string()), (2, b.to_string())]);
    assert_eq!(count(&mut db, "r").await, 2);
    // The insert was replicated: a follower's own copy (its DUMP) holds both records.
    let leader = client.leader().await.unwrap().expect("a leader");
    let follower = client
        .cluster()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.id != leader.id)
        .unwrap();
    let holds = |files: &[dqlite_client::File], marker: &str| {
        files
            .iter()
            .any(|f| f.data.windows(marker.len()).any(|w| w == marker.as_bytes()))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let files = client
            .dump_from(&follower.address, "returning")
            .await
            .unwrap();
        if holds(&files, a) && holds(&files, b) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} never got the RETURNING insert",
            follower.address
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Eight connections write to one database at the same time.
async fn concurrent_writers(client: Client, backend: Backend) {
    let mut db = client.open("writers").await.unwrap();
    db.exec("CREATE TABLE cw (w INTEGER, i INTEGER)", ())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for w in 0..8i64 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut db = client.open("writers").await.unwrap();
            let (mut ok, mut busy) = (0i64, 0i64);
            for i in 0..25i64 {
                match db.exec("INSERT INTO cw VALUES (?, ?)", params![w, i]).await {
                    Ok(_) => ok += 1,
                    Err(e) if e.raw_code().is_some_and(|c| c & 0xff == 5) => busy += 1,
                    Err(e) => panic!("writer {w}: {e}"),
                }
            }
            (ok, busy)
        }));
    }
    let (mut ok, mut busy) = (0, 0);
    for t in tasks {
        let (o, b) = t.await.unwrap();
        ok += o;
        busy += b;
    }
    // Whatever was acknowledged is there, and nothing else.
    assert_eq!(count(&mut db, "cw").await, ok);
    match backend {
        // C 1.x answers a write that meets another connection's write with SQLITE_BUSY at
        // once instead of queueing it; how many depends on timing, so only the sum is checked.
        Backend::C => {
            assert_eq!(ok + busy, 200);
            eprintln!("concurrent writers on C: {ok} written, {busy} \"database is locked\"");
        }
        // dqlite-rs queues writers per database: every write goes in.
        Backend::Rs => assert_eq!((ok, busy), (200, 0)),
    }
}

async fn interrupt(client: Client) {
    let mut db = client.open("interrupt").await.unwrap();
    db.exec("CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT)", ())
        .await
        .unwrap();
    db.exec(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000) \
         INSERT INTO big SELECT x, printf('value-%08d', x) FROM c",
        (),
    )
    .await
    .unwrap();
    // Read one row, then interrupt explicitly.
    let mut rows = db.query("SELECT * FROM big", ()).await.unwrap();
    let first = rows.next().await.unwrap().unwrap();
    assert_eq!(first.get::<i64>(0).unwrap(), 1);
    rows.interrupt().await.unwrap();
    assert_eq!(count(&mut db, "big").await, 5000);
    // Drop a stream half-way: the next request drains it first.
    {
        let mut rows = db.query("SELECT * FROM big", ()).await.unwrap();
        for _ in 0..300 {
            rows.next().await.unwrap().unwrap();
        }
    }
    assert_eq!(count(&mut db, "big").await, 5000);
    // Interrupt while idle is answered too.
    db.interrupt().await.unwrap();
    assert_eq!(count(&mut db, "big").await, 5000);
}

async fn multi_statement(client: Client) {
    let mut db = client.open("multi").await.unwrap();
    let r = db
        .exec(
            "CREATE TABLE m (x); INSERT INTO m VALUES (1); INSERT INTO m VALUES (2), (3);",
            (),
        )
        .await
        .unwrap();
    assert_eq!(r.rows_affected, 2, "counters of the last statement");
    assert_eq!(count(&mut db, "m").await, 3);
    // The first failing statement stops the rest.
    assert!(
        db.exec(
            "INSERT INTO m VALUES (4); INSERT INTO nope VALUES (5); INSERT INTO m VALUES (6)",
            ()
        )
        .await
        .is_err()
    );
    assert_eq!(count(&mut db, "m").await, 4);
}

async fn pool(client: Client) {
    let mut db = client.open("pool").await.unwrap();
    db.exec("CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)", ())
        .await
        .unwrap();
    for i in 0..20 {
        db.exec("INSERT INTO kv VALUES (?, ?)", params![i, format!("v{i}")])
            .await
            .unwrap();
    }
    let pool = client.pool("pool", 3);
    let mut tasks = Vec::new();
    for t in 0..8 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                let mut conn = pool.get().await.unwrap();
                let v = conn
                    .query_value("SELECT v FROM kv WHERE k = ?", params![(i + t) % 20])
                    .await
                    .unwrap();
                assert_eq!(v, Value::Text(format!("v{}", (i + t) % 20)));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(pool.idle_count() <= 3 && pool.idle_count() >= 1);
}

async fn via_follower(follower: String, leader: String) {
    let client = Client::connect_with([follower.clone()], test_config())
        .await
        .unwrap();
    let mut db = client.open("follower").await.unwrap();
    assert_eq!(
        db.node(),
        Some(leader.as_str()),
        "asked {follower}, got to the leader"
    );
    db.exec("CREATE TABLE f (x)", ()).await.unwrap();
    // The store learned every member from CLUSTER.
    assert_eq!(client.members().len(), 3);
}

fn shell(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_dqlite"))
        .args(args)
        .env("HOME", std::env::temp_dir())
        .output()
        .unwrap()
}

async fn shell_one_shot(servers: String, leader: String) {
    tokio::task::spawn_blocking(move || {
        let s = servers.as_str();
        let out = shell(&[
            "-s",
            s,
            "shelldb",
            "CREATE TABLE s (id INTEGER PRIMARY KEY, name TEXT); \
             INSERT INTO s (name) VALUES ('a;b'), ('c''d'); SELECT id, name FROM s ORDER BY id",
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(stdout, "id | name\n---+-----\n 1 | a;b\n 2 | c'd\n");

        let out = shell(&[
            "-s",
            s,
            "shelldb",
            "--format",
            "json",
            "SELECT * FROM s WHERE id = 2",
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v, serde_json::json!([{"id": 2, "name": "c'd"}]));

        let out = shell(&[
            "-s",
            s,
            "shelldb",
            "-f",
            "csv",
            "SELECT name FROM s ORDER BY id",
        ]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "name\na;b\nc'd\n");

        // PRAGMA/WITH are queries; a setting PRAGMA (no result columns) still runs.
        let out = shell(&[
            "-s",
            s,
            "shelldb",
            "PRAGMA foreign_keys = 1; WITH x(n) AS (VALUES (7)) SELECT n FROM x",
        ]);
        assert!(out.status.success(), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).ends_with("n\n-\n7\n"),
            "{out:?}"
        );

        // Errors: message on stderr, exit status 1, statements after the error not run.
        let out = shell(&[
            "-s",
            s,
            "shelldb",
            "INSERT INTO s VALUES (1, 'dup'); INSERT INTO s (name) VALUES ('never')",
        ]);
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("UNIQUE constraint failed"), "{stderr}");
        let out = shell(&["-s", s, "shelldb", "SELECT count(*) AS n FROM s"]);
        assert!(String::from_utf8_lossy(&out.stdout).ends_with("2\n"));

        // Dot commands.
        let out = shell(&["-s", s, "shelldb", ".leader"]);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), leader);
        let out = shell(&["-s", s, "shelldb", "-f", "json", ".cluster"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let arr = v.as_array().unwrap();
        assert_eq!(arr.len(), 3);
        assert!(arr.iter().all(|n| n["role"] == "voter"), "{v}");
        let out = shell(&["-s", s, "shelldb", &format!(".describe {leader}")]);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&leader),
            "{out:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("copy.db");
        let out = shell(&["-s", s, "shelldb", &format!(".dump {}", file.display())]);
        assert!(out.status.success(), "{out:?}");
        let data = std::fs::read(&file).unwrap();
        assert!(data.starts_with(b"SQLite format 3\0"));
        assert!(dir.path().join("copy.db-wal").exists());
        let out = shell(&["-s", s, "shelldb", ".nonsense"]);
        assert_eq!(out.status.code(), Some(1));
    })
    .await
    .unwrap();
}

async fn shell_interactive(servers: String) {
    tokio::task::spawn_blocking(move || {
        let home = tempfile::tempdir().unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_dqlite"));
        cmd.args(["-s", &servers, "interactive"])
            .env("HOME", home.path());
        let mut p = rexpect::session::spawn_command(cmd, Some(20_000)).unwrap();
        p.exp_string("dqlite> ").unwrap();
        p.send_line("CREATE TABLE i (x INTEGER, y TEXT);").unwrap();
        p.exp_string("dqlite> ").unwrap();
        p.send_line("INSERT INTO i VALUES (1, 'one;'),").unwrap();
        p.exp_string("...> ").unwrap();
        p.send_line("  (2, 'two');").unwrap();
        p.exp_string("dqlite> ").unwrap();
        p.send_line("BEGIN; INSERT INTO i VALUES (3, 'three');")
            .unwrap();
        p.exp_string("dqlite> ").unwrap();
        p.send_line("ROLLBACK;").unwrap();
        p.exp_string("dqlite> ").unwrap();
        p.send_line("SELECT x, y").unwrap();
        p.exp_string("...> ").unwrap();
        p.send_line("FROM i ORDER BY x;").unwrap();
        p.exp_string("1 | one;").unwrap();
        p.exp_string("2 | two").unwrap();
        p.exp_string("dqlite> ").unwrap();
        p.send_line("SELECT * FROM missing;").unwrap();
        p.exp_string("Error: ").unwrap();
        p.exp_string("no such table: missing").unwrap();
        p.exp_string("dqlite> ").unwrap();
        p.send_line(".help").unwrap();
        p.exp_string(".transfer").unwrap();
        p.exp_string("dqlite> ").unwrap();
        p.send_line(".cluster").unwrap();
        p.exp_string("voter").unwrap();
        p.exp_string("dqlite> ").unwrap();
        p.send_line(".quit").unwrap();
        p.exp_eof().unwrap();
        let history = std::fs::read_to_string(home.path().join(".dqlite_history")).unwrap();
        assert!(history.contains("ROLLBACK;"), "{history}");
    })
    .await
    .unwrap();
}

async fn shell_no_leader() {
    tokio::task::spawn_blocking(|| {
        // Nothing listens there: the shell gives up after --timeout instead of retrying forever.
        let port = support::cluster::free_port();
        let started = Instant::now();
        let out = shell(&[
            "-s",
            &format!("127.0.0.1:{port}"),
            "--timeout",
            "1.5",
            "db",
            "SELECT 1",
        ]);
        let took = started.elapsed();
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("no dqlite leader found"), "{stderr}");
        assert!(took < Duration::from_secs(6), "took {took:?}");
    })
    .await
    .unwrap();
}
