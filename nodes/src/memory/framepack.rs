//! `framepack`: Yume's FramePack-like long-video memory — older latents are
//! compressed harder, so the context stays a fixed size however long the
//! run.
//!
//! Yume's code packs the history with patchify kernels growing with age
//! (the first frame, then 8×8, 4×4, 2×2 tiers toward the present; its paper:
//! t−1..t−2 at 2×2, t−3..t−6 at 4×4, t−7..t−23 at 8×8, the initial frame at
//! 2×2). Scaled to small latents, this node keeps four tiers, each latent
//! average-pooled over k×k spatial blocks:
//!
//! | tier | latents | pooling | tokens |
//! |---|---|---|---|
//! | first frame | the latent seen at tick 0 | 2×2 | H/2·W/2 |
//! | old | the 4 before the middle tier (t−3..t−6) | 4×4 | 4·H/4·W/4 |
//! | middle | the 2 before the newest (t−1, t−2) | 2×2 | 2·H/2·W/2 |
//! | newest | this tick's `latent` (t) | 1×1 | H·W |
//!
//! Output `memory` is f32[1, M, C]: the tiers in that order (oldest first,
//! within a tier oldest first), each latent's tokens in row-major spatial
//! order, a token being the channel vector of one pooled block. Latents not
//! seen yet (early ticks) are zero tokens. For C = 16, H = W = 4:
//! M = 4 + 4 + 8 + 16 = 32.
//!
//! The state keeps the first latent and the 6 latents before the newest —
//! only what the tiers use — so memory and per-tick cost do not grow with
//! the run.

use super::{carry_memory, load_shape, memory_latent_dims, save_shape};
use crate::common::*;
use std::collections::VecDeque;
use wgraph_kernels::host::{avg_pool2d, avg_pool2d_len};

/// The `framepack` kind.
pub struct FramePack;

impl NodeKind for FramePack {
    fn name(&self) -> &'static str {
        "framepack"
    }
    fn summary(&self) -> &'static str {
        "Yume's FramePack-like memory: past latents as tokens, older ones pooled harder (fixed size)"
    }
    fn params(&self) -> &'static [ParamSpec] {
        &[]
    }
    fn build(&self, _: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        Ok(Box::new(FramePackNode))
    }
}

/// The middle tier: this many latents before the newest, pooled 2×2.
const MIDDLE: usize = 2;
/// The old tier: this many before those, pooled 4×4.
const OLD: usize = 4;

/// The number of memory tokens for an H×W latent (H, W divisible by 4).
pub fn framepack_tokens(h: usize, w: usize) -> usize {
    let (q2, q4) = ((h / 2) * (w / 2), (h / 4) * (w / 4));
    q2 + OLD * q4 + MIDDLE * q2 + h * w
}

struct FramePackNode;

/// The history: the first latent, and the latents before the newest,
/// newest first (at most `MIDDLE + OLD`).
#[derive(Default)]
struct History {
    shape: Option<(usize, usize, usize)>,
    first: Option<Vec<f32>>,
    recent: VecDeque<Vec<f32>>,
}

/// Appends the tokens of `latent` ([C, H, W], or zeros when `None`)
/// average-pooled over k×k blocks.
fn push_pooled(
    out: &mut Vec<f32>,
    latent: Option<&[f32]>,
    (c, h, w): (usize, usize, usize),
    k: usize,
) {
    let start = out.len();
    out.resize(start + avg_pool2d_len((c, h, w), k), 0.0);
    if let Some(l) = latent {
        avg_pool2d(&mut out[start..], l, (c, h, w), k);
    }
}

impl Node for FramePackNode {
    fn inputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::wired("latent")]
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::output("memory")]
    }
    fn infer(
        &self,
        inputs: &[Option<ValueType>],
        _: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        let want = "f32[1, C, H, W] latent with H and W known multiples of 4";
        let t = tensor_in(inputs, 0, want, |t| {
            t.dtype == DType::F32
                && t.shape.len() == 4
                && matches!(t.shape[0], Dim::Known(1) | Dim::Sym(_))
                && [&t.shape[2], &t.shape[3]]
                    .iter()
                    .all(|d| matches!(d, Dim::Known(n) if n % 4 == 0 && *n > 0))
        })?;
        let (Dim::Known(h), Dim::Known(w)) = (&t.shape[2], &t.shape[3]) else {
            return Err(TypeError::input(0, format!("expected {want}, found {t}")));
        };
        Ok(vec![ValueType::Tensor(TensorType {
            dtype: DType::F32,
            shape: vec![
                Dim::Known(1),
                Dim::Known(framepack_tokens(*h, *w)),
                t.shape[1].clone(),
            ],
        })])
    }
    fn init_state(&self) -> Result<State, NodeError> {
        Ok(Box::new(History::default()))
    }
    fn carry(&self, old: &State, cx: &CarryContext) -> Carry {
        let held = old
            .downcast_ref::<History>()
            .map_or(0, |h| h.recent.len() + usize::from(h.first.is_some()));
        carry_memory(held, cx)
    }
    fn save_state(&self, state: &State) -> Result<Option<SavedState>, NodeError> {
        let hist = state
            .downcast_ref::<History>()
            .ok_or_else(|| NodeError::new("internal: node state has an unexpected type"))?;
        let mut saved = SavedState::new();
        save_shape(&mut saved, hist.shape);
        if let Some(first) = &hist.first {
            saved.put_f32s("first", first);
        }
        let recent: Vec<&[f32]> = hist.recent.iter().map(Vec::as_slice).collect();
        saved.put_f32_lists("recent", &recent);
        Ok(Some(saved))
    }
    fn load_state(&self, saved: &SavedState) -> Result<State, NodeError> {
        let first = if saved.has("first") {
            Some(saved.f32s("first")?)
        } else {
            None
        };
        let recent = saved.f32_lists("recent")?;
        if recent.len() > MIDDLE + OLD {
            return Err(NodeError::new(format!(
                "the snapshot holds {} recent latents, more than {}",
                recent.len(),
                MIDDLE + OLD
            )));
        }
        let all: Vec<&[f32]> = first.iter().chain(&recent).map(Vec::as_slice).collect();
        let shape = load_shape(saved, &all)?;
        Ok(Box::new(History {
            shape,
            first,
            recent: recent.into(),
        }))
    }
    fn eval(
        &self,
        state: &mut State,
        inputs: &[Option<Value>],
        _: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        let hist = state_mut::<History>(state)?;
        let latent = tensor_arg(inputs, 0)?;
        let dims = memory_latent_dims(latent, 4, &mut hist.shape)?;
        let data = latent.host_f32()?;
        let first = hist.first.get_or_insert_with(|| data.to_vec());
        let (c, h, w) = dims;
        let mut out = Vec::with_capacity(framepack_tokens(h, w) * c);
        push_pooled(&mut out, Some(first), dims, 2);
        // Oldest first: recent[MIDDLE + OLD - 1] .. recent[0].
        for age in (MIDDLE..MIDDLE + OLD).rev() {
            push_pooled(&mut out, hist.recent.get(age).map(Vec::as_slice), dims, 4);
        }
        for age in (0..MIDDLE).rev() {
            push_pooled(&mut out, hist.recent.get(age).map(Vec::as_slice), dims, 2);
        }
        push_pooled(&mut out, Some(data), dims, 1);
        hist.recent.push_front(data.to_vec());
        hist.recent.truncate(MIDDLE + OLD);
        f32_out(&[1, framepack_tokens(h, w), c], out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::*;

    /// Latent of tick `t`: value 100·t + 10·ch + 4·y + x at (ch, y, x).
    fn latent(t: u64, c: usize, h: usize, w: usize) -> Value {
        let data = (0..c * h * w)
            .map(|i| {
                let (ch, y, x) = (i / (h * w), i / w % h, i % w);
                100.0 * t as f32 + 10.0 * ch as f32 + 4.0 * y as f32 + x as f32
            })
            .collect();
        t32(&[1, c, h, w], data)
    }

    #[test]
    fn tiers_pool_harder_with_age() {
        let dir = tempfile::tempdir().unwrap();
        let node = build(&FramePack, vec![], dir.path()).unwrap();
        let out = run(&*node, 8, |t| vec![latent(t, 2, 4, 4)]).unwrap();
        // Tick 0: only the first frame (2×2) and the newest (1×1) are there.
        let m0 = f32s(&out[0].0, 0);
        assert_eq!(m0.len(), 32 * 2);
        // First frame, block (0, 0): mean of x, y in 0..2 = 2.5 (+ 10·ch).
        assert_eq!(&m0[..4], &[2.5, 12.5, 4.5, 14.5]);
        // Old and middle tiers are zeros at tick 0; the newest is the raw latent.
        assert!(m0[8..32].iter().all(|&v| v == 0.0));
        assert_eq!(&m0[32..36], &[0.0, 10.0, 1.0, 11.0]);
        // Tick 7: old tier = ticks 1..4 (4×4 mean = 7.5), middle = 5, 6.
        let m7 = f32s(&out[7].0, 0);
        let tokens: Vec<&[f32]> = m7.chunks(2).collect();
        assert_eq!(tokens[0], [2.5, 12.5], "first frame stays tick 0");
        for (k, t) in (1..=4).enumerate() {
            let v = 100.0 * t as f32 + 7.5;
            assert_eq!(tokens[4 + k], [v, v + 10.0], "old tier tick {t}");
        }
        assert_eq!(
            tokens[8],
            [502.5, 512.5],
            "middle tier tick 5, block (0, 0)"
        );
        assert_eq!(
            tokens[11],
            [512.5, 522.5],
            "middle tier tick 5, block (1, 1)"
        );
        assert_eq!(tokens[12], [602.5, 612.5], "middle tier tick 6");
        assert_eq!(tokens[16], [700.0, 710.0], "newest, (0, 0)");
        assert_eq!(tokens[31], [715.0, 725.0], "newest, (3, 3)");
    }

    #[test]
    fn fixed_size_whatever_the_history() {
        let dir = tempfile::tempdir().unwrap();
        let node = build(&FramePack, vec![], dir.path()).unwrap();
        let out = run(&*node, 101, |t| vec![latent(t, 16, 4, 4)]).unwrap();
        let shape = |t: usize| out[t].0[0].as_tensor().unwrap().shape().to_vec();
        assert_eq!(shape(1), [1, 32, 16]);
        assert_eq!(shape(100), shape(1));
        assert_eq!(framepack_tokens(8, 12), 24 + 4 * 6 + 2 * 24 + 96);
        let f = |s: &[usize]| ValueType::tensor(DType::F32, s);
        assert_eq!(
            infer(&*node, &[f(&[1, 16, 4, 4])]).unwrap(),
            [f(&[1, 32, 16])]
        );
        let e = infer(&*node, &[f(&[1, 16, 6, 4])]).unwrap_err();
        assert_eq!(
            e.message,
            "expected f32[1, C, H, W] latent with H and W known multiples of 4, found f32[1, 16, 6, 4]"
        );
        // A latent changing shape mid-run is an error, not a panic.
        let e = run(&*node, 2, |t| vec![latent(0, 1, 4, 4 * (t as usize + 1))]);
        assert!(e.is_err());
    }
}
