//! Finding (or building) the node binaries: `dqlite-node` and C dqlite's `dqlite-demo`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::Error;

/// The path of `dqlite-demo` (C dqlite 1.11 in go-dqlite's demo app), or an error that says how
/// to install it: tests of the C backend must fail, not pass silently, where it is missing.
pub fn demo_binary() -> Result<PathBuf, Error> {
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("dqlite-demo"))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| {
            Error::new(
                "dqlite-demo not found in PATH: the C dqlite backend needs it. Install it with \
                 `apt-get update && apt-get install -y go-dqlite libdqlite0 libraft2` \
                 (`bash .ci/run` does).",
            )
        })
}

/// The `dqlite-node` binary to run: `$DQLITE_NODE_BIN` if set; else the one in the profile
/// directory of the running executable (`target/<profile>/dqlite-node`, which cargo builds for
/// the tests of any crate that enables `dqlite-node/cli`, e.g. `cargo nextest run --workspace`);
/// else built now with `cargo build -p dqlite-node --features cli --bin dqlite-node` (with
/// `--release` when the running executable is not a debug build) into the same target
/// directory. A binary found beside the executable is used as it is: after changing dqlite-node,
/// run the tests of the whole workspace (or set `DQLITE_NODE_BIN`).
pub fn node_binary() -> Result<PathBuf, Error> {
    if let Some(p) = std::env::var_os("DQLITE_NODE_BIN") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Error::new(format!(
                "DQLITE_NODE_BIN={} is not a file",
                p.display()
            )))
        };
    }
    let exe = std::env::current_exe()
        .map_err(|e| Error::new(format!("path of the running executable: {e}")))?;
    // target/<profile>/deps/<test>-<hash>, or target/<profile>/<name>.
    let mut profile_dir = exe
        .parent()
        .ok_or_else(|| Error::new(format!("{} has no directory", exe.display())))?
        .to_path_buf();
    if profile_dir.ends_with("deps") {
        profile_dir.pop();
    }
    let beside = profile_dir.join("dqlite-node");
    if beside.is_file() {
        return Ok(beside);
    }
    let release = profile_dir.file_name().is_some_and(|n| n != "debug");
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| Error::new(format!("{} has no parent", profile_dir.display())))?;
    build_node_binary(target_dir, release)
}

/// `cargo build -p dqlite-node --features cli --bin dqlite-node` into `target_dir`, bounded by
/// 30 minutes; returns the executable.
pub(crate) fn build_node_binary(target_dir: &Path, release: bool) -> Result<PathBuf, Error> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dqlite-node/Cargo.toml");
    let mut cmd = Command::new(&cargo);
    cmd.args([
        "build",
        "-p",
        "dqlite-node",
        "--features",
        "cli",
        "--bin",
        "dqlite-node",
    ])
    .arg("--manifest-path")
    .arg(&manifest)
    .arg("--target-dir")
    .arg(target_dir);
    if release {
        cmd.arg("--release");
    }
    eprintln!("building dqlite-node: {cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            Error::new(format!(
                "cannot run {cargo:?} to build dqlite-node ({e}); build it with \
                 `cargo build -p dqlite-node --features cli --bin dqlite-node` or set \
                 DQLITE_NODE_BIN"
            ))
        })?;
    let deadline = Instant::now() + Duration::from_secs(1800);
    let status = loop {
        if let Some(s) = child
            .try_wait()
            .map_err(|e| Error::new(format!("waiting for cargo build: {e}")))?
        {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::new(
                "building dqlite-node took more than 30 minutes: gave up",
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if !status.success() {
        return Err(Error::new(format!(
            "`cargo build -p dqlite-node --features cli --bin dqlite-node` failed ({status})"
        )));
    }
    let exe = target_dir
        .join(if release { "release" } else { "debug" })
        .join("dqlite-node");
    if exe.is_file() {
        Ok(exe)
    } else {
        Err(Error::new(format!(
            "cargo built dqlite-node but {} is not there",
            exe.display()
        )))
    }
}
