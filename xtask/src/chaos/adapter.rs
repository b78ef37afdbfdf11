//! The one place the chaos harness uses the project's client (`dqlite-client`), so that an
//! API change there is adapted here only.
//!
//! It turns the client's errors into what a history needs: [`SqlError::Definite`] (the
//! operation did not take effect) or [`SqlError::Unknown`] (timeout, lost connection after
//! sending, 10506 leadership lost: it may have). Requests aimed at one particular node
//! (LEADER asked of every node, TRANSFER sent to a follower) go through `dqlite-wire`
//! directly, as the client always talks to the leader.

use std::time::Duration;

use dqlite_client::{Client, Config, Database, Value};
use dqlite_wire::{Framer, ProtocolVersion, Request, Response, ResponseContext};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest wait for one answer from a node (the client gives up on a request after this).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest time spent looking for a leader before an operation fails as "no leader".
const LEADER_TIMEOUT: Duration = Duration::from_secs(4);
/// Longest time one operation may take in all, whatever the client does; past it the
/// outcome is unknown and the connection is dropped.
pub const OP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a statement did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlError {
    /// It did not take effect (refused, not sent, failed in SQLite).
    Definite(String),
    /// It may or may not have taken effect.
    Unknown(String),
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SqlError::Definite(m) => write!(f, "{m}"),
            SqlError::Unknown(m) => write!(f, "unknown outcome: {m}"),
        }
    }
}

/// A value sent or received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
    /// NULL.
    Null,
}

impl Val {
    /// The integer, if it is one.
    pub fn int(&self) -> Option<i64> {
        match self {
            Val::Int(i) => Some(*i),
            _ => None,
        }
    }
}

fn to_client(v: &Val) -> Value {
    match v {
        Val::Int(i) => Value::Integer(*i),
        Val::Text(s) => Value::Text(s.clone()),
        Val::Null => Value::Null,
    }
}

fn from_client(v: Value) -> Val {
    match v {
        Value::Integer(i) | Value::UnixTime(i) => Val::Int(i),
        Value::Boolean(b) => Val::Int(i64::from(b != 0)),
        Value::Text(s) | Value::Iso8601(s) => Val::Text(s),
        Value::Null => Val::Null,
        Value::Float(f) => Val::Text(f.to_string()),
        Value::Blob(b) => Val::Text(format!("{b:?}")),
    }
}

fn classify(e: dqlite_client::Error) -> SqlError {
    if e.is_outcome_unknown() {
        SqlError::Unknown(e.to_string())
    } else {
        SqlError::Definite(e.to_string())
    }
}

/// A member as the leader reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Node id.
    pub id: u64,
    /// Address.
    pub address: String,
    /// Voter, stand-by or spare.
    pub role: Role,
}

/// A member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Votes and replicates.
    Voter,
    /// Replicates without voting.
    Standby,
    /// Neither.
    Spare,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Voter => "voter",
            Role::Standby => "stand-by",
            Role::Spare => "spare",
        })
    }
}

/// A handle on the cluster under test (cheap to clone).
#[derive(Debug, Clone)]
pub struct Cluster {
    client: Client,
}

impl Cluster {
    /// A client of the nodes at `seeds`; nothing is contacted yet.
    pub fn new(seeds: &[String]) -> Result<Cluster, String> {
        let mut config = Config::default();
        config.connect_timeout = Duration::from_secs(1);
        config.request_timeout = REQUEST_TIMEOUT;
        config.leader_timeout = LEADER_TIMEOUT;
        config.backoff_base = Duration::from_millis(20);
        config.backoff_cap = Duration::from_millis(300);
        let client = Client::new(seeds.iter().cloned(), config).map_err(|e| e.to_string())?;
        Ok(Cluster { client })
    }

    /// A connection (opened on first use, reopened after a failure) to database `name`.
    pub fn db(&self, name: &str) -> Db {
        Db {
            client: self.client.clone(),
            name: name.to_string(),
            db: None,
        }
    }

    /// The members, as the leader reports them.
    pub async fn members(&self) -> Result<Vec<Member>, String> {
        let nodes = bounded(self.client.cluster()).await?;
        Ok(nodes
            .into_iter()
            .map(|n| Member {
                id: n.id,
                address: n.address,
                role: match n.role {
                    dqlite_client::Role::Voter => Role::Voter,
                    dqlite_client::Role::Standby => Role::Standby,
                    dqlite_client::Role::Spare => Role::Spare,
                },
            })
            .collect())
    }

    /// TRANSFER through the leader to voter `id`.
    pub async fn transfer(&self, id: u64) -> Result<(), String> {
        bounded(self.client.transfer(id)).await
    }

    /// ADD node `id` at `address` (it joins as a spare).
    pub async fn add(&self, id: u64, address: &str) -> Result<(), String> {
        bounded(self.client.add(id, address)).await
    }

    /// ASSIGN `role` to node `id`.
    pub async fn assign(&self, id: u64, role: Role) -> Result<(), String> {
        let role = match role {
            Role::Voter => dqlite_client::Role::Voter,
            Role::Standby => dqlite_client::Role::Standby,
            Role::Spare => dqlite_client::Role::Spare,
        };
        bounded(self.client.assign(id, role)).await
    }

    /// REMOVE node `id`.
    pub async fn remove(&self, id: u64) -> Result<(), String> {
        bounded(self.client.remove(id)).await
    }

    /// The files of database `db` as the node at `address` holds them (DUMP asked of it).
    pub async fn dump_from(
        &self,
        address: &str,
        db: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, String> {
        let files = bounded(self.client.dump_from(address, db)).await?;
        Ok(files.into_iter().map(|f| (f.name, f.data)).collect())
    }
}

async fn bounded<T>(
    f: impl std::future::Future<Output = dqlite_client::Result<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(OP_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {OP_TIMEOUT:?}")),
    }
}

/// One client connection to one database, reopened after it broke.
#[derive(Debug)]
pub struct Db {
    client: Client,
    name: String,
    db: Option<Database>,
}

impl Db {
    async fn handle(&mut self) -> Result<&mut Database, SqlError> {
        if self.db.is_none() {
            let db = match tokio::time::timeout(OP_TIMEOUT, self.client.open(&self.name)).await {
                Ok(Ok(db)) => db,
                Ok(Err(e)) => return Err(SqlError::Definite(format!("open: {e}"))),
                Err(_) => return Err(SqlError::Definite("open timed out".into())),
            };
            self.db = Some(db);
        }
        self.db
            .as_mut()
            .ok_or_else(|| SqlError::Definite("not connected".into()))
    }

    /// Drops the connection: the next statement opens a new one (used after a timeout or
    /// when a transaction must not be continued on whatever connection comes next).
    pub fn reset(&mut self) {
        self.db = None;
    }

    /// Executes one statement; returns the number of rows it changed.
    pub async fn exec(&mut self, sql: &str, params: &[Val]) -> Result<u64, SqlError> {
        let params: Vec<Value> = params.iter().map(to_client).collect();
        let db = self.handle().await?;
        match tokio::time::timeout(OP_TIMEOUT, db.exec(sql, params)).await {
            Ok(Ok(r)) => Ok(r.rows_affected),
            Ok(Err(e)) => {
                let e = classify(e);
                if matches!(e, SqlError::Unknown(_)) {
                    self.reset();
                }
                Err(e)
            }
            Err(_) => {
                self.reset();
                Err(SqlError::Unknown(format!(
                    "no answer within {OP_TIMEOUT:?}"
                )))
            }
        }
    }

    /// Runs one query and collects its rows.
    pub async fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Vec<Val>>, SqlError> {
        let params: Vec<Value> = params.iter().map(to_client).collect();
        let db = self.handle().await?;
        match tokio::time::timeout(OP_TIMEOUT, db.query_all(sql, params)).await {
            Ok(Ok(rows)) => Ok(rows
                .into_iter()
                .map(|r| r.into_values().into_iter().map(from_client).collect())
                .collect()),
            Ok(Err(e)) => {
                let e = classify(e);
                if matches!(e, SqlError::Unknown(_)) {
                    self.reset();
                }
                Err(e)
            }
            Err(_) => {
                self.reset();
                Err(SqlError::Unknown(format!(
                    "no answer within {OP_TIMEOUT:?}"
                )))
            }
        }
    }
}

/// One request to the node at `address` itself (not redirected to the leader).
async fn call_node(address: &str, req: Request, wait: Duration) -> Result<Response, String> {
    let run = async {
        let mut s = TcpStream::connect(address)
            .await
            .map_err(|e| format!("{address}: {e}"))?;
        let _ = s.set_nodelay(true);
        s.write_all(&ProtocolVersion::V1.to_bytes())
            .await
            .map_err(|e| format!("{address}: {e}"))?;
        let bytes = req.to_bytes().map_err(|e| e.to_string())?;
        s.write_all(&bytes)
            .await
            .map_err(|e| format!("{address}: {e}"))?;
        let ctx = ResponseContext::for_request(&req);
        let mut framer = Framer::new();
        loop {
            if let Some(f) = framer.next_frame().map_err(|e| e.to_string())? {
                return f.decode_response(&ctx).map_err(|e| e.to_string());
            }
            let n = s
                .read_buf(framer.buffer_mut())
                .await
                .map_err(|e| format!("{address}: {e}"))?;
            if n == 0 {
                return Err(format!("{address}: connection closed"));
            }
        }
    };
    match tokio::time::timeout(wait, run).await {
        Ok(r) => r,
        Err(_) => Err(format!("{address}: no answer within {wait:?}")),
    }
}

/// Who the node at `address` believes leads (`Ok(None)`: nobody it knows of).
pub async fn leader_seen_by(address: &str) -> Result<Option<String>, String> {
    match call_node(address, Request::Leader, Duration::from_secs(1)).await? {
        Response::Server { address, .. } if !address.is_empty() => Ok(Some(address)),
        Response::Server { .. } => Ok(None),
        Response::Failure(f) => Err(format!("{address}: {} ({})", f.message, f.code)),
        other => Err(format!("{address}: unexpected answer {other:?}")),
    }
}

/// TRANSFER sent to the node at `address` itself: naming itself, a follower starts an
/// election (this is how a TRANSFER through the leader reaches its target, and what the
/// lease nemesis sends to a follower cut off from the leader).
pub async fn transfer_via(address: &str, id: u64) -> Result<(), String> {
    match call_node(address, Request::Transfer { node_id: id }, OP_TIMEOUT).await? {
        Response::Empty => Ok(()),
        Response::Failure(f) => Err(format!("{address}: {} ({})", f.message, f.code)),
        other => Err(format!("{address}: unexpected answer {other:?}")),
    }
}
