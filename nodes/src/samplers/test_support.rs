//! Test fakes shared by the samplers' unit tests: perfect denoisers of a
//! known x₀ that record what they were called with, as callees of a
//! sampler (`Callees` to run, `InferCalls` to check).
//!
//! - [`PerfectFlow`] — rectified flow: the velocity `(x − x₀)/σ` at
//!   t = 1000σ, one t per row of a window call;
//! - [`PerfectEps`] — VP: the ε `(x − √ᾱ·x₀)/√(1−ᾱ)` on a ᾱ table, at
//!   whole timesteps (DDIM's default) or fractional ones (σ interpolated in
//!   log σ, as diffusers), declaring its betas or nothing.

use crate::common::*;
use crate::samplers::diffusion::alphas_cumprod;
use wgraph_engine::node::Callees;

/// A perfect rectified-flow denoiser of a known x₀ (velocity `(x − x₀)/σ`
/// at t = 1000σ), recording what it was called with.
pub struct PerfectFlow {
    pub x0: Vec<f32>,
    pub ts: Vec<f32>,
    pub xs: Vec<Vec<f32>>,
}

impl PerfectFlow {
    pub fn new(x0: &[f32]) -> Self {
        PerfectFlow {
            x0: x0.to_vec(),
            ts: Vec::new(),
            xs: Vec::new(),
        }
    }
}

impl Callees for PerfectFlow {
    fn call(&mut self, _: usize, args: Vec<Value>) -> Result<Vec<Value>, NodeError> {
        let (Value::Tensor(x), Value::Tensor(t)) = (&args[0], &args[1]) else {
            return Err(NodeError::new("expected tensors"));
        };
        // One t per row of x (a window call has several).
        let ts = t.host_f32()?.to_vec();
        let xs = x.host_f32()?;
        let row = self.x0.len();
        let v: Vec<f32> = xs
            .chunks(row)
            .zip(&ts)
            .flat_map(|(r, &t)| {
                let sigma = f64::from(t) / 1000.0;
                r.iter()
                    .zip(&self.x0)
                    .map(move |(&x, &c)| ((f64::from(x) - f64::from(c)) / sigma) as f32)
            })
            .collect();
        self.ts.extend(ts);
        self.xs.push(xs.to_vec());
        Ok(vec![Tensor::from_f32(x.shape(), v)?.into()])
    }
}

impl InferCalls for PerfectFlow {
    fn callee_prediction(&self, _: usize) -> Option<Prediction> {
        Some(Prediction {
            output: "velocity".into(),
            process: NoiseProcess::Flow,
        })
    }
    fn callee_outputs(&self, _: usize) -> Vec<String> {
        vec!["velocity".into()]
    }
    fn infer_call(&mut self, _: usize, args: &[ValueType]) -> Result<Vec<ValueType>, TypeError> {
        Ok(vec![args[0].clone()])
    }
}

/// A perfect VP ε-predicting denoiser of a known x₀ on the ᾱ table `ac`:
/// ε = (x − √ᾱₜ·x₀)/√(1−ᾱₜ), recording what it was called with.
pub struct PerfectEps {
    pub x0: Vec<f32>,
    /// ᾱ per whole timestep.
    pub ac: Vec<f64>,
    /// The noise process its metadata declares (`None`: no metadata; the
    /// sampler goes by its output's name).
    pub declared: Option<NoiseProcess>,
    /// The name of its output.
    pub output: &'static str,
    /// Called at whole timesteps only (asserted; ᾱ read from the table),
    /// else ᾱ at a fractional timestep is interpolated in log σ.
    pub whole: bool,
    /// The timestep of each call.
    pub ts: Vec<f32>,
    /// The x of each call.
    pub xs: Vec<Vec<f32>>,
    /// The ε of the latest call, in f64.
    pub last_eps: Vec<f64>,
}

impl PerfectEps {
    /// On the betas `beta_start..beta_end` (`scaled`: scaled linear), which
    /// it declares; any timestep.
    pub fn vp(x0: &[f32], beta_start: f64, beta_end: f64, scaled: bool) -> Self {
        PerfectEps {
            x0: x0.to_vec(),
            ac: alphas_cumprod(beta_start, beta_end, 1000, scaled),
            declared: Some(NoiseProcess::Vp {
                beta_start,
                beta_end,
                train_steps: 1000,
                scaled,
            }),
            output: "epsilon",
            whole: false,
            ts: Vec::new(),
            xs: Vec::new(),
            last_eps: Vec::new(),
        }
    }

    /// On Stable Diffusion's betas (scaled linear 0.00085–0.012), declaring
    /// nothing, called at whole timesteps only.
    pub fn undeclared(x0: &[f32]) -> Self {
        PerfectEps {
            declared: None,
            ..Self::vp(x0, 0.00085, 0.012, true)
        }
        .at_whole_timesteps()
    }

    /// The same model, asserting that it is called at whole timesteps.
    pub fn at_whole_timesteps(self) -> Self {
        PerfectEps {
            whole: true,
            ..self
        }
    }

    /// ᾱ at a fractional timestep: σ interpolated in log σ (diffusers).
    pub fn alpha(&self, t: f32) -> f64 {
        let t = f64::from(t).clamp(0.0, (self.ac.len() - 1) as f64);
        let i = (t.floor() as usize).min(self.ac.len() - 2);
        let f = t - i as f64;
        let ls = |a: f64| (((1.0 - a) / a).sqrt()).ln();
        let s = ((1.0 - f) * ls(self.ac[i]) + f * ls(self.ac[i + 1])).exp();
        1.0 / (1.0 + s * s)
    }
}

impl Callees for PerfectEps {
    fn call(&mut self, index: usize, args: Vec<Value>) -> Result<Vec<Value>, NodeError> {
        assert_eq!(index, 0);
        let (Value::Tensor(x), Value::Tensor(t)) = (&args[0], &args[1]) else {
            return Err(NodeError::new("expected tensors"));
        };
        let t = t.host_f32()?[0];
        let a = if self.whole {
            assert_eq!(t.fract(), 0.0, "integer timestep");
            self.ac[t as usize]
        } else {
            self.alpha(t)
        };
        self.ts.push(t);
        self.xs.push(x.host_f32()?.to_vec());
        self.last_eps = x
            .host_f32()?
            .iter()
            .zip(&self.x0)
            .map(|(&x, &x0)| (f64::from(x) - a.sqrt() * f64::from(x0)) / (1.0 - a).sqrt())
            .collect();
        let eps = self.last_eps.iter().map(|&e| e as f32).collect();
        Ok(vec![Tensor::from_f32(x.shape(), eps)?.into()])
    }
}

impl InferCalls for PerfectEps {
    fn callee_prediction(&self, _: usize) -> Option<Prediction> {
        self.declared.clone().map(|process| Prediction {
            output: "epsilon".into(),
            process,
        })
    }
    fn callee_outputs(&self, _: usize) -> Vec<String> {
        vec![self.output.into()]
    }
    fn infer_call(&mut self, _: usize, args: &[ValueType]) -> Result<Vec<ValueType>, TypeError> {
        Ok(vec![args[0].clone()])
    }
}
