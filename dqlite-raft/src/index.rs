//! The in-memory index of the log: one small slot per live entry (its log id and where its
//! frame is on disk), never the entry itself.

use std::collections::VecDeque;

use openraft::{LogId, NodeId};

/// Where a frame lives on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    /// Segment sequence number.
    pub segment: u64,
    /// Byte offset of the frame in the segment.
    pub offset: u64,
    /// Bytes the frame occupies (padding included).
    pub len: u32,
}

/// One live entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot<NID: NodeId> {
    /// The entry's log id.
    pub log_id: LogId<NID>,
    /// Append sequence number: tells a rewritten index apart from the entry that was truncated.
    pub seq: u64,
    /// Position on disk once written; `None` while the I/O thread has not written it.
    pub loc: Option<Loc>,
}

/// The live log: entries `first ..= first + slots.len() - 1`, all after `purged`.
///
/// Invariants: indexes are contiguous; if `purged` is set and nothing was rewritten below it
/// (only the conformance suite does that), `first == purged.index + 1`; if the log
/// is empty and nothing was purged, the next append may start at any index (openraft's
/// conformance suite relies on that; Raft itself always starts at 0).
#[derive(Debug, Clone)]
pub struct LogIndex<NID: NodeId> {
    purged: Option<LogId<NID>>,
    first: u64,
    slots: VecDeque<Slot<NID>>,
    /// After a truncation that emptied the log: the index the next append must have (may be at
    /// or below `purged`, which only the conformance suite does).
    empty_next: Option<u64>,
}

impl<NID: NodeId> Default for LogIndex<NID> {
    fn default() -> Self {
        Self {
            purged: None,
            first: 0,
            slots: VecDeque::new(),
            empty_next: None,
        }
    }
}

impl<NID: NodeId> LogIndex<NID> {
    /// The index the next append must have, if constrained.
    pub fn next_index(&self) -> Option<u64> {
        if self.slots.is_empty() {
            self.empty_next
                .or_else(|| self.purged.as_ref().map(|p| p.index + 1))
        } else {
            Some(self.first + self.slots.len() as u64)
        }
    }

    /// Appends a slot; `Err((expected, got))` if it does not follow the last entry.
    pub fn push(&mut self, slot: Slot<NID>) -> Result<(), (u64, u64)> {
        let got = slot.log_id.index;
        match self.next_index() {
            Some(expected) if expected != got => return Err((expected, got)),
            _ => {}
        }
        if self.slots.is_empty() {
            self.first = got;
        }
        self.slots.push_back(slot);
        Ok(())
    }

    /// Deletes every entry with index `>= index`.
    pub fn truncate(&mut self, index: u64) {
        let keep = index.saturating_sub(self.first) as usize;
        self.slots.truncate(keep);
        if self.slots.is_empty() && self.next_index().is_some_and(|n| index < n) {
            self.empty_next = Some(index);
        }
    }

    /// Deletes every entry up to and including `log_id`, which becomes the purged id.
    pub fn purge(&mut self, log_id: LogId<NID>) {
        while self
            .slots
            .front()
            .is_some_and(|s| s.log_id.index <= log_id.index)
        {
            self.slots.pop_front();
        }
        if self.purged.as_ref().is_none_or(|p| p.index < log_id.index) {
            self.purged = Some(log_id);
        }
        let after_purged = self.purged.as_ref().map_or(0, |p| p.index + 1);
        self.first = self.slots.front().map_or(after_purged, |s| s.log_id.index);
        self.empty_next = None;
    }

    /// The slot of `index`, if live.
    pub fn get(&self, index: u64) -> Option<&Slot<NID>> {
        let i = index.checked_sub(self.first)?;
        self.slots.get(usize::try_from(i).ok()?)
    }

    /// The slot of `index`, mutable.
    pub fn get_mut(&mut self, index: u64) -> Option<&mut Slot<NID>> {
        let i = index.checked_sub(self.first)?;
        self.slots.get_mut(usize::try_from(i).ok()?)
    }

    /// The last log id: of the last live entry, else the purged one.
    pub fn last_log_id(&self) -> Option<LogId<NID>> {
        self.slots
            .back()
            .map(|s| s.log_id.clone())
            .or_else(|| self.purged.clone())
    }

    /// The last purged log id.
    pub fn purged(&self) -> Option<LogId<NID>> {
        self.purged.clone()
    }

    /// Index of the first live entry (meaningful only if not empty).
    pub fn first_index(&self) -> u64 {
        self.first
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// No live entries.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;

    fn lid(term: u64, index: u64) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(term, 0), index)
    }
    fn slot(term: u64, index: u64) -> Slot<u64> {
        Slot {
            log_id: lid(term, index),
            seq: index,
            loc: None,
        }
    }

    #[test]
    fn push_truncate_purge() {
        let mut ix = LogIndex::<u64>::default();
        assert_eq!(ix.next_index(), None);
        ix.push(slot(1, 5)).unwrap();
        ix.push(slot(1, 6)).unwrap();
        assert_eq!(ix.push(slot(1, 8)), Err((7, 8)));
        ix.push(slot(1, 7)).unwrap();
        ix.truncate(6);
        assert_eq!(ix.last_log_id(), Some(lid(1, 5)));
        ix.push(slot(2, 6)).unwrap();
        ix.purge(lid(1, 5));
        assert_eq!(ix.len(), 1);
        assert_eq!(ix.get(6).unwrap().log_id, lid(2, 6));
        assert!(ix.get(5).is_none());
        ix.purge(lid(3, 10));
        assert!(ix.is_empty());
        assert_eq!(ix.last_log_id(), Some(lid(3, 10)));
        assert_eq!(ix.next_index(), Some(11));
        ix.purge(lid(1, 2));
        assert_eq!(ix.purged(), Some(lid(3, 10)));
    }
}
