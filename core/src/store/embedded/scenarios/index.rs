//! The event index beside the log: made again from the log where a file is missing or was not
//! sealed, and a store of format 2 taken up with its index entries in sled.

use std::path::Path;

use super::lookups::envelope;
use super::{accept_as, close, open, queue, runtime};
use crate::base::id::EventId;
use crate::store::embedded::engine::open_trees;
use crate::store::embedded::{index, record};
use crate::store::search::SearchQuery;

/// The ids a search finds, newest first.
fn searched(store: &super::EmbeddedStore) -> Vec<EventId> {
    let page = store.search(&SearchQuery::default()).unwrap();
    page.events.into_iter().map(|found| found.id).collect()
}

fn index_files(wal_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = (std::fs::read_dir(wal_dir).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".idx"))
        .collect();
    names.sort();
    names
}

#[test]
fn every_event_is_found_after_a_crash_left_an_index_unsealed_and_another_was_lost() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().join("wal");
    let rt = runtime();
    let mut ids = Vec::new();
    // Two opens, two segments: the first closed cleanly (its index sealed), the second
    // dropped as a crash leaves it (its index never sealed).
    for (round, clean) in [(0, true), (1, false)] {
        let store = open(dir.path());
        let crm = queue(&store, "crm");
        for n in 0..3 {
            let name = format!("evt_{round}_{n}");
            ids.push(accept_as(&rt, &store, &name, &envelope(&name), &[&crm]));
        }
        if clean {
            close(store);
        } else {
            // Written by the applier, not sealed.
            assert_eq!(searched(&store).len(), 6);
            drop(store);
        }
    }
    std::fs::remove_file(index::path(&wal_dir, 1)).unwrap();

    let store = open(dir.path());
    for id in &ids {
        assert!(store.event(id).unwrap().is_some(), "{id} is found");
    }
    let newest_first: Vec<EventId> = ids.iter().rev().cloned().collect();
    assert_eq!(searched(&store), newest_first);
    // Both made again, sealed; the open's new segment has none until an event comes.
    assert_eq!(
        index_files(&wal_dir),
        ["0000000000000001.idx", "0000000000000002.idx"]
    );
    close(store);
}

#[test]
fn a_store_of_format_2_is_taken_up_in_place_and_its_index_entries_in_sled_are_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().join("wal");
    let rt = runtime();
    let store = open(dir.path());
    let crm = queue(&store, "crm");
    let kept = accept_as(&rt, &store, "kept", &envelope("kept"), &[&crm]);
    assert_eq!(searched(&store), std::slice::from_ref(&kept));
    let entry = store.index.get(&kept.to_bytes()).unwrap().unwrap();
    close(store);

    // What format 2 left: the entry in sled's `events` tree and no index file. Under an id
    // of its own, to tell where a lookup found it.
    let mut legacy = kept.to_bytes();
    legacy[15] ^= 1;
    let legacy = EventId::from_bytes(legacy);
    for name in index_files(&wal_dir) {
        std::fs::remove_file(wal_dir.join(name)).unwrap();
    }
    let trees = (0..500)
        .find_map(|_| match open_trees(dir.path(), 8 << 20) {
            Ok(trees) => Some(trees),
            Err(_) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
                None
            }
        })
        .unwrap();
    trees.events.insert(legacy.to_bytes(), entry).unwrap();
    let meta = trees.db.open_tree("meta").unwrap();
    meta.insert("format", &[2u8]).unwrap();
    trees.db.flush().unwrap();
    drop((meta, trees));

    let store = open(dir.path());
    let format = store.trees().unwrap().db.open_tree("meta").unwrap();
    assert_eq!(
        format.get("format").unwrap().unwrap().as_ref(),
        [record::STORE_FORMAT]
    );
    let mut found = searched(&store);
    found.sort();
    let mut both = vec![kept.clone(), legacy.clone()];
    both.sort();
    assert_eq!(found, both);
    assert_eq!(store.event(&legacy).unwrap(), store.event(&kept).unwrap());
    assert!(store.event(&legacy).unwrap().is_some());
    close(store);
}
