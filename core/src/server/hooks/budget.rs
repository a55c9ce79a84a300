//! The global budget for request bodies in memory: every delivery reserves what its body takes
//! before (or, without a Content-Length, as) it is read, and gives it back when it is answered.
//! A burst past the budget is told to retry (503) instead of taking the process's memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub struct BodyBudget {
    limit: usize,
    used: AtomicUsize,
}

impl BodyBudget {
    pub fn new(limit: usize) -> Arc<BodyBudget> {
        Arc::new(BodyBudget {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// An empty reservation, to grow as the body arrives.
    pub fn reservation(self: &Arc<Self>) -> Reservation {
        Reservation {
            budget: self.clone(),
            bytes: 0,
        }
    }

    fn take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }
}

/// Bytes of the budget held by one request; given back when dropped.
pub struct Reservation {
    budget: Arc<BodyBudget>,
    bytes: usize,
}

impl Reservation {
    /// Holds `bytes` more; `false` (holding nothing more) when the budget cannot spare them.
    pub fn grow(&mut self, bytes: usize) -> bool {
        if bytes == 0 || self.budget.take(bytes) {
            self.bytes += bytes;
            true
        } else {
            false
        }
    }

    /// What this reservation holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_the_limit_and_give_back_on_drop() {
        let budget = BodyBudget::new(100);
        let mut a = budget.reservation();
        assert!(a.grow(60));
        let mut b = budget.reservation();
        assert!(!b.grow(41), "60 + 41 is over 100");
        assert!(b.grow(40));
        assert_eq!(b.bytes(), 40);
        assert!(!a.grow(1));
        drop(b);
        assert!(a.grow(40));
        drop(a);
        let mut c = budget.reservation();
        assert!(c.grow(100));
    }
}
