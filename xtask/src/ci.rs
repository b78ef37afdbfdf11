//! The CI gate and the sanitizer and benchmark runners.

use crate::cmd::{cargo, cargo_nightly, have, run};

/// `cargo xtask ci`: everything a submission must pass.
pub fn run_ci(args: &[String]) -> Result<(), String> {
    let package = !args.iter().any(|a| a == "--no-package");
    // dqlite-vfs is the project's unsafe core: its tests also run under ASan (rebuilds std;
    // the longest step; `--no-asan` skips it for quick local runs).
    let asan_wanted = !args.iter().any(|a| a == "--no-asan");
    preflight(asan_wanted)?;

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
    // A short smoke run of the side-by-side bench (debug builds: it checks the harness), with
    // the full one-million-row INSERT (one ~18 MiB entry), which must commit: a debug leader
    // takes most of a second over its own fsync of it, and a check-quorum that mistook that
    // for a lost quorum once failed it every time.
    crate::bench::run_bench(&[
        "--quick".into(),
        "--debug".into(),
        "--big-rows".into(),
        "1000000".into(),
    ])?;

    let mut doc = cargo();
    doc.args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings");
    run(doc)?;

    if package {
        run_package(&[])?;
    }

    if asan_wanted {
        asan(&[])?;
    }

    // A short chaos pass (namespaces, real nodes, faults; see `chaos::ci_pass`).
    if !args.iter().any(|a| a == "--no-chaos") {
        crate::chaos::ci_pass::run_ci_pass(crate::chaos::ci_pass::seed_from(&[]))?;
    }
    eprintln!("xtask ci: all green");
    Ok(())
}

/// Checks that what the tests and the gate run is installed, and names the command that
/// installs whatever is missing (`bash .ci/run` installs all of it), so that a missing tool
/// fails here in a second with its remedy rather than deep in a test after a long build.
fn preflight(asan_wanted: bool) -> Result<(), String> {
    let mut missing: Vec<String> = Vec::new();
    if !on_path("dqlite-demo") {
        missing.push(
            "dqlite-demo (C dqlite 1.11, for the interop tests): \
             apt-get update && apt-get install -y go-dqlite libdqlite0 libraft2"
                .into(),
        );
    }
    if !on_path("openssl") {
        missing.push("openssl (test certificates): apt-get install -y openssl".into());
    }
    if !on_path("cc") {
        missing.push("cc (builds the bundled SQLite): apt-get install -y build-essential".into());
    }
    if std::env::var_os("DQLITE_INTEROP_PYTHON").is_none() && !python313_found() {
        missing.push(
            "a Python >= 3.13 (the PyPI dqlite clients of dqlite-node's python_interop test): \
             `pyenv install 3.13`, or set PYTHON313 to one"
                .into(),
        );
    }
    if asan_wanted && !have("cargo", &["+nightly", "--version"]) {
        missing.push(
            "the nightly toolchain with rust-src (the AddressSanitizer run; or pass --no-asan): \
             rustup toolchain install nightly --component rust-src"
                .into(),
        );
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "missing prerequisites (`bash .ci/run` installs them all, as root):\n  - {}",
        missing.join("\n  - ")
    ))
}

/// Whether an executable named `program` is in one of `$PATH`'s directories.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Whether a Python >= 3.13 is where dqlite-node's python_interop test looks for one.
fn python313_found() -> bool {
    if std::env::var_os("PYTHON313").is_some() || on_path("python3.13") || on_path("python3.14") {
        return true;
    }
    let roots = [
        std::env::var_os("PYENV_ROOT").map(std::path::PathBuf::from),
        std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".pyenv")),
    ];
    roots.into_iter().flatten().any(|root| {
        std::fs::read_dir(root.join("versions")).is_ok_and(|versions| {
            versions
                .flatten()
                .any(|v| v.file_name().to_string_lossy().starts_with("3.13"))
        })
    })
}

/// `cargo xtask package`: packages and verifies every publishable crate, each built from its
/// tarball against the other crates' tarballs (CI's packaging step), then builds a program
/// against the packaged `dqlite-vfs` outside the workspace and checks its SQL math functions.
pub fn run_package(_args: &[String]) -> Result<(), String> {
    forget_packaged_sources()?;
    let mut pkg = cargo();
    pkg.args([
        "package",
        "--workspace",
        "--exclude",
        "xtask",
        "--exclude",
        "dqlite-cluster",
        "--allow-dirty",
    ]);
    run(pkg)?;
    crate::packaged::check_math_functions()
}

/// The workspace's own publishable crates.
const PUBLISHED: [&str; 6] = [
    "dqlite-wire",
    "dqlite-vfs",
    "dqlite-raft",
    "dqlite-node",
    "dqlite-client",
    "dqlite-client-derive",
];

/// Removes cargo's extracted copies of the workspace's own crates from earlier packaging runs.
///
/// `cargo package --workspace` verifies each crate against a temporary local registry of the
/// other crates' tarballs, and cargo extracts those tarballs under
/// `$CARGO_HOME/registry/src/<hash of the registry's path>/<crate>-<version>`. It never
/// extracts again over a finished extraction, so a second run from the same checkout path
/// (CI always checks out to one path) compiles the crates against the sources of the first
/// run: a field added since then is "unknown". Local registries' directories have no host in
/// their names (crates.io's start with `index.`), and none of these crate names is on
/// crates.io, so only leftovers of this packaging are removed.
fn forget_packaged_sources() -> Result<(), String> {
    let cargo_home = match std::env::var_os("CARGO_HOME") {
        Some(home) => std::path::PathBuf::from(home),
        None => match std::env::var_os("HOME") {
            Some(home) => std::path::PathBuf::from(home).join(".cargo"),
            None => return Ok(()),
        },
    };
    let src = cargo_home.join("registry").join("src");
    let Ok(registries) = std::fs::read_dir(&src) else {
        return Ok(());
    };
    for registry in registries.flatten() {
        let registry_name = registry.file_name();
        if registry_name.to_string_lossy().starts_with("index.") {
            continue;
        }
        let Ok(crates) = std::fs::read_dir(registry.path()) else {
            continue;
        };
        for extracted in crates.flatten() {
            let name = extracted.file_name();
            let name = name.to_string_lossy();
            let ours = PUBLISHED.iter().any(|krate| {
                name.strip_prefix(krate)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|version| version.starts_with(|c: char| c.is_ascii_digit()))
            });
            if ours {
                let path = extracted.path();
                std::fs::remove_dir_all(&path)
                    .map_err(|e| format!("could not remove stale {}: {e}", path.display()))?;
            }
        }
    }
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
    // `dqlite_asan` tells tests that the C allocator is ASan's (no `malloc_trim`).
    .env("RUSTFLAGS", "-Zsanitizer=address --cfg dqlite_asan")
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
