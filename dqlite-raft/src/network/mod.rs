//! Raft RPCs between nodes: a versioned, checksummed binary framing over any byte stream.
//!
//! # Eager push
//!
//! openraft 0.9.25's `RaftCore` waits for the local `fsync` of the entries it appends before
//! it runs its next command, so its replication streams hear of a new entry only once the
//! leader's `fsync` is over, and each follower's `fsync` starts only then: two disk flushes in
//! a row on every commit. With [`NodeOptions::eager_push`](crate::node::NodeOptions::eager_push)
//! (the default), the log store announces the leader's own appends as soon as they are queued,
//! and a pusher sends each voter, on a connection of its own, the AppendEntries request the
//! leader would send for them, and drops the answer. The follower's `fsync` then runs while
//! the leader's does; when openraft's own request for those entries arrives, the follower
//! has them already and answers once they are durable, usually at once.
//!
//! This is safe because the pushed request is exactly one the leader may send: its own
//! committed vote, entries that carry its leader id (a leader never changes the entries it
//! created while its vote stands), the log id before them, and a commit index it has already
//! reached. To a follower it is a duplicate of a message the leader sends anyway, and Raft
//! tolerates duplicated and delayed messages (a follower with a newer vote rejects it). Commit
//! is untouched: the leader's progress only moves on openraft's own requests, and the leader
//! counts itself only after its own `fsync`.

pub mod acks;
pub mod client;
pub mod codec;
pub mod connector;
pub mod contact;
pub(crate) mod push;
pub mod server;
pub mod vote_hold;

pub use acks::FollowerAcks;
pub use client::{NetConfig, Network, PeerClient};
pub use connector::{Connector, NodeAddr, TcpConnector, TlsConnector, WithPreamble};
pub use contact::LeaderContact;
pub use server::{serve_listener, serve_stream};
pub use vote_hold::VoteHold;
