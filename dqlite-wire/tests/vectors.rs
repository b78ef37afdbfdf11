//! Golden vectors: every message captured from the C server (format in the vectors README)
//! is decoded and compared field by field with its `decoded` JSON, built back from that JSON
//! and re-encoded, and transcripts are replayed message by message.
//!
//! The folder is `$DQLITE_VECTORS`, or the repository's `vectors/` (see its README for where
//! they come from). The test fails when the folder is missing or holds no vectors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/json.rs"]
mod json;

use std::path::{Path, PathBuf};

use dqlite_wire::{
    Header, ProtocolVersion, Request, RequestError, RequestType, Response, ResponseContext,
    RowsEncoder, RowsEnd, ValueRef,
};
use serde_json::Value as Json;

use json::{compare, request_from_json, request_to_json, response_from_json, response_to_json};

fn vectors_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DQLITE_VECTORS") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("vectors")
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn load(path: &Path) -> Json {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

/// Outcome counters and disagreements.
#[derive(Default)]
struct Report {
    messages: usize,
    exact: usize,
    padding_only: usize,
    unixtime_params: usize,
    failures: Vec<String>,
}

impl Report {
    fn fail(&mut self, who: &str, what: String) {
        self.failures.push(format!("{who}: {what}"));
    }
}

/// Checks the header against the vector's `type`/`schema` and the length rule.
fn check_frame(who: &str, bytes: &[u8], v: &Json, r: &mut Report) -> Option<Header> {
    let Some(header) = Header::from_prefix(bytes) else {
        r.fail(who, "shorter than a header".into());
        return None;
    };
    if header.body_len() != bytes.len() - 8 {
        r.fail(
            who,
            format!("words {} but {} body bytes", header.words, bytes.len() - 8),
        );
        return None;
    }
    if let Some(t) = v.get("type").and_then(Json::as_u64)
        && t != u64::from(header.type_code)
    {
        r.fail(
            who,
            format!("type {t} but header says {}", header.type_code),
        );
    }
    if let Some(s) = v.get("schema").and_then(Json::as_u64)
        && s != u64::from(header.schema)
    {
        r.fail(who, format!("schema {s} but header says {}", header.schema));
    }
    Some(header)
}

/// Re-encoding check: exact, or (when `exact` is false) same length with differences only in
/// bits that decoding ignores (our encoding only clears bits there, e.g. padding bytes or the
/// unused nibble of an odd row header, and decodes to the same value).
fn check_reencode(
    who: &str,
    original: &[u8],
    encoded: &[u8],
    exact: bool,
    same_decoding: impl Fn(&[u8]) -> bool,
    r: &mut Report,
) {
    if original == encoded {
        r.exact += 1;
        return;
    }
    if exact {
        r.fail(
            who,
            format!(
                "re-encoding differs:\n  want {}\n  got  {}",
                hex::encode(original),
                hex::encode(encoded)
            ),
        );
        return;
    }
    if original.len() != encoded.len() {
        r.fail(
            who,
            format!("re-encoded length {} != {}", encoded.len(), original.len()),
        );
        return;
    }
    let outside_padding = original
        .iter()
        .zip(encoded)
        .enumerate()
        .filter(|(_, (a, b))| **a & **b != **b)
        .count();
    if outside_padding > 0 || !same_decoding(encoded) {
        r.fail(who, "re-encoding differs outside ignored padding".into());
        return;
    }
    r.padding_only += 1;
}

/// True when a `params` JSON list holds a UNIXTIME value, which this codec refuses in
/// requests by design (servers answer FAILURE).
fn has_unixtime_param(decoded: &Json) -> bool {
    decoded
        .get("params")
        .and_then(Json::as_array)
        .is_some_and(|ps| {
            ps.iter()
                .any(|p| p.get("type").and_then(Json::as_u64) == Some(9))
        })
}

/// Decodes and checks one request; returns it for transcripts.
fn check_request(
    who: &str,
    bytes: &[u8],
    v: &Json,
    decoded: &Json,
    exact: bool,
    r: &mut Report,
) -> Option<Request> {
    let header = check_frame(who, bytes, v, r)?;
    r.messages += 1;
    let request = match Request::decode(&header, &bytes[8..]) {
        Ok(request) => request,
        Err(RequestError::Params { partial, error }) if has_unixtime_param(decoded) => {
            // Type 9 in params: a typed params error carrying the fixed fields.
            if error.kind != dqlite_wire::DecodeErrorKind::UnixTimeParam {
                r.fail(
                    who,
                    format!("expected a UNIXTIME params error, got {error}"),
                );
            }
            let mut want = decoded.clone();
            want["params"] = Json::Null;
            compare(who, &want, &request_to_json(&partial), r_fail(r, who));
            r.unixtime_params += 1;
            return Some(*partial);
        }
        Err(e) => {
            r.fail(who, format!("decode: {e}"));
            return None;
        }
    };
    let got = request_to_json(&request);
    compare(who, decoded, &got, r_fail(r, who));
    match request_from_json(header.type_code, header.schema, decoded) {
        Ok(built) if built == request => {}
        Ok(built) => r.fail(
            who,
            format!("built from JSON {built:?} != decoded {request:?}"),
        ),
        Err(e) => r.fail(who, format!("cannot build from JSON: {e}")),
    }
    let encoded = request.to_bytes().unwrap();
    check_reencode(
        who,
        bytes,
        &encoded,
        exact,
        |b| Request::decode_message(b).ok().as_ref() == Some(&request),
        r,
    );
    Some(request)
}

fn check_response(
    who: &str,
    bytes: &[u8],
    v: &Json,
    decoded: &Json,
    ctx: &ResponseContext,
    exact: bool,
    r: &mut Report,
) -> Option<Response> {
    let header = check_frame(who, bytes, v, r)?;
    r.messages += 1;
    let response = match Response::decode(&header, &bytes[8..], ctx) {
        Ok(response) => response,
        Err(e) => {
            r.fail(who, format!("decode: {e}"));
            return None;
        }
    };
    compare(who, decoded, &response_to_json(&response), r_fail(r, who));
    match response_from_json(header.type_code, header.schema, ctx, decoded) {
        Ok(built) if built == response => {}
        Ok(built) => r.fail(
            who,
            format!("built from JSON {built:?} != decoded {response:?}"),
        ),
        Err(e) => r.fail(who, format!("cannot build from JSON: {e}")),
    }
    let encoded = response.to_bytes().unwrap();
    check_reencode(
        who,
        bytes,
        &encoded,
        exact,
        |b| Response::decode_message(b, ctx).ok().as_ref() == Some(&response),
        r,
    );
    Some(response)
}

/// Adapter: collect comparison mismatches into the report.
fn r_fail<'a>(r: &'a mut Report, who: &'a str) -> impl FnMut(String) + 'a {
    move |msg| r.fail(who, msg)
}

fn check_handshake(who: &str, bytes: &[u8], decoded: &Json, r: &mut Report) -> Option<bool> {
    r.messages += 1;
    let Ok(word) = <[u8; 8]>::try_from(bytes) else {
        r.fail(who, format!("handshake of {} bytes", bytes.len()));
        return None;
    };
    let want = decoded.get("version").and_then(Json::as_str).unwrap_or("");
    match ProtocolVersion::decode(word) {
        Ok(v) => {
            if v.code().to_string() != want {
                r.fail(who, format!("version {} != {want}", v.code()));
            }
            if v.to_bytes() == word {
                r.exact += 1;
            }
            Some(v.is_legacy())
        }
        Err(e) => {
            r.fail(who, format!("handshake: {e}"));
            None
        }
    }
}

fn context_from_json(who: &str, c: &Json, r: &mut Report) -> Option<ResponseContext> {
    let answers = c.get("answers").and_then(Json::as_str).unwrap_or("");
    let Some(t) = RequestType::from_name(answers) else {
        r.fail(who, format!("unknown decode_context.answers {answers:?}"));
        return None;
    };
    let mut ctx = ResponseContext::new(t);
    if let Some(l) = c.get("legacy_handshake").and_then(Json::as_bool) {
        ctx = ctx.legacy(l);
    }
    if let Some(f) = c.get("cluster_format").and_then(|f| {
        f.as_u64()
            .or_else(|| f.as_str().and_then(|s| s.parse().ok()))
    }) {
        ctx = ctx.cluster_format(f);
    }
    Some(ctx)
}

fn check_vector(path: &Path, r: &mut Report) {
    let v = load(path);
    let who = path.file_name().unwrap().to_string_lossy().into_owned();
    let bytes = unhex(v["hex"].as_str().unwrap());
    let decoded = &v["decoded"];
    let exact = v
        .get("exact_reencode")
        .and_then(Json::as_bool)
        .unwrap_or(true);
    match v["direction"].as_str().unwrap_or("") {
        "handshake" => {
            check_handshake(&who, &bytes, decoded, r);
        }
        "request" => {
            check_request(&who, &bytes, &v, decoded, exact, r);
        }
        "response" => {
            let Some(ctx) = context_from_json(&who, &v["decode_context"], r) else {
                return;
            };
            check_response(&who, &bytes, &v, decoded, &ctx, exact, r);
        }
        other => r.fail(&who, format!("unknown direction {other:?}")),
    }
}

/// Re-batches the rows of one streamed result with [`RowsEncoder`] (C's 4096-byte budget)
/// and compares with the recorded batches.
fn check_batching(who: &str, recorded: &[(Vec<u8>, Response)], r: &mut Report) {
    let Some((_, Response::Rows(first))) = recorded.first() else {
        return;
    };
    let mut enc = RowsEncoder::new(&first.columns).unwrap();
    let mut ours = Vec::new();
    let rows: Vec<_> = recorded
        .iter()
        .flat_map(|(_, resp)| match resp {
            Response::Rows(b) => b.rows.clone(),
            _ => Vec::new(),
        })
        .collect();
    let mut it = rows.iter();
    loop {
        if enc.is_full() {
            ours.push(enc.finish(RowsEnd::Part).unwrap());
        }
        match it.next() {
            Some(row) => {
                let refs: Vec<ValueRef<'_>> = row.iter().map(|v| v.as_ref()).collect();
                enc.push_row(&refs).unwrap();
            }
            None => break,
        }
    }
    ours.push(enc.finish(RowsEnd::Done).unwrap());
    if ours.len() != recorded.len() {
        r.fail(
            who,
            format!(
                "RowsEncoder made {} batches, the server sent {}",
                ours.len(),
                recorded.len()
            ),
        );
        return;
    }
    for (i, (mine, (theirs, _))) in ours.iter().zip(recorded).enumerate() {
        if mine.len() != theirs.len() || mine.iter().zip(theirs).any(|(a, b)| a & b != *a) {
            r.fail(
                who,
                format!("RowsEncoder batch {i} differs from the server's"),
            );
        }
    }
}

fn check_transcript(path: &Path, r: &mut Report) {
    let t = load(path);
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let steps = t["steps"].as_array().cloned().unwrap_or_default();
    if steps.is_empty() {
        r.fail(&name, "no steps".into());
        return;
    }
    let mut legacy = false;
    let mut last_request: Option<Request> = None;
    let mut open_query: Option<Request> = None;
    let mut rows_run: Vec<(Vec<u8>, Response)> = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let who = format!("{name} step {i}");
        let decoded = &step["decoded"];
        let what = step.get("what").and_then(Json::as_str).unwrap_or("");
        if let Some(hex) = step.get("send").and_then(Json::as_str) {
            let bytes = unhex(hex);
            if i == 0 {
                match check_handshake(&who, &bytes, decoded, r) {
                    Some(l) => legacy = l,
                    None => return,
                }
                continue;
            }
            let Some(req) = check_request(&who, &bytes, step, decoded, true, r) else {
                continue;
            };
            if RequestType::from_name(what).is_some_and(|t| t != req.request_type()) {
                r.fail(
                    &who,
                    format!("`what` {what} but decoded {}", req.request_type()),
                );
            }
            last_request = Some(req);
        } else if let Some(hex) = step.get("recv").and_then(Json::as_str) {
            let bytes = unhex(hex);
            // While a query's result is streaming (last batch PART), responses still answer
            // that query, even if an INTERRUPT was sent meanwhile (it is only read after the
            // stream ends, and its EMPTY decodes the same in any context).
            let Some(req) = open_query.as_ref().or(last_request.as_ref()) else {
                r.fail(&who, "response before any request".into());
                continue;
            };
            let ctx = ResponseContext::for_request(req).legacy(legacy);
            let Some(resp) = check_response(&who, &bytes, step, decoded, &ctx, false, r) else {
                continue;
            };
            let name_ok = match &resp {
                Response::ServerLegacy { .. } => matches!(what, "SERVER_LEGACY" | "SERVER"),
                Response::StmtWithOffset { .. } => matches!(what, "STMT_WITH_OFFSET" | "STMT"),
                other => {
                    dqlite_wire::ResponseType::from_code(bytes[4]).map(|t| t.name())
                        == Some(other.response_type().name())
                        && (what.is_empty()
                            || !is_response_name(what)
                            || what == other.response_type().name())
                }
            };
            if !name_ok {
                r.fail(&who, format!("`what` {what} but decoded {resp:?}"));
            }
            let end = match &resp {
                Response::Rows(b) => Some(b.end),
                _ => None,
            };
            open_query = match end {
                Some(RowsEnd::Part) => Some(req.clone()),
                _ => None,
            };
            if end.is_some() {
                rows_run.push((bytes, resp));
            }
            if end == Some(RowsEnd::Done) {
                check_batching(&who, &rows_run, r);
                rows_run.clear();
            } else if end.is_none() {
                rows_run.clear();
            }
        } else {
            r.fail(&who, "step has neither send nor recv".into());
        }
    }
}

fn is_response_name(s: &str) -> bool {
    (0..=255u8)
        .filter_map(dqlite_wire::ResponseType::from_code)
        .any(|t| t.name() == s)
}

#[test]
fn golden_vectors() {
    let dir = vectors_dir();
    let vectors = json_files(&dir);
    let transcripts = json_files(&dir.join("transcripts"));
    assert!(
        !vectors.is_empty() || !transcripts.is_empty(),
        "no vectors in {} (set DQLITE_VECTORS)",
        dir.display()
    );
    let mut r = Report::default();
    for path in &vectors {
        check_vector(path, &mut r);
    }
    let single = r.messages;
    for path in &transcripts {
        check_transcript(path, &mut r);
    }
    println!(
        "checked {} vector files ({single} messages) and {} transcripts ({} messages) in {}: \
         {} re-encoded exactly, {} equal but for ignored padding, {} requests with UNIXTIME \
         params refused as designed",
        vectors.len(),
        transcripts.len(),
        r.messages - single,
        dir.display(),
        r.exact,
        r.padding_only,
        r.unixtime_params,
    );
    assert!(
        r.failures.is_empty(),
        "{} disagreements:\n{}",
        r.failures.len(),
        r.failures.join("\n")
    );
}
