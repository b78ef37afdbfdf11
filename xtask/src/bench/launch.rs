//! The two clusters the bench compares: C dqlite 1.11 nodes (go-dqlite's `dqlite-demo`, from
//! Debian's `go-dqlite`) and dqlite-rs nodes (`dqlite-node`), three of each on free loopback
//! ports, data and logs under the run's directory.
//!
//! Only processes started here are signalled, through their `Child` handles (SIGKILL), and
//! every one is killed when its [`Cluster`] is dropped.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which implementation a cluster runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// C dqlite 1.11.1 inside go-dqlite's demo app.
    C,
    /// dqlite-rs: the `dqlite-node` binary.
    Rs,
}

impl Backend {
    /// Short name for tables.
    pub fn tag(self) -> &'static str {
        match self {
            Backend::C => "C",
            Backend::Rs => "rs",
        }
    }
}

/// One node process and what it needs to be started again.
pub struct Node {
    /// Client (and Raft) address.
    pub address: String,
    /// The demo app's HTTP address (C only): it opens once the node joined and took its role.
    api: Option<String>,
    /// The node's own data directory (what `du` measures).
    pub data_dir: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    /// The process id while the node runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL and reap; waits (at most 10 s) until the client port stops accepting.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while port_open(&self.address) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The last lines of the node's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

/// Three (or more) nodes of one backend.
pub struct Cluster {
    /// The implementation.
    pub backend: Backend,
    /// The nodes, the bootstrap node first.
    pub nodes: Vec<Node>,
    bin: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
    }
}

/// A loopback port free right now.
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

/// True if something accepts TCP connections at `address`.
pub fn port_open(address: &str) -> bool {
    address
        .parse::<SocketAddr>()
        .is_ok_and(|a| TcpStream::connect_timeout(&a, Duration::from_millis(200)).is_ok())
}

/// `dqlite-demo` from PATH, or how to install it.
pub fn demo_binary() -> Result<PathBuf, String> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join("dqlite-demo"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "dqlite-demo not found in PATH: install C dqlite 1.11 with \
             `apt-get install -y go-dqlite libdqlite0 libraft2`"
                .to_string()
        })
}

impl Cluster {
    /// Starts `n` nodes of `backend` (node 1 bootstraps, the others join it) with data and
    /// logs under `dir`; returns once every node is up (C: its demo API port is open, so it
    /// joined; rs: it listens). Roles may still be settling: see `wait_voters` in the caller.
    pub fn start(backend: Backend, bin: &Path, n: usize, dir: &Path) -> Result<Cluster, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut cluster = Cluster {
            backend,
            nodes: Vec::new(),
            bin: bin.to_path_buf(),
        };
        for i in 1..=n {
            let address = format!("127.0.0.1:{}", free_port()?);
            let join = cluster.nodes.first().map(|n: &Node| n.address.clone());
            let (args, api, data_dir) = match backend {
                Backend::C => {
                    let api = format!("127.0.0.1:{}", free_port()?);
                    let parent = dir.join("data");
                    let mut args = vec![
                        "--api".into(),
                        api.clone(),
                        "--db".into(),
                        address.clone(),
                        "--dir".into(),
                        parent.display().to_string(),
                    ];
                    if let Some(j) = join {
                        args.extend(["--join".into(), j]);
                    }
                    // The demo app keeps each node's files in DIR/<db address>.
                    (args, Some(api), parent.join(&address))
                }
                Backend::Rs => {
                    let data = dir.join(format!("n{i}"));
                    let mut args = vec![
                        "--id".into(),
                        i.to_string(),
                        "--address".into(),
                        address.clone(),
                        "--dir".into(),
                        data.display().to_string(),
                    ];
                    if let Some(j) = join {
                        args.extend(["--join".into(), j]);
                    }
                    (args, None, data)
                }
            };
            let mut node = Node {
                address,
                api,
                data_dir,
                args,
                log: dir.join(format!("n{i}.log")),
                child: None,
            };
            cluster.spawn(&mut node)?;
            cluster.nodes.push(node);
            // Joiners need the bootstrap node up.
            if i == 1 {
                cluster.wait_up(0, Duration::from_secs(60))?;
            }
        }
        for i in 1..n {
            cluster.wait_up(i, Duration::from_secs(90))?;
        }
        Ok(cluster)
    }

    fn spawn(&self, node: &mut Node) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .map_err(|e| format!("{}: {e}", node.log.display()))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&self.bin);
        cmd.args(&node.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        if self.backend == Backend::Rs {
            // `DQLITE_BENCH_LOG` replaces the nodes' log filter (to look into a run kept
            // with `DQLITE_BENCH_KEEP`).
            let filter = std::env::var("DQLITE_BENCH_LOG").unwrap_or_else(|_| "warn".into());
            cmd.env("RUST_LOG", filter);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.bin.display()))?;
        node.child = Some(child);
        Ok(())
    }

    /// Waits until node `i` is up (see [`Cluster::start`]).
    fn wait_up(&mut self, i: usize, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let node = &mut self.nodes[i];
        let probe = node.api.clone().unwrap_or_else(|| node.address.clone());
        loop {
            if port_open(&probe) {
                return Ok(());
            }
            let exited = match &mut node.child {
                Some(c) => !matches!(c.try_wait(), Ok(None)),
                None => true,
            };
            if exited || Instant::now() > deadline {
                return Err(format!(
                    "{} node {} ({}) {}:\n{}",
                    self.backend.tag(),
                    i + 1,
                    node.address,
                    if exited { "exited" } else { "not up in time" },
                    node.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts node `i` again on its data (after [`Node::kill`]); returns at once.
    pub fn restart(&mut self, i: usize) -> Result<(), String> {
        let mut node = std::mem::replace(
            &mut self.nodes[i],
            Node {
                address: String::new(),
                api: None,
                data_dir: PathBuf::new(),
                args: Vec::new(),
                log: PathBuf::new(),
                child: None,
            },
        );
        let res = self.spawn(&mut node);
        self.nodes[i] = node;
        res
    }

    /// Every node's client address.
    pub fn addresses(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.address.clone()).collect()
    }

    /// Index of the node with this address.
    pub fn index_of(&self, address: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.address == address)
    }

    /// Kills every node (also done on drop).
    pub fn kill_all(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
    }

    /// Every node's log tail.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| format!("--- node {} ({}):\n{}\n", i + 1, n.address, n.log_tail()))
            .collect()
    }
}
