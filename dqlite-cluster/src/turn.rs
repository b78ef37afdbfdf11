//! [`Turn`]: one test cluster at a time on this machine.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::Error;

/// One cluster at a time on this machine: the holder of `$TMPDIR/dqlite-client-cluster.lock`
/// (created exclusively, holding its pid; removed on drop, or taken over when that pid is
/// gone). Test runners start tests in parallel processes; three or four clusters at once on two
/// cores make every node miss its timeouts, which measures the machine, not the nodes.
/// `DQLITE_TEST_PARALLEL=1` turns this off.
#[derive(Debug)]
pub struct Turn {
    path: PathBuf,
}

impl Turn {
    /// Waits (at most 15 minutes) for the turn; `None` when `DQLITE_TEST_PARALLEL` is set.
    pub fn take() -> Result<Option<Turn>, Error> {
        if std::env::var_os("DQLITE_TEST_PARALLEL").is_some() {
            return Ok(None);
        }
        let path = std::env::temp_dir().join("dqlite-client-cluster.lock");
        let me = std::process::id();
        let deadline = Instant::now() + Duration::from_secs(900);
        let mut said = false;
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    use std::io::Write;
                    write!(f, "{me}")
                        .map_err(|e| Error::new(format!("{}: {e}", path.display())))?;
                    return Ok(Some(Turn { path }));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder: Option<u32> = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|s| s.trim().parse().ok());
                    // A holder that is gone (a killed test run): take the lock over. A file
                    // without a pid yet is being written: wait.
                    if let Some(pid) = holder
                        && !Path::new(&format!("/proc/{pid}")).exists()
                    {
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                    if !said {
                        eprintln!("waiting for another cluster test to finish ({holder:?})");
                        said = true;
                    }
                    if Instant::now() > deadline {
                        return Err(Error::new(format!(
                            "{} held by pid {holder:?} for 15 minutes",
                            path.display()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(Error::new(format!("{}: {e}", path.display()))),
            }
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
