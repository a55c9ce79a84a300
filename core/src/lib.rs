//! switchyard: receives vendor webhooks for many workspaces, verifies them in constant time,
//! drops repeats, maps each to one canonical envelope and routes it to the workspace's sinks.
//!
//! The modules read ground up, each importing only those below it (docs/architecture.md has
//! the floors, what each owns, and both journeys file by file): [`base`], [`http`] and
//! [`metrics`] at the ground; [`event`] (envelope, dedupe, verify) and [`telemetry`] (traces);
//! the adapters [`plugins`], [`sinks`] and [`store`]; [`config`] and [`deliver`]; [`runtime`]
//! (topology, reload, route, quota); [`server`] (the vendor front door in `server::hooks`, the operator's in
//! `server::admin`). The `switchyard` binary (`src/cli/`) stands on top.

pub mod base;
pub mod config;
pub mod deliver;
pub mod event;
pub mod http;
pub mod metrics;
pub mod plugins;
pub mod runtime;
pub mod server;
pub mod sinks;
pub mod store;
pub mod telemetry;
