//! SQL requests: OPEN, PREPARE, EXEC, QUERY, EXEC_SQL, QUERY_SQL, FINALIZE. Each runs on the
//! database through the commit pipeline, which replicates whatever a statement commits.

use dqlite_wire::{Params, Response};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::reader::Reader;
use super::session::{Session, Stmt};
use super::{failure, write_response};
use crate::database::DatabaseHandle;
use crate::database::pipeline;
use crate::database::statement::is_blank;
use crate::database::worker::QueryMsg;
use crate::error::{SqlFailure, code};

/// SQLite's "unable to open database file", for an OPEN over the node's database limit.
const SQLITE_CANTOPEN: u64 = 14;

impl Session {
    /// OPEN: one database per connection, on the leader only (as in C dqlite since 1.18.2;
    /// 1.11 also opened on followers, where every statement then failed): a client that
    /// dialled a follower learns it at once.
    pub async fn open(&mut self, name: String) -> Result<Response, SqlFailure> {
        if self.db.is_some() {
            return Err(SqlFailure::new(
                code::BUSY,
                "a database for this connection is already open",
            ));
        }
        if !self.shared.is_leader() {
            return Err(SqlFailure::not_leader());
        }
        let db = self
            .shared
            .registry
            .get_or_start_within(&name, self.shared.options.max_databases)
            .map_err(|e| SqlFailure::new(SQLITE_CANTOPEN, e))?;
        db.connect(self.conn).await?;
        self.db = Some(db);
        Ok(Response::Db { db_id: 0 })
    }

    /// PREPARE: schema 0 wants exactly one statement, schema 1 reports the tail offset.
    pub async fn prepare_request(
        &mut self,
        db_id: u64,
        sql: String,
        with_offset: bool,
    ) -> Result<Response, SqlFailure> {
        let db = self.database(db_id)?;
        self.check_leader().await?;
        let p = db.prepare(self.conn, sql).await?;
        if p.has_tail && !with_offset {
            return Err(SqlFailure::error("nonempty statement tail"));
        }
        let slot = match self.stmts.iter().position(Option::is_none) {
            Some(i) => i,
            None if self.stmts.len() < self.shared.options.max_statements => {
                self.stmts.push(None);
                self.stmts.len() - 1
            }
            None => return Err(SqlFailure::error("too many prepared statements")),
        };
        self.stmts[slot] = Some(Stmt { sql: p.sql });
        let stmt_id = slot as u32;
        Ok(if with_offset {
            Response::StmtWithOffset {
                db_id: 0,
                stmt_id,
                num_params: p.num_params,
                offset: p.offset as u64,
            }
        } else {
            Response::Stmt {
                db_id: 0,
                stmt_id,
                num_params: p.num_params,
            }
        })
    }

    /// FINALIZE: frees the statement's slot.
    pub fn finalize(&mut self, db_id: u32, stmt_id: u32) -> Result<Response, SqlFailure> {
        self.database(u64::from(db_id))?;
        self.stmt(stmt_id)?;
        self.stmts[stmt_id as usize] = None;
        while matches!(self.stmts.last(), Some(None)) {
            self.stmts.pop();
        }
        Ok(Response::Empty)
    }

    /// EXEC of a prepared statement.
    pub async fn exec_prepared(
        &mut self,
        db_id: u32,
        stmt_id: u32,
        params: Params,
    ) -> Result<Response, SqlFailure> {
        let db = self.database(u64::from(db_id))?;
        let sql = self.stmt(stmt_id)?.sql.clone();
        self.check_leader().await?;
        let e = pipeline::exec(&self.shared, &db, self.conn, sql, params.values().to_vec()).await?;
        Ok(Response::Result {
            last_insert_id: e.last_insert_id as u64,
            rows_affected: e.rows_affected,
        })
    }

    /// EXEC_SQL: every statement of the text in turn, each consuming its parameters.
    pub async fn exec_sql(
        &mut self,
        db_id: u64,
        sql: String,
        params: Params,
    ) -> Result<Response, SqlFailure> {
        let db = self.database(db_id)?;
        self.check_leader().await?;
        let mut rest = sql;
        let mut params = params.values().to_vec();
        loop {
            let e =
                pipeline::exec(&self.shared, &db, self.conn, rest.clone(), params.clone()).await?;
            rest = rest.get(e.consumed..).unwrap_or_default().to_string();
            params.drain(..e.params_used.min(params.len()));
            if is_blank(&rest) {
                return Ok(Response::Result {
                    last_insert_id: e.last_insert_id as u64,
                    rows_affected: e.rows_affected,
                });
            }
        }
    }

    /// QUERY of a prepared statement.
    pub async fn query_prepared<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
        &mut self,
        reader: &mut Reader<R>,
        wr: &mut W,
        db_id: u32,
        stmt_id: u32,
        params: Params,
    ) -> std::io::Result<()> {
        let r = self
            .database(u64::from(db_id))
            .and_then(|db| Ok((db, self.stmt(stmt_id)?.sql.clone())));
        match r {
            Ok((db, sql)) => self.query(reader, wr, db, sql, params, false).await,
            Err(f) => write_response(wr, &failure(f)).await,
        }
    }

    /// QUERY_SQL: exactly one statement (the worker checks, in the same round trip as the
    /// query itself).
    pub async fn query_sql<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
        &mut self,
        reader: &mut Reader<R>,
        wr: &mut W,
        db_id: u64,
        sql: String,
        params: Params,
    ) -> std::io::Result<()> {
        match self.database(db_id) {
            Ok(db) => self.query(reader, wr, db, sql, params, true).await,
            Err(f) => write_response(wr, &failure(f)).await,
        }
    }

    /// Runs a query (after the leader check and, unless reads are leader-local, a read
    /// barrier) and streams its ROWS batches. A query that wrote (`INSERT … RETURNING`)
    /// replicates its commit before the last batch goes out. An INTERRUPT from the client
    /// stops the stream (the query is abandoned, and a write it made is not committed) and is
    /// answered with EMPTY.
    async fn query<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
        &mut self,
        reader: &mut Reader<R>,
        wr: &mut W,
        db: DatabaseHandle,
        sql: String,
        params: Params,
        whole: bool,
    ) -> std::io::Result<()> {
        if let Err(f) = self.check_leader().await {
            return write_response(wr, &failure(f)).await;
        }
        if !self.shared.options.leader_local_reads
            && let Err(e) = self.shared.raft.read_barrier().await
        {
            let f = match e {
                dqlite_raft::node::NodeError::NotLeader { .. } => SqlFailure::not_leader(),
                other => SqlFailure::leadership_lost(format!("barrier error: {other}")),
            };
            return write_response(wr, &failure(f)).await;
        }
        let deadline = std::time::Instant::now() + self.shared.options.write_wait;
        let mut rows = db.query(self.conn, sql, params.values().to_vec(), deadline, whole);
        loop {
            let msg = tokio::select! {
                msg = rows.next() => msg,
                interrupted = reader.interrupted() => {
                    // Dropping the stream abandons the query on the worker.
                    drop(rows);
                    return if interrupted {
                        write_response(wr, &Response::Empty).await
                    } else {
                        Err(std::io::ErrorKind::UnexpectedEof.into())
                    };
                }
            };
            match msg {
                Some(QueryMsg::Batch(b)) => wr.write_all(&b).await?,
                Some(QueryMsg::Done(b, frames)) => {
                    self.shared.metrics.read(db.name());
                    if let Some(frames) = frames
                        && let Err(f) = pipeline::commit(&self.shared, &db, self.conn, frames).await
                    {
                        return write_response(wr, &failure(f)).await;
                    }
                    return wr.write_all(&b).await;
                }
                Some(QueryMsg::Failed(f)) => return write_response(wr, &failure(f)).await,
                None => {
                    return write_response(
                        wr,
                        &failure(SqlFailure::new(
                            code::ABORT,
                            "query aborted by the database worker",
                        )),
                    )
                    .await;
                }
            }
        }
    }
}
