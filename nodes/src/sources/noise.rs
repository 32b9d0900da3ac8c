//! `noise`: Gaussian noise, reproducible per (seed, tick).

use crate::common::*;
use crate::rng::{Stream, hash_str, mix};

/// The `noise` kind.
pub struct Noise;

impl NodeKind for Noise {
    fn name(&self) -> &'static str {
        "noise"
    }
    fn summary(&self) -> &'static str {
        "Gaussian noise: fresh each tick (or fixed), reproducible from the seed"
    }
    fn params(&self) -> &'static [ParamSpec] {
        const PARAMS: &[ParamSpec] = &[
            ParamSpec::required("shape", ParamType::Shape, "the tensor's shape"),
            ParamSpec::optional(
                "seed",
                ParamType::Int,
                ParamDefault::Int(-1),
                "seed of this source; -1 (default) derives it from the world seed and the node's name",
            ),
            ParamSpec::optional(
                "mean",
                ParamType::Float,
                ParamDefault::Float(0.0),
                "mean of the samples",
            ),
            ParamSpec::optional(
                "std",
                ParamType::Float,
                ParamDefault::Float(1.0),
                "standard deviation (>= 0)",
            ),
            ParamSpec::optional(
                "per_tick",
                ParamType::Bool,
                ParamDefault::Bool(true),
                "draw new noise every tick (false: the same noise every tick)",
            ),
        ];
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let shape = shape_param(cx, "shape")?;
        let seed = match cx.params.int("seed")? {
            -1 => mix(cx.settings.seed ^ hash_str(cx.name)),
            s => u64::try_from(s).map_err(|_| {
                BuildError::param(
                    "seed",
                    "the seed must be >= 0 (or -1 to derive it from the world seed)",
                )
            })?,
        };
        let std = finite_param(cx, "std")?;
        if std < 0.0 {
            return Err(BuildError::param("std", "`std` must not be negative"));
        }
        Ok(Box::new(NoiseNode {
            shape,
            seed,
            mean: finite_param(cx, "mean")? as f32,
            std: std as f32,
            per_tick: cx.params.bool("per_tick")?,
        }))
    }
}

struct NoiseNode {
    shape: Vec<usize>,
    seed: u64,
    mean: f32,
    std: f32,
    per_tick: bool,
}

impl Node for NoiseNode {
    fn inputs(&self) -> Vec<PortSpec> {
        vec![]
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::output("out")]
    }
    fn infer(
        &self,
        _: &[Option<ValueType>],
        _: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        Ok(vec![ValueType::tensor(DType::F32, &self.shape)])
    }
    fn output_set_by(&self, _port: usize) -> Option<&'static str> {
        Some("shape")
    }
    fn eval(
        &self,
        _: &mut State,
        _: &[Option<Value>],
        cx: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        let n = self.shape.iter().product();
        let mut data = wgraph_engine::tensor::try_filled(n, 0.0f32, &self.shape)?;
        let stream = if self.per_tick { cx.tick } else { 0 };
        Stream::new(self.seed, stream).fill_gaussian(&mut data);
        data.iter_mut().for_each(|v| *v = self.mean + self.std * *v);
        f32_out(&self.shape, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::*;
    use wgraph_engine::node::NoCallees;
    use wgraph_engine::params::ParamValue as P;
    use wgraph_engine::settings::Settings;

    fn tick(node: &dyn Node, t: u64) -> Vec<f32> {
        let settings = Settings::default();
        let mut none = NoCallees;
        let mut cx = TickContext::new(t, &settings, &mut none);
        let out = node
            .eval(&mut node.init_state().unwrap(), &[], &mut cx)
            .unwrap();
        f32s(&out, 0)
    }

    #[test]
    fn deterministic_order_independent_and_normal() {
        let dir = tempfile::tempdir().unwrap();
        let shape = ("shape", P::Shape(vec![1, 4, 50, 50]));
        let node = build(&Noise, vec![shape.clone(), ("seed", P::Int(5))], dir.path()).unwrap();
        let later = tick(&*node, 3);
        let sequential = run(&*node, 4, |_| vec![]).unwrap();
        assert_eq!(f32s(&sequential[3].0, 0), later);
        assert_ne!(tick(&*node, 2), later);
        let n = later.len() as f64;
        let mean = later.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let std = (later
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n)
            .sqrt();
        assert!(
            mean.abs() < 0.05 && (std - 1.0).abs() < 0.05,
            "{mean} {std}"
        );

        let params = vec![
            shape.clone(),
            ("per_tick", P::Bool(false)),
            ("mean", P::Float(3.0)),
            ("std", P::Float(0.0)),
        ];
        let fixed = build(&Noise, params, dir.path()).unwrap();
        assert_eq!(tick(&*fixed, 0), tick(&*fixed, 9));
        assert!(tick(&*fixed, 1).iter().all(|&v| v == 3.0));

        let derived = build(&Noise, vec![shape.clone()], dir.path()).unwrap();
        assert_ne!(tick(&*derived, 3), later);
        assert_eq!(
            tick(&*derived, 3),
            tick(&*build(&Noise, vec![shape.clone()], dir.path()).unwrap(), 3)
        );
        assert!(build(&Noise, vec![shape, ("seed", P::Int(-2))], dir.path()).is_err());
    }
}
