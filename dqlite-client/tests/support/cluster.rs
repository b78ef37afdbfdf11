//! A throw-away cluster of real C dqlite nodes (Debian's `dqlite-demo`), for integration tests.
//!
//! Every node listens on free loopback ports picked at start, keeps its data in a temporary
//! directory, and is killed by pid when the cluster is dropped. Only processes started here are
//! ever signalled.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One `dqlite-demo` process.
pub struct DemoNode {
    /// Client (and raft) address, `127.0.0.1:P`.
    pub db: String,
    /// HTTP API address of the demo app (opens once the node has joined).
    pub api: String,
    child: Option<Child>,
    log: PathBuf,
}

impl DemoNode {
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
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for DemoNode {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A cluster of `dqlite-demo` nodes in a temporary directory.
pub struct CCluster {
    /// The nodes, node 1 first (the bootstrap node).
    pub nodes: Vec<DemoNode>,
    dir: tempfile::TempDir,
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

impl CCluster {
    /// Start `n` nodes: node 1 bootstraps; the others join it once its API port is up. Returns
    /// when every API port accepts connections (each node joined and took its role). Roles keep
    /// settling afterwards; see [`CCluster::wait_voters`].
    pub fn start(n: usize) -> CCluster {
        let bin = demo_binary();
        let dir = tempfile::Builder::new()
            .prefix("dqlite-client-ccluster")
            .tempdir()
            .unwrap();
        let mut cluster = CCluster {
            nodes: Vec::new(),
            dir,
        };
        for i in 0..n {
            let join = if i == 0 {
                None
            } else {
                Some(cluster.nodes[0].db.clone())
            };
            let node = cluster.spawn(&bin, i + 1, join.as_deref());
            cluster.nodes.push(node);
            if i == 0 {
                cluster.wait_api(0, Duration::from_secs(30));
            }
        }
        for i in 1..n {
            cluster.wait_api(i, Duration::from_secs(60));
        }
        cluster
    }

    /// Start one more node that joins the cluster (as a spare; the demo app may promote it).
    pub fn add_node(&mut self) -> usize {
        let bin = demo_binary();
        let i = self.nodes.len();
        let join = self
            .nodes
            .iter()
            .map(|n| n.db.clone())
            .collect::<Vec<_>>()
            .join(",");
        let node = self.spawn(&bin, i + 1, Some(&join));
        self.nodes.push(node);
        self.wait_api(i, Duration::from_secs(60));
        i
    }

    fn spawn(&self, bin: &Path, index: usize, join: Option<&str>) -> DemoNode {
        let db = format!("127.0.0.1:{}", free_port());
        let api = format!("127.0.0.1:{}", free_port());
        let log = self.dir.path().join(format!("n{index}.log"));
        let logf = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("--api")
            .arg(&api)
            .arg("--db")
            .arg(&db)
            .arg("--dir")
            .arg(self.dir.path().join("data"))
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf);
        if let Some(j) = join {
            cmd.arg("--join").arg(j);
        }
        let child = cmd.spawn().expect("spawn dqlite-demo");
        DemoNode {
            db,
            api,
            child: Some(child),
            log,
        }
    }

    fn wait_api(&mut self, i: usize, tmo: Duration) {
        let deadline = Instant::now() + tmo;
        loop {
            if port_open(&self.nodes[i].api) {
                return;
            }
            if !self.nodes[i].is_running() {
                panic!(
                    "dqlite-demo node {} exited during start-up:\n{}",
                    i + 1,
                    self.nodes[i].log_tail()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "dqlite-demo node {} not ready after {tmo:?}:\n{}",
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
}
