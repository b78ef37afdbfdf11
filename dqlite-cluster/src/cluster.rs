//! [`Cluster`]: a cluster of node processes, node 1 bootstrapping and the others joining it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::binary::{demo_binary, node_binary};
use crate::error::Error;
use crate::net::free_port;
use crate::node::{Backend, Node, NodeSpec};
use crate::turn::Turn;

/// How to start a [`Cluster`]. Built with [`ClusterOptions::new`] and adjusted field by field.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The implementation every node runs.
    pub backend: Backend,
    /// Number of nodes.
    pub nodes: usize,
    /// Loopback host every node listens on. Default `127.0.0.1`.
    pub host: String,
    /// Node `i` (1-based) listens on `base_port + i - 1` (and a C node's API on
    /// `base_port + nodes + i - 1`); `None` (the default): free ports picked at start.
    pub base_port: Option<u16>,
    /// Where data and logs go; `None` (the default): a temporary directory removed with the
    /// cluster (kept when `DQLITE_TEST_KEEP` is set).
    pub dir: Option<PathBuf>,
    /// The node binary; `None` (the default): [`node_binary`] or [`demo_binary`].
    pub binary: Option<PathBuf>,
    /// More arguments for every dqlite-rs node. Default: the words of `$DQLITE_NODE_ARGS`
    /// (e.g. `--leader-local-reads`).
    pub args: Vec<String>,
    /// `RUST_LOG` of every dqlite-rs node. Default `$DQLITE_NODE_LOG`, else `warn`.
    pub log_filter: String,
    /// Nodes in their own process groups that outlive this process ([`Node::start_detached`]).
    /// Default false: nodes are killed with the cluster.
    pub detached: bool,
    /// Take the machine-wide [`Turn`] first (one test cluster at a time). Default false.
    pub take_turn: bool,
    /// How long the first node may take to come up. Default 30 s.
    pub first_ready_timeout: Duration,
    /// How long each other node may take to come up (a C node: to join). Default 60 s.
    pub ready_timeout: Duration,
    /// dqlite-rs nodes serve HTTP (`--http-address`) on their port plus this. Default `None`.
    pub http_port_offset: Option<u16>,
}

impl ClusterOptions {
    /// `nodes` nodes of `backend`, with the defaults of each field.
    pub fn new(backend: Backend, nodes: usize) -> ClusterOptions {
        ClusterOptions {
            backend,
            nodes,
            host: "127.0.0.1".into(),
            base_port: None,
            dir: None,
            binary: None,
            args: std::env::var("DQLITE_NODE_ARGS")
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            log_filter: std::env::var("DQLITE_NODE_LOG").unwrap_or_else(|_| "warn".into()),
            detached: false,
            take_turn: false,
            first_ready_timeout: Duration::from_secs(30),
            ready_timeout: Duration::from_secs(60),
            http_port_offset: None,
        }
    }
}

/// Where a cluster keeps its data and logs.
#[derive(Debug)]
enum Dir {
    Temp(tempfile::TempDir),
    Given(PathBuf),
}

impl Dir {
    fn path(&self) -> &Path {
        match self {
            Dir::Temp(t) => t.path(),
            Dir::Given(p) => p,
        }
    }
}

/// A cluster of node processes: node 1 bootstraps, the others join it. Node `i` (1-based) keeps
/// its data in `DIR/n{i}` (C: `DIR/data`) and logs to `DIR/n{i}.log`.
#[derive(Debug)]
pub struct Cluster {
    /// The implementation the nodes run.
    pub backend: Backend,
    /// The nodes, node 1 first (the bootstrap node).
    pub nodes: Vec<Node>,
    options: ClusterOptions,
    bin: PathBuf,
    dir: Option<Dir>,
    /// Held while the cluster lives (declared last: released after the nodes are killed).
    _turn: Option<Turn>,
}

impl Cluster {
    /// Starts the nodes: node 1 first, then the others joining it. Returns once every node is
    /// up (C: its API port accepts, so it joined and took its role; dqlite-rs: it listens and
    /// joins in the background). Roles keep settling afterwards: wait for the voters with a
    /// client.
    pub fn start(options: ClusterOptions) -> Result<Cluster, Error> {
        let turn = if options.take_turn {
            Turn::take()?
        } else {
            None
        };
        let bin = match (&options.binary, options.backend) {
            (Some(b), _) => b.clone(),
            (None, Backend::C) => demo_binary()?,
            (None, Backend::Rs) => node_binary()?,
        };
        let dir = match &options.dir {
            Some(d) => {
                std::fs::create_dir_all(d)
                    .map_err(|e| Error::new(format!("{}: {e}", d.display())))?;
                Dir::Given(d.clone())
            }
            None => Dir::Temp(
                tempfile::Builder::new()
                    .prefix(match options.backend {
                        Backend::C => "dqlite-ccluster",
                        Backend::Rs => "dqlite-rscluster",
                    })
                    .tempdir()
                    .map_err(|e| Error::new(format!("temporary directory: {e}")))?,
            ),
        };
        let mut cluster = Cluster {
            backend: options.backend,
            nodes: Vec::new(),
            options,
            bin,
            dir: Some(dir),
            _turn: turn,
        };
        match cluster.start_nodes() {
            Ok(()) => Ok(cluster),
            Err(e) => {
                // Detached nodes would outlive the failed start with nobody to stop them.
                let _ = cluster.kill_all();
                Err(e)
            }
        }
    }

    fn start_nodes(&mut self) -> Result<(), Error> {
        for i in 0..self.options.nodes {
            self.spawn_next()?;
            if i == 0 {
                let t = self.options.first_ready_timeout;
                self.nodes[0].wait_ready(t)?;
            }
        }
        let t = self.options.ready_timeout;
        for n in self.nodes.iter_mut().skip(1) {
            n.wait_ready(t)?;
        }
        if self.backend == Backend::Rs {
            self.wait_formed(t)?;
        }
        Ok(())
    }

    /// Waits until the leader lists every node and the joiners have their roles: all voters
    /// up to three (the role manager's default, or each joiner's own ASSIGN without it), no
    /// spare among the first six. A node that only listens may still be a spare.
    fn wait_formed(&self, timeout: Duration) -> Result<(), Error> {
        let n = self.nodes.len();
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let seen = self
                .nodes
                .iter()
                .find_map(|node| crate::net::leader(node.address(), Duration::from_secs(2)).ok()?)
                .ok_or_else(|| Error::new("no leader known"))
                .and_then(|(_, leader)| crate::net::members(&leader, Duration::from_secs(2)));
            let last = match seen {
                Ok(m) => {
                    let voters = m
                        .iter()
                        .filter(|x| x.role == dqlite_wire::Role::Voter)
                        .count();
                    let spares = m
                        .iter()
                        .filter(|x| x.role == dqlite_wire::Role::Spare)
                        .count();
                    if m.len() == n && voters >= n.min(3) && (n > 6 || spares == 0) {
                        return Ok(());
                    }
                    format!("{} members, {voters} voters, {spares} spares", m.len())
                }
                Err(e) => e.to_string(),
            };
            if std::time::Instant::now() >= deadline {
                return Err(Error::new(format!(
                    "the cluster did not form within {timeout:?}: {last}"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The spec of node `index + 1` of this cluster, joining `join`.
    fn spec(&self, index: usize, join: Option<String>) -> Result<NodeSpec, Error> {
        let o = &self.options;
        let port = |offset: usize| -> Result<u16, Error> {
            match o.base_port {
                Some(base) => u16::try_from(offset)
                    .ok()
                    .and_then(|off| base.checked_add(off))
                    .ok_or_else(|| Error::new(format!("port {base} + {offset} out of range"))),
                None => free_port(&o.host),
            }
        };
        let id = index as u64 + 1;
        let dir = self.dir();
        let address = format!("{}:{}", o.host, port(index)?);
        let (api, data_dir, args, env) = match o.backend {
            Backend::C => (
                Some(format!("{}:{}", o.host, port(o.nodes + index)?)),
                dir.join("data"),
                Vec::new(),
                Vec::new(),
            ),
            Backend::Rs => {
                let mut args = o.args.clone();
                if let Some(off) = o.http_port_offset {
                    let http = http_address(&address, off).ok_or_else(|| {
                        Error::new(format!("{address}: no HTTP port {off} above"))
                    })?;
                    args.extend(["--http-address".to_string(), http]);
                }
                (
                    None,
                    dir.join(format!("n{id}")),
                    args,
                    vec![("RUST_LOG".to_string(), o.log_filter.clone())],
                )
            }
        };
        Ok(NodeSpec {
            backend: o.backend,
            id,
            address,
            api,
            data_dir,
            log: dir.join(format!("n{id}.log")),
            join,
            args,
            env,
        })
    }

    fn spawn_next(&mut self) -> Result<(), Error> {
        let index = self.nodes.len();
        let join = self.nodes.first().map(|n| n.address().to_string());
        let spec = self.spec(index, join)?;
        let node = if self.options.detached {
            Node::start_detached(&self.bin, spec)?
        } else {
            Node::start(&self.bin, spec)?
        };
        self.nodes.push(node);
        Ok(())
    }

    /// Starts one more node that joins through every current member (C: as a spare the demo
    /// app may promote; dqlite-rs: `--join` makes itself a voter). Returns its index.
    pub fn add_node(&mut self) -> Result<usize, Error> {
        let index = self.nodes.len();
        let join = self
            .nodes
            .iter()
            .map(|n| n.address().to_string())
            .collect::<Vec<_>>()
            .join(",");
        let spec = self.spec(index, Some(join))?;
        let node = if self.options.detached {
            Node::start_detached(&self.bin, spec)?
        } else {
            Node::start(&self.bin, spec)?
        };
        self.nodes.push(node);
        self.options.nodes = self.options.nodes.max(self.nodes.len());
        let t = self.options.ready_timeout;
        self.nodes[index].wait_ready(t)?;
        Ok(index)
    }

    /// The binary the nodes run.
    pub fn binary(&self) -> &Path {
        &self.bin
    }

    /// Client addresses of the nodes that run.
    pub fn servers(&mut self) -> Vec<String> {
        self.nodes
            .iter_mut()
            .filter_map(|n| n.is_running().then(|| n.address().to_string()))
            .collect()
    }

    /// The running nodes' addresses, comma-separated (the shell's `-s` argument).
    pub fn servers_arg(&mut self) -> String {
        self.servers().join(",")
    }

    /// Every node's client address, running or not.
    pub fn addresses(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.address().to_string()).collect()
    }

    /// The data and log directory.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new("."), Dir::path)
    }

    /// Index of the node with this client address.
    pub fn index_of(&self, address: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.address() == address)
    }

    /// True while every node runs.
    pub fn all_running(&mut self) -> bool {
        self.nodes.iter_mut().all(Node::is_running)
    }

    /// SIGKILL every node that runs.
    pub fn kill_all(&mut self) -> Result<(), Error> {
        for n in &mut self.nodes {
            n.kill()?;
        }
        Ok(())
    }

    /// The log tails of every node, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                format!(
                    "--- {} node {} ({}):\n{}\n",
                    self.backend.name(),
                    n.id(),
                    n.address(),
                    n.log_tail(20)
                )
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.options.detached {
            return;
        }
        let _ = self.kill_all();
        // DQLITE_TEST_KEEP=1 keeps the logs and data of every temporary cluster.
        if std::env::var_os("DQLITE_TEST_KEEP").is_some()
            && let Some(Dir::Temp(t)) = self.dir.take()
        {
            eprintln!("kept the cluster directory {}", t.keep().display());
        }
    }
}

/// `address` with its port raised by `offset` (where a node started with
/// [`ClusterOptions::http_port_offset`] serves HTTP).
pub fn http_address(address: &str, offset: u16) -> Option<String> {
    let (host, port) = address.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    Some(format!("{host}:{}", port.checked_add(offset)?))
}
