//! [`Registry`]: the databases of a node by name, with the limit on how many clients may
//! create.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use dqlite_vfs::Vfs;

use super::DatabaseHandle;

/// The databases of a node, by name, each served by its worker thread.
#[derive(Debug)]
pub(crate) struct Registry {
    vfs: Vfs,
    /// See [`crate::NodeOptions::spin`].
    spin: Duration,
    databases: Mutex<HashMap<String, DatabaseHandle>>,
}

impl Registry {
    /// An empty registry over `vfs`; its workers and their callers poll for up to `spin`
    /// before sleeping.
    pub fn new(vfs: Vfs, spin: Duration) -> Self {
        Registry {
            vfs,
            spin,
            databases: Mutex::new(HashMap::new()),
        }
    }

    /// Database `name`, its worker started if needed.
    pub fn get_or_start(&self, name: &str) -> Result<DatabaseHandle, String> {
        self.get_or_start_within(name, usize::MAX)
    }

    /// Like [`get_or_start`](Self::get_or_start) for a client's OPEN: starts no worker for a
    /// new database once `max` databases exist (each has its own thread and memory), so
    /// clients cannot make a node start threads without bound. The FSM applies replicated
    /// commands with [`get_or_start`](Self::get_or_start), without a limit: every member must
    /// hold every database. The check and the start happen under one lock, so concurrent
    /// OPENs cannot pass the limit together.
    pub fn get_or_start_within(&self, name: &str, max: usize) -> Result<DatabaseHandle, String> {
        let mut dbs = self
            .databases
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(h) = dbs.get(name) {
            return Ok(h.clone());
        }
        if dbs.len() >= max {
            return Err(format!(
                "too many databases (this node serves at most {max})"
            ));
        }
        let h = DatabaseHandle::spawn(self.vfs.clone(), name, self.spin)
            .map_err(|e| format!("cannot start the worker of {name:?}: {e}"))?;
        dbs.insert(name.to_string(), h.clone());
        Ok(h)
    }

    /// Database `name` if it exists.
    pub fn get(&self, name: &str) -> Option<DatabaseHandle> {
        self.databases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// All databases, sorted by name.
    pub fn all(&self) -> Vec<DatabaseHandle> {
        let mut v: Vec<_> = self
            .databases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name().cmp(b.name()));
        v
    }

    /// Stops every worker (dropping the senders ends their threads).
    pub fn clear(&self) {
        self.databases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}
