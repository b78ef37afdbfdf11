//! A linearizability checker: the Wing–Gong search with Lowe's just-in-time linearization
//! and memoization of (linearized set, state) pairs.
//!
//! The history of one object (one key) is a list of [`Event`]s: an operation with its
//! invocation time and, if it is known to have completed, its completion time and output.
//! An operation whose outcome is unknown (timeout, 10506) gets no completion: it may take
//! effect at any moment after its invocation, or never (it is then linearized after
//! everything else, where nothing observes it). Operations that definitely failed, and reads
//! whose answer never came, say nothing and are left out by the caller.
//!
//! The search is exponential in the worst case, so it runs under [`Limits`]: past them the
//! answer is [`Verdict::Undecided`], never a hang. A non-linearizable history is shrunk to a
//! short witness ([`shrink`]): the shortest prefix that is still not linearizable, then with
//! every operation removed whose removal keeps it so and is sound (a witness that is not
//! linearizable proves the full history is not).

use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// The sequential specification of an object.
pub trait Model {
    /// The object's state.
    type State: Clone + Eq + Hash + Debug;
    /// An operation with what it returned (`None` parts are unknown).
    type Op: Clone + Debug;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// The state after `op` if `op` (with the output it reported, or any output if unknown)
    /// is legal in `state`; `None` if it is not.
    fn step(&self, state: &Self::State, op: &Self::Op, output_known: bool) -> Option<Self::State>;

    /// True when `op` only observes the state (a read, a compare-and-set that did not apply):
    /// removing it from a history only removes constraints.
    fn is_observer(&self, op: &Self::Op, output_known: bool) -> bool;

    /// True when removing `op` from `history` (the other operations) cannot turn a
    /// linearizable history into one that is not. Observers always qualify; a write qualifies
    /// when nothing left in `history` can tell whether it happened.
    fn removable(&self, op: &Self::Op, output_known: bool, history: &[Event<Self::Op>]) -> bool;
}

/// One operation of the history.
#[derive(Debug, Clone)]
pub struct Event<O> {
    /// The operation and its output.
    pub op: O,
    /// When it was invoked.
    pub invoke: u64,
    /// When it completed; `None` when its outcome is unknown.
    pub complete: Option<u64>,
    /// An identifier for reports (e.g. the index in the full history).
    pub id: usize,
}

/// Bounds on one search.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Search steps (each tries to linearize or backtrack one operation).
    pub max_steps: u64,
    /// Memoized configurations kept.
    pub max_cache: usize,
    /// Wall time.
    pub max_time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_steps: 20_000_000,
            max_cache: 4_000_000,
            max_time: Duration::from_secs(20),
        }
    }
}

/// The result of a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A linearization exists.
    Linearizable,
    /// None exists.
    NotLinearizable,
    /// The search hit a limit first.
    Undecided(String),
}

/// A set of operation indexes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct BitSet(Vec<u64>);

impl BitSet {
    fn new(n: usize) -> BitSet {
        BitSet(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

const NIL: usize = usize::MAX;

/// Checks whether `history` is linearizable with respect to `model`.
pub fn check<M: Model>(model: &M, history: &[Event<M::Op>], limits: &Limits) -> Verdict {
    let n = history.len();
    if n == 0 {
        return Verdict::Linearizable;
    }
    // Entries: 0 is the head sentinel; then one call and one return entry per operation,
    // sorted by time. At equal times calls come first: such operations are taken as
    // concurrent, which can only hide an anomaly, never invent one.
    let mut order: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * n);
    for (i, e) in history.iter().enumerate() {
        order.push((e.invoke, 0, i));
        order.push((e.complete.unwrap_or(u64::MAX), 1, i));
    }
    order.sort();
    let len = order.len() + 1;
    let mut next = vec![NIL; len];
    let mut prev = vec![NIL; len];
    let mut is_call = vec![false; len];
    let mut op_of = vec![0usize; len];
    let mut ret_of = vec![0usize; n];
    for (k, &(_, kind, i)) in order.iter().enumerate() {
        let entry = k + 1;
        is_call[entry] = kind == 0;
        op_of[entry] = i;
        if kind == 1 {
            ret_of[i] = entry;
        }
        prev[entry] = k;
        next[k] = entry;
    }
    let lift = |next: &mut Vec<usize>, prev: &mut Vec<usize>, e: usize| {
        let (p, q) = (prev[e], next[e]);
        next[p] = q;
        if q != NIL {
            prev[q] = p;
        }
    };
    let unlift = |next: &mut Vec<usize>, prev: &mut Vec<usize>, e: usize| {
        let (p, q) = (prev[e], next[e]);
        next[p] = e;
        if q != NIL {
            prev[q] = e;
        }
    };

    let started = Instant::now();
    let mut steps: u64 = 0;
    let mut cache: HashSet<(BitSet, M::State)> = HashSet::new();
    let mut linearized = BitSet::new(n);
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut state = model.init();
    let mut entry = next[0];
    while next[0] != NIL {
        steps += 1;
        if steps > limits.max_steps {
            return Verdict::Undecided(format!("more than {} search steps", limits.max_steps));
        }
        if steps.is_multiple_of(4096) && started.elapsed() > limits.max_time {
            return Verdict::Undecided(format!("search took over {:?}", limits.max_time));
        }
        if cache.len() > limits.max_cache {
            return Verdict::Undecided(format!(
                "more than {} configurations cached",
                limits.max_cache
            ));
        }
        if entry == NIL {
            // Only reachable if every remaining entry was skipped: backtrack.
            let Some((e, s)) = stack.pop() else {
                return Verdict::NotLinearizable;
            };
            let i = op_of[e];
            linearized.clear(i);
            state = s;
            unlift(&mut next, &mut prev, ret_of[i]);
            unlift(&mut next, &mut prev, e);
            entry = next[e];
            continue;
        }
        if is_call[entry] {
            let i = op_of[entry];
            let ev = &history[i];
            if let Some(new_state) = model.step(&state, &ev.op, ev.complete.is_some()) {
                linearized.set(i);
                if cache.insert((linearized.clone(), new_state.clone())) {
                    let old = std::mem::replace(&mut state, new_state);
                    stack.push((entry, old));
                    lift(&mut next, &mut prev, entry);
                    lift(&mut next, &mut prev, ret_of[i]);
                    entry = next[0];
                    continue;
                }
                linearized.clear(i);
            }
            entry = next[entry];
        } else {
            // The return of an operation not yet linearized: undo the last choice.
            let Some((e, s)) = stack.pop() else {
                return Verdict::NotLinearizable;
            };
            let i = op_of[e];
            linearized.clear(i);
            state = s;
            unlift(&mut next, &mut prev, ret_of[i]);
            unlift(&mut next, &mut prev, e);
            entry = next[e];
        }
    }
    Verdict::Linearizable
}

/// The history as it was known at time `t`: operations invoked before `t`; those that
/// completed after it become of unknown outcome, or are dropped if they only observe.
fn prefix_at<M: Model>(model: &M, history: &[Event<M::Op>], t: u64) -> Vec<Event<M::Op>> {
    history
        .iter()
        .filter(|e| e.invoke <= t)
        .filter_map(|e| match e.complete {
            Some(c) if c <= t => Some(e.clone()),
            _ if model.is_observer(&e.op, e.complete.is_some()) => None,
            _ => Some(Event {
                complete: None,
                ..e.clone()
            }),
        })
        .collect()
}

/// A short witness of a history that is not linearizable: the shortest prefix (in
/// completion order) that is not, then with every soundly removable operation dropped while
/// the rest stays not linearizable. Bounded by `limits` per search and `budget` in all; on
/// running out it returns what it has (still a witness).
pub fn shrink<M: Model>(
    model: &M,
    history: &[Event<M::Op>],
    limits: &Limits,
    budget: Duration,
) -> Vec<Event<M::Op>> {
    let started = Instant::now();
    let fails = |h: &[Event<M::Op>]| check(model, h, limits) == Verdict::NotLinearizable;
    let mut times: Vec<u64> = history.iter().filter_map(|e| e.complete).collect();
    times.sort_unstable();
    times.dedup();
    let mut witness = history.to_vec();
    // Binary search for the first completion time whose prefix is not linearizable.
    let (mut lo, mut hi) = (0usize, times.len());
    while lo < hi && started.elapsed() < budget {
        let mid = (lo + hi) / 2;
        let p = prefix_at(model, history, times[mid]);
        if fails(&p) {
            witness = p;
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    // Drop removable operations, latest first (they are the likeliest to be incidental).
    let mut k = witness.len();
    while k > 0 && started.elapsed() < budget {
        k -= 1;
        let e = &witness[k];
        let others: Vec<Event<M::Op>> = witness
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != k)
            .map(|(_, e)| e.clone())
            .collect();
        if model.removable(&e.op, e.complete.is_some(), &others) && fails(&others) {
            witness = others;
        }
    }
    witness.sort_by_key(|e| (e.invoke, e.id));
    witness
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A register: write(v), read -> v, cas(from, to) -> applied.
    #[derive(Debug, Clone)]
    enum Reg {
        W(i64),
        R(Option<i64>),
        Cas(i64, i64, bool),
    }

    struct RegModel;

    impl Model for RegModel {
        type State = Option<i64>;
        type Op = Reg;
        fn init(&self) -> Option<i64> {
            None
        }
        fn step(&self, s: &Option<i64>, op: &Reg, known: bool) -> Option<Option<i64>> {
            match *op {
                Reg::W(v) => Some(Some(v)),
                Reg::R(v) => (*s == v).then_some(*s),
                Reg::Cas(a, b, ok) => {
                    let applies = *s == Some(a);
                    if !known {
                        Some(if applies { Some(b) } else { *s })
                    } else if applies == ok {
                        Some(if ok { Some(b) } else { *s })
                    } else {
                        None
                    }
                }
            }
        }
        fn is_observer(&self, op: &Reg, known: bool) -> bool {
            matches!(op, Reg::R(_)) || matches!(op, Reg::Cas(_, _, false) if known)
        }
        fn removable(&self, op: &Reg, known: bool, _h: &[Event<Reg>]) -> bool {
            self.is_observer(op, known)
        }
    }

    fn ev(id: usize, op: Reg, invoke: u64, complete: Option<u64>) -> Event<Reg> {
        Event {
            op,
            invoke,
            complete,
            id,
        }
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let h = vec![
            ev(0, Reg::W(1), 0, Some(10)),
            ev(1, Reg::R(Some(1)), 20, Some(30)),
            ev(2, Reg::Cas(1, 2, true), 40, Some(50)),
            ev(3, Reg::R(Some(2)), 60, Some(70)),
            ev(4, Reg::Cas(1, 3, false), 80, Some(90)),
        ];
        assert_eq!(
            check(&RegModel, &h, &Limits::default()),
            Verdict::Linearizable
        );
    }

    #[test]
    fn stale_read_after_acknowledged_write_is_flagged() {
        let h = vec![
            ev(0, Reg::W(1), 0, Some(10)),
            ev(1, Reg::W(2), 20, Some(30)),
            ev(2, Reg::R(Some(1)), 40, Some(50)),
        ];
        assert_eq!(
            check(&RegModel, &h, &Limits::default()),
            Verdict::NotLinearizable
        );
    }

    #[test]
    fn concurrent_operations_may_take_either_order() {
        // The read overlaps the write of 2: it may see 1 or 2.
        for seen in [1, 2] {
            let h = vec![
                ev(0, Reg::W(1), 0, Some(10)),
                ev(1, Reg::W(2), 20, Some(50)),
                ev(2, Reg::R(Some(seen)), 30, Some(40)),
            ];
            assert_eq!(
                check(&RegModel, &h, &Limits::default()),
                Verdict::Linearizable
            );
        }
    }

    #[test]
    fn unknown_write_may_or_may_not_happen() {
        // Seen: fine. Not seen: fine too.
        for seen in [Some(1), None] {
            let h = vec![ev(0, Reg::W(1), 0, None), ev(1, Reg::R(seen), 20, Some(30))];
            assert_eq!(
                check(&RegModel, &h, &Limits::default()),
                Verdict::Linearizable
            );
        }
        // But it cannot be seen and then unseen.
        let h = vec![
            ev(0, Reg::W(1), 0, None),
            ev(1, Reg::R(Some(1)), 20, Some(30)),
            ev(2, Reg::R(None), 40, Some(50)),
        ];
        assert_eq!(
            check(&RegModel, &h, &Limits::default()),
            Verdict::NotLinearizable
        );
    }

    #[test]
    fn lost_update_between_two_cas_is_flagged() {
        // Two CAS from 0 both succeed sequentially: impossible.
        let h = vec![
            ev(0, Reg::W(0), 0, Some(5)),
            ev(1, Reg::Cas(0, 1, true), 10, Some(20)),
            ev(2, Reg::Cas(0, 2, true), 30, Some(40)),
        ];
        assert_eq!(
            check(&RegModel, &h, &Limits::default()),
            Verdict::NotLinearizable
        );
    }

    #[test]
    fn read_of_a_value_never_written_is_flagged() {
        let h = vec![ev(0, Reg::R(Some(9)), 0, Some(5))];
        assert_eq!(
            check(&RegModel, &h, &Limits::default()),
            Verdict::NotLinearizable
        );
    }

    #[test]
    fn limits_give_undecided_not_a_hang() {
        // Many concurrent unknown writes and reads: with a 10-step budget the search stops.
        let mut h = Vec::new();
        for i in 0..40 {
            h.push(ev(i, Reg::W(i as i64), 0, None));
        }
        for i in 40..60 {
            h.push(ev(i, Reg::R(Some((i - 40) as i64)), 1, Some(1000)));
        }
        let limits = Limits {
            max_steps: 10,
            ..Limits::default()
        };
        assert!(matches!(
            check(&RegModel, &h, &limits),
            Verdict::Undecided(_)
        ));
    }

    #[test]
    fn shrink_keeps_a_short_witness() {
        // Lots of harmless traffic, then a stale read.
        let mut h = Vec::new();
        let mut t = 0;
        for i in 0..50 {
            h.push(ev(h.len(), Reg::W(i), t, Some(t + 5)));
            h.push(ev(h.len(), Reg::R(Some(i)), t + 10, Some(t + 15)));
            t += 20;
        }
        h.push(ev(h.len(), Reg::R(Some(3)), t, Some(t + 5)));
        for i in 100..120 {
            t += 20;
            h.push(ev(h.len(), Reg::W(i), t, Some(t + 5)));
        }
        assert_eq!(
            check(&RegModel, &h, &Limits::default()),
            Verdict::NotLinearizable
        );
        let w = shrink(&RegModel, &h, &Limits::default(), Duration::from_secs(10));
        assert_eq!(
            check(&RegModel, &w, &Limits::default()),
            Verdict::NotLinearizable
        );
        // The later writes and the harmless reads are gone; the stale read is kept.
        assert!(w.len() < 60, "witness of {} ops", w.len());
        assert!(w.iter().all(|e| e.id <= 100));
        assert!(w.iter().any(|e| matches!(e.op, Reg::R(Some(3)))));
        assert!(!w.iter().any(|e| matches!(e.op, Reg::R(Some(10)))));
    }
}
