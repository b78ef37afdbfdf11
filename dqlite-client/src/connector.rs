//! Leader discovery, as go-dqlite does it (wire-protocol.md §13): try the last known leader,
//! otherwise ask every known member in parallel who the leader is, follow the answer, and
//! confirm it by asking the leader itself. Whole sweeps are retried with jittered backoff
//! until the configured deadline.

use std::time::Instant;

use futures::StreamExt;

use crate::codec::{Req, Resp};
use crate::config::Config;
use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::store::NodeStore;
use crate::transport::Address;

/// How many members are asked at once (go-dqlite's `ConcurrentLeaderConns` default).
const MAX_CONCURRENT_PROBES: usize = 10;

/// What asking one node gave.
enum Probe {
    /// The node confirmed it is the leader; here is the connection to it.
    Leader(Conn),
    /// The node knows no leader (or is not a voter).
    NoLeader(String),
}

async fn ask_leader(conn: &mut Conn) -> Result<Option<(u64, String)>> {
    let req = Req::Leader;
    match conn.call(&req).await? {
        Resp::Server { id, address } if !address.is_empty() => Ok(Some((id, address))),
        Resp::Server { .. } => Ok(None),
        other => Err(conn.unexpected(&req, &other)),
    }
}

async fn register(conn: &mut Conn, config: &Config) -> Result<()> {
    let req = Req::Client {
        id: config.client_id,
    };
    match conn.call(&req).await? {
        Resp::Welcome { .. } => Ok(()),
        other => Err(conn.unexpected(&req, &other)),
    }
}

/// Connect to `address`; if it is the leader, return the connection; if it names another
/// node, connect there and check that that node agrees it is the leader.
async fn probe(address: String, config: &Config) -> Result<Probe> {
    let addr = Address::parse(&address)?;
    let mut conn = Conn::connect(&addr, &config.dial_options(), config.limits()).await?;
    match ask_leader(&mut conn).await? {
        None => Ok(Probe::NoLeader(address)),
        Some((_, leader)) if leader == address => {
            register(&mut conn, config).await?;
            Ok(Probe::Leader(conn))
        }
        Some((_, leader)) => {
            drop(conn);
            let laddr = Address::parse(&leader)?;
            let mut conn = Conn::connect(&laddr, &config.dial_options(), config.limits()).await?;
            match ask_leader(&mut conn).await? {
                Some((_, l)) if l == leader => {
                    register(&mut conn, config).await?;
                    Ok(Probe::Leader(conn))
                }
                _ => Ok(Probe::NoLeader(leader)),
            }
        }
    }
}

/// One sweep: the last known leader alone first, then every member, up to
/// [`MAX_CONCURRENT_PROBES`] at a time. The first
/// confirmed leader wins; the other probes are dropped (their connections closed).
async fn sweep(store: &std::sync::Mutex<NodeStore>, config: &Config) -> Result<Conn> {
    let (order, last_leader) = {
        let s = store.lock().unwrap_or_else(|e| e.into_inner());
        (s.probe_order(), s.leader().map(str::to_owned))
    };
    let mut last_err = None;
    if let Some(l) = last_leader {
        match probe(l, config).await {
            Ok(Probe::Leader(conn)) => return Ok(conn),
            Ok(Probe::NoLeader(_)) => {}
            Err(e) => last_err = Some(e),
        }
    }
    let mut probes = futures::stream::iter(order)
        .map(|a| probe(a, config))
        .buffer_unordered(MAX_CONCURRENT_PROBES);
    while let Some(r) = probes.next().await {
        match r {
            Ok(Probe::Leader(conn)) => return Ok(conn),
            Ok(Probe::NoLeader(a)) => {
                last_err.get_or_insert(Error::Server {
                    node: a,
                    code: dqlite_wire::constants::error_code::NOT_LEADER,
                    message: "no leader known".into(),
                });
            }
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| Error::Usage("no cluster members to probe".into())))
}

/// Find the leader, retrying sweeps with backoff until `config.leader_timeout` has passed.
/// On success the store remembers the leader.
pub(crate) async fn find_leader(
    store: &std::sync::Mutex<NodeStore>,
    config: &Config,
) -> Result<Conn> {
    let start = Instant::now();
    let mut backoff = config.backoff();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let remaining = config.leader_timeout.saturating_sub(start.elapsed());
        let res = match tokio::time::timeout(remaining, sweep(store, config)).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                node: "cluster".into(),
                op: "leader discovery",
                after: config.leader_timeout,
            }),
        };
        let err = match res {
            Ok(mut conn) => {
                // Learn the current members from the leader, so that the next discovery can
                // reach nodes that were not among the seeds. Best effort: a failure here
                // shows up on the connection's first real request.
                let members = match conn.call(&Req::Cluster).await {
                    Ok(Resp::Servers(nodes)) => Some(nodes),
                    _ => None,
                };
                let mut s = store.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(nodes) = members {
                    s.replace(nodes);
                }
                s.set_leader(Some(conn.node().to_owned()));
                tracing::debug!(leader = conn.node(), attempts, "leader found");
                return Ok(conn);
            }
            Err(e) => e,
        };
        // Configuration mistakes do not get better with time.
        if matches!(err, Error::InvalidAddress { .. } | Error::Usage(_)) {
            return Err(err);
        }
        tracing::debug!(error = %err, attempts, "no leader yet");
        store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_leader(None);
        let delay = backoff.next_delay();
        if start.elapsed() + delay >= config.leader_timeout {
            let tried = store
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .probe_order();
            return Err(Error::NoLeader {
                tried,
                attempts,
                waited: start.elapsed(),
                last: Some(Box::new(err)),
            });
        }
        tokio::time::sleep(delay).await;
    }
}
