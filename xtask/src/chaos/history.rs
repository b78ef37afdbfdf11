//! What the workloads did: one record per operation, with the times it was invoked and
//! completed (microseconds since the start of the run) and its outcome.
//!
//! An outcome is `Ok` (the server acknowledged it, with what it returned), `Fail` (the server
//! or the client said it did not happen) or `Unknown` (a timeout, a lost connection after the
//! request was sent, or 10506 "leadership lost": it may or may not have happened, at any time
//! after its invocation).

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Microseconds since the start of the run.
pub type Micros = u64;

/// The run's clock: every time in a history, a fault record or a report is read from it.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    /// A clock whose zero is now.
    pub fn start() -> Clock {
        Clock {
            start: Instant::now(),
        }
    }

    /// Microseconds since the start.
    pub fn now(&self) -> Micros {
        self.start.elapsed().as_micros() as Micros
    }
}

/// Formats a time of the run as seconds with milliseconds.
pub fn secs(t: Micros) -> String {
    format!("{:8.3}s", t as f64 / 1e6)
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome<R> {
    /// Acknowledged, with what the server returned.
    Ok(R),
    /// Definitely did not take effect (the server refused it, or it was never sent).
    Fail(String),
    /// May or may not have taken effect.
    Unknown(String),
}

impl<R> Outcome<R> {
    /// The acknowledged result, if any.
    pub fn ok(&self) -> Option<&R> {
        match self {
            Outcome::Ok(r) => Some(r),
            _ => None,
        }
    }

    /// True for [`Outcome::Fail`].
    pub fn is_fail(&self) -> bool {
        matches!(self, Outcome::Fail(_))
    }
}

/// One operation of one client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Op<C, R> {
    /// Position in the history (completion order).
    pub index: usize,
    /// The client (one connection each) that ran it; final reads use `usize::MAX`.
    pub client: usize,
    /// When the client started it.
    pub invoke: Micros,
    /// When the client saw its outcome.
    pub complete: Micros,
    /// What was asked.
    pub call: C,
    /// How it ended.
    pub outcome: Outcome<R>,
}

impl<C: fmt::Display, R: fmt::Display> fmt::Display for Op<C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let client = if self.client == usize::MAX {
            "final".to_string()
        } else {
            format!("c{}", self.client)
        };
        write!(
            f,
            "#{:<6} [{} .. {}] {client:>5} {} -> ",
            self.index,
            secs(self.invoke),
            secs(self.complete),
            self.call
        )?;
        match &self.outcome {
            Outcome::Ok(r) => write!(f, "ok {r}"),
            Outcome::Fail(m) => write!(f, "FAIL ({m})"),
            Outcome::Unknown(m) => write!(f, "UNKNOWN ({m})"),
        }
    }
}

/// Counts of operations by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Acknowledged.
    pub ok: usize,
    /// Definitely failed.
    pub fail: usize,
    /// Outcome unknown.
    pub unknown: usize,
}

impl Counts {
    /// Counts the outcomes of `ops`.
    pub fn of<C, R>(ops: &[Op<C, R>]) -> Counts {
        let mut c = Counts::default();
        for op in ops {
            match op.outcome {
                Outcome::Ok(_) => c.ok += 1,
                Outcome::Fail(_) => c.fail += 1,
                Outcome::Unknown(_) => c.unknown += 1,
            }
        }
        c
    }

    /// All operations.
    pub fn total(&self) -> usize {
        self.ok + self.fail + self.unknown
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ops: {} ok, {} failed, {} unknown",
            self.total(),
            self.ok,
            self.fail,
            self.unknown
        )
    }
}

/// Collects the operations of all clients of one workload (cheap to clone).
#[derive(Debug)]
pub struct Recorder<C, R> {
    clock: Clock,
    ops: Arc<Mutex<Vec<Op<C, R>>>>,
}

impl<C, R> Clone for Recorder<C, R> {
    fn clone(&self) -> Self {
        Recorder {
            clock: self.clock,
            ops: Arc::clone(&self.ops),
        }
    }
}

impl<C: Clone, R: Clone> Recorder<C, R> {
    /// An empty history on `clock`.
    pub fn new(clock: Clock) -> Self {
        Recorder {
            clock,
            ops: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The run's clock.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Records an operation that started at `invoke` and ends now.
    pub fn record(&self, client: usize, invoke: Micros, call: C, outcome: Outcome<R>) {
        let complete = self.clock.now();
        let mut ops = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        let index = ops.len();
        ops.push(Op {
            index,
            client,
            invoke,
            complete,
            call,
            outcome,
        });
    }

    /// A copy of the history so far.
    pub fn snapshot(&self) -> Vec<Op<C, R>> {
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Writes a history as JSON lines (one operation per line).
pub fn write_jsonl<C: Serialize, R: Serialize>(
    path: &std::path::Path,
    ops: &[Op<C, R>],
) -> Result<(), String> {
    use std::io::Write;
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    for op in ops {
        serde_json::to_writer(&mut w, op).map_err(|e| format!("{}: {e}", path.display()))?;
        w.write_all(b"\n")
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    w.flush().map_err(|e| format!("{}: {e}", path.display()))
}
