//! Checks run on the packaged crates, as a user outside this workspace gets them.

use std::path::{Path, PathBuf};

use crate::cmd::{cargo, run, workspace_root};

/// The program built against the packaged `dqlite-vfs`: SQL math functions must exist in any
/// build, not only in this workspace (C dqlite's SQLite has them, so SQL written for it uses
/// them).
const MATH_CHECK: &str = r#"use dqlite_vfs::{Vfs, VfsConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let vfs = Vfs::register("packaged-math-check", VfsConfig::default())?;
    let db = vfs.open_database("check.db")?;
    let conn = db.connect()?;
    let (floor, sqrt): (f64, f64) =
        conn.query_row("SELECT floor(2.5), sqrt(16)", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if (floor, sqrt) != (2.0, 4.0) {
        return Err(format!("SELECT floor(2.5), sqrt(16) gave {floor}, {sqrt}").into());
    }
    println!("packaged dqlite-vfs: SELECT floor(2.5), sqrt(16) = {floor}, {sqrt}");
    Ok(())
}
"#;

/// The `.crate` file `cargo package` wrote for `name`.
fn packaged_crate(name: &str) -> Result<PathBuf, String> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let dir = target.join("package");
    let prefix = format!("{name}-");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "crate")
                && p.file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|s| s.strip_prefix(&prefix))
                    .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()))
        })
        .collect();
    found.sort();
    found
        .pop()
        .ok_or_else(|| format!("no {name}-*.crate in {}", dir.display()))
}

/// Builds and runs a program that depends on the packaged `dqlite-vfs` (extracted outside the
/// workspace, so neither its `.cargo/config.toml` nor anything else of it applies) and checks
/// that `SELECT floor(2.5), sqrt(16)` answers 2.0 and 4.0.
pub fn check_math_functions() -> Result<(), String> {
    let krate = packaged_crate("dqlite-vfs")?;
    let work = std::env::temp_dir().join(format!("dqlite-rs-packaged-{}", std::process::id()));
    let result = build_and_run(&krate, &work);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn build_and_run(krate: &Path, work: &Path) -> Result<(), String> {
    std::fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
    let mut untar = std::process::Command::new("tar");
    untar.arg("xzf").arg(krate).arg("-C").arg(work);
    run(untar)?;
    let extracted = krate
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| format!("{}: unexpected file name", krate.display()))?;
    let check = work.join("check");
    std::fs::create_dir_all(check.join("src")).map_err(|e| format!("{}: {e}", check.display()))?;
    let manifest = format!(
        "[package]\nname = \"packaged-math-check\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\
         publish = false\n\n[dependencies]\ndqlite-vfs = {{ path = \"../{extracted}\" }}\n\n\
         [workspace]\n"
    );
    let write = |path: PathBuf, text: &str| {
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    write(check.join("Cargo.toml"), &manifest)?;
    write(check.join("src/main.rs"), MATH_CHECK)?;
    // The workspace's lock file pins the same dependency versions the workspace was tested with.
    let lock = workspace_root().join("Cargo.lock");
    std::fs::copy(&lock, check.join("Cargo.lock"))
        .map_err(|e| format!("{}: {e}", lock.display()))?;
    let mut build = cargo();
    build
        .current_dir(&check)
        .args(["run", "--quiet", "--manifest-path"])
        .arg(check.join("Cargo.toml"))
        // A target directory of its own inside the workspace's, kept between runs for speed.
        .env(
            "CARGO_TARGET_DIR",
            workspace_root().join("target/packaged-check"),
        )
        // Whatever this process inherited: the check is about a build without the flag.
        .env_remove("LIBSQLITE3_FLAGS");
    run(build)
}
