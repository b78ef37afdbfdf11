//! Registration of the VFS with SQLite and its `sqlite3_vfs` callbacks.

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::ptr;
use std::sync::Arc;
use std::thread::ThreadId;

use libsqlite3_sys as ffi;
use parking_lot::Mutex;

use crate::database::Database;
use crate::error::Error;
use crate::file::{self, File};
use crate::format::valid_page_size;
use crate::storage::DbState;

/// Configuration of a [`Vfs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct VfsConfig {
    /// Page size of new databases (a power of two in 512..=65536). Every node of a cluster
    /// must use the same one, since frames carry raw pages. Default 4096.
    pub page_size: u32,
    /// Checkpoint (TRUNCATE) after an `apply` once the WAL holds at least this many frames
    /// and nobody reads. 0 disables automatic checkpoints. Default 1000 (C dqlite's).
    pub checkpoint_threshold: u32,
}

impl Default for VfsConfig {
    fn default() -> Self {
        Self {
            page_size: 4096,
            checkpoint_threshold: 1000,
        }
    }
}

/// Builders: `VfsConfig::default().with_...(...)`, one per field (the struct is
/// `#[non_exhaustive]`, so that fields can be added without breaking callers).
impl VfsConfig {
    /// Sets [`VfsConfig::page_size`].
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size;
        self
    }

    /// Sets [`VfsConfig::checkpoint_threshold`].
    pub fn with_checkpoint_threshold(mut self, checkpoint_threshold: u32) -> Self {
        self.checkpoint_threshold = checkpoint_threshold;
        self
    }
}

/// One database known to the VFS: its state and which thread drives it.
pub(crate) struct DbShared {
    pub name: String,
    pub state: Mutex<DbState>,
    /// The thread whose [`Database`] handle drives this database, if any. SQLite files of
    /// this database can only be opened on that thread.
    pub owner: Mutex<Option<ThreadId>>,
}

/// What `sqlite3_vfs.pAppData` points to.
pub(crate) struct VfsShared {
    pub config: VfsConfig,
    /// The default VFS, for temporary files and OS services.
    pub base: *mut ffi::sqlite3_vfs,
    pub registry: Mutex<HashMap<String, Arc<DbShared>>>,
}

// SAFETY: `base` points to SQLite's default VFS, a static object that SQLite never frees
// and whose methods are thread-safe; everything else is Sync by itself.
unsafe impl Send for VfsShared {}
// SAFETY: see `Send` above.
unsafe impl Sync for VfsShared {}

impl VfsShared {
    pub fn lookup(&self, name: &str) -> Option<Arc<DbShared>> {
        self.registry.lock().get(name).cloned()
    }
}

/// The registered `sqlite3_vfs`; unregistered and freed on drop.
pub(crate) struct Registration {
    name: String,
    raw: *mut ffi::sqlite3_vfs,
    _name_c: CString,
    pub shared: Arc<VfsShared>,
}

// SAFETY: after `sqlite3_vfs_register` the struct behind `raw` is only touched by SQLite
// (under its global mutex) and by `Drop`, which runs once, when no handle is left.
unsafe impl Send for Registration {}
// SAFETY: see `Send` above.
unsafe impl Sync for Registration {}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: `raw` was registered in `Vfs::register` and every connection opened through
        // this crate's API holds an `Arc<Registration>`, so none is open any more.
        // Unregistering before freeing means SQLite keeps no pointer to the struct.
        unsafe {
            ffi::sqlite3_vfs_unregister(self.raw);
            drop(Box::from_raw(self.raw));
        }
    }
}

/// A registered in-memory VFS. Cheap to clone; `Send + Sync`.
///
/// Databases are opened with [`Vfs::open_database`], which ties each one to the calling
/// thread until its [`Database`] handle is dropped. The VFS is unregistered when the last
/// clone, database handle and connection are gone.
///
/// Connections opened directly with SQLite (e.g. `sqlite3_open_v2` with this VFS's name)
/// are possible on the thread that owns the database, but they are not configured (WAL
/// mode, no auto-checkpoint, ...) and must be closed before the last `Vfs` clone is
/// dropped; prefer [`Database::connect`].
#[derive(Clone)]
pub struct Vfs {
    pub(crate) reg: Arc<Registration>,
}

impl std::fmt::Debug for Vfs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vfs")
            .field("name", &self.reg.name)
            .field("config", &self.reg.shared.config)
            .finish()
    }
}

impl Vfs {
    /// Register a VFS called `name` with SQLite (not as the default VFS).
    pub fn register(name: &str, config: VfsConfig) -> Result<Self, Error> {
        if !valid_page_size(config.page_size) {
            return Err(Error::Config(format!(
                "page size {} is not a power of two in 512..=65536",
                config.page_size
            )));
        }
        let name_c = CString::new(name).map_err(|_| Error::InvalidName(name.into()))?;
        // SAFETY: plain FFI calls; `sqlite3_initialize` is idempotent and thread-safe, and
        // `sqlite3_vfs_find(NULL)` returns the default VFS (static) or NULL.
        let base = unsafe {
            ffi::sqlite3_initialize();
            ffi::sqlite3_vfs_find(ptr::null())
        };
        if base.is_null() {
            return Err(Error::Register {
                name: name.into(),
                code: ffi::SQLITE_ERROR,
            });
        }
        let shared = Arc::new(VfsShared {
            config,
            base,
            registry: Mutex::new(HashMap::new()),
        });
        // SAFETY: `base` is a valid VFS (checked non-null above) that SQLite never frees.
        let (base_size, base_path) = unsafe { ((*base).szOsFile, (*base).mxPathname) };
        let size = (std::mem::size_of::<File>() as c_int).max(base_size);
        let vfs = ffi::sqlite3_vfs {
            iVersion: 2,
            szOsFile: size,
            mxPathname: base_path.max(512),
            pNext: ptr::null_mut(),
            zName: name_c.as_ptr(),
            pAppData: Arc::as_ptr(&shared) as *mut c_void,
            xOpen: Some(file::x_open),
            xDelete: Some(x_delete),
            xAccess: Some(x_access),
            xFullPathname: Some(x_full_pathname),
            xDlOpen: Some(x_dl_open),
            xDlError: Some(x_dl_error),
            xDlSym: Some(x_dl_sym),
            xDlClose: Some(x_dl_close),
            xRandomness: Some(x_randomness),
            xSleep: Some(x_sleep),
            xCurrentTime: Some(x_current_time),
            xGetLastError: Some(x_get_last_error),
            xCurrentTimeInt64: Some(x_current_time_int64),
            xSetSystemCall: None,
            xGetSystemCall: None,
            xNextSystemCall: None,
        };
        let raw = Box::into_raw(Box::new(vfs));
        // SAFETY: `raw` is a valid, heap-allocated sqlite3_vfs whose name and app data live
        // as long as the `Registration` that frees it (after unregistering).
        let rc = unsafe { ffi::sqlite3_vfs_register(raw, 0) };
        if rc != ffi::SQLITE_OK {
            // SAFETY: registration failed, so SQLite holds no pointer to `raw`.
            drop(unsafe { Box::from_raw(raw) });
            return Err(Error::Register {
                name: name.into(),
                code: rc,
            });
        }
        Ok(Self {
            reg: Arc::new(Registration {
                name: name.into(),
                raw,
                _name_c: name_c,
                shared,
            }),
        })
    }

    /// The name connections use to select this VFS.
    pub fn name(&self) -> &str {
        &self.reg.name
    }

    /// The configuration.
    pub fn config(&self) -> VfsConfig {
        self.reg.shared.config
    }

    /// Open (creating if needed) database `name` and tie it to the calling thread: every
    /// SQLite call on it must happen on this thread, which the returned `!Send` handle and
    /// its connections guarantee. Fails with [`Error::AlreadyOpen`] while another handle
    /// of the same database is alive.
    pub fn open_database(&self, name: &str) -> Result<Database, Error> {
        if name.is_empty()
            || name.contains('\0')
            || name.ends_with("-wal")
            || name.ends_with("-journal")
        {
            return Err(Error::InvalidName(name.into()));
        }
        let db = {
            let mut reg = self.reg.shared.registry.lock();
            reg.entry(name.to_string())
                .or_insert_with(|| {
                    Arc::new(DbShared {
                        name: name.to_string(),
                        state: Mutex::new(DbState::new(self.reg.shared.config.page_size)),
                        owner: Mutex::new(None),
                    })
                })
                .clone()
        };
        {
            let mut owner = db.owner.lock();
            if owner.is_some() {
                return Err(Error::AlreadyOpen(name.into()));
            }
            *owner = Some(std::thread::current().id());
        }
        Database::open(self.clone(), db)
    }

    /// Forget database `name` and free its memory. Fails with [`Error::AlreadyOpen`] if a
    /// handle is alive. Returns whether it existed.
    pub fn delete_database(&self, name: &str) -> Result<bool, Error> {
        let mut reg = self.reg.shared.registry.lock();
        match reg.get(name) {
            None => Ok(false),
            Some(db) if db.owner.lock().is_some() => Err(Error::AlreadyOpen(name.into())),
            Some(_) => {
                reg.remove(name);
                Ok(true)
            }
        }
    }

    /// Names of the databases this VFS holds.
    pub fn database_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.reg.shared.registry.lock().keys().cloned().collect();
        v.sort();
        v
    }
}

// ----- sqlite3_vfs callbacks -----

/// The shared state behind a `sqlite3_vfs` of ours.
///
/// # Safety
/// `vfs` must be a VFS registered by [`Vfs::register`] and still registered.
pub(crate) unsafe fn shared<'a>(vfs: *mut ffi::sqlite3_vfs) -> &'a VfsShared {
    // SAFETY: guaranteed by the caller: pAppData points to the `VfsShared` kept alive by
    // the `Registration` for as long as the VFS is registered.
    unsafe { &*((*vfs).pAppData as *const VfsShared) }
}

/// A database file name SQLite gives us, if it is valid UTF-8.
///
/// # Safety
/// `name` must be NULL or a NUL-terminated string.
pub(crate) unsafe fn name_of<'a>(name: *const c_char) -> Option<&'a str> {
    if name.is_null() {
        return None;
    }
    // SAFETY: non-null and NUL-terminated per the caller.
    unsafe { CStr::from_ptr(name) }.to_str().ok()
}

/// What a file name refers to.
pub(crate) enum NameKind<'a> {
    Main(&'a str),
    Wal(&'a str),
    Journal(&'a str),
}

pub(crate) fn classify(name: &str) -> NameKind<'_> {
    if let Some(db) = name.strip_suffix("-wal") {
        NameKind::Wal(db)
    } else if let Some(db) = name.strip_suffix("-journal") {
        NameKind::Journal(db)
    } else {
        NameKind::Main(name)
    }
}

unsafe extern "C" fn x_delete(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    sync_dir: c_int,
) -> c_int {
    // SAFETY: SQLite passes our registered VFS and a NUL-terminated name.
    let (sh, n) = unsafe { (shared(vfs), name_of(name)) };
    let known = n.and_then(|n| match classify(n) {
        NameKind::Main(d) | NameKind::Wal(d) | NameKind::Journal(d) => {
            sh.lookup(d).map(|db| (classify(n), db))
        }
    });
    match known {
        Some((NameKind::Wal(_), db)) => {
            let mut st = db.state.lock();
            if st.wal.is_empty() && st.tx.is_empty() && st.pending.is_none() {
                st.wal_header = None;
                ffi::SQLITE_OK
            } else {
                ffi::SQLITE_IOERR_DELETE
            }
        }
        Some(_) => ffi::SQLITE_OK,
        // SAFETY: not one of ours (a temporary file): the default VFS handles it.
        None => unsafe { ((*sh.base).xDelete.unwrap_or(noop_delete))(sh.base, name, sync_dir) },
    }
}

unsafe extern "C" fn noop_delete(_: *mut ffi::sqlite3_vfs, _: *const c_char, _: c_int) -> c_int {
    ffi::SQLITE_IOERR_DELETE
}

unsafe extern "C" fn x_access(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    flags: c_int,
    out: *mut c_int,
) -> c_int {
    // SAFETY: SQLite passes our registered VFS and a NUL-terminated name.
    let (sh, n) = unsafe { (shared(vfs), name_of(name)) };
    let exists = match n.map(classify) {
        // The WAL of a known database always "exists" (possibly empty); a rollback
        // journal never does (it is discarded).
        Some(NameKind::Main(d)) | Some(NameKind::Wal(d)) => sh.lookup(d).is_some(),
        Some(NameKind::Journal(_)) | None => false,
    };
    let _ = flags;
    // SAFETY: `out` is a valid pointer per the VFS contract.
    unsafe { *out = c_int::from(exists) };
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_full_pathname(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    n_out: c_int,
    out: *mut c_char,
) -> c_int {
    if name.is_null() || out.is_null() {
        return ffi::SQLITE_CANTOPEN;
    }
    // SAFETY: `name` is NUL-terminated per the VFS contract.
    let bytes = unsafe { CStr::from_ptr(name) }.to_bytes_with_nul();
    if bytes.len() > n_out.max(0) as usize {
        return ffi::SQLITE_CANTOPEN;
    }
    // SAFETY: `out` has room for `n_out` bytes and `bytes` fits (checked above).
    unsafe { ptr::copy_nonoverlapping(bytes.as_ptr().cast::<c_char>(), out, bytes.len()) };
    ffi::SQLITE_OK
}

// OS services: forwarded to the default VFS.

unsafe extern "C" fn x_dl_open(vfs: *mut ffi::sqlite3_vfs, name: *const c_char) -> *mut c_void {
    // SAFETY: forwarding to the default VFS with the arguments SQLite gave us.
    unsafe {
        let b = shared(vfs).base;
        (*b).xDlOpen.map_or(ptr::null_mut(), |f| f(b, name))
    }
}

unsafe extern "C" fn x_dl_error(vfs: *mut ffi::sqlite3_vfs, n: c_int, msg: *mut c_char) {
    // SAFETY: forwarding to the default VFS with the arguments SQLite gave us.
    unsafe {
        let b = shared(vfs).base;
        if let Some(f) = (*b).xDlError {
            f(b, n, msg)
        }
    }
}

type DlSym = Option<unsafe extern "C" fn(*mut ffi::sqlite3_vfs, *mut c_void, *const c_char)>;

unsafe extern "C" fn x_dl_sym(
    vfs: *mut ffi::sqlite3_vfs,
    h: *mut c_void,
    sym: *const c_char,
) -> DlSym {
    // SAFETY: forwarding to the default VFS with the arguments SQLite gave us.
    unsafe {
        let b = shared(vfs).base;
        (*b).xDlSym.and_then(|f| f(b, h, sym))
    }
}

unsafe extern "C" fn x_dl_close(vfs: *mut ffi::sqlite3_vfs, h: *mut c_void) {
    // SAFETY: forwarding to the default VFS with the arguments SQLite gave us.
    unsafe {
        let b = shared(vfs).base;
        if let Some(f) = (*b).xDlClose {
            f(b, h)
        }
    }
}

unsafe extern "C" fn x_randomness(vfs: *mut ffi::sqlite3_vfs, n: c_int, out: *mut c_char) -> c_int {
    // SAFETY: forwarding to the default VFS with the arguments SQLite gave us.
    unsafe {
        let b = shared(vfs).base;
        (*b).xRandomness.map_or(0, |f| f(b, n, out))
    }
}

unsafe extern "C" fn x_sleep(vfs: *mut ffi::sqlite3_vfs, us: c_int) -> c_int {
    // SAFETY: forwarding to the default VFS with the arguments SQLite gave us.
    unsafe {
        let b = shared(vfs).base;
        (*b).xSleep.map_or(0, |f| f(b, us))
    }
}

unsafe extern "C" fn x_current_time(vfs: *mut ffi::sqlite3_vfs, out: *mut f64) -> c_int {
    // SAFETY: forwarding to the default VFS with the arguments SQLite gave us.
    unsafe {
        let b = shared(vfs).base;
        (*b).xCurrentTime.map_or(ffi::SQLITE_ERROR, |f| f(b, out))
    }
}

unsafe extern "C" fn x_get_last_error(
    vfs: *mut ffi::sqlite3_vfs,
    n: c_int,
    out: *mut c_char,
) -> c_int {
    // SAFETY: forwarding to the default VFS with the arguments SQLite gave us.
    unsafe {
        let b = shared(vfs).base;
        (*b).xGetLastError.map_or(0, |f| f(b, n, out))
    }
}

unsafe extern "C" fn x_current_time_int64(
    vfs: *mut ffi::sqlite3_vfs,
    out: *mut ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: forwarding to the default VFS with the arguments SQLite gave us.
    unsafe {
        let b = shared(vfs).base;
        (*b).xCurrentTimeInt64
            .map_or(ffi::SQLITE_ERROR, |f| f(b, out))
    }
}
