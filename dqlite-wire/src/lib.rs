//! Sans-IO codec of the dqlite client wire protocol.
//!
//! This crate knows bytes, not sockets: it decodes and encodes every request and response
//! of the protocol spoken by C dqlite 1.x and its clients, byte for byte.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
