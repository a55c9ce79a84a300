//! A broker's URL, which may carry credentials (`redis://:password@host`,
//! `nats://user:pass@host`): its `Debug` and [`BrokerUrl::redacted`] leave the userinfo out, so
//! neither a log line nor a configuration dump shows it.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct BrokerUrl(String);

impl BrokerUrl {
    pub fn new(url: impl Into<String>) -> BrokerUrl {
        BrokerUrl(url.into())
    }

    /// The URL as written, credentials and all: for the client library only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL without its userinfo: `nats://user:pass@host:4222` shows as `nats://host:4222`.
    pub fn redacted(&self) -> String {
        redact(&self.0)
    }
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.redacted(), f)
    }
}

/// `url` without `user:password@` in its authority.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = match authority.rfind('@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{host}{path}"),
        None => format!("{host}{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_never_shows() {
        assert_eq!(
            redact("nats://user:s3cret@nats.internal:4222"),
            "nats://nats.internal:4222"
        );
        assert_eq!(
            redact("redis://:p@ss@127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(redact("token@host:4222"), "host:4222");
        assert_eq!(redact("redis://127.0.0.1/0"), "redis://127.0.0.1/0");
        let url = BrokerUrl::new("rediss://u:hunter2@r:6380");
        assert!(!format!("{url:?}").contains("hunter2"));
    }
}
