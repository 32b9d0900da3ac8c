//! Windows of frames (diffusion forcing, the `df_window` sampler): a call
//! may carry several frames as rows of `x` (oldest first) with one
//! timestep per row. A condition wired with one row is repeated for every
//! row. `chain = "context"` names the condition that holds the previous
//! frame: row k's value is row k−1 of `x` (the noisy latent of the frame
//! before it, as the caller passes it) and row 0's the wired one. A model
//! trained with noisy context (diffusion forcing) reads how noisy its context
//! is from a level input — `chain_level`, or the model's
//! `wgraph.context_level_input` — which the node fills itself: row k gets the
//! model timestep of row k−1, row 0 (and every row of an unchained call) 0.

use super::DenoiserNode;
use crate::common::*;
use crate::models::io::stack;

/// `chain` (`denoiser`, `controlnet`): the condition holding the previous frame.
pub(super) const CHAIN: ParamSpec = ParamSpec::optional(
    "chain",
    ParamType::Str,
    ParamDefault::Absent,
    "the condition that holds the previous frame (e.g. \"context\"): in a call over a window of frames (rows of x, oldest first), row k's is row k-1 of x and row 0's the wired one",
);
/// `chain_level` (`denoiser`, `controlnet`): the model input of the context's level.
pub(super) const CHAIN_LEVEL: ParamSpec = ParamSpec::optional(
    "chain_level",
    ParamType::Str,
    ParamDefault::Absent,
    "a model input (f32[batch]) the node fills with the chained condition's timestep (row 0: 0); default: the model's wgraph.context_level_input",
);

/// The model input a diffusion-forcing denoiser reads its context's noise
/// level from: `chain_level`, else the model's `wgraph.context_level_input`;
/// checked to be an f32 `[batch]` input other than x, t and control.
/// `model_name` names the model in messages; `meta_param` is the parameter
/// of the model whose metadata is read.
pub(super) fn chain_level_input(
    cx: &BuildContext<'_>,
    sig: &wgraph_engine::model::ModelSignature,
    (model_name, meta_param): (&str, &'static str),
    (x, t, control): (usize, usize, Option<usize>),
) -> Result<Option<usize>, BuildError> {
    let (name, param) = match cx.params.string("chain_level") {
        Ok(name) => (name, "chain_level"),
        Err(_) => match sig.meta("wgraph.context_level_input") {
            Some(name) => (name.to_string(), meta_param),
            None => return Ok(None),
        },
    };
    let Some((i, port)) = sig.input(&name) else {
        let names: Vec<&str> = sig.inputs.iter().map(|p| p.name.as_str()).collect();
        return Err(BuildError::param(
            param,
            format!(
                "the context level input `{name}` is not an input of `{model_name}` (inputs: {})",
                names.join(", ")
            ),
        ));
    };
    if i == x
        || i == t
        || Some(i) == control
        || port.ty.dtype != DType::F32
        || port.ty.shape.len() != 1
    {
        return Err(BuildError::param(
            param,
            format!(
                "the context level input `{name}` of `{model_name}` must be an f32 [batch] input other than x, t and control, found {}",
                port.ty
            ),
        ));
    }
    Ok(Some(i))
}

impl DenoiserNode {
    /// The conditions of a call (node inputs 2…): as wired, or — in a
    /// window call of several rows — a one-row condition repeated for every
    /// row and the `chain` condition shifted by a frame.
    pub(super) fn window_conditions(
        &self,
        inputs: &[Option<Value>],
        x: &Tensor,
    ) -> Result<Vec<Tensor>, NodeError> {
        let rows = x.shape().first().copied().unwrap_or(1);
        let mut conds = (0..self.conditions.len())
            .map(|k| {
                let c = tensor_arg(inputs, 2 + k)?;
                if rows > 1 && c.shape().first() == Some(&1) {
                    repeat_rows(c, rows)
                } else {
                    Ok(c.clone())
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(ci) = self.chain
            && rows > 1
        {
            conds[ci] = chained(&conds[ci], x)?;
        }
        Ok(conds)
    }

    /// The level input of a call with `rows` rows at (model) timesteps `t`:
    /// row k of a chained window gets row k−1's timestep, row 0 (and every
    /// row of an unchained call) 0.
    pub(super) fn context_level(&self, t: &Tensor, rows: usize) -> Result<Tensor, NodeError> {
        let ts = t.host_f32()?;
        let mut level = vec![0.0_f32; rows];
        if self.chain.is_some() {
            for (l, &t) in level.iter_mut().skip(1).zip(ts) {
                *l = t;
            }
        }
        Ok(Tensor::from_f32(&[rows], level)?)
    }

    /// The build-time check of `chain`: the chained condition has the type
    /// of `x` or of one row of it.
    pub(super) fn check_chain(&self, inputs: &[Option<ValueType>]) -> Result<(), TypeError> {
        let get = |i: usize| inputs.get(i).and_then(Option::as_ref);
        if let Some(ci) = self.chain
            && let (Some(ValueType::Tensor(xt)), Some(ValueType::Tensor(ct))) =
                (get(0), get(2 + ci))
        {
            let mut row = xt.clone();
            if let Some(d) = row.shape.first_mut() {
                *d = Dim::Known(1);
            }
            if unify_types(xt, ct).is_none() && unify_types(&row, ct).is_none() {
                return Err(TypeError::input(
                    2 + ci,
                    format!(
                        "`chain = \"{}\"` must have the type of one row of `x` ({row}): it is the previous frame; found {ct}",
                        self.net.signature().inputs[self.conditions[ci]].name
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// `t` with its one row repeated `rows` times.
fn repeat_rows(t: &Tensor, rows: usize) -> Result<Tensor, NodeError> {
    let parts = vec![t; rows];
    stack(&parts)
}

/// The chained condition of a window call: row 0 as wired, row k the row
/// k−1 of `x` (the previous frame of the window).
fn chained(wired: &Tensor, x: &Tensor) -> Result<Tensor, NodeError> {
    if wired.shape() != x.shape() {
        return Err(NodeError::new(format!(
            "`chain`: the chained condition is {} but x is {}",
            wired.tensor_type(),
            x.tensor_type()
        )));
    }
    let (w, xs) = (wired.host_f32()?, x.host_f32()?);
    let row = w.len() / x.shape()[0].max(1);
    let mut data = Vec::with_capacity(w.len());
    data.extend_from_slice(&w[..row]);
    data.extend_from_slice(&xs[..xs.len() - row]);
    Ok(Tensor::from_f32(x.shape(), data)?)
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    /// A window call (rows at several levels, oldest first): one-row
    /// conditions are repeated, `chain` hands row k the row k−1 of x, and
    /// the level input (here from the model's metadata) gets row k−1's t.
    #[test]
    fn window_calls_repeat_conditions_and_chain_the_previous_frame() {
        let model = fake(
            &[
                "x:f32:batch,1",
                "t:f32:batch",
                "context:f32:batch,1",
                "context_t:f32:batch",
                "action:f32:batch,1",
            ],
            &["velocity:f32:batch,1"],
            &[
                ("wgraph.role", "denoiser"),
                ("wgraph.prediction", "velocity"),
                ("wgraph.context_level_input", "context_t"),
            ],
            |ins| {
                let h: Vec<&[f32]> = ins.iter().map(|t| t.host_f32().unwrap()).collect();
                let out = (0..h[0].len())
                    .map(|r| h[2][r] * 1000.0 + h[3][r] + h[4][r] * 0.5)
                    .collect();
                vec![Tensor::from_f32(&[h[0].len(), 1], out).unwrap()]
            },
        );
        let node = build_with(
            &Denoiser,
            vec![
                ("model", ParamValue::ModelRef("m".into())),
                ("chain", ParamValue::Str("context".into())),
            ],
            vec![("m", model)],
        )
        .unwrap();
        assert_eq!(
            node.inputs()
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>(),
            ["x", "t", "context", "action"],
            "the level input is filled by the node, not wired"
        );
        let settings = Settings::default();
        let mut none = NoCallees;
        let mut cx = TickContext::new(0, &settings, &mut none);
        let mut state = node.init_state().unwrap();
        let ins = [
            Some(
                Tensor::from_f32(&[3, 1], vec![1.0, 2.0, 3.0])
                    .unwrap()
                    .into(),
            ),
            Some(
                Tensor::from_f32(&[3], vec![250.0, 500.0, 750.0])
                    .unwrap()
                    .into(),
            ),
            Some(Tensor::from_f32(&[1, 1], vec![9.0]).unwrap().into()),
            Some(Tensor::from_f32(&[1, 1], vec![4.0]).unwrap().into()),
        ];
        let out = node.eval(&mut state, &ins, &mut cx).unwrap();
        let got = out[0].as_tensor().unwrap().host_f32().unwrap().to_vec();
        // Row 0: context 9 (wired), level 0; row 1: context 1 (x row 0),
        // level 250; row 2: context 2, level 500; action 4 on every row.
        assert_eq!(got, [9002.0, 1252.0, 2502.0]);
        // A chain naming no condition is refused at build, listing them.
        let err = build_with(
            &Denoiser,
            vec![
                ("model", ParamValue::ModelRef("m".into())),
                ("chain", ParamValue::Str("ctx".into())),
            ],
            vec![("m", dit(true))],
        )
        .err()
        .unwrap();
        assert!(
            err.to_string()
                .contains("`ctx` is not a condition of `m` (conditions: text, action)"),
            "{err}"
        );
    }
}
