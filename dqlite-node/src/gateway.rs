//! The gateway: one task per client connection, speaking the dqlite wire protocol.
//!
//! One request at a time: the next request is read only after the previous one was fully
//! answered (all ROWS batches included), as C dqlite does. A [`Session`] holds what the
//! protocol makes per-connection: the open database, prepared statements (lowest free slot
//! reused), the handshake version.
//!
//! Where C dqlite crashes or hangs, this gateway answers a FAILURE or closes cleanly:
//! unknown request types get FAILURE(1005), a zero-length body closes the connection, an
//! oversized one gets FAILURE(1) naming the limit and then a close (its body is never read), DESCRIBE with a bad format gets only FAILURE(15), a finalized statement id
//! gets FAILURE(12), and a query that fails while stepping gets a clean FAILURE.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::fsm::Member;
use dqlite_wire::{
    File, FrameError, Framer, NodeAddress, NodeInfo, ProtocolVersion, Request, RequestError,
    Response, Role, Value,
};
use openraft::ChangeMembers;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;

use crate::command::Command;
use crate::error::SqlFailure;
use crate::node::Shared;
use crate::worker::{ConnId, Executed, Job, Prepared, QueryMsg, WorkerHandle};

/// SQLITE_IOERR_NOT_LEADER.
pub const NOT_LEADER: u64 = 10250;
/// SQLITE_IOERR_LEADERSHIP_LOST.
pub const LEADERSHIP_LOST: u64 = 10506;

/// A prepared statement of a connection.
#[derive(Debug, Clone)]
struct Stmt {
    sql: String,
}

/// Per-connection protocol state.
///
/// Invariant: `leader_term` is the Raft term in which this connection last passed the leader
/// check with a database open; a request that finds the node no longer leader of that term
/// first rolls back the connection's open transaction (C dqlite closes the connection's
/// leader SQLite connection on leadership loss), so no transaction outlives the leadership
/// it was started under.
struct Session {
    shared: Arc<Shared>,
    conn: ConnId,
    legacy: bool,
    db: Option<(String, WorkerHandle)>,
    /// Statement slots; `None` is a free slot. Ids are indexes.
    stmts: Vec<Option<Stmt>>,
    /// 0: none (a leader's term is at least 1).
    leader_term: std::sync::atomic::AtomicU64,
}

/// Serves one client connection whose first bytes (`prefix`: handshake and possibly more)
/// were already read.
pub(crate) async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    shared: Arc<Shared>,
    stream: S,
    prefix: &[u8],
    version: ProtocolVersion,
) {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut framer = Framer::server().with_max_body(shared.options.max_message);
    framer.push(prefix);
    if !matches!(framer.next_handshake(), Ok(Some(_))) {
        return;
    }
    let mut session = Session {
        conn: shared.next_conn.fetch_add(1, Ordering::Relaxed),
        shared,
        legacy: version.is_legacy(),
        db: None,
        stmts: Vec::new(),
        leader_term: std::sync::atomic::AtomicU64::new(0),
    };
    loop {
        let frame = loop {
            match framer.next_frame() {
                Ok(Some(f)) => break Some(f),
                Ok(None) => {}
                Err(FrameError::BodyTooLarge { words, max, .. }) => {
                    // The body is not read (it may be gigabytes): say why, then close.
                    let bytes = u64::from(words) * 8;
                    tracing::debug!(bytes, max, "request too large: closing");
                    let msg =
                        format!("request body of {bytes} bytes exceeds the limit of {max} bytes");
                    let _ = write_response(&mut wr, &Response::failure(1, msg)).await;
                    break None;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "closing client connection");
                    break None;
                }
            }
            match rd.read_buf(framer.buffer_mut()).await {
                Ok(0) | Err(_) => break None,
                Ok(_) => {}
            }
        };
        let Some(frame) = frame else { break };
        let request = match frame.decode_request() {
            Ok(r) => r,
            Err(RequestError::Malformed(e)) => {
                tracing::debug!(error = %e, "malformed request: closing");
                break;
            }
            Err(RequestError::Params { .. }) => {
                if write_response(&mut wr, &Response::failure(1, "bind parameters"))
                    .await
                    .is_err()
                {
                    break;
                }
                continue;
            }
            Err(e) => {
                let (code, msg) = e
                    .classic_failure()
                    .unwrap_or((1005, "unrecognized request type"));
                if write_response(&mut wr, &Response::failure(code, msg))
                    .await
                    .is_err()
                {
                    break;
                }
                continue;
            }
        };
        if matches!(request, Request::Connect { .. }) {
            // A peer must send CONNECT first; on a client connection it is a protocol error.
            break;
        }
        if session.handle(request, &mut wr).await.is_err() {
            break;
        }
    }
    session.close();
}

async fn write_response<W: AsyncWrite + Unpin>(w: &mut W, r: &Response) -> std::io::Result<()> {
    let bytes = r.to_bytes().unwrap_or_else(|e| {
        Response::failure(1, format!("cannot encode the response: {e}"))
            .to_bytes()
            .unwrap_or_default()
    });
    w.write_all(&bytes).await
}

fn failure(f: SqlFailure) -> Response {
    Response::failure(f.code, f.message)
}

/// One proposal counted in [`Shared::proposing`] until dropped.
struct Proposing<'a>(&'a Shared);

impl<'a> Proposing<'a> {
    fn enter(shared: &'a Shared) -> Self {
        shared.proposing.fetch_add(1, Ordering::SeqCst);
        Proposing(shared)
    }
}

impl Drop for Proposing<'_> {
    fn drop(&mut self) {
        self.0.proposing.fetch_sub(1, Ordering::SeqCst);
    }
}

fn not_leader() -> SqlFailure {
    SqlFailure::new(NOT_LEADER, "not leader")
}

fn no_db() -> SqlFailure {
    SqlFailure::new(12, "no database opened")
}

/// SQLite's "unable to open database file", for an OPEN over the node's database limit.
const SQLITE_CANTOPEN: u64 = 14;

/// How long ADD/ASSIGN/REMOVE wait for an unfinished membership change to settle.
const MEMBERSHIP_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

fn raft_failure(e: &dqlite_raft::node::NodeError<u64, Member>) -> SqlFailure {
    use dqlite_raft::node::NodeError as E2;
    match e {
        E2::NotLeader { .. } => not_leader(),
        E2::Membership(m) => SqlFailure::new(5, m.clone()),
        other => SqlFailure::new(1, other.to_string()),
    }
}

impl Session {
    fn close(&mut self) {
        if let Some((_, w)) = self.db.take() {
            w.send(Job::Disconnect { conn: self.conn });
        }
    }

    fn worker(&self, db_id: u64) -> Result<(String, WorkerHandle), SqlFailure> {
        if db_id != 0 {
            return Err(no_db());
        }
        self.db.clone().ok_or_else(no_db)
    }

    /// This node must be leader and have applied everything committed before its term
    /// (C dqlite's leader barrier): a statement executed earlier could miss committed
    /// writes, and a write would be computed on a stale base and overwrite them.
    ///
    /// If leadership was lost since this connection last used its database as leader, its
    /// open transaction is rolled back first; when this node is leader again (a later term)
    /// the request then fails with 10506, so the client learns its transaction is gone.
    async fn check_leader(&self) -> Result<(), SqlFailure> {
        let term = self.shared.raft.metrics().borrow().current_term;
        let leader = self.shared.is_leader();
        let last = self.leader_term.load(Ordering::Relaxed);
        if last != 0 && (last != term || !leader) {
            self.leader_term.store(0, Ordering::Relaxed);
            if self.rollback().await && leader {
                return Err(SqlFailure::new(LEADERSHIP_LOST, "leadership lost"));
            }
        }
        if !leader {
            return Err(not_leader());
        }
        if self
            .shared
            .wait_term_applied(self.shared.options.write_wait)
            .await
        {
            if self.db.is_some() {
                self.leader_term.store(term, Ordering::Relaxed);
            }
            Ok(())
        } else if self.shared.is_leader() {
            Err(SqlFailure::new(LEADERSHIP_LOST, "barrier error"))
        } else {
            Err(not_leader())
        }
    }

    /// Rolls back this connection's open transaction, if any; true if there was one.
    async fn rollback(&self) -> bool {
        let Some((_, w)) = &self.db else {
            return false;
        };
        let (tx, rx) = oneshot::channel();
        w.send(Job::Rollback {
            conn: self.conn,
            reply: tx,
        });
        rx.await.unwrap_or(false)
    }

    fn stmt(&self, id: u32) -> Result<&Stmt, SqlFailure> {
        self.stmts
            .get(id as usize)
            .and_then(Option::as_ref)
            .ok_or_else(|| SqlFailure::new(12, "no statement with the given id"))
    }

    async fn handle<W: AsyncWrite + Unpin>(
        &mut self,
        request: Request,
        wr: &mut W,
    ) -> std::io::Result<()> {
        let response = match request {
            Request::Query {
                db_id,
                stmt_id,
                params,
            } => {
                let r = self
                    .worker(u64::from(db_id))
                    .and_then(|w| Ok((w, self.stmt(stmt_id)?.sql.clone())));
                return match r {
                    Ok((w, sql)) => self.query(wr, w, sql, params.values().to_vec()).await,
                    Err(f) => write_response(wr, &failure(f)).await,
                };
            }
            Request::QuerySql { db_id, sql, params } => {
                let r = self.worker(db_id);
                return match r {
                    Ok(w) => match self.check_leader().await {
                        Err(f) => write_response(wr, &failure(f)).await,
                        Ok(()) => match self.prepare(&w.1, sql).await {
                            Ok(p) if p.has_tail => {
                                write_response(wr, &Response::failure(1, "nonempty statement tail"))
                                    .await
                            }
                            Ok(p) => self.query(wr, w, p.sql, params.values().to_vec()).await,
                            Err(f) => write_response(wr, &failure(f)).await,
                        },
                    },
                    Err(f) => write_response(wr, &failure(f)).await,
                };
            }
            other => self.handle_simple(other).await.unwrap_or_else(failure),
        };
        write_response(wr, &response).await
    }

    /// Every request answered by exactly one response.
    async fn handle_simple(&mut self, request: Request) -> Result<Response, SqlFailure> {
        let shared = self.shared.clone();
        match request {
            Request::Leader => {
                let voter = shared
                    .members()
                    .iter()
                    .any(|(id, _, voter)| *id == shared.id && *voter);
                let (node_id, address) = match shared.leader() {
                    Some(l) if voter => l,
                    _ => (0, String::new()),
                };
                Ok(if self.legacy {
                    Response::ServerLegacy { address }
                } else {
                    Response::Server { node_id, address }
                })
            }
            Request::Client { .. } => Ok(Response::Welcome {
                heartbeat_timeout: shared.options.heartbeat_timeout_ms,
            }),
            Request::Heartbeat { .. } => Err(SqlFailure::new(1005, "unrecognized request type")),
            Request::Open { name, .. } => {
                if self.db.is_some() {
                    return Err(SqlFailure::new(
                        5,
                        "a database for this connection is already open",
                    ));
                }
                let w = shared
                    .registry
                    .worker_within(&name, shared.options.max_databases)
                    .map_err(|e| SqlFailure::new(SQLITE_CANTOPEN, e))?;
                let (tx, rx) = oneshot::channel();
                w.send(Job::Connect {
                    conn: self.conn,
                    reply: tx,
                });
                rx.await
                    .map_err(|_| SqlFailure::new(1, "database worker stopped"))??;
                self.db = Some((name, w));
                Ok(Response::Db { db_id: 0 })
            }
            Request::Prepare { db_id, sql } => self.prepare_request(db_id, sql, false).await,
            Request::PrepareWithOffset { db_id, sql } => {
                self.prepare_request(db_id, sql, true).await
            }
            Request::Exec {
                db_id,
                stmt_id,
                params,
            } => {
                let w = self.worker(u64::from(db_id))?;
                let sql = self.stmt(stmt_id)?.sql.clone();
                self.check_leader().await?;
                let e = self.exec_one(&w, sql, params.values().to_vec()).await?;
                Ok(Response::Result {
                    last_insert_id: e.last_insert_id as u64,
                    rows_affected: e.rows_affected,
                })
            }
            Request::Finalize { db_id, stmt_id } => {
                self.worker(u64::from(db_id))?;
                self.stmt(stmt_id)?;
                self.stmts[stmt_id as usize] = None;
                while matches!(self.stmts.last(), Some(None)) {
                    self.stmts.pop();
                }
                Ok(Response::Empty)
            }
            Request::ExecSql { db_id, sql, params } => {
                let w = self.worker(db_id)?;
                self.check_leader().await?;
                let mut rest = sql;
                let mut params = params.values().to_vec();
                loop {
                    let e = self.exec_one(&w, rest.clone(), params.clone()).await?;
                    rest = rest.get(e.consumed..).unwrap_or_default().to_string();
                    params.drain(..e.params_used.min(params.len()));
                    if crate::sql::is_blank(&rest) {
                        return Ok(Response::Result {
                            last_insert_id: e.last_insert_id as u64,
                            rows_affected: e.rows_affected,
                        });
                    }
                }
            }
            Request::Interrupt { .. } => Ok(Response::Empty),
            Request::Connect { .. } => Err(SqlFailure::new(1005, "unexpected CONNECT")),
            Request::Add { node_id, address } => {
                self.check_leader().await?;
                shared.membership_settled(MEMBERSHIP_WAIT).await;
                if shared.members().iter().any(|m| m.0 == node_id) {
                    return Err(SqlFailure::new(1, "server ID already in use"));
                }
                // As in C dqlite, a new server starts as a spare; ASSIGN gives it a role.
                let member = Member {
                    addr: address,
                    spare: true,
                };
                shared
                    .raft
                    .add_learner(node_id, member, false)
                    .await
                    .map_err(|e| raft_failure(&e))?;
                Ok(Response::Empty)
            }
            Request::Assign { node_id, role } => {
                self.check_leader().await?;
                shared.membership_settled(MEMBERSHIP_WAIT).await;
                let members = shared.member_roles();
                let Some((_, address, current)) = members.iter().find(|m| m.0 == node_id).cloned()
                else {
                    return Err(SqlFailure::new(1, "no such server"));
                };
                let voters: BTreeSet<u64> = members
                    .iter()
                    .filter(|m| m.2 == Role::Voter)
                    .map(|m| m.0)
                    .collect();
                // No role means voter; an unknown role number means stand-by (as in C).
                let wanted = match role.map(Role::from_code) {
                    None | Some(Some(Role::Voter)) => Role::Voter,
                    Some(Some(Role::Spare)) => Role::Spare,
                    Some(_) => Role::Standby,
                };
                if wanted == current {
                    let name = match current {
                        Role::Voter => "voter",
                        Role::Standby => "stand-by",
                        Role::Spare => "spare",
                    };
                    return Err(SqlFailure::new(1, format!("server is already {name}")));
                }
                // A spare loses its flag before it takes another role; a server gets the
                // flag only once it is no longer a voter.
                if current == Role::Spare {
                    self.set_spare(node_id, &address, false).await?;
                }
                if wanted == Role::Voter {
                    let mut v = voters;
                    v.insert(node_id);
                    shared
                        .raft
                        .change_membership(v, true)
                        .await
                        .map_err(|e| raft_failure(&e))?;
                } else if current == Role::Voter {
                    let mut v = voters;
                    v.remove(&node_id);
                    shared
                        .raft
                        .change_membership(v, true)
                        .await
                        .map_err(|e| raft_failure(&e))?;
                }
                if wanted == Role::Spare {
                    self.set_spare(node_id, &address, true).await?;
                }
                Ok(Response::Empty)
            }
            Request::Remove { node_id } => {
                self.check_leader().await?;
                shared.membership_settled(MEMBERSHIP_WAIT).await;
                let members = shared.members();
                let Some((_, _, is_voter)) = members.iter().find(|(id, _, _)| *id == node_id)
                else {
                    return Err(SqlFailure::new(1, "no such server"));
                };
                if *is_voter {
                    let v: BTreeSet<u64> = members
                        .iter()
                        .filter(|m| m.2 && m.0 != node_id)
                        .map(|m| m.0)
                        .collect();
                    shared
                        .raft
                        .change_membership(v, false)
                        .await
                        .map_err(|e| raft_failure(&e))?;
                } else {
                    let mut set = BTreeSet::new();
                    set.insert(node_id);
                    shared
                        .raft
                        .raft()
                        .change_membership(ChangeMembers::RemoveNodes(set), false)
                        .await
                        .map_err(|e| SqlFailure::new(1, e.to_string()))?;
                }
                Ok(Response::Empty)
            }
            Request::Dump { name } => {
                let files = match shared.registry.existing(&name) {
                    Some(w) => {
                        let (tx, rx) = oneshot::channel();
                        w.send(Job::Dump { reply: tx });
                        rx.await
                            .map_err(|_| SqlFailure::new(1, "database worker stopped"))?
                    }
                    None => dqlite_vfs::DatabaseFiles {
                        main: Vec::new(),
                        wal: Vec::new(),
                    },
                };
                Ok(Response::Files {
                    files: vec![
                        File {
                            name: name.clone(),
                            data: files.main,
                        },
                        File {
                            name: format!("{name}-wal"),
                            data: files.wal,
                        },
                    ],
                })
            }
            Request::Cluster { format } => {
                let members = shared.members();
                match format {
                    0 => Ok(Response::ServersFormat0 {
                        servers: members
                            .into_iter()
                            .map(|(id, address, _)| NodeAddress { id, address })
                            .collect(),
                    }),
                    1 => Ok(Response::Servers {
                        servers: shared
                            .member_roles()
                            .into_iter()
                            .map(|(id, address, role)| NodeInfo { id, address, role })
                            .collect(),
                    }),
                    _ => Err(SqlFailure::new(1005, "unrecognized cluster format")),
                }
            }
            Request::Transfer { node_id } => self.transfer(node_id).await,
            Request::Describe { format } => {
                if format != 0 {
                    return Err(SqlFailure::new(15, "bad format version"));
                }
                Ok(Response::Metadata {
                    failure_domain: shared.failure_domain,
                    weight: shared.weight.load(Ordering::Relaxed),
                })
            }
            Request::Weight { weight } => {
                shared.weight.store(weight, Ordering::Relaxed);
                Ok(Response::Empty)
            }
            Request::Query { .. } | Request::QuerySql { .. } => Err(SqlFailure::new(
                1,
                "internal: query routed as a simple request",
            )),
        }
    }

    /// TRANSFER. openraft 0.9 has no leadership transfer, so the leader asks the target (with
    /// a TRANSFER naming the target itself, which a voter that is not leader takes as "start
    /// an election now") and then waits until it is no longer leader. The target wins if its
    /// log is up to date. Id 0 picks the voter with the most replicated log.
    /// Records (or clears) the spare role of non-voter `node_id` in the membership.
    async fn set_spare(&self, node_id: u64, address: &str, spare: bool) -> Result<(), SqlFailure> {
        let mut nodes = std::collections::BTreeMap::new();
        nodes.insert(
            node_id,
            Member {
                addr: address.to_string(),
                spare,
            },
        );
        self.shared
            .raft
            .raft()
            .change_membership(ChangeMembers::SetNodes(nodes), true)
            .await
            .map_err(|e| SqlFailure::new(1, e.to_string()))?;
        Ok(())
    }

    async fn transfer(&self, node_id: u64) -> Result<Response, SqlFailure> {
        let shared = &self.shared;
        let failed = || SqlFailure::new(1, "leadership transfer failed");
        let members = shared.members();
        let is_voter = |id: u64| members.iter().any(|m| m.0 == id && m.2);
        if !shared.is_leader() {
            if node_id != shared.id || !is_voter(shared.id) {
                return Err(not_leader());
            }
            // Voters that heard from the leader recently refuse votes (openraft's leader
            // lease), so an election may lose: try again until the deadline.
            let deadline = Instant::now() + std::time::Duration::from_secs(5);
            while Instant::now() < deadline {
                shared
                    .raft
                    .trigger_election()
                    .await
                    .map_err(|e| SqlFailure::new(1, e.to_string()))?;
                let round = Instant::now() + std::time::Duration::from_millis(200);
                while Instant::now() < round {
                    if shared.is_leader() {
                        return Ok(Response::Empty);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
            return Err(failed());
        }
        // The leader hands over as on shutdown: it stops heartbeats (so the target's
        // election is not refused under the voters' leader lease), waits for the target to
        // hold its log, and dials it with the node's TLS settings.
        let target = if node_id == 0 { None } else { Some(node_id) };
        shared
            .hand_over(target, std::time::Duration::from_secs(5))
            .await
            .map_err(|e| SqlFailure::new(1, e.to_string()))?;
        Ok(Response::Empty)
    }

    /// PREPARE: schema 0 wants exactly one statement, schema 1 reports the tail offset.
    async fn prepare_request(
        &mut self,
        db_id: u64,
        sql: String,
        with_offset: bool,
    ) -> Result<Response, SqlFailure> {
        let w = self.worker(db_id)?;
        self.check_leader().await?;
        let p = self.prepare(&w.1, sql).await?;
        if p.has_tail && !with_offset {
            return Err(SqlFailure::new(1, "nonempty statement tail"));
        }
        let slot = match self.stmts.iter().position(Option::is_none) {
            Some(i) => i,
            None if self.stmts.len() < self.shared.options.max_statements => {
                self.stmts.push(None);
                self.stmts.len() - 1
            }
            None => return Err(SqlFailure::new(1, "too many prepared statements")),
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

    async fn prepare(&self, w: &WorkerHandle, sql: String) -> Result<Prepared, SqlFailure> {
        let (tx, rx) = oneshot::channel();
        w.send(Job::Prepare {
            conn: self.conn,
            sql,
            reply: tx,
        });
        rx.await
            .map_err(|_| SqlFailure::new(1, "database worker stopped"))?
    }

    /// Executes the first statement of `sql`, replicating its commit if it wrote.
    async fn exec_one(
        &self,
        w: &(String, WorkerHandle),
        sql: String,
        params: Vec<Value>,
    ) -> Result<Executed, SqlFailure> {
        let (tx, rx) = oneshot::channel();
        w.1.send(Job::Exec {
            conn: self.conn,
            sql,
            params,
            deadline: Instant::now() + self.shared.options.write_wait,
            reply: tx,
        });
        let mut e = rx
            .await
            .map_err(|_| SqlFailure::new(1, "database worker stopped"))??;
        if let Some(frames) = e.frames.take() {
            self.replicate(w, frames).await?;
        }
        Ok(e)
    }

    /// Proposes a captured commit; answers after it is committed and applied. On failure
    /// the commit is discarded locally and the outcome is unknown to the client (10506).
    async fn replicate(
        &self,
        w: &(String, WorkerHandle),
        frames: dqlite_vfs::Frames,
    ) -> Result<(), SqlFailure> {
        let cmd = Command::Frames {
            db: w.0.clone(),
            frames,
        };
        // Count this proposal in, then check for a handover (see `Shared::proposing`).
        let _counted = Proposing::enter(&self.shared);
        if self.shared.handing_over.load(Ordering::SeqCst) {
            w.1.send(Job::Abort { conn: self.conn });
            return Err(not_leader());
        }
        match self.shared.raft.propose(cmd.encode()).await {
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::info!(error = %e, "proposal failed: aborting the commit");
                w.1.send(Job::Abort { conn: self.conn });
                Err(SqlFailure::new(LEADERSHIP_LOST, "leadership lost"))
            }
        }
    }

    async fn query<W: AsyncWrite + Unpin>(
        &self,
        wr: &mut W,
        w: (String, WorkerHandle),
        sql: String,
        params: Vec<Value>,
    ) -> std::io::Result<()> {
        if let Err(f) = self.check_leader().await {
            return write_response(wr, &failure(f)).await;
        }
        if !self.shared.options.leader_local_reads
            && let Err(e) = self.shared.raft.read_barrier().await
        {
            let f = match e {
                dqlite_raft::node::NodeError::NotLeader { .. } => not_leader(),
                other => SqlFailure::new(LEADERSHIP_LOST, format!("barrier error: {other}")),
            };
            return write_response(wr, &failure(f)).await;
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel(2);
        w.1.send(Job::Query {
            conn: self.conn,
            sql,
            params,
            deadline: Instant::now() + self.shared.options.write_wait,
            budget: None,
            out: tx,
        });
        loop {
            match rx.recv().await {
                Some(QueryMsg::Batch(b)) => {
                    // The channel has room again: a worker that was serving other jobs while
                    // this client was slow resumes the query now rather than at its next poll.
                    w.1.send(Job::Wake);
                    wr.write_all(&b).await?;
                }
                Some(QueryMsg::Done(b, frames)) => {
                    if let Some(frames) = frames
                        && let Err(f) = self.replicate(&w, frames).await
                    {
                        return write_response(wr, &failure(f)).await;
                    }
                    return wr.write_all(&b).await;
                }
                Some(QueryMsg::Failed(f)) => return write_response(wr, &failure(f)).await,
                None => {
                    // The worker abandoned the query (a snapshot install needed the database,
                    // or the node is stopping).
                    return write_response(
                        wr,
                        &Response::failure(4, "query aborted by the database worker"),
                    )
                    .await;
                }
            }
        }
    }
}
