//! `tscm`: Yume 1.5's temporal-spatial compressed memory (TSCM) — a fixed
//! number of past latents, chosen at random, patchified at a high ratio,
//! so the per-step cost stays flat as the history grows.
//!
//! - History: a ring buffer of the last `capacity` latents (this tick's
//!   included); older ones roll out, so a run of any length is fine.
//! - Temporal compression: each tick uses the newest latent plus
//!   `samples − 1` others drawn uniformly without replacement from the rest
//!   of the history, in time order. The draw comes from the counter-based
//!   RNG keyed by the world seed, the node's name and the tick: the same on
//!   every run, and independent of the number of workers.
//! - Spatial compression: each chosen latent is patchified p×p, channels
//!   packed into the token: token (i, j) of a [C, H, W] latent holds
//!   `x[c, i·p + dy, j·p + dx]` at index `c·p² + dy·p + dx` (einops
//!   `c (h p1) (w p2) -> (h w) (c p1 p2)`), tokens in row-major order.
//! - Output `memory`: f32[1, samples·(H/p)·(W/p), C·p²], the chosen latents
//!   oldest first and the newest last; with fewer than `samples` latents in
//!   the history, the missing (oldest) slots are zeros. A `capacity` below
//!   `samples` keeps them zeros for good: `capacity = 1` is the memory-less
//!   variant of a graph (the newest latent alone, the same output shape), the
//!   baseline a memory's benefit is measured against.
//!
//! Yume 1.5 then compresses channels (to 96) and fuses the memory by linear
//! attention inside the DiT; that part belongs to the model.

use super::{carry_memory, load_shape, memory_latent_dims, save_shape};
use crate::common::*;
use crate::rng::{Stream, hash_str, mix};
use std::collections::VecDeque;
use wgraph_kernels::host::{patchify, patchify_len};

/// The `tscm` kind.
pub struct Tscm;

impl NodeKind for Tscm {
    fn name(&self) -> &'static str {
        "tscm"
    }
    fn summary(&self) -> &'static str {
        "Yume 1.5's TSCM memory: random temporal sampling of past latents + high-ratio patchify (fixed size)"
    }
    fn params(&self) -> &'static [ParamSpec] {
        const PARAMS: &[ParamSpec] = &[
            ParamSpec::optional(
                "samples",
                ParamType::Int,
                ParamDefault::Int(8),
                "latents per tick: the newest plus samples-1 drawn at random from the history (1 to 65536); slots the history cannot fill are zeros",
            ),
            ParamSpec::optional(
                "capacity",
                ParamType::Int,
                ParamDefault::Int(256),
                "history length in latents, the newest included; older ones roll out (1 to 65536; 1 = memory-less)",
            ),
            ParamSpec::optional(
                "patch",
                ParamType::Int,
                ParamDefault::Int(2),
                "patch size p: p×p positions become one token of C·p² channels",
            ),
        ];
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let int = |name: &str, lo: usize, hi: usize, what: &str| {
            let v = cx.params.int(name)?;
            usize::try_from(v)
                .ok()
                .filter(|v| (lo..=hi).contains(v))
                .ok_or_else(|| {
                    BuildError::param(name, format!("`{name}` must be {what}, found {v}"))
                })
        };
        let capacity = int("capacity", 1, 65_536, "between 1 and 65536")?;
        let samples = int("samples", 1, 65_536, "between 1 and 65536")?;
        let patch = int("patch", 1, 64, "between 1 and 64")?;
        Ok(Box::new(TscmNode {
            samples,
            capacity,
            patch,
            seed: mix(cx.settings.seed ^ hash_str(cx.name)),
        }))
    }
}

struct TscmNode {
    samples: usize,
    capacity: usize,
    patch: usize,
    seed: u64,
}

/// The ring buffer (oldest first) and the latent shape it holds.
#[derive(Default)]
struct History {
    shape: Option<(usize, usize, usize)>,
    latents: VecDeque<Vec<f32>>,
}

/// `k` distinct indices out of `0..n`, uniformly (Floyd's algorithm),
/// sorted; `stream` supplies the randomness.
fn sample_indices(n: usize, k: usize, stream: Stream) -> Vec<usize> {
    let k = k.min(n);
    let mut chosen = Vec::with_capacity(k);
    for (draw, j) in (n - k..n).enumerate() {
        let t = (stream.bits(draw as u64) % (j as u64 + 1)) as usize;
        chosen.push(if chosen.contains(&t) { j } else { t });
    }
    chosen.sort_unstable();
    chosen
}

/// Appends the p×p patch tokens of a [C, H, W] latent.
fn push_patches(out: &mut Vec<f32>, l: &[f32], dims: (usize, usize, usize), p: usize) {
    let start = out.len();
    out.resize(start + patchify_len(dims, p), 0.0);
    patchify(&mut out[start..], l, dims, p);
}

impl TscmNode {
    fn tokens(&self, h: usize, w: usize) -> usize {
        self.samples * (h / self.patch) * (w / self.patch)
    }
}

impl Node for TscmNode {
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
        let p = self.patch;
        let want = format!("f32[1, C, H, W] latent with H and W known multiples of {p} (`patch`)");
        let t = tensor_in(inputs, 0, &want, |t| {
            t.dtype == DType::F32
                && t.shape.len() == 4
                && matches!(t.shape[0], Dim::Known(1) | Dim::Sym(_))
                && [&t.shape[2], &t.shape[3]]
                    .iter()
                    .all(|d| matches!(d, Dim::Known(n) if n % p == 0 && *n > 0))
        })?;
        let (Dim::Known(h), Dim::Known(w)) = (&t.shape[2], &t.shape[3]) else {
            return Err(TypeError::input(0, format!("expected {want}, found {t}")));
        };
        let channels = match &t.shape[1] {
            Dim::Known(c) => Dim::Known(c * p * p),
            Dim::Sym(s) => Dim::Sym(format!("{s}*{}", p * p)),
        };
        Ok(vec![ValueType::Tensor(TensorType {
            dtype: DType::F32,
            shape: vec![Dim::Known(1), Dim::Known(self.tokens(*h, *w)), channels],
        })])
    }
    fn init_state(&self) -> Result<State, NodeError> {
        Ok(Box::new(History::default()))
    }
    fn carry(&self, old: &State, cx: &CarryContext) -> Carry {
        // The history holds raw latents: any parameter may change (a lower
        // capacity rolls the oldest out on the next tick); a new latent shape
        // cannot continue it.
        let held = old.downcast_ref::<History>().map_or(0, |h| h.latents.len());
        carry_memory(held, cx)
    }
    fn save_state(&self, state: &State) -> Result<Option<SavedState>, NodeError> {
        let hist = state
            .downcast_ref::<History>()
            .ok_or_else(|| NodeError::new("internal: node state has an unexpected type"))?;
        let mut saved = SavedState::new();
        save_shape(&mut saved, hist.shape);
        let latents: Vec<&[f32]> = hist.latents.iter().map(Vec::as_slice).collect();
        saved.put_f32_lists("latents", &latents);
        Ok(Some(saved))
    }
    fn load_state(&self, saved: &SavedState) -> Result<State, NodeError> {
        let latents = saved.f32_lists("latents")?;
        let all: Vec<&[f32]> = latents.iter().map(Vec::as_slice).collect();
        let shape = load_shape(saved, &all)?;
        Ok(Box::new(History {
            shape,
            latents: latents.into(),
        }))
    }
    fn eval(
        &self,
        state: &mut State,
        inputs: &[Option<Value>],
        cx: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        let hist = state_mut::<History>(state)?;
        let latent = tensor_arg(inputs, 0)?;
        let p = self.patch;
        let dims = memory_latent_dims(latent, p, &mut hist.shape)?;
        let data = latent.host_f32()?;
        // Reuse the buffer that rolls out, so a full ring allocates nothing
        // (a loop: a reload may have lowered the capacity).
        let mut slot = Vec::new();
        while hist.latents.len() >= self.capacity {
            slot = hist.latents.pop_front().unwrap_or_default();
        }
        slot.clear();
        slot.extend_from_slice(data);
        hist.latents.push_back(slot);

        let (c, h, w) = dims;
        let older = hist.latents.len() - 1;
        let picked = sample_indices(older, self.samples - 1, Stream::new(self.seed, cx.tick));
        let per = (h / p) * (w / p) * c * p * p;
        let mut out = Vec::with_capacity(self.samples * per);
        out.resize((self.samples - 1 - picked.len()) * per, 0.0);
        for &i in picked.iter().chain([older].iter()) {
            push_patches(&mut out, &hist.latents[i], dims, p);
        }
        f32_out(&[1, self.tokens(h, w), c * p * p], out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::*;
    use wgraph_engine::params::ParamValue as P;

    /// A latent whose every value is `t` except (0, 0, 1) = −t, so order
    /// and patch packing show.
    fn latent(t: u64, c: usize, h: usize, w: usize) -> Value {
        let mut d = vec![t as f32; c * h * w];
        d[1] = -(t as f32);
        t32(&[1, c, h, w], d)
    }

    fn params(samples: i64, capacity: i64) -> Vec<(&'static str, P)> {
        vec![("samples", P::Int(samples)), ("capacity", P::Int(capacity))]
    }

    /// The tick each token block of an output came from (0 for zero padding
    /// and tick 0, which the test does not tell apart).
    fn blocks(out: &[Value], per: usize) -> Vec<f32> {
        f32s(out, 0).chunks(per).map(|b| b[0]).collect()
    }

    #[test]
    fn shape_padding_order_and_patches() {
        let dir = tempfile::tempdir().unwrap();
        let node = build(&Tscm, vec![], dir.path()).unwrap();
        let out = run(&*node, 12, |t| vec![latent(t + 1, 16, 4, 4)]).unwrap();
        let m = out[0].0[0].as_tensor().unwrap();
        assert_eq!(m.shape(), [1, 32, 64]);
        let per = 4 * 64;
        // Tick 2: three latents, the first 5 slots zero.
        assert_eq!(blocks(&out[2].0, per), [0., 0., 0., 0., 0., 1., 2., 3.]);
        // Tick 11: 8 of 12, in time order, the newest last.
        let b = blocks(&out[11].0, per);
        assert_eq!(b[7], 12.0);
        assert!(b.windows(2).all(|w| w[0] < w[1]), "{b:?}");
        // Patch packing: token 0 of the newest holds channel 0's 2×2 patch
        // (x[0,0,0], x[0,0,1], x[0,1,0], x[0,1,1]) first.
        let data = f32s(&out[11].0, 0);
        assert_eq!(&data[7 * per..7 * per + 5], &[12., -12., 12., 12., 12.]);
        let f = |s: &[usize]| ValueType::tensor(DType::F32, s);
        assert_eq!(
            infer(&*node, &[f(&[1, 16, 4, 4])]).unwrap(),
            [f(&[1, 32, 64])]
        );
        let e = infer(&*node, &[f(&[1, 16, 5, 4])]).unwrap_err();
        assert_eq!(
            e.message,
            "expected f32[1, C, H, W] latent with H and W known multiples of 2 (`patch`), found f32[1, 16, 5, 4]"
        );
    }

    #[test]
    fn deterministic_and_rolling_past_capacity() {
        let dir = tempfile::tempdir().unwrap();
        let go = || {
            let node = build(&Tscm, params(4, 16), dir.path()).unwrap();
            run(&*node, 300, |t| vec![latent(t + 1, 2, 2, 2)]).unwrap()
        };
        let (a, b) = (go(), go());
        let per = 2 * 4;
        let mut draws = std::collections::BTreeSet::new();
        for t in 0..300 {
            assert_eq!(a[t].0, b[t].0, "tick {t} differs between runs");
            let blk = blocks(&a[t].0, per);
            assert_eq!(blk[3], t as f32 + 1.0, "the newest is always there");
            if t >= 20 {
                // Only the last 16 latents are left to draw from.
                assert!(
                    blk[..3].iter().all(|&v| v >= t as f32 - 14.0),
                    "{t} {blk:?}"
                );
                draws.insert(blk[..3].iter().map(|&v| v as i64).collect::<Vec<_>>());
            }
        }
        assert!(draws.len() > 100, "the draw varies by tick");
        let node = build(&Tscm, vec![], dir.path()).unwrap();
        let m = run(&*node, 3, |t| vec![latent(t, 16, 4, 4)]).unwrap();
        assert_eq!(m[2].0[0].as_tensor().unwrap().shape(), [1, 32, 64]);
    }

    #[test]
    fn capacity_one_keeps_only_the_newest_latent() {
        let dir = tempfile::tempdir().unwrap();
        let node = build(&Tscm, params(4, 1), dir.path()).unwrap();
        let out = run(&*node, 12, |t| vec![latent(t + 1, 2, 2, 2)]).unwrap();
        let per = 2 * 4;
        for (t, (vals, _)) in out.iter().enumerate() {
            let blk = blocks(vals, per);
            assert_eq!(blk[3], t as f32 + 1.0, "tick {t}: the newest is last");
            assert!(
                f32s(vals, 0)[..3 * per].iter().all(|&v| v == 0.0),
                "tick {t}: {blk:?}"
            );
        }
    }

    #[test]
    fn sampling_is_uniform_and_build_checks() {
        let mut counts = [0usize; 10];
        for s in 0..20_000 {
            let idx = sample_indices(10, 3, Stream::new(1, s));
            assert_eq!(idx.len(), 3);
            assert!(idx.windows(2).all(|w| w[0] < w[1]));
            idx.iter().for_each(|&i| counts[i] += 1);
        }
        // Each index is picked with probability 3/10: 6000 ± a few %.
        assert!(
            counts.iter().all(|&c| (5700..6300).contains(&c)),
            "{counts:?}"
        );
        assert_eq!(sample_indices(2, 5, Stream::new(1, 0)), [0, 1]);
        let dir = tempfile::tempdir().unwrap();
        for (p, name) in [
            (params(0, 4), "samples"),
            (params(65_537, 4), "samples"),
            (params(1, 0), "capacity"),
            (vec![("patch", P::Int(0))], "patch"),
        ] {
            let e = build(&Tscm, p, dir.path()).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(name), "{}", e.message);
        }
    }
}
