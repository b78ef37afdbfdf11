//! The Python client's side of the bench: the PyPI `dqlite-client` (pure Python, asyncio; needs
//! Python >= 3.13) running `driver.py` in a child process.
//!
//! The interpreter is `$DQLITE_INTEROP_PYTHON` when set (CI's `.ci/run` prepares it), else the
//! interop tests' virtualenv `target/python-interop/venv`, made on first use by
//! `dqlite-node/tests/interop/prepare.py` with a Python 3.13 found on PATH or in pyenv.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::report::Phase;

/// The driver script, written into the run directory.
const DRIVER: &str = include_str!("driver.py");

fn answers(python: &Path, code: &str) -> bool {
    Command::new(python)
        .args(["-c", code])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn find_python313() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("PYTHON313") {
        candidates.push(p.into());
    }
    candidates.push("python3.13".into());
    let root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")));
    if let Some(Ok(dir)) = root.map(|r| std::fs::read_dir(r.join("versions"))) {
        let mut found: Vec<PathBuf> = dir
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("3.1"))
            .map(|e| e.path().join("bin/python3"))
            .collect();
        found.sort();
        candidates.extend(found);
    }
    candidates
        .into_iter()
        .find(|c| answers(c, "import sys; sys.exit(sys.version_info < (3, 13))"))
}

/// An interpreter that can `import dqliteclient`, prepared if need be.
pub fn interpreter(workspace: &Path) -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("DQLITE_INTEROP_PYTHON") {
        let p = PathBuf::from(p);
        return if answers(&p, "import dqliteclient") {
            Ok(p)
        } else {
            Err(format!(
                "DQLITE_INTEROP_PYTHON={} cannot import dqliteclient",
                p.display()
            ))
        };
    }
    let venv = workspace.join("target/python-interop/venv");
    let py = venv.join("bin/python");
    if answers(&py, "import dqliteclient") {
        return Ok(py);
    }
    let base = find_python313()
        .ok_or("no Python >= 3.13 found (pyenv versions, python3.13, or $PYTHON313)")?;
    let prepare = workspace.join("dqlite-node/tests/interop/prepare.py");
    let out = Command::new(&base)
        .arg(&prepare)
        .arg("--venv")
        .arg(&venv)
        .output()
        .map_err(|e| format!("{}: {e}", prepare.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            prepare.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let py = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string());
    if answers(&py, "import dqliteclient") {
        Ok(py)
    } else {
        Err(format!("{} cannot import dqliteclient", py.display()))
    }
}

/// Runs one cell (write, read, mix90 for `secs` each with `conns` connections) through the
/// Python client; phases in that order.
pub fn cell(
    python: &Path,
    run_dir: &Path,
    servers: &[String],
    database: &str,
    conns: usize,
    secs: f64,
) -> Result<Vec<Phase>, String> {
    let script = run_dir.join("driver.py");
    if !script.is_file() {
        std::fs::write(&script, DRIVER).map_err(|e| format!("{}: {e}", script.display()))?;
    }
    let out_file = run_dir.join(format!("py-{database}-{conns}.json"));
    let _ = std::fs::remove_file(&out_file);
    // The client is pure Python: one process drives one core at most, and the machine's
    // cores are shared with the nodes.
    let procs = conns.min(std::thread::available_parallelism().map_or(2, |n| n.get()));
    let out = Command::new(python)
        .arg(&script)
        .args(["--servers", &servers.join(",")])
        .args(["--database", database])
        .args(["--conns", &conns.to_string()])
        .args(["--secs", &secs.to_string()])
        .args(["--procs", &procs.to_string()])
        .arg("--out")
        .arg(&out_file)
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "python driver failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .rev()
                .take(8)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        ));
    }
    let text =
        std::fs::read_to_string(&out_file).map_err(|e| format!("{}: {e}", out_file.display()))?;
    text.lines()
        .map(|line| {
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| format!("driver output {line:?}: {e}"))?;
            let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
            let n = |k: &str| v[k].as_u64().unwrap_or(0);
            Ok(Phase {
                ops: n("ops"),
                wall: f("wall"),
                p50_ms: f("p50_ms"),
                p99_ms: f("p99_ms"),
                busy: n("busy"),
                errors: n("errors"),
            })
        })
        .collect()
}
