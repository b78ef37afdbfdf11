//! The set of cluster members the client knows about, in memory or kept in a file.

use std::path::{Path, PathBuf};

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
/// A store opened with [`NodeStore::open`] keeps the members in a file, in go-dqlite's YAML
/// layout (`- ID: 1` / `  Address: 127.0.0.1:9001` / `  Role: 0`), rewritten whenever a
/// CLUSTER answer changes them: a client started again finds the cluster even when its seeds
/// have left it.
///
/// Invariant: addresses are unique and the list is never empty once built from at least one
/// seed (a CLUSTER answer with no members does not replace it).
#[derive(Debug, Clone, Default)]
pub struct NodeStore {
    nodes: Vec<NodeInfo>,
    leader: Option<String>,
    file: Option<PathBuf>,
}

impl NodeStore {
    /// An in-memory store holding only seed addresses (id unknown = 0, assumed voters).
    pub fn from_seeds<I, S>(seeds: I) -> NodeStore
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut store = NodeStore::default();
        store.add_seeds(seeds);
        store
    }

    /// A store kept in the file at `path`: the members it lists (none if it does not exist
    /// yet), then every seed it does not list. The file is written at once when the seeds
    /// added to it, and after every change.
    pub fn open<I, S>(path: impl Into<PathBuf>, seeds: I) -> Result<NodeStore, crate::Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let path = path.into();
        let nodes = match std::fs::read_to_string(&path) {
            Ok(text) => parse_yaml(&text).map_err(|reason| {
                crate::Error::Usage(format!("node store {}: {reason}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(crate::Error::Usage(format!(
                    "node store {}: {e}",
                    path.display()
                )));
            }
        };
        let listed = nodes.len();
        let mut store = NodeStore {
            nodes,
            leader: None,
            file: Some(path),
        };
        store.add_seeds(seeds);
        if store.nodes.len() != listed {
            store.save().map_err(|e| {
                crate::Error::Usage(format!("node store {}: {e}", store.path_display()))
            })?;
        }
        Ok(store)
    }

    fn add_seeds<I, S>(&mut self, seeds: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for s in seeds {
            let address = s.into();
            if !self.nodes.iter().any(|n| n.address == address) {
                self.nodes.push(NodeInfo {
                    id: 0,
                    address,
                    role: Role::Voter,
                });
            }
        }
    }

    fn path_display(&self) -> String {
        self.file
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }

    /// The file the store is kept in, if any.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Writes the members to the store's file (no-op for an in-memory store): to a temporary
    /// file beside it, then renamed over it, so a crash never leaves half a file.
    pub fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        std::fs::write(&tmp, to_yaml(&self.nodes))?;
        std::fs::rename(&tmp, path)
    }

    /// Replace the members with a fresh CLUSTER answer (ignored when empty), and save them
    /// when they changed (a failure to save is logged: the members in memory are right).
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
        if out == self.nodes {
            return;
        }
        self.nodes = out;
        if let Err(e) = self.save() {
            tracing::warn!(file = %self.path_display(), error = %e, "cannot save the node store");
        }
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

/// The members in go-dqlite's YAML layout.
fn to_yaml(nodes: &[NodeInfo]) -> String {
    let mut out = String::new();
    for n in nodes {
        out.push_str(&format!(
            "- ID: {}\n  Address: {}\n  Role: {}\n",
            n.id,
            n.address,
            n.role.code()
        ));
    }
    out
}

/// Reads what [`to_yaml`] writes (and go-dqlite's YAML node store): a list of mappings with
/// the keys `ID`, `Address` and `Role`, one key per line.
fn parse_yaml(text: &str) -> Result<Vec<NodeInfo>, String> {
    let mut nodes = Vec::new();
    let mut current: Option<(Option<u64>, Option<String>, Option<Role>)> = None;
    let finish = |c: (Option<u64>, Option<String>, Option<Role>)| match c {
        (id, Some(address), role) => Ok(NodeInfo {
            id: id.unwrap_or(0),
            address,
            role: role.unwrap_or(Role::Voter),
        }),
        _ => Err("an entry without Address".to_owned()),
    };
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed == "[]" {
            continue;
        }
        let entry = if let Some(rest) = trimmed.strip_prefix("- ") {
            if let Some(c) = current.take() {
                nodes.push(finish(c)?);
            }
            current = Some((None, None, None));
            rest
        } else {
            trimmed
        };
        let Some(c) = current.as_mut() else {
            return Err(format!("line {}: expected a list entry (`- `)", i + 1));
        };
        let (key, value) = entry
            .split_once(':')
            .ok_or_else(|| format!("line {}: expected `Key: value`", i + 1))?;
        let value = value.trim().trim_matches('"').trim_matches('\'');
        match key.trim() {
            "ID" => {
                c.0 = Some(
                    value
                        .parse()
                        .map_err(|_| format!("line {}: ID {value:?} is not a number", i + 1))?,
                );
            }
            "Address" => c.1 = Some(value.to_owned()),
            "Role" => c.2 = Some(parse_role(value).map_err(|e| format!("line {}: {e}", i + 1))?),
            _ => {}
        }
    }
    if let Some(c) = current.take() {
        nodes.push(finish(c)?);
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_store_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.yaml");
        let mut s = NodeStore::open(&path, ["a:1"]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "- ID: 0\n  Address: a:1\n  Role: 0\n"
        );
        let members = vec![
            NodeInfo {
                id: 1,
                address: "a:1".into(),
                role: Role::Voter,
            },
            NodeInfo {
                id: u64::MAX,
                address: "b:2".into(),
                role: Role::Spare,
            },
        ];
        s.replace(members.clone());
        // A new client with another seed finds the members of the last CLUSTER answer.
        let again = NodeStore::open(&path, ["c:3"]).unwrap();
        assert_eq!(&again.nodes()[..2], &members[..]);
        assert_eq!(again.nodes()[2].address, "c:3");
        assert_eq!(again.path(), Some(path.as_path()));
        // go-dqlite's own layout (key order, quotes).
        std::fs::write(
            &path,
            "- Address: \"x:9\"\n  ID: 7\n  Role: 1\n- ID: 8\n  Address: y:9\n",
        )
        .unwrap();
        let go = NodeStore::open(&path, Vec::<String>::new()).unwrap();
        assert_eq!(
            go.nodes()[0],
            NodeInfo {
                id: 7,
                address: "x:9".into(),
                role: Role::Standby
            }
        );
        assert_eq!(go.nodes()[1].role, Role::Voter);
        std::fs::write(&path, "ID: 1\n").unwrap();
        assert!(NodeStore::open(&path, ["a:1"]).is_err());
    }

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
