//! Taking a share of one sink's cluster queue: the task that pulls its messages into leases
//! this instance holds (renewed with progress acks while the worker needs them), and the
//! [`Feed`] that keeps it running and hands back what it holds when the worker stops.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::message::AckKind;
use async_nats::jetstream::{self, kv, stream};
use futures_util::StreamExt;

use super::subjects::{consumer_name, event_id, record_key, subject};
use super::ClusterStore;
use crate::base::id::EventId;
use crate::store::{codec, lock, SinkQueue};

/// Messages a sink's consumer hands out at once, across the cluster, when unordered.
const MAX_LEASED: i64 = 1024;

/// What one instance holds of one queue, by event id.
#[derive(Default)]
pub(super) struct Leases(pub(super) Mutex<BTreeMap<EventId, Lease>>);

pub(super) struct Lease {
    pub(super) message: jetstream::Message,
    pub(super) state: Option<Vec<u8>>,
}

/// Keeps this instance taking its share of one sink's queue; dropped with the sink's worker,
/// it hands back what it holds.
pub struct Feed {
    task: tokio::task::JoinHandle<()>,
    prefix: Vec<u8>,
    leases: Arc<Leases>,
    registry: Arc<Mutex<HashMap<Vec<u8>, Arc<Leases>>>>,
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.task.abort();
        {
            // A reload may already have registered the sink's next worker's leases.
            let mut registry = lock(&self.registry);
            if registry
                .get(&self.prefix)
                .is_some_and(|l| Arc::ptr_eq(l, &self.leases))
            {
                registry.remove(&self.prefix);
            }
        }
        let held: Vec<jetstream::Message> = std::mem::take(&mut *lock(&self.leases.0))
            .into_values()
            .map(|l| l.message)
            .collect();
        if held.is_empty() {
            return;
        }
        // Handed back at once rather than after the ack wait, so another instance (or this
        // one's next worker) takes them now.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                for message in held {
                    let _ = message.ack_with(AckKind::Nak(None)).await;
                }
            });
        }
    }
}

impl ClusterStore {
    pub(in crate::store) fn consume(&self, q: &SinkQueue, ordered: bool) -> Feed {
        let leases = Arc::new(Leases::default());
        lock(&self.leases).insert(q.prefix().to_vec(), leases.clone());
        let taker = Taker {
            stream: self.queue_stream.clone(),
            attempts: self.attempts.clone(),
            unreadable: self.unreadable.clone(),
            q: q.clone(),
            ordered,
            lease: self.lease,
            leases: leases.clone(),
        };
        Feed {
            task: tokio::spawn(taker.run()),
            prefix: q.prefix().to_vec(),
            leases,
            registry: self.leases.clone(),
        }
    }
}

/// The task that takes one queue's messages into leases and keeps them alive.
struct Taker {
    stream: stream::Stream,
    attempts: kv::Store,
    unreadable: prometheus_client::metrics::counter::Counter,
    q: SinkQueue,
    ordered: bool,
    /// The consumer's ack wait; leases are renewed every third of it.
    lease: Duration,
    leases: Arc<Leases>,
}

impl Taker {
    async fn run(self) {
        loop {
            if let Err(error) = self.take().await {
                tracing::warn!(workspace = %self.q.workspace(), sink = %self.q.sink(), %error, "cluster queue unavailable; trying again");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn take(&self) -> Result<(), String> {
        let consumer = self.consumer().await?;
        let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
        let mut progress = tokio::time::interval(self.lease / 3);
        loop {
            tokio::select! {
                next = messages.next() => match next {
                    Some(Ok(message)) => self.lease(message).await,
                    Some(Err(error)) => return Err(error.to_string()),
                    None => return Err("the consumer's message stream ended".into()),
                },
                _ = progress.tick() => self.keep_alive().await,
            }
        }
    }

    async fn consumer(&self) -> Result<jetstream::consumer::Consumer<pull::Config>, String> {
        let q = &self.q;
        let config = pull::Config {
            durable_name: Some(consumer_name(q)),
            description: Some(format!("{}/{}", q.workspace(), q.sink())),
            filter_subject: subject(q),
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.lease,
            // Retries and dead letters are the worker's (the sink's policy), not JetStream's.
            max_deliver: -1,
            // One at a time across the cluster for an ordered sink.
            max_ack_pending: if self.ordered { 1 } else { MAX_LEASED },
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        };
        match self.stream.create_consumer(config.clone()).await {
            Ok(consumer) => Ok(consumer),
            // It exists with other settings (the sink's `ordered` changed).
            Err(_) => self
                .stream
                .update_consumer(config)
                .await
                .map_err(|e| e.to_string()),
        }
    }

    async fn lease(&self, message: jetstream::Message) {
        let Some(id) = event_id(message.headers.as_ref()) else {
            self.unreadable.inc();
            tracing::error!(workspace = %self.q.workspace(), sink = %self.q.sink(), subject = %message.subject, "queue message without a switchyard event id; removed");
            let _ = message.ack_with(AckKind::Term).await;
            return;
        };
        let redelivered = message.info().map(|i| i.delivered > 1).unwrap_or(false);
        // A message redelivered from another instance resumes its attempts there.
        let state = if redelivered {
            match self.attempts.get(record_key(&self.q, &id)).await {
                Ok(Some(bytes)) => codec::payload(&bytes).ok().map(<[u8]>::to_vec),
                _ => None,
            }
        } else {
            None
        };
        let new = {
            let mut held = lock(&self.leases.0);
            match held.get_mut(&id) {
                // Ours already (a progress ack came too late): keep its state.
                Some(lease) => {
                    lease.message = message;
                    false
                }
                None => {
                    held.insert(id.clone(), Lease { message, state });
                    true
                }
            }
        };
        if new {
            self.q.added(&id);
        }
    }

    /// Progress acks for everything held, so JetStream does not hand it to another instance
    /// while the worker waits on a retry.
    async fn keep_alive(&self) {
        let held: Vec<jetstream::Message> = lock(&self.leases.0)
            .values()
            .map(|l| l.message.clone())
            .collect();
        for message in held {
            let _ = message.ack_with(AckKind::Progress).await;
        }
    }
}
