//! Moving a member between the voter, stand-by and spare roles: the one implementation behind
//! the ASSIGN request (an operator) and automatic role management (the leader itself).
//!
//! Roles map onto openraft as: voter = voter, stand-by = learner, spare = learner whose
//! [`Member::spare`] flag is set. A spare loses its flag before it takes another role, and a
//! server gets the flag only once it is no longer a voter, so every intermediate configuration
//! is a valid one.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use dqlite_wire::Role;
use openraft::ChangeMembers;

use crate::error::{SqlFailure, code};
use crate::membership::Member;
use crate::node::Shared;

/// How long a membership change waits for an unfinished one to settle.
pub(crate) const MEMBERSHIP_WAIT: Duration = Duration::from_secs(10);

/// A failure of a Raft membership call, as a client sees it.
pub(crate) fn raft_failure(e: &dqlite_raft::node::NodeError<u64, Member>) -> SqlFailure {
    use dqlite_raft::node::NodeError as E;
    match e {
        E::NotLeader { .. } => SqlFailure::not_leader(),
        E::Membership(m) => SqlFailure::new(code::BUSY, m.clone()),
        other => SqlFailure::error(other.to_string()),
    }
}

/// Roles an operator gave by hand recently, which role management leaves alone for a while
/// (so that it never undoes an explicit ASSIGN right away, and an operator and the manager
/// cannot take turns undoing each other).
#[derive(Debug, Default)]
pub(crate) struct OperatorPins {
    pins: std::sync::Mutex<BTreeMap<u64, Instant>>,
}

impl OperatorPins {
    /// Records that an operator just assigned node `id` a role.
    pub fn pin(&self, id: u64) {
        self.lock().insert(id, Instant::now());
    }

    /// Nodes an operator assigned within the last `hold`.
    pub fn pinned(&self, hold: Duration) -> BTreeSet<u64> {
        let mut pins = self.lock();
        pins.retain(|_, at| at.elapsed() < hold);
        pins.keys().copied().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Instant>> {
        self.pins.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Shared {
    /// Gives member `node_id` the role `wanted`. The caller checked that this node leads.
    /// Fails with "no such server" / "server is already <role>" as C dqlite's ASSIGN does,
    /// and with SQLITE_BUSY if another change did not settle in time.
    pub(crate) async fn assign_role(&self, node_id: u64, wanted: Role) -> Result<(), SqlFailure> {
        // One change at a time from this node: an operator's request waits for the role
        // manager's change (and the other way round) instead of being refused as "in progress".
        let _one = self.membership_lock.lock().await;
        self.membership_settled(MEMBERSHIP_WAIT).await;
        let members = self.member_roles();
        let Some((_, address, current)) = members.iter().find(|m| m.0 == node_id).cloned() else {
            return Err(SqlFailure::error("no such server"));
        };
        if wanted == current {
            return Err(SqlFailure::error(format!("server is already {current}")));
        }
        let voters: BTreeSet<u64> = members
            .iter()
            .filter(|m| m.2 == Role::Voter)
            .map(|m| m.0)
            .collect();
        if current == Role::Spare {
            self.set_spare(node_id, &address, false).await?;
        }
        if wanted == Role::Voter || current == Role::Voter {
            let mut v = voters;
            if wanted == Role::Voter {
                v.insert(node_id);
            } else {
                v.remove(&node_id);
            }
            self.raft
                .change_membership(v, true)
                .await
                .map_err(|e| raft_failure(&e))?;
        }
        if wanted == Role::Spare {
            self.set_spare(node_id, &address, true).await?;
        }
        Ok(())
    }

    /// Adds member `node_id` at `address` as a spare (as C dqlite's ADD).
    pub(crate) async fn add_spare(&self, node_id: u64, address: String) -> Result<(), SqlFailure> {
        let _one = self.membership_lock.lock().await;
        self.membership_settled(MEMBERSHIP_WAIT).await;
        if self.members().iter().any(|m| m.0 == node_id) {
            return Err(SqlFailure::error("server ID already in use"));
        }
        let member = Member {
            addr: address,
            spare: true,
        };
        self.raft
            .add_learner(node_id, member, false)
            .await
            .map_err(|e| raft_failure(&e))?;
        Ok(())
    }

    /// Removes member `node_id`; a voter is first demoted through a joint configuration.
    pub(crate) async fn remove_member(&self, node_id: u64) -> Result<(), SqlFailure> {
        let _one = self.membership_lock.lock().await;
        self.membership_settled(MEMBERSHIP_WAIT).await;
        let members = self.members();
        let Some((_, _, is_voter)) = members.iter().find(|(id, _, _)| *id == node_id) else {
            return Err(SqlFailure::error("no such server"));
        };
        if *is_voter {
            let v: BTreeSet<u64> = members
                .iter()
                .filter(|m| m.2 && m.0 != node_id)
                .map(|m| m.0)
                .collect();
            self.raft
                .change_membership(v, false)
                .await
                .map_err(|e| raft_failure(&e))?;
        } else {
            let mut set = BTreeSet::new();
            set.insert(node_id);
            self.raft
                .raft()
                .change_membership(ChangeMembers::RemoveNodes(set), false)
                .await
                .map_err(|e| SqlFailure::error(e.to_string()))?;
        }
        Ok(())
    }

    /// Records (or clears) the spare role of non-voter `node_id` in the membership.
    async fn set_spare(&self, node_id: u64, address: &str, spare: bool) -> Result<(), SqlFailure> {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            node_id,
            Member {
                addr: address.to_string(),
                spare,
            },
        );
        self.raft
            .raft()
            .change_membership(ChangeMembers::SetNodes(nodes), true)
            .await
            .map_err(|e| SqlFailure::error(e.to_string()))?;
        Ok(())
    }
}
