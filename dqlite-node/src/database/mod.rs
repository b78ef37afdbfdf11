//! Databases: one SQLite thread per database ([`worker`]), the typed async API the rest of
//! the node uses for it ([`handle::DatabaseHandle`]), the commit pipeline that replicates
//! what a statement wrote ([`pipeline`]), and the registry of every database of a node.

pub(crate) mod handle;
pub(crate) mod pipeline;
pub(crate) mod registry;
pub(crate) mod spin;
pub(crate) mod statement;
pub(crate) mod values;
pub(crate) mod worker;

pub(crate) use handle::{DatabaseHandle, QueuedApply};
pub(crate) use registry::Registry;
