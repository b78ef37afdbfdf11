//! FSM commands: what one Raft entry of a dqlite node carries.
//!
//! Encoding (little-endian), version 1:
//!
//! ```text
//! u8  version (1)
//! u8  kind (1 Open, 2 Frames without base, 3 Checkpoint, 4 Metadata, 5 Frames)
//! ... kind-specific body (see `Command::encode`)
//! u32 CRC32C of every byte before it
//! ```
//!
//! Texts are `u32 length + UTF-8 bytes`. Frames (kind 5) carry the database name, `u64 base`
//! (what the frames were computed on, see [`Command::Frames`]), then `u32 page_size,
//! u32 db_size, u32 n, n × u32 page number, n × page_size bytes`; kind 2 is the same without
//! the base (entries written before it existed: applied unchecked). The checksum makes a
//! flipped bit in a log entry or snapshot an error that names the command, never silently
//! different data.

use std::fmt;
use std::ops::{Deref, DerefMut};

use dqlite_vfs::Frames;
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Current encoding version.
pub const COMMAND_VERSION: u8 = 1;

const KIND_OPEN: u8 = 1;
const KIND_FRAMES: u8 = 2;
const KIND_CHECKPOINT: u8 = 3;
const KIND_METADATA: u8 = 4;
const KIND_FRAMES_ON_BASE: u8 = 5;

/// A replicated command, applied in log order by every node's FSM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A database was opened (created empty if new).
    Open {
        /// Database name.
        db: String,
    },
    /// The WAL frames of one committed write transaction.
    Frames {
        /// Database name.
        db: String,
        /// What the frames were computed on: the log index of the last Frames entry applied
        /// to the database before (0: none). An entry whose base is not the database's last
        /// applied Frames entry when it is applied is skipped on every node, and the commit
        /// it carries fails. `None` only for entries of an older version (applied unchecked).
        base: Option<u64>,
        /// The frames (page size, database size after commit, page numbers and images).
        frames: Frames,
    },
    /// Fold the WAL into the main file.
    Checkpoint {
        /// Database name.
        db: String,
    },
    /// Replicated per-node metadata (weight and failure domain).
    Metadata {
        /// Node id the metadata belongs to.
        node_id: u64,
        /// Failure domain.
        failure_domain: u64,
        /// Weight.
        weight: u64,
    },
}

/// The bytes of one Raft entry: an encoded [`Command`].
///
/// Serialized as one byte string (serde `bytes`), not as a sequence of `u8`. Both give the
/// same postcard bytes (a varint length, then the bytes), so logs written either way read
/// back the same, but a byte string is one copy where a sequence is one serde call per byte:
/// a 250 KB AppendEntries took ~120 ms to encode and ~80 ms to decode as a sequence in a
/// debug build, longer than openraft's per-RPC timeout (the heartbeat interval), and a new
/// member then never received an answer in time to make progress.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EntryData(pub Vec<u8>);

impl EntryData {
    /// The bytes.
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

impl fmt::Debug for EntryData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntryData({} bytes)", self.0.len())
    }
}

impl Deref for EntryData {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl DerefMut for EntryData {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl From<Vec<u8>> for EntryData {
    fn from(v: Vec<u8>) -> Self {
        EntryData(v)
    }
}

impl Serialize for EntryData {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for EntryData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = EntryData;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<EntryData, E> {
                Ok(EntryData(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<EntryData, E> {
                Ok(EntryData(v))
            }
            // Self-describing formats (JSON) write bytes as a sequence of numbers.
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<EntryData, A::Error> {
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(b) = seq.next_element::<u8>()? {
                    v.push(b);
                }
                Ok(EntryData(v))
            }
        }
        d.deserialize_byte_buf(BytesVisitor)
    }
}

/// Why a command could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Fewer bytes than a field needs.
    #[error("command truncated: field `{field}` at offset {offset} needs {need} bytes")]
    Truncated {
        /// Field being read.
        field: &'static str,
        /// Byte offset of the field.
        offset: usize,
        /// Bytes needed.
        need: usize,
    },
    /// The trailing checksum does not match.
    #[error("command checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// Checksum stored in the command.
        stored: u32,
        /// Checksum of the bytes.
        computed: u32,
    },
    /// Unknown version byte.
    #[error("unsupported command version {0}")]
    Version(u8),
    /// Unknown kind byte.
    #[error("unknown command kind {0}")]
    Kind(u8),
    /// A text field is not UTF-8.
    #[error("command field `{0}` is not UTF-8")]
    Utf8(&'static str),
    /// Frames that violate the VFS invariants.
    #[error("invalid frames in command: {0}")]
    Frames(String),
    /// Bytes left over after the last field.
    #[error("{0} trailing bytes after the command")]
    Trailing(usize),
}

impl Command {
    /// The database the command is about, if any.
    pub fn database(&self) -> Option<&str> {
        match self {
            Command::Open { db } | Command::Frames { db, .. } | Command::Checkpoint { db } => {
                Some(db)
            }
            Command::Metadata { .. } => None,
        }
    }

    /// Encodes the command (version, kind, body, CRC32C).
    pub fn encode(&self) -> EntryData {
        let mut out = Vec::with_capacity(self.encoded_len_hint());
        out.push(COMMAND_VERSION);
        match self {
            Command::Open { db } => {
                out.push(KIND_OPEN);
                put_text(&mut out, db);
            }
            Command::Frames { db, base, frames } => {
                match base {
                    Some(base) => {
                        out.push(KIND_FRAMES_ON_BASE);
                        put_text(&mut out, db);
                        out.extend_from_slice(&base.to_le_bytes());
                    }
                    None => {
                        out.push(KIND_FRAMES);
                        put_text(&mut out, db);
                    }
                }
                out.extend_from_slice(&frames.page_size().to_le_bytes());
                out.extend_from_slice(&frames.db_size().to_le_bytes());
                out.extend_from_slice(&(frames.len() as u32).to_le_bytes());
                for n in frames.page_numbers() {
                    out.extend_from_slice(&n.to_le_bytes());
                }
                for (_, page) in frames.iter() {
                    out.extend_from_slice(page);
                }
            }
            Command::Checkpoint { db } => {
                out.push(KIND_CHECKPOINT);
                put_text(&mut out, db);
            }
            Command::Metadata {
                node_id,
                failure_domain,
                weight,
            } => {
                out.push(KIND_METADATA);
                for w in [node_id, failure_domain, weight] {
                    out.extend_from_slice(&w.to_le_bytes());
                }
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        EntryData(out)
    }

    fn encoded_len_hint(&self) -> usize {
        match self {
            Command::Frames { db, frames, .. } => {
                40 + db.len() + frames.len() * (4 + frames.page_size() as usize)
            }
            _ => 64,
        }
    }

    /// Decodes a command, checking version, checksum and every length.
    pub fn decode(bytes: &[u8]) -> Result<Command, CommandError> {
        if bytes.len() < 6 {
            return Err(CommandError::Truncated {
                field: "header",
                offset: 0,
                need: 6,
            });
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        let computed = crc32c::crc32c(body);
        if stored != computed {
            return Err(CommandError::Checksum { stored, computed });
        }
        if body[0] != COMMAND_VERSION {
            return Err(CommandError::Version(body[0]));
        }
        let mut r = Reader { buf: body, pos: 2 };
        let cmd = match body[1] {
            KIND_OPEN => Command::Open { db: r.text("db")? },
            KIND_CHECKPOINT => Command::Checkpoint { db: r.text("db")? },
            KIND_METADATA => Command::Metadata {
                node_id: r.u64("node_id")?,
                failure_domain: r.u64("failure_domain")?,
                weight: r.u64("weight")?,
            },
            kind @ (KIND_FRAMES | KIND_FRAMES_ON_BASE) => {
                let db = r.text("db")?;
                let base = if kind == KIND_FRAMES_ON_BASE {
                    Some(r.u64("base")?)
                } else {
                    None
                };
                let page_size = r.u32("page_size")?;
                let db_size = r.u32("db_size")?;
                let n = r.u32("n_pages")? as usize;
                let numbers = r.take("page_numbers", n.saturating_mul(4))?;
                let numbers: Vec<u32> = numbers
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                let data = r.take("pages", n.saturating_mul(page_size as usize))?;
                let frames = Frames::from_contiguous(page_size, db_size, &numbers, data)
                    .map_err(|e| CommandError::Frames(e.to_string()))?;
                Command::Frames { db, base, frames }
            }
            k => return Err(CommandError::Kind(k)),
        };
        if r.pos != body.len() {
            return Err(CommandError::Trailing(body.len() - r.pos));
        }
        Ok(cmd)
    }
}

fn put_text(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], CommandError> {
        if self.buf.len() - self.pos < n {
            return Err(CommandError::Truncated {
                field,
                offset: self.pos,
                need: n,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, CommandError> {
        let b = self.take(field, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, CommandError> {
        let b = self.take(field, 8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn text(&mut self, field: &'static str) -> Result<String, CommandError> {
        let n = self.u32(field)? as usize;
        let b = self.take(field, n)?;
        String::from_utf8(b.to_vec()).map_err(|_| CommandError::Utf8(field))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn frames_strategy() -> impl Strategy<Value = Frames> {
        (prop::sample::select(vec![512u32, 1024, 4096]), 1u32..50)
            .prop_flat_map(|(ps, n)| {
                (
                    Just(ps),
                    1u32..1000,
                    prop::collection::vec((1u32..200, any::<u8>()), n as usize),
                )
            })
            .prop_map(|(ps, db_size, pages)| {
                Frames::new(
                    ps,
                    db_size,
                    pages
                        .into_iter()
                        .map(|(no, fill)| (no, vec![fill; ps as usize])),
                )
                .unwrap()
            })
    }

    fn command_strategy() -> impl Strategy<Value = Command> {
        prop_oneof![
            "[a-z0-9_.]{0,20}".prop_map(|db| Command::Open { db }),
            "[a-z0-9_.]{0,20}".prop_map(|db| Command::Checkpoint { db }),
            (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(a, b, c)| Command::Metadata {
                node_id: a,
                failure_domain: b,
                weight: c
            }),
            (
                "\\PC{0,10}",
                prop::option::of(any::<u64>()),
                frames_strategy()
            )
                .prop_map(|(db, base, frames)| Command::Frames { db, base, frames }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)))]

        #[test]
        fn round_trip(cmd in command_strategy()) {
            let bytes = cmd.encode();
            prop_assert_eq!(Command::decode(&bytes).unwrap(), cmd);
        }

        #[test]
        fn any_flipped_bit_is_detected(cmd in command_strategy(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut bytes = cmd.encode();
            let i = pos.index(bytes.len());
            bytes[i] ^= 1 << bit;
            prop_assert!(Command::decode(&bytes).is_err());
        }

        #[test]
        fn truncation_is_an_error(cmd in command_strategy(), cut in any::<prop::sample::Index>()) {
            let bytes = cmd.encode();
            let n = cut.index(bytes.len());
            prop_assert!(Command::decode(&bytes[..n]).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = Command::decode(&bytes);
        }
    }

    #[test]
    fn forged_length_with_valid_crc_is_an_error() {
        // A huge page count with a correct checksum must not allocate or panic.
        let mut body = vec![COMMAND_VERSION, KIND_FRAMES];
        put_text(&mut body, "db");
        body.extend_from_slice(&4096u32.to_le_bytes());
        body.extend_from_slice(&1u32.to_le_bytes());
        body.extend_from_slice(&u32::MAX.to_le_bytes());
        let crc = crc32c::crc32c(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            Command::decode(&body),
            Err(CommandError::Truncated {
                field: "page_numbers",
                ..
            })
        ));
    }

    #[test]
    fn entry_data_serializes_like_a_vec_of_bytes() {
        use dqlite_raft::network::codec;
        let bytes: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let as_vec = codec::encode(codec::KIND_REQUEST, &bytes).unwrap();
        let as_data = codec::encode(codec::KIND_REQUEST, &EntryData(bytes.clone())).unwrap();
        assert_eq!(
            as_vec, as_data,
            "same postcard bytes: old logs stay readable"
        );
        let h: [u8; codec::HEADER_LEN] = as_data[..codec::HEADER_LEN].try_into().unwrap();
        let (_, crc) = codec::parse_header(&h, codec::KIND_REQUEST, 1 << 20).unwrap();
        let back: EntryData = codec::decode_body(&as_data[codec::HEADER_LEN..], crc).unwrap();
        assert_eq!(back.into_vec(), bytes);
        let json = serde_json::to_string(&EntryData(vec![1, 2, 3])).unwrap();
        assert_eq!(
            serde_json::from_str::<EntryData>(&json).unwrap().0,
            vec![1, 2, 3]
        );
    }

    #[test]
    fn unknown_version_is_refused() {
        let mut bytes = Command::Open { db: "x".into() }.encode().into_vec();
        bytes[0] = 9;
        let n = bytes.len() - 4;
        let crc = crc32c::crc32c(&bytes[..n]);
        bytes[n..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(Command::decode(&bytes), Err(CommandError::Version(9)));
    }
}
