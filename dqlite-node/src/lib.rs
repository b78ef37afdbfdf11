//! A dqlite node: replicated SQLite over Raft, serving the dqlite wire protocol.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
