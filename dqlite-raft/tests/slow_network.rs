//! Replication of an entry that takes longer to ship than openraft's AppendEntries timeout.
//!
//! openraft 0.9 bounds every AppendEntries by the heartbeat interval (100 ms here). Three
//! members talk over TCP on 127.0.0.1 through a connector that caps the throughput of every
//! connection it opens, so one multi-MiB entry needs over a second on the wire. The entry (and
//! the small entries proposed behind it) must still commit in bounded time, and the followers
//! must keep receiving heartbeats meanwhile: no election, the term and leader unchanged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use dqlite_raft::network::{Connector, NetConfig, TcpConnector, serve_listener};
use dqlite_raft::node::{NodeOptions, RaftNode};
use dqlite_raft::testing::{DigestStateMachine, TestConfig};
use openraft::{BasicNode, ServerState};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::time::Sleep;

type Node = RaftNode<TestConfig, DigestStateMachine>;

/// Bytes a throttled connection may write per second.
const RATE: u64 = 160 << 10;
/// Largest write let through at once; the writer then pauses for `CHUNK / RATE`.
const CHUNK: usize = 8 << 10;
/// Size of the large entry (like a 10,000-row INSERT): about 1.6 s on the wire at `RATE`, 16
/// heartbeat intervals and longer than the election timeout. Not bigger, because the test
/// payload is a `Vec<u8>` that postcard encodes byte by byte, about 0.6 µs a byte in a debug
/// build: a few MiB would stall the members' runtimes for seconds of CPU alone.
const BIG: usize = 256 << 10;

/// Dials with TCP and caps what the dialing side writes (the requests) at `RATE`.
struct Throttled(TcpConnector);

impl Connector<BasicNode> for Throttled {
    type Stream = ThrottledStream;

    async fn connect(&self, node: &BasicNode) -> io::Result<ThrottledStream> {
        Ok(ThrottledStream {
            inner: self.0.connect(node).await?,
            pause: None,
        })
    }
}

struct ThrottledStream {
    inner: TcpStream,
    /// Running after each write for the time the written bytes take at `RATE`.
    pause: Option<Pin<Box<Sleep>>>,
}

impl AsyncWrite for ThrottledStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(p) = self.pause.as_mut() {
            ready!(p.as_mut().poll(cx));
            self.pause = None;
        }
        let n = buf.len().min(CHUNK);
        let written = ready!(Pin::new(&mut self.inner).poll_write(cx, &buf[..n]))?;
        let nanos = written as u64 * 1_000_000_000 / RATE;
        self.pause = Some(Box::pin(tokio::time::sleep(Duration::from_nanos(nanos))));
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl AsyncRead for ThrottledStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

struct Member {
    id: u64,
    addr: SocketAddr,
    rt: Runtime,
    node: Node,
}

fn options() -> NodeOptions {
    let mut o = NodeOptions::default();
    // The production heartbeat (and so AppendEntries timeout) of 100 ms; elections tolerant of
    // a debug build on two busy cores, but well below the time the large entry is in transit.
    o.raft.heartbeat_interval = 100;
    o.raft.election_timeout_min = 600;
    o.raft.election_timeout_max = 900;
    o.log.segment_size = 1 << 20;
    o
}

impl Member {
    fn start(id: u64, dir: &Path) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (node, addr) = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .unwrap();
            let addr = listener.local_addr().unwrap();
            let node = Node::start(
                id,
                dir,
                options(),
                DigestStateMachine::default(),
                Throttled(TcpConnector::default()),
            )
            .await
            .unwrap();
            tokio::spawn(serve_listener(
                node.raft().clone(),
                listener,
                NetConfig::default(),
            ));
            (node, addr)
        });
        Member { id, addr, rt, node }
    }

    fn applied(&self) -> u64 {
        self.node
            .metrics()
            .borrow()
            .last_applied
            .map_or(0, |l| l.index)
    }

    fn term_and_leader(&self) -> (u64, Option<u64>) {
        let m = self.node.metrics().borrow().clone();
        (m.current_term, m.current_leader)
    }
}

#[test]
fn an_entry_slower_than_the_append_timeout_commits_without_an_election() {
    let tmp = tempfile::tempdir().unwrap();
    let ms: Vec<Member> = (1..=3)
        .map(|id| Member::start(id, &tmp.path().join(format!("n{id}"))))
        .collect();
    let members: BTreeMap<u64, BasicNode> = ms
        .iter()
        .map(|m| (m.id, BasicNode::new(m.addr.to_string())))
        .collect();
    ms[0].rt.block_on(ms[0].node.initialize(members)).unwrap();

    let mut leader = None;
    for _ in 0..200 {
        leader = ms
            .iter()
            .position(|m| m.node.metrics().borrow().state == ServerState::Leader);
        if leader.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let l = &ms[leader.expect("no leader elected within 10 s")];
    // Wait until every member applied the leader's first entry, so the terms below are settled.
    let first = l.node.metrics().borrow().last_log_index.unwrap_or(0);
    for _ in 0..200 {
        if ms.iter().all(|m| m.applied() >= first) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let before: Vec<_> = ms.iter().map(Member::term_and_leader).collect();
    assert!(
        before.iter().all(|t| *t == before[0]),
        "members disagree on term/leader before the test: {before:?}"
    );

    // One large entry, then small ones queued behind it while it is in transit.
    let raft = l.node.raft().clone();
    let started = Instant::now();
    let last =
        l.rt.block_on(async move {
            tokio::time::timeout(Duration::from_secs(30), async move {
                let big = {
                    let raft = raft.clone();
                    tokio::spawn(async move { raft.client_write(vec![7u8; BIG]).await })
                };
                tokio::time::sleep(Duration::from_millis(50)).await;
                let mut smalls = Vec::new();
                for i in 0..8u64 {
                    let raft = raft.clone();
                    smalls.push(tokio::spawn(async move {
                        raft.client_write(i.to_le_bytes().to_vec()).await
                    }));
                }
                let failed = |e| panic!("a proposal failed (did the leader change?): {e}");
                let mut last = big.await.unwrap().unwrap_or_else(failed).log_id.index;
                for s in smalls {
                    last = last.max(s.await.unwrap().unwrap_or_else(failed).log_id.index);
                }
                last
            })
            .await
        })
        .expect("the large entry and those behind it did not commit within 30 s");
    let took = started.elapsed();
    eprintln!("the large entry and 8 small ones committed in {took:?}");

    for _ in 0..400 {
        if ms.iter().all(|m| m.applied() >= last) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let applied: Vec<_> = ms.iter().map(|m| (m.id, m.applied())).collect();
    assert!(
        ms.iter().all(|m| m.applied() >= last),
        "not applied everywhere up to {last}: {applied:?}"
    );
    let digests: Vec<_> = ms
        .iter()
        .map(|m| {
            m.rt.block_on(m.node.state_machine().with_state(|s| s.digest))
        })
        .collect();
    assert_eq!(digests[0].count, 9);
    assert!(digests.iter().all(|d| *d == digests[0]), "{digests:?}");

    let after: Vec<_> = ms.iter().map(Member::term_and_leader).collect();
    assert_eq!(
        after, before,
        "a member started an election while the large entry was in transit (took {took:?})"
    );

    for m in ms {
        m.rt.block_on(m.node.shutdown()).unwrap();
        m.rt.shutdown_timeout(Duration::from_secs(2));
    }
}
