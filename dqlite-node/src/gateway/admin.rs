//! Cluster requests: LEADER, ADD, ASSIGN, REMOVE, DUMP, CLUSTER, TRANSFER, DESCRIBE, WEIGHT.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dqlite_wire::{File, NodeAddress, NodeInfo, Response, Role};
use openraft::ChangeMembers;

use super::session::Session;
use crate::error::{SqlFailure, code};
use crate::membership::Member;

/// How long ADD/ASSIGN/REMOVE wait for an unfinished membership change to settle.
const MEMBERSHIP_WAIT: Duration = Duration::from_secs(10);

fn raft_failure(e: &dqlite_raft::node::NodeError<u64, Member>) -> SqlFailure {
    use dqlite_raft::node::NodeError as E;
    match e {
        E::NotLeader { .. } => SqlFailure::not_leader(),
        E::Membership(m) => SqlFailure::new(code::BUSY, m.clone()),
        other => SqlFailure::error(other.to_string()),
    }
}

impl Session {
    /// LEADER: the leader this node knows of; none when this node is not a voter.
    pub fn leader(&self) -> Response {
        let shared = &self.shared;
        let voter = shared
            .members()
            .iter()
            .any(|(id, _, voter)| *id == shared.id && *voter);
        let (node_id, address) = match shared.leader() {
            Some(l) if voter => l,
            _ => (0, String::new()),
        };
        if self.legacy {
            Response::ServerLegacy { address }
        } else {
            Response::Server { node_id, address }
        }
    }

    /// ADD: a new server joins as a spare (as in C dqlite); ASSIGN gives it a role.
    pub async fn add(&mut self, node_id: u64, address: String) -> Result<Response, SqlFailure> {
        let shared = self.shared.clone();
        self.check_leader().await?;
        shared.membership_settled(MEMBERSHIP_WAIT).await;
        if shared.members().iter().any(|m| m.0 == node_id) {
            return Err(SqlFailure::error("server ID already in use"));
        }
        // As in C dqlite, a new server starts as a spare; ASSIGN gives it a role.
        let member = Member {
            addr: address,
            spare: true,
        };
        shared
            .raft
            .add_learner(node_id, member, false)
            .await
            .map_err(|e| raft_failure(&e))?;
        Ok(Response::Empty)
    }

    /// ASSIGN: moves a server between voter, stand-by and spare.
    pub async fn assign(
        &mut self,
        node_id: u64,
        role: Option<u64>,
    ) -> Result<Response, SqlFailure> {
        let shared = self.shared.clone();
        self.check_leader().await?;
        shared.membership_settled(MEMBERSHIP_WAIT).await;
        let members = shared.member_roles();
        let Some((_, address, current)) = members.iter().find(|m| m.0 == node_id).cloned() else {
            return Err(SqlFailure::error("no such server"));
        };
        let voters: BTreeSet<u64> = members
            .iter()
            .filter(|m| m.2 == Role::Voter)
            .map(|m| m.0)
            .collect();
        // No role means voter; an unknown role number means stand-by (as in C).
        let wanted = match role.map(Role::from_code) {
            None | Some(Some(Role::Voter)) => Role::Voter,
            Some(Some(Role::Spare)) => Role::Spare,
            Some(_) => Role::Standby,
        };
        if wanted == current {
            let name = match current {
                Role::Voter => "voter",
                Role::Standby => "stand-by",
                Role::Spare => "spare",
            };
            return Err(SqlFailure::error(format!("server is already {name}")));
        }
        // A spare loses its flag before it takes another role; a server gets the
        // flag only once it is no longer a voter.
        if current == Role::Spare {
            self.set_spare(node_id, &address, false).await?;
        }
        if wanted == Role::Voter {
            let mut v = voters;
            v.insert(node_id);
            shared
                .raft
                .change_membership(v, true)
                .await
                .map_err(|e| raft_failure(&e))?;
        } else if current == Role::Voter {
            let mut v = voters;
            v.remove(&node_id);
            shared
                .raft
                .change_membership(v, true)
                .await
                .map_err(|e| raft_failure(&e))?;
        }
        if wanted == Role::Spare {
            self.set_spare(node_id, &address, true).await?;
        }
        Ok(Response::Empty)
    }

    /// REMOVE: a voter is first demoted through a joint configuration.
    pub async fn remove(&mut self, node_id: u64) -> Result<Response, SqlFailure> {
        let shared = self.shared.clone();
        self.check_leader().await?;
        shared.membership_settled(MEMBERSHIP_WAIT).await;
        let members = shared.members();
        let Some((_, _, is_voter)) = members.iter().find(|(id, _, _)| *id == node_id) else {
            return Err(SqlFailure::error("no such server"));
        };
        if *is_voter {
            let v: BTreeSet<u64> = members
                .iter()
                .filter(|m| m.2 && m.0 != node_id)
                .map(|m| m.0)
                .collect();
            shared
                .raft
                .change_membership(v, false)
                .await
                .map_err(|e| raft_failure(&e))?;
        } else {
            let mut set = BTreeSet::new();
            set.insert(node_id);
            shared
                .raft
                .raft()
                .change_membership(ChangeMembers::RemoveNodes(set), false)
                .await
                .map_err(|e| SqlFailure::error(e.to_string()))?;
        }
        Ok(Response::Empty)
    }

    /// DUMP: the main file and WAL of a database (empty files for an unknown one).
    pub async fn dump(&self, name: String) -> Result<Response, SqlFailure> {
        let files = match self.shared.registry.get(&name) {
            Some(db) => db.dump().await?,
            None => dqlite_vfs::DatabaseFiles {
                main: Vec::new(),
                wal: Vec::new(),
            },
        };
        Ok(Response::Files {
            files: vec![
                File {
                    name: name.clone(),
                    data: files.main,
                },
                File {
                    name: format!("{name}-wal"),
                    data: files.wal,
                },
            ],
        })
    }

    /// CLUSTER: every member (format 1 with roles).
    pub fn cluster(&self, format: u64) -> Result<Response, SqlFailure> {
        let shared = &self.shared;
        match format {
            0 => Ok(Response::ServersFormat0 {
                servers: shared
                    .members()
                    .into_iter()
                    .map(|(id, address, _)| NodeAddress { id, address })
                    .collect(),
            }),
            1 => Ok(Response::Servers {
                servers: shared
                    .member_roles()
                    .into_iter()
                    .map(|(id, address, role)| NodeInfo { id, address, role })
                    .collect(),
            }),
            _ => Err(SqlFailure::new(
                code::DQLITE_PARSE,
                "unrecognized cluster format",
            )),
        }
    }

    /// DESCRIBE: failure domain and weight.
    pub fn describe(&self, format: u64) -> Result<Response, SqlFailure> {
        if format != 0 {
            return Err(SqlFailure::new(code::PROTOCOL, "bad format version"));
        }
        Ok(Response::Metadata {
            failure_domain: self.shared.failure_domain,
            weight: self.shared.weight.load(Ordering::Relaxed),
        })
    }

    /// WEIGHT: this node's weight.
    pub fn set_weight(&self, weight: u64) -> Response {
        self.shared.weight.store(weight, Ordering::Relaxed);
        Response::Empty
    }

    /// Records (or clears) the spare role of non-voter `node_id` in the membership.
    async fn set_spare(&self, node_id: u64, address: &str, spare: bool) -> Result<(), SqlFailure> {
        let mut nodes = std::collections::BTreeMap::new();
        nodes.insert(
            node_id,
            Member {
                addr: address.to_string(),
                spare,
            },
        );
        self.shared
            .raft
            .raft()
            .change_membership(ChangeMembers::SetNodes(nodes), true)
            .await
            .map_err(|e| SqlFailure::error(e.to_string()))?;
        Ok(())
    }

    /// TRANSFER. openraft 0.9 has no leadership transfer, so the leader asks the target (with
    /// a TRANSFER naming the target itself, which a voter that is not leader takes as "start
    /// an election now") and then waits until it is no longer leader. The target wins if its
    /// log is up to date. Id 0 picks the voter with the most replicated log.
    pub async fn transfer(&self, node_id: u64) -> Result<Response, SqlFailure> {
        let shared = &self.shared;
        let failed = || SqlFailure::error("leadership transfer failed");
        let members = shared.members();
        let is_voter = |id: u64| members.iter().any(|m| m.0 == id && m.2);
        if !shared.is_leader() {
            if node_id != shared.id || !is_voter(shared.id) {
                return Err(SqlFailure::not_leader());
            }
            // Voters that heard from the leader recently refuse votes (openraft's leader
            // lease), so an election may lose: try again until the deadline. This node itself
            // campaigns only once a read lease the leader may hold on its acknowledgements is
            // over (`RaftNode::campaign`): a leader that is not handing over keeps it in
            // contact, and the request then fails.
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                let started = shared
                    .raft
                    .campaign(deadline)
                    .await
                    .map_err(|e| SqlFailure::error(e.to_string()))?;
                if !started {
                    break;
                }
                let round = Instant::now() + Duration::from_millis(200);
                while Instant::now() < round {
                    if shared.is_leader() {
                        return Ok(Response::Empty);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            return Err(failed());
        }
        // The leader hands over as on shutdown: it stops heartbeats (so the target's
        // election is not refused under the voters' leader lease), waits for the target to
        // hold its log, and dials it with the node's TLS settings.
        let target = if node_id == 0 { None } else { Some(node_id) };
        shared
            .hand_over(target, Duration::from_secs(5))
            .await
            .map_err(|e| SqlFailure::error(e.to_string()))?;
        Ok(Response::Empty)
    }
}
