//! Shared helpers of the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod cluster;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use dqlite_client::{Client, Config, Role};

pub use cluster::{Backend, Cluster};

/// Generates one `#[tokio::test]` named `$name` that runs `$suite($backend, $select)` (the
/// select defaults to every case); written once per backend so that both backends run the same
/// case bodies and can be told apart by name. A case that fails on one backend because of a
/// known bug is left out of that backend's main test with `Select::Except` and run alone by an
/// `#[ignore]`d test with `Select::Only`, whose reason names the bug.
#[macro_export]
macro_rules! cluster_test {
    ($(#[$m:meta])* $name:ident, $backend:expr, $suite:path) => {
        cluster_test!($(#[$m])* $name, $backend, $suite, $crate::support::Select::All);
    };
    ($(#[$m:meta])* $name:ident, $backend:expr, $suite:path, $select:expr) => {
        $(#[$m])*
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            $suite($backend, $select).await
        }
    };
}

/// Which cases of a suite a test runs.
#[derive(Debug, Clone, Copy)]
pub enum Select {
    /// Every case.
    All,
    /// Every case but these.
    Except(&'static [&'static str]),
    /// Only these.
    Only(&'static [&'static str]),
}

impl Select {
    /// True if the case `name` runs.
    pub fn runs(self, name: &str) -> bool {
        match self {
            Select::All => true,
            Select::Except(names) => !names.contains(&name),
            Select::Only(names) => names.contains(&name),
        }
    }

    /// Panics if the selection names a case the suite does not have (a typo would otherwise
    /// make a test pass without running anything).
    pub fn check(self, cases: &[&str]) {
        if let Select::Except(names) | Select::Only(names) = self {
            for n in names {
                assert!(cases.contains(n), "no case named {n:?} in {cases:?}");
            }
        }
    }
}

/// A client config with short bounds for tests.
pub fn test_config() -> Config {
    let mut c = Config::default();
    c.connect_timeout = Duration::from_secs(2);
    c.request_timeout = Duration::from_secs(20);
    c.leader_timeout = Duration::from_secs(30);
    c
}

/// Start an `n`-node cluster of `backend` and wait until CLUSTER shows `n.min(3)` voters.
pub async fn start_cluster(backend: Backend, n: usize) -> (Cluster, Client) {
    let mut cluster = tokio::task::spawn_blocking(move || cluster::start(backend, n))
        .await
        .unwrap();
    let client = match Client::connect_with(cluster.servers(), test_config()).await {
        Ok(c) => c,
        Err(e) => panic!(
            "connect to the {} cluster: {e}\n{}",
            backend.name(),
            cluster.logs()
        ),
    };
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

/// Run the selected cases one after the other, each as its own task (a panic in one does not
/// stop the others; C dqlite 1.x answers concurrent writes to different databases with
/// "database is locked", so they are not run at the same time), then fail with the list of
/// failed cases and the tail of every node's log.
pub async fn run_cases(cluster: &Cluster, cases: Vec<Case>, select: Select) {
    select.check(&cases.iter().map(|c| c.0).collect::<Vec<_>>());
    let mut failed = Vec::new();
    for (name, fut) in cases {
        if !select.runs(name) {
            eprintln!("case {name}: not selected");
            continue;
        }
        let started = Instant::now();
        match tokio::spawn(fut).await {
            Ok(()) => eprintln!("case {name}: ok ({:?})", started.elapsed()),
            Err(e) => {
                eprintln!("case {name}: FAILED: {e}");
                failed.push(name);
            }
        }
    }
    assert!(
        failed.is_empty(),
        "failed cases on {}: {failed:?}\n{}",
        cluster.backend.name(),
        cluster.logs()
    );
}
