//! [`Database`]: one connection to the leader with one database open on it.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::Value;
use crate::client::Client;
use crate::codec::{Req, Resp};
use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::params::Params;
use crate::row::{FromRow, Row};
use crate::rows::Rows;
use crate::sql::{TxEffect, split_statements, tx_effect};

/// What an exec reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExecResult {
    /// `sqlite3_last_insert_rowid` after the statement.
    pub last_insert_id: u64,
    /// `sqlite3_changes` after the statement (sticky: a statement that changes nothing reports
    /// the count of the connection's last INSERT/UPDATE/DELETE).
    pub rows_affected: u64,
}

/// Statements dropped without [`Database::finalize`], as (connection generation, id): the
/// database finalizes those of its current connection before its next request.
type Dropped = Arc<Mutex<Vec<(u64, u32)>>>;

/// A statement prepared on the server (see [`Database::prepare`]).
///
/// It belongs to the connection it was prepared on. If that connection is replaced (after a
/// leader change), the next use prepares it again on the new one. Finalizing consumes it, so
/// a finalized id is never sent again (C servers crash on some reuses of finalized ids).
/// A statement dropped without [`Database::finalize`] is finalized by its database before
/// the database's next request, so that a long-lived (pooled) connection never piles up
/// statements on the server (a node holds at most 1,024 per connection).
#[derive(Debug)]
pub struct Statement {
    sql: String,
    id: u32,
    params: u64,
    generation: u64,
    /// Where the id goes when the statement is dropped; `None` once finalized.
    dropped: Option<Dropped>,
}

impl Drop for Statement {
    fn drop(&mut self) {
        if let Some(queue) = self.dropped.take() {
            queue
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((self.generation, self.id));
        }
    }
}

impl Statement {
    /// The SQL text.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Number of parameters the statement has.
    pub fn param_count(&self) -> u64 {
        self.params
    }
}

/// One connection to the leader with database `name` open, like a `database/sql` connection
/// in go-dqlite. Requests run one at a time (`&mut self`).
///
/// Reconnection: when the leader changes, the next request that the server refuses untouched
/// (not leader, no database opened) or that cannot be sent is retried on a new connection to
/// the new leader, unless a transaction is open (it died with the old connection; the error is
/// returned) or the request was a multi-statement text. Writes whose outcome is unknown are
/// never retried.
#[derive(Debug)]
pub struct Database {
    client: Client,
    name: String,
    conn: Option<Conn>,
    /// Incremented on every new connection; prepared statements remember theirs.
    generation: u64,
    /// A transaction may be open on the server (BEGIN seen, no COMMIT/ROLLBACK yet).
    in_tx: bool,
    /// A ROWS stream was started and not read to its DONE batch.
    pub(crate) stream_open: bool,
    /// Statements to run before anything else, each with whether it ends the transaction:
    /// the rollbacks of transaction and savepoint guards dropped without commit/rollback.
    pending: Vec<(String, bool)>,
    /// Statements dropped without finalize (see [`Statement`]).
    dropped: Dropped,
    /// Savepoints started, for unique names.
    savepoints: u64,
}

impl Database {
    pub(crate) fn new(client: Client, name: &str) -> Database {
        Database {
            client,
            name: name.to_owned(),
            conn: None,
            generation: 0,
            in_tx: false,
            stream_open: false,
            pending: Vec::new(),
            dropped: Arc::default(),
            savepoints: 0,
        }
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address of the node this handle is connected to, if connected.
    pub fn node(&self) -> Option<&str> {
        self.conn.as_ref().map(Conn::node)
    }

    /// The client this database was opened from.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// True when the handle has a usable connection and no transaction or stream left over.
    pub(crate) fn is_clean(&self) -> bool {
        self.conn.as_ref().is_some_and(Conn::is_usable)
            && !self.in_tx
            && !self.stream_open
            && self.pending.is_empty()
    }

    /// Whether a transaction may be open on the server.
    pub fn in_transaction(&self) -> bool {
        self.in_tx
    }

    /// Find the leader and OPEN the database on a new connection.
    pub(crate) async fn connect(&mut self) -> Result<()> {
        self.conn = None;
        self.stream_open = false;
        let mut conn = self.client.leader_conn().await?;
        let req = Req::Open { name: &self.name };
        match conn.call(&req).await? {
            Resp::Db { .. } => {}
            other => return Err(conn.unexpected(&req, &other)),
        }
        self.generation += 1;
        self.conn = Some(conn);
        Ok(())
    }

    /// Bring the connection to a state where a new request can be sent: drain a half-read
    /// stream, roll back abandoned transactions and savepoints, finalize dropped statements,
    /// reconnect a broken connection.
    async fn ready(&mut self) -> Result<&mut Conn> {
        let usable = self.conn.as_ref().is_some_and(Conn::is_usable);
        if !usable {
            if self.in_tx || !self.pending.is_empty() {
                // The transaction died with the connection.
                self.in_tx = false;
                self.pending.clear();
            }
            self.connect().await?;
        }
        if self.stream_open {
            self.stream_open = false;
            if let Some(c) = self.conn.as_mut()
                && let Err(e) = c.interrupt_and_drain().await
            {
                self.conn = None;
                return Err(e);
            }
        }
        for (sql, ends_tx) in std::mem::take(&mut self.pending) {
            if ends_tx {
                self.in_tx = false;
            }
            let Some(c) = self.conn.as_mut() else { break };
            let req = Req::ExecSql {
                sql: &sql,
                params: &[],
            };
            // "no transaction is active" is fine: the server may have rolled back already.
            if let Err(e) = c.call(&req).await
                && e.is_connection_error()
            {
                // The transaction dies with the connection.
                self.conn = None;
                self.in_tx = false;
            }
        }
        self.finalize_dropped().await;
        if self.conn.is_none() {
            self.connect().await?;
        }
        self.conn
            .as_mut()
            .ok_or_else(|| Error::Usage("not connected".into()))
    }

    /// FINALIZE the statements of this connection that were dropped without
    /// [`Database::finalize`] (those of earlier connections died with them).
    async fn finalize_dropped(&mut self) {
        let dropped = std::mem::take(&mut *self.dropped.lock().unwrap_or_else(|e| e.into_inner()));
        for (generation, id) in dropped {
            let Some(c) = self.conn.as_mut().filter(|_| generation == self.generation) else {
                continue;
            };
            // A statement the server no longer has is fine: it is gone either way.
            if let Err(e) = c.call(&Req::Finalize { stmt: id }).await
                && e.is_connection_error()
            {
                self.conn = None;
            }
        }
    }

    /// Decide what to do after a failed request. Returns `Ok(())` to retry (after a backoff
    /// sleep), or the error to give the caller.
    async fn after_failure(
        &mut self,
        err: Error,
        retry_safe: bool,
        write: bool,
        sent: bool,
        started: Instant,
        backoff: &mut crate::Backoff,
    ) -> Result<()> {
        let conn_err = err.is_connection_error();
        if conn_err {
            self.conn = None;
            self.stream_open = false;
            self.client.lock_store().set_leader(None);
        }
        let was_in_tx = self.in_tx;
        if conn_err && was_in_tx {
            self.in_tx = false;
        }
        let refused = err.is_retryable();
        if refused && retry_safe && !was_in_tx {
            let delay = backoff.next_delay();
            if started.elapsed() + delay < self.client.config().leader_timeout {
                tokio::time::sleep(delay).await;
                return Ok(());
            }
            return Err(err);
        }
        if write && sent && conn_err && !refused {
            return Err(err.outcome_unknown());
        }
        Err(err)
    }

    fn note_tx(&mut self, sql: &str) {
        for stmt in split_statements(sql) {
            match tx_effect(&stmt) {
                TxEffect::Begin => self.in_tx = true,
                TxEffect::End => self.in_tx = false,
                TxEffect::None => {}
            }
        }
    }

    /// Execute SQL that returns no rows (one or more statements separated by `;`; parameters
    /// bind to the first statement on C dqlite 1.x).
    pub async fn exec(&mut self, sql: &str, params: impl Params) -> Result<ExecResult> {
        let params = params.into_values();
        let single = split_statements(sql).len() <= 1;
        let started = Instant::now();
        let mut backoff = self.client.config().backoff();
        loop {
            let req = Req::ExecSql {
                sql,
                params: &params,
            };
            let (res, sent) = self.round_trip(&req).await;
            match res {
                Ok(Resp::Result {
                    last_insert_id,
                    rows_affected,
                }) => {
                    self.note_tx(sql);
                    return Ok(ExecResult {
                        last_insert_id,
                        rows_affected,
                    });
                }
                Ok(other) => {
                    let e = self.unexpected(&req, &other);
                    return Err(e);
                }
                Err(e) => {
                    // A failed statement inside BEGIN..COMMIT leaves the transaction open;
                    // a failed BEGIN does not open one.
                    self.after_failure(e, single, true, sent, started, &mut backoff)
                        .await?;
                }
            }
        }
    }

    /// Sends `req` on a ready connection and reads its answer (a FAILURE becomes an error).
    /// The flag says whether the request may have reached the server, which decides whether
    /// a failure may be retried.
    async fn round_trip(&mut self, req: &Req<'_>) -> (Result<Resp>, bool) {
        match self.ready().await {
            Ok(conn) => match conn.send(req).await {
                Ok(()) => (
                    conn.recv(req).await.and_then(|r| conn.failure_to_error(r)),
                    true,
                ),
                Err(e) => (Err(e), true),
            },
            Err(e) => (Err(e), false),
        }
    }

    fn unexpected(&mut self, req: &Req<'_>, got: &Resp) -> Error {
        match self.conn.as_mut() {
            Some(c) => {
                let e = c.unexpected(req, got);
                self.conn = None;
                e
            }
            None => Error::UnexpectedResponse {
                node: String::new(),
                request: req.name(),
                got: got.name().to_owned(),
            },
        }
    }

    /// Run a query and stream its rows (see [`Rows`]). Only the first statement of `sql` runs.
    pub async fn query(&mut self, sql: &str, params: impl Params) -> Result<Rows<'_>> {
        let params = params.into_values();
        let started = Instant::now();
        let mut backoff = self.client.config().backoff();
        loop {
            let req = Req::QuerySql {
                sql,
                params: &params,
            };
            let (res, sent) = self.round_trip(&req).await;
            match res {
                Ok(Resp::Rows(batch)) => {
                    self.note_tx(sql);
                    self.stream_open = batch.more;
                    return Ok(Rows::new(self, batch, sql.to_owned()));
                }
                Ok(other) => return Err(self.unexpected(&req, &other)),
                Err(e) => {
                    // RETURNING makes a query a write.
                    let write = crate::sql::leading_keyword(sql).is_some_and(|k| {
                        !matches!(
                            k.as_str(),
                            "SELECT" | "VALUES" | "PRAGMA" | "EXPLAIN" | "WITH"
                        )
                    });
                    self.after_failure(e, true, write, sent, started, &mut backoff)
                        .await?;
                }
            }
        }
    }

    /// Run a query and collect every row.
    pub async fn query_all(&mut self, sql: &str, params: impl Params) -> Result<Vec<Row>> {
        self.query(sql, params).await?.collect_all().await
    }

    /// Run a query and collect every row as `T`: a tuple of up to 12 values, a struct with
    /// `#[derive(FromRow)]` (feature `derive`), ... (see [`FromRow`]).
    pub async fn query_as<T: FromRow>(&mut self, sql: &str, params: impl Params) -> Result<Vec<T>> {
        self.query(sql, params).await?.collect_as().await
    }

    /// Run a query that must return a row and return the first; [`Error::NoRows`] when there
    /// is none. Rows after the first are discarded.
    pub async fn query_row(&mut self, sql: &str, params: impl Params) -> Result<Row> {
        self.query_opt(sql, params)
            .await?
            .ok_or_else(|| Error::NoRows {
                sql: sql.to_owned(),
            })
    }

    /// Run a query and return its first row, or `None` when it returns none. Rows after the
    /// first are discarded.
    pub async fn query_opt(&mut self, sql: &str, params: impl Params) -> Result<Option<Row>> {
        let mut rows = self.query(sql, params).await?;
        let first = rows.next_row().await.transpose()?;
        // A stream not read to its end is drained before the next request.
        drop(rows);
        Ok(first)
    }

    /// Read the next batch of the open stream (used by [`Rows`]).
    pub(crate) async fn next_batch(
        &mut self,
        sql_name: &'static str,
    ) -> Result<crate::codec::Batch> {
        let conn = match self.conn.as_mut() {
            Some(c) => c,
            None => {
                self.stream_open = false;
                return Err(Error::Usage(format!(
                    "{sql_name}: connection lost mid-stream"
                )));
            }
        };
        let req = Req::QuerySql {
            sql: "",
            params: &[],
        };
        let res = conn.recv(&req).await.and_then(|r| conn.failure_to_error(r));
        match res {
            Ok(Resp::Rows(batch)) => {
                self.stream_open = batch.more;
                Ok(batch)
            }
            Ok(other) => {
                self.stream_open = false;
                Err(self.unexpected(&req, &other))
            }
            Err(e) => {
                self.stream_open = false;
                if e.is_connection_error() {
                    self.conn = None;
                }
                Err(e)
            }
        }
    }

    /// Drain the rest of an open stream (INTERRUPT, then discard until EMPTY).
    pub(crate) async fn drain(&mut self) -> Result<()> {
        if !self.stream_open {
            return Ok(());
        }
        self.stream_open = false;
        if let Some(c) = self.conn.as_mut()
            && let Err(e) = c.interrupt_and_drain().await
        {
            self.conn = None;
            return Err(e);
        }
        Ok(())
    }

    /// Interrupt whatever the connection is streaming (a no-op when idle): sends INTERRUPT
    /// and waits for its EMPTY, discarding the rest of the rows.
    pub async fn interrupt(&mut self) -> Result<()> {
        if self.stream_open {
            return self.drain().await;
        }
        let conn = self.ready().await?;
        conn.interrupt_and_drain().await
    }

    /// Prepare a statement on the server.
    pub async fn prepare(&mut self, sql: &str) -> Result<Statement> {
        let started = Instant::now();
        let mut backoff = self.client.config().backoff();
        loop {
            match self.prepare_once(sql).await {
                Ok(s) => return Ok(s),
                Err(e) => {
                    self.after_failure(e, true, false, true, started, &mut backoff)
                        .await?
                }
            }
        }
    }

    async fn prepare_once(&mut self, sql: &str) -> Result<Statement> {
        let conn = self.ready().await?;
        let req = Req::Prepare { sql };
        match conn.call(&req).await? {
            Resp::Stmt { id, params, .. } => Ok(Statement {
                sql: sql.to_owned(),
                id,
                params,
                generation: self.generation,
                dropped: Some(self.dropped.clone()),
            }),
            other => Err(self.unexpected(&req, &other)),
        }
    }

    /// Make sure `stmt` exists on the current connection (re-prepare after a reconnect).
    async fn revive(&mut self, stmt: &mut Statement) -> Result<()> {
        self.ready().await?;
        if stmt.generation != self.generation {
            let fresh = self.prepare_once(&stmt.sql).await?;
            *stmt = fresh;
        }
        Ok(())
    }

    /// Execute a prepared statement.
    pub async fn exec_prepared(
        &mut self,
        stmt: &mut Statement,
        params: impl Params,
    ) -> Result<ExecResult> {
        let params = params.into_values();
        let started = Instant::now();
        let mut backoff = self.client.config().backoff();
        loop {
            let mut sent = false;
            let res = async {
                self.revive(stmt).await?;
                let req = Req::Exec {
                    stmt: stmt.id,
                    params: &params,
                };
                let conn = self.ready().await?;
                sent = true;
                let r = conn.call(&req).await?;
                match r {
                    Resp::Result {
                        last_insert_id,
                        rows_affected,
                    } => Ok(ExecResult {
                        last_insert_id,
                        rows_affected,
                    }),
                    other => Err(self.unexpected(&req, &other)),
                }
            }
            .await;
            match res {
                Ok(r) => {
                    self.note_tx(&stmt.sql.clone());
                    return Ok(r);
                }
                Err(e) => {
                    self.after_failure(e, true, true, sent, started, &mut backoff)
                        .await?
                }
            }
        }
    }

    /// Run a prepared query and stream its rows.
    pub async fn query_prepared(
        &mut self,
        stmt: &mut Statement,
        params: impl Params,
    ) -> Result<Rows<'_>> {
        let params = params.into_values();
        let started = Instant::now();
        let mut backoff = self.client.config().backoff();
        loop {
            let mut sent = false;
            let res = async {
                self.revive(stmt).await?;
                let req = Req::Query {
                    stmt: stmt.id,
                    params: &params,
                };
                let conn = self.ready().await?;
                sent = true;
                match conn.call(&req).await? {
                    Resp::Rows(batch) => Ok(batch),
                    other => Err(self.unexpected(&req, &other)),
                }
            }
            .await;
            match res {
                Ok(batch) => {
                    self.stream_open = batch.more;
                    let sql = stmt.sql.clone();
                    return Ok(Rows::new(self, batch, sql));
                }
                Err(e) => {
                    self.after_failure(e, true, false, sent, started, &mut backoff)
                        .await?
                }
            }
        }
    }

    /// Finalize a prepared statement (a no-op if its connection is gone: so is the statement).
    /// Dropping it has the same effect, before the database's next request.
    pub async fn finalize(&mut self, mut stmt: Statement) -> Result<()> {
        stmt.dropped = None;
        if stmt.generation != self.generation || !self.conn.as_ref().is_some_and(Conn::is_usable) {
            return Ok(());
        }
        let conn = self.ready().await?;
        let req = Req::Finalize { stmt: stmt.id };
        let r = conn.call(&req).await;
        match r {
            Ok(Resp::Empty) => Ok(()),
            Ok(other) => Err(self.unexpected(&req, &other)),
            Err(e) => {
                if e.is_connection_error() {
                    self.conn = None;
                }
                Err(e)
            }
        }
    }

    /// Begin a transaction (`BEGIN`); the guard rolls it back if dropped without
    /// [`Transaction::commit`]. The guard dereferences to this database, so every query
    /// method works inside it, and [`Database::savepoint`] on it nests a savepoint.
    pub async fn transaction(&mut self) -> Result<Transaction<'_>> {
        self.exec("BEGIN", ()).await?;
        Ok(Transaction {
            db: self,
            savepoint: None,
            ends_tx: true,
            done: false,
        })
    }

    /// Start a savepoint (`SAVEPOINT`): inside a transaction (`tx.savepoint()`, nested as
    /// deep as wanted), or as a transaction of its own. [`Transaction::commit`] releases it,
    /// [`Transaction::rollback`] (or dropping the guard) rolls back to it and releases it.
    pub async fn savepoint(&mut self) -> Result<Transaction<'_>> {
        self.savepoints += 1;
        let name = format!("dqlite_client_sp{}", self.savepoints);
        let ends_tx = !self.in_tx;
        self.exec(&format!("SAVEPOINT {name}"), ()).await?;
        Ok(Transaction {
            db: self,
            savepoint: Some(name),
            ends_tx,
            done: false,
        })
    }

    /// Run one query and return the first value of its first row (e.g. `SELECT count(*)`);
    /// [`Error::NoRows`] when it returns no row.
    pub async fn query_value(&mut self, sql: &str, params: impl Params) -> Result<Value> {
        let row = self.query_row(sql, params).await?;
        row.into_values()
            .into_iter()
            .next()
            .ok_or_else(|| Error::Usage(format!("query returned a row without columns: {sql}")))
    }
}

/// An open transaction or savepoint ([`Database::transaction`], [`Database::savepoint`]).
///
/// It dereferences to the [`Database`], so every query method (`exec`, `query`,
/// `query_row`, `query_as`, `prepare`, ...) runs inside it, and `savepoint()` nests a
/// savepoint. Dropping it without [`Transaction::commit`] or [`Transaction::rollback`] rolls
/// it back before the database's next request.
#[derive(Debug)]
pub struct Transaction<'a> {
    db: &'a mut Database,
    /// The savepoint's name; `None` for BEGIN..COMMIT.
    savepoint: Option<String>,
    /// Whether ending it ends the server's transaction (BEGIN, or an outermost savepoint).
    ends_tx: bool,
    done: bool,
}

impl Transaction<'_> {
    /// The savepoint's name, or `None` for a transaction started with BEGIN.
    pub fn savepoint_name(&self) -> Option<&str> {
        self.savepoint.as_deref()
    }

    /// Commit (COMMIT, or RELEASE of a savepoint). On error a transaction is over either way
    /// on C dqlite (a failed COMMIT rolls back), except for an unknown outcome.
    pub async fn commit(mut self) -> Result<ExecResult> {
        self.done = true;
        let (sql, undo) = match &self.savepoint {
            None => ("COMMIT".to_owned(), vec![("ROLLBACK".to_owned(), true)]),
            Some(name) => (
                format!("RELEASE SAVEPOINT {name}"),
                self.undo_savepoint(name),
            ),
        };
        let r = self.db.exec(&sql, ()).await;
        match &r {
            Ok(_) if self.ends_tx => self.db.in_tx = false,
            Ok(_) => {}
            Err(_) => self.db.pending.extend(undo),
        }
        r
    }

    /// Roll back (ROLLBACK, or ROLLBACK TO and RELEASE of a savepoint).
    pub async fn rollback(mut self) -> Result<()> {
        self.done = true;
        match self.savepoint.clone() {
            None => {
                let r = self.db.exec("ROLLBACK", ()).await.map(|_| ());
                self.db.in_tx = false;
                r
            }
            Some(name) => {
                self.db
                    .exec(&format!("ROLLBACK TO SAVEPOINT {name}"), ())
                    .await?;
                self.db
                    .exec(&format!("RELEASE SAVEPOINT {name}"), ())
                    .await?;
                if self.ends_tx {
                    self.db.in_tx = false;
                }
                Ok(())
            }
        }
    }

    /// The statements that undo savepoint `name`.
    fn undo_savepoint(&self, name: &str) -> Vec<(String, bool)> {
        vec![
            (format!("ROLLBACK TO SAVEPOINT {name}"), false),
            (format!("RELEASE SAVEPOINT {name}"), self.ends_tx),
        ]
    }
}

impl Deref for Transaction<'_> {
    type Target = Database;

    fn deref(&self) -> &Database {
        self.db
    }
}

impl DerefMut for Transaction<'_> {
    fn deref_mut(&mut self) -> &mut Database {
        self.db
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.done {
            let undo = match &self.savepoint {
                None => vec![("ROLLBACK".to_owned(), true)],
                Some(name) => self.undo_savepoint(name),
            };
            self.db.pending.extend(undo);
        }
    }
}
