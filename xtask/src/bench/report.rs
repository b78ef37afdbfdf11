//! Figures and the one table the bench prints: C and dqlite-rs side by side, with the ratio
//! dqlite-rs / C of every figure.

use std::fmt::Write as _;
use std::time::Duration;

/// One timed phase of requests.
#[derive(Debug, Clone, Copy, Default)]
pub struct Phase {
    /// Successful requests.
    pub ops: u64,
    /// Seconds from the phase's start to its last request's end.
    pub wall: f64,
    /// Median latency of the successful requests, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Requests refused with SQLITE_BUSY ("database is locked"): C 1.11 answers a write that
    /// meets another connection's write with it at once instead of queueing.
    pub busy: u64,
    /// Other failed requests.
    pub errors: u64,
}

impl Phase {
    /// Summary of the latencies of successful requests.
    pub fn from_latencies(mut lat: Vec<Duration>, wall: Duration, busy: u64, errors: u64) -> Phase {
        lat.sort_unstable();
        Phase {
            ops: lat.len() as u64,
            wall: wall.as_secs_f64(),
            p50_ms: percentile_ms(&lat, 0.50),
            p99_ms: percentile_ms(&lat, 0.99),
            busy,
            errors,
        }
    }

    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        if self.wall > 0.0 {
            self.ops as f64 / self.wall
        } else {
            0.0
        }
    }
}

/// The `p` quantile of sorted latencies, in ms (NaN when there are none).
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    sorted[i].as_secs_f64() * 1e3
}

/// The median of some numbers (NaN when empty).
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A figure of one backend.
#[derive(Debug, Clone)]
pub enum Figure {
    /// A throughput phase; several when the cell ran in more than one round (the median of
    /// each quantity is shown).
    Rate(Vec<Phase>),
    /// A duration in seconds.
    Seconds(f64),
    /// Bytes per node.
    Bytes(Vec<u64>),
    /// Throughput of a bulk load: bytes written, seconds, and the per-transaction p50/p99.
    Bulk {
        /// Bytes of row data inserted.
        bytes: u64,
        /// Seconds for all of it.
        secs: f64,
        /// Median transaction, ms.
        p50_ms: f64,
        /// 99th percentile transaction, ms.
        p99_ms: f64,
    },
    /// Not measured, with the reason.
    Missing(String),
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn ms(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else if x < 1.0 {
        format!("{x:.3}")
    } else if x < 100.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.0}")
    }
}

impl Figure {
    fn medians(phases: &[Phase]) -> (f64, f64, f64, u64, u64) {
        let rate = median(&phases.iter().map(Phase::rate).collect::<Vec<_>>());
        let p50 = median(&phases.iter().map(|p| p.p50_ms).collect::<Vec<_>>());
        let p99 = median(&phases.iter().map(|p| p.p99_ms).collect::<Vec<_>>());
        let busy = phases.iter().map(|p| p.busy).sum::<u64>() / phases.len().max(1) as u64;
        let errors = phases.iter().map(|p| p.errors).sum::<u64>() / phases.len().max(1) as u64;
        (rate, p50, p99, busy, errors)
    }

    /// The figure as a table cell.
    pub fn text(&self) -> String {
        match self {
            Figure::Rate(phases) => {
                let (rate, p50, p99, busy, errors) = Figure::medians(phases);
                let mut s = format!("{rate:.0}/s, p50 {} p99 {} ms", ms(p50), ms(p99));
                if busy > 0 {
                    let _ = write!(s, ", {busy} busy");
                }
                if errors > 0 {
                    let _ = write!(s, ", {errors} errors");
                }
                s
            }
            Figure::Seconds(s) => format!("{s:.2} s"),
            Figure::Bytes(per_node) => {
                let all: Vec<String> = per_node.iter().map(|b| format!("{:.0}", mib(*b))).collect();
                format!("{} MiB", all.join(" / "))
            }
            Figure::Bulk {
                bytes,
                secs,
                p50_ms,
                p99_ms,
            } => format!(
                "{:.1} MiB/s ({:.1} s), tx p50 {} p99 {} ms",
                mib(*bytes) / secs,
                secs,
                ms(*p50_ms),
                ms(*p99_ms)
            ),
            Figure::Missing(why) => format!("- ({why})"),
        }
    }
}

fn ratio(rs: f64, c: f64) -> String {
    if c > 0.0 && rs.is_finite() && c.is_finite() {
        format!("{:.2}x", rs / c)
    } else {
        "-".into()
    }
}

/// dqlite-rs / C for two figures of the same kind.
fn ratio_text(c: &Figure, rs: &Figure) -> String {
    match (c, rs) {
        (Figure::Rate(c), Figure::Rate(r)) => {
            let (cr, c50, c99, _, _) = Figure::medians(c);
            let (rr, r50, r99, _, _) = Figure::medians(r);
            format!(
                "{} (p50 {}, p99 {})",
                ratio(rr, cr),
                ratio(r50, c50),
                ratio(r99, c99)
            )
        }
        (Figure::Seconds(c), Figure::Seconds(r)) => ratio(*r, *c),
        (Figure::Bytes(c), Figure::Bytes(r)) => {
            let max = |v: &[u64]| v.iter().copied().max().unwrap_or(0) as f64;
            format!("{} (largest node)", ratio(max(r), max(c)))
        }
        (
            Figure::Bulk {
                bytes: cb,
                secs: cs,
                ..
            },
            Figure::Bulk {
                bytes: rb,
                secs: rsecs,
                ..
            },
        ) => ratio(*rb as f64 / rsecs, *cb as f64 / cs),
        _ => "-".into(),
    }
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was measured.
    pub what: String,
    /// Which client drove it (`rust`, `python`, or `-`).
    pub client: String,
    /// Connections (`-` where it does not apply).
    pub conns: String,
    /// C dqlite's figure.
    pub c: Figure,
    /// dqlite-rs's figure.
    pub rs: Figure,
}

/// The whole report: a header describing the run, and the rows.
#[derive(Debug, Default)]
pub struct Report {
    /// Lines above the table (date, machine, command, load).
    pub header: Vec<String>,
    /// The table.
    pub rows: Vec<Row>,
    /// Lines below the table (notes, load during the run).
    pub notes: Vec<String>,
}

impl Report {
    /// Markdown: header lines, the table, notes.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        for h in &self.header {
            let _ = writeln!(s, "{h}");
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "| measurement | client | conns | C dqlite 1.11 | dqlite-rs | rs/C |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|");
        for r in &self.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                r.what,
                r.client,
                r.conns,
                r.c.text(),
                r.rs.text(),
                ratio_text(&r.c, &r.rs)
            );
        }
        if !self.notes.is_empty() {
            let _ = writeln!(s);
            for n in &self.notes {
                let _ = writeln!(s, "{n}");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_rates() {
        let lat: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let p = Phase::from_latencies(lat, Duration::from_secs(2), 3, 1);
        assert_eq!(p.ops, 100);
        assert!((p.rate() - 50.0).abs() < 1e-9);
        assert!((p.p50_ms - 51.0).abs() < 1e-9);
        assert!((p.p99_ms - 100.0).abs() < 1e-9);
        assert!(
            Phase::from_latencies(Vec::new(), Duration::ZERO, 0, 0)
                .p50_ms
                .is_nan()
        );
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn ratios_are_rs_over_c() {
        let phase = |ops, p50| Phase {
            ops,
            wall: 1.0,
            p50_ms: p50,
            p99_ms: p50 * 2.0,
            busy: 0,
            errors: 0,
        };
        let c = Figure::Rate(vec![phase(100, 2.0)]);
        let rs = Figure::Rate(vec![phase(300, 1.0)]);
        assert_eq!(ratio_text(&c, &rs), "3.00x (p50 0.50x, p99 0.50x)");
        assert_eq!(
            ratio_text(&Figure::Seconds(5.0), &Figure::Seconds(1.0)),
            "0.20x"
        );
        assert_eq!(
            ratio_text(&Figure::Bytes(vec![10, 20]), &Figure::Bytes(vec![5, 30])),
            "1.50x (largest node)"
        );
        assert_eq!(
            ratio_text(&Figure::Missing("x".into()), &Figure::Seconds(1.0)),
            "-"
        );
    }
}
