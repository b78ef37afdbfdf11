//! [`Member`]: a cluster member as the replicated membership records it.

/// A cluster member as openraft's membership records it.
///
/// Roles map onto openraft as: voter = voter; stand-by = learner; spare = learner with
/// `spare` set. C dqlite's spares receive no log; here a spare is replicated like a stand-by
/// (openraft replicates to every learner), and the flag records the role ADD and ASSIGN gave
/// it, so that CLUSTER answers role 2 as C does.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Member {
    /// Address (host:port) serving clients and Raft peers.
    pub addr: String,
    /// A non-voter that was added (ADD) or assigned (ASSIGN) the spare role.
    pub spare: bool,
}

impl Member {
    /// A voter or stand-by at `addr`.
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            spare: false,
        }
    }
}

impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.addr)?;
        if self.spare {
            f.write_str(" (spare)")?;
        }
        Ok(())
    }
}

impl dqlite_raft::network::NodeAddr for Member {
    fn addr(&self) -> &str {
        &self.addr
    }
}
