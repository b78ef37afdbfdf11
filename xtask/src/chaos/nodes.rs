//! The node processes of a run: one `dqlite-node` per slot, started inside the slot's
//! namespace, with its data directory and log file in the run folder.
//!
//! A slot keeps its address for the whole run; the node id in it changes when the
//! membership nemesis removes a node and adds a fresh one there. Logs are plain text
//! (`NO_COLOR`), appended across restarts with a marker line per start.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::history::{Clock, secs};
use super::netns::{self, Net, sh};

/// How nodes are started.
#[derive(Debug, Clone)]
pub struct NodeOpts {
    /// The `dqlite-node` binary.
    pub bin: PathBuf,
    /// `--read-lease`.
    pub read_lease: bool,
    /// `--leader-local-reads`.
    pub leader_local_reads: bool,
    /// Data directories on their own small tmpfs (the disk nemesis fills them).
    pub tmpfs: bool,
}

/// Size of a node's tmpfs data directory (memory is used only for what is written).
pub const TMPFS_SIZE: &str = "2g";

/// The nodes' log filter unless `CHAOS_NODE_LOG` says otherwise: info, with every applied
/// entry and commit decision at debug for the `replicas` verdict (see [`super::applied`]).
pub const NODE_LOG: &str =
    "info,openraft=warn,dqlite_node::replication::fsm=debug,dqlite_node::database::worker=debug";

/// One node slot.
#[derive(Debug)]
pub struct Slot {
    /// The node id in this slot (0: none yet).
    pub id: u64,
    /// The running process, if any.
    child: Option<Child>,
    /// Stopped with SIGSTOP.
    pub paused: bool,
    /// Its data directory.
    pub data: PathBuf,
    /// Its log file.
    pub log: PathBuf,
}

/// The run's nodes.
#[derive(Debug)]
pub struct Nodes {
    opts: NodeOpts,
    namespaces: Vec<String>,
    clock: Clock,
    /// The slots.
    pub slots: Vec<Slot>,
    /// Mounted tmpfs data directories.
    mounts: Vec<PathBuf>,
    next_id: u64,
}

impl Nodes {
    /// Prepares `net.nodes.len()` slots under `dir` (data directories and logs).
    pub fn new(opts: NodeOpts, net: &Net, dir: &Path, clock: Clock) -> Result<Nodes, String> {
        let mut slots = Vec::new();
        let mut mounts = Vec::new();
        for s in 0..net.nodes.len() {
            let data = dir.join(format!("n{s}-data"));
            std::fs::create_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
            if opts.tmpfs {
                let d = data.to_string_lossy().into_owned();
                net.record(&format!("mount {d}"))?;
                sh(
                    "mount",
                    &[
                        "-t",
                        "tmpfs",
                        "-o",
                        &format!("size={TMPFS_SIZE}"),
                        "tmpfs",
                        &d,
                    ],
                )?;
                mounts.push(data.clone());
            }
            slots.push(Slot {
                id: 0,
                child: None,
                paused: false,
                data,
                log: dir.join(format!("n{s}.log")),
            });
        }
        Ok(Nodes {
            opts,
            namespaces: net.nodes.clone(),
            clock,
            slots,
            mounts,
            next_id: 1,
        })
    }

    /// Gives slot `s` a fresh node id (and an empty data directory).
    pub fn new_identity(&mut self, s: usize) -> Result<u64, String> {
        self.wipe(s)?;
        let id = self.next_id;
        self.next_id += 1;
        self.slots[s].id = id;
        Ok(id)
    }

    fn wipe(&self, s: usize) -> Result<(), String> {
        let data = &self.slots[s].data;
        let entries = std::fs::read_dir(data).map_err(|e| format!("{}: {e}", data.display()))?;
        for e in entries.flatten() {
            let p = e.path();
            let r = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            r.map_err(|e| format!("{}: {e}", p.display()))?;
        }
        Ok(())
    }

    /// Starts slot `s`'s node; `join` lists members to join through (empty: bootstrap, or
    /// restart from the data directory).
    pub fn start(&mut self, s: usize, join: &[String]) -> Result<(), String> {
        if self.running(s) {
            return Err(format!("n{s} is already running"));
        }
        let slot = &self.slots[s];
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&slot.log)
            .map_err(|e| format!("{}: {e}", slot.log.display()))?;
        let address = netns::node_address(s);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.namespaces[s]])
            .arg(&self.opts.bin)
            .args(["--id", &slot.id.to_string(), "--address", &address, "--dir"])
            .arg(&slot.data);
        if !join.is_empty() {
            cmd.args(["--join", &join.join(",")]);
        }
        // The nodes' default is the read lease; without `--read-lease` the run checks the
        // strict mode, every read asking a quorum.
        cmd.arg(if self.opts.read_lease {
            "--read-lease=true"
        } else {
            "--read-lease=false"
        });
        if self.opts.leader_local_reads {
            cmd.arg("--leader-local-reads");
        }
        let _ = writeln!(
            log,
            "--- chaos: t={} starting n{s} (id {}) at {address}{} ---",
            secs(self.clock.now()).trim(),
            slot.id,
            if join.is_empty() {
                String::new()
            } else {
                format!(" joining {}", join.join(","))
            }
        );
        let err = log
            .try_clone()
            .map_err(|e| format!("{}: {e}", slot.log.display()))?;
        use std::os::unix::process::CommandExt;
        // Own process group: a Ctrl-C meant for the harness does not reach the nodes, which
        // the harness stops itself.
        cmd.env("NO_COLOR", "1")
            .env(
                "RUST_LOG",
                std::env::var("CHAOS_NODE_LOG").unwrap_or_else(|_| NODE_LOG.into()),
            )
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(0);
        let child = cmd.spawn().map_err(|e| format!("starting n{s}: {e}"))?;
        let slot = &mut self.slots[s];
        slot.child = Some(child);
        slot.paused = false;
        Ok(())
    }

    /// True while slot `s` has a live process (paused ones included).
    pub fn running(&mut self, s: usize) -> bool {
        match self.slots[s].child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Slots whose process ended without the harness stopping it, with the exit status.
    pub fn exited(&mut self) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for (s, slot) in self.slots.iter_mut().enumerate() {
            if let Some(c) = slot.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                out.push((s, status.to_string()));
                slot.child = None;
            }
        }
        out
    }

    fn pid(&self, s: usize) -> Option<Pid> {
        self.slots[s]
            .child
            .as_ref()
            .map(|c| Pid::from_raw(c.id() as i32))
    }

    /// Sends `sig` to slot `s`'s node.
    pub fn signal(&mut self, s: usize, sig: Signal) -> Result<(), String> {
        let pid = self.pid(s).ok_or_else(|| format!("n{s} is not running"))?;
        kill(pid, sig).map_err(|e| format!("kill -{sig} n{s}: {e}"))?;
        match sig {
            Signal::SIGSTOP => self.slots[s].paused = true,
            Signal::SIGCONT => self.slots[s].paused = false,
            _ => {}
        }
        Ok(())
    }

    /// SIGKILLs slot `s`'s node and reaps it.
    pub fn kill(&mut self, s: usize) -> Result<(), String> {
        let Some(mut child) = self.slots[s].child.take() else {
            return Ok(());
        };
        let _ = child.kill();
        child.wait().map_err(|e| format!("waiting for n{s}: {e}"))?;
        self.slots[s].paused = false;
        Ok(())
    }

    /// Stops every node (SIGKILL; nothing is owed to a test cluster) and removes the mounts.
    pub fn stop_all(&mut self) {
        for s in 0..self.slots.len() {
            let _ = self.kill(s);
        }
        for m in self.mounts.drain(..).rev() {
            // Lazy: a node's own mount namespace may keep it busy a moment longer.
            let _ = sh("umount", &["-l", &m.to_string_lossy()]);
        }
    }

    /// The tmpfs data directory of slot `s`, if data directories are on tmpfs.
    pub fn mount_of(&self, s: usize) -> Option<&Path> {
        self.opts.tmpfs.then(|| self.slots[s].data.as_path())
    }

    /// Every node's log (slot, text); an unreadable one is left out.
    pub fn logs(&self) -> Vec<(usize, String)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(s, slot)| std::fs::read_to_string(&slot.log).ok().map(|t| (s, t)))
            .collect()
    }
}

/// Searches node logs (`(slot, text)`, see [`Nodes::logs`]) for panics: (slot, first panic
/// line).
pub fn panics(logs: &[(usize, String)]) -> Vec<(usize, String)> {
    logs.iter()
        .filter_map(|(s, text)| {
            text.lines()
                .find(|l| l.contains("panicked at"))
                .map(|line| (*s, line.to_string()))
        })
        .collect()
}

impl Drop for Nodes {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Waits until something accepts connections at `address` (from the control namespace).
pub async fn wait_listening(address: &str, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if let Ok(Ok(_)) = tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(address),
        )
        .await
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
