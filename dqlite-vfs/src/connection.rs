//! [`Connection`]: a configured SQLite connection on the VFS.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::ops::Deref;

use libsqlite3_sys as ffi;
use rusqlite::OpenFlags;
use rusqlite::config::DbConfig;

use crate::database::Database;
use crate::error::Error;
use crate::file;
use crate::frames::Frames;
use crate::vfs::Vfs;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionKind {
    /// A user connection: configuration locked by an authorizer.
    User,
    /// The database's own connection for checkpoints (no authorizer).
    Maintenance,
}

/// An SQLite connection on a [`Database`], configured like C dqlite's: WAL mode,
/// `synchronous=OFF`, `wal_autocheckpoint=0`, no checkpoint on close, foreign keys on, SQLite's
/// math functions (`floor`, `sqrt`, `pow`, `ln`, … as Debian's SQLite under C dqlite has them,
/// whatever the build of the bundled SQLite), and
/// an authorizer that refuses changing `journal_mode`, `page_size`, `synchronous`,
/// `wal_autocheckpoint`, `journal_size_limit`, any use of `wal_checkpoint` (checkpoints
/// belong to [`Database::checkpoint`]), `locking_mode` and `read_uncommitted` (as C dqlite's
/// deny list), and attaching files.
///
/// Dereferences to [`rusqlite::Connection`] for executing SQL (and
/// [`rusqlite::Connection::handle`] for raw access). It is `!Send`: it lives on the thread
/// of its database.
///
/// After a statement that committed a write transaction, call [`Connection::poll`]: the
/// commit stays invisible to every connection (this one included) and holds the write
/// lock until [`Database::apply`] or [`Database::abort`]. Poll only when no other
/// statement of this connection is still active, so that its read transaction has ended.
pub struct Connection {
    conn: rusqlite::Connection,
    db: Option<Database>,
    file_id: u64,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("file_id", &self.file_id)
            .finish_non_exhaustive()
    }
}

impl Deref for Connection {
    type Target = rusqlite::Connection;

    fn deref(&self) -> &rusqlite::Connection {
        &self.conn
    }
}

impl Connection {
    pub(crate) fn open(db: &Database) -> Result<Self, Error> {
        Self::open_raw(db.vfs(), db.name(), ConnectionKind::User, Some(db.clone()))
    }

    pub(crate) fn open_raw(
        vfs: &Vfs,
        name: &str,
        kind: ConnectionKind,
        db: Option<Database>,
    ) -> Result<Self, Error> {
        let ctx = || format!("opening a connection to {name:?}");
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_EXRESCODE;
        let conn = rusqlite::Connection::open_with_flags_and_vfs(name, flags, vfs.name())
            .map_err(|e| Error::sqlite(ctx(), e))?;
        configure(&conn, vfs.config().page_size, kind).map_err(|e| Error::sqlite(ctx(), e))?;
        let file_id = main_file_id(&conn).ok_or_else(|| {
            Error::Config(format!("{}: the main file is not one of this VFS", ctx()))
        })?;
        Ok(Self { conn, db, file_id })
    }

    /// The database this connection belongs to.
    pub fn database(&self) -> Option<&Database> {
        self.db.as_ref()
    }

    /// The frames of the transaction this connection just committed, once. `None` if it
    /// committed nothing since the last poll (read-only statement, statement inside an open
    /// transaction, rollback, or already polled).
    ///
    /// The commit stays invisible and keeps the write lock until [`Connection::apply`]
    /// (or [`Database::apply`]) with these frames, or [`Connection::abort`].
    pub fn poll(&self) -> Option<Frames> {
        self.db.as_ref()?.poll_file(self.file_id)
    }

    /// Same as [`Database::apply`].
    pub fn apply(&self, frames: &Frames) -> Result<crate::ApplyOutcome, Error> {
        match &self.db {
            Some(db) => db.apply(frames),
            None => Err(Error::Config("maintenance connection".into())),
        }
    }

    /// Same as [`Database::abort`].
    pub fn abort(&self) -> bool {
        self.db.as_ref().is_some_and(Database::abort)
    }

    /// Sets what `last_insert_rowid` returns next (`sqlite3_set_last_insert_rowid`): a
    /// statement run for this connection elsewhere inserted `rowid`.
    pub fn set_last_insert_rowid(&self, rowid: i64) {
        // SAFETY: the handle is valid for the life of `self.conn`, and the call only stores
        // the value in it.
        unsafe { ffi::sqlite3_set_last_insert_rowid(self.conn.handle(), rowid) }
    }
}

fn configure(
    conn: &rusqlite::Connection,
    page_size: u32,
    kind: ConnectionKind,
) -> rusqlite::Result<()> {
    // All connections of a database share one thread: waiting for a lock cannot help.
    conn.busy_timeout(std::time::Duration::ZERO)?;
    conn.execute_batch("PRAGMA synchronous=OFF")?;
    // Effective only for a new (empty) database; must precede the switch to WAL.
    conn.execute_batch(&format!("PRAGMA page_size={page_size}"))?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_ERROR),
            Some(format!("journal_mode is {mode:?}, not WAL")),
        ));
    }
    conn.execute_batch("PRAGMA wal_autocheckpoint=0; PRAGMA foreign_keys=ON")?;
    // Main-file pages are read in place (`xFetch`) rather than copied into this
    // connection's page cache: the VFS holds them in memory already.
    conn.execute_batch(&format!("PRAGMA mmap_size={MMAP_SIZE}"))?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    // SAFETY: the handle is valid for the life of `conn`, which is used by this thread only.
    if let Err(rc) = unsafe { crate::math::register(conn.handle()) } {
        return Err(rusqlite::Error::SqliteFailure(
            ffi::Error::new(rc),
            Some("registering the math functions".into()),
        ));
    }
    if kind == ConnectionKind::User {
        // SAFETY: the handle is valid for the life of `conn`; the authorizer is a plain
        // function without user data, so no pointer can dangle.
        let rc = unsafe {
            ffi::sqlite3_set_authorizer(conn.handle(), Some(authorize), std::ptr::null_mut())
        };
        if rc != ffi::SQLITE_OK {
            return Err(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None));
        }
    }
    Ok(())
}

fn main_file_id(conn: &rusqlite::Connection) -> Option<u64> {
    let mut f: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: SQLITE_FCNTL_FILE_POINTER writes a `sqlite3_file*` into the pointer we pass;
    // the handle is valid while `conn` lives.
    let rc = unsafe {
        ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_FILE_POINTER,
            (&raw mut f).cast::<c_void>(),
        )
    };
    if rc != ffi::SQLITE_OK {
        return None;
    }
    // SAFETY: `f` is NULL or the live main file of `conn`.
    unsafe { file::main_file_id(f) }
}

/// The `mmap_size` of every connection: SQLite's own cap (`SQLITE_MAX_MMAP_SIZE`, 2 GiB less
/// 64 KiB) bounds it; pages beyond it are read with `xRead`.
const MMAP_SIZE: i64 = 0x7fff_0000;

/// Pragmas whose value may be read but not set.
const READ_ONLY_PRAGMAS: &[&str] = &[
    "journal_mode",
    "page_size",
    "synchronous",
    "wal_autocheckpoint",
    "journal_size_limit",
];
/// Pragmas refused entirely (read or set), as in C dqlite's deny list.
const DENIED_PRAGMAS: &[&str] = &["wal_checkpoint", "locking_mode", "read_uncommitted"];

/// # Safety
/// Called by SQLite with NULL or NUL-terminated strings.
unsafe fn text<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        None
    } else {
        // SAFETY: non-null and NUL-terminated per the caller.
        unsafe { CStr::from_ptr(p) }.to_str().ok()
    }
}

unsafe extern "C" fn authorize(
    _user: *mut c_void,
    action: c_int,
    arg1: *const c_char,
    arg2: *const c_char,
    _db: *const c_char,
    _trigger: *const c_char,
) -> c_int {
    // SAFETY: SQLite passes NULL or NUL-terminated strings.
    let (a1, a2) = unsafe { (text(arg1), text(arg2)) };
    match action {
        // Only temporary databases (VACUUM attaches one internally, with an empty name).
        ffi::SQLITE_ATTACH if a1.is_some_and(|f| !f.is_empty()) => ffi::SQLITE_DENY,
        ffi::SQLITE_PRAGMA => {
            let name = a1.unwrap_or("").to_ascii_lowercase();
            if DENIED_PRAGMAS.contains(&name.as_str())
                || (a2.is_some() && READ_ONLY_PRAGMAS.contains(&name.as_str()))
            {
                ffi::SQLITE_DENY
            } else {
                ffi::SQLITE_OK
            }
        }
        _ => ffi::SQLITE_OK,
    }
}
