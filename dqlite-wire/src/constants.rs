//! Numeric constants of the protocol: protocol versions, message type codes, ROWS markers and
//! the failure codes a client or server is most likely to need.

/// Current protocol version sent in the handshake (dqlite >= 1.0).
pub const PROTOCOL_VERSION: u64 = 1;
/// Legacy (pre-1.0) protocol version; after it LEADER is answered with `SERVER_LEGACY`.
pub const PROTOCOL_VERSION_LEGACY: u64 = 0x8610_4dd7_6043_3fe5;

/// Size in bytes of a message header and of the word all bodies are made of.
pub const WORD: usize = 8;
/// Default largest body a [`Framer`](crate::Framer) accepts: 64 MiB.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024 * 1024;
/// Default byte budget of a ROWS batch, as in C dqlite (the usual page size).
pub const DEFAULT_ROWS_BUDGET: usize = 4096;

/// Marker word ending a ROWS batch that is followed by more batches.
pub const ROWS_PART: u64 = 0xEEEE_EEEE_EEEE_EEEE;
/// Marker word ending the last ROWS batch of a result set.
pub const ROWS_DONE: u64 = 0xFFFF_FFFF_FFFF_FFFF;

/// Request type codes (header byte 4 of a request).
pub mod request {
    /// LEADER: which node is the leader.
    pub const LEADER: u8 = 0;
    /// CLIENT: register a client id.
    pub const CLIENT: u8 = 1;
    /// HEARTBEAT: never implemented by any C server.
    pub const HEARTBEAT: u8 = 2;
    /// OPEN: open a database.
    pub const OPEN: u8 = 3;
    /// PREPARE: prepare a statement.
    pub const PREPARE: u8 = 4;
    /// EXEC: execute a prepared statement.
    pub const EXEC: u8 = 5;
    /// QUERY: query with a prepared statement.
    pub const QUERY: u8 = 6;
    /// FINALIZE: delete a prepared statement.
    pub const FINALIZE: u8 = 7;
    /// EXEC_SQL: execute SQL text.
    pub const EXEC_SQL: u8 = 8;
    /// QUERY_SQL: query with SQL text.
    pub const QUERY_SQL: u8 = 9;
    /// INTERRUPT: drain a streaming query.
    pub const INTERRUPT: u8 = 10;
    /// CONNECT: node-to-node Raft stream set-up.
    pub const CONNECT: u8 = 11;
    /// ADD: add a node (as spare).
    pub const ADD: u8 = 12;
    /// ASSIGN: change a node's role (pre-1.3: PROMOTE).
    pub const ASSIGN: u8 = 13;
    /// REMOVE: remove a node.
    pub const REMOVE: u8 = 14;
    /// DUMP: dump a database's files.
    pub const DUMP: u8 = 15;
    /// CLUSTER: list the nodes of the cluster.
    pub const CLUSTER: u8 = 16;
    /// TRANSFER: transfer leadership.
    pub const TRANSFER: u8 = 17;
    /// DESCRIBE: a node's failure domain and weight.
    pub const DESCRIBE: u8 = 18;
    /// WEIGHT: set a node's weight.
    pub const WEIGHT: u8 = 19;
}

/// Response type codes (header byte 4 of a response).
pub mod response {
    /// FAILURE: error code and message.
    pub const FAILURE: u8 = 0;
    /// SERVER (or SERVER_LEGACY after the legacy handshake).
    pub const SERVER: u8 = 1;
    /// WELCOME: answer to CLIENT.
    pub const WELCOME: u8 = 2;
    /// SERVERS: answer to CLUSTER.
    pub const SERVERS: u8 = 3;
    /// DB: answer to OPEN.
    pub const DB: u8 = 4;
    /// STMT (schema 0) or STMT_WITH_OFFSET (schema 1): answer to PREPARE.
    pub const STMT: u8 = 5;
    /// RESULT: answer to EXEC / EXEC_SQL.
    pub const RESULT: u8 = 6;
    /// ROWS: one batch of a query result.
    pub const ROWS: u8 = 7;
    /// EMPTY: acknowledgement.
    pub const EMPTY: u8 = 8;
    /// FILES: answer to DUMP.
    pub const FILES: u8 = 9;
    /// METADATA: answer to DESCRIBE.
    pub const METADATA: u8 = 10;
}

/// FAILURE codes: SQLite's result codes (primary and the extended ones clients act on) and
/// dqlite's own, as C dqlite sends them (see wire-protocol.md §7). One set for the client, the
/// node and the tests.
///
/// An extended SQLite code keeps its primary code in the low byte ([`error_code::primary`]): 2067
/// (UNIQUE) is a 19 (CONSTRAINT); dqlite's 10250 (not leader) is a 10 (IOERR).
pub mod error_code {
    /// "empty statement" (PREPARE/QUERY_SQL of empty SQL); go-dqlite treats it as a bad connection.
    pub const EMPTY_STATEMENT: u64 = 0;
    /// SQLITE_ERROR: generic error (SQL syntax, missing table, ...).
    pub const ERROR: u64 = 1;
    /// SQLITE_INTERNAL.
    pub const INTERNAL: u64 = 2;
    /// SQLITE_PERM: access permission denied.
    pub const PERM: u64 = 3;
    /// SQLITE_ABORT.
    pub const ABORT: u64 = 4;
    /// SQLITE_BUSY: "database is locked" and friends.
    pub const BUSY: u64 = 5;
    /// SQLITE_LOCKED: a table is locked.
    pub const LOCKED: u64 = 6;
    /// SQLITE_NOMEM.
    pub const NOMEM: u64 = 7;
    /// SQLITE_READONLY.
    pub const READONLY: u64 = 8;
    /// SQLITE_INTERRUPT: the statement was interrupted.
    pub const INTERRUPT: u64 = 9;
    /// SQLITE_IOERR: HEAD's catch-all "leader exec failed".
    pub const IOERR: u64 = 10;
    /// SQLITE_CORRUPT.
    pub const CORRUPT: u64 = 11;
    /// SQLITE_NOTFOUND: "no database opened", "no statement with the given id".
    pub const NOTFOUND: u64 = 12;
    /// SQLITE_FULL.
    pub const FULL: u64 = 13;
    /// SQLITE_CANTOPEN.
    pub const CANTOPEN: u64 = 14;
    /// SQLITE_PROTOCOL: DESCRIBE with a bad format.
    pub const PROTOCOL: u64 = 15;
    /// SQLITE_SCHEMA: the schema changed.
    pub const SCHEMA: u64 = 17;
    /// SQLITE_TOOBIG: string or blob too big.
    pub const TOOBIG: u64 = 18;
    /// SQLITE_CONSTRAINT: a constraint failed (see the `CONSTRAINT_*` extended codes).
    pub const CONSTRAINT: u64 = 19;
    /// SQLITE_MISMATCH: data type mismatch.
    pub const MISMATCH: u64 = 20;
    /// SQLITE_MISUSE: library used incorrectly.
    pub const MISUSE: u64 = 21;
    /// SQLITE_AUTH: authorization denied.
    pub const AUTH: u64 = 23;
    /// SQLITE_RANGE: bind index out of range.
    pub const RANGE: u64 = 25;
    /// SQLITE_NOTADB.
    pub const NOTADB: u64 = 26;
    /// SQLITE_ROW: classic servers, EXEC of a statement yielding rows.
    pub const ROW: u64 = 100;
    /// SQLITE_DONE.
    pub const DONE: u64 = 101;
    /// SQLITE_BUSY_RECOVERY.
    pub const BUSY_RECOVERY: u64 = 261;
    /// SQLITE_CONSTRAINT_CHECK.
    pub const CONSTRAINT_CHECK: u64 = 275;
    /// SQLITE_BUSY_SNAPSHOT: a read transaction could not be upgraded to write.
    pub const BUSY_SNAPSHOT: u64 = 517;
    /// SQLITE_BUSY_TIMEOUT.
    pub const BUSY_TIMEOUT: u64 = 773;
    /// SQLITE_IOERR_WRITE: classic servers, Raft out of space.
    pub const IOERR_WRITE: u64 = 778;
    /// SQLITE_CONSTRAINT_FOREIGNKEY.
    pub const CONSTRAINT_FOREIGNKEY: u64 = 787;
    /// SQLITE_CONSTRAINT_NOTNULL.
    pub const CONSTRAINT_NOTNULL: u64 = 1299;
    /// SQLITE_CONSTRAINT_PRIMARYKEY.
    pub const CONSTRAINT_PRIMARYKEY: u64 = 1555;
    /// SQLITE_CONSTRAINT_UNIQUE.
    pub const CONSTRAINT_UNIQUE: u64 = 2067;
    /// SQLITE_CONSTRAINT_ROWID.
    pub const CONSTRAINT_ROWID: u64 = 2579;
    /// DQLITE_PROTO (internal FSM decode error).
    pub const DQLITE_PROTO: u64 = 1001;
    /// DQLITE_NOTFOUND: DUMP of a missing database (HEAD).
    pub const DQLITE_NOTFOUND: u64 = 1002;
    /// DQLITE_PARSE: unrecognized request type / schema, classic bind errors.
    pub const DQLITE_PARSE: u64 = 1005;
    /// Pre-1.0 "not leader" (10 | 32 << 8).
    pub const LEGACY_NOT_LEADER: u64 = 8202;
    /// Pre-1.0 "leadership lost" (10 | 33 << 8).
    pub const LEGACY_LEADERSHIP_LOST: u64 = 8458;
    /// SQLITE_IOERR_NOT_LEADER: this node is not the leader; reconnect to the leader.
    pub const NOT_LEADER: u64 = 10250;
    /// SQLITE_IOERR_LEADERSHIP_LOST: leadership lost in flight; a write's outcome is unknown.
    pub const LEADERSHIP_LOST: u64 = 10506;

    /// The primary SQLite code of an extended one (its low byte): `primary(2067) == 19`.
    pub const fn primary(code: u64) -> u64 {
        code & 0xff
    }
}
