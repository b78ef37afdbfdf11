//! The vectors' JSON conventions: 64-bit integers as decimal strings, floats as numbers (or
//! "NaN"/"inf"/"-inf"), blobs as hex, values as {"type", "value"}.

use dqlite_wire::{
    Failure, File, NodeAddress, NodeInfo, Params, ParamsSchema, Request, RequestType, Response,
    ResponseContext, Role, Row, RowsBatch, RowsEnd, RowsPrefix, Value,
};
use serde_json::{Value as Json, json};

fn s64(v: u64) -> Json {
    Json::String(v.to_string())
}

fn float_json(f: f64) -> Json {
    if f.is_nan() {
        json!("NaN")
    } else if f == f64::INFINITY {
        json!("inf")
    } else if f == f64::NEG_INFINITY {
        json!("-inf")
    } else {
        serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)
    }
}

pub fn value_to_json(v: &Value) -> Json {
    let value = match v {
        Value::Integer(i) | Value::UnixTime(i) => Json::String(i.to_string()),
        Value::Float(f) => float_json(*f),
        Value::Text(s) | Value::Iso8601(s) => Json::String(s.clone()),
        Value::Blob(b) => Json::String(hex::encode(b)),
        Value::Null => Json::Null,
        Value::Boolean(b) => s64(*b),
    };
    json!({"type": v.value_type().code(), "value": value})
}

fn rows_json(rows: &[Row]) -> Json {
    Json::Array(
        rows.iter()
            .map(|r| Json::Array(r.iter().map(value_to_json).collect()))
            .collect(),
    )
}

fn params_json(p: &Params) -> Json {
    match &p.values {
        None => Json::Null,
        Some(vs) => Json::Array(vs.iter().map(value_to_json).collect()),
    }
}

pub fn request_to_json(r: &Request) -> Json {
    match r {
        Request::Leader => json!({"unused": "0"}),
        Request::Client { client_id } => json!({"client_id": s64(*client_id)}),
        Request::Heartbeat { timestamp } => json!({"timestamp": s64(*timestamp)}),
        Request::Open { name, flags, vfs } => {
            json!({"name": name, "flags": s64(*flags), "vfs": vfs})
        }
        Request::Prepare { db_id, sql } | Request::PrepareWithOffset { db_id, sql } => {
            json!({"db_id": s64(*db_id), "sql": sql})
        }
        Request::Exec {
            db_id,
            stmt_id,
            params,
        }
        | Request::Query {
            db_id,
            stmt_id,
            params,
        } => json!({"db_id": db_id, "stmt_id": stmt_id, "params": params_json(params)}),
        Request::Finalize { db_id, stmt_id } => json!({"db_id": db_id, "stmt_id": stmt_id}),
        Request::ExecSql { db_id, sql, params } | Request::QuerySql { db_id, sql, params } => {
            json!({"db_id": s64(*db_id), "sql": sql, "params": params_json(params)})
        }
        Request::Interrupt { db_id } => json!({"db_id": s64(*db_id)}),
        Request::Connect { node_id, address } | Request::Add { node_id, address } => {
            json!({"node_id": s64(*node_id), "address": address})
        }
        Request::Assign { node_id, role } => match role {
            Some(role) => json!({"node_id": s64(*node_id), "role": s64(*role)}),
            None => json!({"node_id": s64(*node_id)}),
        },
        Request::Remove { node_id } | Request::Transfer { node_id } => {
            json!({"node_id": s64(*node_id)})
        }
        Request::Dump { name } => json!({"name": name}),
        Request::Cluster { format } | Request::Describe { format } => {
            json!({"format": s64(*format)})
        }
        Request::Weight { weight } => json!({"weight": s64(*weight)}),
    }
}

pub fn response_to_json(r: &Response) -> Json {
    match r {
        Response::Failure(f) => {
            let mut j = json!({"code": s64(f.code), "message": f.message});
            if let Some(p) = &f.rows_prefix {
                j["rows_prefix"] = json!({"columns": p.columns, "rows": rows_json(&p.rows)});
            }
            j
        }
        Response::Server { node_id, address } => {
            json!({"node_id": s64(*node_id), "address": address})
        }
        Response::ServerLegacy { address } => json!({"address": address}),
        Response::Welcome { heartbeat_timeout } => {
            json!({"heartbeat_timeout": s64(*heartbeat_timeout)})
        }
        Response::Servers { servers } => json!({"servers": servers
            .iter()
            .map(|s| json!({"node_id": s64(s.id), "address": s.address, "role": s64(s.role.code())}))
            .collect::<Vec<_>>()}),
        Response::ServersFormat0 { servers } => json!({"servers": servers
            .iter()
            .map(|s| json!({"node_id": s64(s.id), "address": s.address}))
            .collect::<Vec<_>>()}),
        Response::Db { db_id } => json!({"db_id": db_id, "padding": 0}),
        Response::Stmt {
            db_id,
            stmt_id,
            num_params,
        } => json!({"db_id": db_id, "stmt_id": stmt_id, "num_params": s64(*num_params)}),
        Response::StmtWithOffset {
            db_id,
            stmt_id,
            num_params,
            offset,
        } => json!({"db_id": db_id, "stmt_id": stmt_id, "num_params": s64(*num_params),
                    "offset": s64(*offset)}),
        Response::Result {
            last_insert_id,
            rows_affected,
        } => json!({"last_insert_id": s64(*last_insert_id), "rows_affected": s64(*rows_affected)}),
        Response::Rows(b) => json!({
            "columns": b.columns,
            "rows": rows_json(&b.rows),
            "end": match b.end { RowsEnd::Part => "part", RowsEnd::Done => "done" },
        }),
        Response::Empty => json!({"unused": "0"}),
        Response::Files { files } => json!({"files": files
            .iter()
            .map(|f| json!({"name": f.name, "size": s64(f.data.len() as u64), "data": hex::encode(&f.data)}))
            .collect::<Vec<_>>()}),
        Response::Metadata {
            failure_domain,
            weight,
        } => json!({"failure_domain": s64(*failure_domain), "weight": s64(*weight)}),
    }
}

/// Compares `want` (the vector) with `got` field by field; reports every mismatch by path.
pub fn compare(who: &str, want: &Json, got: &Json, mut fail: impl FnMut(String)) {
    let _ = who;
    compare_at("$", want, got, &mut fail);
}

fn compare_at(path: &str, want: &Json, got: &Json, fail: &mut dyn FnMut(String)) {
    match (want, got) {
        (Json::Object(w), Json::Object(g)) => {
            for (k, wv) in w {
                match g.get(k) {
                    Some(gv) => compare_at(&format!("{path}.{k}"), wv, gv, fail),
                    None => fail(format!("{path}.{k}: missing in decoded message")),
                }
            }
            for k in g.keys() {
                if !w.contains_key(k) {
                    fail(format!("{path}.{k}: decoded but not in the vector"));
                }
            }
        }
        (Json::Array(w), Json::Array(g)) => {
            if w.len() != g.len() {
                fail(format!(
                    "{path}: {} items in the vector, {} decoded",
                    w.len(),
                    g.len()
                ));
            }
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                compare_at(&format!("{path}[{i}]"), wv, gv, fail);
            }
        }
        (Json::Number(w), Json::Number(g)) => {
            let same = match (w.as_u64(), g.as_u64(), w.as_i64(), g.as_i64()) {
                (Some(a), Some(b), _, _) => a == b,
                (_, _, Some(a), Some(b)) => a == b,
                // Floats: bit for bit, so -0.0 != 0.0.
                _ => w.as_f64().map(f64::to_bits) == g.as_f64().map(f64::to_bits),
            };
            if !same {
                fail(format!("{path}: vector {w}, decoded {g}"));
            }
        }
        _ => {
            if want != got {
                fail(format!("{path}: vector {want}, decoded {got}"));
            }
        }
    }
}

// ---- building messages from the JSON -------------------------------------------------------

type R<T> = Result<T, String>;

fn field<'a>(j: &'a Json, k: &str) -> R<&'a Json> {
    j.get(k).ok_or_else(|| format!("missing field {k}"))
}

fn u64_of(j: &Json) -> R<u64> {
    match j {
        Json::String(s) => s.parse().map_err(|e| format!("{s:?}: {e}")),
        Json::Number(n) => n.as_u64().ok_or_else(|| format!("{n} is not a u64")),
        other => Err(format!("{other} is not an integer")),
    }
}

fn i64_of(j: &Json) -> R<i64> {
    match j {
        Json::String(s) => s.parse().map_err(|e| format!("{s:?}: {e}")),
        Json::Number(n) => n.as_i64().ok_or_else(|| format!("{n} is not an i64")),
        other => Err(format!("{other} is not an integer")),
    }
}

fn u64_field(j: &Json, k: &str) -> R<u64> {
    u64_of(field(j, k)?)
}

fn u32_field(j: &Json, k: &str) -> R<u32> {
    u32::try_from(u64_field(j, k)?).map_err(|e| format!("{k}: {e}"))
}

fn str_field(j: &Json, k: &str) -> R<String> {
    field(j, k)?
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{k} is not a string"))
}

fn str_of(j: &Json) -> R<String> {
    j.as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{j} is not a string"))
}

pub fn value_from_json(j: &Json) -> R<Value> {
    let ty = field(j, "type")?.as_u64().ok_or("type is not a number")?;
    let v = field(j, "value")?;
    Ok(match ty {
        1 => Value::Integer(i64_of(v)?),
        2 => Value::Float(match v {
            Json::String(s) if s == "NaN" => f64::NAN,
            Json::String(s) if s == "inf" => f64::INFINITY,
            Json::String(s) if s == "-inf" => f64::NEG_INFINITY,
            other => other
                .as_f64()
                .ok_or_else(|| format!("{other} is not a float"))?,
        }),
        3 => Value::Text(str_of(v)?),
        4 => Value::Blob(hex::decode(str_of(v)?).map_err(|e| e.to_string())?),
        5 => Value::Null,
        9 => Value::UnixTime(i64_of(v)?),
        10 => Value::Iso8601(str_of(v)?),
        11 => Value::Boolean(u64_of(v)?),
        other => return Err(format!("unknown value type {other}")),
    })
}

fn rows_from_json(j: &Json) -> R<Vec<Row>> {
    j.as_array()
        .ok_or("rows is not a list")?
        .iter()
        .map(|row| {
            row.as_array()
                .ok_or_else(|| "row is not a list".to_owned())?
                .iter()
                .map(value_from_json)
                .collect()
        })
        .collect()
}

fn strings(j: &Json) -> R<Vec<String>> {
    j.as_array()
        .ok_or("not a list")?
        .iter()
        .map(str_of)
        .collect()
}

fn params_from_json(j: &Json, schema: u8) -> R<Params> {
    let values = match field(j, "params")? {
        Json::Null => None,
        Json::Array(vs) => Some(vs.iter().map(value_from_json).collect::<R<Vec<_>>>()?),
        other => return Err(format!("params {other} is neither null nor a list")),
    };
    Ok(Params {
        values,
        schema: if schema == 1 {
            ParamsSchema::Wide
        } else {
            ParamsSchema::Auto
        },
    })
}

pub fn request_from_json(type_code: u8, schema: u8, j: &Json) -> R<Request> {
    let t = RequestType::from_code(type_code).ok_or("unknown request type")?;
    Ok(match t {
        RequestType::Leader => Request::Leader,
        RequestType::Client => Request::Client {
            client_id: u64_field(j, "client_id")?,
        },
        RequestType::Heartbeat => Request::Heartbeat {
            timestamp: u64_field(j, "timestamp")?,
        },
        RequestType::Open => Request::Open {
            name: str_field(j, "name")?,
            flags: u64_field(j, "flags")?,
            vfs: str_field(j, "vfs")?,
        },
        RequestType::Prepare if schema == 1 => Request::PrepareWithOffset {
            db_id: u64_field(j, "db_id")?,
            sql: str_field(j, "sql")?,
        },
        RequestType::Prepare => Request::Prepare {
            db_id: u64_field(j, "db_id")?,
            sql: str_field(j, "sql")?,
        },
        RequestType::Exec => Request::Exec {
            db_id: u32_field(j, "db_id")?,
            stmt_id: u32_field(j, "stmt_id")?,
            params: params_from_json(j, schema)?,
        },
        RequestType::Query => Request::Query {
            db_id: u32_field(j, "db_id")?,
            stmt_id: u32_field(j, "stmt_id")?,
            params: params_from_json(j, schema)?,
        },
        RequestType::Finalize => Request::Finalize {
            db_id: u32_field(j, "db_id")?,
            stmt_id: u32_field(j, "stmt_id")?,
        },
        RequestType::ExecSql => Request::ExecSql {
            db_id: u64_field(j, "db_id")?,
            sql: str_field(j, "sql")?,
            params: params_from_json(j, schema)?,
        },
        RequestType::QuerySql => Request::QuerySql {
            db_id: u64_field(j, "db_id")?,
            sql: str_field(j, "sql")?,
            params: params_from_json(j, schema)?,
        },
        RequestType::Interrupt => Request::Interrupt {
            db_id: u64_field(j, "db_id")?,
        },
        RequestType::Connect => Request::Connect {
            node_id: u64_field(j, "node_id")?,
            address: str_field(j, "address")?,
        },
        RequestType::Add => Request::Add {
            node_id: u64_field(j, "node_id")?,
            address: str_field(j, "address")?,
        },
        RequestType::Assign => Request::Assign {
            node_id: u64_field(j, "node_id")?,
            role: j.get("role").map(u64_of).transpose()?,
        },
        RequestType::Remove => Request::Remove {
            node_id: u64_field(j, "node_id")?,
        },
        RequestType::Dump => Request::Dump {
            name: str_field(j, "name")?,
        },
        RequestType::Cluster => Request::Cluster {
            format: u64_field(j, "format")?,
        },
        RequestType::Transfer => Request::Transfer {
            node_id: u64_field(j, "node_id")?,
        },
        RequestType::Describe => Request::Describe {
            format: u64_field(j, "format")?,
        },
        RequestType::Weight => Request::Weight {
            weight: u64_field(j, "weight")?,
        },
    })
}

pub fn response_from_json(
    type_code: u8,
    schema: u8,
    ctx: &ResponseContext,
    j: &Json,
) -> R<Response> {
    Ok(match type_code {
        0 => Response::Failure(Failure {
            code: u64_field(j, "code")?,
            message: str_field(j, "message")?,
            rows_prefix: match j.get("rows_prefix") {
                None | Some(Json::Null) => None,
                Some(p) => Some(RowsPrefix {
                    columns: strings(field(p, "columns")?)?,
                    rows: rows_from_json(field(p, "rows")?)?,
                }),
            },
        }),
        1 if ctx.legacy_handshake => Response::ServerLegacy {
            address: str_field(j, "address")?,
        },
        1 => Response::Server {
            node_id: u64_field(j, "node_id")?,
            address: str_field(j, "address")?,
        },
        2 => Response::Welcome {
            heartbeat_timeout: u64_field(j, "heartbeat_timeout")?,
        },
        3 => {
            let list = field(j, "servers")?
                .as_array()
                .ok_or("servers is not a list")?;
            if ctx.cluster_format == 0 {
                Response::ServersFormat0 {
                    servers: list
                        .iter()
                        .map(|s| {
                            Ok(NodeAddress {
                                id: u64_field(s, "node_id")?,
                                address: str_field(s, "address")?,
                            })
                        })
                        .collect::<R<_>>()?,
                }
            } else {
                Response::Servers {
                    servers: list
                        .iter()
                        .map(|s| {
                            let code = u64_field(s, "role")?;
                            Ok(NodeInfo {
                                id: u64_field(s, "node_id")?,
                                address: str_field(s, "address")?,
                                role: Role::from_code(code)
                                    .ok_or_else(|| format!("unknown role {code}"))?,
                            })
                        })
                        .collect::<R<_>>()?,
                }
            }
        }
        4 => Response::Db {
            db_id: u32_field(j, "db_id")?,
        },
        5 if schema == 1 => Response::StmtWithOffset {
            db_id: u32_field(j, "db_id")?,
            stmt_id: u32_field(j, "stmt_id")?,
            num_params: u64_field(j, "num_params")?,
            offset: u64_field(j, "offset")?,
        },
        5 => Response::Stmt {
            db_id: u32_field(j, "db_id")?,
            stmt_id: u32_field(j, "stmt_id")?,
            num_params: u64_field(j, "num_params")?,
        },
        6 => Response::Result {
            last_insert_id: u64_field(j, "last_insert_id")?,
            rows_affected: u64_field(j, "rows_affected")?,
        },
        7 => Response::Rows(RowsBatch {
            columns: strings(field(j, "columns")?)?,
            rows: rows_from_json(field(j, "rows")?)?,
            end: match str_field(j, "end")?.as_str() {
                "part" => RowsEnd::Part,
                "done" => RowsEnd::Done,
                other => return Err(format!("end {other:?}")),
            },
        }),
        8 => Response::Empty,
        9 => Response::Files {
            files: field(j, "files")?
                .as_array()
                .ok_or("files is not a list")?
                .iter()
                .map(|f| {
                    let data = hex::decode(str_field(f, "data")?).map_err(|e| e.to_string())?;
                    if u64_field(f, "size")? != data.len() as u64 {
                        return Err("size != data length".to_owned());
                    }
                    Ok(File {
                        name: str_field(f, "name")?,
                        data,
                    })
                })
                .collect::<R<_>>()?,
        },
        10 => Response::Metadata {
            failure_domain: u64_field(j, "failure_domain")?,
            weight: u64_field(j, "weight")?,
        },
        other => return Err(format!("unknown response type {other}")),
    })
}
