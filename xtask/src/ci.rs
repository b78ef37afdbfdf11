//! The CI gate and the sanitizer and benchmark runners.

use crate::cmd::{cargo, cargo_nightly, have, run};

/// `cargo xtask ci`: everything a submission must pass.
pub fn run_ci(args: &[String]) -> Result<(), String> {
    let package = !args.iter().any(|a| a == "--no-package");
    // dqlite-vfs is the project's unsafe core: its tests also run under ASan (rebuilds std;
    // the longest step; `--no-asan` skips it for quick local runs).
    let asan_wanted = !args.iter().any(|a| a == "--no-asan");

    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    run(fmt)?;

    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run(clippy)?;

    let mut test = cargo();
    if have("cargo-nextest", &["nextest", "--version"]) {
        test.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        test.args(["test", "--workspace", "--no-fail-fast"]);
    }
    run(test)?;
    // nextest does not run doctests.
    let mut doctest = cargo();
    doctest.args(["test", "--workspace", "--doc"]);
    run(doctest)?;

    let mut doc = cargo();
    doc.args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings");
    run(doc)?;

    if package {
        let mut pkg = cargo();
        pkg.args([
            "package",
            "--workspace",
            "--exclude",
            "xtask",
            "--allow-dirty",
        ]);
        run(pkg)?;
    }

    if asan_wanted {
        asan(&[])?;
    }
    eprintln!("xtask ci: all green");
    Ok(())
}

/// `cargo xtask asan`: the `dqlite-vfs` tests under AddressSanitizer.
pub fn asan(_args: &[String]) -> Result<(), String> {
    let mut cmd = cargo_nightly();
    cmd.args([
        "test",
        "-Zbuild-std",
        "--target",
        "x86_64-unknown-linux-gnu",
        "-p",
        "dqlite-vfs",
        "--target-dir",
        "target/asan",
    ])
    .env("RUSTFLAGS", "-Zsanitizer=address")
    .env("RUSTDOCFLAGS", "-Zsanitizer=address")
    .env("ASAN_OPTIONS", "detect_leaks=1")
    .env("PROPTEST_CASES", "32");
    run(cmd)
}

/// `cargo xtask bench [CRATE..]`: criterion benchmarks, e.g. `bench wire vfs`.
pub fn bench(args: &[String]) -> Result<(), String> {
    let crates: Vec<String> = if args.is_empty() {
        ["wire", "vfs", "raft", "client", "node"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        args.to_vec()
    };
    for name in crates {
        let package = if name.starts_with("dqlite-") {
            name
        } else {
            format!("dqlite-{name}")
        };
        let mut cmd = cargo();
        cmd.args(["bench", "-p", &package]);
        run(cmd)?;
    }
    Ok(())
}
