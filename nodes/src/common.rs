//! What every kind file uses: engine re-exports and small helpers for port
//! type checks (at build) and input access (per tick).

pub(crate) use std::path::{Path, PathBuf};
pub(crate) use wgraph_engine::node::{
    BuildContext, BuildError, CallSpec, Carry, CarryContext, InferCalls, Node, NodeError, NodeKind,
    NoiseProcess, PortSpec, Prediction, State, TickContext, TypeError, state_mut,
};
pub(crate) use wgraph_engine::params::{Default as ParamDefault, ParamSpec, ParamType};
pub(crate) use wgraph_engine::snapshot::SavedState;
pub(crate) use wgraph_engine::tensor::{DType, Tensor};
pub(crate) use wgraph_engine::types::{Dim, TensorType, ValueType};
pub(crate) use wgraph_engine::value::{Actions, Key, Value};

/// The input type at port `i`, or an error naming what was expected.
fn input_type<'a>(
    types: &'a [Option<ValueType>],
    i: usize,
    expected: &str,
) -> Result<&'a ValueType, TypeError> {
    types.get(i).and_then(Option::as_ref).ok_or_else(|| {
        TypeError::input(i, format!("expected {expected}, but nothing is connected"))
    })
}

/// Input `i` must be a tensor accepted by `ok`; `expected` describes it.
pub(crate) fn tensor_in<'a>(
    types: &'a [Option<ValueType>],
    i: usize,
    expected: &str,
    ok: impl Fn(&TensorType) -> bool,
) -> Result<&'a TensorType, TypeError> {
    match input_type(types, i, expected)? {
        ValueType::Tensor(t) if ok(t) => Ok(t),
        other => Err(TypeError::input(
            i,
            format!("expected {expected}, found {other}"),
        )),
    }
}

/// Input `i` must be an f32 tensor of any shape.
pub(crate) fn f32_in(types: &[Option<ValueType>], i: usize) -> Result<&TensorType, TypeError> {
    tensor_in(types, i, "an f32 tensor", |t| t.dtype == DType::F32)
}

/// `dim` is `n` or still symbolic.
fn dim_may_be(dim: &Dim, n: &[usize]) -> bool {
    match dim {
        Dim::Known(d) => n.contains(d),
        Dim::Sym(_) => true,
    }
}

/// Input `i` must be an image: f32[1, C, H, W] with C = 1 or 3.
pub(crate) fn image_in(types: &[Option<ValueType>], i: usize) -> Result<&TensorType, TypeError> {
    tensor_in(types, i, "f32[1, 3, H, W] image (or 1 channel)", |t| {
        t.dtype == DType::F32
            && t.shape.len() == 4
            && dim_may_be(&t.shape[0], &[1])
            && dim_may_be(&t.shape[1], &[1, 3])
    })
}

/// Input `i` must carry actions.
pub(crate) fn actions_in(types: &[Option<ValueType>], i: usize) -> Result<(), TypeError> {
    match input_type(types, i, "actions")? {
        ValueType::Actions => Ok(()),
        other => Err(TypeError::input(
            i,
            format!("expected actions, found {other}"),
        )),
    }
}

/// Whether two tensor types can describe the same tensor (a symbolic
/// dimension matches anything); the result keeps every known dimension.
pub(crate) fn unify_types(a: &TensorType, b: &TensorType) -> Option<TensorType> {
    if a.dtype != b.dtype || a.shape.len() != b.shape.len() {
        return None;
    }
    let shape = a.shape.iter().zip(&b.shape).map(|(x, y)| match (x, y) {
        (Dim::Known(m), Dim::Known(n)) => (m == n).then(|| x.clone()),
        (Dim::Sym(_), _) => Some(y.clone()),
        (_, Dim::Sym(_)) => Some(x.clone()),
    });
    Some(TensorType {
        dtype: a.dtype,
        shape: shape.collect::<Option<_>>()?,
    })
}

/// The tensor at input `i` (per tick).
pub(crate) fn tensor_arg(inputs: &[Option<Value>], i: usize) -> Result<&Tensor, NodeError> {
    match inputs.get(i) {
        Some(Some(Value::Tensor(t))) => Ok(t),
        Some(Some(v)) => Err(NodeError::new(format!(
            "input #{i}: expected a tensor, found {}",
            v.value_type()
        ))),
        _ => Err(NodeError::new(format!("input #{i}: no value"))),
    }
}

/// The actions at input `i` (per tick).
pub(crate) fn actions_arg(inputs: &[Option<Value>], i: usize) -> Result<Actions, NodeError> {
    match inputs.get(i) {
        Some(Some(Value::Actions(a))) => Ok(*a),
        Some(Some(v)) => Err(NodeError::new(format!(
            "input #{i}: expected actions, found {}",
            v.value_type()
        ))),
        _ => Err(NodeError::new(format!("input #{i}: no value"))),
    }
}

/// One f32 output of `shape`.
pub(crate) fn f32_out(shape: &[usize], data: Vec<f32>) -> Result<Vec<Value>, NodeError> {
    Ok(vec![Tensor::from_f32(shape, data)?.into()])
}

/// An I/O error's message without the `(os error N)` suffix.
pub(crate) fn io_message(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) if s.ends_with(')') => s[..i].to_string(),
        _ => s,
    }
}

/// Reads a source file at build time (a regular file within `limit`, see
/// [`wgraph_engine::input`]); errors point at parameter `param`.
pub(crate) fn read_source(
    param: &str,
    path: &Path,
    limit: wgraph_engine::input::Limit,
) -> Result<Vec<u8>, BuildError> {
    wgraph_engine::input::read(path, limit).map_err(|e| {
        BuildError::param(
            param,
            format!("cannot read `{}`: {}", path.display(), io_message(&e)),
        )
    })
}

/// A tensor shape from a `Shape` parameter, within the tensor size limit
/// ([`wgraph_engine::tensor::MAX_ELEMENTS`]).
pub(crate) fn shape_param(cx: &BuildContext<'_>, name: &str) -> Result<Vec<usize>, BuildError> {
    let shape = cx.params.shape(name)?;
    wgraph_engine::tensor::checked_elements(&shape)
        .map_err(|e| BuildError::param(name, e.to_string()))?;
    Ok(shape)
}

/// A finite number parameter.
pub(crate) fn finite_param(cx: &BuildContext<'_>, name: &str) -> Result<f64, BuildError> {
    let v = cx.params.float(name)?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(BuildError::param(
            name,
            format!("`{name}` must be a finite number"),
        ))
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Building and running nodes without a graph.
    use super::*;
    use wgraph_engine::node::{Callees, NoCallees, NoInferCalls, OutputConfig};
    use wgraph_engine::params::{ParamValue, Params};
    use wgraph_engine::settings::Settings;

    /// A built node (with `Debug`, for `unwrap_err`).
    pub struct Built(pub Box<dyn Node>);

    impl std::fmt::Debug for Built {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Built")
        }
    }

    impl std::ops::Deref for Built {
        type Target = dyn Node;
        fn deref(&self) -> &(dyn Node + 'static) {
            &*self.0
        }
    }

    /// Builds `kind` with `given` parameters plus the defaults of its table,
    /// writing outputs under `out`.
    pub fn build_in(
        kind: &dyn NodeKind,
        given: Vec<(&'static str, ParamValue)>,
        out: &OutputConfig,
        settings: &Settings,
    ) -> Result<Built, BuildError> {
        build_with_models(
            kind,
            given,
            out,
            settings,
            &wgraph_engine::model::ModelTable::new(),
        )
    }

    /// [`build_in`] with the graph's models.
    pub fn build_with_models(
        kind: &dyn NodeKind,
        given: Vec<(&'static str, ParamValue)>,
        out: &OutputConfig,
        settings: &Settings,
        models: &wgraph_engine::model::ModelTable,
    ) -> Result<Built, BuildError> {
        let mut params = Params::default();
        for spec in kind.params() {
            let v = match spec.default {
                Some(ParamDefault::Int(i)) => ParamValue::Int(i),
                Some(ParamDefault::Float(f)) => ParamValue::Float(f),
                Some(ParamDefault::Bool(b)) => ParamValue::Bool(b),
                Some(ParamDefault::Str(s)) => ParamValue::Str(s.into()),
                Some(ParamDefault::Choice(c)) => ParamValue::Choice(c.into()),
                Some(ParamDefault::Absent) | None => continue,
            };
            params.insert(spec.name, v, None);
        }
        for (k, v) in given {
            assert!(kind.params().iter().any(|s| s.name == k), "no param {k}");
            params.insert(k, v, None);
        }
        kind.build(&BuildContext {
            name: "n",
            params: &params,
            settings,
            base_dir: Path::new("."),
            output: out,
            models,
        })
        .map(Built)
    }

    /// [`build_in`] with default settings and outputs under `out`.
    pub fn build(
        kind: &dyn NodeKind,
        given: Vec<(&'static str, ParamValue)>,
        out: &Path,
    ) -> Result<Built, BuildError> {
        let oc = OutputConfig {
            dir: out.to_path_buf(),
            display: wgraph_engine::node::DisplayTarget::PngDir(out.join("display")),
            ..OutputConfig::default()
        };
        build_in(kind, given, &oc, &Settings::default())
    }

    /// Infers with the given input types (no callables).
    pub fn infer(node: &dyn Node, types: &[ValueType]) -> Result<Vec<ValueType>, TypeError> {
        let types: Vec<_> = types.iter().cloned().map(Some).collect();
        node.infer(&types, &mut NoInferCalls)
    }

    /// Runs `ticks` ticks, feeding `inputs(tick)`, checking that outputs have
    /// the inferred types; returns the outputs and whether a stop was asked.
    pub fn run_with(
        node: &dyn Node,
        ticks: u64,
        mut inputs: impl FnMut(u64) -> Vec<Value>,
        callees: &mut dyn Callees,
        calls: &mut dyn InferCalls,
    ) -> Result<Vec<(Vec<Value>, bool)>, NodeError> {
        let settings = Settings::default();
        let mut state = node.init_state()?;
        let mut all = Vec::new();
        let mut inferred = None;
        for tick in 0..ticks {
            let ins = inputs(tick);
            let types: Vec<_> = ins.iter().map(|v| Some(v.value_type())).collect();
            let expected = inferred
                .get_or_insert_with(|| node.infer(&types, calls).expect("infer"))
                .clone();
            let mut cx = TickContext::new(tick, &settings, callees);
            let ins: Vec<_> = ins.into_iter().map(Some).collect();
            let out = node.eval(&mut state, &ins, &mut cx);
            let stop = cx.stop_requested();
            let out = match out {
                Ok(o) => o,
                Err(e) => {
                    node.finish(&mut state)?;
                    return Err(e);
                }
            };
            let got: Vec<_> = out.iter().map(Value::value_type).collect();
            assert_eq!(got, expected, "eval output types differ from infer");
            all.push((out, stop));
        }
        node.finish(&mut state)?;
        Ok(all)
    }

    /// [`run_with`] for nodes that call nothing.
    pub fn run(
        node: &dyn Node,
        ticks: u64,
        inputs: impl FnMut(u64) -> Vec<Value>,
    ) -> Result<Vec<(Vec<Value>, bool)>, NodeError> {
        run_with(node, ticks, inputs, &mut NoCallees, &mut NoInferCalls)
    }

    /// The f32 data of output `i`.
    pub fn f32s(out: &[Value], i: usize) -> Vec<f32> {
        out[i]
            .as_tensor()
            .expect("tensor")
            .host_f32()
            .expect("f32")
            .to_vec()
    }

    /// An f32 tensor value.
    pub fn t32(shape: &[usize], data: Vec<f32>) -> Value {
        Tensor::from_f32(shape, data).expect("tensor").into()
    }
}
