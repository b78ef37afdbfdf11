//! What the bench reads from the machine: a process's memory, a directory's size on disk, the
//! load, and a description of the machine for the report.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

/// Resident memory of a process in bytes: (current `VmRSS`, peak `VmHWM`).
pub fn rss(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Bytes allocated on disk under `dir` (like `du -s`: blocks, so preallocated but unwritten
/// space counts and holes do not).
pub fn disk_usage(dir: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return 0;
    };
    let own = meta.blocks() * 512;
    if !meta.is_dir() {
        return own;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return own;
    };
    own + entries
        .flatten()
        .map(|e| disk_usage(&e.path()))
        .sum::<u64>()
}

/// The 1, 5 and 15 minute load averages as written in `/proc/loadavg`.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The 1-minute load average as a number.
pub fn load1() -> f64 {
    loadavg()
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN)
}

fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "?".into())
}

/// UTC date and time, `YYYY-MM-DD HH:MM UTC`.
pub fn now_utc() -> String {
    command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
}

/// A compact date for file names, `YYYYMMDD-HHMMSS`.
pub fn stamp() -> String {
    command_line("date", &["-u", "+%Y%m%d-%H%M%S"])
}

/// CPU model, core count, memory and kernel, in one line.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!(
        "{cores} x {model}, {mem_gib:.0} GiB RAM, Linux {}",
        command_line("uname", &["-r"])
    )
}

/// The C dqlite version Debian installed, e.g. `libdqlite0 1.11.1-1`.
pub fn c_version() -> String {
    command_line("dpkg-query", &["-W", "libdqlite0"]).replace('\t', " ")
}

/// The commit the bench was built from (with `+dirty` for uncommitted changes).
pub fn git_head(root: &Path) -> String {
    let root = root.display().to_string();
    let head = command_line("git", &["-C", &root, "rev-parse", "--short", "HEAD"]);
    let dirty = !command_line(
        "git",
        &["-C", &root, "status", "--porcelain", "--untracked-files=no"],
    )
    .is_empty();
    if dirty { format!("{head}+dirty") } else { head }
}
