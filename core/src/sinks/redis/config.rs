//! The redis sink's settings, as checked when routes.yaml is read.

use std::time::Duration;

use crate::base::broker_url::BrokerUrl;
use crate::sinks::Template;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://`, `rediss://` or `unix://`; parsed by the redis client when read.
    pub url: BrokerUrl,
    /// The stream key template; its values never hold braces (see [`Template::redis_key`]).
    pub stream: Template,
    /// `XADD ... MAXLEN ~ max_len`: the stream is trimmed to about this many entries (never
    /// fewer). Default 100000.
    pub max_len: usize,
    /// How long an envelope id is remembered, so a redelivery adds no second entry. Default 72h.
    pub dedupe_ttl: Duration,
    /// Bounds one batch, connecting included. Default 10 s.
    pub timeout: Duration,
}

pub const DEFAULT_MAX_LEN: usize = 100_000;
pub const DEFAULT_DEDUPE_TTL: Duration = Duration::from_secs(72 * 3600);
