//! Key/value throughput of this client against a real 3-node C dqlite cluster, side by side
//! with the PyPI `dqlite-client` 0.8.0 running `shared/tools/kvbench.py` on the same cluster.
//!
//! The workload mirrors kvbench: table `model(key TEXT, value TEXT, UNIQUE(key))`,
//! `INSERT OR REPLACE` of a new random 32-letter key with a 1 KiB value (half one repeated
//! letter, half random letters), then `SELECT value FROM model WHERE key = ?` of keys written
//! before; each worker holds its own connection to the leader and runs one request at a time.
//!
//! `cargo bench -p dqlite-client --bench kv` (environment: `KVBENCH_SECS` per phase, default 5;
//! `KVBENCH_WORKERS`, default `1,8`; `KVBENCH_PYTHON`, a Python >= 3.13 interpreter; without
//! one found the Python side is skipped and said so). Needs `dqlite-demo` (Debian `go-dqlite`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/support/cluster.rs"]
mod cluster;

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
                    Err(e) if e.code().is_some_and(|c| c & 0xff == 5) => busy += 1,
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

/// The venv c-bench.sh uses, created the same way when missing.
fn python_venv() -> Result<PathBuf, String> {
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
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/tools/kvbench.py");
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

fn show(who: &str, workers: usize, kind: &str, p: Phase) {
    println!(
        "{who:8} workers={workers:<2} {kind:6} {:9.1} ops/s  p50 {:6.3} ms  p99 {:6.3} ms  busy {} other errors {}",
        p.ops_per_s, p.p50_ms, p.p99_ms, p.busy, p.errors
    );
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
    let mut cluster = cluster::Cluster::start(cluster::Backend::C, 3);
    let servers = cluster.servers();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(async {
        let c = Client::connect_with(servers.clone(), Config::default())
            .await
            .unwrap();
        // The demo app settles roles after start: wait for 3 voters like kvbench's cluster.
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let voters = c.cluster().await.map(|n| {
                n.iter()
                    .filter(|x| x.role == dqlite_client::Role::Voter)
                    .count()
            });
            if voters.ok() == Some(3) {
                break;
            }
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
    let py = python_venv();
    if let Err(e) = &py {
        println!("python client skipped: {e}");
    }
    println!(
        "# kv bench: 3-node C dqlite 1.11 cluster, {secs} s per phase, 32 B keys, 1 KiB values"
    );
    for &w in &workers {
        let (rw, keys) = rt.block_on(rust_phase(&client, w, secs, true, &[]));
        let (rr, _) = rt.block_on(rust_phase(&client, w, secs, false, &keys));
        show("rust", w, "write", rw);
        show("rust", w, "read", rr);
        let pyres = py
            .as_ref()
            .ok()
            .map(|p| python_phases(p, &servers.join(","), w, secs));
        match pyres {
            Some(Ok((pw, pr))) => {
                show("python", w, "write", pw);
                show("python", w, "read", pr);
                println!(
                    "ratio    workers={w:<2} rust/python writes {:.2}x  reads {:.2}x",
                    rw.ops_per_s / pw.ops_per_s,
                    rr.ops_per_s / pr.ops_per_s
                );
            }
            Some(Err(e)) => println!("python   workers={w:<2} failed: {e}"),
            None => {}
        }
    }
    drop(client);
    drop(rt);
    for n in &mut cluster.nodes {
        n.kill();
    }
}
