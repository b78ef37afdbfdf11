//! An in-memory SQLite VFS that captures the WAL frames of each commit.
//!
//! The frames of a commit stay invisible to every other connection until they are applied
//! (after replication) or aborted. This is the only crate of dqlite-rs with `unsafe` code.
#![deny(missing_docs)]
