//! [`Node`]: one node process, started, signalled and restarted by pid.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::error::Error;
use crate::net::port_open;

/// Which dqlite implementation a node runs.
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

/// How to run one node.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// The implementation.
    pub backend: Backend,
    /// Node id (`--id` of dqlite-rs; the demo app picks its own ids, so for C it only numbers
    /// the node).
    pub id: u64,
    /// Client (and Raft) address, `HOST:PORT`.
    pub address: String,
    /// HTTP API address of the demo app (C only; it opens once the node has joined).
    pub api: Option<String>,
    /// Data directory (`--dir`; the demo app makes a subdirectory per address in it).
    pub data_dir: PathBuf,
    /// File that receives the node's stdout and stderr (appended to).
    pub log: PathBuf,
    /// Comma-separated addresses of members to join; `None` bootstraps a new cluster.
    pub join: Option<String>,
    /// More command-line arguments.
    pub args: Vec<String>,
    /// Environment variables (e.g. `RUST_LOG`).
    pub env: Vec<(String, String)>,
}

impl NodeSpec {
    /// The address that says the node is up: the demo app's API port (it opens only after the
    /// node joined), or a dqlite-rs node's own port.
    pub fn ready_address(&self) -> &str {
        self.api.as_deref().unwrap_or(&self.address)
    }

    fn command(&self, bin: &Path) -> Command {
        let mut cmd = Command::new(bin);
        match self.backend {
            Backend::Rs => {
                cmd.arg("--id")
                    .arg(self.id.to_string())
                    .arg("--address")
                    .arg(&self.address)
                    .arg("--dir")
                    .arg(&self.data_dir);
            }
            Backend::C => {
                cmd.arg("--db")
                    .arg(&self.address)
                    .arg("--dir")
                    .arg(&self.data_dir);
                if let Some(api) = &self.api {
                    cmd.arg("--api").arg(api);
                }
            }
        }
        if let Some(j) = &self.join {
            cmd.arg("--join").arg(j);
        }
        cmd.args(&self.args);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// True if `pid` runs this node's command line (so a recycled pid is never signalled).
    /// A zombie (exited, not yet reaped) has an empty command line, so it is not this node.
    fn runs_as(&self, bin: &Path, pid: u32) -> bool {
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        if raw.is_empty() {
            return false;
        }
        let args: Vec<String> = raw
            .split(|&b| b == 0)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        let has = |flag: &str, val: &str| args.windows(2).any(|w| w[0] == flag && w[1] == val);
        let name = bin.file_name().map(|n| n.to_string_lossy().into_owned());
        let same_program = args
            .first()
            .zip(name)
            .is_some_and(|(a, n)| a.ends_with(n.as_str()));
        let same_node = match self.backend {
            Backend::Rs => has("--id", &self.id.to_string()) && has("--address", &self.address),
            Backend::C => has("--db", &self.address),
        };
        same_program && same_node
    }
}

/// Parses a signal name: `KILL`, `SIGKILL`, `TERM`, `STOP`, `CONT`, … (case-insensitive).
pub fn parse_signal(name: &str) -> Result<Signal, Error> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse::<Signal>()
        .map_err(|_| Error::new(format!("unknown signal {name:?}")))
}

/// A running (or stopped) node process.
///
/// A node started with [`Node::start`] is a child of this process and is SIGKILLed and reaped
/// when dropped. One started with [`Node::start_detached`] (or re-attached from a recorded pid
/// with [`Node::attach`]) runs in its own process group, outlives this process, and is only
/// signalled while its pid still runs its command line.
#[derive(Debug)]
pub struct Node {
    spec: NodeSpec,
    bin: PathBuf,
    child: Option<Child>,
    pid: Option<u32>,
    /// In its own process group, not killed on drop.
    detached: bool,
    /// Known by a recorded pid only (not a child of this process).
    attached: bool,
}

impl Node {
    /// Starts a node as a child of this process (killed when dropped).
    pub fn start(bin: &Path, spec: NodeSpec) -> Result<Node, Error> {
        let mut n = Node {
            spec,
            bin: bin.to_path_buf(),
            child: None,
            pid: None,
            detached: false,
            attached: false,
        };
        n.spawn()?;
        Ok(n)
    }

    /// Starts a node in its own process group that outlives this process (not killed when
    /// dropped; `cargo xtask cluster`).
    pub fn start_detached(bin: &Path, spec: NodeSpec) -> Result<Node, Error> {
        let mut n = Node {
            spec,
            bin: bin.to_path_buf(),
            child: None,
            pid: None,
            detached: true,
            attached: false,
        };
        n.spawn()?;
        Ok(n)
    }

    /// A detached node started earlier as `pid` (recorded by whoever started it).
    pub fn attach(bin: &Path, spec: NodeSpec, pid: u32) -> Node {
        Node {
            spec,
            bin: bin.to_path_buf(),
            child: None,
            pid: Some(pid),
            detached: true,
            attached: true,
        }
    }

    fn spawn(&mut self) -> Result<(), Error> {
        // Started again by this process: a child from now on, whatever it was before.
        self.attached = false;
        use std::os::unix::process::CommandExt;
        let log_path = &self.spec.log;
        let open_err = |e: std::io::Error| Error::new(format!("{}: {e}", log_path.display()));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .map_err(open_err)?;
        let err = log.try_clone().map_err(open_err)?;
        let mut cmd = self.spec.command(&self.bin);
        cmd.stdin(Stdio::null()).stdout(log).stderr(err);
        if self.detached {
            // Its own process group: the node outlives this command and the terminal's signals.
            cmd.process_group(0);
        }
        let child = cmd
            .spawn()
            .map_err(|e| Error::new(format!("starting {}: {e}", self.bin.display())))?;
        self.pid = Some(child.id());
        // Kept for detached nodes too: while this process lives it is their parent, and
        // `try_wait` both tells and reaps (a `/proc` look-up would see the parent's command
        // line between fork and exec, and a zombie after exit).
        self.child = Some(child);
        Ok(())
    }

    /// How the node is run.
    pub fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    /// Node id (see [`NodeSpec::id`]).
    pub fn id(&self) -> u64 {
        self.spec.id
    }

    /// Client address.
    pub fn address(&self) -> &str {
        &self.spec.address
    }

    /// The binary it runs.
    pub fn binary(&self) -> &Path {
        &self.bin
    }

    /// The process id of the last start.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// True while the process runs (a stopped process counts as running).
    pub fn is_running(&mut self) -> bool {
        match (&mut self.child, self.pid) {
            (Some(c), _) => matches!(c.try_wait(), Ok(None)),
            (None, Some(pid)) if self.attached => self.spec.runs_as(&self.bin, pid),
            _ => false,
        }
    }

    /// Sends `signal` to the node (SIGSTOP pauses it, SIGCONT resumes it, SIGTERM asks for a
    /// graceful stop). Fails if it does not run.
    pub fn signal(&mut self, signal: Signal) -> Result<(), Error> {
        let running = self.is_running();
        let pid = match self.pid {
            Some(pid) if running => pid,
            _ => {
                return Err(Error::new(format!(
                    "node {} ({}) is not running",
                    self.spec.id, self.spec.address
                )));
            }
        };
        let raw = i32::try_from(pid).map_err(|_| Error::new(format!("pid {pid} out of range")))?;
        kill(Pid::from_raw(raw), signal)
            .map_err(|e| Error::new(format!("kill -{signal} {pid}: {e}")))
    }

    /// Sends SIGTERM (a graceful stop: a leader hands leadership over) without waiting.
    pub fn terminate(&mut self) -> Result<(), Error> {
        self.signal(Signal::SIGTERM)
    }

    /// SIGKILLs the node (if it runs), reaps it, and waits (up to 10 s) until its client port
    /// stops accepting: after a SIGKILL the command line empties before the sockets close.
    pub fn kill(&mut self) -> Result<(), Error> {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        } else if self.attached && self.is_running() {
            self.signal(Signal::SIGKILL)?;
            if !self.wait_gone(Duration::from_secs(5)) {
                return Err(Error::new(format!(
                    "node {} (pid {:?}) survived SIGKILL",
                    self.spec.id, self.pid
                )));
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while port_open(&self.spec.address) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Waits up to `timeout` for the process to end by itself; true if it did (a child is
    /// reaped).
    pub fn wait_gone(&mut self, timeout: Duration) -> bool {
        self.wait_exit_status(timeout).is_some()
    }

    /// Waits up to `timeout` for the process to exit by itself, then SIGKILLs it. The exit
    /// status if it exited by itself (a detached node's status is not known: `None` either way).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        match self.wait_exit_status(timeout) {
            Some(status) => status,
            None => {
                let _ = self.kill();
                None
            }
        }
    }

    /// `Some(status)` once the process is gone within `timeout` (`Some(None)` for a detached
    /// node, whose status is unknown), `None` if it still runs.
    fn wait_exit_status(&mut self, timeout: Duration) -> Option<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(c) = &mut self.child {
                if let Ok(Some(st)) = c.try_wait() {
                    self.child = None;
                    return Some(Some(st));
                }
            } else if !self.is_running() {
                return Some(None);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then wait up to `timeout` for the node to exit.
    pub fn stop(&mut self, timeout: Duration) -> Result<(), Error> {
        if !self.is_running() {
            return Ok(());
        }
        self.terminate()?;
        if self.wait_gone(timeout) {
            Ok(())
        } else {
            Err(Error::new(format!(
                "node {} (pid {:?}) did not stop within {timeout:?}",
                self.spec.id, self.pid
            )))
        }
    }

    /// Starts the node again with the same id, address, data and arguments. It must not run.
    pub fn restart(&mut self) -> Result<(), Error> {
        if self.is_running() {
            return Err(Error::new(format!(
                "node {} is running: stop or kill it first",
                self.spec.id
            )));
        }
        self.child = None;
        self.spawn()
    }

    /// Waits up to `timeout` until the node is up ([`NodeSpec::ready_address`] accepts); fails
    /// with the tail of its log if it exits or takes longer.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if port_open(self.spec.ready_address()) {
                return Ok(());
            }
            if !self.is_running() {
                return Err(Error::new(format!(
                    "{} node {} exited during start-up:\n{}",
                    self.spec.backend.name(),
                    self.spec.id,
                    self.log_tail(20)
                )));
            }
            if Instant::now() > deadline {
                return Err(Error::new(format!(
                    "{} node {} not ready after {timeout:?}:\n{}",
                    self.spec.backend.name(),
                    self.spec.id,
                    self.log_tail(20)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The file the node logs to.
    pub fn log_path(&self) -> &Path {
        &self.spec.log
    }

    /// Everything the node logged so far (every run), without ANSI colour sequences.
    pub fn log(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.spec.log).unwrap_or_default())
    }

    /// The last `lines` lines of the log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let s = self.log();
        let all: Vec<&str> = s.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn signal_names() {
        assert_eq!(parse_signal("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("sigstop").unwrap(), Signal::SIGSTOP);
        assert_eq!(parse_signal("CONT").unwrap(), Signal::SIGCONT);
        assert!(parse_signal("NOPE").is_err());
    }

    #[test]
    fn ansi_sequences_are_removed() {
        assert_eq!(strip_ansi("\u{1b}[2mINFO\u{1b}[0m up"), "INFO up");
    }
}
