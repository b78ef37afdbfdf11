//! The Rust client's side of the bench (dqlite-client): key/value cells, the bulk load, and
//! the fail-over and restart probes.
//!
//! The key/value workload is go-dqlite's dqlite-benchmark one, as the Python driver runs it:
//! table `model(key TEXT, value TEXT, UNIQUE(key))`, `INSERT OR REPLACE` of a new random
//! 32-letter key with a 1 KiB value (half one repeated letter, half random letters), and
//! `SELECT value FROM model WHERE key = ?` of a key the same connection wrote.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use dqlite_client::{Client, Config, Role, params};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::report::{Figure, Phase, percentile_ms};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS model (key TEXT, value TEXT, UNIQUE(key))";
const WRITE: &str = "INSERT OR REPLACE INTO model(key, value) VALUES(?, ?)";
const READ: &str = "SELECT value FROM model WHERE key = ?";
const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// Upper bound on the requests of one connection in one phase.
const MAX_OPS: u64 = 5_000_000;

/// The phases of a cell, in the order they run.
pub const PHASES: [&str; 3] = ["write", "read", "mix90"];

/// Client settings for the bench: quick retries, so that fail-over and restart times measure
/// the servers rather than the client's back-off.
pub fn config() -> Config {
    let mut c = Config::default();
    c.connect_timeout = Duration::from_secs(2);
    c.request_timeout = Duration::from_secs(60);
    c.leader_timeout = Duration::from_secs(60);
    c.backoff_base = Duration::from_millis(5);
    c.backoff_cap = Duration::from_millis(50);
    c
}

fn random_text(rng: &mut StdRng, n: usize) -> String {
    (0..n)
        .map(|_| LETTERS[rng.random_range(0..LETTERS.len())] as char)
        .collect()
}

/// Waits (at most `timeout`) until the cluster reports `n` voters.
pub async fn wait_voters(client: &Client, n: usize, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let voters = client
            .cluster()
            .await
            .map(|nodes| nodes.iter().filter(|x| x.role == Role::Voter).count());
        if voters.as_ref().ok() == Some(&n) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("no {n} voters after {timeout:?}: {voters:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Is a request failure SQLITE_BUSY ("database is locked")?
fn is_busy(e: &dqlite_client::Error) -> bool {
    matches!(e.code(), Some(dqlite_client::ErrorCode::Busy))
}

/// One connection's state across the phases of a cell.
struct Worker {
    db: dqlite_client::Database,
    rng: StdRng,
    values: Vec<String>,
    keys: Vec<String>,
}

impl Worker {
    async fn one(&mut self, write: bool) -> Result<(), dqlite_client::Error> {
        if write {
            let k = random_text(&mut self.rng, 32);
            let v = &self.values[self.rng.random_range(0..self.values.len())];
            self.db.exec(WRITE, params![k.as_str(), v.as_str()]).await?;
            self.keys.push(k);
        } else {
            let k = &self.keys[self.rng.random_range(0..self.keys.len())];
            let rows = self.db.query_all(READ, params![k.as_str()]).await?;
            if rows.len() != 1 {
                return Err(dqlite_client::Error::Usage(format!(
                    "{} rows for a written key",
                    rows.len()
                )));
            }
        }
        Ok(())
    }

    /// Runs `phase` until `deadline`: latencies of successes, busy count, other errors.
    async fn phase(&mut self, phase: &str, deadline: Instant) -> (Vec<Duration>, u64, u64) {
        let (mut lat, mut busy, mut errors) = (Vec::new(), 0, 0);
        let mut n = 0;
        while n < MAX_OPS && Instant::now() < deadline {
            n += 1;
            let write = phase == "write"
                || self.keys.is_empty()
                || (phase == "mix90" && self.rng.random_range(0..10) == 0);
            let t0 = Instant::now();
            match self.one(write).await {
                Ok(()) => lat.push(t0.elapsed()),
                Err(e) if is_busy(&e) => busy += 1,
                Err(_) => errors += 1,
            }
        }
        (lat, busy, errors)
    }
}

/// One cell: `conns` connections to `database`, opened before the clock starts, run the
/// write, read and mix90 phases for `secs` each. Returns the phases in [`PHASES`] order.
pub async fn cell(
    client: &Client,
    database: &str,
    conns: usize,
    secs: f64,
    seed: u64,
) -> Result<Vec<Phase>, String> {
    let mut first = client
        .open(database)
        .await
        .map_err(|e| format!("open {database}: {e}"))?;
    first
        .exec(SCHEMA, ())
        .await
        .map_err(|e| format!("schema: {e}"))?;
    let mut workers = Vec::with_capacity(conns);
    for w in 0..conns {
        let db = if w == 0 {
            std::mem::replace(
                &mut first,
                client.open(database).await.map_err(|e| e.to_string())?,
            )
        } else {
            client.open(database).await.map_err(|e| e.to_string())?
        };
        let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(7919).wrapping_add(w as u64));
        let values = (0..64)
            .map(|_| {
                let c = LETTERS[rng.random_range(0..LETTERS.len())] as char;
                let mut v: String = std::iter::repeat_n(c, 512).collect();
                v.push_str(&random_text(&mut rng, 512));
                v
            })
            .collect();
        workers.push(Worker {
            db,
            rng,
            values,
            keys: Vec::new(),
        });
    }
    drop(first);
    let mut out = Vec::new();
    for phase in PHASES {
        let start = Instant::now();
        let deadline = start + Duration::from_secs_f64(secs);
        let tasks: Vec<_> = workers
            .drain(..)
            .map(|mut w| {
                tokio::spawn(async move {
                    let r = w.phase(phase, deadline).await;
                    (w, r)
                })
            })
            .collect();
        let (mut lat, mut busy, mut errors) = (Vec::new(), 0, 0);
        for t in tasks {
            let (w, (l, b, e)) = t.await.map_err(|e| format!("worker task: {e}"))?;
            lat.extend(l);
            busy += b;
            errors += e;
            workers.push(w);
        }
        out.push(Phase::from_latencies(lat, start.elapsed(), busy, errors));
    }
    Ok(out)
}

/// Bytes of row data per bulk-load row (two 512-character halves: one repeated letter, then
/// random hex, like the key/value values).
const BULK_ROW_BYTES: u64 = 1024;

/// One transaction of the bulk load: `rows` rows made by SQLite on the leader, so the
/// client's speed is not measured.
fn bulk_insert(rows: u64) -> String {
    format!(
        "INSERT INTO bulk(v) SELECT substr(replace(hex(zeroblob(256)), '0', \
         char(97 + abs(random()) % 26)), 1, 512) || hex(randomblob(256)) FROM (WITH RECURSIVE \
         c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows}) SELECT x FROM c)"
    )
}

/// Loads about `mib` MiB of rows into table `bulk` of `database`, `rows` rows (of 1 KiB) per
/// transaction; returns the figure and the database's size in bytes (page count x page size)
/// afterwards.
pub async fn bulk_load(
    client: &Client,
    database: &str,
    mib: u64,
    rows: u64,
) -> Result<(Figure, u64), String> {
    let mut db = client
        .open(database)
        .await
        .map_err(|e| format!("open {database}: {e}"))?;
    db.exec(
        "CREATE TABLE IF NOT EXISTS bulk (id INTEGER PRIMARY KEY, v TEXT)",
        (),
    )
    .await
    .map_err(|e| format!("create bulk: {e}"))?;
    let rows = rows.max(1);
    let txs = (mib * 1024 * 1024).div_ceil(rows * BULK_ROW_BYTES);
    let sql = bulk_insert(rows);
    let mut lat = Vec::with_capacity(txs as usize);
    let start = Instant::now();
    for i in 0..txs {
        let t0 = Instant::now();
        db.exec(&sql, ())
            .await
            .map_err(|e| format!("bulk transaction {i} of {txs}: {e}"))?;
        lat.push(t0.elapsed());
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    let size = database_size(&mut db).await?;
    Ok((
        Figure::Bulk {
            bytes: txs * rows * BULK_ROW_BYTES,
            secs,
            p50_ms: percentile_ms(&lat, 0.5),
            p99_ms: percentile_ms(&lat, 0.99),
        },
        size,
    ))
}

/// One transaction of `n` rows (`row-0000001`...; a million make ~18 MiB of WAL frames, so one
/// Raft entry of that size): the time to commit it.
pub async fn many_rows(client: &Client, n: u64) -> Result<Figure, String> {
    let mut db = client
        .open("million")
        .await
        .map_err(|e| format!("open million: {e}"))?;
    db.exec(
        "CREATE TABLE IF NOT EXISTS m (id INTEGER PRIMARY KEY, v TEXT)",
        (),
    )
    .await
    .map_err(|e| format!("create m: {e}"))?;
    let t0 = Instant::now();
    let r = db
        .exec(
            &format!(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) \
                 INSERT INTO m SELECT x, printf('row-%07d', x) FROM c"
            ),
            (),
        )
        .await
        .map_err(|e| format!("{n}-row INSERT: {e}"))?;
    let took = t0.elapsed();
    if r.rows_affected != n {
        return Err(format!("{n}-row INSERT affected {} rows", r.rows_affected));
    }
    Ok(Figure::Seconds(took.as_secs_f64()))
}

/// The size of a database file: page count x page size.
pub async fn database_size(db: &mut dqlite_client::Database) -> Result<u64, String> {
    let one = async |db: &mut dqlite_client::Database, sql: &str| -> Result<u64, String> {
        let rows = db
            .query_all(sql, ())
            .await
            .map_err(|e| format!("{sql}: {e}"))?;
        rows.first()
            .and_then(|r| r.get::<i64>(0).ok())
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| format!("{sql}: no number"))
    };
    Ok(one(db, "PRAGMA page_count").await? * one(db, "PRAGMA page_size").await?)
}

/// A writer that runs until told to stop, recording when each write was sent and when it was
/// acknowledged.
pub struct Writer {
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<(Instant, Instant)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    /// Starts writing 1 KiB rows to `database` (one autocommit INSERT at a time, reconnecting
    /// after any error, 5 ms pause after an error); stops by itself after `limit`.
    pub fn start(servers: Vec<String>, database: String, limit: Duration) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(Mutex::new(Vec::new()));
        let (flag, record) = (stop.clone(), acks.clone());
        let task = tokio::spawn(async move {
            let until = Instant::now() + limit;
            let mut rng = StdRng::seed_from_u64(42);
            let mut db: Option<dqlite_client::Database> = None;
            let Ok(client) = Client::new(servers, config()) else {
                return;
            };
            while Instant::now() < until && !flag.load(Ordering::Relaxed) {
                if db.is_none() {
                    db = client.open(&database).await.ok();
                    if let Some(d) = db.as_mut() {
                        let _ = d.exec(SCHEMA, ()).await;
                    }
                }
                let Some(d) = db.as_mut() else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                let k = random_text(&mut rng, 32);
                let v = random_text(&mut rng, 1024);
                let sent = Instant::now();
                match d.exec(WRITE, params![k.as_str(), v.as_str()]).await {
                    Ok(_) => record
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push((sent, Instant::now())),
                    Err(_) => {
                        db = None;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
        });
        Writer { stop, acks, task }
    }

    /// The acknowledgement of the first write sent after `t`, if any yet. (A write sent
    /// before `t` may be acknowledged after it from a reply already on its way.)
    pub fn first_ack_after(&self, t: Instant) -> Option<Instant> {
        self.acks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(sent, _)| *sent > t)
            .map(|(_, acked)| *acked)
    }

    /// Stops the writer and waits for it.
    pub async fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
    }
}

/// Waits until the node at `address` serves: it accepts a client connection and names a
/// leader, which the client then reaches (a Rust client seeded with that node alone finds the
/// leader). Returns the time it took, or an error after `timeout`.
pub async fn wait_serving(address: &str, timeout: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    let mut cfg = config();
    cfg.connect_timeout = Duration::from_millis(500);
    // Short: one attempt against a node that does not know the leader yet must not hide
    // the moment it learns it (with 300 ms the figure moved in steps of 300 ms).
    cfg.leader_timeout = Duration::from_millis(20);
    loop {
        if let Ok(client) = Client::new([address.to_string()], cfg.clone())
            && let Ok(Some(_)) = client.leader().await
        {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            return Err(format!("{address} not serving after {timeout:?}"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
