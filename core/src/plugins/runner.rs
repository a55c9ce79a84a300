//! Plugin calls as requests make them: on the blocking pool, never on the async threads; within
//! a time limit; at most [`Policy::max_in_flight`] at once per plugin; and behind a quarantine.
//!
//! A call that runs past its limit cannot be stopped (a thread cannot be killed safely), so it
//! keeps its slot until it returns: a plugin that hangs uses up its own slots and then only times
//! out, never every thread of the server. After [`Policy::strikes`] timeouts or failures in a row
//! the plugin is quarantined: its vendor is answered 503 with the reason, without calling it, for
//! [`Policy::quarantine`]. Then one call is let through as a probe; a success ends the quarantine,
//! another failure starts it again. A payload the plugin refuses (400) is a plugin working.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::HeaderMap;
use tokio::sync::Semaphore;

use super::{MapFailure, VendorPlugin};
use crate::event::envelope::MappedEvent;
use crate::metrics::Metrics;

/// A plugin call's time limit unless routes.yaml sets the vendor's `plugin_timeout`. Mapping
/// takes microseconds; this leaves room for a loaded machine.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(2);

/// What became of one `map_event` call.
#[derive(Debug)]
pub enum MapOutcome {
    Mapped(MappedEvent),
    /// The payload cannot be mapped (400): not JSON, no identity, an empty type, a signed body
    /// and header that disagree.
    InvalidPayload(String),
    /// The plugin panicked or broke its contract (500).
    Failed(String),
    /// The plugin did not answer within the limit (503: the vendor retries).
    TimedOut(Duration),
    /// The plugin is quarantined (503 with this reason); it was not called.
    Quarantined(String),
}

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

/// One plugin's slots, failure count and quarantine.
pub(super) struct Guard {
    policy: Policy,
    slots: Arc<Semaphore>,
    strikes: AtomicU32,
    quarantine: Mutex<Option<Quarantine>>,
}

struct Quarantine {
    until: Instant,
    reason: String,
}

impl Guard {
    pub(super) fn new(policy: Policy) -> Guard {
        Guard {
            policy,
            slots: Arc::new(Semaphore::new(policy.max_in_flight)),
            strikes: AtomicU32::new(0),
            quarantine: Mutex::new(None),
        }
    }

    /// The reason, while quarantined; `None` when a call may go ahead (a probe, once the
    /// quarantine has run its time).
    fn quarantined(&self, now: Instant) -> Option<String> {
        let quarantine = self.quarantine.lock().unwrap_or_else(|p| p.into_inner());
        quarantine
            .as_ref()
            .filter(|q| now < q.until)
            .map(|q| q.reason.clone())
    }

    fn succeeded(&self) {
        self.strikes.store(0, Ordering::Relaxed);
        *self.quarantine.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Counts a timeout or failure; `true` when it starts a quarantine.
    fn failed(&self, what: &str, now: Instant) -> bool {
        let strikes = self.strikes.fetch_add(1, Ordering::Relaxed) + 1;
        if strikes < self.policy.strikes {
            return false;
        }
        let reason = format!(
            "the vendor plugin is quarantined for {:?} after {strikes} failed calls in a row \
             (the last: {what}); retry later",
            self.policy.quarantine
        );
        *self.quarantine.lock().unwrap_or_else(|p| p.into_inner()) = Some(Quarantine {
            until: now + self.policy.quarantine,
            reason,
        });
        true
    }
}

impl VendorPlugin {
    /// Maps a verified delivery as a request should: see the module documentation.
    pub async fn map_event_async(
        self: &Arc<Self>,
        headers: &HeaderMap,
        body: &Bytes,
        time_limit: Duration,
        metrics: &Metrics,
    ) -> MapOutcome {
        let vendor = self.vendor.as_str();
        if let Some(reason) = self.guard.quarantined(Instant::now()) {
            metrics.plugin_fault(vendor, "quarantined");
            return MapOutcome::Quarantined(reason);
        }
        let call = {
            let (plugin, headers, body) = (self.clone(), headers.clone(), body.clone());
            let slots = self.guard.slots.clone();
            async move {
                // Never closed, so acquiring only waits.
                let slot = slots.acquire_owned().await.ok();
                tokio::task::spawn_blocking(move || {
                    // Held until the plugin returns, however late.
                    let _slot = slot;
                    plugin.map_event(&headers, &body)
                })
                .await
            }
        };
        let (outcome, fault) = match tokio::time::timeout(time_limit, call).await {
            Ok(Ok(Ok(mapped))) => (MapOutcome::Mapped(mapped), None),
            Ok(Ok(Err(MapFailure::InvalidPayload(why)))) => (MapOutcome::InvalidPayload(why), None),
            Ok(Ok(Err(MapFailure::PluginFailed(why)))) => {
                (MapOutcome::Failed(why.clone()), Some(("failed", why)))
            }
            Ok(Err(join)) => {
                let why = format!("the plugin call's thread failed: {join}");
                (MapOutcome::Failed(why.clone()), Some(("failed", why)))
            }
            Err(_) => {
                let why = format!("map_event took longer than {time_limit:?}");
                (MapOutcome::TimedOut(time_limit), Some(("timeout", why)))
            }
        };
        match fault {
            None => self.guard.succeeded(),
            Some((kind, why)) => {
                metrics.plugin_fault(vendor, kind);
                if self.guard.failed(&why, Instant::now()) {
                    tracing::error!(
                        vendor,
                        plugin = %self.path.display(),
                        last = %why,
                        "vendor plugin quarantined: its deliveries are answered 503 until it recovers"
                    );
                }
            }
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strikes_in_a_row_quarantine_until_the_time_runs_out_and_a_success_ends_it() {
        let guard = Guard::new(Policy {
            max_in_flight: 1,
            strikes: 3,
            quarantine: Duration::from_secs(60),
        });
        let t0 = Instant::now();
        assert!(!guard.failed("timeout", t0));
        assert!(!guard.failed("timeout", t0));
        guard.succeeded();
        // The count is of failures in a row: a success in between starts it again.
        assert!(!guard.failed("timeout", t0));
        assert!(!guard.failed("panic", t0));
        assert_eq!(guard.quarantined(t0), None);
        assert!(guard.failed("map_event took longer than 2s", t0));
        let reason = guard.quarantined(t0).expect("quarantined");
        assert!(reason.contains("3 failed calls in a row"), "{reason}");
        assert!(reason.contains("map_event took longer than 2s"), "{reason}");
        assert!(guard.quarantined(t0 + Duration::from_secs(59)).is_some());
        // Time up: one probe goes through; if it fails, the quarantine starts again at once.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(guard.quarantined(later), None);
        assert!(guard.failed("panic", later));
        assert!(guard.quarantined(later).is_some());
        guard.succeeded();
        assert_eq!(guard.quarantined(later), None);
    }
}
