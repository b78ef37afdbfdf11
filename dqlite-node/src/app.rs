//! [`App`]: embed a replicated database in a program, like go-dqlite's `app` package.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::data_dir::Identity;
use crate::error::NodeError;
use crate::node::{Node, NodeHandle, NodeOptions};

/// Builds an [`App`].
#[derive(Debug, Clone)]
pub struct AppBuilder {
    dir: PathBuf,
    address: String,
    join: Vec<String>,
    options: NodeOptions,
    failure_domain: u64,
    id: Option<u64>,
}

impl AppBuilder {
    /// Members to join (any reachable ones will do). Without any, a fresh data directory
    /// bootstraps a new cluster.
    pub fn join(mut self, addresses: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.join = addresses.into_iter().map(Into::into).collect();
        self
    }

    /// Node settings (role management targets, Raft timing, limits).
    pub fn options(mut self, options: NodeOptions) -> Self {
        self.options = options;
        self
    }

    /// The failure domain role management spreads voters across.
    pub fn failure_domain(mut self, domain: u64) -> Self {
        self.failure_domain = domain;
        self
    }

    /// A fixed node id (default: the one recorded in the data directory, else 1 for a node
    /// that bootstraps and a random one for a node that joins).
    pub fn id(mut self, id: u64) -> Self {
        self.id = Some(id);
        self
    }

    /// Starts the node and a client for it (without waiting: see [`App::ready`]).
    pub async fn start(self) -> Result<App, NodeError> {
        let id = match (self.id, Identity::read(&self.dir)?) {
            (Some(id), _) => id,
            (None, Some(recorded)) => recorded.id,
            (None, None) if self.join.is_empty() => 1,
            (None, None) => random_id(&self.address),
        };
        let node = Node::builder(id, self.address, self.dir)
            .join(self.join.clone())
            .failure_domain(self.failure_domain)
            .options(self.options)
            .start()
            .await?;
        let handle = node
            .handle()
            .ok_or_else(|| NodeError::Config("node stopped while starting".into()))?;
        // Only voters name the leader: a stand-by or spare needs the other members as seeds.
        let seeds = std::iter::once(handle.address().to_string()).chain(self.join);
        let client = dqlite_client::Client::new(seeds, Default::default())
            .map_err(|e| NodeError::Config(e.to_string()))?;
        Ok(App {
            node,
            handle,
            client,
        })
    }
}

/// A non-zero id other than 1 (the bootstrap id), from the address and the clock.
fn random_id(address: &str) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(address.as_bytes());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish().max(2)
}

/// A node embedded in a program, with a client to it. An `App` starts a node with role
/// management on (the first one bootstraps the cluster, the others join it and are placed by
/// the leader), waits until it is ready, hands out
/// connected [`dqlite_client::Database`]s, and on [`App::shutdown`] hands its role and (if it
/// leads) leadership over before it stops. Its id is kept in its data directory: a restarted
/// program is the same node.
///
/// A replicated program (two nodes in one process here; normally one per machine, each started
/// with the others' addresses in [`AppBuilder::join`]):
///
/// ```
/// use std::time::Duration;
/// use dqlite_node::App;
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (dir1, dir2) = (tempfile::tempdir()?, tempfile::tempdir()?);
/// let first = App::builder(dir1.path(), "127.0.0.1:0").start().await?;
/// first.ready(Duration::from_secs(10)).await?;
/// let second = App::builder(dir2.path(), "127.0.0.1:0")
///     .join([first.address()])
///     .start()
///     .await?;
/// second.ready(Duration::from_secs(10)).await?;
///
/// let mut db = second.open("inventory").await?;
/// db.exec("CREATE TABLE IF NOT EXISTS stock (item TEXT PRIMARY KEY, n INTEGER)", ())
///     .await?;
/// db.exec("INSERT INTO stock VALUES ('apples', 3)", ()).await?;
/// let mut db = first.open("inventory").await?;
/// let n = db.query_value("SELECT n FROM stock WHERE item = 'apples'", ()).await?;
/// assert_eq!(n, dqlite_client::Value::Integer(3));
///
/// second.shutdown().await?;
/// first.shutdown().await?;
/// # Ok(())
/// # }
/// ```
pub struct App {
    node: Node,
    handle: NodeHandle,
    client: dqlite_client::Client,
}

impl App {
    /// A builder for a node keeping its data in `dir` and serving on `address` (`host:port`;
    /// port 0 picks a free one).
    pub fn builder(dir: impl Into<PathBuf>, address: impl Into<String>) -> AppBuilder {
        AppBuilder {
            dir: dir.into(),
            address: address.into(),
            join: Vec::new(),
            options: NodeOptions::default(),
            failure_domain: 0,
            id: None,
        }
    }

    /// Waits (up to `timeout`) until the node is ready: it is in the cluster, reaches the
    /// leader and has applied what it knows committed (see [`NodeHandle::ready`]).
    pub async fn ready(&self, timeout: Duration) -> Result<(), NodeError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.handle.ready().await {
                Ok(()) => return Ok(()),
                Err(why) if Instant::now() >= deadline => {
                    return Err(NodeError::Config(format!(
                        "not ready after {timeout:?}: {why}"
                    )));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Opens database `name` (created on first use) on a connection to the leader.
    pub async fn open(&self, name: &str) -> Result<dqlite_client::Database, dqlite_client::Error> {
        self.client.open(name).await
    }

    /// The client the app uses (admin requests, pools).
    pub fn client(&self) -> &dqlite_client::Client {
        &self.client
    }

    /// The node's address (give it to other nodes' [`AppBuilder::join`]).
    pub fn address(&self) -> String {
        self.handle.address().to_string()
    }

    /// The node's id.
    pub fn id(&self) -> u64 {
        self.handle.id()
    }

    /// The node (role, leader, Raft metrics).
    pub fn node(&self) -> &NodeHandle {
        &self.handle
    }

    /// Hands this node's role and leadership over (see [`Node::shutdown`]) and stops it.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        drop(self.client);
        drop(self.handle);
        self.node.shutdown().await
    }
}
