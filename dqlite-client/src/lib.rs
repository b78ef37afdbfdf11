//! A pure-Rust async client for dqlite clusters.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
