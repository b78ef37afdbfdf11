//! The bank workload: transfers between accounts in explicit transactions (some held open
//! for a while between their statements), and reads of every balance. Every read must see
//! the same total and no negative balance, whatever happened to the transfers.

use std::fmt;
use std::time::Duration;

use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::{CheckOptions, Ctx, Kind, Report, Verdict, pace, retry, setup_sql};
use crate::chaos::adapter::{Cluster, Db, SqlError, Val};
use crate::chaos::history::{Counts, Op, Outcome, Recorder};

/// The database.
pub const DB: &str = "bank";
/// Accounts.
pub const ACCOUNTS: usize = 8;
/// Initial balance of each account.
pub const INITIAL: i64 = 100;

/// A bank operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Call {
    /// Move `amount` from account `from` to account `to`, keeping the transaction open for
    /// `hold_ms` between its statements.
    Transfer {
        /// Source account.
        from: i64,
        /// Destination account.
        to: i64,
        /// Amount.
        amount: i64,
        /// Pause inside the transaction.
        hold_ms: u64,
        /// Read the balance first (true) or update with a guard (false).
        read_first: bool,
        /// `BEGIN IMMEDIATE` (takes the write lock at once) rather than `BEGIN`.
        #[serde(default)]
        immediate: bool,
    },
    /// Read every balance (in one statement, or in two inside one transaction).
    Read {
        /// Two statements in an explicit transaction.
        in_tx: bool,
    },
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Call::Transfer {
                from,
                to,
                amount,
                hold_ms,
                read_first,
                immediate,
            } => write!(
                f,
                "transfer({amount}: a{from} -> a{to}, hold {hold_ms} ms, {}{})",
                if *read_first { "read-first" } else { "guarded" },
                if *immediate { ", immediate" } else { "" }
            ),
            Call::Read { in_tx: false } => write!(f, "read"),
            Call::Read { in_tx: true } => write!(f, "read-in-tx"),
        }
    }
}

/// What a bank operation returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ret {
    /// The transfer committed.
    Transferred,
    /// The source had too little; rolled back.
    Insufficient,
    /// The balances, by account id.
    Balances(Vec<(i64, i64)>),
}

impl fmt::Display for Ret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ret::Transferred => write!(f, "transferred"),
            Ret::Insufficient => write!(f, "insufficient funds"),
            Ret::Balances(b) => {
                let total: i64 = b.iter().map(|x| x.1).sum();
                let list: Vec<String> = b.iter().map(|(a, v)| format!("a{a}={v}")).collect();
                write!(f, "[{}] total {total}", list.join(" "))
            }
        }
    }
}

/// Creates the accounts (idempotent: a retried insert changes nothing).
pub async fn setup(cluster: &Cluster) -> Result<(), String> {
    let values: Vec<String> = (0..ACCOUNTS).map(|a| format!("({a}, {INITIAL})")).collect();
    let insert = format!(
        "INSERT OR IGNORE INTO bank (id, balance) VALUES {}",
        values.join(", ")
    );
    setup_sql(
        cluster,
        DB,
        &[
            "CREATE TABLE IF NOT EXISTS bank (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)",
            &insert,
        ],
    )
    .await
}

/// One client: transfers and reads until told to stop.
pub async fn client(ctx: Ctx, id: usize, rec: Recorder<Call, Ret>) {
    let mut rng = ctx.rng(Kind::Bank, id);
    let mut db = ctx.cluster.db(DB);
    while !ctx.stopped() {
        let call = if rng.random_bool(0.3) {
            Call::Read {
                in_tx: rng.random_bool(0.3),
            }
        } else {
            let from = rng.random_range(0..ACCOUNTS as i64);
            let to = (from + rng.random_range(1..ACCOUNTS as i64)) % ACCOUNTS as i64;
            Call::Transfer {
                from,
                to,
                amount: rng.random_range(1..=30),
                hold_ms: if rng.random_bool(0.25) {
                    rng.random_range(50..800)
                } else {
                    0
                },
                read_first: rng.random_bool(0.5),
                immediate: rng.random_bool(0.3),
            }
        };
        let invoke = rec.clock().now();
        let outcome = match &call {
            Call::Read { in_tx } => read(&mut db, *in_tx).await,
            Call::Transfer {
                from,
                to,
                amount,
                hold_ms,
                read_first,
                immediate,
            } => {
                let t = Transfer {
                    from: *from,
                    to: *to,
                    amount: *amount,
                    hold: Duration::from_millis(*hold_ms),
                    read_first: *read_first,
                    immediate: *immediate,
                };
                transfer(&mut db, &t).await
            }
        };
        rec.record(id, invoke, call, outcome);
        pace(&mut rng).await;
    }
}

/// Ends a transaction that failed before its COMMIT was sent: it cannot have committed.
/// The connection is dropped so that nothing of it runs outside the transaction.
async fn abandon(db: &mut Db, why: SqlError) -> Outcome<Ret> {
    let _ = db.exec("ROLLBACK", &[]).await;
    db.reset();
    Outcome::Fail(format!("before COMMIT: {why}"))
}

/// A transfer to run.
struct Transfer {
    from: i64,
    to: i64,
    amount: i64,
    hold: Duration,
    read_first: bool,
    immediate: bool,
}

async fn transfer(db: &mut Db, t: &Transfer) -> Outcome<Ret> {
    let &Transfer {
        from,
        to,
        amount,
        hold,
        read_first,
        immediate,
    } = t;
    let begin = if immediate {
        "BEGIN IMMEDIATE"
    } else {
        "BEGIN"
    };
    if let Err(e) = db.exec(begin, &[]).await {
        return abandon(db, e).await;
    }
    if read_first {
        let balance = match db
            .query("SELECT balance FROM bank WHERE id = ?", &[Val::Int(from)])
            .await
        {
            Ok(rows) => rows.first().and_then(|r| r.first()).and_then(Val::int),
            Err(e) => return abandon(db, e).await,
        };
        tokio::time::sleep(hold).await;
        if balance.is_none_or(|b| b < amount) {
            let _ = db.exec("ROLLBACK", &[]).await;
            return Outcome::Ok(Ret::Insufficient);
        }
        if let Err(e) = db
            .exec(
                "UPDATE bank SET balance = balance - ? WHERE id = ?",
                &[Val::Int(amount), Val::Int(from)],
            )
            .await
        {
            return abandon(db, e).await;
        }
    } else {
        match db
            .exec(
                "UPDATE bank SET balance = balance - ? WHERE id = ? AND balance >= ?",
                &[Val::Int(amount), Val::Int(from), Val::Int(amount)],
            )
            .await
        {
            Ok(1) => {}
            Ok(_) => {
                let _ = db.exec("ROLLBACK", &[]).await;
                return Outcome::Ok(Ret::Insufficient);
            }
            Err(e) => return abandon(db, e).await,
        }
        tokio::time::sleep(hold).await;
    }
    if let Err(e) = db
        .exec(
            "UPDATE bank SET balance = balance + ? WHERE id = ?",
            &[Val::Int(amount), Val::Int(to)],
        )
        .await
    {
        return abandon(db, e).await;
    }
    match db.exec("COMMIT", &[]).await {
        Ok(_) => Outcome::Ok(Ret::Transferred),
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

fn balances(rows: Vec<Vec<Val>>) -> Result<Vec<(i64, i64)>, String> {
    rows.into_iter()
        .map(
            |r| match (r.first().and_then(Val::int), r.get(1).and_then(Val::int)) {
                (Some(a), Some(b)) => Ok((a, b)),
                _ => Err(format!("unexpected row {r:?}")),
            },
        )
        .collect()
}

async fn read(db: &mut Db, in_tx: bool) -> Outcome<Ret> {
    if !in_tx {
        return match db
            .query("SELECT id, balance FROM bank ORDER BY id", &[])
            .await
        {
            Ok(rows) => match balances(rows) {
                Ok(b) => Outcome::Ok(Ret::Balances(b)),
                Err(e) => Outcome::Fail(e),
            },
            // A read changes nothing: an unanswered one is just not known.
            Err(SqlError::Definite(m)) => Outcome::Fail(m),
            Err(SqlError::Unknown(m)) => Outcome::Unknown(m),
        };
    }
    let half = ACCOUNTS as i64 / 2;
    if let Err(e) = db.exec("BEGIN", &[]).await {
        return abandon(db, e).await;
    }
    let mut all = Vec::new();
    for (sql, bound) in [
        (
            "SELECT id, balance FROM bank WHERE id < ? ORDER BY id",
            half,
        ),
        (
            "SELECT id, balance FROM bank WHERE id >= ? ORDER BY id",
            half,
        ),
    ] {
        match db.query(sql, &[Val::Int(bound)]).await {
            Ok(rows) => match balances(rows) {
                Ok(b) => all.extend(b),
                Err(e) => return abandon(db, SqlError::Definite(e)).await,
            },
            Err(e) => return abandon(db, e).await,
        }
    }
    match db.exec("COMMIT", &[]).await {
        Ok(_) => Outcome::Ok(Ret::Balances(all)),
        Err(e) => {
            db.reset();
            Outcome::Fail(format!("COMMIT of a read: {e}"))
        }
    }
}

/// Reads every balance after the cluster healed.
pub async fn final_read(cluster: &Cluster, rec: &Recorder<Call, Ret>) -> Result<(), String> {
    let mut db = cluster.db(DB);
    let invoke = rec.clock().now();
    let rows = retry(
        "final read of the balances",
        Duration::from_secs(60),
        async || {
            db.query("SELECT id, balance FROM bank ORDER BY id", &[])
                .await
        },
    )
    .await?;
    let outcome = match balances(rows) {
        Ok(b) => Outcome::Ok(Ret::Balances(b)),
        Err(e) => Outcome::Fail(e),
    };
    rec.record(usize::MAX, invoke, Call::Read { in_tx: false }, outcome);
    Ok(())
}

/// What is wrong with a read, if anything.
fn broken(b: &[(i64, i64)]) -> Option<String> {
    let total: i64 = b.iter().map(|x| x.1).sum();
    let expected = INITIAL * ACCOUNTS as i64;
    let mut wrong = Vec::new();
    if b.len() != ACCOUNTS {
        wrong.push(format!("{} accounts instead of {ACCOUNTS}", b.len()));
    }
    if total != expected {
        wrong.push(format!("total {total} instead of {expected}"));
    }
    let negative: Vec<String> = b
        .iter()
        .filter(|x| x.1 < 0)
        .map(|(a, v)| format!("a{a}={v}"))
        .collect();
    if !negative.is_empty() {
        wrong.push(format!("negative balance {}", negative.join(" ")));
    }
    (!wrong.is_empty()).then(|| wrong.join(", "))
}

/// An operation of the history.
type BOp = Op<Call, Ret>;

/// Checks every acknowledged read, and that a final read exists.
pub fn check(ops: &[Op<Call, Ret>], _opts: &CheckOptions) -> Report {
    let mut reads: Vec<&Op<Call, Ret>> = ops
        .iter()
        .filter(|o| matches!(o.outcome, Outcome::Ok(Ret::Balances(_))))
        .collect();
    reads.sort_by_key(|o| o.complete);
    let mut bad = Vec::new();
    let mut last_good: Option<&Op<Call, Ret>> = None;
    let mut first_bad_after: Option<(Option<&BOp>, &BOp, String)> = None;
    for r in &reads {
        let Outcome::Ok(Ret::Balances(b)) = &r.outcome else {
            continue;
        };
        match broken(b) {
            None => last_good = Some(r),
            Some(why) => {
                if first_bad_after.is_none() {
                    first_bad_after = Some((last_good, r, why.clone()));
                }
                bad.push(why);
            }
        }
    }
    let has_final = ops
        .iter()
        .any(|o| o.client == usize::MAX && o.outcome.ok().is_some());
    let mut witness = Vec::new();
    if let Some((good, r, why)) = &first_bad_after {
        // The transfers that may have run between the last good read and the first bad one.
        let from = good.map_or(0, |g| g.invoke);
        witness.push(format!(
            "bank: first broken read ({why}); transfers between the last good read and it:"
        ));
        if let Some(g) = good {
            witness.push(format!("  {g}"));
        }
        let mut between: Vec<&Op<Call, Ret>> = ops
            .iter()
            .filter(|o| matches!(o.call, Call::Transfer { .. }))
            .filter(|o| o.complete >= from && o.invoke <= r.complete)
            .filter(|o| !matches!(o.outcome, Outcome::Ok(Ret::Insufficient)))
            .collect();
        between.sort_by_key(|o| o.invoke);
        let shown = between.len().min(40);
        for o in &between[..shown] {
            witness.push(format!("  {o}"));
        }
        if between.len() > shown {
            witness.push(format!("  ... {} more transfers", between.len() - shown));
        }
        witness.push(format!("  {r}"));
    }
    let n = reads.len();
    let (verdict, summary) = if !bad.is_empty() {
        (
            Verdict::Anomaly,
            format!("{} of {n} reads broken (first: {})", bad.len(), bad[0]),
        )
    } else if !has_final {
        // The recovery verdict says why; a missing read is not an anomaly of the data.
        (
            Verdict::Undecided,
            format!("{n} reads fine, but no final read (the cluster did not recover)"),
        )
    } else {
        (
            Verdict::Pass,
            format!(
                "{n} reads, all total {} and none negative",
                INITIAL * ACCOUNTS as i64
            ),
        )
    };
    Report {
        workload: "bank",
        counts: Counts::of(ops),
        verdict,
        summary,
        witness,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(index: usize, t: u64, b: Vec<i64>) -> Op<Call, Ret> {
        Op {
            index,
            client: if index == 99 { usize::MAX } else { 0 },
            invoke: t,
            complete: t + 5,
            call: Call::Read { in_tx: false },
            outcome: Outcome::Ok(Ret::Balances(
                b.into_iter()
                    .enumerate()
                    .map(|(a, v)| (a as i64, v))
                    .collect(),
            )),
        }
    }

    fn transfer(index: usize, t: u64, outcome: Outcome<Ret>) -> Op<Call, Ret> {
        Op {
            index,
            client: 1,
            invoke: t,
            complete: t + 5,
            call: Call::Transfer {
                from: 0,
                to: 1,
                amount: 10,
                hold_ms: 0,
                read_first: true,
                immediate: false,
            },
            outcome,
        }
    }

    #[test]
    fn constant_totals_pass() {
        let h = vec![
            read(0, 0, vec![100; 8]),
            transfer(1, 10, Outcome::Ok(Ret::Transferred)),
            transfer(2, 20, Outcome::Unknown("timeout".into())),
            read(3, 30, vec![90, 110, 100, 100, 100, 100, 100, 100]),
            read(99, 40, vec![80, 120, 100, 100, 100, 100, 100, 100]),
        ];
        let r = check(&h, &CheckOptions::default());
        assert_eq!(r.verdict, Verdict::Pass, "{}", r.summary);
    }

    #[test]
    fn created_money_is_flagged_with_the_transfers_around_it() {
        let h = vec![
            read(0, 0, vec![100; 8]),
            transfer(
                1,
                10,
                Outcome::Fail("COMMIT: no transaction is active".into()),
            ),
            read(2, 30, vec![100, 110, 100, 100, 100, 100, 100, 100]),
            read(99, 40, vec![100; 8]),
        ];
        let r = check(&h, &CheckOptions::default());
        assert_eq!(r.verdict, Verdict::Anomaly);
        assert!(r.summary.contains("total 810"), "{}", r.summary);
        assert!(
            r.witness.iter().any(|l| l.contains("transfer(10")),
            "{:#?}",
            r.witness
        );
    }

    #[test]
    fn negative_balance_and_missing_account_are_flagged() {
        let h = vec![
            read(0, 0, vec![-10, 110, 100, 100, 100, 100, 100, 100]),
            read(99, 9, vec![100; 8]),
        ];
        let r = check(&h, &CheckOptions::default());
        assert_eq!(r.verdict, Verdict::Anomaly);
        assert!(r.summary.contains("negative"), "{}", r.summary);
        let h = vec![read(0, 0, vec![100; 7]), read(99, 9, vec![100; 8])];
        assert_eq!(
            check(&h, &CheckOptions::default()).verdict,
            Verdict::Anomaly
        );
    }

    #[test]
    fn a_missing_final_read_leaves_it_undecided() {
        let h = vec![read(0, 0, vec![100; 8])];
        assert_eq!(
            check(&h, &CheckOptions::default()).verdict,
            Verdict::Undecided
        );
    }
}
