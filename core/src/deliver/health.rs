//! Sink health: whether a sink is taking events, and when to try it again when it is not.
//!
//! A sink is `Flowing` until deliveries of two different events fail in a row, or it fails in a
//! way that is the sink's and not one event's (it cannot be reached, times out, throttles with
//! 429 or names a Retry-After). Then it is `Down` for an exponential backoff with jitter, capped
//! by the sink's `max_backoff` and never shorter than the receiver's Retry-After; when that
//! ends it is `Probing`: exactly one delivery goes out. Its success sets the sink flowing again
//! at full speed; its failure doubles the backoff. Failures of one event among successes, or of
//! the same event again and again, are that event's own (a "poison" event): the worker backs
//! it off alone, on the sink's `retry` schedule.
//!
//! A sink with `disable_after` that has been failing (down or probing, no success) that long is
//! `Disabled` at its next failure: no attempt at all until an operator enables it, which starts
//! it again with one probe and a fresh clock.

use std::time::{Duration, Instant};

use super::policy::{Blame, LONGEST_RETRY_AFTER};
use crate::base::id::EventId;

/// The first sink-wide backoff; each failed probe doubles it.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Flowing,
    Down { until: Instant },
    Probing,
    Disabled,
}

#[derive(Debug)]
pub struct Health {
    max_backoff: Duration,
    /// Different events that failed in a row.
    streak: u32,
    last_failed: Option<EventId>,
    /// Sink-wide backoffs in a row: the exponent.
    level: u32,
    state: State,
    disable_after: Option<Duration>,
    /// The first sink-wide failure since the last success.
    failing_since: Option<Instant>,
}

impl Health {
    pub fn new(max_backoff: Duration, disable_after: Option<Duration>) -> Health {
        Health {
            max_backoff,
            streak: 0,
            last_failed: None,
            level: 0,
            state: State::Flowing,
            disable_after,
            failing_since: None,
        }
    }

    /// Out of `Disabled`: one probe goes out, and the sink has its whole `disable_after` again.
    pub fn enable(&mut self) {
        if self.state == State::Disabled {
            self.streak = 0;
            self.last_failed = None;
            self.level = 0;
            self.failing_since = None;
            self.state = State::Probing;
        }
    }

    /// The state at `now` (a backoff that has ended becomes a probe).
    pub fn state(&mut self, now: Instant) -> State {
        if let State::Down { until } = self.state {
            if now >= until {
                self.state = State::Probing;
            }
        }
        self.state
    }

    pub fn succeeded(&mut self) {
        if self.state == State::Disabled {
            return; // an attempt sent before the sink was disabled; the operator enables it
        }
        self.streak = 0;
        self.last_failed = None;
        self.level = 0;
        self.failing_since = None;
        self.state = State::Flowing;
    }

    /// Records a failure of `event`. `sink_wide`: the error itself says the sink is at fault.
    pub fn failed(
        &mut self,
        now: Instant,
        event: &EventId,
        sink_wide: bool,
        retry_after: Option<Duration>,
    ) -> Blame {
        if self.last_failed.as_ref() != Some(event) {
            self.streak += 1;
            self.last_failed = Some(event.clone());
        }
        let probing = matches!(
            self.state,
            State::Probing | State::Down { .. } | State::Disabled
        );
        if !(sink_wide || probing || self.streak >= 2) {
            return Blame::Event;
        }
        let since = *self.failing_since.get_or_insert(now);
        if self.state == State::Disabled
            || (self.disable_after)
                .is_some_and(|after| now.saturating_duration_since(since) >= after)
        {
            self.state = State::Disabled;
            return Blame::Sink;
        }
        let exponent = self.level.min(20);
        let ceiling = FIRST_BACKOFF
            .saturating_mul(1 << exponent)
            .min(self.max_backoff);
        // Equal jitter: never near zero, so a dead receiver is not hammered, yet spread out.
        let wait = ceiling / 2 + (ceiling / 2).mul_f64(fastrand::f64());
        let wait = wait.max(retry_after.unwrap_or_default().min(LONGEST_RETRY_AFTER));
        self.level = self.level.saturating_add(1);
        let until = now + wait;
        // A failure that lands while already down (an attempt sent before) may only extend.
        self.state = match self.state {
            State::Down { until: current } if current > until => State::Down { until: current },
            _ => State::Down { until },
        };
        Blame::Sink
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_failing_among_successes_or_alone_is_the_events_own() {
        let now = Instant::now();
        let poison = EventId::generate();
        let mut h = Health::new(Duration::from_secs(10), None);
        assert_eq!(h.failed(now, &poison, false, None), Blame::Event);
        assert_eq!(h.state(now), State::Flowing);
        h.succeeded();
        assert_eq!(h.failed(now, &poison, false, None), Blame::Event);
        assert_eq!(h.failed(now, &poison, false, None), Blame::Event);
        assert_eq!(h.state(now), State::Flowing);
    }

    #[test]
    fn two_events_failing_in_a_row_take_the_sink_down_then_one_probe_brings_it_back() {
        let now = Instant::now();
        let mut h = Health::new(Duration::from_secs(10), None);
        h.failed(now, &EventId::generate(), false, None);
        assert_eq!(
            h.failed(now, &EventId::generate(), false, None),
            Blame::Sink
        );
        let State::Down { until } = h.state(now) else {
            panic!("two failures in a row take the sink down")
        };
        assert!(until > now && until <= now + FIRST_BACKOFF);
        assert_eq!(h.state(until), State::Probing);
        h.succeeded();
        assert_eq!(h.state(until), State::Flowing);
    }

    #[test]
    fn failed_probes_back_off_exponentially_up_to_the_cap() {
        let mut now = Instant::now();
        let cap = Duration::from_secs(4);
        let mut h = Health::new(cap, None);
        let mut waits = Vec::new();
        for _ in 0..8 {
            h.failed(now, &EventId::generate(), true, None);
            let State::Down { until } = h.state(now) else {
                panic!("a sink-wide failure takes the sink down")
            };
            waits.push(until - now);
            now = until;
            assert_eq!(h.state(now), State::Probing);
        }
        assert!(waits.iter().all(|w| *w <= cap), "{waits:?}");
        assert!(waits[7] >= cap / 2, "{waits:?}");
        assert!(waits[0] <= FIRST_BACKOFF, "{waits:?}");
    }

    #[test]
    fn retry_after_is_a_floor_for_the_sink() {
        let now = Instant::now();
        let mut h = Health::new(Duration::from_secs(10), None);
        h.failed(
            now,
            &EventId::generate(),
            true,
            Some(Duration::from_secs(30)),
        );
        assert_eq!(
            h.state(now),
            State::Down {
                until: now + Duration::from_secs(30)
            }
        );
    }

    #[test]
    fn a_sink_failing_for_disable_after_is_disabled_until_enabled() {
        let start = Instant::now();
        let after = Duration::from_secs(60);
        let mut h = Health::new(Duration::from_secs(10), Some(after));
        h.failed(start, &EventId::generate(), true, None);
        assert!(matches!(h.state(start), State::Down { .. }));
        let later = start + after - Duration::from_millis(1);
        h.failed(later, &EventId::generate(), true, None);
        assert!(matches!(h.state(later), State::Down { .. }));
        let end = start + after;
        h.failed(end, &EventId::generate(), true, None);
        assert_eq!(h.state(end), State::Disabled);
        // Nothing brings it back but the operator: not time, not a late success.
        h.succeeded();
        assert_eq!(h.state(end + Duration::from_secs(3600)), State::Disabled);
        h.enable();
        assert_eq!(h.state(end), State::Probing);
        // The clock starts again: a failing probe backs off, it does not disable at once.
        h.failed(end, &EventId::generate(), true, None);
        assert!(matches!(h.state(end), State::Down { .. }));
        h.succeeded();
        assert_eq!(h.state(end), State::Flowing);
    }

    #[test]
    fn a_success_restarts_the_clock_and_poison_events_never_disable() {
        let start = Instant::now();
        let after = Duration::from_secs(60);
        let mut h = Health::new(Duration::from_secs(10), Some(after));
        h.failed(start, &EventId::generate(), true, None);
        h.succeeded();
        let end = start + after;
        h.failed(end, &EventId::generate(), true, None);
        assert!(matches!(h.state(end), State::Down { .. }));
        h.succeeded();
        let poison = EventId::generate();
        for n in 0..5 {
            let at = end + after * n;
            assert_eq!(h.failed(at, &poison, false, None), Blame::Event);
        }
        assert_eq!(h.state(end + after * 5), State::Flowing);
    }
}
