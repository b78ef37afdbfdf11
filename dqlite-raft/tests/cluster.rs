//! A 3-member cluster over real TCP on 127.0.0.1, each member on its own tokio runtime:
//! election, 10,000 replicated entries, leader killed and restarted, a member caught up by
//! snapshot after the leader purged the entries it misses, a follower that lost acknowledged
//! entries to a crash caught up again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use dqlite_raft::network::{NetConfig, Network, TcpConnector, serve_listener};
use dqlite_raft::node::{NodeOptions, RaftNode};
use dqlite_raft::testing::{Digest, DigestStateMachine, TestConfig};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::VoteRequest;
use openraft::{BasicNode, ServerState, SnapshotPolicy, Vote};
use tokio::runtime::Runtime;

type Node = RaftNode<TestConfig, DigestStateMachine>;

struct Member {
    id: u64,
    addr: SocketAddr,
    dir: PathBuf,
    rt: Option<Runtime>,
    node: Option<Node>,
}

fn options() -> NodeOptions {
    let mut o = NodeOptions::default();
    // Snapshot often so that the test exercises purge and snapshot install.
    o.raft.snapshot_policy = SnapshotPolicy::LogsSinceLast(1500);
    o.raft.max_in_snapshot_log_to_keep = 200;
    // Debug builds on two busy cores: be tolerant with elections.
    o.raft.election_timeout_min = 600;
    o.raft.election_timeout_max = 1200;
    o.raft.heartbeat_interval = 150;
    o.log.segment_size = 256 << 10;
    o
}

impl Member {
    fn start(id: u64, dir: PathBuf, addr: Option<SocketAddr>) -> Self {
        Self::start_with(id, dir, addr, options())
    }

    fn start_with(id: u64, dir: PathBuf, addr: Option<SocketAddr>, opts: NodeOptions) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (node, addr) = rt.block_on(async {
            let listener =
                tokio::net::TcpListener::bind(addr.unwrap_or(([127, 0, 0, 1], 0).into()))
                    .await
                    .unwrap();
            let addr = listener.local_addr().unwrap();
            let node = Node::start(
                id,
                &dir,
                opts,
                DigestStateMachine::default(),
                TcpConnector::default(),
            )
            .await
            .unwrap();
            // With the node's own settings, so that its vote hold (read leases) applies.
            tokio::spawn(serve_listener(
                node.raft().clone(),
                listener,
                node.net_config().clone(),
            ));
            (node, addr)
        });
        Member {
            id,
            addr,
            dir,
            rt: Some(rt),
            node: Some(node),
        }
    }

    fn node(&self) -> &Node {
        self.node.as_ref().unwrap()
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.as_ref().unwrap().block_on(f)
    }

    /// Stops the member: openraft shut down, the runtime (listener, connections) dropped.
    fn kill(&mut self) {
        let node = self.node.take().unwrap();
        let rt = self.rt.take().unwrap();
        rt.block_on(node.shutdown()).unwrap();
        rt.shutdown_timeout(Duration::from_secs(2));
    }

    fn digest(&self) -> Digest {
        self.block_on(self.node().state_machine().with_state(|s| s.digest))
    }

    fn applied(&self) -> u64 {
        self.node()
            .metrics()
            .borrow()
            .last_applied
            .map_or(0, |l| l.index)
    }
}

fn leader_among(members: &[&Member]) -> u64 {
    for _ in 0..200 {
        for m in members {
            let met = m.node().metrics().borrow().clone();
            if met.state == ServerState::Leader {
                return m.id;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no leader elected within 10 s");
}

/// Proposes `n` entries on `m` from 64 concurrent tasks; returns the highest log index.
fn propose_many(m: &Member, start: u64, n: u64) -> u64 {
    let raft = m.node().raft().clone();
    m.block_on(async move {
        let mut tasks = Vec::new();
        for t in 0..64u64 {
            let raft = raft.clone();
            tasks.push(tokio::spawn(async move {
                let mut last = 0;
                let mut i = start + t;
                while i < start + n {
                    let r = raft.client_write(i.to_le_bytes().to_vec()).await.unwrap();
                    last = last.max(r.log_id.index);
                    i += 64;
                }
                last
            }));
        }
        let mut last = 0;
        for t in tasks {
            last = last.max(t.await.unwrap());
        }
        last
    })
}

fn wait_applied(members: &[&Member], index: u64) {
    for _ in 0..400 {
        if members.iter().all(|m| m.applied() >= index) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let got: Vec<_> = members.iter().map(|m| (m.id, m.applied())).collect();
    panic!("members did not apply up to {index} within 20 s: {got:?}");
}

/// `options()` with a read lease of `lease`.
fn with_lease(lease: Duration) -> NodeOptions {
    let mut o = options();
    o.read_lease = Some(lease);
    o
}

/// Members 1-3 in `dir`, each started with `opts()`; not yet a cluster.
fn start_three(dir: &std::path::Path, opts: impl Fn() -> NodeOptions) -> Vec<Member> {
    (1..=3)
        .map(|id| Member::start_with(id, dir.join(format!("n{id}")), None, opts()))
        .collect()
}

/// Makes `ms` one cluster (initialized on the first) and returns the id of its leader.
fn initialize(ms: &[Member]) -> u64 {
    let members: BTreeMap<u64, BasicNode> = ms
        .iter()
        .map(|m| (m.id, BasicNode::new(m.addr.to_string())))
        .collect();
    ms[0].block_on(ms[0].node().initialize(members)).unwrap();
    leader_among(&ms.iter().collect::<Vec<_>>())
}

/// Sends `vote` to `m` from a network client of its own; returns once `m` answered.
fn send_vote(m: &Member, vote: Vote<u64>) {
    let addr = m.addr.to_string();
    m.block_on(async move {
        let mut factory = Network::new(TcpConnector::default(), NetConfig::default());
        let mut peer: dqlite_raft::network::PeerClient<TestConfig, TcpConnector> =
            factory.new_client(m.id, &BasicNode::new(addr)).await;
        let req = VoteRequest {
            vote,
            last_log_id: None,
        };
        let r = peer
            .vote(req, RPCOption::new(Duration::from_secs(10)))
            .await;
        assert!(r.is_ok(), "{r:?}");
    });
}

#[test]
fn three_members_replicate_survive_leader_restart_and_catch_up_by_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let mut ms = start_three(tmp.path(), options);

    // Election and 10,000 entries.
    let leader = initialize(&ms);
    let li = (leader - 1) as usize;
    let last = propose_many(&ms[li], 0, 10_000);
    wait_applied(&ms.iter().collect::<Vec<_>>(), last);
    let d = ms[0].digest();
    assert_eq!(d.count, 10_000);
    assert!(ms.iter().all(|m| m.digest() == d), "replicas diverge");

    // Kill the leader; the other two elect a new one and keep committing.
    let old_last = ms[li].node().metrics().borrow().last_log_index.unwrap_or(0);
    ms[li].kill();
    let rest: Vec<&Member> = ms.iter().filter(|m| m.node.is_some()).collect();
    let new_leader = leader_among(&rest);
    assert_ne!(new_leader, leader);
    let nl = (new_leader - 1) as usize;
    let last2 = propose_many(&ms[nl], 10_000, 4_000);
    wait_applied(
        &ms.iter().filter(|m| m.node.is_some()).collect::<Vec<_>>(),
        last2,
    );

    // Make sure the entries the old leader misses are purged on the new leader, so that only a
    // snapshot can bring it up to date.
    ms[nl].block_on(ms[nl].node().trigger_snapshot()).unwrap();
    let mut purged = 0;
    for _ in 0..200 {
        purged = ms[nl]
            .node()
            .metrics()
            .borrow()
            .purged
            .map_or(0, |p| p.index);
        if purged > old_last {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        purged > old_last,
        "leader purged only up to {purged}, old leader has {old_last}"
    );

    // Restart the old leader on its old address and data: it catches up via snapshot.
    let (dir, addr) = (ms[li].dir.clone(), ms[li].addr);
    ms[li] = Member::start(leader, dir, Some(addr));
    let report = ms[li].node().recovery_report().clone();
    assert!(report.torn_tail.is_none(), "{report:?}");
    wait_applied(&ms.iter().collect::<Vec<_>>(), last2);
    let d = ms[nl].digest();
    assert_eq!(d.count, 14_000);
    for m in &ms {
        assert_eq!(m.digest(), d, "member {} diverges", m.id);
    }
    let snap = ms[li]
        .node()
        .metrics()
        .borrow()
        .snapshot
        .map_or(0, |s| s.index);
    assert!(
        snap > old_last,
        "restarted member has no newer snapshot ({snap} <= {old_last})"
    );

    for m in &mut ms {
        m.kill();
    }
}

/// Concurrent readers share quorum rounds (`RaftNode::read_barrier`), but each one's read index
/// still covers every write that completed before it asked: a round serves only the readers
/// that arrived before it started.
#[test]
fn shared_read_barriers_cover_each_readers_own_earlier_write() {
    let tmp = tempfile::tempdir().unwrap();
    let ms = start_three(tmp.path(), options);
    let leader = initialize(&ms);
    let lm = &ms[(leader - 1) as usize];
    let node = lm.node();

    lm.block_on(async {
        let readers = (0..32u64).map(|r| async move {
            for i in 0..20u64 {
                let written = node
                    .propose((r * 1000 + i).to_le_bytes().to_vec())
                    .await
                    .unwrap()
                    .log_id;
                let read = node.read_barrier().await.unwrap();
                assert!(
                    read.as_ref().is_some_and(|l| l.index >= written.index),
                    "reader {r}: read index {read:?} is behind its own write {written:?}"
                );
            }
        });
        futures::future::join_all(readers).await;
    });

    // A follower has no read index to give.
    let follower = ms.iter().find(|m| m.id != leader).unwrap();
    let r = follower.block_on(follower.node().read_barrier());
    assert!(
        matches!(r, Err(dqlite_raft::node::NodeError::NotLeader { .. })),
        "{r:?}"
    );
}

/// With read leases, a barrier that reached a quorum lets later ones answer without a round
/// until the lease ends; then a leader that lost its quorum has no answer any more.
#[test]
fn read_leases_answer_without_a_quorum_only_until_they_end() {
    let lease = Duration::from_millis(300);
    let tmp = tempfile::tempdir().unwrap();
    let mut ms = start_three(tmp.path(), || with_lease(lease));
    let leader = initialize(&ms);
    let li = (leader - 1) as usize;
    ms[li]
        .block_on(ms[li].node().propose(b"x".to_vec()))
        .unwrap();

    // A barrier with every member up takes a lease; then both followers stop. Until the
    // lease ends, barriers answer without a quorum; after it, none does.
    let t0 = std::time::Instant::now();
    ms[li].block_on(ms[li].node().read_barrier()).unwrap();
    for m in ms.iter_mut().filter(|m| m.id != leader) {
        m.kill();
    }
    let followers_gone = t0.elapsed();
    let l = &ms[li];
    let mut answered_alone = 0;
    let mut failed_at = None;
    for _ in 0..400 {
        let asked = t0.elapsed();
        match l.block_on(l.node().read_barrier()) {
            Ok(_) => {
                assert!(
                    asked < lease + Duration::from_millis(50),
                    "a barrier asked {asked:?} after the lease was taken answered without a quorum"
                );
                answered_alone += 1;
            }
            Err(e) => {
                failed_at = Some((asked, e.to_string()));
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let (asked, why) = failed_at.expect("barriers kept succeeding without a quorum");
    assert!(asked >= followers_gone, "{asked:?} {followers_gone:?}");
    assert!(why.contains("quorum") || why.contains("leader"), "{why}");
    if followers_gone + Duration::from_millis(100) < lease {
        assert!(
            answered_alone > 0,
            "no barrier was answered from the lease (followers gone after {followers_gone:?})"
        );
    }
}

/// With read leases on, a member that followed a leader before it restarted answers no Vote
/// request for the longest election timeout (+100 ms) after it starts: it may have granted
/// that leader a lease and has forgotten it. A member that never followed a leader has
/// granted no lease and answers at once.
#[test]
fn a_restarted_follower_answers_votes_only_after_its_hold() {
    let opts = || with_lease(Duration::from_millis(300));
    let hold = Duration::from_millis(opts().raft.election_timeout_max + 100);
    let tmp = tempfile::tempdir().unwrap();
    let mut ms = start_three(tmp.path(), opts);
    // Never followed anyone yet: no hold.
    let t0 = std::time::Instant::now();
    send_vote(&ms[2], Vote::new(1, 9));
    let fresh = t0.elapsed();
    assert!(fresh < hold, "a fresh member held a vote for {fresh:?}");

    let leader = initialize(&ms);
    let li = (leader - 1) as usize;
    let last = propose_many(&ms[li], 0, 64);
    wait_applied(&ms.iter().collect::<Vec<_>>(), last);
    let fi = ms.iter().position(|m| m.id != leader).unwrap();
    let (dir, addr, id) = (ms[fi].dir.clone(), ms[fi].addr, ms[fi].id);
    ms[fi].kill();
    let restarted = std::time::Instant::now();
    ms[fi] = Member::start_with(id, dir, Some(addr), opts());
    let term = ms[fi].node().metrics().borrow().current_term;
    send_vote(&ms[fi], Vote::new(term + 10, 9));
    let answered = restarted.elapsed();
    assert!(
        answered >= hold,
        "a restarted follower answered a vote {answered:?} after it started (hold {hold:?})"
    );
}

/// A leader answers no Vote request while its read lease runs: it must not help elect a
/// successor while it still serves reads from the lease.
#[test]
fn a_leader_answers_votes_only_after_its_read_lease() {
    let lease = Duration::from_millis(400);
    let tmp = tempfile::tempdir().unwrap();
    let ms = start_three(tmp.path(), || with_lease(lease));
    let leader = initialize(&ms);
    let l = &ms[(leader - 1) as usize];
    // (No start-up hold here: none of the members followed a leader before it started.)
    let term = l.node().metrics().borrow().current_term;
    let t0 = std::time::Instant::now();
    l.block_on(l.node().read_barrier()).unwrap();
    let candidate = if leader == 1 { 2 } else { 1 };
    send_vote(l, Vote::new(term + 1, candidate));
    let answered = t0.elapsed();
    assert!(
        answered >= lease,
        "the leader answered a vote {answered:?} after taking a {lease:?} lease"
    );
}

/// Zeroes the last `n` frames of the newest log segment in `dir` (a crash that lost writes the
/// node had already acknowledged: a disk that lied about its flush). Returns how many frames
/// were zeroed.
fn lose_log_tail(dir: &std::path::Path, n: usize) -> usize {
    use dqlite_raft::frame::{Decoded, SEGMENT_HEADER_LEN, decode_frame};
    let segs = dqlite_raft::segment::list_segments(dir).unwrap();
    let (_, path) = segs.last().unwrap();
    let mut buf = std::fs::read(path).unwrap();
    let mut offs = Vec::new();
    let mut pos = SEGMENT_HEADER_LEN;
    while let Decoded::Frame(f) = decode_frame(&buf[pos..]) {
        offs.push(pos);
        pos += f.len;
    }
    let n = n.min(offs.len());
    let from = offs[offs.len() - n];
    buf[from..pos].fill(0);
    std::fs::write(path, buf).unwrap();
    n
}

/// A follower that lost the tail of its log (entries it had acknowledged) in a crash is caught
/// up again after it restarts, and the cluster keeps committing meanwhile: the leader, whose
/// record says the follower holds those entries, learns otherwise from its Conflict answer.
#[test]
fn a_follower_that_lost_acknowledged_entries_is_caught_up_after_restart() {
    follower_loses_log_tail(options);
}

/// The same with read leases on: the restarted follower also holds its vote for a while.
#[test]
fn a_follower_that_lost_acknowledged_entries_is_caught_up_with_read_leases() {
    follower_loses_log_tail(|| with_lease(Duration::from_millis(300)));
}

fn follower_loses_log_tail(opts: fn() -> NodeOptions) {
    let tmp = tempfile::tempdir().unwrap();
    let mut ms = start_three(tmp.path(), opts);
    let leader = initialize(&ms);
    let li = (leader - 1) as usize;
    let last = propose_many(&ms[li], 0, 500);
    wait_applied(&ms.iter().collect::<Vec<_>>(), last);

    let fi = ms.iter().position(|m| m.id != leader).unwrap();
    let (dir, addr, id) = (ms[fi].dir.clone(), ms[fi].addr, ms[fi].id);
    ms[fi].kill();
    let zeroed = lose_log_tail(&dir.join("log"), 64);
    assert!(zeroed > 0);
    ms[fi] = Member::start_with(id, dir, Some(addr), opts());
    let restarted_at = ms[fi].node().metrics().borrow().last_log_index.unwrap_or(0);
    assert!(
        restarted_at < last,
        "the follower kept its whole log ({restarted_at} >= {last})"
    );

    let li = ms
        .iter()
        .position(|m| m.node().metrics().borrow().state == ServerState::Leader)
        .unwrap_or(li);
    let last2 = propose_many(&ms[li], 500, 200);
    wait_applied(&ms.iter().collect::<Vec<_>>(), last2);
    let d = ms[li].digest();
    assert_eq!(d.count, 700);
    for m in &ms {
        assert_eq!(m.digest(), d, "member {} diverges", m.id);
    }
    for m in &mut ms {
        m.kill();
    }
}
