//! A log damaged in the middle of a segment, end to end: `serve` refuses it naming the segment
//! and the byte, `store verify` reports it (exit 65) and refuses a running server's store,
//! `store verify --salvage` keeps every readable frame, and the server then delivers every
//! accepted event but those of the damaged frame.

use std::path::{Path, PathBuf};
use std::time::Duration;

use switchyard_e2e::*;

const SECRET: &str = "secret-one-for-e2e";
const FRAME_HEADER: usize = 8;

/// `switchyard store verify --config <config>` and any further arguments.
fn store_verify(config: &Path, more: &[&str]) -> Run {
    let mut args = vec!["store", "verify", "--config"];
    args.push(config.to_str().expect("a UTF-8 path"));
    args.extend_from_slice(more);
    run(switchyard_command(args))
}

/// The log segment holding frames, and where each of its frames starts and ends.
fn frames(data_dir: &Path) -> (PathBuf, Vec<u8>, Vec<(usize, usize)>) {
    let wal = data_dir.join("wal");
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&wal)
        .expect("the log directory")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segments.sort_by_key(|p| std::fs::metadata(p).map_or(0, |m| m.len()));
    let segment = segments.pop().expect("a segment");
    let bytes = std::fs::read(&segment).expect("the segment");
    let mut found = Vec::new();
    let mut at = 0;
    while at + FRAME_HEADER <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        found.push((at, at + FRAME_HEADER + len));
        at += FRAME_HEADER + len;
    }
    (segment, bytes, found)
}

#[test]
fn a_frame_damaged_mid_segment_is_refused_reported_and_salvaged_losing_only_its_events() {
    let dir = TestDir::new();
    // A receiver that never answers: every event stays owed in the log, nothing is recorded
    // in sled, so what the restarted server delivers comes from the log alone.
    let receiver = Receiver::start(Mode::Hang);
    let config = Config::new().workspace(
        Workspace::new("acme")
            .vendor(Vendor::new("watsi", &[SECRET]))
            .http_sink(
                "events",
                HttpSink::new(receiver.url()).ordered().timeout("60s"),
            )
            .route(Route::new("*", &["events"])),
    );
    let mut server = dir.serve(&config);
    let routes = dir.path().join("routes.yaml");
    // One at a time: each event is its own frame.
    let ids: Vec<String> = (0..12)
        .map(|n| {
            let body = format!(r#"{{"id":"evt_{n}","type":"message.received","data":{{}}}}"#);
            server
                .deliver("acme", &WATSI, SECRET, &body, &[])
                .expect_accepted()
        })
        .collect();
    store_verify(&routes, &[]).expect_failure(
        "verify while the server runs",
        &["is in use", "stop the server first"],
    );
    server.kill();

    let (segment, mut bytes, frames) = frames(&dir.data_dir());
    let holding = |(start, end): (usize, usize)| -> Vec<String> {
        (ids.iter())
            .filter(|id| {
                let raw = ulid::Ulid::from_string(id).expect("a ULID").to_bytes();
                bytes[start..end].windows(16).any(|w| w == raw)
            })
            .cloned()
            .collect()
    };
    let victim = frames
        .iter()
        .position(|f| holding(*f).contains(&ids[6]))
        .expect("a frame holds the seventh event");
    assert!(victim + 1 < frames.len(), "frames follow the damaged one");
    let (start, end) = frames[victim];
    let lost = holding(frames[victim]);
    bytes[end - 1] ^= 0xff;
    std::fs::write(&segment, &bytes).expect("the damaged segment");
    let name = segment.file_name().unwrap().to_string_lossy().into_owned();
    let at_byte = format!("at byte {start}");

    serve_expecting_exit(&routes).expect_failure(
        "serve on a damaged log",
        &[&name, &at_byte, "`switchyard store verify`", "--salvage"],
    );
    let verified = store_verify(&routes, &[]);
    assert_eq!(verified.status.code(), Some(65), "{verified:?}");
    assert!(
        verified.stdout.contains(&name)
            && verified
                .stdout
                .contains(&format!("{at_byte} ({} bytes)", end - start))
            && verified.stdout.contains("checksum mismatch")
            && verified.stdout.contains("are lost"),
        "{}",
        verified.stdout
    );

    let salvaged = store_verify(&routes, &["--salvage"]);
    salvaged.expect_success("salvage");
    let skipped = format!(
        "skipped 1 damaged place(s), {} bytes; lost 1 frame(s)",
        end - start
    );
    assert!(salvaged.stdout.contains(&skipped), "{}", salvaged.stdout);
    assert!(
        dir.data_dir().join("salvaged").is_dir(),
        "the original is kept aside"
    );
    store_verify(&routes, &[]).expect_success("verify after salvage");

    receiver.set_mode(Mode::Accept);
    server.restart();
    let expected: Vec<String> = ids
        .iter()
        .filter(|id| !lost.contains(id))
        .cloned()
        .collect();
    let mut delivered = receiver.wait_for_delivered(&expected, Duration::from_secs(30));
    delivered.sort();
    delivered.dedup();
    let mut want = expected.clone();
    want.sort();
    assert_eq!(delivered, want, "every readable event, the lost ones not");
}
