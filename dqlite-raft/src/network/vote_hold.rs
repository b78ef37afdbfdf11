//! A shared "answer no vote before" instant: see [`VoteHold`].

use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

/// Until when this node neither sends Vote requests nor answers them (the server holds them).
///
/// With read leases on, [`RaftNode`](crate::node::RaftNode) sets it twice: at start, for the
/// longest election timeout (a member that restarted forgot which leader it last heard from,
/// and must not help elect another while that leader's lease may run), and on the leader,
/// to the end of every read lease it takes (so that it cannot help elect a successor while it
/// still answers reads from the lease). Clones share the instant. The default holds nothing.
#[derive(Debug, Clone, Default)]
pub struct VoteHold {
    until: Arc<Mutex<Option<Instant>>>,
}

impl VoteHold {
    /// A hold until `until`.
    pub fn until(until: Instant) -> Self {
        Self {
            until: Arc::new(Mutex::new(Some(until))),
        }
    }

    /// Holds votes until `to` at least (a later instant already set stays).
    pub fn extend(&self, to: Instant) {
        let mut u = self.until.lock();
        if u.is_none_or(|t| t < to) {
            *u = Some(to);
        }
    }

    /// The end of the hold, if it is still running.
    pub fn held_until(&self) -> Option<Instant> {
        let u = *self.until.lock();
        u.filter(|t| Instant::now() < *t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn extends_only_forward_and_clones_share_it() {
        let now = Instant::now();
        let h = VoteHold::default();
        assert_eq!(h.held_until(), None);
        let shared = h.clone();
        h.extend(now + Duration::from_secs(60));
        h.extend(now + Duration::from_secs(1));
        assert_eq!(shared.held_until(), Some(now + Duration::from_secs(60)));
        let past = VoteHold::until(now);
        assert_eq!(past.held_until(), None);
    }
}
