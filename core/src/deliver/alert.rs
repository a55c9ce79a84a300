//! `server.alerts`: a sink's state changes (it starts failing, is disabled, recovers) posted to
//! an operator's endpoint, one notification per change, signed the Standard Webhooks way with
//! the alerts secret through the same client the http sinks use. A notification that cannot be
//! posted is tried a few times with the same `webhook-id` (so a receiver can drop repeats),
//! then logged; alerts never hold a sink back.

use std::time::{Duration, SystemTime};

use hyper::Uri;
use serde::Serialize;
use tokio::sync::mpsc;

use super::status::SinkState;
use crate::base::id::{rfc3339, EventId};
use crate::base::names::{Secret, SinkName, WorkspaceId};
use crate::sinks::{Delivery, HttpFormat, HttpSink, Sink, SinkBuildError};

/// Notifications waiting to be posted; past this many (an alert endpoint down while many sinks
/// change state) new ones are logged and dropped rather than held in memory.
const BACKLOG: usize = 1024;
const TIMEOUT: Duration = Duration::from_secs(10);
/// Waits before each new try of a notification that could not be posted.
const RETRIES: [Duration; 4] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(120),
];

/// One sink's state change, as posted.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    /// `sink.failing`, `sink.disabled` or `sink.recovered`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub workspace: WorkspaceId,
    pub sink: SinkName,
    pub state: &'static str,
    pub previous: &'static str,
    pub at: String,
    /// The failure that changed the state, if one did.
    pub error: Option<String>,
}

impl Alert {
    /// The notification for a change from `previous` to `state`, if it is one operators are
    /// told of (an operator's own enable is not).
    pub fn of_change(
        workspace: &WorkspaceId,
        sink: &SinkName,
        previous: SinkState,
        state: SinkState,
        error: Option<String>,
    ) -> Option<Alert> {
        let kind = match (previous, state) {
            (SinkState::Healthy, SinkState::BackingOff) => "sink.failing",
            (_, SinkState::Disabled) => "sink.disabled",
            (_, SinkState::Healthy) => "sink.recovered",
            (SinkState::Disabled, SinkState::BackingOff) | (SinkState::BackingOff, _) => {
                return None
            }
        };
        Some(Alert {
            kind,
            workspace: workspace.clone(),
            sink: sink.clone(),
            state: state.as_str(),
            previous: previous.as_str(),
            at: rfc3339(SystemTime::now()),
            error,
        })
    }
}

/// Where the workers hand their notifications; cheap to clone.
#[derive(Clone, Debug)]
pub struct Alerter {
    queue: mpsc::Sender<Alert>,
}

impl Alerter {
    /// Starts the task that posts notifications to `url`, signed with `secret`.
    pub fn start(url: Uri, secret: Secret) -> Result<Alerter, SinkBuildError> {
        let client = HttpSink::new(url, TIMEOUT, Some(secret), HttpFormat::Envelope)?;
        let (queue, waiting) = mpsc::channel(BACKLOG);
        tokio::spawn(post_all(client, waiting));
        Ok(Alerter { queue })
    }

    pub fn send(&self, alert: Alert) {
        if let Err(error) = self.queue.try_send(alert) {
            let alert = match error {
                mpsc::error::TrySendError::Full(alert)
                | mpsc::error::TrySendError::Closed(alert) => alert,
            };
            tracing::error!(workspace = %alert.workspace, sink = %alert.sink, kind = alert.kind, "alert dropped: too many waiting to be posted");
        }
    }
}

async fn post_all(client: HttpSink, mut waiting: mpsc::Receiver<Alert>) {
    while let Some(alert) = waiting.recv().await {
        let id = EventId::generate().to_string();
        let body = serde_json::to_vec(&alert).unwrap_or_default();
        let delivery = [Delivery {
            event_id: &id,
            envelope: &body,
            traceparent: None,
        }];
        let mut waits = RETRIES.iter();
        loop {
            match client.deliver(&delivery).await {
                Ok(()) => {
                    tracing::info!(workspace = %alert.workspace, sink = %alert.sink, kind = alert.kind, alert_id = %id, "alert posted");
                    break;
                }
                Err(error) => match waits.next() {
                    Some(wait) => tokio::time::sleep(*wait).await,
                    None => {
                        tracing::error!(workspace = %alert.workspace, sink = %alert.sink, kind = alert.kind, %error, "alert could not be posted");
                        break;
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(previous: SinkState, state: SinkState) -> Option<&'static str> {
        let (ws, sink) = (WorkspaceId::new("acme"), SinkName::new("crm"));
        Alert::of_change(&ws, &sink, previous, state, None).map(|a| a.kind)
    }

    #[test]
    fn each_change_operators_care_about_is_one_alert_and_an_enable_is_none() {
        use SinkState::{BackingOff, Disabled, Healthy};
        assert_eq!(kind(Healthy, BackingOff), Some("sink.failing"));
        assert_eq!(kind(BackingOff, Disabled), Some("sink.disabled"));
        assert_eq!(kind(BackingOff, Healthy), Some("sink.recovered"));
        assert_eq!(kind(Disabled, BackingOff), None);
    }
}
