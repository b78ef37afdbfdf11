//! [`ClientBuilder`]: a [`Client`] from servers, timeouts, TLS and a node store.

use std::path::PathBuf;
use std::time::Duration;

use crate::client::Client;
use crate::config::Config;
use crate::error::Result;
use crate::store::NodeStore;

/// Builds a [`Client`] (see [`Client::builder`]): where the cluster is, how long to wait, and
/// where to keep its member list.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ClientBuilder {
    servers: Vec<String>,
    config: Config,
    store_file: Option<PathBuf>,
}

impl ClientBuilder {
    /// Adds seed addresses (`host:port`, or `@name` for an abstract Unix socket): any members
    /// of the cluster will do.
    pub fn servers<I, S>(mut self, servers: I) -> ClientBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.servers.extend(servers.into_iter().map(Into::into));
        self
    }

    /// Adds one seed address.
    pub fn server(self, server: impl Into<String>) -> ClientBuilder {
        self.servers([server.into()])
    }

    /// All settings at once (replacing those set before).
    pub fn config(mut self, config: Config) -> ClientBuilder {
        self.config = config;
        self
    }

    /// [`Config::connect_timeout`].
    pub fn connect_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.config.connect_timeout = timeout;
        self
    }

    /// [`Config::request_timeout`].
    pub fn request_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.config.request_timeout = timeout;
        self
    }

    /// [`Config::leader_timeout`].
    pub fn leader_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.config.leader_timeout = timeout;
        self
    }

    /// [`Config::backoff_base`] and [`Config::backoff_cap`].
    pub fn backoff(mut self, base: Duration, cap: Duration) -> ClientBuilder {
        self.config.backoff_base = base;
        self.config.backoff_cap = cap;
        self
    }

    /// [`Config::max_response_body`].
    pub fn max_response_body(mut self, bytes: usize) -> ClientBuilder {
        self.config.max_response_body = bytes;
        self
    }

    /// [`Config::client_id`].
    pub fn client_id(mut self, id: u64) -> ClientBuilder {
        self.config.client_id = id;
        self
    }

    /// TLS to the nodes ([`Config::tls`], feature `tls`).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::TlsConfig) -> ClientBuilder {
        self.config.tls = Some(tls);
        self
    }

    /// Keeps the member list in this file (see [`NodeStore::open`]): read at start, together
    /// with the servers given, and rewritten whenever a CLUSTER answer changes it.
    pub fn node_store_file(mut self, path: impl Into<PathBuf>) -> ClientBuilder {
        self.store_file = Some(path.into());
        self
    }

    /// The client, without contacting anything yet (connections are made on first use).
    /// Fails on no servers at all, an invalid address or an unreadable node store file.
    pub fn build(self) -> Result<Client> {
        let store = match self.store_file {
            Some(path) => NodeStore::open(path, self.servers)?,
            None => NodeStore::from_seeds(self.servers),
        };
        Client::with_store(store, self.config)
    }

    /// The client, once it has found the leader and learnt the members from it; fails with
    /// [`crate::Error::NoLeader`] after the leader timeout.
    pub async fn connect(self) -> Result<Client> {
        let client = self.build()?;
        client.refresh_members().await?;
        Ok(client)
    }
}
