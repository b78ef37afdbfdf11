//! `dqlite`: an SQL shell for dqlite clusters (interactive or one-shot).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod cli;
mod format;
mod shell;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let mut sh = match shell::Shell::new(&args) {
            Ok(sh) => sh,
            Err(e) => {
                eprintln!("Error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let ok = match &args.sql {
            Some(sql) => sh.run_text(sql, &mut std::io::stdout()).await,
            None => {
                let interactive = std::io::stdin().is_terminal();
                let ok = sh.interactive().await;
                // Piped input is a script: report failure through the exit status.
                ok || interactive
            }
        };
        if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    })
}
