//! The checkpointer thread: flushes sled behind the applier and moves the log's checkpoint on,
//! so a restart replays only what sled may not have made durable.

use std::path::PathBuf;
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::Duration;

use super::lanes::Lanes;
use super::wal::{self, Position};
use super::{lock, Engine};

/// How often sled is flushed and the log's checkpoint moved on while there is traffic.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Every [`CHECKPOINT_EVERY`] (or when asked): if the applier applied anything since the last
/// checkpoint, or an event's attempts or dead letter were written, flush sled and record the
/// log position it covers (and that those records are durable, which frees the queues'
/// cursors to pass their events). Ends when the store does.
pub(super) fn checkpointer(
    engine: Arc<Engine>,
    lanes: Arc<Lanes>,
    wal_dir: PathBuf,
    applied: Arc<Mutex<Option<Position>>>,
    requests: std_mpsc::Receiver<()>,
) {
    let sled_dir = wal_dir.parent().unwrap_or(&wal_dir).to_owned();
    let mut done: Option<Position> = None;
    loop {
        let stop = matches!(
            requests.recv_timeout(CHECKPOINT_EVERY),
            Err(std_mpsc::RecvTimeoutError::Disconnected)
        );
        let _exclusive = lock(&engine.exclusive);
        // Read before the flush: the flush then covers everything applied up to here.
        let at = *lock(&applied);
        let written = lanes.written();
        let unsynced = written > lanes.synced();
        if ((at.is_some() && at != done) || unsynced) && !engine.is_stuck() {
            let result = engine
                .trees()
                .map_err(std::io::Error::other)
                .and_then(|trees| trees.sync(&sled_dir))
                .and_then(|()| match at {
                    Some(at) => wal::write_checkpoint(&wal_dir, at),
                    None => Ok(()),
                });
            match result {
                Ok(()) => {
                    done = at;
                    lanes.synced_up_to(written);
                }
                Err(error) => {
                    tracing::warn!(%error, "checkpoint failed; the log keeps everything since the last one")
                }
            }
        }
        if stop {
            return;
        }
    }
}
