//! Real `dqlite-node` processes on 127.0.0.1 for multi-process tests: start, SIGKILL,
//! SIGTERM, restart on the same address and data directory, find the leader, write through
//! failovers. Every process is one this test started, signalled by its pid only.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use dqlite_wire::{Request, Response, Role, Value};

use super::Client;

/// A node process, SIGKILLed on drop if still running.
pub struct Proc {
    /// Node id.
    pub id: u64,
    /// Listening address.
    pub address: String,
    base: PathBuf,
    join: Option<String>,
    extra: Vec<String>,
    log_filter: String,
    child: Option<Child>,
}

impl Proc {
    /// Starts node `id` on `address` with data under `base/n{id}` and its stderr appended
    /// to `base/n{id}.log`; `extra` are more command-line arguments.
    pub fn start(
        id: u64,
        address: &str,
        base: &Path,
        join: Option<&str>,
        extra: &[String],
        log_filter: &str,
    ) -> Proc {
        let mut p = Proc {
            id,
            address: address.to_string(),
            base: base.to_path_buf(),
            join: join.map(str::to_string),
            extra: extra.to_vec(),
            log_filter: log_filter.to_string(),
            child: None,
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dqlite-node"));
        cmd.args([
            "--id",
            &self.id.to_string(),
            "--address",
            &self.address,
            "--dir",
        ])
        .arg(self.base.join(format!("n{}", self.id)))
        .args(&self.extra)
        .env("RUST_LOG", &self.log_filter)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
        if let Some(j) = &self.join {
            cmd.args(["--join", j]);
        }
        self.child = Some(cmd.spawn().unwrap());
    }

    /// The file the node logs to.
    pub fn log_path(&self) -> PathBuf {
        self.base.join(format!("n{}.log", self.id))
    }

    /// What the node logged so far (every run).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts the node again with the same arguments (it must not be running).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "node {} is running", self.id);
        self.spawn();
    }

    /// Whether the process was started and not yet reaped.
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM (graceful stop) without waiting.
    pub fn terminate(&self) {
        if let Some(c) = &self.child {
            let st = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status()
                .unwrap();
            assert!(st.success(), "kill -TERM {}", c.id());
        }
    }

    /// Sends SIGSTOP (the process freezes: its sockets stay open, nothing answers) or, with
    /// `resume`, SIGCONT.
    pub fn pause(&self, resume: bool) {
        if let Some(c) = &self.child {
            let sig = if resume { "-CONT" } else { "-STOP" };
            let st = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status()
                .unwrap();
            assert!(st.success(), "kill {sig} {}", c.id());
        }
    }

    /// Waits up to `timeout` for the process to exit; SIGKILLs it after that. Returns the
    /// exit status if it exited by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut c = self.child.take()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port free right now on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `n` distinct free addresses.
pub fn addresses(n: usize) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    while v.len() < n {
        let a = format!("127.0.0.1:{}", free_port());
        if !v.contains(&a) {
            v.push(a);
        }
    }
    v
}

/// Asks each address who leads; returns the leader's address once one of `addresses`
/// reports a leader that is itself among `addresses`.
pub async fn find_leader(addresses: &[String], timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        for a in addresses {
            if let Ok(mut c) = Client::connect(a).await
                && let Ok(Response::Server { address, .. }) = c.call(Request::Leader).await
                && !address.is_empty()
                && addresses.contains(&address)
            {
                return address;
            }
        }
        assert!(Instant::now() < deadline, "no leader among {addresses:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the cluster (asked through `any`) has `n` members, all voters.
pub async fn wait_voters(any: &[String], n: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let l = find_leader(any, timeout).await;
        if let Ok(mut c) = Client::connect(&l).await
            && let Ok(Response::Servers { servers }) = c.call(Request::Cluster { format: 1 }).await
            && servers.len() == n
            && servers.iter().all(|s| s.role == Role::Voter)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "cluster of {n} voters did not form"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts `n` nodes (node 1 bootstraps, the others join it) and waits for `n` voters.
pub async fn start_cluster(
    n: usize,
    base: &Path,
    extra: &[String],
    log_filter: &str,
) -> (Vec<Proc>, Vec<String>) {
    let addrs = addresses(n);
    let mut procs = vec![Proc::start(1, &addrs[0], base, None, extra, log_filter)];
    find_leader(&addrs[..1], Duration::from_secs(30)).await;
    for (i, a) in addrs.iter().enumerate().skip(1) {
        procs.push(Proc::start(
            i as u64 + 1,
            a,
            base,
            Some(&addrs[0]),
            extra,
            log_filter,
        ));
    }
    wait_voters(&addrs, n, Duration::from_secs(60)).await;
    (procs, addrs)
}

/// The database image a node holds (DUMP folded into one SQLite file); None if the node
/// cannot be asked or does not have the database yet.
pub async fn image(address: &str, db: &str) -> Option<Vec<u8>> {
    let mut c = Client::connect(address).await.ok()?;
    match c.call(Request::Dump { name: db.into() }).await.ok()? {
        Response::Files { files } if files.len() == 2 && !files[0].data.is_empty() => {
            dqlite_vfs::Snapshot::from_files(&files[0].data, &files[1].data, 4096)
                .ok()
                .map(|s| s.to_bytes())
        }
        _ => None,
    }
}

/// Waits until every address holds the same image of `db` as `reference`.
pub async fn wait_converged(addresses: &[String], reference: &str, db: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let want = image(reference, db).await;
        let mut same = want.is_some();
        for a in addresses {
            if image(a, db).await != want {
                same = false;
                break;
            }
        }
        if same {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "images of {db} did not converge on {addresses:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Ids read back from table `t` through the leader among `live`.
pub async fn ids(live: &[String]) -> std::collections::BTreeSet<i64> {
    let l = find_leader(live, Duration::from_secs(30)).await;
    let mut c = super::open(&l, "test.db").await.unwrap();
    let rows = c.rows("SELECT id FROM t ORDER BY id").await.unwrap();
    rows.iter()
        .map(|r| match r[0] {
            Value::Integer(i) => i,
            ref v => panic!("{v:?}"),
        })
        .collect()
}

/// Writes `INSERT INTO t(id) VALUES(n)` with increasing `n` through whichever of the live
/// nodes leads, reconnecting on "not leader", "leadership lost" and broken connections.
pub struct Writer {
    /// Ids whose insert was acknowledged.
    pub acked: Vec<i64>,
    /// Address each acknowledged insert was answered by.
    pub acked_by: Vec<String>,
    next: i64,
    conn: Option<(String, Client)>,
}

impl Writer {
    /// Connects to the leader among `live` and creates table `t`.
    pub async fn new(live: &[String]) -> Writer {
        let l = find_leader(live, Duration::from_secs(30)).await;
        let mut c = super::open(&l, "test.db").await.unwrap();
        let r = c
            .call(Request::exec_sql(
                "CREATE TABLE t(id INTEGER PRIMARY KEY)",
                vec![],
            ))
            .await
            .unwrap();
        assert!(matches!(r, Response::Result { .. }), "{r:?}");
        Writer {
            acked: Vec::new(),
            acked_by: Vec::new(),
            next: 0,
            conn: Some((l, c)),
        }
    }

    /// One insert attempt (connecting first if needed); true if it was acknowledged.
    pub async fn step(&mut self, live: &[String]) -> bool {
        if self.conn.is_none() {
            let l = find_leader(live, Duration::from_secs(30)).await;
            match super::open(&l, "test.db").await {
                Ok(c) => self.conn = Some((l, c)),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    return false;
                }
            }
        }
        let Some((addr, c)) = self.conn.as_mut() else {
            return false;
        };
        self.next += 1;
        match c
            .call(Request::exec_sql(
                "INSERT INTO t(id) VALUES(?)",
                vec![Value::Integer(self.next)],
            ))
            .await
        {
            Ok(Response::Result { .. }) => {
                self.acked.push(self.next);
                self.acked_by.push(addr.clone());
                true
            }
            Ok(Response::Failure(f)) if f.code == 10250 || f.code == 10506 => {
                self.conn = None;
                false
            }
            Ok(other) => panic!("unexpected answer {other:?}"),
            Err(_) => {
                self.conn = None;
                false
            }
        }
    }

    /// Writes until `n` inserts in total are acknowledged, within `timeout`.
    pub async fn until(&mut self, n: usize, live: &[String], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.acked.len() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} writes acknowledged",
                self.acked.len()
            );
            self.step(live).await;
        }
    }

    /// Forgets the current connection (the next step finds the leader again).
    pub fn reconnect(&mut self) {
        self.conn = None;
    }
}
