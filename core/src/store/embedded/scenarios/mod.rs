//! The embedded store end to end, through the methods the workers and the operator use: queues
//! resumed from their cursors after a reopen, segments retired only behind every cursor,
//! one queue's backlog never showing in another's figures; lookups by id and time in
//! [`lookups`]; the event index beside the log in [`index`].

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

mod dedupe;
mod index;
mod lookups;

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
    accept_as(rt, store, name, &format!("{{\"name\":\"{name}\"}}"), queues)
}

/// Accepts an event named `name` (its dedupe key) with `envelope`.
fn accept_as(
    rt: &tokio::runtime::Runtime,
    store: &EmbeddedStore,
    name: &str,
    envelope: &str,
    queues: &[&SinkQueue],
) -> EventId {
    let (id, accepted) = offer(rt, store, name, envelope, queues, (0, u64::MAX));
    assert_eq!(accepted, Accepted::New);
    id
}

/// Offers an event named `name` (its dedupe key) with `envelope` at `now_ms`, claiming the key
/// until `until_ms`: its id, and the store's answer.
fn offer(
    rt: &tokio::runtime::Runtime,
    store: &EmbeddedStore,
    name: &str,
    envelope: &str,
    queues: &[&SinkQueue],
    (now_ms, until_ms): (u64, u64),
) -> (EventId, Accepted) {
    let id = EventId::generate();
    let accepted = rt.block_on(store.accept(Accept {
        key: dedupe_key(name),
        id: id.clone(),
        claim_expires_at_ms: until_ms,
        now_ms,
        envelope: envelope.as_bytes().to_vec(),
        queues: queues.iter().map(|q| (*q).clone()).collect(),
    }));
    (id, accepted.unwrap())
}

/// The dedupe key of an event named `name`.
fn dedupe_key(name: &str) -> DedupeKey {
    let identity = Identity::implied(
        Some(name),
        None,
        &serde_json::value::RawValue::NULL.to_owned(),
    );
    let (ws, vendor) = (WorkspaceId::new("acme"), VendorName::new("watsi"));
    DedupeKey::derive(&ws, &vendor, &identity).0
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
fn completions_no_event_frame_carried_are_logged_by_a_clean_close() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let store = open(dir.path());
    let fast = queue(&store, "fast");
    let done: Vec<(EventId, Vec<u8>)> = (0..3)
        .map(|n| accept(&rt, &store, &format!("evt_{n}"), &[&fast]))
        .map(|id| (id, b"{}".to_vec()))
        .collect();
    assert_eq!(owed(&store, &fast).len(), 3);
    // Its cursor waits for a frame of events that never comes: the close logs it.
    store.complete(&fast, &done).unwrap();
    close(store);

    let store = open(dir.path());
    let fast = queue(&store, "fast");
    assert_eq!(owed(&store, &fast), []);
    assert_eq!(fast.depth(), 0);
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

    // Once the slow queue has passed them too, the three go; one event it holds dead.
    store.bury(&slow, &ids[1], b"{}").unwrap();
    let done: Vec<(EventId, Vec<u8>)> = owed(&store, &slow)
        .into_iter()
        .filter(|id| *id != ids[1])
        .map(|id| (id, b"{}".to_vec()))
        .collect();
    store.complete(&slow, &done).unwrap();
    let done: Vec<(EventId, Vec<u8>)> = owed(&store, &fast)
        .into_iter()
        .map(|id| (id, b"{}".to_vec()))
        .collect();
    store.complete(&fast, &done).unwrap();
    // The dead letter synced, so the slow cursor may pass it; the next frame carries both.
    rt.block_on(store.sync()).unwrap();
    let other = queue(&store, "other");
    accept(&rt, &store, "evt_last", &[&other]);
    assert_eq!(store.sweep_log(Duration::ZERO, later).unwrap(), 3);
    assert_eq!(wal::segments(&wal_dir).unwrap(), [4]);
    // Their index went with them, but for the event held dead: its entry was carried into
    // sled, its envelope is in its dead letter, and both outlive a restart.
    assert_eq!(store.event(&ids[0]).unwrap(), None);
    assert!(store.event(&ids[1]).unwrap().is_some());
    close(store);
    let store = open(dir.path());
    assert!(store.event(&ids[1]).unwrap().is_some());
    assert_eq!(store.event(&ids[2]).unwrap(), None);
    close(store);
}

/// Everything the store logs, as text.
#[derive(Clone, Default)]
struct Logged(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logged {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn an_unreadable_stored_record_is_counted_and_logged_never_dropped_silently() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let metrics = StoreMetrics::default();
    let options = StoreOptions {
        cache_bytes: 8 << 20,
        retention: Duration::from_secs(60),
    };
    let store = EmbeddedStore::open(dir.path(), &options, metrics.clone()).unwrap();
    let crm = queue(&store, "crm");
    let kept = accept(&rt, &store, "kept", &[&crm]);
    // An entry carried into sled (its segment retired while it was held dead), damaged.
    let mut damaged = kept.to_bytes();
    damaged[15] ^= 1;
    (store.trees().unwrap().events)
        .insert(damaged, &[9u8, 0, 0][..])
        .unwrap();

    let logged = Logged::default();
    let writer = logged.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // The search walks the index: the damaged entry costs it nothing but the count.
    let page = tracing::subscriber::with_default(subscriber, || {
        store.search(&crate::store::search::SearchQuery::default())
    });
    assert!(page.is_ok(), "the search still answers");
    assert_eq!(metrics.unreadable.get(), 1);
    let text = String::from_utf8(logged.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("ERROR")
            && text.contains("stored event unreadable")
            && text.contains("version 9"),
        "{text}"
    );
    close(store);
}

/// Where each logged frame of a segment starts, with the events it holds.
fn frames_of(path: &Path) -> Vec<(u64, Vec<EventId>)> {
    let bytes = std::fs::read(path).unwrap();
    let mut found = Vec::new();
    let mut at = 0;
    while let super::scan::At::Frame(payload, next) = super::scan::classify(&bytes, at) {
        let frame = super::frame::decode(payload).unwrap();
        found.push((
            at as u64,
            frame.events.iter().map(|e| e.id.clone()).collect(),
        ));
        at = next;
    }
    found
}

#[test]
fn salvage_keeps_every_readable_frame_and_moves_a_cursor_that_read_up_to_the_damage() {
    // The queue has read three events and settled them: its cursor reads on from the
    // fourth's frame.
    salvage_with_a_cursor_into_the_damage(3);
}

#[test]
fn salvage_keeps_every_readable_frame_and_moves_a_cursor_that_owed_an_event_in_the_damage() {
    // The queue has read all six and settled three: the fourth is among those it owes.
    salvage_with_a_cursor_into_the_damage(6);
}

/// Six events, each in its own frame, the first three settled by a queue that has read
/// `read` of them; then the frames of the third and fourth zeroed and salvaged.
fn salvage_with_a_cursor_into_the_damage(read: usize) {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let store = open(dir.path());
    let crm = queue(&store, "crm");
    let ids: Vec<EventId> = (0..6)
        .map(|n| accept(&rt, &store, &format!("evt_{n}"), &[&crm]))
        .collect();
    let done: Vec<(EventId, Vec<u8>)> = (ids[..3].iter())
        .map(|id| (id.clone(), b"{}".to_vec()))
        .collect();
    assert_eq!(store.peek_from(&crm, None, read).unwrap().len(), read);
    store.complete(&crm, &done).unwrap();
    // Carries the cursor.
    let last = accept(&rt, &store, "evt_last", &[&crm]);
    close(store);

    let segment = super::scan::segment_path(&dir.path().join("wal"), 1);
    let frames = frames_of(&segment);
    let start_of = |id: &EventId| frames.iter().find(|(_, ids)| ids.contains(id)).unwrap().0;
    // Two frames zeroed: the third event's and the fourth's, where the cursor points.
    let (from, inside, to) = (start_of(&ids[2]), start_of(&ids[3]), start_of(&ids[4]));
    assert!(from < inside && inside < to);
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[from as usize..to as usize].fill(0);
    std::fs::write(&segment, &bytes).unwrap();
    let options = StoreOptions {
        cache_bytes: 8 << 20,
        retention: Duration::from_secs(60),
    };
    // Until the closed store's threads let go of sled's lock.
    let message = (0..500)
        .find_map(|_| {
            let refused = EmbeddedStore::open(dir.path(), &options, StoreMetrics::default());
            match refused.err().map(|e| e.to_string()) {
                Some(message) if message.contains("could not acquire lock") => {
                    std::thread::sleep(Duration::from_millis(20));
                    None
                }
                other => Some(other.unwrap_or_default()),
            }
        })
        .unwrap();
    // Start-up stops at the damage: where the replay past the checkpoint meets it, or where
    // the queue's cursor points, inside it.
    let at = |byte: u64| message.contains(&format!("at byte {byte}"));
    assert!(at(from) || at(inside), "{message}");

    let report = super::verify::verify(dir.path(), false).unwrap();
    assert!(report.damaged());
    let report = super::verify::verify(dir.path(), true).unwrap();
    assert!(!report.damaged());
    let salvaged = report.segments[0].salvage.as_ref().unwrap();
    assert_eq!(
        (
            salvaged.regions,
            salvaged.bytes_skipped,
            salvaged.events_lost,
            salvaged.frames_lost
        ),
        // Zeroed lengths cannot say how many frames there were.
        (1, to - from, 2, None)
    );
    let aside = report
        .salvaged_to
        .unwrap()
        .join(segment.file_name().unwrap());
    assert_eq!(std::fs::read(aside).unwrap(), bytes, "the original is kept");

    let store = open(dir.path());
    let crm = queue(&store, "crm");
    assert_eq!(owed(&store, &crm), [ids[4].clone(), ids[5].clone(), last]);
    close(store);
}

#[test]
fn a_dead_letter_on_disk_before_its_cursor_is_neither_owed_nor_counted_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let store = open(dir.path());
    let crm = queue(&store, "crm");
    let ids: Vec<EventId> = (0..3)
        .map(|n| accept(&rt, &store, &format!("evt_{n}"), &[&crm]))
        .collect();
    assert_eq!(owed(&store, &crm), ids);
    store.bury(&crm, &ids[1], b"{}").unwrap();
    // The dead letter reaches the disk, and the process ends before the store's own sync
    // moves the cursor past it (as a SIGKILL right after a dead letter can).
    store.trees().unwrap().dead.flush().unwrap();
    close(store);

    let store = open(dir.path());
    let crm = queue(&store, "crm");
    assert_eq!(owed(&store, &crm), [ids[0].clone(), ids[2].clone()]);
    assert_eq!((crm.depth(), crm.dead()), (2, 1));
    close(store);
}
