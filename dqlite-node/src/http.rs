//! The node's HTTP endpoint (`--http-address`, off unless given):
//!
//! * `GET /metrics`: every metric in the Prometheus text format ([`crate::metrics`]);
//! * `GET /healthz`: 200 while the process serves (liveness);
//! * `GET /readyz`: 200 only when the node knows a leader that it can reach (the leader itself:
//!   a quorum acknowledged it within an election timeout) and has applied every entry up to
//!   the commit index it last heard; 503 with the reason otherwise (readiness, for a load
//!   balancer or an orchestrator).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request as HttpRequest, Response, StatusCode};
use hyper_util::rt::TokioIo;
use openraft::ServerState;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::membership::join::client_config;
use crate::node::Shared;

/// How long a readiness check waits for the leader to answer and for this node to apply what
/// it knows committed.
const READY_WAIT: Duration = Duration::from_millis(1000);

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

async fn route(
    shared: Arc<Shared>,
    req: HttpRequest<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    const TEXT: &str = "text/plain; charset=utf-8";
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "GET only\n".into(),
        ));
    }
    Ok(match req.uri().path() {
        "/metrics" => {
            let text = shared
                .metrics
                .render(&shared, &shared.data_dir.path().join("raft"));
            reply(
                StatusCode::OK,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                text,
            )
        }
        "/healthz" => reply(StatusCode::OK, TEXT, "ok\n".into()),
        "/readyz" => match readiness(&shared).await {
            Ok(()) => reply(StatusCode::OK, TEXT, "ready\n".into()),
            Err(why) => reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("{why}\n")),
        },
        _ => reply(StatusCode::NOT_FOUND, TEXT, "not found\n".into()),
    })
}

/// Ok if the node is ready to serve (see the module doc), else why not.
pub(crate) async fn readiness(shared: &Shared) -> Result<(), String> {
    let m = shared.raft.metrics().borrow().clone();
    let Some(leader) = m.current_leader else {
        return Err("no leader known".into());
    };
    if m.state == ServerState::Leader {
        let voters = m.membership_config.membership().voter_ids().count();
        let limit = shared.options.raft.raft.election_timeout_max;
        match m.millis_since_quorum_ack {
            _ if voters <= 1 => {}
            Some(ms) if ms <= limit => {}
            other => {
                return Err(format!(
                    "leader without a quorum's acknowledgement for {other:?} ms"
                ));
            }
        }
    } else {
        // Non-voters never stand for election, so their idea of the leader can outlive it:
        // ask the leader itself.
        let Some((_, address)) = shared.leader() else {
            return Err("no leader known".into());
        };
        let ask = async {
            let client =
                dqlite_client::Client::new([address.clone()], client_config(shared.tls.as_ref()))
                    .map_err(|e| e.to_string())?;
            match client.leader().await.map_err(|e| e.to_string())? {
                Some(info) if info.id == leader => Ok(()),
                other => Err(format!("leader {leader} at {address} answered {other:?}")),
            }
        };
        match tokio::time::timeout(READY_WAIT, ask).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("leader {leader} unreachable: {e}")),
            Err(_) => return Err(format!("leader {leader} at {address} did not answer")),
        }
    }
    let committed = shared.raft.committed_index().unwrap_or(0);
    let mut rx = shared.raft.metrics();
    let caught_up = async {
        loop {
            if rx.borrow_and_update().last_applied.map_or(0, |l| l.index) >= committed {
                return;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::time::timeout(READY_WAIT, caught_up)
        .await
        .map_err(|_| {
            let applied = shared
                .raft
                .metrics()
                .borrow()
                .last_applied
                .map_or(0, |l| l.index);
            format!("applied index {applied} behind commit index {committed}")
        })
}

/// Serves HTTP on `listener` until `stop` changes.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    let shared = shared.clone();
                    conns.spawn(async move {
                        let service = hyper::service::service_fn(move |req| route(shared.clone(), req));
                        let conn = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service);
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "http connection ended");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}
