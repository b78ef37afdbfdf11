//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};

use dqlite_vfs::{Connection, Database, Frames, Vfs, VfsConfig};
use rusqlite::types::Value;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh unique name.
pub fn unique(tag: &str) -> String {
    format!("{tag}-{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

pub fn vfs(tag: &str, config: VfsConfig) -> Vfs {
    Vfs::register(&unique(tag), config).unwrap()
}

/// The logical database image.
pub fn image(db: &Database) -> Vec<u8> {
    db.snapshot().to_bytes()
}

/// Every row of every table: (table name, rows).
pub type Contents = Vec<(String, Vec<Vec<Value>>)>;

/// Every row of every table, in a canonical order.
pub fn contents(conn: &Connection) -> Contents {
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
        .unwrap();
    let tables: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables
        .into_iter()
        .map(|t| {
            let mut s = conn
                .prepare(&format!("SELECT * FROM \"{t}\" ORDER BY rowid"))
                .unwrap();
            let n = s.column_count();
            let rows = s
                .query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())
                .unwrap()
                .collect::<Result<Vec<Vec<Value>>, _>>()
                .unwrap();
            (t, rows)
        })
        .collect()
}

pub fn integrity(conn: &Connection) -> String {
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

pub fn count(conn: &Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// Execute on `conn`, poll, apply to `leader` (same database) and `followers`.
/// Several statements run as one transaction (separate commits would each wait for the
/// previous one to be applied).
pub fn replicate(conn: &Connection, sql: &str, followers: &[&Database]) -> Option<Frames> {
    if sql.contains(';') && !sql.starts_with("BEGIN") {
        conn.execute_batch(&format!("BEGIN; {sql}; COMMIT"))
            .unwrap();
    } else {
        conn.execute_batch(sql).unwrap();
    }
    let frames = conn.poll()?;
    for f in followers {
        f.apply(&frames).unwrap();
    }
    let out = conn.apply(&frames).unwrap();
    assert!(out.was_pending);
    Some(frames)
}
