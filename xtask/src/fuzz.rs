//! `cargo xtask fuzz`: a bounded smoke run of every cargo-fuzz target.

use crate::cmd::{cargo_nightly, run, workspace_root};
use std::process::Command;

/// Runs each target (all by default) for `--seconds N` (default 60).
pub fn run_fuzz(args: &[String]) -> Result<(), String> {
    let mut seconds = 60u64;
    let mut targets = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--seconds" {
            let value = it.next().ok_or("--seconds needs a value")?;
            seconds = value
                .parse()
                .map_err(|e| format!("--seconds {value}: {e}"))?;
        } else {
            targets.push(arg.clone());
        }
    }
    let fuzz_dir = workspace_root().join("fuzz");
    if targets.is_empty() {
        let out = Command::new("cargo")
            .args(["+nightly", "fuzz", "list"])
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("CARGO")
            .current_dir(&fuzz_dir)
            .output()
            .map_err(|e| {
                format!("cargo fuzz list: {e} (install with `cargo install cargo-fuzz`)")
            })?;
        if !out.status.success() {
            return Err(format!(
                "cargo fuzz list failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        targets = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
    }
    if targets.is_empty() {
        return Err("no fuzz targets found".into());
    }
    for target in targets {
        let mut cmd = cargo_nightly();
        cmd.current_dir(&fuzz_dir).args([
            "fuzz",
            "run",
            &target,
            "--",
            &format!("-max_total_time={seconds}"),
            "-rss_limit_mb=2048",
            // One input taking this long is a hang (the gateway target bounds each
            // connection to 10 s itself).
            "-timeout=30",
            "-max_len=65536",
        ]);
        run(cmd)?;
    }
    Ok(())
}
