//! Joining a cluster: ask the members who leads, then ask the leader to ADD this node (and,
//! without role management, ASSIGN it the voter role), over the ordinary client protocol with
//! `dqlite-client` (as go-dqlite's `Client.Add` does).

use std::time::Duration;

use dqlite_client::{Client, Config, Role};
use tokio::sync::watch;

use crate::tls::TlsConfig;

/// A client configuration for this node's own requests to other members: short bounds (the
/// callers retry), and the node's TLS settings when it has them.
pub(crate) fn client_config(tls: Option<&TlsConfig>) -> Config {
    let mut config = Config::default();
    config.connect_timeout = Duration::from_secs(2);
    config.request_timeout = Duration::from_secs(30);
    config.leader_timeout = Duration::from_secs(5);
    config.tls = tls.map(TlsConfig::client_tls);
    config
}

/// One attempt: find the leader through `seeds`, ADD this node, make it a voter if
/// `assign_voter` (without, the leader's role management places it).
async fn try_join(
    id: u64,
    address: &str,
    seeds: &[String],
    tls: Option<&TlsConfig>,
    assign_voter: bool,
) -> Result<(), dqlite_client::Error> {
    let client = Client::connect_with(seeds.iter().cloned(), client_config(tls)).await?;
    match client.add(id, address).await {
        Ok(()) => {}
        // An earlier attempt added it and then failed to assign the role: assign it now.
        Err(e) if e.message().is_some_and(|m| m.contains("already in use")) => {}
        Err(e) => return Err(e),
    }
    if !assign_voter {
        return Ok(());
    }
    match client.assign(id, Role::Voter).await {
        Ok(()) => Ok(()),
        Err(e) if e.message().is_some_and(|m| m.contains("already voter")) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Tries to join through `seeds` until this node is a member (a voter, with `assign_voter`)
/// or the node stops.
pub(crate) async fn join_loop(
    id: u64,
    address: String,
    seeds: Vec<String>,
    tls: Option<TlsConfig>,
    assign_voter: bool,
    mut stop: watch::Receiver<bool>,
) {
    let mut delay = Duration::from_millis(200);
    loop {
        match try_join(id, &address, &seeds, tls.as_ref(), assign_voter).await {
            Ok(()) => {
                tracing::info!(?seeds, "joined the cluster");
                return;
            }
            Err(e) => tracing::info!(?seeds, error = %e, "join attempt failed"),
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}
