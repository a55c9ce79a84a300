//! Power cuts under load. SIGKILL alone cannot catch a missing fsync, since the kernel keeps a
//! killed process's unsynced writes; a power cut does not. The server's data directory and its
//! file sink live on the power-cut filesystem (`switchyard-powercut-fs`), which keeps only what
//! was synced. Under concurrent signed deliveries, at a moment drawn from a seeded generator,
//! the server is killed, the power is cut (everything unsynced is dropped; on every other cut
//! the disk keeps part of the unsynced writes instead, the last one torn, so the log's and the
//! file sink's torn tails are met), the filesystem is mounted again over what survived, and the
//! server restarts on it.
//!
//! Checked: the store opens after every cut; no file-sink line counted delivered is torn after
//! any cut, and no line at all at the end; and every event answered 200 (accepted, or a
//! duplicate of one accepted) reaches both of its sinks, the http receiver and the file, by the
//! end.
//!
//! `POWERCUT_SEED` replays a run's cut points (the seed is printed); `POWERCUT_CUTS` sets how
//! many cuts (20 by default).

use std::collections::HashSet;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use switchyard_e2e::*;
use switchyard_powercut_fs::PowerCut;

const SECRET: &str = "powercut-secret-for-e2e";
const CLIENTS: usize = 4;
/// How long the load may take to make its next acknowledgements.
const WITHIN: Duration = Duration::from_secs(60);
/// How long the sinks may go without receiving any missing event before the rest count as lost.
const STALL: Duration = Duration::from_secs(20);
/// How long each file sync takes on the power-cut disk: the server is then often caught
/// between a write and its sync, where a torn cut leaves part of that write.
const SYNC_DELAY: Duration = Duration::from_millis(10);

/// One event of client `client`'s `n`th.
fn body(client: usize, n: usize) -> String {
    format!(
        r#"{{"id":"evt_cut{client}_{n}","type":"message.received","data":{{"text":"power cut {n}"}}}}"#
    )
}

/// The seed of this run's cut points: `POWERCUT_SEED`, or a fresh one.
fn seed() -> u64 {
    match std::env::var("POWERCUT_SEED") {
        Ok(seed) => seed.parse().expect("POWERCUT_SEED is a number"),
        Err(_) => fastrand::u64(..),
    }
}

/// Fails if a file sink's file holds a line that is not whole JSON, or ends mid-line. Right
/// after a torn cut (`cut_tail`) it may end mid-line: the start of a batch that was never
/// synced, so never counted delivered, which the sink cuts off when it opens the file again.
fn assert_no_torn_line(path: &Path, when: &str, cut_tail: bool) {
    let mut text = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => panic!("cannot read {}: {e}", path.display()),
    };
    if cut_tail {
        let whole = text
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |at| at + 1);
        text.truncate(whole);
    }
    if let Some(last) = text.last() {
        assert_eq!(*last, b'\n', "{when}: {} ends mid-line", path.display());
    }
    for (i, line) in text.split(|b| *b == b'\n').enumerate() {
        if !line.is_empty() && serde_json::from_slice::<Value>(line).is_err() {
            panic!(
                "{when}: line {} of {} is torn: {}",
                i + 1,
                path.display(),
                String::from_utf8_lossy(line)
            );
        }
    }
}

/// For each sink, the ids of `acked` it has not received: polled until every sink has them
/// all, or none has received a missing one for [`STALL`] (a backlog still draining is waited
/// for, however long; a loss ends the wait).
fn missing(acked: &[String], sinks: &[&dyn Fn() -> Vec<String>]) -> Vec<Vec<String>> {
    let mut progress = Instant::now();
    let mut before = usize::MAX;
    loop {
        let lacking: Vec<Vec<String>> = sinks
            .iter()
            .map(|delivered| {
                let have: HashSet<String> = delivered().into_iter().collect();
                acked
                    .iter()
                    .filter(|id| !have.contains(*id))
                    .cloned()
                    .collect()
            })
            .collect();
        let now: usize = lacking.iter().map(Vec::len).sum();
        if now < before {
            (before, progress) = (now, Instant::now());
        }
        if now == 0 || progress.elapsed() >= STALL {
            return lacking;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn file_ids(path: &Path) -> Vec<String> {
    SinkFile::at(path)
        .events()
        .iter()
        .filter_map(|e| e["id"].as_str().map(str::to_owned))
        .collect()
}

/// The test directory with `data/` and `sinks/` on the power-cut filesystem: `disk/` is the
/// backing directory, `mnt/` the mount, and `data` and `sinks` link into it. The data directory
/// and the sink's directory exist, synced, before the server first starts, as an installer
/// leaves them.
fn on_powercut_disk(dir: &TestDir) -> (PathBuf, PathBuf, PowerCut) {
    let (backing, mountpoint) = (dir.path().join("disk"), dir.path().join("mnt"));
    std::fs::create_dir(&backing).expect("the backing directory");
    std::fs::create_dir(&mountpoint).expect("the mount point");
    let disk = PowerCut::mount_with_sync_delay(&backing, &mountpoint, SYNC_DELAY)
        .expect("mounting the power-cut filesystem (needs /dev/fuse, and root or fusermount3)");
    let sync = |path: &Path| {
        std::fs::File::open(path)
            .and_then(|d| d.sync_all())
            .expect("syncing a directory");
    };
    std::fs::create_dir_all(mountpoint.join("sinks/acme")).expect("the sink directory");
    std::fs::create_dir(mountpoint.join("data")).expect("the data directory");
    for synced in ["sinks/acme", "sinks", "data", ""] {
        sync(&mountpoint.join(synced));
    }
    symlink(mountpoint.join("data"), dir.data_dir()).expect("linking data/");
    symlink(mountpoint.join("sinks"), dir.path().join("sinks")).expect("linking sinks/");
    (backing, mountpoint, disk)
}

#[test]
fn every_acknowledged_event_survives_power_cuts_under_load() {
    let seed = seed();
    let cuts: usize = std::env::var("POWERCUT_CUTS")
        .map_or(20, |n| n.parse().expect("POWERCUT_CUTS is a number"));
    println!("power-cut seed {seed} (replay the cut points with POWERCUT_SEED={seed})");
    let mut rng = fastrand::Rng::with_seed(seed);

    let receiver = Receiver::start(Mode::Accept);
    // Down until the last cut: its events wait in the queue while their log segments retire.
    let down = Receiver::start(Mode::Fail(503));
    let dir = TestDir::new();
    let (backing, mountpoint, disk) = on_powercut_disk(&dir);
    let mut disk = Some(disk);
    // Segments close every second and are retired 2 s on, so cuts land during checkpoints and
    // retirements too (cycles last up to ~2 s).
    let config = Config::new().retention("2s").workspace(
        Workspace::new("acme")
            .vendor(Vendor::new("watsi", &[SECRET]))
            .file_sink("events")
            .http_sink("crm", HttpSink::new(receiver.url()))
            .http_sink(
                "backlog",
                HttpSink::new(down.url())
                    .retry(&["1s"; 200])
                    .max_backoff("1s"),
            )
            .route(Route::new("*", &["events", "crm", "backlog"])),
    );
    let sink = dir.sink_path("acme", "events");
    let survived_sink = backing.join("sinks/acme/events.jsonl");
    let mut server = dir.serve(&config);
    let load = Load::start(server.addr(), CLIENTS, SECRET, body);

    for cut in 1..=cuts {
        load.wait_for(load.count() + rng.usize(5..500), WITHIN, &server);
        server.kill();
        // Every other cut is torn: the disk had kept part of the unsynced writes.
        let torn = cut % 2 == 0;
        let mounted = disk.take().expect("mounted");
        let survived = if torn {
            mounted.cut_torn(rng.u64(..))
        } else {
            mounted.cut()
        };
        survived.unwrap_or_else(|e| panic!("seed {seed}, cut {cut}: the power cut failed: {e}"));
        assert_no_torn_line(
            &survived_sink,
            &format!("seed {seed}, after cut {cut}"),
            torn,
        );
        let again = PowerCut::mount_with_sync_delay(&backing, &mountpoint, SYNC_DELAY);
        disk = Some(again.expect("mounting again"));
        // Panics with the log unless the store opens and the server is ready.
        server.restart();
        load.point_at(server.addr());
        println!("cut {cut} after {} acknowledgements", load.count());
    }
    load.wait_for(load.count() + 20, WITHIN, &server);
    let acked = load.stop();
    down.set_mode(Mode::Accept);

    let lost = missing(
        &acked,
        &[&|| receiver.delivered(), &|| down.delivered(), &|| {
            file_ids(&sink)
        }],
    );
    let lost = ["the http sink", "the backlogged http sink", "the file sink"]
        .into_iter()
        .zip(lost)
        .collect::<Vec<_>>();
    assert_no_torn_line(&sink, &format!("seed {seed}, at the end"), false);
    let report: Vec<String> = lost
        .iter()
        .map(|(sink, ids)| format!("{} to {sink} (first: {:?})", ids.len(), ids.first()))
        .collect();
    println!(
        "{} acknowledged over {cuts} power cuts; never delivered: {}",
        acked.len(),
        report.join(", ")
    );
    assert!(
        lost.iter().all(|(_, ids)| ids.is_empty()),
        "seed {seed}: acknowledged events lost by power cuts: {}",
        report.join(", ")
    );
    drop(server);
    drop(disk);
}
