//! The log's dedicated I/O thread: one writer, group commit, segment rolling, segment deletion.
//!
//! Each loop takes every command queued since the previous `fdatasync`, writes their frames with
//! one `pwrite` (per segment) and covers them all with one `fdatasync`: the more appends arrive
//! while the disk is busy, the more each sync carries. A failed write or sync poisons the store:
//! nothing is retried, since after a failed fsync the kernel may have dropped the dirty pages and
//! a retry that "succeeds" proves nothing (fsyncgate).

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use openraft::RaftTypeConfig;

use crate::atomic_file::sync_dir;
use crate::error::StoreError;
use crate::frame::{FrameKind, SEGMENT_HEADER_LEN, SegmentHeader, encode_frame, frame_len};
use crate::index::Loc;
use crate::log_store::Shared;
use crate::recovery::SegInfo;
use crate::segment::{Preparer, create_zeroed, segment_path};

/// Completion callback of an append or sync.
pub(crate) type Done = Box<dyn FnOnce(Result<(), io::Error>) + Send>;

/// One entry ready to write.
pub(crate) struct Encoded {
    pub index: u64,
    pub seq: u64,
    pub payload: Vec<u8>,
}

/// A request to the I/O thread.
pub(crate) enum Cmd {
    Append { entries: Vec<Encoded>, done: Done },
    Truncate { payload: Vec<u8> },
    Purge { index: u64, payload: Vec<u8> },
    Committed { payload: Vec<u8> },
    Sync { done: Done },
}

/// How long a committed hint may wait for an fsync it can ride along with.
const COMMITTED_FLUSH: Duration = Duration::from_millis(200);
/// Upper bound of commands per batch (bounds the size of one write).
const MAX_BATCH_CMDS: usize = 4096;

struct Active {
    seq: u64,
    path: PathBuf,
    file: Arc<fs::File>,
    /// Where the next frame goes.
    pos: u64,
}

pub(crate) struct Writer<C: RaftTypeConfig> {
    pub shared: Arc<Shared<C>>,
    pub dir: PathBuf,
    pub segment_size: u64,
    pub segments: VecDeque<SegInfo>,
    active: Option<Active>,
    preparer: Option<Preparer>,
    batch: u64,
    next_seg_seq: u64,
    purged_upto: Option<u64>,
    /// Segment holding the newest purge record: it and later ones are never deleted.
    purge_seg: Option<u64>,
    pending_committed: Option<Vec<u8>>,
    syncs: u64,
    fail_sync: Option<u64>,
    on_fsync: Option<crate::log_store::FsyncObserver>,
}

impl<C: RaftTypeConfig> Writer<C> {
    pub fn new(
        shared: Arc<Shared<C>>,
        dir: PathBuf,
        segment_size: u64,
        segments: Vec<SegInfo>,
        max_batch: u64,
        fail_sync: Option<u64>,
        on_fsync: Option<crate::log_store::FsyncObserver>,
    ) -> Result<Self, StoreError> {
        let segments: VecDeque<SegInfo> = segments.into();
        let active = match segments.back() {
            Some(last) if last.end + 64 < segment_size => {
                let file = shared
                    .files
                    .read()
                    .get(&last.seq)
                    .cloned()
                    .ok_or(StoreError::Closed)?;
                Some(Active {
                    seq: last.seq,
                    path: last.path.clone(),
                    file,
                    pos: last.end,
                })
            }
            _ => None,
        };
        let next_seg_seq = segments.back().map_or(1, |s| s.seq + 1);
        // Zero-fill the next segment in the background from the start, so that the first roll
        // (or the very first append) does not wait for it.
        let preparer = Some(Preparer::start(&dir, segment_size)?);
        Ok(Self {
            shared,
            dir,
            segment_size,
            segments,
            active,
            preparer,
            // Skip a number so that nothing left from before the crash can pass as this run's.
            batch: max_batch + 2,
            next_seg_seq,
            purged_upto: None,
            purge_seg: None,
            pending_committed: None,
            syncs: 0,
            fail_sync,
            on_fsync,
        })
    }

    /// Runs until every sender is gone.
    pub fn run(mut self, rx: mpsc::Receiver<Cmd>) {
        loop {
            let timeout = if self.pending_committed.is_some() {
                COMMITTED_FLUSH
            } else {
                Duration::from_secs(3600)
            };
            let first = match rx.recv_timeout(timeout) {
                Ok(c) => c,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.handle(Vec::new(), true);
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    if self.pending_committed.is_some() {
                        self.handle(Vec::new(), true);
                    }
                    return;
                }
            };
            let mut cmds = vec![first];
            while cmds.len() < MAX_BATCH_CMDS {
                match rx.try_recv() {
                    Ok(c) => cmds.push(c),
                    Err(_) => break,
                }
            }
            self.handle(cmds, false);
        }
    }

    fn handle(&mut self, cmds: Vec<Cmd>, flush_committed: bool) {
        let mut dones = Vec::new();
        let mut locs = Vec::new();
        let res = if self.shared.poisoned.load(Ordering::Acquire) {
            for c in cmds {
                match c {
                    Cmd::Append { done, .. } | Cmd::Sync { done } => dones.push(done),
                    _ => {}
                }
            }
            Err(StoreError::Poisoned)
        } else {
            self.write_batch(cmds, flush_committed, &mut dones, &mut locs)
        };
        match res {
            Ok(()) => {
                self.shared.publish_locs(&locs);
                for d in dones {
                    d(Ok(()));
                }
                if let Err(e) = self.delete_purged_segments() {
                    tracing::error!(error = %e, "deleting purged segments failed");
                    self.shared.poisoned.store(true, Ordering::Release);
                }
            }
            Err(e) => {
                if !matches!(e, StoreError::Poisoned) {
                    tracing::error!(error = %e, "log write failed; poisoning the log store");
                }
                self.shared.poisoned.store(true, Ordering::Release);
                let msg = e.to_string();
                for d in dones {
                    d(Err(io::Error::other(msg.clone())));
                }
            }
        }
    }

    fn write_batch(
        &mut self,
        cmds: Vec<Cmd>,
        flush_committed: bool,
        dones: &mut Vec<Done>,
        locs: &mut Vec<(u64, u64, Loc)>,
    ) -> Result<(), StoreError> {
        let mut buf = Vec::new();
        let mut need_sync = flush_committed && self.pending_committed.is_some();
        for cmd in cmds {
            match cmd {
                Cmd::Append { entries, done } => {
                    dones.push(done);
                    need_sync = true;
                    for e in entries {
                        let len = frame_len(e.payload.len()) as u64;
                        self.ensure_room(&mut buf, len)?;
                        let active = self.active_ref()?;
                        let loc = Loc {
                            segment: active.seq,
                            offset: active.pos + buf.len() as u64,
                            len: len as u32,
                        };
                        encode_frame(&mut buf, self.batch, FrameKind::Entry, &e.payload);
                        locs.push((e.index, e.seq, loc));
                        if let Some(info) = self.segments.back_mut() {
                            info.max_index =
                                Some(info.max_index.map_or(e.index, |m| m.max(e.index)));
                        }
                    }
                }
                Cmd::Truncate { payload } => {
                    need_sync = true;
                    self.put(&mut buf, FrameKind::Truncate, &payload)?;
                }
                Cmd::Purge { index, payload } => {
                    need_sync = true;
                    self.put(&mut buf, FrameKind::Purge, &payload)?;
                    self.purge_seg = self.active.as_ref().map(|a| a.seq);
                    self.purged_upto = Some(self.purged_upto.map_or(index, |p| p.max(index)));
                }
                Cmd::Committed { payload } => self.pending_committed = Some(payload),
                Cmd::Sync { done } => {
                    dones.push(done);
                    need_sync = true;
                }
            }
        }
        if !need_sync {
            return Ok(());
        }
        if let Some(c) = self.pending_committed.take() {
            self.put(&mut buf, FrameKind::Committed, &c)?;
        }
        self.flush(&mut buf)?;
        self.sync_active()?;
        self.batch += 1;
        Ok(())
    }

    fn sync_active(&mut self) -> Result<(), StoreError> {
        let Some(a) = &self.active else {
            return Ok(());
        };
        self.syncs += 1;
        if self.fail_sync == Some(self.syncs) {
            return Err(StoreError::io(
                "fdatasync",
                &a.path,
                io::Error::other("injected fdatasync failure"),
            ));
        }
        let started = std::time::Instant::now();
        let r = a
            .file
            .sync_data()
            .map_err(|e| StoreError::io("fdatasync", &a.path, e));
        if let Some(observe) = &self.on_fsync {
            (observe.0)(started.elapsed());
        }
        r
    }

    fn active_ref(&self) -> Result<&Active, StoreError> {
        self.active.as_ref().ok_or(StoreError::Closed)
    }

    fn put(
        &mut self,
        buf: &mut Vec<u8>,
        kind: FrameKind,
        payload: &[u8],
    ) -> Result<(), StoreError> {
        self.ensure_room(buf, frame_len(payload.len()) as u64)?;
        encode_frame(buf, self.batch, kind, payload);
        Ok(())
    }

    /// Writes the buffered frames at the active segment's position.
    fn flush(&mut self, buf: &mut Vec<u8>) -> Result<(), StoreError> {
        if buf.is_empty() {
            return Ok(());
        }
        let a = self.active.as_mut().ok_or(StoreError::Closed)?;
        a.file
            .write_all_at(buf, a.pos)
            .map_err(|e| StoreError::io("write", &a.path, e))?;
        a.pos += buf.len() as u64;
        if let Some(info) = self.segments.back_mut() {
            info.end = a.pos;
        }
        buf.clear();
        Ok(())
    }

    /// Makes sure a frame of `len` bytes fits in the active segment after `buf`; otherwise
    /// seals the active segment (write + fdatasync, so a later segment never holds data whose
    /// predecessor is still volatile) and rolls to a new one.
    fn ensure_room(&mut self, buf: &mut Vec<u8>, len: u64) -> Result<(), StoreError> {
        if let Some(a) = &self.active
            && a.pos + buf.len() as u64 + len <= self.segment_size
        {
            return Ok(());
        }
        if self.active.is_some() {
            self.flush(buf)?;
            self.sync_active()?;
        }
        self.roll(len)
    }

    fn roll(&mut self, len: u64) -> Result<(), StoreError> {
        let seq = self.next_seg_seq;
        let need = SEGMENT_HEADER_LEN as u64 + len;
        let (tmp, file) = if need <= self.segment_size {
            if self.preparer.is_none() {
                self.preparer = Some(Preparer::start(&self.dir, self.segment_size)?);
            }
            let p = self.preparer.as_ref().ok_or(StoreError::Closed)?.take()?;
            (p.path, p.file)
        } else {
            // An entry larger than a segment gets a segment of its own size.
            let path = self.dir.join(format!("oversize-{seq}.tmp"));
            let f = create_zeroed(&path, need.next_multiple_of(4096))?;
            (path, f)
        };
        let path = segment_path(&self.dir, seq);
        file.write_all_at(&SegmentHeader { seq }.encode(), 0)
            .map_err(|e| StoreError::io("write header", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| StoreError::io("rename", &path, e))?;
        sync_dir(&self.dir)?;
        let file = Arc::new(file);
        self.shared.files.write().insert(seq, file.clone());
        self.segments.push_back(SegInfo {
            seq,
            path: path.clone(),
            max_index: None,
            end: SEGMENT_HEADER_LEN as u64,
        });
        self.active = Some(Active {
            seq,
            path,
            file,
            pos: SEGMENT_HEADER_LEN as u64,
        });
        self.next_seg_seq += 1;
        Ok(())
    }

    /// Deletes the oldest segments whose entries are all purged (the purge record is durable by
    /// now). Never the active segment, so the newest purge record always survives.
    fn delete_purged_segments(&mut self) -> Result<(), StoreError> {
        let Some(upto) = self.purged_upto else {
            return Ok(());
        };
        let mut deleted = false;
        while !self.segments.is_empty() {
            let Some(front) = self.segments.front() else {
                break;
            };
            if front.max_index.is_some_and(|m| m > upto)
                || self.purge_seg.is_none_or(|ps| front.seq >= ps)
            {
                break;
            }
            let path = front.path.clone();
            let seq = front.seq;
            fs::remove_file(&path).map_err(|e| StoreError::io("remove", &path, e))?;
            self.shared.files.write().remove(&seq);
            self.segments.pop_front();
            deleted = true;
        }
        if deleted {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}
