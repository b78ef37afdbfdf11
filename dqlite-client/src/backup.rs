//! Backup of a database to a plain SQLite file, and restore of a SQLite file into an empty
//! database of the cluster.
//!
//! **Backup** ([`backup`]) asks the leader for the database's files (DUMP: the main file and
//! its WAL, both as of one committed transaction) and folds the WAL into the main file the way
//! a SQLite checkpoint would ([`fold_wal`]): frames are checked (salts and checksums) and
//! applied up to the last commit frame. The result is marked as a rollback-journal database,
//! so any `sqlite3` opens it without a `-wal` file beside it.
//!
//! **Restore** (`restore`, behind the feature `restore`, which the `cli` shell has) reads a SQLite file (with the
//! bundled SQLite of `rusqlite`) and replays it into an **empty** database of the cluster in
//! **one transaction** through the client, so it is replicated like any write and either all
//! of it lands or none of it: tables (their `CREATE` statements as written), then their rows
//! (with the rowid of rowid tables, so rows keep their identity; generated columns are left
//! to be recomputed), then indexes, then `sqlite_sequence` (the AUTOINCREMENT counters, copied
//! as they are, so deleted ids are not reused), then views and triggers (created last, so no
//! trigger fires while the rows are loaded). Foreign keys are checked at the commit
//! (`PRAGMA defer_foreign_keys`). Not restored: `sqlite_stat*` (run `ANALYZE` again) and
//! virtual tables (refused with an error: their shadow tables cannot be replayed as rows).
//! The transaction is one Raft entry, so the database must fit in the node's message and
//! entry limits.
//!
//! ```
//! use dqlite_client::backup::fold_wal;
//!
//! // No WAL: the main file, marked as a rollback-journal database.
//! let mut main = vec![0u8; 4096];
//! main[..16].copy_from_slice(b"SQLite format 3\0");
//! main[16..18].copy_from_slice(&4096u16.to_be_bytes());
//! main[18] = 2; // WAL mode
//! main[19] = 2;
//! let file = fold_wal(&main, &[]).unwrap();
//! assert_eq!((file[18], file[19]), (1, 1));
//! ```

use std::path::Path;

use crate::client::Client;

/// Errors of backup and restore.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A request to the cluster failed.
    #[error(transparent)]
    Client(#[from] crate::Error),
    /// Reading or writing a local file failed.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The files the node sent do not make a SQLite database.
    #[error("not a usable database image: {0}")]
    Image(String),
    /// The database to restore into is not empty.
    #[error("database {0} is not empty: restore needs an empty database")]
    NotEmpty(String),
    /// The file to restore cannot be read as a SQLite database, or holds what restore does
    /// not support.
    #[error("cannot restore {path}: {reason}")]
    Source {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

const HEADER: &[u8; 16] = b"SQLite format 3\0";
const WAL_HEADER: usize = 32;
const FRAME_HEADER: usize = 24;

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// SQLite's WAL checksum over `data` (a multiple of 8 bytes), continuing from `s`.
fn wal_checksum(big_endian: bool, data: &[u8], mut s: (u32, u32)) -> (u32, u32) {
    for w in data.chunks_exact(8) {
        let (x0, x1) = if big_endian {
            (be32(w, 0), be32(w, 4))
        } else {
            (
                u32::from_le_bytes([w[0], w[1], w[2], w[3]]),
                u32::from_le_bytes([w[4], w[5], w[6], w[7]]),
            )
        };
        s.0 = s.0.wrapping_add(x0).wrapping_add(s.1);
        s.1 = s.1.wrapping_add(x1).wrapping_add(s.0);
    }
    s
}

/// Folds `wal` into `main` as a checkpoint would and returns a self-contained SQLite database
/// file (see the module doc). A WAL whose header does not check out is ignored, as SQLite
/// ignores it; frames after the last valid commit frame are not applied.
pub fn fold_wal(main: &[u8], wal: &[u8]) -> Result<Vec<u8>, BackupError> {
    let mut image = main.to_vec();
    let mut commit_size: Option<u32> = None;
    let mut page_size = 0usize;
    if wal.len() >= WAL_HEADER {
        let magic = be32(wal, 0);
        let big_endian = magic & 1 == 1;
        let cks = wal_checksum(big_endian, &wal[..24], (0, 0));
        if (magic & !1) == 0x377f_0682 && cks == (be32(wal, 24), be32(wal, 28)) {
            page_size = be32(wal, 8) as usize;
            if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
                return Err(BackupError::Image(format!("WAL page size {page_size}")));
            }
            let salts = (be32(wal, 16), be32(wal, 20));
            let mut s = cks;
            let mut pending: Vec<(u32, &[u8])> = Vec::new();
            let mut at = WAL_HEADER;
            while at + FRAME_HEADER + page_size <= wal.len() {
                let h = &wal[at..at + FRAME_HEADER];
                let page = &wal[at + FRAME_HEADER..at + FRAME_HEADER + page_size];
                if (be32(h, 8), be32(h, 12)) != salts {
                    break;
                }
                s = wal_checksum(big_endian, &h[..8], s);
                s = wal_checksum(big_endian, page, s);
                if s != (be32(h, 16), be32(h, 20)) {
                    break;
                }
                pending.push((be32(h, 0), page));
                let size = be32(h, 4);
                if size != 0 {
                    // A commit frame: everything up to here is committed.
                    for (pgno, data) in pending.drain(..) {
                        if pgno == 0 {
                            return Err(BackupError::Image("WAL frame for page 0".into()));
                        }
                        let off = (pgno as usize - 1) * page_size;
                        if image.len() < off + page_size {
                            image.resize(off + page_size, 0);
                        }
                        image[off..off + page_size].copy_from_slice(data);
                    }
                    commit_size = Some(size);
                }
                at += FRAME_HEADER + page_size;
            }
        }
    }
    if let Some(pages) = commit_size {
        image.resize(pages as usize * page_size, 0);
    }
    if image.len() < 100 || &image[..16] != HEADER {
        return Err(BackupError::Image(if image.is_empty() {
            "the database is empty (no such database?)".into()
        } else {
            "no SQLite header".into()
        }));
    }
    // File format versions 1/1: a rollback-journal database, usable without a WAL.
    image[18] = 1;
    image[19] = 1;
    Ok(image)
}

/// A consistent SQLite database file of database `name`, as the leader has it now.
pub async fn backup(client: &Client, name: &str) -> Result<Vec<u8>, BackupError> {
    let files = client.dump(name).await?;
    let main = files.first().map_or(&[][..], |f| &f.data[..]);
    let wal = files.get(1).map_or(&[][..], |f| &f.data[..]);
    fold_wal(main, wal)
}

/// Writes [`backup`] of database `name` to `path` (through a temporary file renamed into place,
/// so an existing file is replaced only by a complete one); returns its size in bytes.
pub async fn backup_to_file(client: &Client, name: &str, path: &Path) -> Result<u64, BackupError> {
    let image = backup(client, name).await?;
    let file_err = |p: &Path| {
        let path = p.display().to_string();
        move |source| BackupError::File { path, source }
    };
    let tmp = path.with_extension("backup-tmp");
    std::fs::write(&tmp, &image).map_err(file_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(file_err(path))?;
    Ok(image.len() as u64)
}

#[cfg(feature = "restore")]
pub use restore_impl::{Restored, restore};

#[cfg(feature = "restore")]
mod restore_impl {
    use std::path::Path;

    use rusqlite::types::ValueRef;

    use super::BackupError;
    use crate::database::Database;
    use dqlite_wire::Value;

    /// What [`restore`] loaded.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct Restored {
        /// Tables created.
        pub tables: usize,
        /// Rows inserted.
        pub rows: u64,
        /// Indexes created.
        pub indexes: usize,
        /// Views created.
        pub views: usize,
        /// Triggers created.
        pub triggers: usize,
    }

    /// Most parameters in one INSERT (SQLite's historical limit is 999).
    const MAX_PARAMS: usize = 900;

    fn quote(name: &str) -> String {
        format!("\"{}\"", name.replace('"', "\"\""))
    }

    struct Object {
        kind: String,
        name: String,
        sql: String,
    }

    fn value(v: ValueRef<'_>) -> Value {
        match v {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Integer(i),
            ValueRef::Real(f) => Value::Float(f),
            ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        }
    }

    /// The insertable columns of `table`, with a rowid alias first when the table has a rowid
    /// that no column already names.
    fn columns(src: &rusqlite::Connection, table: &str) -> rusqlite::Result<Vec<String>> {
        let mut cols = Vec::new();
        let mut int_pk = 0;
        let mut pks = 0;
        let mut stmt = src.prepare(&format!("PRAGMA table_xinfo({})", quote(table)))?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let name: String = r.get(1)?;
            let ty: String = r.get(2)?;
            let pk: i64 = r.get(5)?;
            let hidden: i64 = r.get(6)?;
            if pk > 0 {
                pks += 1;
                if ty.eq_ignore_ascii_case("INTEGER") {
                    int_pk += 1;
                }
            }
            // 2 and 3: generated columns, recomputed by the target.
            if hidden == 0 {
                cols.push(name);
            }
        }
        let has_rowid = src
            .prepare(&format!("SELECT rowid FROM {} LIMIT 0", quote(table)))
            .is_ok();
        let aliased = pks == 1 && int_pk == 1;
        if has_rowid && !aliased {
            let taken = |a: &str| cols.iter().any(|c| c.eq_ignore_ascii_case(a));
            if let Some(alias) = ["rowid", "_rowid_", "oid"].into_iter().find(|a| !taken(a)) {
                cols.insert(0, alias.to_string());
            }
        }
        Ok(cols)
    }

    /// Loads the SQLite database file `path` into `db`, which must be empty, in one
    /// transaction (see the module doc of [`crate::backup`] for what is restored and how).
    pub async fn restore(db: &mut Database, path: &Path) -> Result<Restored, BackupError> {
        let source = |reason: String| BackupError::Source {
            path: path.display().to_string(),
            reason,
        };
        let sq = |e: rusqlite::Error| source(e.to_string());
        let src = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sq)?;
        let mut objects = Vec::new();
        {
            let mut stmt = src
                .prepare(
                    "SELECT type, name, sql FROM sqlite_master \
                     WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
                     ORDER BY rowid",
                )
                .map_err(sq)?;
            let mut rows = stmt.query([]).map_err(sq)?;
            while let Some(r) = rows.next().map_err(sq)? {
                objects.push(Object {
                    kind: r.get(0).map_err(sq)?,
                    name: r.get(1).map_err(sq)?,
                    sql: r.get(2).map_err(sq)?,
                });
            }
        }
        if let Some(v) = objects.iter().find(|o| {
            o.kind == "table"
                && o.sql
                    .trim_start()
                    .get(..20)
                    .is_some_and(|p| p.eq_ignore_ascii_case("CREATE VIRTUAL TABLE"))
        }) {
            return Err(source(format!("virtual table {} is not supported", v.name)));
        }
        let sequences: Vec<(String, i64)> = {
            let has = src
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_sequence'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(sq)?;
            if has > 0 {
                let mut stmt = src
                    .prepare("SELECT name, seq FROM sqlite_sequence")
                    .map_err(sq)?;
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(sq)?
                    .collect::<rusqlite::Result<_>>()
                    .map_err(sq)?
            } else {
                Vec::new()
            }
        };

        // Everything is read before the first await: a SQLite connection is not Send, and the
        // whole database goes into one transaction anyway.
        let mut tables = Vec::new();
        for t in objects.iter().filter(|o| o.kind == "table") {
            let cols = columns(&src, &t.name).map_err(sq)?;
            let mut values = Vec::new();
            if !cols.is_empty() {
                let list = cols.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
                let select = format!("SELECT {list} FROM {}", quote(&t.name));
                let mut stmt = src.prepare(&select).map_err(sq)?;
                let mut rows = stmt.query([]).map_err(sq)?;
                while let Some(r) = rows.next().map_err(sq)? {
                    for i in 0..cols.len() {
                        values.push(value(r.get_ref(i).map_err(sq)?));
                    }
                }
            }
            tables.push((t, cols, values));
        }
        drop(src);

        let existing = db
            .query_value("SELECT count(*) FROM sqlite_master", ())
            .await?;
        if existing != Value::Integer(0) {
            return Err(BackupError::NotEmpty(db.name().to_string()));
        }
        let mut done = Restored::default();
        let mut tx = db.transaction().await?;
        tx.exec("PRAGMA defer_foreign_keys = ON", ()).await?;
        for (t, _, _) in &tables {
            tx.exec(&t.sql, ()).await?;
            done.tables += 1;
        }
        for (t, cols, values) in tables {
            if cols.is_empty() {
                continue;
            }
            let list = cols.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
            let per_row = cols.len();
            let one = format!("({})", vec!["?"; per_row].join(", "));
            for chunk in values.chunks((MAX_PARAMS / per_row).max(1) * per_row) {
                let n = chunk.len() / per_row;
                let sql = format!(
                    "INSERT INTO {} ({list}) VALUES {}",
                    quote(&t.name),
                    vec![one.as_str(); n].join(", ")
                );
                tx.exec(&sql, chunk.to_vec()).await?;
                done.rows += n as u64;
            }
        }
        for i in objects.iter().filter(|o| o.kind == "index") {
            tx.exec(&i.sql, ()).await?;
            done.indexes += 1;
        }
        if !sequences.is_empty() {
            tx.exec("DELETE FROM sqlite_sequence", ()).await?;
            for (name, seq) in sequences {
                tx.exec(
                    "INSERT INTO sqlite_sequence(name, seq) VALUES (?, ?)",
                    (name, seq),
                )
                .await?;
            }
        }
        for o in objects
            .iter()
            .filter(|o| o.kind == "view" || o.kind == "trigger")
        {
            tx.exec(&o.sql, ()).await?;
            if o.kind == "view" {
                done.views += 1;
            } else {
                done.triggers += 1;
            }
        }
        tx.commit().await?;
        Ok(done)
    }
}

#[cfg(all(test, feature = "restore"))]
mod tests {
    use super::*;

    /// SQLite's own WAL (checkpoints off), copied while the writer is open, folds into a file
    /// that holds every committed row and opens without its WAL.
    #[test]
    fn a_real_wal_folds_into_a_complete_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; \
             CREATE TABLE t(x); INSERT INTO t VALUES (1), (2);",
        )
        .unwrap();
        for i in 3..200 {
            c.execute("INSERT INTO t VALUES (?)", [i]).unwrap();
        }
        let main = std::fs::read(&path).unwrap();
        let wal = std::fs::read(dir.path().join("w.db-wal")).unwrap();
        assert!(wal.len() > 32);
        // A torn last frame is ignored, as SQLite ignores it.
        let mut torn = wal.clone();
        let n = torn.len();
        torn[n - 1] ^= 0xff;
        drop(c);
        for (w, rows) in [(&wal, 199i64), (&torn, 198)] {
            let out = dir.path().join("out.db");
            std::fs::write(&out, fold_wal(&main, w).unwrap()).unwrap();
            let o = rusqlite::Connection::open(&out).unwrap();
            let got: i64 = o
                .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .unwrap();
            assert_eq!(got, rows);
            let ok: String = o
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(ok, "ok");
            assert!(!dir.path().join("out.db-wal").exists());
        }
        assert!(matches!(fold_wal(&[], &[]), Err(BackupError::Image(_))));
    }
}
