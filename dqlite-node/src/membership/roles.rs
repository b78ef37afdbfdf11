//! Automatic role management (C dqlite's `roles.c`, go-dqlite's `app` roles), on the leader.
//!
//! Every [`RoleOptions::interval`] (more often while one fails to answer) the leader probes
//! every other member (connect, DESCRIBE: failure domain and weight) and then applies, one
//! at a time, the changes [`plan`] asks for, through the same [`Shared::assign_role`] an
//! operator's ASSIGN uses. A member that has not answered for [`RoleOptions::offline_after`]
//! is *offline*; before that it is *suspect*: it still counts in its role, but is never
//! promoted.
//!
//! What [`plan`] keeps, first rule that applies:
//! 1. enough live voters: while fewer than the target (rounded down to an odd number when the
//!    target cannot be reached: two voters tolerate no more failures than one), promote an
//!    online stand-by or spare;
//! 2. no offline voters: demote them to spare;
//! 3. not too many voters: demote the least preferred live voter (never the leader);
//! 4. no offline stand-bys; 5. enough stand-bys (from online spares); 6. not too many.
//!
//! Preference for promotion: a failure domain that has no member in the role yet, then (for
//! voters) stand-bys before spares, then lower weight, then lower id; demotion takes the
//! reverse. A member an operator assigned a role by hand
//! ([`OperatorPins`](super::assign::OperatorPins)) is left alone for
//! [`RoleOptions::operator_hold`]; it still counts, so the manager meets its targets around it
//! and never undoes the operator's change while the hold lasts.
//!
//! A member that stops gracefully hands its role over first ([`hand_over_role`]): a leader
//! hands leadership over, then the member asks the leader to give its role to the best online
//! candidate and to make itself a spare (as C's `dqlite_node_handover`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dqlite_wire::Role;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::join::client_config;
use crate::node::Shared;
use crate::tls::TlsConfig;

/// How often the leader probes while a member fails its probes (if [`RoleOptions::interval`]
/// is longer).
const FAILING_PROBE_INTERVAL: Duration = Duration::from_millis(200);

/// Settings of automatic role management.
#[derive(Debug, Clone)]
pub struct RoleOptions {
    /// Run role management when this node leads. Default true. Every member should have the
    /// same setting: a node that joins with it on asks only to be added (as a spare) and waits
    /// for the leader to place it.
    pub enabled: bool,
    /// Voters to keep live. Default 3 (odd numbers make sense: see the module doc).
    pub voters: usize,
    /// Stand-bys to keep live. Default 3.
    pub standbys: usize,
    /// How often the leader probes the members and adjusts roles. Default 1 s (every
    /// 200 ms while a member does not answer, so that one that comes back is placed soon).
    pub interval: Duration,
    /// How long a member must have been unreachable before it counts as offline and loses
    /// its role. Default 3 s.
    pub offline_after: Duration,
    /// How long one probe (connect and DESCRIBE) may take. Default 1 s.
    pub probe_timeout: Duration,
    /// How long a role an operator gave by hand (ASSIGN) is left alone. Default 30 s.
    pub operator_hold: Duration,
}

impl Default for RoleOptions {
    fn default() -> Self {
        RoleOptions {
            enabled: true,
            voters: 3,
            standbys: 3,
            interval: Duration::from_secs(1),
            offline_after: Duration::from_secs(3),
            probe_timeout: Duration::from_secs(1),
            operator_hold: Duration::from_secs(30),
        }
    }
}

/// Whether a member answers probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    /// Answered the last probe.
    Online,
    /// Has not answered for less than `offline_after`: keeps its role, is not promoted.
    Suspect,
    /// Has not answered for `offline_after` or more.
    Offline,
}

/// A member as role management sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    pub id: u64,
    pub role: Role,
    pub health: Health,
    pub failure_domain: u64,
    pub weight: u64,
}

/// The targets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Targets {
    pub voters: usize,
    pub standbys: usize,
}

/// Members in `role` that are not offline.
fn live_in(nodes: &[Seen], role: Role) -> impl Iterator<Item = &Seen> {
    nodes
        .iter()
        .filter(move |n| n.role == role && n.health != Health::Offline)
}

/// Live members of `role` sharing `n`'s failure domain.
fn domain_count(nodes: &[Seen], role: Role, n: &Seen) -> usize {
    live_in(nodes, role)
        .filter(|m| m.failure_domain == n.failure_domain && m.id != n.id)
        .count()
}

/// The best candidate to promote into `role`.
fn best<'a>(nodes: &[Seen], role: Role, cands: impl Iterator<Item = &'a Seen>) -> Option<u64> {
    cands
        .min_by_key(|n| {
            (
                domain_count(nodes, role, n) > 0,
                role == Role::Voter && n.role != Role::Standby,
                n.weight,
                n.id,
            )
        })
        .map(|n| n.id)
}

/// The member of `role` to demote first.
fn worst<'a>(nodes: &[Seen], role: Role, cands: impl Iterator<Item = &'a Seen>) -> Option<u64> {
    cands
        .max_by_key(|n| {
            (
                n.health == Health::Suspect,
                domain_count(nodes, role, n),
                n.weight,
                n.id,
            )
        })
        .map(|n| n.id)
}

/// The next role change to make, if any: `(member, new role)`. Never touches `leader` or a
/// member in `pinned`, never promotes a member that is not online, and never returns a member's
/// current role. Applying its answers one by one reaches a state where it answers `None`.
pub(crate) fn plan(
    nodes: &[Seen],
    leader: u64,
    targets: Targets,
    pinned: &BTreeSet<u64>,
) -> Option<(u64, Role)> {
    if nodes.len() <= 1 {
        return None;
    }
    let movable = |n: &&Seen| n.id != leader && !pinned.contains(&n.id);
    let voters = live_in(nodes, Role::Voter).count();
    let standbys = live_in(nodes, Role::Standby).count();

    // 1. Enough voters.
    let candidates: Vec<&Seen> = nodes
        .iter()
        .filter(|n| n.role != Role::Voter && n.health == Health::Online)
        .filter(movable)
        .collect();
    let mut want = targets.voters.min(voters + candidates.len());
    if want < targets.voters && want.is_multiple_of(2) && want > 0 {
        want -= 1;
    }
    if voters < want
        && let Some(id) = best(nodes, Role::Voter, candidates.into_iter())
    {
        return Some((id, Role::Voter));
    }
    // 2. No offline voters.
    if let Some(n) = nodes
        .iter()
        .filter(|n| n.role == Role::Voter && n.health == Health::Offline)
        .find(movable)
    {
        return Some((n.id, Role::Spare));
    }
    // 3. Not too many voters.
    if voters > targets.voters
        && let Some(id) = worst(
            nodes,
            Role::Voter,
            live_in(nodes, Role::Voter).filter(movable),
        )
    {
        let to = if standbys < targets.standbys {
            Role::Standby
        } else {
            Role::Spare
        };
        return Some((id, to));
    }
    // 4. No offline stand-bys.
    if let Some(n) = nodes
        .iter()
        .filter(|n| n.role == Role::Standby && n.health == Health::Offline)
        .find(movable)
    {
        return Some((n.id, Role::Spare));
    }
    // 5. Enough stand-bys.
    if standbys < targets.standbys {
        let spares = nodes
            .iter()
            .filter(|n| n.role == Role::Spare && n.health == Health::Online)
            .filter(movable);
        if let Some(id) = best(nodes, Role::Standby, spares) {
            return Some((id, Role::Standby));
        }
    }
    // 6. Not too many stand-bys.
    if standbys > targets.standbys
        && let Some(id) = worst(
            nodes,
            Role::Standby,
            live_in(nodes, Role::Standby).filter(movable),
        )
    {
        return Some((id, Role::Spare));
    }
    None
}

/// What the last probes of a member said.
#[derive(Debug, Clone, Default)]
struct Probe {
    /// Since when it has not answered (None: it answered the last probe).
    failing_since: Option<Instant>,
    failure_domain: u64,
    weight: u64,
}

/// DESCRIBE of the member at `address`: its failure domain and weight, or None if it did not
/// answer within `timeout`.
async fn describe(address: &str, tls: Option<&TlsConfig>, timeout: Duration) -> Option<(u64, u64)> {
    let ask = async {
        let client = dqlite_client::Client::new([address], client_config(tls)).ok()?;
        let m = client.describe(address).await.ok()?;
        Some((m.failure_domain, m.weight))
    };
    tokio::time::timeout(timeout, ask).await.ok().flatten()
}

/// Probes every member but this node at once; answers (id, DESCRIBE answer).
async fn probe_all(shared: &Shared, timeout: Duration) -> Vec<(u64, Option<(u64, u64)>)> {
    let mut set = JoinSet::new();
    for (id, address, _) in shared.member_roles() {
        if id == shared.id {
            continue;
        }
        let tls = shared.tls.clone();
        set.spawn(async move { (id, describe(&address, tls.as_ref(), timeout).await) });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(r) = r {
            out.push(r);
        }
    }
    out
}

/// The members with their health as of `probes`; this node is online.
fn seen(shared: &Shared, probes: &BTreeMap<u64, Probe>, offline_after: Duration) -> Vec<Seen> {
    shared
        .member_roles()
        .into_iter()
        .map(|(id, _, role)| {
            let (health, failure_domain, weight) = if id == shared.id {
                (
                    Health::Online,
                    shared.failure_domain,
                    shared.weight.load(std::sync::atomic::Ordering::Relaxed),
                )
            } else {
                let p = probes.get(&id).cloned().unwrap_or(Probe {
                    failing_since: Some(Instant::now()),
                    ..Probe::default()
                });
                let health = match p.failing_since {
                    None => Health::Online,
                    Some(t) if t.elapsed() >= offline_after => Health::Offline,
                    Some(_) => Health::Suspect,
                };
                (health, p.failure_domain, p.weight)
            };
            Seen {
                id,
                role,
                health,
                failure_domain,
                weight,
            }
        })
        .collect()
}

/// The role manager: runs for the node's life, acts only while this node leads.
pub(crate) async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let opts = shared.options.roles.clone();
    let targets = Targets {
        voters: opts.voters,
        standbys: opts.standbys,
    };
    let mut probes: BTreeMap<u64, Probe> = BTreeMap::new();
    let mut first = true;
    loop {
        // While a member fails its probes, probe more often: a node that comes back (a
        // restart) gets its role back, and starts serving, soon after it listens.
        let wait = if first {
            Duration::ZERO
        } else if probes.values().any(|p| p.failing_since.is_some()) {
            opts.interval.min(FAILING_PROBE_INTERVAL)
        } else {
            opts.interval
        };
        first = false;
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        if !shared.is_leader() {
            // A later term starts from a clean slate: what another leader saw is unknown.
            probes.clear();
            continue;
        }
        if !shared.wait_term_applied(opts.interval).await {
            continue;
        }
        let now = Instant::now();
        for (id, answer) in probe_all(&shared, opts.probe_timeout).await {
            let p = probes.entry(id).or_default();
            match answer {
                Some((failure_domain, weight)) => {
                    *p = Probe {
                        failing_since: None,
                        failure_domain,
                        weight,
                    }
                }
                None => {
                    p.failing_since.get_or_insert(now);
                }
            }
        }
        let members = shared.member_roles();
        probes.retain(|id, _| members.iter().any(|m| m.0 == *id));
        // Each change is planned on the membership the previous one left.
        for _ in 0..2 * members.len() {
            if !shared.is_leader() {
                break;
            }
            let pinned = shared.pins.pinned(opts.operator_hold);
            let nodes = seen(&shared, &probes, opts.offline_after);
            let Some((id, role)) = plan(&nodes, shared.id, targets, &pinned) else {
                break;
            };
            let from = nodes
                .iter()
                .find(|n| n.id == id)
                .map(|n| (n.role, n.health));
            tracing::info!(node = id, ?from, to = %role, "role management: assigning");
            if let Err(e) = shared.assign_role(id, role).await {
                tracing::warn!(node = id, to = %role, error = %e, "role management: change failed");
                break;
            }
        }
    }
}

/// Asks the leader (found through this node's view) to ASSIGN `role` to node `id`, retrying
/// while it answers "busy" (another change settling) or leadership moves, until `deadline`.
async fn ask_leader(shared: &Shared, id: u64, role: Role, deadline: Instant) -> Result<(), String> {
    let mut last = String::from("no leader known");
    while Instant::now() < deadline {
        if let Some((leader, address)) = shared.leader()
            && leader != shared.id
        {
            match dqlite_client::Client::new([address], client_config(shared.tls.as_ref())) {
                Ok(client) => match client.assign(id, role).await {
                    Ok(()) => return Ok(()),
                    Err(e)
                        if e.message()
                            .is_some_and(|m| m.starts_with("server is already")) =>
                    {
                        return Ok(());
                    }
                    Err(e) => last = e.to_string(),
                },
                Err(e) => last = e.to_string(),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last)
}

/// Hands this node's role (voter or stand-by) to the best online candidate before it stops,
/// and makes this node a spare. A leader first hands leadership over. Logs and gives up on
/// failure: the node stops either way and the leader's role management fills the gap once it
/// sees this node offline.
pub(crate) async fn hand_over_role(shared: &Shared) {
    if !shared.options.roles.enabled {
        return;
    }
    let members = shared.member_roles();
    let Some(role) = members.iter().find(|m| m.0 == shared.id).map(|m| m.2) else {
        return;
    };
    if role == Role::Spare || members.len() <= 1 {
        return;
    }
    let timeout = shared.options.handover_timeout;
    let deadline = Instant::now() + 2 * timeout;
    if shared.is_leader() {
        if shared.most_up_to_date_voter().is_none() {
            return;
        }
        let started = Instant::now();
        match shared.hand_over(None, timeout).await {
            Ok(leader) => tracing::info!(
                leader,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "handed leadership over"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "role handover: leadership stays here");
                return;
            }
        }
    }
    // Candidates: online spares, and for a voter stand-bys too.
    let probes = probe_all(shared, shared.options.roles.probe_timeout).await;
    let nodes: Vec<Seen> = members
        .iter()
        .map(|(id, _, r)| {
            let answer = probes.iter().find(|p| p.0 == *id).and_then(|p| p.1);
            Seen {
                id: *id,
                role: *r,
                health: if answer.is_some() {
                    Health::Online
                } else {
                    Health::Offline
                },
                failure_domain: answer.map_or(0, |a| a.0),
                weight: answer.map_or(0, |a| a.1),
            }
        })
        .collect();
    let candidates = nodes.iter().filter(|n| {
        n.health == Health::Online
            && n.id != shared.id
            && (n.role == Role::Spare || (role == Role::Voter && n.role == Role::Standby))
    });
    let Some(candidate) = best(&nodes, role, candidates) else {
        tracing::info!(%role, "role handover: no online candidate");
        return;
    };
    if let Err(e) = ask_leader(shared, candidate, role, deadline).await {
        tracing::warn!(candidate, %role, error = %e, "role handover: promotion failed");
        return;
    }
    match ask_leader(shared, shared.id, Role::Spare, deadline).await {
        Ok(()) => tracing::info!(candidate, %role, "handed role over"),
        Err(e) => tracing::warn!(error = %e, "role handover: could not become a spare"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(id: u64, role: Role, health: Health) -> Seen {
        Seen {
            id,
            role,
            health,
            failure_domain: 0,
            weight: 0,
        }
    }

    const T33: Targets = Targets {
        voters: 3,
        standbys: 3,
    };

    /// Applies plan's answers until it has none; the states it went through.
    fn settle(
        mut nodes: Vec<Seen>,
        leader: u64,
        t: Targets,
        pinned: &BTreeSet<u64>,
    ) -> (Vec<Seen>, usize) {
        for step in 0..4 * nodes.len() + 4 {
            match plan(&nodes, leader, t, pinned) {
                None => return (nodes, step),
                Some((id, role)) => {
                    let n = nodes.iter_mut().find(|n| n.id == id).unwrap();
                    assert_ne!(n.role, role, "plan returned the current role");
                    n.role = role;
                }
            }
        }
        panic!("plan did not settle: {nodes:?}");
    }

    fn count(nodes: &[Seen], role: Role) -> usize {
        nodes.iter().filter(|n| n.role == role).count()
    }

    #[test]
    fn five_fresh_nodes_settle_to_three_voters_and_two_standbys() {
        let mut nodes = vec![node(1, Role::Voter, Health::Online)];
        nodes.extend((2..=5).map(|i| node(i, Role::Spare, Health::Online)));
        let (end, _) = settle(nodes, 1, T33, &BTreeSet::new());
        assert_eq!(count(&end, Role::Voter), 3);
        assert_eq!(count(&end, Role::Standby), 2);
    }

    #[test]
    fn two_nodes_keep_one_voter() {
        let nodes = vec![
            node(1, Role::Voter, Health::Online),
            node(2, Role::Spare, Health::Online),
        ];
        let (end, _) = settle(nodes, 1, T33, &BTreeSet::new());
        assert_eq!(count(&end, Role::Voter), 1);
        assert_eq!(count(&end, Role::Standby), 1);
    }

    #[test]
    fn an_offline_voter_is_replaced_by_a_standby_before_it_is_demoted() {
        let nodes = vec![
            node(1, Role::Voter, Health::Online),
            node(2, Role::Voter, Health::Online),
            node(3, Role::Voter, Health::Offline),
            node(4, Role::Standby, Health::Online),
            node(5, Role::Standby, Health::Online),
        ];
        assert_eq!(
            plan(&nodes, 1, T33, &BTreeSet::new()),
            Some((4, Role::Voter))
        );
        let (end, _) = settle(nodes, 1, T33, &BTreeSet::new());
        assert_eq!(end[2].role, Role::Spare);
        assert_eq!(count(&end, Role::Voter), 3);
    }

    #[test]
    fn a_suspect_voter_keeps_its_role_and_a_suspect_spare_is_not_promoted() {
        let nodes = vec![
            node(1, Role::Voter, Health::Online),
            node(2, Role::Voter, Health::Online),
            node(3, Role::Voter, Health::Suspect),
            node(4, Role::Spare, Health::Suspect),
        ];
        assert_eq!(plan(&nodes, 1, T33, &BTreeSet::new()), None);
    }

    #[test]
    fn promotion_prefers_a_new_failure_domain_then_lower_weight() {
        let mut nodes = vec![
            node(1, Role::Voter, Health::Online),
            node(2, Role::Spare, Health::Online),
            node(3, Role::Spare, Health::Online),
            node(4, Role::Spare, Health::Online),
        ];
        nodes[1].weight = 5; // same domain as the leader
        nodes[2].failure_domain = 1;
        nodes[2].weight = 9;
        nodes[3].failure_domain = 1;
        nodes[3].weight = 1;
        assert_eq!(
            plan(&nodes, 1, T33, &BTreeSet::new()),
            Some((4, Role::Voter))
        );
    }

    #[test]
    fn an_operators_voter_stays_and_another_voter_makes_room() {
        let nodes = vec![
            node(1, Role::Voter, Health::Online),
            node(2, Role::Voter, Health::Online),
            node(3, Role::Voter, Health::Online),
            node(4, Role::Voter, Health::Online),
        ];
        let pinned: BTreeSet<u64> = [4].into();
        assert_eq!(plan(&nodes, 1, T33, &pinned), Some((3, Role::Standby)));
    }

    fn arb_node() -> impl Strategy<Value = (u8, u8, u8, u8)> {
        (0u8..3, 0u8..3, 0u8..3, 0u8..4)
    }

    proptest! {
        /// From any membership, health, pins and targets, plan's answers settle in a bounded
        /// number of steps (no loops), never touch the leader or a pinned member, never promote
        /// a member that is not online, and the end state cannot be improved.
        #[test]
        fn plan_settles_and_respects_its_rules(
            raw in proptest::collection::vec(arb_node(), 1..9),
            voters in prop_oneof![Just(1usize), Just(3), Just(5)],
            standbys in 0usize..4,
            pin_mask in any::<u16>(),
        ) {
            let mut nodes: Vec<Seen> = raw
                .iter()
                .enumerate()
                .map(|(i, (r, h, d, w))| Seen {
                    id: i as u64 + 1,
                    role: Role::from_code(u64::from(*r)).unwrap(),
                    health: [Health::Online, Health::Suspect, Health::Offline][*h as usize],
                    failure_domain: u64::from(*d),
                    weight: u64::from(*w),
                })
                .collect();
            // The leader is an online voter.
            nodes[0].role = Role::Voter;
            nodes[0].health = Health::Online;
            let pinned: BTreeSet<u64> = nodes
                .iter()
                .filter(|n| n.id != 1 && pin_mask & (1 << n.id) != 0)
                .map(|n| n.id)
                .collect();
            let t = Targets { voters, standbys };
            let before = nodes.clone();
            let mut state = nodes.clone();
            for _ in 0..4 * nodes.len() + 4 {
                let Some((id, role)) = plan(&state, 1, t, &pinned) else { break };
                prop_assert!(id != 1 && !pinned.contains(&id));
                let n = state.iter_mut().find(|n| n.id == id).unwrap();
                prop_assert_ne!(n.role, role);
                let promoted = matches!(
                    (n.role, role),
                    (Role::Spare, _) | (Role::Standby, Role::Voter)
                );
                prop_assert!(!promoted || n.health == Health::Online);
                n.role = role;
            }
            let (end, _) = settle(state, 1, t, &pinned);
            nodes = end;
            let movable = |n: &Seen| n.id != 1 && !pinned.contains(&n.id);
            // Nothing offline keeps a role it could lose.
            prop_assert!(!nodes.iter().any(|n| movable(n)
                && n.role != Role::Spare && n.health == Health::Offline));
            // Too many voters only if none can be demoted.
            let live_voters = live_in(&nodes, Role::Voter).count();
            prop_assert!(live_voters <= voters
                || live_in(&nodes, Role::Voter).all(|n| !movable(n)));
            // Too few voters only if no online candidate is left.
            let cands = nodes.iter().filter(|n| movable(n) && n.role != Role::Voter
                && n.health == Health::Online).count();
            // (or the one candidate left would make an even number short of the target).
            prop_assert!(live_voters >= voters || cands == 0
                || (cands == 1 && (live_voters + 1).is_multiple_of(2) && live_voters + 1 < voters));
            // Pinned members and the leader kept their roles.
            for (b, e) in before.iter().zip(&nodes) {
                if !movable(b) {
                    prop_assert_eq!(b.role, e.role);
                }
            }
        }
    }
}
