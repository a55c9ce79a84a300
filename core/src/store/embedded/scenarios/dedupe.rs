//! Dedupe claims through their whole life: deciding repeats, swept once their window ends
//! (from the expiry entries each applied frame leaves, or one a format 2 store left per
//! claim), and both across a restart, a clean one and one that replays the log.

use std::time::{Duration, SystemTime};

use super::{close, open, queue, runtime};
use crate::base::id::EventId;
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

/// Sweeps at `ms` once sled has every claim accepted so far (the applier runs behind).
fn sweep(store: &EmbeddedStore, ms: u64) -> usize {
    store.settle();
    store.sweep_dedupe(at_ms(ms)).unwrap()
}

#[test]
fn a_claim_past_its_window_is_swept_and_no_longer_dedupes_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let store = open(dir.path());
    let (short, _) = offer(&rt, &store, "short", 1_000, 2_000);
    let (long, _) = offer(&rt, &store, "long", 1_000, 10_000);
    assert_eq!(
        offer(&rt, &store, "short", 1_500, 2_500).1,
        Accepted::Duplicate(short)
    );
    assert_eq!(sweep(&store, 1_999), 0);
    // No clean close: the next start replays the log over sled, expiry entries included.
    drop(store);
    let store = open(dir.path());
    assert_eq!(sweep(&store, 2_001), 1);
    // Offered as if still inside the first window: only the sweep can have freed the key.
    let (again, accepted) = offer(&rt, &store, "short", 1_500, 3_000);
    assert_eq!(accepted, Accepted::New);
    assert_eq!(
        offer(&rt, &store, "long", 1_500, 11_000).1,
        Accepted::Duplicate(long)
    );
    close(store);
    let store = open(dir.path());
    assert_eq!(
        offer(&rt, &store, "short", 2_900, 4_000).1,
        Accepted::Duplicate(again)
    );
    // Claimed again once its window ended, before a sweep: the first claim's entry goes and
    // leaves the new claim.
    let (long_again, accepted) = offer(&rt, &store, "long", 10_500, 30_000);
    assert_eq!(accepted, Accepted::New);
    assert_eq!(sweep(&store, 10_600), 1);
    assert_eq!(
        offer(&rt, &store, "long", 10_700, 40_000).1,
        Accepted::Duplicate(long_again)
    );
    assert_eq!(sweep(&store, 30_001), 1);
    assert_eq!(sweep(&store, 30_001), 0);
    for name in ["short", "long"] {
        assert_eq!(offer(&rt, &store, name, 10_700, 50_000).1, Accepted::New);
    }
    close(store);
}

#[test]
fn a_claim_a_format_2_store_left_with_its_own_expiry_entry_is_swept_by_it() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let store = open(dir.path());
    let (old, _) = offer(&rt, &store, "old", 1_000, 5_000);
    store.settle();
    // As format 2 wrote it: the claim's end, then its dedupe key; no value.
    let trees = store.trees().unwrap();
    let (key, _) = (trees.dedupe.iter().next().unwrap()).unwrap();
    trees.dedupe_expiry.clear().unwrap();
    let mut legacy = 5_000u64.to_be_bytes().to_vec();
    legacy.extend_from_slice(&key);
    trees.dedupe_expiry.insert(legacy, &[]).unwrap();
    assert_eq!(
        offer(&rt, &store, "old", 4_000, 9_000).1,
        Accepted::Duplicate(old)
    );
    assert_eq!(sweep(&store, 5_001), 1);
    assert!(trees.dedupe_expiry.is_empty());
    assert_eq!(offer(&rt, &store, "old", 5_002, 9_000).1, Accepted::New);
    close(store);
}
