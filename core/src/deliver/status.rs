//! A sink's state as others see it: `healthy`, `backing_off` or `disabled`, written by its
//! worker and read by `/admin/queues`, `/metrics` and the CLI; and the operator's request to
//! enable a disabled sink, which wakes the worker.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use tokio::sync::Notify;

/// What a sink is doing, as the operator surfaces name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkState {
    /// Taking events at full speed (or at its `rate`).
    Healthy,
    /// Failing as a whole: waiting out a backoff, or probing with one delivery.
    BackingOff,
    /// Failed for `disable_after`: no attempts until an operator enables it.
    Disabled,
}

impl SinkState {
    pub const ALL: [SinkState; 3] = [
        SinkState::Healthy,
        SinkState::BackingOff,
        SinkState::Disabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SinkState::Healthy => "healthy",
            SinkState::BackingOff => "backing_off",
            SinkState::Disabled => "disabled",
        }
    }
}

/// Shared between a sink's worker and whoever asks about it.
#[derive(Debug, Default)]
pub struct SinkStatus {
    /// A [`SinkState`] as its index in [`SinkState::ALL`].
    state: AtomicU8,
    enable: AtomicBool,
    wake: Notify,
}

impl SinkStatus {
    pub fn state(&self) -> SinkState {
        let index = usize::from(self.state.load(Ordering::Relaxed));
        SinkState::ALL[index.min(SinkState::ALL.len() - 1)]
    }

    /// Asks the worker to enable the sink if it is disabled; returns the state it was in.
    pub fn enable(&self) -> SinkState {
        let was = self.state();
        if was == SinkState::Disabled {
            self.enable.store(true, Ordering::Relaxed);
            // A stored permit: the worker wakes even if it was not waiting yet.
            self.wake.notify_one();
        }
        was
    }

    pub(super) fn set(&self, state: SinkState) {
        let index = SinkState::ALL.iter().position(|s| *s == state).unwrap_or(0);
        self.state.store(index as u8, Ordering::Relaxed);
    }

    /// Whether an enable was asked for since the last call.
    pub(super) fn take_enable(&self) -> bool {
        self.enable.swap(false, Ordering::Relaxed)
    }

    /// Resolves when an operator asks to enable the sink.
    pub(super) async fn woken(&self) {
        self.wake.notified().await;
    }
}
