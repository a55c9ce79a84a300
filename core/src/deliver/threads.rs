//! Where the delivery workers run: a runtime of their own, apart from intake's. On intake's
//! runtime a worker, and each request of its sink, waits behind every connection's task at each
//! step (woken, read the queue, send, answer, settle); under sustained load an http sink then
//! delivered a fifth of what was accepted, and caught up only once the load ended. On threads
//! of their own the kernel shares the cores between intake and delivery instead, so a sink
//! faster than intake keeps pace.

use super::alert::Alerter;

/// Where the workers run (a handle on [`runtime`]'s) and where their sinks' state changes are
/// posted.
#[derive(Clone)]
pub struct Workers {
    pub runtime: tokio::runtime::Handle,
    pub alerts: Option<Alerter>,
}

/// The delivery runtime: half the cores, at least one thread, named `switchyard-deliver`. A
/// sink's own tasks (an http sink's connections, a file sink's blocking writes) run there too,
/// as they are started from its worker.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let threads = std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(THREAD_NAME)
        .enable_all()
        .build()
}

const THREAD_NAME: &str = "switchyard-deliver";

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant, SystemTime};

    use super::*;
    use crate::base::id::{millis, EventId};
    use crate::base::names::{SinkName, VendorName, WorkspaceId};
    use crate::deliver::{DeliveryPolicy, SinkWorker};
    use crate::event::dedupe::{DedupeKey, Identity};
    use crate::metrics::Metrics;
    use crate::sinks::{Delivery, Sink, SinkFuture};
    use crate::store::{Accept, Accepted, Store, StoreMetrics, StoreOptions};

    /// Counts what it is handed, and names the thread each delivery ran on.
    #[derive(Default)]
    struct Recording {
        delivered: AtomicUsize,
        threads: Mutex<Vec<String>>,
    }

    impl Sink for Recording {
        fn deliver<'a>(&'a self, batch: &'a [Delivery<'a>]) -> SinkFuture<'a> {
            Box::pin(async move {
                let thread = std::thread::current().name().unwrap_or("").to_owned();
                self.threads.lock().unwrap().push(thread);
                self.delivered.fetch_add(batch.len(), Ordering::SeqCst);
                Ok(())
            })
        }
    }

    /// The most a test waits for the sink before it calls the delivery starved.
    const STARVED: Duration = Duration::from_secs(60);

    #[test]
    fn a_sink_gets_its_events_while_intake_never_lets_go_of_its_only_thread() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            cache_bytes: 8 << 20,
            retention: Duration::from_secs(60),
        };
        let store = Store::open_embedded(dir.path(), &options, StoreMetrics::default()).unwrap();
        let intake = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let delivery = runtime().unwrap();
        let sink = Arc::new(Recording::default());
        let (workspace, vendor) = (WorkspaceId::new("acme"), VendorName::new("watsi"));
        let worker = intake.block_on(async {
            let worker = SinkWorker::spawn(
                workspace.clone(),
                SinkName::new("crm"),
                sink.clone(),
                DeliveryPolicy {
                    retry: vec![Duration::from_secs(5)],
                    concurrency: 8,
                    ordered: false,
                    max_backoff: Duration::from_secs(10),
                    max_age: Duration::from_secs(3600),
                    pace: None,
                    disable_after: None,
                },
                store.clone(),
                Arc::new(Metrics::new()),
                &Workers {
                    runtime: delivery.handle().clone(),
                    alerts: None,
                },
            );
            for n in 0..EVENTS {
                let name = format!("evt_{n}");
                let raw = serde_json::value::RawValue::NULL.to_owned();
                let identity = Identity::implied(Some(&name), None, &raw);
                let accepted = store.accept(Accept {
                    key: DedupeKey::derive(&workspace, &vendor, &identity).0,
                    id: EventId::generate(),
                    claim_expires_at_ms: u64::MAX,
                    now_ms: millis(SystemTime::now()),
                    envelope: format!("{{\"n\":{n}}}").into_bytes(),
                    queues: vec![worker.queue.clone()],
                });
                assert_eq!(accepted.await.unwrap(), Accepted::New);
            }
            // Intake busy for good: this task never yields the runtime's only thread, as a
            // runtime whose every thread is taken by connections never has one free.
            let until = Instant::now() + STARVED;
            while sink.delivered.load(Ordering::SeqCst) < EVENTS && Instant::now() < until {
                std::hint::spin_loop();
            }
            worker
        });
        assert_eq!(sink.delivered.load(Ordering::SeqCst), EVENTS);
        let threads = sink.threads.lock().unwrap().clone();
        assert!(threads.iter().all(|t| t == THREAD_NAME), "{threads:?}");
        drop(worker);
        delivery.shutdown_timeout(Duration::from_secs(5));
    }

    const EVENTS: usize = 50;
}
