//! The commit pipeline: a write's whole life after the leader check. The statement runs on
//! the database's worker; a commit it captured is proposed as one Raft entry, and the client
//! is answered once that entry is committed and applied here. Every way a commit can fail
//! (a handover started, the proposal failed) aborts the captured commit and answers the
//! client, so nothing is left pending.

use std::time::Instant;

use dqlite_wire::Value;

use super::DatabaseHandle;
use super::worker::{Applied, Capture, ConnId, Executed};
use crate::error::SqlFailure;
use crate::node::Shared;
use crate::replication::command::Command;

/// Executes the first statement of `sql` for connection `conn` and replicates its commit,
/// if it made one.
pub(crate) async fn exec(
    shared: &Shared,
    db: &DatabaseHandle,
    conn: ConnId,
    sql: String,
    params: Vec<Value>,
) -> Result<Executed, SqlFailure> {
    let deadline = Instant::now() + shared.options.write_wait;
    let mut e = db.exec(conn, sql, params, deadline).await?;
    if let Some(capture) = e.commit.take() {
        commit(shared, db, conn, capture).await?;
    }
    Ok(e)
}

/// Proposes a captured commit of `conn`; answers after it is committed and applied. On
/// failure the commit is discarded locally and the outcome is unknown to the client (10506).
/// A commit whose entry was skipped because another leader's entry changed the database
/// first (see [`Applied::Superseded`]) fails with 10506 too: it is known not to have
/// happened.
pub(crate) async fn commit(
    shared: &Shared,
    db: &DatabaseHandle,
    conn: ConnId,
    capture: Capture,
) -> Result<(), SqlFailure> {
    let cmd = Command::Frames {
        db: db.name().to_string(),
        base: capture.base,
        frames: capture.frames,
    };
    // Count this proposal in, then check for a handover (see `HandoverGate`).
    let Some(_counted) = shared.gate.enter() else {
        db.abort(conn);
        return Err(SqlFailure::not_leader());
    };
    match shared.raft.propose(cmd.encode()).await {
        Ok(p) if p.response == Applied::Superseded => {
            db.abort(conn);
            Err(SqlFailure::leadership_lost(
                "leadership lost: the commit was not applied (another leader's commit came \
                 first)",
            ))
        }
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::info!(error = %e, "proposal failed: aborting the commit");
            db.abort(conn);
            Err(SqlFailure::leadership_lost("leadership lost"))
        }
    }
}
