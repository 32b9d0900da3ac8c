//! The sampler core: a sampler is its step rule. Like k-diffusion's
//! `sample_euler(model, x, sigmas)`, a [`StepRule`] gets the tick's noise
//! and a [`Sampling`] handle — the denoiser at a flow level
//! ([`Sampling::denoise`]), the step noise ([`Sampling::step_noise`]) — and
//! returns the latent. [`Sampler`] is the node around it, the same for
//! every such sampler: the `noise` input (and `step_noise`, for a rule that
//! draws noise), the `latent` output, the `@denoiser(x, t)` callable, the
//! build-time checks, and the call chosen from what the denoiser predicts.
//!
//! Step noise comes from the seeded RNG or, when wired, from the sampler's
//! `step_noise` input (one tensor per draw, stacked on a leading axis), so a
//! reference can replay exact noise.

use super::call::{DenoiserCall, FlowCall, denoiser_call};
use super::diffusion::Readout;
use super::schedule::{NoiseModel, Schedule};
use crate::common::*;
use crate::rng::{Stream, hash_str, mix};

/// A sampler's own part: what it does in a tick between the noise and the
/// latent. The rest of the node is [`Sampler`]'s.
pub(crate) trait StepRule: Send + Sync + 'static {
    /// Whether a denoiser that declares no prediction is read as ε unless
    /// its output is named `velocity` (ddim, on a VP schedule of its own);
    /// otherwise its output must be named `velocity`.
    const EPSILON_OK: bool = false;

    /// The kind's name, for messages.
    fn kind(&self) -> &'static str;

    /// A build-time check against the denoiser's noise levels (at `check`).
    fn check(&self, _model: &NoiseModel) -> Result<(), TypeError> {
        Ok(())
    }

    /// How many step-noise tensors a tick draws — the optional
    /// `step_noise` input must hold that many — or `None` for a
    /// deterministic sampler, which has no such input.
    fn noise_draws(&self) -> Option<usize>;

    /// One tick: from the `noise` input's values `x` to the output latent.
    fn sample(&self, m: &mut Sampling<'_, '_>, x: Vec<f32>) -> Result<Vec<f32>, NodeError>;
}

/// What a step rule samples with during a tick.
pub(crate) struct Sampling<'a, 'cx> {
    cx: &'a mut TickContext<'cx>,
    call: &'a FlowCall,
    denoiser: &'a str,
    shape: &'a [usize],
    wired: Option<&'a Tensor>,
    seed: u64,
}

impl Sampling<'_, '_> {
    /// The denoiser at flow level σ on `x` (see [`FlowCall::denoise`]):
    /// its (x₀, ε) estimates.
    pub(crate) fn denoise(
        &mut self,
        x: &[f32],
        sigma: f64,
    ) -> Result<(Vec<f32>, Vec<f32>), NodeError> {
        self.call
            .denoise(self.cx, self.denoiser, self.shape, x, sigma)
    }

    /// The model's noise levels (flow, or its VP table).
    pub(crate) fn model(&self) -> &NoiseModel {
        self.call.model()
    }

    /// Enters a flow-space schedule: the flow levels of `schedule` for this
    /// model, `x` (unit start noise) scaled to the first ([`Init`]).
    ///
    /// [`Init`]: super::schedule::Init
    pub(crate) fn enter_flow(&self, schedule: &Schedule, x: &mut [f32]) -> Vec<f64> {
        let (levels, entry) = schedule.enter_flow(self.call.model(), self.shape);
        x.iter_mut().for_each(|v| *v *= entry);
        levels
    }

    /// Enters a native schedule (k-diffusion's σ): the native levels of
    /// `schedule`, `x` scaled to the first.
    pub(crate) fn enter_native(&self, schedule: &Schedule, x: &mut [f32]) -> Vec<f64> {
        let (levels, entry) = schedule.enter_native(self.call.model(), self.shape);
        x.iter_mut().for_each(|v| *v *= entry);
        levels
    }

    /// The denoiser at native level σ ([`FlowCall::denoise_native`]): its
    /// x₀ estimate.
    pub(crate) fn denoise_native(&mut self, x: &[f32], sigma: f64) -> Result<Vec<f32>, NodeError> {
        Ok(self
            .call
            .denoise_native(self.cx, self.denoiser, self.shape, x, sigma)?
            .0)
    }

    /// How the denoiser's output reads (chosen at build time).
    pub(crate) fn readout(&self) -> Readout {
        self.call.readout()
    }

    /// The denoiser called as it is, on `x` at its own timestep `t` (no
    /// conversion): its output, checked to have the latent's shape.
    pub(crate) fn call_raw(&mut self, x: Vec<f32>, t: f32) -> Result<Tensor, NodeError> {
        let t = Tensor::from_f32(&[1], vec![t])?;
        let x = Tensor::from_f32(self.shape, x)?;
        let out = self.cx.call(self.call.callee(), vec![x.into(), t.into()])?;
        match out.into_iter().next() {
            Some(Value::Tensor(y)) if y.shape() == self.shape => Ok(y),
            other => {
                let found = other.map_or("nothing".into(), |v| v.value_type().to_string());
                Err(NodeError::new(format!(
                    "the denoiser `@{}` returned {found}, expected f32{:?}",
                    self.denoiser, self.shape
                )))
            }
        }
    }

    /// Step noise number `draw` into `out` (`len` values): see [`step_noise`].
    pub(crate) fn step_noise(
        &mut self,
        draw: usize,
        out: &mut Vec<f32>,
        len: usize,
    ) -> Result<(), NodeError> {
        step_noise(self.wired, self.seed, self.cx.tick, draw, out, len)
    }
}

/// A [`StepRule`] as a graph node.
pub(crate) struct Sampler<R> {
    rule: R,
    denoiser: String,
    /// The RNG seed of the step noise: the world's, mixed with the node's
    /// name (two samplers draw independent noise).
    seed: u64,
    /// How the denoiser is called, decided at build time (in `infer`).
    call: DenoiserCall,
}

impl<R: StepRule> Sampler<R> {
    /// The node of a sampler kind: its rule, and its `denoiser` parameter.
    pub(crate) fn node(cx: &BuildContext<'_>, rule: R) -> Result<Box<dyn Node>, BuildError> {
        Ok(Box::new(Sampler {
            rule,
            denoiser: cx.params.node_ref("denoiser")?,
            seed: mix(cx.settings.seed ^ hash_str(cx.name)),
            call: DenoiserCall::default(),
        }))
    }
}

impl<R: StepRule> Node for Sampler<R> {
    fn inputs(&self) -> Vec<PortSpec> {
        match self.rule.noise_draws() {
            Some(_) => stochastic_inputs(),
            None => vec![PortSpec::wired("noise")],
        }
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
        if let Some(draws) = self.rule.noise_draws() {
            check_step_noise(inputs, 1, draws)?;
        }
        let (types, call) = FlowCall::infer_callee(
            inputs,
            calls,
            0,
            &self.denoiser,
            self.rule.kind(),
            1,
            R::EPSILON_OK,
        )?;
        self.rule.check(call.model())?;
        self.call.set(call);
        Ok(types)
    }
    fn eval(
        &self,
        _: &mut State,
        inputs: &[Option<Value>],
        cx: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        let noise = tensor_arg(inputs, 0)?;
        let x = noise.host_f32()?.to_vec();
        let mut sampling = Sampling {
            cx,
            call: self.call.get(),
            denoiser: &self.denoiser,
            shape: noise.shape(),
            wired: wired_step_noise(inputs),
            seed: self.seed,
        };
        let latent = self.rule.sample(&mut sampling, x)?;
        f32_out(noise.shape(), latent)
    }
}

/// The inputs of a stochastic sampler: `noise`, and the optional `step_noise`.
pub(crate) fn stochastic_inputs() -> Vec<PortSpec> {
    vec![PortSpec::wired("noise"), PortSpec::optional("step_noise")]
}

/// The one output of every sampler.
pub(crate) fn latent_output() -> Vec<PortSpec> {
    vec![PortSpec::output("latent")]
}

/// The wired `step_noise` of a stochastic sampler (input 1), if any.
pub(crate) fn wired_step_noise(inputs: &[Option<Value>]) -> Option<&Tensor> {
    match inputs.get(1) {
        Some(Some(Value::Tensor(t))) => Some(t),
        _ => None,
    }
}

/// Gaussian noise for step `step` of a stochastic sampler: slice `step` of
/// the wired `step_noise` input when there is one (checked to hold a slice
/// per step), else the counter-based RNG keyed by (seed, tick, step).
pub(crate) fn step_noise(
    wired: Option<&Tensor>,
    seed: u64,
    tick: u64,
    step: usize,
    out: &mut Vec<f32>,
    len: usize,
) -> Result<(), NodeError> {
    out.clear();
    match wired {
        Some(t) => {
            let data = t.host_f32()?;
            let slice = data.get(step * len..(step + 1) * len).ok_or_else(|| {
                NodeError::new(format!(
                    "`step_noise` is {} but step {step} needs elements {}..{}",
                    t.tensor_type(),
                    step * len,
                    (step + 1) * len
                ))
            })?;
            out.extend_from_slice(slice);
        }
        None => {
            out.resize(len, 0.0);
            Stream::new(crate::rng::mix(seed ^ crate::rng::mix(tick)), step as u64)
                .fill_gaussian(out);
        }
    }
    Ok(())
}

/// The `step_noise` input's check: f32 `[steps, *noise]` or, flattened, with
/// `steps × |noise|` elements.
pub(crate) fn check_step_noise(
    inputs: &[Option<ValueType>],
    port: usize,
    steps: usize,
) -> Result<(), TypeError> {
    let (Some(Some(ValueType::Tensor(noise))), Some(Some(sn))) = (inputs.first(), inputs.get(port))
    else {
        return Ok(());
    };
    let want = format!(
        "f32[{steps}, {}] (one noise tensor per step)",
        noise
            .shape
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let ok = match sn {
        ValueType::Tensor(t) => {
            let mut expect = vec![Dim::Known(steps)];
            expect.extend(noise.shape.iter().cloned());
            t.dtype == DType::F32 && t.shape == expect
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(TypeError::input(
            port,
            format!("`step_noise` must be {want}, found {sn}"),
        ))
    }
}
