//! Raft traffic over TLS (rustls, ring) with a preamble in front, as a node sharing its client
//! port would do: the server accepts, completes TLS, reads and checks the preamble, then hands
//! the stream to `RaftNode::serve`. Certificates come from the `openssl` command line tool; the
//! test is skipped (with a message) where it is not installed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use dqlite_raft::network::{TcpConnector, TlsConnector, WithPreamble};
use dqlite_raft::node::{NodeOptions, RaftNode};
use dqlite_raft::testing::{DigestStateMachine, TestConfig};
use openraft::{BasicNode, ServerState};
use tokio::io::AsyncReadExt;
use tokio_rustls::rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName,
};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector as RustlsConnector};

const PREAMBLE: &[u8] = b"RAFT-PREAMBLE-v1";

type Node = RaftNode<TestConfig, DigestStateMachine>;

/// A CA and a leaf certificate for "raft.test", as DER.
fn make_certs(dir: &Path) -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let script = r#"
set -e
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout leaf.key -out leaf.csr -subj /CN=raft.test 2>/dev/null
printf 'subjectAltName=DNS:raft.test\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n' > ext.cnf
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem -days 2 -extfile ext.cnf 2>/dev/null
openssl x509 -in ca.pem -outform der -out ca.der
openssl x509 -in leaf.pem -outform der -out leaf.der
openssl pkcs8 -topk8 -nocrypt -in leaf.key -outform der -out leaf.key.der
"#;
    let ok = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .status()
        .ok()?
        .success();
    if !ok {
        return None;
    }
    Some((
        std::fs::read(dir.join("ca.der")).ok()?,
        std::fs::read(dir.join("leaf.der")).ok()?,
        std::fs::read(dir.join("leaf.key.der")).ok()?,
    ))
}

#[test]
fn replication_over_tls_with_a_preamble() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((ca, leaf, key)) = make_certs(tmp.path()) else {
        eprintln!("openssl not available: skipping the TLS test");
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let server_cfg = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(leaf)],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
            )
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(server_cfg));
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from(ca)).unwrap();
        let client_cfg = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = WithPreamble {
            inner: TlsConnector {
                inner: TcpConnector::default(),
                tls: RustlsConnector::from(Arc::new(client_cfg)),
                server_name: ServerName::try_from("raft.test").unwrap(),
            },
            preamble: Arc::from(PREAMBLE),
        };

        let mut nodes = Vec::new();
        let mut addrs = Vec::new();
        for id in 1..=2u64 {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addrs.push(BasicNode::new(listener.local_addr().unwrap().to_string()));
            let node = Arc::new(
                Node::start(
                    id,
                    &tmp.path().join(format!("n{id}")),
                    NodeOptions::default(),
                    DigestStateMachine::default(),
                    connector.clone(),
                )
                .await
                .unwrap(),
            );
            let (n, acceptor) = (node.clone(), acceptor.clone());
            tokio::spawn(async move {
                loop {
                    let (tcp, _) = listener.accept().await.unwrap();
                    let (n, acceptor) = (n.clone(), acceptor.clone());
                    tokio::spawn(async move {
                        let mut tls = acceptor.accept(tcp).await.unwrap();
                        let mut pre = [0u8; PREAMBLE.len()];
                        tls.read_exact(&mut pre).await.unwrap();
                        assert_eq!(&pre, PREAMBLE);
                        let _ = n.serve(tls).await;
                    });
                }
            });
            nodes.push(node);
        }
        nodes[0]
            .initialize([(1, addrs[0].clone())].into())
            .await
            .unwrap();
        nodes[0]
            .raft()
            .wait(Some(Duration::from_secs(10)))
            .state(ServerState::Leader, "leader")
            .await
            .unwrap();
        nodes[0]
            .add_learner(2, addrs[1].clone(), true)
            .await
            .unwrap();
        nodes[0]
            .change_membership([1, 2].into(), false)
            .await
            .unwrap();
        let mut last = 0;
        for i in 0..200u64 {
            last = nodes[0]
                .propose(i.to_le_bytes().to_vec())
                .await
                .unwrap()
                .log_id
                .index;
        }
        nodes[1]
            .raft()
            .wait(Some(Duration::from_secs(10)))
            .applied_index_at_least(Some(last), "follower applied over TLS")
            .await
            .unwrap();
        let d0 = nodes[0].state_machine().with_state(|s| s.digest).await;
        let d1 = nodes[1].state_machine().with_state(|s| s.digest).await;
        assert_eq!(d0.count, 200);
        assert_eq!(d0, d1);
        for n in nodes {
            n.raft().shutdown().await.unwrap();
        }
    });
}
