//! The append workload: transactions that append unique integers to one or two lists (one
//! row of comma-separated text per key, extended by read-modify-write), and reads of a few
//! lists in one statement.
//!
//! Checked per key: every list read is a prefix of the longest one (one order of appends);
//! no element appears twice, none was never appended, none whose transaction failed; every
//! acknowledged append is in the final read (none lost); an append acknowledged before
//! another was invoked comes first (none reordered); a read includes every element known
//! before it was invoked, less the stale bound (none stale); and a transaction's appends to
//! two lists are seen together or not at all (atomic).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::{CheckOptions, Ctx, Kind, Report, Verdict, pace, retry, setup_sql};
use crate::chaos::adapter::{Cluster, Db, SqlError, Val};
use crate::chaos::history::{Counts, Micros, Op, Outcome, Recorder};

/// The database.
pub const DB: &str = "append";
/// Lists in use at once.
const ACTIVE_KEYS: usize = 4;
/// Appends per list before it is retired.
const APPENDS_PER_KEY: usize = 120;

/// An append operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Call {
    /// Append each `(key, value)` in one transaction.
    Append { items: Vec<(i64, i64)> },
    /// Read these lists in one statement.
    Read { keys: Vec<i64> },
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Call::Append { items } => {
                let l: Vec<String> = items.iter().map(|(k, v)| format!("k{k} += {v}")).collect();
                write!(f, "append[{}]", l.join(", "))
            }
            Call::Read { keys } => {
                let l: Vec<String> = keys.iter().map(|k| format!("k{k}")).collect();
                write!(f, "read[{}]", l.join(", "))
            }
        }
    }
}

/// What an append operation returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ret {
    /// The transaction committed.
    Appended,
    /// The lists read, by key (an absent key reads as empty).
    Lists(Vec<(i64, Vec<i64>)>),
}

impl fmt::Display for Ret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ret::Appended => write!(f, "committed"),
            Ret::Lists(ls) => {
                let l: Vec<String> = ls
                    .iter()
                    .map(|(k, v)| {
                        let items: Vec<String> = v.iter().map(i64::to_string).collect();
                        format!("k{k}=[{}]", items.join(" "))
                    })
                    .collect();
                write!(f, "{}", l.join(" "))
            }
        }
    }
}

/// Creates the table.
pub async fn setup(cluster: &Cluster) -> Result<(), String> {
    setup_sql(
        cluster,
        DB,
        &["CREATE TABLE IF NOT EXISTS lists (k INTEGER PRIMARY KEY, v TEXT NOT NULL)"],
    )
    .await
}

/// The lists in use and the next value, shared by the clients.
#[derive(Debug, Default)]
pub struct Keys {
    active: Vec<(i64, usize)>,
    next_key: i64,
    next_value: i64,
}

impl Keys {
    fn fill(&mut self) {
        while self.active.len() < ACTIVE_KEYS {
            self.next_key += 1;
            self.active.push((self.next_key, APPENDS_PER_KEY));
        }
    }

    fn appends(&mut self, rng: &mut impl rand::Rng, n: usize) -> Vec<(i64, i64)> {
        self.fill();
        let mut out: Vec<(i64, i64)> = Vec::new();
        while out.len() < n {
            let i = rng.random_range(0..self.active.len());
            let k = self.active[i].0;
            if out.iter().any(|(ok, _)| *ok == k) {
                continue;
            }
            self.next_value += 1;
            out.push((k, self.next_value));
            self.active[i].1 -= 1;
            if self.active[i].1 == 0 {
                self.active.swap_remove(i);
                self.fill();
            }
        }
        out
    }

    fn reads(&mut self, rng: &mut impl rand::Rng) -> Vec<i64> {
        self.fill();
        let mut keys: Vec<i64> = self
            .active
            .iter()
            .map(|a| a.0)
            .filter(|_| rng.random_bool(0.6))
            .collect();
        if keys.is_empty() {
            keys.push(self.active[0].0);
        }
        keys
    }
}

/// One client: append transactions and reads until told to stop.
pub async fn client(ctx: Ctx, id: usize, keys: Arc<Mutex<Keys>>, rec: Recorder<Call, Ret>) {
    let mut rng = ctx.rng(Kind::Append, id);
    let mut db = ctx.cluster.db(DB);
    while !ctx.stopped() {
        let call = {
            let mut k = keys.lock().unwrap_or_else(|e| e.into_inner());
            if rng.random_bool(0.3) {
                Call::Read {
                    keys: k.reads(&mut rng),
                }
            } else {
                let n = if rng.random_bool(0.5) { 2 } else { 1 };
                Call::Append {
                    items: k.appends(&mut rng, n),
                }
            }
        };
        let hold = if rng.random_bool(0.1) {
            Duration::from_millis(rng.random_range(20..300))
        } else {
            Duration::ZERO
        };
        let invoke = rec.clock().now();
        let outcome = match &call {
            Call::Append { items } => append(&mut db, items, hold).await,
            Call::Read { keys } => match read(&mut db, keys).await {
                Ok(l) => Outcome::Ok(Ret::Lists(l)),
                Err(SqlError::Definite(m)) => Outcome::Fail(m),
                Err(SqlError::Unknown(m)) => Outcome::Unknown(m),
            },
        };
        rec.record(id, invoke, call, outcome);
        pace(&mut rng).await;
    }
}

async fn append(db: &mut Db, items: &[(i64, i64)], hold: Duration) -> Outcome<Ret> {
    // A transaction that fails before its COMMIT is sent cannot have committed: roll back
    // and drop the connection, so that nothing of it runs outside the transaction.
    async fn abandon(db: &mut Db, e: SqlError) -> Outcome<Ret> {
        let _ = db.exec("ROLLBACK", &[]).await;
        db.reset();
        Outcome::Fail(format!("before COMMIT: {e}"))
    }
    if let Err(e) = db.exec("BEGIN", &[]).await {
        return abandon(db, e).await;
    }
    for (i, (k, v)) in items.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(hold).await;
        }
        if let Err(e) = db
            .exec(
                "INSERT INTO lists (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = v || ',' || excluded.v",
                &[Val::Int(*k), Val::Text(v.to_string())],
            )
            .await
        {
            return abandon(db, e).await;
        }
    }
    match db.exec("COMMIT", &[]).await {
        Ok(_) => Outcome::Ok(Ret::Appended),
        Err(SqlError::Definite(m)) => {
            let _ = db.exec("ROLLBACK", &[]).await;
            db.reset();
            Outcome::Fail(format!("COMMIT: {m}"))
        }
        Err(SqlError::Unknown(m)) => {
            db.reset();
            Outcome::Unknown(format!("COMMIT: {m}"))
        }
    }
}

fn parse_list(text: &str) -> Result<Vec<i64>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|x| {
            x.parse::<i64>()
                .map_err(|e| format!("list element {x:?}: {e}"))
        })
        .collect()
}

fn lists(rows: Vec<Vec<Val>>, keys: &[i64]) -> Result<Vec<(i64, Vec<i64>)>, SqlError> {
    let mut found: HashMap<i64, Vec<i64>> = HashMap::new();
    for r in rows {
        match (r.first().and_then(Val::int), r.get(1)) {
            (Some(k), Some(Val::Text(t))) => {
                found.insert(k, parse_list(t).map_err(SqlError::Definite)?);
            }
            _ => return Err(SqlError::Definite(format!("unexpected row {r:?}"))),
        }
    }
    Ok(keys
        .iter()
        .map(|k| (*k, found.remove(k).unwrap_or_default()))
        .collect())
}

async fn read(db: &mut Db, keys: &[i64]) -> Result<Vec<(i64, Vec<i64>)>, SqlError> {
    let marks = vec!["?"; keys.len()].join(", ");
    let sql = format!("SELECT k, v FROM lists WHERE k IN ({marks})");
    let params: Vec<Val> = keys.iter().map(|k| Val::Int(*k)).collect();
    let rows = db.query(&sql, &params).await?;
    lists(rows, keys)
}

/// Reads every list after the cluster healed.
pub async fn final_read(cluster: &Cluster, rec: &Recorder<Call, Ret>) -> Result<(), String> {
    let mut keys: Vec<i64> = rec
        .snapshot()
        .iter()
        .flat_map(|op| match &op.call {
            Call::Append { items } => items.iter().map(|i| i.0).collect::<Vec<_>>(),
            Call::Read { keys } => keys.clone(),
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let mut db = cluster.db(DB);
    let invoke = rec.clock().now();
    let rows = retry(
        "final read of the lists",
        Duration::from_secs(60),
        async || {
            let rows = db.query("SELECT k, v FROM lists", &[]).await?;
            lists(rows, &keys)
        },
    )
    .await?;
    rec.record(
        usize::MAX,
        invoke,
        Call::Read { keys },
        Outcome::Ok(Ret::Lists(rows)),
    );
    Ok(())
}

/// An operation of the history.
type AOp = Op<Call, Ret>;

/// Checks the history (see the module documentation).
pub fn check(ops: &[Op<Call, Ret>], opts: &CheckOptions) -> Report {
    // Who appended what: (key, value) -> the operation.
    let mut appended: HashMap<(i64, i64), &Op<Call, Ret>> = HashMap::new();
    for op in ops {
        if let Call::Append { items } = &op.call {
            for it in items {
                appended.insert(*it, op);
            }
        }
    }
    // Every list read, per key, in invocation order.
    let mut reads: BTreeMap<i64, Vec<(&AOp, &Vec<i64>)>> = BTreeMap::new();
    for op in ops {
        if let Outcome::Ok(Ret::Lists(ls)) = &op.outcome {
            for (k, l) in ls {
                reads.entry(*k).or_default().push((op, l));
            }
        }
    }
    for rs in reads.values_mut() {
        rs.sort_by_key(|(o, _)| (o.invoke, o.index));
    }

    let mut problems: Vec<String> = Vec::new();
    let mut witness: Vec<String> = Vec::new();
    let mut note = |kind: String, lines: Vec<String>| {
        if witness.len() < 80 {
            witness.push(format!("append: {kind}; shortest violating sequence:"));
            witness.extend(lines.into_iter().map(|l| format!("  {l}")));
        }
        problems.push(kind);
    };

    let mut keys_checked = 0;
    let mut final_lists: HashMap<i64, &Vec<i64>> = HashMap::new();
    for (k, rs) in &reads {
        keys_checked += 1;
        if let Some((_, l)) = rs.iter().rev().find(|(o, _)| o.client == usize::MAX) {
            final_lists.insert(*k, l);
        }
        // Each list on its own.
        for (r, l) in rs {
            let mut seen = HashSet::new();
            for v in l.iter() {
                if !seen.insert(*v) {
                    note(
                        format!("k{k}: element {v} twice in one read"),
                        vec![r.to_string()],
                    );
                    continue;
                }
                match appended.get(&(*k, *v)) {
                    None => note(
                        format!("k{k}: element {v} was never appended to it"),
                        vec![r.to_string()],
                    ),
                    Some(a) if a.invoke > r.complete => note(
                        format!("k{k}: element {v} read before its append was invoked"),
                        vec![r.to_string(), a.to_string()],
                    ),
                    Some(a) if a.outcome.is_fail() => note(
                        format!("k{k}: element {v} present although its transaction failed"),
                        vec![a.to_string(), r.to_string()],
                    ),
                    Some(_) => {}
                }
            }
        }
        // One order: every list is a prefix of the longest.
        let Some((longest_op, longest)) = rs.iter().max_by_key(|(_, l)| l.len()) else {
            continue;
        };
        for (r, l) in rs {
            if !longest.starts_with(l) {
                let at = l
                    .iter()
                    .zip(longest.iter())
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                note(
                    format!("k{k}: two reads disagree on the order from position {at}"),
                    vec![r.to_string(), longest_op.to_string()],
                );
                break;
            }
        }
        // Real-time order: an element acknowledged before another was invoked comes first.
        let pos_ops: Vec<&Op<Call, Ret>> = longest
            .iter()
            .filter_map(|v| appended.get(&(*k, *v)).copied())
            .collect();
        // Scanning from the end, `first_acked` is the append at a later position that was
        // acknowledged earliest; if that was before the one at this position was invoked,
        // the list has them in the wrong order.
        let mut first_acked: Option<&Op<Call, Ret>> = None;
        for here in pos_ops.iter().rev() {
            if let Some(m) = first_acked
                && m.complete < here.invoke
            {
                note(
                    format!("k{k}: appends out of real-time order"),
                    vec![m.to_string(), here.to_string(), longest_op.to_string()],
                );
                break;
            }
            if here.outcome.ok().is_some() && first_acked.is_none_or(|m| here.complete < m.complete)
            {
                first_acked = Some(here);
            }
        }
        // Stale reads: an element known (acknowledged, or read by a read that ended) before a
        // read was invoked, less the bound, must be in it.
        let mut known: HashMap<i64, (Micros, &Op<Call, Ret>)> = HashMap::new();
        for ((ak, v), a) in &appended {
            if ak == k && a.outcome.ok().is_some() {
                known.insert(*v, (a.complete, *a));
            }
        }
        for (r, l) in rs {
            for v in l.iter() {
                let e = known.entry(*v).or_insert((r.complete, *r));
                if r.complete < e.0 {
                    *e = (r.complete, *r);
                }
            }
        }
        for (r, l) in rs {
            let horizon = r.invoke.saturating_sub(opts.stale_bound);
            let have: HashSet<i64> = l.iter().copied().collect();
            if let Some((v, (_, src))) = known
                .iter()
                .filter(|(v, (t, _))| *t < horizon && !have.contains(v))
                .min_by_key(|(_, (t, _))| *t)
            {
                note(
                    format!("k{k}: stale read misses element {v}"),
                    vec![src.to_string(), r.to_string()],
                );
                break;
            }
        }
    }
    // Lost acknowledged appends.
    let mut lost = 0;
    // Without a final read lost appends cannot be told: undecided (the recovery verdict says
    // why), not an anomaly.
    let no_final = !ops
        .iter()
        .any(|o| o.client == usize::MAX && o.outcome.ok().is_some());
    let mut acked: Vec<(&(i64, i64), &&AOp)> = appended
        .iter()
        .filter(|(_, a)| a.outcome.ok().is_some())
        .collect();
    acked.sort_by_key(|(kv, _)| **kv);
    for ((k, v), a) in acked.iter().filter(|_| !no_final) {
        if !final_lists.get(k).is_some_and(|l| l.contains(v)) {
            lost += 1;
            if lost <= 5 {
                note(
                    format!("k{k}: acknowledged append of {v} lost"),
                    vec![a.to_string()],
                );
            }
        }
    }
    // Atomicity: both appends of a transaction or neither, in every read of both lists.
    let mut torn = 0;
    for op in ops {
        let Call::Append { items } = &op.call else {
            continue;
        };
        if items.len() < 2 {
            continue;
        }
        let (a, b) = (items[0], items[1]);
        for r in ops {
            let Outcome::Ok(Ret::Lists(ls)) = &r.outcome else {
                continue;
            };
            let la = ls.iter().find(|(k, _)| *k == a.0);
            let lb = ls.iter().find(|(k, _)| *k == b.0);
            if let (Some((_, la)), Some((_, lb))) = (la, lb)
                && la.contains(&a.1) != lb.contains(&b.1)
            {
                torn += 1;
                if torn <= 3 {
                    note(
                        format!(
                            "transaction seen half-applied ({} of {items:?})",
                            if la.contains(&a.1) { "first" } else { "second" }
                        ),
                        vec![op.to_string(), r.to_string()],
                    );
                }
                break;
            }
        }
    }
    let (verdict, summary) = if problems.is_empty() && no_final {
        (
            Verdict::Undecided,
            format!(
                "{keys_checked} lists, one order each, but no final read to check for lost appends (the cluster did not recover)"
            ),
        )
    } else if problems.is_empty() {
        (
            Verdict::Pass,
            format!(
                "{keys_checked} lists, one order each; {} acknowledged appends all present",
                acked.len()
            ),
        )
    } else {
        (
            Verdict::Anomaly,
            format!(
                "{} anomalies ({lost} lost, {torn} half-applied; first: {})",
                problems.len(),
                problems[0]
            ),
        )
    };
    Report {
        workload: "append",
        counts: Counts::of(ops),
        verdict,
        summary,
        witness,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(index: usize, t: u64, items: &[(i64, i64)], outcome: Outcome<Ret>) -> Op<Call, Ret> {
        Op {
            index,
            client: 0,
            invoke: t,
            complete: t + 10,
            call: Call::Append {
                items: items.to_vec(),
            },
            outcome,
        }
    }

    fn read(index: usize, t: u64, lists: &[(i64, &[i64])], last: bool) -> Op<Call, Ret> {
        Op {
            index,
            client: if last { usize::MAX } else { 1 },
            invoke: t,
            complete: t + 10,
            call: Call::Read {
                keys: lists.iter().map(|l| l.0).collect(),
            },
            outcome: Outcome::Ok(Ret::Lists(
                lists.iter().map(|(k, l)| (*k, l.to_vec())).collect(),
            )),
        }
    }

    fn ok() -> Outcome<Ret> {
        Outcome::Ok(Ret::Appended)
    }

    #[test]
    fn good_history_passes() {
        let h = vec![
            app(0, 0, &[(1, 1), (2, 2)], ok()),
            app(1, 5, &[(1, 3)], Outcome::Unknown("timeout".into())),
            read(2, 8, &[(1, &[]), (2, &[])], false), // concurrent with the first append
            app(3, 20, &[(1, 4)], Outcome::Fail("busy".into())),
            read(4, 30, &[(1, &[1, 3]), (2, &[2])], false),
            app(5, 40, &[(2, 5)], ok()),
            read(6, 100, &[(1, &[1, 3]), (2, &[2, 5])], true),
        ];
        let r = check(&h, &CheckOptions::default());
        assert_eq!(r.verdict, Verdict::Pass, "{}: {:#?}", r.summary, r.witness);
    }

    #[test]
    fn lost_append_is_flagged() {
        let h = vec![
            app(0, 0, &[(1, 1)], ok()),
            app(1, 20, &[(1, 2)], ok()),
            read(2, 100, &[(1, &[1])], true),
        ];
        let r = check(&h, &CheckOptions::default());
        assert_eq!(r.verdict, Verdict::Anomaly);
        assert!(r.summary.contains("1 lost"), "{}", r.summary);
    }

    #[test]
    fn incompatible_orders_are_flagged() {
        let h = vec![
            app(0, 0, &[(1, 1)], ok()),
            app(1, 0, &[(1, 2)], ok()),
            read(2, 30, &[(1, &[2, 1])], false),
            read(3, 100, &[(1, &[1, 2])], true),
        ];
        let r = check(&h, &CheckOptions::default());
        assert_eq!(r.verdict, Verdict::Anomaly);
        assert!(
            r.witness
                .iter()
                .any(|l| l.contains("disagree on the order")),
            "{:#?}",
            r.witness
        );
    }

    #[test]
    fn real_time_reorder_is_flagged() {
        let h = vec![
            app(0, 0, &[(1, 1)], ok()),
            app(1, 20, &[(1, 2)], ok()),
            read(2, 100, &[(1, &[2, 1])], true),
        ];
        let r = check(&h, &CheckOptions::default());
        assert_eq!(r.verdict, Verdict::Anomaly);
        assert!(
            r.witness.iter().any(|l| l.contains("real-time order")),
            "{:#?}",
            r.witness
        );
    }

    #[test]
    fn half_applied_transaction_and_failed_append_are_flagged() {
        let h = vec![
            app(
                0,
                0,
                &[(1, 1), (2, 2)],
                Outcome::Fail("COMMIT: no transaction is active".into()),
            ),
            read(1, 100, &[(1, &[]), (2, &[2])], true),
        ];
        let r = check(&h, &CheckOptions::default());
        assert_eq!(r.verdict, Verdict::Anomaly);
        assert!(r.summary.contains("1 half-applied"), "{}", r.summary);
        assert!(
            r.witness.iter().any(|l| l.contains("transaction failed")),
            "{:#?}",
            r.witness
        );
    }

    #[test]
    fn stale_read_is_flagged_unless_within_the_bound() {
        let h = vec![
            app(0, 0, &[(1, 1)], ok()),
            read(1, 50, &[(1, &[])], false),
            read(2, 100, &[(1, &[1])], true),
        ];
        let r = check(&h, &CheckOptions::default());
        assert_eq!(r.verdict, Verdict::Anomaly);
        assert!(
            r.witness.iter().any(|l| l.contains("stale read")),
            "{:#?}",
            r.witness
        );
        let r = check(&h, &CheckOptions { stale_bound: 50 });
        assert_eq!(r.verdict, Verdict::Pass, "{}", r.summary);
    }

    /// A random history of real lists: every transaction takes effect (atomically) at a point
    /// inside its interval; unknown ones took effect or not, failed ones did not.
    fn simulated(seed: u64, n: usize) -> Vec<Op<Call, Ret>> {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let keys = 4i64;
        let mut lists: Vec<Vec<i64>> = vec![Vec::new(); keys as usize];
        let mut h = Vec::new();
        for i in 0..n {
            let t = 100 * i as u64 + 1000;
            let invoke = t - rng.random_range(0..250u64);
            let complete = t + rng.random_range(0..250u64);
            let (call, outcome) = if rng.random_bool(0.3) {
                let ks: Vec<i64> = (0..keys).filter(|_| rng.random_bool(0.6)).collect();
                let ls = ks
                    .iter()
                    .map(|k| (*k, lists[*k as usize].clone()))
                    .collect();
                (Call::Read { keys: ks }, Outcome::Ok(Ret::Lists(ls)))
            } else {
                let a = rng.random_range(0..keys);
                let mut items = vec![(a, 2 * i as i64)];
                if rng.random_bool(0.5) {
                    items.push(((a + 1) % keys, 2 * i as i64 + 1));
                }
                let applies = match rng.random_range(0..10) {
                    0 => (false, Outcome::Fail("busy".into())),
                    1 => (rng.random_bool(0.5), Outcome::Unknown("timeout".into())),
                    _ => (true, Outcome::Ok(Ret::Appended)),
                };
                if applies.0 {
                    for (k, v) in &items {
                        lists[*k as usize].push(*v);
                    }
                }
                (Call::Append { items }, applies.1)
            };
            h.push(Op {
                index: h.len(),
                client: i % 8,
                invoke,
                complete,
                call,
                outcome,
            });
        }
        let all: Vec<(i64, &[i64])> = (0..keys)
            .map(|k| (k, lists[k as usize].as_slice()))
            .collect();
        h.push(read(h.len(), 100 * n as u64 + 2000, &all, true));
        h
    }

    #[test]
    fn simulated_histories_of_real_lists_pass() {
        for seed in 0..50 {
            let r = check(&simulated(seed, 300), &CheckOptions::default());
            assert_eq!(
                r.verdict,
                Verdict::Pass,
                "seed {seed}: {}: {:#?}",
                r.summary,
                r.witness
            );
        }
    }
}
