//! Plugin calls as requests make them (`map_event`, and the plugin's own `verify` and
//! `handshake` when it has them): on the blocking pool, never on the async threads; within a
//! time limit; a few at once per plugin; and behind a quarantine ([`super::quarantine`]).
//!
//! A call that runs past its limit cannot be stopped (a thread cannot be killed safely), so it
//! keeps its slot until it returns: a plugin that hangs uses up its own slots and then only times
//! out, never every thread of the server. After a few timeouts or failures in a row of one entry
//! point the plugin is quarantined: its vendor is answered 503 with the reason, without calling
//! it, for a while. Then one call alone is let through as a probe (the others are refused until
//! it returns); a success ends the quarantine, a failure starts it again. A payload the plugin
//! refuses (400) or a signature it refuses (401) is a plugin working. The numbers are
//! [`super::quarantine::Policy`]'s.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::quarantine::{Admission, Entry, ProbeTicket};
use super::{HandshakeOutcome, MapFailure, VendorPlugin};
use crate::base::names::Secret;
use crate::event::envelope::MappedEvent;
use crate::event::verify::{SignatureScheme, VerifyError};
use crate::metrics::Metrics;
use bytes::Bytes;
use hyper::HeaderMap;

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

/// A delivery whose signature is to be checked, with what it is checked against.
pub struct SignedDelivery<'a> {
    /// `None`: routes.yaml's `signature: none` (nothing to check).
    pub scheme: Option<&'a SignatureScheme>,
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
    pub delivery_id: Option<&'a str>,
    pub secrets: &'a [Secret],
    pub received_at: SystemTime,
}

/// Why a plugin call made as a request makes it has no answer to give.
#[derive(Debug)]
pub enum CallFault {
    /// The plugin panicked or broke its contract (500).
    Failed(String),
    /// The plugin did not answer within the limit (503: the vendor retries).
    TimedOut(Duration),
    /// The plugin is quarantined (503 with this reason); it was not called.
    Quarantined(String),
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
        let (headers, body) = (headers.clone(), body.clone());
        let call = move |plugin: &VendorPlugin| match plugin.map_event(&headers, &body) {
            Ok(mapped) => Ok(Ok(mapped)),
            Err(MapFailure::InvalidPayload(why)) => Ok(Err(why)),
            Err(MapFailure::PluginFailed(why)) => Err(why),
        };
        match self
            .guarded(Entry::MapEvent, time_limit, metrics, call)
            .await
        {
            Ok(Ok(mapped)) => MapOutcome::Mapped(mapped),
            Ok(Err(why)) => MapOutcome::InvalidPayload(why),
            Err(CallFault::Failed(why)) => MapOutcome::Failed(why),
            Err(CallFault::TimedOut(limit)) => MapOutcome::TimedOut(limit),
            Err(CallFault::Quarantined(why)) => MapOutcome::Quarantined(why),
        }
    }

    /// [`VendorPlugin::verify_with`] as a request should run it: the core's own check inline
    /// (the core's code, bounded by the body's size), the plugin's own check as a plugin call
    /// (module documentation).
    pub async fn verify_async(
        self: &Arc<Self>,
        delivery: SignedDelivery<'_>,
        time_limit: Duration,
        metrics: &Metrics,
    ) -> Result<Result<(), VerifyError>, CallFault> {
        let SignedDelivery {
            scheme,
            headers,
            body,
            delivery_id,
            secrets,
            received_at,
        } = delivery;
        let (Some(scheme), Some(verify)) = (scheme, self.own_verify()) else {
            return Ok(self.verify_with(scheme, headers, body, delivery_id, secrets, received_at));
        };
        let header = scheme.header.clone();
        let (headers, body, secrets) = (headers.clone(), body.clone(), secrets.to_vec());
        let call = move |_: &VendorPlugin| {
            VendorPlugin::plugin_verify(verify, &header, &headers, &body, &secrets)
        };
        self.guarded(Entry::Verify, time_limit, metrics, call).await
    }

    /// Answers a GET on the hook URL as a request should: the plugin's own handshake as a
    /// plugin call (module documentation); a handshake given as data inline.
    pub async fn handshake_async(
        self: &Arc<Self>,
        headers: &HeaderMap,
        query: &str,
        time_limit: Duration,
        metrics: &Metrics,
    ) -> Result<HandshakeOutcome, CallFault> {
        if !self.has_own_handshake() {
            return Ok(self.handshake(headers, query));
        }
        let (headers, query) = (headers.clone(), query.to_owned());
        let call = move |plugin: &VendorPlugin| match plugin.handshake(&headers, &query) {
            HandshakeOutcome::Failed => Err("the plugin failed in its handshake".to_owned()),
            answered => Ok(answered),
        };
        self.guarded(Entry::Handshake, time_limit, metrics, call)
            .await
    }

    /// Runs one call into the plugin as the module documentation says; an `Err` from `call`
    /// is the plugin failing, a strike towards quarantine.
    async fn guarded<T: Send + 'static>(
        self: &Arc<Self>,
        entry: Entry,
        time_limit: Duration,
        metrics: &Metrics,
        call: impl FnOnce(&VendorPlugin) -> Result<T, String> + Send + 'static,
    ) -> Result<T, CallFault> {
        let vendor = self.vendor.as_str();
        let mut probe = match self.guard.admit(Instant::now()) {
            Admission::Refused(reason) => {
                metrics.plugin_fault(vendor, "quarantined");
                return Err(CallFault::Quarantined(reason));
            }
            Admission::Call => None,
            Admission::Probe => Some(ProbeTicket {
                guard: &self.guard,
                settled: false,
            }),
        };
        let run = {
            let plugin = self.clone();
            let slots = self.guard.slots.clone();
            async move {
                // Never closed, so acquiring only waits.
                let slot = slots.acquire_owned().await.ok();
                // The caller's span (the request's `verify` or `map`), entered on the blocking
                // thread too, so what the call logs there is in it.
                let span = tracing::Span::current();
                tokio::task::spawn_blocking(move || {
                    // Held until the plugin returns, however late.
                    let _slot = slot;
                    span.in_scope(|| call(&plugin))
                })
                .await
            }
        };
        let (outcome, fault) = match tokio::time::timeout(time_limit, run).await {
            Ok(Ok(Ok(answer))) => (Ok(answer), None),
            Ok(Ok(Err(why))) => (Err(CallFault::Failed(why.clone())), Some(("failed", why))),
            Ok(Err(join)) => {
                let why = format!("the plugin call's thread failed: {join}");
                (Err(CallFault::Failed(why.clone())), Some(("failed", why)))
            }
            Err(_) => {
                let why = format!("{} took longer than {time_limit:?}", entry.name());
                (Err(CallFault::TimedOut(time_limit)), Some(("timeout", why)))
            }
        };
        match fault {
            None => self.guard.succeeded(entry),
            Some((kind, why)) => {
                metrics.plugin_fault(vendor, kind);
                if self
                    .guard
                    .failed(entry, &why, Instant::now(), probe.is_some())
                {
                    tracing::error!(
                        vendor,
                        plugin = %self.path.display(),
                        last = %why,
                        "vendor plugin quarantined: its deliveries are answered 503 until it recovers"
                    );
                }
            }
        }
        if let Some(ticket) = probe.as_mut() {
            ticket.settled = true;
        }
        outcome
    }
}
