//! Real `dqlite-node` processes losing members: a five-node cluster loses two (the leader
//! among them) to SIGKILL, and a leader stopped gracefully (SIGTERM) hands over before it
//! exits. Failover times are printed (run with `--nocapture` to see them), not asserted
//! beyond generous bounds: speed is measured by benches, not by tests on a busy machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use support::procs::{Writer, find_leader, ids, image, start_cluster, wait_converged};

/// The ids in table `t` of a database image, read with SQLite directly.
fn ids_in_image(bytes: &[u8]) -> BTreeSet<i64> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.db");
    std::fs::write(&path, bytes).unwrap();
    let c = rusqlite::Connection::open(&path).unwrap();
    let mut s = c.prepare("SELECT id FROM t").unwrap();
    s.query_map([], |r| r.get::<_, i64>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn live(addrs: &[String], down: &[usize]) -> Vec<String> {
    addrs
        .iter()
        .enumerate()
        .filter(|(i, _)| !down.contains(i))
        .map(|(_, a)| a.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_lose_two_including_the_leader_and_they_catch_up() {
    let dir = tempfile::tempdir().unwrap();
    // Five voters (role management would keep three and two stand-bys).
    let five = ["--voters".to_string(), "5".to_string()];
    let (mut procs, addrs) = start_cluster(5, dir.path(), &five, "warn").await;
    let mut w = Writer::new(&addrs).await;
    w.until(20, &addrs, Duration::from_secs(60)).await;

    // SIGKILL the leader and one follower.
    let leader = find_leader(&addrs, Duration::from_secs(30)).await;
    let li = addrs.iter().position(|a| *a == leader).unwrap();
    let fi = (li + 1) % addrs.len();
    procs[li].kill();
    procs[fi].kill();
    let killed = Instant::now();
    let up = live(&addrs, &[li, fi]);
    w.reconnect();
    w.until(21, &up, Duration::from_secs(60)).await;
    eprintln!(
        "5 nodes, SIGKILL of the leader and a follower: first acknowledged write after {:?}",
        killed.elapsed()
    );
    w.until(60, &up, Duration::from_secs(60)).await;
    let new_leader = find_leader(&up, Duration::from_secs(30)).await;
    assert_ne!(new_leader, leader);
    let present = ids(&up).await;
    for a in &w.acked {
        assert!(present.contains(a), "acknowledged write {a} lost");
    }

    // The two come back on their addresses and data directories and catch up while the
    // cluster keeps writing.
    procs[li].restart();
    procs[fi].restart();
    w.until(80, &addrs, Duration::from_secs(60)).await;
    let leader = find_leader(&addrs, Duration::from_secs(30)).await;
    wait_converged(&addrs, &leader, "test.db", Duration::from_secs(60)).await;
    // Every node's own state holds every acknowledged write.
    let acked: BTreeSet<i64> = w.acked.iter().copied().collect();
    for a in &addrs {
        let got = ids_in_image(&image(a, "test.db").await.unwrap());
        assert!(acked.is_subset(&got), "{a} misses acknowledged writes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gracefully_stopped_leader_hands_over() {
    let dir = tempfile::tempdir().unwrap();
    let (mut procs, addrs) = start_cluster(3, dir.path(), &[], "warn,dqlite_node=info").await;
    let mut w = Writer::new(&addrs).await;
    w.until(20, &addrs, Duration::from_secs(60)).await;

    // SIGTERM the leader: it hands over, then exits with 0.
    let old = find_leader(&addrs, Duration::from_secs(30)).await;
    let oi = addrs.iter().position(|a| *a == old).unwrap();
    procs[oi].terminate();
    let stopped = Instant::now();
    let up = live(&addrs, &[oi]);
    let deadline = Instant::now() + Duration::from_secs(30);
    // Writes go on through the old leader until it steps down, then through the new one.
    while w.acked.len() == 20 || w.acked_by.last() == Some(&old) {
        assert!(
            Instant::now() < deadline,
            "no write acknowledged by a new leader"
        );
        w.step(&up).await;
    }
    let graceful = stopped.elapsed();
    let st = procs[oi].wait_exit(Duration::from_secs(30));
    assert!(
        st.is_some_and(|s| s.success()),
        "SIGTERM: exit status {st:?}"
    );
    assert!(
        procs[oi].log().contains("handed leadership over"),
        "the old leader stopped without a handover:\n{}",
        procs[oi].log()
    );

    // For comparison: the old leader comes back, then SIGKILL the leader (two of three
    // remain, a majority).
    procs[oi].restart();
    w.until(w.acked.len() + 10, &addrs, Duration::from_secs(60))
        .await;
    let second = find_leader(&addrs, Duration::from_secs(30)).await;
    let si = addrs.iter().position(|a| *a == second).unwrap();
    procs[si].kill();
    let killed = Instant::now();
    let up2 = live(&addrs, &[si]);
    w.reconnect();
    let n = w.acked.len();
    w.until(n + 1, &up2, Duration::from_secs(60)).await;
    let crash = killed.elapsed();
    eprintln!(
        "3 nodes, stop to first acknowledged write on the new leader: \
         SIGTERM (handover) {graceful:?}, SIGKILL {crash:?}"
    );
    w.until(w.acked.len() + 5, &up2, Duration::from_secs(60))
        .await;
    let present = ids(&up2).await;
    for a in &w.acked {
        assert!(present.contains(a), "acknowledged write {a} lost");
    }
    assert!(
        graceful < Duration::from_secs(10),
        "handover took {graceful:?}"
    );
}
