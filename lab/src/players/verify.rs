//! `bench --players N --verify-batching`: N worlds (seeds `seed`, `seed +
//! 1`, …) run at once with their calls batched, each frame compared with
//! the same world run alone, unbatched.
//!
//! Main types: [`VerifyRow`] (one player count's comparison) and
//! [`VerifyReport`] (every count, and the largest difference), from
//! [`verify_batching`].

use super::run::open_sessions;
use super::{PlayerBackends, PlayersOptions};
use crate::LabError;
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::time::Duration;
use wgraph_engine::batch::BatchPolicy;
use wgraph_engine::tensor::{DType, Tensor};
use wgraph_engine::world::WorldEvent;

/// One player count: batched frames against each world run alone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyRow {
    /// Worlds run at once.
    pub players: usize,
    /// Frames compared.
    pub frames: usize,
    /// Rows per batched call.
    pub mean_batch: f64,
    /// Every frame equal, bit for bit.
    pub bit_exact: bool,
    /// The largest absolute difference of a frame value.
    pub largest_difference: f64,
    /// Every world's frames were alike whatever its seed (so the order of
    /// the rows was not checked).
    pub alike: bool,
}

impl VerifyRow {
    /// The lines `bench --verify-batching` prints for this count.
    pub fn text(&self) -> String {
        let mut text = format!(
            "{} players, {} frames, mean batch {:.2}: {}\n",
            self.players,
            self.frames,
            self.mean_batch,
            if self.bit_exact {
                "batched frames equal each world run alone, bit for bit".to_string()
            } else {
                format!(
                    "largest difference from each world run alone {:.3e}",
                    self.largest_difference
                )
            }
        );
        if self.players > 1 && self.alike {
            text += "  (every world's frames are alike whatever its seed: the order of the rows was not checked)\n";
        }
        text
    }
}

/// Every count's comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    /// One row per player count.
    pub rows: Vec<VerifyRow>,
    /// The largest difference over every count.
    pub largest_difference: f64,
    /// Every frame of every count equal, bit for bit.
    pub bit_exact: bool,
}

impl VerifyReport {
    /// Whether batching changed frames by no more than `tolerance`.
    pub fn within(&self, tolerance: f64) -> bool {
        self.bit_exact || self.largest_difference <= tolerance
    }
}

/// Runs each count's worlds batched and each alone and compares every
/// frame; `row` is told each count's figures as they are measured. Fails
/// (a runtime error) when batching changed a frame by more than
/// `tolerance`.
pub fn verify_batching(
    options: &PlayersOptions,
    backends: &dyn PlayerBackends,
    tolerance: f64,
    row: &mut dyn FnMut(&VerifyRow),
) -> Result<VerifyReport, LabError> {
    let Some(mut policy) = options.batch.policy() else {
        return Err(LabError::Usage(
            "--verify-batching compares batched worlds: it needs --batch-across-players on or auto"
                .into(),
        ));
    };
    // Lock-step: every world's call waits for the others', so as many calls
    // as can be are fused (a check, not a timing).
    policy.wait = policy.wait.max(Duration::from_secs(1));
    let base_seed = options.seed.unwrap_or(0);
    let mut report = VerifyReport {
        rows: Vec::new(),
        largest_difference: 0.0,
        bit_exact: true,
    };
    for &n in &options.counts {
        let seeds: Vec<u64> = (0..n as u64).map(|i| base_seed.wrapping_add(i)).collect();
        let mut alone = Vec::with_capacity(n);
        for &seed in &seeds {
            let mut frames =
                frames_of(options, backends, &[seed], None).map_err(LabError::Runtime)?;
            alone.push(frames.swap_remove(0));
        }
        let together = frames_of(options, backends, &seeds, Some(policy.clone()))
            .map_err(LabError::Runtime)?;
        let mean_batch = policy.stats.summary().mean_batch();
        let mut diff = 0.0f64;
        let mut same = true;
        let mut frames = 0;
        // Worlds that all look alike would not show rows put back in the wrong order.
        let alike = alone.windows(2).all(|w| {
            w[0].len() == w[1].len() && w[0].iter().zip(&w[1]).all(|(a, b)| compare(a, b).1)
        });
        for (player, (a, b)) in alone.iter().zip(&together).enumerate() {
            if a.len() != b.len() {
                return Err(LabError::Runtime(format!(
                    "player {player} (seed {}) made {} frames batched and {} alone",
                    seeds[player],
                    b.len(),
                    a.len()
                )));
            }
            for (x, y) in a.iter().zip(b) {
                frames += 1;
                let (d, bits) = compare(x, y);
                diff = diff.max(d);
                same &= bits;
            }
        }
        let measured = VerifyRow {
            players: n,
            frames,
            mean_batch,
            bit_exact: same,
            largest_difference: diff,
            alike,
        };
        row(&measured);
        report.rows.push(measured);
        report.largest_difference = report.largest_difference.max(diff);
        report.bit_exact &= same;
    }
    if !report.within(tolerance) {
        return Err(LabError::Runtime(format!(
            "batching changed frames by {:.3e}, more than --tolerance {tolerance:e}",
            report.largest_difference
        )));
    }
    Ok(report)
}

/// The displayed frames of one world per seed, run at once on one model
/// cache (batched by `policy`, or not).
fn frames_of(
    options: &PlayersOptions,
    backends: &dyn PlayerBackends,
    seeds: &[u64],
    policy: Option<BatchPolicy>,
) -> Result<Vec<Vec<Tensor>>, String> {
    let (sessions, _) = open_sessions(options, backends, seeds.len(), Some(seeds), policy.clone())?;
    // Opened (their build-time calls made one by one, not counted): now
    // lock-step, counted afresh.
    if let Some(p) = &policy {
        p.min_calls.store(seeds.len(), Ordering::Relaxed);
        p.stats.reset();
    }
    let threads: Vec<_> = sessions
        .into_iter()
        .map(|mut session| {
            std::thread::spawn(move || {
                let mut frames = Vec::new();
                let end = session.run(&mut |event| {
                    if let WorldEvent::Frame { image, .. } = event {
                        frames.push(image.clone());
                    }
                });
                end.map(|_| frames).map_err(|e| e.to_string())
            })
        })
        .collect();
    let frames = threads
        .into_iter()
        .map(|t| {
            t.join()
                .map_err(|_| "a session's thread panicked".to_string())?
        })
        .collect();
    if let Some(p) = &policy {
        p.min_calls.store(1, Ordering::Relaxed);
    }
    frames
}

/// Largest absolute difference of two frames, and whether they are the same bits.
fn compare(a: &Tensor, b: &Tensor) -> (f64, bool) {
    let (Ok(a), Ok(b)) = (a.to_host(), b.to_host()) else {
        return (f64::INFINITY, false);
    };
    if a.shape() != b.shape() || a.dtype() != b.dtype() {
        return (f64::INFINITY, false);
    }
    let (Ok(x), Ok(y)) = (a.host(), b.host()) else {
        return (f64::INFINITY, false);
    };
    if x.to_le_bytes() == y.to_le_bytes() {
        return (0.0, true);
    }
    let values = |t: &Tensor| -> Vec<f64> {
        match t.dtype() {
            DType::F32 => t
                .host_f32()
                .map(|v| v.iter().map(|&e| f64::from(e)).collect()),
            DType::U8 => t
                .host_u8()
                .map(|v| v.iter().map(|&e| f64::from(e)).collect()),
            DType::F64 => t.host_f64().map(<[f64]>::to_vec),
            _ => Ok(Vec::new()),
        }
        .unwrap_or_default()
    };
    let (va, vb) = (values(&a), values(&b));
    if va.len() != a.len() {
        return (f64::INFINITY, false);
    }
    let d = va
        .iter()
        .zip(&vb)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f64::max);
    (d, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit-exact rows pass any tolerance; a difference passes only within it.
    #[test]
    fn tolerance_applies_only_to_rows_that_differ() {
        let row = VerifyRow {
            players: 2,
            frames: 4,
            mean_batch: 2.0,
            bit_exact: true,
            largest_difference: 0.0,
            alike: true,
        };
        assert!(row.text().contains("bit for bit"));
        assert!(row.text().contains("order of the rows was not checked"));
        let exact = VerifyReport {
            rows: vec![row],
            largest_difference: 0.0,
            bit_exact: true,
        };
        assert!(exact.within(0.0));
        let off = VerifyReport {
            largest_difference: 1e-4,
            bit_exact: false,
            ..exact
        };
        assert!(!off.within(1e-5) && off.within(1e-3));
    }
}
