//! Property tests: every message type round-trips through encode/decode with arbitrary
//! values (NaN payloads, -0.0, i64/u64 extremes, empty and 1 MiB texts and blobs, 0 and 300
//! parameters), encoding is canonical, and the framer reassembles any chunking of a stream.
//!
//! Case count: `PROPTEST_CASES` (default 64 per property, to keep `cargo test` fast).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use dqlite_wire::{
    Failure, File, FrameError, Framer, Header, NodeAddress, NodeInfo, Params, ParamsSchema,
    ProtocolVersion, Request, RequestType, Response, ResponseContext, Role, Row, RowsBatch,
    RowsEnd, RowsPrefix, RowsReader, Value, ValueRef,
};
use proptest::collection::vec;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const MIB: usize = 1 << 20;

fn small_text() -> impl Strategy<Value = String> {
    "[^\u{0}]{0,24}"
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[^\u{0}]{0,24}",
        1 => Just(String::new()),
        1 => Just("ünïcødé ✓".repeat(3)),
        // 1 MiB of two-byte characters.
        1 => Just("é".repeat(MIB / 2)),
    ]
}

fn blob() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => vec(any::<u8>(), 0..24),
        1 => Just(Vec::new()),
        1 => any::<u8>().prop_map(|b| vec![b; MIB]),
    ]
}

fn int() -> impl Strategy<Value = i64> {
    prop_oneof![
        any::<i64>(),
        Just(i64::MIN),
        Just(i64::MAX),
        Just(0),
        Just(-1)
    ]
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        // Every bit pattern, NaN payloads included.
        any::<u64>().prop_map(f64::from_bits),
        Just(-0.0),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
    ]
}

fn u64_edge() -> impl Strategy<Value = u64> {
    prop_oneof![any::<u64>(), Just(0), Just(u64::MAX), Just(1 << 63)]
}

/// Values accepted as parameters (no UNIXTIME).
fn param_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        int().prop_map(Value::Integer),
        float().prop_map(Value::Float),
        text().prop_map(Value::Text),
        blob().prop_map(Value::Blob),
        Just(Value::Null),
        text().prop_map(Value::Iso8601),
        u64_edge().prop_map(Value::Boolean),
    ]
}

/// Small parameter values, for the 300-parameter case.
fn small_param_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        int().prop_map(Value::Integer),
        float().prop_map(Value::Float),
        small_text().prop_map(Value::Text),
        vec(any::<u8>(), 0..24).prop_map(Value::Blob),
        Just(Value::Null),
        small_text().prop_map(Value::Iso8601),
        u64_edge().prop_map(Value::Boolean),
    ]
}

/// Values that may appear in rows (all eight types).
fn row_value() -> impl Strategy<Value = Value> {
    prop_oneof![7 => param_value(), 1 => int().prop_map(Value::UnixTime)]
}

fn params() -> impl Strategy<Value = Params> {
    let values = prop_oneof![
        1 => Just(None),
        1 => Just(Some(Vec::new())),
        6 => vec(param_value(), 1..8).prop_map(Some),
        1 => vec(small_param_value(), 300).prop_map(Some),
    ];
    (values, any::<bool>()).prop_map(|(values, wide)| Params {
        values,
        schema: if wide {
            ParamsSchema::Wide
        } else {
            ParamsSchema::Auto
        },
    })
}

/// What decoding yields: more than 255 values always come back as schema 1.
fn normalize(mut r: Request) -> Request {
    if let Request::Exec { params, .. }
    | Request::Query { params, .. }
    | Request::ExecSql { params, .. }
    | Request::QuerySql { params, .. } = &mut r
        && params.header_schema() == 1
    {
        params.schema = ParamsSchema::Wide;
    }
    r
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        Just(Request::Leader),
        u64_edge().prop_map(|client_id| Request::Client { client_id }),
        u64_edge().prop_map(|timestamp| Request::Heartbeat { timestamp }),
        (text(), u64_edge(), text()).prop_map(|(name, flags, vfs)| Request::Open {
            name,
            flags,
            vfs
        }),
        (u64_edge(), text()).prop_map(|(db_id, sql)| Request::Prepare { db_id, sql }),
        (u64_edge(), text()).prop_map(|(db_id, sql)| Request::PrepareWithOffset { db_id, sql }),
        (any::<u32>(), any::<u32>(), params()).prop_map(|(db_id, stmt_id, params)| {
            Request::Exec {
                db_id,
                stmt_id,
                params,
            }
        }),
        (any::<u32>(), any::<u32>(), params()).prop_map(|(db_id, stmt_id, params)| {
            Request::Query {
                db_id,
                stmt_id,
                params,
            }
        }),
        (any::<u32>(), any::<u32>())
            .prop_map(|(db_id, stmt_id)| Request::Finalize { db_id, stmt_id }),
        (u64_edge(), text(), params()).prop_map(|(db_id, sql, params)| Request::ExecSql {
            db_id,
            sql,
            params
        }),
        (u64_edge(), text(), params()).prop_map(|(db_id, sql, params)| Request::QuerySql {
            db_id,
            sql,
            params
        }),
        u64_edge().prop_map(|db_id| Request::Interrupt { db_id }),
        (u64_edge(), text()).prop_map(|(node_id, address)| Request::Connect { node_id, address }),
        (u64_edge(), text()).prop_map(|(node_id, address)| Request::Add { node_id, address }),
        (u64_edge(), proptest::option::of(u64_edge()))
            .prop_map(|(node_id, role)| Request::Assign { node_id, role }),
        u64_edge().prop_map(|node_id| Request::Remove { node_id }),
        text().prop_map(|name| Request::Dump { name }),
        u64_edge().prop_map(|format| Request::Cluster { format }),
        u64_edge().prop_map(|node_id| Request::Transfer { node_id }),
        u64_edge().prop_map(|format| Request::Describe { format }),
        u64_edge().prop_map(|weight| Request::Weight { weight }),
    ]
}

fn rows(ncols: usize) -> impl Strategy<Value = Vec<Row>> {
    vec(vec(row_value(), ncols), 0..4)
}

fn columns() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![4 => vec("[^\u{0}]{0,12}", 0..6), 1 => vec("[a-z]{1,3}", 17..40)]
}

fn rows_batch() -> impl Strategy<Value = RowsBatch> {
    columns().prop_flat_map(|columns| {
        let n = columns.len();
        (
            Just(columns),
            if n == 0 {
                Just(Vec::new()).boxed()
            } else {
                rows(n).boxed()
            },
            prop_oneof![Just(RowsEnd::Part), Just(RowsEnd::Done)],
        )
            .prop_map(|(columns, rows, end)| RowsBatch { columns, rows, end })
    })
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Voter), Just(Role::Standby), Just(Role::Spare)]
}

/// A response and the context that decodes it.
fn response() -> impl Strategy<Value = (Response, ResponseContext)> {
    let plain = |t: RequestType| ResponseContext::new(t);
    prop_oneof![
        (u64_edge(), text()).prop_map(move |(code, message)| (
            Response::failure(code, message),
            plain(RequestType::ExecSql)
        )),
        // The step-error FAILURE of C servers; real codes are < 2^32 (see Failure docs).
        (
            any::<u32>(),
            text(),
            columns().prop_filter("needs columns", |c| !c.is_empty())
        )
            .prop_flat_map(|(code, message, columns)| {
                let n = columns.len();
                (Just(code), Just(message), Just(columns), rows(n))
            })
            .prop_map(move |(code, message, columns, rows)| (
                Response::Failure(Failure {
                    code: u64::from(code),
                    message,
                    rows_prefix: Some(RowsPrefix { columns, rows }),
                }),
                plain(RequestType::QuerySql)
            )),
        (u64_edge(), text()).prop_map(move |(node_id, address)| (
            Response::Server { node_id, address },
            plain(RequestType::Leader)
        )),
        text().prop_map(move |address| (
            Response::ServerLegacy { address },
            plain(RequestType::Leader).legacy(true)
        )),
        u64_edge().prop_map(move |heartbeat_timeout| (
            Response::Welcome { heartbeat_timeout },
            plain(RequestType::Client)
        )),
        vec((u64_edge(), text(), role()), 0..5).prop_map(move |s| (
            Response::Servers {
                servers: s
                    .into_iter()
                    .map(|(id, address, role)| NodeInfo { id, address, role })
                    .collect()
            },
            plain(RequestType::Cluster)
        )),
        vec((u64_edge(), text()), 0..5).prop_map(move |s| (
            Response::ServersFormat0 {
                servers: s
                    .into_iter()
                    .map(|(id, address)| NodeAddress { id, address })
                    .collect()
            },
            plain(RequestType::Cluster).cluster_format(0)
        )),
        any::<u32>().prop_map(move |db_id| (Response::Db { db_id }, plain(RequestType::Open))),
        (any::<u32>(), any::<u32>(), u64_edge()).prop_map(move |(db_id, stmt_id, num_params)| (
            Response::Stmt {
                db_id,
                stmt_id,
                num_params
            },
            plain(RequestType::Prepare)
        )),
        (any::<u32>(), any::<u32>(), u64_edge(), u64_edge()).prop_map(
            move |(db_id, stmt_id, num_params, offset)| (
                Response::StmtWithOffset {
                    db_id,
                    stmt_id,
                    num_params,
                    offset
                },
                plain(RequestType::Prepare)
            )
        ),
        (u64_edge(), u64_edge()).prop_map(move |(last_insert_id, rows_affected)| (
            Response::Result {
                last_insert_id,
                rows_affected
            },
            plain(RequestType::Exec)
        )),
        rows_batch().prop_map(move |b| (Response::Rows(b), plain(RequestType::Query))),
        Just((Response::Empty, plain(RequestType::Finalize))),
        vec((text(), blob()), 0..3).prop_map(move |f| (
            Response::Files {
                files: f
                    .into_iter()
                    .map(|(name, data)| File { name, data })
                    .collect()
            },
            plain(RequestType::Dump)
        )),
        (u64_edge(), u64_edge()).prop_map(move |(failure_domain, weight)| (
            Response::Metadata {
                failure_domain,
                weight
            },
            plain(RequestType::Describe)
        )),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn requests_round_trip(r in request()) {
        let bytes = r.to_bytes().unwrap();
        prop_assert_eq!(bytes.len() % 8, 0);
        let header = Header::from_prefix(&bytes).unwrap();
        prop_assert_eq!(header.body_len(), bytes.len() - 8);
        prop_assert_eq!(header.type_code, r.request_type().code());
        let back = Request::decode(&header, &bytes[8..]).unwrap();
        prop_assert_eq!(&back, &normalize(r));
        // Canonical: decoding then encoding gives the same bytes.
        prop_assert_eq!(back.to_bytes().unwrap(), bytes);
    }

    #[test]
    fn responses_round_trip((r, ctx) in response()) {
        let bytes = r.to_bytes().unwrap();
        prop_assert_eq!(bytes.len() % 8, 0);
        let back = Response::decode_message(&bytes, &ctx).unwrap();
        prop_assert_eq!(&back, &r);
        prop_assert_eq!(back.to_bytes().unwrap(), bytes);
    }

    #[test]
    fn rows_reader_agrees_with_owned_decoding(b in rows_batch()) {
        let bytes = Response::Rows(b.clone()).to_bytes().unwrap();
        let mut reader = RowsReader::new(&bytes[8..]).unwrap();
        prop_assert_eq!(reader.end(), b.end);
        prop_assert_eq!(reader.columns().len(), b.columns.len());
        let mut got = Vec::new();
        let mut row = Vec::new();
        while reader.next_row_into(&mut row).unwrap() {
            got.push(row.iter().map(ValueRef::to_value).collect::<Row>());
        }
        prop_assert_eq!(got, b.rows);
    }

    #[test]
    fn params_never_carry_unixtime(values in vec(param_value(), 0..4), at in 0usize..4, t in int()) {
        let mut values = values;
        let at = at.min(values.len());
        values.insert(at, Value::UnixTime(t));
        let r = Request::exec_sql("SELECT 1", values);
        prop_assert!(r.to_bytes().is_err());
    }

    #[test]
    fn framer_reassembles_any_chunking(
        requests in vec(request(), 1..6),
        cuts in vec(any::<prop::sample::Index>(), 0..12),
        legacy in any::<bool>(),
    ) {
        let version = if legacy { ProtocolVersion::Legacy } else { ProtocolVersion::V1 };
        let mut stream = version.to_bytes().to_vec();
        for r in &requests {
            r.encode(&mut stream).unwrap();
        }
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        cuts.push(0);
        cuts.push(stream.len());
        cuts.sort_unstable();
        let mut framer = Framer::server();
        let mut got = Vec::new();
        let mut handshake = None;
        for w in cuts.windows(2) {
            framer.push(&stream[w[0]..w[1]]);
            if framer.expects_handshake() {
                match framer.next_handshake().unwrap() {
                    Some(v) => handshake = Some(v),
                    None => continue,
                }
            }
            while let Some(frame) = framer.next_frame().unwrap() {
                got.push(frame.decode_request().unwrap());
            }
        }
        prop_assert_eq!(handshake, Some(version));
        let want: Vec<Request> = requests.into_iter().map(normalize).collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(framer.buffered(), 0);
        prop_assert_eq!(framer.needed(), 8);
    }

    #[test]
    fn framer_rejects_oversize_before_the_body_arrives(
        words in 1u32..,
        type_code in any::<u8>(),
        max in 0usize..4096,
    ) {
        let header = Header { words, type_code, schema: 0, extra: 0 };
        let mut framer = Framer::new().with_max_body(max);
        framer.push(&header.to_bytes());
        let result = framer.next_frame();
        if header.body_len() > max {
            prop_assert_eq!(result, Err(FrameError::BodyTooLarge { words, type_code, max }));
            // Nothing was reserved for the body.
            prop_assert!(framer.buffer_mut().capacity() <= 64);
        } else {
            prop_assert_eq!(result, Ok(None));
            prop_assert_eq!(framer.needed(), header.body_len());
        }
    }
}

#[test]
fn mib_values_and_300_params_round_trip() {
    let big_text = "x".repeat(MIB);
    let big_blob = vec![0xA5u8; MIB];
    let r = Request::ExecSql {
        db_id: 0,
        sql: big_text.clone(),
        params: Params::new(
            (0..300)
                .map(|i| match i % 3 {
                    0 => Value::Text(big_text.clone()),
                    1 => Value::Blob(big_blob.clone()),
                    _ => Value::Integer(i64::MIN + i),
                })
                .take(300)
                .collect(),
        ),
    };
    // 100 texts and 100 blobs of 1 MiB: ~200 MiB would be slow; keep 3 big ones instead.
    let Request::ExecSql { params, .. } = &r else {
        unreachable!()
    };
    let mut values = params.values().to_vec();
    for v in values.iter_mut().skip(3) {
        if !matches!(v, Value::Integer(_)) {
            *v = Value::Null;
        }
    }
    let r = Request::exec_sql(big_text, values);
    assert_eq!(r.schema(), 1);
    let bytes = r.to_bytes().unwrap();
    assert_eq!(&bytes[8 + 8 + MIB + 8..][..4], &300u32.to_le_bytes());
    let back = Request::decode_message(&bytes).unwrap();
    assert_eq!(back, normalize(r));
}

#[test]
fn zero_params_three_ways() {
    for (params, extra_words) in [
        (Params::omitted(), 0),
        (Params::explicit(vec![]), 1),
        (Params::explicit(vec![]).wide(), 1),
    ] {
        let r = Request::Exec {
            db_id: 0,
            stmt_id: 1,
            params: params.clone(),
        };
        let bytes = r.to_bytes().unwrap();
        assert_eq!(bytes.len(), 16 + 8 * extra_words);
        assert_eq!(Request::decode_message(&bytes).unwrap(), r);
    }
}
