//! A worker's last steps when it is stopped (a reload that changes or removes its sink): it
//! hands nothing new to the sink, lets the batches in flight finish, and records what became
//! of them, so the queue's next worker neither delivers them again nor overtakes them.

use super::{Run, Worker};

impl Worker {
    pub(super) async fn finish(&self, mut run: Run) {
        while let Some(joined) = run.tasks.join_next().await {
            self.settle_joined(&mut run, joined).await;
        }
        if !run.done.is_empty() {
            if let Err(error) = self.store.complete(&self.queue, &run.done).await {
                // Still queued: the next worker delivers them again (at least once).
                tracing::error!(workspace = %self.workspace, sink = %self.sink_name, %error, "could not record the last deliveries of a stopped worker; they stay queued");
            }
        }
        self.queue.set_in_flight(0);
        tracing::debug!(workspace = %self.workspace, sink = %self.sink_name, "worker stopped; its queue is handed over");
    }
}
