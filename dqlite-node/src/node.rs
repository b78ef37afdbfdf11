//! [`Node`]: the listener, Raft, the FSM and the gateways, wired together.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dqlite_raft::network::{TcpConnector, TlsConnector, WithPreamble};
use dqlite_raft::node::{NodeOptions as RaftOptions, RaftNode};
use dqlite_vfs::{Vfs, VfsConfig};
use dqlite_wire::{Header, ProtocolVersion, Request, RequestType};
use openraft::ServerState;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::data_dir::DataDir;
use crate::database::Registry;
use crate::error::NodeError;
use crate::gateway;
use crate::http;
use crate::membership::assign::OperatorPins;
use crate::membership::handover::HandoverGate;
use crate::membership::{Member, RoleOptions, join, roles};
use crate::metrics::Metrics;
use crate::replication::NodeConfig;
use crate::replication::fsm::{Fsm, Metadata};
use crate::tls::TlsConfig;

/// The Raft instance of a node.
pub type Raft = RaftNode<NodeConfig, Fsm>;

/// Tunables of a node. The defaults suit a LAN cluster.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeOptions {
    /// Serve reads on the leader without a read-index round (C dqlite's behaviour; a deposed
    /// leader may then serve stale reads for up to an election timeout). Default false.
    pub leader_local_reads: bool,
    /// How long a write waits for the write lock held by another connection before it fails
    /// with SQLITE_BUSY. Default 10 s.
    pub write_wait: Duration,
    /// Largest request body accepted; a bigger one closes the connection. Default 64 MiB.
    pub max_message: usize,
    /// Prepared statements per connection. Default 1024.
    pub max_statements: usize,
    /// Client connections at once; the first request of one more is answered with a FAILURE
    /// naming the limit, then the connection is closed. Default 1024.
    pub max_connections: usize,
    /// Databases this node serves at once. OPEN of one more database answers a FAILURE
    /// (SQLITE_CANTOPEN, naming the limit); databases created through replication are always
    /// served. Default 1024.
    pub max_databases: usize,
    /// How long a commit may wait for its Raft entry to be committed and applied before the
    /// client gets 10506 (leadership lost, outcome unknown) and the commit is discarded
    /// locally. Commits normally end much sooner: when applied, when another leader's
    /// entry supersedes them, or when this node stops leading. Default 30 s.
    pub commit_timeout: Duration,
    /// A client connection that leaves a transaction open and sends nothing for this long
    /// has it rolled back (the connection stays; its next statements fail with 10506 until
    /// it ends the transaction), so that a client that vanished, or hangs, does not hold the
    /// write lock for ever. `None`: never. Default 30 s. Connections also use TCP keepalive
    /// (10 s idle, then 3 probes 5 s apart), which closes those whose peer vanished.
    pub idle_transaction_timeout: Option<Duration>,
    /// Heartbeat timeout announced in WELCOME, in milliseconds. Default 15000.
    pub heartbeat_timeout_ms: u64,
    /// How long [`Node::shutdown`] of a leader waits for another voter to take over before
    /// it stops anyway. Default 5 s.
    pub handover_timeout: Duration,
    /// Automatic role management (on by default: 3 voters, 3 stand-bys).
    pub roles: RoleOptions,
    /// How long a thread that hands a request over to another thread polls for the next
    /// step before it sleeps: a connection for its database worker's answer, and a worker
    /// for its next job. Waking a sleeping thread on another CPU costs tens of microseconds
    /// on virtual machines (more than a point read itself), so a short poll cuts a lone
    /// client's read latency about fourfold. Bounded: only while the node serves a single
    /// request, a worker only while its jobs keep arriving within the budget, and never on
    /// a single-CPU machine. Zero turns it off. Default 200 µs.
    pub spin: Duration,
    /// How often the node gives the heap's free memory back to the system (glibc's
    /// `malloc_trim`; see `dqlite_vfs::heap::trim`). Without it the resident size stays at
    /// the peak a bulk load or a large transaction reached. `None`: never. Default 1 s.
    pub heap_trim: Option<Duration>,
    /// Raft settings (timeouts, snapshot policy, log store). `raft.read_lease` (default
    /// [`DEFAULT_READ_LEASE`]) lets a read-index round cover the reads of the next 200 ms
    /// (see `dqlite_raft::node::NodeOptions::read_lease` for why that stays linearizable, and
    /// under which assumptions); `None` makes every read ask a quorum.
    pub raft: RaftOptions,
}

/// The default of [`NodeOptions::spin`].
pub const DEFAULT_SPIN: Duration = Duration::from_micros(200);

/// The read lease nodes use by default (`dqlite-node --read-lease=false` turns it off): well
/// under the 800 ms a follower refuses other candidates after hearing from its leader
/// (openraft's leader lease, the longest election timeout), leaving 600 ms for clock-rate
/// differences and a paused leader; a follower asked to campaign waits it out first.
pub const DEFAULT_READ_LEASE: Duration = Duration::from_millis(200);

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            leader_local_reads: false,
            write_wait: Duration::from_secs(10),
            commit_timeout: Duration::from_secs(30),
            idle_transaction_timeout: Some(Duration::from_secs(30)),
            max_message: 64 << 20,
            max_statements: 1024,
            max_connections: 1024,
            max_databases: 1024,
            heartbeat_timeout_ms: 15000,
            handover_timeout: Duration::from_secs(5),
            spin: DEFAULT_SPIN,
            heap_trim: Some(Duration::from_secs(1)),
            roles: RoleOptions::default(),
            raft: RaftOptions::default().with_read_lease(Some(DEFAULT_READ_LEASE)),
        }
    }
}

/// Builders: `NodeOptions::default().with_...(...)`, one per field (the struct is
/// `#[non_exhaustive]`, so that fields can be added without breaking callers).
impl NodeOptions {
    /// Sets [`NodeOptions::leader_local_reads`].
    pub fn with_leader_local_reads(mut self, leader_local_reads: bool) -> Self {
        self.leader_local_reads = leader_local_reads;
        self
    }

    /// Sets [`NodeOptions::spin`].
    pub fn with_spin(mut self, spin: Duration) -> Self {
        self.spin = spin;
        self
    }

    /// Sets [`NodeOptions::heap_trim`].
    pub fn with_heap_trim(mut self, heap_trim: Option<Duration>) -> Self {
        self.heap_trim = heap_trim;
        self
    }

    /// Sets [`NodeOptions::write_wait`].
    pub fn with_write_wait(mut self, write_wait: Duration) -> Self {
        self.write_wait = write_wait;
        self
    }

    /// Sets [`NodeOptions::max_message`].
    pub fn with_max_message(mut self, max_message: usize) -> Self {
        self.max_message = max_message;
        self
    }

    /// Sets [`NodeOptions::max_statements`].
    pub fn with_max_statements(mut self, max_statements: usize) -> Self {
        self.max_statements = max_statements;
        self
    }

    /// Sets [`NodeOptions::max_connections`].
    pub fn with_max_connections(mut self, max_connections: usize) -> Self {
        self.max_connections = max_connections;
        self
    }

    /// Sets [`NodeOptions::max_databases`].
    pub fn with_max_databases(mut self, max_databases: usize) -> Self {
        self.max_databases = max_databases;
        self
    }

    /// Sets [`NodeOptions::commit_timeout`].
    pub fn with_commit_timeout(mut self, commit_timeout: Duration) -> Self {
        self.commit_timeout = commit_timeout;
        self
    }

    /// Sets [`NodeOptions::idle_transaction_timeout`].
    pub fn with_idle_transaction_timeout(
        mut self,
        idle_transaction_timeout: Option<Duration>,
    ) -> Self {
        self.idle_transaction_timeout = idle_transaction_timeout;
        self
    }

    /// Sets [`NodeOptions::heartbeat_timeout_ms`].
    pub fn with_heartbeat_timeout_ms(mut self, heartbeat_timeout_ms: u64) -> Self {
        self.heartbeat_timeout_ms = heartbeat_timeout_ms;
        self
    }

    /// Sets [`NodeOptions::handover_timeout`].
    pub fn with_handover_timeout(mut self, handover_timeout: Duration) -> Self {
        self.handover_timeout = handover_timeout;
        self
    }

    /// Sets [`NodeOptions::raft`] (Raft settings).
    pub fn with_raft(mut self, raft: RaftOptions) -> Self {
        self.raft = raft;
        self
    }
}

/// State shared by the accept loop, the gateways and the handle.
pub(crate) struct Shared {
    pub id: u64,
    pub address: String,
    pub raft: Raft,
    pub registry: Arc<Registry>,
    pub options: NodeOptions,
    pub weight: AtomicU64,
    pub failure_domain: u64,
    pub next_conn: AtomicU64,
    pub connections: Arc<Semaphore>,
    /// TLS for every connection this node accepts or opens, if configured.
    pub tls: Option<TlsConfig>,
    /// Keeps a handover and the proposals of commits apart.
    pub gate: HandoverGate,
    /// Roles an operator assigned by hand recently (role management leaves them alone).
    pub pins: OperatorPins,
    /// One membership change at a time from this node (ASSIGN, ADD, REMOVE, role management).
    pub membership_lock: tokio::sync::Mutex<()>,
    /// Counters and histograms (`/metrics`).
    pub metrics: Metrics,
    /// The locked data directory (unlocked when the last owner of this state is gone).
    pub data_dir: DataDir,
    #[allow(dead_code)]
    pub metadata: Arc<Mutex<Metadata>>,
}

impl Shared {
    /// Whether this node serves as leader now: it is the Raft leader, not handing leadership
    /// over, and heard from a quorum recently (see [`Shared::has_quorum`]).
    pub fn is_leader(&self) -> bool {
        !self.gate.handing_over() && self.is_raft_leader() && self.has_quorum()
    }

    /// Check-quorum: whether a quorum of voters acknowledged this leader within the shortest
    /// election timeout. openraft 0.9 leaders never step down on their own, so a leader cut
    /// off in a minority would otherwise keep answering leader-local reads (stale once the
    /// majority elects another leader, which it cannot do sooner than that) and accept
    /// writes that hang; it refuses them instead and reports no leader until a quorum
    /// answers again or a newer leader deposes it.
    pub fn has_quorum(&self) -> bool {
        self.heard_from_quorum_within(self.options.raft.raft.election_timeout_min)
    }

    /// Whether this node leads and a quorum acknowledged it within `ms` milliseconds.
    pub fn heard_from_quorum_within(&self, ms: u64) -> bool {
        self.raft.acknowledged_within(Duration::from_millis(ms))
    }

    /// Whether this node leads and a quorum of voters has left its requests unanswered for
    /// `ms` milliseconds or more: evidence that it is cut off, not merely that it has been
    /// too busy to send (see [`dqlite_raft::node::RaftNode::quorum_silence`]).
    pub fn quorum_silent_for(&self, ms: u64) -> bool {
        let limit = Duration::from_millis(ms);
        self.raft.quorum_silence().is_some_and(|s| s >= limit)
    }

    /// Whether this node is the Raft leader now (handing over or not).
    pub fn is_raft_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.id)
    }

    /// Waits until this node, as leader, has applied every entry committed before its term
    /// (its own first entry of the term is applied). Until then its databases may miss
    /// committed writes, and a write executed on them would be computed on a stale base.
    /// False if it is not leader or the wait timed out.
    pub async fn wait_term_applied(&self, timeout: Duration) -> bool {
        let mut rx = self.raft.metrics();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let m = rx.borrow_and_update();
                if m.state != ServerState::Leader {
                    return false;
                }
                if m.last_applied.map(|l| l.leader_id.term) == Some(m.current_term) {
                    return true;
                }
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return false,
            }
        }
    }

    /// The leader this node knows of, with its address (not itself while it lacks a quorum).
    pub fn leader(&self) -> Option<(u64, String)> {
        let (id, addr) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            let id = m.current_leader?;
            let addr = m
                .membership_config
                .membership()
                .get_node(&id)
                .map(|n| n.addr.clone())?;
            (id, addr)
        };
        // Not while borrowing the metrics: `has_quorum` reads them again, and a second read
        // of the watch's lock blocks behind openraft waiting to publish (std's RwLock queues
        // new readers behind a waiting writer), which waits for the first read: the whole
        // node froze that way.
        if id == self.id && !self.has_quorum() {
            return None;
        }
        Some((id, addr))
    }

    /// Voters and learners of the current configuration: (id, address, is_voter).
    pub fn members(&self) -> Vec<(u64, String, bool)> {
        self.member_roles()
            .into_iter()
            .map(|(id, addr, role)| (id, addr, role == dqlite_wire::Role::Voter))
            .collect()
    }

    /// Waits (up to `timeout`) until no membership change is in flight: the effective
    /// configuration is uniform (not joint) and applied here. openraft refuses a change while
    /// another one is unfinished; ADD/ASSIGN/REMOVE wait instead, as a joining node's own
    /// ADD+ASSIGN may still be settling when an administrator's request arrives. False if it
    /// did not settle in time.
    pub(crate) async fn membership_settled(&self, timeout: std::time::Duration) -> bool {
        let mut rx = self.raft.metrics();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let m = rx.borrow_and_update();
                let stored = &m.membership_config;
                let uniform = stored.membership().get_joint_config().len() == 1;
                let applied = m.last_applied.as_ref().map(|l| l.index)
                    >= stored.log_id().as_ref().map(|l| l.index);
                if uniform && applied {
                    return true;
                }
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return false;
            }
        }
    }

    /// Every member with its role, as CLUSTER reports them.
    pub fn member_roles(&self) -> Vec<(u64, String, dqlite_wire::Role)> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
        membership
            .nodes()
            .map(|(id, n)| {
                let role = if voters.contains(id) {
                    dqlite_wire::Role::Voter
                } else if n.spare {
                    dqlite_wire::Role::Spare
                } else {
                    dqlite_wire::Role::Standby
                };
                (*id, n.addr.clone(), role)
            })
            .collect()
    }
}

/// Builds a [`Node`].
#[derive(Debug, Clone)]
pub struct NodeBuilder {
    id: u64,
    address: String,
    bind: Option<String>,
    http: Option<String>,
    dir: PathBuf,
    join: Vec<String>,
    options: NodeOptions,
    failure_domain: u64,
    tls: Option<TlsConfig>,
}

impl NodeBuilder {
    /// A node with id `id` (non-zero, unique in the cluster) listening on `address`
    /// (`host:port`; port 0 picks a free one) and keeping its data under `dir`.
    pub fn new(id: u64, address: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        NodeBuilder {
            id,
            address: address.into(),
            bind: None,
            http: None,
            dir: dir.into(),
            join: Vec::new(),
            options: NodeOptions::default(),
            failure_domain: 0,
            tls: None,
        }
    }

    /// Serve and dial over TLS (every node of the cluster and every client then needs a
    /// certificate the others trust; see [`TlsConfig`]).
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Listen on `address` (`host:port`, port 0 for a free one) instead of the address the
    /// node advertises to clients and peers (`NodeBuilder::new`), e.g. `0.0.0.0:9001` behind
    /// a public name, or a private port behind a proxy.
    pub fn bind(mut self, address: impl Into<String>) -> Self {
        self.bind = Some(address.into());
        self
    }

    /// Serve `/metrics`, `/healthz` and `/readyz` over HTTP on `address` (off by default).
    pub fn http_address(mut self, address: impl Into<String>) -> Self {
        self.http = Some(address.into());
        self
    }

    /// Members to contact to join an existing cluster. Without any, a node whose data
    /// directory holds no cluster yet bootstraps a new one-member cluster.
    pub fn join(mut self, addresses: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.join = addresses.into_iter().map(Into::into).collect();
        self
    }

    /// Tunables.
    pub fn options(mut self, options: NodeOptions) -> Self {
        self.options = options;
        self
    }

    /// Failure domain reported by DESCRIBE.
    pub fn failure_domain(mut self, domain: u64) -> Self {
        self.failure_domain = domain;
        self
    }

    /// Binds the address, opens the data directory, starts Raft and serves clients.
    pub async fn start(self) -> Result<Node, NodeError> {
        if self.id == 0 {
            return Err(NodeError::Config("node id 0 is reserved".into()));
        }
        let data_dir = DataDir::open(&self.dir, self.id)?;
        let bind = self.bind.clone().unwrap_or_else(|| self.address.clone());
        let listener = TcpListener::bind(&bind)
            .await
            .map_err(|source| NodeError::Listen {
                address: bind.clone(),
                source,
            })?;
        let local = listener.local_addr().map_err(|source| NodeError::Listen {
            address: bind.clone(),
            source,
        })?;
        let address = if self.address.ends_with(":0") && self.bind.is_none() {
            local.to_string()
        } else {
            self.address.clone()
        };
        data_dir.settle_identity(self.id, &self.address, &address)?;
        let http_listener = match &self.http {
            Some(a) => Some(
                TcpListener::bind(a)
                    .await
                    .map_err(|source| NodeError::Listen {
                        address: a.clone(),
                        source,
                    })?,
            ),
            None => None,
        };
        let http_local = http_listener.as_ref().and_then(|l| l.local_addr().ok());
        let metrics = Metrics::new();
        static VFS_SEQ: AtomicU64 = AtomicU64::new(0);
        let vfs_name = format!(
            "dqlite-node-{}-{}-{}",
            std::process::id(),
            self.id,
            VFS_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let vfs = Vfs::register(&vfs_name, VfsConfig::default())?;
        let registry = Arc::new(Registry::new(vfs, self.options.spin));
        let metadata = Arc::new(Mutex::new(Metadata::new()));
        let fsm = Fsm::new(registry.clone(), metadata.clone());
        let mut preamble = ProtocolVersion::V1.to_bytes().to_vec();
        let connect = Request::Connect {
            node_id: self.id,
            address: address.clone(),
        }
        .to_bytes()
        .map_err(|e| NodeError::Config(format!("address {address:?}: {e}")))?;
        preamble.extend_from_slice(&connect);
        let mut raft_options = self.options.raft.clone();
        raft_options.raft.cluster_name = "dqlite-rs".into();
        raft_options.log.on_fsync = Some(metrics.fsync_observer());
        let raft_dir = data_dir.path().join("raft");
        // The handshake and CONNECT go inside TLS, as a client's would.
        let raft = match &self.tls {
            Some(tls) => {
                let connector = WithPreamble {
                    inner: TlsConnector {
                        inner: TcpConnector::default(),
                        tls: tls.connector(),
                        server_name: tls.server_name(),
                    },
                    preamble: preamble.into(),
                };
                RaftNode::start(self.id, &raft_dir, raft_options, fsm, connector).await
            }
            None => {
                let connector = WithPreamble {
                    inner: TcpConnector::default(),
                    preamble: preamble.into(),
                };
                RaftNode::start(self.id, &raft_dir, raft_options, fsm, connector).await
            }
        }
        .map_err(|e| NodeError::Raft(e.to_string()))?;
        let shared = Arc::new(Shared {
            id: self.id,
            address: address.clone(),
            raft,
            registry,
            connections: Arc::new(Semaphore::new(self.options.max_connections)),
            options: self.options,
            weight: AtomicU64::new(0),
            failure_domain: self.failure_domain,
            next_conn: AtomicU64::new(1),
            gate: HandoverGate::default(),
            pins: OperatorPins::default(),
            membership_lock: tokio::sync::Mutex::new(()),
            metrics,
            data_dir,
            tls: self.tls.clone(),
            metadata,
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let accept = tokio::spawn(accept_loop(shared.clone(), listener, stop_rx.clone()));
        let roles_task = tokio::spawn(roles::run(shared.clone(), stop_rx.clone()));
        // Detached: it ends when the node stops (or is dropped, closing `stop`).
        if let Some(every) = shared.options.heap_trim {
            tokio::spawn(crate::heap::run(every, stop_rx.clone()));
        }
        let http_task =
            http_listener.map(|l| tokio::spawn(http::serve(shared.clone(), l, stop_rx.clone())));

        let initialized = {
            let m = shared.raft.metrics();
            let m = m.borrow();
            m.membership_config.membership().nodes().next().is_some()
        };
        let join_task = if initialized {
            None
        } else if self.join.is_empty() {
            let mut members = BTreeMap::new();
            members.insert(self.id, Member::new(address.clone()));
            if let Err(e) = shared.raft.initialize(members).await {
                tracing::info!(error = %e, "not bootstrapping");
            }
            None
        } else {
            Some(tokio::spawn(join::join_loop(
                self.id,
                address.clone(),
                self.join,
                self.tls,
                !shared.options.roles.enabled,
                stop_rx,
            )))
        };
        tracing::info!(id = self.id, %address, "node started");
        Ok(Node {
            shared: Some(shared),
            local,
            stop: stop_tx,
            accept: Some(accept),
            roles_task: Some(roles_task),
            http_task,
            http_local,
            join_task,
        })
    }
}

/// A running dqlite node.
pub struct Node {
    shared: Option<Arc<Shared>>,
    local: SocketAddr,
    stop: watch::Sender<bool>,
    accept: Option<tokio::task::JoinHandle<()>>,
    roles_task: Option<tokio::task::JoinHandle<()>>,
    http_task: Option<tokio::task::JoinHandle<()>>,
    http_local: Option<SocketAddr>,
    join_task: Option<tokio::task::JoinHandle<()>>,
}

/// A cheap, cloneable view of a running node: role, leader, metrics.
#[derive(Clone)]
pub struct NodeHandle {
    shared: Arc<Shared>,
}

/// A member of the cluster's current configuration ([`NodeHandle::members`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberInfo {
    /// Node id.
    pub id: u64,
    /// The address it advertises (clients and Raft).
    pub address: String,
    /// Its role.
    pub role: MemberRole,
}

/// A member's role, as CLUSTER reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberRole {
    /// Votes and replicates.
    Voter,
    /// Replicates without voting (an openraft learner).
    Standby,
    /// Neither votes nor is counted on (dqlite-rs replicates to it anyway: it is a learner
    /// flagged spare).
    Spare,
}

/// The leader a node knows of ([`NodeHandle::leader`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaderInfo {
    /// The leader's node id.
    pub id: u64,
    /// The address it advertises.
    pub address: String,
}

/// A node's role in Raft, as far as it knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    /// Leader.
    Leader,
    /// Voting follower or candidate.
    Voter,
    /// Non-voting member that replicates (stand-by).
    Standby,
    /// Member without a role (spare), e.g. a node that joined and was not placed yet.
    Spare,
    /// Not (yet) a member of any configuration.
    None,
}

impl Node {
    /// Resolves if Raft stops on its own with an error (a storage failure: a full disk, a
    /// failed fsync), with that error; never while Raft runs. Such a node can serve nothing
    /// any more (it refuses every request): stop it and start it again once the cause is
    /// gone, so that it recovers from its log. The `dqlite-node` binary exits with status 1.
    pub async fn failed(&self) -> String {
        let Some(shared) = &self.shared else {
            return std::future::pending().await;
        };
        let mut rx = shared.raft.metrics();
        loop {
            if let Err(e) = &rx.borrow_and_update().running_state {
                return e.to_string();
            }
            if rx.changed().await.is_err() {
                return "raft stopped".to_string();
            }
        }
    }

    /// A builder (see [`NodeBuilder::new`]).
    pub fn builder(id: u64, address: impl Into<String>, dir: impl Into<PathBuf>) -> NodeBuilder {
        NodeBuilder::new(id, address, dir)
    }

    /// The address the node listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The address the HTTP endpoint listens on, if [`NodeBuilder::http_address`] was given.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_local
    }

    /// A handle for queries.
    pub fn handle(&self) -> Option<NodeHandle> {
        self.shared.clone().map(|shared| NodeHandle { shared })
    }

    /// Stops the node. With role management on, a voter or stand-by first hands its role to
    /// the best online spare or stand-by and becomes a spare (see [`RoleOptions`]). A leader
    /// hands leadership to the most up-to-date voter (waiting
    /// at most [`NodeOptions::handover_timeout`] for it to take over, while still serving),
    /// then the node stops serving, closes client and peer connections and shuts Raft down
    /// cleanly. A failed handover is logged, not returned: the node stops either way and the
    /// cluster elects a leader after an election timeout, as after a crash.
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        if let Some(r) = self.roles_task.take() {
            r.abort();
            let _ = r.await;
        }
        if let Some(shared) = &self.shared {
            roles::hand_over_role(shared).await;
        }
        if let Some(shared) = &self.shared
            && shared.is_leader()
            && shared.most_up_to_date_voter().is_some()
        {
            let started = std::time::Instant::now();
            match shared
                .hand_over(None, shared.options.handover_timeout)
                .await
            {
                Ok(leader) => tracing::info!(
                    leader,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "handed leadership over"
                ),
                Err(e) => tracing::warn!(error = %e, "stopping without a handover"),
            }
        }
        let _ = self.stop.send(true);
        if let Some(j) = self.join_task.take() {
            j.abort();
            let _ = j.await;
        }
        if let Some(a) = self.accept.take() {
            let _ = a.await;
        }
        if let Some(h) = self.http_task.take() {
            let _ = h.await;
        }
        let Some(shared) = self.shared.take() else {
            return Ok(());
        };
        // Gateways are gone; the only other owners are handles the caller still holds.
        let mut shared = shared;
        for _ in 0..50 {
            match Arc::try_unwrap(shared) {
                Ok(s) => {
                    let registry = s.registry.clone();
                    let r = s
                        .raft
                        .shutdown()
                        .await
                        .map_err(|e| NodeError::Raft(e.to_string()));
                    registry.clear();
                    return r;
                }
                Err(s) => {
                    shared = s;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        let r = shared
            .raft
            .raft()
            .shutdown()
            .await
            .map_err(|e| NodeError::Raft(e.to_string()));
        shared.registry.clear();
        r
    }
}

impl NodeHandle {
    /// This node's id.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The address this node advertises.
    pub fn address(&self) -> &str {
        &self.shared.address
    }

    /// This node's role.
    pub fn role(&self) -> NodeRole {
        if self.shared.is_leader() {
            return NodeRole::Leader;
        }
        match self
            .shared
            .member_roles()
            .into_iter()
            .find(|(id, _, _)| *id == self.shared.id)
        {
            Some((_, _, dqlite_wire::Role::Voter)) => NodeRole::Voter,
            Some((_, _, dqlite_wire::Role::Standby)) => NodeRole::Standby,
            Some((_, _, dqlite_wire::Role::Spare)) => NodeRole::Spare,
            None => NodeRole::None,
        }
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<LeaderInfo> {
        self.shared
            .leader()
            .map(|(id, address)| LeaderInfo { id, address })
    }

    /// Members of the current configuration, with their roles.
    pub fn members(&self) -> Vec<MemberInfo> {
        self.shared
            .member_roles()
            .into_iter()
            .map(|(id, address, role)| MemberInfo {
                id,
                address,
                role: match role {
                    dqlite_wire::Role::Voter => MemberRole::Voter,
                    dqlite_wire::Role::Standby => MemberRole::Standby,
                    dqlite_wire::Role::Spare => MemberRole::Spare,
                },
            })
            .collect()
    }

    /// Raft metrics (term, indexes, membership, replication).
    pub fn metrics(&self) -> openraft::RaftMetrics<u64, Member> {
        self.shared.raft.metrics().borrow().clone()
    }

    /// Hands leadership to voter `target` (the most up-to-date voter if `None`) and returns
    /// the id of the new leader; see [`Node::shutdown`]. Fails if this node does not lead,
    /// has no other voter, or nobody took over within `timeout` (then it still leads).
    pub async fn transfer_leadership(
        &self,
        target: Option<u64>,
        timeout: Duration,
    ) -> Result<u64, NodeError> {
        self.shared.hand_over(target, timeout).await
    }

    /// Whether this node is ready to serve (what `/readyz` answers): it knows a leader it can
    /// reach and has applied every entry up to the commit index it last heard. The error says
    /// why not.
    pub async fn ready(&self) -> Result<(), String> {
        crate::http::readiness(&self.shared).await
    }

    /// Waits until some node is known as leader, up to `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Option<LeaderInfo> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(l) = self.leader() {
                return Some(l);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    set_keepalive(&stream);
                    tasks.spawn(serve_connection(shared.clone(), stream, peer));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
}

/// TCP keepalive on an accepted connection: a peer that vanished without closing (power
/// loss, a cut network) is noticed after about 25 s of silence, and its connection closed
/// (with it, a transaction it left open).
fn set_keepalive(stream: &TcpStream) {
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(10))
        .with_interval(Duration::from_secs(5))
        .with_retries(3);
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
        tracing::debug!(error = %e, "cannot set TCP keepalive");
    }
}

/// Completes TLS first when the node has it, then serves the stream.
async fn serve_connection(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    match shared.tls.as_ref().map(TlsConfig::acceptor) {
        Some(acceptor) => {
            match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                Ok(Ok(tls)) => serve_stream(shared, tls, peer).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
        None => serve_stream(shared, stream, peer).await,
    }
}

/// Answers the first request of a connection over `max_connections` with a FAILURE naming the
/// limit, then closes it. The request's body is read first (when it is small), so that the
/// close is a clean one and the client gets to read the answer rather than a reset.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    header: &Header,
    max_connections: usize,
) {
    const MAX_DISCARD: usize = 64 << 10;
    if header.body_len() <= MAX_DISCARD {
        let mut body = vec![0u8; header.body_len()];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut body));
        if !matches!(read.await, Ok(Ok(_))) {
            return;
        }
    }
    let answer = dqlite_wire::Response::failure(
        1,
        format!("too many connections (this node allows {max_connections})"),
    );
    if let Ok(bytes) = answer.to_bytes() {
        let write = async {
            stream.write_all(&bytes).await?;
            stream.shutdown().await
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), write).await;
    }
}

/// Reads the handshake and the first message header; CONNECT hands the stream to Raft,
/// anything else to a gateway.
async fn serve_stream<S: AsyncRead + AsyncWrite + Unpin>(
    shared: Arc<Shared>,
    mut stream: S,
    peer: SocketAddr,
) {
    let mut hs = [0u8; 8];
    let first = tokio::time::timeout(Duration::from_secs(30), async {
        stream.read_exact(&mut hs).await?;
        let mut h = [0u8; 8];
        stream.read_exact(&mut h).await?;
        Ok::<_, std::io::Error>(h)
    })
    .await;
    let Ok(Ok(h)) = first else {
        return;
    };
    let Ok(version) = ProtocolVersion::decode(hs) else {
        tracing::debug!(%peer, "unknown protocol version: closing");
        return;
    };
    let header = Header::decode(h);
    if header.type_code == RequestType::Connect.code() {
        if header.body_len() > 4096 || header.body_len() == 0 {
            return;
        }
        let mut body = vec![0u8; header.body_len()];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        match Request::decode(&header, &body) {
            Ok(Request::Connect { node_id, address }) => {
                tracing::debug!(%peer, node_id, %address, "raft connection");
                if let Err(e) = shared.raft.serve(stream).await {
                    tracing::debug!(%peer, error = %e, "raft connection ended");
                }
            }
            _ => tracing::debug!(%peer, "malformed CONNECT: closing"),
        }
        return;
    }
    let Ok(_permit) = shared.connections.clone().try_acquire_owned() else {
        tracing::warn!(%peer, "too many connections: refusing");
        refuse(stream, &header, shared.options.max_connections).await;
        return;
    };
    let mut prefix = hs.to_vec();
    prefix.extend_from_slice(&h);
    gateway::serve(shared, stream, &prefix, version).await;
}
