//! A workspace's quotas: `limits: { rate: 500/s, burst: 2000, max_queue: 1000000 }`.

use std::num::NonZeroU32;
use std::time::Duration;

use serde_yaml::Value;

use super::Checker;
use crate::config::locate::KeyPath;
use crate::config::raw::RawLimits;
use crate::config::{Limits, Rate};

const RATE_HINT: &str = "expected a rate such as 500/s, 30/m, 1000/h or 100/10s";
/// Longer periods cannot be meant as a request rate, and would let a burst outlast a day.
const MAX_PERIOD: Duration = Duration::from_secs(24 * 3600);

impl Checker<'_> {
    /// A whole number from 1 to u32::MAX, for a `burst` of `what` (`why` follows the bounds).
    pub(super) fn burst(
        &mut self,
        at: &KeyPath,
        raw: &Value,
        what: &str,
        why: &str,
    ) -> Option<NonZeroU32> {
        let parsed = whole(raw)
            .and_then(|n| u32::try_from(n).ok())
            .and_then(NonZeroU32::new);
        if parsed.is_none() {
            let message = format!(
                "expected a whole number of {what} from 1 to {}{why}",
                u32::MAX
            );
            self.problems.add(at, message);
        }
        parsed
    }

    pub(super) fn limits(&mut self, at: &KeyPath, raw: Option<RawLimits>) -> Limits {
        let Some(raw) = raw else {
            return Limits::default();
        };
        let rate = raw.rate.and_then(|rate| self.rate(&at.key("rate"), &rate));
        let burst = raw.burst.and_then(|burst| {
            let at = at.key("burst");
            let why = " (those taken at once)";
            self.burst(&at, &burst, "requests", why).map(|n| (at, n))
        });
        let rate = match (rate, burst) {
            (Some(rate), Some((_, burst))) => Some(Rate { burst, ..rate }),
            (rate, None) => rate,
            (None, Some((at, _))) => {
                self.problems.add(
                    &at,
                    "`burst` applies to `rate`: set a rate such as 500/s too",
                );
                None
            }
        };
        let max_queue = raw.max_queue.and_then(|max| {
            let parsed = whole(&max).filter(|n| *n > 0);
            if parsed.is_none() {
                let message = "expected a whole number of events greater than 0 (the most the \
                               workspace's sinks may owe together)";
                self.problems.add(&at.key("max_queue"), message);
            }
            parsed
        });
        Limits { rate, max_queue }
    }

    /// `N/s`, `N/m` (or `N/min`), `N/h` or `N/<duration>`; the burst defaults to N.
    pub(super) fn rate(&mut self, at: &KeyPath, raw: &Value) -> Option<Rate> {
        let Value::String(text) = raw else {
            self.problems.add(at, RATE_HINT);
            return None;
        };
        let Some((count, per)) = text.split_once('/') else {
            let message = format!("invalid rate {text:?}: {RATE_HINT}");
            self.problems.add(at, message);
            return None;
        };
        let count = count.trim().parse::<u32>().ok().and_then(NonZeroU32::new);
        let per = match per.trim() {
            "s" => Some(Duration::from_secs(1)),
            "m" | "min" => Some(Duration::from_secs(60)),
            "h" => Some(Duration::from_secs(3600)),
            other => humantime::parse_duration(other).ok(),
        };
        let (Some(count), Some(per)) = (count, per) else {
            let message = format!("invalid rate {text:?}: {RATE_HINT}");
            self.problems.add(at, message);
            return None;
        };
        if per.is_zero() || per > MAX_PERIOD {
            let message = format!("invalid rate {text:?}: the period must be from 1ns to 24h");
            self.problems.add(at, message);
            return None;
        }
        let rate = Rate {
            count,
            per,
            burst: count,
        };
        if rate.interval().is_zero() {
            let message = format!("invalid rate {text:?}: more than one request per nanosecond");
            self.problems.add(at, message);
            return None;
        }
        Some(rate)
    }
}

/// A whole number written bare or as a string (as a variable gives it).
fn whole(raw: &Value) -> Option<u64> {
    match raw {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}
