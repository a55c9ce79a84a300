//! GET on the front door: the vendor's handshake (a subscription check, a challenge echoed),
//! answered by its plugin, behind the same allow-list as deliveries.

use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW};
use hyper::{Request, StatusCode};

use super::plugin_fault;
use crate::base::names::VendorName;
use crate::http::answer::{error, with_type, Answer};
use crate::metrics::Metrics;
use crate::plugins::{CallFault, HandshakeOutcome};
use crate::runtime::topology::{VendorBinding, Workspace};

/// The handshake's answer: what the plugin replied, 400 for an invalid one, 405 for a vendor
/// with none.
pub(super) async fn answer(
    request: Request<Incoming>,
    ws: &Workspace,
    vendor: &VendorName,
    binding: &VendorBinding,
    metrics: &Metrics,
) -> Answer {
    let query = request.uri().query().unwrap_or("");
    let answered = (binding.plugin)
        .handshake_async(request.headers(), query, binding.plugin_timeout, metrics)
        .await;
    let outcome = match answered {
        Ok(outcome) => outcome,
        Err(fault) => return plugin_fault(ws, vendor, binding, "handshake", fault),
    };
    match outcome {
        HandshakeOutcome::Reply {
            status,
            body,
            content_type,
        } => {
            tracing::info!(status, "handshake answered");
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            with_type(status, body, content_type)
        }
        HandshakeOutcome::Invalid(why) => error(StatusCode::BAD_REQUEST, "invalid_handshake", &why),
        HandshakeOutcome::NotSupported => {
            let mut answer = error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this vendor has no GET handshake; deliveries are POST",
            );
            answer
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            answer
        }
        HandshakeOutcome::Failed => {
            let why = "the plugin failed in its handshake".to_owned();
            plugin_fault(ws, vendor, binding, "handshake", CallFault::Failed(why))
        }
    }
}
