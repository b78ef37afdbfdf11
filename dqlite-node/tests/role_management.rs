//! Automatic role management with real `dqlite-node` processes and default settings: five
//! nodes (four started with only `--join`) settle to 3 voters + 2 stand-bys; after SIGKILL of
//! a voter, and then of the leader, the cluster is back to 3 live voters within the target
//! (10 s; the time taken is printed: run with `--nocapture`); a voter stopped gracefully hands
//! its role over before it exits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use dqlite_wire::{NodeInfo, Request, Response, Role};
use support::Client;
use support::procs::{Proc, Writer, addresses, find_leader};

/// The target: back to 3 live voters within this after a voter dies.
const TARGET: Duration = Duration::from_secs(10);

/// The members as the leader among `live` reports them.
async fn cluster(live: &[String]) -> Vec<NodeInfo> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let leader = find_leader(live, Duration::from_secs(30)).await;
        if let Ok(mut c) = Client::connect(&leader).await
            && let Ok(Response::Servers { servers }) = c.call(Request::Cluster { format: 1 }).await
        {
            return servers;
        }
        assert!(Instant::now() < deadline, "no CLUSTER answer from {live:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn count(nodes: &[NodeInfo], role: Role, live: &[String]) -> usize {
    nodes
        .iter()
        .filter(|n| n.role == role && live.contains(&n.address))
        .count()
}

/// Waits until the cluster has `voters` voters and `standbys` stand-bys, all among `live`;
/// returns how long that took.
async fn wait_roles(
    live: &[String],
    voters: usize,
    standbys: usize,
    timeout: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let nodes = cluster(live).await;
        let all_voters = nodes.iter().filter(|n| n.role == Role::Voter).count();
        let all_standbys = nodes.iter().filter(|n| n.role == Role::Standby).count();
        if count(&nodes, Role::Voter, live) == voters
            && all_voters == voters
            && count(&nodes, Role::Standby, live) == standbys
            && all_standbys == standbys
        {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < timeout,
            "roles did not settle to {voters} voters + {standbys} stand-bys among {live:?}: \
             {nodes:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until 3 voters of the cluster are live (and no other member is a voter).
async fn wait_three_live_voters(live: &[String], timeout: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let nodes = cluster(live).await;
        let all = nodes.iter().filter(|n| n.role == Role::Voter).count();
        if count(&nodes, Role::Voter, live) == 3 && all == 3 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < timeout,
            "not back to 3 live voters among {live:?} within {timeout:?}: {nodes:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts node 1 (bootstraps) and nodes 2..=n with only `--join` node 1.
async fn start(n: usize, base: &std::path::Path) -> (Vec<Proc>, Vec<String>) {
    let addrs = addresses(n);
    let filter = "warn,dqlite_node=info";
    let mut procs = vec![Proc::start(1, &addrs[0], base, None, &[], filter)];
    find_leader(&addrs[..1], Duration::from_secs(30)).await;
    for (i, a) in addrs.iter().enumerate().skip(1) {
        procs.push(Proc::start(
            i as u64 + 1,
            a,
            base,
            Some(&addrs[0]),
            &[],
            filter,
        ));
    }
    (procs, addrs)
}

fn without(addrs: &[String], gone: &[&String]) -> Vec<String> {
    addrs
        .iter()
        .filter(|a| !gone.contains(a))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_settle_and_replace_a_killed_voter_and_a_killed_leader() {
    let dir = tempfile::tempdir().unwrap();
    let (mut procs, addrs) = start(5, dir.path()).await;
    let settled = wait_roles(&addrs, 3, 2, Duration::from_secs(60)).await;
    eprintln!("5 nodes (4 with only --join): 3 voters + 2 stand-bys after {settled:?}");
    let mut w = Writer::new(&addrs).await;
    w.until(10, &addrs, Duration::from_secs(30)).await;

    // SIGKILL a voter that does not lead.
    let leader = find_leader(&addrs, Duration::from_secs(30)).await;
    let nodes = cluster(&addrs).await;
    let victim = nodes
        .iter()
        .find(|n| n.role == Role::Voter && n.address != leader)
        .unwrap()
        .address
        .clone();
    procs[addrs.iter().position(|a| *a == victim).unwrap()].kill();
    let killed = Instant::now();
    let live = without(&addrs, &[&victim]);
    wait_three_live_voters(&live, TARGET).await;
    let voter_back = killed.elapsed();
    eprintln!("SIGKILL of a voter (5 nodes): 3 live voters again after {voter_back:?}");

    // SIGKILL the leader: the last stand-by becomes a voter.
    let leader = find_leader(&live, Duration::from_secs(30)).await;
    procs[addrs.iter().position(|a| *a == leader).unwrap()].kill();
    let killed = Instant::now();
    let live = without(&live, &[&leader]);
    wait_three_live_voters(&live, TARGET).await;
    let leader_back = killed.elapsed();
    eprintln!("SIGKILL of the leader (4 nodes left): 3 live voters again after {leader_back:?}");

    // The cluster still takes writes, and every acknowledged one is there.
    w.reconnect();
    let before = w.acked.len();
    w.until(before + 10, &live, Duration::from_secs(30)).await;
    let present = support::procs::ids(&live).await;
    for a in &w.acked {
        assert!(present.contains(a), "acknowledged write {a} lost");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_stopped_gracefully_hands_its_role_over() {
    let dir = tempfile::tempdir().unwrap();
    let (mut procs, addrs) = start(5, dir.path()).await;
    wait_roles(&addrs, 3, 2, Duration::from_secs(60)).await;

    // A voter that does not lead, then the leader: each exits with 0 leaving 3 live voters
    // behind at once, and is a spare.
    let mut live = addrs.clone();
    for round in ["a follower", "the leader"] {
        let leader = find_leader(&live, Duration::from_secs(30)).await;
        let nodes = cluster(&live).await;
        let target = match round {
            "the leader" => leader.clone(),
            _ => nodes
                .iter()
                .find(|n| n.role == Role::Voter && n.address != leader)
                .unwrap()
                .address
                .clone(),
        };
        let i = addrs.iter().position(|a| *a == target).unwrap();
        procs[i].terminate();
        let st = procs[i].wait_exit(Duration::from_secs(30));
        assert!(st.is_some_and(|s| s.success()), "{round}: exit {st:?}");
        assert!(
            procs[i].log().contains("handed role over"),
            "{round} stopped without handing its role over:\n{}",
            procs[i].log()
        );
        live = without(&live, &[&target]);
        let nodes = cluster(&live).await;
        let all = nodes.iter().filter(|n| n.role == Role::Voter).count();
        assert_eq!(
            (count(&nodes, Role::Voter, &live), all),
            (3, 3),
            "after the graceful stop of {round}: {nodes:?}"
        );
        let gone = nodes.iter().find(|n| n.address == target).unwrap();
        assert_eq!(gone.role, Role::Spare, "{round}: {nodes:?}");
    }
}
