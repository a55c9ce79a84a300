//! What survives a cut, operation by operation.

use std::ffi::OsStr;

use super::*;

fn name(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn names(tree: &Tree) -> Vec<String> {
    match tree {
        Tree::Dir { entries, .. } => entries
            .keys()
            .map(|k| k.to_string_lossy().into_owned())
            .collect(),
        Tree::File { .. } => Vec::new(),
    }
}

/// A model with `dir/` synced into the root.
fn with_dir() -> (Model, Ino) {
    let mut model = Model::default();
    let dir = model.mkdir(ROOT, name("dir"), 0o755).unwrap().ino;
    model.sync(ROOT).unwrap();
    (model, dir)
}

#[test]
fn unsynced_writes_are_read_back_but_do_not_survive() {
    let (mut model, dir) = with_dir();
    let file = model.create(dir, name("f"), 0o644).unwrap().ino;
    model.sync(dir).unwrap();
    model.write(file, 0, b"hello", false).unwrap();
    assert_eq!(model.read(file, 0, 100).unwrap(), b"hello");
    assert_eq!(model.durable().file(&["dir", "f"]).unwrap(), b"");
}

#[test]
fn a_file_sync_keeps_what_was_written_before_it_and_nothing_after() {
    let (mut model, dir) = with_dir();
    let file = model.create(dir, name("f"), 0o644).unwrap().ino;
    model.sync(dir).unwrap();
    model.write(file, 0, b"one ", true).unwrap();
    model.sync(file).unwrap();
    model.write(file, 0, b"two", true).unwrap();
    assert_eq!(model.read(file, 0, 100).unwrap(), b"one two");
    assert_eq!(model.durable().file(&["dir", "f"]).unwrap(), b"one ");
}

#[test]
fn a_synced_file_in_an_unsynced_directory_entry_is_lost() {
    let (mut model, dir) = with_dir();
    let file = model.create(dir, name("f"), 0o644).unwrap().ino;
    model.write(file, 0, b"data", false).unwrap();
    model.sync(file).unwrap();
    assert!(model.durable().file(&["dir", "f"]).is_none());
    model.sync(dir).unwrap();
    assert_eq!(model.durable().file(&["dir", "f"]).unwrap(), b"data");
}

#[test]
fn a_new_directory_survives_only_once_its_parent_is_synced() {
    let mut model = Model::default();
    let a = model.mkdir(ROOT, name("a"), 0o755).unwrap().ino;
    let b = model.mkdir(a, name("b"), 0o755).unwrap().ino;
    model.sync(a).unwrap();
    model.sync(b).unwrap();
    assert!(names(&model.durable()).is_empty());
    model.sync(ROOT).unwrap();
    let Tree::Dir { entries, .. } = model.durable() else {
        panic!("the root is a directory")
    };
    assert_eq!(names(&entries[name("a")]), ["b"]);
}

#[test]
fn a_truncation_is_durable_on_sync_only() {
    let (mut model, dir) = with_dir();
    let file = model.create(dir, name("f"), 0o644).unwrap().ino;
    model.sync(dir).unwrap();
    model.write(file, 0, b"0123456789", false).unwrap();
    model.sync(file).unwrap();
    model.set_len(file, 3).unwrap();
    assert_eq!(model.durable().file(&["dir", "f"]).unwrap(), b"0123456789");
    model.sync(file).unwrap();
    assert_eq!(model.durable().file(&["dir", "f"]).unwrap(), b"012");
}

#[test]
fn an_unlink_is_undone_by_a_cut_until_the_directory_is_synced() {
    let (mut model, dir) = with_dir();
    let file = model.create(dir, name("f"), 0o644).unwrap().ino;
    model.write(file, 0, b"kept", false).unwrap();
    model.sync(file).unwrap();
    model.sync(dir).unwrap();
    model.unlink(dir, name("f")).unwrap();
    assert_eq!(model.lookup(dir, name("f")), Err(FsError::NotFound));
    assert_eq!(
        model.read(file, 0, 10).unwrap(),
        b"kept",
        "an open handle reads on"
    );
    assert_eq!(model.durable().file(&["dir", "f"]).unwrap(), b"kept");
    model.sync(dir).unwrap();
    assert!(model.durable().file(&["dir", "f"]).is_none());
}

#[test]
fn a_rename_over_a_file_in_one_directory_is_atomic_on_its_sync() {
    // The write-aside-then-rename pattern: the old contents until the directory is synced,
    // the new ones after, never neither.
    let (mut model, dir) = with_dir();
    let old = model.create(dir, name("checkpoint"), 0o644).unwrap().ino;
    model.write(old, 0, b"old", false).unwrap();
    model.sync(old).unwrap();
    model.sync(dir).unwrap();
    let new = model
        .create(dir, name("checkpoint.new"), 0o644)
        .unwrap()
        .ino;
    model.write(new, 0, b"new", false).unwrap();
    model.sync(new).unwrap();
    model
        .rename(dir, name("checkpoint.new"), dir, name("checkpoint"))
        .unwrap();
    assert_eq!(
        model.durable().file(&["dir", "checkpoint"]).unwrap(),
        b"old"
    );
    model.sync(dir).unwrap();
    let durable = model.durable();
    assert_eq!(durable.file(&["dir", "checkpoint"]).unwrap(), b"new");
    assert_eq!(names(&durable), ["dir"]);
    assert!(durable.file(&["dir", "checkpoint.new"]).is_none());
}

#[test]
fn a_rename_between_directories_is_durable_in_each_separately() {
    let mut model = Model::default();
    let a = model.mkdir(ROOT, name("a"), 0o755).unwrap().ino;
    let b = model.mkdir(ROOT, name("b"), 0o755).unwrap().ino;
    let file = model.create(a, name("f"), 0o644).unwrap().ino;
    model.write(file, 0, b"x", false).unwrap();
    model.sync(file).unwrap();
    model.sync(a).unwrap();
    model.sync(ROOT).unwrap();
    model.rename(a, name("f"), b, name("g")).unwrap();
    model.sync(b).unwrap();
    let durable = model.durable();
    assert_eq!(durable.file(&["a", "f"]).unwrap(), b"x");
    assert_eq!(durable.file(&["b", "g"]).unwrap(), b"x");
    model.sync(a).unwrap();
    assert!(model.durable().file(&["a", "f"]).is_none());
}

#[test]
fn a_directory_cannot_move_into_itself_or_replace_a_full_one() {
    let mut model = Model::default();
    let a = model.mkdir(ROOT, name("a"), 0o755).unwrap().ino;
    let b = model.mkdir(a, name("b"), 0o755).unwrap().ino;
    assert_eq!(
        model.rename(ROOT, name("a"), b, name("a")),
        Err(FsError::Invalid)
    );
    let c = model.mkdir(ROOT, name("c"), 0o755).unwrap().ino;
    model.create(c, name("f"), 0o644).unwrap();
    assert_eq!(
        model.rename(a, name("b"), ROOT, name("c")),
        Err(FsError::NotEmpty)
    );
    assert_eq!(model.rmdir(ROOT, name("c")), Err(FsError::NotEmpty));
}

#[test]
fn after_the_cut_nothing_is_read_or_written() {
    let (mut model, dir) = with_dir();
    model.power_off();
    assert_eq!(model.lookup(ROOT, name("dir")), Err(FsError::PoweredOff));
    assert_eq!(
        model.create(dir, name("f"), 0o644),
        Err(FsError::PoweredOff)
    );
    assert_eq!(names(&model.durable()), ["dir"]);
}

#[test]
fn a_model_loaded_from_a_tree_holds_it_as_synced() {
    let (mut model, dir) = with_dir();
    let file = model.create(dir, name("f"), 0o644).unwrap().ino;
    model.write(file, 0, b"on disk", false).unwrap();
    model.sync(file).unwrap();
    model.sync(dir).unwrap();
    let mut again = Model::from_tree(&model.durable());
    let dir = again.lookup(ROOT, name("dir")).unwrap().ino;
    let file = again.lookup(dir, name("f")).unwrap().ino;
    again.write(file, 7, b"!", false).unwrap();
    again.power_off();
    assert_eq!(again.durable().file(&["dir", "f"]).unwrap(), b"on disk");
}

#[test]
fn a_torn_cut_keeps_a_prefix_of_the_unsynced_writes_in_order_and_nothing_synced_is_lost() {
    let (mut model, dir) = with_dir();
    let file = model.create(dir, name("f"), 0o644).unwrap().ino;
    model.sync(dir).unwrap();
    model.write(file, 0, b"synced.", false).unwrap();
    model.sync(file).unwrap();
    model.write(file, 0, b"one.", true).unwrap();
    model.write(file, 0, b"two.", true).unwrap();
    model.write(file, 0, b"three.", true).unwrap();
    let full = b"synced.one.two.three.";
    let mut kept = HashSet::new();
    for seed in 0..200 {
        let left = model.torn(seed).file(&["dir", "f"]).unwrap();
        // Always the synced bytes, then a prefix of the writes in the order they were made.
        assert!(left.len() >= 7 && full.starts_with(&left), "{left:?}");
        assert_eq!(left, model.torn(seed).file(&["dir", "f"]).unwrap());
        kept.insert(left.len());
    }
    // Nothing, everything, and writes cut in the middle all occur.
    assert!(kept.contains(&7) && kept.contains(&full.len()), "{kept:?}");
    assert!(
        kept.iter().any(|n| ![7, 11, 15, 21].contains(n)),
        "{kept:?}"
    );
    // The strict cut keeps only what was synced; a sync makes the torn cut keep it all.
    assert_eq!(model.durable().file(&["dir", "f"]).unwrap(), b"synced.");
    model.sync(file).unwrap();
    assert_eq!(model.torn(7).file(&["dir", "f"]).unwrap(), full);
}
