//! The CLI's side of the operator API: which `/admin/...` request each operator command is
//! (the one place the CLI writes that grammar), and one authenticated JSON call to a running
//! server, its answer printed as the server wrote it.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::AUTHORIZATION;
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::value::RawValue;
use switchyard::config;

use crate::args::{AdminCommand, DlqCommand, Operator, SinkCommand};
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
            | AdminCommand::Sink {
                command: SinkCommand::Enable { operator, .. },
            }
            | AdminCommand::Queues { operator }
            | AdminCommand::Reload { operator }
            | AdminCommand::Backup { operator, .. }
            | AdminCommand::Events { operator, .. }
            | AdminCommand::Replay { operator, .. }
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
            AdminCommand::Sink {
                command:
                    SinkCommand::Enable {
                        workspace, sink, ..
                    },
            } => (
                Method::POST,
                format!("/admin/workspaces/{workspace}/sinks/{sink}/enable"),
            ),
            AdminCommand::Queues { .. } => (Method::GET, "/admin/queues".to_owned()),
            AdminCommand::Reload { .. } => (Method::POST, "/admin/reload".to_owned()),
            AdminCommand::Backup { to, .. } => {
                let to = std::path::absolute(to).unwrap_or_else(|_| to.clone());
                let to: String =
                    form_urlencoded::byte_serialize(to.to_string_lossy().as_bytes()).collect();
                (Method::POST, format!("/admin/backup?to={to}"))
            }
            AdminCommand::Replay {
                workspace,
                sink,
                since,
                until,
                event_type,
                ..
            } => {
                let mut query = form_urlencoded::Serializer::new(String::new());
                query
                    .append_pair("since", since)
                    .append_pair("until", until);
                if let Some(glob) = event_type {
                    query.append_pair("type", glob);
                }
                let path = format!("/admin/workspaces/{workspace}/sinks/{sink}/replay");
                (Method::POST, format!("{path}?{}", query.finish()))
            }
            AdminCommand::Events { search, .. } => {
                (Method::GET, format!("/admin/events?{}", search.query()))
            }
            AdminCommand::Event { id, .. } => (Method::GET, format!("/admin/events/{id}")),
        }
    }
}

/// Calls the operator API and prints its JSON answer. The address and token come from the
/// flags and the environment, else from the routes file's `server` section, read on its own:
/// a file with problems elsewhere still names the server, which can then list them.
pub fn operate(command: &AdminCommand) -> Result<(), Failure> {
    let operator = command.operator();
    let (method, path) = command.request();
    let file = match (&operator.url, &operator.token) {
        (Some(_), Some(_)) => None,
        _ => Some(config::operator_access(&operator.config)),
    };
    let access = file.as_ref().and_then(|file| file.as_ref().ok());
    let url = match (&operator.url, access.and_then(|a| a.admin_listen)) {
        (Some(url), _) => url.clone(),
        (None, Some(listen)) => base_url(listen),
        (None, None) => {
            let url = base_url(SocketAddr::from((Ipv4Addr::LOCALHOST, 9090)));
            if let Some(Err(why)) = &file {
                eprintln!("note: {why}; using {url} (pass --url or set SWITCHYARD_ADMIN_URL)");
            }
            url
        }
    };
    let token = match (&operator.token, access.and_then(|a| a.admin_token.as_ref())) {
        (Some(token), _) => token.clone(),
        (None, Some(token)) => String::from_utf8_lossy(token.expose()).into_owned(),
        (None, None) => {
            return Err(Failure::Runtime(format!(
                "no admin token: pass --token, set SWITCHYARD_ADMIN_TOKEN, or set \
                 server.admin_token in {}",
                operator.config.display()
            )))
        }
    };
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let (status, answer) = runtime.block_on(call(&url, &token, method, &path))?;
    println!("{}", pretty(answer.get()));
    if (200..300).contains(&status) {
        Ok(())
    } else {
        let answer: serde_json::Value = serde_json::from_str(answer.get()).unwrap_or_default();
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

/// Sends `method path` to the server at `base` and returns the HTTP status and JSON answer, as
/// the server wrote it (an event's `raw` keeps the vendor's key order and numbers).
async fn call(
    base: &str,
    token: &str,
    method: Method,
    path: &str,
) -> Result<(u16, Box<RawValue>), String> {
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

/// `json` (valid JSON) laid out as serde_json's pretty printer does, token by token, so that key
/// order, numbers and string escapes stay exactly as written.
fn pretty(json: &str) -> String {
    let mut out = String::with_capacity(json.len() * 2);
    let mut depth = 0;
    let (mut in_string, mut escaped) = (false, false);
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    let mut chars = json.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                while chars.next_if(char::is_ascii_whitespace).is_some() {}
                match chars.next_if(|c| matches!(c, '}' | ']')) {
                    Some(close) => out.push(close),
                    None => {
                        depth += 1;
                        newline(&mut out, depth);
                    }
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            _ if c.is_ascii_whitespace() => {}
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::pretty;

    #[test]
    fn pretty_lays_out_as_serde_json_does() {
        let json = r#"{"a":[],"b":{},"c":[1,{"d":"x"}],"e":null}"#;
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(pretty(json), serde_json::to_string_pretty(&value).unwrap());
    }

    #[test]
    fn pretty_keeps_key_order_numbers_and_strings_as_written() {
        let json = r#"{"z":1.50, "a" : 12345678901234567890123,"s":"q\"{,:}\\","t":[ ]}"#;
        let expected = "{\n  \"z\": 1.50,\n  \"a\": 12345678901234567890123,\n  \"s\": \
                        \"q\\\"{,:}\\\\\",\n  \"t\": []\n}";
        assert_eq!(pretty(json), expected);
    }
}
