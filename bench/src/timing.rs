//! Timing a call in process: rounds of many calls after a warm-up, reported as the median
//! round's ns/call with the spread across rounds (`map` and its routing figures).

use std::time::Instant;

use crate::stats::median;

/// How long each measurement runs.
pub struct Params {
    pub rounds: usize,
    pub iterations: u32,
    pub warmup: u32,
}

impl Params {
    pub fn new(quick: bool) -> Params {
        if quick {
            Params {
                rounds: 5,
                iterations: 2_000,
                warmup: 200,
            }
        } else {
            Params {
                rounds: 9,
                iterations: 20_000,
                warmup: 2_000,
            }
        }
    }
}

/// ns per call of each round, after a warm-up.
pub fn rounds(p: &Params, mut call: impl FnMut()) -> Vec<f64> {
    for _ in 0..p.warmup {
        call();
    }
    (0..p.rounds)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..p.iterations {
                call();
            }
            started.elapsed().as_nanos() as f64 / f64::from(p.iterations)
        })
        .collect()
}

/// `3412 [3390-3501]`.
pub fn spread(rounds: &[f64]) -> String {
    let min = rounds.iter().copied().fold(f64::INFINITY, f64::min);
    let max = rounds.iter().copied().fold(0.0, f64::max);
    format!("{:.0} [{:.0}-{:.0}]", median(rounds), min, max)
}
