//! Request parsers (§4): the fixed fields of every request, then the parameter tuple.

use super::error::{IResult, fail, map_err};
use super::primitive::{text, u32, u64};
use super::tuple::params;
use crate::error::DecodeErrorKind;
use crate::header::Header;
use crate::request::{Request, RequestType};
use crate::tuple::{Params, ParamsSchema};

/// The highest header schema a request type has.
pub(crate) fn max_schema(t: RequestType) -> u8 {
    match t {
        RequestType::Prepare
        | RequestType::Exec
        | RequestType::Query
        | RequestType::ExecSql
        | RequestType::QuerySql => 1,
        _ => 0,
    }
}

/// Omitted parameters with the layout of header schema `schema`.
fn absent(schema: u8) -> Params {
    Params {
        values: None,
        schema: if schema == 1 {
            ParamsSchema::Wide
        } else {
            ParamsSchema::Auto
        },
    }
}

/// The fixed fields of the request `header` announces (ids, texts), with the parameters of
/// EXEC, QUERY, EXEC_SQL and QUERY_SQL left omitted: the rest of the input is their tuple
/// (see [`params`]). Bytes after the last fixed field are left in the rest, as C servers
/// ignore them.
///
/// Type and schema errors are reported where the whole input is (offset 0 of a body).
pub fn request_fields<'a>(header: &Header) -> impl Fn(&'a [u8]) -> IResult<'a, Request> {
    let header = *header;
    move |input: &'a [u8]| {
        let Some(t) = RequestType::from_code(header.type_code) else {
            let kind = DecodeErrorKind::UnknownRequestType(header.type_code);
            return Err(fail(input, "type", kind).map(|e| e.in_message("request")));
        };
        if header.schema > max_schema(t) {
            let kind = DecodeErrorKind::UnsupportedSchema(header.schema);
            return Err(fail(input, "schema", kind).map(|e| e.in_message(t.name())));
        }
        fields(t, header.schema, input).map_err(|e| map_err(e, |e| e.in_message(t.name())))
    }
}

fn fields(t: RequestType, schema: u8, input: &[u8]) -> IResult<'_, Request> {
    let i = input;
    Ok(match t {
        RequestType::Leader => {
            let (i, _) = u64("unused")(i)?;
            (i, Request::Leader)
        }
        RequestType::Client => {
            let (i, client_id) = u64("client_id")(i)?;
            (i, Request::Client { client_id })
        }
        RequestType::Heartbeat => {
            let (i, timestamp) = u64("timestamp")(i)?;
            (i, Request::Heartbeat { timestamp })
        }
        RequestType::Open => {
            let (i, name) = text("name")(i)?;
            let (i, flags) = u64("flags")(i)?;
            let (i, vfs) = text("vfs")(i)?;
            (
                i,
                Request::Open {
                    name: name.to_owned(),
                    flags,
                    vfs: vfs.to_owned(),
                },
            )
        }
        RequestType::Prepare => {
            let (i, db_id) = u64("db_id")(i)?;
            let (i, sql) = text("sql")(i)?;
            let sql = sql.to_owned();
            if schema == 1 {
                (i, Request::PrepareWithOffset { db_id, sql })
            } else {
                (i, Request::Prepare { db_id, sql })
            }
        }
        RequestType::Exec | RequestType::Query => {
            let (i, db_id) = u32("db_id")(i)?;
            let (i, stmt_id) = u32("stmt_id")(i)?;
            let params = absent(schema);
            if t == RequestType::Exec {
                (
                    i,
                    Request::Exec {
                        db_id,
                        stmt_id,
                        params,
                    },
                )
            } else {
                (
                    i,
                    Request::Query {
                        db_id,
                        stmt_id,
                        params,
                    },
                )
            }
        }
        RequestType::Finalize => {
            let (i, db_id) = u32("db_id")(i)?;
            let (i, stmt_id) = u32("stmt_id")(i)?;
            (i, Request::Finalize { db_id, stmt_id })
        }
        RequestType::ExecSql | RequestType::QuerySql => {
            let (i, db_id) = u64("db_id")(i)?;
            let (i, sql) = text("sql")(i)?;
            let sql = sql.to_owned();
            let params = absent(schema);
            if t == RequestType::ExecSql {
                (i, Request::ExecSql { db_id, sql, params })
            } else {
                (i, Request::QuerySql { db_id, sql, params })
            }
        }
        RequestType::Interrupt => {
            let (i, db_id) = u64("db_id")(i)?;
            (i, Request::Interrupt { db_id })
        }
        RequestType::Connect | RequestType::Add => {
            let (i, node_id) = u64("node_id")(i)?;
            let (i, address) = text("address")(i)?;
            let address = address.to_owned();
            if t == RequestType::Connect {
                (i, Request::Connect { node_id, address })
            } else {
                (i, Request::Add { node_id, address })
            }
        }
        RequestType::Assign => {
            let (i, node_id) = u64("node_id")(i)?;
            // A second word is the role; less than a word left is the PROMOTE form.
            let (i, role) = if i.len() >= 8 {
                let (i, role) = u64("role")(i)?;
                (i, Some(role))
            } else {
                (i, None)
            };
            (i, Request::Assign { node_id, role })
        }
        RequestType::Remove => {
            let (i, node_id) = u64("node_id")(i)?;
            (i, Request::Remove { node_id })
        }
        RequestType::Dump => {
            let (i, name) = text("name")(i)?;
            (
                i,
                Request::Dump {
                    name: name.to_owned(),
                },
            )
        }
        RequestType::Cluster => {
            let (i, format) = u64("format")(i)?;
            (i, Request::Cluster { format })
        }
        RequestType::Transfer => {
            let (i, node_id) = u64("node_id")(i)?;
            (i, Request::Transfer { node_id })
        }
        RequestType::Describe => {
            let (i, format) = u64("format")(i)?;
            (i, Request::Describe { format })
        }
        RequestType::Weight => {
            let (i, weight) = u64("weight")(i)?;
            (i, Request::Weight { weight })
        }
    })
}

/// The parameter tuple of `request` (decoded by [`request_fields`]) from the rest of the
/// body, stored into it; a request without parameters is returned as it is.
pub fn request_params<'a>(
    request: Request,
    schema: u8,
) -> impl FnOnce(&'a [u8]) -> IResult<'a, Request> {
    move |input: &'a [u8]| {
        let mut request = request;
        let name = request.request_type().name();
        let rest = match &mut request {
            Request::Exec { params: p, .. }
            | Request::Query { params: p, .. }
            | Request::ExecSql { params: p, .. }
            | Request::QuerySql { params: p, .. } => {
                let (rest, decoded) =
                    params(schema)(input).map_err(|e| map_err(e, |e| e.in_message(name)))?;
                *p = decoded;
                rest
            }
            _ => input,
        };
        Ok((rest, request))
    }
}

/// A whole request body announced by `header`: the fixed fields, then the parameters. Bytes
/// after the last field are left in the rest (C servers ignore them).
///
/// Servers that must tell a broken fixed field (close the connection) from broken parameters
/// (answer FAILURE) use [`Request::decode`], or [`request_fields`] and [`request_params`].
pub fn request<'a>(header: &Header) -> impl Fn(&'a [u8]) -> IResult<'a, Request> {
    let header = *header;
    move |input: &'a [u8]| {
        let (rest, fixed) = request_fields(&header)(input)?;
        request_params(fixed, header.schema)(rest)
    }
}
