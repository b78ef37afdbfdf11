//! The seam between the client and `dqlite-wire`: the only module that touches wire types.
//!
//! Requests are described by [`Req`] (borrowing the caller's SQL and values) and encoded by
//! `dqlite-wire`; responses are decoded by `dqlite-wire` and turned into [`Resp`], which holds
//! the client's public types ([`Value`], [`NodeInfo`], both `dqlite-wire`'s). No byte layout
//! is written here.

use bytes::BytesMut;
use dqlite_wire as wire;

pub use wire::{File, NodeInfo, Role};

use crate::Value;
use crate::error::{Error, Result};

/// A request, as the client layers describe it.
#[derive(Debug, Clone)]
pub(crate) enum Req<'a> {
    Leader,
    Client { id: u64 },
    Open { name: &'a str },
    Prepare { sql: &'a str },
    Exec { stmt: u32, params: &'a [Value] },
    Query { stmt: u32, params: &'a [Value] },
    Finalize { stmt: u32 },
    ExecSql { sql: &'a str, params: &'a [Value] },
    QuerySql { sql: &'a str, params: &'a [Value] },
    Interrupt,
    Add { id: u64, address: &'a str },
    Assign { id: u64, role: Role },
    Remove { id: u64 },
    Dump { name: &'a str },
    Cluster,
    Transfer { id: u64 },
    Describe,
    Weight { weight: u64 },
}

impl Req<'_> {
    /// The request's protocol name, for errors.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Req::Leader => "LEADER",
            Req::Client { .. } => "CLIENT",
            Req::Open { .. } => "OPEN",
            Req::Prepare { .. } => "PREPARE",
            Req::Exec { .. } => "EXEC",
            Req::Query { .. } => "QUERY",
            Req::Finalize { .. } => "FINALIZE",
            Req::ExecSql { .. } => "EXEC_SQL",
            Req::QuerySql { .. } => "QUERY_SQL",
            Req::Interrupt => "INTERRUPT",
            Req::Add { .. } => "ADD",
            Req::Assign { .. } => "ASSIGN",
            Req::Remove { .. } => "REMOVE",
            Req::Dump { .. } => "DUMP",
            Req::Cluster => "CLUSTER",
            Req::Transfer { .. } => "TRANSFER",
            Req::Describe => "DESCRIBE",
            Req::Weight { .. } => "WEIGHT",
        }
    }

    /// Whether a FAILURE answering this request may carry a ROWS prefix (query step errors),
    /// and whether ROWS may answer it (INTERRUPT drains the rest of a query).
    fn is_query_like(&self) -> bool {
        matches!(
            self,
            Req::Query { .. } | Req::QuerySql { .. } | Req::Interrupt
        )
    }
}

/// One ROWS message, converted.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Batch {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// True when more batches follow (PART marker).
    pub more: bool,
}

/// A response, converted to client types.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Resp {
    Failure {
        code: u64,
        message: String,
    },
    Server {
        id: u64,
        address: String,
    },
    Welcome {
        heartbeat_timeout: u64,
    },
    Servers(Vec<NodeInfo>),
    Db {
        id: u32,
    },
    Stmt {
        db: u32,
        id: u32,
        params: u64,
    },
    Result {
        last_insert_id: u64,
        rows_affected: u64,
    },
    Rows(Batch),
    Empty,
    Files(Vec<File>),
    Metadata {
        failure_domain: u64,
        weight: u64,
    },
}

impl Resp {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Resp::Failure { .. } => "FAILURE",
            Resp::Server { .. } => "SERVER",
            Resp::Welcome { .. } => "WELCOME",
            Resp::Servers(_) => "SERVERS",
            Resp::Db { .. } => "DB",
            Resp::Stmt { .. } => "STMT",
            Resp::Result { .. } => "RESULT",
            Resp::Rows(_) => "ROWS",
            Resp::Empty => "EMPTY",
            Resp::Files(_) => "FILES",
            Resp::Metadata { .. } => "METADATA",
        }
    }
}

/// The protocol version handshake (version 1).
pub(crate) fn encode_handshake(out: &mut BytesMut) {
    out.extend_from_slice(&wire::ProtocolVersion::V1.to_bytes());
}

fn params(values: &[Value]) -> wire::Params {
    wire::Params::new(
        values
            .iter()
            .map(|v| match v {
                // Servers refuse type 9 in parameters; the stored value is the integer.
                Value::UnixTime(i) => Value::Integer(*i),
                v => v.clone(),
            })
            .collect(),
    )
}

fn to_wire(req: &Req<'_>) -> wire::Request {
    use wire::Request as W;
    match req {
        Req::Leader => W::Leader,
        Req::Client { id } => W::Client { client_id: *id },
        Req::Open { name } => W::Open {
            name: (*name).to_owned(),
            flags: 0,
            vfs: "volatile".to_owned(),
        },
        Req::Prepare { sql } => W::Prepare {
            db_id: 0,
            sql: (*sql).to_owned(),
        },
        Req::Exec { stmt, params: p } => W::Exec {
            db_id: 0,
            stmt_id: *stmt,
            params: params(p),
        },
        Req::Query { stmt, params: p } => W::Query {
            db_id: 0,
            stmt_id: *stmt,
            params: params(p),
        },
        Req::Finalize { stmt } => W::Finalize {
            db_id: 0,
            stmt_id: *stmt,
        },
        Req::ExecSql { sql, params: p } => W::ExecSql {
            db_id: 0,
            sql: (*sql).to_owned(),
            params: params(p),
        },
        Req::QuerySql { sql, params: p } => W::QuerySql {
            db_id: 0,
            sql: (*sql).to_owned(),
            params: params(p),
        },
        Req::Interrupt => W::Interrupt { db_id: 0 },
        Req::Add { id, address } => W::Add {
            node_id: *id,
            address: (*address).to_owned(),
        },
        Req::Assign { id, role } => W::Assign {
            node_id: *id,
            role: Some(role.code()),
        },
        Req::Remove { id } => W::Remove { node_id: *id },
        Req::Dump { name } => W::Dump {
            name: (*name).to_owned(),
        },
        Req::Cluster => W::Cluster { format: 1 },
        Req::Transfer { id } => W::Transfer { node_id: *id },
        // Format 0 only: C servers crash on any other.
        Req::Describe => W::Describe { format: 0 },
        Req::Weight { weight } => W::Weight { weight: *weight },
    }
}

/// Encode a request (header + body) into `out`.
pub(crate) fn encode_request(req: &Req<'_>, out: &mut BytesMut) -> Result<()> {
    to_wire(req)
        .encode(out)
        .map_err(|e| Error::Usage(format!("cannot encode {}: {e}", req.name())))
}

/// Cuts the response stream into frames (a poisoned framer keeps failing).
pub(crate) struct FrameReader(wire::Framer);

impl FrameReader {
    pub(crate) fn new(max_body: usize) -> FrameReader {
        FrameReader(wire::Framer::new().with_max_body(max_body))
    }

    /// The buffer to read socket bytes into.
    pub(crate) fn buffer_mut(&mut self) -> &mut BytesMut {
        self.0.buffer_mut()
    }

    /// The next whole message, if one is buffered.
    pub(crate) fn next_frame(&mut self) -> std::result::Result<Option<wire::Frame>, String> {
        self.0.next_frame().map_err(|e| e.to_string())
    }
}

fn request_type(req: &Req<'_>) -> wire::RequestType {
    if req.is_query_like() {
        // A drain after INTERRUPT reads the rest of a query: same rules as the query.
        return wire::RequestType::QuerySql;
    }
    to_wire_type(req)
}

fn to_wire_type(req: &Req<'_>) -> wire::RequestType {
    use wire::RequestType as T;
    match req {
        Req::Leader => T::Leader,
        Req::Client { .. } => T::Client,
        Req::Open { .. } => T::Open,
        Req::Prepare { .. } => T::Prepare,
        Req::Exec { .. } => T::Exec,
        Req::Query { .. } => T::Query,
        Req::Finalize { .. } => T::Finalize,
        Req::ExecSql { .. } => T::ExecSql,
        Req::QuerySql { .. } => T::QuerySql,
        Req::Interrupt => T::Interrupt,
        Req::Add { .. } => T::Add,
        Req::Assign { .. } => T::Assign,
        Req::Remove { .. } => T::Remove,
        Req::Dump { .. } => T::Dump,
        Req::Cluster => T::Cluster,
        Req::Transfer { .. } => T::Transfer,
        Req::Describe => T::Describe,
        Req::Weight { .. } => T::Weight,
    }
}

/// Decode one response frame answering `answers` and convert it to client types.
pub(crate) fn decode_response(
    frame: &wire::Frame,
    answers: &Req<'_>,
) -> std::result::Result<Resp, String> {
    use wire::Response as W;
    let ctx = wire::ResponseContext::new(request_type(answers)).cluster_format(1);
    let resp = frame.decode_response(&ctx).map_err(|e| e.to_string())?;
    Ok(match resp {
        W::Failure(f) => Resp::Failure {
            code: f.code,
            message: f.message,
        },
        W::Server { node_id, address } => Resp::Server {
            id: node_id,
            address,
        },
        W::ServerLegacy { address } => Resp::Server { id: 0, address },
        W::Welcome { heartbeat_timeout } => Resp::Welcome { heartbeat_timeout },
        W::Servers { servers } => Resp::Servers(servers),
        W::ServersFormat0 { servers } => Resp::Servers(
            servers
                .into_iter()
                .map(|n| NodeInfo {
                    id: n.id,
                    address: n.address,
                    role: Role::Voter,
                })
                .collect(),
        ),
        W::Db { db_id } => Resp::Db { id: db_id },
        W::Stmt {
            db_id,
            stmt_id,
            num_params,
        }
        | W::StmtWithOffset {
            db_id,
            stmt_id,
            num_params,
            ..
        } => Resp::Stmt {
            db: db_id,
            id: stmt_id,
            params: num_params,
        },
        W::Result {
            last_insert_id,
            rows_affected,
        } => Resp::Result {
            last_insert_id,
            rows_affected,
        },
        W::Rows(batch) => Resp::Rows(Batch {
            columns: batch.columns,
            rows: batch.rows,
            more: batch.end == wire::RowsEnd::Part,
        }),
        W::Empty => Resp::Empty,
        W::Files { files } => Resp::Files(files),
        W::Metadata {
            failure_domain,
            weight,
        } => Resp::Metadata {
            failure_domain,
            weight,
        },
    })
}
