//! [`RaftNode`]: the one place that calls openraft, so the node crate (and a later openraft
//! upgrade) touches a small, typed surface.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use openraft::error::{CheckIsLeaderError, ClientWriteError, InitializeError, RaftError};
use openraft::{Config, LogId, Raft, RaftMetrics, ServerState, SnapshotPolicy};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::TypeConfig;
use crate::error::StoreError;
use crate::log_store::{CloseWaiter, LogConfig, LogReader, LogStore};
use crate::network::codec::CodecError;
use crate::network::{Connector, NetConfig, Network, VoteHold, serve_stream};
use crate::read_barrier::ReadBarriers;
use crate::recovery::RecoveryReport;
use crate::state_machine::{StateMachine, StateMachineStore};

/// Settings of a [`RaftNode`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeOptions {
    /// openraft's settings; [`NodeOptions::low_latency_raft_config`] by default.
    pub raft: Config,
    /// Log store settings.
    pub log: LogConfig,
    /// Network settings.
    pub net: NetConfig,
    /// Ship the leader's new entries to the voters while its own `fsync` runs (default on).
    /// openraft 0.9.25 starts replicating an entry only after the leader's `fsync`, which puts
    /// two disk flushes in a row on every commit; see [`crate::network`] ("Eager push") for why
    /// sending early is safe. Off: plain openraft replication, with a heartbeat nudge when
    /// followers lag (see [`RaftNode`]).
    pub eager_push: bool,
    /// Read leases (default `None`: every read barrier asks a quorum). With `Some(lease)`, a
    /// read barrier that confirmed leadership with a quorum lets later read barriers, for
    /// `lease` from the moment its round started, answer without asking again. This is sound
    /// because a follower that heard from its leader refuses votes for
    /// `raft.election_timeout_max` after that (openraft's leader lease); a member that
    /// restarted, having forgotten that, holds votes (sent and received) for as long after it
    /// starts if its saved vote shows it followed a leader; and a leader answers no Vote
    /// request while its own lease runs ([`NetConfig::vote_hold`]; a leader handing over
    /// therefore waits for its lease to end). It assumes clocks that advance at about the same
    /// rate and no pause of the leader longer than `election_timeout_max - lease` between a
    /// barrier and the read it guards. `lease` must be shorter than
    /// `raft.election_timeout_min`, every member must use the same options, and raft traffic
    /// must reach members through [`RaftNode::serve`] (or with [`RaftNode::net_config`]).
    pub read_lease: Option<std::time::Duration>,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            raft: Self::low_latency_raft_config(),
            log: LogConfig::default(),
            net: NetConfig::default(),
            eager_push: true,
            read_lease: None,
        }
    }
}

/// Builders: `NodeOptions::default().with_...(...)`, one per field (the struct is
/// `#[non_exhaustive]`, so that fields can be added without breaking callers).
impl NodeOptions {
    /// Sets [`NodeOptions::raft`] (openraft's settings).
    pub fn with_raft(mut self, raft: Config) -> Self {
        self.raft = raft;
        self
    }

    /// Sets [`NodeOptions::log`].
    pub fn with_log(mut self, log: LogConfig) -> Self {
        self.log = log;
        self
    }

    /// Sets [`NodeOptions::net`].
    pub fn with_net(mut self, net: NetConfig) -> Self {
        self.net = net;
        self
    }

    /// Sets [`NodeOptions::eager_push`].
    pub fn with_eager_push(mut self, eager_push: bool) -> Self {
        self.eager_push = eager_push;
        self
    }

    /// Sets [`NodeOptions::read_lease`].
    pub fn with_read_lease(mut self, read_lease: Option<std::time::Duration>) -> Self {
        self.read_lease = read_lease;
        self
    }
}

impl NodeOptions {
    /// openraft settings tuned for a LAN cluster on busy machines:
    /// heartbeat 100 ms, election timeout 400–800 ms (fail-over well under a second without
    /// spurious elections when a core is saturated), up to 1024 entries per AppendEntries,
    /// a snapshot every 8192 applied entries keeping 1024 entries of trailing log.
    pub fn low_latency_raft_config() -> Config {
        Config {
            cluster_name: "dqlite-raft".into(),
            heartbeat_interval: 100,
            election_timeout_min: 400,
            election_timeout_max: 800,
            max_payload_entries: 1024,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(8192),
            max_in_snapshot_log_to_keep: 1024,
            purge_batch_size: 256,
            install_snapshot_timeout: 2000,
            ..Default::default()
        }
    }
}

/// Errors of [`RaftNode`] operations.
#[derive(Debug, thiserror::Error)]
pub enum NodeError<NID: openraft::NodeId, N: openraft::Node> {
    /// This node is not the leader; retry on `leader_id` (if known).
    #[error("not the leader (leader: {leader_id:?})")]
    NotLeader {
        /// The leader this node knows of.
        leader_id: Option<NID>,
        /// Its node record.
        leader_node: Option<N>,
    },
    /// The leader could not confirm its leadership with a quorum (a read barrier failed).
    #[error("no quorum: {0}")]
    NoQuorum(String),
    /// A membership change was rejected (e.g. one already in progress).
    #[error("membership change rejected: {0}")]
    Membership(String),
    /// `initialize` was refused (already initialized, or the member list is invalid).
    #[error("initialize refused: {0}")]
    Initialize(String),
    /// Raft stopped (storage failure or shutdown).
    #[error("raft stopped: {0}")]
    Fatal(String),
    /// Opening the storage failed.
    #[error("storage: {0}")]
    Storage(#[from] StoreError),
    /// The openraft configuration is invalid.
    #[error("invalid config: {0}")]
    Config(String),
}

type NodeErr<C> =
    NodeError<<C as openraft::RaftTypeConfig>::NodeId, <C as openraft::RaftTypeConfig>::Node>;

fn write_err<C: TypeConfig>(
    e: RaftError<C::NodeId, ClientWriteError<C::NodeId, C::Node>>,
) -> NodeErr<C> {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => NodeError::NotLeader {
            leader_id: f.leader_id,
            leader_node: f.leader_node,
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            NodeError::Membership(e.to_string())
        }
        RaftError::Fatal(f) => NodeError::Fatal(f.to_string()),
    }
}

/// Added to a read lease before a member that acknowledged the leader may campaign: covers
/// clocks that run at slightly different rates over the lease.
const LEASE_MARGIN: std::time::Duration = std::time::Duration::from_millis(50);

/// The result of a committed proposal.
#[derive(Debug, Clone)]
pub struct Proposed<C: TypeConfig> {
    /// Where the entry is in the log.
    pub log_id: LogId<C::NodeId>,
    /// What the state machine returned for it.
    pub response: C::R,
}

/// A running Raft member: log store, state machine, network and openraft, behind one API.
pub struct RaftNode<C: TypeConfig, S: StateMachine<C>> {
    id: C::NodeId,
    raft: Raft<C>,
    read_lease: Option<std::time::Duration>,
    quorum: QuorumClock,
    quorum_watch: tokio::task::JoinHandle<()>,
    state: StateMachineStore<C, S>,
    log_closed: CloseWaiter,
    log_reader: LogReader<C>,
    net: NetConfig,
    recovery: RecoveryReport,
    nudger: Option<tokio::task::JoinHandle<()>>,
    pusher: Option<tokio::task::JoinHandle<()>>,
    reads: ReadBarriers<C>,
}

/// When a leader last heard from a quorum, as of the last metrics report openraft sent.
///
/// openraft reports `millis_since_quorum_ack` (measured from the send time of the oldest
/// request a quorum acknowledged) at every turn of its loop, ticks included; the instant the
/// report was seen is kept with it, so that the age can be read at any time without waiting
/// for the next report.
#[derive(Clone, Default)]
struct QuorumClock {
    seen: Arc<parking_lot::Mutex<Option<(u64, std::time::Instant)>>>,
}

impl QuorumClock {
    /// Follows `raft`'s metrics until it stops.
    async fn watch<C: TypeConfig>(self, raft: Raft<C>) {
        let mut rx = raft.metrics();
        loop {
            {
                let m = rx.borrow_and_update();
                let leading = m.state == ServerState::Leader;
                *self.seen.lock() = m
                    .millis_since_quorum_ack
                    .filter(|_| leading)
                    .map(|ms| (ms, std::time::Instant::now()));
            }
            if rx.changed().await.is_err() {
                *self.seen.lock() = None;
                return;
            }
        }
    }

    fn age(&self) -> Option<std::time::Duration> {
        let (ms, seen) = (*self.seen.lock())?;
        Some(std::time::Duration::from_millis(ms) + seen.elapsed())
    }
}

/// Works around openraft 0.9.25 leaving entries that were appended while a replication RPC was
/// in flight to the next heartbeat tick (measured: ~150 ms pauses at 64 proposers). Whenever
/// the metrics change on a leader whose followers lag behind its log, ask for a heartbeat,
/// which starts replication of whatever is pending if no RPC is in flight (a no-op otherwise).
async fn nudge_replication<C: TypeConfig>(raft: Raft<C>) {
    let mut rx = raft.metrics();
    while rx.changed().await.is_ok() {
        let lagging = {
            let m = rx.borrow_and_update();
            let last = m.last_log_index.unwrap_or(0);
            m.state == ServerState::Leader
                && m.replication.as_ref().is_some_and(|r| {
                    r.values()
                        .any(|matched| matched.as_ref().map_or(0, |l| l.index) < last)
                })
        };
        if lagging && raft.trigger().heartbeat().await.is_err() {
            return;
        }
    }
}

impl<C: TypeConfig, S: StateMachine<C>> RaftNode<C, S> {
    /// Opens the storage under `dir` (`log/` and `snapshots/`), restores the state machine from
    /// the latest snapshot and starts Raft. Peers are reached through `connector`.
    pub async fn start<K: Connector<C::Node>>(
        id: C::NodeId,
        dir: &Path,
        options: NodeOptions,
        state_machine: S,
        connector: K,
    ) -> Result<Self, NodeErr<C>> {
        let (mut log, recovery) = LogStore::<C>::open(&dir.join("log"), options.log.clone())?;
        // A member whose saved vote is a leader's (committed) one may have granted that leader
        // a lease before it stopped; one that never followed a leader has granted none.
        let saved_vote = openraft::storage::RaftLogStorage::read_vote(&mut log)
            .await
            .map_err(|e| NodeError::Fatal(e.to_string()))?;
        let followed_a_leader = saved_vote.as_ref().is_some_and(|v| v.is_committed());
        // openraft 0.9 restarts a node whose saved vote is its own committed one as the leader
        // of that same term. Its log may have lost entries it had already sent (the eager push
        // ships them before the local fsync; a crash can lose what was not yet written), and
        // as leader of the same term it would then create different entries under the same
        // log ids, which followers holding the old ones take for matching: the replicas
        // diverge (seen under `cargo xtask chaos --nemesis disk`). Saved as an ordinary vote
        // for itself, the node restarts as a follower (it still votes for no one else in that
        // term) and can lead again only from a new term, with new log ids.
        if let Some(v) = &saved_vote
            && v.is_committed()
            && v.leader_id().voted_for().as_ref() == Some(&id)
        {
            let demoted = openraft::Vote::new(v.leader_id().term, id.clone());
            openraft::storage::RaftLogStorage::save_vote(&mut log, &demoted)
                .await
                .map_err(|e| NodeError::Fatal(e.to_string()))?;
        }
        let log_closed = log.close_waiter();
        let log_reader = log.reader();
        let state = StateMachineStore::open(&dir.join("snapshots"), state_machine).await?;
        let config = options
            .raft
            .clone()
            .validate()
            .map_err(|e| NodeError::Config(e.to_string()))?;
        let mut net = options.net.clone();
        if let Some(lease) = options.read_lease {
            if lease.as_millis() >= u128::from(config.election_timeout_min) {
                return Err(NodeError::Config(format!(
                    "read_lease {lease:?} must be shorter than election_timeout_min ({} ms)",
                    config.election_timeout_min
                )));
            }
            // The longest this member, in its previous life, may have granted a lease for.
            if followed_a_leader {
                let hold = std::time::Duration::from_millis(config.election_timeout_max + 100);
                net.vote_hold = VoteHold::until(std::time::Instant::now() + hold);
            }
        }
        let network = Network::new(connector, net.clone());
        let push = options.eager_push.then(|| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            log.set_push_tap(id.clone(), tx);
            (network.sibling(), log.reader(), rx)
        });
        let ttl = std::time::Duration::from_millis(config.heartbeat_interval);
        let max_entries = config.max_payload_entries;
        let raft = Raft::new(id.clone(), Arc::new(config), network, log, state.handle())
            .await
            .map_err(|e| NodeError::Fatal(e.to_string()))?;
        // The eager push makes the nudge redundant (measured: 64 proposers, same load, 1,301/s
        // without it vs 1,338/s with it), and at one proposer it only adds heartbeats.
        let nudger = (!options.eager_push).then(|| tokio::spawn(nudge_replication(raft.clone())));
        let pusher = push.map(|(factory, reader, rx)| {
            tokio::spawn(crate::network::push::run(
                raft.clone(),
                factory,
                reader,
                id.clone(),
                rx,
                ttl,
                max_entries,
            ))
        });
        let quorum = QuorumClock::default();
        let quorum_watch = tokio::spawn(quorum.clone().watch(raft.clone()));
        Ok(Self {
            id,
            reads: ReadBarriers::new(raft.clone(), options.read_lease, net.vote_hold.clone()),
            read_lease: options.read_lease,
            quorum,
            quorum_watch,
            raft,
            state,
            log_closed,
            log_reader,
            net,
            recovery,
            nudger,
            pusher,
        })
    }

    /// This node's id.
    pub fn id(&self) -> &C::NodeId {
        &self.id
    }

    /// What log recovery found when the node started (e.g. a cut torn tail).
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Forms a new cluster from `members` (call on one node, once).
    pub async fn initialize(
        &self,
        members: BTreeMap<C::NodeId, C::Node>,
    ) -> Result<(), NodeErr<C>> {
        match self.raft.initialize(members).await {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(InitializeError::NotAllowed(e))) => {
                Err(NodeError::Initialize(e.to_string()))
            }
            Err(RaftError::APIError(InitializeError::NotInMembers(e))) => {
                Err(NodeError::Initialize(e.to_string()))
            }
            Err(RaftError::Fatal(f)) => Err(NodeError::Fatal(f.to_string())),
        }
    }

    /// Proposes `data`; returns once it is committed (on a majority's disk) and applied here.
    pub async fn propose(&self, data: C::D) -> Result<Proposed<C>, NodeErr<C>> {
        let r = self.raft.client_write(data).await.map_err(write_err::<C>)?;
        Ok(Proposed {
            log_id: r.log_id,
            response: r.data,
        })
    }

    /// Read barrier (read index): confirms leadership with a quorum and waits until everything
    /// committed before the call is applied here. Reads after it are linearizable. Concurrent
    /// callers share quorum rounds: each waits for one that started after it was called.
    pub async fn read_barrier(&self) -> Result<Option<LogId<C::NodeId>>, NodeErr<C>> {
        self.reads.barrier().await.map_err(|e| match e {
            RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)) => NodeError::NotLeader {
                leader_id: f.leader_id,
                leader_node: f.leader_node,
            },
            RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(q)) => {
                NodeError::NoQuorum(q.to_string())
            }
            RaftError::Fatal(f) => NodeError::Fatal(f.to_string()),
        })
    }

    /// Adds a non-voting member; with `wait_caught_up`, returns once it has caught up.
    pub async fn add_learner(
        &self,
        id: C::NodeId,
        node: C::Node,
        wait_caught_up: bool,
    ) -> Result<LogId<C::NodeId>, NodeErr<C>> {
        let r = self
            .raft
            .add_learner(id, node, wait_caught_up)
            .await
            .map_err(write_err::<C>)?;
        Ok(r.log_id)
    }

    /// Makes `voters` the voting members (joint consensus under the hood). With `retain`, removed
    /// voters stay as learners.
    pub async fn change_membership(
        &self,
        voters: BTreeSet<C::NodeId>,
        retain: bool,
    ) -> Result<LogId<C::NodeId>, NodeErr<C>> {
        let r = self
            .raft
            .change_membership(voters, retain)
            .await
            .map_err(write_err::<C>)?;
        Ok(r.log_id)
    }

    /// Live metrics (role, leader, term, indexes, membership).
    ///
    /// Never call anything that reads the metrics again (most methods of this type do)
    /// while a `borrow()` of them is alive: the watch's lock is std's `RwLock`, which queues
    /// a second read behind openraft waiting to publish, and openraft waits for the first
    /// read: the node deadlocks. Copy what is needed out of the borrow first.
    pub fn metrics(&self) -> watch::Receiver<RaftMetrics<C::NodeId, C::Node>> {
        self.raft.metrics()
    }

    /// The index of the last entry this node knows to be committed (from the leader's
    /// commit index as last heard, or its own as leader); `None` before any.
    pub fn committed_index(&self) -> Option<u64> {
        self.log_reader.committed().map(|l| l.index)
    }

    /// The leader this node currently knows of.
    pub fn current_leader(&self) -> Option<C::NodeId> {
        self.raft.metrics().borrow().current_leader.clone()
    }

    /// How long ago a quorum of voters last acknowledged this leader (measured from when the
    /// acknowledged requests were sent); `None` if this node does not lead or has not heard
    /// from a quorum in its term yet. openraft 0.9 leaders do not step down when they lose
    /// their quorum: callers use this to stop serving (check-quorum).
    ///
    /// The younger of openraft's own figure and the network's [`FollowerAcks`]: while a large
    /// entry is in transit openraft hears no answer at all (it retries the entry and sends no
    /// heartbeat), but the heartbeats the network client sends on its behalf keep being
    /// answered.
    ///
    /// [`FollowerAcks`]: crate::network::FollowerAcks
    pub fn quorum_ack_age(&self) -> Option<std::time::Duration> {
        match (self.quorum.age(), self.net_quorum_age()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether [`RaftNode::quorum_ack_age`] is under `limit`, asking the network's records
    /// only when openraft's own figure does not already say so (the check runs on every
    /// client request, and the network's figure lists the voters anew each time).
    pub fn acknowledged_within(&self, limit: std::time::Duration) -> bool {
        self.quorum.age().is_some_and(|a| a < limit)
            || self.net_quorum_age().is_some_and(|a| a < limit)
    }

    /// The network's [`FollowerAcks`] figure for [`RaftNode::quorum_ack_age`].
    ///
    /// [`FollowerAcks`]: crate::network::FollowerAcks
    fn net_quorum_age(&self) -> Option<std::time::Duration> {
        let (term, configs) = self.leadership()?;
        self.net.follower_acks.quorum_age(
            term,
            &self.id.to_string(),
            &configs,
            std::time::Instant::now(),
        )
    }

    /// How long a quorum of voters has left this leader's AppendEntries unanswered (see
    /// [`FollowerAcks::quorum_silence`]); `None` if this node does not lead. Unlike
    /// [`RaftNode::quorum_ack_age`], it does not grow while this leader sends nothing (its
    /// own `fsync` of a large entry holds openraft's core, heartbeats included), so it tells a
    /// leader cut off from its quorum from one that is only slow itself: what a commit in
    /// flight should give up on.
    ///
    /// [`FollowerAcks::quorum_silence`]: crate::network::FollowerAcks::quorum_silence
    pub fn quorum_silence(&self) -> Option<std::time::Duration> {
        let (term, configs) = self.leadership()?;
        Some(self.net.follower_acks.quorum_silence(
            term,
            &self.id.to_string(),
            &configs,
            std::time::Instant::now(),
        ))
    }

    /// The term this node leads, with its voter configurations (two while joint) as ids in
    /// `Display` form; `None` if it does not lead.
    fn leadership(&self) -> Option<(u64, Vec<Vec<String>>)> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let leading = m.state == ServerState::Leader
            && m.vote.is_committed()
            && m.vote.leader_id().voted_for().as_ref() == Some(&self.id);
        leading.then(|| {
            let configs = m
                .membership_config
                .membership()
                .get_joint_config()
                .iter()
                .map(|voters| voters.iter().map(|v| v.to_string()).collect())
                .collect();
            (m.vote.leader_id().term, configs)
        })
    }

    /// Starts an election on this node, but only once it no longer owes the leader it
    /// follows its promise: with read leases on, a leader may answer reads from a lease
    /// taken on this member's last acknowledgement (see [`NodeOptions::read_lease`]), so the
    /// election waits until `read_lease` (plus a margin for clock rates) has passed since
    /// this member last accepted that leader's AppendEntries. A leader that keeps this member
    /// in contact (it is not handing over) thus keeps it from campaigning: returns `Ok(false)`
    /// if that was still the case at `deadline`, `Ok(true)` once the election was started.
    /// Without read leases the election starts at once.
    pub async fn campaign(&self, deadline: std::time::Instant) -> Result<bool, NodeErr<C>> {
        if let Some(lease) = self.read_lease {
            while let Some(free) = self
                .net
                .leader_contact
                .last()
                .map(|t| t + lease + LEASE_MARGIN)
            {
                let now = std::time::Instant::now();
                if now >= free {
                    break;
                }
                if now >= deadline {
                    return Ok(false);
                }
                tokio::time::sleep_until(tokio::time::Instant::from_std(free.min(deadline))).await;
            }
        }
        self.trigger_election().await?;
        Ok(true)
    }

    /// Starts an election on this node now. openraft 0.9 has no leadership transfer; calling this
    /// on an up-to-date follower is the closest equivalent (it wins if its log is current). It
    /// ignores this member's promise to its leader: see [`RaftNode::campaign`].
    pub async fn trigger_election(&self) -> Result<(), NodeErr<C>> {
        self.raft
            .trigger()
            .elect()
            .await
            .map_err(|e| NodeError::Fatal(e.to_string()))
    }

    /// Builds a snapshot now (normally driven by the snapshot policy).
    pub async fn trigger_snapshot(&self) -> Result<(), NodeErr<C>> {
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| NodeError::Fatal(e.to_string()))
    }

    /// Purges the log up to `upto` (only entries already in a snapshot are purged).
    pub async fn purge_log(&self, upto: u64) -> Result<(), NodeErr<C>> {
        self.raft
            .trigger()
            .purge_log(upto)
            .await
            .map_err(|e| NodeError::Fatal(e.to_string()))
    }

    /// Serves raft traffic arriving on an accepted stream (after the caller consumed whatever
    /// preamble told it this is a raft connection).
    pub async fn serve<T: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: T,
    ) -> Result<(), CodecError> {
        serve_stream(self.raft.clone(), stream, self.net.clone()).await
    }

    /// The network settings this node serves with ([`RaftNode::serve`]), including its vote
    /// hold when read leases are on: pass them to [`serve_listener`](crate::network::serve_listener)
    /// when accepting raft connections on a port of their own.
    pub fn net_config(&self) -> &NetConfig {
        &self.net
    }

    /// The underlying openraft handle (escape hatch; prefer the methods above).
    pub fn raft(&self) -> &Raft<C> {
        &self.raft
    }

    /// The application state machine (for local reads after [`RaftNode::read_barrier`]).
    pub fn state_machine(&self) -> &StateMachineStore<C, S> {
        &self.state
    }

    /// Stops Raft and waits until the log's I/O thread has flushed and exited, so the same
    /// directory can be reopened right away.
    pub async fn shutdown(self) -> Result<(), NodeErr<C>> {
        if let Some(n) = &self.nudger {
            n.abort();
        }
        if let Some(p) = &self.pusher {
            p.abort();
        }
        self.quorum_watch.abort();
        let res = self
            .raft
            .shutdown()
            .await
            .map_err(|e| NodeError::Fatal(e.to_string()));
        drop(self.raft);
        let waiter = self.log_closed.clone();
        let _ = tokio::task::spawn_blocking(move || waiter.wait()).await;
        res
    }
}
