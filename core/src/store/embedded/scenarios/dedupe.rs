//! Dedupe claims through their whole life: deciding repeats until their window ends, across a
//! restart (a clean one and one that replays the log), their generation deleted once every
//! claim in it has ended; and the claims a format 3 store kept in its `dedupe` tree, taken
//! up at the next start.

use std::time::{Duration, SystemTime};

use super::{close, open, queue, runtime};
use crate::base::id::{millis, EventId};
use crate::store::codec;
use crate::store::embedded::record::Claim;
use crate::store::embedded::EmbeddedStore;
use crate::store::Accepted;

/// Offers an event with dedupe key `name` at `now_ms`, claiming it until `until_ms`.
fn offer(
    rt: &tokio::runtime::Runtime,
    store: &EmbeddedStore,
    name: &str,
    now_ms: u64,
    until_ms: u64,
) -> (EventId, Accepted) {
    let envelope = format!("{{\"name\":\"{name}\"}}");
    let crm = queue(store, "crm");
    super::offer(rt, store, name, &envelope, &[&crm], (now_ms, until_ms))
}

fn at_ms(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

/// Sweeps at `ms` once sled has every claim accepted so far (the applier runs behind); returns
/// the claim generations deleted.
fn sweep(store: &EmbeddedStore, ms: u64) -> usize {
    store.settle();
    store.sweep_dedupe(at_ms(ms)).unwrap()
}

/// The names in the store's `claims/` directory.
fn generations(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("claims")).unwrap().count()
}

#[test]
fn a_claim_dedupes_until_its_window_ends_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let t = millis(SystemTime::now());
    let store = open(dir.path());
    let (first, _) = offer(&rt, &store, "a", t, t + 10_000);
    assert_eq!(
        offer(&rt, &store, "a", t + 5_000, t + 15_000).1,
        Accepted::Duplicate(first.clone())
    );
    // No clean close: the next start replays the log into the claims.
    drop(store);
    let store = open(dir.path());
    assert_eq!(
        offer(&rt, &store, "a", t + 6_000, t + 16_000).1,
        Accepted::Duplicate(first)
    );
    // Once its window has ended the key is claimed anew, and that claim outlives a restart.
    let (second, accepted) = offer(&rt, &store, "a", t + 10_001, t + 20_000);
    assert_eq!(accepted, Accepted::New);
    close(store);
    let store = open(dir.path());
    assert_eq!(
        offer(&rt, &store, "a", t + 11_000, t + 21_000).1,
        Accepted::Duplicate(second)
    );
    close(store);
}

#[test]
fn a_claim_generation_is_deleted_whole_once_every_claim_in_it_has_ended() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let t = millis(SystemTime::now());
    let store = open(dir.path());
    offer(&rt, &store, "short", t, t + 10_000);
    let (long, _) = offer(&rt, &store, "long", t, t + 20_000);
    store.settle();
    assert_eq!(store.trees().unwrap().claims.count(), (1, 2));
    // One claim has ended, the other still dedupes: the generation stays.
    assert_eq!(sweep(&store, t + 10_001), 0);
    assert_eq!(
        offer(&rt, &store, "long", t + 15_000, t + 35_000).1,
        Accepted::Duplicate(long)
    );
    assert_eq!(sweep(&store, t + 20_001), 1);
    assert_eq!(store.trees().unwrap().claims.count(), (0, 0));
    assert_eq!(generations(dir.path()), 0);
    assert_eq!(
        offer(&rt, &store, "long", t + 20_002, t + 40_000).1,
        Accepted::New
    );
    close(store);
    // What is left after the deletion opens again.
    let store = open(dir.path());
    assert_eq!(store.trees().unwrap().claims.count(), (1, 1));
    close(store);
}

#[test]
fn a_claim_a_format_3_store_kept_in_its_dedupe_tree_still_dedupes_after_the_take_up() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let t = millis(SystemTime::now());
    let store = open(dir.path());
    // As format 3 kept a claim no frame of this log made: in `dedupe` under its dedupe key,
    // with an expiry entry; and one that has ended, which is not taken up.
    let trees = store.trees().unwrap();
    let first = EventId::generate();
    let live = Claim {
        expires_at_ms: t + 60_000,
        event_id: first.clone(),
    };
    let ended = Claim {
        expires_at_ms: t - 1,
        event_id: EventId::generate(),
    };
    let old = trees.db.open_tree("dedupe").unwrap();
    old.insert(super::dedupe_key("old").as_bytes(), live.encode())
        .unwrap();
    old.insert(super::dedupe_key("gone").as_bytes(), ended.encode())
        .unwrap();
    let expiry = trees.db.open_tree("dedupe_expiry").unwrap();
    let mut listed = vec![codec::VERSION];
    codec::put_bytes16(&mut listed, super::dedupe_key("old").as_bytes());
    expiry.insert((t + 60_000).to_be_bytes(), listed).unwrap();
    let meta = trees.db.open_tree("meta").unwrap();
    meta.insert("format", &[3u8]).unwrap();
    trees.db.flush().unwrap();
    drop((trees, old, expiry, meta));
    close(store);

    let store = open(dir.path());
    let trees = store.trees().unwrap();
    let names = trees.db.tree_names();
    assert!(!names.iter().any(|n| n.as_ref() == b"dedupe"));
    assert!(!names.iter().any(|n| n.as_ref() == b"dedupe_expiry"));
    assert_eq!(trees.claims.count(), (1, 1));
    assert_eq!(
        offer(&rt, &store, "old", t + 1_000, t + 61_000).1,
        Accepted::Duplicate(first)
    );
    assert_eq!(offer(&rt, &store, "gone", t, t + 1_000).1, Accepted::New);
    close(store);
}
