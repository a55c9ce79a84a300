//! What the store speaks, whichever store runs: what is accepted ([`Accept`], [`Accepted`]),
//! what a worker reads of a queue ([`Queued`], [`DeadPage`], [`DeliveryOf`]), which store runs
//! and how it is opened and measured ([`StoreConfig`], [`StoreOptions`], [`StoreMetrics`]), and
//! why it fails ([`StoreError`]).

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use super::codec::RecordError;
use super::SinkQueue;
use crate::base::broker_url::BrokerUrl;
use crate::base::id::EventId;
use crate::base::nats::NatsAccess;
use crate::event::dedupe::DedupeKey;
use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store in {}: {source}", path.display())]
    Open {
        path: std::path::PathBuf,
        source: sled::Error,
    },
    #[error("no store in {}: neither sled's `db` nor the log's `wal/` is there; name the data directory with --data-dir, or the routes file whose server.data_dir it is with --config", path.display())]
    Missing { path: std::path::PathBuf },
    #[error("the store in {} is in use: a running switchyard holds sled's lock on {}; stop the server first (`systemctl stop switchyard`), since the log cannot be verified while it is written", path.display(), path.join("db").display())]
    InUse { path: std::path::PathBuf },
    #[error("cannot open the write-ahead log in {}: {source}", path.display())]
    Log {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the store in {} was written by an earlier release (no format version); deliver its queues with that release, or move the directory aside to start empty", path.display())]
    Unversioned { path: std::path::PathBuf },
    #[error("the store in {} has format version {found}; this release reads version {}: deliver its queues with the release that wrote it (stop sending, wait until `switchyard queues` shows nothing queued), then move the directory aside and start this release on an empty one; see the upgrade notes in the README", path.display(), super::embedded::record::STORE_FORMAT)]
    Version { path: std::path::PathBuf, found: u8 },
    #[error("the store cannot take writes: {0}")]
    Write(String),
    #[error("cannot back up into {}: it already exists; name a directory that does not exist yet (the backup creates it)", path.display())]
    BackupExists { path: std::path::PathBuf },
    #[error("backup to {}: {reason}", path.display())]
    Backup {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("the store could not sync to disk: {0}")]
    Sync(String),
    #[error("the store could not read {0}")]
    Read(String),
    #[error("a stored record could not be read: {0}")]
    Record(#[from] RecordError),
    #[error("cannot reach NATS JetStream at {servers}: {reason}")]
    Connect { servers: String, reason: String },
    #[error("NATS JetStream: {0}")]
    Cluster(String),
    #[error("another instance is storing the first copy of this event")]
    InFlight,
    #[error("{0}")]
    Unsupported(&'static str),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Write(e.to_string())
    }
}

/// `server.store`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StoreConfig {
    /// sled and a write-ahead log in `data_dir`: one process, nothing else to run.
    #[default]
    Embedded,
    /// Cluster mode: NATS JetStream, shared by every instance pointed at it.
    Nats(NatsStoreConfig),
}

/// `server.store` with `type: nats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsStoreConfig {
    /// Seed servers of one NATS cluster; the client learns the rest. May carry credentials:
    /// shown only redacted.
    pub servers: Vec<BrokerUrl>,
    /// Copies of every stream and bucket (1 to 5, at most the cluster's size); default 1.
    pub replicas: usize,
    /// Connect and request time limit; default 10s.
    pub timeout: Duration,
    /// How long an instance holds queued events it took without renewing them: the time a
    /// dead instance's share of a queue waits before another takes it; default 30s.
    pub lease: Duration,
    /// `credentials` and `tls`.
    pub access: NatsAccess,
}

/// How the embedded store is opened, from routes.yaml.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub cache_bytes: u64,
    /// How long accepted events are kept for lookup: log segments are closed at a quarter of
    /// it (between a second and an hour) so that they can be retired on time.
    pub retention: Duration,
}

/// What the store reports to /metrics.
#[derive(Clone, Default)]
pub struct StoreMetrics {
    /// Batches made durable (one log write and sync each; one event each in cluster mode).
    pub commits: Counter,
    /// Seconds the commit writer spent deciding, logging and answering batches.
    pub accept_busy: Counter<f64, AtomicU64>,
    /// Seconds spent applying logged batches to the event index and sled, behind the answers.
    pub apply_busy: Counter<f64, AtomicU64>,
    /// Events per committed batch.
    pub batch_events: Option<Histogram>,
    /// Stored records that could not be read (damage, or a format this release does not
    /// know): each is also logged, never skipped silently.
    pub unreadable: Counter,
}

impl StoreMetrics {
    /// The store's share of the server's metrics.
    pub fn of(metrics: &Metrics) -> StoreMetrics {
        StoreMetrics {
            commits: metrics.store_commits.clone(),
            accept_busy: metrics.busy("accept"),
            apply_busy: metrics.busy("apply"),
            batch_events: Some(metrics.store_batch_events.clone()),
            unreadable: metrics.store_unreadable.clone(),
        }
    }
}

/// A verified, mapped event to keep.
pub struct Accept {
    pub key: DedupeKey,
    /// The id it gets if it is new.
    pub id: EventId,
    /// When its dedupe claim ends (ms since the Unix epoch).
    pub claim_expires_at_ms: u64,
    /// Now, in ms since the Unix epoch: claims that ended before it are free again.
    pub now_ms: u64,
    /// Compact JSON; the embedded store keeps it compressed.
    pub envelope: Vec<u8>,
    /// The sinks it is routed to; empty keeps it for lookup only (unrouted).
    pub queues: Vec<SinkQueue>,
}

/// The first-seen decision, made durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accepted {
    New,
    /// Seen inside the window; the first delivery's event id.
    Duplicate(EventId),
}

/// A queued event, as a delivery worker reads its queue: its envelope is read only when it is
/// handed to the sink ([`Store::envelope_of`]), so scanning ahead costs no memory.
pub struct Queued {
    pub id: EventId,
    /// The delivery state recorded by earlier attempts.
    pub state: Option<Vec<u8>>,
}

/// One page of a sink's dead letters, oldest first.
pub struct DeadPage {
    pub letters: Vec<(EventId, Vec<u8>)>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<EventId>,
}

/// Where one event stands with one sink; the bytes are [`crate::deliver`]'s records.
pub enum DeliveryOf {
    Queued(Option<Vec<u8>>),
    Dead(Vec<u8>),
    /// With its record, where one is kept (the embedded store keeps one only for a delivery
    /// that took more than one attempt).
    Delivered(Option<Vec<u8>>),
    /// Not routed to this sink, or its record is past retention.
    Unknown,
}

/// Events accepted in a time window (inclusive, milliseconds since the epoch), of a type
/// (a glob) when given: what `POST .../sinks/{sink}/replay` delivers again.
#[derive(Debug)]
pub struct Window {
    pub since_ms: u64,
    pub until_ms: u64,
    pub event_type: Option<wildmatch::WildMatch>,
}

/// What a window replay did: events put back on the sink's queue (or still on it), and
/// events whose envelope went with retention, which cannot be delivered again.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    pub queued: usize,
    pub gone: usize,
}
