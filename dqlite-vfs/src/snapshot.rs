//! [`Snapshot`]: a consistent image of a database, and the raw file images for DUMP.

use std::io::Write;

use crate::error::Error;
use crate::format::valid_page_size;
use crate::frames::Page;
use crate::storage::overlay_wal_image;

/// A consistent image of a database: its pages `1..=page_count`, with every committed
/// WAL frame overlaid on the main file (what a checkpoint would produce).
///
/// Taking one copies no page data (pages are shared, copy-on-write), so it is cheap even
/// while other connections read and write; the snapshot is `Send + Sync` and can be
/// serialized on another thread. [`Snapshot::to_bytes`] is exactly an SQLite database file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    page_size: u32,
    pages: Vec<Page>,
}

impl Snapshot {
    pub(crate) fn from_pages(page_size: u32, pages: Vec<Page>) -> Self {
        Self { page_size, pages }
    }

    /// Page size in bytes.
    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// Number of pages.
    pub fn page_count(&self) -> u32 {
        self.pages.len() as u32
    }

    /// Size of the database image in bytes.
    pub fn len_bytes(&self) -> usize {
        self.pages.len() * self.page_size as usize
    }

    /// Pages in order (page 1 first).
    pub fn pages(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.pages.iter().map(|p| &p[..])
    }

    /// The database file image.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len_bytes());
        for p in &self.pages {
            out.extend_from_slice(p);
        }
        out
    }

    /// Write the database file image to `w`.
    pub fn write_to<W: Write>(&self, mut w: W) -> std::io::Result<()> {
        for p in &self.pages {
            w.write_all(p)?;
        }
        Ok(())
    }

    pub(crate) fn shared_pages(&self) -> &[Page] {
        &self.pages
    }

    /// Parse a database file image (as produced by [`Snapshot::to_bytes`]). The page size
    /// is read from the header (bytes 16-17); an empty image is an empty database with
    /// `default_page_size`.
    pub fn from_bytes(image: &[u8], default_page_size: u32) -> Result<Self, Error> {
        Self::from_files(image, &[], default_page_size)
    }

    /// Build a snapshot from a main file image and a WAL image (C dqlite's FSM snapshot
    /// layout, v1.16-style when the WAL is not empty). Valid committed WAL frames are
    /// overlaid; a torn or foreign tail of the WAL is ignored, like SQLite's recovery does.
    pub fn from_files(main: &[u8], wal: &[u8], default_page_size: u32) -> Result<Self, Error> {
        let page_size = if main.len() >= 100 {
            match u16::from_be_bytes([main[16], main[17]]) {
                1 => 65536,
                n => u32::from(n),
            }
        } else if main.is_empty() && wal.len() >= 32 {
            u32::from_be_bytes([wal[8], wal[9], wal[10], wal[11]])
        } else if main.is_empty() {
            default_page_size
        } else {
            return Err(Error::InvalidSnapshot(format!(
                "main image of {} bytes has no database header",
                main.len()
            )));
        };
        if !valid_page_size(page_size) {
            return Err(Error::InvalidSnapshot(format!(
                "page size {page_size} is not valid"
            )));
        }
        if !main.len().is_multiple_of(page_size as usize) {
            return Err(Error::InvalidSnapshot(format!(
                "main image of {} bytes is not a whole number of {page_size}-byte pages",
                main.len()
            )));
        }
        let mut pages: Vec<Page> = main
            .chunks_exact(page_size as usize)
            .map(Page::from)
            .collect();
        if main.len() >= 100 {
            // The in-header database size (bytes 28-31) when valid; C dqlite trims to it.
            // It is valid only if "version-valid-for" (92-95) equals the change counter (24-27).
            let n = u32::from_be_bytes([main[28], main[29], main[30], main[31]]) as usize;
            if n > 0 && n < pages.len() && main[24..28] == main[92..96] {
                pages.truncate(n);
            }
        }
        overlay_wal_image(page_size, &mut pages, wal).map_err(Error::InvalidSnapshot)?;
        Ok(Self { page_size, pages })
    }
}

/// The raw files of a database, as SQLite would have them on disk: main file and WAL
/// (header + committed frames). What a DUMP request returns (`name` and `name-wal`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseFiles {
    /// The main database file.
    pub main: Vec<u8>,
    /// The WAL file; empty if the WAL holds no committed frame.
    pub wal: Vec<u8>,
}
