//! The log store: openraft's [`RaftLogStorage`] over segment files with group commit.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::fs;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{
    AnyError, Entry, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftTypeConfig, StorageError,
    StorageIOError, Vote,
};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;

use crate::LogTypes;
use crate::atomic_file;
use crate::error::{FrameError, StoreError};
use crate::frame::{Decoded, decode_frame, entry_payload, split_entry_payload};
use crate::index::{Loc, LogIndex, Slot};
use crate::io_thread::{Cmd, Done, Encoded, Writer};
use crate::recovery::{RecoveryReport, recover};

const VOTE_MAGIC: &[u8; 8] = b"DQRVOTE\0";

/// Settings of a [`LogStore`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LogConfig {
    /// Size of each preallocated segment file. Default 8 MiB.
    pub segment_size: u64,
    /// Bytes of decoded entries kept in memory for readers (replication, apply). Entries not yet
    /// written are always cached regardless. Default 16 MiB.
    pub cache_bytes: usize,
    /// Fault injection for tests: the n-th `fdatasync` (1-based) of this store fails as if the
    /// disk had reported an error. `None` (the default) in production.
    pub fail_sync: Option<u64>,
    /// Told how long each `fdatasync` of the log took (for metrics). Default none.
    pub on_fsync: Option<FsyncObserver>,
}

/// A callback told the duration of each `fdatasync` of the log; it runs on the log's I/O
/// thread, so it must be quick (e.g. record into a histogram).
#[derive(Clone)]
pub struct FsyncObserver(pub Arc<dyn Fn(std::time::Duration) + Send + Sync>);

impl std::fmt::Debug for FsyncObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FsyncObserver")
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_size: 8 << 20,
            cache_bytes: 16 << 20,
            fail_sync: None,
            on_fsync: None,
        }
    }
}

/// Builders: `LogConfig::default().with_...(...)`, one per field (the struct is
/// `#[non_exhaustive]`, so that fields can be added without breaking callers).
impl LogConfig {
    /// Sets [`LogConfig::segment_size`].
    pub fn with_segment_size(mut self, segment_size: u64) -> Self {
        self.segment_size = segment_size;
        self
    }

    /// Sets [`LogConfig::cache_bytes`].
    pub fn with_cache_bytes(mut self, cache_bytes: usize) -> Self {
        self.cache_bytes = cache_bytes;
        self
    }

    /// Sets [`LogConfig::fail_sync`].
    pub fn with_fail_sync(mut self, fail_sync: Option<u64>) -> Self {
        self.fail_sync = fail_sync;
        self
    }
}

/// The most bytes of entries one AppendEntries of openraft's replication carries (it carries at
/// least one entry, whatever its size); see [`LogReader::read_range_async`].
pub const REPLICATION_BUDGET: usize = 2 << 20;

/// Where [`LogReader::locate`] found an entry.
enum Src<C: RaftTypeConfig> {
    /// Decoded, in the cache.
    Mem(Entry<C>),
    /// In a segment file.
    Disk(Loc, Arc<fs::File>),
}

struct Cached<C: RaftTypeConfig> {
    seq: u64,
    size: usize,
    entry: Entry<C>,
}

pub(crate) struct State<C: RaftTypeConfig> {
    index: LogIndex<C::NodeId>,
    cache: BTreeMap<u64, Cached<C>>,
    cache_bytes: usize,
    cache_limit: usize,
    next_seq: u64,
    vote: Option<Vote<C::NodeId>>,
    committed: Option<LogId<C::NodeId>>,
    /// Where to announce entries this node appended as the leader (see [`crate::network::push`]).
    push: Option<PushTap<C::NodeId>>,
}

/// Announces the leader's own appends to the eager pusher, at append time (before `fsync`).
pub(crate) struct PushTap<NID: openraft::NodeId> {
    /// This node's id: only entries of a vote this node holds as leader are announced.
    pub me: NID,
    /// The pusher's queue.
    pub tx: tokio::sync::mpsc::UnboundedSender<PushHint<NID>>,
}

/// Entries `first..=last` were appended by the leader holding `vote` (committed, this node's).
#[derive(Debug, Clone)]
pub(crate) struct PushHint<NID: openraft::NodeId> {
    /// The leader's vote when the entries were appended.
    pub vote: Vote<NID>,
    /// First appended index.
    pub first: u64,
    /// Last appended index.
    pub last: u64,
}

/// State shared by the store, its readers and the I/O thread.
pub(crate) struct Shared<C: RaftTypeConfig> {
    state: Mutex<State<C>>,
    pub files: RwLock<HashMap<u64, Arc<fs::File>>>,
    pub poisoned: AtomicBool,
    dir: PathBuf,
}

impl<C: RaftTypeConfig> Shared<C> {
    /// Records where the I/O thread wrote entries, then trims the cache.
    pub fn publish_locs(&self, locs: &[(u64, u64, Loc)]) {
        let mut st = self.state.lock();
        for (index, seq, loc) in locs {
            if let Some(slot) = st.index.get_mut(*index)
                && slot.seq == *seq
            {
                slot.loc = Some(*loc);
            }
        }
        st.evict();
    }
}

impl<C: RaftTypeConfig> State<C> {
    /// Drops the oldest written entries from the cache while it holds more than its limit,
    /// but never the newest entry: an entry bigger than the whole cache (a large transaction)
    /// is what the followers are about to fetch, and reading it back from disk for each
    /// attempt costs far more than keeping it until the next append.
    fn evict(&mut self) {
        while self.cache_bytes > self.cache_limit && self.cache.len() > 1 {
            let Some((&idx, c)) = self.cache.first_key_value() else {
                break;
            };
            let written = match self.index.get(idx) {
                Some(slot) if slot.seq == c.seq => slot.loc.is_some(),
                _ => true, // gone from the log: drop it
            };
            if !written {
                break;
            }
            if let Some(c) = self.cache.remove(&idx) {
                self.cache_bytes -= c.size;
            }
        }
    }

    fn drop_cache_from(&mut self, index: u64) {
        let tail = self.cache.split_off(&index);
        for c in tail.values() {
            self.cache_bytes -= c.size;
        }
    }

    fn drop_cache_upto(&mut self, index: u64) {
        let keep = self.cache.split_off(&(index + 1));
        for c in self.cache.values() {
            self.cache_bytes -= c.size;
        }
        self.cache = keep;
    }
}

/// Waits for a log store's I/O thread to exit (after every [`LogStore`] handle is dropped).
#[derive(Clone)]
pub struct CloseWaiter(Arc<Mutex<mpsc::Receiver<()>>>);

impl CloseWaiter {
    /// Blocks until the I/O thread has written everything queued and exited.
    pub fn wait(&self) {
        let _ = self.0.lock().recv();
    }
}

/// A durable Raft log in segment files.
///
/// Invariants: every entry in the index is either in the cache or has a disk location (or both);
/// an append is acknowledged only after the `fdatasync` covering it returned success; once a
/// write or sync fails, every later write fails with [`StoreError::Poisoned`].
pub struct LogStore<C: RaftTypeConfig> {
    shared: Arc<Shared<C>>,
    tx: mpsc::Sender<Cmd>,
    closed: CloseWaiter,
}

/// A read handle on a [`LogStore`] (what openraft's replication tasks use).
pub struct LogReader<C: RaftTypeConfig> {
    shared: Arc<Shared<C>>,
}

impl<C: RaftTypeConfig> Clone for LogReader<C> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(v).map_err(|e| StoreError::Codec(e.to_string()))
}

/// Converts a store error into openraft's storage error.
pub(crate) fn sto_err<NID: openraft::NodeId>(
    subject: ErrorSubject<NID>,
    verb: ErrorVerb,
    e: StoreError,
) -> StorageError<NID> {
    StorageError::IO {
        source: StorageIOError::new(subject, verb, AnyError::new(&e)),
    }
}

impl<C> LogStore<C>
where
    C: LogTypes,
{
    /// Opens (or creates) the log in `dir`, recovering it; see [`crate::recovery`] for the rules.
    pub fn open(dir: &Path, config: LogConfig) -> Result<(Self, RecoveryReport), StoreError> {
        fs::create_dir_all(dir).map_err(|e| StoreError::io("create dir", dir, e))?;
        let rec = recover::<C::NodeId>(dir)?;
        let vote = match atomic_file::read(&dir.join("vote"), VOTE_MAGIC)? {
            Some(b) => Some(postcard::from_bytes(&b).map_err(|e| StoreError::Corrupt {
                path: dir.join("vote"),
                offset: 16,
                reason: FrameError::Payload(e.to_string()),
            })?),
            None => None,
        };
        let mut files = HashMap::new();
        for s in &rec.segments {
            let f = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&s.path)
                .map_err(|e| StoreError::io("open", &s.path, e))?;
            files.insert(s.seq, Arc::new(f));
        }
        let committed = match (rec.committed, rec.index.purged()) {
            (Some(c), Some(p)) => Some(c.max(p)),
            (c, p) => c.or(p),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                index: rec.index,
                cache: BTreeMap::new(),
                cache_bytes: 0,
                cache_limit: config.cache_bytes,
                next_seq: 1,
                vote,
                committed,
                push: None,
            }),
            files: RwLock::new(files),
            poisoned: AtomicBool::new(false),
            dir: dir.to_path_buf(),
        });
        let writer = Writer::new(
            shared.clone(),
            dir.to_path_buf(),
            config.segment_size.max(4096),
            rec.segments,
            rec.max_batch,
            config.fail_sync,
            config.on_fsync,
        )?;
        let (tx, rx) = mpsc::channel();
        let (closed_tx, closed_rx) = mpsc::channel::<()>();
        thread::Builder::new()
            .name("raft-log-io".into())
            .spawn(move || {
                writer.run(rx);
                drop(closed_tx);
            })
            .map_err(|e| StoreError::io("spawn I/O thread", dir, e))?;
        Ok((
            Self {
                shared,
                tx,
                closed: CloseWaiter(Arc::new(Mutex::new(closed_rx))),
            },
            rec.report,
        ))
    }

    /// A handle that waits until this store's I/O thread has exited.
    pub fn close_waiter(&self) -> CloseWaiter {
        self.closed.clone()
    }

    /// The directory of the log.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Whether a failed write has poisoned the store.
    pub fn is_poisoned(&self) -> bool {
        self.shared.poisoned.load(Ordering::Acquire)
    }

    /// A read handle.
    pub fn reader(&self) -> LogReader<C> {
        LogReader {
            shared: self.shared.clone(),
        }
    }

    /// Queues entries for writing; `done` runs on the I/O thread once they are durable (or the
    /// write failed). This is what openraft's `append` uses; it is public for tools and benches
    /// that drive the log without a Raft instance.
    pub fn append_with(
        &mut self,
        entries: impl IntoIterator<Item = Entry<C>>,
        done: impl FnOnce(Result<(), io::Error>) + Send + 'static,
    ) -> Result<(), StoreError> {
        if self.is_poisoned() {
            return Err(StoreError::Poisoned);
        }
        let mut st = self.shared.state.lock();
        let mut encoded = Vec::new();
        // Only entries created by this node as the current leader may be shipped before they are
        // durable here: a vote this node holds, committed (granted by a quorum), whose leader
        // id every entry carries.
        let leader_vote = match (&st.push, &st.vote) {
            (Some(tap), Some(v))
                if v.is_committed() && v.leader_id().voted_for().as_ref() == Some(&tap.me) =>
            {
                Some(v.clone())
            }
            _ => None,
        };
        let mut all_leader = leader_vote.is_some();
        for entry in entries {
            if let Some(v) = &leader_vote {
                all_leader &= entry.log_id.leader_id == *v.leader_id();
            }
            let lid = encode(&entry.log_id)?;
            let body = encode(&entry)?;
            let mut payload = Vec::with_capacity(lid.len() + body.len() + 4);
            entry_payload(&mut payload, &lid, &body);
            let index = entry.log_id.index;
            if st.index.next_index().is_some_and(|next| index < next) {
                // Overwriting: openraft truncates before it rewrites, but the conformance
                // suite also rewrites directly. Make it an explicit, replayable truncation.
                st.index.truncate(index);
                st.drop_cache_from(index);
                if !encoded.is_empty() {
                    self.tx
                        .send(Cmd::Append {
                            entries: std::mem::take(&mut encoded),
                            done: Box::new(|_| {}),
                        })
                        .map_err(|_| StoreError::Closed)?;
                }
                self.tx
                    .send(Cmd::Truncate {
                        payload: encode(&index)?,
                    })
                    .map_err(|_| StoreError::Closed)?;
            }
            let seq = st.next_seq;
            st.next_seq += 1;
            st.index
                .push(Slot {
                    log_id: entry.log_id.clone(),
                    seq,
                    loc: None,
                })
                .map_err(|(expected, got)| StoreError::NonContiguous { expected, got })?;
            let size = payload.len() + 64;
            st.cache_bytes += size;
            st.cache.insert(index, Cached { seq, size, entry });
            encoded.push(Encoded {
                index,
                seq,
                payload,
            });
        }
        let hint = match (leader_vote, encoded.first(), encoded.last()) {
            (Some(vote), Some(f), Some(l)) if all_leader => Some(PushHint {
                vote,
                first: f.index,
                last: l.index,
            }),
            _ => None,
        };
        self.tx
            .send(Cmd::Append {
                entries: encoded,
                done: Box::new(done) as Done,
            })
            .map_err(|_| StoreError::Closed)?;
        // After queueing the write, so the pusher never sees entries the I/O thread has not
        // been asked to persist (it only ever sends what the leader would send anyway).
        if let (Some(h), Some(tap)) = (hint, &st.push)
            && tap.tx.send(h).is_err()
        {
            st.push = None;
        }
        Ok(())
    }

    /// Announces this node's own leader appends to `tx` from now on (at append time, before
    /// they are durable), so a pusher can ship them to followers while the local `fsync` runs.
    pub(crate) fn set_push_tap(
        &self,
        me: C::NodeId,
        tx: tokio::sync::mpsc::UnboundedSender<PushHint<C::NodeId>>,
    ) {
        self.shared.state.lock().push = Some(PushTap { me, tx });
    }

    /// Appends and waits until durable.
    pub async fn append_durable(
        &mut self,
        entries: impl IntoIterator<Item = Entry<C>>,
    ) -> Result<(), StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.append_with(entries, move |r| {
            let _ = tx.send(r);
        })?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::io("append", self.dir(), e)),
            Err(_) => Err(StoreError::Closed),
        }
    }

    /// Waits until everything queued so far is durable.
    pub async fn sync(&self) -> Result<(), StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Cmd::Sync {
                done: Box::new(move |r| {
                    let _ = tx.send(r);
                }),
            })
            .map_err(|_| StoreError::Closed)?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::io("sync", self.dir(), e)),
            Err(_) => Err(StoreError::Closed),
        }
    }

    fn do_truncate(&mut self, log_id: &LogId<C::NodeId>) -> Result<(), StoreError> {
        if self.is_poisoned() {
            return Err(StoreError::Poisoned);
        }
        let mut st = self.shared.state.lock();
        st.index.truncate(log_id.index);
        st.drop_cache_from(log_id.index);
        self.tx
            .send(Cmd::Truncate {
                payload: encode(&log_id.index)?,
            })
            .map_err(|_| StoreError::Closed)
    }

    fn do_purge(&mut self, log_id: &LogId<C::NodeId>) -> Result<(), StoreError> {
        if self.is_poisoned() {
            return Err(StoreError::Poisoned);
        }
        let mut st = self.shared.state.lock();
        st.index.purge(log_id.clone());
        st.drop_cache_upto(log_id.index);
        self.tx
            .send(Cmd::Purge {
                index: log_id.index,
                payload: encode(log_id)?,
            })
            .map_err(|_| StoreError::Closed)
    }

    fn do_save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), StoreError> {
        if self.is_poisoned() {
            return Err(StoreError::Poisoned);
        }
        let bytes = encode(vote)?;
        if let Err(e) = atomic_file::write(&self.shared.dir.join("vote"), VOTE_MAGIC, &bytes) {
            self.shared.poisoned.store(true, Ordering::Release);
            return Err(e);
        }
        self.shared.state.lock().vote = Some(vote.clone());
        Ok(())
    }

    /// The current log state.
    pub fn log_state(&self) -> LogState<C> {
        let st = self.shared.state.lock();
        LogState {
            last_purged_log_id: st.index.purged(),
            last_log_id: st.index.last_log_id(),
        }
    }
}

impl<C> LogReader<C>
where
    C: LogTypes,
{
    /// The last committed log id this store was told of (openraft saves it before it applies
    /// entries, on the leader and on followers alike).
    pub fn committed(&self) -> Option<LogId<C::NodeId>> {
        self.shared.state.lock().committed.clone()
    }

    /// Reads the entries of `range` that are in the log (stops at the first missing one).
    pub fn read_range<RB: RangeBounds<u64>>(&self, range: RB) -> Result<Vec<Entry<C>>, StoreError> {
        self.load(self.locate(range, usize::MAX))
    }

    /// Like [`read_range`](Self::read_range), for async callers: stops once the entries add up
    /// to `budget` bytes (but returns at least one), and reads what is not in the cache on
    /// tokio's blocking pool, not on the caller's runtime thread.
    ///
    /// openraft's replication tasks read through this. A multi-MiB entry no longer in the
    /// cache takes long to read, check and decode (hundreds of ms in a debug build); done on
    /// the runtime, two followers' reads at once held both threads of a 2-core machine, so
    /// `RaftCore` sent no heartbeat and the followers elected a new leader. The budget keeps
    /// each AppendEntries of a catching-up follower small enough to finish within openraft's
    /// per-RPC timeout.
    pub async fn read_range_async<RB: RangeBounds<u64>>(
        &self,
        range: RB,
        budget: usize,
    ) -> Result<Vec<Entry<C>>, StoreError> {
        let srcs = self.locate(range, budget);
        if !srcs.iter().any(|s| matches!(s, Src::Disk(..))) {
            return self.load(srcs);
        }
        let me = self.clone();
        match tokio::task::spawn_blocking(move || me.load(srcs)).await {
            Ok(r) => r,
            Err(e) => Err(StoreError::Codec(format!("log read task failed: {e}"))),
        }
    }

    /// Where the entries of `range` are: decoded in the cache, or on disk. Stops at the first
    /// missing entry, and after the entry that brings the total size to `budget` bytes.
    fn locate<RB: RangeBounds<u64>>(&self, range: RB, budget: usize) -> Vec<Src<C>> {
        let mut srcs = Vec::new();
        let st = self.shared.state.lock();
        if st.index.is_empty() {
            return srcs;
        }
        let first = st.index.first_index();
        let last = first + st.index.len() as u64 - 1;
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        }
        .max(first);
        let end = match range.end_bound() {
            Bound::Included(&e) => e,
            Bound::Excluded(&e) => match e.checked_sub(1) {
                Some(e) => e,
                None => return srcs,
            },
            Bound::Unbounded => u64::MAX,
        }
        .min(last);
        if start > end {
            return srcs;
        }
        let files = self.shared.files.read();
        let mut bytes = 0usize;
        for idx in start..=end {
            if bytes >= budget {
                break;
            }
            let Some(slot) = st.index.get(idx) else { break };
            match st.cache.get(&idx) {
                Some(c) if c.seq == slot.seq => {
                    bytes = bytes.saturating_add(c.size);
                    srcs.push(Src::Mem(c.entry.clone()));
                }
                _ => match slot
                    .loc
                    .and_then(|l| files.get(&l.segment).map(|f| (l, f.clone())))
                {
                    Some((l, f)) => {
                        bytes = bytes.saturating_add(l.len as usize);
                        srcs.push(Src::Disk(l, f));
                    }
                    None => break,
                },
            }
        }
        srcs
    }

    /// Reads and decodes what [`locate`](Self::locate) found.
    fn load(&self, srcs: Vec<Src<C>>) -> Result<Vec<Entry<C>>, StoreError> {
        let mut out = Vec::with_capacity(srcs.len());
        for s in srcs {
            match s {
                Src::Mem(e) => out.push(e),
                Src::Disk(loc, file) => out.push(self.read_at(&loc, &file)?),
            }
        }
        Ok(out)
    }

    /// The AppendEntries request the leader holding `hint.vote` would send for
    /// `hint.first..=hint.last`, built from this log: `None` if the entries are gone or no
    /// longer all carry that leader's id (then they are not the leader's to send), or if the
    /// entry before them is unknown.
    pub(crate) fn leader_request(
        &self,
        hint: &PushHint<C::NodeId>,
    ) -> Result<Option<openraft::raft::AppendEntriesRequest<C>>, StoreError> {
        let (prev_log_id, leader_commit) = {
            let st = self.shared.state.lock();
            let prev = match hint.first.checked_sub(1) {
                None => None,
                Some(p) => match st.index.get(p) {
                    Some(slot) => Some(slot.log_id.clone()),
                    None => match st.index.purged() {
                        Some(purged) if purged.index == p => Some(purged),
                        _ => return Ok(None),
                    },
                },
            };
            (prev, st.committed.clone())
        };
        let entries = self.read_range(hint.first..=hint.last)?;
        let complete = entries.len() as u64 == hint.last - hint.first + 1;
        if !complete
            || entries
                .iter()
                .any(|e| e.log_id.leader_id != *hint.vote.leader_id())
        {
            return Ok(None);
        }
        Ok(Some(openraft::raft::AppendEntriesRequest {
            vote: hint.vote.clone(),
            prev_log_id,
            entries,
            leader_commit,
        }))
    }

    fn read_at(&self, loc: &Loc, file: &fs::File) -> Result<Entry<C>, StoreError> {
        let path = crate::segment::segment_path(&self.shared.dir, loc.segment);
        // `vec!` of zeros is a zeroed allocation; growing a buffer with `resize` writes each
        // byte, which is slow for multi-MiB entries in unoptimized builds.
        let mut buf = vec![0u8; loc.len as usize];
        file.read_exact_at(&mut buf, loc.offset)
            .map_err(|e| StoreError::io("read", &path, e))?;
        let corrupt = |reason| StoreError::Corrupt {
            path: path.clone(),
            offset: loc.offset,
            reason,
        };
        let payload = match decode_frame(&buf) {
            Decoded::Frame(f) => f.payload,
            Decoded::End => return Err(corrupt(FrameError::Length(0))),
            Decoded::Invalid(e) => return Err(corrupt(e)),
        };
        let (_, body) = split_entry_payload(payload).map_err(corrupt)?;
        postcard::from_bytes(body).map_err(|e| corrupt(FrameError::Payload(e.to_string())))
    }
}

impl<C> RaftLogReader<C> for LogReader<C>
where
    C: LogTypes,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<C>>, StorageError<C::NodeId>> {
        self.read_range_async(range, usize::MAX)
            .await
            .map_err(|e| sto_err(ErrorSubject::Logs, ErrorVerb::Read, e))
    }

    /// What openraft's replication sends in one AppendEntries: at most
    /// [`REPLICATION_BUDGET`] bytes of entries (at least one entry).
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry<C>>, StorageError<C::NodeId>> {
        self.read_range_async(start..end, REPLICATION_BUDGET)
            .await
            .map_err(|e| sto_err(ErrorSubject::Logs, ErrorVerb::Read, e))
    }
}

impl<C> RaftLogReader<C> for LogStore<C>
where
    C: LogTypes,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<C>>, StorageError<C::NodeId>> {
        self.reader()
            .read_range_async(range, usize::MAX)
            .await
            .map_err(|e| sto_err(ErrorSubject::Logs, ErrorVerb::Read, e))
    }
}

impl<C> RaftLogStorage<C> for LogStore<C>
where
    C: LogTypes,
{
    type LogReader = LogReader<C>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        Ok(self.log_state())
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.reader()
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        self.do_save_vote(vote)
            .map_err(|e| sto_err(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(self.shared.state.lock().vote.clone())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<C::NodeId>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        let Some(c) = committed else { return Ok(()) };
        let payload = encode(&c).map_err(|e| sto_err(ErrorSubject::Store, ErrorVerb::Write, e))?;
        self.shared.state.lock().committed = Some(c);
        // A hint: it rides along with the next fsync (or a timer), never costs one of its own
        // on the append path. Losing it only means re-applying a few entries after restart.
        let _ = self.tx.send(Cmd::Committed { payload });
        Ok(())
    }

    async fn read_committed(
        &mut self,
    ) -> Result<Option<LogId<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(self.shared.state.lock().committed.clone())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = Entry<C>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.append_with(entries, move |r| callback.log_io_completed(r))
            .map_err(|e| sto_err(ErrorSubject::Logs, ErrorVerb::Write, e))
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        self.do_truncate(&log_id)
            .map_err(|e| sto_err(ErrorSubject::Log(log_id.clone()), ErrorVerb::Delete, e))
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        self.do_purge(&log_id)
            .map_err(|e| sto_err(ErrorSubject::Log(log_id.clone()), ErrorVerb::Delete, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestConfig;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(index: u64, len: usize) -> Entry<TestConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(vec![index as u8; len]),
        }
    }

    fn cached(log: &LogStore<TestConfig>) -> Vec<u64> {
        log.shared.state.lock().cache.keys().copied().collect()
    }

    fn open(dir: &Path, cache_bytes: usize) -> LogStore<TestConfig> {
        let config = LogConfig {
            segment_size: 1 << 20,
            cache_bytes,
            ..LogConfig::default()
        };
        LogStore::open(dir, config).unwrap().0
    }

    #[tokio::test]
    async fn an_entry_bigger_than_the_cache_stays_cached_until_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), 4 << 10);
        log.append_durable([entry(1, 100), entry(2, 100)])
            .await
            .unwrap();
        assert_eq!(cached(&log), [1, 2]);
        // Bigger than the whole cache: everything older goes, the big entry stays.
        log.append_durable([entry(3, 64 << 10)]).await.unwrap();
        assert_eq!(cached(&log), [3]);
        // The next append makes it the oldest: it goes, and is read back from disk.
        log.append_durable([entry(4, 100)]).await.unwrap();
        assert_eq!(cached(&log), [4]);
        let back = log
            .reader()
            .read_range_async(3..=3, usize::MAX)
            .await
            .unwrap();
        assert_eq!(back, [entry(3, 64 << 10)]);
    }

    #[tokio::test]
    async fn replication_reads_stop_at_the_byte_budget_but_return_at_least_one_entry() {
        let dir = tempfile::tempdir().unwrap();
        // A small cache, so the reads below come from disk as well as from memory.
        let mut log = open(dir.path(), 8 << 10);
        let entries: Vec<_> = (1..=10).map(|i| entry(i, 3 << 10)).collect();
        log.append_durable(entries.clone()).await.unwrap();
        assert!(cached(&log).len() < 10, "some entries are read from disk");
        let mut reader = log.reader();
        // Each entry counts its payload and a little overhead, so 7 KiB covers three.
        let got = reader.read_range_async(1..=10, 7 << 10).await.unwrap();
        assert_eq!(got, entries[..3]);
        // An entry larger than the budget alone is still returned.
        let got = reader.read_range_async(4..=10, 1).await.unwrap();
        assert_eq!(got, entries[3..4]);
        // openraft's replication goes through the limited read: all 30 KiB fit its budget.
        let got = reader.limited_get_log_entries(1, 11).await.unwrap();
        assert_eq!(got, entries);
        // Unlimited reads return the whole range, from disk and cache alike.
        let got = reader.try_get_log_entries(1..=10).await.unwrap();
        assert_eq!(got, entries);
    }
}
