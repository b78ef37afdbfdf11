//! Replays the conversations recorded against the C server (`vectors/transcripts/*.json`)
//! against an in-process single node: every response must be byte-identical, except the
//! fields a transcript marks `variable` (node ids, addresses, timeouts, file images), which
//! are checked against this node's own values instead.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use dqlite_node::Node;
use dqlite_wire::{Header, Request, Response, ResponseContext};
use serde_json::Value as Json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `$DQLITE_VECTORS/transcripts`, or the repository's `vectors/transcripts` (as dqlite-wire's
/// vector test). The test fails when none are found.
fn candidates() -> Vec<PathBuf> {
    let dir = match std::env::var_os("DQLITE_VECTORS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../vectors"),
    }
    .join("transcripts");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

async fn read_message(s: &mut TcpStream) -> Vec<u8> {
    let mut h = [0u8; 8];
    tokio::time::timeout(Duration::from_secs(20), s.read_exact(&mut h))
        .await
        .expect("response within 20 s")
        .expect("read header");
    let header = Header::decode(h);
    let mut body = vec![0u8; header.body_len()];
    s.read_exact(&mut body).await.expect("read body");
    let mut m = h.to_vec();
    m.extend_from_slice(&body);
    m
}

/// Steps where dqlite-rs answers on purpose as C dqlite does since 1.18.2, not as the
/// recorded 1.11 server: (transcript, step, expected FAILURE code, why).
const DIVERGENCES: &[(&str, usize, u64, &str)] = &[(
    "admin_single_node",
    24,
    dqlite_wire::constants::error_code::DQLITE_NOTFOUND,
    "DUMP of an unknown database fails (1.11 answered two empty files)",
)];

async fn replay(path: &PathBuf) {
    let t: Json = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let name = t["name"].as_str().unwrap().to_string();
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
    let address = handle.address().to_string();
    let mut s = TcpStream::connect(node.local_addr()).await.unwrap();
    let mut last_request: Option<Request> = None;
    for (i, step) in t["steps"].as_array().unwrap().iter().enumerate() {
        let what = step["what"].as_str().unwrap_or("?");
        if let Some(send) = step["send"].as_str() {
            let bytes = hex::decode(send).unwrap();
            if what != "HANDSHAKE" {
                last_request = Some(Request::decode_message(&bytes).unwrap());
            }
            s.write_all(&bytes).await.unwrap();
            continue;
        }
        let expected = hex::decode(step["recv"].as_str().unwrap()).unwrap();
        let got = read_message(&mut s).await;
        if let Some((_, _, code, why)) = DIVERGENCES.iter().find(|d| d.0 == name && d.1 == i) {
            let ctx = ResponseContext::for_request(last_request.as_ref().unwrap());
            match Response::decode_message(&got, &ctx).unwrap() {
                Response::Failure(f) => assert_eq!(f.code, *code, "{name} step {i}: {why}"),
                other => panic!("{name} step {i} ({why}): {other:?}"),
            }
            continue;
        }
        let variable = step["variable"].as_array().map_or(0, Vec::len);
        let ctx = ResponseContext::for_request(last_request.as_ref().unwrap());
        if variable == 0 {
            assert_eq!(
                hex::encode(&got),
                hex::encode(&expected),
                "{name} step {i} ({what}): response differs"
            );
            continue;
        }
        assert_eq!(
            got[4], expected[4],
            "{name} step {i} ({what}): type differs"
        );
        let got = Response::decode_message(&got, &ctx).unwrap();
        let exp = Response::decode_message(&expected, &ctx).unwrap();
        match (got, exp) {
            (
                Response::Server {
                    node_id,
                    address: a,
                },
                Response::Server { .. },
            ) => {
                assert_eq!((node_id, a.as_str()), (1, address.as_str()), "{name} {i}");
            }
            (Response::Servers { servers: g }, Response::Servers { servers: e }) => {
                assert_eq!(g.len(), e.len(), "{name} {i}");
                assert_eq!(g[0].role, e[0].role, "{name} {i}");
                assert_eq!((g[0].id, g[0].address.as_str()), (1, address.as_str()));
            }
            (Response::ServersFormat0 { servers: g }, Response::ServersFormat0 { servers: e }) => {
                assert_eq!(g.len(), e.len(), "{name} {i}");
                assert_eq!((g[0].id, g[0].address.as_str()), (1, address.as_str()));
            }
            (Response::Welcome { .. }, Response::Welcome { .. }) => {}
            (Response::Files { files: g }, Response::Files { files: e }) => {
                let names =
                    |f: &[dqlite_wire::File]| f.iter().map(|f| f.name.clone()).collect::<Vec<_>>();
                assert_eq!(names(&g), names(&e), "{name} {i}");
                // A database that exists has content (main file or WAL); a missing one has none.
                let size = |f: &[dqlite_wire::File]| f.iter().map(|f| f.data.len()).sum::<usize>();
                assert_eq!(size(&g) == 0, size(&e) == 0, "{name} {i}");
                if e[0].data.starts_with(b"SQLite format 3\0") {
                    assert!(g[0].data.starts_with(b"SQLite format 3\0"), "{name} {i}");
                }
            }
            (g, e) => panic!("{name} step {i}: got {g:?}, expected {e:?}"),
        }
    }
    drop(s);
    drop(handle);
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcripts_replay_against_a_single_node() {
    let files = candidates();
    assert!(!files.is_empty(), "no transcripts found");
    for f in &files {
        replay(f).await;
    }
}
