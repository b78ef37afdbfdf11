//! Cluster membership types: node roles, SERVERS entries and DUMP files (§8, §9).

use std::fmt;

/// A node's role, with the **dqlite wire numbering** (which differs from Raft's internal one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Role {
    /// 0: votes and replicates.
    Voter = 0,
    /// 1: replicates, does not vote.
    Standby = 1,
    /// 2: neither votes nor replicates.
    Spare = 2,
}

impl Role {
    /// The wire code.
    pub const fn code(self) -> u64 {
        self as u64
    }

    /// The role with wire code `code`.
    pub const fn from_code(code: u64) -> Option<Role> {
        match code {
            0 => Some(Role::Voter),
            1 => Some(Role::Standby),
            2 => Some(Role::Spare),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Voter => "voter",
            Role::Standby => "stand-by",
            Role::Spare => "spare",
        })
    }
}

/// One node of a CLUSTER answer in format 1 (with its role).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeInfo {
    /// Node id (u64; ids above 2^63 occur).
    pub id: u64,
    /// Node address, e.g. `"127.0.0.1:9001"`.
    pub address: String,
    /// Role in the configuration.
    pub role: Role,
}

/// One node of a CLUSTER answer in format 0 (no role).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeAddress {
    /// Node id.
    pub id: u64,
    /// Node address.
    pub address: String,
}

/// One file of a DUMP answer. Its size on the wire is `data.len()`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct File {
    /// File name (the database name, then the name + `-wal`).
    pub name: String,
    /// File content.
    pub data: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_codes() {
        for r in [Role::Voter, Role::Standby, Role::Spare] {
            assert_eq!(Role::from_code(r.code()), Some(r));
        }
        assert_eq!(Role::from_code(3), None);
        assert_eq!(Role::Standby.code(), 1);
    }
}
