//! A throw-away 3-node (or larger) dqlite cluster for integration tests and benches, with two
//! backends: real C dqlite 1.11 nodes (Debian's `dqlite-demo`) and dqlite-rs nodes (the
//! `dqlite-node` binary of this workspace).
//!
//! Every node listens on a free loopback port picked at start, keeps its data in a temporary
//! directory, and is SIGKILLed by pid when the cluster is dropped. Only processes started here
//! are ever signalled.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::BufRead;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which dqlite implementation the nodes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// C dqlite 1.11 inside go-dqlite's demo app (`dqlite-demo`).
    C,
    /// dqlite-rs: the `dqlite-node` binary.
    Rs,
}

impl Backend {
    /// Short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Backend::C => "C dqlite 1.11",
            Backend::Rs => "dqlite-rs",
        }
    }
}

/// One node process.
pub struct Node {
    /// Client (and raft) address, `127.0.0.1:P`.
    pub db: String,
    /// The node id given at start (dqlite-rs only; the demo app hashes its own ids).
    pub id: Option<u64>,
    /// HTTP API address of the demo app (C only; opens once the node has joined).
    api: Option<String>,
    child: Option<Child>,
    log: PathBuf,
}

impl Node {
    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL the node and reap it; waits until its client port stops accepting.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while port_open(&self.db) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The tail of the node's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let s = strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default());
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The address that says the node is ready: the demo app's API port (it opens only after
    /// the node joined), or a dqlite-rs node's own port.
    fn ready_addr(&self) -> &str {
        self.api.as_deref().unwrap_or(&self.db)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
        // DQLITE_TEST_KEEP=1 keeps the logs and data of every cluster for a post-mortem.
        if std::env::var_os("DQLITE_TEST_KEEP").is_some() {
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
            eprintln!("kept the cluster directory {}", dir.keep().display());
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A cluster of node processes in a temporary directory.
pub struct Cluster {
    /// The implementation the nodes run.
    pub backend: Backend,
    /// The nodes, node 1 first (the bootstrap node).
    pub nodes: Vec<Node>,
    bin: PathBuf,
    dir: tempfile::TempDir,
    /// Held while the cluster lives (declared last: released after the nodes are killed).
    _turn: Option<Turn>,
}

/// One cluster at a time on this machine: the holder of `$TMPDIR/dqlite-client-cluster.lock`
/// (created exclusively, holding its pid; removed on drop, or taken over when that pid is
/// gone). The test runners start the `c_*` and `rs_*` tests in parallel processes; three or
/// four clusters at once on two cores make every node miss its timeouts, which measures the
/// machine, not the nodes. `DQLITE_TEST_PARALLEL=1` turns this off.
pub struct Turn {
    path: PathBuf,
}

impl Turn {
    /// Waits (at most 15 minutes) for the turn.
    pub fn take() -> Option<Turn> {
        if std::env::var_os("DQLITE_TEST_PARALLEL").is_some() {
            return None;
        }
        let path = std::env::temp_dir().join("dqlite-client-cluster.lock");
        let me = std::process::id();
        let deadline = Instant::now() + Duration::from_secs(900);
        let mut said = false;
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    use std::io::Write;
                    write!(f, "{me}").unwrap();
                    return Some(Turn { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder: Option<u32> = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|s| s.trim().parse().ok());
                    match holder {
                        // A holder that is gone (killed test run): take the lock over. A file
                        // without a pid yet is being written: wait.
                        Some(pid) if !Path::new(&format!("/proc/{pid}")).exists() => {
                            let _ = std::fs::remove_file(&path);
                            continue;
                        }
                        _ => {}
                    }
                    if !said {
                        eprintln!("waiting for another cluster test to finish ({holder:?})");
                        said = true;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "{} held by pid {holder:?} for 15 minutes",
                        path.display()
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("{}: {e}", path.display()),
            }
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The path of `dqlite-demo`, or a panic that tells how to install it: the C-cluster tests
/// must fail, not pass silently, where the C dqlite is missing.
pub fn demo_binary() -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("dqlite-demo");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "dqlite-demo not found in PATH: these tests need the real C dqlite. \
         Install it with `apt-get update && apt-get install -y go-dqlite libdqlite0 libraft2`."
    );
}

/// The `dqlite-node` binary to test: `$DQLITE_NODE_BIN` if set; else the one beside this
/// executable's profile directory (`target/<profile>/dqlite-node`, which
/// `cargo nextest run --workspace` and `cargo build --workspace` build); else built now with
/// `cargo build -p dqlite-node --features cli --bin dqlite-node` (with `--release` when this executable is a
/// release build) into the same target directory. Panics with the reason when none can be had:
/// the dqlite-rs tests must fail, never pass silently.
///
/// A binary found beside the executable is used as it is, so after changing dqlite-node run a
/// workspace build (or set `DQLITE_NODE_BIN`) before `cargo test -p dqlite-client`.
pub fn node_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("DQLITE_NODE_BIN") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "DQLITE_NODE_BIN={} is not a file", p.display());
        return p;
    }
    let exe = std::env::current_exe().expect("path of the test executable");
    // target/<profile>/deps/<test>-<hash>, or target/<profile>/<bench> for some runners.
    let mut profile_dir = exe.parent().expect("executable directory").to_path_buf();
    if profile_dir.ends_with("deps") {
        profile_dir.pop();
    }
    let beside = profile_dir.join("dqlite-node");
    if beside.is_file() {
        return beside;
    }
    let release = profile_dir.file_name().is_some_and(|n| n != "debug");
    build_node_binary(&profile_dir, release)
}

/// `cargo build -p dqlite-node --features cli --bin dqlite-node` into the target directory that holds
/// `profile_dir`, bounded by 30 minutes; returns the executable cargo reports.
fn build_node_binary(profile_dir: &Path, release: bool) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dqlite-node/Cargo.toml");
    let mut cmd = Command::new(&cargo);
    cmd.args([
        "build",
        "-p",
        "dqlite-node",
        "--features",
        "cli",
        "--bin",
        "dqlite-node",
    ])
    .args(["--message-format", "json-render-diagnostics"])
    .arg("--manifest-path")
    .arg(&manifest);
    if let Some(target_dir) = profile_dir.parent() {
        cmd.arg("--target-dir").arg(target_dir);
    }
    if release {
        cmd.arg("--release");
    }
    eprintln!(
        "dqlite-node binary not found beside {}: building it ({cmd:?})",
        profile_dir.display()
    );
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {cargo:?} to build dqlite-node ({e}); build it with \
                 `cargo build -p dqlite-node --features cli --bin dqlite-node` or set DQLITE_NODE_BIN"
            )
        });
    let stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut exe = None;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if v["reason"] == "compiler-artifact"
                && v["target"]["name"] == "dqlite-node"
                && let Some(p) = v["executable"].as_str()
            {
                exe = Some(PathBuf::from(p));
            }
        }
        exe
    });
    let deadline = Instant::now() + Duration::from_secs(1800);
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting for cargo build") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("building dqlite-node took more than 30 minutes: gave up");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let exe = reader.join().expect("cargo output reader");
    assert!(
        status.success(),
        "`cargo build -p dqlite-node --features cli --bin dqlite-node` failed ({status}); the dqlite-rs \
         tests need that binary (or DQLITE_NODE_BIN)"
    );
    exe.unwrap_or_else(|| panic!("cargo built dqlite-node but reported no executable path"))
}

/// `s` without ANSI colour sequences (`ESC [ ... m`), which `tracing` writes even to files.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A loopback port that is free right now (bound and released; the small race with other
/// programs is accepted in tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// True if something accepts TCP connections at `addr`.
pub fn port_open(addr: &str) -> bool {
    let a: SocketAddr = addr.parse().unwrap();
    TcpStream::connect_timeout(&a, Duration::from_millis(200)).is_ok()
}

impl Cluster {
    /// Start `n` nodes: node 1 bootstraps; the others join it once it is up. Returns when every
    /// node is ready (C: the demo app's API port accepts, so the node joined and took its role;
    /// dqlite-rs: the node listens). Roles keep settling afterwards: wait for the voters with
    /// the client (`support::wait_voters`).
    pub fn start(backend: Backend, n: usize) -> Cluster {
        Cluster::start_with(backend, n, Turn::take())
    }

    /// [`Cluster::start`] without waiting for the turn (for a bench that runs several
    /// clusters itself).
    pub fn start_with(backend: Backend, n: usize, turn: Option<Turn>) -> Cluster {
        let bin = match backend {
            Backend::C => demo_binary(),
            Backend::Rs => node_binary(),
        };
        let dir = tempfile::Builder::new()
            .prefix(match backend {
                Backend::C => "dqlite-client-ccluster",
                Backend::Rs => "dqlite-client-rscluster",
            })
            .tempdir()
            .unwrap();
        let mut cluster = Cluster {
            backend,
            nodes: Vec::new(),
            bin,
            dir,
            _turn: turn,
        };
        for i in 0..n {
            let join = if i == 0 {
                None
            } else {
                Some(cluster.nodes[0].db.clone())
            };
            let node = cluster.spawn(i + 1, join.as_deref());
            cluster.nodes.push(node);
            if i == 0 {
                cluster.wait_ready(0, Duration::from_secs(30));
            }
        }
        for i in 1..n {
            cluster.wait_ready(i, Duration::from_secs(60));
        }
        cluster
    }

    /// Start one more node that joins the cluster (C: as a spare the demo app may promote;
    /// dqlite-rs: `dqlite-node --join` makes itself a voter). Returns its index.
    pub fn add_node(&mut self) -> usize {
        let i = self.nodes.len();
        let join = self
            .nodes
            .iter()
            .map(|n| n.db.clone())
            .collect::<Vec<_>>()
            .join(",");
        let node = self.spawn(i + 1, Some(&join));
        self.nodes.push(node);
        self.wait_ready(i, Duration::from_secs(60));
        i
    }

    fn spawn(&self, index: usize, join: Option<&str>) -> Node {
        let db = format!("127.0.0.1:{}", free_port());
        let log = self.dir.path().join(format!("n{index}.log"));
        let logf = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(&self.bin);
        let (api, id) = match self.backend {
            Backend::C => {
                let api = format!("127.0.0.1:{}", free_port());
                cmd.arg("--api")
                    .arg(&api)
                    .arg("--db")
                    .arg(&db)
                    .arg("--dir")
                    .arg(self.dir.path().join("data"));
                (Some(api), None)
            }
            Backend::Rs => {
                let id = index as u64;
                cmd.arg("--id")
                    .arg(id.to_string())
                    .arg("--address")
                    .arg(&db)
                    .arg("--dir")
                    .arg(self.dir.path().join(format!("n{index}")))
                    // Extra flags, e.g. `--leader-local-reads` to compare read paths.
                    .args(
                        std::env::var("DQLITE_NODE_ARGS")
                            .unwrap_or_default()
                            .split_whitespace(),
                    )
                    .env(
                        "RUST_LOG",
                        std::env::var("DQLITE_NODE_LOG").unwrap_or_else(|_| "warn".into()),
                    );
                (None, Some(id))
            }
        };
        cmd.stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf);
        if let Some(j) = join {
            cmd.arg("--join").arg(j);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        Node {
            db,
            id,
            api,
            child: Some(child),
            log,
        }
    }

    fn wait_ready(&mut self, i: usize, tmo: Duration) {
        let name = self.bin.display().to_string();
        let deadline = Instant::now() + tmo;
        loop {
            if port_open(self.nodes[i].ready_addr()) {
                return;
            }
            if !self.nodes[i].is_running() {
                panic!(
                    "{name} node {} exited during start-up:\n{}",
                    i + 1,
                    self.nodes[i].log_tail()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "{name} node {} not ready after {tmo:?}:\n{}",
                    i + 1,
                    self.nodes[i].log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Client addresses of the nodes that run.
    pub fn servers(&mut self) -> Vec<String> {
        self.nodes
            .iter_mut()
            .filter_map(|n| {
                if n.is_running() {
                    Some(n.db.clone())
                } else {
                    None
                }
            })
            .collect()
    }

    /// All client addresses, comma-separated (the shell's `-s` argument).
    pub fn servers_arg(&mut self) -> String {
        self.servers().join(",")
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Index of the node with this client address.
    pub fn index_of(&self, addr: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.db == addr)
    }

    /// SIGKILL every node.
    pub fn kill_all(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
    }

    /// The log tails of every node, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| format!("--- node {} ({}):\n{}\n", i + 1, n.db, n.log_tail()))
            .collect()
    }
}
