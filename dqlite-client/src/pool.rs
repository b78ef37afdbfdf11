//! A pool of [`Database`] connections: [`Pool`], its settings [`PoolOptions`].

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::client::Client;
use crate::database::Database;
use crate::error::{Error, Result};

/// Settings of a [`Pool`] (see [`Client::pool_with`]).
///
/// ```
/// use std::time::Duration;
/// use dqlite_client::PoolOptions;
/// let options = PoolOptions::new(8)
///     .acquire_timeout(Duration::from_secs(2))
///     .max_lifetime(Duration::from_secs(30 * 60))
///     .idle_timeout(Duration::from_secs(60))
///     .max_idle(4)
///     .health_check(true);
/// assert_eq!(options.max_size, 8);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PoolOptions {
    /// Most connections open at once (at least 1). Default 10.
    pub max_size: usize,
    /// Longest wait for a free connection before [`Error::PoolTimeout`]; `None` waits as long
    /// as it takes. Default 30 s.
    pub acquire_timeout: Option<Duration>,
    /// Connections older than this are closed instead of being handed out again (they
    /// finish their current use). Default `None` (no limit).
    pub max_lifetime: Option<Duration>,
    /// Idle connections unused for longer than this are closed at the next checkout.
    /// Default 10 minutes.
    pub idle_timeout: Option<Duration>,
    /// Most connections kept idle; more are closed when given back. Default: `max_size`.
    pub max_idle: Option<usize>,
    /// Check an idle connection before handing it out (one `SELECT 1` round trip; a
    /// connection that fails it is closed and another taken). Default true.
    pub health_check: bool,
}

impl Default for PoolOptions {
    fn default() -> PoolOptions {
        PoolOptions::new(10)
    }
}

impl PoolOptions {
    /// The defaults with at most `max_size` connections.
    pub fn new(max_size: usize) -> PoolOptions {
        PoolOptions {
            max_size: max_size.max(1),
            acquire_timeout: Some(Duration::from_secs(30)),
            max_lifetime: None,
            idle_timeout: Some(Duration::from_secs(600)),
            max_idle: None,
            health_check: true,
        }
    }

    /// Sets [`PoolOptions::acquire_timeout`].
    pub fn acquire_timeout(mut self, timeout: Duration) -> PoolOptions {
        self.acquire_timeout = Some(timeout);
        self
    }

    /// Sets [`PoolOptions::max_lifetime`].
    pub fn max_lifetime(mut self, lifetime: Duration) -> PoolOptions {
        self.max_lifetime = Some(lifetime);
        self
    }

    /// Sets [`PoolOptions::idle_timeout`].
    pub fn idle_timeout(mut self, timeout: Duration) -> PoolOptions {
        self.idle_timeout = Some(timeout);
        self
    }

    /// Sets [`PoolOptions::max_idle`].
    pub fn max_idle(mut self, max_idle: usize) -> PoolOptions {
        self.max_idle = Some(max_idle);
        self
    }

    /// Sets [`PoolOptions::health_check`].
    pub fn health_check(mut self, check: bool) -> PoolOptions {
        self.health_check = check;
        self
    }
}

/// An idle connection and its age.
#[derive(Debug)]
struct Idle {
    db: Database,
    opened: Instant,
    since: Instant,
}

#[derive(Debug)]
struct Shared {
    client: Client,
    name: String,
    options: PoolOptions,
    idle: Mutex<Vec<Idle>>,
    permits: Arc<Semaphore>,
}

/// Up to [`PoolOptions::max_size`] connections to one database, handed out one caller at a
/// time.
///
/// A connection comes back to the pool when its guard is dropped, unless it is broken, has a
/// transaction open or a result half read, is older than the maximum lifetime, or the pool
/// already keeps its maximum of idle connections: such a connection is closed instead, so the
/// next user always gets a clean one. Statements dropped by a user are finalized before the
/// connection's next request (see [`crate::Statement`]).
#[derive(Clone, Debug)]
pub struct Pool {
    shared: Arc<Shared>,
}

impl Pool {
    pub(crate) fn new(client: Client, name: &str, options: PoolOptions) -> Pool {
        let permits = Arc::new(Semaphore::new(options.max_size.max(1)));
        Pool {
            shared: Arc::new(Shared {
                client,
                name: name.to_owned(),
                options,
                idle: Mutex::new(Vec::new()),
                permits,
            }),
        }
    }

    /// The settings.
    pub fn options(&self) -> &PoolOptions {
        &self.shared.options
    }

    /// Take a connection, waiting while all are in use (at most the acquire timeout); an
    /// idle one if it is still good, else a new one.
    pub async fn get(&self) -> Result<PooledDatabase> {
        let shared = &self.shared;
        let started = Instant::now();
        let acquire = shared.permits.clone().acquire_owned();
        let permit = match shared.options.acquire_timeout {
            Some(limit) => {
                tokio::time::timeout(limit, acquire)
                    .await
                    .map_err(|_| Error::PoolTimeout {
                        waited: started.elapsed(),
                    })?
            }
            None => acquire.await,
        }
        .map_err(|_| Error::Usage("pool closed".into()))?;
        while let Some(idle) = self.take_idle() {
            if shared.options.health_check {
                let mut db = idle.db;
                match db.query_value("SELECT 1", ()).await {
                    Ok(_) => {
                        return Ok(self.guard(db, idle.opened, permit));
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "pooled connection failed its health check");
                        continue;
                    }
                }
            }
            return Ok(self.guard(idle.db, idle.opened, permit));
        }
        let db = shared.client.open(&shared.name).await?;
        Ok(self.guard(db, Instant::now(), permit))
    }

    /// The most recently used idle connection that is neither too old nor idle too long;
    /// the expired ones are closed on the way.
    fn take_idle(&self) -> Option<Idle> {
        let options = &self.shared.options;
        let mut idle = self.shared.idle.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        idle.retain(|c| {
            let too_old = options
                .max_lifetime
                .is_some_and(|l| now.duration_since(c.opened) >= l);
            let idle_too_long = options
                .idle_timeout
                .is_some_and(|l| now.duration_since(c.since) >= l);
            !too_old && !idle_too_long
        });
        idle.pop()
    }

    fn guard(&self, db: Database, opened: Instant, permit: OwnedSemaphorePermit) -> PooledDatabase {
        PooledDatabase {
            db: Some(db),
            opened,
            pool: self.shared.clone(),
            _permit: permit,
        }
    }

    /// Connections currently idle in the pool.
    pub fn idle_count(&self) -> usize {
        self.shared
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

/// A connection borrowed from a [`Pool`]; derefs to [`Database`].
#[derive(Debug)]
pub struct PooledDatabase {
    db: Option<Database>,
    opened: Instant,
    pool: Arc<Shared>,
    _permit: OwnedSemaphorePermit,
}

impl PooledDatabase {
    /// When the connection was opened.
    pub fn opened_at(&self) -> Instant {
        self.opened
    }
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
        let Some(db) = self.db.take() else { return };
        let options = &self.pool.options;
        let now = Instant::now();
        let too_old = options
            .max_lifetime
            .is_some_and(|l| now.duration_since(self.opened) >= l);
        if !db.is_clean() || too_old {
            return;
        }
        let mut idle = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < options.max_idle.unwrap_or(options.max_size) {
            idle.push(Idle {
                db,
                opened: self.opened,
                since: now,
            });
        }
    }
}
