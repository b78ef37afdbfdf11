//! The workloads: clients that run operations against the cluster while the nemesis works,
//! record every operation in a history, read the final state after the cluster healed, and
//! check the history.
//!
//! - [`register`]: read / write / compare-and-set per key; checked for linearizability.
//! - [`bank`]: transfers between accounts in explicit transactions; totals stay constant.
//! - [`set`]: unique inserts; every acknowledged insert present, nothing invented.
//! - [`append`]: appends to lists in transactions; reads are prefixes of each other.

pub mod append;
pub mod bank;
pub mod register;
pub mod set;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::adapter::{Cluster, Db, SqlError};
use super::history::{Clock, Counts, Micros};

/// Which workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// [`register`].
    Register,
    /// [`bank`].
    Bank,
    /// [`set`].
    Set,
    /// [`append`].
    Append,
}

impl Kind {
    /// Every workload, in the order `all` runs them.
    pub const ALL: [Kind; 4] = [Kind::Register, Kind::Bank, Kind::Set, Kind::Append];

    /// The name on the command line (also the database name).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Register => "register",
            Kind::Bank => "bank",
            Kind::Set => "set",
            Kind::Append => "append",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// What the clients of a workload share.
#[derive(Clone)]
pub struct Ctx {
    /// The cluster.
    pub cluster: Cluster,
    /// The run's clock.
    pub clock: Clock,
    /// Set when the clients must stop.
    pub stop: Arc<AtomicBool>,
    /// The run's seed (each client derives its own generator from it).
    pub seed: u64,
}

impl Ctx {
    /// True once the clients must stop.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The random generator of client `client` of workload `kind`.
    pub fn rng(&self, kind: Kind, client: usize) -> StdRng {
        StdRng::seed_from_u64(
            self.seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add((kind as u64) << 32 | client as u64),
        )
    }
}

/// A short random pause between two operations of one client.
pub async fn pace(rng: &mut StdRng) {
    let ms = rng.random_range(0..15u64);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// What the checker of a workload says.
#[derive(Debug, Clone)]
pub struct Report {
    /// The workload.
    pub workload: &'static str,
    /// Operations by outcome.
    pub counts: Counts,
    /// The verdict.
    pub verdict: Verdict,
    /// One line: what was checked and what was found.
    pub summary: String,
    /// The shortest violating sequence (operations, one per line) of each anomaly found.
    pub witness: Vec<String>,
}

/// A checker's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No anomaly.
    Pass,
    /// At least one anomaly.
    Anomaly,
    /// No anomaly found, but part of the history could not be decided within the limits.
    Undecided,
}

/// How the checkers judge reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    /// How stale a read may be (0: reads must be linearizable). With leader-local reads a
    /// deposed leader serves its old state until it steps down: a read may then be served as
    /// of any moment up to this long before it was invoked.
    pub stale_bound: Micros,
}

/// Runs a statement until it succeeds (schema creation and final reads), for up to `wait`.
pub async fn retry<T, F>(what: &str, wait: Duration, mut f: F) -> Result<T, String>
where
    F: AsyncFnMut() -> Result<T, SqlError>,
{
    let deadline = tokio::time::Instant::now() + wait;
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!(
        "{what}: no success within {wait:?} (last error: {last})"
    ))
}

/// Executes `sql` on a fresh connection until it succeeds (idempotent DDL only).
pub async fn setup_sql(cluster: &Cluster, db: &str, sql: &[&str]) -> Result<(), String> {
    let mut conn: Db = cluster.db(db);
    for stmt in sql {
        retry(stmt, Duration::from_secs(60), async || {
            conn.exec(stmt, &[]).await.map(|_| ())
        })
        .await?;
    }
    Ok(())
}
