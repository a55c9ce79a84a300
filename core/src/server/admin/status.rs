//! `/readyz` and `/metrics`: what an orchestrator and a Prometheus server ask.

use hyper::header::ACCEPT;
use hyper::{HeaderMap, StatusCode};
use serde_json::json;

use super::Admin;
use crate::deliver::SinkState;
use crate::http::answer::{error, reply, with_type, Answer};
use crate::metrics::{Format, SinkLabels, SinkStateLabels};

impl Admin {
    /// Ready while the store takes writes and plugins are loaded.
    pub fn readiness(&self) -> Answer {
        let loaded = self.plugins.load();
        let plugins: Vec<&str> = loaded.iter().map(|p| p.vendor.as_str()).collect();
        if self.store.is_healthy() && !loaded.is_empty() {
            reply(
                StatusCode::OK,
                &json!({"status": "ready", "plugins": plugins}),
            )
        } else {
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the store cannot take writes or no plugin is loaded",
            )
        }
    }

    /// The metrics, from counters only: no scan, whatever the backlog.
    pub fn metrics(&self, headers: &HeaderMap) -> Answer {
        for queue in self.store.known_queues() {
            let labels = SinkLabels {
                workspace: queue.workspace().to_string(),
                sink: queue.sink().to_string(),
            };
            let set = |family: &prometheus_client::metrics::family::Family<
                SinkLabels,
                prometheus_client::metrics::gauge::Gauge,
            >,
                       n: u64| {
                family
                    .get_or_create(&labels)
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            };
            set(&self.metrics.queue_depth, queue.depth());
            set(&self.metrics.in_flight, queue.in_flight());
            set(&self.metrics.dead_letters, queue.dead());
            self.metrics
                .oldest_queued_seconds
                .get_or_create(&labels)
                .set(self.store.oldest_queued_age(&queue).as_secs_f64());
        }
        // Rebuilt at each scrape, so a sink a reload removed leaves the exposition.
        self.metrics.sink_state.clear();
        for ws in self.topology.load().workspaces() {
            for worker in ws.workers() {
                let state = worker.status.state();
                for each in SinkState::ALL {
                    let labels = SinkStateLabels {
                        workspace: ws.id.to_string(),
                        sink: worker.sink.to_string(),
                        state: each.as_str().to_owned(),
                    };
                    let gauge = self.metrics.sink_state.get_or_create(&labels);
                    gauge.set(i64::from(each == state));
                }
            }
        }
        self.metrics
            .store_bytes
            .set(i64::try_from(self.store.size_on_disk()).unwrap_or(i64::MAX));
        self.metrics
            .store_ready
            .set(i64::from(self.store.is_healthy()));
        let openmetrics = headers
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/openmetrics-text"));
        let format = if openmetrics {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        };
        with_type(
            StatusCode::OK,
            self.metrics.render(format).into_bytes(),
            format.content_type(),
        )
    }
}
