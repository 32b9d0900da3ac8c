//! Skipping work when nothing changed: StreamDiffusion's similarity filter
//! (Kodaira et al. 2023), as a graph decision.
//!
//! - [`SimilarityFilter`] (`similarity_filter`) compares this tick's `input`
//!   (e.g. the context latent: the frame the next one continues) and
//!   `condition` (e.g. a prompt embedding) with their values at the last
//!   tick that was computed, and outputs `reuse` = 1 when the input's cosine
//!   similarity is at least `threshold`, the condition is unchanged and, when
//!   `keys` is wired, no key is held: a world model moves while a key is
//!   held even when consecutive frames are alike (yan-sim's frames while
//!   walking are 0.99–0.998 cosine-similar, idle ones 0.999), so "no key
//!   held" is a condition of its own. At most `max_reuse` ticks in a row
//!   reuse; then one is computed again (and becomes the new reference).
//!   `enabled = false` always computes (so `bench --swap` can measure it).
//! - [`Reusable`] wraps a node kind (every sampler, the decoder) with an
//!   optional `reuse` input: when it is wired and non-zero and the node has
//!   outputs from an earlier tick, the node does not run — its last outputs
//!   are returned, so a sampler makes no denoiser call. Unwired, the kind is
//!   unchanged.
//!
//! A world whose next frame is a function of (previous frame, keys) is then
//! exact under reuse when its output equals its input with no key held — and
//! the filter's threshold says how close is close enough. The quality cost
//! is measured by `wgraph bench --swap still.enabled=false,true` with a
//! ground truth.

use crate::common::*;

/// The `similarity_filter` kind.
pub struct SimilarityFilter;

impl NodeKind for SimilarityFilter {
    fn name(&self) -> &'static str {
        "similarity_filter"
    }
    fn summary(&self) -> &'static str {
        "reuse = 1 when `input` is as before (cosine ≥ threshold), `condition` unchanged and no `keys` held: wire it to a sampler's `reuse` to skip the tick"
    }
    fn params(&self) -> &'static [ParamSpec] {
        const PARAMS: &[ParamSpec] = &[
            ParamSpec::optional(
                "threshold",
                ParamType::Float,
                ParamDefault::Float(0.99),
                "the cosine similarity of `input` to its value at the last computed tick at or above which the tick is reused (-1..=1)",
            ),
            ParamSpec::optional(
                "max_reuse",
                ParamType::Int,
                ParamDefault::Int(8),
                "the most ticks in a row that reuse; then one is computed (0: never reuse)",
            ),
            ParamSpec::optional(
                "enabled",
                ParamType::Bool,
                ParamDefault::Bool(true),
                "false: every tick is computed (reuse = 0)",
            ),
        ];
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let threshold = finite_param(cx, "threshold")?;
        if !(-1.0..=1.0).contains(&threshold) {
            return Err(BuildError::param(
                "threshold",
                format!("`threshold` is a cosine similarity, -1 to 1; found {threshold}"),
            ));
        }
        let max_reuse = cx.params.int("max_reuse")?;
        let max_reuse = u64::try_from(max_reuse).map_err(|_| {
            BuildError::param(
                "max_reuse",
                format!("`max_reuse` must be 0 or more, found {max_reuse}"),
            )
        })?;
        Ok(Box::new(FilterNode {
            threshold,
            max_reuse,
            enabled: cx.params.bool("enabled")?,
        }))
    }
}

struct FilterNode {
    threshold: f64,
    max_reuse: u64,
    enabled: bool,
}

/// The values at the last computed tick, and how many ticks reused since.
#[derive(Default)]
struct Reference {
    input: Vec<f32>,
    condition: Option<Vec<f32>>,
    reused: u64,
    set: bool,
}

/// Cosine similarity; two zero vectors are equal (1), one zero vector is
/// not similar to anything else (0).
fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0_f64, 0.0_f64, 0.0_f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    match (aa == 0.0, bb == 0.0) {
        (true, true) => 1.0,
        (true, false) | (false, true) => 0.0,
        _ => ab / (aa.sqrt() * bb.sqrt()),
    }
}

impl Node for FilterNode {
    fn inputs(&self) -> Vec<PortSpec> {
        vec![
            PortSpec::wired("input"),
            PortSpec::optional("condition"),
            PortSpec::optional("keys"),
        ]
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::output("reuse")]
    }
    fn infer(
        &self,
        inputs: &[Option<ValueType>],
        _: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        f32_in(inputs, 0)?;
        if inputs.get(1).is_some_and(Option::is_some) {
            f32_in(inputs, 1)?;
        }
        if inputs.get(2).is_some_and(Option::is_some) {
            actions_in(inputs, 2)?;
        }
        Ok(vec![ValueType::tensor(DType::F32, &[1])])
    }
    fn init_state(&self) -> Result<State, NodeError> {
        Ok(Box::new(Reference::default()))
    }
    fn eval(
        &self,
        state: &mut State,
        inputs: &[Option<Value>],
        _: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        let input = tensor_arg(inputs, 0)?.host_f32()?;
        let condition = match inputs.get(1) {
            Some(Some(Value::Tensor(t))) => Some(t.host_f32()?),
            _ => None,
        };
        let idle = match inputs.get(2) {
            Some(Some(_)) => actions_arg(inputs, 2)?.is_empty(),
            _ => true,
        };
        let r = state_mut::<Reference>(state)?;
        let same_condition = match (condition, &r.condition) {
            (None, None) => true,
            (Some(c), Some(rc)) => c == rc.as_slice(),
            _ => false,
        };
        let reuse = self.enabled
            && idle
            && r.set
            && r.reused < self.max_reuse
            && same_condition
            && input.len() == r.input.len()
            && cosine(input, &r.input) >= self.threshold;
        if reuse {
            r.reused += 1;
        } else {
            r.input.clear();
            r.input.extend_from_slice(input);
            r.condition = condition.map(<[f32]>::to_vec);
            r.reused = 0;
            r.set = true;
        }
        f32_out(&[1], vec![f32::from(u8::from(reuse))])
    }
}

/// A node kind with an optional `reuse` input (see the module docs).
pub struct Reusable<K>(pub K);

impl<K: NodeKind> NodeKind for Reusable<K> {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn summary(&self) -> &'static str {
        self.0.summary()
    }
    fn params(&self) -> &'static [ParamSpec] {
        self.0.params()
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let inner = self.0.build(cx)?;
        let wired = inner.inputs().len();
        Ok(Box::new(ReusableNode { inner, wired }))
    }
}

struct ReusableNode {
    inner: Box<dyn Node>,
    /// The inner node's inputs; `reuse` comes after them.
    wired: usize,
}

/// The inner node's state and its outputs of the last computed tick (kept
/// only while `reuse` is wired).
struct ReuseState {
    inner: State,
    last: Option<Vec<Value>>,
}

impl ReusableNode {
    fn reuse_wired(inputs: &[Option<Value>], at: usize) -> Result<Option<bool>, NodeError> {
        match inputs.get(at) {
            Some(Some(Value::Tensor(t))) => {
                let v = t.host_f32()?;
                Ok(Some(v.first().is_some_and(|&x| x != 0.0)))
            }
            Some(Some(other)) => Err(NodeError::new(format!(
                "`reuse` must be an f32 tensor, found {}",
                other.value_type()
            ))),
            _ => Ok(None),
        }
    }
}

impl Node for ReusableNode {
    fn inputs(&self) -> Vec<PortSpec> {
        let mut ports = self.inner.inputs();
        ports.push(PortSpec::optional("reuse"));
        ports
    }
    fn outputs(&self) -> Vec<PortSpec> {
        self.inner.outputs()
    }
    fn calls(&self) -> Vec<CallSpec> {
        self.inner.calls()
    }
    fn infer(
        &self,
        inputs: &[Option<ValueType>],
        calls: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        if let Some(Some(ty)) = inputs.get(self.wired) {
            let ok = matches!(ty, ValueType::Tensor(t) if t.dtype == DType::F32 && t.shape.iter().all(|d| *d == Dim::Known(1)));
            if !ok {
                return Err(TypeError::input(
                    self.wired,
                    format!("`reuse` must be f32[1] (a similarity_filter's `reuse`), found {ty}"),
                ));
            }
        }
        self.inner
            .infer(&inputs[..self.wired.min(inputs.len())], calls)
    }
    fn init_state(&self) -> Result<State, NodeError> {
        Ok(Box::new(ReuseState {
            inner: self.inner.init_state()?,
            last: None,
        }))
    }
    fn eval(
        &self,
        state: &mut State,
        inputs: &[Option<Value>],
        cx: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        let s = state_mut::<ReuseState>(state)?;
        let reuse = Self::reuse_wired(inputs, self.wired)?;
        if reuse == Some(true)
            && let Some(last) = &s.last
        {
            return Ok(last.clone());
        }
        let out = self
            .inner
            .eval(&mut s.inner, &inputs[..self.wired.min(inputs.len())], cx)?;
        if reuse.is_some() {
            s.last = Some(out.clone());
        }
        Ok(out)
    }
    fn finish(&self, state: &mut State) -> Result<(), NodeError> {
        self.inner
            .finish(&mut state_mut::<ReuseState>(state)?.inner)
    }
    fn carry(&self, old: &State, cx: &CarryContext) -> Carry {
        match old.downcast_ref::<ReuseState>() {
            Some(old) => self.inner.carry(&old.inner, cx),
            None => Carry::Fresh,
        }
    }
    fn live_prompt(&self) -> Option<(&'static str, String)> {
        self.inner.live_prompt()
    }
    fn prediction(&self) -> Option<Prediction> {
        self.inner.prediction()
    }
    fn save_state(&self, state: &State) -> Result<Option<SavedState>, NodeError> {
        let s = state
            .downcast_ref::<ReuseState>()
            .ok_or_else(|| NodeError::new("internal: node state has an unexpected type"))?;
        self.inner.save_state(&s.inner)
    }
    fn load_state(&self, saved: &SavedState) -> Result<State, NodeError> {
        Ok(Box::new(ReuseState {
            inner: self.inner.load_state(saved)?,
            last: None,
        }))
    }
    fn displays(&self) -> Option<wgraph_engine::node::DisplaySpec> {
        self.inner.displays()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::*;
    use wgraph_engine::node::NoCallees;
    use wgraph_engine::params::ParamValue as P;
    use wgraph_engine::settings::Settings;

    fn run(node: &dyn Node, state: &mut State, input: &[f32], cond: Option<f32>) -> f32 {
        let settings = Settings::default();
        let mut none = NoCallees;
        let mut cx = TickContext::new(0, &settings, &mut none);
        let ins = [
            Some(t32(&[1, input.len()], input.to_vec())),
            cond.map(|c| t32(&[1, 1], vec![c])),
        ];
        f32s(&node.eval(state, &ins, &mut cx).unwrap(), 0)[0]
    }

    #[test]
    fn reuses_while_the_input_is_similar_and_the_condition_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let node = build(
            &SimilarityFilter,
            vec![("threshold", P::Float(0.99)), ("max_reuse", P::Int(2))],
            dir.path(),
        )
        .unwrap();
        let mut s = node.init_state().unwrap();
        let a = [1.0, 2.0, 3.0];
        assert_eq!(
            run(&*node, &mut s, &a, Some(0.0)),
            0.0,
            "first tick computes"
        );
        assert_eq!(run(&*node, &mut s, &[1.0, 2.0, 3.01], Some(0.0)), 1.0);
        assert_eq!(run(&*node, &mut s, &a, Some(0.0)), 1.0);
        assert_eq!(run(&*node, &mut s, &a, Some(0.0)), 0.0, "max_reuse reached");
        assert_eq!(
            run(&*node, &mut s, &a, Some(1.0)),
            0.0,
            "a new condition computes"
        );
        assert_eq!(
            run(&*node, &mut s, &[3.0, 1.0, -2.0], Some(1.0)),
            0.0,
            "a new input computes"
        );
        let off = build(
            &SimilarityFilter,
            vec![("enabled", P::Bool(false))],
            dir.path(),
        )
        .unwrap();
        let mut s = off.init_state().unwrap();
        for _ in 0..3 {
            assert_eq!(run(&*off, &mut s, &a, None), 0.0);
        }
    }

    #[test]
    fn a_held_key_always_computes() {
        let dir = tempfile::tempdir().unwrap();
        let node = build(&SimilarityFilter, vec![], dir.path()).unwrap();
        let mut s = node.init_state().unwrap();
        let settings = Settings::default();
        let mut none = NoCallees;
        let a = [1.0_f32, 2.0];
        let mut tick = |keys: Actions| {
            let mut cx = TickContext::new(0, &settings, &mut none);
            let ins = [
                Some(t32(&[1, 2], a.to_vec())),
                None,
                Some(Value::Actions(keys)),
            ];
            f32s(&node.eval(&mut s, &ins, &mut cx).unwrap(), 0)[0]
        };
        let w = Actions::none().with(Key::W);
        assert_eq!(tick(w), 0.0);
        assert_eq!(tick(w), 0.0, "W held: the world moves");
        assert_eq!(tick(Actions::none()), 1.0, "idle and unchanged: reuse");
    }

    #[test]
    fn cosine_of_zero_vectors() {
        assert_eq!(cosine(&[0.0, 0.0], &[0.0, 0.0]), 1.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert!((cosine(&[1.0, 1.0], &[2.0, 2.0]) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn bad_parameters_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (k, v, want) in [
            ("threshold", P::Float(1.5), "cosine similarity"),
            ("max_reuse", P::Int(-1), "0 or more"),
        ] {
            let err = build(&SimilarityFilter, vec![(k, v)], dir.path())
                .err()
                .unwrap();
            assert!(err.to_string().contains(want), "{err}");
        }
    }
}
