//! The nats sink's settings, as checked when routes.yaml is read.

use std::time::Duration;

use crate::base::broker_url::BrokerUrl;
use crate::base::nats::NatsAccess;
use crate::sinks::Template;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// Never empty; `nats://`, `tls://`, `ws://` or `wss://` URLs (or bare `host:port`).
    pub servers: Vec<BrokerUrl>,
    /// Checked with [`Template::check_subject`].
    pub subject: Template,
    /// A JetStream stream the sink creates at start when absent, capturing
    /// [`Template::stream_subject`]; `None`: some stream must already capture the subjects.
    pub stream: Option<String>,
    /// Bounds one batch: publishing and waiting for every acknowledgement. Default 10 s.
    pub timeout: Duration,
    /// `credentials` and `tls`, as for the cluster store.
    pub access: NatsAccess,
}

/// Whether `name` can name a JetStream stream: not empty, and none of whitespace, `.`, `*`,
/// `>`, `/` or `\` (it becomes a token of API subjects and a directory name).
pub fn valid_stream_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
}
