//! When this member last accepted a leader's AppendEntries: see [`LeaderContact`].

use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

/// The last time this member accepted an AppendEntries request of the leader it follows (a
/// request it did not reject for a higher vote), recorded by the server after openraft
/// processed it.
///
/// From that moment the member has promised that leader not to help elect another for a
/// while: the leader may answer reads from a read lease that relies on it (see
/// [`NodeOptions::read_lease`](crate::node::NodeOptions::read_lease)).
/// [`RaftNode::campaign`](crate::node::RaftNode::campaign) therefore starts an election only
/// once the lease a leader could have taken on that contact has run out. Clones share the
/// instant.
#[derive(Debug, Clone, Default)]
pub struct LeaderContact {
    last: Arc<Mutex<Option<Instant>>>,
}

impl LeaderContact {
    /// Records an accepted request now.
    pub fn record(&self) {
        *self.last.lock() = Some(Instant::now());
    }

    /// The last accepted request, if any.
    pub fn last(&self) -> Option<Instant> {
        *self.last.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_last_contact() {
        let c = LeaderContact::default();
        assert_eq!(c.last(), None);
        let shared = c.clone();
        c.record();
        assert!(shared.last().is_some_and(|t| t <= Instant::now()));
    }
}
