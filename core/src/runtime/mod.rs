//! The running configuration: the topology (workspaces, vendors, workers), its live reload,
//! routing by event type, and per-workspace quotas.

pub mod quota;
pub mod reload;
pub mod route;
pub mod topology;
