//! The CLI's side of the operator API: which `/admin/...` request each operator command is
//! (the one place the CLI writes that grammar), and one authenticated JSON call to a running
//! server.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::AUTHORIZATION;
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use switchyard::config;

use crate::args::{AdminCommand, DlqCommand, Operator};
use crate::failure::Failure;

impl AdminCommand {
    /// Where the server is and how to reach it.
    pub fn operator(&self) -> &Operator {
        match self {
            AdminCommand::Dlq {
                command:
                    DlqCommand::List { operator, .. }
                    | DlqCommand::Replay { operator, .. }
                    | DlqCommand::Delete { operator, .. },
            }
            | AdminCommand::Queues { operator }
            | AdminCommand::Reload { operator }
            | AdminCommand::Backup { operator, .. }
            | AdminCommand::Event { operator, .. } => operator,
        }
    }

    /// The request this command is: its method and `/admin/...` path with its query.
    pub fn request(&self) -> (Method, String) {
        match self {
            AdminCommand::Dlq {
                command:
                    DlqCommand::List {
                        workspace,
                        sink,
                        limit,
                        after,
                        ..
                    },
            } => {
                let after = after
                    .as_ref()
                    .map_or_else(String::new, |id| format!("&after={id}"));
                (
                    Method::GET,
                    format!(
                        "/admin/workspaces/{workspace}/sinks/{sink}/dead-letters?limit={limit}{after}"
                    ),
                )
            }
            AdminCommand::Dlq {
                command:
                    DlqCommand::Delete {
                        workspace,
                        sink,
                        id,
                        ..
                    },
            } => (
                Method::DELETE,
                format!("/admin/workspaces/{workspace}/sinks/{sink}/dead-letters/{id}"),
            ),
            AdminCommand::Dlq {
                command:
                    DlqCommand::Replay {
                        workspace,
                        sink,
                        id,
                        ..
                    },
            } => {
                let which = id.as_ref().map_or_else(String::new, |id| format!("/{id}"));
                (
                    Method::POST,
                    format!(
                        "/admin/workspaces/{workspace}/sinks/{sink}/dead-letters{which}/replay"
                    ),
                )
            }
            AdminCommand::Queues { .. } => (Method::GET, "/admin/queues".to_owned()),
            AdminCommand::Reload { .. } => (Method::POST, "/admin/reload".to_owned()),
            AdminCommand::Backup { to, .. } => {
                let to = std::path::absolute(to).unwrap_or_else(|_| to.clone());
                let to: String =
                    form_urlencoded::byte_serialize(to.to_string_lossy().as_bytes()).collect();
                (Method::POST, format!("/admin/backup?to={to}"))
            }
            AdminCommand::Event { id, .. } => (Method::GET, format!("/admin/events/{id}")),
        }
    }
}

/// Calls the operator API and prints its JSON answer.
pub fn operate(command: &AdminCommand) -> Result<(), Failure> {
    let operator = command.operator();
    let (method, path) = command.request();
    let config = config::load(&operator.config).ok();
    let url = match (&operator.url, &config) {
        (Some(url), _) => url.clone(),
        (None, Some(config)) => base_url(config.server.admin_listen),
        (None, None) => format!(
            "http://127.0.0.1:9090 (could not read {}; pass --url)",
            operator.config.display()
        ),
    };
    let token = match (&operator.token, &config) {
        (Some(token), _) => token.clone(),
        (None, Some(config)) => match &config.server.admin_token {
            Some(token) => String::from_utf8_lossy(token.expose()).into_owned(),
            None => return Err(Failure::Runtime("no admin token: pass --token, set SWITCHYARD_ADMIN_TOKEN, or set server.admin_token".into())),
        },
        (None, None) => return Err(Failure::Runtime("no admin token: pass --token or set SWITCHYARD_ADMIN_TOKEN".into())),
    };
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let (status, answer) = runtime.block_on(call(&url, &token, method, &path))?;
    println!(
        "{}",
        serde_json::to_string_pretty(&answer).unwrap_or_default()
    );
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(Failure::Runtime(format!(
            "the server answered {status}: {}",
            answer["message"].as_str().unwrap_or("no message")
        )))
    }
}

/// `http://` and the address a local client reaches the server at: a wildcard listen address
/// (0.0.0.0, ::) is reached on loopback.
pub fn base_url(listen: SocketAddr) -> String {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{addr}")
}

/// Sends `method path` to the server at `base` and returns the HTTP status and JSON answer.
async fn call(
    base: &str,
    token: &str,
    method: Method,
    path: &str,
) -> Result<(u16, serde_json::Value), String> {
    let url: Uri = format!("{}{path}", base.trim_end_matches('/'))
        .parse()
        .map_err(|e| format!("invalid server URL {base:?}: {e}"))?;
    let request = Request::builder()
        .method(method)
        .uri(url)
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let answer = client
        .request(request)
        .await
        .map_err(|e| format!("cannot reach switchyard at {base}: {e}"))?;
    let status = answer.status().as_u16();
    let body = answer
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("the answer from {base} broke off: {e}"))?
        .to_bytes();
    let json = serde_json::from_slice(&body)
        .map_err(|_| format!("{base} answered {status} with a body that is not JSON"))?;
    Ok((status, json))
}
