//! Short polling before sleeping, where a thread hands work to another thread and waits.
//!
//! A point read crosses threads twice (connection task → database worker → connection
//! task). On virtual machines, waking a thread that sleeps on another CPU costs tens of
//! microseconds (the idle vCPU halted and must be resumed: `perf bench sched pipe` measured
//! 107 µs per round trip across CPUs here, 7.5 µs on one CPU), more than the read itself. A
//! thread that polls for a short while instead of sleeping is reached without that cost.
//!
//! Polling burns CPU, so it is bounded: by a time budget ([`crate::NodeOptions::spin`]);
//! to a node serving a single client request ([`lone_request`]: with more, the CPUs have
//! other requests to serve, and a poll would take a CPU from them; measured, polling at 8
//! connections halved read throughput on 2 CPUs; with none, no client waits); to the
//! requests of clients (not the FSM's applies); and, for a worker polling for its next job,
//! to jobs that keep arriving within the budget ([`Pacer`]). Nothing polls on a
//! single-CPU machine, where the thread waited for cannot run meanwhile.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Client requests this process is serving (decoded, not yet fully answered).
static SERVING: AtomicUsize = AtomicUsize::new(0);

/// Counts a request in [`SERVING`] while it lives (the gateway holds one per request).
pub(crate) struct Serving(());

impl Serving {
    /// Counts a request in.
    pub fn enter() -> Serving {
        SERVING.fetch_add(1, Ordering::Relaxed);
        Serving(())
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        SERVING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether the node serves exactly one request: a lone client waits on every step, so
/// polling saves it latency; with more, the CPUs have other requests to serve, and a poll
/// would take a CPU from them; with none (a follower applying entries), nobody waits.
pub(crate) fn lone_request() -> bool {
    SERVING.load(Ordering::Relaxed) == 1
}

/// Whether polling can help at all: another CPU can run the thread waited for.
fn several_cpus() -> bool {
    static SEVERAL: OnceLock<bool> = OnceLock::new();
    *SEVERAL.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() > 1))
}

/// Calls `ready` until it gives a value or `budget` has passed (`None`: sleep instead),
/// yielding the CPU between calls.
pub(crate) fn poll<T>(budget: Duration, mut ready: impl FnMut() -> Option<T>) -> Option<T> {
    if budget.is_zero() || !several_cpus() {
        return None;
    }
    let start = Instant::now();
    loop {
        if let Some(v) = ready() {
            return Some(v);
        }
        if start.elapsed() >= budget {
            return None;
        }
        // Not a pure spin: a thread that is runnable on this CPU (the client, the thread
        // waited for, when the machine is busy) runs now rather than after our budget, and
        // with none the CPU still does not halt.
        std::thread::yield_now();
    }
}

/// [`poll`] for a connection waiting for its worker's answer: only while the node serves a
/// lone request ([`lone_request`]).
pub(crate) fn poll_lone<T>(budget: Duration, ready: impl FnMut() -> Option<T>) -> Option<T> {
    if !lone_request() {
        return None;
    }
    poll(budget, ready)
}

/// Decides whether a worker polls for its next job: only while the last wait for a job was
/// shorter than the budget (the jobs come in a steady, quick stream), so a worker whose
/// jobs come rarely sleeps at once and wastes at most one budget per burst.
///
/// Invariant: `hot` is true exactly when the last wait for a job ended within `budget`.
#[derive(Debug)]
pub(crate) struct Pacer {
    budget: Duration,
    hot: bool,
}

impl Pacer {
    /// A pacer polling for up to `budget`.
    pub fn new(budget: Duration) -> Pacer {
        Pacer { budget, hot: false }
    }

    /// Polls `ready` if the recent jobs came quickly and `lone` (the node serves a lone
    /// request: [`lone_request`]); records how the wait went.
    pub fn poll<T>(&mut self, lone: bool, ready: impl FnMut() -> Option<T>) -> Option<T> {
        if !self.hot || !lone {
            return None;
        }
        let got = poll(self.budget, ready);
        self.hot = got.is_some();
        got
    }

    /// Records that a wait that did not poll (or polled in vain) ended after `waited`.
    pub fn slept(&mut self, waited: Duration) {
        self.hot = waited < self.budget;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_returns_what_becomes_ready_and_gives_up_after_its_budget() {
        let mut n = 0;
        // A budget no loaded machine exhausts in 1000 yields (each may hand the CPU to
        // another runnable thread for a whole time slice: 50 ms failed under load).
        let got = poll(Duration::from_secs(60), || {
            n += 1;
            (n == 1000).then_some(n)
        });
        assert_eq!(got, if several_cpus() { Some(1000) } else { None });
        let start = Instant::now();
        assert_eq!(poll(Duration::from_millis(5), || None::<()>), None);
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(poll(Duration::ZERO, || Some(1)), None);
    }

    #[test]
    fn a_pacer_polls_only_while_jobs_come_within_its_budget() {
        let mut p = Pacer::new(Duration::from_millis(20));
        // Cold: never polls.
        assert_eq!(p.poll(true, || Some(1)), None);
        p.slept(Duration::from_millis(1));
        // Hot, but the node serves several requests: no poll, and it stays hot.
        assert_eq!(p.poll(false, || Some(1)), None);
        if several_cpus() {
            assert_eq!(p.poll(true, || Some(1)), Some(1));
            // A poll that found nothing cools it down.
            assert_eq!(p.poll(true, || None::<i32>), None);
            assert_eq!(p.poll(true, || Some(1)), None);
        }
        p.slept(Duration::from_secs(1));
        assert_eq!(p.poll(true, || Some(1)), None);
    }

    #[test]
    fn serving_counts_the_requests_alive() {
        let a = Serving::enter();
        let b = Serving::enter();
        // Other tests of this process may serve requests too: at least these two count.
        assert!(SERVING.load(Ordering::Relaxed) >= 2);
        assert!(!lone_request());
        drop((a, b));
    }
}
