//! Cluster administration and fail-over against a real C dqlite cluster (Debian `dqlite-demo`).
//! Both run on one cluster, in order: the admin calls first, then the fail-over, which kills
//! the leader.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dqlite_client::{Client, Role, params};
use support::{CCluster, start_cluster, wait_voters};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_cluster_admin_then_failover() {
    let (mut cluster, client) = start_cluster(3).await;
    admin(&mut cluster, &client).await;
    failover(&mut cluster, &client).await;
    for n in &mut cluster.nodes {
        n.kill();
    }
}

async fn wait_for<F: FnMut(&[dqlite_client::NodeInfo]) -> bool>(
    client: &Client,
    what: &str,
    mut f: F,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(nodes) = client.cluster().await {
            if f(&nodes) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: cluster is {nodes:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn admin(cluster: &mut CCluster, client: &Client) {
    // leader and cluster.
    let leader = client.leader().await.unwrap().expect("a leader");
    assert!(cluster.index_of(&leader.address).is_some());
    let nodes = client.cluster().await.unwrap();
    assert_eq!(nodes.len(), 3);
    assert!(nodes.iter().all(|n| n.role == Role::Voter));
    assert!(
        nodes
            .iter()
            .any(|n| n.id == leader.id && n.address == leader.address)
    );

    // describe and weight, on a follower (no leader needed).
    let follower = nodes.iter().find(|n| n.id != leader.id).unwrap().clone();
    let m = client.describe(&follower.address).await.unwrap();
    assert_eq!(m.weight, 0);
    client.weight(&follower.address, 7).await.unwrap();
    assert_eq!(client.describe(&follower.address).await.unwrap().weight, 7);
    assert_eq!(client.describe(&leader.address).await.unwrap().weight, 0);

    // dump: the database file and its WAL.
    let mut db = client.open("dumped").await.unwrap();
    db.exec("CREATE TABLE d (x TEXT)", ()).await.unwrap();
    db.exec("INSERT INTO d VALUES (?)", params!["hello dump"])
        .await
        .unwrap();
    let files = client.dump("dumped").await.unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].name, "dumped");
    assert_eq!(files[1].name, "dumped-wal");
    assert!(files[0].data.starts_with(b"SQLite format 3\0"));
    assert!(
        !files[1].data.is_empty(),
        "C 1.11 keeps the commit in the WAL image"
    );
    let from_follower = client.dump_from(&follower.address, "dumped").await.unwrap();
    assert_eq!(from_follower[0].name, "dumped");

    // add / assign / remove with an id and address that no process serves (a spare needs none).
    let ghost_addr = format!("127.0.0.1:{}", support::cluster::free_port());
    client.add(4242, &ghost_addr).await.unwrap();
    wait_for(client, "ghost added as spare", |n| {
        n.iter()
            .any(|x| x.id == 4242 && x.role == Role::Spare && x.address == ghost_addr)
    })
    .await;
    let dup = client.add(4242, &ghost_addr).await.unwrap_err();
    assert_eq!(dup.code(), Some(1), "{dup}");
    client.remove(4242).await.unwrap();
    wait_for(client, "ghost removed", |n| n.iter().all(|x| x.id != 4242)).await;

    // A real 4th node: it joins (the demo app makes it a spare, then a stand-by).
    let i = tokio::task::block_in_place(|| cluster.add_node());
    let fourth_addr = cluster.nodes[i].db.clone();
    wait_for(client, "4th node joined", |n| {
        n.iter().any(|x| x.address == fourth_addr)
    })
    .await;
    let fourth = client
        .cluster()
        .await
        .unwrap()
        .into_iter()
        .find(|x| x.address == fourth_addr)
        .unwrap();
    let target = if fourth.role == Role::Spare {
        Role::Standby
    } else {
        Role::Spare
    };
    client.assign(fourth.id, target).await.unwrap();
    wait_for(client, "4th node reassigned", |n| {
        n.iter().any(|x| x.id == fourth.id && x.role == target)
    })
    .await;
    // Assigning the role it already has is refused by Raft.
    let same = client.assign(fourth.id, target).await.unwrap_err();
    assert_eq!(same.code(), Some(1), "{same}");
    client.remove(fourth.id).await.unwrap();
    wait_for(client, "4th node removed", |n| {
        n.iter().all(|x| x.id != fourth.id)
    })
    .await;
    cluster.nodes[i].kill();
    cluster.nodes.remove(i);

    // transfer leadership to a follower, then keep working through the same handles.
    let target = client
        .cluster()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.id != leader.id && n.role == Role::Voter)
        .unwrap();
    client.transfer(target.id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(l)) = client.leader().await
            && l.id == target.id
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "leadership did not move to {target:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The old connection was on the old leader: the next write is refused there ("not
    // leader") and retried on the new one.
    db.exec("INSERT INTO d VALUES (?)", params!["after transfer"])
        .await
        .unwrap();
    assert_eq!(db.node(), Some(target.address.as_str()));
    let n = db.query_value("SELECT count(*) FROM d", ()).await.unwrap();
    assert_eq!(n.get::<i64>(0).unwrap(), 2);
    wait_voters(client, 3, Duration::from_secs(30)).await;
}

async fn failover(cluster: &mut CCluster, client: &Client) {
    let mut db = client.open("failover").await.unwrap();
    db.exec("CREATE TABLE w (k INTEGER PRIMARY KEY)", ())
        .await
        .unwrap();
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let unknown = Arc::new(Mutex::new(BTreeSet::new()));
    let killed_at: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let first_after: Arc<Mutex<Option<Duration>>> = Arc::new(Mutex::new(None));

    let writer = {
        let (acked, unknown, killed_at, first_after) = (
            acked.clone(),
            unknown.clone(),
            killed_at.clone(),
            first_after.clone(),
        );
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(45);
            let mut k = 0i64;
            let mut after_kill = 0;
            while Instant::now() < deadline && after_kill < 50 {
                k += 1;
                let started = Instant::now();
                match db.exec("INSERT INTO w VALUES (?)", params![k]).await {
                    Ok(_) => {
                        acked.lock().unwrap().insert(k);
                        let kill = *killed_at.lock().unwrap();
                        if let Some(t) = kill
                            && started > t
                        {
                            after_kill += 1;
                            first_after.lock().unwrap().get_or_insert(t.elapsed());
                        }
                    }
                    Err(e) if e.is_outcome_unknown() => {
                        unknown.lock().unwrap().insert(k);
                    }
                    Err(e) => {
                        // Refused or no leader yet: the write did not happen (a key that
                        // did happen would be in `acked` or `unknown`).
                        assert!(
                            e.is_retryable() || e.is_connection_error(),
                            "unexpected error during fail-over: {e}"
                        );
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            assert!(after_kill >= 50, "writes did not resume after the kill");
        })
    };

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let leader = client.leader().await.unwrap().expect("a leader");
    let li = cluster.index_of(&leader.address).unwrap();
    let before = acked.lock().unwrap().len();
    assert!(before > 0, "no write acknowledged before the kill");
    tokio::task::block_in_place(|| cluster.nodes[li].kill());
    *killed_at.lock().unwrap() = Some(Instant::now());
    writer.await.unwrap();
    let resumed = first_after.lock().unwrap().unwrap();
    eprintln!(
        "fail-over: {before} writes before the kill, first write after the kill acknowledged \
         {resumed:?} after it, {} outcome-unknown",
        unknown.lock().unwrap().len()
    );

    // Every acknowledged write is there; outcome-unknown ones may or may not be.
    let mut check = client.open("failover").await.unwrap();
    let rows = check
        .query_all("SELECT k FROM w ORDER BY k", ())
        .await
        .unwrap();
    let present: BTreeSet<i64> = rows.iter().map(|r| r.get(0).unwrap()).collect();
    let acked = acked.lock().unwrap();
    let missing: Vec<_> = acked.difference(&present).collect();
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
    let unknown = unknown.lock().unwrap();
    let extra: Vec<_> = present
        .difference(&acked)
        .filter(|k| !unknown.contains(k))
        .collect();
    assert!(
        extra.is_empty(),
        "rows that were reported as failed: {extra:?}"
    );
}
