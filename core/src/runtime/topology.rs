//! The running shape of a configuration: each workspace with its vendors (plugin, effective
//! signature scheme, secrets, allowed sources), its router, and one delivery worker per sink.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use crate::base::names::{Secret, SinkName, VendorName, WorkspaceId};
use crate::config::{Config, SignatureConfig, SinkConfig};
use crate::deliver::{DeliveryPolicy, Pacing, SinkWorker, Workers};
use crate::event::verify::SignatureScheme;
use crate::metrics::Metrics;
use crate::plugins::{Plugins, VendorPlugin, DEFAULT_TIME_LIMIT};
use crate::runtime::quota::Quota;
use crate::runtime::route::Router;
use crate::sinks::{self, SinkBuildError};
use crate::store::{SinkQueue, Store};

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("workspace `{workspace}`: vendor `{vendor}` has no loaded plugin")]
    NoPlugin {
        workspace: WorkspaceId,
        vendor: VendorName,
    },
    /// Caught by `Config::check_unsigned` first; never served without its allow-list.
    #[error("workspace `{workspace}`: vendor `{vendor}`'s definition signs nothing (`signature: none`): set `signature: none` and `allow_ips` for it")]
    Unsigned {
        workspace: WorkspaceId,
        vendor: VendorName,
    },
    #[error("workspace `{workspace}`, sink `{sink}`: {source}")]
    Sink {
        workspace: WorkspaceId,
        sink: SinkName,
        source: SinkBuildError,
    },
}

/// One vendor as one workspace receives it.
pub struct VendorBinding {
    pub plugin: Arc<VendorPlugin>,
    /// The plugin's scheme, with what routes.yaml changes of it; `None` for `signature: none`
    /// (which the configuration allows only with `allow_ips`).
    pub scheme: Option<SignatureScheme>,
    pub secrets: Vec<Secret>,
    pub allow_ips: Vec<IpNet>,
    /// How long one plugin call may take.
    pub plugin_timeout: Duration,
}

impl VendorBinding {
    /// Whether a delivery from `ip` may be accepted (an empty list allows every source).
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.allow_ips.is_empty() || self.allow_ips.iter().any(|net| net.contains(&ip))
    }
}

pub struct Workspace {
    pub id: WorkspaceId,
    pub dedupe_window: Duration,
    /// Its `limits`, with the rate's token bucket.
    pub quota: Quota,
    /// Each shared, so a request holds the binding it started with across a reload.
    pub vendors: HashMap<VendorName, Arc<VendorBinding>>,
    router: Router,
    /// Shared with the topology a reload builds when the sink's configuration is unchanged,
    /// so its worker keeps running; a worker stops when the last topology holding it goes.
    workers: HashMap<SinkName, (SinkConfig, Arc<SinkWorker>)>,
}

impl Workspace {
    /// The sink queues an event of this vendor and type goes to (`envelope`: its JSON, for
    /// routes with `where`); empty = unrouted.
    pub fn route(&self, vendor: &VendorName, event_type: &str, envelope: &[u8]) -> Vec<SinkQueue> {
        self.router
            .sinks_for(vendor, event_type, envelope)
            .into_iter()
            .filter_map(|sink| self.workers.get(sink))
            .map(|(_, worker)| worker.queue.clone())
            .collect()
    }

    /// What the workspace's sinks owe together: the queue ceiling of its `limits`.
    pub fn queued(&self) -> u64 {
        self.workers.values().map(|(_, w)| w.queue.depth()).sum()
    }

    pub fn workers(&self) -> impl Iterator<Item = &SinkWorker> {
        self.workers.values().map(|(_, w)| w.as_ref())
    }

    pub fn worker(&self, sink: &str) -> Option<&SinkWorker> {
        self.workers.get(sink).map(|(_, w)| w.as_ref())
    }
}

pub struct Topology {
    /// Each shared, so a request holds the workspace it started with across a reload.
    workspaces: HashMap<WorkspaceId, Arc<Workspace>>,
}

impl Topology {
    /// Builds every workspace and starts one delivery worker per sink on `delivery`, whose
    /// alerts take its state changes; with `previous` (a reload), a sink whose configuration is
    /// unchanged keeps its running worker.
    pub async fn build(
        config: &Config,
        plugins: &Plugins,
        store: &Arc<Store>,
        metrics: &Arc<Metrics>,
        delivery: &Workers,
        previous: Option<&Topology>,
    ) -> Result<Topology, TopologyError> {
        let mut workspaces = HashMap::new();
        for (id, ws) in &config.workspaces {
            let mut vendors = HashMap::new();
            for (name, vendor) in &ws.vendors {
                let plugin = plugins
                    .get(name.as_str())
                    .ok_or_else(|| TopologyError::NoPlugin {
                        workspace: id.clone(),
                        vendor: name.clone(),
                    })?
                    .clone();
                let scheme = match &vendor.signature {
                    SignatureConfig::None => {
                        tracing::warn!(
                            workspace = %id,
                            vendor = %name,
                            allow_ips = ?vendor.allow_ips,
                            "signature: none: deliveries are not signature-checked; only allow_ips admits them"
                        );
                        None
                    }
                    SignatureConfig::Plugin(change) => match &plugin.scheme {
                        Some(scheme) => Some(change.apply(scheme)),
                        None => {
                            return Err(TopologyError::Unsigned {
                                workspace: id.clone(),
                                vendor: name.clone(),
                            })
                        }
                    },
                };
                vendors.insert(
                    name.clone(),
                    Arc::new(VendorBinding {
                        plugin,
                        scheme,
                        secrets: vendor.secrets.clone(),
                        allow_ips: vendor.allow_ips.clone(),
                        plugin_timeout: vendor.plugin_timeout.unwrap_or(DEFAULT_TIME_LIMIT),
                    }),
                );
            }
            let mut workers = HashMap::new();
            for (sink_name, sink_config) in &ws.sinks {
                let running = previous
                    .and_then(|p| p.workspaces.get(id))
                    .and_then(|w| w.workers.get(sink_name))
                    .filter(|(config, _)| config == sink_config);
                if let Some((_, worker)) = running {
                    workers.insert(sink_name.clone(), (sink_config.clone(), worker.clone()));
                    continue;
                }
                let sink = sinks::build(id, sink_name, &sink_config.kind)
                    .await
                    .map_err(|source| TopologyError::Sink {
                        workspace: id.clone(),
                        sink: sink_name.clone(),
                        source,
                    })?;
                let policy = DeliveryPolicy {
                    retry: sink_config.retry.clone(),
                    concurrency: sink_config.concurrency,
                    ordered: sink_config.ordered,
                    max_backoff: sink_config.max_backoff,
                    max_age: sink_config.max_age,
                    pace: sink_config.rate.map(|rate| Pacing {
                        interval: rate.interval(),
                        burst: rate.burst.get(),
                    }),
                    disable_after: sink_config.disable_after,
                };
                let worker = SinkWorker::spawn(
                    id.clone(),
                    sink_name.clone(),
                    sink,
                    policy,
                    store.clone(),
                    metrics.clone(),
                    delivery,
                );
                workers.insert(sink_name.clone(), (sink_config.clone(), Arc::new(worker)));
            }
            workspaces.insert(
                id.clone(),
                Arc::new(Workspace {
                    id: id.clone(),
                    dedupe_window: ws.dedupe_window,
                    quota: Quota::new(&ws.limits),
                    vendors,
                    router: Router::new(&ws.routes),
                    workers,
                }),
            );
        }
        Ok(Topology { workspaces })
    }

    pub fn workspace(&self, id: &str) -> Option<&Arc<Workspace>> {
        self.workspaces.get(id)
    }

    pub fn workspaces(&self) -> impl Iterator<Item = &Workspace> {
        self.workspaces.values().map(|ws| ws.as_ref())
    }

    /// Sinks this topology runs that `previous` did not (started) and that `previous` ran
    /// and this one does not (stopped, their queues kept as orphans).
    pub fn changes_from(&self, previous: &Topology) -> (Vec<String>, Vec<String>) {
        let names = |t: &Topology| -> Vec<(String, *const SinkWorker)> {
            t.workspaces()
                .flat_map(|ws| {
                    ws.workers
                        .iter()
                        .map(move |(sink, (_, w))| (format!("{}/{sink}", ws.id), Arc::as_ptr(w)))
                })
                .collect()
        };
        let (now, before) = (names(self), names(previous));
        let started = now
            .iter()
            .filter(|n| !before.contains(n))
            .map(|(name, _)| name.clone())
            .collect();
        let stopped = before
            .iter()
            .filter(|n| !now.contains(n))
            .map(|(name, _)| name.clone())
            .collect();
        (started, stopped)
    }

    /// Stops this topology's workers that `next` does not run (their sinks were changed or
    /// removed), at once rather than when the last request holding this topology ends: each
    /// hands its queue over to the sink's new worker.
    pub fn stop_replaced(&self, next: &Topology) {
        let kept: Vec<*const SinkWorker> = next
            .workspaces
            .values()
            .flat_map(|ws| ws.workers.values().map(|(_, w)| Arc::as_ptr(w)))
            .collect();
        for ws in self.workspaces.values() {
            for (_, worker) in ws.workers.values() {
                if !kept.contains(&Arc::as_ptr(worker)) {
                    worker.stop();
                }
            }
        }
    }

    /// Every sink's queue.
    pub fn queues(&self) -> impl Iterator<Item = &SinkQueue> {
        self.workspaces()
            .flat_map(|ws| ws.workers())
            .map(|w| &w.queue)
    }
}
