//! `powercut`: 200 power cuts under load (20 with `--quick`), by the e2e power-cut test itself
//! (tests/tests/powercut.rs, on the power-cut filesystem of tests/powercut-fs), run here in
//! several rounds of 50 cuts, each from a seed printed first so a failing round can be replayed
//! alone. The test is built and run in the release profile, so its server is this bench's
//! release binary. Figures: events acknowledged, what never reached a sink (must be nothing),
//! and the time per cut.

use std::process::Command;
use std::time::Instant;

use crate::{BenchResult, Env, Problems};

/// Cuts per round: one seed each.
const CUTS_PER_ROUND: usize = 50;

/// One round's outcome, from the test's own summary line.
struct Round {
    seed: u64,
    passed: bool,
    /// `N acknowledged over C power cuts; never delivered: ...`.
    summary: Option<String>,
    seconds: f64,
}

fn round(seed: u64, cuts: usize) -> BenchResult<Round> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let started = Instant::now();
    let output = Command::new(&cargo)
        .args([
            "test",
            "--release",
            "-p",
            "switchyard-e2e",
            "--test",
            "powercut",
            "--",
            "--nocapture",
        ])
        .env("POWERCUT_SEED", seed.to_string())
        .env("POWERCUT_CUTS", cuts.to_string())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", cargo.to_string_lossy()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = stdout
        .lines()
        .find(|l| l.contains("acknowledged over"))
        .map(str::to_owned);
    let passed = output.status.success();
    if !passed {
        // The test's own report: the seed, the cut, what was lost, the server's log.
        let tail: Vec<&str> = stdout.lines().rev().take(40).collect();
        for line in tail.into_iter().rev() {
            println!("  | {line}");
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        for line in stderr
            .lines()
            .rev()
            .take(10)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            println!("  | {line}");
        }
    }
    Ok(Round {
        seed,
        passed,
        summary,
        seconds: started.elapsed().as_secs_f64(),
    })
}

pub fn run(env: &Env, problems: &mut Problems) -> BenchResult<()> {
    let total: usize = if env.quick { 20 } else { 200 };
    let rounds = total.div_ceil(CUTS_PER_ROUND);
    println!("== powercut: {total} power cuts under load, nothing acknowledged may be lost ==");
    println!(
        "settings: tests/tests/powercut.rs in the release profile, {rounds} round(s) of up to {CUTS_PER_ROUND} cuts, each from its own seed: 4 clients posting signed watsi events, a file sink and two http sinks (one down until the last cut), retention 2 s, the disk's file syncs taking 10 ms, every other cut torn; needs /dev/fuse and root (or fusermount3)"
    );
    let mut left = total;
    let mut cuts_done = 0;
    let mut seconds = 0.0;
    while left > 0 {
        let cuts = left.min(CUTS_PER_ROUND);
        let seed = fastrand::u64(..);
        println!("round of {cuts} cuts, seed {seed} (replay: POWERCUT_SEED={seed} POWERCUT_CUTS={cuts} cargo test --release -p switchyard-e2e --test powercut)");
        let round = round(seed, cuts)?;
        println!(
            "  {} in {:.0} s: {}",
            if round.passed { "passed" } else { "FAILED" },
            round.seconds,
            round.summary.as_deref().unwrap_or("no summary line")
        );
        if !round.passed {
            problems.add(
                "powercut",
                format!(
                    "the round with seed {} failed (its report is above)",
                    round.seed
                ),
            );
        }
        cuts_done += cuts;
        seconds += round.seconds;
        left -= cuts;
    }
    println!(
        "{cuts_done} cuts in {seconds:.0} s ({:.1} s a cut, restarts and the build check included)",
        seconds / cuts_done as f64
    );
    Ok(())
}
