//! Responses (server → client), §5 of the protocol reference.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use crate::cluster::{File, NodeAddress, NodeInfo};
use crate::constants::response as code;
use crate::error::{DecodeError, EncodeError};
use crate::header::Header;
use crate::parse;
use crate::primitive::{check_text, pad8, put_text, text_len};
use crate::request::{Request, RequestType, split_message};
use crate::rows::{RowsBatch, RowsPrefix, columns_len, put_columns, rows_len};
use crate::tuple::put_rows;

/// The type of a response, with its wire code and protocol name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(missing_docs)] // each variant is the response of the same name
pub enum ResponseType {
    Failure = code::FAILURE,
    Server = code::SERVER,
    Welcome = code::WELCOME,
    Servers = code::SERVERS,
    Db = code::DB,
    Stmt = code::STMT,
    Result = code::RESULT,
    Rows = code::ROWS,
    Empty = code::EMPTY,
    Files = code::FILES,
    Metadata = code::METADATA,
}

impl ResponseType {
    /// The wire code.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The response type with wire code `code`.
    pub const fn from_code(code: u8) -> Option<ResponseType> {
        Some(match code {
            0 => ResponseType::Failure,
            1 => ResponseType::Server,
            2 => ResponseType::Welcome,
            3 => ResponseType::Servers,
            4 => ResponseType::Db,
            5 => ResponseType::Stmt,
            6 => ResponseType::Result,
            7 => ResponseType::Rows,
            8 => ResponseType::Empty,
            9 => ResponseType::Files,
            10 => ResponseType::Metadata,
            _ => return None,
        })
    }

    /// The protocol name, e.g. `"ROWS"`.
    pub const fn name(self) -> &'static str {
        match self {
            ResponseType::Failure => "FAILURE",
            ResponseType::Server => "SERVER",
            ResponseType::Welcome => "WELCOME",
            ResponseType::Servers => "SERVERS",
            ResponseType::Db => "DB",
            ResponseType::Stmt => "STMT",
            ResponseType::Result => "RESULT",
            ResponseType::Rows => "ROWS",
            ResponseType::Empty => "EMPTY",
            ResponseType::Files => "FILES",
            ResponseType::Metadata => "METADATA",
        }
    }
}

impl fmt::Display for ResponseType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A FAILURE response.
///
/// `rows_prefix` is set when a C server failed while stepping a query: it had already written
/// the batch's column header and rows, and appended code and message after them (a server bug
/// this codec reproduces byte for byte when encoding such a value; a correct server sends
/// `rows_prefix: None`).
///
/// Decoding follows the rule of the vectors README: when a FAILURE answering QUERY/QUERY_SQL
/// does not decode as exactly `code, message`, it is read as `column count, names, rows…`
/// until the remaining bytes are exactly `u64 code` + one padded text ending the body. The
/// rule is unambiguous for real codes (below 2^56, so the code word holds a NUL byte); a
/// code word without any zero byte could make a row look like the trailer.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// Error code (SQLite extended code or a dqlite code, see
    /// [`error_code`](crate::constants::error_code)).
    pub code: u64,
    /// Error message.
    pub message: String,
    /// The ROWS batch prefix of a step error, if any.
    pub rows_prefix: Option<RowsPrefix>,
}

/// What a response decoder must know besides the bytes: the request it answers, the handshake
/// version and, for SERVERS, the requested format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseContext {
    /// The type of the request this response answers.
    pub answers: RequestType,
    /// True after the legacy handshake: type 1 is then SERVER_LEGACY (address only).
    pub legacy_handshake: bool,
    /// The CLUSTER format requested: 0 gives SERVERS without roles, anything else with roles.
    pub cluster_format: u64,
}

impl ResponseContext {
    /// Context for a response to a request of type `answers`, after handshake version 1,
    /// CLUSTER format 1.
    pub fn new(answers: RequestType) -> ResponseContext {
        ResponseContext {
            answers,
            legacy_handshake: false,
            cluster_format: 1,
        }
    }

    /// Context for a response to `request` (takes the CLUSTER format from it).
    pub fn for_request(request: &Request) -> ResponseContext {
        let mut ctx = ResponseContext::new(request.request_type());
        if let Request::Cluster { format } = request {
            ctx.cluster_format = *format;
        }
        ctx
    }

    /// The same context with the legacy-handshake flag set to `legacy`.
    pub fn legacy(mut self, legacy: bool) -> ResponseContext {
        self.legacy_handshake = legacy;
        self
    }

    /// The same context with this CLUSTER format.
    pub fn cluster_format(mut self, format: u64) -> ResponseContext {
        self.cluster_format = format;
        self
    }
}

/// A response, one variant per response type and schema.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// 0 FAILURE.
    Failure(Failure),
    /// 1 SERVER (after handshake version 1).
    Server {
        /// Leader id (0: no known leader).
        node_id: u64,
        /// Leader address (`""`: no known leader).
        address: String,
    },
    /// 1 SERVER_LEGACY (after the legacy handshake): address only.
    ServerLegacy {
        /// Leader address.
        address: String,
    },
    /// 2 WELCOME.
    Welcome {
        /// Heartbeat timeout in milliseconds (informational).
        heartbeat_timeout: u64,
    },
    /// 3 SERVERS in format 1 (with roles), the format go-dqlite uses.
    Servers {
        /// The nodes, in configuration order.
        servers: Vec<NodeInfo>,
    },
    /// 3 SERVERS in format 0 (no roles).
    ServersFormat0 {
        /// The nodes, in configuration order.
        servers: Vec<NodeAddress>,
    },
    /// 4 DB (its u32 padding is written as 0 and ignored on input).
    Db {
        /// Database id (always 0).
        db_id: u32,
    },
    /// 5 STMT, schema 0.
    Stmt {
        /// Database id.
        db_id: u32,
        /// Statement id.
        stmt_id: u32,
        /// Number of parameters of the statement.
        num_params: u64,
    },
    /// 5 STMT_WITH_OFFSET, schema 1 (answer to PREPARE schema 1).
    StmtWithOffset {
        /// Database id.
        db_id: u32,
        /// Statement id.
        stmt_id: u32,
        /// Number of parameters of the statement.
        num_params: u64,
        /// Bytes of SQL consumed: where the unprepared tail starts.
        offset: u64,
    },
    /// 6 RESULT.
    Result {
        /// `sqlite3_last_insert_rowid`.
        last_insert_id: u64,
        /// `sqlite3_changes`.
        rows_affected: u64,
    },
    /// 7 ROWS: one batch.
    Rows(RowsBatch),
    /// 8 EMPTY (its unused word is written as 0).
    Empty,
    /// 9 FILES.
    Files {
        /// The files (a database and its WAL).
        files: Vec<File>,
    },
    /// 10 METADATA.
    Metadata {
        /// Failure domain.
        failure_domain: u64,
        /// Weight.
        weight: u64,
    },
}

impl Response {
    /// The response's type.
    pub fn response_type(&self) -> ResponseType {
        match self {
            Response::Failure(_) => ResponseType::Failure,
            Response::Server { .. } | Response::ServerLegacy { .. } => ResponseType::Server,
            Response::Welcome { .. } => ResponseType::Welcome,
            Response::Servers { .. } | Response::ServersFormat0 { .. } => ResponseType::Servers,
            Response::Db { .. } => ResponseType::Db,
            Response::Stmt { .. } | Response::StmtWithOffset { .. } => ResponseType::Stmt,
            Response::Result { .. } => ResponseType::Result,
            Response::Rows(_) => ResponseType::Rows,
            Response::Empty => ResponseType::Empty,
            Response::Files { .. } => ResponseType::Files,
            Response::Metadata { .. } => ResponseType::Metadata,
        }
    }

    /// A FAILURE without rows prefix.
    pub fn failure(code: u64, message: impl Into<String>) -> Response {
        Response::Failure(Failure {
            code,
            message: message.into(),
            rows_prefix: None,
        })
    }

    /// The header schema byte: 1 for STMT_WITH_OFFSET, else 0.
    pub fn schema(&self) -> u8 {
        u8::from(matches!(self, Response::StmtWithOffset { .. }))
    }

    /// Checks that the response is encodable and returns its body length in bytes.
    pub fn body_len(&self) -> Result<usize, EncodeError> {
        let name = self.response_type().name();
        let text = |s: &str, field: &'static str| -> Result<usize, EncodeError> {
            check_text(s, name, || field.into())?;
            Ok(text_len(s))
        };
        Ok(match self {
            Response::Failure(f) => {
                let prefix = match &f.rows_prefix {
                    None => 0,
                    Some(p) => {
                        columns_len(&p.columns, name)? + rows_len(&p.rows, p.columns.len(), name)?
                    }
                };
                prefix + 8 + text(&f.message, "message")?
            }
            Response::Server { address, .. } => 8 + text(address, "address")?,
            Response::ServerLegacy { address } => text(address, "address")?,
            Response::Welcome { .. } | Response::Db { .. } | Response::Empty => 8,
            Response::Servers { servers } => {
                let mut len = 8;
                for (i, s) in servers.iter().enumerate() {
                    check_text(&s.address, name, || format!("servers[{i}].address").into())?;
                    len += 16 + text_len(&s.address);
                }
                len
            }
            Response::ServersFormat0 { servers } => {
                let mut len = 8;
                for (i, s) in servers.iter().enumerate() {
                    check_text(&s.address, name, || format!("servers[{i}].address").into())?;
                    len += 8 + text_len(&s.address);
                }
                len
            }
            Response::Stmt { .. } | Response::Result { .. } | Response::Metadata { .. } => 16,
            Response::StmtWithOffset { .. } => 24,
            Response::Rows(b) => b.encoded_len()?,
            Response::Files { files } => {
                let mut len = 8;
                for (i, f) in files.iter().enumerate() {
                    check_text(&f.name, name, || format!("files[{i}].name").into())?;
                    len += text_len(&f.name) + 8 + f.data.len();
                }
                // File contents are not padded (sizes are page multiples in practice); the
                // body as a whole is.
                pad8(len)
            }
        })
    }

    /// The header this response is sent with.
    pub fn header(&self) -> Result<Header, EncodeError> {
        let t = self.response_type();
        Header::for_body(t.code(), self.schema(), self.body_len()?, t.name())
    }

    /// Appends the whole message (8-byte header + body) to `buf`. All padding is zero.
    /// Nothing is written when an error is returned.
    pub fn encode(&self, buf: &mut impl BufMut) -> Result<(), EncodeError> {
        let header = self.header()?;
        header.encode(buf);
        self.put_body(buf, header.body_len());
        Ok(())
    }

    /// The whole message (8-byte header + body) as bytes.
    pub fn to_bytes(&self) -> Result<Bytes, EncodeError> {
        let header = self.header()?;
        let mut buf = BytesMut::with_capacity(Header::LEN + header.body_len());
        header.encode(&mut buf);
        self.put_body(&mut buf, header.body_len());
        Ok(buf.freeze())
    }

    fn put_body(&self, buf: &mut impl BufMut, body_len: usize) {
        match self {
            Response::Failure(f) => {
                if let Some(p) = &f.rows_prefix {
                    put_columns(buf, &p.columns);
                    put_rows(buf, &p.rows);
                }
                buf.put_u64_le(f.code);
                put_text(buf, &f.message);
            }
            Response::Server { node_id, address } => {
                buf.put_u64_le(*node_id);
                put_text(buf, address);
            }
            Response::ServerLegacy { address } => put_text(buf, address),
            Response::Welcome { heartbeat_timeout } => buf.put_u64_le(*heartbeat_timeout),
            Response::Servers { servers } => {
                buf.put_u64_le(servers.len() as u64);
                for s in servers {
                    buf.put_u64_le(s.id);
                    put_text(buf, &s.address);
                    buf.put_u64_le(s.role.code());
                }
            }
            Response::ServersFormat0 { servers } => {
                buf.put_u64_le(servers.len() as u64);
                for s in servers {
                    buf.put_u64_le(s.id);
                    put_text(buf, &s.address);
                }
            }
            Response::Db { db_id } => {
                buf.put_u32_le(*db_id);
                buf.put_u32_le(0);
            }
            Response::Stmt {
                db_id,
                stmt_id,
                num_params,
            } => {
                buf.put_u32_le(*db_id);
                buf.put_u32_le(*stmt_id);
                buf.put_u64_le(*num_params);
            }
            Response::StmtWithOffset {
                db_id,
                stmt_id,
                num_params,
                offset,
            } => {
                buf.put_u32_le(*db_id);
                buf.put_u32_le(*stmt_id);
                buf.put_u64_le(*num_params);
                buf.put_u64_le(*offset);
            }
            Response::Result {
                last_insert_id,
                rows_affected,
            } => {
                buf.put_u64_le(*last_insert_id);
                buf.put_u64_le(*rows_affected);
            }
            Response::Rows(b) => b.put(buf),
            Response::Empty => buf.put_u64_le(0),
            Response::Files { files } => {
                buf.put_u64_le(files.len() as u64);
                let mut len = 8;
                for f in files {
                    put_text(buf, &f.name);
                    buf.put_u64_le(f.data.len() as u64);
                    buf.put_slice(&f.data);
                    len += text_len(&f.name) + 8 + f.data.len();
                }
                buf.put_bytes(0, body_len - len);
            }
            Response::Metadata {
                failure_domain,
                weight,
            } => {
                buf.put_u64_le(*failure_domain);
                buf.put_u64_le(*weight);
            }
        }
    }

    /// Decodes a response body given its header and what it answers.
    ///
    /// Strict about structure (bytes left after the last field are an error, except up to 7
    /// bytes of final padding in FILES), lenient about padding content. A FAILURE answering
    /// QUERY/QUERY_SQL that does not decode as exactly code + message is re-read as a ROWS
    /// prefix followed by code + message (C server bug, see [`Failure`]).
    pub fn decode(
        header: &Header,
        body: &[u8],
        ctx: &ResponseContext,
    ) -> Result<Response, DecodeError> {
        parse::run("response", body, parse::response(header, ctx))
    }

    /// Decodes a complete message (8-byte header + body). Framing errors (message shorter
    /// than its header says, or longer) have offsets relative to the message start.
    pub fn decode_message(message: &[u8], ctx: &ResponseContext) -> Result<Response, DecodeError> {
        let (header, body) = split_message(message, "response")?;
        Response::decode(&header, body, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;
    use crate::error::DecodeErrorKind;
    use crate::{RowsEnd, Value};

    fn round_trip(r: &Response, ctx: &ResponseContext) -> Bytes {
        let bytes = r.to_bytes().unwrap();
        assert_eq!(bytes.len(), 8 + r.body_len().unwrap());
        assert_eq!(&Response::decode_message(&bytes, ctx).unwrap(), r);
        bytes
    }

    #[test]
    fn step_error_failure_with_rows() {
        let ctx = ResponseContext::new(RequestType::QuerySql);
        let f = Response::Failure(Failure {
            code: 1,
            message: "integer overflow".into(),
            rows_prefix: Some(RowsPrefix {
                columns: vec!["a".into(), "b".into()],
                rows: vec![vec![Value::Integer(2), Value::Text("a".into())]],
            }),
        });
        round_trip(&f, &ctx);
        // Without the query context the leftover bytes are an error.
        let bytes = f.to_bytes().unwrap();
        let e = Response::decode_message(&bytes, &ResponseContext::new(RequestType::ExecSql))
            .unwrap_err();
        assert!(matches!(e.kind, DecodeErrorKind::TrailingBytes(_)));
        // A plain failure stays plain in the query context.
        round_trip(&Response::failure(10250, "not leader"), &ctx);
    }

    #[test]
    fn legacy_server_and_stmt_schemas() {
        let legacy = ResponseContext::new(RequestType::Leader).legacy(true);
        round_trip(
            &Response::ServerLegacy {
                address: "127.0.0.1:9001".into(),
            },
            &legacy,
        );
        let ctx = ResponseContext::new(RequestType::Prepare);
        let b = round_trip(
            &Response::StmtWithOffset {
                db_id: 0,
                stmt_id: 1,
                num_params: 0,
                offset: 9,
            },
            &ctx,
        );
        assert_eq!(b[5], 1);
    }

    #[test]
    fn servers_formats_and_huge_counts() {
        let f1 = ResponseContext::for_request(&Request::Cluster { format: 1 });
        let f0 = ResponseContext::for_request(&Request::Cluster { format: 0 });
        round_trip(
            &Response::Servers {
                servers: vec![NodeInfo {
                    id: u64::MAX,
                    address: "a".into(),
                    role: Role::Spare,
                }],
            },
            &f1,
        );
        round_trip(
            &Response::ServersFormat0 {
                servers: vec![NodeAddress {
                    id: 1,
                    address: "b".into(),
                }],
            },
            &f0,
        );
        let mut msg = vec![2, 0, 0, 0, 3, 0, 0, 0];
        msg.extend_from_slice(&(1u64 << 60).to_le_bytes());
        msg.extend_from_slice(&[0; 8]);
        let e = Response::decode_message(&msg, &f1).unwrap_err();
        assert!(matches!(e.kind, DecodeErrorKind::CountTooLarge { .. }));
    }

    #[test]
    fn files_with_odd_sizes_are_padded_at_the_end() {
        let ctx = ResponseContext::new(RequestType::Dump);
        let r = Response::Files {
            files: vec![
                File {
                    name: "db".into(),
                    data: vec![1, 2, 3],
                },
                File {
                    name: "db-wal".into(),
                    data: vec![],
                },
            ],
        };
        let b = round_trip(&r, &ctx);
        assert_eq!(b.len() % 8, 0);
    }

    #[test]
    fn rows_and_empty() {
        let ctx = ResponseContext::new(RequestType::Query);
        round_trip(&Response::Empty, &ctx);
        round_trip(
            &Response::Rows(RowsBatch {
                columns: vec!["x".into()],
                rows: vec![vec![Value::Float(-0.0)], vec![Value::Blob(vec![1; 9])]],
                end: RowsEnd::Part,
            }),
            &ctx,
        );
    }

    #[test]
    fn unknown_type_and_schema() {
        let ctx = ResponseContext::new(RequestType::Leader);
        let e = Response::decode(
            &Header {
                words: 1,
                type_code: 11,
                schema: 0,
                extra: 0,
            },
            &[0; 8],
            &ctx,
        )
        .unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::UnknownResponseType(11));
        let e = Response::decode(
            &Header {
                words: 1,
                type_code: 8,
                schema: 1,
                extra: 0,
            },
            &[0; 8],
            &ctx,
        )
        .unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::UnsupportedSchema(1));
    }
}
