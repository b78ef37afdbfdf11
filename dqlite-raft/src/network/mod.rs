//! Raft RPCs between nodes: a versioned, checksummed binary framing over any byte stream.

pub mod client;
pub mod codec;
pub mod connector;
pub mod server;

pub use client::{NetConfig, Network, PeerClient};
pub use connector::{Connector, NodeAddr, TcpConnector, TlsConnector, WithPreamble};
pub use server::{serve_listener, serve_stream};
