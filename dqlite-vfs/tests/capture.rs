//! Capture, invisibility, abort, apply, checkpoint, snapshot and restore scenarios.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use dqlite_vfs::{CheckpointOutcome, Error, Frames, Snapshot, VfsConfig};

#[test]
fn commit_is_invisible_until_apply_and_blocks_writers() {
    let vfs = vfs("invisible", VfsConfig::default());
    let db = vfs.open_database("a").unwrap();
    let w = db.connect().unwrap();
    replicate(&w, "CREATE TABLE t (x INTEGER)", &[]).unwrap();

    w.execute_batch("INSERT INTO t VALUES (1)").unwrap();
    let frames = w.poll().expect("committed");
    assert!(w.poll().is_none(), "frames are handed out once");
    assert!(db.has_pending());

    let r = db.connect().unwrap();
    assert_eq!(
        count(&r, "t"),
        0,
        "another connection must not see the commit"
    );
    assert_eq!(count(&w, "t"), 0, "nor the committing connection");
    let err = r.execute_batch("INSERT INTO t VALUES (2)").unwrap_err();
    assert_eq!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy)
    );
    assert_eq!(db.checkpoint().unwrap(), CheckpointOutcome::Busy);

    let out = db.apply(&frames).unwrap();
    assert!(out.was_pending && !out.discarded_pending);
    assert!(!db.has_pending());
    assert_eq!(count(&r, "t"), 1);
    assert_eq!(count(&w, "t"), 1);
    r.execute_batch("INSERT INTO t VALUES (2)").unwrap();
    assert!(r.poll().is_some());
    assert!(
        w.poll().is_none(),
        "the commit belongs to the other connection"
    );
}

#[test]
fn abort_restores_the_state_before_the_commit() {
    let vfs = vfs("abort", VfsConfig::default());
    let db = vfs.open_database("a").unwrap();
    let f = vfs.open_database("f").unwrap();
    let w = db.connect().unwrap();
    replicate(
        &w,
        "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1)",
        &[&f],
    );
    let before = image(&db);

    w.execute_batch("UPDATE t SET x = 100; INSERT INTO t VALUES (5)")
        .unwrap_err();
    // The UPDATE committed and holds the lock; the INSERT was refused (busy).
    let frames = w.poll().unwrap();
    assert!(db.abort());
    assert!(!db.abort());
    assert_eq!(image(&db), before);
    assert_eq!(integrity(&w), "ok");
    let x: i64 = w.query_row("SELECT x FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(x, 1, "the same connection sees the pre-commit state");

    // The next writer starts from the pre-commit state.
    let w2 = db.connect().unwrap();
    replicate(&w2, "UPDATE t SET x = x + 1", &[&f]).unwrap();
    let x: i64 = w.query_row("SELECT x FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(x, 2);
    assert_eq!(image(&db), image(&f));
    assert_eq!(integrity(&w), "ok");

    // Applying the aborted frames late (the entry was committed after all) on a database
    // without a pending commit takes the follower path; it must not panic or corrupt.
    drop(frames);
}

#[test]
fn uncommitted_work_is_never_returned() {
    let vfs = vfs("uncommitted", VfsConfig::default());
    let db = vfs.open_database("a").unwrap();
    let w = db.connect().unwrap();
    replicate(&w, "CREATE TABLE t (x BLOB)", &[]).unwrap();
    w.execute_batch("PRAGMA cache_size = 5").unwrap();

    w.execute_batch("BEGIN; INSERT INTO t VALUES (zeroblob(100000))")
        .unwrap();
    assert!(w.poll().is_none(), "statement inside an open transaction");
    w.execute_batch("ROLLBACK").unwrap();
    assert!(w.poll().is_none(), "rolled back");

    // A transaction that spills the page cache to the WAL and rolls back.
    w.execute_batch("BEGIN").unwrap();
    for _ in 0..20 {
        w.execute_batch("INSERT INTO t VALUES (randomblob(50000))")
            .unwrap();
    }
    assert!(w.poll().is_none());
    w.execute_batch("ROLLBACK").unwrap();
    assert!(w.poll().is_none());
    assert_eq!(count(&w, "t"), 0);
    assert_eq!(integrity(&w), "ok");

    // The same, committed: all its frames come back, the last one carrying the commit.
    let f = vfs.open_database("f").unwrap();
    w.execute_batch("BEGIN").unwrap();
    for _ in 0..20 {
        w.execute_batch("INSERT INTO t VALUES (randomblob(50000))")
            .unwrap();
    }
    w.execute_batch("COMMIT").unwrap();
    let frames = w.poll().unwrap();
    assert!(frames.db_size() > 200);
    f.apply(&frames).unwrap();
    db.apply(&frames).unwrap();
    assert_eq!(image(&db), image(&f));
    let fc = f.connect().unwrap();
    assert_eq!(count(&fc, "t"), 20);
    assert_eq!(integrity(&fc), "ok");
}

#[test]
fn follower_readers_keep_their_snapshot() {
    let vfs = vfs("readers", VfsConfig::default());
    let db = vfs.open_database("a").unwrap();
    let f = vfs.open_database("f").unwrap();
    let w = db.connect().unwrap();
    replicate(
        &w,
        "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1)",
        &[&f],
    );
    let r = f.connect().unwrap();
    let mut stmt = r.prepare("SELECT x FROM t").unwrap();
    let mut rows = stmt.query([]).unwrap();
    let first: i64 = rows.next().unwrap().unwrap().get(0).unwrap();
    assert_eq!(first, 1);
    // Apply while the follower's reader is inside a read transaction.
    replicate(&w, "INSERT INTO t VALUES (2)", &[&f]).unwrap();
    assert!(
        rows.next().unwrap().is_none(),
        "the open reader keeps its snapshot"
    );
    drop(rows);
    drop(stmt);
    assert_eq!(count(&r, "t"), 2);
    let r2 = f.connect().unwrap();
    assert_eq!(count(&r2, "t"), 2);
    assert_eq!(image(&db), image(&f));
}

#[test]
fn checkpoint_waits_for_readers_and_snapshots_stay_consistent() {
    let config = VfsConfig::default().with_checkpoint_threshold(20);
    let vfs = vfs("checkpoint", config);
    let db = vfs.open_database("a").unwrap();
    let f = vfs.open_database("f").unwrap();
    let w = db.connect().unwrap();
    replicate(
        &w,
        "CREATE TABLE t (x BLOB); INSERT INTO t VALUES (1)",
        &[&f],
    )
    .unwrap();

    // Readers on both databases hold read transactions (a row not yet consumed).
    let lr = db.connect().unwrap();
    let fr = f.connect().unwrap();
    let mut ls = lr.prepare("SELECT length(x) FROM t").unwrap();
    let mut fs = fr.prepare("SELECT length(x) FROM t").unwrap();
    let mut lrows = ls.query([]).unwrap();
    let mut frows = fs.query([]).unwrap();
    assert!(lrows.next().unwrap().is_some());
    assert!(frows.next().unwrap().is_some());

    let mut snaps = Vec::new();
    for i in 0..30 {
        replicate(
            &w,
            &format!("INSERT INTO t VALUES (randomblob({}))", 3000 + i),
            &[&f],
        )
        .unwrap();
        snaps.push((db.snapshot(), f.snapshot()));
    }
    assert!(
        db.wal_frames() >= 20,
        "readers prevent the automatic checkpoint"
    );
    assert_eq!(db.checkpoint().unwrap(), CheckpointOutcome::Busy);
    assert_eq!(f.checkpoint().unwrap(), CheckpointOutcome::Busy);
    for (a, b) in &snaps {
        assert_eq!(a, b);
    }
    drop(lrows);
    drop(frows);
    drop(ls);
    drop(fs);

    assert_eq!(db.checkpoint().unwrap(), CheckpointOutcome::Done);
    assert_eq!(db.wal_frames(), 0);
    assert_eq!(db.checkpoint().unwrap(), CheckpointOutcome::NothingToDo);
    // The follower checkpoints automatically at its next apply.
    w.execute_batch("INSERT INTO t VALUES (1)").unwrap();
    let frames = w.poll().unwrap();
    let out = f.apply(&frames).unwrap();
    assert!(out.checkpointed && !out.was_pending);
    let out = db.apply(&frames).unwrap();
    assert!(out.was_pending && !out.checkpointed);
    assert_eq!(count(&lr, "t"), count(&fr, "t"));
    assert_eq!(integrity(&lr), "ok");
    assert_eq!(integrity(&fr), "ok");
    assert_eq!(image(&db), image(&f));

    // Restore a snapshot taken mid-workload into a fresh database and an existing one.
    let (mid, _) = &snaps[10];
    let fresh = vfs.open_database("fresh").unwrap();
    fresh.restore(mid).unwrap();
    assert_eq!(&fresh.snapshot(), mid);
    let fc = fresh.connect().unwrap();
    assert_eq!(count(&fc, "t"), 12);
    assert_eq!(integrity(&fc), "ok");
    // `fr` has cached pages of the newer state: it must notice the restore.
    f.restore(mid).unwrap();
    assert_eq!(count(&fr, "t"), 12);
    assert_eq!(integrity(&fr), "ok");
    assert_eq!(&f.snapshot(), mid);
}

#[test]
fn restore_refuses_while_busy_and_checks_page_size() {
    let vfs = vfs("restore-busy", VfsConfig::default());
    let db = vfs.open_database("a").unwrap();
    let w = db.connect().unwrap();
    replicate(&w, "CREATE TABLE t (x)", &[]).unwrap();
    let snap = db.snapshot();
    w.execute_batch("INSERT INTO t VALUES (1)").unwrap();
    assert!(matches!(db.restore(&snap), Err(Error::Busy { .. })));
    db.abort();
    db.restore(&snap).unwrap();
    let other = Snapshot::from_bytes(&vec![0u8; 1024], 512).unwrap_err();
    assert!(matches!(other, Error::InvalidSnapshot(_)));
    let vfs512 = common::vfs("restore-512", VfsConfig::default().with_page_size(512));
    let small = vfs512.open_database("s").unwrap();
    assert!(matches!(
        small.restore(&snap),
        Err(Error::PageSizeMismatch { .. })
    ));
}

#[test]
fn page_sizes_from_512_to_65536() {
    for page_size in [512, 1024, 4096, 32768, 65536] {
        let vfs = vfs("pagesize", VfsConfig::default().with_page_size(page_size));
        let db = vfs.open_database("a").unwrap();
        let f = vfs.open_database("f").unwrap();
        let w = db.connect().unwrap();
        let frames = replicate(
            &w,
            "BEGIN; CREATE TABLE t (x BLOB); INSERT INTO t VALUES (randomblob(200000)); COMMIT",
            &[&f],
        )
        .unwrap();
        assert_eq!(frames.page_size(), page_size);
        assert_eq!(db.page_size(), page_size);
        assert_eq!(image(&db), image(&f));
        db.checkpoint().unwrap();
        f.checkpoint().unwrap();
        assert_eq!(db.files().main, f.files().main, "page size {page_size}");
        let fc = f.connect().unwrap();
        assert_eq!(integrity(&fc), "ok");
        let ps: u32 = fc.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
        assert_eq!(ps, page_size);
    }
}

#[test]
fn configuration_is_locked() {
    let vfs = vfs("config", VfsConfig::default());
    let db = vfs.open_database("a").unwrap();
    let w = db.connect().unwrap();
    for sql in [
        "PRAGMA journal_mode=DELETE",
        "PRAGMA page_size=1024",
        "PRAGMA synchronous=FULL",
        "PRAGMA wal_autocheckpoint=10",
        "PRAGMA wal_checkpoint(TRUNCATE)",
        "PRAGMA locking_mode=EXCLUSIVE",
        "PRAGMA locking_mode",
        "PRAGMA read_uncommitted=1",
        "PRAGMA read_uncommitted",
        "ATTACH 'other' AS o",
    ] {
        assert!(w.execute_batch(sql).is_err(), "{sql} must be refused");
    }
    let mode: String = w
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = w
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(fk, 1);
    replicate(&w, "CREATE TABLE t (x); INSERT INTO t VALUES (1)", &[]);
    replicate(&w, "VACUUM", &[]);
    // Temporary tables live in the default VFS and produce no frames.
    w.execute_batch("CREATE TEMP TABLE tmp (y); INSERT INTO tmp VALUES (1)")
        .unwrap();
    assert!(w.poll().is_none());
}

#[test]
fn one_thread_per_database() {
    let vfs = vfs("threads", VfsConfig::default());
    let db = vfs.open_database("a").unwrap();
    assert!(matches!(vfs.open_database("a"), Err(Error::AlreadyOpen(_))));
    let v2 = vfs.clone();
    let r = std::thread::spawn(move || v2.open_database("a").map(|_| ()))
        .join()
        .unwrap();
    assert!(matches!(r, Err(Error::AlreadyOpen(_))));
    // A raw rusqlite connection on another thread cannot open the files either.
    let name = vfs.name().to_string();
    let raw = std::thread::spawn(move || {
        rusqlite::Connection::open_with_flags_and_vfs(
            "a",
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE,
            name.as_str(),
        )
        .and_then(|c| {
            c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })
        })
    })
    .join()
    .unwrap();
    assert!(raw.is_err());

    let w = db.connect().unwrap();
    replicate(&w, "CREATE TABLE t (x); INSERT INTO t VALUES (42)", &[]);
    drop(w);
    drop(db);
    assert!(matches!(vfs.delete_database("nope"), Ok(false)));
    // Released: another thread may drive it now and sees the data.
    let v3 = vfs.clone();
    let x = std::thread::spawn(move || {
        let db = v3.open_database("a").unwrap();
        let c = db.connect().unwrap();
        c.query_row("SELECT x FROM t", [], |r| r.get::<_, i64>(0))
            .unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(x, 42);
    assert_eq!(vfs.database_names(), vec!["a".to_string()]);
    assert!(vfs.delete_database("a").unwrap());
}

#[test]
fn dump_files_and_contiguous_frames_round_trip() {
    let vfs = vfs("dump", VfsConfig::default());
    let db = vfs.open_database("a").unwrap();
    let f = vfs.open_database("f").unwrap();
    let w = db.connect().unwrap();
    w.execute_batch("BEGIN; CREATE TABLE t (x); INSERT INTO t VALUES (randomblob(10000)); COMMIT")
        .unwrap();
    let frames = w.poll().unwrap();
    // What a Raft entry would carry.
    let numbers: Vec<u32> = frames.page_numbers().collect();
    let data = frames.contiguous_data();
    let decoded =
        Frames::from_contiguous(frames.page_size(), frames.db_size(), &numbers, &data).unwrap();
    assert_eq!(decoded, frames);
    f.apply(&decoded).unwrap();
    db.apply(&frames).unwrap();

    for d in [&db, &f] {
        let files = d.files();
        assert!(!files.wal.is_empty());
        let s = Snapshot::from_files(&files.main, &files.wal, 4096).unwrap();
        assert_eq!(s, d.snapshot());
        let s2 = Snapshot::from_bytes(&d.snapshot().to_bytes(), 4096).unwrap();
        assert_eq!(s2, d.snapshot());
    }
    assert!(db.memory_usage() >= db.snapshot().len_bytes());
}

#[test]
fn huge_transaction_spans_several_wal_index_blocks() {
    // 17.5 MB: more than 4062 frames, the capacity of the first WAL-index hash block.
    let vfs = vfs("huge", VfsConfig::default());
    let db = vfs.open_database("a").unwrap();
    let f = vfs.open_database("f").unwrap();
    let w = db.connect().unwrap();
    replicate(
        &w,
        "CREATE TABLE t (x BLOB); INSERT INTO t VALUES (1)",
        &[&f],
    )
    .unwrap();
    let before = image(&db);

    w.execute("INSERT INTO t VALUES (randomblob(17500000))", [])
        .unwrap();
    let frames = w.poll().unwrap();
    assert!(frames.len() > 4100, "{} frames", frames.len());
    assert_eq!(count(&w, "t"), 1);
    assert!(db.abort());
    assert_eq!(image(&db), before);
    assert_eq!(integrity(&w), "ok");

    // A smaller transaction reuses the frame slots, then the big one again, applied.
    replicate(&w, "INSERT INTO t VALUES (2)", &[&f]).unwrap();
    let frames = replicate(&w, "INSERT INTO t VALUES (randomblob(17500000))", &[&f]).unwrap();
    assert!(frames.len() > 4100);
    assert_eq!(count(&w, "t"), 3);
    let fc = f.connect().unwrap();
    assert_eq!(count(&fc, "t"), 3);
    assert_eq!(integrity(&fc), "ok");
    assert_eq!(image(&db), image(&f));
    // The threshold was passed: both checkpointed after the apply.
    assert_eq!(db.wal_frames(), 0);
    assert_eq!(f.wal_frames(), 0);
    assert_eq!(db.files().main, f.files().main);
}

#[test]
fn another_commits_apply_discards_the_pending_one_and_says_so() {
    let vfs = vfs("discard", VfsConfig::default());
    let (a, b) = (
        vfs.open_database("a").unwrap(),
        vfs.open_database("b").unwrap(),
    );
    let (wa, wb) = (a.connect().unwrap(), b.connect().unwrap());
    replicate(&wa, "CREATE TABLE t (x INTEGER)", &[&b]);
    // Both databases hold the same state; each captures a different commit on it.
    wa.execute_batch("INSERT INTO t VALUES (1)").unwrap();
    let mine = wa.poll().unwrap();
    wb.execute_batch("INSERT INTO t VALUES (2)").unwrap();
    let theirs = wb.poll().unwrap();
    assert!(b.apply(&theirs).unwrap().was_pending);
    let out = a.apply(&theirs).unwrap();
    assert!(!out.was_pending && out.discarded_pending);
    assert!(!a.has_pending());
    assert_eq!(count(&wa, "t"), 1);
    // Applying a commit with no pending one discards nothing.
    let out = b.apply(&mine).unwrap();
    assert!(!out.was_pending && !out.discarded_pending);
}

/// Readers take main-file pages in place (`xFetch`, with the `mmap_size` every connection
/// gets): a reader in the middle of a scan keeps reading the pages of its snapshot while
/// another connection rewrites and shrinks the table and a checkpoint folds that into the
/// main file once the reader is done; every reader sees exactly its own snapshot.
#[test]
fn readers_take_main_file_pages_in_place_and_keep_their_snapshot() {
    let vfs = vfs("fetch", VfsConfig::default());
    let db = vfs.open_database("a").unwrap();
    let f = vfs.open_database("f").unwrap();
    let w = db.connect().unwrap();
    let mmap: i64 = w.query_row("PRAGMA mmap_size", [], |r| r.get(0)).unwrap();
    assert!(mmap > 0, "mmap_size {mmap}");
    replicate(
        &w,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, x BLOB); \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
         INSERT INTO t SELECT i, randomblob(300) FROM n",
        &[&f],
    )
    .unwrap();
    // Into the main files: from here the readers' pages come from the main file.
    assert_eq!(db.checkpoint().unwrap(), CheckpointOutcome::Done);
    assert_eq!(f.checkpoint().unwrap(), CheckpointOutcome::Done);
    let expected: (i64, i64) = w
        .query_row("SELECT count(*), sum(length(x) + id) FROM t", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();

    for d in [&db, &f] {
        let r = d.connect().unwrap();
        let mut stmt = r
            .prepare("SELECT id, length(x) FROM t ORDER BY id")
            .unwrap();
        let mut rows = stmt.query([]).unwrap();
        let (mut n, mut sum) = (0i64, 0i64);
        // Half the scan, then another connection rewrites every row and deletes half.
        for _ in 0..1000 {
            let row = rows.next().unwrap().unwrap();
            let (id, len): (i64, i64) = (row.get(0).unwrap(), row.get(1).unwrap());
            n += 1;
            sum += id + len;
        }
        replicate(
            &w,
            "UPDATE t SET x = randomblob(200); DELETE FROM t WHERE id % 2 = 0",
            &[&f],
        );
        while let Some(row) = rows.next().unwrap() {
            let (id, len): (i64, i64) = (row.get(0).unwrap(), row.get(1).unwrap());
            n += 1;
            sum += id + len;
        }
        assert_eq!((n, sum), expected, "a reader's snapshot changed under it");
        drop(rows);
        drop(stmt);
        // Fold the change into the main file (the table shrinks), then read it back.
        assert_eq!(d.checkpoint().unwrap(), CheckpointOutcome::Done);
        let after: (i64, i64) = r
            .query_row("SELECT count(*), sum(length(x)) FROM t", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(after, (1000, 200_000));
        assert_eq!(integrity(&r), "ok");
        // The next round starts from the same table on both databases.
        replicate(
            &w,
            "DELETE FROM t; \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
             INSERT INTO t SELECT i, randomblob(300) FROM n",
            &[&f],
        );
        assert_eq!(db.checkpoint().unwrap(), CheckpointOutcome::Done);
        assert_eq!(f.checkpoint().unwrap(), CheckpointOutcome::Done);
    }
    assert_eq!(image(&db), image(&f));
}
