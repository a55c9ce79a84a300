//! `switchyard store verify [--salvage]`: the embedded store's check of its own files, on a
//! stopped server's data directory, printed segment by segment for a person.

use std::path::PathBuf;

use switchyard::config;
use switchyard::store::embedded::verify::{self, Report};
use switchyard::store::StoreConfig;

use crate::args::StoreVerifyArgs;
use crate::failure::{config_failure, Failure};

/// Verifies (and with `--salvage` repairs) the store; exit 65 when data is lost in it.
pub fn verify(args: &StoreVerifyArgs) -> Result<(), Failure> {
    let dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => data_dir(args)?,
    };
    let report = verify::verify(&dir, args.salvage).map_err(|e| Failure::Runtime(e.to_string()))?;
    print!("{}", describe(&report));
    if report.damaged() {
        let next = if args.salvage {
            "restore a backup"
        } else {
            "restore a backup, or run `switchyard store verify --salvage` to keep every readable frame"
        };
        return Err(Failure::Damaged(format!(
            "the store in {} has lost data (above): {next}",
            dir.display()
        )));
    }
    Ok(())
}

/// The routes file's `server.data_dir`, for the embedded store only.
fn data_dir(args: &StoreVerifyArgs) -> Result<PathBuf, Failure> {
    let config = config::load(&args.config).map_err(config_failure)?;
    match config.server.store {
        StoreConfig::Embedded => Ok(config.server.data_dir),
        StoreConfig::Nats(_) => Err(Failure::Runtime(format!(
            "{} keeps its events in NATS JetStream (server.store.type: nats): `store verify` \
             reads the embedded store's data directory only",
            args.config.display()
        ))),
    }
}

/// The report as lines: each segment, its damage with what it means, what salvage did.
fn describe(report: &Report) -> String {
    let mut out = String::new();
    for segment in &report.segments {
        out.push_str(&format!(
            "{}: {} frame(s), {} event(s), {} bytes\n",
            segment.path.display(),
            segment.frames,
            segment.events,
            segment.bytes
        ));
        for damage in &segment.damage {
            out.push_str(&format!(
                "  at byte {} ({} bytes): {}\n",
                damage.offset,
                damage.len,
                damage.kind.meaning()
            ));
        }
        if let Some(salvaged) = &segment.salvage {
            let frames_lost = salvaged
                .frames_lost
                .map_or_else(|| "an unknown number of".to_owned(), |n| n.to_string());
            out.push_str(&format!(
                "  salvaged: kept {} frame(s) and {} event(s); skipped {} damaged place(s), {} \
                 bytes; lost {frames_lost} frame(s), holding {} event(s) the index knew of\n",
                salvaged.frames_kept,
                salvaged.events_kept,
                salvaged.regions,
                salvaged.bytes_skipped,
                salvaged.events_lost
            ));
        }
    }
    if let Some(aside) = &report.salvaged_to {
        out.push_str(&format!(
            "the damaged segments as they were: {}\n",
            aside.display()
        ));
    }
    let state = if report.damaged() { "damaged" } else { "ok" };
    out.push_str(&format!(
        "{state}: {} segment(s); sled opens\n",
        report.segments.len()
    ));
    out
}
