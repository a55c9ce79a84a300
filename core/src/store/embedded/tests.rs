//! Directories the store must refuse, and say why.

use super::*;

/// A sled database as another release left it. Without sled's flusher thread, which would
/// hold the directory's lock for a moment after the handle is dropped.
fn legacy(dir: &Path) -> sled::Db {
    sled::Config::new()
        .path(dir)
        .flush_every_ms(None)
        .open()
        .unwrap()
}

fn options() -> StoreOptions {
    StoreOptions {
        cache_bytes: 8 << 20,
        retention: std::time::Duration::from_secs(60),
    }
}

/// Why the store in `dir` is refused, once the legacy handle's threads have let go of sled's
/// lock.
fn refused(dir: &Path) -> String {
    for _ in 0..500 {
        let refused = EmbeddedStore::open(dir, &options(), StoreMetrics::default()).err();
        let message = refused.map(|e| e.to_string()).unwrap_or_default();
        if !message.contains("could not acquire lock") {
            return message;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("sled's lock was never released");
}

#[test]
fn a_store_from_a_release_without_format_versions_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    {
        // What the earlier release left: envelopes in `events`, no `meta` format.
        let db = legacy(dir.path());
        db.open_tree("events").unwrap().insert(b"k", b"{}").unwrap();
        db.flush().unwrap();
    }
    let message = refused(dir.path());
    assert!(message.contains("earlier release"), "{message}");
    assert!(message.contains("move the directory aside"), "{message}");
}

#[test]
fn a_store_of_another_format_version_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = legacy(dir.path());
        db.open_tree("meta")
            .unwrap()
            .insert("format", &[7u8])
            .unwrap();
        db.flush().unwrap();
    }
    let message = refused(dir.path());
    assert!(message.contains("format version 7"), "{message}");
    assert!(
        message.contains(&format!("reads version {}", record::STORE_FORMAT)),
        "{message}"
    );
    assert!(message.contains("move the directory aside"), "{message}");
}
