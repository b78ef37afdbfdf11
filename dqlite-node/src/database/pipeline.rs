//! The commit pipeline: a write's whole life after the leader check. The statement runs on
//! the database's worker; a commit it captured is proposed as one Raft entry, and the client
//! is answered once that entry is committed and applied here. Every way a commit can fail
//! (a handover started, the proposal failed) aborts the captured commit and answers the
//! client, so nothing is left pending.

use std::time::Instant;

use dqlite_vfs::Frames;
use dqlite_wire::Value;

use super::DatabaseHandle;
use super::worker::{ConnId, Executed};
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
    if let Some(frames) = e.frames.take() {
        commit(shared, db, conn, frames).await?;
    }
    Ok(e)
}

/// Proposes a captured commit of `conn`; answers after it is committed and applied. On
/// failure the commit is discarded locally and the outcome is unknown to the client (10506).
pub(crate) async fn commit(
    shared: &Shared,
    db: &DatabaseHandle,
    conn: ConnId,
    frames: Frames,
) -> Result<(), SqlFailure> {
    let cmd = Command::Frames {
        db: db.name().to_string(),
        frames,
    };
    // Count this proposal in, then check for a handover (see `HandoverGate`).
    let Some(_counted) = shared.gate.enter() else {
        db.abort(conn);
        return Err(SqlFailure::not_leader());
    };
    match shared.raft.propose(cmd.encode()).await {
        Ok(_) => {
            shared.metrics.committed(db.name());
            Ok(())
        }
        Err(e) => {
            tracing::info!(error = %e, "proposal failed: aborting the commit");
            db.abort(conn);
            Err(SqlFailure::leadership_lost("leadership lost"))
        }
    }
}
