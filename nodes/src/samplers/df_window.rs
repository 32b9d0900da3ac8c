//! `df_window`: diffusion forcing — Yan-Sim's shift-window denoising.
//!
//! A window of `frames` latents is in flight at staggered noise levels
//! σ₀ > σ₁ > … > σ_{W−1} (then 0): the newest frame at σ₀ (pure noise), the
//! oldest at σ_{W−1}. Each tick a fresh noise frame enters at σ₀ and **one**
//! denoiser call takes every frame of the window as a row of `x` (oldest
//! first, `t: f32[W]`); each row then takes the deterministic DDIM step to
//! the next level — in flow terms `x ← (1−σ_next)·x̂₀ + σ_next·ε̂`, DDIM with
//! η = 0 and the flow Euler step being the same update — and the oldest,
//! reaching σ = 0, leaves as the tick's output (its x̂₀). Every frame still
//! gets W denoiser evaluations, but one call per tick instead of W: what a
//! frame costs depends on how much cheaper a batch of W rows is than W calls.
//!
//! The levels are a VP model's `trailing` DDIM timesteps (a window of 4 visits
//! DDIM-4's 999, 749, 499, 249; a frame enters as DDIM's x_T = noise) or a
//! flow model's shifted schedule ([`super::flow_schedule`]), so on a model
//! that ignores its context each frame takes exactly DDIM's (flow Euler's)
//! path. On tick 0 the empty window fills in one tick:
//! W calls on 1, 2, …, W rows, the frames after the first starting from
//! `step_noise` (`[W−1, …noise]`) when wired, else the seeded RNG.
//!
//! The frames are chained through the denoiser's `chain` condition (the
//! previous frame): row k's context is row k−1's noisy latent, row 0's the
//! wired one (the last frame that left). A model trained with per-frame
//! noise levels (diffusion forcing) also reads the context's level (the
//! denoiser's `chain_level`). Every row sees the tick's conditions (the
//! current keys), so a key steers the frames still at high noise: the
//! frame leaving now has been conditioned on the last W ticks' keys.
//!
//! State: the W−1 frames in flight, oldest first, carried by hot reload
//! (while the window size and latent shape stay) and saved in snapshots.

use super::call::denoiser_call;
use super::step::{check_step_noise, latent_output, stochastic_inputs, wired_step_noise};
use super::{DENOISER, DenoiserCall, FlowCall, SHIFT};
use crate::common::*;
use std::collections::VecDeque;
use wgraph_kernels::host;

/// The `df_window` kind.
pub struct DfWindow;

const FRAMES: ParamSpec = ParamSpec::optional(
    "frames",
    ParamType::Int,
    ParamDefault::Int(4),
    "frames in flight = noise levels each frame visits (1..=64)",
);

impl NodeKind for DfWindow {
    fn name(&self) -> &'static str {
        "df_window"
    }
    fn summary(&self) -> &'static str {
        "diffusion-forcing window: `frames` latents at staggered noise levels, one batched denoiser call per tick"
    }
    fn params(&self) -> &'static [ParamSpec] {
        const PARAMS: &[ParamSpec] = &[FRAMES, SHIFT, DENOISER];
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let frames = cx.params.int("frames")?;
        let frames = usize::try_from(frames)
            .ok()
            .filter(|f| (1..=64).contains(f))
            .ok_or_else(|| {
                BuildError::param(
                    "frames",
                    format!("`frames` must be between 1 and 64, found {frames}"),
                )
            })?;
        let shift = finite_param(cx, "shift")?;
        if shift <= 0.0 {
            return Err(BuildError::param(
                "shift",
                format!("`shift` must be positive, found {shift}"),
            ));
        }
        Ok(Box::new(DfWindowNode {
            frames,
            shift,
            seed: crate::rng::mix(cx.settings.seed ^ crate::rng::hash_str(cx.name)),
            denoiser: cx.params.node_ref("denoiser")?,
            call: DenoiserCall::default(),
            levels: std::sync::OnceLock::new(),
        }))
    }
}

struct DfWindowNode {
    frames: usize,
    shift: f64,
    /// The RNG seed of the frames that fill an empty window.
    seed: u64,
    denoiser: String,
    call: DenoiserCall,
    /// The W + 1 levels (flow σ, ending at 0) and the entry scale of a noise
    /// frame, found from the denoiser at build time (in `infer`).
    levels: std::sync::OnceLock<(Vec<f64>, f64)>,
}

/// The frames in flight between ticks, oldest first (W−1 of them, or none
/// before the first tick).
#[derive(Default)]
struct Window {
    frames: VecDeque<Vec<f32>>,
}

impl DfWindowNode {
    /// One call on every frame in flight; each moves one level down. The
    /// frame reaching σ = 0 (only ever the oldest) is removed and returned.
    fn advance(
        &self,
        cx: &mut TickContext<'_>,
        call: &FlowCall,
        levels: &[f64],
        window: &mut VecDeque<Vec<f32>>,
        row_shape: &[usize],
    ) -> Result<Option<Vec<f32>>, NodeError> {
        let k = window.len();
        // Frame p (oldest first) is at level index k−1−p.
        let sigmas: Vec<f64> = (0..k).map(|p| levels[k - 1 - p]).collect();
        let mut shape = row_shape.to_vec();
        shape[0] = k;
        let x: Vec<f32> = window.iter().flatten().copied().collect();
        let (x0, eps) = call.denoise_rows(cx, &self.denoiser, &shape, &x, &sigmas)?;
        let row = x.len() / k;
        let mut left = None;
        for (p, frame) in window.iter_mut().enumerate() {
            let next = k - p;
            let (x0, eps) = (&x0[p * row..(p + 1) * row], &eps[p * row..(p + 1) * row]);
            if next == self.frames {
                left = Some(x0.to_vec());
                continue;
            }
            let s = levels[next];
            host::renoise(frame, x0, eps, s);
        }
        if left.is_some() {
            window.pop_front();
        }
        Ok(left)
    }
}

impl Node for DfWindowNode {
    fn inputs(&self) -> Vec<PortSpec> {
        stochastic_inputs()
    }
    fn outputs(&self) -> Vec<PortSpec> {
        latent_output()
    }
    fn calls(&self) -> Vec<CallSpec> {
        denoiser_call()
    }
    fn infer(
        &self,
        inputs: &[Option<ValueType>],
        calls: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        let noise = f32_in(inputs, 0)?;
        if noise.shape.first() != Some(&Dim::Known(1)) {
            return Err(TypeError::input(
                0,
                format!(
                    "`noise` must be one frame, f32[1, …] (the window stacks frames on the first axis), found {noise}"
                ),
            ));
        }
        check_step_noise(inputs, 1, self.frames.saturating_sub(1).max(1))?;
        // The widest call (W rows) is the one checked; smaller ones during
        // the first tick have the same types with fewer rows.
        let (types, call) = FlowCall::infer_callee(
            inputs,
            calls,
            0,
            &self.denoiser,
            "df_window",
            self.frames,
            false,
        )?;
        let levels = call.window_levels(self.frames, self.shift);
        let entry = call.entry_scale(levels[0]);
        // Build-time configuration found by inference; set once.
        let _ = self.levels.set((levels, entry));
        self.call.set(call);
        Ok(types)
    }
    fn init_state(&self) -> Result<State, NodeError> {
        Ok(Box::new(Window::default()))
    }
    fn carry(&self, old: &State, cx: &CarryContext) -> Carry {
        let held = old.downcast_ref::<Window>().map_or(0, |w| w.frames.len());
        if held == 0 {
            return Carry::Keep;
        }
        if cx.inputs_changed {
            return Carry::Reset(format!(
                "the latent changed shape; the {held} frames in flight are dropped and the window refills in one tick"
            ));
        }
        if held != self.frames - 1 {
            return Carry::Reset(format!(
                "the window now holds {} frames, not {}; the {held} frames in flight are dropped and the window refills in one tick",
                self.frames,
                held + 1
            ));
        }
        Carry::Keep
    }
    fn save_state(&self, state: &State) -> Result<Option<SavedState>, NodeError> {
        let window = state
            .downcast_ref::<Window>()
            .ok_or_else(|| NodeError::new("internal: node state has an unexpected type"))?;
        let mut saved = SavedState::new();
        let frames: Vec<&[f32]> = window.frames.iter().map(Vec::as_slice).collect();
        saved.put_f32_lists("frames", &frames);
        Ok(Some(saved))
    }
    fn load_state(&self, saved: &SavedState) -> Result<State, NodeError> {
        let frames = saved.f32_lists("frames")?;
        if !frames.is_empty() && frames.len() != self.frames - 1 {
            return Err(NodeError::new(format!(
                "the snapshot holds {} frames in flight, but a window of {} holds {}",
                frames.len(),
                self.frames,
                self.frames - 1
            )));
        }
        if frames.iter().any(|f| f.len() != frames[0].len()) {
            return Err(NodeError::new(
                "the snapshot's frames in flight differ in size",
            ));
        }
        Ok(Box::new(Window {
            frames: frames.into(),
        }))
    }
    fn eval(
        &self,
        state: &mut State,
        inputs: &[Option<Value>],
        cx: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        let noise = tensor_arg(inputs, 0)?;
        let wired = wired_step_noise(inputs);
        let call = self.call.get();
        let (levels, entry) = self.levels.get().ok_or_else(|| {
            NodeError::new("internal: df_window ran before its types were checked")
        })?;
        let (levels, entry) = (levels.as_slice(), *entry);
        let window = &mut state_mut::<Window>(state)?.frames;
        let len = noise.len();
        if window.iter().any(|f| f.len() != len) {
            return Err(NodeError::new(format!(
                "the frames in flight have {} values but `noise` is {}",
                window.front().map_or(0, Vec::len),
                noise.tensor_type()
            )));
        }
        let enter =
            |v: &[f32]| -> Vec<f32> { v.iter().map(|&n| (f64::from(n) * entry) as f32).collect() };
        window.push_back(enter(noise.host_f32()?));
        let mut extra = 0;
        let mut frame = Vec::new();
        loop {
            if let Some(x0) = self.advance(cx, call, levels, window, noise.shape())? {
                return f32_out(noise.shape(), x0);
            }
            // Filling an empty window (tick 0, or after a reset): another
            // frame enters at the top level.
            super::step::step_noise(wired, self.seed, cx.tick, extra, &mut frame, len)?;
            window.push_back(enter(&frame));
            extra += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::*;
    use crate::samplers::test_support::PerfectFlow;
    use wgraph_engine::params::ParamValue as P;
    use wgraph_engine::settings::Settings;

    fn node(frames: i64) -> Built {
        let dir = tempfile::tempdir().unwrap();
        build(
            &DfWindow,
            vec![
                ("frames", P::Int(frames)),
                ("denoiser", P::NodeRef("dit".into())),
            ],
            dir.path(),
        )
        .unwrap()
    }

    /// With a perfect denoiser every frame lands on x₀; tick 0 makes W calls
    /// on 1..=W rows, every later tick one call on W rows, at the staggered
    /// levels.
    #[test]
    fn one_call_per_tick_after_the_first_at_staggered_levels() {
        let x0 = [0.5_f32, -0.25];
        let mut flow = PerfectFlow::new(&x0);
        let n = node(3);
        n.infer(
            &[Some(ValueType::tensor(DType::F32, &[1, 2])), None],
            &mut flow,
        )
        .unwrap();
        let settings = Settings::default();
        let mut state = n.init_state().unwrap();
        for tick in 0..4 {
            let mut cx = TickContext::new(tick, &settings, &mut flow);
            let noise = Tensor::from_f32(&[1, 2], vec![1.0, -1.0]).unwrap();
            let out = n
                .eval(&mut state, &[Some(noise.into()), None], &mut cx)
                .unwrap();
            let got = out[0].as_tensor().unwrap().host_f32().unwrap().to_vec();
            assert!((got[0] - x0[0]).abs() < 1e-5 && (got[1] - x0[1]).abs() < 1e-5);
        }
        // Tick 0: rows 1, 2, 3; ticks 1..3: 3 rows each.
        let rows: Vec<usize> = flow.xs.iter().map(|x| x.len() / 2).collect();
        assert_eq!(rows, [1, 2, 3, 3, 3, 3]);
        // A full call's rows are at 1/3, 2/3, 1 (oldest first): t = 1000σ.
        let last = &flow.ts[flow.ts.len() - 3..];
        assert!((last[0] - 1000.0 / 3.0).abs() < 1e-2, "{last:?}");
        assert!((last[2] - 1000.0).abs() < 1e-2, "{last:?}");
    }

    #[test]
    fn frames_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        for bad in [0, 65] {
            let err = build(
                &DfWindow,
                vec![
                    ("frames", P::Int(bad)),
                    ("denoiser", P::NodeRef("d".into())),
                ],
                dir.path(),
            )
            .err()
            .unwrap();
            assert!(err.to_string().contains("between 1 and 64"), "{err}");
        }
    }
}
