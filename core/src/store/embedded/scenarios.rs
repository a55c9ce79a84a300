//! The embedded store end to end, through the methods the workers and the operator use: queues
//! resumed from their cursors after a reopen, segments retired only behind every cursor,
//! one queue's backlog never showing in another's figures, and one event put back on one queue
//! by id, whatever became of it there.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{wal, EmbeddedStore};
use crate::base::id::EventId;
use crate::base::names::{SinkName, VendorName, WorkspaceId};
use crate::event::dedupe::{DedupeKey, Identity};
use crate::store::{Accept, Accepted, SinkQueue, StoreMetrics, StoreOptions};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Opens the store in `dir`, waiting for a previous handle's sled lock to be released.
fn open(dir: &Path) -> Arc<EmbeddedStore> {
    let options = StoreOptions {
        cache_bytes: 8 << 20,
        retention: Duration::from_secs(60),
    };
    for _ in 0..500 {
        match EmbeddedStore::open(dir, &options, StoreMetrics::default()) {
            Ok(store) => return store,
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    panic!("the store did not open again");
}

/// Drops a store and waits until its threads have let go of it.
fn close(store: Arc<EmbeddedStore>) {
    store.close();
    drop(store);
}

fn accept(
    rt: &tokio::runtime::Runtime,
    store: &EmbeddedStore,
    name: &str,
    queues: &[&SinkQueue],
) -> EventId {
    let identity = Identity::implied(
        Some(name),
        None,
        &serde_json::value::RawValue::NULL.to_owned(),
    );
    let key = DedupeKey::derive(
        &WorkspaceId::new("acme"),
        &VendorName::new("watsi"),
        &identity,
    )
    .0;
    let id = EventId::generate();
    let accepted = rt.block_on(store.accept(Accept {
        key,
        id: id.clone(),
        claim_expires_at_ms: u64::MAX,
        now_ms: 0,
        envelope: format!("{{\"name\":\"{name}\"}}").into_bytes(),
        queues: queues.iter().map(|q| (*q).clone()).collect(),
    }));
    assert_eq!(accepted.unwrap(), Accepted::New);
    id
}

fn queue(store: &EmbeddedStore, sink: &str) -> SinkQueue {
    store.queue(&WorkspaceId::new("acme"), &SinkName::new(sink))
}

fn owed(store: &EmbeddedStore, q: &SinkQueue) -> Vec<EventId> {
    let mut ids: Vec<EventId> = (store.peek_from(q, None, 10_000).unwrap())
        .into_iter()
        .map(|queued| queued.id)
        .collect();
    ids.sort();
    ids
}

#[test]
fn a_reopened_store_resumes_each_queue_from_its_cursor_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let store = open(dir.path());
    let (fast, slow) = (queue(&store, "fast"), queue(&store, "slow"));
    let ids: Vec<EventId> = (0..10)
        .map(|n| accept(&rt, &store, &format!("evt_{n}"), &[&fast, &slow]))
        .collect();
    assert_eq!(owed(&store, &fast), ids);
    assert_eq!(
        store.envelope_of(&fast, &ids[3]).unwrap().unwrap(),
        br#"{"name":"evt_3"}"#
    );
    // Out of order: the sixth is still in flight when the store goes.
    let done: Vec<(EventId, Vec<u8>)> = (ids.iter())
        .enumerate()
        .filter(|(n, _)| *n != 5)
        .map(|(_, id)| (id.clone(), b"{}".to_vec()))
        .collect();
    store.complete(&fast, &done).unwrap();
    assert_eq!(fast.depth(), 1);
    // The next frame carries the cursor handed over before it.
    let later = accept(&rt, &store, "evt_later", &[&slow]);
    close(store);

    let store = open(dir.path());
    let (fast, slow) = (queue(&store, "fast"), queue(&store, "slow"));
    assert_eq!(owed(&store, &fast), [ids[5].clone()]);
    assert_eq!(fast.depth(), 1);
    let mut all = ids.clone();
    all.push(later);
    assert_eq!(owed(&store, &slow), all);
    assert_eq!(slow.depth(), 11);
    close(store);
}

#[test]
fn segments_are_retired_only_behind_every_cursor_and_a_slow_queue_does_not_show_in_a_fast_one() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let mut ids = Vec::new();
    // Each open starts a segment: three segments of events for both queues.
    for round in 0..3 {
        let store = open(dir.path());
        let (fast, slow) = (queue(&store, "fast"), queue(&store, "slow"));
        for n in 0..5 {
            ids.push(accept(
                &rt,
                &store,
                &format!("evt_{round}_{n}"),
                &[&fast, &slow],
            ));
        }
        close(store);
    }
    let store = open(dir.path());
    let (fast, slow) = (queue(&store, "fast"), queue(&store, "slow"));
    let done: Vec<(EventId, Vec<u8>)> = owed(&store, &fast)
        .into_iter()
        .map(|id| (id, b"{}".to_vec()))
        .collect();
    assert_eq!(done.len(), 15);
    store.complete(&fast, &done).unwrap();
    // The fast queue is empty and its oldest age is zero while the slow one holds all.
    assert_eq!(
        (fast.depth(), store.oldest_queued_age(&fast)),
        (0, Duration::ZERO)
    );
    assert_eq!(slow.depth(), 15);
    assert_eq!(owed(&store, &slow), ids);
    rt.block_on(store.sync()).unwrap();
    let wal_dir = dir.path().join("wal");
    let checkpointed = |store: &EmbeddedStore| {
        store.committer.checkpoint_now();
        for _ in 0..500 {
            if wal::read_checkpoint(&wal_dir).unwrap().segment >= 4 {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no checkpoint");
    };
    // A frame in this open's segment, so that the checkpoint passes the first three.
    accept(&rt, &store, "evt_next", &[&fast]);
    checkpointed(&store);
    let later = SystemTime::now() + Duration::from_secs(3600);
    assert_eq!(store.sweep_log(Duration::ZERO, later).unwrap(), 0);
    assert_eq!(wal::segments(&wal_dir).unwrap().len(), 4);

    // Once the slow queue has passed them too, the three go.
    let done: Vec<(EventId, Vec<u8>)> = owed(&store, &slow)
        .into_iter()
        .map(|id| (id, b"{}".to_vec()))
        .collect();
    store.complete(&slow, &done).unwrap();
    let done: Vec<(EventId, Vec<u8>)> = owed(&store, &fast)
        .into_iter()
        .map(|id| (id, b"{}".to_vec()))
        .collect();
    store.complete(&fast, &done).unwrap();
    // The next frame carries both cursors.
    let other = queue(&store, "other");
    accept(&rt, &store, "evt_last", &[&other]);
    assert_eq!(store.sweep_log(Duration::ZERO, later).unwrap(), 3);
    assert_eq!(wal::segments(&wal_dir).unwrap(), [4]);
    // The events stay for lookup until retention, from sled's index; their envelopes went
    // with their segments.
    assert_eq!(store.event(&ids[0]).unwrap(), None);
    close(store);
}

#[test]
fn put_back_puts_one_event_back_on_one_queue_whatever_became_of_it_there() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let store = open(dir.path());
    let (crm, audit, other) = (
        queue(&store, "crm"),
        queue(&store, "audit"),
        queue(&store, "other"),
    );
    let id = accept(&rt, &store, "evt_again", &[&crm, &audit]);
    // The index entry is applied behind the answer.
    while store.event(&id).unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(5));
    }
    // Read by crm's worker, then delivered.
    assert_eq!(owed(&store, &crm), std::slice::from_ref(&id));
    store
        .complete(&crm, &[(id.clone(), b"{}".to_vec())])
        .unwrap();
    assert_eq!((owed(&store, &crm), crm.depth()), (vec![], 0));

    // Delivered: back on crm's queue, with its state and its envelope; audit is untouched.
    assert!(store.put_back(&crm, &id, b"state").unwrap());
    assert_eq!((owed(&store, &crm), crm.depth()), (vec![id.clone()], 1));
    assert_eq!(
        store.envelope_of(&crm, &id).unwrap().unwrap(),
        br#"{"name":"evt_again"}"#
    );
    assert_eq!(audit.depth(), 1);
    // Still queued: left as it is, counted once.
    assert!(store.put_back(&crm, &id, b"state").unwrap());
    assert_eq!(crm.depth(), 1);

    // Dead: out of the dead letters and back on the queue.
    store.bury(&crm, &id, b"letter").unwrap();
    assert_eq!((crm.dead(), owed(&store, &crm)), (1, vec![]));
    assert!(store.put_back(&crm, &id, b"state").unwrap());
    assert_eq!((crm.dead(), owed(&store, &crm)), (0, vec![id.clone()]));

    // Never routed there, or never accepted: nothing to put back.
    assert!(!store.put_back(&other, &id, b"state").unwrap());
    assert!(!store
        .put_back(&crm, &EventId::generate(), b"state")
        .unwrap());
    assert_eq!(other.depth(), 0);
    close(store);
}
