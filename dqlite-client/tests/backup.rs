//! `.backup` and `.restore` in the `dqlite` shell against a 3-node dqlite-rs cluster: the
//! backup is a SQLite file Debian's `sqlite3` opens and checks, and restoring it into an empty
//! database gives identical rows (rowids, AUTOINCREMENT counters, views, indexes, triggers and
//! generated columns included); a non-empty database is refused untouched.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use dqlite_client::{Client, Value};
use support::{Backend, start_cluster};

const SCHEMA: &[&str] = &[
    "CREATE TABLE item (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, \
     price REAL, photo BLOB, total REAL GENERATED ALWAYS AS (price * 2) VIRTUAL)",
    "CREATE TABLE log (what TEXT, at INTEGER)",
    "CREATE TABLE note (body TEXT)",
    "CREATE INDEX item_name ON item(name)",
    "CREATE VIEW cheap AS SELECT name FROM item WHERE price < 5",
    "CREATE TRIGGER item_log AFTER INSERT ON item BEGIN \
     INSERT INTO log VALUES (new.name, new.id); END",
];

/// Every row of every table (rowid first), the sequences and the schema objects.
async fn contents(client: &Client, name: &str) -> Vec<Vec<Value>> {
    let mut db = client.open(name).await.unwrap();
    let mut out = Vec::new();
    for q in [
        "SELECT id, name, price, photo, total FROM item ORDER BY id",
        "SELECT rowid, what, at FROM log ORDER BY rowid",
        "SELECT rowid, body FROM note ORDER BY rowid",
        "SELECT name, seq FROM sqlite_sequence",
        "SELECT name FROM cheap ORDER BY name",
        "SELECT type, name FROM sqlite_master ORDER BY type, name",
    ] {
        for r in db.query_all(q, ()).await.unwrap() {
            out.push(r.values().to_vec());
        }
    }
    out
}

fn shell(servers: &str, db: &str, command: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dqlite"))
        .args(["-s", servers, db, command])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_opens_in_sqlite3_and_restore_gives_identical_rows() {
    let (mut cluster, client) = start_cluster(Backend::Rs, 3).await;
    let mut db = client.open("shop").await.unwrap();
    for s in SCHEMA {
        db.exec(s, ()).await.unwrap();
    }
    for i in 0..300i64 {
        let photo = if i % 3 == 0 {
            Value::Null
        } else {
            Value::Blob(vec![i as u8; 20])
        };
        db.exec(
            "INSERT INTO item(name, price, photo) VALUES (?, ?, ?)",
            vec![
                Value::Text(format!("item {i}")),
                Value::Float(i as f64 / 10.0),
                photo,
            ],
        )
        .await
        .unwrap();
        db.exec(
            "INSERT INTO note VALUES (?)",
            vec![Value::Text(format!("n{i}"))],
        )
        .await
        .unwrap();
    }
    // Gaps: in an AUTOINCREMENT table (its counter stays at 300) and in a rowid table.
    db.exec("DELETE FROM item WHERE id > 290 OR id % 7 = 0", ())
        .await
        .unwrap();
    db.exec("DELETE FROM note WHERE rowid % 5 = 0", ())
        .await
        .unwrap();
    drop(db);
    let servers = cluster.servers().join(",");
    let before = contents(&client, "shop").await;

    // .backup: one SQLite file that sqlite3 opens and finds intact.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shop.db");
    let (ok, text) = shell(&servers, "shop", &format!(".backup {}", file.display()));
    assert!(ok, "{text}");
    assert!(!dir.path().join("shop.db-wal").exists());
    let sqlite3 = Command::new("sqlite3")
        .arg(&file)
        .arg("PRAGMA integrity_check; SELECT count(*), max(id) FROM item; SELECT seq FROM sqlite_sequence; SELECT count(*) FROM cheap;")
        .output()
        .expect("Debian's sqlite3 (apt-get install sqlite3; .ci/run installs it)");
    let said = String::from_utf8_lossy(&sqlite3.stdout);
    assert!(sqlite3.status.success(), "{said}");
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines, ["ok", "249|290", "300", "43"], "{said}");

    // .restore into an empty database: identical contents.
    let (ok, text) = shell(&servers, "copy", &format!(".restore {}", file.display()));
    assert!(ok, "{text}");
    assert!(
        text.contains("3 tables, 789 rows, 1 indexes, 1 views, 1 triggers"),
        "{text}"
    );
    assert_eq!(contents(&client, "copy").await, before);
    // The trigger came over (and did not fire during the load: log is as it was).
    let mut copy = client.open("copy").await.unwrap();
    copy.exec("INSERT INTO item(name, price) VALUES ('new', 1)", ())
        .await
        .unwrap();
    let id = copy
        .query_value("SELECT at FROM log WHERE what = 'new'", ())
        .await
        .unwrap();
    assert_eq!(id, Value::Integer(301), "AUTOINCREMENT went on from 300");

    // A database that is not empty is refused and left as it was.
    let (ok, text) = shell(&servers, "shop", &format!(".restore {}", file.display()));
    assert!(!ok, "{text}");
    assert!(text.contains("not empty"), "{text}");
    assert_eq!(contents(&client, "shop").await, before);
}
