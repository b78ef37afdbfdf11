//! `dqlite-node`: run one dqlite node, or recover one whose cluster lost its quorum.
//!
//! Settings come from flags, `DQLITE_*` environment variables and an optional TOML file
//! (`--config`), in that order of precedence (see `config.rs`).
//!
//! Exit codes: 0 after a clean shutdown (SIGINT/SIGTERM; a voter hands its role over and a
//! leader hands leadership over first) or a successful `recover`, 1 if the node failed to
//! start (address in use, data directory locked by another process or belonging to another
//! node, unreadable TLS files) or stopped with an error (Raft stopped on a storage failure such
//! as a full disk: restart it once the cause is gone), 2 for invalid arguments.

mod config;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use config::Settings;

/// Run a dqlite node: replicated SQLite over Raft, serving the dqlite wire protocol.
#[derive(Debug, Parser)]
#[command(name = "dqlite-node", version, args_conflicts_with_subcommands = true)]
struct Args {
    /// TOML file with settings (keys spelled like the flags, e.g. `http-address`); flags and
    /// DQLITE_* environment variables take precedence over it.
    #[arg(long, env = "DQLITE_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Rewrite the membership of a STOPPED node whose cluster lost its quorum for good, so
    /// that it starts again as a working cluster with every write it holds. Run it on the
    /// most up-to-date survivor only (without --members it prints what the directory holds:
    /// compare the last log index of the survivors), then start that node; other nodes join
    /// it afresh with empty data directories.
    Recover {
        /// Data directory of the stopped node.
        #[arg(long)]
        dir: PathBuf,
        /// The members the recovered cluster starts with, all voters: ID=ADDRESS[,...]. The
        /// node itself must be among them.
        #[arg(long, value_delimiter = ',', value_parser = parse_member)]
        members: Vec<(u64, String)>,
    },
}

fn parse_member(s: &str) -> Result<(u64, String), String> {
    let (id, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected ID=ADDRESS"))?;
    let id = id
        .trim()
        .parse::<u64>()
        .map_err(|e| format!("{s:?}: bad id: {e}"))?;
    if id == 0 || addr.trim().is_empty() {
        return Err(format!("{s:?}: expected a non-zero ID and an address"));
    }
    Ok((id, addr.trim().to_string()))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let settings = match &args.config {
        Some(path) => match Settings::from_file(path) {
            Ok(file) => args.settings.clone().merge(file),
            Err(e) => {
                eprintln!("dqlite-node: {e}");
                return ExitCode::from(2);
            }
        },
        None => args.settings.clone(),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    // Logs go to stderr, without colour codes unless it is a terminal; stdout carries only
    // the "listening on" line (or what `recover` reports).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if settings.log_json() {
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
    match args.command {
        Some(Cmd::Recover { dir, members }) => rt.block_on(recover(dir, members)),
        None => rt.block_on(run(settings)),
    }
}

async fn recover(dir: PathBuf, members: Vec<(u64, String)>) -> ExitCode {
    if members.is_empty() {
        return match dqlite_node::recover::describe(&dir).await {
            Ok((identity, s)) => {
                let last = s
                    .last_log_id
                    .map_or((0, 0), |l| (l.leader_id.term, l.index));
                println!(
                    "node {} at {}: last log index {} (term {}), committed index {}",
                    identity.id,
                    identity.address,
                    last.1,
                    last.0,
                    s.committed.map_or(0, |c| c.index)
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the data directory");
                ExitCode::from(1)
            }
        };
    }
    match dqlite_node::recover::recover_membership(&dir, &members).await {
        Ok(done) => {
            println!(
                "recovered: membership entry appended at index {} (term {}); start the node",
                done.appended.index, done.appended.leader_id.term
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "recovery failed");
            ExitCode::from(1)
        }
    }
}

async fn run(settings: Settings) -> ExitCode {
    let setup = match settings.builder() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dqlite-node: {e}");
            return ExitCode::from(2);
        }
    };
    let mut builder = setup.builder;
    match settings.tls() {
        Ok(Some(tls)) => builder = builder.tls(tls),
        Ok(None) => {}
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return ExitCode::from(1);
        }
    }
    let node = match builder.start().await {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "node failed to start");
            return ExitCode::from(1);
        }
    };
    match node.http_addr() {
        Some(http) => println!(
            "dqlite-node {} listening on {} (http {http})",
            setup.id,
            node.local_addr()
        ),
        None => println!(
            "dqlite-node {} listening on {}",
            setup.id,
            node.local_addr()
        ),
    }
    tokio::select! {
        () = wait_for_signal() => {}
        error = node.failed() => {
            // Fail-stop: whatever supervises the process restarts it, and the node recovers
            // from its log (a full disk, a failed fsync leave Raft stopped for good).
            tracing::error!(%error, "raft stopped: exiting");
            return ExitCode::from(1);
        }
    }
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
