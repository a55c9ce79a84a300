//! The public listener's router: `/hooks/*` for vendors and a plain `GET|HEAD /healthz`,
//! nothing else. The operator's paths are not served here: they name every workspace and sink.

use std::net::SocketAddr;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};

use super::Hooks;
use crate::config::ServerConfig;
use crate::http::access::respond;
use crate::http::answer::{error, healthy, Answer};
use crate::http::Handler;

/// The public listener's router.
pub struct Public {
    pub hooks: Hooks,
    /// One info line per request (method, path, status, latency) when set.
    pub access_log: bool,
}

impl Public {
    pub fn new(hooks: Hooks, server: &ServerConfig) -> Public {
        Public {
            hooks,
            access_log: server.access_log,
        }
    }
}

impl Handler for Public {
    async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> Answer {
        respond(request, peer, self.access_log, |request, path| async move {
            match (request.method(), path.as_str()) {
                (&Method::GET | &Method::HEAD, "/healthz") => healthy(),
                (_, path) => match hook_path(path) {
                    Some((workspace, vendor)) => {
                        self.hooks.answer(request, peer, workspace, vendor).await
                    }
                    None => error(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        "no such endpoint; hooks are POST /hooks/{workspace}/{vendor}",
                    ),
                },
            }
        })
        .await
    }
}

/// `/hooks/{workspace}/{vendor}` with exactly two non-empty segments.
fn hook_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/hooks/")?;
    let (workspace, vendor) = rest.split_once('/')?;
    (!workspace.is_empty() && !vendor.is_empty() && !vendor.contains('/'))
        .then_some((workspace, vendor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_paths_need_exactly_two_segments() {
        assert_eq!(hook_path("/hooks/acme/watsi"), Some(("acme", "watsi")));
        assert_eq!(hook_path("/hooks/acme/"), None);
        assert_eq!(hook_path("/hooks//watsi"), None);
        assert_eq!(hook_path("/hooks/acme/watsi/extra"), None);
        assert_eq!(hook_path("/hooks/acme"), None);
        assert_eq!(hook_path("/other/acme/watsi"), None);
    }
}
