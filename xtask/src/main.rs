//! `cargo xtask`: the project's automation, one subcommand per job.
//!
//! - `ci`: the gate CI runs (fmt, clippy, tests, docs, packaging).
//! - `fuzz [--seconds N] [TARGET...]`: a bounded smoke run of the cargo-fuzz targets.
//! - `package`: `cargo package` of every publishable crate, verified against the others.
//! - `asan`: the `dqlite-vfs` tests under AddressSanitizer (nightly).
//! - `bench`: C dqlite 1.11 and dqlite-rs clusters side by side (`bench CRATE..`: criterion).
//! - `cluster start|status|stop|kill|restart`: a local cluster of `dqlite-node` processes.
//! - `chaos --workload W --nemesis N ...`: fault testing of a cluster in network namespaces.

mod bench;
mod chaos;
mod ci;
mod cluster;
mod cmd;
mod fuzz;
mod packaged;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((task, rest)) => (task.as_str(), rest),
        None => {
            eprintln!("{}", USAGE);
            return ExitCode::from(2);
        }
    };
    let result = match task {
        "ci" => ci::run_ci(rest),
        "fuzz" => fuzz::run_fuzz(rest),
        "asan" => ci::asan(rest),
        "package" => ci::run_package(rest),
        "bench" => bench::run_bench(rest),
        "cluster" => cluster::run_cluster(rest),
        "chaos" => chaos::run_chaos(rest),
        "chaos-ci" => chaos::ci_pass::run_ci_pass(chaos::ci_pass::seed_from(rest)),
        "help" | "--help" | "-h" => {
            println!("{}", USAGE);
            Ok(())
        }
        other => Err(format!("unknown task `{other}`\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask {task}: {message}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: cargo xtask <task> [args]
tasks:
  ci [--no-package] [--no-asan] [--no-chaos]
                                 fmt, clippy, tests, chaos pass, docs, packaging (what CI runs)
  fuzz [--seconds N] [TARGET..]  run each cargo-fuzz target for N seconds (default 60)
  package                        package and verify the publishable crates (a CI step)
  asan                           dqlite-vfs tests under AddressSanitizer (nightly)
  bench [--quick] [--secs S] ...  C dqlite 1.11 vs dqlite-rs, side by side (`bench --help`)
  bench CRATE.. | --criterion    criterion benchmarks (e.g. `bench wire vfs`)
  cluster start [--nodes 3] [--base-port 9001] [--dir DIR] [--release]
                                 build and start dqlite-node processes on 127.0.0.1 in the
                                 background (logs and data in DIR, default target/cluster);
                                 prints their addresses comma-separated
  cluster status|stop [--dir DIR]
  cluster kill|restart (--node N | --address HOST:PORT) [--dir DIR] [--signal SIG]
                                 kill: SIGKILL by recorded pid (--signal STOP pauses the
                                 node, CONT resumes it, TERM stops it gracefully);
                                 restart: SIGTERM, then start it again; stop: SIGTERM all

  chaos --workload register|bank|set|append|all
        --nemesis partition|kill|pause|link|membership|disk|lease|all|none
        [--duration S] [--seed N] [--nodes 3|5] [--read-lease] [--leader-local-reads] ...
                                 fault testing in network namespaces (`chaos --help`)
  chaos-ci [--seed N]            the short chaos matrix `ci` runs, alone";
