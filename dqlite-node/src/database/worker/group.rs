//! Group commit: autocommit writes that queued behind a commit in flight run together, once
//! it is applied, as one transaction on a connection of the worker's own, and share one
//! Raft entry. Under load each Raft round then commits every writer that waited for it,
//! instead of one.
//!
//! A statement in a group behaves as it would alone in autocommit mode:
//! - it runs inside a savepoint; if it fails (or yields rows to an EXEC), the savepoint is
//!   rolled back and only that statement fails, as a failing autocommit statement commits
//!   nothing;
//! - a statement whose conflict resolution rolls back the whole transaction (`ON CONFLICT
//!   ROLLBACK`, `RAISE(ROLLBACK)`) fails alone, and the others of its group run again in a
//!   new transaction;
//! - `last_insert_rowid` is its own connection's (set there too), `changes` its own
//!   statement's;
//! - only statements of connections in autocommit mode that changed no connection-local
//!   state (pragmas, temporary objects, attached databases: see
//!   [`touches_connection_state`](crate::database::statement::touches_connection_state))
//!   join a group, and no transaction control or VACUUM: everything else runs alone, in
//!   queue order (a group is only ever the head of the queue).
//!
//! If the group's COMMIT itself fails (a deferred foreign key), the group is rolled back and
//! its statements run again one by one.

use std::rc::Rc;

use dqlite_vfs::Connection;
use dqlite_wire::Value;
use tokio::sync::oneshot;

use super::{Capture, Commit, ConnId, Executed, Job, PendingCommit, Worker, bind_params};
use crate::database::statement::{self, is_blank};
use crate::error::SqlFailure;

/// An EXEC job taken apart.
struct GroupJob {
    conn: ConnId,
    sql: String,
    params: Vec<Value>,
    deadline: std::time::Instant,
    reply: Reply,
}

impl GroupJob {
    fn from_job(job: Job) -> Result<GroupJob, Job> {
        match job {
            Job::Exec {
                conn,
                sql,
                params,
                deadline,
                reply,
            } => Ok(GroupJob {
                conn,
                sql,
                params,
                deadline,
                reply,
            }),
            other => Err(other),
        }
    }

    fn into_job(self) -> Job {
        Job::Exec {
            conn: self.conn,
            sql: self.sql,
            params: self.params,
            deadline: self.deadline,
            reply: self.reply,
        }
    }
}

/// Where an EXEC job's answer goes.
type Reply = oneshot::Sender<Result<Executed, SqlFailure>>;

/// What one statement of a group did.
struct Ran {
    last_insert_id: Option<i64>,
    /// `None` for a statement that is not an INSERT, UPDATE or DELETE: `changes` then keeps
    /// the value of its connection's last one, as it would alone.
    rows_affected: Option<u64>,
    params_used: usize,
    consumed: usize,
}

/// `last_insert_rowid` before each statement: a value no insert returns, so that a change
/// shows whether the statement inserted.
const NO_INSERT: i64 = i64::MIN;

impl Worker {
    /// Whether a parked `job` may join a group commit.
    pub(super) fn groupable(&self, job: &Job) -> bool {
        let Job::Exec { conn, sql, .. } = job else {
            return false;
        };
        !self.lost.contains(conn)
            && !self.local_state.contains(conn)
            && self.conns.get(conn).is_some_and(|c| c.is_autocommit())
            && statement::groupable(sql)
    }

    fn group_conn(&mut self) -> Result<Rc<Connection>, SqlFailure> {
        if let Some(c) = &self.group_conn {
            return Ok(c.clone());
        }
        let c = Rc::new(self.db.connect().map_err(|e| SqlFailure::from_vfs(&e))?);
        c.set_prepared_statement_cache_capacity(128);
        self.group_conn = Some(c.clone());
        Ok(c)
    }

    /// Runs `jobs` (groupable EXEC jobs, oldest first) as one transaction and answers each.
    /// If the write lock cannot be taken, they go back to the head of the queue.
    pub(super) fn run_group(&mut self, jobs: Vec<Job>) {
        let mut todo: Vec<GroupJob> = Vec::with_capacity(jobs.len());
        for job in jobs {
            match GroupJob::from_job(job) {
                Ok(j) => todo.push(j),
                Err(other) => self.parked.push_front(other),
            }
        }
        let g = match self.group_conn() {
            Ok(g) => g,
            Err(f) => {
                for j in todo {
                    let _ = j.reply.send(Err(f.clone()));
                }
                return;
            }
        };
        loop {
            if g.execute_batch("BEGIN IMMEDIATE").is_err() {
                // Someone holds the write lock after all: wait again, in order.
                for j in todo.into_iter().rev() {
                    self.parked.push_front(j.into_job());
                }
                return;
            }
            let mut results = Vec::with_capacity(todo.len());
            let mut culprit = None;
            for (i, j) in todo.iter().enumerate() {
                let r = run_one(&g, &j.sql, &j.params);
                if g.is_autocommit() {
                    // Its conflict resolution rolled the whole transaction back.
                    culprit = Some((i, r));
                    break;
                }
                results.push(r);
            }
            if let Some((i, r)) = culprit {
                let j = todo.remove(i);
                let f = r.err().unwrap_or_else(|| {
                    SqlFailure::error("the statement rolled back its transaction")
                });
                let _ = j.reply.send(Err(f));
                if todo.is_empty() {
                    return;
                }
                continue;
            }
            if let Err(e) = g.execute_batch("COMMIT") {
                tracing::debug!(error = %e, "group COMMIT failed: running its statements alone");
                let _ = g.execute_batch("ROLLBACK");
                let _ = g.poll();
                // Back to the head of the queue: the caller then tries them one at a time.
                for j in todo.into_iter().rev() {
                    self.parked.push_front(j.into_job());
                }
                return;
            }
            self.answer_group(&g, todo, results);
            return;
        }
    }

    /// Answers every statement of a committed group: the first that wrote leads the commit,
    /// the others join it; those that failed get their error.
    fn answer_group(
        &mut self,
        g: &Connection,
        todo: Vec<GroupJob>,
        results: Vec<Result<Ran, SqlFailure>>,
    ) {
        let mut capture = g.poll().map(|frames| {
            let (tx, settled) = oneshot::channel();
            (
                Capture {
                    frames,
                    base: self.last_frames,
                    settled,
                    group: Vec::new(),
                },
                tx,
            )
        });
        let mut lead: Option<(ConnId, Reply, Executed)> = None;
        for (j, r) in todo.into_iter().zip(results) {
            let ran = match r {
                Ok(ran) => ran,
                Err(f) => {
                    let _ = j.reply.send(Err(f));
                    continue;
                }
            };
            let own = self.conns.get(&j.conn).cloned();
            let last_insert_id = match (ran.last_insert_id, &own) {
                (Some(id), Some(c)) => {
                    c.set_last_insert_rowid(id);
                    id
                }
                (Some(id), None) => id,
                (None, Some(c)) => c.last_insert_rowid(),
                (None, None) => 0,
            };
            let rows_affected = ran
                .rows_affected
                .unwrap_or_else(|| own.as_ref().map_or(0, |c| c.changes()));
            let mut e = Executed {
                last_insert_id,
                rows_affected,
                commit: None,
                params_used: ran.params_used,
                consumed: ran.consumed,
            };
            match &mut capture {
                None => {
                    let _ = j.reply.send(Ok(e));
                }
                Some((c, _)) if lead.is_some() => {
                    let (tx, rx) = oneshot::channel();
                    c.group.push(tx);
                    e.commit = Some(Commit::Join(rx));
                    let _ = j.reply.send(Ok(e));
                }
                Some(_) => lead = Some((j.conn, j.reply, e)),
            }
        }
        match (capture, lead) {
            (Some((c, settled)), Some((conn, reply, mut e))) => {
                self.pending = Some(PendingCommit { conn, settled });
                e.commit = Some(Commit::Lead(c));
                let _ = reply.send(Ok(e));
            }
            (Some(_), None) => {
                // Every statement failed, yet something was written: never strand it.
                self.db.abort();
            }
            (None, Some((_, reply, e))) => {
                let _ = reply.send(Ok(e));
            }
            (None, None) => {}
        }
    }
}

/// Runs the first statement of `sql` on the group connection inside a savepoint of its own,
/// which is rolled back if it fails.
fn run_one(g: &Connection, sql: &str, params: &[Value]) -> Result<Ran, SqlFailure> {
    let end = Worker::split(g, sql);
    let first = &sql[..end];
    if is_blank(first) {
        return Ok(Ran {
            last_insert_id: None,
            rows_affected: None,
            params_used: 0,
            consumed: end,
        });
    }
    g.execute_batch("SAVEPOINT dqlite_group")
        .map_err(|e| SqlFailure::from_sqlite(g, &e))?;
    g.set_last_insert_rowid(NO_INSERT);
    let r = (|| {
        let mut stmt = g
            .prepare_cached(first)
            .map_err(|e| SqlFailure::from_sqlite(g, &e))?;
        let used = bind_params(&mut stmt, params)?;
        let mut rows = stmt.raw_query();
        let step = rows.next().map(|r| r.is_some());
        drop(rows);
        match step {
            Err(e) => Err(SqlFailure::from_sqlite(g, &e)),
            Ok(true) => Err(SqlFailure::error(
                "rows yielded when none expected for EXEC request",
            )),
            Ok(false) => Ok(used),
        }
    })();
    if g.is_autocommit() {
        return r.map(|_| Ran {
            last_insert_id: None,
            rows_affected: None,
            params_used: 0,
            consumed: end,
        });
    }
    match r {
        Ok(used) => {
            let inserted = g.last_insert_rowid();
            let rows_affected = statement::is_dml(first).then(|| g.changes());
            g.execute_batch("RELEASE dqlite_group")
                .map_err(|e| SqlFailure::from_sqlite(g, &e))?;
            Ok(Ran {
                last_insert_id: (inserted != NO_INSERT).then_some(inserted),
                rows_affected,
                params_used: used,
                consumed: end,
            })
        }
        Err(f) => {
            let _ = g.execute_batch("ROLLBACK TO dqlite_group; RELEASE dqlite_group");
            Err(f)
        }
    }
}
