//! The set workload: inserts of unique integers and reads of the whole set.
//!
//! Checked: every acknowledged insert is in the final read (none lost); no read holds a value
//! never inserted (none invented) or one whose insert definitely failed; a read includes
//! every insert acknowledged before it was invoked (none stale, less the stale bound of
//! leader-local reads), nor any value an earlier read returned.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::{CheckOptions, Ctx, Kind, Report, Verdict, pace, retry, setup_sql};
use crate::chaos::adapter::{Cluster, SqlError, Val};
use crate::chaos::history::{Counts, Micros, Op, Outcome, Recorder};

/// The database.
pub const DB: &str = "set";

/// A set operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Call {
    /// Insert `v`.
    Insert { v: i64 },
    /// Read the whole set.
    Read,
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Call::Insert { v } => write!(f, "insert({v})"),
            Call::Read => write!(f, "read"),
        }
    }
}

/// What a set operation returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ret {
    /// The insert was acknowledged.
    Inserted,
    /// The set's values, sorted.
    Values(Vec<i64>),
}

impl fmt::Display for Ret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ret::Inserted => write!(f, "inserted"),
            Ret::Values(v) => write!(f, "{} values", v.len()),
        }
    }
}

/// Creates the table.
pub async fn setup(cluster: &Cluster) -> Result<(), String> {
    setup_sql(
        cluster,
        DB,
        &["CREATE TABLE IF NOT EXISTS sets (v INTEGER PRIMARY KEY)"],
    )
    .await
}

/// One client: mostly inserts, a read now and then.
pub async fn client(ctx: Ctx, id: usize, next: Arc<AtomicI64>, rec: Recorder<Call, Ret>) {
    let mut rng = ctx.rng(Kind::Set, id);
    let mut db = ctx.cluster.db(DB);
    while !ctx.stopped() {
        let call = if rng.random_bool(0.05) {
            Call::Read
        } else {
            Call::Insert {
                v: next.fetch_add(1, Ordering::Relaxed),
            }
        };
        let invoke = rec.clock().now();
        let outcome = match &call {
            Call::Insert { v } => match db
                .exec("INSERT INTO sets (v) VALUES (?)", &[Val::Int(*v)])
                .await
            {
                Ok(_) => Outcome::Ok(Ret::Inserted),
                Err(SqlError::Definite(m)) => Outcome::Fail(m),
                Err(SqlError::Unknown(m)) => Outcome::Unknown(m),
            },
            Call::Read => match db.query("SELECT v FROM sets ORDER BY v", &[]).await {
                Ok(rows) => Outcome::Ok(Ret::Values(values(rows))),
                Err(SqlError::Definite(m)) => Outcome::Fail(m),
                Err(SqlError::Unknown(m)) => Outcome::Unknown(m),
            },
        };
        rec.record(id, invoke, call, outcome);
        pace(&mut rng).await;
    }
}

fn values(rows: Vec<Vec<Val>>) -> Vec<i64> {
    rows.iter()
        .filter_map(|r| r.first().and_then(Val::int))
        .collect()
}

/// Reads the set after the cluster healed.
pub async fn final_read(cluster: &Cluster, rec: &Recorder<Call, Ret>) -> Result<(), String> {
    let mut db = cluster.db(DB);
    let invoke = rec.clock().now();
    let rows = retry(
        "final read of the set",
        Duration::from_secs(60),
        async || db.query("SELECT v FROM sets ORDER BY v", &[]).await,
    )
    .await?;
    rec.record(
        usize::MAX,
        invoke,
        Call::Read,
        Outcome::Ok(Ret::Values(values(rows))),
    );
    Ok(())
}

/// Checks the history (see the module documentation).
pub fn check(ops: &[Op<Call, Ret>], opts: &CheckOptions) -> Report {
    // Every insert attempted: value -> (invoke, complete, outcome).
    let mut inserts: BTreeMap<i64, &Op<Call, Ret>> = BTreeMap::new();
    for op in ops {
        if let Call::Insert { v } = op.call {
            inserts.insert(v, op);
        }
    }
    let mut reads: Vec<(&Op<Call, Ret>, HashSet<i64>)> = ops
        .iter()
        .filter_map(|o| match &o.outcome {
            Outcome::Ok(Ret::Values(v)) => Some((o, v.iter().copied().collect())),
            _ => None,
        })
        .collect();
    reads.sort_by_key(|(o, _)| (o.invoke, o.index));
    let final_read = reads.iter().rev().find(|(o, _)| o.client == usize::MAX);

    let mut problems: Vec<String> = Vec::new();
    let mut witness: Vec<String> = Vec::new();
    let mut note = |kind: &str, lines: Vec<String>, problems: &mut Vec<String>| {
        if !problems.iter().any(|p| p.starts_with(kind)) && witness.len() < 60 {
            witness.push(format!("set: {kind}; shortest violating sequence:"));
            witness.extend(lines.into_iter().map(|l| format!("  {l}")));
        }
        problems.push(kind.to_string());
    };

    // Invented values and values whose insert failed.
    for (r, vals) in &reads {
        for v in vals {
            match inserts.get(v) {
                None => note(
                    &format!("invented value {v}"),
                    vec![r.to_string()],
                    &mut problems,
                ),
                Some(i) if i.invoke > r.complete => note(
                    &format!("value {v} read before its insert was invoked"),
                    vec![r.to_string(), i.to_string()],
                    &mut problems,
                ),
                Some(i) if i.outcome.is_fail() => note(
                    &format!("value {v} present although its insert failed"),
                    vec![i.to_string(), r.to_string()],
                    &mut problems,
                ),
                Some(_) => {}
            }
        }
    }
    // Lost acknowledged inserts.
    let mut lost = 0;
    match final_read {
        // Lost writes cannot be told without it: undecided (the recovery verdict says why).
        None => {}
        Some((fr, vals)) => {
            for (v, i) in &inserts {
                if i.outcome.ok().is_some() && !vals.contains(v) {
                    lost += 1;
                    if lost <= 5 {
                        note(
                            &format!("lost acknowledged insert {v}"),
                            vec![i.to_string(), fr.to_string()],
                            &mut problems,
                        );
                    }
                }
            }
        }
    }
    // Stale reads: a value known to be in the set (its insert acknowledged, or seen by a
    // read that ended) before a read was invoked, less the stale bound, must be in it.
    let mut known: BTreeMap<i64, (Micros, &Op<Call, Ret>)> = BTreeMap::new();
    for (v, i) in &inserts {
        if i.outcome.ok().is_some() {
            known.insert(*v, (i.complete, *i));
        }
    }
    for (r, vals) in &reads {
        for v in vals {
            let e = known.entry(*v).or_insert((r.complete, *r));
            if r.complete < e.0 {
                *e = (r.complete, *r);
            }
        }
    }
    let mut by_time: Vec<(Micros, i64)> = known.iter().map(|(v, (t, _))| (*t, *v)).collect();
    by_time.sort_unstable();
    let mut stale = 0;
    for (r, vals) in &reads {
        let horizon = r.invoke.saturating_sub(opts.stale_bound);
        let upto = by_time.partition_point(|(t, _)| *t < horizon);
        if let Some((_, v)) = by_time[..upto].iter().find(|(_, v)| !vals.contains(v)) {
            stale += 1;
            if stale <= 3 {
                let source = known[v].1;
                let how = if matches!(source.call, Call::Insert { .. }) {
                    "acknowledged"
                } else {
                    "already read"
                };
                note(
                    &format!("stale read misses {how} value {v}"),
                    vec![source.to_string(), r.to_string()],
                    &mut problems,
                );
            }
        }
    }
    let acked_n = inserts
        .values()
        .filter(|i| i.outcome.ok().is_some())
        .count();
    let (verdict, summary) = if problems.is_empty() && final_read.is_none() {
        (
            Verdict::Undecided,
            format!(
                "{} reads consistent, but no final read to check for lost inserts (the cluster did not recover)",
                reads.len()
            ),
        )
    } else if problems.is_empty() {
        (
            Verdict::Pass,
            format!(
                "{acked_n} acknowledged inserts all present, {} reads consistent",
                reads.len()
            ),
        )
    } else {
        let mut kinds: Vec<String> = Vec::new();
        for p in &problems {
            let k = p.split(' ').take(2).collect::<Vec<_>>().join(" ");
            if !kinds.contains(&k) {
                kinds.push(k);
            }
        }
        (
            Verdict::Anomaly,
            format!(
                "{} anomalies ({lost} lost, {stale} stale reads; kinds: {})",
                problems.len(),
                kinds.join(", ")
            ),
        )
    };
    Report {
        workload: "set",
        counts: Counts::of(ops),
        verdict,
        summary,
        witness,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ins(index: usize, v: i64, t: u64, outcome: Outcome<Ret>) -> Op<Call, Ret> {
        Op {
            index,
            client: 0,
            invoke: t,
            complete: t + 10,
            call: Call::Insert { v },
            outcome,
        }
    }

    fn read(index: usize, t: u64, vals: &[i64], last: bool) -> Op<Call, Ret> {
        Op {
            index,
            client: if last { usize::MAX } else { 1 },
            invoke: t,
            complete: t + 10,
            call: Call::Read,
            outcome: Outcome::Ok(Ret::Values(vals.to_vec())),
        }
    }

    #[test]
    fn good_history_passes() {
        let h = vec![
            ins(0, 1, 0, Outcome::Ok(Ret::Inserted)),
            ins(1, 2, 5, Outcome::Unknown("timeout".into())),
            read(2, 8, &[1], false), // concurrent with the insert of 1: may or may not see it
            ins(3, 3, 20, Outcome::Fail("not leader".into())),
            ins(4, 4, 30, Outcome::Unknown("timeout".into())),
            read(5, 50, &[1, 2], false),
            read(6, 100, &[1, 2], true),
        ];
        let r = check(&h, &CheckOptions::default());
        assert_eq!(r.verdict, Verdict::Pass, "{}", r.summary);
    }

    #[test]
    fn lost_insert_is_flagged() {
        let h = vec![
            ins(0, 1, 0, Outcome::Ok(Ret::Inserted)),
            ins(1, 2, 20, Outcome::Ok(Ret::Inserted)),
            read(2, 100, &[1], true),
        ];
        let r = check(&h, &CheckOptions::default());
        assert_eq!(r.verdict, Verdict::Anomaly);
        assert!(r.summary.contains("1 lost"), "{}", r.summary);
        assert!(
            r.witness.iter().any(|l| l.contains("insert(2)")),
            "{:#?}",
            r.witness
        );
    }

    #[test]
    fn invented_and_failed_values_are_flagged() {
        let h = vec![
            ins(0, 1, 0, Outcome::Fail("refused".into())),
            read(1, 100, &[1, 7], true),
        ];
        let r = check(&h, &CheckOptions::default());
        assert_eq!(r.verdict, Verdict::Anomaly);
        assert!(
            r.witness.iter().any(|l| l.contains("invented value 7")),
            "{:#?}",
            r.witness
        );
        assert!(
            r.witness.iter().any(|l| l.contains("insert failed")),
            "{:#?}",
            r.witness
        );
    }

    #[test]
    fn stale_and_vanishing_reads_are_flagged_unless_within_the_bound() {
        // Acknowledged, then missed by a later read.
        let h = vec![
            ins(0, 1, 0, Outcome::Ok(Ret::Inserted)),
            read(1, 40, &[], false),
            read(2, 100, &[1], true),
        ];
        let r = check(&h, &CheckOptions::default());
        assert_eq!(r.verdict, Verdict::Anomaly);
        assert!(r.summary.contains("1 stale"), "{}", r.summary);
        assert!(
            r.witness.iter().any(|l| l.contains("acknowledged value 1")),
            "{:#?}",
            r.witness
        );
        assert_eq!(
            check(&h, &CheckOptions { stale_bound: 40 }).verdict,
            Verdict::Pass
        );
        // Of unknown outcome, read once, then gone from a later read.
        let h = vec![
            ins(0, 1, 0, Outcome::Unknown("timeout".into())),
            read(1, 20, &[1], false),
            read(2, 40, &[], false),
            read(3, 100, &[1], true),
        ];
        let r = check(&h, &CheckOptions::default());
        assert_eq!(r.verdict, Verdict::Anomaly);
        assert!(
            r.witness.iter().any(|l| l.contains("already read value 1")),
            "{:#?}",
            r.witness
        );
        let r = check(&h, &CheckOptions { stale_bound: 40 });
        assert_eq!(r.verdict, Verdict::Pass, "{}", r.summary);
    }

    /// A random history of a real set: every operation takes effect at a point inside its
    /// interval; unknown inserts took effect or not, failed ones did not.
    fn simulated(seed: u64, n: usize) -> Vec<Op<Call, Ret>> {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut set: Vec<i64> = Vec::new();
        let mut h = Vec::new();
        for i in 0..n {
            let t = 100 * i as u64 + 1000;
            let invoke = t - rng.random_range(0..250u64);
            let complete = t + rng.random_range(0..250u64);
            let (call, outcome) = if rng.random_bool(0.2) {
                (Call::Read, Outcome::Ok(Ret::Values(set.clone())))
            } else {
                let v = i as i64;
                let outcome = match rng.random_range(0..10) {
                    0 => Outcome::Fail("busy".into()),
                    1 => {
                        if rng.random_bool(0.5) {
                            set.push(v);
                        }
                        Outcome::Unknown("timeout".into())
                    }
                    _ => {
                        set.push(v);
                        Outcome::Ok(Ret::Inserted)
                    }
                };
                (Call::Insert { v }, outcome)
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
        let t = 100 * n as u64 + 2000;
        h.push(read(h.len(), t, &set, true));
        h
    }

    #[test]
    fn simulated_histories_of_a_real_set_pass_and_a_lost_insert_does_not() {
        for seed in 0..50 {
            let h = simulated(seed, 300);
            let r = check(&h, &CheckOptions::default());
            assert_eq!(r.verdict, Verdict::Pass, "seed {seed}: {}", r.summary);
            // Drop one acknowledged value from the final read.
            let mut h2 = h.clone();
            let acked = h2
                .iter()
                .find_map(|o| match (&o.call, &o.outcome) {
                    (Call::Insert { v }, Outcome::Ok(_)) => Some(*v),
                    _ => None,
                })
                .unwrap();
            if let Some(Op {
                outcome: Outcome::Ok(Ret::Values(vals)),
                ..
            }) = h2.last_mut()
            {
                vals.retain(|v| *v != acked);
            }
            assert_eq!(
                check(&h2, &CheckOptions::default()).verdict,
                Verdict::Anomaly
            );
        }
    }
}
