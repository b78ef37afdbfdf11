//! The commit pipeline: a write's whole life after the leader check. The statement runs on
//! the database's worker; a commit it captured is proposed as one Raft entry, and the client
//! is answered once that entry is committed and applied here. Every way a commit can fail
//! (a handover started, the proposal failed) aborts the captured commit and answers the
//! client, so nothing is left pending.

use std::time::Instant;

use dqlite_wire::Value;

use super::DatabaseHandle;
use super::worker::{Applied, Capture, Commit, ConnId, Executed, Settled};
use crate::error::SqlFailure;
use crate::node::Shared;
use crate::replication::command::Command;
use openraft::ServerState;

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
    match e.commit.take() {
        Some(Commit::Lead(capture)) => commit(shared, db, conn, capture).await?,
        Some(Commit::Join(outcome)) => outcome.await.unwrap_or_else(|_| {
            Err(SqlFailure::leadership_lost(
                "leadership lost: the commit's outcome is unknown",
            ))
        })?,
        None => {}
    }
    Ok(e)
}

/// Proposes a captured commit of `conn`; answers once it is committed and applied here.
///
/// Every way it can end answers the client, and only then does the proposal count out of
/// the handover gate:
/// - its entry applied: success;
/// - its entry skipped, or another entry settled the database first (see
///   [`Settled::Superseded`]): 10506, and the commit is known not to have happened;
/// - the proposal failed, this node stopped leading or heard from no quorum for the longest
///   election timeout (a partitioned leader: its entry cannot commit before a new leader is
///   elected), a snapshot replaced the database, or nothing settled it by `commit_timeout`:
///   10506 with the outcome unknown, and the pending commit is discarded here (if its entry
///   commits after all, it is applied like any other).
pub(crate) async fn commit(
    shared: &Shared,
    db: &DatabaseHandle,
    conn: ConnId,
    mut capture: Capture,
) -> Result<(), SqlFailure> {
    let group = std::mem::take(&mut capture.group);
    let outcome = propose(shared, db, conn, capture).await;
    for member in group {
        let _ = member.send(outcome.clone());
    }
    outcome
}

async fn propose(
    shared: &Shared,
    db: &DatabaseHandle,
    conn: ConnId,
    capture: Capture,
) -> Result<(), SqlFailure> {
    let Capture {
        frames,
        base,
        settled,
        ..
    } = capture;
    // Count this proposal in, then check for a handover (see `HandoverGate`).
    let Some(_counted) = shared.gate.enter() else {
        db.abort(conn);
        return Err(SqlFailure::not_leader());
    };
    let cmd = Command::Frames {
        db: db.name().to_string(),
        base,
        frames,
    };
    if cfg!(feature = "unsafe-ack-before-commit") {
        // TEST ONLY (see the feature in Cargo.toml): success before the commit is known; the
        // proposal goes on in the background and aborts the capture if it fails.
        let raft = shared.raft.raft().clone();
        let db = db.clone();
        drop(settled);
        tokio::spawn(async move {
            if raft.client_write(cmd.encode()).await.is_err() {
                db.abort(conn);
            }
        });
        return Ok(());
    }
    let propose = shared.raft.propose(cmd.encode());
    let deadline = tokio::time::sleep(shared.options.commit_timeout);
    let mut settled = Some(settled);
    let mut metrics = shared.raft.metrics();
    let quorum_patience = shared.options.raft.raft.election_timeout_max;
    tokio::pin!(propose, deadline);
    let unknown = |why: &str| {
        db.abort(conn);
        Err(SqlFailure::leadership_lost(format!(
            "leadership lost: {why}; the commit's outcome is unknown"
        )))
    };
    loop {
        tokio::select! {
            r = &mut propose => return match r {
                Ok(p) if p.response == Applied::Superseded => Err(not_applied()),
                Ok(_) => {
                    shared.metrics.committed(db.name());
                    Ok(())
                }
                Err(e) => {
                    tracing::info!(error = %e, "proposal failed: aborting the commit");
                    unknown("the proposal failed")
                }
            },
            s = async {
                match settled.as_mut() {
                    Some(rx) => rx.await.ok(),
                    None => std::future::pending().await,
                }
            }, if settled.is_some() => {
                match s {
                    Some(Settled::Superseded) => return Err(not_applied()),
                    Some(Settled::Replaced) => {
                        return unknown("a snapshot replaced the database");
                    }
                    // Published: the proposal answers next. Closed: nothing more to learn.
                    _ => settled = None,
                }
            }
            // openraft reports metrics at every turn of its loop, ticks included.
            changed = metrics.changed() => {
                if changed.is_err() || metrics.borrow_and_update().state != ServerState::Leader {
                    return unknown("this node stopped leading");
                }
                // Silence, not the age of the last acknowledgement: a leader busy with its own
                // fsync of a large entry sends no heartbeat for a while, and has no fresh
                // acknowledgement to show without having been refused anything.
                if shared.quorum_silent_for(quorum_patience) {
                    return unknown("this node lost its quorum");
                }
            }
            () = &mut deadline => return unknown("the commit timed out"),
        }
    }
}

fn not_applied() -> SqlFailure {
    SqlFailure::leadership_lost(
        "leadership lost: the commit was not applied (another leader's commit came first)",
    )
}
