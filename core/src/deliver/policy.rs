//! A sink's delivery settings from routes.yaml, and the verdicts on a delivery attempt:
//! delivered, tried again after a wait, or a dead letter with why; and when a batch smaller
//! than the sink takes waits for more ([`gather_until`]). Pure: the worker records what they
//! say.

use std::fmt::Display;
use std::time::{Duration, Instant};

use super::pace::Pacing;

/// The longest a receiver's Retry-After is honoured for; beyond it a misbehaving receiver
/// could park its events for ever.
pub const LONGEST_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The least time between two batches smaller than the sink takes at once. A sink that
/// batches (file, stdout, NATS, Redis) pays a write and a sync per batch, whatever its size:
/// while intake commits a few events every millisecond, handing each commit out alone cost a
/// wake-up of the delivery thread, a batch and a sync on the disk the log syncs on, per commit.
pub const GATHER: Duration = Duration::from_millis(5);

/// When a batch of the `ready` events may be handed out, the last one having gone at `last`
/// and the sink taking up to `per_batch` at once: `None` at once (nothing to wait for, a full
/// batch, or none has gone for [`GATHER`]: an event alone is not held); else when [`GATHER`]
/// has passed.
pub fn gather_until(
    now: Instant,
    last: Option<Instant>,
    ready: u64,
    per_batch: usize,
) -> Option<Instant> {
    let small = ready > 0 && ready < per_batch as u64;
    let until = last? + GATHER;
    (small && until > now).then_some(until)
}

/// How one sink delivers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// A poison event's wait before retry n (1-based) is drawn from `[0, retry[n-1]]` (full
    /// jitter); past the schedule it is a dead letter.
    pub retry: Vec<Duration>,
    /// Deliveries (batches, for file and stdout) in flight at once.
    pub concurrency: usize,
    /// Strictly one at a time in accept order: a failing event holds back everything after it.
    pub ordered: bool,
    /// The cap on the sink-wide backoff.
    pub max_backoff: Duration,
    /// An event failing this long after its accept is a dead letter.
    pub max_age: Duration,
    /// The sink's `rate`; `None`: as fast as it takes them.
    pub pace: Option<Pacing>,
    /// Failing continuously this long disables the sink; `None`: never.
    pub disable_after: Option<Duration>,
}

/// What to do after an event's `failures`-th failure of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    RetryIn(Duration),
    GiveUp,
}

impl DeliveryPolicy {
    /// Full jitter spreads the retries of events that failed together; a receiver's own
    /// Retry-After is a floor.
    pub fn after_failure(&self, failures: usize, retry_after: Option<Duration>) -> Next {
        let Some(ceiling) = failures.checked_sub(1).and_then(|i| self.retry.get(i)) else {
            return Next::GiveUp;
        };
        let jittered = ceiling.mul_f64(fastrand::f64());
        let floor = retry_after.unwrap_or_default().min(LONGEST_RETRY_AFTER);
        Next::RetryIn(jittered.max(floor))
    }
}

/// Whose fault a failure was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blame {
    /// The sink's: it backs off as a whole; the event is tried again once it recovers.
    Sink,
    /// The event's own, as far as anyone can tell: it backs off alone.
    Event,
}

/// One event's failed delivery, as the verdict needs it.
pub struct Failure<'a> {
    /// How long ago the event was accepted.
    pub age: Duration,
    /// Whose fault the failure was.
    pub blame: Blame,
    /// Failures of its own before this one.
    pub poison_failures: usize,
    /// Attempts so far, this one included.
    pub attempts: usize,
    /// The receiver's Retry-After, if it sent one.
    pub retry_after: Option<Duration>,
    pub error: &'a dyn Display,
}

/// What becomes of an event after a delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The sink took it.
    Delivered,
    /// Tried again after `wait`, with its count of failures of its own.
    Retry {
        wait: Duration,
        poison_failures: usize,
    },
    /// A dead letter, and why.
    Bury { reason: String },
}

impl Verdict {
    /// The `outcome` label of `switchyard_sink_attempts_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Verdict::Delivered => "delivered",
            Verdict::Retry { .. } => "failed",
            Verdict::Bury { .. } => "dead",
        }
    }
}

impl DeliveryPolicy {
    /// The verdict on one failed delivery: past `max_age` it is buried; a sink-wide failure
    /// waits on the sink's backoff (no wait of its own); a failure of its own follows the
    /// `retry` schedule until it runs out.
    pub fn judge(&self, failure: Failure<'_>) -> Verdict {
        let error = failure.error;
        if failure.age > self.max_age {
            return Verdict::Bury {
                reason: format!(
                    "still failing {} after it was accepted (max_age {}); last: {error}",
                    humantime::format_duration(Duration::from_secs(failure.age.as_secs())),
                    humantime::format_duration(self.max_age)
                ),
            };
        }
        let (next, poison_failures) = match failure.blame {
            // Tried again as soon as the sink takes events: it waits on the sink's backoff.
            Blame::Sink => (Next::RetryIn(Duration::ZERO), failure.poison_failures),
            Blame::Event => {
                let own = failure.poison_failures + 1;
                (self.after_failure(own, failure.retry_after), own)
            }
        };
        match next {
            Next::RetryIn(wait) => Verdict::Retry {
                wait,
                poison_failures,
            },
            Next::GiveUp => Verdict::Bury {
                reason: format!(
                    "gave up after {poison_failures} failures of its own ({} attempts); last: {error}",
                    failure.attempts
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(secs: &[u64]) -> DeliveryPolicy {
        DeliveryPolicy {
            retry: secs.iter().map(|s| Duration::from_secs(*s)).collect(),
            concurrency: 1,
            ordered: false,
            max_backoff: Duration::from_secs(10),
            max_age: Duration::from_secs(3600),
            pace: None,
            disable_after: None,
        }
    }

    #[test]
    fn a_small_batch_waits_only_right_after_another_and_a_full_one_never() {
        let now = Instant::now();
        let recent = now - GATHER / 5;
        // Idle: the first batch, or one long after the last, goes at once however small.
        assert_eq!(gather_until(now, None, 1, 256), None);
        assert_eq!(gather_until(now, Some(now - GATHER), 1, 256), None);
        // Right after a batch went, a small one waits for the rest of the gather time...
        assert_eq!(
            gather_until(now, Some(recent), 3, 256),
            Some(recent + GATHER)
        );
        // ...but not a full one, nor on a sink that takes one event at a time.
        assert_eq!(gather_until(now, Some(recent), 256, 256), None);
        assert_eq!(gather_until(now, Some(recent), 1, 1), None);
        // Nothing ready: nothing to wait for (new events wake the worker).
        assert_eq!(gather_until(now, Some(recent), 0, 256), None);
    }

    #[test]
    fn each_retry_waits_at_most_its_scheduled_time() {
        let p = policy(&[5, 300]);
        for _ in 0..200 {
            match p.after_failure(1, None) {
                Next::RetryIn(d) => assert!(d <= Duration::from_secs(5)),
                Next::GiveUp => panic!("first failure must be retried"),
            }
            match p.after_failure(2, None) {
                Next::RetryIn(d) => assert!(d <= Duration::from_secs(300)),
                Next::GiveUp => panic!("second failure must be retried"),
            }
        }
        assert_eq!(p.after_failure(3, None), Next::GiveUp);
    }

    #[test]
    fn retry_after_is_a_floor_and_is_capped() {
        let p = policy(&[1]);
        assert_eq!(
            p.after_failure(1, Some(Duration::from_secs(60))),
            Next::RetryIn(Duration::from_secs(60))
        );
        assert_eq!(
            p.after_failure(1, Some(Duration::from_secs(10 * 24 * 3600))),
            Next::RetryIn(LONGEST_RETRY_AFTER)
        );
    }

    #[test]
    fn an_empty_schedule_gives_up_at_once() {
        assert_eq!(policy(&[]).after_failure(1, None), Next::GiveUp);
    }

    #[test]
    fn verdicts_bury_past_max_age_wait_on_the_sink_or_follow_the_schedule() {
        let policy = policy(&[1]);
        let failure = |age: u64, blame: Blame, poison_failures: usize| Failure {
            age: Duration::from_secs(age),
            blame,
            poison_failures,
            attempts: poison_failures + 1,
            retry_after: None,
            error: &"503",
        };
        assert!(matches!(
            policy.judge(failure(3601, Blame::Sink, 0)),
            Verdict::Bury { reason } if reason.contains("max_age")
        ));
        assert_eq!(
            policy.judge(failure(1, Blame::Sink, 0)),
            Verdict::Retry {
                wait: Duration::ZERO,
                poison_failures: 0
            }
        );
        assert!(matches!(
            policy.judge(failure(1, Blame::Event, 0)),
            Verdict::Retry { wait, poison_failures: 1 } if wait <= Duration::from_secs(1)
        ));
        assert!(matches!(
            policy.judge(failure(1, Blame::Event, 1)),
            Verdict::Bury { reason } if reason.contains("gave up after 2 failures")
        ));
    }
}
