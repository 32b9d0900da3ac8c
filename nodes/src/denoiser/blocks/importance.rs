//! Yume's eq. 14 block importance (`importance = true`, which `wgraph
//! blocks` sets): [`BlockImportance`], the running sums a
//! `block_denoiser`'s state keeps, [`block_importance`] to read them from
//! the state, and the importance-mode run of a `BlockNetwork` — every call
//! in full, the run `cache_steps` calls after each full one also scoring
//! each block ablated alone (replaced by its bf16 residual from that full
//! run) by the MSE of the output.

use super::{BlockNetwork, BlockState, Slot};
use crate::common::*;
use crate::denoiser::DenoiserState;

/// Running sums of Yume's eq. 14 importance: per block, the MSE of the
/// denoiser's output with that block alone replaced by its cached residual
/// against the real output, added once per measured segment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BlockImportance {
    /// Sum of the MSE scores, per block.
    pub sums: Vec<f64>,
    /// Segments measured (the same for every block).
    pub segments: u64,
}

impl BlockImportance {
    /// The mean score of each block (`None` before any segment).
    pub fn scores(&self) -> Option<Vec<f64>> {
        (self.segments > 0).then(|| self.sums.iter().map(|s| s / self.segments as f64).collect())
    }
}

/// The importance sums a `block_denoiser` with `importance = true` has
/// measured so far, from its state (`Runner::inspect_state`); `None` for the
/// state of any other kind.
pub fn block_importance(state: &State) -> Option<&BlockImportance> {
    state
        .downcast_ref::<DenoiserState>()?
        .net
        .downcast_ref::<BlockState>()
        .map(|s| &s.importance)
}

impl BlockNetwork {
    /// A run in importance mode: in full; a full run of the segment stores
    /// every block's residual, the run `cache_steps` calls after it
    /// measures.
    pub(super) fn run_importance(
        &self,
        (slot, importance): (&mut Slot, &mut BlockImportance),
        call: u64,
        mut h: Tensor,
        embed: (&[Tensor], &[Tensor]),
        rows: usize,
    ) -> Result<Tensor, NodeError> {
        let all = vec![true; self.blocks.len()];
        let since = match slot.age(call) {
            Some(a) if (1..=self.cache_steps as u64).contains(&a) && slot.fits(&all, h.shape()) => {
                a
            }
            _ => {
                slot.full_at = Some(call);
                0
            }
        };
        let measure = since == self.cache_steps as u64;
        let mut block_inputs = Vec::with_capacity(if measure { self.blocks.len() } else { 0 });
        for (i, block) in self.blocks.iter().enumerate() {
            let out = Self::run_block(block, &h, embed, rows)?;
            if since == 0 {
                slot.residuals[i].store(h.shape(), h.host_f32()?, out.host_f32()?);
            }
            if measure {
                block_inputs.push(h);
            }
            h = out;
        }
        let out = Self::run_part(&self.head, &h, embed, rows)?;
        if measure {
            let reference = out.host_f32()?;
            for (i, before) in block_inputs.iter().enumerate() {
                let ablated = slot.residuals[i].apply(before)?;
                let y = self.finish_from(i + 1, ablated, embed, rows)?;
                let y = y.host_f32()?;
                if y.len() != reference.len() {
                    return Err(NodeError::new(format!(
                        "importance: the output with block {i} ablated has {} values, the real one {}",
                        y.len(),
                        reference.len()
                    )));
                }
                let mse = y
                    .iter()
                    .zip(reference)
                    .map(|(a, b)| {
                        let d = f64::from(*a) - f64::from(*b);
                        d * d
                    })
                    .sum::<f64>()
                    / reference.len().max(1) as f64;
                importance.sums[i] += mse;
            }
            importance.segments += 1;
        }
        Ok(out)
    }
}
