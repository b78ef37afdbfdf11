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
//! Autocommit writes that queued behind a commit in flight run together as one transaction
//! when it is applied, and share one Raft entry ([`group`]).
//!
//! A worker never waits on a client socket either. Query results go to the gateway through a
//! small bounded channel; when it is full (the client reads slowly or not at all) the query
//! keeps its statement open and the worker serves other jobs meanwhile, nested inside the
//! query (see `Worker::send_query_msg`); the gateway sends [`Job::Wake`] after taking a
//! batch so that the query resumes at once. Nested queries form a stack: an outer query
//! resumes only when the inner ones finished or were abandoned by their clients.

use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dqlite_vfs::{Connection, Database, DatabaseFiles, Frames, Snapshot, Vfs};
use dqlite_wire::{RowsEncoder, RowsEnd, Value};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::oneshot;

use super::spin::Pacer;
use super::statement::{
    TxEnd, first_statement_end, is_blank, touches_connection_state, transaction_end,
};
use super::values::{ColumnKind, to_sql_value, to_wire_value};
mod group;

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

/// A commit a statement captured: still pending (invisible to other connections, holding the
/// write lock) until the FSM applies it or it is aborted.
#[derive(Debug)]
pub struct Capture {
    /// The frames of the commit.
    pub frames: Frames,
    /// What the frames were computed on: the log index of the last Frames entry applied to
    /// the database before (0: none since it was created; `None`: unknown, after restoring
    /// a snapshot of a version that did not record it). See [`Applied::Superseded`].
    pub base: Option<u64>,
    /// Says how the pending commit was settled by something other than its own proposal
    /// (closed without a value if it was aborted or the worker stopped).
    pub settled: oneshot::Receiver<Settled>,
    /// The other statements of a group commit, told its outcome by the proposer.
    pub group: Vec<oneshot::Sender<Result<(), SqlFailure>>>,
}

/// How a pending commit left the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Its own entry was applied: the commit is visible.
    Published,
    /// Another Frames entry was applied first: the commit's own entry, if it is in the log at
    /// all, is skipped when applied (its base is gone), so the commit will never happen.
    Superseded,
    /// A snapshot replaced the database: the commit may or may not be part of it.
    Replaced,
}

/// The pending commit of a connection.
struct PendingCommit {
    conn: ConnId,
    settled: oneshot::Sender<Settled>,
}

/// What applying a Frames entry did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Applied {
    /// The frames are part of the database (or the entry was not a Frames entry).
    #[default]
    Done,
    /// The frames were computed on another state than the database's (their base is not
    /// the last Frames entry applied to it: another leader's entry came first), so every
    /// node skips them alike and the commit they carry is void.
    Superseded,
}

/// A database's committed image and what it was built from, for an FSM snapshot.
#[derive(Debug)]
pub struct Image {
    /// The pages.
    pub snapshot: Snapshot,
    /// The log index of the last Frames entry applied (see [`Capture::base`]).
    pub last_frames: Option<u64>,
}

/// The commit a statement's outcome waits for.
#[derive(Debug)]
pub enum Commit {
    /// The statement made this commit (alone, or leading a group): its caller proposes it
    /// and tells the rest of the group ([`Capture::group`]) how it ended.
    Lead(Capture),
    /// The statement ran in a group commit another statement leads: the outcome of that
    /// commit, from its proposer (closed without a value: unknown).
    Join(oneshot::Receiver<Result<(), SqlFailure>>),
}

/// Result of executing one statement.
#[derive(Debug)]
pub struct Executed {
    /// `sqlite3_last_insert_rowid`.
    pub last_insert_id: i64,
    /// `sqlite3_changes`.
    pub rows_affected: u64,
    /// The commit to replicate (or wait for), if the statement wrote in autocommit mode or
    /// committed a transaction.
    pub commit: Option<Commit>,
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
    Done(Bytes, Option<Capture>),
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
    /// under it); the connection then refuses statements until its client ends the
    /// transaction (see [`Worker::lost`]).
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
        /// `sql` must be exactly one statement (QUERY_SQL): a tail fails the query.
        whole: bool,
        /// Where batches go (bounded: backpressure from the client socket).
        out: tokio::sync::mpsc::Sender<QueryMsg>,
    },
    /// Make committed frames visible (FSM apply).
    Apply {
        /// The frames.
        frames: Frames,
        /// What they were computed on (`None`: not checked, an entry of an older version).
        base: Option<u64>,
        /// The entry's log index.
        index: u64,
        /// Answer.
        reply: oneshot::Sender<Result<Applied, String>>,
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
        reply: oneshot::Sender<Image>,
    },
    /// Replace the database content.
    Restore {
        /// The image.
        image: Image,
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
    pub fn spawn(vfs: Vfs, name: String, spin: Duration) -> std::io::Result<WorkerHandle> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("db-{name}"))
            // Room for MAX_NESTED_QUERIES stalled queries, each a few KiB of stack deep.
            .stack_size(16 << 20)
            .spawn(move || match vfs.open_database(&name) {
                Ok(db) => Worker::new(db, rx, spin).run(),
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
            Job::Apply { reply, .. } => drop(reply.send(Err(msg.to_string()))),
            Job::Restore { reply, .. } => drop(reply.send(Err(msg.to_string()))),
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
    /// The captured commit awaiting apply or abort, if any (the VFS holds its frames).
    pending: Option<PendingCommit>,
    /// The log index of the last Frames entry applied (0: none yet; `None`: unknown, after
    /// restoring a snapshot that did not record it). A commit captured now is based on it.
    last_frames: Option<u64>,
    /// The error of an apply that failed: every later apply is refused with it (the state
    /// machine stops on the first failure; entries already queued behind it must not land).
    apply_failed: Option<String>,
    /// Connections that changed state a group commit would not carry (a PRAGMA, a
    /// temporary object, an attached database): their statements always run alone.
    local_state: HashSet<ConnId>,
    /// The connection group commits run on, made when first needed.
    group_conn: Option<Rc<Connection>>,
    /// Connections whose open transaction the node rolled back (leadership moved, another
    /// leader's commit needed the write lock, a snapshot was installed): every statement
    /// they send is refused with 10506 until the client ends that transaction with ROLLBACK
    /// (or COMMIT, which fails), so nothing it sends afterwards runs outside the transaction
    /// it opened.
    lost: HashSet<ConnId>,
    /// Whether to poll for the next job before sleeping (see [`super::spin`]).
    pacer: Pacer,
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
    fn new(db: Database, rx: mpsc::Receiver<Job>, spin: Duration) -> Self {
        Worker {
            db,
            rx,
            conns: HashMap::new(),
            parked: VecDeque::new(),
            deferred: VecDeque::new(),
            depth: 0,
            cancel_queries: false,
            pending: None,
            last_frames: Some(0),
            apply_failed: None,
            lost: HashSet::new(),
            local_state: HashSet::new(),
            group_conn: None,
            pacer: Pacer::new(spin),
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
                None => match self.next_job() {
                    Ok(Job::Wake) => continue,
                    Ok(job) => Some(job),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                },
            };
            self.serve(job);
        }
    }

    /// The next job: polled for a moment while jobs come quickly, else slept for until the
    /// earliest parked deadline.
    fn next_job(&mut self) -> Result<Job, mpsc::RecvTimeoutError> {
        if let Some(job) = self
            .pacer
            .poll(super::spin::lone_request(), || self.rx.try_recv().ok())
        {
            return Ok(job);
        }
        let started = Instant::now();
        let r = self.rx.recv_timeout(self.next_deadline());
        self.pacer.slept(started.elapsed());
        r
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
                Ok(job) if out.is_closed() => {
                    // The gateway dropped this query (INTERRUPT, or the client went away)
                    // before the job was sent: the job may be that connection's next request,
                    // which must not run inside the abandoned statement's transaction (it
                    // would see the statement's uncommitted writes). Stop first.
                    self.deferred.push_back(job);
                    break Err(Stop::Gone);
                }
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

    /// Retries parked jobs in order; expired ones get SQLITE_BUSY. While a commit is pending
    /// the write lock is taken for sure: only the expired jobs are answered. Once it is free,
    /// the autocommit writes at the head of the queue run as one group commit (see
    /// [`group`]); the rest are tried one by one.
    fn retry_parked(&mut self) {
        let now = Instant::now();
        if self
            .parked
            .iter()
            .any(|j| job_deadline(j).is_some_and(|d| d <= now))
        {
            let (expired, kept) = std::mem::take(&mut self.parked)
                .into_iter()
                .partition(|j| job_deadline(j).is_some_and(|d| d <= now));
            self.parked = kept;
            expired.into_iter().for_each(expire);
        }
        if self.db.has_pending() {
            return;
        }
        let n = self.parked.iter().take_while(|j| self.groupable(j)).count();
        if n >= 2 {
            let jobs: Vec<Job> = self.parked.drain(..n).collect();
            self.run_group(jobs);
            if self.db.has_pending() {
                return;
            }
        }
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
                self.lost.remove(&conn);
                self.local_state.remove(&conn);
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
                    self.lost.insert(conn);
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
            } => match self.exec(conn, &sql, &params) {
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
                whole,
                out,
            } => match self.query(conn, &sql, &params, budget, whole, &out) {
                Err(e) if e.is_busy() && self.lock_may_free(conn) => {
                    return Tried::Busy(Job::Query {
                        conn,
                        sql,
                        params,
                        deadline,
                        budget,
                        whole,
                        out,
                    });
                }
                Err(e) => drop(self.send_query_msg(&out, QueryMsg::Failed(e))),
                Ok(()) => {}
            },
            Job::Apply {
                frames,
                base,
                index,
                reply,
            } => {
                let r = match &self.apply_failed {
                    // Entries are queued ahead of their answers (`DatabaseHandle::queue_apply`):
                    // after a failure, the later ones are refused rather than applied on a
                    // state that lacks the failed one.
                    Some(e) => Err(format!("entry {index} follows a failed apply: {e}")),
                    None => self.apply(&frames, base, index),
                };
                if let Err(e) = &r
                    && self.apply_failed.is_none()
                {
                    self.apply_failed = Some(e.clone());
                }
                let _ = reply.send(r);
            }
            Job::Abort { conn } => self.abort_pending_of(conn),
            Job::Checkpoint => {
                if let Err(e) = self.db.checkpoint() {
                    tracing::warn!(db = %self.db.name(), error = %e, "checkpoint failed");
                }
            }
            Job::Snapshot { reply } => {
                tracing::debug!(db = %self.db.name(), last = self.last_frames, "snapshot image");
                let _ = reply.send(Image {
                    snapshot: self.db.snapshot(),
                    last_frames: self.last_frames,
                });
            }
            Job::Restore { image, reply } => {
                self.void_transactions();
                self.db.abort();
                self.settle(Settled::Replaced);
                let r = self.db.restore(&image.snapshot).map_err(|e| e.to_string());
                if r.is_ok() {
                    tracing::info!(
                        db = %self.db.name(),
                        before = self.last_frames,
                        last = image.last_frames,
                        "restored a snapshot"
                    );
                    self.last_frames = image.last_frames;
                }
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

    /// The one statement of `sql` (QUERY_SQL wants exactly one): the errors PREPARE would
    /// give for an empty text, a first statement that does not compile, or a tail.
    fn only_statement<'a>(c: &Connection, sql: &'a str) -> Result<&'a str, SqlFailure> {
        if is_blank(sql) {
            return Err(SqlFailure::new(0, "empty statement"));
        }
        let end = Self::split(c, sql);
        if !is_blank(&sql[end..]) {
            c.prepare_cached(&sql[..end])
                .map_err(|e| SqlFailure::from_sqlite(c, &e))?;
            return Err(SqlFailure::error("nonempty statement tail"));
        }
        Ok(&sql[..end])
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

    /// For a connection whose transaction the node rolled back: the answer to its statement
    /// `sql` (which is not run), and whether the client has now ended that transaction.
    fn refuse_lost(&mut self, conn: ConnId, sql: &str) -> Option<Result<(), SqlFailure>> {
        if !self.lost.contains(&conn) {
            return None;
        }
        let lost = || {
            SqlFailure::leadership_lost(
                "leadership lost: the open transaction was rolled back (ROLLBACK to go on)",
            )
        };
        Some(match transaction_end(sql) {
            Some(TxEnd::Rollback) => {
                self.lost.remove(&conn);
                Ok(())
            }
            Some(TxEnd::Commit) => {
                self.lost.remove(&conn);
                Err(lost())
            }
            None => Err(lost()),
        })
    }

    /// Takes the commit connection `conn` just captured, if it made one; it stays pending
    /// until applied or aborted.
    fn capture(&mut self, conn: ConnId, c: &Connection) -> Option<Capture> {
        let frames = c.poll()?;
        let (tx, settled) = oneshot::channel();
        self.pending = Some(PendingCommit { conn, settled: tx });
        Some(Capture {
            frames,
            base: self.last_frames,
            settled,
            group: Vec::new(),
        })
    }

    /// Tells the pending commit's proposer, if any, how it was settled.
    fn settle(&mut self, how: Settled) {
        if let Some(p) = self.pending.take() {
            let _ = p.settled.send(how);
        }
    }

    /// Discards the pending commit if it is `conn`'s (its proposal failed or nobody will
    /// propose it).
    fn abort_pending_of(&mut self, conn: ConnId) {
        if self.pending.as_ref().is_some_and(|p| p.conn == conn) {
            self.db.abort();
            self.pending = None;
        }
    }

    fn exec(&mut self, conn: ConnId, sql: &str, params: &[Value]) -> Result<Executed, SqlFailure> {
        let c = self.conn(conn)?;
        let c = &*c;
        let end = Self::split(c, sql);
        let first = &sql[..end];
        let nothing_done = || Executed {
            last_insert_id: c.last_insert_rowid(),
            rows_affected: 0,
            commit: None,
            params_used: 0,
            consumed: end,
        };
        if let Some(r) = self.refuse_lost(conn, first) {
            return r.map(|()| nothing_done());
        }
        if touches_connection_state(first) {
            self.local_state.insert(conn);
        }
        if is_blank(first) {
            return Ok(Executed {
                rows_affected: c.changes(),
                ..nothing_done()
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
                commit: self.capture(conn, c).map(Commit::Lead),
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
        whole: bool,
        out: &tokio::sync::mpsc::Sender<QueryMsg>,
    ) -> Result<(), SqlFailure> {
        let c = self.conn(conn)?;
        let c = &*c;
        let sql = if whole {
            Self::only_statement(c, sql)?
        } else {
            sql
        };
        if touches_connection_state(sql) {
            self.local_state.insert(conn);
        }
        if let Some(r) = self.refuse_lost(conn, sql) {
            // ROLLBACK as a query: an empty result.
            r?;
            let done = RowsEncoder::new(&[] as &[String])
                .and_then(|mut e| e.finish(RowsEnd::Done))
                .map_err(|e| SqlFailure::error(e.to_string()))?;
            return self
                .send_query_msg(out, QueryMsg::Done(done, None))
                .or(Ok(()));
        }
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
                if self.send_query_msg(out, QueryMsg::Batch(batch)).is_err() {
                    // The client went away or interrupted the query, or a restore cancelled
                    // it (the gateway sees the channel close after the batches sent so far):
                    // stop stepping. A write the statement made (`… RETURNING`) commits
                    // when the statement is reset; nobody will propose it, so it is
                    // discarded rather than left holding the write lock.
                    drop(rows);
                    drop(stmt);
                    if c.poll().is_some() {
                        self.db.abort();
                    }
                    return Ok(());
                }
                enc = new_encoder()?;
            }
        }
        drop(rows);
        let last = enc
            .finish(RowsEnd::Done)
            .map_err(|e| SqlFailure::new(1, e.to_string()))?;
        let commit = self.capture(conn, c);
        if self
            .send_query_msg(out, QueryMsg::Done(last, commit))
            .is_err()
        {
            // Nobody will propose this commit: discard it rather than strand the write lock.
            self.abort_pending_of(conn);
        }
        Ok(())
    }

    /// Rolls back every open transaction; their connections refuse statements until their
    /// clients end them (see [`Worker::lost`]).
    fn void_transactions(&mut self) {
        for (id, c) in &self.conns {
            if !c.is_autocommit() {
                let _ = c.execute_batch("ROLLBACK");
                self.lost.insert(*id);
            }
        }
    }

    /// Applies the frames of the Frames entry at `index`, computed on `base`.
    ///
    /// Frames computed on another state than the database's are skipped (every node decides
    /// alike: `base` and `last_frames` follow the log), so a commit built before another
    /// leader's entry was applied can never land on top of it and undo its changes.
    fn apply(&mut self, frames: &Frames, base: Option<u64>, index: u64) -> Result<Applied, String> {
        if let (Some(base), Some(last)) = (base, self.last_frames)
            && base != last
        {
            // Whatever is pending was captured after the entry that moved `last_frames`
            // and is not this one: it stays.
            tracing::info!(
                db = %self.db.name(),
                index,
                base,
                last,
                "skipping a superseded commit"
            );
            return Ok(Applied::Superseded);
        }
        // Whatever was pending is settled by this apply: published if these are its frames,
        // void if another leader's entry won.
        let outcome = match self.db.apply(frames) {
            Ok(o) => o,
            Err(dqlite_vfs::Error::Busy { .. }) => {
                // A local transaction holds the write lock while a commit from elsewhere
                // arrives (leadership changed under it): that transaction is void, as C dqlite
                // closes leader connections in this case.
                self.void_transactions();
                self.db.apply(frames).map_err(|e| e.to_string())?
            }
            Err(e) => return Err(e.to_string()),
        };
        tracing::debug!(
            db = %self.db.name(),
            index,
            base,
            last = self.last_frames,
            discarded_pending = outcome.discarded_pending,
            "applied a commit"
        );
        if outcome.discarded_pending {
            self.settle(Settled::Superseded);
        } else {
            // These frames were the pending commit (published or, should the WAL-index have
            // changed under it, appended alike), or nothing was pending.
            self.settle(Settled::Published);
        }
        self.last_frames = Some(index);
        Ok(Applied::Done)
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
