//! The in-memory WAL-index ("shm") of one database and its eight shm locks.
//!
//! SQLite keeps raw pointers into the regions it mapped, so a region never moves once
//! allocated and is freed only when the whole database object is dropped.

use std::ptr::NonNull;

use crate::format::INDEX_HEADER_SIZE;

/// Number of shm locks SQLite uses: 0 WRITE, 1 CHECKPOINT, 2 RECOVER, 3..=7 READ(0..4).
pub(crate) const N_LOCKS: usize = 8;
/// Index of the WAL write lock.
pub(crate) const WRITE_LOCK: usize = 0;

/// One heap region, 8-byte aligned (SQLite reads it as `u32`s and atomics).
struct Region {
    ptr: NonNull<u64>,
    words: usize,
}

impl Region {
    fn new(bytes: usize) -> Self {
        let words = bytes.div_ceil(8);
        let boxed: Box<[u64]> = vec![0u64; words].into_boxed_slice();
        // `Box::into_raw` of a non-empty slice is never null.
        let raw = Box::into_raw(boxed).cast::<u64>();
        let ptr = NonNull::new(raw).unwrap_or(NonNull::dangling());
        Self { ptr, words }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if self.words == 0 {
            return;
        }
        let slice = std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.words);
        // SAFETY: `ptr`/`words` came from `Box::<[u64]>::into_raw` in `Region::new` and
        // are released exactly once, here. SQLite unmapped every connection before the
        // database object (and so this region) is dropped.
        drop(unsafe { Box::from_raw(slice) });
    }
}

/// The WAL-index memory of one database plus the shm lock table.
///
/// Invariants:
/// - every region has the size of the first `map` request (SQLite always asks 32 KiB);
/// - `slots[i]` is 0 (free), `-1` (held exclusively by one file, or by the pending commit
///   for the WRITE lock) or the number of files holding it shared;
/// - the sum of the per-file masks ([`FileLocks`]) matches `slots`, except for the WRITE
///   slot held by a pending commit, which no file owns.
pub(crate) struct Shm {
    regions: Vec<Region>,
    region_size: usize,
    slots: [i32; N_LOCKS],
}

// SAFETY: the regions are plain heap memory owned by this object. Access from Rust happens
// only with the database mutex held; SQLite accesses them through the pointers handed out
// by `map` following its own shm-lock protocol, which this object implements.
unsafe impl Send for Shm {}

/// The shm locks one file (one connection) holds, as bit masks.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FileLocks {
    pub shared: u8,
    pub exclusive: u8,
}

/// Why a lock request failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LockError {
    Busy,
}

impl Shm {
    pub fn new() -> Self {
        Self {
            regions: Vec::new(),
            region_size: 0,
            slots: [0; N_LOCKS],
        }
    }

    /// Pointer to region `index`, allocating it (and any before it) if `extend`.
    /// `None` if it does not exist and `extend` is false.
    pub fn map(&mut self, index: usize, size: usize, extend: bool) -> Result<Option<*mut u8>, ()> {
        if self.region_size == 0 {
            self.region_size = size;
        } else if self.region_size != size {
            return Err(());
        }
        if index >= self.regions.len() {
            if !extend {
                return Ok(None);
            }
            while self.regions.len() <= index {
                self.regions.push(Region::new(size));
            }
        }
        Ok(Some(self.regions[index].ptr.as_ptr().cast::<u8>()))
    }

    /// Bytes allocated for regions.
    pub fn allocated(&self) -> usize {
        self.regions.len() * self.region_size
    }

    /// Copy 1 of the WAL-index header, if region 0 exists.
    pub fn header(&self) -> Option<[u8; INDEX_HEADER_SIZE]> {
        let region = self.regions.first()?;
        let mut out = [0u8; INDEX_HEADER_SIZE];
        // SAFETY: region 0 is at least 32 KiB (checked by SQLite's request size, and the
        // header is 48 bytes); no SQLite code runs concurrently (single-thread rule, and
        // the database mutex is held by our caller).
        unsafe {
            std::ptr::copy_nonoverlapping(
                region.ptr.as_ptr().cast::<u8>(),
                out.as_mut_ptr(),
                INDEX_HEADER_SIZE,
            );
        }
        Some(out)
    }

    /// Write both copies of the WAL-index header, copy 2 first, like SQLite does.
    pub fn set_header(&mut self, h: &[u8; INDEX_HEADER_SIZE]) {
        let Some(region) = self.regions.first() else {
            return;
        };
        let base = region.ptr.as_ptr().cast::<u8>();
        // SAFETY: as in `header`; the two copies occupy bytes 0..96 of region 0.
        unsafe {
            std::ptr::copy_nonoverlapping(
                h.as_ptr(),
                base.add(INDEX_HEADER_SIZE),
                INDEX_HEADER_SIZE,
            );
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            std::ptr::copy_nonoverlapping(h.as_ptr(), base, INDEX_HEADER_SIZE);
        }
    }

    /// Zero both header copies so that the next reader runs WAL recovery, rebuilding the
    /// index from the WAL file.
    pub fn invalidate_header(&mut self) {
        self.set_header(&[0u8; INDEX_HEADER_SIZE]);
    }

    /// True if no lock is held by anyone.
    pub fn all_free(&self) -> bool {
        self.slots.iter().all(|&s| s == 0)
    }

    /// True if the given slot is held by anyone.
    pub fn is_held(&self, slot: usize) -> bool {
        self.slots[slot] != 0
    }

    /// Take `n` locks from `offset`, shared or exclusive, for a file holding `mine`.
    /// All or nothing.
    pub fn lock(
        &mut self,
        mine: &mut FileLocks,
        offset: usize,
        n: usize,
        exclusive: bool,
    ) -> Result<(), LockError> {
        let range = offset..offset + n;
        if exclusive {
            for i in range.clone() {
                let bit = 1u8 << i;
                if mine.exclusive & bit != 0 {
                    continue;
                }
                let own_shared = i32::from(mine.shared & bit != 0);
                if self.slots[i] != own_shared {
                    return Err(LockError::Busy);
                }
            }
            for i in range {
                let bit = 1u8 << i;
                if mine.exclusive & bit == 0 {
                    if mine.shared & bit != 0 {
                        mine.shared &= !bit;
                    }
                    self.slots[i] = -1;
                    mine.exclusive |= bit;
                }
            }
        } else {
            for i in range.clone() {
                let bit = 1u8 << i;
                if mine.shared & bit == 0 && mine.exclusive & bit == 0 && self.slots[i] < 0 {
                    return Err(LockError::Busy);
                }
            }
            for i in range {
                let bit = 1u8 << i;
                if mine.shared & bit == 0 && mine.exclusive & bit == 0 {
                    self.slots[i] += 1;
                    mine.shared |= bit;
                }
            }
        }
        Ok(())
    }

    /// Release `n` locks from `offset` held by a file. Releasing a lock not held is a
    /// no-op (SQLite does that).
    pub fn unlock(&mut self, mine: &mut FileLocks, offset: usize, n: usize) {
        for i in offset..offset + n {
            let bit = 1u8 << i;
            if mine.exclusive & bit != 0 {
                mine.exclusive &= !bit;
                self.slots[i] = 0;
            } else if mine.shared & bit != 0 {
                mine.shared &= !bit;
                self.slots[i] -= 1;
            }
        }
    }

    /// Move the WRITE lock from `mine` to the pending commit: the slot stays held.
    pub fn hand_write_lock_to_pending(&mut self, mine: &mut FileLocks) {
        mine.exclusive &= !(1 << WRITE_LOCK);
        self.slots[WRITE_LOCK] = -1;
    }

    /// Release the WRITE lock held by a pending commit.
    pub fn release_pending_write_lock(&mut self) {
        self.slots[WRITE_LOCK] = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_and_exclusive_conflict() {
        let mut shm = Shm::new();
        let (mut a, mut b) = (FileLocks::default(), FileLocks::default());
        shm.lock(&mut a, 3, 1, false).unwrap();
        shm.lock(&mut b, 3, 1, false).unwrap();
        assert_eq!(shm.lock(&mut b, 3, 1, true), Err(LockError::Busy));
        shm.unlock(&mut a, 3, 1);
        // b is the only holder: upgrade allowed.
        shm.lock(&mut b, 3, 1, true).unwrap();
        assert_eq!(shm.lock(&mut a, 3, 1, false), Err(LockError::Busy));
        shm.unlock(&mut b, 3, 1);
        assert!(shm.all_free());
    }

    #[test]
    fn exclusive_range_is_all_or_nothing() {
        let mut shm = Shm::new();
        let (mut a, mut b) = (FileLocks::default(), FileLocks::default());
        shm.lock(&mut a, 2, 1, false).unwrap();
        assert_eq!(shm.lock(&mut b, 1, 2, true), Err(LockError::Busy));
        assert!(
            !shm.is_held(1),
            "a failed range lock must not leave slot 1 taken"
        );
        shm.unlock(&mut b, 0, 8);
        shm.unlock(&mut a, 0, 8);
        assert!(shm.all_free());
    }

    #[test]
    fn pending_write_lock_blocks_writers() {
        let mut shm = Shm::new();
        let (mut a, mut b) = (FileLocks::default(), FileLocks::default());
        shm.lock(&mut a, WRITE_LOCK, 1, true).unwrap();
        shm.hand_write_lock_to_pending(&mut a);
        assert_eq!(a.exclusive, 0);
        assert_eq!(shm.lock(&mut b, WRITE_LOCK, 1, true), Err(LockError::Busy));
        assert_eq!(shm.lock(&mut a, WRITE_LOCK, 1, true), Err(LockError::Busy));
        shm.release_pending_write_lock();
        shm.lock(&mut b, WRITE_LOCK, 1, true).unwrap();
    }

    #[test]
    fn regions_are_stable_and_header_round_trips() {
        let mut shm = Shm::new();
        assert_eq!(shm.map(0, 32768, false), Ok(None));
        let p0 = shm.map(0, 32768, true).unwrap().unwrap();
        let _p3 = shm.map(3, 32768, true).unwrap().unwrap();
        assert_eq!(shm.map(0, 32768, false).unwrap().unwrap(), p0);
        assert_eq!(shm.allocated(), 4 * 32768);
        let mut h = [0u8; INDEX_HEADER_SIZE];
        h[5] = 7;
        shm.set_header(&h);
        assert_eq!(shm.header(), Some(h));
        shm.invalidate_header();
        assert_eq!(shm.header(), Some([0u8; INDEX_HEADER_SIZE]));
        assert!(shm.map(0, 1024, false).is_err());
    }
}
