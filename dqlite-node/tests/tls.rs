//! A three-node cluster of real `dqlite-node` processes with TLS on their one port
//! (`--tls-cert/--tls-key/--tls-ca`): nodes join and replicate over TLS, a TLS client
//! (`dqlite-client` with its `tls` feature) writes and reads, every node holds the same
//! image, the data survives a SIGKILL of the leader, and a plain TCP client gets nothing.
//! Certificates come from the `openssl` command line tool; the test is skipped (with a
//! message) where it is not installed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dqlite_client::{Client as TlsClient, Config};
use dqlite_wire::{Request, Role};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use support::procs::{Proc, addresses};

/// A CA and a leaf certificate for the name "dqlite" (PEM files in `dir`).
fn make_certs(dir: &Path) -> bool {
    let script = r#"
set -e
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout node.key -out node.csr -subj /CN=dqlite 2>/dev/null
printf 'subjectAltName=DNS:dqlite\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n' > ext.cnf
openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out node.pem -days 2 -extfile ext.cnf 2>/dev/null
"#;
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .status()
        .is_ok_and(|s| s.success())
}

fn client_config(dir: &Path) -> Config {
    let ca = CertificateDer::from_pem_file(dir.join("ca.pem")).unwrap();
    let cert = CertificateDer::from_pem_file(dir.join("node.pem")).unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("node.key")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![cert], key)
        .unwrap();
    let mut config = Config::default();
    config.tls = Some(dqlite_client::TlsConfig::new(Arc::new(tls)).with_server_name("dqlite"));
    config
}

async fn tls_client(seeds: &[String], config: &Config) -> TlsClient {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match TlsClient::connect_with(seeds.iter().map(String::as_str), config.clone()).await {
            Ok(c) => return c,
            Err(e) => assert!(Instant::now() < deadline, "no TLS client: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The image of `db` on `address`, read over TLS.
async fn image(client: &TlsClient, address: &str, db: &str) -> Vec<u8> {
    let files = client.dump_from(address, db).await.unwrap();
    dqlite_vfs::Snapshot::from_files(&files[0].data, &files[1].data, 4096)
        .unwrap()
        .to_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_replicates_and_refuses_plain_tcp() {
    let dir = tempfile::tempdir().unwrap();
    if !make_certs(dir.path()) {
        eprintln!("openssl not available: skipping the TLS cluster test");
        return;
    }
    let flag = |name: &str, file: &str| {
        [
            name.to_string(),
            dir.path().join(file).display().to_string(),
        ]
    };
    let extra: Vec<String> = [
        flag("--tls-cert", "node.pem"),
        flag("--tls-key", "node.key"),
        flag("--tls-ca", "ca.pem"),
    ]
    .concat();
    let addrs = addresses(3);
    let mut procs = vec![Proc::start(1, &addrs[0], dir.path(), None, &extra, "warn")];
    for (i, a) in addrs.iter().enumerate().skip(1) {
        procs.push(Proc::start(
            i as u64 + 1,
            a,
            dir.path(),
            Some(&addrs[0]),
            &extra,
            "warn",
        ));
    }
    let config = client_config(dir.path());
    let client = tls_client(&addrs, &config).await;
    // Joining goes through the TLS port too (LEADER, ADD, ASSIGN), then Raft over TLS.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(servers) = client.cluster().await
            && servers.len() == 3
            && servers.iter().all(|s| s.role == Role::Voter)
        {
            break;
        }
        assert!(Instant::now() < deadline, "TLS cluster did not form");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut db = client.open("tls.db").await.unwrap();
    db.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", ())
        .await
        .unwrap();
    for i in 0..20i64 {
        db.exec("INSERT INTO t VALUES(?, ?)", (i, format!("row {i}")))
            .await
            .unwrap();
    }
    drop(db);
    // Every node's own copy, fetched over TLS, is the same database.
    let leader = client.leader().await.unwrap().unwrap();
    let want = image(&client, &leader.address, "tls.db").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    for a in &addrs {
        while image(&client, a, "tls.db").await != want {
            assert!(Instant::now() < deadline, "{a} did not converge");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // A client without TLS gets no answer from a TLS port.
    if let Ok(mut plain) = support::Client::connect(&addrs[0]).await {
        assert!(
            plain.call(Request::Leader).await.is_err(),
            "a plain TCP client was answered"
        );
    }

    // The rows survive the loss of the leader and are read back through the new one.
    let li = addrs.iter().position(|a| *a == leader.address).unwrap();
    procs[li].kill();
    let live: Vec<String> = addrs
        .iter()
        .filter(|a| **a != leader.address)
        .cloned()
        .collect();
    let client = tls_client(&live, &config).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let n: i64 = loop {
        let r = async {
            let mut db = client.open("tls.db").await?;
            let rows = db.query_all("SELECT count(*) FROM t", ()).await?;
            rows[0].get::<i64>(0)
        }
        .await;
        match r {
            Ok(n) => break n,
            Err(e) => assert!(Instant::now() < deadline, "no read after failover: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(n, 20);
}
