//! The dialing side: openraft's [`RaftNetworkFactory`] / [`RaftNetwork`] over a [`Connector`].
//!
//! One persistent connection per peer client, one request in flight on it (openraft sends one
//! RPC at a time per replication stream). A failed or timed-out RPC drops the connection, since
//! its state is unknown; the next RPC reconnects, but not before an exponential backoff
//! (10 ms doubling to 1 s) after failed connects, so a dead peer costs no busy loop.
//!
//! A call is not assumed to run to completion: openraft wraps RPCs in its own timeouts and
//! drops the future mid-exchange. The connection then still carries that exchange's unread
//! answer, which the next request would take for its own. [`PeerClient`] marks an exchange as
//! in flight before it writes and clears the mark only when the answer was read; a call that
//! finds the mark still set drops the connection first.

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
use tokio::time::Instant;

use super::codec::{self, CodecError, KIND_REQUEST, KIND_RESPONSE, Request, Response};
use super::connector::Connector;
use crate::TypeConfig;

/// Settings of the network client and server.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Largest frame accepted (a bigger announced length closes the connection).
    pub max_frame: usize,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            max_frame: 256 << 20,
        }
    }
}

/// The network factory handed to openraft.
pub struct Network<K> {
    connector: Arc<K>,
    config: NetConfig,
}

impl<K> Network<K> {
    /// A factory dialing with `connector`.
    pub fn new(connector: K, config: NetConfig) -> Self {
        Self {
            connector: Arc::new(connector),
            config,
        }
    }

    /// Another factory dialing with the same connector.
    pub(crate) fn sibling(&self) -> Self {
        Self {
            connector: self.connector.clone(),
            config: self.config.clone(),
        }
    }
}

/// A client for one peer.
pub struct PeerClient<C: TypeConfig, K: Connector<C::Node>> {
    target: C::NodeId,
    node: C::Node,
    connector: Arc<K>,
    config: NetConfig,
    conn: Option<K::Stream>,
    buf: Vec<u8>,
    next_connect: Option<Instant>,
    connect_backoff: Duration,
    /// Set while a request is written and its answer not yet read. Still set when a call
    /// starts means the previous call was cancelled mid-exchange: `conn` is out of step.
    in_flight: bool,
}

impl<C: TypeConfig, K: Connector<C::Node>> RaftNetworkFactory<C> for Network<K> {
    type Network = PeerClient<C, K>;

    async fn new_client(&mut self, target: C::NodeId, node: &C::Node) -> Self::Network {
        PeerClient {
            target,
            node: node.clone(),
            connector: self.connector.clone(),
            config: self.config.clone(),
            conn: None,
            buf: Vec::new(),
            next_connect: None,
            connect_backoff: Duration::from_millis(10),
            in_flight: false,
        }
    }
}

enum CallError {
    Unreachable(io::Error),
    Network(CodecError),
    Timeout,
}

impl<C: TypeConfig, K: Connector<C::Node>> PeerClient<C, K> {
    async fn call(&mut self, req: &Request<C>, ttl: Duration) -> Result<Response<C>, CallError> {
        let frame = codec::encode(KIND_REQUEST, req).map_err(CallError::Network)?;
        if self.in_flight {
            // The previous call was dropped before reading its answer.
            self.conn = None;
            self.in_flight = false;
        }
        match tokio::time::timeout(ttl, self.exchange(&frame)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.conn = None;
                Err(e)
            }
            Err(_) => {
                self.conn = None;
                Err(CallError::Timeout)
            }
        }
    }

    async fn exchange(&mut self, frame: &[u8]) -> Result<Response<C>, CallError> {
        if self.conn.is_none() {
            if let Some(t) = self.next_connect
                && Instant::now() < t
            {
                return Err(CallError::Unreachable(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "backing off after a failed connect",
                )));
            }
            match self.connector.connect(&self.node).await {
                Ok(s) => {
                    self.conn = Some(s);
                    self.next_connect = None;
                    self.connect_backoff = Duration::from_millis(10);
                }
                Err(e) => {
                    self.next_connect = Some(Instant::now() + self.connect_backoff);
                    self.connect_backoff = (self.connect_backoff * 2).min(Duration::from_secs(1));
                    return Err(CallError::Unreachable(e));
                }
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(CallError::Network(CodecError::Io(io::Error::other(
                "no connection",
            ))));
        };
        self.in_flight = true;
        codec::write_frame(conn, frame)
            .await
            .map_err(CallError::Network)?;
        match codec::read_frame(conn, KIND_RESPONSE, self.config.max_frame, &mut self.buf).await {
            Ok(Some(r)) => {
                self.in_flight = false;
                Ok(r)
            }
            Ok(None) => Err(CallError::Network(CodecError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "peer closed the connection",
            )))),
            Err(e) => Err(CallError::Network(e)),
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
        match self.call(&Request::AppendEntries(rpc), ttl).await {
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
        match self.call(&Request::InstallSnapshot(rpc), ttl).await {
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
        match self.call(&Request::Vote(rpc), ttl).await {
            Ok(Response::Vote(Ok(r))) => Ok(r),
            Ok(Response::Vote(Err(e))) => Err(self.remote(e)),
            Ok(_) => Err(self.mismatch()),
            Err(e) => Err(self.rpc_error(e, RPCTypes::Vote, ttl, me)),
        }
    }

    fn backoff(&self) -> Backoff {
        // Used by openraft after `Unreachable`: retry soon, then slower.
        Backoff::new((0..).map(|i: u32| Duration::from_millis(10u64 << i.min(7))))
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
    /// with the request's term, the first answer on each connection only after a delay.
    struct SlowPeer {
        connections: Arc<AtomicUsize>,
    }

    impl Connector<BasicNode> for SlowPeer {
        type Stream = DuplexStream;

        async fn connect(&self, _node: &BasicNode) -> io::Result<DuplexStream> {
            self.connections.fetch_add(1, Ordering::SeqCst);
            let (client, mut server) = tokio::io::duplex(1 << 16);
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
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        first = false;
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
                }
            });
            Ok(client)
        }
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
        let connections = Arc::new(AtomicUsize::new(0));
        let mut factory = Network::new(
            SlowPeer {
                connections: connections.clone(),
            },
            NetConfig::default(),
        );
        let mut client: PeerClient<TestConfig, SlowPeer> =
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
        assert_eq!(
            connections.load(Ordering::SeqCst),
            2,
            "the stale connection was reused"
        );
    }
}
