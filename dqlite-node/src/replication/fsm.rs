//! The replicated state machine: every database of the node and the nodes' metadata.
//!
//! Every committed [`Command`] is applied in log order. Frames go to the database's worker,
//! which publishes them if they are its own pending commit (leader) or appends them
//! (followers); the VFS tells the two apart by content.
//!
//! Snapshot payload, version 2 (little-endian):
//!
//! ```text
//! u8  version (2)
//! u32 number of databases
//!     per database: u32 name length, name,
//!                   u64 log index of the last Frames entry applied (u64::MAX: unknown),
//!                   u64 image length, image (an SQLite file)
//! u32 number of metadata records
//!     per record: u64 node id, u64 failure domain, u64 weight
//! u32 CRC32C of every byte before it
//! ```
//!
//! Version 1 lacks the per-database log index; a database restored from it accepts the next
//! Frames entry whatever its base (see [`Command::Frames`]).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};

use dqlite_raft::snapshot::SnapshotPayload;
use dqlite_raft::state_machine::{SmError, SnapshotWriter, StateMachine};
use dqlite_vfs::Snapshot;
use openraft::EntryPayload;

use super::NodeConfig;
use super::command::Command;
use crate::database::worker::{Applied, Image};
use crate::database::{QueuedApply, Registry};

const SNAPSHOT_VERSION: u8 = 2;
/// The last-frames index stored for "unknown".
const UNKNOWN_INDEX: u64 = u64::MAX;

/// Per-node metadata: failure domain and weight.
pub type Metadata = BTreeMap<u64, (u64, u64)>;

/// The openraft state machine of a node.
pub struct Fsm {
    registry: Arc<Registry>,
    metadata: Arc<Mutex<Metadata>>,
}

impl Fsm {
    /// A state machine over `registry`.
    pub(crate) fn new(registry: Arc<Registry>, metadata: Arc<Mutex<Metadata>>) -> Self {
        Fsm { registry, metadata }
    }

    /// Applies the command of the entry at log index `index`.
    async fn apply_command(&self, cmd: Command, index: u64) -> Result<Applied, SmError> {
        match cmd {
            Command::Open { db } => {
                self.registry.get_or_start(&db)?;
            }
            Command::Frames { db, base, frames } => {
                return Ok(self
                    .registry
                    .get_or_start(&db)?
                    .apply(frames, base, index)
                    .await?);
            }
            Command::Checkpoint { db } => {
                if let Some(h) = self.registry.get(&db) {
                    h.checkpoint();
                }
            }
            Command::Metadata {
                node_id,
                failure_domain,
                weight,
            } => {
                self.metadata
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(node_id, (failure_domain, weight));
            }
        }
        Ok(Applied::Done)
    }
}

/// The outcome of one entry of an [`StateMachine::apply`] batch.
enum Outcome {
    Ready(Applied),
    /// Frames queued on their database's worker.
    Queued(QueuedApply),
}

/// A captured view of every database and the metadata, serialized on a blocking thread.
pub struct FsmSnapshot {
    databases: Vec<(String, Image)>,
    metadata: Metadata,
}

/// A writer that checksums what passes through it.
struct CrcWriter<'a> {
    out: &'a mut dyn Write,
    crc: u32,
}

impl Write for CrcWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl SnapshotWriter for FsmSnapshot {
    fn write_to(self, out: &mut dyn Write) -> io::Result<()> {
        let mut w = CrcWriter { out, crc: 0 };
        w.write_all(&[SNAPSHOT_VERSION])?;
        w.write_all(&(self.databases.len() as u32).to_le_bytes())?;
        for (name, image) in &self.databases {
            w.write_all(&(name.len() as u32).to_le_bytes())?;
            w.write_all(name.as_bytes())?;
            let last = image.last_frames.unwrap_or(UNKNOWN_INDEX);
            w.write_all(&last.to_le_bytes())?;
            w.write_all(&(image.snapshot.len_bytes() as u64).to_le_bytes())?;
            image.snapshot.write_to(&mut w)?;
        }
        w.write_all(&(self.metadata.len() as u32).to_le_bytes())?;
        for (id, (fd, weight)) in &self.metadata {
            for x in [id, fd, weight] {
                w.write_all(&x.to_le_bytes())?;
            }
        }
        let crc = w.crc;
        w.out.write_all(&crc.to_le_bytes())
    }
}

/// A database as stored in a snapshot.
pub struct StoredDatabase {
    /// Its name.
    pub name: String,
    /// The log index of the last Frames entry applied to it (`None`: unknown).
    pub last_frames: Option<u64>,
    /// The SQLite file.
    pub image: Vec<u8>,
}

/// Parses a snapshot payload into database images and metadata.
pub fn parse_snapshot(bytes: &[u8]) -> Result<(Vec<StoredDatabase>, Metadata), String> {
    if bytes.len() < 9 {
        return Err(format!("snapshot of {} bytes is truncated", bytes.len()));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(format!(
            "snapshot checksum mismatch: stored {stored:#x}, computed {computed:#x}"
        ));
    }
    let version = body[0];
    if version != SNAPSHOT_VERSION && version != 1 {
        return Err(format!("unsupported snapshot version {version}"));
    }
    let mut pos = 1usize;
    let mut take = |n: usize, what: &str| -> Result<&[u8], String> {
        if body.len() - pos < n {
            return Err(format!("snapshot truncated at offset {pos} reading {what}"));
        }
        let s = &body[pos..pos + n];
        pos += n;
        Ok(s)
    };
    let u32_of = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let u64_of = |b: &[u8]| {
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        u64::from_le_bytes(a)
    };
    let n = u32_of(take(4, "database count")?);
    let mut dbs = Vec::new();
    for _ in 0..n {
        let len = u32_of(take(4, "name length")?);
        let name = String::from_utf8(take(len, "name")?.to_vec())
            .map_err(|_| "database name is not UTF-8".to_string())?;
        let last_frames = match version {
            1 => None,
            _ => Some(u64_of(take(8, "last frames index")?)).filter(|i| *i != UNKNOWN_INDEX),
        };
        let len = usize::try_from(u64_of(take(8, "image length")?))
            .map_err(|_| "image length overflows".to_string())?;
        dbs.push(StoredDatabase {
            name,
            last_frames,
            image: take(len, "image")?.to_vec(),
        });
    }
    let n = u32_of(take(4, "metadata count")?);
    let mut meta = Metadata::new();
    for _ in 0..n {
        let id = u64_of(take(8, "node id")?);
        let fd = u64_of(take(8, "failure domain")?);
        let w = u64_of(take(8, "weight")?);
        meta.insert(id, (fd, w));
    }
    if pos != body.len() {
        return Err(format!("{} trailing bytes in snapshot", body.len() - pos));
    }
    Ok((dbs, meta))
}

impl StateMachine<NodeConfig> for Fsm {
    type Snapshot = FsmSnapshot;

    async fn apply(
        &mut self,
        entries: Vec<openraft::Entry<NodeConfig>>,
    ) -> Result<Vec<Applied>, SmError> {
        // Frames are queued on their database's worker as they are decoded and their answers
        // collected afterwards, in log order: a worker applies one entry while the next ones
        // are decoded (what a restart's replay of the whole log, and a follower catching up,
        // spend their time on). Each worker applies its queue in order; the other commands
        // take effect here at once, and none of them depends on a database's frames.
        let mut queued = Vec::with_capacity(entries.len());
        for e in entries {
            let outcome = match e.payload {
                EntryPayload::Normal(data) => {
                    // With the worker's "applied a commit" line (same index), this shows which
                    // entry (term and index) each node applied: what tells diverging logs apart.
                    tracing::debug!(log_id = %e.log_id, "applying an entry");
                    let index = e.log_id.index;
                    let cmd =
                        Command::decode(&data).map_err(|err| format!("entry {index}: {err}"))?;
                    match cmd {
                        Command::Frames { db, base, frames } => Outcome::Queued(
                            self.registry
                                .get_or_start(&db)?
                                .queue_apply(frames, base, index),
                        ),
                        other => Outcome::Ready(self.apply_command(other, index).await?),
                    }
                }
                _ => Outcome::Ready(Applied::Done),
            };
            queued.push(outcome);
        }
        let mut outcomes = Vec::with_capacity(queued.len());
        for o in queued {
            outcomes.push(match o {
                Outcome::Ready(a) => a,
                Outcome::Queued(q) => q.outcome().await?,
            });
        }
        Ok(outcomes)
    }

    async fn snapshot(&mut self) -> Result<FsmSnapshot, SmError> {
        let mut databases = Vec::new();
        for db in self.registry.all() {
            let snap = db.snapshot().await?;
            databases.push((db.name().to_string(), snap));
        }
        let metadata = self
            .metadata
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Ok(FsmSnapshot {
            databases,
            metadata,
        })
    }

    async fn restore(&mut self, payload: SnapshotPayload) -> Result<(), SmError> {
        let bytes = payload.into_vec()?;
        let (dbs, meta) = parse_snapshot(&bytes)?;
        for db in dbs {
            let image = Image {
                snapshot: Snapshot::from_bytes(&db.image, 4096)?,
                last_frames: db.last_frames,
            };
            self.registry.get_or_start(&db.name)?.restore(image).await?;
        }
        *self.metadata.lock().unwrap_or_else(PoisonError::into_inner) = meta;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn snapshot_round_trip_and_corruption() {
        let image = {
            let mut v = vec![0u8; 512];
            v[..16].copy_from_slice(b"SQLite format 3\0");
            v[16] = 2; // page size 512 (big-endian u16)
            v[17] = 0;
            v
        };
        let snap = Snapshot::from_bytes(&image, 4096).unwrap();
        let mut meta = Metadata::new();
        meta.insert(7, (1, 2));
        let s = FsmSnapshot {
            databases: vec![
                (
                    "a.db".into(),
                    Image {
                        snapshot: snap.clone(),
                        last_frames: Some(42),
                    },
                ),
                (
                    "b.db".into(),
                    Image {
                        snapshot: snap,
                        last_frames: None,
                    },
                ),
            ],
            metadata: meta.clone(),
        };
        let mut out = Vec::new();
        s.write_to(&mut out).unwrap();
        let (dbs, m) = parse_snapshot(&out).unwrap();
        assert_eq!(dbs.len(), 2);
        assert_eq!(dbs[0].name, "a.db");
        assert_eq!(dbs[0].last_frames, Some(42));
        assert_eq!(dbs[0].image, image);
        assert_eq!(dbs[1].last_frames, None);
        assert_eq!(m, meta);
        for i in 0..out.len() {
            let mut bad = out.clone();
            bad[i] ^= 0x10;
            assert!(parse_snapshot(&bad).is_err(), "flip at {i} undetected");
        }
        assert!(parse_snapshot(&out[..out.len() - 1]).is_err());
    }

    #[test]
    fn version_1_snapshots_still_restore_without_the_index() {
        let image = {
            let mut v = vec![0u8; 512];
            v[..16].copy_from_slice(b"SQLite format 3\0");
            v[16] = 2;
            v
        };
        let mut body = vec![1u8];
        body.extend_from_slice(&1u32.to_le_bytes());
        body.extend_from_slice(&4u32.to_le_bytes());
        body.extend_from_slice(b"a.db");
        body.extend_from_slice(&(image.len() as u64).to_le_bytes());
        body.extend_from_slice(&image);
        body.extend_from_slice(&0u32.to_le_bytes());
        let crc = crc32c::crc32c(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        let (dbs, _) = parse_snapshot(&body).unwrap();
        assert_eq!(dbs[0].name, "a.db");
        assert_eq!(dbs[0].last_frames, None);
        assert_eq!(dbs[0].image, image);
    }
}
