//! What lets a sink's deliveries out: its [`Health`] (flowing, backing off, probing, disabled)
//! and its [`Pace`] (the `rate`). The worker asks it how many may go and tells it how each
//! attempt went; the gate publishes the sink's [`SinkState`] when it changes, logs the change
//! and hands the alert for it to the [`Alerter`]. Its decisions are [`Health`]'s and
//! [`Pace`]'s, both pure; recording them is all it adds.

use std::fmt::Display;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::alert::{Alert, Alerter};
use super::health::{Health, State};
use super::pace::Pace;
use super::policy::{Blame, DeliveryPolicy};
use super::status::{SinkState, SinkStatus};
use crate::base::id::EventId;
use crate::base::names::{SinkName, WorkspaceId};

pub(super) struct Gate {
    health: Health,
    pace: Option<Pace>,
    status: Arc<SinkStatus>,
    alerts: Option<Alerter>,
    workspace: WorkspaceId,
    sink: SinkName,
}

impl Gate {
    pub(super) fn new(
        policy: &DeliveryPolicy,
        status: Arc<SinkStatus>,
        alerts: Option<Alerter>,
        workspace: WorkspaceId,
        sink: SinkName,
    ) -> Gate {
        Gate {
            health: Health::new(policy.max_backoff, policy.disable_after),
            pace: policy.pace.map(Pace::new),
            status,
            alerts,
            workspace,
            sink,
        }
    }

    /// The sink's health at `now`, after an enable the operator asked for.
    pub(super) fn state(&mut self, now: Instant) -> State {
        if self.status.take_enable() {
            self.health.enable();
            tracing::warn!(workspace = %self.workspace, sink = %self.sink, "sink enabled by the operator; probing it");
            self.publish(now, None);
        }
        self.health.state(now)
    }

    pub(super) fn succeeded(&mut self) {
        self.health.succeeded();
        self.publish(Instant::now(), None);
    }

    /// See [`Health::failed`]; `error` is what the alert says, if the state changes.
    pub(super) fn failed(
        &mut self,
        now: Instant,
        event: &EventId,
        sink_wide: bool,
        retry_after: Option<Duration>,
        error: &dyn Display,
    ) -> Blame {
        let blame = self.health.failed(now, event, sink_wide, retry_after);
        self.publish(now, Some(error));
        blame
    }

    /// How many of `want` deliveries the rate lets go at `now`.
    pub(super) fn room(&self, now: Instant, want: usize) -> usize {
        self.pace
            .as_ref()
            .map_or(want, |pace| want.min(pace.available(now)))
    }

    /// `n` deliveries went out at `now`.
    pub(super) fn spend(&mut self, now: Instant, n: usize) {
        if let Some(pace) = &mut self.pace {
            pace.spend(now, n);
        }
    }

    /// When to look again, given the next retry or ordered head (`due`): never while disabled
    /// (an enable wakes the worker), never before the rate has a token again, and then even
    /// without one due, for events not read yet.
    pub(super) fn wake(&mut self, now: Instant, due: Option<Instant>) -> Option<Instant> {
        if self.health.state(now) == State::Disabled {
            return None;
        }
        match self.pace.as_ref().and_then(|pace| pace.next_token(now)) {
            Some(token) => Some(due.map_or(token, |due| due.max(token))),
            None => due,
        }
    }

    /// Resolves when an operator asks to enable the sink.
    pub(super) async fn woken(&self) {
        self.status.woken().await;
    }

    fn publish(&mut self, now: Instant, error: Option<&dyn Display>) {
        let state = match self.health.state(now) {
            State::Flowing => SinkState::Healthy,
            State::Down { .. } | State::Probing => SinkState::BackingOff,
            State::Disabled => SinkState::Disabled,
        };
        let previous = self.status.state();
        if state == previous {
            return;
        }
        self.status.set(state);
        let (workspace, sink) = (&self.workspace, &self.sink);
        let error = error.map(ToString::to_string);
        match state {
            SinkState::Healthy => tracing::info!(%workspace, %sink, "sink recovered"),
            SinkState::BackingOff => {
                tracing::warn!(%workspace, %sink, error = error.as_deref().unwrap_or_default(), "sink failing; backing off")
            }
            SinkState::Disabled => {
                tracing::error!(%workspace, %sink, error = error.as_deref().unwrap_or_default(), "sink disabled after failing for disable_after; its queue is kept until an operator enables it")
            }
        }
        let alert = Alert::of_change(workspace, sink, previous, state, error);
        if let (Some(alerts), Some(alert)) = (&self.alerts, alert) {
            alerts.send(alert);
        }
    }
}
