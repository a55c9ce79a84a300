//! A sink's `rate`: at most `burst` deliveries at once and one more every `interval` on
//! average, as a token bucket (GCRA: a theoretical arrival time instead of a refill task).
//! Events over the rate are not dropped: they wait in the queue until a token is back.
//!
//! Hand-written rather than governor's limiter (which the quotas use) because the worker must
//! know how many it may send before it reads the queue, and spend only what it sent: governor
//! spends a token with every check.

use std::time::{Duration, Instant};

/// The settings: one token back every `interval`, at most `burst` kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pacing {
    /// Never zero.
    pub interval: Duration,
    /// At least 1.
    pub burst: u32,
}

#[derive(Debug)]
pub struct Pace {
    pacing: Pacing,
    /// When the bucket is full again; in the past means full.
    full_at: Option<Instant>,
}

impl Pace {
    pub fn new(pacing: Pacing) -> Pace {
        Pace {
            pacing,
            full_at: None,
        }
    }

    /// Tokens at `now`: how many deliveries may go.
    pub fn available(&self, now: Instant) -> usize {
        let owed = self.owed(now);
        let tokens = u128::from(self.pacing.burst)
            .saturating_sub(owed.as_nanos().div_ceil(self.pacing.interval.as_nanos()));
        usize::try_from(tokens).unwrap_or(usize::MAX)
    }

    /// Spends `n` tokens at `now` (the caller sends no more than [`Pace::available`]).
    pub fn spend(&mut self, now: Instant, n: usize) {
        if n == 0 {
            return;
        }
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        let start = self.full_at.filter(|at| *at > now).unwrap_or(now);
        self.full_at = Some(start + self.pacing.interval.saturating_mul(n));
    }

    /// When the next token is back, if none is left at `now`.
    pub fn next_token(&self, now: Instant) -> Option<Instant> {
        if self.available(now) > 0 {
            return None;
        }
        let full_at = self.full_at?;
        let burst = self.pacing.interval.saturating_mul(self.pacing.burst);
        // One token is back once what is owed fits in burst - 1 intervals.
        Some(full_at - burst + self.pacing.interval)
    }

    /// How long until the bucket is full again.
    fn owed(&self, now: Instant) -> Duration {
        self.full_at
            .map_or(Duration::ZERO, |at| at.saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pace(per_second: u32, burst: u32) -> Pace {
        Pace::new(Pacing {
            interval: Duration::from_secs(1) / per_second,
            burst,
        })
    }

    #[test]
    fn a_full_bucket_gives_its_burst_then_one_per_interval() {
        let now = Instant::now();
        let mut p = pace(20, 5);
        assert_eq!(p.available(now), 5);
        p.spend(now, 5);
        assert_eq!(p.available(now), 0);
        let next = p.next_token(now).unwrap();
        assert_eq!(next - now, Duration::from_millis(50));
        assert_eq!(p.available(next - Duration::from_millis(1)), 0);
        assert_eq!(p.available(next), 1);
        assert_eq!(p.available(now + Duration::from_secs(1)), 5);
    }

    #[test]
    fn over_any_window_no_more_than_the_burst_plus_the_rate_go() {
        let start = Instant::now();
        let mut p = pace(20, 1);
        let mut sent = 0;
        let mut now = start;
        // Ask every millisecond for ten seconds, as an eager worker would.
        while now < start + Duration::from_secs(10) {
            let n = p.available(now);
            p.spend(now, n);
            sent += n;
            now += Duration::from_millis(1);
        }
        assert!((200..=201).contains(&sent), "{sent}");
    }

    #[test]
    fn an_idle_bucket_does_not_save_more_than_its_burst() {
        let now = Instant::now();
        let mut p = pace(20, 3);
        p.spend(now, 1);
        assert_eq!(p.available(now + Duration::from_secs(3600)), 3);
        assert_eq!(p.next_token(now), None);
    }
}
