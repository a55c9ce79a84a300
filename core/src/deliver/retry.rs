//! When to try a failed delivery again, and when to give up.

use std::time::Duration;

/// The longest a sink's Retry-After is honoured for; beyond it a misbehaving sink could park
/// its queue for ever.
const LONGEST_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// A sink's retry schedule and parallelism, from routes.yaml.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// Wait before retry n (1-based) is drawn from `[0, retry[n-1]]` (full jitter).
    pub retry: Vec<Duration>,
    /// Deliveries in flight at once.
    pub concurrency: usize,
}

/// What to do after the `failures`-th failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    RetryIn(Duration),
    GiveUp,
}

impl DeliveryPolicy {
    /// Full jitter spreads the retries of many events that failed together, so a recovering
    /// sink is not hit by all of them at once; a sink's own Retry-After is a floor.
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
