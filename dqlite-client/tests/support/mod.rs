//! Shared helpers of the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod cluster;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use dqlite_client::{Client, Config, Role};

pub use cluster::CCluster;

/// A client config with short bounds for tests.
pub fn test_config() -> Config {
    let mut c = Config::default();
    c.connect_timeout = Duration::from_secs(2);
    c.request_timeout = Duration::from_secs(20);
    c.leader_timeout = Duration::from_secs(30);
    c
}

/// Start an `n`-node C cluster and wait until CLUSTER shows `n.min(3)` voters.
pub async fn start_cluster(n: usize) -> (CCluster, Client) {
    let mut cluster = tokio::task::spawn_blocking(move || CCluster::start(n))
        .await
        .unwrap();
    let client = Client::connect_with(cluster.servers(), test_config())
        .await
        .expect("connect to the C cluster");
    wait_voters(&client, n.min(3), Duration::from_secs(60)).await;
    (cluster, client)
}

/// Wait until the leader reports `voters` voters (the demo app promotes joiners over time).
pub async fn wait_voters(client: &Client, voters: usize, tmo: Duration) {
    let deadline = Instant::now() + tmo;
    loop {
        if let Ok(nodes) = client.cluster().await {
            let v = nodes.iter().filter(|n| n.role == Role::Voter).count();
            if v == voters {
                return;
            }
            if Instant::now() > deadline {
                panic!("expected {voters} voters, cluster is {nodes:?}");
            }
        } else if Instant::now() > deadline {
            panic!("cluster did not answer CLUSTER within {tmo:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A named test case.
pub type Case = (
    &'static str,
    Pin<Box<dyn Future<Output = ()> + Send + 'static>>,
);

/// Run cases one after the other, each as its own task (a panic in one does not stop the
/// others; C dqlite 1.x answers concurrent writes to different databases with "database is
/// locked", so they are not run at the same time), then fail with the list of failed cases.
pub async fn run_cases(cases: Vec<Case>) {
    let mut failed = Vec::new();
    for (name, fut) in cases {
        let started = Instant::now();
        match tokio::spawn(fut).await {
            Ok(()) => eprintln!("case {name}: ok ({:?})", started.elapsed()),
            Err(e) => {
                eprintln!("case {name}: FAILED: {e}");
                failed.push(name);
            }
        }
    }
    assert!(failed.is_empty(), "failed cases: {failed:?}");
}
