//! The filesystem mounted for real: std::fs through the kernel's FUSE, a cut, and the backing
//! directory and a second mount holding exactly what was synced.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use switchyard_powercut_fs::PowerCut;

const NEEDS: &str = "mounting needs /dev/fuse, and root or fusermount3 (Debian's fuse3)";

/// A backing directory and a mount point in one temporary directory.
struct Dirs {
    _root: tempfile::TempDir,
    backing: PathBuf,
    mount: PathBuf,
}

fn dirs() -> Dirs {
    let root = tempfile::Builder::new()
        .prefix("powercut-fs-")
        .tempdir()
        .expect("a temporary directory");
    let (backing, mount) = (root.path().join("disk"), root.path().join("mnt"));
    fs::create_dir(&backing).unwrap();
    fs::create_dir(&mount).unwrap();
    Dirs {
        _root: root,
        backing,
        mount,
    }
}

fn sync_dir(path: &Path) {
    File::open(path).unwrap().sync_all().unwrap();
}

fn append(path: &Path, bytes: &[u8]) -> File {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(bytes).unwrap();
    file
}

#[test]
fn a_cut_keeps_synced_files_and_entries_and_drops_the_rest() {
    let d = dirs();
    let disk = PowerCut::mount(&d.backing, &d.mount).expect(NEEDS);
    let m = disk.path().to_owned();
    fs::create_dir(m.join("data")).unwrap();
    sync_dir(&m);

    // Synced file, synced entry: kept, up to its last sync.
    let first = append(&m.join("data/log"), b"line 1\n");
    first.sync_data().unwrap();
    let mut log = append(&m.join("data/log"), b"line 2\n");
    sync_dir(&m.join("data"));
    log.write_all(b"line 3\n").unwrap();
    // Synced file, unsynced entry: lost.
    fs::create_dir(m.join("data/sub")).unwrap();
    fs::write(m.join("data/sub/kept-nowhere"), b"x").unwrap();
    File::open(m.join("data/sub/kept-nowhere"))
        .unwrap()
        .sync_all()
        .unwrap();
    // Unsynced data: lost, though it reads back before the cut.
    let mut sink = append(&m.join("sink.jsonl"), b"{\"n\":1}\n");
    sync_dir(&m);
    sink.write_all(b"{\"n\":2}\n").unwrap();
    assert_eq!(
        fs::read(m.join("sink.jsonl")).unwrap(),
        b"{\"n\":1}\n{\"n\":2}\n"
    );
    assert_eq!(
        fs::read(m.join("data/log")).unwrap(),
        b"line 1\nline 2\nline 3\n"
    );
    drop((log, sink));

    // A descriptor still open does not hold the cut back, and fails after it.
    let survived = disk.cut().expect("cut");
    assert!(first.sync_data().is_err());
    drop(first);
    assert_eq!(survived.file(&["data", "log"]).unwrap(), b"line 1\n");
    assert_eq!(fs::read(d.backing.join("data/log")).unwrap(), b"line 1\n");
    assert!(!d.backing.join("data/sub").exists());
    assert_eq!(fs::read(d.backing.join("sink.jsonl")).unwrap(), b"");

    let disk = PowerCut::mount(&d.backing, &d.mount).expect(NEEDS);
    assert_eq!(fs::read(m.join("data/log")).unwrap(), b"line 1\n");
    let mut names: Vec<_> = fs::read_dir(&m)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["data", "sink.jsonl"]);
    drop(disk);
}

#[test]
fn checkpoint_by_rename_survives_old_or_new_and_removals_take_a_directory_sync() {
    let d = dirs();
    let disk = PowerCut::mount(&d.backing, &d.mount).expect(NEEDS);
    let m = disk.path().to_owned();
    let write_synced = |name: &str, bytes: &[u8]| {
        let mut f = File::create(m.join(name)).unwrap();
        f.write_all(bytes).unwrap();
        f.sync_all().unwrap();
    };
    write_synced("checkpoint", b"old");
    write_synced("segment-1", b"frames");
    sync_dir(&m);
    write_synced("checkpoint.new", b"new");
    fs::rename(m.join("checkpoint.new"), m.join("checkpoint")).unwrap();
    fs::remove_file(m.join("segment-1")).unwrap();
    disk.cut().expect("cut");
    assert_eq!(fs::read(d.backing.join("checkpoint")).unwrap(), b"old");
    assert_eq!(fs::read(d.backing.join("segment-1")).unwrap(), b"frames");
    assert!(!d.backing.join("checkpoint.new").exists());

    let disk = PowerCut::mount(&d.backing, &d.mount).expect(NEEDS);
    write_synced("checkpoint.new", b"new");
    fs::rename(m.join("checkpoint.new"), m.join("checkpoint")).unwrap();
    fs::remove_file(m.join("segment-1")).unwrap();
    sync_dir(&m);
    disk.cut().expect("cut");
    assert_eq!(fs::read(d.backing.join("checkpoint")).unwrap(), b"new");
    assert!(!d.backing.join("segment-1").exists());
}

#[test]
fn a_large_file_rewritten_in_place_is_written_back_whole_and_right() {
    let d = dirs();
    let disk = PowerCut::mount(&d.backing, &d.mount).expect(NEEDS);
    let path = disk.path().join("db");
    let mut bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut file = File::create(&path).unwrap();
    file.write_all(&bytes).unwrap();
    file.sync_all().unwrap();
    sync_dir(disk.path());
    drop(file);
    disk.cut().expect("cut");

    let disk = PowerCut::mount(&d.backing, &d.mount).expect(NEEDS);
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, b"patched", 100_000).unwrap();
    file.set_len(150_000).unwrap();
    file.sync_data().unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, b"lost", 10).unwrap();
    drop(file);
    disk.cut().expect("cut");
    bytes[100_000..100_007].copy_from_slice(b"patched");
    bytes.truncate(150_000);
    assert_eq!(fs::read(d.backing.join("db")).unwrap(), bytes);
}
