//! A small pool of [`Database`] connections.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::client::Client;
use crate::database::Database;
use crate::error::{Error, Result};

/// Up to `size` connections to one database, handed out one caller at a time.
///
/// A connection comes back to the pool when its guard is dropped, unless it is broken, has a
/// transaction open or a result half read: such a connection is closed instead, so the next
/// user always gets a clean one.
#[derive(Clone, Debug)]
pub struct Pool {
    client: Client,
    name: String,
    idle: Arc<Mutex<Vec<Database>>>,
    permits: Arc<Semaphore>,
}

impl Pool {
    pub(crate) fn new(client: Client, name: &str, size: usize) -> Pool {
        Pool {
            client,
            name: name.to_owned(),
            idle: Arc::new(Mutex::new(Vec::new())),
            permits: Arc::new(Semaphore::new(size.max(1))),
        }
    }

    /// Take a connection, waiting while all are in use; opens a new one when none is idle.
    pub async fn get(&self) -> Result<PooledDatabase> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Usage("pool closed".into()))?;
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let db = match idle {
            Some(db) => db,
            None => self.client.open(&self.name).await?,
        };
        Ok(PooledDatabase {
            db: Some(db),
            idle: self.idle.clone(),
            _permit: permit,
        })
    }

    /// Connections currently idle in the pool.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// A connection borrowed from a [`Pool`]; derefs to [`Database`].
#[derive(Debug)]
pub struct PooledDatabase {
    db: Option<Database>,
    idle: Arc<Mutex<Vec<Database>>>,
    _permit: OwnedSemaphorePermit,
}

impl Deref for PooledDatabase {
    type Target = Database;
    fn deref(&self) -> &Database {
        // Invariant: `db` is Some until drop.
        self.db
            .as_ref()
            .unwrap_or_else(|| unreachable!("taken only in drop"))
    }
}

impl DerefMut for PooledDatabase {
    fn deref_mut(&mut self) -> &mut Database {
        self.db
            .as_mut()
            .unwrap_or_else(|| unreachable!("taken only in drop"))
    }
}

impl Drop for PooledDatabase {
    fn drop(&mut self) {
        if let Some(db) = self.db.take()
            && db.is_clean()
        {
            self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(db);
        }
    }
}
