//! Lookups by id and by time: one event put back on one queue by id, whatever became of it
//! there; and every lookup sees an event as soon as its acceptance is answered, though sled's
//! index is written behind the answer.

use std::sync::Arc;

use super::{accept, accept_as, close, open, owed, queue, runtime};
use crate::base::id::EventId;
use crate::store::embedded::EmbeddedStore;
use crate::store::search::SearchQuery;
use crate::store::{lock, SinkQueue};

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

/// An envelope search can index (workspace, vendor, type, dedupe key and basis, time).
pub(super) fn envelope(name: &str) -> String {
    format!(
        r#"{{"workspace":"acme","vendor":"watsi","type":"message.received","dedupe_key":"acme:watsi:{name}","dedupe_basis":"payload_hash","received_at":"2026-12-03T08:00:00Z","name":"{name}"}}"#
    )
}

/// Accepts `name` while the applier is held back from its frame (answered, so logged, but not
/// yet in the index), runs `read` on another thread and lets the applier go once `read` is
/// waiting for it or has answered without waiting: what `read` found.
fn read_while_unapplied<T: Send + 'static>(
    store: &Arc<EmbeddedStore>,
    name: &str,
    queues: &[&SinkQueue],
    read: impl FnOnce(&EmbeddedStore, &EventId) -> T + Send + 'static,
) -> (EventId, T) {
    let rt = runtime();
    let held = lock(&store.committer.progress.hold);
    let id = accept_as(&rt, store, name, &envelope(name), queues);
    let reader = {
        let (store, id) = (store.clone(), id.clone());
        std::thread::spawn(move || read(&store, &id))
    };
    while store.committer.progress.waiting() == 0 && !reader.is_finished() {
        std::thread::yield_now();
    }
    drop(held);
    (id, reader.join().unwrap())
}

#[test]
fn an_event_is_found_by_id_by_search_and_put_back_as_soon_as_its_acceptance_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let crm = queue(&store, "crm");

    let (id, found) = read_while_unapplied(&store, "evt_by_id", &[&crm], |store, id| {
        store.event(id).unwrap()
    });
    let found = found.map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    assert_eq!(found, Some(envelope("evt_by_id")), "{id}");

    let (id, page) = read_while_unapplied(&store, "evt_searched", &[&crm], |store, _| {
        store.search(&SearchQuery::default()).unwrap()
    });
    let newest = page.events.first().map(|found| found.id.clone());
    assert_eq!(newest, Some(id));

    let put_back = {
        let crm = crm.clone();
        move |store: &EmbeddedStore, id: &EventId| store.put_back(&crm, id, b"state").unwrap()
    };
    let (id, queued) = read_while_unapplied(&store, "evt_put_back", &[&crm], put_back);
    assert!(queued, "{id}");
    assert!(owed(&store, &crm).contains(&id));
    close(store);
}
