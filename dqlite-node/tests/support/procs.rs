//! Real `dqlite-node` processes on 127.0.0.1 for multi-process tests, started, SIGKILLed,
//! SIGTERMed and restarted (same address and data directory) by the workspace's launcher,
//! `dqlite-cluster`; and finding the leader and writing through failovers. Every process is one
//! this test started, signalled by its pid only.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use dqlite_cluster::{Backend, Node, NodeSpec};
use dqlite_wire::{Request, Response, Role, Value};

use super::Client;

/// A node process started by the workspace's launcher (`dqlite-cluster`), SIGKILLed on drop if
/// still running.
pub struct Proc {
    /// Node id.
    pub id: u64,
    /// Listening address.
    pub address: String,
    node: Node,
}

impl Proc {
    /// Starts node `id` of this crate's `dqlite-node` on `address` with data under `base/n{id}`
    /// and its output appended to `base/n{id}.log`; `extra` are more command-line arguments.
    pub fn start(
        id: u64,
        address: &str,
        base: &Path,
        join: Option<&str>,
        extra: &[String],
        log_filter: &str,
    ) -> Proc {
        let spec = NodeSpec {
            backend: Backend::Rs,
            id,
            address: address.to_string(),
            api: None,
            data_dir: base.join(format!("n{id}")),
            log: base.join(format!("n{id}.log")),
            join: join.map(str::to_string),
            args: extra.to_vec(),
            env: vec![("RUST_LOG".into(), log_filter.into())],
        };
        let bin = Path::new(env!("CARGO_BIN_EXE_dqlite-node"));
        Proc {
            id,
            address: address.to_string(),
            node: Node::start(bin, spec).unwrap(),
        }
    }

    /// The file the node logs to.
    pub fn log_path(&self) -> PathBuf {
        self.node.log_path().to_path_buf()
    }

    /// What the node logged so far (every run).
    pub fn log(&self) -> String {
        self.node.log()
    }

    /// Starts the node again with the same arguments (it must not be running).
    pub fn restart(&mut self) {
        self.node.restart().unwrap();
    }

    /// Whether the process runs.
    pub fn running(&mut self) -> bool {
        self.node.is_running()
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        self.node.kill().unwrap();
    }

    /// Sends SIGTERM (graceful stop) without waiting.
    pub fn terminate(&mut self) {
        self.node.terminate().unwrap();
    }

    /// Sends SIGSTOP (the process freezes: its sockets stay open, nothing answers) or, with
    /// `resume`, SIGCONT.
    pub fn pause(&mut self, resume: bool) {
        let sig = if resume {
            dqlite_cluster::Signal::SIGCONT
        } else {
            dqlite_cluster::Signal::SIGSTOP
        };
        self.node.signal(sig).unwrap();
    }

    /// Waits up to `timeout` for the process to exit; SIGKILLs it after that. Returns the
    /// exit status if it exited by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.node.wait_exit(timeout)
    }
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    dqlite_cluster::free_port("127.0.0.1").unwrap()
}

/// `n` distinct free addresses on 127.0.0.1.
pub fn addresses(n: usize) -> Vec<String> {
    dqlite_cluster::addresses("127.0.0.1", n).unwrap()
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
