//! The client against scripted in-process servers: replayed C transcripts (the client must
//! send byte-identical requests and understand the recorded answers), and servers that answer
//! with garbage, truncated, oversized or mistyped messages, or not at all. Every bad answer
//! must give a typed error on that connection, promptly, never a panic or a hang.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use dqlite_client::{Client, Config, Error, Role, Value, params};
use dqlite_wire::{Framer, NodeInfo, Request, Response, RowsBatch, RowsEnd};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What a scripted server does with one request.
enum Action {
    /// Write these bytes.
    Reply(Vec<u8>),
    /// Close the connection.
    Close,
    /// Never answer (keep the connection open).
    Hang,
}

type Handler = Arc<dyn Fn(&Request, &[u8]) -> Action + Send + Sync>;

fn encode(r: Response) -> Vec<u8> {
    r.to_bytes().unwrap().to_vec()
}

/// Answers LEADER (with its own address), CLIENT and CLUSTER like a one-node cluster and hands
/// everything else to `rest`.
fn one_node(address: String, rest: Handler) -> Handler {
    Arc::new(move |req, raw| match req {
        Request::Leader => encode(Response::Server {
            node_id: 1,
            address: address.clone(),
        })
        .pipe(Action::Reply),
        Request::Client { .. } => Action::Reply(encode(Response::Welcome {
            heartbeat_timeout: 15000,
        })),
        Request::Cluster { .. } => Action::Reply(encode(Response::Servers {
            servers: vec![NodeInfo {
                id: 1,
                address: address.clone(),
                role: Role::Voter,
            }],
        })),
        _ => rest(req, raw),
    })
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl<T> Pipe for T {}

async fn serve_conn<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, handler: Handler) {
    let mut framer = Framer::server();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        framer.push(&buf[..n]);
        if framer.expects_handshake() && framer.next_handshake().unwrap().is_none() {
            continue;
        }
        while let Some(frame) = framer.next_frame().unwrap() {
            let mut raw = frame.header.to_bytes().to_vec();
            raw.extend_from_slice(&frame.body);
            let req = frame.decode_request().unwrap();
            match handler(&req, &raw) {
                Action::Reply(bytes) => {
                    if s.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                Action::Close => return,
                Action::Hang => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return;
                }
            }
        }
    }
}

/// A TCP fake server; returns its address.
async fn fake(make: impl FnOnce(String) -> Handler) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let handler = make(addr.clone());
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve_conn(s, handler.clone()));
        }
    });
    addr
}

fn quick_config() -> Config {
    let mut c = Config::default();
    c.connect_timeout = Duration::from_millis(500);
    c.request_timeout = Duration::from_millis(500);
    c.leader_timeout = Duration::from_secs(2);
    c
}

// ---------------------------------------------------------------- transcript replay

/// Replays a transcript recorded from C dqlite 1.11.1: a request is answered with the
/// recorded responses that followed the identical request bytes; anything not in the
/// transcript gets a FAILURE (so a client sending different bytes fails the test).
fn replay(path: &str) -> Handler {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for step in doc["steps"].as_array().unwrap() {
        if let Some(send) = step["send"].as_str() {
            pairs.push((hex::decode(send).unwrap(), Vec::new()));
        } else if let Some(recv) = step["recv"].as_str() {
            pairs
                .last_mut()
                .unwrap()
                .1
                .extend(hex::decode(recv).unwrap());
        }
    }
    let pairs = Arc::new(std::sync::Mutex::new(pairs));
    Arc::new(move |_req, raw| {
        let mut p = pairs.lock().unwrap();
        match p.iter().position(|(sent, _)| sent == raw) {
            Some(i) => Action::Reply(p.remove(i).1),
            None => Action::Reply(encode(Response::failure(
                9999,
                format!("request not in transcript: {}", hex::encode(raw)),
            ))),
        }
    })
}

/// `$DQLITE_VECTORS/transcripts/NAME.json`, or the repository's `vectors/transcripts`.
fn transcript(name: &str) -> String {
    let dir = std::env::var("DQLITE_VECTORS")
        .unwrap_or_else(|_| format!("{}/../vectors", env!("CARGO_MANIFEST_DIR")));
    format!("{dir}/transcripts/{name}.json")
}

#[tokio::test]
async fn replays_basic_session_byte_for_byte() {
    let addr = fake(|a| one_node(a, replay(&transcript("basic_session")))).await;
    let client = Client::connect_with([addr.clone()], quick_config())
        .await
        .unwrap();
    let mut db = client.open("tr_basic").await.unwrap();
    db.exec("CREATE TABLE kv(k TEXT PRIMARY KEY, v INTEGER)", ())
        .await
        .unwrap();
    let r = db
        .exec("INSERT INTO kv(k, v) VALUES(?, ?)", ("one", 1))
        .await
        .unwrap();
    assert_eq!((r.last_insert_id, r.rows_affected), (1, 1));
    let r = db
        .exec("INSERT INTO kv(k, v) VALUES(?, ?)", ("two", 2))
        .await
        .unwrap();
    assert_eq!(r.last_insert_id, 2);
    let rows = db
        .query_all("SELECT k, v FROM kv ORDER BY v", ())
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[1].values(),
        &[Value::Text("two".into()), Value::Integer(2)]
    );
    let mut upd = db
        .prepare("UPDATE kv SET v = v + ? WHERE k = ?")
        .await
        .unwrap();
    assert_eq!(upd.param_count(), 2);
    db.exec_prepared(&mut upd, params![10, "one"])
        .await
        .unwrap();
    let mut sel = db.prepare("SELECT v FROM kv WHERE k = ?").await.unwrap();
    let rows = db
        .query_prepared(&mut sel, params!["one"])
        .await
        .unwrap()
        .collect_all()
        .await
        .unwrap();
    assert_eq!(rows[0].get::<i64>(0).unwrap(), 11);
    db.finalize(sel).await.unwrap();
    db.finalize(upd).await.unwrap();
    db.interrupt().await.unwrap();
}

#[tokio::test]
async fn replays_multi_batch_query() {
    let addr = fake(|a| one_node(a, replay(&transcript("multi_batch_query")))).await;
    let client = Client::connect_with([addr], quick_config()).await.unwrap();
    let mut db = client.open("tr_batches").await.unwrap();
    db.exec("CREATE TABLE big(n INTEGER, s TEXT)", ())
        .await
        .unwrap();
    db.exec(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) \
         INSERT INTO big SELECT x, printf('row-%05d', x) FROM c",
        (),
    )
    .await
    .unwrap();
    let rows = db
        .query_all("SELECT n, s FROM big ORDER BY n", ())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1000);
    assert_eq!(rows[999].get::<String>(1).unwrap(), "row-01000");
    let n = db
        .query_value("SELECT count(*) FROM big", ())
        .await
        .unwrap();
    assert_eq!(n, Value::Integer(1000));
}

#[tokio::test]
async fn replays_admin_session() {
    let addr = fake(|a| {
        let rep = replay(&transcript("admin_single_node"));
        one_node(a, rep)
    })
    .await;
    let client = Client::connect_with([addr.clone()], quick_config())
        .await
        .unwrap();
    assert_eq!(client.describe(&addr).await.unwrap().weight, 0);
    client.weight(&addr, 12).await.unwrap();
    assert_eq!(client.describe(&addr).await.unwrap().weight, 12);
    client.weight(&addr, 0).await.unwrap();
    let mut db = client.open("tr_admin").await.unwrap();
    db.exec("CREATE TABLE t(x TEXT)", ()).await.unwrap();
    db.exec("INSERT INTO t VALUES('dump me')", ())
        .await
        .unwrap();
    let files = client.dump("tr_admin").await.unwrap();
    assert_eq!(files[0].name, "tr_admin");
    assert!(files[0].data.starts_with(b"SQLite format 3\0"));
    let files = client.dump("tr_admin_missing").await.unwrap();
    assert!(files.iter().all(|f| f.data.is_empty()));
}

// ---------------------------------------------------------------- bad answers

/// A one-node server that answers OPEN normally and EXEC_SQL with `bad`.
async fn bad_exec_server(bad: impl Fn() -> Action + Send + Sync + 'static) -> String {
    fake(move |a| {
        one_node(
            a,
            Arc::new(move |req, _| match req {
                Request::Open { .. } => Action::Reply(encode(Response::Db { db_id: 0 })),
                Request::QuerySql { .. } => Action::Reply(encode(Response::Rows(RowsBatch {
                    columns: vec!["1".into()],
                    rows: vec![vec![dqlite_wire::Value::Integer(1)]],
                    end: RowsEnd::Done,
                }))),
                _ => bad(),
            }),
        )
    })
    .await
}

async fn exec_error(bad: impl Fn() -> Action + Send + Sync + 'static) -> (Error, Duration) {
    let addr = bad_exec_server(bad).await;
    let client = Client::connect_with([addr], quick_config()).await.unwrap();
    let mut db = client.open("x").await.unwrap();
    let started = Instant::now();
    let e = db.exec("INSERT INTO t VALUES (1)", ()).await.unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}: {e}");
    assert!(e.node().is_some(), "error names the node: {e}");
    // The handle reconnects for the next request.
    let v = db.query_value("SELECT 1", ()).await.unwrap();
    assert_eq!(v, Value::Integer(1));
    (e, took)
}

fn header(words: u32, type_code: u8) -> Vec<u8> {
    dqlite_wire::Header {
        words,
        type_code,
        schema: 0,
        extra: 0,
    }
    .to_bytes()
    .to_vec()
}

#[tokio::test]
async fn garbage_is_a_protocol_error() {
    let (e, _) =
        exec_error(|| Action::Reply(b"\x01\x00\x00\x00\x77\x00\x00\x00garbage!".to_vec())).await;
    assert!(
        matches!(e, Error::OutcomeUnknown { ref source } if matches!(**source, Error::Protocol { .. })),
        "{e:?}"
    );
    assert!(e.is_outcome_unknown() && e.is_connection_error());
}

#[tokio::test]
async fn oversized_body_is_refused_from_the_header() {
    let (e, _) = exec_error(|| Action::Reply(header(0x0FFF_FFFF, 6))).await;
    assert!(e.to_string().contains("exceeds"), "{e}");
}

#[tokio::test]
async fn zero_length_body_is_an_error() {
    let (e, _) = exec_error(|| Action::Reply(header(0, 6))).await;
    assert!(e.to_string().contains("zero-length"), "{e}");
}

#[tokio::test]
async fn truncated_message_times_out() {
    let (e, took) = exec_error(|| {
        let mut b = header(2, 6);
        b.extend_from_slice(&[0u8; 8]);
        Action::Reply(b)
    })
    .await;
    assert!(e.to_string().contains("timed out"), "{e}");
    assert!(took >= Duration::from_millis(400));
}

#[tokio::test]
async fn truncated_message_then_close() {
    let closes = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let c2 = closes.clone();
    let (e, _) = exec_error(move || {
        if c2.swap(true, std::sync::atomic::Ordering::SeqCst) {
            Action::Close
        } else {
            let mut b = header(2, 6);
            b.extend_from_slice(&[0u8; 4]);
            Action::Reply(b)
        }
    })
    .await;
    assert!(e.is_connection_error(), "{e}");
}

#[tokio::test]
async fn silent_server_times_out() {
    let (e, _) = exec_error(|| Action::Hang).await;
    assert!(e.to_string().contains("read timed out"), "{e}");
}

#[tokio::test]
async fn closed_connection_is_reported() {
    let (e, _) = exec_error(|| Action::Close).await;
    assert!(e.to_string().contains("connection closed"), "{e}");
    assert!(e.is_outcome_unknown(), "a write was sent: outcome unknown");
}

#[tokio::test]
async fn wrong_response_type_is_typed() {
    let (e, _) = exec_error(|| {
        Action::Reply(encode(Response::Metadata {
            failure_domain: 1,
            weight: 2,
        }))
    })
    .await;
    assert!(matches!(e, Error::UnexpectedResponse { .. }), "{e:?}");
    assert!(e.to_string().contains("METADATA"), "{e}");
}

#[tokio::test]
async fn malformed_field_is_a_protocol_error() {
    // A RESULT body of one word instead of two.
    let (e, _) = exec_error(|| {
        let mut b = header(1, 6);
        b.extend_from_slice(&[1u8; 8]);
        Action::Reply(b)
    })
    .await;
    assert!(
        e.to_string().contains("malformed answer to EXEC_SQL"),
        "{e}"
    );
}

#[tokio::test]
async fn bad_rows_marker_mid_stream() {
    let addr = fake(|a| {
        one_node(
            a,
            Arc::new(|req, _| match req {
                Request::Open { .. } => Action::Reply(encode(Response::Db { db_id: 0 })),
                _ => {
                    let mut out = encode(Response::Rows(RowsBatch {
                        columns: vec!["x".into()],
                        rows: vec![vec![dqlite_wire::Value::Integer(7)]],
                        end: RowsEnd::Part,
                    }));
                    // Second batch: a column count, a name, then a bad marker word.
                    let mut body = 1u64.to_le_bytes().to_vec();
                    body.extend_from_slice(b"x\0\0\0\0\0\0\0");
                    body.extend_from_slice(&0xABu64.to_le_bytes());
                    body.extend_from_slice(&[0xAB; 8]);
                    out.extend(header((body.len() / 8) as u32, 7));
                    out.extend(body);
                    Action::Reply(out)
                }
            }),
        )
    })
    .await;
    let client = Client::connect_with([addr], quick_config()).await.unwrap();
    let mut db = client.open("x").await.unwrap();
    let mut rows = db.query("SELECT x FROM t", ()).await.unwrap();
    assert_eq!(
        rows.next_row()
            .await
            .unwrap()
            .unwrap()
            .get::<i64>(0)
            .unwrap(),
        7
    );
    let e = rows.next_row().await.unwrap().unwrap_err();
    assert!(matches!(e, Error::Protocol { .. }), "{e:?}");
    assert!(rows.next_row().await.is_none(), "a failed stream ends");
}

#[tokio::test]
async fn no_leader_is_bounded() {
    // A node that knows no leader: the client gives up after leader_timeout.
    let addr = fake(|_| {
        Arc::new(|req, _| match req {
            Request::Leader => Action::Reply(encode(Response::Server {
                node_id: 0,
                address: String::new(),
            })),
            _ => Action::Close,
        })
    })
    .await;
    let started = Instant::now();
    let e = Client::connect_with([addr.clone()], quick_config())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NoLeader { .. }), "{e:?}");
    assert!(e.to_string().contains(&addr));
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn follows_a_redirect_to_the_leader() {
    let leader = fake(|a| {
        one_node(
            a,
            Arc::new(|req, _| match req {
                Request::Open { .. } => Action::Reply(encode(Response::Db { db_id: 0 })),
                _ => Action::Reply(encode(Response::Result {
                    last_insert_id: 5,
                    rows_affected: 1,
                })),
            }),
        )
    })
    .await;
    let l2 = leader.clone();
    let follower = fake(move |_| {
        Arc::new(move |req, _| match req {
            Request::Leader => Action::Reply(encode(Response::Server {
                node_id: 1,
                address: l2.clone(),
            })),
            _ => Action::Reply(encode(Response::failure(10250, "not leader"))),
        })
    })
    .await;
    let client = Client::connect_with([follower], quick_config())
        .await
        .unwrap();
    let mut db = client.open("x").await.unwrap();
    assert_eq!(db.node(), Some(leader.as_str()));
    assert_eq!(db.exec("INSERT", ()).await.unwrap().last_insert_id, 5);
}

#[tokio::test]
async fn not_leader_is_retried_leadership_lost_is_not() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let execs = Arc::new(AtomicUsize::new(0));
    let e2 = execs.clone();
    let addr = fake(move |a| {
        let e2 = e2.clone();
        one_node(
            a,
            Arc::new(move |req, _| match req {
                Request::Open { .. } => Action::Reply(encode(Response::Db { db_id: 0 })),
                Request::ExecSql { sql, .. } => {
                    let n = e2.fetch_add(1, Ordering::SeqCst);
                    if sql == "lost" {
                        Action::Reply(encode(Response::failure(10506, "leadership lost")))
                    } else if n == 0 {
                        Action::Reply(encode(Response::failure(10250, "not leader")))
                    } else if n == 1 {
                        // What a node says after leadership went away and came back.
                        Action::Reply(encode(Response::failure(12, "no database opened")))
                    } else {
                        Action::Reply(encode(Response::Result {
                            last_insert_id: 1,
                            rows_affected: 1,
                        }))
                    }
                }
                _ => Action::Close,
            }),
        )
    })
    .await;
    let client = Client::connect_with([addr], quick_config()).await.unwrap();
    let mut db = client.open("x").await.unwrap();
    db.exec("write", ()).await.unwrap();
    assert_eq!(
        execs.load(Ordering::SeqCst),
        3,
        "refused twice, retried each time"
    );
    let e = db.exec("lost", ()).await.unwrap_err();
    assert!(e.is_outcome_unknown() && !e.is_retryable(), "{e}");
    assert_eq!(e.raw_code(), Some(10506));
    assert_eq!(execs.load(Ordering::SeqCst), 4, "never retried");
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn abstract_unix_socket_address() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("dqlite-client-fake-{}", std::process::id());
    let sa = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let l = std::os::unix::net::UnixListener::bind_addr(&sa).unwrap();
    l.set_nonblocking(true).unwrap();
    let l = tokio::net::UnixListener::from_std(l).unwrap();
    let addr = format!("@{name}");
    let handler = one_node(
        addr.clone(),
        Arc::new(|req, _| match req {
            Request::Open { .. } => Action::Reply(encode(Response::Db { db_id: 0 })),
            _ => Action::Reply(encode(Response::Result {
                last_insert_id: 9,
                rows_affected: 1,
            })),
        }),
    );
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve_conn(s, handler.clone()));
        }
    });
    let client = Client::connect_with([addr.clone()], quick_config())
        .await
        .unwrap();
    let mut db = client.open("x").await.unwrap();
    assert_eq!(db.node(), Some(addr.as_str()));
    assert_eq!(db.exec("INSERT", ()).await.unwrap().last_insert_id, 9);
}

/// TLS (feature `tls`): the client dials, handshakes with a cluster-wide certificate (as dqlite
/// clusters use: one certificate, both identity and only trusted root) and speaks the protocol.
#[cfg(feature = "tls")]
#[tokio::test]
async fn tls_with_a_shared_certificate() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let (crt, key) = (data.join("cluster.crt"), data.join("cluster.key"));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&crt)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let server_key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, server_key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let handler = one_node(
        addr.clone(),
        Arc::new(|req, _| match req {
            Request::Open { .. } => Action::Reply(encode(Response::Db { db_id: 0 })),
            _ => Action::Reply(encode(Response::Result {
                last_insert_id: 3,
                rows_affected: 1,
            })),
        }),
    );
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            let handler = handler.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(s).await {
                    serve_conn(tls, handler).await;
                }
            });
        }
    });

    let mut config = quick_config();
    config.tls = Some(dqlite_client::TlsConfig::from_shared_cert(&crt, &key, "dqlite").unwrap());
    let client = Client::connect_with([addr.clone()], config).await.unwrap();
    let mut db = client.open("x").await.unwrap();
    assert_eq!(db.exec("INSERT", ()).await.unwrap().last_insert_id, 3);

    // A name the certificate does not hold is refused during the handshake.
    let mut config = quick_config();
    config.tls = Some(dqlite_client::TlsConfig::from_shared_cert(&crt, &key, "elsewhere").unwrap());
    let e = Client::connect_with([addr], config).await.unwrap_err();
    assert!(e.to_string().contains("TLS"), "{e}");
}

#[tokio::test]
async fn admin_answers_of_the_wrong_type_name_the_node() {
    let addr = fake(|a| {
        one_node(
            a,
            Arc::new(|req, _| match req {
                Request::Describe { .. } => Action::Reply(encode(Response::Empty)),
                Request::Transfer { .. } => Action::Reply(encode(Response::Db { db_id: 0 })),
                _ => Action::Close,
            }),
        )
    })
    .await;
    let client = Client::connect_with([addr.clone()], quick_config())
        .await
        .unwrap();
    let e = client.describe(&addr).await.unwrap_err();
    assert!(matches!(e, Error::UnexpectedResponse { .. }), "{e:?}");
    assert_eq!(e.node(), Some(addr.as_str()));
    let e = client.transfer(2).await.unwrap_err();
    assert_eq!(e.node(), Some(addr.as_str()), "{e}");
    assert!(
        e.to_string()
            .contains("unexpected DB in answer to TRANSFER"),
        "{e}"
    );
}
