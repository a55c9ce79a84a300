//! Sampling a server while a long load runs: what it occupies (RSS, its data directory on
//! disk), how far its sinks are (lines in a file sink, POSTs a receiver answered) and what its
//! queues say (`/metrics`: depth, age of the oldest queued event), every few seconds.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::receiver::Receiver;
use crate::server::{disk_usage, Server};
use crate::sink::SinkTail;
use crate::stats::bytes;
use crate::BenchResult;

const OLDEST: &str = "switchyard_sink_oldest_queued_seconds";

/// One point of a series.
#[derive(Clone, Copy, Default)]
pub struct Sample {
    pub at: Duration,
    pub accepted: u64,
    /// Lines in the file sink (0 without one).
    pub file: u64,
    /// POSTs the receiver answered (0 without one).
    pub http: u64,
    pub rss: u64,
    /// Blocks allocated under the data directory.
    pub disk: u64,
    /// `switchyard_sink_queue_depth`, all sinks.
    pub queued: u64,
    /// `switchyard_sink_oldest_queued_seconds`, the largest over the sinks.
    pub oldest: f64,
    /// The same for the file sink and for the http sink (0 without one).
    pub file_oldest: f64,
    pub http_oldest: f64,
}

/// What a sampler watches.
pub struct Watched<'a> {
    pub server: &'a Server,
    pub data_dir: PathBuf,
    pub file: Option<SinkTail>,
    pub receiver: Option<&'a Receiver>,
    pub accepted: Arc<AtomicU64>,
    pub started: Instant,
    /// The names of the file sink and of the http sink in the configuration, if any.
    pub sinks: [Option<&'static str>; 2],
}

impl Watched<'_> {
    /// One sample now.
    pub async fn sample(&mut self) -> BenchResult<Sample> {
        let metrics = self.server.metrics().await?;
        let oldest_of = |sink: Option<&str>| {
            sink.map_or(0.0, |sink| {
                metrics.sum(OLDEST, &[&format!("sink=\"{sink}\"")])
            })
        };
        let file = match self.file.as_mut() {
            Some(tail) => tail.count()?,
            None => 0,
        };
        Ok(Sample {
            at: self.started.elapsed(),
            accepted: self.accepted.load(Ordering::Relaxed),
            file,
            http: self.receiver.map_or(0, Receiver::posts),
            rss: self.server.rss_bytes().unwrap_or(0),
            disk: disk_usage(&self.data_dir).1,
            queued: metrics.sum("switchyard_sink_queue_depth", &[]) as u64,
            oldest: metrics.max("switchyard_sink_oldest_queued_seconds"),
            file_oldest: oldest_of(self.sinks[0]),
            http_oldest: oldest_of(self.sinks[1]),
        })
    }

    /// Samples every `every` until `stop` is set (and once more then).
    pub async fn series(&mut self, every: Duration, stop: &AtomicBool) -> BenchResult<Vec<Sample>> {
        let mut samples = Vec::new();
        let mut next = Instant::now();
        loop {
            let last = stop.load(Ordering::Relaxed);
            samples.push(self.sample().await?);
            if last {
                return Ok(samples);
            }
            next += every;
            while Instant::now() < next && !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Prints a series as a table, at most `rows` lines (evenly thinned, the last always shown).
pub fn print(samples: &[Sample], rows: usize) {
    println!(
        "{:>6} {:>9} {:>9} {:>9} {:>10} {:>11} {:>9} {:>8} {:>8}",
        "t", "accepted", "file", "http", "RSS", "data dir", "queued", "old file", "old http"
    );
    let step = samples.len().div_ceil(rows.max(1)).max(1);
    for (i, s) in samples.iter().enumerate() {
        if i % step != 0 && i + 1 != samples.len() {
            continue;
        }
        println!(
            "{:>5}s {:>9} {:>9} {:>9} {:>10} {:>11} {:>9} {:>7.1}s {:>7.1}s",
            s.at.as_secs(),
            s.accepted,
            s.file,
            s.http,
            bytes(s.rss),
            bytes(s.disk),
            s.queued,
            s.file_oldest,
            s.http_oldest
        );
    }
}

/// The largest RSS of a series.
pub fn peak_rss(samples: &[Sample]) -> u64 {
    samples.iter().map(|s| s.rss).max().unwrap_or(0)
}
