//! Requests (client → server), §4 of the protocol reference.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use crate::constants::request as code;
use crate::error::{DecodeError, EncodeError, RequestError};
use crate::header::Header;
use crate::parse;
use crate::primitive::{check_text, put_text, text_len};
use crate::tuple::Params;

/// The type of a request, with its wire code and protocol name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(missing_docs)] // each variant is the request of the same name
pub enum RequestType {
    Leader = code::LEADER,
    Client = code::CLIENT,
    Heartbeat = code::HEARTBEAT,
    Open = code::OPEN,
    Prepare = code::PREPARE,
    Exec = code::EXEC,
    Query = code::QUERY,
    Finalize = code::FINALIZE,
    ExecSql = code::EXEC_SQL,
    QuerySql = code::QUERY_SQL,
    Interrupt = code::INTERRUPT,
    Connect = code::CONNECT,
    Add = code::ADD,
    Assign = code::ASSIGN,
    Remove = code::REMOVE,
    Dump = code::DUMP,
    Cluster = code::CLUSTER,
    Transfer = code::TRANSFER,
    Describe = code::DESCRIBE,
    Weight = code::WEIGHT,
}

const ALL_TYPES: [RequestType; 20] = [
    RequestType::Leader,
    RequestType::Client,
    RequestType::Heartbeat,
    RequestType::Open,
    RequestType::Prepare,
    RequestType::Exec,
    RequestType::Query,
    RequestType::Finalize,
    RequestType::ExecSql,
    RequestType::QuerySql,
    RequestType::Interrupt,
    RequestType::Connect,
    RequestType::Add,
    RequestType::Assign,
    RequestType::Remove,
    RequestType::Dump,
    RequestType::Cluster,
    RequestType::Transfer,
    RequestType::Describe,
    RequestType::Weight,
];

impl RequestType {
    /// Every request type, in code order.
    pub const ALL: [RequestType; 20] = ALL_TYPES;

    /// The wire code.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The request type with wire code `code`.
    pub fn from_code(code: u8) -> Option<RequestType> {
        ALL_TYPES.get(code as usize).copied()
    }

    /// The protocol name, e.g. `"EXEC_SQL"`.
    pub const fn name(self) -> &'static str {
        match self {
            RequestType::Leader => "LEADER",
            RequestType::Client => "CLIENT",
            RequestType::Heartbeat => "HEARTBEAT",
            RequestType::Open => "OPEN",
            RequestType::Prepare => "PREPARE",
            RequestType::Exec => "EXEC",
            RequestType::Query => "QUERY",
            RequestType::Finalize => "FINALIZE",
            RequestType::ExecSql => "EXEC_SQL",
            RequestType::QuerySql => "QUERY_SQL",
            RequestType::Interrupt => "INTERRUPT",
            RequestType::Connect => "CONNECT",
            RequestType::Add => "ADD",
            RequestType::Assign => "ASSIGN",
            RequestType::Remove => "REMOVE",
            RequestType::Dump => "DUMP",
            RequestType::Cluster => "CLUSTER",
            RequestType::Transfer => "TRANSFER",
            RequestType::Describe => "DESCRIBE",
            RequestType::Weight => "WEIGHT",
        }
    }

    /// The request type with protocol name `name` (case-insensitive; `PROMOTE` is ASSIGN).
    pub fn from_name(name: &str) -> Option<RequestType> {
        if name.eq_ignore_ascii_case("PROMOTE") {
            return Some(RequestType::Assign);
        }
        ALL_TYPES
            .iter()
            .copied()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// True for QUERY and QUERY_SQL, whose FAILURE answers may carry a ROWS prefix.
    pub const fn is_query(self) -> bool {
        matches!(self, RequestType::Query | RequestType::QuerySql)
    }
}

impl fmt::Display for RequestType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A request, one variant per request type and schema.
///
/// Field widths follow the wire: EXEC/QUERY/FINALIZE carry u32 ids, the others u64.
/// Decoding ignores bytes after the last field (as C servers do), so re-encoding such a
/// request drops them; every other request re-encodes byte for byte.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// 0 LEADER (its one unused word is written as 0).
    Leader,
    /// 1 CLIENT.
    Client {
        /// Client id (stored by the server, unused).
        client_id: u64,
    },
    /// 2 HEARTBEAT: defined by go-dqlite, never implemented by a C server.
    Heartbeat {
        /// Timestamp.
        timestamp: u64,
    },
    /// 3 OPEN.
    Open {
        /// Database name.
        name: String,
        /// Flags (ignored by servers).
        flags: u64,
        /// VFS name (ignored by servers; go-dqlite sends "volatile").
        vfs: String,
    },
    /// 4 PREPARE, schema 0: exactly one statement; answered by STMT.
    Prepare {
        /// Database id (always 0).
        db_id: u64,
        /// SQL text.
        sql: String,
    },
    /// 4 PREPARE, schema 1: the first of several statements; answered by STMT_WITH_OFFSET.
    PrepareWithOffset {
        /// Database id (always 0).
        db_id: u64,
        /// SQL text.
        sql: String,
    },
    /// 5 EXEC (schema 0 or 1 per [`Params::header_schema`]).
    Exec {
        /// Database id.
        db_id: u32,
        /// Statement id.
        stmt_id: u32,
        /// Parameters.
        params: Params,
    },
    /// 6 QUERY (schema 0 or 1 per [`Params::header_schema`]).
    Query {
        /// Database id.
        db_id: u32,
        /// Statement id.
        stmt_id: u32,
        /// Parameters.
        params: Params,
    },
    /// 7 FINALIZE.
    Finalize {
        /// Database id.
        db_id: u32,
        /// Statement id.
        stmt_id: u32,
    },
    /// 8 EXEC_SQL (schema 0 or 1 per [`Params::header_schema`]).
    ExecSql {
        /// Database id.
        db_id: u64,
        /// SQL text (one or more statements).
        sql: String,
        /// Parameters.
        params: Params,
    },
    /// 9 QUERY_SQL (schema 0 or 1 per [`Params::header_schema`]).
    QuerySql {
        /// Database id.
        db_id: u64,
        /// SQL text.
        sql: String,
        /// Parameters.
        params: Params,
    },
    /// 10 INTERRUPT.
    Interrupt {
        /// Database id.
        db_id: u64,
    },
    /// 11 CONNECT (node to node; the stream then belongs to Raft).
    Connect {
        /// Sender's node id.
        node_id: u64,
        /// Sender's address.
        address: String,
    },
    /// 12 ADD (the node joins as a spare).
    Add {
        /// Node id.
        node_id: u64,
        /// Node address.
        address: String,
    },
    /// 13 ASSIGN. `role: None` is the one-word pre-1.3 PROMOTE form (promote to voter). The
    /// role is the raw wire number: see [`Role::from_code`](crate::Role::from_code); C servers
    /// turn unknown numbers into stand-by.
    Assign {
        /// Node id.
        node_id: u64,
        /// Role code (0 voter, 1 stand-by, 2 spare), absent in the PROMOTE form.
        role: Option<u64>,
    },
    /// 14 REMOVE.
    Remove {
        /// Node id.
        node_id: u64,
    },
    /// 15 DUMP.
    Dump {
        /// Database name.
        name: String,
    },
    /// 16 CLUSTER.
    Cluster {
        /// 0: ids and addresses; 1: with roles. Servers refuse other values.
        format: u64,
    },
    /// 17 TRANSFER.
    Transfer {
        /// Target node id (0: let Raft choose).
        node_id: u64,
    },
    /// 18 DESCRIBE.
    Describe {
        /// Must be 0 (C servers crash on other values).
        format: u64,
    },
    /// 19 WEIGHT.
    Weight {
        /// New weight.
        weight: u64,
    },
}

impl Request {
    /// The request's type.
    pub fn request_type(&self) -> RequestType {
        match self {
            Request::Leader => RequestType::Leader,
            Request::Client { .. } => RequestType::Client,
            Request::Heartbeat { .. } => RequestType::Heartbeat,
            Request::Open { .. } => RequestType::Open,
            Request::Prepare { .. } | Request::PrepareWithOffset { .. } => RequestType::Prepare,
            Request::Exec { .. } => RequestType::Exec,
            Request::Query { .. } => RequestType::Query,
            Request::Finalize { .. } => RequestType::Finalize,
            Request::ExecSql { .. } => RequestType::ExecSql,
            Request::QuerySql { .. } => RequestType::QuerySql,
            Request::Interrupt { .. } => RequestType::Interrupt,
            Request::Connect { .. } => RequestType::Connect,
            Request::Add { .. } => RequestType::Add,
            Request::Assign { .. } => RequestType::Assign,
            Request::Remove { .. } => RequestType::Remove,
            Request::Dump { .. } => RequestType::Dump,
            Request::Cluster { .. } => RequestType::Cluster,
            Request::Transfer { .. } => RequestType::Transfer,
            Request::Describe { .. } => RequestType::Describe,
            Request::Weight { .. } => RequestType::Weight,
        }
    }

    /// The header schema byte the request is encoded with.
    pub fn schema(&self) -> u8 {
        match self {
            Request::PrepareWithOffset { .. } => 1,
            Request::Exec { params, .. }
            | Request::Query { params, .. }
            | Request::ExecSql { params, .. }
            | Request::QuerySql { params, .. } => params.header_schema(),
            _ => 0,
        }
    }

    /// The parameters, for the four requests that carry them.
    pub fn params(&self) -> Option<&Params> {
        match self {
            Request::Exec { params, .. }
            | Request::Query { params, .. }
            | Request::ExecSql { params, .. }
            | Request::QuerySql { params, .. } => Some(params),
            _ => None,
        }
    }

    /// EXEC_SQL with the given SQL and parameters on database 0.
    pub fn exec_sql(sql: impl Into<String>, params: impl Into<Params>) -> Request {
        Request::ExecSql {
            db_id: 0,
            sql: sql.into(),
            params: params.into(),
        }
    }

    /// QUERY_SQL with the given SQL and parameters on database 0.
    pub fn query_sql(sql: impl Into<String>, params: impl Into<Params>) -> Request {
        Request::QuerySql {
            db_id: 0,
            sql: sql.into(),
            params: params.into(),
        }
    }

    /// Checks that the request is encodable and returns its body length in bytes.
    pub fn body_len(&self) -> Result<usize, EncodeError> {
        let name = self.request_type().name();
        let text = |s: &str, field: &'static str| -> Result<usize, EncodeError> {
            check_text(s, name, || field.into())?;
            Ok(text_len(s))
        };
        Ok(match self {
            Request::Leader
            | Request::Client { .. }
            | Request::Heartbeat { .. }
            | Request::Finalize { .. }
            | Request::Interrupt { .. }
            | Request::Remove { .. }
            | Request::Cluster { .. }
            | Request::Transfer { .. }
            | Request::Describe { .. }
            | Request::Weight { .. } => 8,
            Request::Open { name, vfs, .. } => text(name, "name")? + 8 + text(vfs, "vfs")?,
            Request::Prepare { sql, .. } | Request::PrepareWithOffset { sql, .. } => {
                8 + text(sql, "sql")?
            }
            Request::Exec { params, .. } | Request::Query { params, .. } => {
                8 + params.encoded_len(name)?
            }
            Request::ExecSql { sql, params, .. } | Request::QuerySql { sql, params, .. } => {
                8 + text(sql, "sql")? + params.encoded_len(name)?
            }
            Request::Connect { address, .. } | Request::Add { address, .. } => {
                8 + text(address, "address")?
            }
            Request::Assign { role, .. } => 8 + if role.is_some() { 8 } else { 0 },
            Request::Dump { name } => text(name, "name")?,
        })
    }

    /// The header this request is sent with.
    pub fn header(&self) -> Result<Header, EncodeError> {
        let t = self.request_type();
        Header::for_body(t.code(), self.schema(), self.body_len()?, t.name())
    }

    /// Appends the whole message (8-byte header + body) to `buf`. All padding is zero.
    /// Nothing is written when an error is returned.
    pub fn encode(&self, buf: &mut impl BufMut) -> Result<(), EncodeError> {
        let header = self.header()?;
        header.encode(buf);
        self.put_body(buf);
        Ok(())
    }

    /// The whole message (8-byte header + body) as bytes.
    pub fn to_bytes(&self) -> Result<Bytes, EncodeError> {
        let header = self.header()?;
        let mut buf = BytesMut::with_capacity(Header::LEN + header.body_len());
        header.encode(&mut buf);
        self.put_body(&mut buf);
        Ok(buf.freeze())
    }

    fn put_body(&self, buf: &mut impl BufMut) {
        match self {
            Request::Leader => buf.put_u64_le(0),
            Request::Client { client_id: v }
            | Request::Heartbeat { timestamp: v }
            | Request::Interrupt { db_id: v }
            | Request::Remove { node_id: v }
            | Request::Cluster { format: v }
            | Request::Transfer { node_id: v }
            | Request::Describe { format: v }
            | Request::Weight { weight: v } => buf.put_u64_le(*v),
            Request::Open { name, flags, vfs } => {
                put_text(buf, name);
                buf.put_u64_le(*flags);
                put_text(buf, vfs);
            }
            Request::Prepare { db_id, sql } | Request::PrepareWithOffset { db_id, sql } => {
                buf.put_u64_le(*db_id);
                put_text(buf, sql);
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
            } => {
                buf.put_u32_le(*db_id);
                buf.put_u32_le(*stmt_id);
                params.put(buf);
            }
            Request::Finalize { db_id, stmt_id } => {
                buf.put_u32_le(*db_id);
                buf.put_u32_le(*stmt_id);
            }
            Request::ExecSql { db_id, sql, params } | Request::QuerySql { db_id, sql, params } => {
                buf.put_u64_le(*db_id);
                put_text(buf, sql);
                params.put(buf);
            }
            Request::Connect { node_id, address } | Request::Add { node_id, address } => {
                buf.put_u64_le(*node_id);
                put_text(buf, address);
            }
            Request::Assign { node_id, role } => {
                buf.put_u64_le(*node_id);
                if let Some(role) = role {
                    buf.put_u64_le(*role);
                }
            }
            Request::Dump { name } => put_text(buf, name),
        }
    }

    /// Decodes a request body given its header.
    ///
    /// The error says what a server should do: [`RequestError::Malformed`] (fixed fields
    /// broken: close the connection), [`RequestError::Params`] (answer FAILURE),
    /// [`RequestError::UnknownType`] / [`RequestError::UnsupportedSchema`] (answer FAILURE).
    /// Bytes after the last field are ignored, as C servers do; `header.extra` is ignored.
    pub fn decode(header: &Header, body: &[u8]) -> Result<Request, RequestError> {
        let t = RequestType::from_code(header.type_code)
            .ok_or(RequestError::UnknownType(header.type_code))?;
        let schema = header.schema;
        if schema > parse::max_schema(t) {
            return Err(RequestError::UnsupportedSchema { request: t, schema });
        }
        let (rest, fixed) = parse::request_fields(header)(body)
            .map_err(|e| RequestError::Malformed(parse::to_decode_error(t.name(), body, e)))?;
        if fixed.params().is_none() {
            return Ok(fixed);
        }
        match parse::params(schema)(rest) {
            Ok((_, params)) => Ok(fixed.with_params(params)),
            Err(e) => Err(RequestError::Params {
                partial: Box::new(fixed),
                error: parse::to_decode_error(t.name(), body, e),
            }),
        }
    }

    /// The same request with these parameters (a request without parameters is returned
    /// as it is).
    pub fn with_params(mut self, new: Params) -> Request {
        if let Request::Exec { params, .. }
        | Request::Query { params, .. }
        | Request::ExecSql { params, .. }
        | Request::QuerySql { params, .. } = &mut self
        {
            *params = new;
        }
        self
    }

    /// Decodes a complete message (8-byte header + body), e.g. a frame's bytes. Framing
    /// errors (message shorter than its header says, or longer) are
    /// [`RequestError::Malformed`] with offsets relative to the message start.
    pub fn decode_message(message: &[u8]) -> Result<Request, RequestError> {
        let (header, body) = split_message(message, "request").map_err(RequestError::Malformed)?;
        Request::decode(&header, body)
    }
}

/// Splits a complete message into its header and a body of exactly `words × 8` bytes.
pub(crate) fn split_message<'a>(
    message: &'a [u8],
    what: &'static str,
) -> Result<(Header, &'a [u8]), DecodeError> {
    let whole = |input: &'a [u8]| {
        let (rest, parts) = parse::message(input)?;
        parse::end(rest)?;
        Ok((rest, parts))
    };
    parse::run(what, message, whole)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Value;
    use crate::error::DecodeErrorKind;

    fn round_trip(r: &Request) -> Bytes {
        let bytes = r.to_bytes().unwrap();
        assert_eq!(bytes.len(), 8 + r.body_len().unwrap());
        let back = Request::decode_message(&bytes).unwrap();
        assert_eq!(&back, r);
        bytes
    }

    #[test]
    fn names_and_codes() {
        for t in RequestType::ALL {
            assert_eq!(RequestType::from_code(t.code()), Some(t));
            assert_eq!(RequestType::from_name(t.name()), Some(t));
        }
        assert_eq!(RequestType::from_code(20), None);
        assert_eq!(
            RequestType::from_name("exec_sql"),
            Some(RequestType::ExecSql)
        );
        assert_eq!(RequestType::ExecSql.code(), code::EXEC_SQL);
    }

    #[test]
    fn reference_worked_example() {
        let r = Request::exec_sql(
            "INSERT INTO t VALUES(?, ?)",
            vec![Value::Integer(42), Value::Text("hi".into())],
        );
        let bytes = round_trip(&r);
        assert_eq!(&bytes[..8], &[8, 0, 0, 0, 8, 0, 0, 0]);
    }

    #[test]
    fn assign_one_and_two_words() {
        let promote = Request::Assign {
            node_id: 5,
            role: None,
        };
        assert_eq!(round_trip(&promote).len(), 16);
        let assign = Request::Assign {
            node_id: 5,
            role: Some(7),
        };
        assert_eq!(round_trip(&assign).len(), 24);
    }

    #[test]
    fn prepare_schemas() {
        let r = Request::PrepareWithOffset {
            db_id: 0,
            sql: "SELECT 1; SELECT 2".into(),
        };
        assert_eq!(round_trip(&r)[5], 1);
    }

    #[test]
    fn errors_are_sorted_by_server_reaction() {
        let h = |t, s, words| Header {
            words,
            type_code: t,
            schema: s,
            extra: 0,
        };
        assert_eq!(
            Request::decode(&h(2, 0, 1), &[0; 8]).map(|r| r.request_type()),
            Ok(RequestType::Heartbeat)
        );
        assert_eq!(
            Request::decode(&h(200, 0, 1), &[0; 8]),
            Err(RequestError::UnknownType(200))
        );
        assert!(matches!(
            Request::decode(&h(0, 3, 1), &[0; 8]),
            Err(RequestError::UnsupportedSchema { schema: 3, .. })
        ));
        // DUMP with a text lacking its NUL: fixed field broken.
        match Request::decode(&h(15, 0, 1), b"abcdefgh") {
            Err(RequestError::Malformed(e)) => {
                assert_eq!(e.kind, DecodeErrorKind::MissingNul);
                assert_eq!(e.message, "DUMP");
                assert_eq!(e.field, "name");
            }
            other => panic!("{other:?}"),
        }
        // EXEC_SQL with a UNIXTIME parameter: params broken, fixed fields fine.
        let mut body = vec![0u8; 8];
        body.extend_from_slice(b"SELECT ?\0\0\0\0\0\0\0\0");
        body.extend_from_slice(&[1, 9, 0, 0, 0, 0, 0, 0]);
        body.extend_from_slice(&[0; 8]);
        match Request::decode(&h(8, 0, 5), &body) {
            Err(e @ RequestError::Params { .. }) => {
                assert_eq!(e.classic_failure(), Some((1005, "bind parameters")));
                let RequestError::Params { partial, error } = e else {
                    unreachable!()
                };
                assert_eq!(error.kind, DecodeErrorKind::UnixTimeParam);
                assert_eq!(error.offset, 25);
                assert_eq!(
                    *partial,
                    Request::ExecSql {
                        db_id: 0,
                        sql: "SELECT ?".into(),
                        params: Params::omitted()
                    }
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn trailing_words_are_ignored() {
        let mut body = vec![0u8; 24];
        body[0] = 0;
        let h = Header {
            words: 3,
            type_code: 0,
            schema: 0,
            extra: 0xbeef,
        };
        assert_eq!(Request::decode(&h, &body), Ok(Request::Leader));
    }

    #[test]
    fn encoding_rejects_nul_in_text() {
        let r = Request::Dump {
            name: "a\0b".into(),
        };
        assert!(matches!(r.to_bytes(), Err(EncodeError::NulInText { .. })));
        let mut out = Vec::new();
        assert!(r.encode(&mut out).is_err());
        assert!(out.is_empty());
    }
}
