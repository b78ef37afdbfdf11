//! Database workers: one thread per open database, owning every SQLite connection of it.
//!
//! The VFS ties a database to one thread (its handles are `!Send`), so the rest of the node
//! talks to a worker through a channel of [`Job`]s (wrapped by
//! [`DatabaseHandle`](super::DatabaseHandle)) and gets answers on oneshot channels. A worker
//! never waits for Raft: after a write it hands the captured frames back to the commit
//! pipeline, which proposes them; the FSM later sends the same frames as [`Job::Apply`],
//! which publishes the pending commit (leader) or appends them (follower).
//!
//! Writers are queued instead of failing with SQLITE_BUSY: a job whose statement hits the
//! write lock (held by a pending commit or another connection's open transaction) is parked
//! and retried whenever something that may release the lock happened, until its deadline.
//!
//! A worker never waits on a client socket either. Query results go to the gateway through a
//! small bounded channel; when it is full (the client reads slowly or not at all) the query
//! keeps its statement open and the worker serves other jobs meanwhile, nested inside the
//! query (see `Worker::send_query_msg`); the gateway sends [`Job::Wake`] after taking a
//! batch so that the query resumes at once. Nested queries form a stack: an outer query
//! resumes only when the inner ones finished or were abandoned by their clients.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dqlite_vfs::{Connection, Database, DatabaseFiles, Frames, Snapshot, Vfs};
use dqlite_wire::{RowsEncoder, RowsEnd, Value};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::oneshot;

use super::statement::{first_statement_end, is_blank};
use super::values::{ColumnKind, to_sql_value, to_wire_value};
use crate::error::SqlFailure;

/// A gateway connection's id on a worker.
pub type ConnId = u64;

/// What PREPARE learned about the first statement of a text.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Text of the first statement.
    pub sql: String,
    /// Number of parameters.
    pub num_params: u64,
    /// Bytes of the text the statement used.
    pub offset: usize,
    /// True if anything but whitespace and comments follows it.
    pub has_tail: bool,
}

/// Result of executing one statement.
#[derive(Debug)]
pub struct Executed {
    /// `sqlite3_last_insert_rowid`.
    pub last_insert_id: i64,
    /// `sqlite3_changes`.
    pub rows_affected: u64,
    /// The commit to replicate, if the statement committed a write transaction.
    pub frames: Option<Frames>,
    /// Parameters the statement consumed.
    pub params_used: usize,
    /// Bytes of the SQL text the statement used (for multi-statement texts).
    pub consumed: usize,
}

/// Messages of a streaming query, in order: any number of `Batch`, then one `Done` or
/// `Failed`.
#[derive(Debug)]
pub enum QueryMsg {
    /// A whole PART batch, ready to write (header included).
    Batch(Bytes),
    /// The last (DONE) batch, and the commit to replicate before sending it, if the statement
    /// wrote (`INSERT … RETURNING`).
    Done(Bytes, Option<Frames>),
    /// The query failed.
    Failed(SqlFailure),
}

/// Work for a database worker.
pub enum Job {
    /// Open a connection for gateway connection `conn`.
    Connect {
        /// Connection id.
        conn: ConnId,
        /// Answer.
        reply: oneshot::Sender<Result<(), SqlFailure>>,
    },
    /// Close connection `conn` (rolls back its open transaction).
    Disconnect {
        /// Connection id.
        conn: ConnId,
    },
    /// Roll back the open transaction of connection `conn`, if any (leadership was lost
    /// under it).
    Rollback {
        /// Connection id.
        conn: ConnId,
        /// Answer: whether there was a transaction to roll back.
        reply: oneshot::Sender<bool>,
    },
    /// Prepare the first statement of `sql`.
    Prepare {
        /// Connection id.
        conn: ConnId,
        /// SQL text.
        sql: String,
        /// Answer.
        reply: oneshot::Sender<Result<Prepared, SqlFailure>>,
    },
    /// Execute the first statement of `sql` with (a prefix of) `params`.
    Exec {
        /// Connection id.
        conn: ConnId,
        /// SQL text.
        sql: String,
        /// Parameters.
        params: Vec<Value>,
        /// Give up waiting for the write lock at this instant.
        deadline: Instant,
        /// Answer.
        reply: oneshot::Sender<Result<Executed, SqlFailure>>,
    },
    /// Run a query, streaming ROWS batches.
    Query {
        /// Connection id.
        conn: ConnId,
        /// SQL text (one statement).
        sql: String,
        /// Parameters.
        params: Vec<Value>,
        /// Give up waiting for the write lock at this instant.
        deadline: Instant,
        /// Batch byte budget (C: 4096 with the header).
        budget: Option<usize>,
        /// Where batches go (bounded: backpressure from the client socket).
        out: tokio::sync::mpsc::Sender<QueryMsg>,
    },
    /// Make committed frames visible (FSM apply).
    Apply {
        /// The frames.
        frames: Frames,
        /// Answer.
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Discard the pending commit of connection `conn` (its proposal failed). Ignored if the
    /// pending commit is gone (applied meanwhile, because the entry committed after all) or
    /// belongs to another connection.
    Abort {
        /// Connection whose commit to discard.
        conn: ConnId,
    },
    /// Fold the WAL into the main file.
    Checkpoint,
    /// Consistent image of the committed database.
    Snapshot {
        /// Answer.
        reply: oneshot::Sender<Snapshot>,
    },
    /// Replace the database content.
    Restore {
        /// The image.
        snapshot: Snapshot,
        /// Answer.
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Main file and WAL images (DUMP).
    Dump {
        /// Answer.
        reply: oneshot::Sender<DatabaseFiles>,
    },
    /// A query's gateway took a batch: its channel has room again. Does nothing else.
    Wake,
}

/// The sending side of a worker.
#[derive(Clone, Debug)]
pub struct WorkerHandle {
    tx: mpsc::Sender<Job>,
}

impl WorkerHandle {
    /// Starts the worker thread for database `name` of `vfs`.
    pub fn spawn(vfs: Vfs, name: String) -> std::io::Result<WorkerHandle> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("db-{name}"))
            // Room for MAX_NESTED_QUERIES stalled queries, each a few KiB of stack deep.
            .stack_size(16 << 20)
            .spawn(move || match vfs.open_database(&name) {
                Ok(db) => Worker::new(db, rx).run(),
                Err(e) => {
                    tracing::error!(db = %name, error = %e, "cannot open database");
                    fail_all(rx, &e.to_string());
                }
            })?;
        Ok(WorkerHandle { tx })
    }

    /// Queues a job. False if the worker is gone.
    pub fn send(&self, job: Job) -> bool {
        self.tx.send(job).is_ok()
    }
}

/// Answers every job with an error (the database could not be opened).
fn fail_all(rx: mpsc::Receiver<Job>, msg: &str) {
    let f = || SqlFailure::new(1, msg.to_string());
    for job in rx {
        match job {
            Job::Connect { reply, .. } => drop(reply.send(Err(f()))),
            Job::Prepare { reply, .. } => drop(reply.send(Err(f()))),
            Job::Exec { reply, .. } => drop(reply.send(Err(f()))),
            Job::Query { out, .. } => drop(out.blocking_send(QueryMsg::Failed(f()))),
            Job::Apply { reply, .. } | Job::Restore { reply, .. } => {
                drop(reply.send(Err(msg.to_string())))
            }
            _ => {}
        }
    }
}

/// Most queries at once that may wait for their clients nested inside one another (see
/// [`Worker::send_query_msg`]); further queries wait until the stack unwinds.
const MAX_NESTED_QUERIES: usize = 64;

/// The longest a query waiting for its client sleeps before re-checking its channel and the
/// deadlines of parked jobs (normally a [`Job::Wake`] comes first).
const NESTED_POLL: Duration = Duration::from_millis(50);

/// Owns one database and all its connections; runs on its own thread.
///
/// Invariants: `depth` is the number of queries currently suspended in
/// [`Worker::send_query_msg`] on this thread's stack; jobs that must not run under an open
/// statement (restore, checkpoint) or that would nest too deep wait in `deferred` until
/// `depth` is back to 0; `cancel_queries` is set only while `depth > 0` and makes every
/// suspended query give up, so that a deferred restore runs soon.
struct Worker {
    db: Database,
    rx: mpsc::Receiver<Job>,
    /// Shared with suspended queries, which keep using a connection that a nested job removed.
    conns: HashMap<ConnId, Rc<Connection>>,
    /// Jobs waiting for the write lock, oldest first.
    parked: VecDeque<Job>,
    /// Jobs put off until no query is suspended, oldest first.
    deferred: VecDeque<Job>,
    /// Queries suspended on this thread's stack.
    depth: usize,
    /// Suspended queries must stop (a snapshot is waiting to be installed).
    cancel_queries: bool,
    /// The connection whose captured commit is pending (awaiting apply or abort).
    pending_conn: std::cell::Cell<Option<ConnId>>,
}

/// Why a query stopped sending.
enum Stop {
    /// The gateway dropped its receiver (client gone) or the node is stopping.
    Gone,
    /// A restore needs the database: the query is abandoned.
    Cancelled,
}

/// Outcome of trying a job.
enum Tried {
    Done,
    /// Hit the write lock: try again later.
    Busy(Job),
}

impl Worker {
    fn new(db: Database, rx: mpsc::Receiver<Job>) -> Self {
        Worker {
            db,
            rx,
            conns: HashMap::new(),
            parked: VecDeque::new(),
            deferred: VecDeque::new(),
            depth: 0,
            cancel_queries: false,
            pending_conn: std::cell::Cell::new(None),
        }
    }

    /// Time until the earliest parked job's deadline.
    fn next_deadline(&self) -> Duration {
        self.parked
            .iter()
            .filter_map(job_deadline)
            .min()
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(3600))
    }

    fn run(mut self) {
        loop {
            self.cancel_queries = false;
            let job = match self.deferred.pop_front() {
                Some(job) => Some(job),
                None => match self.rx.recv_timeout(self.next_deadline()) {
                    Ok(Job::Wake) => continue,
                    Ok(job) => Some(job),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                },
            };
            self.serve(job);
        }
    }

    /// Tries `job` (if any), parks it if it hit the write lock, then retries parked jobs.
    fn serve(&mut self, job: Option<Job>) {
        if let Some(job) = job
            && let Tried::Busy(job) = self.try_job(job)
        {
            self.parked.push_back(job);
        }
        self.retry_parked();
    }

    /// Hands a query message to the gateway without ever blocking on it: while the channel is
    /// full, serves other jobs (nested: this query's statement stays open meanwhile).
    fn send_query_msg(
        &mut self,
        out: &tokio::sync::mpsc::Sender<QueryMsg>,
        mut msg: QueryMsg,
    ) -> Result<(), Stop> {
        self.depth += 1;
        let r = loop {
            match out.try_send(msg) {
                Ok(()) => break Ok(()),
                Err(TrySendError::Closed(_)) => break Err(Stop::Gone),
                Err(TrySendError::Full(m)) => msg = m,
            }
            if self.cancel_queries {
                break Err(Stop::Cancelled);
            }
            match self.rx.recv_timeout(self.next_deadline().min(NESTED_POLL)) {
                Ok(Job::Wake) => {}
                Ok(job @ (Job::Restore { .. } | Job::Checkpoint)) => {
                    // Neither may run under an open statement; a restore must not wait for
                    // a client that may never read, so the suspended queries give up.
                    self.cancel_queries |= matches!(job, Job::Restore { .. });
                    self.deferred.push_back(job);
                }
                Ok(job @ Job::Query { .. })
                    if self.depth >= MAX_NESTED_QUERIES || self.cancel_queries =>
                {
                    self.deferred.push_back(job);
                }
                Ok(job) => self.serve(Some(job)),
                Err(mpsc::RecvTimeoutError::Timeout) => self.retry_parked(),
                Err(mpsc::RecvTimeoutError::Disconnected) => break Err(Stop::Gone),
            }
        };
        self.depth -= 1;
        r
    }

    /// Retries parked jobs in order; expired ones get SQLITE_BUSY.
    fn retry_parked(&mut self) {
        let n = self.parked.len();
        for _ in 0..n {
            let Some(job) = self.parked.pop_front() else {
                break;
            };
            if job_deadline(&job).is_some_and(|d| d <= Instant::now()) {
                expire(job);
                continue;
            }
            match self.try_job(job) {
                Tried::Done => {}
                Tried::Busy(job) => self.parked.push_back(job),
            }
        }
    }

    fn try_job(&mut self, job: Job) -> Tried {
        match job {
            Job::Connect { conn, reply } => {
                let r = self
                    .db
                    .connect()
                    .map_err(|e| SqlFailure::from_vfs(&e))
                    .map(|c| {
                        c.set_prepared_statement_cache_capacity(64);
                        self.conns.insert(conn, Rc::new(c));
                    });
                let _ = reply.send(r);
            }
            Job::Disconnect { conn } => {
                if let Some(c) = self.conns.remove(&conn)
                    && !c.is_autocommit()
                {
                    let _ = c.execute_batch("ROLLBACK");
                }
            }
            Job::Wake => {}
            Job::Rollback { conn, reply } => {
                let open = self.conns.get(&conn).is_some_and(|c| !c.is_autocommit());
                if let Some(c) = self.conns.get(&conn)
                    && open
                {
                    let _ = c.execute_batch("ROLLBACK");
                }
                let _ = reply.send(open);
            }
            Job::Prepare { conn, sql, reply } => {
                let r = self.prepare(conn, &sql);
                let _ = reply.send(r);
            }
            Job::Exec {
                conn,
                sql,
                params,
                deadline,
                reply,
            } => match self.exec(conn, &sql, &params).inspect(|e| {
                if e.frames.is_some() {
                    self.pending_conn.set(Some(conn));
                }
            }) {
                Err(e) if e.is_busy() && self.lock_may_free(conn) => {
                    return Tried::Busy(Job::Exec {
                        conn,
                        sql,
                        params,
                        deadline,
                        reply,
                    });
                }
                r => drop(reply.send(r)),
            },
            Job::Query {
                conn,
                sql,
                params,
                deadline,
                budget,
                out,
            } => match self.query(conn, &sql, &params, budget, &out) {
                Err(e) if e.is_busy() && self.lock_may_free(conn) => {
                    return Tried::Busy(Job::Query {
                        conn,
                        sql,
                        params,
                        deadline,
                        budget,
                        out,
                    });
                }
                Err(e) => drop(self.send_query_msg(&out, QueryMsg::Failed(e))),
                Ok(()) => {}
            },
            Job::Apply { frames, reply } => {
                let r = self.apply(&frames);
                let _ = reply.send(r);
            }
            Job::Abort { conn } => {
                if self.pending_conn.get() == Some(conn) {
                    self.db.abort();
                    self.pending_conn.set(None);
                }
            }
            Job::Checkpoint => {
                if let Err(e) = self.db.checkpoint() {
                    tracing::warn!(db = %self.db.name(), error = %e, "checkpoint failed");
                }
            }
            Job::Snapshot { reply } => {
                let _ = reply.send(self.db.snapshot());
            }
            Job::Restore { snapshot, reply } => {
                self.rollback_all();
                self.db.abort();
                self.pending_conn.set(None);
                let r = self.db.restore(&snapshot).map_err(|e| e.to_string());
                let _ = reply.send(r);
            }
            Job::Dump { reply } => {
                let _ = reply.send(self.db.files());
            }
        }
        Tried::Done
    }

    /// Whether waiting can help a job of `conn` that hit the write lock: someone else holds
    /// it (a pending commit or another connection's transaction).
    fn lock_may_free(&self, conn: ConnId) -> bool {
        self.db.has_pending()
            || self
                .conns
                .iter()
                .any(|(id, c)| *id != conn && !c.is_autocommit())
    }

    fn conn(&self, conn: ConnId) -> Result<Rc<Connection>, SqlFailure> {
        self.conns
            .get(&conn)
            .cloned()
            .ok_or_else(|| SqlFailure::new(12, "no database opened"))
    }

    /// Where the first statement of `sql` ends.
    fn split(c: &Connection, sql: &str) -> usize {
        first_statement_end(sql, |prefix| match c.prepare(prefix) {
            Ok(_) => true,
            Err(e) => !e.to_string().contains("incomplete input"),
        })
    }

    fn prepare(&self, conn: ConnId, sql: &str) -> Result<Prepared, SqlFailure> {
        let c = self.conn(conn)?;
        if is_blank(sql) {
            return Err(SqlFailure::new(0, "empty statement"));
        }
        let end = Self::split(&c, sql);
        let first = &sql[..end];
        let stmt = c
            .prepare(first)
            .map_err(|e| SqlFailure::from_sqlite(&c, &e))?;
        Ok(Prepared {
            sql: first.to_string(),
            num_params: stmt.parameter_count() as u64,
            offset: end,
            has_tail: !is_blank(&sql[end..]),
        })
    }

    fn exec(&self, conn: ConnId, sql: &str, params: &[Value]) -> Result<Executed, SqlFailure> {
        let c = self.conn(conn)?;
        let c = &*c;
        let end = Self::split(c, sql);
        let first = &sql[..end];
        if is_blank(first) {
            return Ok(Executed {
                last_insert_id: c.last_insert_rowid(),
                rows_affected: c.changes(),
                frames: None,
                params_used: 0,
                consumed: end,
            });
        }
        let mut stmt = c
            .prepare_cached(first)
            .map_err(|e| SqlFailure::from_sqlite(c, &e))?;
        let used = bind_params(&mut stmt, params)?;
        let mut rows = stmt.raw_query();
        let step = rows.next().map(|r| r.is_some());
        drop(rows);
        match step {
            Err(e) => {
                let f = SqlFailure::from_sqlite(c, &e);
                // A failing statement commits nothing; never strand a captured commit.
                if c.poll().is_some() {
                    self.db.abort();
                }
                Err(f)
            }
            Ok(true) => {
                if c.poll().is_some() {
                    // Cannot happen for a statement still yielding rows, but never strand a
                    // commit.
                    self.db.abort();
                }
                Err(SqlFailure::new(
                    1,
                    "rows yielded when none expected for EXEC request",
                ))
            }
            Ok(false) => Ok(Executed {
                last_insert_id: c.last_insert_rowid(),
                rows_affected: c.changes(),
                frames: c.poll(),
                params_used: used,
                consumed: end,
            }),
        }
    }

    fn query(
        &mut self,
        conn: ConnId,
        sql: &str,
        params: &[Value],
        budget: Option<usize>,
        out: &tokio::sync::mpsc::Sender<QueryMsg>,
    ) -> Result<(), SqlFailure> {
        let c = self.conn(conn)?;
        let c = &*c;
        let mut stmt = c
            .prepare_cached(sql)
            .map_err(|e| SqlFailure::from_sqlite(c, &e))?;
        bind_params(&mut stmt, params)?;
        let names: Vec<String> = stmt.column_names().map(str::to_string).collect();
        let kinds: Vec<ColumnKind> = stmt
            .columns()
            .map(|col| ColumnKind::from_decltype(col.decl_type()))
            .collect();
        let new_encoder = || -> Result<RowsEncoder, SqlFailure> {
            let e = RowsEncoder::new(&names).map_err(|e| SqlFailure::new(1, e.to_string()))?;
            Ok(match budget {
                Some(b) => e.with_budget(b),
                None => e,
            })
        };
        let mut enc = new_encoder()?;
        let mut rows = stmt.raw_query();
        let mut row_buf: Vec<Value> = Vec::with_capacity(names.len());
        loop {
            let row = match rows.next() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    let f = SqlFailure::from_sqlite(c, &e);
                    drop(rows);
                    if c.poll().is_some() {
                        self.db.abort();
                    }
                    return Err(f);
                }
            };
            row_buf.clear();
            for (i, kind) in kinds.iter().enumerate() {
                let v = row
                    .get_ref(i)
                    .map_err(|e| SqlFailure::new(1, e.to_string()))?;
                row_buf.push(to_wire_value(v, *kind));
            }
            enc.push_row(&row_buf)
                .map_err(|e| SqlFailure::new(1, e.to_string()))?;
            if enc.is_full() {
                let batch = enc
                    .finish(RowsEnd::Part)
                    .map_err(|e| SqlFailure::new(1, e.to_string()))?;
                match self.send_query_msg(out, QueryMsg::Batch(batch)) {
                    Ok(()) => {}
                    // The client went away: stop stepping.
                    Err(Stop::Gone) => return Ok(()),
                    // The gateway sees the channel close after the batches sent so far.
                    Err(Stop::Cancelled) => return Ok(()),
                }
                enc = new_encoder()?;
            }
        }
        drop(rows);
        let last = enc
            .finish(RowsEnd::Done)
            .map_err(|e| SqlFailure::new(1, e.to_string()))?;
        let frames = c.poll();
        if frames.is_some() {
            self.pending_conn.set(Some(conn));
        }
        if let Err(stop) = self.send_query_msg(out, QueryMsg::Done(last, frames))
            && self.pending_conn.get() == Some(conn)
        {
            // Nobody will propose this commit: discard it rather than strand the write lock.
            let _ = stop;
            self.db.abort();
            self.pending_conn.set(None);
        }
        Ok(())
    }

    fn rollback_all(&mut self) {
        for c in self.conns.values() {
            if !c.is_autocommit() {
                let _ = c.execute_batch("ROLLBACK");
            }
        }
    }

    fn apply(&mut self, frames: &Frames) -> Result<(), String> {
        // Whatever was pending is settled by this apply: published if these are its frames,
        // discarded if another leader's entry won.
        self.pending_conn.set(None);
        match self.db.apply(frames) {
            Ok(_) => Ok(()),
            Err(dqlite_vfs::Error::Busy { .. }) => {
                // A local transaction holds the write lock while a commit from elsewhere
                // arrives (leadership changed under it): that transaction is void, as C dqlite
                // closes leader connections in this case.
                self.rollback_all();
                self.db.apply(frames).map(|_| ()).map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

fn job_deadline(job: &Job) -> Option<Instant> {
    match job {
        Job::Exec { deadline, .. } | Job::Query { deadline, .. } => Some(*deadline),
        _ => None,
    }
}

fn expire(job: Job) {
    let busy = || SqlFailure::new(5, "database is locked");
    match job {
        Job::Exec { reply, .. } => drop(reply.send(Err(busy()))),
        Job::Query { out, .. } => drop(out.blocking_send(QueryMsg::Failed(busy()))),
        _ => {}
    }
}

/// Binds as many leading `params` as the statement has placeholders (extra values are ignored,
/// as C dqlite >= 1.18.2 does) after clearing earlier bindings; returns how many were bound.
fn bind_params(
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: &[Value],
) -> Result<usize, SqlFailure> {
    stmt.clear_bindings();
    let used = params.len().min(stmt.parameter_count());
    for (i, v) in params[..used].iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, to_sql_value(v))
            .map_err(|_| SqlFailure::new(1, "bind parameters"))?;
    }
    Ok(used)
}
