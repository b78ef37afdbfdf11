//! `cargo xtask cluster start|status|stop|kill|restart`: a local cluster of real
//! `dqlite-node` processes on 127.0.0.1, started by `dqlite-cluster` (the launcher the tests
//! use too) and left running after this command returns.
//!
//! State lives in the cluster directory (default `target/cluster`): one data directory
//! (`n{id}`) and one log file (`n{id}.log`) per node, `binary.txt` with the binary's path,
//! and `nodes.txt` with one line per node: `id address pid join` (`join` is `-` for the
//! bootstrap node). A recorded pid is only signalled while `/proc/PID/cmdline` is still that
//! node's command line.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dqlite_cluster::{
    Backend, Cluster, ClusterOptions, Node, NodeSpec, Signal, http_address, parse_signal,
};

use crate::cmd::{cargo, run, workspace_root};

/// One recorded node.
#[derive(Debug, Clone)]
struct NodeRec {
    id: u64,
    address: String,
    pid: u32,
    join: Option<String>,
}

struct Opts {
    nodes: u64,
    base_port: u16,
    dir: PathBuf,
    node: Option<u64>,
    address: Option<String>,
    release: bool,
    signal: Signal,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        nodes: 3,
        base_port: 9001,
        dir: workspace_root().join("target").join("cluster"),
        node: None,
        address: None,
        release: false,
        signal: Signal::SIGKILL,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--nodes" => {
                o.nodes = value("--nodes")?
                    .parse()
                    .map_err(|e| format!("--nodes: {e}"))?
            }
            "--base-port" => {
                o.base_port = value("--base-port")?
                    .parse()
                    .map_err(|e| format!("--base-port: {e}"))?
            }
            "--dir" => o.dir = PathBuf::from(value("--dir")?),
            "--node" => {
                o.node = Some(
                    value("--node")?
                        .parse()
                        .map_err(|e| format!("--node: {e}"))?,
                )
            }
            "--address" => o.address = Some(value("--address")?),
            "--release" => o.release = true,
            "--signal" => o.signal = parse_signal(&value("--signal")?)?,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if o.nodes == 0 || o.nodes > 9 {
        return Err("--nodes must be between 1 and 9".into());
    }
    Ok(o)
}

/// Entry point of `cargo xtask cluster`.
pub fn run_cluster(args: &[String]) -> Result<(), String> {
    let Some((action, rest)) = args.split_first() else {
        return Err("usage: cluster start|status|stop|kill|restart [options]".into());
    };
    let o = parse(rest)?;
    match action.as_str() {
        "start" => start(&o),
        "status" => status(&o),
        "stop" => stop(&o),
        "kill" => kill(&o),
        "restart" => restart(&o),
        other => Err(format!("unknown cluster action `{other}`")),
    }
}

/// Builds the `dqlite-node` binary (debug or release) and returns its path; with
/// `DQLITE_NODE_BIN` set, returns that binary instead, unbuilt (to compare two builds side
/// by side: `cargo xtask bench` with one, then the other).
pub(crate) fn binary(release: bool) -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("DQLITE_NODE_BIN") {
        let bin = PathBuf::from(bin);
        return if bin.exists() {
            Ok(bin)
        } else {
            Err(format!("DQLITE_NODE_BIN: {} does not exist", bin.display()))
        };
    }
    let mut cmd = cargo();
    cmd.args([
        "build",
        "-p",
        "dqlite-node",
        "--features",
        "cli",
        "--bin",
        "dqlite-node",
    ]);
    if release {
        cmd.arg("--release");
    }
    run(cmd)?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let bin = target
        .join(if release { "release" } else { "debug" })
        .join("dqlite-node");
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!("{} was not built", bin.display()))
    }
}

fn records_path(dir: &Path) -> PathBuf {
    dir.join("nodes.txt")
}

fn binary_path(dir: &Path) -> PathBuf {
    dir.join("binary.txt")
}

/// `RUST_LOG` of the nodes: the caller's, else the binary's own default.
fn log_filter() -> String {
    std::env::var("RUST_LOG").unwrap_or_else(|_| "info,openraft=warn".into())
}

fn load(dir: &Path) -> Result<Vec<NodeRec>, String> {
    let path = records_path(dir);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e} (is a cluster started there?)", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let bad = || format!("{}:{}: malformed line {line:?}", path.display(), n + 1);
        if f.len() != 4 {
            return Err(bad());
        }
        out.push(NodeRec {
            id: f[0].parse().map_err(|_| bad())?,
            address: f[1].to_string(),
            pid: f[2].parse().map_err(|_| bad())?,
            join: (f[3] != "-").then(|| f[3].to_string()),
        });
    }
    Ok(out)
}

fn save(dir: &Path, recs: &[NodeRec]) -> Result<(), String> {
    let mut text = String::new();
    for r in recs {
        text.push_str(&format!(
            "{} {} {} {}\n",
            r.id,
            r.address,
            r.pid,
            r.join.as_deref().unwrap_or("-")
        ));
    }
    let tmp = dir.join("nodes.txt.tmp");
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, records_path(dir)).map_err(|e| format!("saving nodes.txt: {e}"))
}

/// Node i serves HTTP (`/metrics`, `/healthz`, `/readyz`) on its port + 100.
const HTTP_PORT_OFFSET: u16 = 100;

/// How the launcher runs the recorded node (the layout `Cluster` gave it).
fn spec(dir: &Path, rec: &NodeRec) -> NodeSpec {
    NodeSpec {
        backend: Backend::Rs,
        id: rec.id,
        address: rec.address.clone(),
        api: None,
        data_dir: dir.join(format!("n{}", rec.id)),
        log: dir.join(format!("n{}.log", rec.id)),
        join: rec.join.clone(),
        args: {
            let mut args = ClusterOptions::new(Backend::Rs, 1).args;
            if let Some(http) = http_address(&rec.address, HTTP_PORT_OFFSET) {
                args.extend(["--http-address".to_string(), http]);
            }
            args
        },
        env: vec![("RUST_LOG".into(), log_filter())],
    }
}

/// The binary recorded at start (or built now).
fn recorded_binary(o: &Opts) -> Result<PathBuf, String> {
    std::fs::read_to_string(binary_path(&o.dir))
        .map(|s| PathBuf::from(s.trim()))
        .or_else(|_| binary(o.release))
}

/// The recorded nodes, attached by pid.
fn attach(o: &Opts) -> Result<Vec<(NodeRec, Node)>, String> {
    let bin = recorded_binary(o)?;
    Ok(load(&o.dir)?
        .into_iter()
        .map(|r| {
            let node = Node::attach(&bin, spec(&o.dir, &r), r.pid);
            (r, node)
        })
        .collect())
}

fn start(o: &Opts) -> Result<(), String> {
    if let Ok(mut nodes) = attach(o)
        && nodes.iter_mut().any(|(_, n)| n.is_running())
    {
        return Err(format!(
            "a cluster is already running in {} (use `cluster stop` first)",
            o.dir.display()
        ));
    }
    let bin = binary(o.release)?;
    std::fs::create_dir_all(&o.dir).map_err(|e| format!("{}: {e}", o.dir.display()))?;
    std::fs::write(binary_path(&o.dir), bin.to_string_lossy().as_bytes())
        .map_err(|e| format!("recording the binary path: {e}"))?;
    let mut options = ClusterOptions::new(Backend::Rs, o.nodes as usize);
    options.base_port = Some(o.base_port);
    options.dir = Some(o.dir.clone());
    options.binary = Some(bin);
    options.log_filter = log_filter();
    options.detached = true;
    options.first_ready_timeout = Duration::from_secs(20);
    options.ready_timeout = Duration::from_secs(20);
    options.http_port_offset = Some(HTTP_PORT_OFFSET);
    let started = Cluster::start(options);
    let cluster = started.map_err(|e| format!("{e} (logs in {})", o.dir.display()))?;
    let recs: Vec<NodeRec> = cluster
        .nodes
        .iter()
        .map(|n| NodeRec {
            id: n.id(),
            address: n.address().to_string(),
            pid: n.pid().unwrap_or(0),
            join: n.spec().join.clone(),
        })
        .collect();
    save(&o.dir, &recs)?;
    println!("{}", cluster.addresses().join(","));
    Ok(())
}

fn status(o: &Opts) -> Result<(), String> {
    for (r, mut n) in attach(o)? {
        if n.is_running() {
            let leader = match dqlite_cluster::leader(&r.address, Duration::from_secs(2)) {
                Ok(Some((_, address))) if address == r.address => "self".to_string(),
                Ok(Some((_, address))) => address,
                Ok(None) | Err(_) => "unknown".to_string(),
            };
            let state = node_state(&r.address).unwrap_or_else(|| "no metrics".into());
            println!(
                "node {} {} pid {} running: {state}; leader {leader}",
                r.id, r.address, r.pid
            );
        } else {
            println!("node {} {} stopped", r.id, r.address);
        }
    }
    Ok(())
}

fn stop(o: &Opts) -> Result<(), String> {
    let mut nodes = attach(o)?;
    for (_, n) in nodes.iter_mut() {
        if n.is_running() {
            n.terminate()?;
        }
    }
    for (r, n) in nodes.iter_mut() {
        if !n.wait_gone(Duration::from_secs(15)) {
            return Err(format!("node {} (pid {}) did not stop", r.id, r.pid));
        }
        println!("node {} stopped", r.id);
    }
    Ok(())
}

fn select(o: &Opts, recs: &[(NodeRec, Node)]) -> Result<usize, String> {
    let i = match (&o.node, &o.address) {
        (Some(n), None) => recs.iter().position(|(r, _)| r.id == *n),
        (None, Some(a)) => recs.iter().position(|(r, _)| r.address == *a),
        _ => return Err("give exactly one of --node N or --address HOST:PORT".into()),
    };
    i.ok_or_else(|| "no such node in this cluster".to_string())
}

fn kill(o: &Opts) -> Result<(), String> {
    let mut nodes = attach(o)?;
    let i = select(o, &nodes)?;
    let (r, n) = &mut nodes[i];
    if !n.is_running() {
        return Err(format!("node {} is not running", r.id));
    }
    if o.signal == Signal::SIGKILL {
        n.kill()?;
        println!("node {} (pid {}) killed", r.id, r.pid);
    } else {
        n.signal(o.signal)?;
        println!("node {} (pid {}) sent {}", r.id, r.pid, o.signal);
    }
    Ok(())
}

fn restart(o: &Opts) -> Result<(), String> {
    let mut nodes = attach(o)?;
    let i = select(o, &nodes)?;
    {
        let (_, n) = &mut nodes[i];
        // A paused node cannot act on SIGTERM: resume it first.
        if n.is_running() {
            let _ = n.signal(Signal::SIGCONT);
        }
        n.stop(Duration::from_secs(15))?;
        n.restart()?;
        nodes[i].0.pid = nodes[i].1.pid().unwrap_or(0);
    }
    let recs: Vec<NodeRec> = nodes.iter().map(|(r, _)| r.clone()).collect();
    save(&o.dir, &recs)?;
    let (r, n) = &mut nodes[i];
    n.wait_ready(Duration::from_secs(20))
        .map_err(|e| format!("node {} did not come back: {e}", r.id))?;
    println!("node {} restarted (pid {}) on {}", r.id, r.pid, r.address);
    Ok(())
}

/// Role, term, applied index and leader id from the node's `/metrics`.
fn node_state(address: &str) -> Option<String> {
    let mut s = TcpStream::connect(http_address(address, HTTP_PORT_OFFSET)?).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ').map(str::to_string))
    };
    let role = ["leader", "voter", "standby", "spare", "none"]
        .into_iter()
        .find(|r| value(&format!("dqlite_role{{role=\"{r}\"}}")).as_deref() == Some("1"))?;
    Some(format!(
        "{role}, term {}, applied {}, leader id {}",
        value("dqlite_raft_term")?,
        value("dqlite_raft_applied_index")?,
        value("dqlite_raft_leader_id")?
    ))
}
