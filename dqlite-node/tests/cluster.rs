//! Three real `dqlite-node` processes on 127.0.0.1: bootstrap and join, TRANSFER, replicated
//! writes, SIGKILL of the leader while a client writes, and every acknowledged write present
//! on the new leader; the binary's `--help` and exit codes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

mod support;

use dqlite_wire::Request;
use support::Client;
use support::procs::{Writer, find_leader, ids, start_cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_of_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let (mut procs, addrs) = start_cluster(3, dir.path(), &[], "warn").await;

    // TRANSFER (id 0: the leader picks the most up-to-date voter) moves leadership. A
    // transfer may fail (the target's election can lose to leader leases); it is retried a
    // few times, each within its own bounded wait.
    let first = find_leader(&addrs, Duration::from_secs(20)).await;
    let mut attempts = Vec::new();
    let leader = 'moved: {
        for _ in 0..3 {
            let mut t = Client::connect(&first).await.unwrap();
            let r = t.call(Request::Transfer { node_id: 0 }).await.unwrap();
            attempts.push(format!("{r:?}"));
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                let l = find_leader(&addrs, Duration::from_secs(20)).await;
                if l != first {
                    break 'moved l;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        panic!("leadership did not move from {first}: {attempts:?}");
    };

    // Write; kill the leader after 20 acknowledged writes; keep writing through the new
    // leader until 60 writes are acknowledged.
    let mut w = Writer::new(std::slice::from_ref(&leader)).await;
    w.until(20, &addrs, Duration::from_secs(60)).await;
    let i = addrs.iter().position(|a| *a == leader).unwrap();
    procs[i].kill();
    let killed = Instant::now();
    let live: Vec<String> = addrs.iter().filter(|a| **a != leader).cloned().collect();
    w.reconnect();
    w.until(21, &live, Duration::from_secs(60)).await;
    // Reported, not asserted: speed is measured by benches, not tests.
    eprintln!(
        "first acknowledged write {:?} after SIGKILL",
        killed.elapsed()
    );
    w.until(60, &live, Duration::from_secs(60)).await;

    let l = find_leader(&live, Duration::from_secs(20)).await;
    assert_ne!(l, leader, "a new leader was elected");
    let present = ids(&live).await;
    for a in &w.acked {
        assert!(present.contains(a), "acknowledged write {a} lost");
    }
}

#[test]
fn binary_exit_codes() {
    let bin = env!("CARGO_BIN_EXE_dqlite-node");
    // --help: success, documents every flag.
    let out = Command::new(bin).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--id",
        "--address",
        "--dir",
        "--join",
        "--tls-cert",
        "--tls-key",
        "--tls-ca",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    // Missing arguments: clap's usage error, exit code 2.
    let st = Command::new(bin).arg("--id").arg("1").output().unwrap();
    assert_eq!(st.status.code(), Some(2));
    // An address already in use: the node cannot start, exit code 1.
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let st = Command::new(bin)
        .args(["--id", "1", "--address"])
        .arg(busy.local_addr().unwrap().to_string())
        .arg("--dir")
        .arg(dir.path())
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(1));
    // A certificate without its key: usage error.
    let st = Command::new(bin)
        .args(["--id", "1", "--address", "127.0.0.1:0", "--dir"])
        .arg(dir.path())
        .args(["--tls-cert", "cert.pem"])
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(2));
    // Unreadable TLS files: the node cannot start, exit code 1, and says which file.
    let st = Command::new(bin)
        .args(["--id", "1", "--address", "127.0.0.1:0", "--dir"])
        .arg(dir.path())
        .arg("--tls-cert")
        .arg(dir.path().join("missing-cert.pem"))
        .arg("--tls-key")
        .arg(dir.path().join("missing-key.pem"))
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&st.stderr).contains("missing-cert.pem"),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
}
