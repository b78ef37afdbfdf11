//! Byte layouts of SQLite's WAL file and WAL-index (shm) header, and the WAL checksum.
//!
//! Everything here is pure: no SQLite calls, no `unsafe`. The layouts follow SQLite's
//! `wal.c` file-format comments (WAL format version 3007000).

/// Size of the WAL file header.
pub(crate) const WAL_HEADER_SIZE: usize = 32;
/// Size of a WAL frame header.
pub(crate) const FRAME_HEADER_SIZE: usize = 24;
/// WAL magic number; bit 0 says whether checksum words are big-endian.
const WAL_MAGIC: u32 = 0x377f_0682;
/// The only WAL format version SQLite understands.
const WAL_VERSION: u32 = 3_007_000;
/// Size of one copy of the WAL-index header (`WalIndexHdr`).
pub(crate) const INDEX_HEADER_SIZE: usize = 48;
/// Offset of `mxFrame` in the WAL-index header.
#[cfg(test)]
const IDX_MX_FRAME: usize = 16;
/// Offset of `isInit` in the WAL-index header.
#[cfg(test)]
const IDX_IS_INIT: usize = 12;

/// Smallest and largest page sizes SQLite supports.
pub(crate) const MIN_PAGE_SIZE: u32 = 512;
/// See [`MIN_PAGE_SIZE`].
pub(crate) const MAX_PAGE_SIZE: u32 = 65536;

/// True if `size` is a page size SQLite accepts (a power of two in 512..=65536).
pub(crate) fn valid_page_size(size: u32) -> bool {
    size.is_power_of_two() && (MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&size)
}

/// SQLite's WAL checksum: a Fletcher-like sum over pairs of 32-bit words, seeded with
/// `seed`. `big_endian` says how the words are read (bit 0 of the WAL magic).
pub(crate) fn checksum(big_endian: bool, data: &[u8], seed: [u32; 2]) -> [u32; 2] {
    debug_assert!(
        data.len().is_multiple_of(8),
        "WAL checksums cover whole 8-byte units"
    );
    let [mut s1, mut s2] = seed;
    for chunk in data.chunks_exact(8) {
        let (a, b) = chunk.split_at(4);
        let (x0, x1) = if big_endian {
            (be32(a), be32(b))
        } else {
            (le32(a), le32(b))
        };
        s1 = s1.wrapping_add(x0).wrapping_add(s2);
        s2 = s2.wrapping_add(x1).wrapping_add(s1);
    }
    [s1, s2]
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
fn ne32(b: &[u8]) -> u32 {
    u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
}

/// A decoded 32-byte WAL file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WalHeader {
    /// The raw bytes, as stored in the file.
    pub bytes: [u8; WAL_HEADER_SIZE],
}

impl WalHeader {
    /// A fresh header as SQLite would write it when it starts a WAL, for this host's byte
    /// order, with the given salts and checkpoint sequence.
    pub fn new(page_size: u32, checkpoint_seq: u32, salts: [u8; 8]) -> Self {
        let mut bytes = [0u8; WAL_HEADER_SIZE];
        let magic = WAL_MAGIC | u32::from(cfg!(target_endian = "big"));
        bytes[0..4].copy_from_slice(&magic.to_be_bytes());
        bytes[4..8].copy_from_slice(&WAL_VERSION.to_be_bytes());
        bytes[8..12].copy_from_slice(&page_size.to_be_bytes());
        bytes[12..16].copy_from_slice(&checkpoint_seq.to_be_bytes());
        bytes[16..24].copy_from_slice(&salts);
        let sum = checksum(magic & 1 == 1, &bytes[..24], [0, 0]);
        bytes[24..28].copy_from_slice(&sum[0].to_be_bytes());
        bytes[28..32].copy_from_slice(&sum[1].to_be_bytes());
        Self { bytes }
    }

    /// Checksum words are big-endian (bit 0 of the magic).
    pub fn big_endian_checksum(&self) -> bool {
        be32(&self.bytes[0..4]) & 1 == 1
    }

    /// True if the magic, version, page size and header checksum are valid.
    pub fn is_valid(&self) -> bool {
        let magic = be32(&self.bytes[0..4]);
        if magic & !1 != WAL_MAGIC || be32(&self.bytes[4..8]) != WAL_VERSION {
            return false;
        }
        if !valid_page_size(self.page_size()) {
            return false;
        }
        checksum(self.big_endian_checksum(), &self.bytes[..24], [0, 0]) == self.checksum()
    }

    /// The page size recorded in the header.
    pub fn page_size(&self) -> u32 {
        be32(&self.bytes[8..12])
    }

    /// The checkpoint sequence number.
    #[cfg(test)]
    pub fn checkpoint_seq(&self) -> u32 {
        be32(&self.bytes[12..16])
    }

    /// The two salts, raw.
    pub fn salts(&self) -> [u8; 8] {
        let mut s = [0u8; 8];
        s.copy_from_slice(&self.bytes[16..24]);
        s
    }

    /// The header checksum, which seeds the first frame's checksum.
    pub fn checksum(&self) -> [u32; 2] {
        [be32(&self.bytes[24..28]), be32(&self.bytes[28..32])]
    }
}

/// Build a frame header for `page` following a frame (or WAL header) whose checksum is
/// `prev`. `commit` is the database size in pages for a commit frame, 0 otherwise.
pub(crate) fn frame_header(
    wal: &WalHeader,
    prev: [u32; 2],
    page_number: u32,
    commit: u32,
    page: &[u8],
) -> [u8; FRAME_HEADER_SIZE] {
    let mut h = [0u8; FRAME_HEADER_SIZE];
    h[0..4].copy_from_slice(&page_number.to_be_bytes());
    h[4..8].copy_from_slice(&commit.to_be_bytes());
    h[8..16].copy_from_slice(&wal.salts());
    let big = wal.big_endian_checksum();
    let sum = checksum(big, page, checksum(big, &h[0..8], prev));
    h[16..20].copy_from_slice(&sum[0].to_be_bytes());
    h[20..24].copy_from_slice(&sum[1].to_be_bytes());
    h
}

/// Page number stored in a frame header.
pub(crate) fn frame_page_number(h: &[u8; FRAME_HEADER_SIZE]) -> u32 {
    be32(&h[0..4])
}

/// Commit field ("database size after commit") of a frame header; 0 if not a commit frame.
pub(crate) fn frame_commit(h: &[u8; FRAME_HEADER_SIZE]) -> u32 {
    be32(&h[4..8])
}

/// Cumulative checksum stored in a frame header.
pub(crate) fn frame_checksum(h: &[u8; FRAME_HEADER_SIZE]) -> [u32; 2] {
    [be32(&h[16..20]), be32(&h[20..24])]
}

/// True if a frame header belongs to `wal` (same salts) and its checksum, chained from
/// `prev`, matches `page`.
pub(crate) fn frame_is_valid(
    wal: &WalHeader,
    prev: [u32; 2],
    h: &[u8; FRAME_HEADER_SIZE],
    page: &[u8],
) -> bool {
    h[8..16] == wal.salts() && frame_header(wal, prev, be32(&h[0..4]), be32(&h[4..8]), page) == *h
}

/// Operations on one copy of the WAL-index header (`WalIndexHdr`, native byte order).
pub(crate) mod index {
    #[cfg(test)]
    use super::{IDX_IS_INIT, IDX_MX_FRAME, ne32};
    use super::{INDEX_HEADER_SIZE, checksum};

    /// `mxFrame`: index of the last committed frame visible to readers.
    #[cfg(test)]
    pub fn mx_frame(h: &[u8; INDEX_HEADER_SIZE]) -> u32 {
        ne32(&h[IDX_MX_FRAME..IDX_MX_FRAME + 4])
    }

    /// True if the header claims to be initialised and its checksum is right.
    #[cfg(test)]
    pub fn is_valid(h: &[u8; INDEX_HEADER_SIZE]) -> bool {
        h[IDX_IS_INIT] == 1 && stored_checksum(h) == compute_checksum(h)
    }

    #[cfg(test)]
    fn stored_checksum(h: &[u8; INDEX_HEADER_SIZE]) -> [u32; 2] {
        [ne32(&h[40..44]), ne32(&h[44..48])]
    }

    fn compute_checksum(h: &[u8; INDEX_HEADER_SIZE]) -> [u32; 2] {
        // SQLite checksums the index header in native byte order.
        checksum(cfg!(target_endian = "big"), &h[..40], [0, 0])
    }

    /// Rewind a header to a committed state: `mx_frame` frames, `n_page` pages, and (when
    /// there is a committed frame) the checksum of the last committed frame. The other
    /// fields (salts, `iChange`, page size) are kept; the header checksum is recomputed.
    pub fn rewind(
        h: &[u8; INDEX_HEADER_SIZE],
        mx_frame: u32,
        n_page: u32,
        last_checksum: Option<[u32; 2]>,
    ) -> [u8; INDEX_HEADER_SIZE] {
        let mut out = *h;
        out[16..20].copy_from_slice(&mx_frame.to_ne_bytes());
        out[20..24].copy_from_slice(&n_page.to_ne_bytes());
        if let Some([c1, c2]) = last_checksum {
            out[24..28].copy_from_slice(&c1.to_ne_bytes());
            out[28..32].copy_from_slice(&c2.to_ne_bytes());
        }
        let [s1, s2] = compute_checksum(&out);
        out[40..44].copy_from_slice(&s1.to_ne_bytes());
        out[44..48].copy_from_slice(&s2.to_ne_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_header_round_trip() {
        let h = WalHeader::new(4096, 7, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(h.is_valid());
        assert_eq!(h.page_size(), 4096);
        assert_eq!(h.checkpoint_seq(), 7);
        assert_eq!(h.salts(), [1, 2, 3, 4, 5, 6, 7, 8]);
        let mut bad = h;
        bad.bytes[20] ^= 1;
        assert!(
            !bad.is_valid(),
            "a flipped salt bit must break the checksum"
        );
    }

    #[test]
    fn frame_chain_validates_and_detects_corruption() {
        let wal = WalHeader::new(512, 0, [9; 8]);
        let page = vec![0xabu8; 512];
        let h1 = frame_header(&wal, wal.checksum(), 1, 0, &page);
        assert!(frame_is_valid(&wal, wal.checksum(), &h1, &page));
        let h2 = frame_header(&wal, frame_checksum(&h1), 2, 2, &page);
        assert_eq!(frame_commit(&h2), 2);
        assert_eq!(frame_page_number(&h2), 2);
        assert!(frame_is_valid(&wal, frame_checksum(&h1), &h2, &page));
        assert!(!frame_is_valid(&wal, wal.checksum(), &h2, &page));
        let mut other = page.clone();
        other[100] = 0;
        assert!(!frame_is_valid(&wal, frame_checksum(&h1), &h2, &other));
    }

    #[test]
    fn checksum_matches_known_value() {
        // Two words (1, 2) little-endian: s1 = 1, s2 = 2 + 1 = 3.
        let data = [1u8, 0, 0, 0, 2, 0, 0, 0];
        assert_eq!(checksum(false, &data, [0, 0]), [1, 3]);
        assert_eq!(
            checksum(true, &data, [0, 0]),
            [1 << 24, (2 << 24) + (1 << 24)]
        );
    }

    #[test]
    fn index_rewind_keeps_header_valid() {
        let mut h = [0u8; INDEX_HEADER_SIZE];
        h[12] = 1;
        let h = index::rewind(&h, 10, 5, Some([1, 2]));
        assert!(index::is_valid(&h));
        assert_eq!(index::mx_frame(&h), 10);
        let h2 = index::rewind(&h, 3, 2, None);
        assert!(index::is_valid(&h2));
        assert_eq!(index::mx_frame(&h2), 3);
    }

    #[test]
    fn page_sizes() {
        assert!(valid_page_size(512));
        assert!(valid_page_size(65536));
        assert!(!valid_page_size(256));
        assert!(!valid_page_size(1000));
        assert!(!valid_page_size(131072));
    }
}
