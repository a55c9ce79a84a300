//! The operator listener's router: `/healthz`, `/readyz`, `/metrics`, `/admin/*` and the
//! browser console at `/console/`, which name every workspace and sink and so stay off the
//! public port.

use std::net::SocketAddr;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};

use super::console::Console;
use super::Admin;
use crate::config::ServerConfig;
use crate::http::access::respond;
use crate::http::answer::{error, healthy, Answer};
use crate::http::Handler;

/// The operator listener's router.
pub struct Operator {
    pub admin: Admin,
    pub console: Console,
    pub access_log: bool,
}

impl Operator {
    pub fn new(admin: Admin, server: &ServerConfig) -> Operator {
        Operator {
            admin,
            console: Console::default(),
            access_log: server.access_log,
        }
    }
}

impl Handler for Operator {
    async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> Answer {
        respond(request, peer, self.access_log, |request, path| async move {
            match (request.method(), path.as_str()) {
                (&Method::GET | &Method::HEAD, "/healthz") => healthy(),
                (&Method::GET, "/readyz") => self.admin.readiness(),
                (&Method::GET, "/metrics") => self.admin.metrics(request.headers()),
                (_, path) if path.starts_with("/admin/") => {
                    let method = request.method().clone();
                    let target = request.uri().path_and_query().map_or(path, |p| p.as_str());
                    self.admin.answer(&method, target, request.headers()).await
                }
                (_, path) if path == "/console" || path.starts_with("/console/") => {
                    self.console.answer(&self.admin, request).await
                }
                _ => error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "no such endpoint; the operator listener serves /readyz, /metrics, /admin/* and /console/",
                ),
            }
        })
        .await
    }
}
