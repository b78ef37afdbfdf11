//! The content of a database as a node holds it, for comparing nodes: the main file with
//! the WAL's committed frames applied.
//!
//! Nodes checkpoint on their own schedule (a checkpoint waits until nobody reads), so two
//! nodes at the same applied index can split the same pages differently between the main
//! file and the WAL, and their WAL headers count different checkpoints. The image after
//! replaying the WAL is what must be identical.
//!
//! WAL format (sqlite.org/fileformat2.html): a 32-byte header (page size at 8, salts at 16
//! and 20, big-endian), then frames of a 24-byte header (page number at 0, database size in
//! pages after a commit at 4, else 0; salts at 8 and 12) and one page. Frames count until
//! the first whose salts differ from the header's; only those up to the last commit apply.

/// The database image: `main` with the committed frames of `wal` applied.
pub fn image(main: &[u8], wal: &[u8]) -> Result<Vec<u8>, String> {
    let mut db = main.to_vec();
    if wal.len() < 32 {
        return Ok(db);
    }
    let be32 = |b: &[u8], at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let page_size = be32(wal, 8) as usize;
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(format!("WAL header: page size {page_size}"));
    }
    let salts = (be32(wal, 16), be32(wal, 20));
    let frame_len = 24 + page_size;
    // Pages of the frames read since the last commit, applied when a commit frame comes.
    let mut pending: Vec<(usize, &[u8])> = Vec::new();
    let mut at = 32;
    while at + frame_len <= wal.len() {
        let page_no = be32(wal, at) as usize;
        let commit_size = be32(wal, at + 4) as usize;
        if (be32(wal, at + 8), be32(wal, at + 12)) != salts || page_no == 0 {
            break;
        }
        pending.push((page_no, &wal[at + 24..at + frame_len]));
        if commit_size > 0 {
            for (p, data) in pending.drain(..) {
                let start = (p - 1) * page_size;
                if db.len() < start + page_size {
                    db.resize(start + page_size, 0);
                }
                db[start..start + page_size].copy_from_slice(data);
            }
            db.resize(commit_size * page_size, 0);
        }
        at += frame_len;
    }
    Ok(db)
}

/// The image of a DUMP (files named `NAME` and `NAME-wal`).
pub fn image_of_dump(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>, String> {
    let main = files
        .iter()
        .find(|(n, _)| !n.ends_with("-wal"))
        .map(|(_, d)| d.as_slice())
        .unwrap_or(&[]);
    let wal = files
        .iter()
        .find(|(n, _)| n.ends_with("-wal"))
        .map(|(_, d)| d.as_slice())
        .unwrap_or(&[]);
    image(main, wal)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PS: usize = 512;

    fn wal(salts: (u32, u32), frames: &[(u32, u32, u8, (u32, u32))]) -> Vec<u8> {
        let mut w = vec![0u8; 32];
        w[0..4].copy_from_slice(&0x377f0682u32.to_be_bytes());
        w[8..12].copy_from_slice(&(PS as u32).to_be_bytes());
        w[12..16].copy_from_slice(&7u32.to_be_bytes()); // checkpoint sequence: node-local
        w[16..20].copy_from_slice(&salts.0.to_be_bytes());
        w[20..24].copy_from_slice(&salts.1.to_be_bytes());
        for &(page, commit, fill, s) in frames {
            let mut h = [0u8; 24];
            h[0..4].copy_from_slice(&page.to_be_bytes());
            h[4..8].copy_from_slice(&commit.to_be_bytes());
            h[8..12].copy_from_slice(&s.0.to_be_bytes());
            h[12..16].copy_from_slice(&s.1.to_be_bytes());
            w.extend_from_slice(&h);
            w.extend(std::iter::repeat_n(fill, PS));
        }
        w
    }

    #[test]
    fn same_content_split_differently_gives_the_same_image() {
        // Node A checkpointed page 2 into its main file; node B still has it in the WAL.
        let s = (1, 2);
        let main_a = [vec![1u8; PS], vec![9u8; PS]].concat();
        let wal_a = wal(s, &[]);
        let main_b = [vec![1u8; PS], vec![0u8; PS]].concat();
        let wal_b = wal((5, 6), &[(2, 2, 9, (5, 6))]);
        assert_eq!(
            image(&main_a, &wal_a).unwrap(),
            image(&main_b, &wal_b).unwrap()
        );
    }

    #[test]
    fn uncommitted_and_stale_frames_are_ignored() {
        let s = (1, 2);
        let main = vec![1u8; PS];
        // A committed frame, an uncommitted one, then one with old salts.
        let w = wal(s, &[(1, 1, 4, s), (1, 0, 5, s)]);
        assert_eq!(image(&main, &w).unwrap(), vec![4u8; PS]);
        let w = wal(s, &[(1, 1, 4, s), (1, 1, 6, (8, 8))]);
        assert_eq!(image(&main, &w).unwrap(), vec![4u8; PS]);
        // A commit that shrinks the database.
        let w = wal(s, &[(2, 2, 3, s), (1, 1, 2, s)]);
        assert_eq!(
            image(&[vec![1u8; PS], vec![1u8; PS]].concat(), &w).unwrap(),
            vec![2u8; PS]
        );
    }

    #[test]
    fn different_content_differs() {
        let s = (1, 2);
        let main = vec![1u8; PS];
        assert_ne!(
            image(&main, &wal(s, &[(1, 1, 4, s)])).unwrap(),
            image(&main, &wal(s, &[(1, 1, 5, s)])).unwrap()
        );
    }
}
