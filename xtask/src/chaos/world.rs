//! Everything a run acts on — namespaces, proxy, node processes, the client — and the
//! run's event log, plus the questions asked of the cluster as a whole: who leads, who is a
//! member, has it converged.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::adapter::{self, Cluster, Member, Role};
use super::history::{Clock, Micros, secs};
use super::netns::{self, Net};
use super::nodes::{Nodes, wait_listening};
use super::proxy::Proxy;

/// The run's moving parts.
pub struct World {
    /// Namespaces and partitions.
    pub net: Arc<Net>,
    /// The link proxy.
    pub proxy: Proxy,
    /// The node processes.
    pub nodes: Arc<Mutex<Nodes>>,
    /// The client.
    pub cluster: Cluster,
    /// The run's clock.
    pub clock: Clock,
    /// Every fault and recovery step, with its time.
    events: Mutex<Vec<(Micros, String)>>,
    /// Where events are also appended as they happen.
    events_file: PathBuf,
    /// Nodes in the cluster at the start.
    pub initial_nodes: usize,
}

impl World {
    /// Wraps the parts.
    pub fn new(
        net: Arc<Net>,
        proxy: Proxy,
        nodes: Arc<Mutex<Nodes>>,
        cluster: Cluster,
        clock: Clock,
        events_file: PathBuf,
        initial_nodes: usize,
    ) -> World {
        World {
            net,
            proxy,
            nodes,
            cluster,
            clock,
            events: Mutex::new(Vec::new()),
            events_file,
            initial_nodes,
        }
    }

    /// The node processes (never held across an await).
    pub fn nodes(&self) -> MutexGuard<'_, Nodes> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records and prints an event.
    pub fn log(&self, text: impl Into<String>) {
        let t = self.clock.now();
        let text = text.into();
        println!("[{}] {text}", secs(t));
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.events_file)
        {
            let _ = writeln!(f, "[{}] {text}", secs(t));
        }
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((t, text));
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<(Micros, String)> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Slots with a node identity whose process runs and is not paused.
    pub fn live_slots(&self) -> Vec<usize> {
        let mut n = self.nodes();
        (0..n.slots.len())
            .filter(|&s| n.slots[s].id != 0 && !n.slots[s].paused && n.running(s))
            .collect()
    }

    /// Slots with a node identity (running or not).
    pub fn identity_slots(&self) -> Vec<usize> {
        let n = self.nodes();
        (0..n.slots.len()).filter(|&s| n.slots[s].id != 0).collect()
    }

    /// The slot of the node that most live nodes name as leader.
    pub async fn leader(&self) -> Option<usize> {
        let slots = self.live_slots();
        let asks = slots.iter().map(|&s| {
            let a = netns::node_address(s);
            async move { adapter::leader_seen_by(&a).await.ok().flatten() }
        });
        let answers = futures::future::join_all(asks).await;
        let mut votes: BTreeMap<String, usize> = BTreeMap::new();
        for a in answers.into_iter().flatten() {
            *votes.entry(a).or_default() += 1;
        }
        votes
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .and_then(|(a, _)| netns::slot_of(&a))
    }

    /// The members as the leader reports them, mapped to slots (retried for up to `wait`).
    pub async fn members(&self, wait: Duration) -> Result<Vec<(usize, Member)>, String> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut last = String::new();
        while tokio::time::Instant::now() < deadline {
            match self.cluster.members().await {
                Ok(ms) => {
                    return Ok(ms
                        .into_iter()
                        .filter_map(|m| netns::slot_of(&m.address).map(|s| (s, m)))
                        .collect());
                }
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Err(format!("no member list within {wait:?}: {last}"))
    }

    /// Waits until the cluster lists `voters` voters (after start-up or a join).
    pub async fn wait_voters(&self, voters: usize, wait: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut seen = String::new();
        while tokio::time::Instant::now() < deadline {
            if let Ok(ms) = self.cluster.members().await {
                let n = ms.iter().filter(|m| m.role == Role::Voter).count();
                if n >= voters {
                    return Ok(());
                }
                seen = format!("{ms:?}");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Err(format!(
            "fewer than {voters} voters after {wait:?} (last: {seen})"
        ))
    }

    /// Heals everything the nemesis may have left: partitions, link faults, paused and
    /// killed nodes, full disks. Returns what it did.
    pub async fn heal_all(&self) -> Vec<String> {
        let mut done = Vec::new();
        if self.net.has_cuts() {
            match self.net.heal() {
                Ok(()) => done.push("partitions healed".to_string()),
                Err(e) => done.push(format!("healing partitions failed: {e}")),
            }
        }
        if self.proxy.has_faults() {
            self.proxy.clear();
            done.push("link faults cleared".to_string());
        }
        let slots = self.identity_slots();
        let mut to_wait = Vec::new();
        {
            let mut n = self.nodes();
            for &s in &slots {
                if let Some(m) = n.mount_of(s).map(PathBuf::from)
                    && super::disk::unfill(&m).is_err()
                {
                    done.push(format!("n{s}: could not give its disk room back"));
                }
                if n.slots[s].paused {
                    let _ = n.signal(s, nix::sys::signal::Signal::SIGCONT);
                    done.push(format!("n{s} resumed"));
                }
                if !n.running(s) {
                    match n.start(s, &[]) {
                        Ok(()) => {
                            done.push(format!("n{s} restarted"));
                            to_wait.push(s);
                        }
                        Err(e) => done.push(format!("n{s} could not be restarted: {e}")),
                    }
                }
            }
        }
        for s in to_wait {
            if !wait_listening(&netns::node_address(s), Duration::from_secs(30)).await {
                done.push(format!("n{s} does not listen after its restart"));
            }
        }
        done
    }

    /// After healing: the voters agree on one leader, every member answers, and every
    /// member holds the same copy of each database in `dbs` (DUMP). Waits up to `wait`.
    pub async fn converged(&self, dbs: &[&str], wait: Duration) -> Result<String, String> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut last = String::from("not checked");
        while tokio::time::Instant::now() < deadline {
            match self.converged_once(dbs).await {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(1000)).await;
        }
        Err(format!("not converged after {wait:?}: {last}"))
    }

    async fn converged_once(&self, dbs: &[&str]) -> Result<String, String> {
        let members = self.members(Duration::from_secs(5)).await?;
        let slots: BTreeSet<usize> = members.iter().map(|(s, _)| *s).collect();
        let mut leaders = BTreeSet::new();
        for (s, m) in &members {
            let a = netns::node_address(*s);
            // A stand-by or spare answers LEADER with no leader, as C dqlite's do (only voters
            // name one); it must still answer, and its copy is compared below.
            let voter = m.role == Role::Voter;
            match adapter::leader_seen_by(&a).await {
                Ok(Some(l)) if voter => {
                    leaders.insert(l);
                }
                Ok(None) if voter => return Err(format!("n{s} (a voter) knows no leader")),
                Ok(_) => {}
                Err(e) => return Err(format!("n{s} does not answer: {e}")),
            }
        }
        if leaders.len() != 1 {
            return Err(format!("members name different leaders: {leaders:?}"));
        }
        for db in dbs {
            let mut copies: Vec<(usize, Vec<u8>)> = Vec::new();
            for &s in &slots {
                let files = self
                    .cluster
                    .dump_from(&netns::node_address(s), db)
                    .await
                    .map_err(|e| format!("n{s}: DUMP {db}: {e}"))?;
                let image = super::dbimage::image_of_dump(&files)
                    .map_err(|e| format!("n{s}: DUMP {db}: {e}"))?;
                copies.push((s, image));
            }
            if let Some((s0, first)) = copies.first() {
                for (s, c) in &copies[1..] {
                    if c != first {
                        let at = first.iter().zip(c.iter()).position(|(p, q)| p != q);
                        return Err(format!(
                            "database {db} differs between n{s0} ({} bytes) and n{s} ({} bytes), first at {}",
                            first.len(),
                            c.len(),
                            at.map_or("the end of the shorter".to_string(), |o| format!(
                                "offset {o}"
                            ))
                        ));
                    }
                }
            }
        }
        let leader = leaders.into_iter().next().unwrap_or_default();
        let names: Vec<String> = members
            .iter()
            .map(|(s, m)| format!("n{s}({})", m.role))
            .collect();
        Ok(format!(
            "{} members [{}] agree on leader n{} and hold identical copies of {}",
            members.len(),
            names.join(" "),
            netns::slot_of(&leader).map_or("?".to_string(), |s| s.to_string()),
            dbs.join(", ")
        ))
    }
}
