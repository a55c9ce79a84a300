//! Prometheus metrics for `GET /metrics`. Labels are only ever configured names (workspace,
//! vendor, sink), [`UNKNOWN`] in their place, and fixed outcome words, never values from a
//! request, so a caller cannot grow the label space; and never secrets. The process's own
//! figures (memory, descriptors, CPU) are read at scrape time by [`process`].

mod process;

use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;

use prometheus_client::encoding::text::{encode_eof, encode_registry};
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

/// The workspace or vendor label of a request naming one that is not configured: the name
/// itself is the caller's to choose. Names are `[A-Za-z0-9_-]`, so this one is never configured.
pub const UNKNOWN: &str = "(unknown)";

/// The answers to a hook request that are not refusals.
const TAKEN: [&str; 3] = ["accepted", "duplicate", "unrouted"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// A configured workspace, or [`UNKNOWN`].
    pub workspace: String,
    /// The error code answered: `rate_limited`, `queue_full`, `unknown_workspace`...
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
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
pub struct SinkStateLabels {
    pub workspace: String,
    pub sink: String,
    /// `healthy`, `backing_off` or `disabled`.
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkLabels {
    /// `accept` (the commit writer: dedupe, log write and sync, answers), `apply` (sled's
    /// index, behind the answers) or `deliver` (a delivery worker reading its queue and
    /// settling outcomes, not the time waiting on its sink).
    pub work: String,
    /// The sink of `deliver` work; empty (no label, to Prometheus) for the others.
    pub workspace: String,
    pub sink: String,
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
    /// Unprefixed: `process_*` are the names every Prometheus client library uses.
    process: Registry,
    pub hook_requests: Family<HookLabels, Counter>,
    pub hook_refusals: Family<RefusalLabels, Counter>,
    pub hook_duration: Histogram,
    pub sink_attempts: Family<SinkOutcomeLabels, Counter>,
    pub queue_depth: Family<SinkLabels, Gauge>,
    pub in_flight: Family<SinkLabels, Gauge>,
    pub dead_letters: Family<SinkLabels, Gauge>,
    /// 1 for the state each running sink is in, 0 for the others.
    pub sink_state: Family<SinkStateLabels, Gauge>,
    /// Accept to delivered, per sink.
    pub delivery_seconds: Family<SinkLabels, Histogram, fn() -> Histogram>,
    /// How long the oldest event a sink still owes has waited.
    pub oldest_queued_seconds: Family<SinkLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub store_commits: Counter<u64, AtomicU64>,
    pub store_batch_events: Histogram,
    pub store_bytes: Gauge,
    pub store_unreadable: Counter<u64, AtomicU64>,
    pub plugin_faults: Family<PluginFaultLabels, Counter>,
    /// Seconds spent on each kind of work: how intake and delivery share the machine.
    pub busy_seconds: Family<WorkLabels, Counter<f64, AtomicU64>>,
    /// 1 while the store takes writes (what `/readyz` reports), else 0.
    pub store_ready: Gauge,
}

/// The two text formats a scraper may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text 0.0.4, what a scraper gets unless it asks for OpenMetrics.
    Prometheus,
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Spans the trace exporter dropped: counted by `telemetry`, which starts before the server
/// and its `Metrics`, so one counter for the process.
pub fn trace_spans_dropped() -> Counter {
    static DROPPED: OnceLock<Counter> = OnceLock::new();
    DROPPED.get_or_init(Counter::default).clone()
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
        registry.register(
            "trace_spans_dropped",
            "Trace spans dropped: the OTLP collector did not take their batch",
            trace_spans_dropped(),
        );
        let hook_refusals = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "hook_refusals",
            "Hook requests refused, by workspace (\"(unknown)\" for one not configured) and reason",
            hook_refusals.clone(),
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
        let delivery_seconds: Family<SinkLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 20)));
        registry.register(
            "sink_delivery_seconds",
            "Time from an event's accept to its delivery, per sink",
            delivery_seconds.clone(),
        );
        let oldest_queued_seconds = Family::default();
        registry.register(
            "sink_oldest_queued_seconds",
            "Age of the oldest event a sink still owes (0 when its queue is empty)",
            oldest_queued_seconds.clone(),
        );
        let sink_state = Family::<SinkStateLabels, Gauge>::default();
        registry.register(
            "sink_state",
            "Each running sink's state: 1 for the one it is in (healthy, backing_off, disabled)",
            sink_state.clone(),
        );
        let queue_depth = Family::<SinkLabels, Gauge>::default();
        registry.register(
            "sink_queue_depth",
            "Events a sink still owes",
            queue_depth.clone(),
        );
        let in_flight = Family::<SinkLabels, Gauge>::default();
        registry.register(
            "sink_in_flight",
            "Events handed to a sink and not yet settled",
            in_flight.clone(),
        );
        let dead_letters = Family::<SinkLabels, Gauge>::default();
        registry.register(
            "sink_dead_letters",
            "Events a sink gave up on, awaiting replay",
            dead_letters.clone(),
        );
        let store_commits = Counter::default();
        registry.register(
            "store_commits",
            "Batches made durable: one write-ahead log write and sync each",
            store_commits.clone(),
        );
        let store_batch_events = Histogram::new(exponential_buckets(1.0, 2.0, 13));
        registry.register(
            "store_batch_events",
            "New events per committed batch",
            store_batch_events.clone(),
        );
        let store_unreadable = Counter::default();
        registry.register(
            "store_unreadable_records",
            "Stored records that could not be read (damage or an unknown format); each is logged",
            store_unreadable.clone(),
        );
        let store_bytes = Gauge::default();
        registry.register(
            "store_size_bytes",
            "Bytes the store occupies: sled and its log, or in cluster mode JetStream's streams",
            store_bytes.clone(),
        );
        let plugin_faults = Family::<PluginFaultLabels, Counter>::default();
        registry.register(
            "plugin_faults",
            "Vendor plugin calls that timed out or failed, and deliveries refused while the plugin was quarantined",
            plugin_faults.clone(),
        );
        let busy_seconds = Family::<WorkLabels, Counter<f64, AtomicU64>>::default();
        registry.register(
            "busy_seconds",
            "Seconds spent accepting (work=accept), applying to the store's index (apply) and delivering (deliver, per workspace and sink: reading its queue and settling outcomes)",
            busy_seconds.clone(),
        );
        let store_ready = Gauge::default();
        registry.register(
            "store_ready",
            "1 while the store takes writes, else 0",
            store_ready.clone(),
        );
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        registry.register(
            "build_info",
            "Always 1; the version of the running binary as a label",
            build_info,
        );
        let mut process = Registry::default();
        process.register_collector(Box::new(process::Collector));
        Metrics {
            registry,
            process,
            hook_requests,
            hook_refusals,
            hook_duration,
            sink_attempts,
            queue_depth,
            sink_state,
            in_flight,
            dead_letters,
            delivery_seconds,
            oldest_queued_seconds,
            store_commits,
            store_batch_events,
            store_bytes,
            store_unreadable,
            plugin_faults,
            busy_seconds,
            store_ready,
        }
    }

    /// The busy-seconds counter of one kind of work not done for one sink.
    pub fn busy(&self, work: &str) -> Counter<f64, AtomicU64> {
        self.work_busy(work, "", "")
    }

    /// The busy-seconds counter of one sink's delivery worker.
    pub fn deliver_busy(&self, workspace: &str, sink: &str) -> Counter<f64, AtomicU64> {
        self.work_busy("deliver", workspace, sink)
    }

    fn work_busy(&self, work: &str, workspace: &str, sink: &str) -> Counter<f64, AtomicU64> {
        self.busy_seconds
            .get_or_create(&WorkLabels {
                work: work.to_owned(),
                workspace: workspace.to_owned(),
                sink: sink.to_owned(),
            })
            .clone()
    }

    /// A queue the store no longer has: its gauges leave the exposition instead of keeping the
    /// last values they were set to.
    pub fn forget_queue(&self, workspace: &str, sink: &str) {
        let labels = SinkLabels {
            workspace: workspace.to_owned(),
            sink: sink.to_owned(),
        };
        for family in [&self.queue_depth, &self.in_flight, &self.dead_letters] {
            family.remove(&labels);
        }
        self.oldest_queued_seconds.remove(&labels);
    }

    pub fn plugin_fault(&self, vendor: &str, kind: &str) {
        self.plugin_faults
            .get_or_create(&PluginFaultLabels {
                vendor: vendor.to_owned(),
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// One hook request answered; a refusal (any outcome but a taken event) is also counted
    /// by reason.
    pub fn hook(&self, workspace: &str, vendor: &str, outcome: &str) {
        self.hook_requests
            .get_or_create(&HookLabels {
                workspace: workspace.to_owned(),
                vendor: vendor.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        if !TAKEN.contains(&outcome) {
            self.hook_refusals
                .get_or_create(&RefusalLabels {
                    workspace: workspace.to_owned(),
                    reason: outcome.to_owned(),
                })
                .inc();
        }
    }

    pub fn delivered_after(&self, workspace: &str, sink: &str, seconds: f64) {
        self.delivery_seconds
            .get_or_create(&SinkLabels {
                workspace: workspace.to_owned(),
                sink: sink.to_owned(),
            })
            .observe(seconds);
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

    /// The text exposition in the format asked for.
    pub fn render(&self, format: Format) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an unreadable /proc figure is left out, not an error.
        let _ = encode_registry(&mut out, &self.registry);
        let _ = encode_registry(&mut out, &self.process);
        let _ = encode_eof(&mut out);
        match format {
            Format::OpenMetrics => out,
            Format::Prometheus => classic(&out),
        }
    }
}

/// OpenMetrics text as Prometheus text 0.0.4: no `# EOF` or `# UNIT`, and a counter's
/// `# HELP`/`# TYPE` name its `_total` series, as the classic format expects.
fn classic(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|tag| {
            let rest = line.strip_prefix(tag)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{tag}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests;
