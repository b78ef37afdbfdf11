//! The register workload: reads, writes and compare-and-sets on integer registers (one row
//! per key), checked for linearizability per key with the Wing–Gong–Lowe search.
//!
//! Keys are used a bounded number of times each (a few are active at once, so clients
//! contend on them), which keeps every per-key search small; written values are unique.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::{CheckOptions, Ctx, Kind, Report, Verdict, pace, retry, setup_sql};
use crate::chaos::adapter::{Cluster, SqlError, Val};
use crate::chaos::history::{Counts, Op, Outcome, Recorder};
use crate::chaos::wgl::{self, Event, Limits, Model};

/// The database.
pub const DB: &str = "register";
/// Keys in use at once.
const ACTIVE_KEYS: usize = 3;
/// Operations per key before it is retired.
const OPS_PER_KEY: usize = 150;
/// Time for checking all keys; keys left when it runs out are undecided.
const CHECK_BUDGET: Duration = Duration::from_secs(180);

/// A register operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Call {
    /// Read key `k`.
    Read { k: i64 },
    /// Write `v` to key `k`.
    Write { k: i64, v: i64 },
    /// Set key `k` to `to` if it holds `from`.
    Cas { k: i64, from: i64, to: i64 },
}

impl Call {
    fn key(&self) -> i64 {
        match *self {
            Call::Read { k } | Call::Write { k, .. } | Call::Cas { k, .. } => k,
        }
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Call::Read { k } => write!(f, "read(k{k})"),
            Call::Write { k, v } => write!(f, "write(k{k}, {v})"),
            Call::Cas { k, from, to } => write!(f, "cas(k{k}, {from} -> {to})"),
        }
    }
}

/// What a register operation returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ret {
    /// The value read (`None`: no such key yet).
    Read(Option<i64>),
    /// The write was acknowledged.
    Written,
    /// Whether the compare-and-set applied.
    Cas(bool),
}

impl fmt::Display for Ret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ret::Read(Some(v)) => write!(f, "{v}"),
            Ret::Read(None) => write!(f, "nil"),
            Ret::Written => write!(f, "written"),
            Ret::Cas(true) => write!(f, "applied"),
            Ret::Cas(false) => write!(f, "not applied"),
        }
    }
}

/// Creates the table.
pub async fn setup(cluster: &Cluster) -> Result<(), String> {
    setup_sql(
        cluster,
        DB,
        &["CREATE TABLE IF NOT EXISTS reg (k INTEGER PRIMARY KEY, v INTEGER NOT NULL)"],
    )
    .await
}

/// The keys in use and the values written, shared by the clients.
#[derive(Debug, Default)]
pub struct Keys {
    /// (key, operations left, last value written to it).
    active: Vec<(i64, usize, Option<i64>)>,
    next_key: i64,
    next_value: i64,
}

impl Keys {
    fn pick(&mut self, rng: &mut impl rand::Rng) -> (i64, Option<i64>, i64) {
        while self.active.len() < ACTIVE_KEYS {
            self.next_key += 1;
            self.active.push((self.next_key, OPS_PER_KEY, None));
        }
        let i = rng.random_range(0..self.active.len());
        let (k, left, last) = self.active[i];
        if left <= 1 {
            self.active.swap_remove(i);
        } else {
            self.active[i].1 = left - 1;
        }
        self.next_value += 1;
        (k, last, self.next_value)
    }

    fn wrote(&mut self, k: i64, v: i64) {
        if let Some(a) = self.active.iter_mut().find(|a| a.0 == k) {
            a.2 = Some(v);
        }
    }
}

/// One client: random operations until told to stop.
pub async fn client(ctx: Ctx, id: usize, keys: Arc<Mutex<Keys>>, rec: Recorder<Call, Ret>) {
    let mut rng = ctx.rng(Kind::Register, id);
    let mut db = ctx.cluster.db(DB);
    while !ctx.stopped() {
        let (k, last, fresh) = keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pick(&mut rng);
        let roll = rng.random_range(0..10);
        let call = if roll < 4 {
            Call::Read { k }
        } else if roll < 7 || last.is_none() {
            Call::Write { k, v: fresh }
        } else {
            // Mostly the last value written, sometimes one that is likely stale.
            let from = match last {
                Some(v) if rng.random_bool(0.8) => v,
                Some(v) => v - rng.random_range(1..4),
                None => 0,
            };
            Call::Cas { k, from, to: fresh }
        };
        let invoke = rec.clock().now();
        let outcome = match &call {
            Call::Read { k } => {
                match db
                    .query("SELECT v FROM reg WHERE k = ?", &[Val::Int(*k)])
                    .await
                {
                    Ok(rows) => match rows.first().and_then(|r| r.first()) {
                        None => Outcome::Ok(Ret::Read(None)),
                        Some(Val::Int(v)) => Outcome::Ok(Ret::Read(Some(*v))),
                        Some(other) => Outcome::Fail(format!("unexpected value {other:?}")),
                    },
                    Err(e) => to_outcome(e),
                }
            }
            Call::Write { k, v } => {
                let r = db
                    .exec(
                        "INSERT INTO reg (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                        &[Val::Int(*k), Val::Int(*v)],
                    )
                    .await;
                match r {
                    Ok(_) => Outcome::Ok(Ret::Written),
                    Err(e) => to_outcome(e),
                }
            }
            Call::Cas { k, from, to } => {
                let r = db
                    .exec(
                        "UPDATE reg SET v = ? WHERE k = ? AND v = ?",
                        &[Val::Int(*to), Val::Int(*k), Val::Int(*from)],
                    )
                    .await;
                match r {
                    Ok(n) => Outcome::Ok(Ret::Cas(n == 1)),
                    Err(e) => to_outcome(e),
                }
            }
        };
        match (&call, &outcome) {
            (Call::Write { k, v }, Outcome::Ok(_))
            | (Call::Cas { k, to: v, .. }, Outcome::Ok(Ret::Cas(true))) => {
                keys.lock().unwrap_or_else(|e| e.into_inner()).wrote(*k, *v)
            }
            _ => {}
        }
        rec.record(id, invoke, call, outcome);
        pace(&mut rng).await;
    }
}

fn to_outcome(e: SqlError) -> Outcome<Ret> {
    match e {
        SqlError::Definite(m) => Outcome::Fail(m),
        SqlError::Unknown(m) => Outcome::Unknown(m),
    }
}

/// Reads every key after the cluster healed; each row is recorded as a read of its key.
pub async fn final_read(cluster: &Cluster, rec: &Recorder<Call, Ret>) -> Result<(), String> {
    let mut db = cluster.db(DB);
    let invoke = rec.clock().now();
    let rows = retry(
        "final read of the registers",
        Duration::from_secs(60),
        async || db.query("SELECT k, v FROM reg", &[]).await,
    )
    .await?;
    let mut keys: Vec<i64> = rec.snapshot().iter().map(|op| op.call.key()).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut values = BTreeMap::new();
    for r in rows {
        if let (Some(k), v) = (r.first().and_then(Val::int), r.get(1).and_then(Val::int)) {
            values.insert(k, v);
        }
    }
    for k in keys {
        rec.record(
            usize::MAX,
            invoke,
            Call::Read { k },
            Outcome::Ok(Ret::Read(values.get(&k).copied().flatten())),
        );
    }
    Ok(())
}

/// A register operation as the search sees it.
#[derive(Debug, Clone, Copy)]
pub enum RegOp {
    /// A read that returned this.
    Read(Option<i64>),
    /// A write of this value.
    Write(i64),
    /// A compare-and-set; `applied` is `None` when its outcome is unknown.
    Cas {
        /// Expected value.
        from: i64,
        /// New value.
        to: i64,
        /// Whether it applied, if known.
        applied: Option<bool>,
    },
}

/// The sequential register.
pub struct RegisterModel;

impl Model for RegisterModel {
    type State = Option<i64>;
    type Op = RegOp;

    fn init(&self) -> Option<i64> {
        None
    }

    fn step(&self, s: &Option<i64>, op: &RegOp, _known: bool) -> Option<Option<i64>> {
        match *op {
            RegOp::Read(v) => (*s == v).then_some(*s),
            RegOp::Write(v) => Some(Some(v)),
            RegOp::Cas { from, to, applied } => {
                let applies = *s == Some(from);
                match applied {
                    None => Some(if applies { Some(to) } else { *s }),
                    Some(a) if a == applies => Some(if a { Some(to) } else { *s }),
                    Some(_) => None,
                }
            }
        }
    }

    fn is_observer(&self, op: &RegOp, _known: bool) -> bool {
        matches!(
            op,
            RegOp::Read(_)
                | RegOp::Cas {
                    applied: Some(false),
                    ..
                }
        )
    }

    fn removable(&self, op: &RegOp, known: bool, history: &[Event<RegOp>]) -> bool {
        if self.is_observer(op, known) {
            return true;
        }
        // A write nobody observed: removing it changes the state seen only by operations
        // that cannot tell (no read of its value, no compare-and-set expecting it, no
        // compare-and-set that failed and might then have succeeded).
        let v = match *op {
            RegOp::Write(v) => v,
            RegOp::Cas { to, .. } => to,
            RegOp::Read(_) => return true,
        };
        history.iter().all(|e| match e.op {
            RegOp::Read(r) => r != Some(v),
            RegOp::Cas { from, applied, .. } => from != v && applied != Some(false),
            RegOp::Write(_) => true,
        })
    }
}

/// The per-key events of a history (failed operations and unanswered reads say nothing).
fn events(ops: &[Op<Call, Ret>], opts: &CheckOptions) -> BTreeMap<i64, Vec<Event<RegOp>>> {
    let mut per_key: BTreeMap<i64, Vec<Event<RegOp>>> = BTreeMap::new();
    for op in ops {
        let (reg, complete) = match (&op.call, &op.outcome) {
            (_, Outcome::Fail(_)) | (Call::Read { .. }, Outcome::Unknown(_)) => continue,
            (Call::Read { .. }, Outcome::Ok(Ret::Read(v))) => (RegOp::Read(*v), Some(op.complete)),
            (Call::Write { v, .. }, Outcome::Ok(_)) => (RegOp::Write(*v), Some(op.complete)),
            (Call::Write { v, .. }, Outcome::Unknown(_)) => (RegOp::Write(*v), None),
            (Call::Cas { from, to, .. }, Outcome::Ok(Ret::Cas(a))) => (
                RegOp::Cas {
                    from: *from,
                    to: *to,
                    applied: Some(*a),
                },
                Some(op.complete),
            ),
            (Call::Cas { from, to, .. }, Outcome::Unknown(_)) => (
                RegOp::Cas {
                    from: *from,
                    to: *to,
                    applied: None,
                },
                None,
            ),
            (_, Outcome::Ok(_)) => continue,
        };
        // A stale read may be served as of a moment up to the bound before its invocation.
        let invoke = match reg {
            RegOp::Read(_) => op.invoke.saturating_sub(opts.stale_bound),
            _ => op.invoke,
        };
        per_key.entry(op.call.key()).or_default().push(Event {
            op: reg,
            invoke,
            complete,
            id: op.index,
        });
    }
    per_key
        .into_iter()
        .map(|(k, evs)| (k, narrow_unknowns(evs)))
        .collect()
}

/// Narrows the unknown-outcome writes of one key's history, which otherwise make the search
/// exponential (each may take effect at any later moment, or never). Values are unique, so:
/// - one whose value a completed operation observed (a read returned it, a compare-and-set
///   from it applied, including one found to have applied this way) did take effect, before
///   that observer completed: it gets that completion time (and a compare-and-set,
///   `applied`);
/// - one whose value nothing observed can only have set the state to a value nobody saw,
///   which matters to no operation but a failed compare-and-set (the state then differs from
///   what it expected). It is left out (never happened: a possible outcome), and so are the
///   failed compare-and-sets it might have explained (those from a value written to this
///   key that ended after it was invoked). Leaving operations out only removes constraints:
///   what is then not linearizable was not before either.
fn narrow_unknowns(mut evs: Vec<Event<RegOp>>) -> Vec<Event<RegOp>> {
    use std::collections::{HashMap, HashSet};
    // Observed values, until nothing changes: a compare-and-set found to have applied
    // observed its own `from` in turn.
    let mut seen: HashMap<i64, u64> = HashMap::new();
    loop {
        seen.clear();
        for e in &evs {
            let Some(c) = e.complete else { continue };
            let v = match e.op {
                RegOp::Read(Some(v)) => v,
                RegOp::Cas {
                    from,
                    applied: Some(true),
                    ..
                } => from,
                _ => continue,
            };
            let t = seen.entry(v).or_insert(c);
            *t = (*t).min(c);
        }
        let mut changed = false;
        for e in evs.iter_mut().filter(|e| e.complete.is_none()) {
            if let RegOp::Write(v) | RegOp::Cas { to: v, .. } = e.op
                && let Some(&t) = seen.get(&v)
            {
                e.complete = Some(t);
                if let RegOp::Cas { applied, .. } = &mut e.op {
                    *applied = Some(true);
                }
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let written: HashSet<i64> = evs
        .iter()
        .filter_map(|e| match e.op {
            RegOp::Write(v) | RegOp::Cas { to: v, .. } => Some(v),
            RegOp::Read(_) => None,
        })
        .collect();
    let unseen_value = |e: &Event<RegOp>| match e.op {
        RegOp::Write(v) | RegOp::Cas { to: v, .. } => {
            e.complete.is_none() && !seen.contains_key(&v)
        }
        RegOp::Read(_) => false,
    };
    let first_dropped = evs
        .iter()
        .filter(|e| unseen_value(e))
        .map(|e| e.invoke)
        .min();
    evs.iter()
        .filter(|e| !unseen_value(e))
        .filter(|e| match (e.op, first_dropped) {
            (
                RegOp::Cas {
                    from,
                    applied: Some(false),
                    ..
                },
                Some(t),
            ) => !(written.contains(&from) && e.complete.is_some_and(|c| c > t)),
            _ => true,
        })
        .cloned()
        .collect()
}

/// Checks every key for linearizability.
pub fn check(ops: &[Op<Call, Ret>], opts: &CheckOptions) -> Report {
    check_with(ops, opts, &Limits::default(), CHECK_BUDGET)
}

/// [`check`] with explicit limits (tests use small ones).
pub fn check_with(
    ops: &[Op<Call, Ret>],
    opts: &CheckOptions,
    limits: &Limits,
    budget: Duration,
) -> Report {
    let started = Instant::now();
    let per_key = events(ops, opts);
    let by_index: BTreeMap<usize, &Op<Call, Ret>> = ops.iter().map(|o| (o.index, o)).collect();
    let mut bad = Vec::new();
    let mut undecided = Vec::new();
    for (k, evs) in &per_key {
        if started.elapsed() > budget {
            undecided.push(format!("k{k}: check budget of {budget:?} spent"));
            continue;
        }
        match wgl::check(&RegisterModel, evs, limits) {
            wgl::Verdict::Linearizable => {}
            wgl::Verdict::NotLinearizable => bad.push(*k),
            wgl::Verdict::Undecided(why) => undecided.push(format!("k{k}: {why}")),
        }
    }
    let mut witness = Vec::new();
    for k in bad.iter().take(3) {
        let w = wgl::shrink(&RegisterModel, &per_key[k], limits, Duration::from_secs(30));
        witness.push(format!(
            "register k{k} is not linearizable; shortest violating sequence ({} of {} ops):",
            w.len(),
            per_key[k].len()
        ));
        for e in &w {
            if let Some(op) = by_index.get(&e.id) {
                witness.push(format!("  {op}"));
            }
        }
    }
    let keys = per_key.len();
    let (verdict, summary) = if !bad.is_empty() {
        (
            Verdict::Anomaly,
            format!(
                "NOT linearizable: {} of {keys} keys ({})",
                bad.len(),
                bad.iter()
                    .map(|k| format!("k{k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    } else if !undecided.is_empty() {
        (
            Verdict::Undecided,
            format!(
                "no anomaly, but {} of {keys} keys undecided ({})",
                undecided.len(),
                undecided.join("; ")
            ),
        )
    } else {
        let reads = if opts.stale_bound > 0 {
            format!("; reads allowed {} ms stale", opts.stale_bound / 1000)
        } else {
            String::new()
        };
        (Verdict::Pass, format!("linearizable ({keys} keys{reads})"))
    };
    Report {
        workload: "register",
        counts: Counts::of(ops),
        verdict,
        summary,
        witness,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(
        index: usize,
        client: usize,
        invoke: u64,
        complete: u64,
        call: Call,
        outcome: Outcome<Ret>,
    ) -> Op<Call, Ret> {
        Op {
            index,
            client,
            invoke,
            complete,
            call,
            outcome,
        }
    }

    fn strict() -> CheckOptions {
        CheckOptions { stale_bound: 0 }
    }

    #[test]
    fn good_history_passes() {
        let h = vec![
            op(
                0,
                0,
                0,
                10,
                Call::Write { k: 1, v: 1 },
                Outcome::Ok(Ret::Written),
            ),
            op(
                1,
                1,
                5,
                20,
                Call::Read { k: 1 },
                Outcome::Ok(Ret::Read(None)),
            ),
            op(
                2,
                1,
                30,
                40,
                Call::Cas {
                    k: 1,
                    from: 1,
                    to: 2,
                },
                Outcome::Ok(Ret::Cas(true)),
            ),
            op(
                3,
                0,
                50,
                60,
                Call::Write { k: 1, v: 3 },
                Outcome::Unknown("timeout".into()),
            ),
            op(
                4,
                2,
                70,
                80,
                Call::Read { k: 1 },
                Outcome::Ok(Ret::Read(Some(2))),
            ),
            op(
                5,
                2,
                90,
                95,
                Call::Read { k: 1 },
                Outcome::Ok(Ret::Read(Some(3))),
            ),
            op(
                6,
                1,
                100,
                110,
                Call::Write { k: 2, v: 4 },
                Outcome::Fail("busy".into()),
            ),
            op(
                7,
                1,
                120,
                130,
                Call::Read { k: 2 },
                Outcome::Ok(Ret::Read(None)),
            ),
        ];
        let r = check(&h, &strict());
        assert_eq!(r.verdict, Verdict::Pass, "{}", r.summary);
        assert_eq!(
            r.counts,
            Counts {
                ok: 6,
                fail: 1,
                unknown: 1
            }
        );
    }

    #[test]
    fn stale_read_is_flagged_with_a_witness() {
        let h = vec![
            op(
                0,
                0,
                0,
                10,
                Call::Write { k: 1, v: 1 },
                Outcome::Ok(Ret::Written),
            ),
            op(
                1,
                0,
                20,
                30,
                Call::Write { k: 1, v: 2 },
                Outcome::Ok(Ret::Written),
            ),
            op(
                2,
                1,
                40,
                50,
                Call::Read { k: 1 },
                Outcome::Ok(Ret::Read(Some(1))),
            ),
            op(
                3,
                2,
                60,
                70,
                Call::Read { k: 7 },
                Outcome::Ok(Ret::Read(None)),
            ),
        ];
        let r = check(&h, &strict());
        assert_eq!(r.verdict, Verdict::Anomaly);
        assert!(r.summary.contains("k1"), "{}", r.summary);
        assert!(
            r.witness.iter().any(|l| l.contains("read(k1) -> ok 1")),
            "{:#?}",
            r.witness
        );
        // With leader-local reads a read 30 µs stale is within a 35 µs bound...
        let r = check(&h, &CheckOptions { stale_bound: 35 });
        assert_eq!(r.verdict, Verdict::Pass, "{}", r.summary);
        // ...but not within 5 µs.
        let r = check(&h, &CheckOptions { stale_bound: 5 });
        assert_eq!(r.verdict, Verdict::Anomaly);
    }

    #[test]
    fn lost_acknowledged_write_is_flagged() {
        // The final read misses an acknowledged write, and a failed write shows up.
        let h = vec![
            op(
                0,
                0,
                0,
                10,
                Call::Write { k: 1, v: 1 },
                Outcome::Ok(Ret::Written),
            ),
            op(
                1,
                1,
                20,
                30,
                Call::Write { k: 1, v: 2 },
                Outcome::Ok(Ret::Written),
            ),
            op(
                2,
                usize::MAX,
                100,
                110,
                Call::Read { k: 1 },
                Outcome::Ok(Ret::Read(Some(1))),
            ),
        ];
        assert_eq!(check(&h, &strict()).verdict, Verdict::Anomaly);
        let h = vec![
            op(
                0,
                0,
                0,
                10,
                Call::Write { k: 1, v: 1 },
                Outcome::Ok(Ret::Written),
            ),
            op(
                1,
                1,
                20,
                30,
                Call::Write { k: 1, v: 2 },
                Outcome::Fail("refused".into()),
            ),
            op(
                2,
                usize::MAX,
                100,
                110,
                Call::Read { k: 1 },
                Outcome::Ok(Ret::Read(Some(2))),
            ),
        ];
        assert_eq!(check(&h, &strict()).verdict, Verdict::Anomaly);
    }

    #[test]
    fn double_cas_success_is_flagged() {
        let h = vec![
            op(
                0,
                0,
                0,
                10,
                Call::Write { k: 1, v: 1 },
                Outcome::Ok(Ret::Written),
            ),
            op(
                1,
                1,
                20,
                40,
                Call::Cas {
                    k: 1,
                    from: 1,
                    to: 2,
                },
                Outcome::Ok(Ret::Cas(true)),
            ),
            op(
                2,
                2,
                20,
                40,
                Call::Cas {
                    k: 1,
                    from: 1,
                    to: 3,
                },
                Outcome::Ok(Ret::Cas(true)),
            ),
        ];
        assert_eq!(check(&h, &strict()).verdict, Verdict::Anomaly);
    }

    /// A random history of a real register: every operation takes effect at a point inside
    /// its interval; some writes' outcomes are unknown (taken effect or not), at about the
    /// rate a run with faults sees.
    fn simulated(seed: u64, n: usize) -> Vec<Op<Call, Ret>> {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut state: Option<i64> = None;
        let mut h = Vec::new();
        let k = 1;
        for i in 0..n {
            let t = 100 * i as u64 + 1000;
            let invoke = t - rng.random_range(0..250u64);
            let complete = t + rng.random_range(0..250u64);
            let v = i as i64 + 1;
            let (call, ret) = match rng.random_range(0..10) {
                0..4 => (Call::Read { k }, Ret::Read(state)),
                4..7 => {
                    state = Some(v);
                    (Call::Write { k, v }, Ret::Written)
                }
                _ => {
                    let from = state.unwrap_or(0) - rng.random_range(0..2);
                    let ok = state == Some(from);
                    if ok {
                        state = Some(v);
                    }
                    (Call::Cas { k, from, to: v }, Ret::Cas(ok))
                }
            };
            let outcome = if !matches!(call, Call::Read { .. }) && rng.random_bool(0.1) {
                Outcome::Unknown("timeout".into())
            } else {
                Outcome::Ok(ret)
            };
            h.push(op(h.len(), i % 8, invoke, complete, call, outcome));
            if rng.random_bool(0.05) {
                // A write that never took effect, its outcome unknown.
                let call = Call::Write { k, v: -v };
                h.push(op(
                    h.len(),
                    9,
                    invoke,
                    complete,
                    call,
                    Outcome::Unknown("t".into()),
                ));
            }
        }
        h
    }

    #[test]
    fn simulated_histories_of_a_real_register_pass() {
        for seed in 0..200 {
            let r = check(&simulated(seed, 2 * OPS_PER_KEY), &strict());
            assert_eq!(r.verdict, Verdict::Pass, "seed {seed}: {}", r.summary);
        }
    }

    #[test]
    fn corrupted_simulated_histories_are_flagged_quickly() {
        for seed in 0..20 {
            let mut h = simulated(seed, 2 * OPS_PER_KEY);
            // One read, late in the history, returns a value that was overwritten long ago.
            let Some(r) = h
                .iter_mut()
                .rev()
                .find(|o| matches!(o.outcome, Outcome::Ok(Ret::Read(_))))
            else {
                continue;
            };
            r.outcome = Outcome::Ok(Ret::Read(Some(2)));
            let limits = Limits {
                max_time: Duration::from_secs(5),
                ..Limits::default()
            };
            let r = check_with(&h, &strict(), &limits, Duration::from_secs(30));
            assert_eq!(r.verdict, Verdict::Anomaly, "seed {seed}: {}", r.summary);
        }
    }

    #[test]
    fn tiny_limits_report_undecided() {
        let mut h = Vec::new();
        for i in 0..30 {
            h.push(op(
                i,
                i,
                0,
                1,
                Call::Write { k: 1, v: i as i64 },
                Outcome::Unknown("t".into()),
            ));
        }
        for i in 30..40 {
            h.push(op(
                i,
                i,
                2,
                1000,
                Call::Read { k: 1 },
                Outcome::Ok(Ret::Read(Some((i - 30) as i64))),
            ));
        }
        let limits = Limits {
            max_steps: 50,
            ..Limits::default()
        };
        let r = check_with(&h, &strict(), &limits, Duration::from_secs(5));
        assert_eq!(r.verdict, Verdict::Undecided, "{}", r.summary);
    }
}
