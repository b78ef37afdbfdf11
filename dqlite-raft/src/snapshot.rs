//! Snapshot files: atomic creation, validation, streaming handle, purge of old ones.
//!
//! A snapshot file is self-validating, so that what a follower received over the network is
//! checked end to end before it replaces anything:
//!
//! ```text
//! "DQRSNAP\0", u8 version, 3 zero bytes, u32 LE meta length, meta (postcard SnapshotMeta),
//! u32 LE CRC32C of all header bytes before it
//! payload (written by the application's state machine)
//! u64 LE payload length, u32 LE CRC32C of the payload, "DQRSEND\0"
//! ```
//!
//! Files are written as `*.tmp`, fsynced, renamed to `snap-<seq>.snap` and the directory fsynced;
//! the newest valid file is the current snapshot, older ones are deleted once a newer one is in
//! place (an open handle that is streaming an old one keeps reading it: unlink does not cut it).

use std::fs;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use openraft::{NodeId, SnapshotMeta};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

use crate::atomic_file::sync_dir;
use crate::error::{FrameError, StoreError};

const MAGIC: &[u8; 8] = b"DQRSNAP\0";
const END_MAGIC: &[u8; 8] = b"DQRSEND\0";
const VERSION: u8 = 1;
const TRAILER_LEN: u64 = 20;

/// The snapshot data type of this crate's type configurations: an open file plus its path.
///
/// openraft streams it in chunks (seek + read) to followers and writes received chunks into it.
#[derive(Debug)]
pub struct SnapshotFile {
    file: tokio::fs::File,
    path: PathBuf,
}

impl SnapshotFile {
    /// Opens an existing file for reading and writing.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .await
            .map_err(|e| StoreError::io("open", path, e))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl AsyncRead for SnapshotFile {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().file).poll_read(cx, buf)
    }
}

impl AsyncWrite for SnapshotFile {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().file).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().file).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().file).poll_shutdown(cx)
    }
}

impl AsyncSeek for SnapshotFile {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        Pin::new(&mut self.get_mut().file).start_seek(position)
    }
    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Pin::new(&mut self.get_mut().file).poll_complete(cx)
    }
}

/// The application's part of a snapshot, readable as a byte stream (already checksum-verified).
pub struct SnapshotPayload {
    inner: io::Take<BufReader<fs::File>>,
    len: u64,
}

impl SnapshotPayload {
    /// Payload length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads the whole payload into memory.
    pub fn into_vec(mut self) -> io::Result<Vec<u8>> {
        let mut v = Vec::with_capacity(self.len.min(1 << 30) as usize);
        self.inner.read_to_end(&mut v)?;
        Ok(v)
    }
}

impl Read for SnapshotPayload {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

struct CrcWriter<W> {
    inner: W,
    crc: u32,
    len: u64,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The directory of snapshot files.
#[derive(Debug)]
pub struct SnapshotStore {
    dir: PathBuf,
    next: AtomicU64,
}

impl SnapshotStore {
    /// Opens (or creates) the snapshot directory and deletes leftover temp files.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        fs::create_dir_all(dir).map_err(|e| StoreError::io("create dir", dir, e))?;
        let mut max = 0;
        for (seq, path) in Self::list(dir)? {
            max = max.max(seq);
            let _ = path;
        }
        for ent in fs::read_dir(dir).map_err(|e| StoreError::io("read dir", dir, e))? {
            let ent = ent.map_err(|e| StoreError::io("read dir", dir, e))?;
            if ent.file_name().to_string_lossy().ends_with(".tmp") {
                let p = ent.path();
                fs::remove_file(&p).map_err(|e| StoreError::io("remove", &p, e))?;
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            next: AtomicU64::new(max + 1),
        })
    }

    fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
        let mut out = Vec::new();
        for ent in fs::read_dir(dir).map_err(|e| StoreError::io("read dir", dir, e))? {
            let ent = ent.map_err(|e| StoreError::io("read dir", dir, e))?;
            let name = ent.file_name();
            let name = name.to_string_lossy();
            if let Some(n) = name
                .strip_prefix("snap-")
                .and_then(|s| s.strip_suffix(".snap"))
                .and_then(|s| s.parse::<u64>().ok())
            {
                out.push((n, ent.path()));
            }
        }
        out.sort();
        Ok(out)
    }

    fn temp_path(&self, what: &str) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!("{what}-{n}.tmp"))
    }

    /// Writes a new snapshot (header, `write_payload`, trailer) atomically and makes it current.
    /// Blocking: call from a blocking thread.
    pub fn create<NID: NodeId, N: openraft::Node>(
        &self,
        meta: &SnapshotMeta<NID, N>,
        write_payload: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<PathBuf, StoreError>
    where
        SnapshotMeta<NID, N>: Serialize,
    {
        let tmp = self.temp_path("build");
        let res = (|| {
            let f = fs::File::create(&tmp).map_err(|e| StoreError::io("create", &tmp, e))?;
            let mut w = BufWriter::with_capacity(1 << 20, f);
            let header = encode_header(meta)?;
            w.write_all(&header)
                .map_err(|e| StoreError::io("write", &tmp, e))?;
            let mut cw = CrcWriter {
                inner: &mut w,
                crc: 0,
                len: 0,
            };
            write_payload(&mut cw)
                .map_err(|e| StoreError::io("write snapshot payload", &tmp, e))?;
            let (crc, len) = (cw.crc, cw.len);
            let mut trailer = Vec::with_capacity(TRAILER_LEN as usize);
            trailer.extend_from_slice(&len.to_le_bytes());
            trailer.extend_from_slice(&crc.to_le_bytes());
            trailer.extend_from_slice(END_MAGIC);
            w.write_all(&trailer)
                .map_err(|e| StoreError::io("write", &tmp, e))?;
            let f = w
                .into_inner()
                .map_err(|e| StoreError::io("write", &tmp, e.into_error()))?;
            f.sync_all().map_err(|e| StoreError::io("fsync", &tmp, e))?;
            self.commit(&tmp)
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res
    }

    /// Renames a complete, fsynced temp file into place and deletes older snapshots.
    fn commit(&self, tmp: &Path) -> Result<PathBuf, StoreError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("snap-{n:020}.snap"));
        fs::rename(tmp, &path).map_err(|e| StoreError::io("rename", &path, e))?;
        sync_dir(&self.dir)?;
        for (seq, old) in Self::list(&self.dir)? {
            if seq < n {
                fs::remove_file(&old).map_err(|e| StoreError::io("remove", &old, e))?;
            }
        }
        Ok(path)
    }

    /// A fresh temp file to receive a snapshot into.
    pub async fn begin_receiving(&self) -> Result<SnapshotFile, StoreError> {
        let path = self.temp_path("recv");
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| StoreError::io("create", &path, e))?;
        Ok(SnapshotFile { file, path })
    }

    /// Validates a received snapshot against `meta`, makes it durable and current.
    /// Blocking: call from a blocking thread.
    pub fn install<NID: NodeId, N: openraft::Node>(
        &self,
        meta: &SnapshotMeta<NID, N>,
        received: &Path,
    ) -> Result<PathBuf, StoreError>
    where
        SnapshotMeta<NID, N>: Serialize + DeserializeOwned,
    {
        let ours = received.parent() == Some(self.dir.as_path())
            && received.extension().is_some_and(|e| e == "tmp");
        let tmp = if ours {
            received.to_path_buf()
        } else {
            let tmp = self.temp_path("copy");
            fs::copy(received, &tmp).map_err(|e| StoreError::io("copy", received, e))?;
            tmp
        };
        let res = (|| {
            let got = read_validated::<NID, N>(&tmp)?.meta;
            if &got != meta {
                return Err(StoreError::Snapshot {
                    path: tmp.clone(),
                    reason: format!("header says {got} but the sender announced {meta}"),
                });
            }
            let f = fs::File::open(&tmp).map_err(|e| StoreError::io("open", &tmp, e))?;
            f.sync_all().map_err(|e| StoreError::io("fsync", &tmp, e))?;
            self.commit(&tmp)
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res
    }

    /// The current snapshot: its meta and path, after a full checksum verification.
    /// A damaged current snapshot is an error, not a reason to fall back silently.
    pub fn current<NID: NodeId, N: openraft::Node>(
        &self,
    ) -> Result<Option<ValidSnapshot<NID, N>>, StoreError>
    where
        SnapshotMeta<NID, N>: DeserializeOwned,
    {
        let Some((_, path)) = Self::list(&self.dir)?.pop() else {
            return Ok(None);
        };
        read_validated(&path).map(Some)
    }
}

fn encode_header<T: Serialize>(meta: &T) -> Result<Vec<u8>, StoreError> {
    let m = postcard::to_stdvec(meta).map_err(|e| StoreError::Codec(e.to_string()))?;
    let mut h = Vec::with_capacity(m.len() + 20);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&[VERSION, 0, 0, 0]);
    h.extend_from_slice(&(m.len() as u32).to_le_bytes());
    h.extend_from_slice(&m);
    let crc = crc32c::crc32c(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    Ok(h)
}

/// A snapshot file that passed [`read_validated`].
#[derive(Debug, Clone)]
pub struct ValidSnapshot<NID: NodeId, N: openraft::Node> {
    /// Its metadata.
    pub meta: SnapshotMeta<NID, N>,
    /// Its path.
    pub path: PathBuf,
    /// Where the application payload starts.
    pub payload_offset: u64,
    /// Payload length.
    pub payload_len: u64,
}

impl<NID: NodeId, N: openraft::Node> ValidSnapshot<NID, N> {
    /// Opens the payload for reading.
    pub fn open_payload(&self) -> Result<SnapshotPayload, StoreError> {
        let path = &self.path;
        let mut f = fs::File::open(path).map_err(|e| StoreError::io("open", path, e))?;
        f.seek(SeekFrom::Start(self.payload_offset))
            .map_err(|e| StoreError::io("seek", path, e))?;
        Ok(SnapshotPayload {
            inner: BufReader::with_capacity(1 << 20, f).take(self.payload_len),
            len: self.payload_len,
        })
    }
}

/// Checks a snapshot file completely (header, meta, payload checksum, trailer).
pub fn read_validated<NID: NodeId, N: openraft::Node>(
    path: &Path,
) -> Result<ValidSnapshot<NID, N>, StoreError>
where
    SnapshotMeta<NID, N>: DeserializeOwned,
{
    let corrupt = |offset: u64, reason| StoreError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason,
    };
    let io_err = |e| StoreError::io("read", path, e);
    let mut f = BufReader::with_capacity(1 << 20, fs::File::open(path).map_err(io_err)?);
    let total = f.get_ref().metadata().map_err(io_err)?.len();
    let mut fixed = [0u8; 16];
    f.read_exact(&mut fixed)
        .map_err(|_| corrupt(0, FrameError::Short))?;
    if fixed[0..8] != MAGIC[..] {
        return Err(corrupt(0, FrameError::BadMagic));
    }
    if fixed[8] != VERSION {
        return Err(corrupt(8, FrameError::Version(fixed[8])));
    }
    let mlen = u32::from_le_bytes([fixed[12], fixed[13], fixed[14], fixed[15]]) as u64;
    if 16 + mlen + 4 + TRAILER_LEN > total {
        return Err(corrupt(12, FrameError::Length(mlen as usize)));
    }
    let mut m = vec![0u8; mlen as usize + 4];
    f.read_exact(&mut m).map_err(io_err)?;
    let stored = u32::from_le_bytes([
        m[mlen as usize],
        m[mlen as usize + 1],
        m[mlen as usize + 2],
        m[mlen as usize + 3],
    ]);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&fixed), &m[..mlen as usize]);
    if stored != crc {
        return Err(corrupt(16 + mlen, FrameError::Checksum));
    }
    let meta: SnapshotMeta<NID, N> = postcard::from_bytes(&m[..mlen as usize])
        .map_err(|e| corrupt(16, FrameError::Payload(e.to_string())))?;
    let start = 16 + mlen + 4;
    let plen = total - start - TRAILER_LEN;
    let mut crc = 0u32;
    let mut left = plen;
    let mut buf = vec![0u8; 1 << 16];
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        f.read_exact(&mut buf[..n]).map_err(io_err)?;
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        left -= n as u64;
    }
    let mut t = [0u8; TRAILER_LEN as usize];
    f.read_exact(&mut t).map_err(io_err)?;
    let tail_at = total - TRAILER_LEN;
    if t[12..20] != END_MAGIC[..] {
        return Err(corrupt(tail_at + 12, FrameError::BadMagic));
    }
    let mut l = [0u8; 8];
    l.copy_from_slice(&t[0..8]);
    if u64::from_le_bytes(l) != plen {
        return Err(corrupt(tail_at, FrameError::Length(plen as usize)));
    }
    if u32::from_le_bytes([t[8], t[9], t[10], t[11]]) != crc {
        return Err(corrupt(start, FrameError::Checksum));
    }
    Ok(ValidSnapshot {
        meta,
        path: path.to_path_buf(),
        payload_offset: start,
        payload_len: plen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{BasicNode, CommittedLeaderId, LogId, StoredMembership};

    type Meta = SnapshotMeta<u64, BasicNode>;

    fn meta(index: u64) -> Meta {
        SnapshotMeta {
            last_log_id: Some(LogId::new(CommittedLeaderId::new(2, 1), index)),
            last_membership: StoredMembership::default(),
            snapshot_id: format!("s-{index}"),
        }
    }

    #[test]
    fn create_validate_install_and_corruption() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let sa = SnapshotStore::open(a.path()).unwrap();
        let sb = SnapshotStore::open(b.path()).unwrap();
        assert!(sa.current::<u64, BasicNode>().unwrap().is_none());
        let p1 = sa
            .create(&meta(5), |w| w.write_all(b"hello world"))
            .unwrap();
        let p2 = sa.create(&meta(9), |w| w.write_all(b"second")).unwrap();
        assert!(!p1.exists(), "older snapshot purged");
        let cur = sa.current::<u64, BasicNode>().unwrap().unwrap();
        assert_eq!(cur.meta, meta(9));
        assert_eq!(cur.path, p2);
        let path = cur.path.clone();
        assert_eq!(cur.open_payload().unwrap().into_vec().unwrap(), b"second");

        // Installing from a foreign path copies; a wrong meta is refused.
        assert!(sb.install(&meta(8), &path).is_err());
        let installed = sb.install(&meta(9), &path).unwrap();
        assert_eq!(
            sb.current::<u64, BasicNode>().unwrap().unwrap().path,
            installed
        );

        // A flipped payload bit is found and named.
        let mut bytes = fs::read(&installed).unwrap();
        let n = bytes.len();
        bytes[n - 22] ^= 1;
        fs::write(&installed, &bytes).unwrap();
        assert!(matches!(
            sb.current::<u64, BasicNode>(),
            Err(StoreError::Corrupt {
                reason: FrameError::Checksum,
                ..
            })
        ));
    }
}
