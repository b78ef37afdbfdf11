//! The nemesis: faults injected one at a time while the workloads run, each held for a few
//! seconds and then healed, with a quiet spell between two faults.
//!
//! - `partition`: the leader isolated, a random minority cut from the majority, a "bridge"
//!   (two sides that only one node sees both of), or a one-way cut (packets from the leader,
//!   or to it, dropped).
//! - `kill`: SIGKILL of the leader or another node (two of five at once sometimes), then a
//!   restart from its data directory.
//! - `pause`: SIGSTOP of the leader or another node, then SIGCONT.
//! - `link`: latency with jitter on every link, lossy links (delays as retransmissions would
//!   cause, and resets), a stalled node (its links freeze but stay open), or slow links to
//!   the leader; all through the proxy.
//! - `membership`: TRANSFER to another voter, demotion of a voter to stand-by or spare and
//!   back, REMOVE of a voter (its data wiped; the slot stays empty) and ADD of a fresh node
//!   in an empty slot, all through the client's admin requests while the load runs.
//! - `disk`: a node SIGKILLed mid-write whose last log batch is then torn (see
//!   [`super::disk`] for when that is fair), or its data directory filled to the last byte.
//! - `lease`: the F3 scenario: the leader and one follower cut from each other (both still
//!   reach the rest), then a TRANSFER to that follower, sent to it directly (it starts an
//!   election itself) or through the leader (the handover times out); reads meanwhile use
//!   the read lease.

use std::collections::BTreeSet;
use std::time::Duration;

use nix::sys::signal::Signal;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

use super::adapter::{self, Role, SqlError, Val};
use super::disk::{self, Tear};
use super::netns;
use super::nodes::wait_listening;
use super::proxy::LinkFault;
use super::world::World;

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Network partitions.
    Partition,
    /// SIGKILL and restart.
    Kill,
    /// SIGSTOP and SIGCONT.
    Pause,
    /// Latency, drops, stalls.
    Link,
    /// Membership changes.
    Membership,
    /// Torn log tails and full disks.
    Disk,
    /// Transfer during a partial partition (read lease).
    Lease,
    /// No faults (a baseline).
    None,
}

impl Kind {
    /// The kinds `all` draws from.
    pub const ALL: [Kind; 7] = [
        Kind::Partition,
        Kind::Kill,
        Kind::Pause,
        Kind::Link,
        Kind::Membership,
        Kind::Disk,
        Kind::Lease,
    ];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Partition => "partition",
            Kind::Kill => "kill",
            Kind::Pause => "pause",
            Kind::Link => "link",
            Kind::Membership => "membership",
            Kind::Disk => "disk",
            Kind::Lease => "lease",
            Kind::None => "none",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .chain([Kind::None])
            .find(|k| k.name() == s)
    }
}

/// The database the nemesis writes to when it needs a commit of its own.
pub const PROBE_DB: &str = "nemesis";

/// Injects faults of `kinds` until `run_for` has passed; returns how many were injected.
pub async fn run(world: &World, kinds: &[Kind], run_for: Duration, seed: u64) -> usize {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x006e_656d_6573_6973);
    let kinds: Vec<Kind> = kinds.iter().copied().filter(|k| *k != Kind::None).collect();
    let end = tokio::time::Instant::now() + run_for;
    let mut count = 0;
    if kinds.is_empty() {
        tokio::time::sleep_until(end).await;
        return 0;
    }
    loop {
        let quiet = Duration::from_millis(rng.random_range(1000..3000));
        let hold = Duration::from_millis(rng.random_range(2000..6000));
        if tokio::time::Instant::now() + quiet + hold > end {
            break;
        }
        tokio::time::sleep(quiet).await;
        let kind = kinds[rng.random_range(0..kinds.len())];
        count += 1;
        let r = match kind {
            Kind::Partition => partition(world, &mut rng, hold).await,
            Kind::Kill => kill(world, &mut rng, hold).await,
            Kind::Pause => pause(world, &mut rng, hold).await,
            Kind::Link => link(world, &mut rng, hold).await,
            Kind::Membership => membership(world, &mut rng, hold).await,
            Kind::Disk => disk_fault(world, &mut rng, hold).await,
            Kind::Lease => lease(world, &mut rng, hold).await,
            Kind::None => Ok(()),
        };
        if let Err(e) = r {
            world.log(format!("nemesis {}: {e}", kind.name()));
        }
        // Whatever the fault left undone (a failed restart, say) is healed before the next.
        for h in world.heal_all().await {
            world.log(format!("heal: {h}"));
        }
    }
    tokio::time::sleep_until(end).await;
    count
}

fn names(slots: &[usize]) -> String {
    let v: Vec<String> = slots.iter().map(|s| format!("n{s}")).collect();
    format!("{{{}}}", v.join(" "))
}

/// The leader's slot, or a random live one when no leader is known.
async fn leader_or_any(world: &World, rng: &mut StdRng) -> Option<(usize, bool)> {
    if let Some(l) = world.leader().await {
        return Some((l, true));
    }
    let live = world.live_slots();
    (!live.is_empty()).then(|| (live[rng.random_range(0..live.len())], false))
}

/// The leader (half the time, when known) or another live node.
async fn target(world: &World, rng: &mut StdRng) -> Option<(usize, &'static str)> {
    let live = world.live_slots();
    if live.is_empty() {
        return None;
    }
    if rng.random_bool(0.5)
        && let Some(l) = world.leader().await
    {
        return Some((l, "the leader"));
    }
    Some((live[rng.random_range(0..live.len())], "a random node"))
}

async fn partition(world: &World, rng: &mut StdRng, hold: Duration) -> Result<(), String> {
    let mut slots = world.live_slots();
    if slots.len() < 2 {
        return Err("fewer than two live nodes".into());
    }
    slots.shuffle(rng);
    let leader = world.leader().await;
    let mode = rng.random_range(0..4);
    let what = match (mode, leader) {
        (0, Some(l)) => {
            let rest: Vec<usize> = slots.iter().copied().filter(|s| *s != l).collect();
            world.net.split(&[l], &rest)?;
            format!("partition: leader n{l} isolated from {}", names(&rest))
        }
        (2, _) if slots.len() >= 3 => {
            // A bridge: the first and last parts see the middle node, not each other.
            let bridge = slots[0];
            let rest = &slots[1..];
            let (a, b) = rest.split_at(rest.len() / 2);
            world.net.split(a, b)?;
            format!(
                "partition: bridge n{bridge} between {} and {} (which are cut from each other)",
                names(a),
                names(b)
            )
        }
        (3, _) => {
            let t = leader.unwrap_or(slots[0]);
            let rest: Vec<usize> = slots.iter().copied().filter(|s| *s != t).collect();
            if rng.random_bool(0.5) {
                for &r in &rest {
                    world.net.cut(t, r)?;
                }
                format!(
                    "partition: one-way, packets from n{t} to {} dropped",
                    names(&rest)
                )
            } else {
                for &r in &rest {
                    world.net.cut(r, t)?;
                }
                format!(
                    "partition: one-way, packets from {} to n{t} dropped",
                    names(&rest)
                )
            }
        }
        _ => {
            let minority = (slots.len() - 1) / 2;
            let (a, b) = slots.split_at(minority.max(1));
            world.net.split(a, b)?;
            format!(
                "partition: minority {} cut from majority {}",
                names(a),
                names(b)
            )
        }
    };
    world.log(what);
    tokio::time::sleep(hold).await;
    world.net.heal()?;
    world.log("heal: partition removed");
    Ok(())
}

async fn kill(world: &World, rng: &mut StdRng, hold: Duration) -> Result<(), String> {
    let Some((first, role)) = target(world, rng).await else {
        return Err("no live node".into());
    };
    let mut victims = vec![first];
    // With five nodes, sometimes two at once (still a minority).
    let live = world.live_slots();
    if live.len() >= 5 && rng.random_bool(0.3) {
        let others: Vec<usize> = live.iter().copied().filter(|s| *s != first).collect();
        victims.push(others[rng.random_range(0..others.len())]);
    }
    {
        let mut n = world.nodes();
        for &v in &victims {
            n.kill(v)?;
        }
    }
    world.log(format!(
        "kill: SIGKILL {} (the first picked as {role})",
        names(&victims)
    ));
    tokio::time::sleep(hold).await;
    restart(world, &victims, "kill").await
}

async fn restart(world: &World, slots: &[usize], why: &str) -> Result<(), String> {
    {
        let mut n = world.nodes();
        for &s in slots {
            n.start(s, &[])?;
        }
    }
    for &s in slots {
        if !wait_listening(&netns::node_address(s), Duration::from_secs(30)).await {
            return Err(format!("n{s} does not listen after its restart"));
        }
    }
    world.log(format!("heal: {why}: {} restarted", names(slots)));
    Ok(())
}

async fn pause(world: &World, rng: &mut StdRng, hold: Duration) -> Result<(), String> {
    let Some((s, role)) = target(world, rng).await else {
        return Err("no live node".into());
    };
    world.nodes().signal(s, Signal::SIGSTOP)?;
    world.log(format!("pause: SIGSTOP n{s} ({role})"));
    tokio::time::sleep(hold).await;
    world.nodes().signal(s, Signal::SIGCONT)?;
    world.log(format!("heal: SIGCONT n{s}"));
    Ok(())
}

async fn link(world: &World, rng: &mut StdRng, hold: Duration) -> Result<(), String> {
    let slots = world.identity_slots();
    let pairs: Vec<(usize, usize)> = slots
        .iter()
        .flat_map(|&a| slots.iter().filter(move |&&b| b != a).map(move |&b| (a, b)))
        .collect();
    let what = match rng.random_range(0..4) {
        0 => {
            let latency = Duration::from_millis(rng.random_range(30..250));
            let jitter = Duration::from_millis(rng.random_range(0..100));
            for &(a, b) in &pairs {
                world.proxy.set(
                    a,
                    b,
                    LinkFault {
                        latency,
                        jitter,
                        ..LinkFault::default()
                    },
                );
            }
            format!("link: latency {latency:?} + up to {jitter:?} on every link")
        }
        1 => {
            let drop_rate = rng.random_range(0.02..0.2);
            let reset_rate = rng.random_range(0.0..0.01);
            for &(a, b) in &pairs {
                world.proxy.set(
                    a,
                    b,
                    LinkFault {
                        drop_rate,
                        reset_rate,
                        ..LinkFault::default()
                    },
                );
            }
            format!(
                "link: lossy links ({:.0}% of chunks delayed 0.2-1 s, {:.1}% resets)",
                drop_rate * 100.0,
                reset_rate * 100.0
            )
        }
        2 => {
            let (s, role) = leader_or_any(world, rng)
                .await
                .map(|(s, l)| (s, if l { "the leader" } else { "a random node" }))
                .ok_or("no live node")?;
            for &(a, b) in pairs.iter().filter(|(a, b)| *a == s || *b == s) {
                world.proxy.set(
                    a,
                    b,
                    LinkFault {
                        stalled: true,
                        ..LinkFault::default()
                    },
                );
            }
            format!("link: every link of n{s} ({role}) stalled (connections stay open)")
        }
        _ => {
            let (s, _) = leader_or_any(world, rng).await.ok_or("no live node")?;
            let latency = Duration::from_millis(rng.random_range(200..800));
            for &(a, b) in pairs.iter().filter(|(a, b)| *a == s || *b == s) {
                world.proxy.set(
                    a,
                    b,
                    LinkFault {
                        latency,
                        ..LinkFault::default()
                    },
                );
            }
            format!("link: latency {latency:?} on every link of n{s}")
        }
    };
    world.log(what);
    tokio::time::sleep(hold).await;
    world.proxy.clear();
    world.log("heal: link faults cleared");
    Ok(())
}

async fn membership(world: &World, rng: &mut StdRng, hold: Duration) -> Result<(), String> {
    let members = world.members(Duration::from_secs(10)).await?;
    let leader = world.leader().await;
    let voters: Vec<(usize, u64)> = members
        .iter()
        .filter(|(_, m)| m.role == Role::Voter)
        .map(|(s, m)| (*s, m.id))
        .collect();
    let member_slots: BTreeSet<usize> = members.iter().map(|(s, _)| *s).collect();
    let empty: Vec<usize> = {
        let n = world.nodes();
        (0..n.slots.len())
            .filter(|s| !member_slots.contains(s))
            .collect()
    };
    let followers: Vec<(usize, u64)> = voters
        .iter()
        .copied()
        .filter(|(s, _)| Some(*s) != leader)
        .collect();
    let choice = rng.random_range(0..4);
    if choice == 0 && !followers.is_empty() {
        let (s, id) = followers[rng.random_range(0..followers.len())];
        world.log(format!("membership: TRANSFER leadership to n{s} (id {id})"));
        let r = world.cluster.transfer(id).await;
        world.log(format!("membership: TRANSFER to n{s}: {}", done(&r)));
        tokio::time::sleep(hold).await;
        return Ok(());
    }
    if choice == 1 && !followers.is_empty() && voters.len() >= 3 {
        let (s, id) = followers[rng.random_range(0..followers.len())];
        let role = if rng.random_bool(0.5) {
            Role::Standby
        } else {
            Role::Spare
        };
        world.log(format!("membership: ASSIGN n{s} (id {id}) {role}"));
        let r = world.cluster.assign(id, role).await;
        world.log(format!("membership: ASSIGN n{s} {role}: {}", done(&r)));
        tokio::time::sleep(hold).await;
        let r = world.cluster.assign(id, Role::Voter).await;
        world.log(format!("heal: membership: ASSIGN n{s} voter: {}", done(&r)));
        return Ok(());
    }
    if let Some(&s) = empty.first() {
        // A fresh node in an empty slot: ADD through the client, then start it with --join
        // (its own join finds itself added and ASSIGNs itself voter).
        let id = world.nodes().new_identity(s)?;
        let address = netns::node_address(s);
        world.log(format!("membership: ADD n{s} (new id {id}) at {address}"));
        let r = world.cluster.add(id, &address).await;
        world.log(format!("membership: ADD n{s}: {}", done(&r)));
        let seeds: Vec<String> = member_slots
            .iter()
            .map(|&m| netns::node_address(m))
            .collect();
        world.nodes().start(s, &seeds)?;
        tokio::time::sleep(hold).await;
        let now = world.members(Duration::from_secs(10)).await?;
        let role = now
            .iter()
            .find(|(slot, m)| *slot == s && m.id == id)
            .map_or("not a member".to_string(), |(_, m)| m.role.to_string());
        world.log(format!("membership: n{s} is now {role}"));
        return Ok(());
    }
    // Remove a follower voter (never below the initial count) and empty its slot.
    if voters.len() > world.initial_nodes {
        let (s, id) = followers
            .get(rng.random_range(0..followers.len().max(1)))
            .copied()
            .ok_or("no follower to remove")?;
        world.log(format!("membership: REMOVE n{s} (id {id})"));
        let r = world.cluster.remove(id).await;
        world.log(format!("membership: REMOVE n{s}: {}", done(&r)));
        let still = world
            .members(Duration::from_secs(10))
            .await?
            .iter()
            .any(|(slot, m)| *slot == s && m.id == id);
        if !still {
            let mut n = world.nodes();
            n.kill(s)?;
            n.slots[s].id = 0;
            drop(n);
            world.log(format!("membership: n{s} stopped, its slot empty"));
        }
        tokio::time::sleep(hold).await;
        return Ok(());
    }
    // Otherwise a transfer to any other voter.
    if let Some(&(s, id)) = followers.first() {
        world.log(format!("membership: TRANSFER leadership to n{s} (id {id})"));
        let r = world.cluster.transfer(id).await;
        world.log(format!("membership: TRANSFER to n{s}: {}", done(&r)));
        tokio::time::sleep(hold).await;
    }
    Ok(())
}

fn done(r: &Result<(), String>) -> String {
    match r {
        Ok(()) => "done".to_string(),
        Err(e) => format!("refused or failed ({e})"),
    }
}

/// Commits one write through the cluster (without the nodes that are down), for up to `wait`.
async fn probe_commit(world: &World, wait: Duration) -> bool {
    let mut db = world.cluster.db(PROBE_DB);
    let deadline = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < deadline {
        let r = db
            .exec(
                "INSERT INTO probe (t) VALUES (?)",
                &[Val::Int(world.clock.now() as i64)],
            )
            .await;
        match r {
            Ok(_) => return true,
            Err(SqlError::Definite(m)) if m.contains("no such table") => {
                let _ = db
                    .exec("CREATE TABLE IF NOT EXISTS probe (t INTEGER)", &[])
                    .await;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    false
}

async fn disk_fault(world: &World, rng: &mut StdRng, hold: Duration) -> Result<(), String> {
    let Some((s, role)) = target(world, rng).await else {
        return Err("no live node".into());
    };
    let full = world.nodes().mount_of(s).is_some() && rng.random_bool(0.4);
    if full {
        let mount = world
            .nodes()
            .mount_of(s)
            .map(std::path::PathBuf::from)
            .ok_or("no tmpfs")?;
        let log = world.nodes().slots[s].log.clone();
        let log_start = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let what = disk::fill(&mount)?;
        world.log(format!("disk: n{s} ({role}) disk full: {what}"));
        // Writes go to preallocated segments first: the disk is felt only when the node
        // needs a new one, so the fault lasts until the node says so (or 25 s).
        tokio::time::sleep(hold).await;
        let until = tokio::time::Instant::now() + Duration::from_secs(25).saturating_sub(hold);
        let mut felt = disk::mentions_no_space(&log, log_start);
        while !felt && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(500)).await;
            felt = disk::mentions_no_space(&log, log_start);
        }
        if felt {
            // Let it live with a full disk for a moment.
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        world.log(format!(
            "disk: n{s} {}",
            if felt {
                "ran out of space"
            } else {
                "did not need more space within 25 s"
            }
        ));
        disk::unfill(&mount)?;
        let alive = world.nodes().running(s);
        world.log(format!(
            "heal: n{s} disk has room again (the node {})",
            if alive { "kept running" } else { "had exited" }
        ));
        if !alive {
            restart(world, &[s], "disk").await?;
        }
        return Ok(());
    }
    world.nodes().kill(s)?;
    world.log(format!("disk: SIGKILL n{s} ({role}) mid-write"));
    // Tearing its last batch is fair once a majority without it committed something new.
    let committed = probe_commit(world, Duration::from_secs(20)).await;
    let how = if committed {
        [Tear::Truncate, Tear::Garble, Tear::PartialFrame][rng.random_range(0..3)]
    } else {
        Tear::PartialFrame
    };
    let data = world.nodes().slots[s].data.clone();
    match disk::tear(&data, how, rng) {
        Ok(what) => world.log(format!(
            "disk: n{s} log tail torn ({how:?}{}): {what}",
            if committed {
                ""
            } else {
                ", no commit without it so only a partial new frame"
            }
        )),
        Err(e) => world.log(format!("disk: n{s} log not torn: {e}")),
    }
    tokio::time::sleep(hold).await;
    restart(world, &[s], "disk").await
}

async fn lease(world: &World, rng: &mut StdRng, hold: Duration) -> Result<(), String> {
    let Some(l) = world.leader().await else {
        return Err("no leader".into());
    };
    let members = world.members(Duration::from_secs(5)).await?;
    let followers: Vec<(usize, u64)> = members
        .iter()
        .filter(|(s, m)| m.role == Role::Voter && *s != l)
        .map(|(s, m)| (*s, m.id))
        .collect();
    if followers.len() < 2 {
        return Err("needs a leader and two follower voters".into());
    }
    let (f, fid) = followers[rng.random_range(0..followers.len())];
    world.net.split(&[l], &[f])?;
    let direct = rng.random_bool(0.6);
    let via = if direct {
        format!("sent to n{f} itself")
    } else {
        "through the leader".to_string()
    };
    world.log(format!(
        "lease: leader n{l} and follower n{f} cut from each other; TRANSFER to n{f} {via}"
    ));
    let r = if direct {
        adapter::transfer_via(&netns::node_address(f), fid).await
    } else {
        world.cluster.transfer(fid).await
    };
    world.log(format!("lease: TRANSFER to n{f}: {}", done(&r)));
    tokio::time::sleep(hold).await;
    world.net.heal()?;
    world.log("heal: partition removed");
    Ok(())
}
