//! Malformed input: every case gives a typed error naming the message, field and offset, and
//! no length field makes the decoder reserve more than the input holds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use dqlite_wire::{
    DecodeError, DecodeErrorKind, Header, Request, RequestError, RequestType, Response,
    ResponseContext,
};

fn header(type_code: u8, schema: u8, body: &[u8]) -> Header {
    Header {
        words: (body.len() / 8) as u32,
        type_code,
        schema,
        extra: 0,
    }
}

fn words(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(p);
        while out.len() % 8 != 0 {
            out.push(0);
        }
    }
    out
}

fn u64le(v: u64) -> [u8; 8] {
    v.to_le_bytes()
}

fn response_error(type_code: u8, answers: RequestType, body: &[u8]) -> DecodeError {
    Response::decode(
        &header(type_code, 0, body),
        body,
        &ResponseContext::new(answers),
    )
    .unwrap_err()
}

fn params_error(type_code: u8, schema: u8, body: &[u8]) -> DecodeError {
    match Request::decode(&header(type_code, schema, body), body) {
        Err(RequestError::Params { error, .. }) => error,
        other => panic!("expected a params error, got {other:?}"),
    }
}

#[test]
fn impossible_counts_are_rejected_before_allocating() {
    // ROWS with 2^60 columns.
    let body = words(&[&u64le(1 << 60), &u64le(u64::MAX)]);
    let e = response_error(7, RequestType::Query, &body);
    assert_eq!(
        (e.message, e.field.as_ref(), e.offset),
        ("ROWS", "columns.count", 8)
    );
    assert!(matches!(e.kind, DecodeErrorKind::CountTooLarge { count, .. } if count == 1 << 60));
    // FILES with 2^60 files, and a file larger than the body.
    let body = words(&[&u64le(1 << 60), b"db\0"]);
    let e = response_error(9, RequestType::Dump, &body);
    assert!(matches!(e.kind, DecodeErrorKind::CountTooLarge { .. }));
    let body = words(&[&u64le(1), b"db\0", &u64le(u64::MAX - 3), &[0; 8]]);
    let e = response_error(9, RequestType::Dump, &body);
    assert_eq!(e.field, "files[0].data");
    assert!(matches!(e.kind, DecodeErrorKind::Truncated { .. }));
    // SERVERS (format 0) with u64::MAX entries.
    let body = words(&[&u64le(u64::MAX), &[0; 16]]);
    let e = Response::decode(
        &header(3, 0, &body),
        &body,
        &ResponseContext::new(RequestType::Cluster).cluster_format(0),
    )
    .unwrap_err();
    assert!(matches!(e.kind, DecodeErrorKind::CountTooLarge { .. }));
    // Schema-0 params announcing 255 values with 3 bytes behind the count.
    let body = words(&[&[0, 0, 0, 0, 7, 0, 0, 0], &[255, 1, 1]]);
    let e = params_error(5, 0, &body[..11]);
    assert!(matches!(e.kind, DecodeErrorKind::CountTooLarge { .. }));
}

#[test]
fn params_errors_name_the_value() {
    let fixed = [0u8, 0, 0, 0, 1, 0, 0, 0]; // EXEC db 0 stmt 1
    // Type 0.
    let body = words(&[&fixed, &[1, 0], &u64le(0)]);
    let e = params_error(5, 0, &body);
    assert_eq!(e.kind, DecodeErrorKind::UnknownValueType(0));
    assert_eq!((e.field.as_ref(), e.offset), ("params.types[0]", 9));
    // A value missing.
    let body = words(&[&fixed, &[2, 1, 1], &u64le(5)]);
    let e = params_error(5, 0, &body);
    assert_eq!((e.field.as_ref(), e.offset), ("params[1]", 24));
    assert!(matches!(e.kind, DecodeErrorKind::Truncated { .. }));
    // A blob whose length runs past the body.
    let body = words(&[&fixed, &[1, 4], &u64le(100), &[1; 8]]);
    let e = params_error(5, 0, &body);
    assert_eq!(e.field, "params[0]");
    // A schema-1 count word cut short: fixed fields are fine, params are not.
    let body = words(&[&fixed, &[3, 0, 0, 0, 1, 1, 1, 0], &u64le(1), &u64le(2)]);
    let e = params_error(6, 1, &body);
    assert_eq!(e.message, "QUERY");
    assert_eq!(e.field, "params[2]");
}

#[test]
fn fixed_field_errors_close_the_connection() {
    // OPEN with only the name.
    let body = words(&[b"db\0"]);
    match Request::decode(&header(3, 0, &body), &body) {
        Err(e @ RequestError::Malformed(_)) => assert_eq!(e.classic_failure(), None),
        other => panic!("{other:?}"),
    }
    // EXEC_SQL whose SQL has no NUL.
    let body = words(&[&u64le(0), b"SELECT 1"]);
    match Request::decode(&header(8, 0, &body), &body) {
        Err(RequestError::Malformed(e)) => {
            assert_eq!(
                (e.message, e.field.as_ref(), e.offset),
                ("EXEC_SQL", "sql", 8)
            );
            assert_eq!(e.kind, DecodeErrorKind::MissingNul);
        }
        other => panic!("{other:?}"),
    }
    // Invalid UTF-8 text.
    let body = words(&[&[0xff, 0xfe, 0]]);
    match Request::decode(&header(15, 0, &body), &body) {
        Err(RequestError::Malformed(e)) => assert_eq!(e.kind, DecodeErrorKind::InvalidUtf8),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rows_errors() {
    // A row whose nibble says type 6.
    let body = words(&[&u64le(1), b"a\0", &[0x06], &u64le(0), &u64le(u64::MAX)]);
    let e = response_error(7, RequestType::QuerySql, &body);
    assert_eq!(e.kind, DecodeErrorKind::UnknownValueType(6));
    assert_eq!((e.field.as_ref(), e.offset), ("rows[0].types[0]", 16));
    // A marker that is neither PART nor DONE.
    let body = words(&[&u64le(0), &u64le(0xEEEE_EEEE_EEEE_EEEF)]);
    let e = response_error(7, RequestType::QuerySql, &body);
    assert_eq!(e.kind, DecodeErrorKind::BadMarker(0xEEEE_EEEE_EEEE_EEEF));
    assert_eq!(e.offset, 8);
}

#[test]
fn failure_leftovers() {
    // Leftover bytes in a FAILURE that does not answer a query.
    let body = words(&[&u64le(1), b"boom\0", &u64le(1), b"integer overflow\0"]);
    let e = response_error(0, RequestType::ExecSql, &body);
    assert!(matches!(e.kind, DecodeErrorKind::TrailingBytes(_)));
    // The same bytes answering QUERY_SQL are a step error with a ROWS prefix.
    let r = Response::decode(
        &header(0, 0, &body),
        &body,
        &ResponseContext::new(RequestType::QuerySql),
    )
    .unwrap();
    let Response::Failure(f) = r else {
        panic!("{r:?}")
    };
    assert_eq!((f.code, f.message.as_str()), (1, "integer overflow"));
    assert_eq!(f.rows_prefix.unwrap().columns, ["boom"]);
    // Leftovers that are not a ROWS prefix either.
    let body = words(&[&u64le(1), b"boom\0", &[0x0f; 8]]);
    let e = response_error(0, RequestType::Query, &body);
    assert!(matches!(
        e.kind,
        DecodeErrorKind::UnknownValueType(15) | DecodeErrorKind::BadFailurePrefix
    ));
}

#[test]
fn every_truncation_of_valid_messages_is_an_error_not_a_panic() {
    let messages: Vec<(Vec<u8>, ResponseContext)> = vec![
        (
            Response::failure(1, "no such table: x")
                .to_bytes()
                .unwrap()
                .to_vec(),
            ResponseContext::new(RequestType::Query),
        ),
        (
            Response::Rows(dqlite_wire::RowsBatch {
                columns: vec!["a".into(), "b".into()],
                rows: vec![vec![
                    dqlite_wire::Value::Blob(vec![1; 9]),
                    dqlite_wire::Value::Text("x".into()),
                ]],
                end: dqlite_wire::RowsEnd::Done,
            })
            .to_bytes()
            .unwrap()
            .to_vec(),
            ResponseContext::new(RequestType::Query),
        ),
    ];
    for (m, ctx) in messages {
        for cut in 8..m.len() {
            let body = &m[8..cut];
            let h = Header::from_prefix(&m).unwrap();
            assert!(Response::decode(&h, body, &ctx).is_err(), "cut at {cut}");
        }
    }
}
