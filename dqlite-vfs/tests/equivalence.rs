//! Leader/follower equivalence over random workloads (proptest).
//!
//! Each case runs random SQL on a leader database, polls every commit, and applies it to a
//! follower (and back to the leader), sometimes aborting instead. After every step both
//! databases must have byte-identical images, identical query results and pass
//! `PRAGMA integrity_check`; snapshots restored into a third database must match too.
//! `PROPTEST_CASES` raises the number of cases (default 12).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::OnceLock;

use common::*;
use dqlite_vfs::{Connection, Database, Vfs, VfsConfig};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    CreateTable(u8),
    DropTable(u8),
    CreateIndex(u8),
    DropIndex(u8),
    Insert {
        t: u8,
        n: u8,
        size: u32,
    },
    Update {
        t: u8,
        modulo: u8,
        size: u32,
    },
    Delete {
        t: u8,
        modulo: u8,
    },
    Vacuum,
    /// BEGIN; first; SAVEPOINT s; second; ROLLBACK TO s (or RELEASE); third; COMMIT or ROLLBACK.
    Txn {
        ops: [Box<Op>; 3],
        undo_savepoint: bool,
        commit: bool,
    },
    Checkpoint {
        leader: bool,
    },
    Restore,
    /// Open (true) or end (false) a long read transaction on a second connection of the
    /// leader and of the follower; while open, what it reads must not change.
    HoldReaders(bool),
}

fn size() -> impl Strategy<Value = u32> {
    prop_oneof![
        6 => 1u32..300,              // small rows
        3 => 3000u32..20_000,        // rows spanning overflow pages
        1 => 200_000u32..600_000,    // large blobs that spill the page cache
    ]
}

fn simple_op() -> impl Strategy<Value = Op> {
    let t = 0u8..3;
    prop_oneof![
        3 => t.clone().prop_map(Op::CreateTable),
        1 => t.clone().prop_map(Op::DropTable),
        1 => t.clone().prop_map(Op::CreateIndex),
        1 => t.clone().prop_map(Op::DropIndex),
        6 => (t.clone(), 1u8..20, size()).prop_map(|(t, n, size)| Op::Insert { t, n, size }),
        3 => (t.clone(), 1u8..4, size()).prop_map(|(t, modulo, size)| Op::Update { t, modulo, size }),
        3 => (t, 1u8..4).prop_map(|(t, modulo)| Op::Delete { t, modulo }),
        1 => Just(Op::Vacuum),
    ]
}

fn op() -> impl Strategy<Value = (Op, bool, bool)> {
    let op = prop_oneof![
        12 => simple_op(),
        3 => ([simple_op(), simple_op(), simple_op()], any::<bool>(), prop::bool::weighted(0.7))
            .prop_map(|([a, b, c], undo_savepoint, commit)| Op::Txn {
                ops: [Box::new(a), Box::new(b), Box::new(c)],
                undo_savepoint,
                commit,
            }),
        1 => any::<bool>().prop_map(|leader| Op::Checkpoint { leader }),
        1 => Just(Op::Restore),
        1 => any::<bool>().prop_map(Op::HoldReaders),
    ];
    // (op, abort instead of applying, apply on the follower first)
    (op, prop::bool::weighted(0.15), any::<bool>())
}

fn sql(op: &Op) -> Vec<String> {
    match op {
        Op::CreateTable(t) => vec![format!(
            "CREATE TABLE IF NOT EXISTS t{t} (id INTEGER PRIMARY KEY, a INTEGER, b BLOB)"
        )],
        Op::DropTable(t) => vec![format!("DROP TABLE IF EXISTS t{t}")],
        Op::CreateIndex(t) => vec![format!("CREATE INDEX IF NOT EXISTS i{t} ON t{t}(a, b)")],
        Op::DropIndex(t) => vec![format!("DROP INDEX IF EXISTS i{t}")],
        Op::Insert { t, n, size } => vec![format!(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) \
             INSERT INTO t{t}(a, b) SELECT abs(random()) % 100, randomblob({size}) FROM c"
        )],
        Op::Update { t, modulo, size } => vec![format!(
            "UPDATE t{t} SET a = a + 1, b = randomblob({size}) WHERE id % {modulo} = 0"
        )],
        Op::Delete { t, modulo } => vec![format!("DELETE FROM t{t} WHERE id % {modulo} = 0")],
        Op::Vacuum => vec!["VACUUM".into()],
        Op::Txn {
            ops,
            undo_savepoint,
            commit,
        } => {
            let mut v = vec!["BEGIN".to_string()];
            v.extend(sql(&ops[0]).into_iter().filter(|s| s != "VACUUM"));
            v.push("SAVEPOINT s".into());
            v.extend(sql(&ops[1]).into_iter().filter(|s| s != "VACUUM"));
            v.push(
                if *undo_savepoint {
                    "ROLLBACK TO s; RELEASE s"
                } else {
                    "RELEASE s"
                }
                .into(),
            );
            v.extend(sql(&ops[2]).into_iter().filter(|s| s != "VACUUM"));
            v.push(if *commit { "COMMIT" } else { "ROLLBACK" }.into());
            v
        }
        Op::Checkpoint { .. } | Op::Restore | Op::HoldReaders(_) => Vec::new(),
    }
}

fn shared_vfs() -> &'static Vfs {
    static VFS: OnceLock<Vfs> = OnceLock::new();
    VFS.get_or_init(|| {
        vfs(
            "equivalence",
            // Low, so that automatic checkpoints happen within a case.
            VfsConfig::default().with_checkpoint_threshold(200),
        )
    })
}

struct Case {
    leader: Database,
    follower: Database,
    third: Database,
    w: Connection,
    fr: Connection,
    tr: Connection,
}

fn check_same(a: &Database, ac: &Connection, b: &Database, bc: &Connection, what: &str) {
    assert_eq!(image(a), image(b), "images differ: {what}");
    assert_eq!(contents(ac), contents(bc), "contents differ: {what}");
    assert_eq!(integrity(ac), "ok", "leader integrity: {what}");
    assert_eq!(integrity(bc), "ok", "follower integrity: {what}");
}

fn run_case(ops: Vec<(Op, bool, bool)>) {
    let vfs = shared_vfs();
    let names = [unique("leader"), unique("follower"), unique("third")];
    {
        let leader = vfs.open_database(&names[0]).unwrap();
        let follower = vfs.open_database(&names[1]).unwrap();
        let third = vfs.open_database(&names[2]).unwrap();
        let w = leader.connect().unwrap();
        // A small page cache makes large transactions spill to the WAL before commit.
        w.execute_batch("PRAGMA cache_size = 20").unwrap();
        let fr = follower.connect().unwrap();
        let tr = third.connect().unwrap();
        let c = Case {
            leader,
            follower,
            third,
            w,
            fr,
            tr,
        };
        check_same(&c.leader, &c.w, &c.follower, &c.fr, "start");
        // Start with the tables present so that most operations do something.
        replicate(
            &c.w,
            "CREATE TABLE t0 (id INTEGER PRIMARY KEY, a INTEGER, b BLOB); \
             CREATE TABLE t1 (id INTEGER PRIMARY KEY, a INTEGER, b BLOB); \
             CREATE TABLE t2 (id INTEGER PRIMARY KEY, a INTEGER, b BLOB)",
            &[&c.follower],
        )
        .unwrap();

        // Long readers: (connection, what it saw when its read transaction began).
        let readers = [c.leader.connect().unwrap(), c.follower.connect().unwrap()];
        let mut held: Option<[Contents; 2]> = None;
        for (i, (op, abort, follower_first)) in ops.iter().enumerate() {
            let what = format!("step {i}: {op:?}");
            match op {
                Op::HoldReaders(true) if held.is_none() => {
                    for r in &readers {
                        r.execute_batch("BEGIN; SELECT count(*) FROM sqlite_master")
                            .unwrap();
                    }
                    held = Some([contents(&readers[0]), contents(&readers[1])]);
                }
                Op::HoldReaders(false) if held.is_some() => {
                    for r in &readers {
                        r.execute_batch("COMMIT").unwrap();
                    }
                    held = None;
                }
                Op::HoldReaders(_) => {}
                Op::Checkpoint { leader } => {
                    let db = if *leader { &c.leader } else { &c.follower };
                    db.checkpoint().unwrap();
                }
                Op::Restore => {
                    let snap = c.leader.snapshot();
                    c.third.restore(&snap).unwrap();
                    check_same(
                        &c.leader,
                        &c.w,
                        &c.third,
                        &c.tr,
                        &format!("restore at {what}"),
                    );
                }
                _ => {
                    let before = image(&c.leader);
                    for s in sql(op) {
                        // Errors (no such table, ...) are part of the workload.
                        let _ = c.w.execute_batch(&s);
                    }
                    if !c.w.is_autocommit() {
                        c.w.execute_batch("ROLLBACK").unwrap();
                    }
                    if let Some(frames) = c.w.poll() {
                        if std::env::var("EQ_DEBUG").is_ok() {
                            eprintln!(
                                "{what}: {} frames, db size {}",
                                frames.len(),
                                frames.db_size()
                            );
                        }
                        assert!(c.w.poll().is_none());
                        assert_eq!(image(&c.leader), before, "pending commit visible: {what}");
                        if *abort {
                            assert!(c.leader.abort());
                            assert_eq!(image(&c.leader), before, "abort: {what}");
                        } else if *follower_first {
                            c.follower.apply(&frames).unwrap();
                            assert!(c.leader.apply(&frames).unwrap().was_pending);
                        } else {
                            assert!(c.leader.apply(&frames).unwrap().was_pending);
                            c.follower.apply(&frames).unwrap();
                        }
                    } else {
                        assert_eq!(image(&c.leader), before, "no frames but changed: {what}");
                    }
                }
            }
            assert!(!c.leader.has_pending());
            check_same(&c.leader, &c.w, &c.follower, &c.fr, &what);
            if let Some(seen) = &held {
                assert_eq!(
                    contents(&readers[0]),
                    seen[0],
                    "leader reader moved: {what}"
                );
                assert_eq!(
                    contents(&readers[1]),
                    seen[1],
                    "follower reader moved: {what}"
                );
            }
        }
        if held.is_some() {
            for r in &readers {
                r.execute_batch("COMMIT").unwrap();
            }
        }
        let snap = c.follower.snapshot();
        c.third.restore(&snap).unwrap();
        check_same(&c.leader, &c.w, &c.third, &c.tr, "final restore");
    }
    for n in &names {
        vfs.delete_database(n).unwrap();
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn leader_and_follower_stay_identical(ops in prop::collection::vec(op(), 5..40)) {
        run_case(ops);
    }
}
