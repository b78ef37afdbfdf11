//! Rebuilding the index from the segment files on open.
//!
//! Rules (the "tail" is the last write batch, the only one that can be partly on disk after a
//! crash, because a batch is written only after the previous one's `fdatasync` returned):
//! - Records are replayed in file order; every entry must follow the previous one.
//! - At the first frame that does not check out (the *hole*), every later byte of the log is
//!   scanned for intact frames. Intact frames of the last good batch or the one after it belong to
//!   the torn batch and are discarded; the log is cut at the hole and the cut is reported.
//! - An intact frame of any other batch after the hole means acknowledged data is missing: that
//!   is [`StoreError::Corrupt`] naming the file and offset, and nothing is changed on disk.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use openraft::{LogId, NodeId};
use serde::de::DeserializeOwned;

use crate::atomic_file::sync_dir;
use crate::error::{FrameError, StoreError};
use crate::frame::{
    Decoded, FrameKind, SEGMENT_HEADER_LEN, SegmentHeader, decode_frame, split_entry_payload,
};
use crate::index::{Loc, LogIndex, Slot};
use crate::segment::list_segments;

/// What recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segment files read.
    pub segments: usize,
    /// Live entries after recovery.
    pub entries: usize,
    /// The torn tail that was cut, if any.
    pub torn_tail: Option<TornTail>,
}

/// A cut torn tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The file where the log now ends.
    pub path: PathBuf,
    /// The offset where it now ends.
    pub offset: u64,
    /// What was wrong at that offset.
    pub reason: FrameError,
    /// Later segment files that were deleted (they held only the torn batch).
    pub removed: Vec<PathBuf>,
}

/// A segment known to the writer.
#[derive(Debug, Clone)]
pub struct SegInfo {
    /// Sequence number.
    pub seq: u64,
    /// Path.
    pub path: PathBuf,
    /// Highest entry index written in it.
    pub max_index: Option<u64>,
    /// End of its written part.
    pub end: u64,
}

/// The replayed state.
pub struct Recovered<NID: NodeId> {
    /// The index.
    pub index: LogIndex<NID>,
    /// The highest committed hint.
    pub committed: Option<LogId<NID>>,
    /// Live segments, oldest first.
    pub segments: Vec<SegInfo>,
    /// Highest batch number seen.
    pub max_batch: u64,
    /// What happened.
    pub report: RecoveryReport,
}

fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, FrameError> {
    postcard::from_bytes(b).map_err(|e| FrameError::Payload(e.to_string()))
}

/// Replays all segments of `dir`; cuts a torn tail; fails on corruption before the tail.
pub fn recover<NID: NodeId>(dir: &Path) -> Result<Recovered<NID>, StoreError> {
    let segs = list_segments(dir)?;
    let mut index = LogIndex::<NID>::default();
    let mut committed: Option<LogId<NID>> = None;
    let mut infos = Vec::new();
    let mut last_batch: Option<u64> = None;
    let mut max_batch = 0u64;
    // (segment position in `segs`, offset, reason)
    let mut hole: Option<(usize, u64, FrameError)> = None;

    'segments: for (i, (seq, path)) in segs.iter().enumerate() {
        let buf = fs::read(path).map_err(|e| StoreError::io("read", path, e))?;
        match SegmentHeader::decode(&buf) {
            Ok(h) if h.seq == *seq => {}
            Ok(h) => {
                return Err(StoreError::Inconsistent {
                    path: path.clone(),
                    offset: 0,
                    reason: format!("header says segment {} but the name says {seq}", h.seq),
                });
            }
            Err(e) => {
                hole = Some((i, 0, e));
                break 'segments;
            }
        }
        let mut info = SegInfo {
            seq: *seq,
            path: path.clone(),
            max_index: None,
            end: SEGMENT_HEADER_LEN as u64,
        };
        let mut pos = SEGMENT_HEADER_LEN;
        loop {
            match decode_frame(&buf[pos..]) {
                Decoded::Frame(f) => {
                    let inconsistent = |reason: String| StoreError::Inconsistent {
                        path: path.clone(),
                        offset: pos as u64,
                        reason,
                    };
                    if let Some(lb) = last_batch
                        && f.batch < lb
                    {
                        return Err(inconsistent(format!("batch {} after batch {lb}", f.batch)));
                    }
                    let bad = |e: FrameError| StoreError::Corrupt {
                        path: path.clone(),
                        offset: pos as u64,
                        reason: e,
                    };
                    match f.kind {
                        FrameKind::Entry => {
                            let (lid, _) = split_entry_payload(f.payload).map_err(bad)?;
                            let log_id: LogId<NID> = decode(lid).map_err(bad)?;
                            let idx = log_id.index;
                            let slot = Slot {
                                log_id,
                                seq: 0,
                                loc: Some(Loc {
                                    segment: *seq,
                                    offset: pos as u64,
                                    len: f.len as u32,
                                }),
                            };
                            index.push(slot).map_err(|(expected, got)| {
                                inconsistent(format!("entry {got} where {expected} was expected"))
                            })?;
                            info.max_index = Some(info.max_index.map_or(idx, |m| m.max(idx)));
                        }
                        FrameKind::Truncate => {
                            let at: u64 = decode(f.payload).map_err(bad)?;
                            index.truncate(at);
                        }
                        FrameKind::Purge => {
                            let upto: LogId<NID> = decode(f.payload).map_err(bad)?;
                            index.purge(upto);
                        }
                        FrameKind::Committed => {
                            let c: LogId<NID> = decode(f.payload).map_err(bad)?;
                            if committed.as_ref().is_none_or(|old| *old < c) {
                                committed = Some(c);
                            }
                        }
                    }
                    last_batch = Some(f.batch);
                    max_batch = max_batch.max(f.batch);
                    pos += f.len;
                    info.end = pos as u64;
                }
                Decoded::End => {
                    if buf[pos..].iter().all(|b| *b == 0) {
                        infos.push(info);
                        continue 'segments;
                    }
                    infos.push(info);
                    hole = Some((i, pos as u64, FrameError::Length(0)));
                    break 'segments;
                }
                Decoded::Invalid(e) => {
                    infos.push(info);
                    hole = Some((i, pos as u64, e));
                    break 'segments;
                }
            }
        }
    }

    let mut report = RecoveryReport {
        segments: segs.len(),
        ..Default::default()
    };
    if let Some((i, offset, reason)) = hole {
        let (_, hole_path) = &segs[i];
        // Which batches may legitimately have intact frames after the hole.
        let mut torn_batch: Option<u64> = None;
        let mut check = |batch: u64| -> bool {
            match last_batch {
                Some(lb) => batch == lb || batch == lb + 1,
                None => *torn_batch.get_or_insert(batch) == batch,
            }
        };
        for (j, (_, path)) in segs.iter().enumerate().skip(i) {
            let buf = fs::read(path).map_err(|e| StoreError::io("read", path, e))?;
            let start = if j == i {
                offset as usize + 8
            } else {
                SEGMENT_HEADER_LEN
            };
            let mut p = start;
            while p + 8 <= buf.len() {
                if let Decoded::Frame(f) = decode_frame(&buf[p..]) {
                    if !check(f.batch) {
                        return Err(StoreError::Corrupt {
                            path: hole_path.clone(),
                            offset,
                            reason,
                        });
                    }
                    // Skip the frame: its payload may contain bytes that look like frames.
                    p += f.len;
                    continue;
                }
                p += 8;
            }
        }
        // Only the torn batch follows the hole: cut it off durably before anyone appends.
        let mut removed = Vec::new();
        for (_, path) in segs.iter().skip(i + 1) {
            fs::remove_file(path).map_err(|e| StoreError::io("remove", path, e))?;
            removed.push(path.clone());
        }
        if offset == 0 {
            fs::remove_file(hole_path).map_err(|e| StoreError::io("remove", hole_path, e))?;
            removed.insert(0, hole_path.clone());
        } else {
            zero_from(hole_path, offset)?;
        }
        sync_dir(dir)?;
        tracing::warn!(path = %hole_path.display(), offset, %reason, "cut torn log tail");
        report.torn_tail = Some(TornTail {
            path: hole_path.clone(),
            offset,
            reason,
            removed,
        });
    }
    report.entries = index.len();
    Ok(Recovered {
        index,
        committed,
        segments: infos,
        max_batch,
        report,
    })
}

/// Overwrites a file with zeros from `offset` to its end, durably.
fn zero_from(path: &Path, offset: u64) -> Result<(), StoreError> {
    let f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| StoreError::io("open", path, e))?;
    let len = f
        .metadata()
        .map_err(|e| StoreError::io("stat", path, e))?
        .len();
    let zeros = vec![0u8; 1 << 16];
    let mut at = offset;
    while at < len {
        let n = (len - at).min(zeros.len() as u64) as usize;
        f.write_all_at(&zeros[..n], at)
            .map_err(|e| StoreError::io("zero tail", path, e))?;
        at += n as u64;
    }
    f.sync_data()
        .map_err(|e| StoreError::io("fdatasync", path, e))
}
