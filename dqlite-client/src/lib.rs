//! A pure-Rust async client for [dqlite](https://dqlite.io) clusters: leader discovery, SQL
//! with typed parameters and rows read into tuples or structs, prepared statements,
//! transactions with savepoints, a connection pool and cluster administration, over the dqlite
//! wire protocol (encoded by `dqlite-wire`). It talks to C dqlite nodes and dqlite-rs nodes
//! alike.
//!
//! ```
//! use std::time::Duration;
//! use dqlite_client::{Client, PoolOptions, params};
//!
//! # use dqlite_wire::{Framer, NodeInfo, Request, Response, Role, RowsBatch, RowsEnd, Value};
//! # use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> dqlite_client::Result<()> {
//! # // A one-node fake cluster, so that this example runs without a server.
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! # let addr = listener.local_addr().unwrap().to_string();
//! # let me = addr.clone();
//! # tokio::spawn(async move { loop {
//! #     let (mut s, _) = listener.accept().await.unwrap();
//! #     let me = me.clone();
//! #     tokio::spawn(async move {
//! #         let (mut framer, mut buf) = (Framer::server(), [0u8; 4096]);
//! #         while let Ok(n @ 1..) = s.read(&mut buf).await {
//! #             framer.push(&buf[..n]);
//! #             if framer.expects_handshake() && framer.next_handshake().unwrap().is_none() { continue; }
//! #             while let Some(f) = framer.next_frame().unwrap() {
//! #                 let rows = |columns: &[&str], rows: Vec<Vec<Value>>| Response::Rows(RowsBatch {
//! #                     columns: columns.iter().map(|c| c.to_string()).collect(), rows, end: RowsEnd::Done });
//! #                 let resp = match f.decode_request().unwrap() {
//! #                     Request::Leader => Response::Server { node_id: 1, address: me.clone() },
//! #                     Request::Client { .. } => Response::Welcome { heartbeat_timeout: 15000 },
//! #                     Request::Cluster { .. } => Response::Servers { servers: vec![
//! #                         NodeInfo { id: 1, address: me.clone(), role: Role::Voter }] },
//! #                     Request::Open { .. } => Response::Db { db_id: 0 },
//! #                     Request::ExecSql { .. } => Response::Result { last_insert_id: 1, rows_affected: 1 },
//! #                     Request::QuerySql { params, .. } if params.values() == [Value::from("none")] => rows(&["v"], vec![]),
//! #                     Request::QuerySql { sql, .. } if sql.starts_with("SELECT 1") => rows(&["1"], vec![vec![Value::Integer(1)]]),
//! #                     Request::QuerySql { sql, .. } if sql.contains("count(*)") => rows(&["n"], vec![vec![Value::Integer(2)]]),
//! #                     Request::QuerySql { .. } => rows(&["k", "v"], vec![
//! #                         vec![Value::Text("one".into()), Value::Integer(1)],
//! #                         vec![Value::Text("two".into()), Value::Integer(2)]]),
//! #                     _ => Response::failure(1, "not in this example"),
//! #                 };
//! #                 s.write_all(&resp.to_bytes().unwrap()).await.unwrap();
//! #             }
//! #         }
//! #     });
//! # }});
//! // Any reachable members will do (here a fake one-node cluster at `addr`): the client asks
//! // them who the leader is and follows the answer.
//! let client = Client::builder()
//!     .servers([addr.as_str()])
//!     .leader_timeout(Duration::from_secs(10))
//!     .connect()
//!     .await?;
//! let mut db = client.open("app").await?;
//! db.exec("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v INTEGER)", ()).await?;
//! db.exec("INSERT OR REPLACE INTO kv VALUES (?, ?)", ("one", 1)).await?;
//!
//! // Rows into tuples (or into structs with `#[derive(FromRow)]`, feature `derive`).
//! let all: Vec<(String, i64)> = db.query_as("SELECT k, v FROM kv ORDER BY k", ()).await?;
//! assert_eq!(all[0], ("one".to_string(), 1));
//!
//! // One row that must be there, columns by number or name; or maybe a row.
//! let n: i64 = db.query_row("SELECT count(*) AS n FROM kv", ()).await?.get("n")?;
//! assert_eq!(n, 2);
//! let none = db.query_opt("SELECT v FROM kv WHERE k = ?", ["none"]).await?;
//! assert!(none.is_none());
//!
//! // A transaction rolls back if its guard is dropped without commit; it offers every query
//! // method of the database, and savepoints nest inside it.
//! let mut tx = db.transaction().await?;
//! tx.exec("UPDATE kv SET v = v + 1 WHERE k = ?", params!["one"]).await?;
//! let sp = tx.savepoint().await?;
//! sp.commit().await?;
//! tx.commit().await?;
//!
//! // A pool: bounded waits, recycled connections checked before use.
//! let pool = client.pool_with("app", PoolOptions::new(4).acquire_timeout(Duration::from_secs(5)));
//! let mut conn = pool.get().await?;
//! let rows = conn.query_all("SELECT k, v FROM kv", ()).await?;
//! assert_eq!(rows[1].get::<String>("k")?, "two");
//! # Ok(()) }
//! ```
//!
//! Rows also stream ([`Database::query`] gives a [`futures::Stream`] of [`Row`]s, decoded
//! batch by batch), statements can be prepared ([`Database::prepare`]; dropping one finalizes
//! it), and the cluster administered ([`Client::cluster`], [`Client::add`],
//! [`Client::assign`], [`Client::transfer`], ...).
//!
//! Values are [`Value`] (the one value type of `dqlite-wire`): parameters come from Rust
//! values ([`Params`]: tuples, arrays, slices and `Vec`s of anything `Into<Value>`, and
//! [`params!`] for mixed lists) and go back with [`FromValue`] (every integer and float width,
//! `bool`, `String`, `Vec<u8>`, `SystemTime`, `Option<T>`, and with the features `chrono`,
//! `time`, `uuid` and `serde_json` their types):
//!
//! ```
//! use dqlite_client::{FromValue, Params, Value, params, sql};
//!
//! let p = params![42, "text", 1.5, None::<i64>, true, vec![0u8, 1]];
//! assert_eq!(p[0], Value::Integer(42));
//! assert_eq!(p[3], Value::Null);
//! assert_eq!(p[4], Value::Boolean(1));
//! assert_eq!(u16::from_value(&Value::Integer(7))?, 7);
//! assert_eq!([1, 2, 3].into_values().len(), 3);
//!
//! let stmts = sql::split_statements("INSERT INTO t VALUES ('a;b'); SELECT * FROM t");
//! assert_eq!(stmts.len(), 2);
//! assert!(sql::returns_rows(&stmts[1]) && !sql::returns_rows(&stmts[0]));
//! # Ok::<(), dqlite_client::FromValueError>(())
//! ```
//!
//! Errors are one type, [`Error`]: it carries the server's code ([`Error::code`], typed as
//! [`ErrorCode`]; [`Error::raw_code`] as sent) and message and the node that answered, and
//! says whether the request may be retried ([`Error::is_retryable`]), whether a write may or
//! may not have happened ([`Error::is_outcome_unknown`]) and whether the connection had to be
//! dropped ([`Error::is_connection_error`]).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backoff;
pub mod backup;
mod builder;
mod client;
mod codec;
mod config;
mod conn;
mod connector;
mod convert;
mod database;
mod error;
mod params;
mod pool;
mod row;
mod rows;
pub mod sql;
mod store;
mod transport;
mod value;

/// rustls, for [`TlsConfig::new`]'s configuration (feature `tls`).
#[cfg(feature = "tls")]
pub use rustls;

pub use backoff::Backoff;
pub use builder::ClientBuilder;
pub use client::{Client, Metadata};
pub use codec::File;
pub use config::Config;
pub use database::{Database, ExecResult, Statement, Transaction};
/// The FAILURE codes servers send, by name (shared with the node: `dqlite-wire`'s).
pub use dqlite_wire::constants::error_code;
/// Times as ISO-8601 text, go-dqlite's layout (`dqlite-wire`'s).
pub use dqlite_wire::time::format_iso8601;
/// One SQL value, with every type the protocol has (`dqlite-wire`'s: one type from the wire to
/// the user).
pub use dqlite_wire::{Value, ValueType};
pub use error::{Error, ErrorCode, Result};
pub use params::Params;
pub use pool::{Pool, PoolOptions, PooledDatabase};
pub use row::{ColumnIndex, FromRow, Row};
pub use rows::Rows;
pub use store::{NodeInfo, NodeStore, Role, parse_role};
pub use transport::Address;
#[cfg(feature = "tls")]
pub use transport::TlsConfig;
pub use value::{FromValue, FromValueError};

/// `#[derive(FromRow)]`: a struct from a row, each field from the column of its name
/// (`#[dqlite(rename = "col")]` to use another column name, `#[dqlite(default)]` for a field
/// whose column may be missing).
#[cfg(feature = "derive")]
pub use dqlite_client_derive::FromRow;

// The README's examples are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
