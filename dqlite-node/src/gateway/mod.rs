//! The gateway: one task per client connection, speaking the dqlite wire protocol.
//!
//! One request at a time: the next request is read only after the previous one was fully
//! answered (all ROWS batches included), as C dqlite does. A [`Session`] holds what the
//! protocol makes per-connection: the open database, prepared statements (lowest free slot
//! reused), the handshake version. SQL requests are served by [`sql`], cluster requests by
//! [`admin`].
//!
//! Where C dqlite crashes or hangs, this gateway answers a FAILURE or closes cleanly:
//! unknown request types get FAILURE(1005), a zero-length body closes the connection, an
//! oversized one gets FAILURE(1) naming the limit and then a close (its body is never read),
//! DESCRIBE with a bad format gets only FAILURE(15), a finalized statement id gets
//! FAILURE(12), and a query that fails while stepping gets a clean FAILURE.

mod admin;
mod reader;
mod session;
mod sql;

use std::cell::Cell;
use std::sync::Arc;
use std::time::Instant;

use dqlite_wire::{ProtocolVersion, Request, RequestError, Response};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tracing::Instrument;

use crate::error::{SqlFailure, code};
use crate::node::Shared;
use reader::{Incoming, Reader};
use session::Session;

/// Serves one client connection whose first bytes (`prefix`: handshake and possibly more)
/// were already read.
pub(crate) async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    shared: Arc<Shared>,
    stream: S,
    prefix: &[u8],
    version: ProtocolVersion,
) {
    let (rd, mut wr) = tokio::io::split(stream);
    let Some(mut reader) = Reader::new(rd, shared.options.max_message, prefix) else {
        return;
    };
    let _counted = shared.metrics.connection();
    let idle_limit = shared.options.idle_transaction_timeout;
    let mut session = Session::new(shared, version.is_legacy());
    loop {
        let incoming = match idle_limit {
            Some(limit) if session.db.is_some() => {
                match tokio::time::timeout(limit, reader.next()).await {
                    Ok(i) => i,
                    Err(_) => {
                        session.end_idle_transaction(limit).await;
                        continue;
                    }
                }
            }
            _ => reader.next().await,
        };
        let frame = match incoming {
            Incoming::Frame(f) => f,
            Incoming::TooLarge { bytes, max } => {
                // The body is not read (it may be gigabytes): say why, then close.
                tracing::debug!(bytes, max, "request too large: closing");
                let msg = format!("request body of {bytes} bytes exceeds the limit of {max} bytes");
                let _ = write_response(&mut wr, &failure(SqlFailure::error(msg))).await;
                break;
            }
            Incoming::Closed => break,
        };
        let request = match frame.decode_request() {
            Ok(r) => r,
            Err(RequestError::Malformed(e)) => {
                tracing::debug!(error = %e, "malformed request: closing");
                break;
            }
            Err(RequestError::Params { .. }) => {
                if write_response(&mut wr, &failure(SqlFailure::error("bind parameters")))
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
                    .unwrap_or((code::DQLITE_PARSE, "unrecognized request type"));
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
        if handle(&mut session, request, &mut reader, &mut wr)
            .await
            .is_err()
        {
            break;
        }
    }
    session.close();
}

async fn write_response<W: AsyncWrite + Unpin>(w: &mut W, r: &Response) -> std::io::Result<()> {
    let bytes = r.to_bytes().unwrap_or_else(|e| {
        failure(SqlFailure::error(format!(
            "cannot encode the response: {e}"
        )))
        .to_bytes()
        .unwrap_or_default()
    });
    w.write_all(&bytes).await
}

fn failure(f: SqlFailure) -> Response {
    // Tells `handle` (for the metrics) which code the request failed with.
    let _ = FAILED.try_with(|c| c.set(Some(f.code)));
    Response::failure(f.code, f.message)
}

tokio::task_local! {
    /// The failure code of the request being served, if it failed.
    static FAILED: Cell<Option<u64>>;
}

/// Serves one request in a `request` span, and records its latency and failure code.
async fn handle<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    session: &mut Session,
    request: Request,
    reader: &mut Reader<R>,
    wr: &mut W,
) -> std::io::Result<()> {
    let kind = request.request_type().name();
    let started = Instant::now();
    let _serving = crate::database::spin::Serving::enter();
    let span = tracing::debug_span!("request", conn = session.conn, kind);
    let served = async {
        let r = dispatch(session, request, reader, wr).await;
        (r, FAILED.with(Cell::get))
    };
    let (r, failed) = FAILED.scope(Cell::new(None), served).instrument(span).await;
    let db = session.db.as_ref().map(|d| d.name().to_string());
    let elapsed = started.elapsed();
    (session.shared.metrics).request(kind, elapsed, failed, db.as_deref());
    r
}

/// Serves one request: queries stream their ROWS batches, every other request is answered
/// by exactly one response.
async fn dispatch<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    session: &mut Session,
    request: Request,
    reader: &mut Reader<R>,
    wr: &mut W,
) -> std::io::Result<()> {
    let response = match request {
        Request::Query {
            db_id,
            stmt_id,
            params,
        } => {
            return session
                .query_prepared(reader, wr, db_id, stmt_id, params)
                .await;
        }
        Request::QuerySql { db_id, sql, params } => {
            return session.query_sql(reader, wr, db_id, sql, params).await;
        }
        Request::Open { name, .. } => session.open(name).await,
        Request::Prepare { db_id, sql } => session.prepare_request(db_id, sql, false).await,
        Request::PrepareWithOffset { db_id, sql } => {
            session.prepare_request(db_id, sql, true).await
        }
        Request::Exec {
            db_id,
            stmt_id,
            params,
        } => session.exec_prepared(db_id, stmt_id, params).await,
        Request::ExecSql { db_id, sql, params } => session.exec_sql(db_id, sql, params).await,
        Request::Finalize { db_id, stmt_id } => session.finalize(db_id, stmt_id),
        Request::Interrupt { .. } => Ok(Response::Empty),
        Request::Leader => Ok(session.leader()),
        Request::Client { .. } => Ok(Response::Welcome {
            heartbeat_timeout: session.shared.options.heartbeat_timeout_ms,
        }),
        Request::Heartbeat { .. } | Request::Connect { .. } => Err(SqlFailure::new(
            code::DQLITE_PARSE,
            "unrecognized request type",
        )),
        Request::Add { node_id, address } => session.add(node_id, address).await,
        Request::Assign { node_id, role } => session.assign(node_id, role).await,
        Request::Remove { node_id } => session.remove(node_id).await,
        Request::Dump { name } => session.dump(name).await,
        Request::Cluster { format } => session.cluster(format),
        Request::Transfer { node_id } => session.transfer(node_id).await,
        Request::Describe { format } => session.describe(format),
        Request::Weight { weight } => Ok(session.set_weight(weight)),
    }
    .unwrap_or_else(failure);
    write_response(wr, &response).await
}
