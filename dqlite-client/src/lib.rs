//! A pure-Rust async client for [dqlite](https://dqlite.io) clusters: leader discovery, SQL
//! with typed parameters and streamed rows, prepared statements, transactions, and cluster
//! administration, over the dqlite wire protocol (encoded by `dqlite-wire`).
//!
//! Parameters are [`Value`]s, built from Rust values; statements are split the way the
//! servers and the `dqlite` shell need:
//!
//! ```
//! use dqlite_client::{params, sql, Value};
//!
//! let p = params![42, "text", 1.5, None::<i64>, true, vec![0u8, 1]];
//! assert_eq!(p[0], Value::Integer(42));
//! assert_eq!(p[3], Value::Null);
//! assert_eq!(p[4], Value::Boolean(true));
//! assert_eq!(Value::Integer(7).get::<i64>(0)?, 7);
//!
//! let stmts = sql::split_statements("INSERT INTO t VALUES ('a;b'); SELECT * FROM t");
//! assert_eq!(stmts.len(), 2);
//! assert!(sql::returns_rows(&stmts[1]) && !sql::returns_rows(&stmts[0]));
//! # Ok::<(), dqlite_client::Error>(())
//! ```
//!
//! Talking to a cluster (needs running nodes, e.g. `dqlite-demo` from Debian's `go-dqlite`):
//!
//! ```no_run
//! use dqlite_client::{Client, params};
//! use futures::TryStreamExt;
//!
//! # async fn run() -> dqlite_client::Result<()> {
//! // Any reachable members will do: the client asks them who the leader is.
//! let client = Client::connect(["127.0.0.1:9001", "127.0.0.1:9002"]).await?;
//! let mut db = client.open("app").await?;
//! db.exec("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v INTEGER)", ()).await?;
//! let r = db.exec("INSERT OR REPLACE INTO kv VALUES (?, ?)", ("one", 1)).await?;
//! assert_eq!(r.rows_affected, 1);
//!
//! let mut rows = db.query("SELECT k, v FROM kv WHERE v >= ?", params![0]).await?;
//! while let Some(row) = rows.try_next().await? {
//!     let (k, v): (String, i64) = (row.get(0)?, row.get(1)?);
//!     println!("{k} = {v}");
//! }
//! drop(rows); // a half-read result is drained before the next request
//!
//! let mut tx = db.transaction().await?;
//! tx.exec("UPDATE kv SET v = v + 1", ()).await?;
//! tx.commit().await?;
//!
//! for node in client.cluster().await? {
//!     println!("{} {} {}", node.id, node.address, node.role);
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backoff;
mod client;
mod codec;
mod config;
mod conn;
mod connector;
mod database;
mod error;
mod pool;
mod rows;
pub mod sql;
mod store;
mod transport;
mod value;

pub use backoff::Backoff;
pub use client::{Client, Metadata};
pub use codec::File;
pub use config::Config;
pub use database::{Database, ExecResult, Statement, Transaction};
pub use error::{
    CODE_BUSY, CODE_LEADERSHIP_LOST, CODE_LEGACY_LEADERSHIP_LOST, CODE_LEGACY_NOT_LEADER,
    CODE_NOT_FOUND, CODE_NOT_LEADER, Error, Result,
};
pub use pool::{Pool, PooledDatabase};
pub use rows::{Row, Rows};
pub use store::{NodeInfo, NodeStore, Role, parse_role};
pub use transport::Address;
#[cfg(feature = "tls")]
pub use transport::TlsConfig;
pub use value::{FromValue, Params, Value, format_iso8601};
