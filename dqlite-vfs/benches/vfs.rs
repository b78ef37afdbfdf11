//! Benchmarks of the capturing VFS against stock SQLite.
//!
//! - `insert_1k`: single-connection autocommit inserts of 1 KiB rows. `dqlite_vfs` runs each
//!   insert + poll + apply (the leader's path); `sqlite_memdb` is stock SQLite's in-memory
//!   `memdb` VFS (no WAL support there: `journal_mode=MEMORY`); `sqlite_unix_wal_shm` is the
//!   stock unix VFS in WAL mode on a tmpfs (`/dev/shm`), `synchronous=OFF`.
//! - `follower_apply`: frames applied per second on a database with no local writer.
//! - `snapshot`: taking a snapshot and serialising it (bytes per second).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use dqlite_vfs::{Vfs, VfsConfig};
use rusqlite::OpenFlags;

const ROW: usize = 1024;

fn insert_1k(c: &mut Criterion) {
    let row = vec![7u8; ROW];
    let mut g = c.benchmark_group("insert_1k");
    g.throughput(Throughput::Elements(1));

    let vfs = Vfs::register("bench-insert", VfsConfig::default()).unwrap();
    let db = vfs.open_database("leader").unwrap();
    let conn = db.connect().unwrap();
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB)")
        .unwrap();
    db.apply(&conn.poll().unwrap()).unwrap();
    g.bench_function("dqlite_vfs_poll_apply", |b| {
        b.iter(|| {
            conn.prepare_cached("INSERT INTO t (b) VALUES (?1)")
                .unwrap()
                .execute([&row])
                .unwrap();
            let frames = conn.poll().unwrap();
            db.apply(black_box(&frames)).unwrap();
        })
    });

    let mem = rusqlite::Connection::open_with_flags(
        "file:/bench-memdb?vfs=memdb",
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI,
    )
    .unwrap();
    mem.execute_batch(
        "PRAGMA journal_mode=MEMORY; PRAGMA synchronous=OFF; \
         CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB)",
    )
    .unwrap();
    g.bench_function("sqlite_memdb", |b| {
        b.iter(|| {
            mem.prepare_cached("INSERT INTO t (b) VALUES (?1)")
                .unwrap()
                .execute([&row])
                .unwrap();
        })
    });

    let dir = std::path::Path::new("/dev/shm");
    if dir.is_dir() {
        let path = dir.join(format!("dqlite-vfs-bench-{}.db", std::process::id()));
        let disk = rusqlite::Connection::open(&path).unwrap();
        disk.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; \
             CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB)",
        )
        .unwrap();
        g.bench_function("sqlite_unix_wal_shm", |b| {
            b.iter(|| {
                disk.prepare_cached("INSERT INTO t (b) VALUES (?1)")
                    .unwrap()
                    .execute([&row])
                    .unwrap();
            })
        });
        drop(disk);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
    g.finish();
}

fn follower_apply(c: &mut Criterion) {
    let vfs = Vfs::register("bench-follower", VfsConfig::default()).unwrap();
    let leader = vfs.open_database("leader").unwrap();
    let follower = vfs.open_database("follower").unwrap();
    let conn = leader.connect().unwrap();
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB)")
        .unwrap();
    let f = conn.poll().unwrap();
    leader.apply(&f).unwrap();
    follower.apply(&f).unwrap();
    // One commit of ~10 pages, applied again and again (page images are idempotent).
    conn.execute("INSERT INTO t (b) VALUES (randomblob(36000))", [])
        .unwrap();
    let frames = conn.poll().unwrap();
    leader.apply(&frames).unwrap();

    let mut g = c.benchmark_group("follower_apply");
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.bench_function(format!("{}_frames_per_commit", frames.len()), |b| {
        b.iter(|| follower.apply(black_box(&frames)).unwrap())
    });
    g.finish();
}

fn snapshot(c: &mut Criterion) {
    let vfs = Vfs::register("bench-snapshot", VfsConfig::default()).unwrap();
    let db = vfs.open_database("db").unwrap();
    let conn = db.connect().unwrap();
    conn.execute_batch(
        "BEGIN; CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB); \
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000) \
         INSERT INTO t (b) SELECT randomblob(1000) FROM c; COMMIT",
    )
    .unwrap();
    db.apply(&conn.poll().unwrap()).unwrap();
    // Half in the main file, half in the WAL.
    db.checkpoint().unwrap();
    conn.execute("UPDATE t SET b = randomblob(1000) WHERE id % 2 = 0", [])
        .unwrap();
    db.apply(&conn.poll().unwrap()).unwrap();

    let bytes = db.snapshot().len_bytes() as u64;
    let mut g = c.benchmark_group("snapshot");
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("take", |b| b.iter(|| black_box(db.snapshot())));
    g.bench_function("take_and_serialize", |b| {
        b.iter(|| black_box(db.snapshot().to_bytes()))
    });
    let snap = db.snapshot();
    let target = vfs.open_database("restored").unwrap();
    g.bench_function("restore", |b| {
        b.iter_batched(
            || snap.clone(),
            |s| target.restore(&s).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, insert_1k, follower_apply, snapshot);
criterion_main!(benches);
