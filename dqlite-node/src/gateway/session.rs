//! [`Session`]: what the protocol keeps per client connection, and the leader check every
//! database request passes.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::database::DatabaseHandle;
use crate::database::worker::ConnId;
use crate::error::SqlFailure;
use crate::node::Shared;

/// A prepared statement of a connection.
#[derive(Debug, Clone)]
pub(super) struct Stmt {
    pub sql: String,
}

/// Per-connection protocol state.
///
/// Invariant: `leader_term` is the Raft term in which this connection last passed the leader
/// check with a database open; a request that finds the node no longer leader of that term
/// first rolls back the connection's open transaction (C dqlite closes the connection's
/// leader SQLite connection on leadership loss), so no transaction outlives the leadership
/// it was started under.
pub(super) struct Session {
    pub shared: Arc<Shared>,
    pub conn: ConnId,
    pub legacy: bool,
    pub db: Option<DatabaseHandle>,
    /// Statement slots; `None` is a free slot. Ids are indexes.
    pub stmts: Vec<Option<Stmt>>,
    /// 0: none (a leader's term is at least 1).
    leader_term: u64,
}

impl Session {
    pub fn new(shared: Arc<Shared>, legacy: bool) -> Self {
        Session {
            conn: shared.next_conn.fetch_add(1, Ordering::Relaxed),
            shared,
            legacy,
            db: None,
            stmts: Vec::new(),
            leader_term: 0,
        }
    }

    /// Ends the session: closes its database connection (rolling back an open transaction).
    pub fn close(&mut self) {
        if let Some(db) = self.db.take() {
            db.disconnect(self.conn);
        }
    }

    /// The open database, if `db_id` names it (every connection has at most one, id 0).
    pub fn database(&self, db_id: u64) -> Result<DatabaseHandle, SqlFailure> {
        if db_id != 0 {
            return Err(SqlFailure::no_database());
        }
        self.db.clone().ok_or_else(SqlFailure::no_database)
    }

    /// Prepared statement `id`.
    pub fn stmt(&self, id: u32) -> Result<&Stmt, SqlFailure> {
        self.stmts
            .get(id as usize)
            .and_then(Option::as_ref)
            .ok_or_else(|| SqlFailure::new(12, "no statement with the given id"))
    }

    /// This node must be leader and have applied everything committed before its term
    /// (C dqlite's leader barrier): a statement executed earlier could miss committed
    /// writes, and a write would be computed on a stale base and overwrite them.
    ///
    /// If leadership was lost since this connection last used its database as leader, its
    /// open transaction is rolled back first; when this node is leader again (a later term)
    /// the request then fails with 10506, so the client learns its transaction is gone.
    pub async fn check_leader(&mut self) -> Result<(), SqlFailure> {
        let term = self.shared.raft.metrics().borrow().current_term;
        let leader = self.shared.is_leader();
        let last = self.leader_term;
        if last != 0 && (last != term || !leader) {
            self.leader_term = 0;
            if self.rollback().await && leader {
                return Err(SqlFailure::leadership_lost("leadership lost"));
            }
        }
        if !leader {
            return Err(SqlFailure::not_leader());
        }
        if self
            .shared
            .wait_term_applied(self.shared.options.write_wait)
            .await
        {
            if self.db.is_some() {
                self.leader_term = term;
            }
            Ok(())
        } else if self.shared.is_leader() {
            Err(SqlFailure::leadership_lost("barrier error"))
        } else {
            Err(SqlFailure::not_leader())
        }
    }

    /// The client sent nothing for `idle`: a transaction it left open (holding the write lock,
    /// or pinning a snapshot) is rolled back, and its next statements are refused until it
    /// ends the transaction (a client that vanished without closing its socket no longer
    /// blocks every writer).
    pub async fn end_idle_transaction(&mut self, idle: std::time::Duration) {
        if self.rollback().await {
            tracing::info!(
                conn = self.conn,
                ?idle,
                "rolled back a transaction left idle"
            );
        }
    }

    /// Rolls back this connection's open transaction, if any; true if there was one.
    async fn rollback(&self) -> bool {
        match &self.db {
            Some(db) => db.rollback(self.conn).await,
            None => false,
        }
    }
}
