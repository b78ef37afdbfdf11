//! A pure-Rust async client for [dqlite](https://dqlite.io) clusters: leader discovery, SQL
//! with typed parameters and streamed rows, prepared statements, transactions, and cluster
//! administration, over the dqlite wire protocol (encoded by `dqlite-wire`).
//!
//! ```
//! use dqlite_client::{Client, params};
//! use futures::TryStreamExt;
//!
//! # use dqlite_wire::{Framer, NodeInfo, Request, Response, Role, RowsBatch, RowsEnd};
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
//! #                 let resp = match f.decode_request().unwrap() {
//! #                     Request::Leader => Response::Server { node_id: 1, address: me.clone() },
//! #                     Request::Client { .. } => Response::Welcome { heartbeat_timeout: 15000 },
//! #                     Request::Cluster { .. } => Response::Servers { servers: vec![
//! #                         NodeInfo { id: 1, address: me.clone(), role: Role::Voter }] },
//! #                     Request::Open { .. } => Response::Db { db_id: 0 },
//! #                     Request::ExecSql { .. } => Response::Result { last_insert_id: 1, rows_affected: 1 },
//! #                     Request::QuerySql { .. } => Response::Rows(RowsBatch {
//! #                         columns: vec!["k".into(), "v".into()],
//! #                         rows: vec![vec![dqlite_wire::Value::Text("one".into()), dqlite_wire::Value::Integer(1)]],
//! #                         end: RowsEnd::Done }),
//! #                     _ => Response::failure(1, "not in this example"),
//! #                 };
//! #                 s.write_all(&resp.to_bytes().unwrap()).await.unwrap();
//! #             }
//! #         }
//! #     });
//! # }});
//! // Any reachable members will do (here a fake one-node cluster at `addr`): the client asks
//! // them who the leader is and follows the answer.
//! let client = Client::connect([addr.as_str()]).await?;
//! let mut db = client.open("app").await?;
//! db.exec("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v INTEGER)", ()).await?;
//! let r = db.exec("INSERT OR REPLACE INTO kv VALUES (?, ?)", ("one", 1)).await?;
//! assert_eq!(r.rows_affected, 1);
//!
//! // Rows are a futures::Stream, decoded batch by batch.
//! let mut rows = db.query("SELECT k, v FROM kv WHERE v >= ?", params![0]).await?;
//! while let Some(row) = rows.try_next().await? {
//!     let (k, v): (String, i64) = (row.get(0)?, row.get(1)?);
//!     assert_eq!((k.as_str(), v), ("one", 1));
//! }
//! drop(rows); // a half-read result would be drained before the next request
//!
//! // A transaction rolls back if its guard is dropped without commit.
//! let mut tx = db.transaction().await?;
//! tx.exec("UPDATE kv SET v = v + 1", ()).await?;
//! tx.commit().await?;
//!
//! // Cluster administration.
//! for node in client.cluster().await? {
//!     println!("{:#x} {} {}", node.id, node.address, node.role);
//! }
//! # Ok(()) }
//! ```
//!
//! Parameters are [`Value`]s built from Rust values ([`params!`] for mixed lists), and SQL text
//! is split the way the servers and the `dqlite` shell need:
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
//! Errors are one type, [`Error`]: it carries the server's code and message and the node that
//! answered, and says whether the request may be retried ([`Error::is_retryable`]), whether a
//! write may or may not have happened ([`Error::is_outcome_unknown`]) and whether the
//! connection had to be dropped ([`Error::is_connection_error`]).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backoff;
pub mod backup;
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
