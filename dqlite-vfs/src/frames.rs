//! [`Frames`]: the pages of one committed transaction, as replicated.

use std::sync::Arc;

use crate::error::Error;
use crate::format::valid_page_size;

/// One page image, shared without copying between the VFS, [`Frames`] and [`Snapshot`]s.
///
/// [`Snapshot`]: crate::Snapshot
pub(crate) type Page = Arc<[u8]>;

/// The frames of one committed write transaction: page numbers and page images in WAL
/// order, plus the database size in pages after the commit.
///
/// This is what a leader replicates (one Raft entry) and what every node applies. It is
/// `Send + Sync` and cheap to clone (page images are reference-counted).
///
/// Invariants (checked by [`Frames::new`]): at least one page; every page is exactly
/// `page_size` bytes; page numbers are at least 1; `db_size` is at least 1; the page size
/// is a power of two in 512..=65536. A page number may repeat (the later image wins, as in
/// a WAL).
#[derive(Clone, Debug)]
pub struct Frames {
    page_size: u32,
    db_size: u32,
    pages: Vec<(u32, Page)>,
}

impl PartialEq for Frames {
    fn eq(&self, other: &Self) -> bool {
        self.page_size == other.page_size
            && self.db_size == other.db_size
            && self.pages.len() == other.pages.len()
            && self
                .pages
                .iter()
                .zip(&other.pages)
                .all(|((n1, p1), (n2, p2))| n1 == n2 && (Arc::ptr_eq(p1, p2) || p1 == p2))
    }
}

impl Eq for Frames {}

impl Frames {
    /// Build frames from `(page number, page image)` pairs.
    pub fn new<I, P>(page_size: u32, db_size: u32, pages: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = (u32, P)>,
        P: Into<Vec<u8>>,
    {
        let pages = pages
            .into_iter()
            .map(|(n, p)| (n, Page::from(p.into())))
            .collect();
        Self::from_shared(page_size, db_size, pages)
    }

    /// Build frames from page numbers and the page images laid end to end (the layout of
    /// a dqlite FRAMES command: `page_numbers.len() * page_size` bytes of data).
    pub fn from_contiguous(
        page_size: u32,
        db_size: u32,
        page_numbers: &[u32],
        data: &[u8],
    ) -> Result<Self, Error> {
        let ps = page_size as usize;
        if !valid_page_size(page_size) {
            return Err(Error::InvalidFrames(format!(
                "page size {page_size} is not valid"
            )));
        }
        if data.len() != page_numbers.len() * ps {
            return Err(Error::InvalidFrames(format!(
                "{} bytes of page data for {} pages of {page_size} bytes",
                data.len(),
                page_numbers.len()
            )));
        }
        let pages = page_numbers
            .iter()
            .zip(data.chunks_exact(ps))
            .map(|(&n, p)| (n, Page::from(p)))
            .collect();
        Self::from_shared(page_size, db_size, pages)
    }

    pub(crate) fn from_shared(
        page_size: u32,
        db_size: u32,
        pages: Vec<(u32, Page)>,
    ) -> Result<Self, Error> {
        if !valid_page_size(page_size) {
            return Err(Error::InvalidFrames(format!(
                "page size {page_size} is not valid"
            )));
        }
        if pages.is_empty() {
            return Err(Error::InvalidFrames("no pages".into()));
        }
        if db_size == 0 {
            return Err(Error::InvalidFrames(
                "database size after commit is 0".into(),
            ));
        }
        for (i, (n, p)) in pages.iter().enumerate() {
            if *n == 0 {
                return Err(Error::InvalidFrames(format!("frame {i} has page number 0")));
            }
            if p.len() != page_size as usize {
                return Err(Error::InvalidFrames(format!(
                    "frame {i} (page {n}) has {} bytes, page size is {page_size}",
                    p.len()
                )));
            }
        }
        Ok(Self {
            page_size,
            db_size,
            pages,
        })
    }

    /// Page size in bytes.
    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// Database size in pages after this commit (may be smaller than before: VACUUM and
    /// other shrinking transactions).
    pub fn db_size(&self) -> u32 {
        self.db_size
    }

    /// Number of frames (pages).
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Always false: a commit has at least one frame. Present for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Page numbers in frame order.
    pub fn page_numbers(&self) -> impl ExactSizeIterator<Item = u32> + '_ {
        self.pages.iter().map(|(n, _)| *n)
    }

    /// `(page number, page image)` in frame order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (u32, &[u8])> + '_ {
        self.pages.iter().map(|(n, p)| (*n, &p[..]))
    }

    /// The page images laid end to end (`len() * page_size` bytes).
    pub fn contiguous_data(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.pages.len() * self.page_size as usize);
        for (_, p) in &self.pages {
            out.extend_from_slice(p);
        }
        out
    }

    pub(crate) fn shared_pages(&self) -> &[(u32, Page)] {
        &self.pages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(Frames::new(4096, 1, vec![(1u32, vec![0u8; 4096])]).is_ok());
        assert!(Frames::new(4096, 1, Vec::<(u32, Vec<u8>)>::new()).is_err());
        assert!(Frames::new(4096, 1, vec![(0u32, vec![0u8; 4096])]).is_err());
        assert!(Frames::new(4096, 0, vec![(1u32, vec![0u8; 4096])]).is_err());
        assert!(Frames::new(4096, 1, vec![(1u32, vec![0u8; 4095])]).is_err());
        assert!(Frames::new(1000, 1, vec![(1u32, vec![0u8; 1000])]).is_err());
    }

    #[test]
    fn contiguous_round_trip() {
        let data: Vec<u8> = (0..1024u32).map(|i| i as u8).collect();
        let f = Frames::from_contiguous(512, 3, &[3, 1], &data).unwrap();
        assert_eq!(f.page_numbers().collect::<Vec<_>>(), vec![3, 1]);
        assert_eq!(f.contiguous_data(), data);
        assert_eq!(f.iter().nth(1).unwrap().1, &data[512..]);
        assert!(Frames::from_contiguous(512, 3, &[3], &data).is_err());
        let g = Frames::new(512, 3, f.iter().map(|(n, p)| (n, p.to_vec()))).unwrap();
        assert_eq!(f, g);
    }
}
