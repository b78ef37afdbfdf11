//! Key/value throughput against a real 3-node C dqlite 1.11 cluster and a 3-node dqlite-rs
//! cluster (the release `dqlite-node` binary) in the same run, with this client and, when a
//! Python >= 3.13 is found, the PyPI `dqlite-client` 0.8.0 running `benches/kvbench.py`,
//! reporting the ratios dqlite-rs / C.
//!
//! The workload mirrors kvbench: table `model(key TEXT, value TEXT, UNIQUE(key))`,
//! `INSERT OR REPLACE` of a new random 32-letter key with a 1 KiB value (half one repeated
//! letter, half random letters), then `SELECT value FROM model WHERE key = ?` of keys written
//! before; each worker holds its own connection to the leader and runs one request at a time.
//! Both clusters run for the whole bench; for each connection count the backends take turns
//! (C first), so slow drifts of the machine's load hit both alike.
//!
//! `cargo bench -p dqlite-client --bench kv`. Environment: `KVBENCH_SECS` per phase (default
//! 5); `KVBENCH_WORKERS` (default `1,8`); `KVBENCH_BACKENDS` (default `c,rs`);
//! `KVBENCH_PYTHON`, a Python >= 3.13 interpreter (without one found the Python side is
//! skipped and said so; `KVBENCH_PYTHON=none` skips it); `DQLITE_NODE_BIN` (default: the
//! `dqlite-node` beside the bench executable, built with `--release` when missing). Needs
//! `dqlite-demo` (Debian `go-dqlite`) for the C cluster.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use dqlite_cluster as cluster;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use dqlite_client::{Client, Config, params};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS model (key TEXT, value TEXT, UNIQUE(key))";
const WRITE: &str = "INSERT OR REPLACE INTO model(key, value) VALUES(?, ?)";
const READ: &str = "SELECT value FROM model WHERE key = ?";
const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

#[derive(Debug, Clone, Copy, Default)]
struct Phase {
    ops_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Requests refused with SQLITE_BUSY ("database is locked"): C 1.x answers a write that
    /// meets another connection's write at once with it instead of queueing.
    busy: u64,
    /// Other failed requests.
    errors: u64,
}

fn random_text(rng: &mut impl rand::Rng, n: usize) -> String {
    (0..n)
        .map(|_| LETTERS[rng.random_range(0..LETTERS.len())] as char)
        .collect()
}

fn summarize(mut lat: Vec<Duration>, busy: u64, errors: u64, wall: Duration) -> Phase {
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    };
    Phase {
        ops_per_s: lat.len() as f64 / wall.as_secs_f64(),
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        busy,
        errors,
    }
}

/// One phase with `workers` connections: every worker writes (or reads) until the deadline.
async fn rust_phase(
    client: &Client,
    workers: usize,
    secs: f64,
    write: bool,
    keys: &[String],
) -> (Phase, Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let client = client.clone();
        let keys = keys.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(0x5eed ^ (w as u64) ^ u64::from(write));
            let values: Vec<String> = (0..64)
                .map(|_| {
                    let c = LETTERS[rng.random_range(0..LETTERS.len())] as char;
                    let mut v: String = std::iter::repeat_n(c, 512).collect();
                    v.push_str(&random_text(&mut rng, 512));
                    v
                })
                .collect();
            let mut db = client.open("rsbench").await.unwrap();
            let (mut lat, mut busy, mut errors, mut written) = (Vec::new(), 0u64, 0u64, Vec::new());
            let mut i = w;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let res: Result<(), dqlite_client::Error> = if write {
                    let k = random_text(&mut rng, 32);
                    let v = &values[rng.random_range(0..values.len())];
                    let r = db.exec(WRITE, params![k.as_str(), v.as_str()]).await;
                    if r.is_ok() {
                        written.push(k);
                    }
                    r.map(|_| ())
                } else {
                    i = (i + 7919) % keys.len();
                    match db.query_all(READ, params![keys[i].as_str()]).await {
                        Ok(rows) if rows.len() == 1 => Ok(()),
                        Ok(_) => Err(dqlite_client::Error::Usage("key not found".into())),
                        Err(e) => Err(e),
                    }
                };
                match res {
                    Ok(()) => lat.push(t0.elapsed()),
                    Err(e) if e.code() == Some(dqlite_client::ErrorCode::Busy) => busy += 1,
                    Err(_) => errors += 1,
                }
            }
            (lat, busy, errors, written)
        }));
    }
    let (mut lat, mut busy, mut errors, mut written) = (Vec::new(), 0, 0, Vec::new());
    for t in tasks {
        let (l, b, e, w) = t.await.unwrap();
        lat.extend(l);
        busy += b;
        errors += e;
        written.extend(w);
    }
    (summarize(lat, busy, errors, start.elapsed()), written)
}

fn find_python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("KVBENCH_PYTHON") {
        if p == "none" {
            return None;
        }
        return Some(PathBuf::from(p));
    }
    let mut candidates: Vec<PathBuf> = vec!["python3.13".into(), "python3.14".into()];
    let root = std::env::var("PYENV_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".pyenv")
        });
    if let Ok(rd) = std::fs::read_dir(root.join("versions")) {
        let mut v: Vec<PathBuf> = rd.flatten().map(|e| e.path().join("bin/python3")).collect();
        v.sort();
        candidates.extend(v);
    }
    candidates.into_iter().find(|c| {
        Command::new(c)
            .args(["-c", "import sys; sys.exit(sys.version_info < (3, 13))"])
            .stderr(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// The virtualenv kvbench.py runs in (`$C_BENCH_VENV`, default `/tmp/c-bench-venv`, shared with
/// the project's C benchmarks), created with the pinned PyPI client when missing.
fn python_venv() -> Result<PathBuf, String> {
    if std::env::var("KVBENCH_PYTHON").is_ok_and(|p| p == "none") {
        return Err("KVBENCH_PYTHON=none".into());
    }
    let venv =
        PathBuf::from(std::env::var("C_BENCH_VENV").unwrap_or_else(|_| "/tmp/c-bench-venv".into()));
    let py = venv.join("bin/python");
    let ok = |p: &Path| {
        Command::new(p)
            .args(["-c", "import dqliteclient"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if ok(&py) {
        return Ok(py);
    }
    let base = find_python().ok_or("no Python >= 3.13 found (set KVBENCH_PYTHON)")?;
    let st = Command::new(&base)
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .map_err(|e| e.to_string())?;
    if !st.success() {
        return Err(format!("{} -m venv failed", base.display()));
    }
    let st = Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "-q",
            "dqlite-client==0.8.0",
            "dqlite-wire==0.8.0",
        ])
        .status()
        .map_err(|e| e.to_string())?;
    if !st.success() || !ok(&py) {
        return Err("pip install dqlite-client==0.8.0 failed".into());
    }
    Ok(py)
}

fn python_phases(
    py: &Path,
    servers: &str,
    workers: usize,
    secs: f64,
) -> Result<(Phase, Phase), String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/kvbench.py");
    let json = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    let out = Command::new(py)
        .arg(&script)
        .args([
            "--servers",
            servers,
            "--phases",
            "write,read",
            "--database",
            &format!("pybench{workers}"),
        ])
        .args([
            "--duration",
            &secs.to_string(),
            "--workers",
            &workers.to_string(),
        ])
        .args(["--procs", &workers.min(2).to_string(), "--json"])
        .arg(json.path())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "kvbench.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = std::fs::read_to_string(json.path()).map_err(|e| e.to_string())?;
    let mut phases = [Phase::default(); 2];
    for (i, line) in text.lines().enumerate().take(2) {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let tag = if i == 0 { "write" } else { "read" };
        let locked: u64 = v["errors"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| k.contains("locked"))
                    .filter_map(|(_, n)| n.as_u64())
                    .sum()
            })
            .unwrap_or(0);
        phases[i] = Phase {
            ops_per_s: v[format!("{tag}s_per_s")].as_f64().unwrap_or(0.0),
            p50_ms: v[format!("{tag}_ms")]["p50"].as_f64().unwrap_or(f64::NAN),
            p99_ms: v[format!("{tag}_ms")]["p99"].as_f64().unwrap_or(f64::NAN),
            busy: locked,
            errors: v["n_err"].as_u64().unwrap_or(0).saturating_sub(locked),
        };
    }
    Ok((phases[0], phases[1]))
}

fn show(backend: &str, who: &str, workers: usize, kind: &str, p: Phase) {
    println!(
        "{backend:6} {who:6} workers={workers:<2} {kind:5} {:9.1} ops/s  p50 {:6.3} ms  p99 {:7.3} ms  busy {} other errors {}",
        p.ops_per_s, p.p50_ms, p.p99_ms, p.busy, p.errors
    );
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// One running cluster with its client.
struct Target {
    backend: cluster::Backend,
    tag: &'static str,
    cluster: cluster::Cluster,
    client: Client,
}

fn start(rt: &tokio::runtime::Runtime, backend: cluster::Backend) -> Target {
    let mut cluster = cluster::Cluster::start(cluster::ClusterOptions::new(backend, 3))
        .unwrap_or_else(|e| panic!("starting a {} cluster: {e}", backend.name()));
    let servers = cluster.servers();
    let client = rt.block_on(async {
        let c = Client::connect_with(servers.clone(), Config::default())
            .await
            .unwrap();
        // Roles settle after start (the demo app promotes joiners; dqlite-rs joiners make
        // themselves voters): wait for 3 voters like kvbench's cluster.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let voters = c.cluster().await.map(|n| {
                n.iter()
                    .filter(|x| x.role == dqlite_client::Role::Voter)
                    .count()
            });
            if voters.ok() == Some(3) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: no 3 voters after 60 s\n{}",
                backend.name(),
                cluster.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        c.open("rsbench")
            .await
            .unwrap()
            .exec(SCHEMA, ())
            .await
            .unwrap();
        c
    });
    Target {
        backend,
        tag: match backend {
            cluster::Backend::C => "C",
            cluster::Backend::Rs => "rs",
        },
        cluster,
        client,
    }
}

/// Write and read phases of both clients on one cluster.
#[derive(Debug, Clone, Copy, Default)]
struct Result4 {
    rust: (Phase, Phase),
    python: Option<(Phase, Phase)>,
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}x", a / b)
    } else {
        "n/a".into()
    }
}

fn main() {
    // `cargo test --benches` runs bench targets without `--bench`: nothing to check then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("kv bench: run with `cargo bench -p dqlite-client --bench kv`");
        return;
    }
    let secs: f64 = std::env::var("KVBENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let workers: Vec<usize> = std::env::var("KVBENCH_WORKERS")
        .unwrap_or_else(|_| "1,8".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let backends: Vec<cluster::Backend> = std::env::var("KVBENCH_BACKENDS")
        .unwrap_or_else(|_| "c,rs".into())
        .split(',')
        .map(|s| match s.trim() {
            "c" => cluster::Backend::C,
            "rs" => cluster::Backend::Rs,
            other => panic!("KVBENCH_BACKENDS: unknown backend {other:?} (c or rs)"),
        })
        .collect();
    // No cluster test at the same time; the bench's own clusters share the one turn.
    let turn = cluster::Turn::take().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut targets: Vec<Target> = backends.iter().map(|&b| start(&rt, b)).collect();
    let py = python_venv();
    if let Err(e) = &py {
        println!("python client skipped: {e}");
    }
    println!(
        "# kv bench: 3-node clusters ({}), {secs} s per phase, 32 B keys, 1 KiB values; \
         load average {}",
        targets
            .iter()
            .map(|t| t.backend.name())
            .collect::<Vec<_>>()
            .join(", "),
        loadavg()
    );
    let mut table: Vec<(usize, Vec<Result4>)> = Vec::new();
    for &w in &workers {
        let mut row = Vec::new();
        for t in &mut targets {
            let (rw, keys) = rt.block_on(rust_phase(&t.client, w, secs, true, &[]));
            let (rr, _) = rt.block_on(rust_phase(&t.client, w, secs, false, &keys));
            show(t.tag, "rust", w, "write", rw);
            show(t.tag, "rust", w, "read", rr);
            let servers = t.cluster.servers().join(",");
            let python = match py
                .as_ref()
                .ok()
                .map(|p| python_phases(p, &servers, w, secs))
            {
                Some(Ok((pw, pr))) => {
                    show(t.tag, "python", w, "write", pw);
                    show(t.tag, "python", w, "read", pr);
                    Some((pw, pr))
                }
                Some(Err(e)) => {
                    println!("{:6} python workers={w:<2} failed: {e}", t.tag);
                    None
                }
                None => None,
            };
            row.push(Result4 {
                rust: (rw, rr),
                python,
            });
            println!("# load average {}", loadavg());
        }
        table.push((w, row));
    }
    if let [c, rs] = backends.as_slice()
        && *c == cluster::Backend::C
        && *rs == cluster::Backend::Rs
    {
        println!("\n# dqlite-rs / C (ops/s), load average {}", loadavg());
        println!(
            "| client | conns | C writes/s | rs writes/s | rs/C | C reads/s | rs reads/s | rs/C |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for (w, row) in &table {
            let line = |name: &str, c: (Phase, Phase), r: (Phase, Phase)| {
                let busy = if c.0.busy > 0 {
                    format!(" (+{} BUSY)", c.0.busy)
                } else {
                    String::new()
                };
                println!(
                    "| {name} | {w} | {:.1}{busy} | {:.1} | {} | {:.1} | {:.1} | {} |",
                    c.0.ops_per_s,
                    r.0.ops_per_s,
                    ratio(r.0.ops_per_s, c.0.ops_per_s),
                    c.1.ops_per_s,
                    r.1.ops_per_s,
                    ratio(r.1.ops_per_s, c.1.ops_per_s),
                );
            };
            line("rust", row[0].rust, row[1].rust);
            if let (Some(c), Some(r)) = (row[0].python, row[1].python) {
                line("python", c, r);
            }
        }
    }
    for t in &mut targets {
        t.cluster.kill_all().unwrap();
    }
    drop(targets);
    drop(rt);
    drop(turn);
}
