//! The run's network: one namespace per node slot and a control namespace holding a bridge,
//! joined by veth pairs; partitions as iptables rules inside the node namespaces; and the
//! bookkeeping that lets a later run clean up after one that crashed.
//!
//! Layout (all inside namespaces this run creates, nothing in the host's):
//! - `dqc<run>-ctl`: bridge `br0` at `10.213.0.1/24`; the harness itself (workload clients,
//!   proxy) runs here.
//! - `dqc<run>-n<slot>`: `eth0` at `10.213.0.<10+slot>/24`, the node listening on port 9000.
//!   Its `nat OUTPUT` chain redirects its connections to every other node's port to the
//!   link proxy (see [`super::proxy`]), which listens inside the same namespace and connects
//!   on with a socket mark the redirect skips. Its `filter INPUT` chain jumps to `DQCHAOS`,
//!   where a partition drops packets by source address.
//!
//! Every run writes `/run/dqlite-chaos/<run>.state` (its pid and start time, its namespaces
//! and mounts); a run starts by removing whatever a dead run left there.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use nix::sched::{CloneFlags, setns};

/// The first three octets of the run's subnet.
const SUBNET: &str = "10.213.0";
/// The port every node listens on.
pub const NODE_PORT: u16 = 9000;
/// Proxy listener for connections to slot `j`: this port plus `j`.
pub const PROXY_PORT_BASE: u16 = 20000;
/// The socket mark of the proxy's own connections (the redirect skips them).
pub const PROXY_MARK: u32 = 0x2a;
/// Where runs record what they created.
const STATE_DIR: &str = "/run/dqlite-chaos";
/// Prefix of every namespace a run creates.
const PREFIX: &str = "dqc";

/// The address of node slot `slot`.
pub fn node_ip(slot: usize) -> String {
    format!("{SUBNET}.{}", 10 + slot)
}

/// `ip:port` of node slot `slot`.
pub fn node_address(slot: usize) -> String {
    format!("{}:{NODE_PORT}", node_ip(slot))
}

/// The slot of a node address, if it is one of ours.
pub fn slot_of(address: &str) -> Option<usize> {
    let ip = address.split(':').next()?;
    let last: usize = ip.strip_prefix(&format!("{SUBNET}."))?.parse().ok()?;
    last.checked_sub(10)
}

/// Runs a command, failing with its stderr.
pub fn sh(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs a command with `input` on its stdin.
fn sh_input(program: &str, args: &[&str], input: &str) -> Result<(), String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| format!("{program}: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The kernel's start time of live process `pid` (to tell a live owner from a reused pid);
/// `None` for a process that is gone or a zombie (killed, not yet reaped).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields 3 (state) and 22 (start time), counted after the parenthesised command name
    // (which may hold spaces).
    let mut rest = stat[stat.rfind(')')? + 1..].split_whitespace();
    if matches!(rest.next(), Some("Z" | "X")) {
        return None;
    }
    rest.nth(18)?.parse().ok()
}

/// Checks that this machine can run a chaos run: root, `ip` and `iptables` present, and a
/// network namespace can be made. The error says what is missing.
pub fn probe() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("chaos runs need root (network namespaces, iptables, mounts)".into());
    }
    sh("ip", &["-V"]).map_err(|e| format!("iproute2 missing ({e}); apt-get install iproute2"))?;
    sh("iptables", &["--version"])
        .map_err(|e| format!("iptables missing ({e}); apt-get install iptables"))?;
    let name = format!("{PREFIX}probe{:x}", std::process::id());
    sh("ip", &["netns", "add", &name])
        .map_err(|e| format!("cannot create a network namespace: {e}"))?;
    let r = sh("ip", &["-n", &name, "link", "set", "lo", "up"]);
    let _ = sh("ip", &["netns", "del", &name]);
    r.map(|_| ())
        .map_err(|e| format!("cannot use a network namespace: {e}"))
}

/// Runs `f` on a new thread that has joined namespace `ns` (sockets it creates live there).
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let path = format!("/run/netns/{ns}");
    let handle = std::thread::spawn(move || -> Result<T, String> {
        let file = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns {path}: {e}"))?;
        Ok(f())
    });
    handle
        .join()
        .map_err(|_| "namespace thread panicked".to_string())?
}

/// The run's namespaces and partitions.
#[derive(Debug)]
pub struct Net {
    /// The control namespace.
    pub ctl: String,
    /// The namespace of each node slot.
    pub nodes: Vec<String>,
    state_file: PathBuf,
    /// Current cuts: packets from the first slot are dropped at the second.
    cuts: Mutex<BTreeSet<(usize, usize)>>,
}

impl Net {
    /// Creates the namespaces, bridge, links and iptables chains for `slots` nodes.
    pub fn create(slots: usize) -> Result<Net, String> {
        std::fs::create_dir_all(STATE_DIR).map_err(|e| format!("{STATE_DIR}: {e}"))?;
        let pid = std::process::id();
        let run_id = format!("{pid:x}");
        let state_file = PathBuf::from(STATE_DIR).join(format!("{run_id}.state"));
        let net = Net {
            ctl: format!("{PREFIX}{run_id}-ctl"),
            nodes: (0..slots)
                .map(|s| format!("{PREFIX}{run_id}-n{s}"))
                .collect(),
            state_file,
            cuts: Mutex::new(BTreeSet::new()),
        };
        let owner = format!("owner {pid} {}\n", start_time(pid).unwrap_or(0));
        std::fs::write(&net.state_file, owner)
            .map_err(|e| format!("{}: {e}", net.state_file.display()))?;
        if let Err(e) = net.build(slots) {
            net.destroy();
            return Err(e);
        }
        Ok(net)
    }

    fn build(&self, slots: usize) -> Result<(), String> {
        let ctl = self.ctl.as_str();
        self.record(&format!("ns {ctl}"))?;
        sh("ip", &["netns", "add", ctl])?;
        sh("ip", &["-n", ctl, "link", "set", "lo", "up"])?;
        sh("ip", &["-n", ctl, "link", "add", "br0", "type", "bridge"])?;
        sh(
            "ip",
            &[
                "-n",
                ctl,
                "addr",
                "add",
                &format!("{SUBNET}.1/24"),
                "dev",
                "br0",
            ],
        )?;
        sh("ip", &["-n", ctl, "link", "set", "br0", "up"])?;
        for (slot, ns) in self.nodes.iter().enumerate() {
            self.record(&format!("ns {ns}"))?;
            sh("ip", &["netns", "add", ns])?;
            sh("ip", &["-n", ns, "link", "set", "lo", "up"])?;
            let veth = format!("v{slot}");
            sh(
                "ip",
                &[
                    "-n", ctl, "link", "add", &veth, "type", "veth", "peer", "name", "eth0",
                    "netns", ns,
                ],
            )?;
            sh("ip", &["-n", ctl, "link", "set", &veth, "master", "br0"])?;
            sh("ip", &["-n", ctl, "link", "set", &veth, "up"])?;
            sh(
                "ip",
                &[
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("{}/24", node_ip(slot)),
                    "dev",
                    "eth0",
                ],
            )?;
            sh("ip", &["-n", ns, "link", "set", "eth0", "up"])?;
            let mut rules =
                String::from("*filter\n:DQCHAOS - [0:0]\n-A INPUT -j DQCHAOS\nCOMMIT\n*nat\n");
            for other in (0..slots).filter(|o| *o != slot) {
                rules.push_str(&format!(
                    "-A OUTPUT -p tcp -d {} --dport {NODE_PORT} -m mark ! --mark {PROXY_MARK:#x} -j REDIRECT --to-ports {}\n",
                    node_ip(other),
                    PROXY_PORT_BASE + other as u16
                ));
            }
            rules.push_str("COMMIT\n");
            sh_input(
                "ip",
                &["netns", "exec", ns, "iptables-restore", "--noflush"],
                &rules,
            )?;
        }
        Ok(())
    }

    /// Adds a line to the run's state file (what a later run must clean up if this one dies).
    pub fn record(&self, line: &str) -> Result<(), String> {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.state_file)
            .map_err(|e| format!("{}: {e}", self.state_file.display()))?;
        writeln!(f, "{line}").map_err(|e| format!("{}: {e}", self.state_file.display()))
    }

    /// Moves the calling thread (and the threads it starts afterwards) into the control
    /// namespace, where the node addresses are reachable. The returned guard moves it back
    /// to the namespace it was in when dropped.
    pub fn enter_ctl(&self) -> Result<HomeNamespace, String> {
        let home = File::open("/proc/thread-self/ns/net")
            .map_err(|e| format!("/proc/thread-self/ns/net: {e}"))?;
        let path = format!("/run/netns/{}", self.ctl);
        let file = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns {path}: {e}"))?;
        Ok(HomeNamespace(home))
    }

    /// Drops every packet from slot `from` arriving at slot `to` (one direction).
    pub fn cut(&self, from: usize, to: usize) -> Result<(), String> {
        let mut cuts = self.cuts.lock().unwrap_or_else(|e| e.into_inner());
        if !cuts.insert((from, to)) {
            return Ok(());
        }
        sh(
            "ip",
            &[
                "netns",
                "exec",
                &self.nodes[to],
                "iptables",
                "-w",
                "-A",
                "DQCHAOS",
                "-s",
                &node_ip(from),
                "-j",
                "DROP",
            ],
        )
        .map(|_| ())
    }

    /// Cuts both directions between every node of `a` and every node of `b`.
    pub fn split(&self, a: &[usize], b: &[usize]) -> Result<(), String> {
        for &x in a {
            for &y in b {
                self.cut(x, y)?;
                self.cut(y, x)?;
            }
        }
        Ok(())
    }

    /// Removes every cut.
    pub fn heal(&self) -> Result<(), String> {
        let mut cuts = self.cuts.lock().unwrap_or_else(|e| e.into_inner());
        let targets: BTreeSet<usize> = cuts.iter().map(|c| c.1).collect();
        for to in targets {
            sh(
                "ip",
                &[
                    "netns",
                    "exec",
                    &self.nodes[to],
                    "iptables",
                    "-w",
                    "-F",
                    "DQCHAOS",
                ],
            )?;
        }
        cuts.clear();
        Ok(())
    }

    /// True while some cut is in place.
    pub fn has_cuts(&self) -> bool {
        !self
            .cuts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// Deletes the namespaces (their links and bridge go with them) and the state file.
    /// Processes must have been stopped and mounts removed before.
    pub fn destroy(&self) {
        for ns in self.nodes.iter().chain(std::iter::once(&self.ctl)) {
            let _ = sh("ip", &["netns", "del", ns]);
        }
        let _ = std::fs::remove_file(&self.state_file);
    }
}

/// The network namespace a thread came from; dropping it returns the thread there (so that
/// whatever runs after a chaos run, in `cargo xtask ci` say, has the machine's network).
#[derive(Debug)]
pub struct HomeNamespace(File);

impl Drop for HomeNamespace {
    fn drop(&mut self) {
        if let Err(e) = setns(&self.0, CloneFlags::CLONE_NEWNET) {
            eprintln!("chaos: could not return to the original network namespace: {e}");
        }
    }
}

/// Kills every process inside namespace `ns` (the leftovers of a run that died).
fn kill_in(ns: &str) {
    let Ok(out) = sh("ip", &["netns", "pids", ns]) else {
        return;
    };
    for pid in out.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
        let pid = nix::unistd::Pid::from_raw(pid);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
}

/// Removes what runs that are no longer alive left behind: their processes, mounts and
/// namespaces. Returns what was removed, for the log.
pub fn cleanup_leftovers() -> Vec<String> {
    let mut done = Vec::new();
    let mut live_runs = BTreeSet::new();
    if let Ok(dir) = std::fs::read_dir(STATE_DIR) {
        for entry in dir.flatten() {
            let path = entry.path();
            let Some(run) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".state"))
                .map(str::to_string)
            else {
                continue;
            };
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let mut lines = text.lines();
            let alive = lines
                .next()
                .and_then(|l| l.strip_prefix("owner "))
                .and_then(|l| {
                    let mut f = l.split_whitespace();
                    let pid: u32 = f.next()?.parse().ok()?;
                    let start: u64 = f.next()?.parse().ok()?;
                    Some(start_time(pid) == Some(start))
                })
                .unwrap_or(false);
            if alive {
                live_runs.insert(run);
                continue;
            }
            let mut namespaces = Vec::new();
            let mut mounts = Vec::new();
            for l in text.lines() {
                if let Some(ns) = l.strip_prefix("ns ") {
                    namespaces.push(ns.to_string());
                } else if let Some(m) = l.strip_prefix("mount ") {
                    mounts.push(m.to_string());
                }
            }
            for ns in &namespaces {
                kill_in(ns);
            }
            // Give the kernel a moment to reap them before unmounting their data.
            std::thread::sleep(std::time::Duration::from_millis(300));
            for m in mounts.iter().rev() {
                if sh("umount", &["-l", m]).is_ok() {
                    done.push(format!("unmounted {m}"));
                }
            }
            for ns in &namespaces {
                if sh("ip", &["netns", "del", ns]).is_ok() {
                    done.push(format!("deleted namespace {ns}"));
                }
            }
            let _ = std::fs::remove_file(&path);
        }
    }
    // Namespaces of ours no live run claims (their state file is gone).
    if let Ok(list) = sh("ip", &["netns", "list"]) {
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            let Some(rest) = name.strip_prefix(PREFIX) else {
                continue;
            };
            let run = rest.split('-').next().unwrap_or("");
            let ours = rest.contains('-') && run.chars().all(|c| c.is_ascii_hexdigit());
            if ours && !live_runs.contains(run) {
                kill_in(name);
                if sh("ip", &["netns", "del", name]).is_ok() {
                    done.push(format!("deleted namespace {name}"));
                }
            }
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_map_to_slots_and_back() {
        for slot in 0..7 {
            assert_eq!(slot_of(&node_address(slot)), Some(slot));
        }
        assert_eq!(slot_of("127.0.0.1:9000"), None);
        assert_eq!(slot_of("10.213.0.1:9000"), None);
    }

    #[test]
    fn own_start_time_is_readable() {
        assert!(start_time(std::process::id()).is_some());
    }

    #[test]
    fn a_zombie_counts_as_gone() {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Not reaped yet: a zombie once it exits.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while start_time(pid).is_some() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(start_time(pid), None);
        child.wait().unwrap();
    }
}
