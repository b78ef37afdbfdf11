//! Disaster recovery of a node whose cluster lost its quorum for good (what
//! `dqlite-node recover` runs; C dqlite's `dqlite_node_recover_ext`).
//!
//! Stop every surviving node; pick the most up-to-date one ([`describe`]: the highest last
//! log index, then term); run [`recover_membership`] on its data directory with the members
//! the new cluster starts with (usually just that node); start it. It elects itself and holds
//! every write that was acknowledged, and other nodes join it afresh (empty data directories)
//! and are placed by role management. See `dqlite_raft::reconfigure` for what is written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use dqlite_raft::reconfigure::{self, Reconfigured, Summary};
use openraft::Membership;

use crate::data_dir::{DataDir, Identity};
use crate::error::NodeError;
use crate::membership::Member;
use crate::replication::NodeConfig;

/// The identity and Raft state of the stopped node whose data directory is `dir`.
pub async fn describe(dir: &Path) -> Result<(Identity, Summary<u64>), NodeError> {
    let identity = Identity::read(dir)?.ok_or_else(|| {
        NodeError::Config(format!(
            "{}: no node-info: not a node's data directory",
            dir.display()
        ))
    })?;
    let _locked = DataDir::open(dir, identity.id)?;
    let summary = reconfigure::inspect::<NodeConfig>(&dir.join("raft"))
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?;
    Ok((identity, summary))
}

/// Makes `members` (id, address; all voters) the membership of the stopped node whose data
/// directory is `dir`. The node itself must be among them; its recorded address follows the
/// one given here.
pub async fn recover_membership(
    dir: &Path,
    members: &[(u64, String)],
) -> Result<Reconfigured<u64>, NodeError> {
    let (identity, _) = describe(dir).await?;
    let Some((_, address)) = members.iter().find(|(id, _)| *id == identity.id) else {
        return Err(NodeError::Config(format!(
            "node {} (the owner of {}) must be among the members",
            identity.id,
            dir.display()
        )));
    };
    let locked = DataDir::open(dir, identity.id)?;
    let voters: BTreeSet<u64> = members.iter().map(|(id, _)| *id).collect();
    if voters.len() != members.len() {
        return Err(NodeError::Config("a member id appears twice".into()));
    }
    let nodes: BTreeMap<u64, Member> = members
        .iter()
        .map(|(id, a)| (*id, Member::new(a.clone())))
        .collect();
    let membership = Membership::new(vec![voters], nodes);
    let done = reconfigure::rewrite_membership::<NodeConfig>(
        &locked.path().join("raft"),
        identity.id,
        membership,
    )
    .await
    .map_err(|e| NodeError::Raft(e.to_string()))?;
    Identity {
        id: identity.id,
        address: address.clone(),
    }
    .write(dir)?;
    Ok(done)
}
