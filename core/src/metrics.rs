//! Prometheus metrics for `GET /metrics`. Labels are only ever configured names (workspace,
//! vendor, sink) and fixed outcome words, never values from a request, so a caller cannot grow
//! the label space; and never secrets.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HookLabels {
    pub workspace: String,
    pub vendor: String,
    /// `accepted`, `duplicate`, `unrouted`, or the error code answered.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabels {
    pub workspace: String,
    pub sink: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkOutcomeLabels {
    pub workspace: String,
    pub sink: String,
    /// `delivered`, `failed` (will retry) or `dead`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginFaultLabels {
    pub vendor: String,
    /// `timeout`, `failed` (panicked or broke the ABI contract), or `quarantined` (answered 503
    /// without calling the plugin).
    pub kind: String,
}

pub struct Metrics {
    registry: Registry,
    pub hook_requests: Family<HookLabels, Counter>,
    pub hook_duration: Histogram,
    pub sink_attempts: Family<SinkOutcomeLabels, Counter>,
    pub queue_depth: Family<SinkLabels, Gauge>,
    pub dead_letters: Family<SinkLabels, Gauge>,
    pub store_flushes: Counter<u64, AtomicU64>,
    pub store_bytes: Gauge,
    pub plugin_faults: Family<PluginFaultLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("switchyard");
        let hook_requests = Family::<HookLabels, Counter>::default();
        registry.register(
            "hook_requests",
            "Deliveries received on /hooks, by workspace, vendor and answer",
            hook_requests.clone(),
        );
        // 0.5 ms to ~16 s: an accept costs about one flush.
        let hook_duration = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "hook_duration_seconds",
            "Time from request to answer for POST /hooks, flush included",
            hook_duration.clone(),
        );
        let sink_attempts = Family::<SinkOutcomeLabels, Counter>::default();
        registry.register(
            "sink_attempts",
            "Delivery attempts to sinks, by outcome",
            sink_attempts.clone(),
        );
        let queue_depth = Family::<SinkLabels, Gauge>::default();
        registry.register(
            "sink_queue_depth",
            "Events a sink still owes",
            queue_depth.clone(),
        );
        let dead_letters = Family::<SinkLabels, Gauge>::default();
        registry.register(
            "sink_dead_letters",
            "Events a sink gave up on, awaiting replay",
            dead_letters.clone(),
        );
        let store_flushes = Counter::default();
        registry.register(
            "store_flushes",
            "Group commits: flushes shared by every accept waiting at the time",
            store_flushes.clone(),
        );
        let store_bytes = Gauge::default();
        registry.register(
            "store_size_bytes",
            "Bytes the sled store occupies on disk",
            store_bytes.clone(),
        );
        let plugin_faults = Family::<PluginFaultLabels, Counter>::default();
        registry.register(
            "plugin_faults",
            "Vendor plugin calls that timed out or failed, and deliveries refused while the plugin was quarantined",
            plugin_faults.clone(),
        );
        Metrics {
            registry,
            hook_requests,
            hook_duration,
            sink_attempts,
            queue_depth,
            dead_letters,
            store_flushes,
            store_bytes,
            plugin_faults,
        }
    }

    pub fn plugin_fault(&self, vendor: &str, kind: &str) {
        self.plugin_faults
            .get_or_create(&PluginFaultLabels {
                vendor: vendor.to_owned(),
                kind: kind.to_owned(),
            })
            .inc();
    }

    pub fn hook(&self, workspace: &str, vendor: &str, outcome: &str) {
        self.hook_requests
            .get_or_create(&HookLabels {
                workspace: workspace.to_owned(),
                vendor: vendor.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn sink_attempt(&self, workspace: &str, sink: &str, outcome: &str) {
        self.sink_attempts
            .get_or_create(&SinkOutcomeLabels {
                workspace: workspace.to_owned(),
                sink: sink.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_their_labels() {
        let m = Metrics::new();
        m.hook("acme", "watsi", "accepted");
        m.hook("acme", "watsi", "accepted");
        m.sink_attempt("acme", "crm", "dead");
        m.plugin_fault("whatsable", "timeout");
        let text = m.render();
        assert!(text.contains(
            r#"switchyard_hook_requests_total{workspace="acme",vendor="watsi",outcome="accepted"} 2"#
        ), "{text}");
        assert!(
            text.contains(
                r#"switchyard_sink_attempts_total{workspace="acme",sink="crm",outcome="dead"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"switchyard_plugin_faults_total{vendor="whatsable",kind="timeout"} 1"#),
            "{text}"
        );
    }
}
