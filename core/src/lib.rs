//! switchyard: receives vendor webhooks for many workspaces, verifies them in constant time,
//! drops repeats, maps each to one canonical envelope and routes it to the workspace's sinks.
//!
//! Data flows one way: [`http`] (listeners, router) -> [`hooks`] (the vendor front door) ->
//! [`plugins`] (handshake, map) and [`verify`] -> [`dedupe`] -> [`route`] -> [`store`] (durable
//! commit, queues) -> [`deliver`] -> [`sinks`]. [`admin`] is the operator's view of the same.

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
