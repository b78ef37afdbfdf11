//! A durable Raft storage engine and TCP network for openraft.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
