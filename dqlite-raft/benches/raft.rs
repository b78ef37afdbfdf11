//! Log store and replication benchmarks: `cargo bench -p dqlite-raft` (or `cargo xtask bench raft`).
//!
//! Criterion measures each workload; afterwards a summary pass runs every workload for a fixed
//! time and prints one table, so all figures come from the same run:
//! (a) raw write+fdatasync of 4 KiB into a preallocated file and (b) sequential single-entry
//! appends (in alternating 200 ms slices, so both see the same disk), (c) appends from 64
//! concurrent proposers (1 KiB entries), (d) 3-member replicated
//! commits over TCP on 127.0.0.1 with 1 and 64 proposers, with p50/p99 commit latency, and
//! (e) read barriers (leadership confirmed by a quorum) on that cluster from 1 and 64 readers.
//!
//! Files go to `DQLITE_RAFT_BENCH_DIR` (default: the system temp dir; use a real disk). Knobs:
//! `DQLITE_RAFT_BENCH=summary`, `DQLITE_RAFT_BENCH_SECS`, `DQLITE_RAFT_BENCH_ONLY=d`,
//! `DQLITE_RAFT_BENCH_HEARTBEAT_MS`, `DQLITE_RAFT_BENCH_EAGER_PUSH=0` (see README).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use dqlite_raft::log_store::{LogConfig, LogStore};
use dqlite_raft::network::{NetConfig, TcpConnector, serve_listener};
use dqlite_raft::node::{NodeOptions, RaftNode};
use dqlite_raft::segment::create_zeroed;
use dqlite_raft::testing::{DigestStateMachine, TestConfig};
use openraft::{BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, ServerState};
use tokio::runtime::Runtime;
use tokio::sync::Mutex;

const RAW_FILE: u64 = 256 << 20;

fn bench_dir() -> tempfile::TempDir {
    let base = std::env::var_os("DQLITE_RAFT_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    tempfile::tempdir_in(base).unwrap()
}

fn entry(index: u64, size: usize) -> Entry<TestConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(vec![(index % 251) as u8; size]),
    }
}

/// (a) write 4 KiB + fdatasync at increasing offsets of a zero-filled file.
struct RawFsync {
    _dir: tempfile::TempDir,
    file: fs::File,
    pos: u64,
    buf: Vec<u8>,
}

impl RawFsync {
    fn new() -> Self {
        let dir = bench_dir();
        let file = create_zeroed(&dir.path().join("raw"), RAW_FILE).unwrap();
        Self {
            _dir: dir,
            file,
            pos: 0,
            buf: vec![7u8; 4096],
        }
    }
    fn op(&mut self) {
        if self.pos + 4096 > RAW_FILE {
            self.pos = 0;
        }
        self.file.write_all_at(&self.buf, self.pos).unwrap();
        self.file.sync_data().unwrap();
        self.pos += 4096;
    }
}

/// A log store with a counter of the next index.
struct Log {
    _dir: tempfile::TempDir,
    log: Mutex<(LogStore<TestConfig>, u64)>,
}

impl Log {
    fn new() -> Arc<Self> {
        let dir = bench_dir();
        let (log, _) = LogStore::open(&dir.path().join("log"), LogConfig::default()).unwrap();
        Arc::new(Self {
            _dir: dir,
            log: Mutex::new((log, 0)),
        })
    }

    /// Appends one entry of `size` bytes and waits until it is durable.
    async fn append(&self, size: usize) {
        let rx = {
            let mut g = self.log.lock().await;
            let idx = g.1;
            g.1 += 1;
            let (tx, rx) = tokio::sync::oneshot::channel();
            g.0.append_with([entry(idx, size)], move |r| {
                let _ = tx.send(r);
            })
            .unwrap();
            rx
        };
        rx.await.unwrap().unwrap();
    }
}

/// Runs `total` operations from `workers` tasks; returns elapsed time and per-op latencies.
async fn run_concurrent<F, Fut>(workers: usize, total: u64, op: F) -> (Duration, Vec<Duration>)
where
    F: Fn() -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers as u64 {
        let op = op.clone();
        let n = total / workers as u64 + u64::from(w < total % workers as u64);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let t = Instant::now();
                op().await;
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    (start.elapsed(), lat)
}

type Node = RaftNode<TestConfig, DigestStateMachine>;

/// (d) three members, each on its own runtime, over TCP on 127.0.0.1.
struct Cluster {
    _dir: tempfile::TempDir,
    members: Vec<(Runtime, Node)>,
    leader: usize,
}

impl Cluster {
    fn start() -> Self {
        let dir = bench_dir();
        let mut members = Vec::new();
        let mut addrs = BTreeMap::new();
        for id in 1..=3u64 {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let d = dir.path().join(format!("n{id}"));
            let node = rt.block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addrs.insert(
                    id,
                    BasicNode::new(listener.local_addr().unwrap().to_string()),
                );
                let mut opts = NodeOptions::default();
                if let Some(hb) = std::env::var("DQLITE_RAFT_BENCH_HEARTBEAT_MS")
                    .ok()
                    .and_then(|s| s.parse().ok())
                {
                    opts.raft.heartbeat_interval = hb;
                }
                if std::env::var("DQLITE_RAFT_BENCH_EAGER_PUSH").as_deref() == Ok("0") {
                    opts.eager_push = false;
                }
                let node = Node::start(
                    id,
                    &d,
                    opts,
                    DigestStateMachine::default(),
                    TcpConnector::default(),
                )
                .await
                .unwrap();
                tokio::spawn(serve_listener(
                    node.raft().clone(),
                    listener,
                    NetConfig::default(),
                ));
                node
            });
            members.push((rt, node));
        }
        members[0]
            .0
            .block_on(members[0].1.initialize(addrs))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let leader = loop {
            if let Some(i) = members
                .iter()
                .position(|(_, n)| n.metrics().borrow().state == ServerState::Leader)
            {
                break i;
            }
            assert!(Instant::now() < deadline, "no leader");
            std::thread::sleep(Duration::from_millis(20));
        };
        Self {
            _dir: dir,
            members,
            leader,
        }
    }

    fn raft(&self) -> openraft::Raft<TestConfig> {
        self.members[self.leader].1.raft().clone()
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.members[self.leader].0.block_on(f)
    }

    /// `total` commits of 1 KiB from `workers` proposers.
    fn run(&self, workers: usize, total: u64) -> (Duration, Vec<Duration>) {
        let raft = self.raft();
        self.block_on(run_concurrent(workers, total, move || {
            let raft = raft.clone();
            async move {
                raft.client_write(vec![1u8; 1024]).await.unwrap();
            }
        }))
    }

    /// `total` read barriers ([`RaftNode::read_barrier`]) from `workers` readers.
    fn read(&self, workers: usize, total: u64) -> (Duration, Vec<Duration>) {
        let leader = &self.members[self.leader].1;
        self.block_on(async {
            let start = Instant::now();
            let per = total / workers as u64;
            let tasks = (0..workers).map(|_| async move {
                let mut lat = Vec::with_capacity(per as usize);
                for _ in 0..per {
                    let t = Instant::now();
                    leader.read_barrier().await.unwrap();
                    lat.push(t.elapsed());
                }
                lat
            });
            let lat: Vec<Duration> = futures::future::join_all(tasks)
                .await
                .into_iter()
                .flatten()
                .collect();
            (start.elapsed(), lat)
        })
    }

    fn stop(self) {
        for (rt, node) in self.members {
            rt.block_on(node.shutdown()).unwrap();
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

fn criterion_benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let mut g = c.benchmark_group("log");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(1));

    let mut raw = RawFsync::new();
    g.bench_function("a_raw_write_fdatasync_4k", |b| b.iter(|| raw.op()));
    drop(raw);

    let log = Log::new();
    g.bench_function("b_sequential_append_1k", |b| {
        b.iter_custom(|iters| {
            let log = log.clone();
            rt.block_on(async move {
                let t = Instant::now();
                for _ in 0..iters {
                    log.append(1024).await;
                }
                t.elapsed()
            })
        })
    });
    drop(log);

    let log = Log::new();
    g.bench_function("c_append_1k_64_proposers", |b| {
        b.iter_custom(|iters| {
            let log = log.clone();
            rt.block_on(run_concurrent(64, iters, move || {
                let log = log.clone();
                async move { log.append(1024).await }
            }))
            .0
        })
    });
    drop(log);

    let cluster = Cluster::start();
    g.bench_function("d_replicated_commit_1k_1_proposer", |b| {
        b.iter_custom(|iters| cluster.run(1, iters).0)
    });
    g.bench_function("d_replicated_commit_1k_64_proposers", |b| {
        b.iter_custom(|iters| cluster.run(64, iters).0)
    });
    g.finish();
    cluster.stop();
}

fn pct(lat: &mut [Duration], p: f64) -> Duration {
    lat.sort();
    lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)]
}

/// Runs each workload for about `secs` and prints the side-by-side table.
fn summary(secs: f64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut rows: Vec<(String, f64, Duration, Duration)> = Vec::new();

    let only_d = std::env::var("DQLITE_RAFT_BENCH_ONLY").as_deref() == Ok("d");
    // (a) and (b) run in alternating slices of 200 ms, so that both see the same disk: this
    // machine's fsync rate drifts by tens of percent from one second to the next.
    let mut raw = RawFsync::new();
    let log = (!only_d).then(Log::new);
    let (mut raw_lat, mut raw_time) = (Vec::new(), Duration::ZERO);
    let (mut log_lat, mut log_time) = (Vec::new(), Duration::ZERO);
    let slice = Duration::from_millis(200);
    while raw_time.as_secs_f64() < secs {
        let start = Instant::now();
        while start.elapsed() < slice {
            let t = Instant::now();
            raw.op();
            raw_lat.push(t.elapsed());
        }
        raw_time += start.elapsed();
        if let Some(log) = &log {
            let l = log.clone();
            let (el, lat) = rt.block_on(async move {
                let start = Instant::now();
                let mut lat = Vec::new();
                while start.elapsed() < slice {
                    let t = Instant::now();
                    l.append(1024).await;
                    lat.push(t.elapsed());
                }
                (start.elapsed(), lat)
            });
            log_time += el;
            log_lat.extend(lat);
        }
    }
    let raw_rate = raw_lat.len() as f64 / raw_time.as_secs_f64();
    rows.push((
        "(a) raw 4 KiB write+fdatasync, preallocated".into(),
        raw_rate,
        pct(&mut raw_lat, 0.5),
        pct(&mut raw_lat, 0.99),
    ));
    drop(raw);

    if only_d {
        return summary_d(secs, rows);
    }
    drop(log);
    let b_rate = log_lat.len() as f64 / log_time.as_secs_f64();
    rows.push((
        "(b) sequential single-entry append, 1 KiB".into(),
        b_rate,
        pct(&mut log_lat, 0.5),
        pct(&mut log_lat, 0.99),
    ));

    let log = Log::new();
    let l2 = log.clone();
    let (el, mut lat) = rt.block_on(run_concurrent(64, (60_000.0 * secs) as u64, move || {
        let log = l2.clone();
        async move { log.append(1024).await }
    }));
    rows.push((
        "(c) append, 64 concurrent proposers, 1 KiB".into(),
        lat.len() as f64 / el.as_secs_f64(),
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
    ));
    drop(log);
    summary_d(secs, rows);
}

fn summary_d(secs: f64, mut rows: Vec<(String, f64, Duration, Duration)>) {
    let b_rate = rows.get(1).map_or(0.0, |r| r.1);
    let raw_rate = rows[0].1;
    let cluster = Cluster::start();
    cluster.run(1, 200); // warm up connections
    let (el, mut lat) = cluster.run(1, (2_000.0 * secs) as u64);
    rows.push((
        "(d) 3 members, replicated commit, 1 proposer".into(),
        lat.len() as f64 / el.as_secs_f64(),
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
    ));
    let (el, mut lat) = cluster.run(64, (10_000.0 * secs) as u64);
    rows.push((
        "(d) 3 members, replicated commit, 64 proposers".into(),
        lat.len() as f64 / el.as_secs_f64(),
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
    ));
    for workers in [1, 64] {
        let (el, mut lat) = cluster.read(workers, (2_000.0 * secs) as u64);
        rows.push((
            format!("(e) 3 members, read barrier, {workers} reader(s)"),
            lat.len() as f64 / el.as_secs_f64(),
            pct(&mut lat, 0.5),
            pct(&mut lat, 0.99),
        ));
    }
    cluster.stop();

    println!("\n| workload | ops/s | p50 | p99 |\n|---|---:|---:|---:|");
    for (name, rate, p50, p99) in &rows {
        println!(
            "| {name} | {rate:.0} | {:.0} µs | {:.0} µs |",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6
        );
    }
    if b_rate > 0.0 {
        println!(
            "\n(b)/(a) = {:.0}% (target >= 80%)",
            100.0 * b_rate / raw_rate
        );
    }
    println!("(c) target >= 50,000/s; (d) 1-proposer p50 target <= 400 µs");
}

fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
    }
    let args: Vec<String> = std::env::args().collect();
    // `cargo test --benches` runs bench targets with `--test`: keep that quick.
    if args.iter().any(|a| a == "--test") {
        summary(0.2);
        return;
    }
    // DQLITE_RAFT_BENCH=summary skips the criterion part (the table only).
    if std::env::var("DQLITE_RAFT_BENCH").as_deref() != Ok("summary") {
        let mut c = Criterion::default().configure_from_args();
        criterion_benches(&mut c);
        c.final_summary();
    }
    let secs = std::env::var("DQLITE_RAFT_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    summary(secs);
}
