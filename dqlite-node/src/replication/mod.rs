//! What goes through Raft: the commands one log entry carries ([`command`]), the state
//! machine that applies them on every node ([`fsm`]), and openraft's type configuration.

pub mod command;
pub(crate) mod fsm;

openraft::declare_raft_types!(
    /// openraft type configuration of a dqlite node: entries carry encoded
    /// [`Command`](command::Command)s.
    pub NodeConfig:
        D = command::EntryData,
        R = crate::database::worker::Applied,
        NodeId = u64,
        Node = crate::membership::Member,
        Entry = openraft::Entry<NodeConfig>,
        SnapshotData = dqlite_raft::snapshot::SnapshotFile,
        AsyncRuntime = openraft::TokioRuntime,
);

#[cfg(test)]
mod scenarios;
