//! Per-workspace quotas (`limits:` in routes.yaml): a request rate with a burst, and a ceiling
//! on what the workspace's sinks owe together. Checked before a delivery's body is read, so a
//! tenant over its quota costs the server a header parse, and never another tenant's capacity.
//!
//! The rate is governor's GCRA, a token bucket without a refill task: `burst` tokens, one back
//! every `per / count`. Every POST to the workspace spends one, signed or not; a vendor's
//! `allow_ips` is checked first, so where it is set outsiders cannot spend the quota.

use std::time::Duration;

use governor::clock::{Clock, MonotonicClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::RateLimiter;
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::StatusCode;

use crate::config::{Limits, Rate};
use crate::http::answer::{error, Answer};

/// What a vendor is told to wait when the workspace's queues are full: sinks drain at their own
/// pace, so this is a guess, short enough not to hold events back for long once they have.
const QUEUE_FULL_RETRY: Duration = Duration::from_secs(5);

type Limiter<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// One workspace's quota state.
pub struct Quota<C: Clock = MonotonicClock> {
    rate: Option<(Rate, Limiter<C>)>,
    max_queue: Option<u64>,
}

/// Why a delivery is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Over the rate: no token until `retry_after` has passed.
    Rate { limit: Rate, retry_after: Duration },
    /// The workspace's sinks owe `queued` events, at or over `max_queue`.
    Queue { queued: u64, max_queue: u64 },
}

impl Quota {
    pub fn new(limits: &Limits) -> Quota {
        Quota::with_clock(limits, MonotonicClock)
    }
}

impl<C: Clock> Quota<C> {
    pub fn with_clock(limits: &Limits, clock: C) -> Quota<C> {
        let rate = limits.rate.and_then(|rate| {
            // The configuration refuses a rate whose interval would be zero.
            let quota = governor::Quota::with_period(rate.interval())?.allow_burst(rate.burst);
            Some((rate, RateLimiter::direct_with_clock(quota, clock)))
        });
        Quota {
            rate,
            max_queue: limits.max_queue,
        }
    }

    /// Admits one delivery, spending a token, unless the queues are full (read only then, through
    /// `queued`) or the rate is spent. A delivery refused for its queue spends no token.
    pub fn admit(&self, queued: impl FnOnce() -> u64) -> Result<(), Refusal> {
        if let Some(max_queue) = self.max_queue {
            let queued = queued();
            if queued >= max_queue {
                return Err(Refusal::Queue { queued, max_queue });
            }
        }
        if let Some((limit, limiter)) = &self.rate {
            if let Err(not_until) = limiter.check() {
                let retry_after = not_until.wait_time_from(limiter.clock().now());
                return Err(Refusal::Rate {
                    limit: *limit,
                    retry_after,
                });
            }
        }
        Ok(())
    }
}

impl Refusal {
    /// The outcome word in metrics and the error code answered.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Rate { .. } => "rate_limited",
            Refusal::Queue { .. } => "queue_full",
        }
    }

    /// Whole seconds, rounded up and at least 1: Retry-After has no fractions, and 0 would
    /// invite an immediate retry that is refused again.
    pub fn retry_after_secs(&self) -> u64 {
        let wait = match self {
            Refusal::Rate { retry_after, .. } => *retry_after,
            Refusal::Queue { .. } => QUEUE_FULL_RETRY,
        };
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        secs.max(1)
    }

    /// 429 with Retry-After: the vendor retries, nothing is lost.
    pub fn answer(&self, workspace: &str) -> Answer {
        let secs = self.retry_after_secs();
        let message = match self {
            Refusal::Rate { limit, .. } => {
                format!("workspace `{workspace}` is over its rate of {limit}; retry in {secs} s")
            }
            Refusal::Queue { queued, max_queue } => format!(
                "workspace `{workspace}` has {queued} events queued, its limit is {max_queue}; \
                 retry in {secs} s"
            ),
        };
        let mut answer = error(StatusCode::TOO_MANY_REQUESTS, self.code(), &message);
        answer
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
        answer
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use governor::clock::FakeRelativeClock;

    use super::*;

    fn per_second(count: u32, burst: u32) -> Option<Rate> {
        Some(Rate {
            count: NonZeroU32::new(count)?,
            per: Duration::from_secs(1),
            burst: NonZeroU32::new(burst)?,
        })
    }

    fn quota(
        rate: Option<Rate>,
        max_queue: Option<u64>,
    ) -> (Quota<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let limits = Limits { rate, max_queue };
        (Quota::with_clock(&limits, clock.clone()), clock)
    }

    #[test]
    fn no_limits_admit_everything() {
        let (quota, _) = quota(None, None);
        for _ in 0..10_000 {
            assert_eq!(quota.admit(|| unreachable!("no ceiling, no read")), Ok(()));
        }
    }

    #[test]
    fn the_burst_is_taken_at_once_then_tokens_come_back_at_the_rate() {
        // 10/s: a token every 100 ms; 3 at once.
        let (quota, clock) = quota(per_second(10, 3), None);
        for _ in 0..3 {
            assert_eq!(quota.admit(|| 0), Ok(()));
        }
        let refused = quota.admit(|| 0).unwrap_err();
        let Refusal::Rate { retry_after, limit } = refused else {
            panic!("{refused:?}")
        };
        assert_eq!(retry_after, Duration::from_millis(100));
        assert_eq!(limit.to_string(), "10/s, burst 3");
        // Rounded up to a whole second, never 0.
        assert_eq!(refused.retry_after_secs(), 1);
        clock.advance(Duration::from_millis(99));
        assert!(quota.admit(|| 0).is_err());
        clock.advance(Duration::from_millis(1));
        assert_eq!(quota.admit(|| 0), Ok(()));
        assert!(quota.admit(|| 0).is_err());
        // A long pause refills the bucket to its burst, no further.
        clock.advance(Duration::from_secs(60));
        let admitted = (0..10).filter(|_| quota.admit(|| 0).is_ok()).count();
        assert_eq!(admitted, 3);
    }

    #[test]
    fn retry_after_counts_whole_seconds_until_the_next_token() {
        // One per 90 s: after the one token, the next is 90 s away.
        let rate = Rate {
            count: NonZeroU32::new(2).unwrap(),
            per: Duration::from_secs(180),
            burst: NonZeroU32::new(1).unwrap(),
        };
        let (quota, clock) = quota(Some(rate), None);
        assert_eq!(quota.admit(|| 0), Ok(()));
        assert_eq!(quota.admit(|| 0).unwrap_err().retry_after_secs(), 90);
        clock.advance(Duration::from_millis(500));
        assert_eq!(quota.admit(|| 0).unwrap_err().retry_after_secs(), 90);
        clock.advance(Duration::from_millis(1500));
        assert_eq!(quota.admit(|| 0).unwrap_err().retry_after_secs(), 88);
    }

    #[test]
    fn a_full_queue_refuses_without_spending_a_token() {
        let (quota, _) = quota(per_second(1, 1), Some(100));
        let refused = quota.admit(|| 100).unwrap_err();
        assert_eq!(
            refused,
            Refusal::Queue {
                queued: 100,
                max_queue: 100
            }
        );
        assert_eq!(refused.code(), "queue_full");
        assert_eq!(refused.retry_after_secs(), 5);
        // The one token is still there.
        assert_eq!(quota.admit(|| 99), Ok(()));
        assert_eq!(quota.admit(|| 0).unwrap_err().code(), "rate_limited");
    }

    #[test]
    fn the_answer_is_429_with_retry_after_and_the_code() {
        let refusal = Refusal::Rate {
            limit: per_second(500, 2000).unwrap(),
            retry_after: Duration::from_millis(2),
        };
        let answer = refusal.answer("acme");
        assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(answer.headers()[RETRY_AFTER], "1");
        let outcome = answer.extensions().get::<crate::http::answer::Outcome>();
        assert_eq!(outcome.map(|o| o.0), Some("rate_limited"));
    }
}
