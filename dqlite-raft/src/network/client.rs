//! The dialing side: openraft's [`RaftNetworkFactory`] / [`RaftNetwork`] over a [`Connector`].
//!
//! # Detached exchanges
//!
//! openraft bounds every AppendEntries by its heartbeat interval (100 ms in
//! [`NodeOptions::low_latency_raft_config`](crate::node::NodeOptions::low_latency_raft_config))
//! and drops the RPC future when that expires. An AppendEntries carrying a large entry (a
//! multi-MiB transaction) can take longer than that to encode, ship, decode and fsync. If the
//! exchange died with the future, every retry would start from zero and never finish: a
//! livelock, and meanwhile no heartbeat reaches the follower, which starts an election.
//!
//! So a call does not run its exchange itself. The exchange (encode, write the request, read
//! one answer) runs in a spawned task that owns the connection; cancelling the call leaves the
//! task running, bounded only by its own, generous limit ([`NetConfig::detached_timeout`], at
//! least the call's own timeout), after which the task drops the connection. [`PeerClient`]
//! keeps the pending exchange together with a key describing its request, and the next call
//! makes use of it:
//!
//! - **Same request** (AppendEntries: same vote, `prev_log_id` and last log id; Vote: same vote
//!   and last log id; InstallSnapshot: same vote, snapshot id and offset): the call awaits the
//!   pending exchange's answer instead of sending the request again. Each answer is handed out
//!   at most once.
//! - **An AppendEntries extending the pending one** (same vote and `prev_log_id`, and the
//!   pending request's last log id among its entries, as when openraft retries with the entries
//!   proposed meanwhile): the call awaits the pending exchange, then sends only what it did not
//!   cover (below).
//! - **Anything else**: a finished exchange is collected (its connection reused, its
//!   confirmation recorded); an unfinished one is abandoned, which closes its connection.
//!
//! # Trimming what a follower confirmed
//!
//! When a follower answers `Success` to an AppendEntries under leader vote `V` whose last log
//! id is `L`, the client records `(V, L)`. A later AppendEntries under the same `V` whose
//! entries contain `L` is sent with the entries up to `L` removed and `prev_log_id = L`, so a
//! large entry travels once even though openraft, which saw its RPC time out, asks for it
//! again. The answer is mapped back to openraft's request:
//!
//! - `Success` stays `Success`: the follower holds `L` (durably: it answers only after its log
//!   is flushed) and everything after it, and under one vote the leader's log never changes, so
//!   the follower's log matches openraft's request up to its last entry.
//! - `HigherVote` is passed through (it depends on the vote only).
//! - `Conflict` is not passed through: openraft would read it as a conflict at *its*
//!   `prev_log_id`, which may be the follower's matching log id (openraft treats that as a
//!   follower log reversion and asserts against it). A conflict at `L` means the follower lost
//!   what it confirmed; the client drops every recorded confirmation and reports a network
//!   error, so openraft retries and the retry is sent untrimmed: openraft then sees the
//!   follower's answer to its own, complete request.
//!
//! Confirmations are only used under the vote they were recorded under (a new leader gets new
//! clients anyway), and any `Conflict` or `HigherVote` answer clears them.
//!
//! # Two connections per peer, and heartbeats on openraft's behalf
//!
//! Heartbeats (AppendEntries without entries) and Vote requests travel on a second connection
//! (the *light* lane, kept for reuse), so they never wait behind a large entry in transit on the
//! *bulk* lane. openraft itself sends no heartbeat while an AppendEntries with entries is
//! unanswered: after each timeout it retries the entries. So whenever a call has to wait for a
//! pending bulk AppendEntries, the client sends a heartbeat on the light lane on openraft's
//! behalf (at most one in flight), with the same vote, `prev_log_id` and `leader_commit` as the
//! request; its answer is recorded but never handed to openraft. The follower thus keeps
//! hearing from its leader about every heartbeat interval and starts no election.
//!
//! Delivering a heartbeat in parallel with the bulk exchange is safe for Raft: the follower's
//! `RaftCore` handles requests one at a time, in whatever order they arrive, and Raft is correct
//! under reordering and duplication of messages. A heartbeat carries no entries, so it never
//! appends; it can only truncate entries that conflict with its `prev_log_id`, which the bulk
//! request (same leader, same or earlier `prev_log_id`) would truncate as well. A stale
//! `prev_log_id` (one from before the bulk exchange) is one the follower still holds, as a
//! leader's log does not change under one vote, so it is simply accepted and cannot move the
//! follower's accepted log id backwards. Its `leader_commit` never exceeds what a quorum holds,
//! and a follower commits only up to what it accepted from this leader.
//!
//! One caveat of awaiting an earlier exchange: openraft records the follower's acknowledgement
//! at the time it issued the later call, not when the earlier request went out. openraft 0.9.25
//! uses that time only for the `millis_since_quorum_ack` metric; its read barrier
//! (`ensure_linearizable`) sends heartbeats through fresh clients, which share no state.
//!
//! # Connections
//!
//! A connection is returned to its lane only by an exchange that read exactly one answer, so it
//! is always in step: an answer is never delivered to another request than its own. A failed
//! or abandoned exchange closes its connection; the next call reconnects, but not before an
//! exponential backoff (10 ms doubling to [`MAX_CONNECT_BACKOFF`]) after failed connects, so a
//! dead peer costs no busy loop. Dropping the [`PeerClient`] aborts its pending exchanges.
//!
//! Dropping a [`PeerClient`] hands its idle connections to its [`Network`] (and the factory's
//! siblings), up to a few per peer, for the next client of the same peer. openraft 0.9.25
//! creates a client per voter for every read barrier (`ensure_linearizable`) and every
//! election, and without the pool each of those paid a TCP connect (and the dqlite node's
//! handshake, or a TLS handshake) per peer. A connection that carried an exchange before may
//! have been closed by its peer meanwhile (a restart): if writing to it or reading its answer
//! fails that way, the AppendEntries or Vote is sent once more on a new connection (both are
//! safe to repeat: Raft tolerates duplicated messages). InstallSnapshot is never repeated.

use std::any::Any;
use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{LogId, Vote};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::acks::FollowerAcks;
use super::codec::{self, CodecError, KIND_REQUEST, KIND_RESPONSE, Request, Response};
use super::connector::Connector;
use super::contact::LeaderContact;
use super::vote_hold::VoteHold;
use crate::TypeConfig;

/// The longest wait between connect attempts to a peer that refuses them. A peer that was
/// down is reached again at most this long after it listens: a restarted node learns its
/// leader that soon (a few connect attempts per second to a dead peer cost nothing).
pub const MAX_CONNECT_BACKOFF: Duration = Duration::from_millis(200);

/// Settings of the network client and server.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NetConfig {
    /// Largest frame accepted (a bigger announced length closes the connection).
    pub max_frame: usize,
    /// How long an exchange may run on after the call that started it was cancelled (the
    /// limit is at least the call's own timeout). Past it, the connection is closed. Default
    /// 10 s: enough to ship, decode and fsync a large entry on a slow link.
    pub detached_timeout: Duration,
    /// While it holds, no Vote request is sent (the call fails at once) and none that arrives
    /// is answered (the server holds it until the hold ends). Set by
    /// [`RaftNode`](crate::node::RaftNode) when read leases are on; see [`VoteHold`].
    pub vote_hold: VoteHold,
    /// Recorded by the server whenever this member accepts a leader's AppendEntries; see
    /// [`LeaderContact`].
    pub leader_contact: LeaderContact,
    /// Recorded by the client whenever a peer accepts this node's AppendEntries as leader;
    /// see [`FollowerAcks`].
    pub follower_acks: FollowerAcks,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            max_frame: 256 << 20,
            detached_timeout: Duration::from_secs(10),
            vote_hold: VoteHold::default(),
            leader_contact: LeaderContact::default(),
            follower_acks: FollowerAcks::default(),
        }
    }
}

/// Builders: `NetConfig::default().with_...(...)`, one per field (the struct is
/// `#[non_exhaustive]`, so that fields can be added without breaking callers).
impl NetConfig {
    /// Sets [`NetConfig::max_frame`].
    pub fn with_max_frame(mut self, max_frame: usize) -> Self {
        self.max_frame = max_frame;
        self
    }

    /// Sets [`NetConfig::detached_timeout`].
    pub fn with_detached_timeout(mut self, detached_timeout: Duration) -> Self {
        self.detached_timeout = detached_timeout;
        self
    }

    /// Sets [`NetConfig::vote_hold`].
    pub fn with_vote_hold(mut self, vote_hold: VoteHold) -> Self {
        self.vote_hold = vote_hold;
        self
    }
}

/// Idle connections per peer kept by a [`Network`] for its next clients.
const MAX_POOLED: usize = 8;

/// Idle connections left by dropped clients, by peer (node id and node record), type-erased
/// because a [`Network`] is generic over the connector only, not over the node type.
#[derive(Clone, Default)]
struct Pool {
    by_peer: Arc<parking_lot::Mutex<HashMap<String, Vec<Pooled>>>>,
}

/// A pooled connection, its stream type erased.
type Pooled = Box<dyn Any + Send>;

impl Pool {
    fn take<S: Send + 'static>(&self, key: &str) -> Option<Conn<S>> {
        let mut map = self.by_peer.lock();
        let conns = map.get_mut(key)?;
        while let Some(c) = conns.pop() {
            if let Ok(c) = c.downcast::<Conn<S>>() {
                return Some(*c);
            }
        }
        None
    }

    fn put<S: Send + 'static>(&self, key: &str, conn: Conn<S>) {
        let mut map = self.by_peer.lock();
        let conns = map.entry(key.to_string()).or_default();
        if conns.len() < MAX_POOLED {
            conns.push(Box::new(conn));
        }
    }
}

/// The network factory handed to openraft.
pub struct Network<K> {
    connector: Arc<K>,
    config: NetConfig,
    /// Idle connections of dropped clients, shared with the siblings.
    pool: Pool,
}

impl<K> Network<K> {
    /// A factory dialing with `connector`.
    pub fn new(connector: K, config: NetConfig) -> Self {
        Self {
            connector: Arc::new(connector),
            config,
            pool: Pool::default(),
        }
    }

    /// Another factory dialing with the same connector.
    pub(crate) fn sibling(&self) -> Self {
        Self {
            connector: self.connector.clone(),
            config: self.config.clone(),
            pool: self.pool.clone(),
        }
    }
}

/// What identifies a request for deduplication: two requests with the same key get the same
/// answer from a follower whose state did not change in between.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key<NID: openraft::NodeId> {
    /// AppendEntries: `last` is the last entry's log id, or `prev` without entries.
    Append {
        vote: Vote<NID>,
        prev: Option<LogId<NID>>,
        last: Option<LogId<NID>>,
    },
    Vote {
        vote: Vote<NID>,
        last: Option<LogId<NID>>,
    },
    Snapshot {
        vote: Vote<NID>,
        id: String,
        offset: u64,
    },
}

impl<NID: openraft::NodeId> Key<NID> {
    fn of<C: TypeConfig<NodeId = NID>>(req: &Request<C>) -> Self {
        match req {
            Request::AppendEntries(r) => Key::Append {
                vote: r.vote.clone(),
                prev: r.prev_log_id.clone(),
                last: r
                    .entries
                    .last()
                    .map(|e| e.log_id.clone())
                    .or_else(|| r.prev_log_id.clone()),
            },
            Request::Vote(r) => Key::Vote {
                vote: r.vote.clone(),
                last: r.last_log_id.clone(),
            },
            Request::InstallSnapshot(r) => Key::Snapshot {
                vote: r.vote.clone(),
                id: r.meta.snapshot_id.clone(),
                offset: r.offset,
            },
        }
    }

    /// Whether `rpc` starts where the request of this key started and carries its last entry:
    /// then the answer to this key's request covers a prefix of `rpc`.
    fn is_extended_by<C: TypeConfig<NodeId = NID>>(&self, rpc: &AppendEntriesRequest<C>) -> bool {
        match self {
            Key::Append {
                vote,
                prev,
                last: Some(last),
            } => {
                *vote == rpc.vote
                    && *prev == rpc.prev_log_id
                    && rpc.entries.iter().any(|e| e.log_id == *last)
            }
            _ => false,
        }
    }
}

/// What a follower confirmed holding: `upto` and everything before it, under leader `vote`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Confirmed<NID: openraft::NodeId> {
    vote: Vote<NID>,
    upto: LogId<NID>,
}

/// Removes from `rpc` the entries up to what `confirmed` says the follower holds, if it was
/// confirmed under `rpc`'s vote and is among `rpc`'s entries. Returns whether it trimmed.
fn trim<C: TypeConfig>(
    confirmed: Option<&Confirmed<C::NodeId>>,
    rpc: &mut AppendEntriesRequest<C>,
) -> bool {
    let Some(c) = confirmed else { return false };
    if c.vote != rpc.vote {
        return false;
    }
    let Some(pos) = rpc.entries.iter().position(|e| e.log_id == c.upto) else {
        return false;
    };
    rpc.entries.drain(..=pos);
    rpc.prev_log_id = Some(c.upto.clone());
    true
}

/// A connection in step: no request written whose answer was not read.
struct Conn<S> {
    stream: S,
    buf: Vec<u8>,
    /// Whether it carried an exchange before (then its peer may have closed it since).
    used: bool,
}

/// What a detached exchange ends with.
struct Outcome<C: TypeConfig, S> {
    result: Result<Response<C>, CallError>,
    /// The connection, still in step, if the exchange read its answer.
    conn: Option<Conn<S>>,
}

/// A spawned exchange, aborted (closing its connection) when dropped.
struct Detached<T>(JoinHandle<T>);

impl<T> Drop for Detached<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An exchange running detached from the call that started it.
struct Pending<C: TypeConfig, S> {
    /// Key of openraft's request (before trimming).
    key: Key<C::NodeId>,
    /// Whether the request sent was trimmed.
    trimmed: bool,
    task: Detached<Outcome<C, S>>,
}

/// One connection's worth of state: idle, or owned by a pending exchange (never both).
struct Lane<C: TypeConfig, S> {
    idle: Option<Conn<S>>,
    pending: Option<Pending<C, S>>,
}

impl<C: TypeConfig, S> Lane<C, S> {
    fn new() -> Self {
        Self {
            idle: None,
            pending: None,
        }
    }
}

/// Which connection a request travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LaneKind {
    /// AppendEntries with entries, InstallSnapshot.
    Bulk,
    /// Heartbeats and votes.
    Light,
}

impl LaneKind {
    fn of<C: TypeConfig>(req: &Request<C>) -> Self {
        match req {
            Request::AppendEntries(r) if !r.entries.is_empty() => LaneKind::Bulk,
            Request::InstallSnapshot(_) => LaneKind::Bulk,
            Request::AppendEntries(_) | Request::Vote(_) => LaneKind::Light,
        }
    }
}

/// A client for one peer.
///
/// Invariants: each lane has at most one exchange pending, which owns the lane's connection;
/// a connection is idle only when no request on it awaits its answer.
pub struct PeerClient<C: TypeConfig, K: Connector<C::Node>> {
    target: C::NodeId,
    node: C::Node,
    connector: Arc<K>,
    config: NetConfig,
    bulk: Lane<C, K::Stream>,
    light: Lane<C, K::Stream>,
    /// The latest log id the peer confirmed holding, and under which leader vote.
    confirmed: Option<Confirmed<C::NodeId>>,
    next_connect: Option<Instant>,
    connect_backoff: Duration,
    /// Where idle connections go when the client is dropped, and under which key.
    pool: Pool,
    pool_key: String,
}

impl<C: TypeConfig, K: Connector<C::Node>> Drop for PeerClient<C, K> {
    fn drop(&mut self) {
        for conn in [self.light.idle.take(), self.bulk.idle.take()]
            .into_iter()
            .flatten()
        {
            self.pool.put(&self.pool_key, conn);
        }
    }
}

impl<C: TypeConfig, K: Connector<C::Node>> RaftNetworkFactory<C> for Network<K> {
    type Network = PeerClient<C, K>;

    async fn new_client(&mut self, target: C::NodeId, node: &C::Node) -> Self::Network {
        PeerClient {
            pool_key: format!("{target}/{node:?}"),
            target,
            node: node.clone(),
            connector: self.connector.clone(),
            config: self.config.clone(),
            bulk: Lane::new(),
            light: Lane::new(),
            confirmed: None,
            next_connect: None,
            connect_backoff: Duration::from_millis(10),
            pool: self.pool.clone(),
        }
    }
}

enum CallError {
    Unreachable(io::Error),
    Network(CodecError),
    Timeout,
    /// A trimmed AppendEntries met a conflict: the follower lost what it had confirmed.
    TrimmedConflict,
}

/// Whether `r` answers an AppendEntries without rejecting the sender's vote: the peer
/// accepted the sender as leader of its term.
fn accepts_leader<C: TypeConfig>(r: &Response<C>) -> bool {
    matches!(
        r,
        Response::AppendEntries(Ok(AppendEntriesResponse::Success
            | AppendEntriesResponse::PartialSuccess(_)
            | AppendEntriesResponse::Conflict))
    )
}

/// Whether `e` says the peer closed the connection (rather than answering wrongly or slowly).
fn is_closed(e: &CallError) -> bool {
    matches!(e, CallError::Network(CodecError::Io(e)) if matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    ))
}

/// [`exchange`] on `conn`; if `conn` carried an exchange before and turns out closed by the
/// peer, once more on a new connection from `connector` (which then replaces `conn`), unless
/// `req` is an InstallSnapshot (see the module docs, "Connections").
async fn exchange_or_redial<C: TypeConfig, K: Connector<C::Node>>(
    conn: &mut Conn<K::Stream>,
    req: &Request<C>,
    max_frame: usize,
    connector: &K,
    node: &C::Node,
) -> Result<Response<C>, CallError> {
    let used = conn.used;
    conn.used = true;
    match exchange(conn, req, max_frame).await {
        Err(e) if used && is_closed(&e) && !matches!(req, Request::InstallSnapshot(_)) => {
            let stream = connector
                .connect(node)
                .await
                .map_err(CallError::Unreachable)?;
            *conn = Conn {
                stream,
                buf: Vec::new(),
                used: true,
            };
            exchange(conn, req, max_frame).await
        }
        r => r,
    }
}

/// Encodes `req`, writes it and reads one answer.
async fn exchange<C: TypeConfig, S: super::connector::Stream>(
    conn: &mut Conn<S>,
    req: &Request<C>,
    max_frame: usize,
) -> Result<Response<C>, CallError> {
    let frame = codec::encode(KIND_REQUEST, req).map_err(CallError::Network)?;
    codec::write_frame(&mut conn.stream, &frame)
        .await
        .map_err(CallError::Network)?;
    match codec::read_frame(&mut conn.stream, KIND_RESPONSE, max_frame, &mut conn.buf).await {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(CallError::Network(CodecError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "peer closed the connection",
        )))),
        Err(e) => Err(CallError::Network(e)),
    }
}

impl<C: TypeConfig, K: Connector<C::Node>> PeerClient<C, K> {
    fn lane(&mut self, kind: LaneKind) -> &mut Lane<C, K::Stream> {
        match kind {
            LaneKind::Bulk => &mut self.bulk,
            LaneKind::Light => &mut self.light,
        }
    }

    async fn call(&mut self, req: Request<C>, ttl: Duration) -> Result<Response<C>, CallError> {
        // Cancel-safe: every piece of state lives in `self` across awaits, and the exchange
        // itself runs in a task this timeout (or openraft's) does not cancel.
        match tokio::time::timeout(ttl, self.call_detached(req, ttl)).await {
            Ok(r) => r,
            Err(_) => Err(CallError::Timeout),
        }
    }

    async fn call_detached(
        &mut self,
        mut req: Request<C>,
        ttl: Duration,
    ) -> Result<Response<C>, CallError> {
        let key = Key::of(&req);
        let kind = LaneKind::of(&req);
        if let Some(answer) = self.settle(kind, &key, &req, ttl).await {
            return answer;
        }
        let mut trimmed = false;
        if let Request::AppendEntries(rpc) = &mut req {
            trimmed = trim(self.confirmed.as_ref(), rpc);
        }
        // Trimmed down to no entries, the request is a heartbeat and goes on the light lane.
        let kind = LaneKind::of(&req);
        if trimmed
            && kind == LaneKind::Light
            && let Some(answer) = self.settle(kind, &key, &req, ttl).await
        {
            return answer;
        }

        self.start(kind, key, req, trimmed, ttl).await?;
        self.finish(kind).await
    }

    /// Sends `req` (of openraft's request `key`) on `kind` as a detached exchange.
    async fn start(
        &mut self,
        kind: LaneKind,
        key: Key<C::NodeId>,
        req: Request<C>,
        trimmed: bool,
        ttl: Duration,
    ) -> Result<(), CallError> {
        // Who acknowledges (or fails) this node as leader, and in which term. A heartbeat is
        // recorded as unanswered before connecting: an unreachable peer is a silent one.
        let sent = std::time::Instant::now();
        let ack = match &req {
            Request::AppendEntries(r) if r.vote.is_committed() => {
                let (peer, term) = (self.target.to_string(), r.vote.leader_id().term);
                if r.entries.is_empty() {
                    self.config
                        .follower_acks
                        .record_unanswered(&peer, term, sent);
                }
                Some((self.config.follower_acks.clone(), peer, term))
            }
            _ => None,
        };
        let mut conn = match self.lane(kind).idle.take() {
            Some(c) => c,
            None => match self.connect().await {
                Ok(c) => c,
                Err(e) => {
                    if let Some((acks, peer, term)) = &ack {
                        acks.record_unanswered(peer, *term, sent);
                    }
                    return Err(e);
                }
            },
        };
        let limit = self.config.detached_timeout.max(ttl);
        let max_frame = self.config.max_frame;
        let connector = self.connector.clone();
        let node = self.node.clone();
        let task = tokio::spawn(async move {
            let ex = exchange_or_redial(&mut conn, &req, max_frame, &*connector, &node);
            let result = tokio::time::timeout(limit, ex).await;
            // Recorded here, not when a call collects the answer: the answer to a heartbeat
            // sent on openraft's behalf may not be collected for a while.
            if let Some((acks, peer, term)) = &ack {
                match &result {
                    Ok(Ok(r)) if accepts_leader(r) => acks.record(peer, *term, sent),
                    _ => acks.record_unanswered(peer, *term, sent),
                }
            }
            match result {
                Ok(Ok(r)) => Outcome {
                    result: Ok(r),
                    conn: Some(conn),
                },
                Ok(Err(e)) => Outcome {
                    result: Err(e),
                    conn: None,
                },
                Err(_) => Outcome {
                    result: Err(CallError::Timeout),
                    conn: None,
                },
            }
        });
        self.lane(kind).pending = Some(Pending {
            key,
            trimmed,
            task: Detached(task),
        });
        Ok(())
    }

    /// While openraft waits for a large AppendEntries still in transit, it sends no heartbeats
    /// (it retries the data instead); send one on its behalf on the light lane, unless one is
    /// still in flight there. It carries `rpc`'s vote, `prev_log_id` and `leader_commit`, so
    /// the follower hears from its leader, and nothing it could do to the follower's log that
    /// the pending request (with the same `prev_log_id`) would not do as well. Its answer is
    /// only recorded, never handed to openraft.
    async fn keep_alive(&mut self, rpc: &AppendEntriesRequest<C>, ttl: Duration) {
        if let Some(p) = self.light.pending.as_ref() {
            if !p.task.0.is_finished() {
                return;
            }
            let _ = self.finish(LaneKind::Light).await;
        }
        let hb = Request::AppendEntries(AppendEntriesRequest {
            vote: rpc.vote.clone(),
            prev_log_id: rpc.prev_log_id.clone(),
            leader_commit: rpc.leader_commit.clone(),
            entries: Vec::new(),
        });
        let key = Key::of(&hb);
        // A failure shows again on openraft's own next request; nothing to report here.
        let _ = self.start(LaneKind::Light, key, hb, false, ttl).await;
    }

    /// Deals with the exchange pending on `kind` before `req` (of `key`) is sent. Returns its
    /// answer if it is `req`'s own.
    async fn settle(
        &mut self,
        kind: LaneKind,
        key: &Key<C::NodeId>,
        req: &Request<C>,
        ttl: Duration,
    ) -> Option<Result<Response<C>, CallError>> {
        let p = self.lane(kind).pending.as_ref()?;
        let same = p.key == *key;
        let extends = matches!(req, Request::AppendEntries(r) if p.key.is_extended_by(r));
        if (same || extends)
            && kind == LaneKind::Bulk
            && !p.task.0.is_finished()
            && let Request::AppendEntries(rpc) = req
        {
            self.keep_alive(rpc, ttl).await;
        }
        if same {
            return Some(self.finish(kind).await);
        }
        if extends || self.lane(kind).pending.as_ref()?.task.0.is_finished() {
            // Collect its connection and confirmation; the answer is not `req`'s.
            let _ = self.finish(kind).await;
        } else {
            // Abandon it: dropping the task closes its connection.
            self.lane(kind).pending = None;
        }
        None
    }

    /// Awaits the exchange pending on `kind` and takes it: its connection back to the lane,
    /// what it confirmed recorded, its answer mapped for openraft.
    async fn finish(&mut self, kind: LaneKind) -> Result<Response<C>, CallError> {
        let lane = self.lane(kind);
        let Some(p) = lane.pending.as_mut() else {
            return Err(CallError::Network(CodecError::Io(io::Error::other(
                "no exchange pending",
            ))));
        };
        let joined = (&mut p.task.0).await;
        // No await since the join: the pending exchange is taken exactly when it finished.
        let Some(p) = lane.pending.take() else {
            return Err(CallError::Network(CodecError::Io(io::Error::other(
                "no exchange pending",
            ))));
        };
        let outcome = match joined {
            Ok(o) => o,
            Err(e) => Outcome {
                result: Err(CallError::Network(CodecError::Io(io::Error::other(
                    format!("exchange task failed: {e}"),
                )))),
                conn: None,
            },
        };
        if let Some(c) = outcome.conn {
            lane.idle = Some(c);
        }
        self.record(&p.key, p.trimmed, outcome.result)
    }

    /// Records what an answer says the peer holds, and maps the answer to a trimmed request
    /// back to openraft's request (see the module docs).
    fn record(
        &mut self,
        key: &Key<C::NodeId>,
        trimmed: bool,
        result: Result<Response<C>, CallError>,
    ) -> Result<Response<C>, CallError> {
        let Key::Append { vote, last, .. } = key else {
            return result;
        };
        let upto = match &result {
            Ok(Response::AppendEntries(Ok(AppendEntriesResponse::Success))) => last.clone(),
            Ok(Response::AppendEntries(Ok(AppendEntriesResponse::PartialSuccess(m)))) => m.clone(),
            Ok(Response::AppendEntries(Ok(AppendEntriesResponse::Conflict))) => {
                self.confirmed = None;
                if trimmed {
                    return Err(CallError::TrimmedConflict);
                }
                return result;
            }
            Ok(Response::AppendEntries(Ok(AppendEntriesResponse::HigherVote(_)))) => {
                self.confirmed = None;
                return result;
            }
            _ => return result,
        };
        if let Some(upto) = upto {
            let newer = match &self.confirmed {
                Some(c) => c.vote != *vote || c.upto < upto,
                None => true,
            };
            if newer {
                self.confirmed = Some(Confirmed {
                    vote: vote.clone(),
                    upto,
                });
            }
        }
        result
    }

    async fn connect(&mut self) -> Result<Conn<K::Stream>, CallError> {
        if let Some(conn) = self.pool.take(&self.pool_key) {
            return Ok(conn);
        }
        if let Some(t) = self.next_connect
            && Instant::now() < t
        {
            return Err(CallError::Unreachable(io::Error::new(
                io::ErrorKind::NotConnected,
                "backing off after a failed connect",
            )));
        }
        match self.connector.connect(&self.node).await {
            Ok(stream) => {
                self.next_connect = None;
                self.connect_backoff = Duration::from_millis(10);
                Ok(Conn {
                    stream,
                    buf: Vec::new(),
                    used: false,
                })
            }
            Err(e) => {
                self.next_connect = Some(Instant::now() + self.connect_backoff);
                self.connect_backoff = (self.connect_backoff * 2).min(MAX_CONNECT_BACKOFF);
                Err(CallError::Unreachable(e))
            }
        }
    }

    fn rpc_error<E: std::error::Error>(
        &self,
        e: CallError,
        action: RPCTypes,
        ttl: Duration,
        me: C::NodeId,
    ) -> RPCError<C::NodeId, C::Node, E> {
        match e {
            CallError::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
            CallError::Network(e) => RPCError::Network(NetworkError::new(&e)),
            CallError::TrimmedConflict => RPCError::Network(NetworkError::new(&io::Error::other(
                "the peer no longer holds entries it confirmed; resending them",
            ))),
            CallError::Timeout => RPCError::Timeout(Timeout {
                action,
                id: me,
                target: self.target.clone(),
                timeout: ttl,
            }),
        }
    }

    fn remote<E: std::error::Error>(&self, e: E) -> RPCError<C::NodeId, C::Node, E> {
        RPCError::RemoteError(RemoteError::new_with_node(
            self.target.clone(),
            self.node.clone(),
            e,
        ))
    }

    fn mismatch<E: std::error::Error>(&self) -> RPCError<C::NodeId, C::Node, E> {
        RPCError::Network(NetworkError::new(&io::Error::other(
            "response does not match the request",
        )))
    }
}

impl<C: TypeConfig, K: Connector<C::Node>> RaftNetwork<C> for PeerClient<C, K> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<C::NodeId>, RPCError<C::NodeId, C::Node, RaftError<C::NodeId>>>
    {
        let me = rpc.vote.leader_id().voted_for().unwrap_or_default();
        let ttl = option.hard_ttl();
        match self.call(Request::AppendEntries(rpc), ttl).await {
            Ok(Response::AppendEntries(Ok(r))) => Ok(r),
            Ok(Response::AppendEntries(Err(e))) => Err(self.remote(e)),
            Ok(_) => Err(self.mismatch()),
            Err(e) => Err(self.rpc_error(e, RPCTypes::AppendEntries, ttl, me)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<C>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<C::NodeId>,
        RPCError<C::NodeId, C::Node, RaftError<C::NodeId, InstallSnapshotError>>,
    > {
        let me = rpc.vote.leader_id().voted_for().unwrap_or_default();
        let ttl = option.hard_ttl();
        match self.call(Request::InstallSnapshot(rpc), ttl).await {
            Ok(Response::InstallSnapshot(Ok(r))) => Ok(r),
            Ok(Response::InstallSnapshot(Err(e))) => Err(self.remote(e)),
            Ok(_) => Err(self.mismatch()),
            Err(e) => Err(self.rpc_error(e, RPCTypes::InstallSnapshot, ttl, me)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<C::NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<C::NodeId>, RPCError<C::NodeId, C::Node, RaftError<C::NodeId>>> {
        let me = rpc.vote.leader_id().voted_for().unwrap_or_default();
        let ttl = option.hard_ttl();
        if self.config.vote_hold.held_until().is_some() {
            return Err(RPCError::Network(NetworkError::new(&io::Error::other(
                "votes are held after start while a previous leader's lease may run",
            ))));
        }
        match self.call(Request::Vote(rpc), ttl).await {
            Ok(Response::Vote(Ok(r))) => Ok(r),
            Ok(Response::Vote(Err(e))) => Err(self.remote(e)),
            Ok(_) => Err(self.mismatch()),
            Err(e) => Err(self.rpc_error(e, RPCTypes::Vote, ttl, me)),
        }
    }

    fn backoff(&self) -> Backoff {
        // Used by openraft after `Unreachable`: retry soon, then slower, up to 160 ms (with
        // the connect backoff, a restarted peer hears from its leader within about 200 ms
        // of listening again).
        Backoff::new((0..).map(|i: u32| Duration::from_millis(10u64 << i.min(4))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestConfig;
    use openraft::{BasicNode, Vote};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::DuplexStream;

    /// A connector whose every connection goes to a fake peer that answers each vote request
    /// with the request's term, the first answer on each connection only after
    /// `first_answer_delay`; with `close_after_first`, it closes each connection after its
    /// first answer.
    struct VotePeer {
        connections: Arc<AtomicUsize>,
        first_answer_delay: Duration,
        close_after_first: bool,
    }

    impl Connector<BasicNode> for VotePeer {
        type Stream = DuplexStream;

        async fn connect(&self, _node: &BasicNode) -> io::Result<DuplexStream> {
            self.connections.fetch_add(1, Ordering::SeqCst);
            let (client, mut server) = tokio::io::duplex(1 << 16);
            let (delay, close_after_first) = (self.first_answer_delay, self.close_after_first);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut first = true;
                while let Ok(Some(req)) = codec::read_frame::<Request<TestConfig>, _>(
                    &mut server,
                    KIND_REQUEST,
                    1 << 20,
                    &mut buf,
                )
                .await
                {
                    let Request::Vote(v) = req else { return };
                    if first {
                        tokio::time::sleep(delay).await;
                    }
                    let answer: Response<TestConfig> = Response::Vote(Ok(VoteResponse {
                        vote: v.vote,
                        vote_granted: true,
                        last_log_id: None,
                    }));
                    let Ok(frame) = codec::encode(KIND_RESPONSE, &answer) else {
                        return;
                    };
                    if codec::write_frame(&mut server, &frame).await.is_err() {
                        return;
                    }
                    if first && close_after_first {
                        // Dropping `server` closes the connection.
                        return;
                    }
                    first = false;
                }
            });
            Ok(client)
        }
    }

    /// A factory dialing a [`VotePeer`], and its count of connections made.
    fn vote_peer(
        first_answer_delay: Duration,
        close_after_first: bool,
        config: NetConfig,
    ) -> (Network<VotePeer>, Arc<AtomicUsize>) {
        let connections = Arc::new(AtomicUsize::new(0));
        let peer = VotePeer {
            connections: connections.clone(),
            first_answer_delay,
            close_after_first,
        };
        (Network::new(peer, config), connections)
    }

    fn vote(term: u64) -> VoteRequest<u64> {
        VoteRequest {
            vote: Vote::new(term, 1),
            last_log_id: None,
        }
    }

    /// openraft drops RPC futures on its own timeouts; the answer to a dropped request must
    /// never be handed to the next one.
    #[tokio::test]
    async fn a_cancelled_call_never_leaks_its_answer_into_the_next() {
        let (mut factory, connections) =
            vote_peer(Duration::from_millis(200), false, NetConfig::default());
        let mut client: PeerClient<TestConfig, VotePeer> =
            factory.new_client(2, &BasicNode::new("peer")).await;
        let option = RPCOption::new(Duration::from_secs(5));

        // Dropped after the request went out, before its (delayed) answer arrived.
        let cancelled = tokio::time::timeout(
            Duration::from_millis(50),
            client.vote(vote(7), option.clone()),
        )
        .await;
        assert!(
            cancelled.is_err(),
            "the first call should have been cancelled"
        );
        // Let the stale answer reach the old connection.
        tokio::time::sleep(Duration::from_millis(300)).await;

        let answer = client.vote(vote(8), option).await;
        let answer = match answer {
            Ok(a) => a,
            Err(e) => panic!("second call failed: {e}"),
        };
        assert_eq!(
            answer.vote,
            Vote::new(8, 1),
            "got the cancelled call's answer"
        );
        // The detached exchange read the stale answer, so its connection may be reused (one
        // connection); if it had not finished yet, it was abandoned (two).
        assert!(connections.load(Ordering::SeqCst) <= 2);
    }

    /// While votes are held (read leases, just after a start), none is sent.
    #[tokio::test]
    async fn votes_are_not_sent_while_held() {
        let hold = std::time::Instant::now() + Duration::from_millis(200);
        let config = NetConfig {
            vote_hold: VoteHold::until(hold),
            ..NetConfig::default()
        };
        let (mut factory, connections) = vote_peer(Duration::from_millis(200), false, config);
        let mut client: PeerClient<TestConfig, VotePeer> =
            factory.new_client(2, &BasicNode::new("peer")).await;
        let r = client.vote(vote(1), long()).await;
        assert!(matches!(r, Err(RPCError::Network(_))), "{r:?}");
        assert_eq!(connections.load(Ordering::SeqCst), 0);
        tokio::time::sleep_until(tokio::time::Instant::from_std(hold)).await;
        let r = client.vote(vote(2), long()).await;
        assert!(r.is_ok(), "{r:?}");
    }

    /// openraft makes a new client per voter for every read barrier and election: the
    /// connection of a dropped client serves the next one.
    #[tokio::test]
    async fn a_dropped_clients_connection_serves_the_next_client_of_that_peer() {
        let (mut factory, connections) =
            vote_peer(Duration::from_millis(200), false, NetConfig::default());
        let node = BasicNode::new("peer");
        for term in 1..=3 {
            let mut client: PeerClient<TestConfig, VotePeer> = factory.new_client(2, &node).await;
            let r = client.vote(vote(term), long()).await;
            assert!(
                matches!(r, Ok(ref a) if a.vote == Vote::new(term, 1)),
                "{r:?}"
            );
        }
        assert_eq!(connections.load(Ordering::SeqCst), 1);

        // Another peer (or the same id at another address) does not get it.
        let mut other: PeerClient<TestConfig, VotePeer> =
            factory.new_client(2, &BasicNode::new("elsewhere")).await;
        let r = other.vote(vote(4), long()).await;
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }

    /// A pooled connection the peer closed meanwhile costs a redial, not a failed request.
    #[tokio::test]
    async fn a_request_on_a_connection_the_peer_closed_is_sent_again_on_a_new_one() {
        let (mut factory, connections) = vote_peer(Duration::ZERO, true, NetConfig::default());
        let node = BasicNode::new("peer");
        for term in 1..=3 {
            let mut client: PeerClient<TestConfig, VotePeer> = factory.new_client(2, &node).await;
            let r = client.vote(vote(term), long()).await;
            assert!(
                matches!(r, Ok(ref a) if a.vote == Vote::new(term, 1)),
                "{r:?}"
            );
        }
        // The first on a fresh connection, each later one on a pooled (closed) connection,
        // then on a new one.
        assert_eq!(connections.load(Ordering::SeqCst), 3);

        // A client's own idle connection, closed by the peer, is redialed the same way.
        let mut client: PeerClient<TestConfig, VotePeer> = factory.new_client(2, &node).await;
        let r = client.vote(vote(9), long()).await;
        assert!(r.is_ok(), "{r:?}");
        let r = client.vote(vote(10), long()).await;
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(connections.load(Ordering::SeqCst), 5);
    }

    /// A peer that closes every connection before answering.
    struct ClosingPeer {
        connections: Arc<AtomicUsize>,
    }

    impl Connector<BasicNode> for ClosingPeer {
        type Stream = DuplexStream;

        async fn connect(&self, _node: &BasicNode) -> io::Result<DuplexStream> {
            self.connections.fetch_add(1, Ordering::SeqCst);
            let (client, _server) = tokio::io::duplex(1 << 16);
            Ok(client)
        }
    }

    #[tokio::test]
    async fn a_new_connection_that_fails_is_not_redialed() {
        let connections = Arc::new(AtomicUsize::new(0));
        let mut factory = Network::new(
            ClosingPeer {
                connections: connections.clone(),
            },
            NetConfig::default(),
        );
        let mut client: PeerClient<TestConfig, ClosingPeer> =
            factory.new_client(2, &BasicNode::new("peer")).await;
        let r = client.vote(vote(1), long()).await;
        assert!(matches!(r, Err(RPCError::Network(_))), "{r:?}");
        assert_eq!(connections.load(Ordering::SeqCst), 1);
    }

    /// A fake peer on in-memory streams: answers every request with what `answer` returns,
    /// after the delay it returns, and records what it received on which connection.
    struct FakePeer {
        connections: Arc<AtomicUsize>,
        seen: SeenLog,
        answer: fn(&Request<TestConfig>) -> (Response<TestConfig>, Duration),
    }

    /// Every request a [`FakePeer`] received, with the number of the connection it came on.
    type SeenLog = Arc<parking_lot::Mutex<Vec<(usize, Seen)>>>;

    /// What [`FakePeer`] received: for AppendEntries, the index of `prev_log_id` and of each
    /// entry.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Seen {
        Append {
            prev: Option<u64>,
            entries: Vec<u64>,
        },
        Other,
    }

    impl Connector<BasicNode> for FakePeer {
        type Stream = DuplexStream;

        async fn connect(&self, _node: &BasicNode) -> io::Result<DuplexStream> {
            let conn = self.connections.fetch_add(1, Ordering::SeqCst) + 1;
            let (client, mut server) = tokio::io::duplex(1 << 16);
            let seen = self.seen.clone();
            let answer = self.answer;
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while let Ok(Some(req)) = codec::read_frame::<Request<TestConfig>, _>(
                    &mut server,
                    KIND_REQUEST,
                    1 << 20,
                    &mut buf,
                )
                .await
                {
                    let s = match &req {
                        Request::AppendEntries(r) => Seen::Append {
                            prev: r.prev_log_id.map(|l| l.index),
                            entries: r.entries.iter().map(|e| e.log_id.index).collect(),
                        },
                        _ => Seen::Other,
                    };
                    seen.lock().push((conn, s));
                    let (resp, delay) = answer(&req);
                    tokio::time::sleep(delay).await;
                    let Ok(frame) = codec::encode(KIND_RESPONSE, &resp) else {
                        return;
                    };
                    if codec::write_frame(&mut server, &frame).await.is_err() {
                        return;
                    }
                }
            });
            Ok(client)
        }
    }

    /// AppendEntries with entries succeed after 400 ms, heartbeats at once.
    fn slow_appends(req: &Request<TestConfig>) -> (Response<TestConfig>, Duration) {
        match req {
            Request::AppendEntries(r) if r.entries.is_empty() => (
                Response::AppendEntries(Ok(AppendEntriesResponse::Success)),
                Duration::ZERO,
            ),
            Request::AppendEntries(_) => (
                Response::AppendEntries(Ok(AppendEntriesResponse::Success)),
                Duration::from_millis(400),
            ),
            _ => (
                Response::AppendEntries(Ok(AppendEntriesResponse::Conflict)),
                Duration::ZERO,
            ),
        }
    }

    /// Like a follower that lost its entries after index 2: conflict at any `prev_log_id`
    /// past 2, success otherwise, at once.
    fn lost_after_2(req: &Request<TestConfig>) -> (Response<TestConfig>, Duration) {
        let conflict =
            matches!(req, Request::AppendEntries(r) if r.prev_log_id.is_some_and(|l| l.index > 2));
        let resp = if conflict {
            AppendEntriesResponse::Conflict
        } else {
            AppendEntriesResponse::Success
        };
        (Response::AppendEntries(Ok(resp)), Duration::ZERO)
    }

    fn fake(
        answer: fn(&Request<TestConfig>) -> (Response<TestConfig>, Duration),
    ) -> (Network<FakePeer>, SeenLog) {
        let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let peer = FakePeer {
            connections: Arc::new(AtomicUsize::new(0)),
            seen: seen.clone(),
            answer,
        };
        (Network::new(peer, NetConfig::default()), seen)
    }

    fn lid(index: u64) -> LogId<u64> {
        LogId::new(openraft::CommittedLeaderId::new(1, 1), index)
    }

    /// AppendEntries of leader vote `term`, entries `entries` (all written in term 1).
    fn append(
        term: u64,
        prev: Option<u64>,
        entries: std::ops::RangeInclusive<u64>,
    ) -> AppendEntriesRequest<TestConfig> {
        AppendEntriesRequest {
            vote: Vote::new_committed(term, 1),
            prev_log_id: prev.map(lid),
            entries: entries
                .map(|i| openraft::Entry {
                    log_id: lid(i),
                    payload: openraft::EntryPayload::Normal(vec![i as u8]),
                })
                .collect(),
            leader_commit: None,
        }
    }

    /// AppendEntries without entries of leader vote `term`.
    fn heartbeat(term: u64, prev: u64) -> AppendEntriesRequest<TestConfig> {
        let mut r = append(term, Some(prev), 1..=1);
        r.entries.clear();
        r
    }

    fn sent_entries(seen: &[(usize, Seen)]) -> Vec<Seen> {
        seen.iter()
            .filter(|(_, s)| matches!(s, Seen::Append { entries, .. } if !entries.is_empty()))
            .map(|(_, s)| s.clone())
            .collect()
    }

    fn long() -> RPCOption {
        RPCOption::new(Duration::from_secs(5))
    }

    /// Starts an AppendEntries of entries 1..=3 and cancels it after 50 ms, as openraft's
    /// timeout does, leaving its exchange pending in the background.
    async fn start_and_cancel_bulk(client: &mut PeerClient<TestConfig, FakePeer>) {
        let cancelled = tokio::time::timeout(
            Duration::from_millis(50),
            client.append_entries(append(1, None, 1..=3), long()),
        )
        .await;
        assert!(
            cancelled.is_err(),
            "the first call should have been cancelled"
        );
    }

    #[tokio::test]
    async fn a_repeated_request_awaits_the_pending_exchange_and_sends_a_heartbeat_meanwhile() {
        let (mut factory, seen) = fake(slow_appends);
        let mut client = factory.new_client(2, &BasicNode::new("peer")).await;
        start_and_cancel_bulk(&mut client).await;

        let r = client.append_entries(append(1, None, 1..=3), long()).await;
        assert!(matches!(r, Ok(AppendEntriesResponse::Success)), "{r:?}");
        let seen = seen.lock().clone();
        assert_eq!(
            sent_entries(&seen),
            vec![Seen::Append {
                prev: None,
                entries: vec![1, 2, 3]
            }],
            "the entries were sent again"
        );
        let bulk_conn = seen[0].0;
        assert!(
            seen.iter().any(|(c, s)| *c != bulk_conn
                && *s
                    == Seen::Append {
                        prev: None,
                        entries: vec![]
                    }),
            "no heartbeat on a second connection while waiting: {seen:?}"
        );
    }

    #[tokio::test]
    async fn an_extended_request_sends_only_the_entries_not_yet_confirmed() {
        let (mut factory, seen) = fake(slow_appends);
        let mut client = factory.new_client(2, &BasicNode::new("peer")).await;
        start_and_cancel_bulk(&mut client).await;

        // openraft retries with the entries proposed meanwhile.
        let r = client.append_entries(append(1, None, 1..=5), long()).await;
        assert!(matches!(r, Ok(AppendEntriesResponse::Success)), "{r:?}");
        assert_eq!(
            sent_entries(&seen.lock()),
            vec![
                Seen::Append {
                    prev: None,
                    entries: vec![1, 2, 3]
                },
                Seen::Append {
                    prev: Some(3),
                    entries: vec![4, 5]
                },
            ]
        );

        // All of it confirmed: a retry of the whole range goes as a heartbeat at index 5.
        let r = client.append_entries(append(1, None, 1..=5), long()).await;
        assert!(matches!(r, Ok(AppendEntriesResponse::Success)), "{r:?}");
        let seen = seen.lock().clone();
        assert_eq!(sent_entries(&seen).len(), 2);
        assert_eq!(
            seen.last().map(|(_, s)| s.clone()),
            Some(Seen::Append {
                prev: Some(5),
                entries: vec![]
            })
        );
    }

    #[tokio::test]
    async fn confirmations_count_only_under_the_vote_they_were_made_under() {
        let (mut factory, seen) = fake(slow_appends);
        let mut client = factory.new_client(2, &BasicNode::new("peer")).await;
        let r = client.append_entries(append(1, None, 1..=3), long()).await;
        assert!(matches!(r, Ok(AppendEntriesResponse::Success)), "{r:?}");
        let r = client.append_entries(append(2, None, 1..=5), long()).await;
        assert!(matches!(r, Ok(AppendEntriesResponse::Success)), "{r:?}");
        assert_eq!(
            sent_entries(&seen.lock()).last(),
            Some(&Seen::Append {
                prev: None,
                entries: vec![1, 2, 3, 4, 5]
            }),
            "trimmed with a confirmation made under another vote"
        );
    }

    #[tokio::test]
    async fn a_conflict_on_a_trimmed_request_is_an_error_and_the_retry_goes_whole() {
        let (mut factory, seen) = fake(lost_after_2);
        let mut client = factory.new_client(2, &BasicNode::new("peer")).await;
        let r = client.append_entries(append(1, None, 1..=3), long()).await;
        assert!(matches!(r, Ok(AppendEntriesResponse::Success)), "{r:?}");

        // Trimmed to prev 3, which the peer lost: not reported as a conflict at openraft's
        // prev_log_id (None here), but as an error.
        let r = client.append_entries(append(1, None, 1..=5), long()).await;
        assert!(matches!(r, Err(RPCError::Network(_))), "{r:?}");

        // The retry is sent untrimmed, and the peer's own answer reaches openraft.
        let r = client.append_entries(append(1, None, 1..=5), long()).await;
        assert!(matches!(r, Ok(AppendEntriesResponse::Success)), "{r:?}");
        assert_eq!(
            sent_entries(&seen.lock()),
            vec![
                Seen::Append {
                    prev: None,
                    entries: vec![1, 2, 3]
                },
                Seen::Append {
                    prev: Some(3),
                    entries: vec![4, 5]
                },
                Seen::Append {
                    prev: None,
                    entries: vec![1, 2, 3, 4, 5]
                },
            ]
        );
    }

    /// The heartbeat sent on openraft's behalf while a large AppendEntries is in transit
    /// counts as the follower's acknowledgement of its leader (check-quorum reads it), at once,
    /// although openraft never sees its answer; the bulk answer counts too, once it arrives.
    #[tokio::test]
    async fn a_heartbeat_answered_meanwhile_is_recorded_as_an_acknowledgement() {
        let (mut factory, _seen) = fake(slow_appends);
        let acks = factory.config.follower_acks.clone();
        let voters = [vec!["1".to_string(), "2".to_string(), "3".to_string()]];
        let mut client = factory.new_client(2, &BasicNode::new("peer")).await;
        let before = std::time::Instant::now();
        start_and_cancel_bulk(&mut client).await;
        assert_eq!(acks.quorum_age(1, "1", &voters, before), None);
        // openraft's retry: it times out again (the entries need 400 ms), but the heartbeat
        // it causes is answered at once.
        let retry = tokio::time::timeout(
            Duration::from_millis(100),
            client.append_entries(append(1, None, 1..=3), long()),
        )
        .await;
        assert!(retry.is_err(), "the retry should still be waiting");
        // The bulk exchange answers only 400 ms after it started: a record now is the
        // heartbeat's, sent when the retry began.
        assert!(before.elapsed() < Duration::from_millis(400));
        let age = acks
            .quorum_age(1, "1", &voters, std::time::Instant::now())
            .expect("the heartbeat's answer is an acknowledgement");
        assert!(age < Duration::from_millis(150), "{age:?}");
        assert_eq!(
            acks.quorum_age(2, "1", &voters, std::time::Instant::now()),
            None,
            "recorded under the request's term only"
        );
        let r = client.append_entries(append(1, None, 1..=3), long()).await;
        assert!(matches!(r, Ok(AppendEntriesResponse::Success)), "{r:?}");
    }

    #[tokio::test]
    async fn a_heartbeat_does_not_wait_behind_a_bulk_exchange() {
        let (mut factory, seen) = fake(slow_appends);
        let mut client = factory.new_client(2, &BasicNode::new("peer")).await;
        start_and_cancel_bulk(&mut client).await;

        // openraft's heartbeat timeout: well under the 350 ms the bulk exchange still needs.
        let r = client
            .append_entries(heartbeat(1, 1), RPCOption::new(Duration::from_millis(200)))
            .await;
        assert!(matches!(r, Ok(AppendEntriesResponse::Success)), "{r:?}");
        let seen = seen.lock().clone();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_ne!(
            seen[0].0, seen[1].0,
            "the heartbeat shared the bulk connection"
        );
    }

    #[test]
    fn trim_cuts_up_to_the_confirmed_log_id_of_the_same_vote_only() {
        let confirmed = Confirmed {
            vote: Vote::new_committed(1, 1),
            upto: lid(3),
        };
        let mut r = append(1, None, 1..=5);
        assert!(trim(Some(&confirmed), &mut r));
        assert_eq!(r.prev_log_id, Some(lid(3)));
        assert_eq!(
            r.entries.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
            vec![4, 5]
        );

        let mut r = append(1, Some(1), 2..=3);
        assert!(trim(Some(&confirmed), &mut r));
        assert_eq!((r.prev_log_id, r.entries.len()), (Some(lid(3)), 0));

        // Another vote, L not among the entries, nothing confirmed: untouched.
        for (c, mut r) in [
            (Some(&confirmed), append(2, None, 1..=5)),
            (Some(&confirmed), append(1, Some(3), 4..=5)),
            (Some(&confirmed), append(1, None, 1..=2)),
            (None, append(1, None, 1..=5)),
        ] {
            let before = format!("{r:?}");
            assert!(!trim(c, &mut r));
            assert_eq!(format!("{r:?}"), before);
        }
    }

    #[test]
    fn keys_match_the_same_request_and_see_extensions() {
        let k = Key::of(&Request::AppendEntries(append(1, None, 1..=3)));
        assert_eq!(k, Key::of(&Request::AppendEntries(append(1, None, 1..=3))));
        assert_ne!(k, Key::of(&Request::AppendEntries(append(1, None, 1..=4))));
        assert_ne!(k, Key::of(&Request::AppendEntries(append(2, None, 1..=3))));
        assert!(k.is_extended_by(&append(1, None, 1..=4)));
        assert!(!k.is_extended_by(&append(1, None, 1..=2)));
        assert!(!k.is_extended_by(&append(1, Some(1), 2..=4)));
        assert!(!k.is_extended_by(&append(2, None, 1..=4)));
        let hb = Key::of(&Request::AppendEntries(heartbeat(1, 3)));
        assert!(!hb.is_extended_by(&append(1, Some(3), 4..=5)));
    }
}
