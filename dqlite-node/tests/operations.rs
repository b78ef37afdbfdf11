//! Running real `dqlite-node` processes as an operator would: metrics scraped and parsed,
//! readiness that turns false on a node cut off from the leader (the others SIGSTOPped) and
//! true again; settings from environment variables and a TOML file; one process per data
//! directory, and a directory that belongs to another node refused; disaster recovery of a
//! 3-node cluster that lost two nodes for good, from the third, then grown back to 3 voters.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use dqlite_wire::{Request, Response, Role};
use support::Client;
use support::procs::{
    Proc, Writer, addresses, find_leader, free_port, ids, start_cluster, wait_converged,
};

/// A GET over a fresh connection: status and body.
fn http_get(address: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(address)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad response {raw:?}")))?;
    let body = raw.split_once("\r\n\r\n").map_or("", |b| b.1).to_string();
    Ok((status, body))
}

/// Parses the Prometheus text format strictly: every sample line is `name{labels} value`.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (key, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number in {line:?}"));
        assert!(
            key.starts_with("dqlite_") && key.chars().next().unwrap().is_ascii_alphabetic(),
            "{line:?}"
        );
        out.insert(key.to_string(), value);
    }
    out
}

async fn wait_ready(http: &str, want: u16, timeout: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let got = http_get(http, "/readyz").map(|r| r.0).unwrap_or(0);
        if got == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < timeout,
            "{http}/readyz: {got}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_scraped_and_readiness_follows_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let addrs = addresses(3);
    let https: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let mut procs = Vec::new();
    for (i, a) in addrs.iter().enumerate() {
        let extra = vec!["--http-address".to_string(), https[i].clone()];
        let join = (i > 0).then_some(addrs[0].as_str());
        procs.push(Proc::start(
            i as u64 + 1,
            a,
            dir.path(),
            join,
            &extra,
            "warn",
        ));
        if i == 0 {
            find_leader(&addrs[..1], Duration::from_secs(30)).await;
        }
    }
    support::procs::wait_voters(&addrs, 3, Duration::from_secs(60)).await;
    let mut w = Writer::new(&addrs).await;
    w.until(25, &addrs, Duration::from_secs(30)).await;
    let mut c = support::open(
        &find_leader(&addrs, Duration::from_secs(10)).await,
        "test.db",
    )
    .await
    .unwrap();
    c.rows("SELECT count(*) FROM t").await.unwrap();
    let bad = c
        .call(Request::exec_sql("INSERT INTO nope VALUES (1)", vec![]))
        .await
        .unwrap();
    assert!(matches!(bad, Response::Failure(_)), "{bad:?}");

    let leader = find_leader(&addrs, Duration::from_secs(10)).await;
    let li = addrs.iter().position(|a| *a == leader).unwrap();
    let (status, text) = http_get(&https[li], "/metrics").unwrap();
    assert_eq!(status, 200);
    let m = parse_metrics(&text);
    let get = |k: &str| *m.get(k).unwrap_or_else(|| panic!("{k} missing:\n{text}"));
    assert_eq!(get("dqlite_role{role=\"leader\"}"), 1.0);
    assert_eq!(get("dqlite_role{role=\"voter\"}"), 0.0);
    assert!(get("dqlite_raft_term") >= 1.0);
    assert_eq!(get("dqlite_raft_leader_id"), (li + 1) as f64);
    assert!(get("dqlite_raft_applied_index") >= 25.0);
    assert!(get("dqlite_raft_commit_index") >= get("dqlite_raft_applied_index") - 1.0);
    assert!(get("dqlite_raft_log_bytes") > 0.0);
    assert!(get("dqlite_database_commits_total{database=\"test.db\"}") >= 25.0);
    assert!(get("dqlite_database_reads_total{database=\"test.db\"}") >= 1.0);
    assert!(get("dqlite_database_errors_total{database=\"test.db\",code=\"1\"}") >= 1.0);
    assert!(get("dqlite_request_failures_total{type=\"EXEC_SQL\",code=\"1\"}") >= 1.0);
    assert!(get("dqlite_request_duration_seconds_count{type=\"EXEC_SQL\"}") >= 25.0);
    assert!(get("dqlite_connections") >= 1.0);
    assert!(get("dqlite_raft_fsync_duration_seconds_count") >= 1.0);
    drop(c);

    // Every node is alive and ready.
    for h in &https {
        assert_eq!(http_get(h, "/healthz").unwrap().0, 200);
        wait_ready(h, 200, Duration::from_secs(10)).await;
    }
    // A follower cut off from the others (they are frozen) is not ready, and is again once
    // they are back.
    let fi = (li + 1) % 3;
    for (i, p) in procs.iter_mut().enumerate() {
        if i != fi {
            p.pause(false);
        }
    }
    let took = wait_ready(&https[fi], 503, Duration::from_secs(10)).await;
    eprintln!("a follower cut off from the leader: not ready after {took:?}");
    let (_, why) = http_get(&https[fi], "/readyz").unwrap();
    assert!(why.contains("leader"), "{why}");
    for (i, p) in procs.iter_mut().enumerate() {
        if i != fi {
            p.pause(true);
        }
    }
    wait_ready(&https[fi], 200, Duration::from_secs(20)).await;
}

/// Runs the node binary to completion (it must exit by itself within 20 s).
fn run_to_exit(cmd: &mut Command) -> (i32, String) {
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(out) => {
            let out = out.unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (out.status.code().unwrap_or(-1), text)
        }
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("the node did not exit within 20 s");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_from_environment_and_file_and_one_process_per_data_directory() {
    let bin = env!("CARGO_BIN_EXE_dqlite-node");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let address = format!("127.0.0.1:{}", free_port());
    let http = format!("127.0.0.1:{}", free_port());
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!("http-address = \"{http}\"\nvoters = 3\nid = 99\n"),
    )
    .unwrap();
    // Id and address from the environment (winning over the file's id), the rest from the file.
    let mut first = std::process::Command::new(bin)
        .env("DQLITE_ID", "1")
        .env("DQLITE_ADDRESS", &address)
        .env("DQLITE_DIR", &data)
        .env("DQLITE_CONFIG", &config)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(&http, 200, Duration::from_secs(30)).await;
    let mut c = Client::connect(&address).await.unwrap();
    match c.call(Request::Leader).await.unwrap() {
        Response::Server { node_id, .. } => assert_eq!(node_id, 1),
        other => panic!("{other:?}"),
    }

    // A second process on the same data directory is refused with a clear error.
    let other = format!("127.0.0.1:{}", free_port());
    let (code, text) = run_to_exit(
        Command::new(bin)
            .args(["--id", "1", "--address", &other, "--dir"])
            .arg(&data)
            .env("RUST_LOG", "error"),
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("in use by another node process"), "{text}");

    let _ = Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status();
    assert!(first.wait().unwrap().success());

    // Once free, the directory still belongs to node 1 at its address.
    let (code, text) = run_to_exit(
        Command::new(bin)
            .args(["--id", "2", "--address", &address, "--dir"])
            .arg(&data)
            .env("RUST_LOG", "error"),
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("belongs to node 1"), "{text}");
    let (code, text) = run_to_exit(
        Command::new(bin)
            .args(["--id", "1", "--address", &other, "--dir"])
            .arg(&data)
            .env("RUST_LOG", "error"),
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(&address), "{text}");
    // An unknown key in the file is a usage error naming it.
    std::fs::write(&config, "colour = \"blue\"\n").unwrap();
    let (code, text) = run_to_exit(Command::new(bin).arg("--config").arg(&config));
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("colour"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_lost_two_of_three_is_recovered_from_the_third_and_grows_back() {
    let dir = tempfile::tempdir().unwrap();
    let (mut procs, addrs) = start_cluster(3, dir.path(), &[], "warn").await;
    let mut w = Writer::new(&addrs).await;
    w.until(40, &addrs, Duration::from_secs(60)).await;
    // Node 3 holds every acknowledged write once the cluster has converged.
    let leader = find_leader(&addrs, Duration::from_secs(10)).await;
    wait_converged(&addrs, &leader, "test.db", Duration::from_secs(30)).await;

    // Nodes 1 and 2 are lost for good; node 3 alone has no quorum. Stop it too.
    procs[0].kill();
    procs[1].kill();
    procs[2].kill();

    let bin = env!("CARGO_BIN_EXE_dqlite-node");
    let data = dir.path().join("n3");
    let (code, text) = run_to_exit(Command::new(bin).args(["recover", "--dir"]).arg(&data));
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("node 3 at") && text.contains("last log index"),
        "{text}"
    );
    let (code, text) = run_to_exit(
        Command::new(bin)
            .args(["recover", "--dir"])
            .arg(&data)
            .arg("--members")
            .arg(format!("3={}", addrs[2])),
    );
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("recovered"), "{text}");

    // Node 3 restarts as a one-voter cluster with every acknowledged write.
    procs[2].restart();
    let survivor = vec![addrs[2].clone()];
    let present = ids(&survivor).await;
    for a in &w.acked {
        assert!(present.contains(a), "acknowledged write {a} lost");
    }
    w.reconnect();
    let before = w.acked.len();
    w.until(before + 5, &survivor, Duration::from_secs(30))
        .await;

    // Two new nodes join it (fresh directories, only --join) and role management makes the
    // cluster 3 voters again.
    let fresh = addresses(2);
    for (i, a) in fresh.iter().enumerate() {
        procs.push(Proc::start(
            i as u64 + 4,
            a,
            dir.path(),
            Some(&addrs[2]),
            &[],
            "warn",
        ));
    }
    let mut all = survivor.clone();
    all.extend(fresh);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let l = find_leader(&all, Duration::from_secs(10)).await;
        let mut c = Client::connect(&l).await.unwrap();
        if let Response::Servers { servers } = c.call(Request::Cluster { format: 1 }).await.unwrap()
            && servers.len() == 3
            && servers.iter().all(|s| s.role == Role::Voter)
        {
            break;
        }
        assert!(Instant::now() < deadline, "the cluster did not grow back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w.until(w.acked.len() + 5, &all, Duration::from_secs(30))
        .await;
    let leader = find_leader(&all, Duration::from_secs(10)).await;
    wait_converged(&all, &leader, "test.db", Duration::from_secs(30)).await;
}
