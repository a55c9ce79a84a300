//! A sink's delivery settings from routes.yaml, and when a failing event is tried again.

use std::time::Duration;

/// The longest a receiver's Retry-After is honoured for; beyond it a misbehaving receiver
/// could park its events for ever.
pub const LONGEST_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

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
        }
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
}
