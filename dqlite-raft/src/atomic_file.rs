//! Small metadata files (the vote) replaced atomically: write a temp file, fsync it, rename it
//! over the old one, fsync the directory.
//!
//! Layout: 8 magic bytes, u8 version, 3 zero bytes, u32 LE payload length, payload, u32 LE
//! CRC32C of everything before it. A crash leaves either the old or the new file, never a mix;
//! a file that fails its checks is reported as [`StoreError::Corrupt`], never ignored.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::{FrameError, StoreError};

const VERSION: u8 = 1;

/// Writes `payload` to `path` atomically and durably.
pub fn write(path: &Path, magic: &[u8; 8], payload: &[u8]) -> Result<(), StoreError> {
    let mut buf = Vec::with_capacity(payload.len() + 20);
    buf.extend_from_slice(magic);
    buf.extend_from_slice(&[VERSION, 0, 0, 0]);
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(payload);
    let crc = crc32c::crc32c(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());

    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(|e| StoreError::io("create", &tmp, e))?;
    f.write_all(&buf)
        .map_err(|e| StoreError::io("write", &tmp, e))?;
    f.sync_all().map_err(|e| StoreError::io("fsync", &tmp, e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| StoreError::io("rename", path, e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Reads a file written by [`write()`]; `Ok(None)` if it does not exist.
pub fn read(path: &Path, magic: &[u8; 8]) -> Result<Option<Vec<u8>>, StoreError> {
    let buf = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("read", path, e)),
    };
    let corrupt = |offset: u64, reason| StoreError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason,
    };
    if buf.len() < 20 {
        return Err(corrupt(0, FrameError::Short));
    }
    if buf[0..8] != magic[..] {
        return Err(corrupt(0, FrameError::BadMagic));
    }
    let len = u32::from_le_bytes([buf[12], buf[13], buf[14], buf[15]]) as usize;
    if 16 + len + 4 != buf.len() {
        return Err(corrupt(12, FrameError::Length(len)));
    }
    let stored = u32::from_le_bytes([buf[16 + len], buf[17 + len], buf[18 + len], buf[19 + len]]);
    if stored != crc32c::crc32c(&buf[..16 + len]) {
        return Err(corrupt((16 + len) as u64, FrameError::Checksum));
    }
    if buf[8] != VERSION {
        return Err(corrupt(8, FrameError::Version(buf[8])));
    }
    Ok(Some(buf[16..16 + len].to_vec()))
}

/// fsyncs a directory so that renames and creations in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    let d = fs::File::open(dir).map_err(|e| StoreError::io("open dir", dir, e))?;
    d.sync_all()
        .map_err(|e| StoreError::io("fsync dir", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_missing_and_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vote");
        assert_eq!(read(&p, b"TESTMAGC").unwrap(), None);
        write(&p, b"TESTMAGC", b"hello").unwrap();
        assert_eq!(read(&p, b"TESTMAGC").unwrap().unwrap(), b"hello");
        write(&p, b"TESTMAGC", b"again!").unwrap();
        assert_eq!(read(&p, b"TESTMAGC").unwrap().unwrap(), b"again!");
        assert!(!p.with_extension("tmp").exists());

        let mut bytes = fs::read(&p).unwrap();
        bytes[17] ^= 0x40;
        fs::write(&p, &bytes).unwrap();
        match read(&p, b"TESTMAGC") {
            Err(StoreError::Corrupt { offset, .. }) => assert_eq!(offset, 22),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            read(&p, b"OTHERMGC"),
            Err(StoreError::Corrupt {
                reason: FrameError::BadMagic,
                ..
            })
        ));
        fs::write(&p, b"short").unwrap();
        assert!(read(&p, b"TESTMAGC").is_err());
    }
}
