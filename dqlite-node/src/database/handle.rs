//! [`DatabaseHandle`]: the one async API through which the node uses a database. Every call
//! becomes a [`Job`] on the database's worker thread and an answer on a oneshot channel; no
//! other module sees a `Job`. While the node serves a lone request, its caller polls for
//! the answer for a moment before it sleeps ([`spin`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dqlite_vfs::{DatabaseFiles, Frames, Vfs};
use dqlite_wire::Value;
use tokio::sync::{mpsc, oneshot};

use crate::error::SqlFailure;

use super::spin;
use super::worker::{Applied, ConnId, Executed, Image, Job, Prepared, QueryMsg, WorkerHandle};

/// The answer to frames queued with [`DatabaseHandle::queue_apply`].
#[derive(Debug)]
pub(crate) struct QueuedApply {
    name: Arc<str>,
    /// `None`: the worker was gone when the frames were queued.
    rx: Option<oneshot::Receiver<Result<Applied, String>>>,
}

impl QueuedApply {
    /// Waits until the worker applied (or refused) the frames.
    pub async fn outcome(self) -> Result<Applied, String> {
        let gone = || format!("worker of {:?} is gone", self.name);
        let rx = self.rx.ok_or_else(gone)?;
        rx.await
            .map_err(|_| gone())?
            .map_err(|e| format!("applying frames to {:?}: {e}", self.name))
    }
}

/// A database of this node, served by its worker thread. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct DatabaseHandle {
    name: Arc<str>,
    worker: WorkerHandle,
    /// How long a lone caller polls for the worker's answer before sleeping (see [`spin`]).
    spin: Duration,
}

fn stopped() -> SqlFailure {
    SqlFailure::new(1, "database worker stopped")
}

impl DatabaseHandle {
    /// Starts the worker of database `name` of `vfs`; it and its callers poll for up to
    /// `spin` before sleeping (see [`spin`]).
    pub fn spawn(vfs: Vfs, name: &str, spin: Duration) -> std::io::Result<DatabaseHandle> {
        Ok(DatabaseHandle {
            name: name.into(),
            worker: WorkerHandle::spawn(vfs, name.to_string(), spin)?,
            spin,
        })
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs a job for a client request and waits for its answer (polling first, see
    /// [`spin`]).
    async fn request<T>(&self, job: impl FnOnce(oneshot::Sender<T>) -> Job) -> Option<T> {
        let (tx, mut rx) = oneshot::channel();
        if !self.worker.send(job(tx)) {
            return None;
        }
        let polled = spin::poll_lone(self.spin, || match rx.try_recv() {
            Ok(v) => Some(Some(v)),
            Err(oneshot::error::TryRecvError::Closed) => Some(None),
            Err(oneshot::error::TryRecvError::Empty) => None,
        });
        match polled {
            Some(answer) => answer,
            None => rx.await.ok(),
        }
    }

    /// Runs a job for the node itself (applying entries, snapshots) and waits for its answer
    /// without polling: no client waits on it directly, and followers would poll on every
    /// entry they apply.
    async fn call<T>(&self, job: impl FnOnce(oneshot::Sender<T>) -> Job) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        if !self.worker.send(job(tx)) {
            return None;
        }
        rx.await.ok()
    }

    /// Opens a SQLite connection for client connection `conn`.
    pub async fn connect(&self, conn: ConnId) -> Result<(), SqlFailure> {
        self.request(|reply| Job::Connect { conn, reply })
            .await
            .ok_or_else(stopped)?
    }

    /// Closes the connection of `conn`, rolling back its open transaction.
    pub fn disconnect(&self, conn: ConnId) {
        self.worker.send(Job::Disconnect { conn });
    }

    /// Rolls back the open transaction of `conn`; true if there was one.
    pub async fn rollback(&self, conn: ConnId) -> bool {
        self.request(|reply| Job::Rollback { conn, reply })
            .await
            .unwrap_or(false)
    }

    /// Prepares the first statement of `sql` (to learn its parameters and extent).
    pub async fn prepare(&self, conn: ConnId, sql: String) -> Result<Prepared, SqlFailure> {
        self.request(|reply| Job::Prepare { conn, sql, reply })
            .await
            .ok_or_else(stopped)?
    }

    /// Executes the first statement of `sql`, waiting for the write lock until `deadline`.
    /// A commit it captured comes back in [`Executed::commit`], still pending: the caller
    /// replicates it (see [`super::pipeline`]) or aborts it.
    pub async fn exec(
        &self,
        conn: ConnId,
        sql: String,
        params: Vec<Value>,
        deadline: Instant,
    ) -> Result<Executed, SqlFailure> {
        self.request(|reply| Job::Exec {
            conn,
            sql,
            params,
            deadline,
            reply,
        })
        .await
        .ok_or_else(stopped)?
    }

    /// Runs a query; its ROWS batches arrive on the returned stream. With `whole`, `sql`
    /// must be exactly one statement (QUERY_SQL), else the query fails as PREPARE would.
    pub fn query(
        &self,
        conn: ConnId,
        sql: String,
        params: Vec<Value>,
        deadline: Instant,
        whole: bool,
    ) -> QueryStream {
        let (out, rx) = mpsc::channel(2);
        self.worker.send(Job::Query {
            conn,
            sql,
            params,
            deadline,
            budget: None,
            whole,
            out,
        });
        QueryStream {
            rx,
            worker: self.worker.clone(),
            conn,
            spin: self.spin,
        }
    }

    /// Discards the pending commit of `conn` (its proposal failed), if it is still pending.
    pub fn abort(&self, conn: ConnId) {
        self.worker.send(Job::Abort { conn });
    }

    /// Main file and WAL images (DUMP).
    pub async fn dump(&self) -> Result<DatabaseFiles, SqlFailure> {
        self.request(|reply| Job::Dump { reply })
            .await
            .ok_or_else(stopped)
    }

    /// Makes the committed frames of the entry at log index `index`, computed on `base`,
    /// visible, or skips them if the database has moved on from `base` (the FSM applying an
    /// entry).
    pub async fn apply(
        &self,
        frames: Frames,
        base: Option<u64>,
        index: u64,
    ) -> Result<Applied, String> {
        self.queue_apply(frames, base, index).outcome().await
    }

    /// Queues the frames of entry `index` on the worker without waiting for them: the caller
    /// queues the frames of several entries, then waits for each [`QueuedApply`] in log
    /// order, so that the worker applies one entry while the next is decoded. The worker
    /// applies them in the order they were queued.
    pub fn queue_apply(&self, frames: Frames, base: Option<u64>, index: u64) -> QueuedApply {
        let (reply, rx) = oneshot::channel();
        let sent = self.worker.send(Job::Apply {
            frames,
            base,
            index,
            reply,
        });
        QueuedApply {
            name: self.name.clone(),
            rx: sent.then_some(rx),
        }
    }

    /// Folds the WAL into the main file (when nobody reads).
    pub fn checkpoint(&self) {
        self.worker.send(Job::Checkpoint);
    }

    /// A consistent image of the committed database.
    pub async fn snapshot(&self) -> Result<Image, String> {
        self.call(|reply| Job::Snapshot { reply })
            .await
            .ok_or_else(|| format!("worker of {:?} is gone", self.name()))
    }

    /// Replaces the database content (installing a Raft snapshot).
    pub async fn restore(&self, image: Image) -> Result<(), String> {
        self.call(|reply| Job::Restore { image, reply })
            .await
            .ok_or_else(|| format!("worker of {:?} is gone", self.name()))?
            .map_err(|e| format!("restoring {:?}: {e}", self.name()))
    }
}

/// The ROWS batches of one query, in order. Dropped before its last message (the client
/// interrupted the query or went away), it discards a commit the query made: nobody will
/// propose it.
pub(crate) struct QueryStream {
    rx: mpsc::Receiver<QueryMsg>,
    worker: WorkerHandle,
    conn: ConnId,
    spin: Duration,
}

impl Drop for QueryStream {
    fn drop(&mut self) {
        // From now on the worker's sends fail, and it discards the commit itself; one it
        // queued already is discarded here.
        self.rx.close();
        while let Ok(msg) = self.rx.try_recv() {
            if let QueryMsg::Done(_, Some(_)) = msg {
                self.worker.send(Job::Abort { conn: self.conn });
            }
        }
    }
}

impl QueryStream {
    /// The next message; `None` if the worker abandoned the query (a snapshot install needed
    /// the database, or the node is stopping).
    pub async fn next(&mut self) -> Option<QueryMsg> {
        let polled = spin::poll_lone(self.spin, || match self.rx.try_recv() {
            Ok(m) => Some(Some(m)),
            Err(mpsc::error::TryRecvError::Disconnected) => Some(None),
            Err(mpsc::error::TryRecvError::Empty) => None,
        });
        let msg = match polled {
            Some(msg) => msg,
            None => self.rx.recv().await,
        };
        if matches!(msg, Some(QueryMsg::Batch(_))) {
            // The channel has room again: a worker that was serving other jobs while this
            // client was slow resumes the query now rather than at its next poll.
            self.worker.send(Job::Wake);
        }
        msg
    }
}
