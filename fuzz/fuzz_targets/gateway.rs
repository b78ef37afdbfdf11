//! Arbitrary byte streams to a dqlite-rs node's client gateway: nothing may panic (in the
//! process, which also runs the node), every connection must end soon after the client stops
//! sending (no hang), and memory stays bounded (libFuzzer's `-rss_limit_mb`).
//!
//! One single-node cluster is started per fuzz process in a temporary directory; each input
//! is one fresh TCP connection to it on 127.0.0.1. The node keeps its state across inputs
//! (databases and tables the inputs create), as a long-running server would.
//!
//! Input layout: one prelude byte, then raw bytes sent as they are, in chunks.
//! Prelude bits 0-1: 0 = nothing (the input carries its own handshake), 1 = handshake
//! version 1, 2 = handshake 1 + OPEN "fuzz.db", 3 = legacy handshake + OPEN "fuzz.db".
//! Bits 2-5 pick the chunk size (1 + value * 64 bytes).
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use dqlite_node::{Node, NodeOptions};
use dqlite_wire::{ProtocolVersion, Request};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;

/// How long the node may take to close a connection after the client's FIN: a request may
/// legitimately wait for the write lock (`write_wait`, 1 s here) or a Raft round.
const CLOSE_WITHIN: Duration = Duration::from_secs(10);

struct Env {
    rt: Runtime,
    addr: SocketAddr,
    // Kept alive for the whole process.
    _node: Node,
    _dir: tempfile::TempDir,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let options = NodeOptions::default()
            .with_write_wait(Duration::from_secs(1))
            .with_max_message(1 << 20)
            .with_max_statements(64)
            .with_max_databases(16);
        let node = rt.block_on(async {
            let node = Node::builder(1, "127.0.0.1:0", dir.path())
                .options(options)
                .start()
                .await
                .expect("node starts");
            node.handle()
                .expect("running")
                .wait_for_leader(Duration::from_secs(30))
                .await
                .expect("leader");
            node
        });
        Env {
            addr: node.local_addr(),
            rt,
            _node: node,
            _dir: dir,
        }
    })
}

fn prelude(kind: u8) -> Vec<u8> {
    let open = || {
        Request::Open {
            name: "fuzz.db".into(),
            flags: 0,
            vfs: "volatile".into(),
        }
        .to_bytes()
        .expect("OPEN encodes")
    };
    match kind & 3 {
        0 => Vec::new(),
        1 => ProtocolVersion::V1.to_bytes().to_vec(),
        2 => [&ProtocolVersion::V1.to_bytes()[..], &open()].concat(),
        _ => [&ProtocolVersion::Legacy.to_bytes()[..], &open()].concat(),
    }
}

fuzz_target!(|data: &[u8]| {
    let [sel, rest @ ..] = data else {
        return;
    };
    let env = env();
    let mut input = prelude(*sel);
    input.extend_from_slice(rest);
    let chunk = 1 + usize::from((sel >> 2) & 0xf) * 64;
    env.rt.block_on(async {
        let s = TcpStream::connect(env.addr).await.expect("connect");
        // Reset on close: no TIME_WAIT pile-up over millions of inputs. (Deprecated because a
        // non-zero linger blocks the thread on drop; a zero one never does.)
        #[allow(deprecated)]
        let _ = s.set_linger(Some(Duration::ZERO));
        let _ = s.set_nodelay(true);
        let (mut rd, mut wr) = s.into_split();
        let writer = async move {
            for piece in input.chunks(chunk) {
                if wr.write_all(piece).await.is_err() {
                    return;
                }
            }
            // FIN: the node must now finish the request in progress and close.
            let _ = wr.shutdown().await;
            // Keep the write half (and so the socket) until the reader is done.
            std::future::pending::<()>().await;
        };
        let reader = async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        let ended = tokio::time::timeout(CLOSE_WITHIN, async {
            tokio::select! {
                () = reader => {}
                () = writer => {}
            }
        })
        .await;
        assert!(
            ended.is_ok(),
            "the node did not close the connection within {CLOSE_WITHIN:?} of the client's FIN"
        );
    });
});
