//! ADD, ASSIGN and REMOVE move a server between the spare, stand-by and voter roles as C
//! dqlite does, and CLUSTER reports each role; through dqlite-client against one in-process
//! node (a server that never runs: its roles are membership records only).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dqlite_client::Client;
use dqlite_node::Node;
use dqlite_wire::Role;

async fn role_of(client: &Client, id: u64) -> Option<Role> {
    let nodes = client.cluster().await.unwrap();
    nodes.into_iter().find(|n| n.id == id).map(|n| n.role)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_makes_a_spare_and_assign_moves_it_between_roles() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::builder(1, "127.0.0.1:0", dir.path())
        .start()
        .await
        .unwrap();
    let handle = node.handle().unwrap();
    handle
        .wait_for_leader(Duration::from_secs(20))
        .await
        .unwrap();
    let client = Client::connect([handle.address().to_string()])
        .await
        .unwrap();
    let ghost = "127.0.0.1:1"; // nothing listens there; only its record matters here

    client.add(7, ghost).await.unwrap();
    assert_eq!(role_of(&client, 7).await, Some(Role::Spare));
    let dup = client.add(7, ghost).await.unwrap_err();
    assert_eq!(dup.raw_code(), Some(1), "{dup}");

    client.assign(7, Role::Standby).await.unwrap();
    assert_eq!(role_of(&client, 7).await, Some(Role::Standby));
    let again = client.assign(7, Role::Standby).await.unwrap_err();
    assert_eq!(again.raw_code(), Some(1), "{again}");

    client.assign(7, Role::Spare).await.unwrap();
    assert_eq!(role_of(&client, 7).await, Some(Role::Spare));

    // The node itself stays the one voter throughout.
    assert_eq!(role_of(&client, 1).await, Some(Role::Voter));

    client.remove(7).await.unwrap();
    assert_eq!(role_of(&client, 7).await, None);
    let gone = client.assign(7, Role::Voter).await.unwrap_err();
    assert_eq!(gone.raw_code(), Some(1), "{gone}");

    node.shutdown().await.unwrap();
}
