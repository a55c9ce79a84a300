//! `server.telemetry`: where traces go (an OTLP/HTTP collector), how many are kept, and the
//! service name they carry.

use serde_yaml::Value;

use super::Checker;
use crate::config::locate::KeyPath;
use crate::config::raw::RawTelemetry;
use crate::telemetry::TelemetryConfig;

const DEFAULT_SERVICE_NAME: &str = "switchyard";
/// OTLP/HTTP's path for traces under a collector's base URL.
const TRACES_PATH: &str = "/v1/traces";

impl Checker<'_> {
    pub(super) fn telemetry(&mut self, at: &KeyPath, raw: RawTelemetry) -> Option<TelemetryConfig> {
        let traces_url = match raw.otlp_endpoint {
            None => {
                let message = "missing: `telemetry` needs `otlp_endpoint`, the collector's \
                               OTLP/HTTP address such as http://127.0.0.1:4318";
                self.problems.add(at, message.to_owned());
                None
            }
            Some(text) => traces_url(&text).or_else(|| {
                let message = format!(
                    "{text:?} is not an http:// or https:// URL of an OTLP/HTTP collector, \
                     such as http://127.0.0.1:4318 ({TRACES_PATH} is added)"
                );
                self.problems.add(&at.key("otlp_endpoint"), message);
                None
            }),
        };
        let sample_ratio = match raw.sample_ratio {
            None => 1.0,
            Some(Value::Number(n)) if n.as_f64().is_some_and(|r| (0.0..=1.0).contains(&r)) => {
                n.as_f64().unwrap_or(1.0)
            }
            Some(_) => {
                let message = "a number from 0 to 1: the share of traces kept (1: all)";
                self.problems
                    .add(&at.key("sample_ratio"), message.to_owned());
                1.0
            }
        };
        let service_name = raw.service_name.unwrap_or(DEFAULT_SERVICE_NAME.to_owned());
        if service_name.is_empty() {
            let message = "empty: name the service traces are shown under, such as switchyard";
            self.problems
                .add(&at.key("service_name"), message.to_owned());
        }
        Some(TelemetryConfig {
            traces_url: traces_url?,
            sample_ratio,
            service_name,
        })
    }
}

/// The collector's base URL with the traces path added.
fn traces_url(base: &str) -> Option<hyper::Uri> {
    let uri: hyper::Uri = base.parse().ok()?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
        return None;
    }
    let path = uri.path().trim_end_matches('/');
    let url = format!(
        "{}://{}{path}{TRACES_PATH}",
        uri.scheme_str()?,
        uri.authority()?
    );
    url.parse().ok()
}
