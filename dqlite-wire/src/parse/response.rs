//! Response parsers (§5): every response type, FAILURE with its step-error ROWS prefix,
//! SERVERS in both formats and FILES.

use super::error::{Error, IResult, fail, map_err};
use super::primitive::{count, end, padding, take_len, text, u32, u64};
use super::rows::{columns, rows_batch};
use super::tuple::{row_error, row_owned};
use crate::cluster::{File, NodeAddress, NodeInfo, Role};
use crate::error::DecodeErrorKind;
use crate::header::Header;
use crate::response::{Failure, Response, ResponseContext, ResponseType};
use crate::rows::RowsPrefix;

/// Renames an error's field `list.field` to `list[i].field`.
#[cold]
fn index(e: Error, list: &'static str, i: usize) -> Error {
    e.map_field(|f| format!("{list}[{i}]{}", f.strip_prefix(list).unwrap_or(f)))
}

/// A whole response body announced by `header`, answering what `ctx` says.
///
/// Strict about structure (bytes left after the last field are an error, except up to 7
/// bytes of final padding in FILES), lenient about padding content. A FAILURE answering
/// QUERY/QUERY_SQL that does not parse as exactly code + message is re-read as a ROWS
/// prefix followed by code + message (see [`failure`]).
pub fn response<'a>(
    header: &Header,
    ctx: &ResponseContext,
) -> impl Fn(&'a [u8]) -> IResult<'a, Response> {
    let header = *header;
    let ctx = *ctx;
    move |input: &'a [u8]| {
        let Some(t) = ResponseType::from_code(header.type_code) else {
            let kind = DecodeErrorKind::UnknownResponseType(header.type_code);
            return Err(fail(input, "type", kind).map(|e| e.in_message("response")));
        };
        let max_schema = u8::from(t == ResponseType::Stmt);
        if header.schema > max_schema {
            let kind = DecodeErrorKind::UnsupportedSchema(header.schema);
            return Err(fail(input, "schema", kind).map(|e| e.in_message(t.name())));
        }
        let legacy = t == ResponseType::Server && ctx.legacy_handshake;
        let name = if legacy { "SERVER_LEGACY" } else { t.name() };
        body(t, legacy, header.schema, &ctx, input).map_err(|e| map_err(e, |e| e.in_message(name)))
    }
}

fn body<'a>(
    t: ResponseType,
    legacy: bool,
    schema: u8,
    ctx: &ResponseContext,
    i: &'a [u8],
) -> IResult<'a, Response> {
    let (i, response) = match t {
        ResponseType::Rows => return rows_batch(i).map(|(i, b)| (i, Response::Rows(b))),
        ResponseType::Failure => {
            return failure(ctx.answers.is_query())(i).map(|(i, f)| (i, Response::Failure(f)));
        }
        ResponseType::Server if legacy => {
            let (i, address) = text("address")(i)?;
            (
                i,
                Response::ServerLegacy {
                    address: address.to_owned(),
                },
            )
        }
        ResponseType::Server => {
            let (i, node_id) = u64("node_id")(i)?;
            let (i, address) = text("address")(i)?;
            (
                i,
                Response::Server {
                    node_id,
                    address: address.to_owned(),
                },
            )
        }
        ResponseType::Welcome => {
            let (i, heartbeat_timeout) = u64("heartbeat_timeout")(i)?;
            (i, Response::Welcome { heartbeat_timeout })
        }
        ResponseType::Servers if ctx.cluster_format == 0 => {
            let (i, servers) = servers_format0(i)?;
            (i, Response::ServersFormat0 { servers })
        }
        ResponseType::Servers => {
            let (i, servers) = servers(i)?;
            (i, Response::Servers { servers })
        }
        ResponseType::Db => {
            let (i, db_id) = u32("db_id")(i)?;
            let (i, _) = u32("padding")(i)?;
            (i, Response::Db { db_id })
        }
        ResponseType::Stmt => {
            let (i, db_id) = u32("db_id")(i)?;
            let (i, stmt_id) = u32("stmt_id")(i)?;
            let (i, num_params) = u64("num_params")(i)?;
            if schema == 1 {
                let (i, offset) = u64("offset")(i)?;
                (
                    i,
                    Response::StmtWithOffset {
                        db_id,
                        stmt_id,
                        num_params,
                        offset,
                    },
                )
            } else {
                (
                    i,
                    Response::Stmt {
                        db_id,
                        stmt_id,
                        num_params,
                    },
                )
            }
        }
        ResponseType::Result => {
            let (i, last_insert_id) = u64("last_insert_id")(i)?;
            let (i, rows_affected) = u64("rows_affected")(i)?;
            (
                i,
                Response::Result {
                    last_insert_id,
                    rows_affected,
                },
            )
        }
        ResponseType::Empty => {
            let (i, _) = u64("unused")(i)?;
            (i, Response::Empty)
        }
        ResponseType::Files => {
            let (i, files) = files(i)?;
            (i, Response::Files { files })
        }
        ResponseType::Metadata => {
            let (i, failure_domain) = u64("failure_domain")(i)?;
            let (i, weight) = u64("weight")(i)?;
            (
                i,
                Response::Metadata {
                    failure_domain,
                    weight,
                },
            )
        }
    };
    let (i, ()) = end(i)?;
    Ok((i, response))
}

/// The nodes of a SERVERS body in format 1 (id, address, role), as CLUSTER format 1 answers.
pub fn servers(input: &[u8]) -> IResult<'_, Vec<NodeInfo>> {
    let (mut i, n) = count("servers.count", 24)(input)?;
    let mut servers = Vec::with_capacity(n);
    for k in 0..n {
        let at = |e| map_err(e, |e| index(e, "servers", k));
        let (next, id) = u64("servers.node_id")(i).map_err(at)?;
        let (next, address) = text("servers.address")(next).map_err(at)?;
        let (after, code) = u64("servers.role")(next).map_err(at)?;
        let Some(role) = Role::from_code(code) else {
            return Err(fail(
                next,
                format!("servers[{k}].role"),
                DecodeErrorKind::UnknownRole(code),
            ));
        };
        servers.push(NodeInfo {
            id,
            address: address.to_owned(),
            role,
        });
        i = after;
    }
    Ok((i, servers))
}

/// The nodes of a SERVERS body in format 0 (id, address).
pub fn servers_format0(input: &[u8]) -> IResult<'_, Vec<NodeAddress>> {
    let (mut i, n) = count("servers.count", 16)(input)?;
    let mut servers = Vec::with_capacity(n);
    for k in 0..n {
        let at = |e| map_err(e, |e| index(e, "servers", k));
        let (next, id) = u64("servers.node_id")(i).map_err(at)?;
        let (next, address) = text("servers.address")(next).map_err(at)?;
        servers.push(NodeAddress {
            id,
            address: address.to_owned(),
        });
        i = next;
    }
    Ok((i, servers))
}

/// The files of a FILES body (name, u64 size, unpadded content), and the padding of the
/// body's last word.
pub fn files(input: &[u8]) -> IResult<'_, Vec<File>> {
    let (mut i, n) = count("files.count", 16)(input)?;
    let mut files = Vec::with_capacity(n);
    for k in 0..n {
        let at = |e| map_err(e, |e| index(e, "files", k));
        let (next, name) = text("files.name")(i).map_err(at)?;
        let (next, size) = u64("files.size")(next).map_err(at)?;
        let (next, data) = take_len("files.data", size)(next).map_err(at)?;
        files.push(File {
            name: name.to_owned(),
            data: data.to_vec(),
        });
        i = next;
    }
    if i.len() < 8 {
        // Final padding of a body whose file sizes are not word multiples.
        let (next, ()) = padding("padding", i.len())(i)?;
        i = next;
    }
    Ok((i, files))
}

/// `u64 code` + one NUL-terminated padded text that ends the input.
fn code_and_message(input: &[u8]) -> IResult<'_, (u64, &str)> {
    let (i, code) = u64("code")(input)?;
    let (i, message) = text("message")(i)?;
    let (i, ()) = end(i)?;
    Ok((i, (code, message)))
}

/// A whole FAILURE body: code and message; when it answers a query (`answers_query`) and is
/// not exactly that, a ROWS prefix (column header and rows a C server had written before a
/// step error) followed by code and message.
///
/// The prefix is read row by row until the rest is exactly `u64 code` + one padded text
/// ending the body. The rule is unambiguous for real codes (below 2^56, so the code word
/// holds a NUL byte); a code word without any zero byte could make a row look like the
/// trailer.
pub fn failure<'a>(answers_query: bool) -> impl Fn(&'a [u8]) -> IResult<'a, Failure> {
    move |input: &'a [u8]| {
        let (i, code) = u64("code")(input)?;
        let (i, message) = text("message")(i)?;
        if i.is_empty() {
            return Ok((
                i,
                Failure {
                    code,
                    message: message.to_owned(),
                    rows_prefix: None,
                },
            ));
        }
        if !answers_query {
            end(i)?;
        }
        let (mut i, names) = columns(input)?;
        let mut rows = Vec::new();
        loop {
            if let Ok((rest, (code, message))) = code_and_message(i) {
                return Ok((
                    rest,
                    Failure {
                        code,
                        message: message.to_owned(),
                        rows_prefix: Some(RowsPrefix {
                            columns: names.iter().map(|s| (*s).to_owned()).collect(),
                            rows,
                        }),
                    },
                ));
            }
            if i.is_empty() || names.is_empty() {
                return Err(fail(i, "rows_prefix", DecodeErrorKind::BadFailurePrefix));
            }
            let index = rows.len();
            let (next, row) =
                row_owned(names.len())(i).map_err(|e| map_err(e, |e| row_error(e, index)))?;
            rows.push(row);
            i = next;
        }
    }
}
