//! [`Client`]: the entry point. Finds the leader, keeps the member list, runs admin requests
//! and opens databases.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::codec::{File, Req, Resp};
use crate::config::Config;
use crate::conn::Conn;
use crate::connector::find_leader;
use crate::database::Database;
use crate::error::{Error, Result};
use crate::pool::{Pool, PoolOptions};
use crate::store::{NodeInfo, NodeStore, Role};
use crate::transport::Address;

/// A node's DESCRIBE answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    /// The node's failure domain.
    pub failure_domain: u64,
    /// The node's weight (lower is preferred by role management).
    pub weight: u64,
}

pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) store: Mutex<NodeStore>,
    /// A cached connection to the leader for admin requests (no database open on it).
    admin: tokio::sync::Mutex<Option<Conn>>,
}

/// A handle on a dqlite cluster. Cheap to clone; clones share the member list and settings.
///
/// Requests that need the leader go to the node last confirmed as leader; when a node answers
/// "not leader", or the connection fails before a request was sent, the client looks for the
/// leader again (jittered backoff, bounded by [`Config::leader_timeout`]) and retries. A
/// request whose outcome cannot be known (leadership lost mid-write, connection lost after
/// sending a change) is never retried: it fails with an error for which
/// [`Error::is_outcome_unknown`] is true.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("members", &self.members())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connect with default settings: find the leader among `seeds` (and the members they
    /// report), or fail with [`Error::NoLeader`] after [`Config::leader_timeout`].
    pub async fn connect<I, S>(seeds: I) -> Result<Client>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Client::connect_with(seeds, Config::default()).await
    }

    /// Connect with the given settings.
    pub async fn connect_with<I, S>(seeds: I, config: Config) -> Result<Client>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let client = Client::new(seeds, config)?;
        client.refresh_members().await?;
        Ok(client)
    }

    /// A builder: servers, timeouts, TLS, node store, then
    /// [`connect`](crate::ClientBuilder::connect).
    ///
    /// ```no_run
    /// # async fn run() -> dqlite_client::Result<()> {
    /// use std::time::Duration;
    /// let client = dqlite_client::Client::builder()
    ///     .servers(["127.0.0.1:9001", "127.0.0.1:9002"])
    ///     .leader_timeout(Duration::from_secs(10))
    ///     .node_store_file("/var/lib/app/cluster.yaml")
    ///     .connect()
    ///     .await?;
    /// # let _ = client; Ok(()) }
    /// ```
    pub fn builder() -> crate::ClientBuilder {
        crate::ClientBuilder::default()
    }

    /// A client that has not contacted anything yet (connections are made on first use).
    /// Fails only on an invalid or empty seed list.
    pub fn new<I, S>(seeds: I, config: Config) -> Result<Client>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Client::with_store(NodeStore::from_seeds(seeds), config)
    }

    /// A client that has not contacted anything yet, knowing the members of `store`. Fails
    /// on an empty store or an invalid address.
    pub fn with_store(store: NodeStore, config: Config) -> Result<Client> {
        if store.nodes().is_empty() {
            return Err(Error::Usage("no seed addresses given".into()));
        }
        for n in store.nodes() {
            Address::parse(&n.address)?;
        }
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                store: Mutex::new(store),
                admin: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The members the client knows (from the last CLUSTER answer, or the seeds).
    pub fn members(&self) -> Vec<NodeInfo> {
        self.lock_store().nodes().to_vec()
    }

    pub(crate) fn lock_store(&self) -> std::sync::MutexGuard<'_, NodeStore> {
        self.inner.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new connection to the current leader (handshake, LEADER, CLIENT done).
    pub(crate) async fn leader_conn(&self) -> Result<Conn> {
        find_leader(&self.inner.store, &self.inner.config).await
    }

    /// Open a database (created on first use) on its own connection to the leader.
    pub async fn open(&self, name: &str) -> Result<Database> {
        let mut db = Database::new(self.clone(), name);
        db.connect().await?;
        Ok(db)
    }

    /// A pool of up to `size` connections to database `name` (opened lazily), with the
    /// other [`PoolOptions`] at their defaults.
    pub fn pool(&self, name: &str, size: usize) -> Pool {
        Pool::new(self.clone(), name, PoolOptions::new(size))
    }

    /// A pool of connections to database `name` with these settings.
    pub fn pool_with(&self, name: &str, options: PoolOptions) -> Pool {
        Pool::new(self.clone(), name, options)
    }

    /// Run one admin request on the leader, retrying on a new leader while the server refused
    /// it untouched. `idempotent` requests are also retried after connection failures; the
    /// others then fail as "outcome unknown".
    async fn admin(&self, req: Req<'_>, idempotent: bool) -> Result<(Resp, String)> {
        let start = Instant::now();
        let mut backoff = self.inner.config.backoff();
        let mut slot = self.inner.admin.lock().await;
        loop {
            let mut conn = match slot.take() {
                Some(c) if c.is_usable() => c,
                _ => self.leader_conn().await?,
            };
            let sent = conn.send(&req).await;
            let res = match sent {
                Ok(()) => conn.recv(&req).await.and_then(|r| conn.failure_to_error(r)),
                Err(e) => Err(e),
            };
            let err = match res {
                Ok(resp) => {
                    let node = conn.node().to_owned();
                    *slot = Some(conn);
                    return Ok((resp, node));
                }
                Err(e) => e,
            };
            let server_refused = err.is_retryable();
            let retry = (server_refused || (idempotent && err.is_connection_error()))
                && !err.is_outcome_unknown();
            if !err.is_connection_error() {
                *slot = Some(conn);
            } else {
                self.lock_store().set_leader(None);
            }
            if !retry {
                if !idempotent && err.is_connection_error() && !server_refused {
                    return Err(err.outcome_unknown());
                }
                return Err(err);
            }
            let delay = backoff.next_delay();
            if start.elapsed() + delay >= self.inner.config.leader_timeout {
                return Err(err);
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// The current leader as the cluster reports it (`None` while there is none).
    pub async fn leader(&self) -> Result<Option<NodeInfo>> {
        let req = Req::Leader;
        match self.admin(req, true).await? {
            (Resp::Server { id, address }, _) if !address.is_empty() => {
                let role = self
                    .members()
                    .iter()
                    .find(|n| n.address == address)
                    .map_or(Role::Voter, |n| n.role);
                Ok(Some(NodeInfo { id, address, role }))
            }
            (Resp::Server { .. }, _) => Ok(None),
            (other, node) => Err(unexpected(node, "LEADER", &other)),
        }
    }

    /// The members with their roles, as the leader reports them (also refreshes the store).
    pub async fn cluster(&self) -> Result<Vec<NodeInfo>> {
        match self.admin(Req::Cluster, true).await? {
            (Resp::Servers(nodes), _) => {
                self.lock_store().replace(nodes.clone());
                Ok(nodes)
            }
            (other, node) => Err(unexpected(node, "CLUSTER", &other)),
        }
    }

    /// Refresh the member list from the leader.
    pub async fn refresh_members(&self) -> Result<()> {
        self.cluster().await.map(|_| ())
    }

    /// Add a node (it joins as a spare; use [`Client::assign`] to promote it).
    pub async fn add(&self, id: u64, address: &str) -> Result<()> {
        Address::parse(address)?;
        self.expect_empty(Req::Add { id, address }, "ADD").await
    }

    /// Change a node's role. Promoting to voter waits until the node has caught up.
    pub async fn assign(&self, id: u64, role: Role) -> Result<()> {
        self.expect_empty(Req::Assign { id, role }, "ASSIGN").await
    }

    /// Remove a node from the cluster.
    pub async fn remove(&self, id: u64) -> Result<()> {
        self.expect_empty(Req::Remove { id }, "REMOVE").await
    }

    /// Hand leadership to the voter `id` (0: let the leader pick).
    pub async fn transfer(&self, id: u64) -> Result<()> {
        let r = self.expect_empty(Req::Transfer { id }, "TRANSFER").await;
        // Whatever happened, the old leader may no longer be it.
        self.lock_store().set_leader(None);
        *self.inner.admin.lock().await = None;
        r
    }

    /// Send TRANSFER(`id`) to the node at `address` itself rather than to the leader.
    ///
    /// A dqlite-rs voter that is not the leader takes a TRANSFER naming itself as "start an
    /// election now" and answers once it leads or gives up: a dqlite-rs leader handing over
    /// asks its target this way. A leader asked this way transfers as with
    /// [`Client::transfer`]; a node that is neither answers "not leader".
    pub async fn transfer_at(&self, address: &str, id: u64) -> Result<()> {
        match self.direct(address, Req::Transfer { id }).await? {
            Resp::Empty => Ok(()),
            other => Err(unexpected(address.to_owned(), "TRANSFER", &other)),
        }
    }

    async fn expect_empty(&self, req: Req<'_>, name: &'static str) -> Result<()> {
        match self.admin(req, false).await? {
            (Resp::Empty, _) => Ok(()),
            (other, node) => Err(unexpected(node, name, &other)),
        }
    }

    /// A one-off connection to a specific node (no leader needed).
    async fn direct(&self, address: &str, req: Req<'_>) -> Result<Resp> {
        let addr = Address::parse(address)?;
        let config = &self.inner.config;
        let mut conn = Conn::connect(&addr, &config.dial_options(), config.limits()).await?;
        conn.call(&req).await
    }

    /// The failure domain and weight of the node at `address` (asked directly).
    pub async fn describe(&self, address: &str) -> Result<Metadata> {
        match self.direct(address, Req::Describe).await? {
            Resp::Metadata {
                failure_domain,
                weight,
            } => Ok(Metadata {
                failure_domain,
                weight,
            }),
            other => Err(unexpected(address.to_owned(), "DESCRIBE", &other)),
        }
    }

    /// Set the weight of the node at `address` (kept in that node's memory only).
    pub async fn weight(&self, address: &str, weight: u64) -> Result<()> {
        match self.direct(address, Req::Weight { weight }).await? {
            Resp::Empty => Ok(()),
            other => Err(unexpected(address.to_owned(), "WEIGHT", &other)),
        }
    }

    /// The files of database `name` (main file and WAL) as the leader has them.
    pub async fn dump(&self, name: &str) -> Result<Vec<File>> {
        match self.admin(Req::Dump { name }, true).await? {
            (Resp::Files(files), _) => Ok(files),
            (other, node) => Err(unexpected(node, "DUMP", &other)),
        }
    }

    /// The files of database `name` as the node at `address` has them (may lag the leader).
    pub async fn dump_from(&self, address: &str, name: &str) -> Result<Vec<File>> {
        match self.direct(address, Req::Dump { name }).await? {
            Resp::Files(files) => Ok(files),
            other => Err(unexpected(address.to_owned(), "DUMP", &other)),
        }
    }
}

fn unexpected(node: String, request: &'static str, got: &Resp) -> Error {
    Error::UnexpectedResponse {
        node,
        request,
        got: got.name().to_owned(),
    }
}
