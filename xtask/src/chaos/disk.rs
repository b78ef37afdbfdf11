//! Disk faults, done from outside the node: tearing the tail of its newest Raft log segment
//! while it is down, and filling its (tmpfs) data directory.
//!
//! Segment layout (`dqlite-raft`'s `frame.rs`): a 32-byte header, then 8-byte aligned frames
//! `u32 body length | u32 crc | u64 batch | body | padding`, then zeros. Recovery may cut
//! only the last write batch (written after the previous batch's fsync returned). Tearing
//! that batch loses data this node may have acknowledged, which is fair only while the rest
//! of the cluster holds it: the nemesis tears only after a majority without this node has
//! committed something new (every entry this node acknowledged is then on that majority).
//! Appending a torn frame after the last batch (a write that had started) is always fair.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rand::RngExt;
use rand::rngs::StdRng;

use super::netns::sh;
use super::nodes::TMPFS_SIZE;

const HEADER_LEN: u64 = 32;
const FRAME_HEADER_LEN: u64 = 16;
/// Recovery's sanity bound on a frame body.
const MAX_BODY: u64 = 256 * 1024 * 1024;

/// How to damage the tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tear {
    /// Zero the last batch from a point inside it (its end never reached the disk).
    Truncate,
    /// Overwrite a few bytes inside the last batch with garbage (a torn sector).
    Garble,
    /// Write the start of a frame after the last one (a new batch cut short).
    PartialFrame,
}

/// A frame found in a segment.
#[derive(Debug, Clone, Copy)]
struct FrameAt {
    offset: u64,
    len: u64,
    batch: u64,
}

fn segments(data: &Path) -> Vec<PathBuf> {
    let dir = data.join("raft").join("log");
    let mut segs: Vec<PathBuf> = fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("seg-") && n.ends_with(".log"))
                })
                .collect()
        })
        .unwrap_or_default();
    segs.sort();
    segs
}

fn frames(buf: &[u8]) -> Vec<FrameAt> {
    let mut out = Vec::new();
    let mut pos = HEADER_LEN;
    let le32 = |p: u64| -> u64 {
        let p = p as usize;
        u64::from(u32::from_le_bytes([
            buf[p],
            buf[p + 1],
            buf[p + 2],
            buf[p + 3],
        ]))
    };
    while pos + FRAME_HEADER_LEN <= buf.len() as u64 {
        let body = le32(pos);
        if body == 0 || body > MAX_BODY {
            break;
        }
        let len = (FRAME_HEADER_LEN + body).next_multiple_of(8);
        if pos + len > buf.len() as u64 {
            break;
        }
        let p = pos as usize + 8;
        let mut b = [0u8; 8];
        b.copy_from_slice(&buf[p..p + 8]);
        out.push(FrameAt {
            offset: pos,
            len,
            batch: u64::from_le_bytes(b),
        });
        pos += len;
    }
    out
}

/// Damages the newest segment holding frames in `data`'s Raft log; returns what was done.
pub fn tear(data: &Path, how: Tear, rng: &mut StdRng) -> Result<String, String> {
    for seg in segments(data).iter().rev() {
        let mut f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(seg)
            .map_err(|e| format!("{}: {e}", seg.display()))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)
            .map_err(|e| format!("{}: {e}", seg.display()))?;
        let fr = frames(&buf);
        let Some(last) = fr.last().copied() else {
            continue;
        };
        let first_of_batch = fr
            .iter()
            .find(|x| x.batch == last.batch)
            .copied()
            .unwrap_or(last);
        let end = last.offset + last.len;
        let name = seg
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let (at, bytes, what) = match how {
            Tear::Truncate => {
                let at = rng.random_range(first_of_batch.offset + 1..end);
                let zeros = vec![0u8; (end - at) as usize];
                (at, zeros, format!("zeroed {} bytes", end - at))
            }
            Tear::Garble => {
                let at = rng.random_range(first_of_batch.offset..end);
                let n = rng.random_range(8..64u64).min(end - at).max(1);
                let junk: Vec<u8> = (0..n).map(|_| rng.random_range(1..=255u8)).collect();
                (at, junk, format!("garbled {n} bytes"))
            }
            Tear::PartialFrame => {
                if end + FRAME_HEADER_LEN + 8 > buf.len() as u64 {
                    return Err(format!("{name}: no room after the last frame"));
                }
                // A plausible header (length, wrong crc, next batch) and a few body bytes.
                let mut junk = Vec::new();
                junk.extend_from_slice(&(rng.random_range(64..4096u32)).to_le_bytes());
                junk.extend_from_slice(&rng.random_range(1..u32::MAX).to_le_bytes());
                junk.extend_from_slice(&(last.batch + 1).to_le_bytes());
                junk.extend((0..8).map(|_| rng.random_range(0..=255u8)));
                (
                    end,
                    junk,
                    "wrote a partial frame of a new batch".to_string(),
                )
            }
        };
        f.seek(SeekFrom::Start(at))
            .and_then(|_| f.write_all(&bytes))
            .and_then(|_| f.sync_all())
            .map_err(|e| format!("{}: {e}", seg.display()))?;
        return Ok(format!(
            "{name}: {what} at offset {at} (last batch {} spans {}..{end})",
            last.batch, first_of_batch.offset
        ));
    }
    Err(format!("no segment with frames under {}", data.display()))
}

/// Makes the tmpfs at `mount` full: its size becomes what it uses now plus a little.
pub fn fill(mount: &Path) -> Result<String, String> {
    let st = nix::sys::statvfs::statvfs(mount).map_err(|e| format!("{}: {e}", mount.display()))?;
    let block = st.fragment_size();
    let used = (st.blocks() - st.blocks_free()) * block;
    let size = used + 64 * 1024;
    let m = mount.to_string_lossy();
    sh(
        "mount",
        &["-o", &format!("remount,size={size}"), "tmpfs", &m],
    )?;
    Ok(format!(
        "{} KiB used, size set to {} KiB",
        used / 1024,
        size / 1024
    ))
}

/// True if the node log at `log` says, after byte `from`, that its disk is full.
pub fn mentions_no_space(log: &Path, from: u64) -> bool {
    let Ok(mut f) = fs::File::open(log) else {
        return false;
    };
    let mut text = String::new();
    if f.seek(SeekFrom::Start(from)).is_err() || f.read_to_string(&mut text).is_err() {
        return false;
    }
    text.contains("No space left on device") || text.contains("os error 28")
}

/// Gives the tmpfs at `mount` its room back.
pub fn unfill(mount: &Path) -> Result<(), String> {
    let m = mount.to_string_lossy();
    sh(
        "mount",
        &["-o", &format!("remount,size={TMPFS_SIZE}"), "tmpfs", &m],
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// A segment with three frames: batches 1, 2, 2.
    fn segment() -> Vec<u8> {
        let mut buf = vec![0u8; HEADER_LEN as usize];
        for (batch, body) in [(1u64, 20u32), (2, 9), (2, 30)] {
            let start = buf.len();
            buf.extend_from_slice(&body.to_le_bytes());
            buf.extend_from_slice(&[0xAB; 4]);
            buf.extend_from_slice(&batch.to_le_bytes());
            buf.extend(std::iter::repeat_n(7u8, body as usize));
            buf.resize(start + (16 + body as usize).next_multiple_of(8), 0);
        }
        buf.resize(buf.len() + 4096, 0);
        buf
    }

    #[test]
    fn frames_are_found_up_to_the_zeros() {
        let f = frames(&segment());
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].offset, 32);
        assert_eq!(f[1].offset, 32 + 40);
        assert_eq!(f.iter().map(|x| x.batch).collect::<Vec<_>>(), vec![1, 2, 2]);
    }

    #[test]
    fn tearing_touches_only_the_last_batch() {
        let dir = tempdir();
        let log = dir.join("raft").join("log");
        fs::create_dir_all(&log).unwrap();
        let seg = log.join("seg-00000000000000000001.log");
        let original = segment();
        let last_batch_start = 32 + 40;
        let mut rng = StdRng::seed_from_u64(7);
        for how in [Tear::Truncate, Tear::Garble, Tear::PartialFrame] {
            for _ in 0..20 {
                fs::write(&seg, &original).unwrap();
                tear(&dir, how, &mut rng).unwrap();
                let now = fs::read(&seg).unwrap();
                assert_eq!(now.len(), original.len());
                assert_eq!(
                    now[..last_batch_start],
                    original[..last_batch_start],
                    "{how:?}"
                );
                assert_ne!(now, original, "{how:?} changed nothing");
            }
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("chaos-disk-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }
}
