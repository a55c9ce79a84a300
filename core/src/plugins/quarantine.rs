//! A plugin's quarantine: its slots, its failures in a row per entry point, and the quarantine
//! they start, during which its calls are refused; once the quarantine has run its time, one
//! call alone is let through as a probe (the others are still refused until it returns). Pure
//! bookkeeping; [`super::runner`] makes the calls and tells it how each went.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

#[derive(Clone, Copy, Debug)]
pub(super) struct Policy {
    pub max_in_flight: usize,
    pub strikes: u32,
    pub quarantine: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_in_flight: 16,
            strikes: 3,
            quarantine: Duration::from_secs(60),
        }
    }
}

/// A plugin's entry points that requests call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Entry {
    MapEvent,
    Verify,
    Handshake,
}

impl Entry {
    pub(super) fn name(self) -> &'static str {
        match self {
            Entry::MapEvent => "map_event",
            Entry::Verify => "verify",
            Entry::Handshake => "handshake",
        }
    }
}

/// One plugin's slots, failure counts and quarantine.
pub(super) struct Guard {
    policy: Policy,
    pub(super) slots: Arc<Semaphore>,
    /// Failures in a row, per entry point (indexed by [`Entry`]): one that keeps failing is not
    /// excused by another that works, such as a `verify` that answers before each `map_event`
    /// that hangs.
    strikes: [AtomicU32; 3],
    quarantine: Mutex<Option<Quarantine>>,
}

struct Quarantine {
    until: Instant,
    reason: String,
    /// The one call let through once the time ran out is still running.
    probing: bool,
}

/// Whether a call may go ahead.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Admission {
    Call,
    /// The quarantine ran its time: this call alone probes the plugin; the others are refused
    /// until it returns.
    Probe,
    Refused(String),
}

impl Guard {
    pub(super) fn new(policy: Policy) -> Guard {
        Guard {
            policy,
            slots: Arc::new(Semaphore::new(policy.max_in_flight)),
            strikes: Default::default(),
            quarantine: Mutex::new(None),
        }
    }

    fn quarantine(&self) -> std::sync::MutexGuard<'_, Option<Quarantine>> {
        self.quarantine.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn admit(&self, now: Instant) -> Admission {
        match self.quarantine().as_mut() {
            None => Admission::Call,
            Some(q) if now < q.until || q.probing => Admission::Refused(q.reason.clone()),
            Some(q) => {
                q.probing = true;
                Admission::Probe
            }
        }
    }

    pub(super) fn succeeded(&self, entry: Entry) {
        self.strikes[entry as usize].store(0, Ordering::Relaxed);
        *self.quarantine() = None;
    }

    /// Counts a timeout or failure; `true` when it starts a quarantine: after
    /// [`Policy::strikes`] in a row of one entry point, or at once when the call was the probe.
    pub(super) fn failed(&self, entry: Entry, what: &str, now: Instant, probe: bool) -> bool {
        let strikes = self.strikes[entry as usize].fetch_add(1, Ordering::Relaxed) + 1;
        let quarantine = self.policy.quarantine;
        let reason = if probe {
            format!(
                "the vendor plugin is quarantined for {quarantine:?} again: the call let \
                 through to probe it failed ({what}); retry later"
            )
        } else if strikes >= self.policy.strikes {
            format!(
                "the vendor plugin is quarantined for {quarantine:?} after {strikes} failed \
                 calls in a row (the last: {what}); retry later"
            )
        } else {
            return false;
        };
        *self.quarantine() = Some(Quarantine {
            until: now + quarantine,
            reason,
            probing: false,
        });
        true
    }

    /// The probe ended without an answer either way (its request went away): the next call
    /// probes instead.
    fn probe_abandoned(&self) {
        if let Some(q) = self.quarantine().as_mut() {
            q.probing = false;
        }
    }
}

/// Held by the probing call; dropped before it is settled, it lets another call probe.
pub(super) struct ProbeTicket<'a> {
    pub(super) guard: &'a Guard,
    pub(super) settled: bool,
}

impl Drop for ProbeTicket<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.guard.probe_abandoned();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Guard {
        Guard::new(Policy {
            max_in_flight: 1,
            strikes: 3,
            quarantine: Duration::from_secs(60),
        })
    }

    #[test]
    fn strikes_in_a_row_quarantine_until_the_time_runs_out_and_a_success_ends_it() {
        let guard = guard();
        let t0 = Instant::now();
        let map = Entry::MapEvent;
        assert!(!guard.failed(map, "timeout", t0, false));
        assert!(!guard.failed(map, "timeout", t0, false));
        guard.succeeded(map);
        // The count is of failures in a row: a success in between starts it again.
        assert!(!guard.failed(map, "timeout", t0, false));
        assert!(!guard.failed(map, "panic", t0, false));
        assert_eq!(guard.admit(t0), Admission::Call);
        assert!(guard.failed(map, "map_event took longer than 2s", t0, false));
        let Admission::Refused(reason) = guard.admit(t0) else {
            panic!("not quarantined")
        };
        assert!(reason.contains("3 failed calls in a row"), "{reason}");
        assert!(reason.contains("map_event took longer than 2s"), "{reason}");
        let almost = t0 + Duration::from_secs(59);
        assert!(matches!(guard.admit(almost), Admission::Refused(_)));
        // Time up: one probe goes through; if it fails, the quarantine starts again at once.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(guard.admit(later), Admission::Probe);
        assert!(guard.failed(map, "panic", later, true));
        let Admission::Refused(reason) = guard.admit(later) else {
            panic!("not quarantined again")
        };
        assert!(reason.contains("probe it failed (panic)"), "{reason}");
        let after = later + Duration::from_secs(61);
        assert_eq!(guard.admit(after), Admission::Probe);
        guard.succeeded(map);
        assert_eq!(guard.admit(after), Admission::Call);
    }

    #[test]
    fn one_call_probes_and_the_others_are_refused_until_it_returns() {
        let guard = guard();
        let t0 = Instant::now();
        for _ in 0..3 {
            guard.failed(Entry::MapEvent, "timeout", t0, false);
        }
        let later = t0 + Duration::from_secs(61);
        assert_eq!(guard.admit(later), Admission::Probe);
        // While the probe runs, every other call is refused with the quarantine's reason.
        for _ in 0..5 {
            assert!(matches!(guard.admit(later), Admission::Refused(_)));
        }
        // A probe whose request went away before the plugin answered lets the next call probe.
        drop(ProbeTicket {
            guard: &guard,
            settled: false,
        });
        assert_eq!(guard.admit(later), Admission::Probe);
        assert!(matches!(guard.admit(later), Admission::Refused(_)));
    }

    #[test]
    fn another_entry_point_that_works_does_not_excuse_one_that_keeps_failing() {
        let guard = guard();
        let t0 = Instant::now();
        for _ in 0..2 {
            assert!(!guard.failed(Entry::MapEvent, "timeout", t0, false));
            guard.succeeded(Entry::Verify);
        }
        assert!(guard.failed(Entry::MapEvent, "timeout", t0, false));
        assert!(matches!(guard.admit(t0), Admission::Refused(_)));
    }
}
