//! The short chaos pass of `cargo xtask ci`: each workload once under a cheap nemesis, a
//! few key nemeses, and the check of the checkers (a node built to acknowledge writes
//! before they commit must be caught). A few minutes in all on a debug build.

use std::time::Duration;

use super::cli::{self, Options};
use super::{netns, run_once};

/// One run of the pass: workload, nemesis, seconds, extra flags.
const MATRIX: [(&str, &str, u64, &[&str]); 7] = [
    ("register", "partition", 25, &[]),
    ("bank", "kill", 20, &[]),
    ("set", "pause", 15, &[]),
    ("append", "link", 15, &[]),
    ("all", "membership", 25, &[]),
    ("register", "lease", 15, &[]),
    ("set", "disk", 20, &[]),
];

/// The test-only node feature whose build must be caught.
pub const UNSAFE_FEATURE: &str = "unsafe-ack-before-commit";

fn options(
    workload: &str,
    nemesis: &str,
    secs: u64,
    extra: &[&str],
    seed: u64,
) -> Result<Options, String> {
    let mut args: Vec<String> = [
        "--workload",
        workload,
        "--nemesis",
        nemesis,
        "--duration",
        &secs.to_string(),
        "--seed",
        &seed.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    cli::parse(&args)
}

/// The seed given as `--seed N` in `args`, else one from the clock (printed by every run).
pub fn seed_from(args: &[String]) -> u64 {
    args.windows(2)
        .find(|w| w[0] == "--seed")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() % 100_000)
                .unwrap_or(1)
        })
}

/// Runs the pass; skips (with a message) only if this machine cannot make namespaces.
pub fn run_ci_pass(seed: u64) -> Result<(), String> {
    if let Err(e) = netns::probe() {
        eprintln!("xtask ci: chaos pass SKIPPED: this machine cannot run it: {e}");
        return Ok(());
    }
    let started = std::time::Instant::now();
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    for (i, (w, n, secs, extra)) in MATRIX.iter().enumerate() {
        let o = options(w, n, *secs, extra, seed + i as u64)?;
        let line = match run_once(&o) {
            Ok(r) => {
                if !r.passed {
                    failed.push(format!("{w} x {n}: {}", r.message));
                }
                let ops: usize = r.ops.iter().map(|o| o.1 + o.2 + o.3).sum();
                format!(
                    "{w:>8} x {n:<10} {secs:>3} s  {ops:>6} ops  {:>3} faults  {}",
                    r.faults,
                    if r.passed { "pass" } else { "FAIL" }
                )
            }
            Err(e) => {
                failed.push(format!("{w} x {n}: {e}"));
                format!("{w:>8} x {n:<10} {secs:>3} s  aborted: {e}")
            }
        };
        rows.push(line);
    }
    // The checkers must catch a node that acknowledges before commit.
    let mut o = options("set", "partition", 30, &["--expect-anomaly"], seed + 100)?;
    o.node_features = Some(UNSAFE_FEATURE.to_string());
    let line = match run_once(&o) {
        Ok(r) if r.passed => format!("unsafe-ack build: caught ({})", r.anomalies.join(", ")),
        Ok(r) => {
            failed.push(format!(
                "the {UNSAFE_FEATURE} build was not caught: {}",
                r.message
            ));
            "unsafe-ack build: NOT CAUGHT".to_string()
        }
        Err(e) => {
            failed.push(format!("{UNSAFE_FEATURE} run: {e}"));
            format!("unsafe-ack build: aborted: {e}")
        }
    };
    rows.push(line);
    println!(
        "chaos pass ({:?}):",
        Duration::from_secs(started.elapsed().as_secs())
    );
    for r in &rows {
        println!("  {r}");
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("chaos pass failed:\n  {}", failed.join("\n  ")))
    }
}
