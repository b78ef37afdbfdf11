//! `dqlite-node`: run one dqlite node.
//!
//! Exit codes: 0 after a clean shutdown (SIGINT/SIGTERM; a leader hands leadership over
//! first), 1 if the node failed to start (address in use, unreadable data directory or TLS
//! files) or stopped with an error, 2 for invalid arguments (clap).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use dqlite_node::{Node, NodeOptions, TlsConfig};

/// Run a dqlite node: replicated SQLite over Raft, serving the dqlite wire protocol.
#[derive(Debug, Parser)]
#[command(name = "dqlite-node", version)]
struct Args {
    /// Node id (non-zero, unique in the cluster).
    #[arg(long)]
    id: u64,
    /// Address to listen on and advertise, HOST:PORT (clients and Raft share it).
    #[arg(long)]
    address: String,
    /// Data directory (Raft log and snapshots).
    #[arg(long)]
    dir: PathBuf,
    /// Comma-separated addresses of existing members to join; without it a fresh node
    /// bootstraps a new cluster.
    #[arg(long, value_delimiter = ',')]
    join: Vec<String>,
    /// Serve reads on the leader without a read-index round (C dqlite's behaviour).
    #[arg(long)]
    leader_local_reads: bool,
    /// Accepted for compatibility: the read lease is on by default (see --no-read-lease).
    #[arg(long, conflicts_with = "no_read_lease")]
    read_lease: bool,
    /// Ask a quorum before every read instead of letting one read-index round cover the
    /// reads of the next 200 ms (the default read lease, which relies on clocks advancing at
    /// about the same rate on every node). Give it to every node of the cluster or none.
    #[arg(long)]
    no_read_lease: bool,
    /// Client connections served at once (one more gets a FAILURE naming the limit).
    #[arg(long, default_value_t = NodeOptions::default().max_connections)]
    max_connections: usize,
    /// Databases served at once (OPEN of one more gets a FAILURE naming the limit).
    #[arg(long, default_value_t = NodeOptions::default().max_databases)]
    max_databases: usize,
    /// Failure domain reported by DESCRIBE.
    #[arg(long, default_value_t = 0)]
    failure_domain: u64,
    /// Certificate chain (PEM) for TLS on the node's port, for clients and Raft peers
    /// alike; needs --tls-key. Peers and clients must present a certificate the node trusts.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Trusted root certificates (PEM); default: --tls-cert itself (one self-signed
    /// certificate shared by the cluster).
    #[arg(long, requires = "tls_cert")]
    tls_ca: Option<PathBuf>,
    /// Name every node's certificate is checked against.
    #[arg(long, default_value = "dqlite")]
    tls_server_name: String,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    // Logs go to stderr; stdout carries only the "listening on" line.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if args.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::from(1);
        }
    };
    rt.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let mut options = NodeOptions::default()
        .with_leader_local_reads(args.leader_local_reads)
        .with_max_connections(args.max_connections)
        .with_max_databases(args.max_databases);
    if args.no_read_lease {
        options.raft = options.raft.with_read_lease(None);
    } else if args.read_lease {
        tracing::debug!("--read-lease: the read lease is on by default");
    }
    let mut builder = Node::builder(args.id, args.address.clone(), args.dir.clone())
        .join(args.join.clone())
        .failure_domain(args.failure_domain)
        .options(options);
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        match TlsConfig::from_pem_files(cert, key, args.tls_ca.as_deref(), &args.tls_server_name) {
            Ok(tls) => builder = builder.tls(tls),
            Err(e) => {
                tracing::error!(error = %e, "invalid TLS settings");
                return ExitCode::from(1);
            }
        }
    }
    let node = match builder.start().await {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "node failed to start");
            return ExitCode::from(1);
        }
    };
    println!("dqlite-node {} listening on {}", args.id, node.local_addr());
    wait_for_signal().await;
    tracing::info!("shutting down");
    match node.shutdown().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "shutdown failed");
            ExitCode::from(1)
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
