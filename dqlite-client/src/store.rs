//! The set of cluster members the client knows about.

pub use dqlite_wire::{NodeInfo, Role};

/// Parse a role name as the shell and users write it: `voter`, `stand-by`/`standby`, `spare`,
/// or the wire codes 0, 1, 2.
pub fn parse_role(s: &str) -> Result<Role, crate::Error> {
    match s.to_ascii_lowercase().as_str() {
        "voter" | "0" => Ok(Role::Voter),
        "standby" | "stand-by" | "1" => Ok(Role::Standby),
        "spare" | "2" => Ok(Role::Spare),
        _ => Err(crate::Error::Usage(format!(
            "unknown role {s:?} (voter, stand-by or spare)"
        ))),
    }
}

/// The members the client knows: the seeds at first, then whatever CLUSTER answered last.
///
/// Invariant: addresses are unique and the list is never empty once built from at least one
/// seed (a CLUSTER answer with no members does not replace it).
#[derive(Debug, Clone, Default)]
pub struct NodeStore {
    nodes: Vec<NodeInfo>,
    leader: Option<String>,
}

impl NodeStore {
    /// A store holding only seed addresses (id unknown = 0, assumed voters).
    pub fn from_seeds<I, S>(seeds: I) -> NodeStore
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut store = NodeStore::default();
        for s in seeds {
            let address = s.into();
            if !store.nodes.iter().any(|n| n.address == address) {
                store.nodes.push(NodeInfo {
                    id: 0,
                    address,
                    role: Role::Voter,
                });
            }
        }
        store
    }

    /// Replace the members with a fresh CLUSTER answer (ignored when empty).
    pub fn replace(&mut self, nodes: Vec<NodeInfo>) {
        if nodes.is_empty() {
            return;
        }
        let mut out: Vec<NodeInfo> = Vec::with_capacity(nodes.len());
        for n in nodes {
            if !out.iter().any(|o| o.address == n.address) {
                out.push(n);
            }
        }
        self.nodes = out;
    }

    /// Every known member.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// Addresses in the order the client probes them for the leader: the last known leader
    /// first, then voters, stand-bys and spares (only voters can answer LEADER meaningfully).
    pub fn probe_order(&self) -> Vec<String> {
        let mut nodes = self.nodes.clone();
        nodes.sort_by_key(|n| (Some(&n.address) != self.leader.as_ref(), n.role));
        let mut out: Vec<String> = nodes.into_iter().map(|n| n.address).collect();
        if let Some(l) = &self.leader
            && !out.contains(l)
        {
            out.insert(0, l.clone());
        }
        out
    }

    /// Remember the last confirmed leader.
    pub fn set_leader(&mut self, address: Option<String>) {
        self.leader = address;
    }

    /// The last confirmed leader.
    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_dedup_and_probe_order() {
        let mut s = NodeStore::from_seeds(["a:1", "b:2", "a:1"]);
        assert_eq!(s.nodes().len(), 2);
        s.replace(vec![
            NodeInfo {
                id: 3,
                address: "c:3".into(),
                role: Role::Spare,
            },
            NodeInfo {
                id: 2,
                address: "b:2".into(),
                role: Role::Standby,
            },
            NodeInfo {
                id: 1,
                address: "a:1".into(),
                role: Role::Voter,
            },
        ]);
        assert_eq!(s.probe_order(), vec!["a:1", "b:2", "c:3"]);
        s.set_leader(Some("c:3".into()));
        assert_eq!(s.probe_order(), vec!["c:3", "a:1", "b:2"]);
        s.set_leader(Some("z:9".into()));
        assert_eq!(s.probe_order()[0], "z:9");
        s.replace(vec![]);
        assert_eq!(
            s.nodes().len(),
            3,
            "an empty answer never empties the store"
        );
    }

    #[test]
    fn roles() {
        for r in [Role::Voter, Role::Standby, Role::Spare] {
            assert_eq!(parse_role(&r.to_string()).unwrap(), r);
            assert_eq!(parse_role(&r.code().to_string()).unwrap(), r);
        }
        assert!(parse_role("boss").is_err());
    }
}
