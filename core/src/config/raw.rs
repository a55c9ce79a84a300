//! routes.yaml as written, after `${VAR}` expansion and before any check.
//!
//! Every field is optional so that a missing one is reported by `validate` with the other
//! problems, not alone by serde. Unknown keys are refused here, so a typo is never ignored.
//! Secrets and fields that may come from a variable stay `Value`s: serde would quote a value of
//! the wrong type in its error, and a secret must never be quoted.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_yaml::Value;

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with `server` and `workspaces`"
)]
pub(crate) struct RawConfig {
    pub(crate) server: Option<RawServer>,
    pub(crate) workspaces: Option<BTreeMap<String, RawWorkspace>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of server settings")]
pub(crate) struct RawServer {
    pub(crate) listen: Option<String>,
    pub(crate) data_dir: Option<String>,
    pub(crate) max_body_bytes: Option<Value>,
    pub(crate) plugins_dir: Option<String>,
    pub(crate) admin_token: Option<Value>,
    pub(crate) header_read_timeout: Option<Value>,
    pub(crate) retention: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a workspace: a mapping with `vendors`, `sinks` and `routes`"
)]
pub(crate) struct RawWorkspace {
    pub(crate) dedupe_window: Option<Value>,
    pub(crate) vendors: Option<BTreeMap<String, RawVendor>>,
    pub(crate) sinks: Option<BTreeMap<String, RawSink>>,
    pub(crate) routes: Option<Vec<RawRoute>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a vendor: a mapping with `secrets`")]
pub(crate) struct RawVendor {
    pub(crate) secrets: Option<Value>,
    pub(crate) signature_header: Option<String>,
    /// `none`, or a mapping of `header`, `encoding`, `prefix`: checked by `validate`.
    pub(crate) signature: Option<Value>,
    pub(crate) allow_ips: Option<Vec<String>>,
    pub(crate) plugin_timeout: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a sink: a mapping with `type`")]
pub(crate) struct RawSink {
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) path: Option<String>,
    pub(crate) url: Option<String>,
    pub(crate) timeout: Option<Value>,
    pub(crate) secret: Option<Value>,
    pub(crate) retry: Option<Vec<Value>>,
    pub(crate) concurrency: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a route: a mapping with `match` and `to`"
)]
pub(crate) struct RawRoute {
    #[serde(rename = "match")]
    pub(crate) matcher: Option<RawMatch>,
    pub(crate) to: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a match: a mapping with `vendor` and `type`"
)]
pub(crate) struct RawMatch {
    pub(crate) vendor: Option<Value>,
    #[serde(rename = "type")]
    pub(crate) event_type: Option<String>,
}
