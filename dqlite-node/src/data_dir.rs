//! The data directory: an exclusive lock (one node process per directory) and the identity
//! recorded there (node id and advertised address), checked at every start.
//!
//! Layout: `lock` (flock'ed while a node runs), `node-info` (the identity: `id=N` and
//! `address=HOST:PORT` lines), `raft/` (Raft log and snapshots, see `dqlite-raft`).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use fs4::{FileExt, TryLockError};

use crate::error::NodeError;

const INFO: &str = "node-info";
const LOCK: &str = "lock";

/// A node's identity as its data directory records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Node id.
    pub id: u64,
    /// Advertised address.
    pub address: String,
}

impl Identity {
    /// Reads the identity recorded in data directory `dir`, if any.
    pub fn read(dir: &Path) -> Result<Option<Identity>, NodeError> {
        let path = dir.join(INFO);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(NodeError::DataDir { path, source }),
        };
        let bad = |why: &str| NodeError::Config(format!("{}: {why}", path.display()));
        let (mut id, mut address) = (None, None);
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            match line.split_once('=') {
                Some(("id", v)) => id = Some(v.parse::<u64>().map_err(|_| bad("bad id"))?),
                Some(("address", v)) => address = Some(v.to_string()),
                _ => return Err(bad(&format!("unexpected line {line:?}"))),
            }
        }
        match (id, address) {
            (Some(id), Some(address)) => Ok(Some(Identity { id, address })),
            _ => Err(bad("id or address missing")),
        }
    }

    /// Records this identity in `dir` (atomically: temp file, fsync, rename, fsync dir).
    pub fn write(&self, dir: &Path) -> Result<(), NodeError> {
        let io = |path: PathBuf| move |source| NodeError::DataDir { path, source };
        let tmp = dir.join(format!("{INFO}.tmp"));
        let mut f = File::create(&tmp).map_err(io(tmp.clone()))?;
        writeln!(f, "id={}\naddress={}", self.id, self.address).map_err(io(tmp.clone()))?;
        f.sync_all().map_err(io(tmp.clone()))?;
        fs::rename(&tmp, dir.join(INFO)).map_err(io(dir.join(INFO)))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir.to_path_buf()))
    }
}

/// An open, locked data directory. The lock is released when this is dropped (or the process
/// exits, however it exits).
#[derive(Debug)]
pub(crate) struct DataDir {
    path: PathBuf,
    _lock: File,
}

impl DataDir {
    /// Creates `dir` if needed and locks it; fails if another process (or another node of this
    /// process) has it, or if it records another node id than `id`.
    pub fn open(dir: &Path, id: u64) -> Result<DataDir, NodeError> {
        fs::create_dir_all(dir).map_err(|source| NodeError::DataDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let lock_path = dir.join(LOCK);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| NodeError::DataDir {
                path: lock_path.clone(),
                source,
            })?;
        match FileExt::try_lock(&lock) {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(NodeError::Config(format!(
                    "data directory {} is in use by another node process",
                    dir.display()
                )));
            }
            Err(TryLockError::Error(source)) => {
                return Err(NodeError::DataDir {
                    path: lock_path,
                    source,
                });
            }
        }
        if let Some(recorded) = Identity::read(dir)?
            && recorded.id != id
        {
            return Err(NodeError::Config(format!(
                "data directory {} belongs to node {}, not node {id}",
                dir.display(),
                recorded.id
            )));
        }
        Ok(DataDir {
            path: dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// Checks the advertised address against the recorded one (unless the address picks its
    /// port at start, port 0), then records the identity.
    pub fn settle_identity(
        &self,
        id: u64,
        configured: &str,
        address: &str,
    ) -> Result<(), NodeError> {
        let ephemeral = configured.ends_with(":0");
        if let Some(recorded) = Identity::read(&self.path)?
            && !ephemeral
            && recorded.address != address
        {
            return Err(NodeError::Config(format!(
                "data directory {} belongs to node {id} at {}, not at {address} (the cluster \
                 knows the node by that address; `dqlite-node recover` can change it)",
                self.path.display(),
                recorded.address
            )));
        }
        Identity {
            id,
            address: address.to_string(),
        }
        .write(&self.path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_of_a_locked_directory_fails_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDir::open(dir.path(), 1).unwrap();
        let e = DataDir::open(dir.path(), 1).unwrap_err();
        assert!(e.to_string().contains("in use"), "{e}");
        drop(first);
        DataDir::open(dir.path(), 1).unwrap();
    }

    #[test]
    fn an_identity_that_contradicts_the_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = DataDir::open(dir.path(), 7).unwrap();
        d.settle_identity(7, "127.0.0.1:9001", "127.0.0.1:9001")
            .unwrap();
        let e = d
            .settle_identity(7, "127.0.0.1:9002", "127.0.0.1:9002")
            .unwrap_err();
        assert!(e.to_string().contains("127.0.0.1:9001"), "{e}");
        // A port picked at start is not held against the directory.
        d.settle_identity(7, "127.0.0.1:0", "127.0.0.1:4242")
            .unwrap();
        drop(d);
        let e = DataDir::open(dir.path(), 8).unwrap_err();
        assert!(e.to_string().contains("belongs to node 7"), "{e}");
        assert_eq!(
            Identity::read(dir.path()).unwrap(),
            Some(Identity {
                id: 7,
                address: "127.0.0.1:4242".into()
            })
        );
    }
}
