//! The in-memory state of one database: main file pages, WAL, the pending (captured but not
//! yet applied) commit, the WAL-index and the locks. No SQLite calls and no `unsafe` here;
//! `file.rs` translates SQLite's file operations into calls on [`DbState`].

use std::sync::Arc;

use libsqlite3_sys as ffi;

use crate::format::{
    self, FRAME_HEADER_SIZE, INDEX_HEADER_SIZE, WAL_HEADER_SIZE, WalHeader, frame_checksum,
    frame_commit, frame_header, frame_page_number, index,
};
use crate::frames::{Frames, Page};
use crate::shm::{FileLocks, Shm, WRITE_LOCK};

/// A frame of the WAL: the 24-byte header SQLite (or `apply`) computed, and the page.
#[derive(Clone)]
pub(crate) struct WalFrame {
    pub header: [u8; FRAME_HEADER_SIZE],
    pub page: Page,
}

/// A commit that SQLite finished but that is not visible to anyone yet.
///
/// While it exists the WAL write lock stays held (no other writer can start), the
/// WAL-index header is rewound to `rewound_header` (readers see the state before the
/// commit), and the frames are not part of the WAL file's size (a WAL recovery cannot make
/// them visible).
pub(crate) struct Pending {
    /// The file (connection) that committed.
    pub writer: u64,
    pub frames: Vec<WalFrame>,
    /// The WAL-index header SQLite wrote at commit; restored on apply.
    pub committed_header: [u8; INDEX_HEADER_SIZE],
    /// The header we replaced it with.
    pub rewound_header: [u8; INDEX_HEADER_SIZE],
    /// Handed out by `poll` already.
    pub polled: bool,
}

/// How an `apply` made the frames visible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApplyPath {
    /// The frames were this node's pending commit: published as SQLite wrote them.
    Leader,
    /// The frames were appended with recomputed headers and the WAL-index invalidated.
    Follower {
        /// A pending commit with other content was discarded first.
        discarded: bool,
    },
}

/// Main-file lock levels (SQLITE_LOCK_*), tracked per database so that a connection can
/// only take EXCLUSIVE when no other connection holds a lock.
#[derive(Default)]
pub(crate) struct MainLocks {
    /// Files holding SHARED or more.
    pub shared: u32,
}

/// All state of one database. Guarded by a mutex in [`crate::vfs::DbShared`].
///
/// Invariants:
/// - `page_size` is the page size of the main file and of the WAL;
/// - `wal` holds only committed frames; every frame header chains its checksum from the
///   previous frame (or from `wal_header` for the first one) and carries its salts;
/// - `tx` holds frames written by the connection that holds the WAL write lock and is empty
///   whenever nobody holds it;
/// - at most one of (`tx` non-empty, `pending` present) is true;
/// - the WAL file SQLite sees is `wal_header` + `wal` + `tx`; `pending` frames are readable
///   at the offsets after `wal` (for the committing connection's own read transaction) but
///   not counted in the file size.
pub(crate) struct DbState {
    pub page_size: u32,
    pub main: Vec<Page>,
    pub wal_header: Option<WalHeader>,
    pub wal: Vec<WalFrame>,
    pub tx: Vec<WalFrame>,
    pub pending: Option<Pending>,
    pub shm: Shm,
    pub main_locks: MainLocks,
    pub next_file_id: u64,
    /// Files (connections) with the main file open.
    pub open_main_files: u32,
    /// Incremented for every WAL we start ourselves, stored in the WAL header.
    pub checkpoint_seq: u32,
}

type IoResult<T> = Result<T, i32>;

fn page_from(data: &[u8]) -> Page {
    Arc::from(data)
}

/// Mutable access to a page, copying it first if it is shared with a snapshot or frames.
fn page_mut(page: &mut Page) -> &mut [u8] {
    if Arc::get_mut(page).is_none() {
        *page = page_from(page);
    }
    // The page was just made unique above.
    Arc::get_mut(page).unwrap_or(&mut [])
}

impl DbState {
    pub fn new(page_size: u32) -> Self {
        Self {
            page_size,
            main: Vec::new(),
            wal_header: None,
            wal: Vec::new(),
            tx: Vec::new(),
            pending: None,
            shm: Shm::new(),
            main_locks: MainLocks::default(),
            next_file_id: 1,
            open_main_files: 0,
            checkpoint_seq: 0,
        }
    }

    fn ps(&self) -> usize {
        self.page_size as usize
    }

    fn frame_size(&self) -> usize {
        FRAME_HEADER_SIZE + self.ps()
    }

    // ----- main file -----

    pub fn main_size(&self) -> u64 {
        (self.main.len() * self.ps()) as u64
    }

    /// Read from the main file; `Ok(false)` means a short read (rest zero-filled).
    pub fn main_read(&self, offset: u64, buf: &mut [u8]) -> bool {
        let ps = self.ps() as u64;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let (pg, within) = ((pos / ps) as usize, (pos % ps) as usize);
            let Some(page) = self.main.get(pg) else {
                buf[done..].fill(0);
                return false;
            };
            let n = (self.ps() - within).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&page[within..within + n]);
            done += n;
        }
        true
    }

    /// The main-file page that starts at `offset`, shared, if `amt` is one whole page and the
    /// page exists: what `xFetch` hands SQLite to read in place of a copy. The page is never
    /// changed while shared ([`page_mut`] copies it first), so the holder reads a stable
    /// image: the page as it was when fetched.
    pub fn main_page(&self, offset: u64, amt: usize) -> Option<Page> {
        let ps = self.ps() as u64;
        if amt as u64 != ps || !offset.is_multiple_of(ps) {
            return None;
        }
        self.main.get(usize::try_from(offset / ps).ok()?).cloned()
    }

    pub fn main_write(&mut self, offset: u64, data: &[u8]) -> IoResult<()> {
        let ps = self.ps() as u64;
        let mut done = 0usize;
        while done < data.len() {
            let pos = offset + done as u64;
            let (pg, within) = ((pos / ps) as usize, (pos % ps) as usize);
            let n = (self.ps() - within).min(data.len() - done);
            // Gaps (e.g. the lock-byte page at 1 GiB) are filled with zero pages.
            while self.main.len() < pg {
                self.main.push(page_from(&vec![0u8; self.ps()]));
            }
            if within == 0 && n == self.ps() {
                let p = page_from(&data[done..done + n]);
                if pg == self.main.len() {
                    self.main.push(p);
                } else {
                    self.main[pg] = p;
                }
            } else {
                if pg == self.main.len() {
                    self.main.push(page_from(&vec![0u8; self.ps()]));
                }
                page_mut(&mut self.main[pg])[within..within + n]
                    .copy_from_slice(&data[done..done + n]);
            }
            done += n;
        }
        Ok(())
    }

    pub fn main_truncate(&mut self, size: u64) -> IoResult<()> {
        let pages = size.div_ceil(self.ps() as u64) as usize;
        if pages < self.main.len() {
            self.main.truncate(pages);
        }
        Ok(())
    }

    // ----- WAL file -----

    /// Size of the WAL file as SQLite sees it (pending frames excluded).
    pub fn wal_size(&self) -> u64 {
        if self.wal_header.is_none() && self.wal.is_empty() && self.tx.is_empty() {
            return 0;
        }
        (WAL_HEADER_SIZE + (self.wal.len() + self.tx.len()) * self.frame_size()) as u64
    }

    fn frame_at(&self, i: usize) -> Option<&WalFrame> {
        if i < self.wal.len() {
            return self.wal.get(i);
        }
        let j = i - self.wal.len();
        if !self.tx.is_empty() {
            return self.tx.get(j);
        }
        self.pending.as_ref().and_then(|p| p.frames.get(j))
    }

    /// Read from the WAL file; `false` means short read (rest zero-filled).
    pub fn wal_read(&self, offset: u64, buf: &mut [u8]) -> bool {
        let mut done = 0usize;
        let fs = self.frame_size() as u64;
        while done < buf.len() {
            let pos = offset + done as u64;
            if pos < WAL_HEADER_SIZE as u64 {
                let Some(h) = &self.wal_header else {
                    buf[done..].fill(0);
                    return false;
                };
                let n = (WAL_HEADER_SIZE - pos as usize).min(buf.len() - done);
                buf[done..done + n].copy_from_slice(&h.bytes[pos as usize..pos as usize + n]);
                done += n;
                continue;
            }
            let rel = pos - WAL_HEADER_SIZE as u64;
            let (fi, within) = ((rel / fs) as usize, (rel % fs) as usize);
            let Some(frame) = self.frame_at(fi) else {
                buf[done..].fill(0);
                return false;
            };
            let n;
            if within < FRAME_HEADER_SIZE {
                n = (FRAME_HEADER_SIZE - within).min(buf.len() - done);
                buf[done..done + n].copy_from_slice(&frame.header[within..within + n]);
            } else {
                let w = within - FRAME_HEADER_SIZE;
                n = (self.ps() - w).min(buf.len() - done);
                buf[done..done + n].copy_from_slice(&frame.page[w..w + n]);
            }
            done += n;
        }
        true
    }

    /// A write by the connection holding the WAL write lock: the WAL header (when SQLite
    /// starts or restarts the WAL) or a frame of the current transaction.
    pub fn wal_write(&mut self, offset: u64, data: &[u8]) -> IoResult<()> {
        if offset == 0 {
            if data.len() != WAL_HEADER_SIZE || self.pending.is_some() {
                return Err(ffi::SQLITE_IOERR_WRITE);
            }
            let mut bytes = [0u8; WAL_HEADER_SIZE];
            bytes.copy_from_slice(data);
            // SQLite rewrites the header only when it starts the WAL from frame 1; with
            // committed frames present that is a restart after a full backfill (every
            // committed frame is in the main file), so they can go.
            self.wal.clear();
            self.tx.clear();
            self.wal_header = Some(WalHeader { bytes });
            return Ok(());
        }
        if offset < WAL_HEADER_SIZE as u64 || self.pending.is_some() {
            return Err(ffi::SQLITE_IOERR_WRITE);
        }
        let fs = self.frame_size() as u64;
        let mut done = 0usize;
        while done < data.len() {
            let rel = offset + done as u64 - WAL_HEADER_SIZE as u64;
            let (fi, within) = ((rel / fs) as usize, (rel % fs) as usize);
            // Committed frames are immutable; frames arrive in order.
            if fi < self.wal.len() || fi > self.wal.len() + self.tx.len() {
                return Err(ffi::SQLITE_IOERR_WRITE);
            }
            let ti = fi - self.wal.len();
            let ps = self.ps();
            if ti == self.tx.len() {
                self.tx.push(WalFrame {
                    header: [0; FRAME_HEADER_SIZE],
                    page: page_from(&vec![0u8; ps]),
                });
            }
            let frame = &mut self.tx[ti];
            let n;
            if within < FRAME_HEADER_SIZE {
                n = (FRAME_HEADER_SIZE - within).min(data.len() - done);
                frame.header[within..within + n].copy_from_slice(&data[done..done + n]);
            } else {
                let w = within - FRAME_HEADER_SIZE;
                n = (ps - w).min(data.len() - done);
                if w == 0 && n == ps {
                    frame.page = page_from(&data[done..done + n]);
                } else {
                    page_mut(&mut frame.page)[w..w + n].copy_from_slice(&data[done..done + n]);
                }
            }
            done += n;
        }
        Ok(())
    }

    /// SQLite truncates the WAL only to 0, at the end of a TRUNCATE checkpoint.
    pub fn wal_truncate(&mut self, size: u64) -> IoResult<()> {
        if size != 0 || self.pending.is_some() || !self.tx.is_empty() {
            return Err(ffi::SQLITE_IOERR_TRUNCATE);
        }
        self.wal.clear();
        self.wal_header = None;
        Ok(())
    }

    // ----- committed state -----

    /// Database size in pages as of the last committed (visible) transaction.
    pub fn committed_db_size(&self) -> u32 {
        match self.wal.last() {
            Some(f) => frame_commit(&f.header),
            None => self.main.len() as u32,
        }
    }

    fn last_committed_checksum(&self) -> Option<[u32; 2]> {
        self.wal.last().map(|f| frame_checksum(&f.header))
    }

    /// The logical database: pages `1..=committed_db_size()`, each from the newest
    /// committed WAL frame or else the main file.
    pub fn logical_pages(&self) -> Vec<Page> {
        let n = self.committed_db_size() as usize;
        let mut pages: Vec<Option<Page>> = vec![None; n];
        for f in &self.wal {
            let pg = frame_page_number(&f.header) as usize;
            if pg >= 1 && pg <= n {
                pages[pg - 1] = Some(f.page.clone());
            }
        }
        let zero = page_from(&vec![0u8; self.ps()]);
        pages
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                p.or_else(|| self.main.get(i).cloned())
                    .unwrap_or_else(|| zero.clone())
            })
            .collect()
    }

    /// The WAL file image (header + committed frames).
    pub fn wal_image(&self) -> Vec<u8> {
        let Some(h) = &self.wal_header else {
            return Vec::new();
        };
        if self.wal.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(WAL_HEADER_SIZE + self.wal.len() * self.frame_size());
        out.extend_from_slice(&h.bytes);
        for f in &self.wal {
            out.extend_from_slice(&f.header);
            out.extend_from_slice(&f.page);
        }
        out
    }

    /// The main file image.
    pub fn main_image(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.main.len() * self.ps());
        for p in &self.main {
            out.extend_from_slice(p);
        }
        out
    }

    /// Bytes held by this database (pages, frames, WAL-index).
    pub fn memory_usage(&self) -> usize {
        let fs = self.frame_size();
        self.main.len() * self.ps()
            + (self.wal.len() + self.tx.len()) * fs
            + self.pending.as_ref().map_or(0, |p| p.frames.len() * fs)
            + self.shm.allocated()
    }

    // ----- capture -----

    /// Called when `file` releases the WAL write lock. If its transaction committed, the
    /// commit becomes [`Pending`]: the WAL-index header is rewound and the lock kept.
    /// Otherwise (rollback, or a spill of a transaction that never committed) the frames
    /// are dropped.
    pub fn end_write(&mut self, file: u64, locks: &mut FileLocks) {
        let commit = self.tx.iter().rposition(|f| frame_commit(&f.header) != 0);
        let Some(last) = commit else {
            self.tx.clear();
            self.shm.unlock(locks, WRITE_LOCK, 1);
            return;
        };
        // Frames past the commit frame are leftovers of a rolled-back savepoint.
        self.tx.truncate(last + 1);
        let frames = std::mem::take(&mut self.tx);
        let committed_header = self.shm.header().unwrap_or([0; INDEX_HEADER_SIZE]);
        let rewound_header = index::rewind(
            &committed_header,
            self.wal.len() as u32,
            self.committed_db_size(),
            self.last_committed_checksum(),
        );
        self.shm.set_header(&rewound_header);
        self.shm.hand_write_lock_to_pending(locks);
        self.pending = Some(Pending {
            writer: file,
            frames,
            committed_header,
            rewound_header,
            polled: false,
        });
    }

    /// Hand out the pending commit of `file` once.
    pub fn poll(&mut self, file: u64) -> Option<Frames> {
        let page_size = self.page_size;
        let p = self.pending.as_mut()?;
        if p.writer != file || p.polled {
            return None;
        }
        p.polled = true;
        let db_size = p.frames.last().map_or(0, |f| frame_commit(&f.header));
        let pages = p
            .frames
            .iter()
            .map(|f| (frame_page_number(&f.header), f.page.clone()))
            .collect();
        Frames::from_shared(page_size, db_size, pages).ok()
    }

    /// Discard the pending commit, if any, and release the write lock it holds. The
    /// WAL-index header was rewound when the commit was captured, so readers and the next
    /// writer already see the state before it.
    pub fn abort(&mut self) -> bool {
        if self.pending.take().is_some() {
            self.shm.release_pending_write_lock();
            true
        } else {
            false
        }
    }

    fn pending_matches(&self, frames: &Frames) -> bool {
        let Some(p) = &self.pending else {
            return false;
        };
        p.frames.len() == frames.len()
            && p.frames.last().map(|f| frame_commit(&f.header)) == Some(frames.db_size())
            && p.frames
                .iter()
                .zip(frames.shared_pages())
                .all(|(f, (n, page))| {
                    frame_page_number(&f.header) == *n
                        && (Arc::ptr_eq(&f.page, page) || f.page == *page)
                })
    }

    /// Make `frames` part of the committed WAL and visible. `salts` are used if a new WAL
    /// must be started. Fails with `Err(reason)` if a local writer holds the write lock.
    pub fn apply(&mut self, frames: &Frames, salts: [u8; 8]) -> Result<ApplyPath, String> {
        let matches = self.pending_matches(frames);
        if matches && let Some(p) = self.pending.take() {
            if self.shm.header() == Some(p.rewound_header) {
                self.wal.extend(p.frames);
                self.shm.set_header(&p.committed_header);
                self.shm.release_pending_write_lock();
                return Ok(ApplyPath::Leader);
            }
            // The index changed under us (it should not): fall back to the follower path.
            self.pending = Some(p);
        }
        // A different transaction won (leadership changed): ours is void.
        let discarded = self.abort() && !matches;
        if self.shm.is_held(WRITE_LOCK) {
            return Err("a local transaction holds the WAL write lock".into());
        }
        let header = match (&self.wal_header, self.wal.is_empty()) {
            (Some(h), false) => *h,
            _ => {
                self.checkpoint_seq = self.checkpoint_seq.wrapping_add(1);
                let h = WalHeader::new(self.page_size, self.checkpoint_seq, salts);
                self.wal_header = Some(h);
                self.wal.clear();
                h
            }
        };
        let mut prev = self.last_committed_checksum().unwrap_or(header.checksum());
        let n = frames.len();
        self.wal.reserve(n);
        for (i, (pg, page)) in frames.shared_pages().iter().enumerate() {
            let commit = if i + 1 == n { frames.db_size() } else { 0 };
            let h = frame_header(&header, prev, *pg, commit, page);
            prev = frame_checksum(&h);
            self.wal.push(WalFrame {
                header: h,
                page: page.clone(),
            });
        }
        self.shm.invalidate_header();
        Ok(ApplyPath::Follower { discarded })
    }

    /// Replace the whole content with `pages`. The main file gets the pages; the WAL gets
    /// a fresh header (new salts) and one commit frame holding page 1, so that the
    /// WAL-index rebuilt by the next reader differs from every header a connection may
    /// have cached (a connection keeps its page cache only if the header is unchanged).
    pub fn restore(
        &mut self,
        page_size: u32,
        pages: Vec<Page>,
        salts: [u8; 8],
    ) -> Result<(), String> {
        if self.pending.is_some() || !self.tx.is_empty() || !self.shm.all_free() {
            return Err("connections hold locks or a commit is pending".into());
        }
        let first = pages.first().cloned();
        self.page_size = page_size;
        self.main = pages;
        self.wal.clear();
        self.wal_header = None;
        if let Some(first) = first {
            let frames = Frames::from_shared(page_size, self.main.len() as u32, vec![(1, first)])
                .map_err(|e| e.to_string())?;
            self.apply(&frames, salts)?;
        } else {
            self.shm.invalidate_header();
        }
        Ok(())
    }

    /// True if a checkpoint may run now: no pending commit, nobody holds any shm lock.
    pub fn checkpoint_allowed(&self) -> bool {
        self.pending.is_none() && self.tx.is_empty() && self.shm.all_free()
    }
}

/// Check that a WAL image is valid and return its committed frames' pages overlaid on
/// `pages` (used to restore C dqlite v1.16-style snapshots that carry a WAL).
pub(crate) fn overlay_wal_image(
    page_size: u32,
    pages: &mut Vec<Page>,
    wal: &[u8],
) -> Result<(), String> {
    if wal.is_empty() {
        return Ok(());
    }
    if wal.len() < WAL_HEADER_SIZE {
        return Err(format!(
            "WAL image of {} bytes is shorter than its header",
            wal.len()
        ));
    }
    let mut hb = [0u8; WAL_HEADER_SIZE];
    hb.copy_from_slice(&wal[..WAL_HEADER_SIZE]);
    let header = WalHeader { bytes: hb };
    if !header.is_valid() || header.page_size() != page_size {
        return Err("WAL header is invalid or has another page size".into());
    }
    let fs = FRAME_HEADER_SIZE + page_size as usize;
    let mut prev = header.checksum();
    let mut staged: Vec<(u32, &[u8])> = Vec::new();
    for chunk in wal[WAL_HEADER_SIZE..].chunks_exact(fs) {
        let mut h = [0u8; FRAME_HEADER_SIZE];
        h.copy_from_slice(&chunk[..FRAME_HEADER_SIZE]);
        let page = &chunk[FRAME_HEADER_SIZE..];
        if !format::frame_is_valid(&header, prev, &h, page) {
            break;
        }
        prev = frame_checksum(&h);
        staged.push((frame_page_number(&h), page));
        let commit = frame_commit(&h);
        if commit != 0 {
            let size = commit as usize;
            for (pg, data) in staged.drain(..) {
                let pg = pg as usize;
                while pages.len() < pg {
                    pages.push(page_from(&vec![0u8; page_size as usize]));
                }
                pages[pg - 1] = page_from(data);
            }
            while pages.len() < size {
                pages.push(page_from(&vec![0u8; page_size as usize]));
            }
            pages.truncate(size);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(ps: u32, db_size: u32, pages: &[(u32, u8)]) -> Frames {
        Frames::new(
            ps,
            db_size,
            pages.iter().map(|&(n, b)| (n, vec![b; ps as usize])),
        )
        .unwrap()
    }

    #[test]
    fn follower_apply_builds_valid_wal() {
        let mut db = DbState::new(512);
        db.apply(&frames(512, 2, &[(1, 1), (2, 2)]), [1; 8])
            .unwrap();
        db.apply(&frames(512, 3, &[(3, 3), (1, 4)]), [2; 8])
            .unwrap();
        assert_eq!(db.committed_db_size(), 3);
        let img = db.wal_image();
        let mut pages = Vec::new();
        overlay_wal_image(512, &mut pages, &img).unwrap();
        assert_eq!(pages.len(), 3);
        assert_eq!(pages[0][0], 4);
        assert_eq!(pages[1][0], 2);
        assert_eq!(pages[2][0], 3);
        let logical = db.logical_pages();
        assert_eq!(logical, pages);
        // Corrupting a frame cuts the WAL there.
        let mut bad = img.clone();
        bad[WAL_HEADER_SIZE + 2 * (24 + 512) + 100] ^= 1;
        let mut pages2 = Vec::new();
        overlay_wal_image(512, &mut pages2, &bad).unwrap();
        assert_eq!(pages2.len(), 2);
    }

    #[test]
    fn wal_reads_and_writes_follow_the_file_layout() {
        let mut db = DbState::new(512);
        let hdr = WalHeader::new(512, 0, [5; 8]);
        db.wal_write(0, &hdr.bytes).unwrap();
        let page = vec![7u8; 512];
        let h = frame_header(&hdr, hdr.checksum(), 1, 1, &page);
        db.wal_write(32, &h).unwrap();
        db.wal_write(32 + 24, &page).unwrap();
        assert_eq!(db.wal_size(), 32 + 536);
        let mut buf = vec![0u8; 536];
        assert!(db.wal_read(32, &mut buf));
        assert_eq!(&buf[..24], &h);
        assert!(
            !db.wal_read(32 + 536, &mut buf),
            "reading past the end is short"
        );
        // A gap is refused.
        assert!(db.wal_write(32 + 3 * 536, &h).is_err());
        let mut locks = FileLocks::default();
        db.shm.lock(&mut locks, 0, 1, true).unwrap();
        db.end_write(1, &mut locks);
        assert!(db.pending.is_some());
        assert_eq!(
            db.wal_size(),
            32,
            "pending frames are not part of the file size"
        );
        assert!(
            db.wal_read(32, &mut buf),
            "but stay readable for their writer"
        );
        let f = db.poll(1).unwrap();
        assert!(db.poll(1).is_none());
        assert_eq!(
            db.apply(&f, [0; 8]).unwrap(),
            ApplyPath::Follower { discarded: false },
            "no shm: fallback"
        );
        assert_eq!(db.wal.len(), 1);
        assert!(db.shm.all_free());
    }

    #[test]
    fn rollback_drops_uncommitted_frames() {
        let mut db = DbState::new(512);
        let hdr = WalHeader::new(512, 0, [5; 8]);
        db.wal_write(0, &hdr.bytes).unwrap();
        let h = frame_header(&hdr, hdr.checksum(), 1, 0, &[0u8; 512]);
        db.wal_write(32, &h).unwrap();
        db.wal_write(56, &[0u8; 512]).unwrap();
        let mut locks = FileLocks::default();
        db.shm.lock(&mut locks, 0, 1, true).unwrap();
        db.end_write(1, &mut locks);
        assert!(db.pending.is_none());
        assert!(db.tx.is_empty());
        assert!(db.shm.all_free());
    }

    #[test]
    fn main_file_partial_writes_and_truncate() {
        let mut db = DbState::new(512);
        db.main_write(0, &[1u8; 100]).unwrap();
        db.main_write(1024, &[2u8; 512]).unwrap();
        assert_eq!(db.main_size(), 1536);
        let mut buf = [9u8; 512];
        assert!(db.main_read(512, &mut buf));
        assert_eq!(buf, [0u8; 512]);
        db.main_truncate(512).unwrap();
        assert_eq!(db.main_size(), 512);
        let mut buf = [9u8; 200];
        assert!(db.main_read(0, &mut buf[..100]));
        assert!(!db.main_read(500, &mut buf));
        assert_eq!(buf[12..], [0u8; 188]);
    }
}
