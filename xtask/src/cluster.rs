//! `cargo xtask cluster start|status|stop|kill|restart`: a local cluster of real
//! `dqlite-node` processes on 127.0.0.1.
//!
//! State lives in the cluster directory (default `target/cluster`): one data directory and
//! one log file per node, and `nodes.txt` with one line per node: `id address pid join`
//! (`join` is `-` for the bootstrap node). A recorded pid is only signalled after checking
//! that `/proc/PID/cmdline` is still that node's `dqlite-node` command line.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    /// Signal `kill` sends (without the SIG prefix): KILL, or STOP/CONT to pause and resume.
    signal: String,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        nodes: 3,
        base_port: 9001,
        dir: workspace_root().join("target").join("cluster"),
        node: None,
        address: None,
        release: false,
        signal: "KILL".into(),
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
            "--signal" => {
                let sig = value("--signal")?.to_ascii_uppercase();
                let sig = sig.strip_prefix("SIG").unwrap_or(&sig).to_string();
                if !matches!(sig.as_str(), "KILL" | "STOP" | "CONT" | "TERM" | "INT") {
                    return Err(format!("--signal {sig}: use KILL, STOP, CONT, TERM or INT"));
                }
                o.signal = sig;
            }
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

fn binary(release: bool) -> Result<PathBuf, String> {
    let mut cmd = cargo();
    cmd.args(["build", "-p", "dqlite-node", "--bin", "dqlite-node"]);
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

/// True if `pid` is alive and is this node's `dqlite-node` process.
fn is_ours(rec: &NodeRec) -> bool {
    let Ok(raw) = std::fs::read(format!("/proc/{}/cmdline", rec.pid)) else {
        return false;
    };
    let args: Vec<String> = raw
        .split(|&b| b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    let has = |flag: &str, val: &str| args.windows(2).any(|w| w[0] == flag && w[1] == val);
    args.first().is_some_and(|a| a.ends_with("dqlite-node"))
        && has("--id", &rec.id.to_string())
        && has("--address", &rec.address)
        // A zombie (exited, not yet reaped) has an empty cmdline, so it is not ours.
        && !raw.is_empty()
}

fn signal(rec: &NodeRec, sig: &str) -> Result<(), String> {
    let status = Command::new("kill")
        .args([sig, &rec.pid.to_string()])
        .status()
        .map_err(|e| format!("running kill: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill {sig} {} failed: {status}", rec.pid))
    }
}

fn wait_gone(rec: &NodeRec, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !is_ours(rec) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    !is_ours(rec)
}

fn spawn(bin: &Path, dir: &Path, rec: &NodeRec) -> Result<u32, String> {
    use std::os::unix::process::CommandExt;
    let log_path = dir.join(format!("node{}.log", rec.id));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    let err = log
        .try_clone()
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut cmd = Command::new(bin);
    cmd.arg("--id")
        .arg(rec.id.to_string())
        .arg("--address")
        .arg(&rec.address)
        .arg("--dir")
        .arg(dir.join(format!("node{}", rec.id)));
    if let Some(j) = &rec.join {
        cmd.arg("--join").arg(j);
    }
    // Own process group: the node outlives this command and the terminal's signals.
    cmd.stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0);
    let child = cmd
        .spawn()
        .map_err(|e| format!("starting {}: {e}", bin.display()))?;
    Ok(child.id())
}

fn wait_listening(address: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(address).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn start(o: &Opts) -> Result<(), String> {
    if let Ok(recs) = load(&o.dir)
        && recs.iter().any(is_ours)
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
    let first = format!("127.0.0.1:{}", o.base_port);
    let mut recs = Vec::new();
    for i in 0..o.nodes {
        let port = o
            .base_port
            .checked_add(i as u16)
            .ok_or("port out of range")?;
        let mut rec = NodeRec {
            id: i + 1,
            address: format!("127.0.0.1:{port}"),
            pid: 0,
            join: (i > 0).then(|| first.clone()),
        };
        rec.pid = spawn(&bin, &o.dir, &rec)?;
        recs.push(rec.clone());
        save(&o.dir, &recs)?;
        if !wait_listening(&rec.address, Duration::from_secs(20)) {
            return Err(format!(
                "node {} did not listen on {} (see {})",
                rec.id,
                rec.address,
                o.dir.join(format!("node{}.log", rec.id)).display()
            ));
        }
    }
    let addrs: Vec<&str> = recs.iter().map(|r| r.address.as_str()).collect();
    println!("{}", addrs.join(","));
    Ok(())
}

/// Asks a node who leads with a raw LEADER request (handshake 1, type 0).
fn ask_leader(address: &str) -> Option<String> {
    let mut s = TcpStream::connect(address).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut msg = Vec::new();
    msg.extend_from_slice(&1u64.to_le_bytes()); // handshake
    msg.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]); // 1 word, type LEADER
    msg.extend_from_slice(&[0; 8]);
    s.write_all(&msg).ok()?;
    let mut h = [0u8; 8];
    s.read_exact(&mut h).ok()?;
    let words = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
    if h[4] != 1 || !(2..=1024).contains(&words) {
        return None;
    }
    let mut body = vec![0u8; words * 8];
    s.read_exact(&mut body).ok()?;
    let text = &body[8..];
    let end = text.iter().position(|&b| b == 0)?;
    Some(String::from_utf8_lossy(&text[..end]).into_owned())
}

fn status(o: &Opts) -> Result<(), String> {
    for r in load(&o.dir)? {
        if is_ours(&r) {
            let leader = ask_leader(&r.address).unwrap_or_default();
            let leader = if leader.is_empty() {
                "unknown".to_string()
            } else if leader == r.address {
                "self".to_string()
            } else {
                leader
            };
            println!(
                "node {} {} pid {} running, leader {leader}",
                r.id, r.address, r.pid
            );
        } else {
            println!("node {} {} stopped", r.id, r.address);
        }
    }
    Ok(())
}

fn stop(o: &Opts) -> Result<(), String> {
    let recs = load(&o.dir)?;
    for r in recs.iter().filter(|r| is_ours(r)) {
        signal(r, "-TERM")?;
    }
    for r in &recs {
        if !wait_gone(r, Duration::from_secs(15)) {
            return Err(format!("node {} (pid {}) did not stop", r.id, r.pid));
        }
        println!("node {} stopped", r.id);
    }
    Ok(())
}

fn select(o: &Opts, recs: &[NodeRec]) -> Result<usize, String> {
    let i = match (&o.node, &o.address) {
        (Some(n), None) => recs.iter().position(|r| r.id == *n),
        (None, Some(a)) => recs.iter().position(|r| r.address == *a),
        _ => return Err("give exactly one of --node N or --address HOST:PORT".into()),
    };
    i.ok_or_else(|| "no such node in this cluster".to_string())
}

fn kill(o: &Opts) -> Result<(), String> {
    let recs = load(&o.dir)?;
    let r = &recs[select(o, &recs)?];
    if !is_ours(r) {
        return Err(format!("node {} is not running", r.id));
    }
    signal(r, &format!("-{}", o.signal))?;
    match o.signal.as_str() {
        "STOP" => println!("node {} (pid {}) paused (SIGSTOP)", r.id, r.pid),
        "CONT" => println!("node {} (pid {}) resumed (SIGCONT)", r.id, r.pid),
        sig => {
            // A paused node only acts on TERM/INT once resumed.
            if sig != "KILL" {
                let _ = signal(r, "-CONT");
            }
            if !wait_gone(r, Duration::from_secs(15)) {
                return Err(format!("node {} survived SIG{sig}", r.id));
            }
            println!("node {} (pid {}) killed (SIG{sig})", r.id, r.pid);
        }
    }
    Ok(())
}

fn restart(o: &Opts) -> Result<(), String> {
    let mut recs = load(&o.dir)?;
    let i = select(o, &recs)?;
    if is_ours(&recs[i]) {
        signal(&recs[i], "-TERM")?;
        if !wait_gone(&recs[i], Duration::from_secs(15)) {
            return Err(format!("node {} did not stop", recs[i].id));
        }
    }
    let bin = std::fs::read_to_string(binary_path(&o.dir))
        .map(PathBuf::from)
        .or_else(|_| binary(o.release))?;
    recs[i].pid = spawn(&bin, &o.dir, &recs[i])?;
    save(&o.dir, &recs)?;
    if !wait_listening(&recs[i].address, Duration::from_secs(20)) {
        return Err(format!("node {} did not come back", recs[i].id));
    }
    println!(
        "node {} restarted (pid {}) on {}",
        recs[i].id, recs[i].pid, recs[i].address
    );
    Ok(())
}
