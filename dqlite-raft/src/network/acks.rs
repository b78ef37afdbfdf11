//! When each follower last acknowledged this node as its leader: see [`FollowerAcks`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// For each peer: the send time of the latest AppendEntries of this node that the peer
/// answered without rejecting its vote (`Success`, `PartialSuccess` or `Conflict`: the peer
/// accepted this node as leader of that term), and since when the peer has failed this
/// node: the send time of the oldest heartbeat left unanswered, or of the oldest request that
/// failed (no connection, an I/O error, a rejected vote), since the last accepted one.
///
/// The network client records all of it, on either lane, including the heartbeats it sends
/// on openraft's behalf while a large AppendEntries is still in transit (see
/// [`client`](super::client), "Two connections per peer"). openraft 0.9.25 never sees those
/// answers, so its own `millis_since_quorum_ack` grows for as long as a large entry is being
/// shipped and flushed, although every follower keeps confirming the leader.
///
/// Two questions are answered from these records:
///
/// - [`FollowerAcks::quorum_age`]: how long ago a quorum last acknowledged this leader,
///   measured from the *send* time as openraft measures it (a peer that answered a request
///   sent at `t` accepted this leader at `t` or later, and from then on refuses to help elect
///   another for an election timeout). Positive evidence of leadership, for serving reads.
///   [`RaftNode::quorum_ack_age`](crate::node::RaftNode::quorum_ack_age) takes the younger of
///   this and openraft's figure.
/// - [`FollowerAcks::quorum_silence`]: how long a quorum has been failing this leader.
///   Evidence of *loss*, for giving up on a commit in flight. Only what a live follower
///   answers at once counts: a heartbeat, or a failure. A request carrying entries may take
///   long for good reasons (the follower writes and flushes them first; the leader's own
///   `fsync` of a large entry holds openraft's core, which sends nothing meanwhile), so a
///   leader that is merely slow shows no silence, while one cut off does: its heartbeats,
///   including those the client adds while entries are in transit, go unanswered.
#[derive(Debug, Clone, Default)]
pub struct FollowerAcks {
    by_peer: Arc<Mutex<HashMap<String, PeerRecord>>>,
}

/// What [`FollowerAcks`] knows of one peer, in one term.
#[derive(Debug, Clone, Copy)]
struct PeerRecord {
    term: u64,
    /// Send time of the latest request the peer accepted.
    acked: Option<Instant>,
    /// Send time of the oldest heartbeat left unanswered, or of the oldest failed request,
    /// since the peer last accepted one (or since the term began).
    unanswered_since: Option<Instant>,
}

impl PeerRecord {
    fn new(term: u64) -> Self {
        Self {
            term,
            acked: None,
            unanswered_since: None,
        }
    }
}

impl FollowerAcks {
    /// The record of `peer` for `term`: a new one if the peer has none or an older term's;
    /// `None` if it has a newer term's (a request of an old leadership answered late).
    fn entry<'a>(
        map: &'a mut HashMap<String, PeerRecord>,
        peer: &str,
        term: u64,
    ) -> Option<&'a mut PeerRecord> {
        let rec = map
            .entry(peer.to_string())
            .or_insert_with(|| PeerRecord::new(term));
        if rec.term < term {
            *rec = PeerRecord::new(term);
        }
        (rec.term == term).then_some(rec)
    }

    /// Records that `peer` has to answer this node, leader of `term`, a heartbeat sent at
    /// `sent` (before it is known whether the peer can even be reached), or that a request
    /// sent at `sent` failed. Stale if the peer accepted a request sent later since.
    pub(crate) fn record_unanswered(&self, peer: &str, term: u64, sent: Instant) {
        let mut map = self.by_peer.lock();
        if let Some(rec) = Self::entry(&mut map, peer, term)
            && rec.unanswered_since.is_none()
            && rec.acked.is_none_or(|a| a < sent)
        {
            rec.unanswered_since = Some(sent);
        }
    }

    /// Records that `peer` accepted a request sent at `sent` by this node as leader of `term`.
    /// Within a term the latest send time stays; the request answers everything sent before
    /// it as far as silence is concerned.
    pub(crate) fn record(&self, peer: &str, term: u64, sent: Instant) {
        let mut map = self.by_peer.lock();
        let Some(rec) = Self::entry(&mut map, peer, term) else {
            return;
        };
        if rec.acked.is_none_or(|a| a < sent) {
            rec.acked = Some(sent);
        }
        if rec.unanswered_since.is_some_and(|u| u <= sent) {
            rec.unanswered_since = None;
        }
    }

    /// How long before `now` every one of `configs` (each a list of voter ids; several while
    /// a membership change is joint) had a majority acknowledging this node, `me`, as leader
    /// of `term`; `me` counts as acknowledging at `now`. `None` if some config has no such
    /// majority yet.
    pub fn quorum_age(
        &self,
        term: u64,
        me: &str,
        configs: &[Vec<String>],
        now: Instant,
    ) -> Option<Duration> {
        let map = self.by_peer.lock();
        Self::per_config(configs, |v| {
            if v == me {
                return Some(Duration::ZERO);
            }
            let rec = map.get(v).filter(|r| r.term == term)?;
            rec.acked.map(|sent| now.saturating_duration_since(sent))
        })
    }

    /// How long some config of `configs` has lacked a majority that answers this node, `me`,
    /// as leader of `term`: a peer's silence is the age of its oldest unanswered heartbeat or
    /// failed request since it last accepted one (zero if there is none, or if it was sent
    /// nothing in `term`), `me`'s is zero.
    pub fn quorum_silence(
        &self,
        term: u64,
        me: &str,
        configs: &[Vec<String>],
        now: Instant,
    ) -> Duration {
        let map = self.by_peer.lock();
        Self::per_config(configs, |v| {
            let silence = map
                .get(v)
                .filter(|r| v != me && r.term == term)
                .and_then(|r| r.unanswered_since)
                .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
            Some(silence)
        })
        .unwrap_or_default()
    }

    /// For each config, the majority-th smallest of the voters' durations (`None` for a
    /// voter: it does not count toward the majority); the largest over the configs, or
    /// `None` if a config has no majority of voters with a duration.
    fn per_config(
        configs: &[Vec<String>],
        of: impl Fn(&str) -> Option<Duration>,
    ) -> Option<Duration> {
        let mut worst = Duration::ZERO;
        for voters in configs {
            let mut d: Vec<Duration> = voters.iter().filter_map(|v| of(v)).collect();
            let majority = voters.len() / 2 + 1;
            if d.len() < majority {
                return None;
            }
            d.sort();
            worst = worst.max(d[majority - 1]);
        }
        Some(worst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_majority_of_every_config_is_needed_and_the_slowest_of_it_counts() {
        let acks = FollowerAcks::default();
        let now = Instant::now();
        let at = |ms: u64| now - Duration::from_millis(ms);
        let three = [ids(&["1", "2", "3"])];
        // Only the leader itself: no majority of three.
        assert_eq!(acks.quorum_age(5, "1", &three, now), None);
        acks.record("2", 5, at(300));
        assert_eq!(
            acks.quorum_age(5, "1", &three, now),
            Some(Duration::from_millis(300))
        );
        acks.record("3", 5, at(100));
        // The majority {1, 3} is the youngest one.
        assert_eq!(
            acks.quorum_age(5, "1", &three, now),
            Some(Duration::from_millis(100))
        );
        // An older send time never replaces a newer one of the same term.
        acks.record("3", 5, at(900));
        assert_eq!(
            acks.quorum_age(5, "1", &three, now),
            Some(Duration::from_millis(100))
        );
        // Acknowledgements of another term do not count for this one.
        assert_eq!(acks.quorum_age(6, "1", &three, now), None);
        acks.record("2", 6, at(50));
        assert_eq!(
            acks.quorum_age(6, "1", &three, now),
            Some(Duration::from_millis(50))
        );
        assert_eq!(
            acks.quorum_age(5, "1", &three, now),
            Some(Duration::from_millis(100)),
            "peer 3 still acknowledged term 5"
        );
        // Joint configuration: the new config {1, 4, 5} has no majority until 4 or 5 answers.
        let joint = [ids(&["1", "2", "3"]), ids(&["1", "4", "5"])];
        assert_eq!(acks.quorum_age(5, "1", &joint, now), None);
        acks.record("5", 5, at(700));
        assert_eq!(
            acks.quorum_age(5, "1", &joint, now),
            Some(Duration::from_millis(700))
        );
        // A one-member cluster: the leader alone is the quorum.
        assert_eq!(
            acks.quorum_age(9, "1", &[ids(&["1"])], now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn silence_counts_only_requests_that_went_unanswered() {
        let acks = FollowerAcks::default();
        let now = Instant::now();
        let at = |ms: u64| now - Duration::from_millis(ms);
        let three = [ids(&["1", "2", "3"])];
        // No heartbeat sent yet (a leader whose core is busy with its own fsync): no silence.
        assert_eq!(acks.quorum_silence(5, "1", &three, now), Duration::ZERO);
        // Both peers were sent a heartbeat 900 ms ago, peer 2 also one 500 ms ago; none
        // answered.
        acks.record_unanswered("2", 5, at(900));
        acks.record_unanswered("3", 5, at(900));
        acks.record_unanswered("2", 5, at(500));
        assert_eq!(
            acks.quorum_silence(5, "1", &three, now),
            Duration::from_millis(900),
            "silence runs from the oldest unanswered request"
        );
        // Peer 3 answers the request of 900 ms ago: a majority ({1, 3}) is answering again.
        acks.record("3", 5, at(900));
        assert_eq!(acks.quorum_silence(5, "1", &three, now), Duration::ZERO);
        // Peer 3 is sent another request 300 ms ago, unanswered: the majority's silence is
        // the smaller of peer 2's (900) and peer 3's (300).
        acks.record_unanswered("3", 5, at(300));
        assert_eq!(
            acks.quorum_silence(5, "1", &three, now),
            Duration::from_millis(300)
        );
        // A new term starts from nothing.
        assert_eq!(acks.quorum_silence(6, "1", &three, now), Duration::ZERO);
        acks.record_unanswered("2", 6, at(100));
        // A late answer to a term-5 request changes nothing in term 6.
        acks.record("2", 5, at(50));
        assert_eq!(
            acks.quorum_silence(6, "1", &[ids(&["1", "2"])], now),
            Duration::from_millis(100)
        );
        // A failure of a request sent before the peer's last accepted one is stale.
        acks.record("3", 6, at(200));
        acks.record_unanswered("3", 6, at(400));
        assert_eq!(
            acks.quorum_silence(6, "1", &[ids(&["1", "3"])], now),
            Duration::ZERO
        );
    }
}
