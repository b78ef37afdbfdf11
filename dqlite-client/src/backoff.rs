//! Jittered exponential backoff between retries.

use std::time::Duration;

use rand::RngExt;

/// Exponential backoff with "full jitter": the n-th delay is uniform in
/// `[base/2, min(cap, base * 2^n)]`, so that clients retrying after the same event spread out
/// instead of hitting the new leader at the same instant.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// Start at `base`, never wait longer than `cap`.
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap: cap.max(base),
            attempt: 0,
        }
    }

    /// The upper bound of the next delay (without jitter).
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The next delay to wait, and advance.
    pub fn next_delay(&mut self) -> Duration {
        let hi = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let lo = (self.base / 2).min(hi);
        if hi <= lo {
            return hi;
        }
        let span = (hi - lo).as_micros() as u64;
        lo + Duration::from_micros(rand::rng().random_range(0..=span))
    }

    /// How many delays were handed out.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps_with_jitter_in_bounds() {
        let base = Duration::from_millis(50);
        let cap = Duration::from_millis(1000);
        let mut b = Backoff::new(base, cap);
        let mut ceilings = vec![];
        for _ in 0..10 {
            let c = b.ceiling();
            let d = b.next_delay();
            assert!(
                d >= base / 2 && d <= c,
                "{d:?} not in [{:?}, {c:?}]",
                base / 2
            );
            ceilings.push(c);
        }
        assert_eq!(ceilings[0], base);
        assert_eq!(ceilings[1], base * 2);
        assert_eq!(*ceilings.last().unwrap(), cap);
        assert_eq!(b.attempts(), 10);
        // Many attempts never overflow.
        for _ in 0..100 {
            assert!(b.next_delay() <= cap);
        }
    }
}
