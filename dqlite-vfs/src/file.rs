//! `sqlite3_file` objects of the VFS and their `sqlite3_io_methods`.
//!
//! Main database files, WALs and rollback journals of registered databases are served from
//! memory ([`crate::storage::DbState`]); temporary files are opened by the default VFS in
//! place (our `szOsFile` is at least as large as its).

use std::ffi::{c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use libsqlite3_sys as ffi;

use crate::frames::Page;
use crate::shm::{FileLocks, LockError, N_LOCKS, WRITE_LOCK};
use crate::vfs::{DbShared, NameKind, classify, name_of, shared};

/// Our `sqlite3_file`. `base` must stay the first field: SQLite hands us a pointer to it.
#[repr(C)]
pub(crate) struct File {
    base: ffi::sqlite3_file,
    kind: Kind,
}

enum Kind {
    /// The main database file; one per connection.
    Main {
        db: Arc<DbShared>,
        /// Unique per database; identifies the connection for `poll`.
        id: u64,
        /// Shm locks this connection holds.
        locks: FileLocks,
        /// Main-file lock level (SQLITE_LOCK_*).
        level: c_int,
        /// Pages handed to SQLite by `xFetch` and not yet released by `xUnfetch`, with their
        /// offsets: holding them keeps their memory alive and unchanged while SQLite reads
        /// it.
        fetched: Vec<(i64, Page)>,
        /// How far into the file `xFetch` serves pages (`SQLITE_FCNTL_MMAP_SIZE`, which
        /// SQLite sends for `PRAGMA mmap_size`); 0 until set.
        mmap_limit: i64,
    },
    Wal {
        db: Arc<DbShared>,
    },
    /// A rollback journal: accepted and discarded (only WAL mode writes data, and the one
    /// rollback-mode write is the very first `journal_mode=WAL` of an empty database).
    Journal,
}

/// Version 3: with `xFetch`, SQLite's pager reads main-file pages in place (when the
/// connection's `mmap_size` is above zero, as [`crate::Connection`] sets it) instead of
/// copying each one into every connection's page cache.
static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_unlock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(x_file_control),
    xSectorSize: Some(x_sector_size),
    xDeviceCharacteristics: Some(x_device_characteristics),
    xShmMap: Some(x_shm_map),
    xShmLock: Some(x_shm_lock),
    xShmBarrier: Some(x_shm_barrier),
    xShmUnmap: Some(x_shm_unmap),
    xFetch: Some(x_fetch),
    xUnfetch: Some(x_unfetch),
};

/// Run a callback body, turning a panic into an SQLite error instead of aborting.
fn guard(on_panic: c_int, f: impl FnOnce() -> c_int) -> c_int {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(on_panic)
}

/// # Safety
/// `f` must be a `sqlite3_file` opened by [`x_open`] with our methods (not delegated).
unsafe fn kind<'a>(f: *mut ffi::sqlite3_file) -> &'a mut Kind {
    // SAFETY: per the caller, `f` points to a live `File` (base is its first field, repr C);
    // SQLite never calls two methods of one file at once (one thread per connection).
    unsafe { &mut (*f.cast::<File>()).kind }
}

/// The connection id of a main database file of ours, if `f` is one.
///
/// # Safety
/// `f` must be NULL or a live `sqlite3_file`.
pub(crate) unsafe fn main_file_id(f: *mut ffi::sqlite3_file) -> Option<u64> {
    // SAFETY: `f` is live per the caller; we only read through it if it uses our methods,
    // which means it is a `File` created by `x_open`.
    unsafe {
        if f.is_null() || !std::ptr::eq((*f).pMethods, &METHODS) {
            return None;
        }
        match kind(f) {
            Kind::Main { id, .. } => Some(*id),
            _ => None,
        }
    }
}

pub(crate) unsafe extern "C" fn x_open(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: SQLite passes our registered VFS, a NUL-terminated name (or NULL) and a
    // buffer of `szOsFile` bytes for `file`.
    let (sh, n) = unsafe { (shared(vfs), name_of(name)) };
    // SAFETY: `file` is writable; a NULL pMethods tells SQLite not to call xClose if we
    // fail below.
    unsafe { (*file).pMethods = std::ptr::null() };
    let temp = ffi::SQLITE_OPEN_TEMP_DB
        | ffi::SQLITE_OPEN_TEMP_JOURNAL
        | ffi::SQLITE_OPEN_TRANSIENT_DB
        | ffi::SQLITE_OPEN_SUBJOURNAL
        | ffi::SQLITE_OPEN_SUPER_JOURNAL;
    let ours =
        flags & (ffi::SQLITE_OPEN_MAIN_DB | ffi::SQLITE_OPEN_WAL | ffi::SQLITE_OPEN_MAIN_JOURNAL);
    if n.is_none() || flags & temp != 0 || ours == 0 {
        // SAFETY: temporary file: the default VFS opens it in place; `file` is large enough
        // (szOsFile is the maximum of both).
        return unsafe {
            match (*sh.base).xOpen {
                Some(open) => open(sh.base, name, file, flags, out_flags),
                None => ffi::SQLITE_CANTOPEN,
            }
        };
    }
    let n = n.unwrap_or_default();
    let (db_name, is_wal, is_journal) = match classify(n) {
        NameKind::Main(d) => (d, false, false),
        NameKind::Wal(d) => (d, true, false),
        NameKind::Journal(d) => (d, false, true),
    };
    let new_kind = if flags & ffi::SQLITE_OPEN_MAIN_JOURNAL != 0 || is_journal {
        Kind::Journal
    } else {
        let Some(db) = sh.lookup(db_name) else {
            return ffi::SQLITE_CANTOPEN;
        };
        // The single-thread rule: only the thread owning the database may open it.
        if *db.owner.lock() != Some(std::thread::current().id()) {
            return ffi::SQLITE_CANTOPEN;
        }
        if is_wal || flags & ffi::SQLITE_OPEN_WAL != 0 {
            Kind::Wal { db }
        } else {
            let id = {
                let mut st = db.state.lock();
                st.next_file_id += 1;
                st.open_main_files += 1;
                st.next_file_id
            };
            Kind::Main {
                db,
                id,
                locks: FileLocks::default(),
                level: ffi::SQLITE_LOCK_NONE,
                fetched: Vec::new(),
                mmap_limit: 0,
            }
        }
    };
    let f = file.cast::<File>();
    // SAFETY: `file` points to at least size_of::<File>() writable bytes (szOsFile), suitably
    // aligned by SQLite's allocator; we initialise both fields before setting pMethods.
    unsafe {
        std::ptr::addr_of_mut!((*f).kind).write(new_kind);
        (*f).base.pMethods = &METHODS;
        if !out_flags.is_null() {
            *out_flags = flags;
        }
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite calls xClose once on a file we opened; after it the memory is not used.
    let k = unsafe { kind(file) };
    if let Kind::Main {
        db, locks, level, ..
    } = k
    {
        let mut st = db.state.lock();
        st.shm.unlock(locks, 0, N_LOCKS);
        if *level >= ffi::SQLITE_LOCK_SHARED {
            st.main_locks.shared = st.main_locks.shared.saturating_sub(1);
        }
        st.open_main_files = st.open_main_files.saturating_sub(1);
    }
    // SAFETY: the kind was initialised in `x_open` and is dropped exactly once, here.
    unsafe {
        std::ptr::drop_in_place(k);
        (*file).pMethods = std::ptr::null();
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amt: c_int,
    off: i64,
) -> c_int {
    if amt < 0 || off < 0 {
        return ffi::SQLITE_IOERR_READ;
    }
    // SAFETY: `buf` has room for `amt` bytes per the VFS contract; the file is ours.
    let (k, out) = unsafe {
        (
            kind(file),
            std::slice::from_raw_parts_mut(buf.cast::<u8>(), amt as usize),
        )
    };
    guard(ffi::SQLITE_IOERR_READ, || {
        let full = match k {
            Kind::Main { db, .. } => db.state.lock().main_read(off as u64, out),
            Kind::Wal { db } => db.state.lock().wal_read(off as u64, out),
            Kind::Journal => {
                out.fill(0);
                false
            }
        };
        if full {
            ffi::SQLITE_OK
        } else {
            ffi::SQLITE_IOERR_SHORT_READ
        }
    })
}

unsafe extern "C" fn x_write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amt: c_int,
    off: i64,
) -> c_int {
    if amt < 0 || off < 0 {
        return ffi::SQLITE_IOERR_WRITE;
    }
    // SAFETY: `buf` holds `amt` bytes per the VFS contract; the file is ours.
    let (k, data) = unsafe {
        (
            kind(file),
            std::slice::from_raw_parts(buf.cast::<u8>(), amt as usize),
        )
    };
    guard(ffi::SQLITE_IOERR_WRITE, || {
        let r = match k {
            Kind::Main { db, .. } => db.state.lock().main_write(off as u64, data),
            Kind::Wal { db } => db.state.lock().wal_write(off as u64, data),
            Kind::Journal => Ok(()),
        };
        r.err().unwrap_or(ffi::SQLITE_OK)
    })
}

unsafe extern "C" fn x_truncate(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
    if size < 0 {
        return ffi::SQLITE_IOERR_TRUNCATE;
    }
    // SAFETY: the file is ours.
    let k = unsafe { kind(file) };
    guard(ffi::SQLITE_IOERR_TRUNCATE, || {
        let r = match k {
            Kind::Main { db, .. } => db.state.lock().main_truncate(size as u64),
            Kind::Wal { db } => db.state.lock().wal_truncate(size as u64),
            Kind::Journal => Ok(()),
        };
        r.err().unwrap_or(ffi::SQLITE_OK)
    })
}

unsafe extern "C" fn x_sync(_file: *mut ffi::sqlite3_file, _flags: c_int) -> c_int {
    // Durability comes from replication, not from this memory.
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_file_size(file: *mut ffi::sqlite3_file, out: *mut i64) -> c_int {
    // SAFETY: the file is ours and `out` is valid per the VFS contract.
    let k = unsafe { kind(file) };
    let size = match k {
        Kind::Main { db, .. } => db.state.lock().main_size(),
        Kind::Wal { db } => db.state.lock().wal_size(),
        Kind::Journal => 0,
    };
    // SAFETY: see above.
    unsafe { *out = size as i64 };
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    // SAFETY: the file is ours.
    let k = unsafe { kind(file) };
    let Kind::Main { db, level: cur, .. } = k else {
        return ffi::SQLITE_OK;
    };
    let mut st = db.state.lock();
    if *cur < ffi::SQLITE_LOCK_SHARED && level >= ffi::SQLITE_LOCK_SHARED {
        st.main_locks.shared += 1;
    }
    // EXCLUSIVE only when no other connection has the file locked (it is what SQLite asks
    // before a checkpoint-on-close; every connection in WAL mode keeps SHARED).
    if level == ffi::SQLITE_LOCK_EXCLUSIVE && st.main_locks.shared > 1 {
        if *cur < ffi::SQLITE_LOCK_SHARED {
            st.main_locks.shared -= 1;
        }
        return ffi::SQLITE_BUSY;
    }
    *cur = (*cur).max(level);
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    // SAFETY: the file is ours.
    let k = unsafe { kind(file) };
    let Kind::Main { db, level: cur, .. } = k else {
        return ffi::SQLITE_OK;
    };
    let mut st = db.state.lock();
    if *cur >= ffi::SQLITE_LOCK_SHARED && level < ffi::SQLITE_LOCK_SHARED {
        st.main_locks.shared = st.main_locks.shared.saturating_sub(1);
    }
    *cur = (*cur).min(level);
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_check_reserved_lock(
    _file: *mut ffi::sqlite3_file,
    out: *mut c_int,
) -> c_int {
    // SAFETY: `out` is valid per the VFS contract.
    unsafe { *out = 0 };
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    if op != ffi::SQLITE_FCNTL_MMAP_SIZE || arg.is_null() {
        return ffi::SQLITE_NOTFOUND;
    }
    // SAFETY: the file is ours.
    let k = unsafe { kind(file) };
    let Kind::Main { mmap_limit, .. } = k else {
        return ffi::SQLITE_NOTFOUND;
    };
    // SAFETY: for SQLITE_FCNTL_MMAP_SIZE, `arg` points to an i64: the new limit (negative:
    // only asking), replaced by the limit in force before.
    unsafe {
        let asked = arg.cast::<i64>();
        let new = *asked;
        *asked = *mmap_limit;
        if new >= 0 {
            *mmap_limit = new;
        }
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_sector_size(_file: *mut ffi::sqlite3_file) -> c_int {
    512
}

unsafe extern "C" fn x_device_characteristics(_file: *mut ffi::sqlite3_file) -> c_int {
    0
}

unsafe extern "C" fn x_shm_map(
    file: *mut ffi::sqlite3_file,
    region: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: the file is ours and `out` is valid per the VFS contract.
    let k = unsafe { kind(file) };
    let Kind::Main { db, .. } = k else {
        return ffi::SQLITE_IOERR_SHMMAP;
    };
    if region < 0 || size <= 0 {
        return ffi::SQLITE_IOERR_SHMMAP;
    }
    let r = db
        .state
        .lock()
        .shm
        .map(region as usize, size as usize, extend != 0);
    let (rc, p) = match r {
        Ok(Some(p)) => (ffi::SQLITE_OK, p.cast::<c_void>()),
        Ok(None) => (ffi::SQLITE_OK, std::ptr::null_mut()),
        Err(()) => (ffi::SQLITE_IOERR_SHMSIZE, std::ptr::null_mut()),
    };
    // SAFETY: see above.
    unsafe { *out = p };
    rc
}

unsafe extern "C" fn x_shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    // SAFETY: the file is ours.
    let k = unsafe { kind(file) };
    let Kind::Main { db, id, locks, .. } = k else {
        return ffi::SQLITE_IOERR_SHMLOCK;
    };
    if offset < 0 || n <= 0 || (offset + n) as usize > N_LOCKS {
        return ffi::SQLITE_IOERR_SHMLOCK;
    }
    let (offset, n) = (offset as usize, n as usize);
    guard(ffi::SQLITE_IOERR_SHMLOCK, || {
        let mut st = db.state.lock();
        if flags & ffi::SQLITE_SHM_UNLOCK != 0 {
            if offset == WRITE_LOCK && locks.exclusive & 1 != 0 {
                // The end of a write transaction: capture its commit, if any.
                st.end_write(*id, locks);
            }
            st.shm.unlock(locks, offset, n);
            return ffi::SQLITE_OK;
        }
        let exclusive = flags & ffi::SQLITE_SHM_EXCLUSIVE != 0;
        match st.shm.lock(locks, offset, n, exclusive) {
            Ok(()) => ffi::SQLITE_OK,
            Err(LockError::Busy) => ffi::SQLITE_BUSY,
        }
    })
}

unsafe extern "C" fn x_shm_barrier(_file: *mut ffi::sqlite3_file) {
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
}

unsafe extern "C" fn x_shm_unmap(file: *mut ffi::sqlite3_file, _delete: c_int) -> c_int {
    // SAFETY: the file is ours.
    let k = unsafe { kind(file) };
    if let Kind::Main { db, locks, .. } = k {
        // The regions stay: the database object owns them until it is dropped, so a
        // pending commit's index entries survive connections closing.
        db.state.lock().shm.unlock(locks, 0, N_LOCKS);
    }
    ffi::SQLITE_OK
}

/// `xFetch`: a pointer to the main-file page at `off`, read in place by SQLite until the
/// matching `xUnfetch`. NULL (SQLite then reads with `xRead`) for anything but one whole page
/// of the main file that exists and ends within the connection's `mmap_size`.
unsafe extern "C" fn x_fetch(
    file: *mut ffi::sqlite3_file,
    off: i64,
    amt_c: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: `out` is valid per the VFS contract.
    unsafe { *out = std::ptr::null_mut() };
    let (Ok(offset), Ok(amt)) = (u64::try_from(off), usize::try_from(amt_c)) else {
        return ffi::SQLITE_OK;
    };
    // SAFETY: the file is ours.
    let k = unsafe { kind(file) };
    let Kind::Main {
        db,
        fetched,
        mmap_limit,
        ..
    } = k
    else {
        return ffi::SQLITE_OK;
    };
    if off.saturating_add(i64::from(amt_c)) > *mmap_limit {
        return ffi::SQLITE_OK;
    }
    let Some(page) = db.state.lock().main_page(offset, amt) else {
        return ffi::SQLITE_OK;
    };
    // SQLite only reads through the pointer (the pager never writes to a fetched page); the
    // page stays alive and unchanged while `fetched` holds it (`DbState` copies a shared page
    // before changing it).
    let p = page.as_ptr().cast_mut().cast::<c_void>();
    fetched.push((off, page));
    // SAFETY: see above.
    unsafe { *out = p };
    ffi::SQLITE_OK
}

/// `xUnfetch`: SQLite is done with the page it fetched at `off`. A NULL `p` asks to drop
/// every mapping (SQLite's hint before it resets its cache): nothing to do, as each fetched
/// page is released on its own.
unsafe extern "C" fn x_unfetch(file: *mut ffi::sqlite3_file, off: i64, p: *mut c_void) -> c_int {
    if p.is_null() {
        return ffi::SQLITE_OK;
    }
    // SAFETY: the file is ours.
    let k = unsafe { kind(file) };
    if let Kind::Main { fetched, .. } = k
        && let Some(i) = fetched
            .iter()
            .rposition(|(o, page)| *o == off && std::ptr::eq(page.as_ptr(), p.cast::<u8>()))
    {
        fetched.swap_remove(i);
    }
    ffi::SQLITE_OK
}
