//! The browser console at `/console/` on the operator listener: sign-in with the admin token
//! to a session cookie, then the views (overview, events, an event, a sink's dead letters),
//! each at its own URL, calling the operator API as `/console/api/...`.
//!
//! - `GET  /console/...`: the console page with a session, the sign-in page without one
//! - `GET  /console/assets/{name}`: its files ([`assets`]); only the sign-in page's without a session
//! - `POST /console/session` `{"token": ...}`: sign in; `GET` it: the session's CSRF token;
//!   `DELETE` it: sign out
//! - `/console/api/{rest}`: `/admin/{rest}` for the session
//!
//! The cookie is HttpOnly and SameSite=Strict. A request that changes anything must come from
//! the console's own pages (`Origin`, `Sec-Fetch-Site`) and carry the session's CSRF token in
//! `X-Switchyard-CSRF`. Every answer forbids loading anything from elsewhere (CSP).

mod assets;
mod session;

use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{
    HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, COOKIE, HOST, ORIGIN,
    REFERRER_POLICY, SET_COOKIE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use hyper::{HeaderMap, Method, Request, StatusCode};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use self::session::{csrf_matches, Sessions};
use super::Admin;
use crate::http::answer::{error, reply, with_type, Answer, BodyConsumed};

const COOKIE_NAME: &str = "switchyard_session";
const CSRF_HEADER: &str = "x-switchyard-csrf";
/// Nothing from anywhere but the console itself; no inline script or style; never framed.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; \
                   frame-ancestors 'none'; object-src 'none'";
/// A sign-in body is a token in a small JSON object.
const MAX_SIGN_IN_BYTES: usize = 4096;

/// The console's sessions.
#[derive(Default)]
pub struct Console {
    sessions: Sessions,
}

impl Console {
    pub async fn answer(&self, admin: &Admin, request: Request<Incoming>) -> Answer {
        let mut answer = self.route(admin, request).await;
        let headers = answer.headers_mut();
        for (name, value) in [
            (CONTENT_SECURITY_POLICY, CSP),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (X_FRAME_OPTIONS, "DENY"),
            (REFERRER_POLICY, "no-referrer"),
            (CACHE_CONTROL, "no-store"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        answer
    }

    async fn route(&self, admin: &Admin, request: Request<Incoming>) -> Answer {
        if admin.token.is_none() {
            return error(
                StatusCode::NOT_FOUND,
                "console_disabled",
                "the console signs in with the admin token: set server.admin_token in routes.yaml",
            );
        }
        let now = Instant::now();
        let cookie = session_cookie(request.headers());
        let csrf = cookie.and_then(|id| self.sessions.find(id, now));
        let method = request.method().clone();
        let path = request.uri().path();
        let rest = path.strip_prefix("/console").unwrap_or("");
        let segments: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
        match (&method, segments.as_slice()) {
            (&Method::GET | &Method::HEAD, ["assets", name]) => match assets::find(name) {
                Some(asset) if asset.public || csrf.is_some() => {
                    with_type(StatusCode::OK, asset.body.to_vec(), asset.content_type)
                }
                Some(_) => signed_out(),
                None => not_found(),
            },
            (&Method::POST, ["session"]) => self.sign_in(admin, request, now).await,
            (&Method::GET, ["session"]) => match csrf {
                Some(csrf) => reply(StatusCode::OK, &json!({ "csrf": csrf })),
                None => signed_out(),
            },
            (&Method::DELETE, ["session"]) => match (cookie, csrf) {
                (Some(id), Some(csrf)) => match state_change_refused(request.headers(), &csrf) {
                    Some(refused) => refused,
                    None => {
                        self.sessions.end(id);
                        let mut answer = reply(StatusCode::OK, &json!({ "signed_out": true }));
                        set_cookie(&mut answer, &format!("{COOKIE_NAME}=; Max-Age=0"));
                        answer
                    }
                },
                _ => signed_out(),
            },
            (_, ["api", ..]) => {
                let Some(csrf) = csrf else {
                    return signed_out();
                };
                let safe = method == Method::GET || method == Method::HEAD;
                if !safe {
                    if let Some(refused) = state_change_refused(request.headers(), &csrf) {
                        return refused;
                    }
                }
                let target = request.uri().path_and_query().map_or(path, |p| p.as_str());
                let admin_path = format!(
                    "/admin/{}",
                    &target["/console/api/".len().min(target.len())..]
                );
                admin.route(&method, &admin_path).await
            }
            (&Method::GET | &Method::HEAD, _) => {
                let page = if csrf.is_some() {
                    assets::APP
                } else {
                    assets::SIGN_IN
                };
                with_type(StatusCode::OK, page.to_vec(), assets::HTML_TYPE)
            }
            _ => not_found(),
        }
    }

    /// `POST /console/session` with `{"token": "<server.admin_token>"}`.
    async fn sign_in(&self, admin: &Admin, request: Request<Incoming>, now: Instant) -> Answer {
        #[derive(Deserialize)]
        struct SignIn {
            token: String,
        }
        if !same_origin(request.headers()) {
            return cross_origin();
        }
        let (_, body) = request.into_parts();
        let body = match Limited::new(body, MAX_SIGN_IN_BYTES).collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => Bytes::new(),
        };
        let mut answer = match (serde_json::from_slice::<SignIn>(&body), &admin.token) {
            (Ok(given), Some(token))
                if bool::from(given.token.as_bytes().ct_eq(token.expose())) =>
            {
                match self.sessions.start(now) {
                    Ok(session) => {
                        tracing::info!("console: signed in");
                        let mut answer = reply(StatusCode::OK, &json!({ "signed_in": true }));
                        let cookie = format!(
                            "{COOKIE_NAME}={}; Max-Age={}",
                            session.id,
                            session::LIFETIME.as_secs()
                        );
                        set_cookie(&mut answer, &cookie);
                        answer
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "console: cannot make a session");
                        error(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "no_session",
                            &e.to_string(),
                        )
                    }
                }
            }
            (Ok(_), _) => {
                tracing::warn!("console: sign-in refused: not the admin token");
                error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "that is not the admin token (server.admin_token)",
                )
            }
            (Err(_), _) => error(
                StatusCode::BAD_REQUEST,
                "invalid_sign_in",
                "send {\"token\": \"<server.admin_token>\"} as JSON",
            ),
        };
        answer.extensions_mut().insert(BodyConsumed);
        answer
    }
}

/// The session id from the `Cookie` headers.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// Path=/ and SameSite=Strict: the browser sends it on no request another site starts.
/// The operator listener speaks plain HTTP (loopback), so the cookie cannot be Secure.
fn set_cookie(answer: &mut Answer, cookie: &str) {
    let cookie = format!("{cookie}; Path=/; HttpOnly; SameSite=Strict");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        answer.headers_mut().append(SET_COOKIE, value);
    }
}

/// Why a request that changes something is refused: another site started it, or it lacks
/// the session's CSRF token.
fn state_change_refused(headers: &HeaderMap, csrf: &str) -> Option<Answer> {
    if !same_origin(headers) {
        return Some(cross_origin());
    }
    let given = headers
        .get(HeaderName::from_static(CSRF_HEADER))
        .map(HeaderValue::as_bytes);
    if given.is_some_and(|given| csrf_matches(csrf, given)) {
        return None;
    }
    Some(error(
        StatusCode::FORBIDDEN,
        "csrf",
        "a console request that changes something carries the session's X-Switchyard-CSRF token",
    ))
}

/// A browser names where a request comes from: `Sec-Fetch-Site`, and `Origin` on anything
/// but a plain GET. Either, when sent, must say this very console.
fn same_origin(headers: &HeaderMap) -> bool {
    let fetch_site = headers.get("sec-fetch-site").map(HeaderValue::as_bytes);
    if fetch_site.is_some_and(|site| site != b"same-origin") {
        return false;
    }
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    host.is_some() && origin_host == host
}

fn cross_origin() -> Answer {
    error(
        StatusCode::FORBIDDEN,
        "cross_origin",
        "this request did not come from the console's own pages",
    )
}

fn signed_out() -> Answer {
    error(
        StatusCode::UNAUTHORIZED,
        "signed_out",
        "sign in to the console with the admin token first",
    )
}

fn not_found() -> Answer {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such console page or file",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, value.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; switchyard_session=abc; b=2")]);
        assert_eq!(session_cookie(&h), Some("abc"));
        let h = headers(&[("cookie", "a=1"), ("cookie", "switchyard_session=xyz")]);
        assert_eq!(session_cookie(&h), Some("xyz"));
        assert_eq!(
            session_cookie(&headers(&[("cookie", "switchyard_session=")])),
            None
        );
        assert_eq!(session_cookie(&headers(&[])), None);
    }

    #[test]
    fn only_the_console_itself_may_change_things() {
        let host = ("host", "127.0.0.1:9090");
        assert!(same_origin(&headers(&[host])));
        assert!(same_origin(&headers(&[
            host,
            ("origin", "http://127.0.0.1:9090"),
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "http://evil.example")
        ])));
        assert!(!same_origin(&headers(&[host, ("origin", "null")])));
        assert!(!same_origin(&headers(&[
            host,
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("sec-fetch-site", "same-site")
        ])));
        let csrf = "token";
        let good = [host, ("x-switchyard-csrf", "token")];
        assert!(state_change_refused(&headers(&good), csrf).is_none());
        assert!(state_change_refused(&headers(&[host]), csrf).is_some());
        assert!(
            state_change_refused(&headers(&[host, ("x-switchyard-csrf", "forged")]), csrf)
                .is_some()
        );
    }
}
