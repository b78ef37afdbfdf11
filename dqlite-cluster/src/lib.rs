//! The one process launcher of the dqlite-rs workspace: clusters of real node processes on
//! loopback, for `cargo xtask cluster`, the test crates and the benchmarks.
//!
//! Two backends: dqlite-rs nodes (the `dqlite-node` binary) and C dqlite 1.11 nodes (go-dqlite's
//! `dqlite-demo`, from Debian's `go-dqlite` package), so that tests can run the same cases on
//! both. Only processes started here are ever signalled, by pid; a pid recorded by an earlier
//! run ([`Node::attach`]) is signalled only while `/proc/PID/cmdline` is still that node's
//! command line.
//!
//! ```no_run
//! use dqlite_cluster::{Backend, Cluster, ClusterOptions};
//!
//! // Three dqlite-rs nodes on free 127.0.0.1 ports, data and logs in a temporary directory;
//! // every process is killed when `cluster` is dropped.
//! let mut cluster = Cluster::start(ClusterOptions::new(Backend::Rs, 3))?;
//! let servers = cluster.servers_arg(); // "127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3"
//! let leader = dqlite_cluster::leader(cluster.nodes[0].address(), std::time::Duration::from_secs(2))?;
//! println!("{servers}, leader {leader:?}");
//! cluster.nodes[0].kill()?; // SIGKILL, then wait until its port is closed
//! cluster.nodes[0].restart()?; // same id, address and data
//! # Ok::<(), dqlite_cluster::Error>(())
//! ```
//!
//! Not published: this crate is workspace tooling (`publish = false`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod binary;
mod cluster;
mod error;
mod net;
mod node;
mod turn;

pub use binary::{demo_binary, node_binary};
pub use cluster::{Cluster, ClusterOptions, http_address};
pub use error::Error;
pub use net::{addresses, free_port, leader, members, port_open};
pub use nix::sys::signal::Signal;
pub use node::{Backend, Node, NodeSpec, parse_signal};
pub use turn::Turn;
