//! A node's metrics, in the Prometheus text format (served by [`crate::http`]).
//!
//! Counters and histograms are updated by one-line hooks where things happen (the gateway
//! times each request and counts its failure code, the commit pipeline counts commits, the
//! query path counts reads, the Raft log's I/O thread reports each `fdatasync`); Raft state
//! (role, term, leader, indexes, log and snapshot sizes) is read when the metrics are scraped.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use dqlite_raft::log_store::FsyncObserver;
use openraft::ServerState;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::node::Shared;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DbLabel {
    database: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DbCodeLabels {
    database: String,
    code: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeCodeLabels {
    r#type: &'static str,
    code: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabel {
    role: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latency buckets: 50 µs to ~1.6 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Every metric of one node.
pub(crate) struct Metrics {
    registry: Registry,
    commits: Family<DbLabel, Counter>,
    reads: Family<DbLabel, Counter>,
    db_errors: Family<DbCodeLabels, Counter>,
    requests: HistogramFamily<TypeLabel>,
    failures: Family<TypeCodeLabels, Counter>,
    connections: Gauge,
    fsync: Histogram,
    role: Family<RoleLabel, Gauge>,
    term: Gauge,
    leader: Gauge,
    commit_index: Gauge,
    applied_index: Gauge,
    last_log_index: Gauge,
    snapshot_index: Gauge,
    log_bytes: Gauge,
    snapshot_bytes: Gauge,
    quorum_ack_age: FloatGauge,
}

/// Counts an open client connection until dropped.
pub(crate) struct ConnectionGuard(Gauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("dqlite");
        let commits = Family::<DbLabel, Counter>::default();
        registry.register(
            "database_commits",
            "Transactions committed through Raft, by database",
            commits.clone(),
        );
        let reads = Family::<DbLabel, Counter>::default();
        registry.register(
            "database_reads",
            "Queries served, by database",
            reads.clone(),
        );
        let db_errors = Family::<DbCodeLabels, Counter>::default();
        registry.register(
            "database_errors",
            "Requests on a database answered with a failure, by database and code",
            db_errors.clone(),
        );
        let requests: HistogramFamily<TypeLabel> =
            Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "request_duration_seconds",
            "Client request latency, by request type",
            requests.clone(),
        );
        let failures = Family::<TypeCodeLabels, Counter>::default();
        registry.register(
            "request_failures",
            "Client requests answered with a failure, by request type and code",
            failures.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "connections",
            "Open client connections",
            connections.clone(),
        );
        let fsync = latency_histogram();
        registry.register(
            "raft_fsync_duration_seconds",
            "Duration of the Raft log's fdatasync calls",
            fsync.clone(),
        );
        let role = Family::<RoleLabel, Gauge>::default();
        registry.register(
            "role",
            "1 for this node's current role (leader, voter, standby, spare, none)",
            role.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let term = gauge(&mut registry, "raft_term", "Current Raft term");
        let leader = gauge(
            &mut registry,
            "raft_leader_id",
            "Id of the leader this node knows of (0: none)",
        );
        let commit_index = gauge(
            &mut registry,
            "raft_commit_index",
            "Last log index known committed",
        );
        let applied_index = gauge(
            &mut registry,
            "raft_applied_index",
            "Last log index applied to the databases",
        );
        let last_log_index = gauge(
            &mut registry,
            "raft_last_log_index",
            "Last log index appended",
        );
        let snapshot_index = gauge(
            &mut registry,
            "raft_snapshot_index",
            "Last log index covered by the snapshot",
        );
        let log_bytes = gauge(
            &mut registry,
            "raft_log_bytes",
            "Bytes of Raft log segment files",
        );
        let snapshot_bytes = gauge(
            &mut registry,
            "raft_snapshot_bytes",
            "Bytes of snapshot files",
        );
        let quorum_ack_age = FloatGauge::default();
        registry.register(
            "raft_quorum_ack_age_seconds",
            "On the leader: time since a quorum last acknowledged it (-1 elsewhere)",
            quorum_ack_age.clone(),
        );
        Metrics {
            registry,
            commits,
            reads,
            db_errors,
            requests,
            failures,
            connections,
            fsync,
            role,
            term,
            leader,
            commit_index,
            applied_index,
            last_log_index,
            snapshot_index,
            log_bytes,
            snapshot_bytes,
            quorum_ack_age,
        }
    }

    /// A transaction of `db` was committed.
    pub fn committed(&self, db: &str) {
        self.commits
            .get_or_create(&DbLabel {
                database: db.to_string(),
            })
            .inc();
    }

    /// A query on `db` was served.
    pub fn read(&self, db: &str) {
        self.reads
            .get_or_create(&DbLabel {
                database: db.to_string(),
            })
            .inc();
    }

    /// A request of `kind` took `elapsed`; `failure` is its failure code, if it failed, and
    /// `db` the database the connection had open.
    pub fn request(
        &self,
        kind: &'static str,
        elapsed: Duration,
        failure: Option<u64>,
        db: Option<&str>,
    ) {
        self.requests
            .get_or_create(&TypeLabel { r#type: kind })
            .observe(elapsed.as_secs_f64());
        if let Some(code) = failure {
            self.failures
                .get_or_create(&TypeCodeLabels { r#type: kind, code })
                .inc();
            if let Some(db) = db {
                self.db_errors
                    .get_or_create(&DbCodeLabels {
                        database: db.to_string(),
                        code,
                    })
                    .inc();
            }
        }
    }

    /// Counts a client connection while the guard lives.
    pub fn connection(&self) -> ConnectionGuard {
        self.connections.inc();
        ConnectionGuard(self.connections.clone())
    }

    /// What the Raft log calls after each `fdatasync`.
    pub fn fsync_observer(&self) -> FsyncObserver {
        let h = self.fsync.clone();
        FsyncObserver(Arc::new(move |d: Duration| h.observe(d.as_secs_f64())))
    }

    /// The Prometheus text (format 0.0.4) of every metric, Raft state read now.
    pub fn render(&self, shared: &Shared, raft_dir: &Path) -> String {
        let m = shared.raft.metrics().borrow().clone();
        let role = match (
            m.state,
            shared.member_roles().iter().find(|r| r.0 == shared.id),
        ) {
            (ServerState::Leader, _) => "leader",
            (_, Some((_, _, dqlite_wire::Role::Voter))) => "voter",
            (_, Some((_, _, dqlite_wire::Role::Standby))) => "standby",
            (_, Some((_, _, dqlite_wire::Role::Spare))) => "spare",
            (_, None) => "none",
        };
        for r in ["leader", "voter", "standby", "spare", "none"] {
            self.role
                .get_or_create(&RoleLabel { role: r })
                .set(i64::from(r == role));
        }
        let idx = |i: Option<u64>| i.map_or(0, |i| i as i64);
        self.term.set(m.current_term as i64);
        self.leader.set(idx(m.current_leader));
        self.commit_index.set(idx(shared.raft.committed_index()));
        self.applied_index
            .set(idx(m.last_applied.as_ref().map(|l| l.index)));
        self.last_log_index.set(idx(m.last_log_index));
        self.snapshot_index
            .set(idx(m.snapshot.as_ref().map(|l| l.index)));
        self.log_bytes.set(dir_bytes(&raft_dir.join("log")) as i64);
        self.snapshot_bytes
            .set(dir_bytes(&raft_dir.join("snapshots")) as i64);
        self.quorum_ack_age.set(
            m.millis_since_quorum_ack
                .map_or(-1.0, |ms| ms as f64 / 1000.0),
        );
        let mut out = String::new();
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        out
    }
}

/// Bytes of the files directly in `dir` (0 if it cannot be read).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
