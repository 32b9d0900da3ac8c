//! `action_embedder`: the player's keys → an action token (Yan: keyboard →
//! MLP → one token), through a model, cached per key combination.

use crate::common::*;
use crate::models::io::{model_with_role, resolved_outputs, run_model};
use std::collections::HashMap;
use std::sync::Arc;
use wgraph_engine::model::Model;
use wgraph_engine::types::Bindings;

const PARAMS: &[ParamSpec] = &[ParamSpec::required(
    "model",
    ParamType::ModelRef,
    "the action embedder (wgraph.role = action_embedder)",
)];

pub struct ActionEmbedder;

impl NodeKind for ActionEmbedder {
    fn name(&self) -> &'static str {
        "action_embedder"
    }
    fn summary(&self) -> &'static str {
        "keys held this tick → multi-hot → model → action token (Yan's action MLP)"
    }
    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let model = model_with_role(cx, "model", &["action_embedder"], "action_embedder")?;
        let model_name = cx.params.model_ref("model")?;
        let sig = model.signature();
        let expected: Vec<&str> = Key::ALL.iter().map(|k| k.name()).collect();
        if let Some(keys) = sig.meta("wgraph.keys")
            && keys.split(',').map(str::trim).collect::<Vec<_>>() != expected
        {
            return Err(BuildError::param(
                "model",
                format!(
                    "action embedder `{model_name}` was made for keys `{keys}`, wgraph sends `{}`",
                    expected.join(",")
                ),
            ));
        }
        if sig.inputs.len() != 1 || sig.outputs.len() != 1 {
            return Err(BuildError::param(
                "model",
                format!("action embedder `{model_name}` must have one input and one output"),
            ));
        }
        Ok(Box::new(ActionEmbedderNode { model, model_name }))
    }
}

struct ActionEmbedderNode {
    model: Arc<dyn Model>,
    model_name: String,
}

impl Node for ActionEmbedderNode {
    fn inputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::wired("actions")]
    }
    fn input_type(&self, _port: usize) -> Option<String> {
        Some(ValueType::Actions.to_string())
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::output(&self.model.signature().outputs[0].name)]
    }
    fn infer(
        &self,
        inputs: &[Option<ValueType>],
        _: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        actions_in(inputs, 0)?;
        let sig = self.model.signature();
        let keys = TensorType::known(DType::F32, &[1, Key::ALL.len()]);
        let mut b = Bindings::new();
        b.unify(&sig.inputs[0].ty, &keys).map_err(|why| {
            TypeError::node(format!(
                "model input `{}` is {}, but keys are sent as {keys}: {why}",
                sig.inputs[0].name, sig.inputs[0].ty
            ))
        })?;
        resolved_outputs(&*self.model, &b)
    }
    fn init_state(&self) -> Result<State, NodeError> {
        Ok(Box::new(HashMap::<Actions, Value>::new()))
    }
    fn eval(
        &self,
        state: &mut State,
        inputs: &[Option<Value>],
        _: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        let actions = actions_arg(inputs, 0)?;
        let cache = state_mut::<HashMap<Actions, Value>>(state)?;
        if let Some(v) = cache.get(&actions) {
            return Ok(vec![v.clone()]);
        }
        let keys = Tensor::from_f32(&[1, Key::ALL.len()], actions.multi_hot().to_vec())?;
        let out = run_model(&*self.model, &self.model_name, &[keys])?;
        let token = Value::Tensor(
            out.into_iter()
                .next()
                .ok_or_else(|| NodeError::new("no output"))?,
        );
        cache.insert(actions, token.clone());
        Ok(vec![token])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::io::fake::{build_with, fake};
    use wgraph_engine::params::ParamValue;

    #[test]
    fn keys_go_through_the_model_once_per_combination() {
        let model = fake(
            &["keys:f32:batch,9"],
            &["token:f32:batch,1,3"],
            &[
                ("wgraph.role", "action_embedder"),
                ("wgraph.keys", "W,A,S,D,Left,Right,Up,Down,Space"),
            ],
            |ins| {
                let k = ins[0].host_f32().unwrap();
                vec![Tensor::from_f32(&[1, 1, 3], vec![k[0], k[4], k[8]]).unwrap()]
            },
        );
        let node = build_with(
            &ActionEmbedder,
            vec![("model", ParamValue::ModelRef("m".into()))],
            vec![("m", model.clone())],
        )
        .unwrap();
        assert_eq!(
            node.infer(
                &[Some(ValueType::Actions)],
                &mut wgraph_engine::node::NoInferCalls
            )
            .unwrap(),
            vec![ValueType::tensor(DType::F32, &[1, 1, 3])]
        );
        let settings = wgraph_engine::settings::Settings::default();
        let mut state = node.init_state().unwrap();
        let w_left = Actions::none().with(Key::W).with(Key::Left);
        for a in [w_left, Actions::none(), w_left] {
            let mut none = wgraph_engine::node::NoCallees;
            let mut cx = TickContext::new(0, &settings, &mut none);
            let out = node
                .eval(&mut state, &[Some(Value::Actions(a))], &mut cx)
                .unwrap();
            let want = if a == w_left {
                vec![1.0, 1.0, 0.0]
            } else {
                vec![0.0; 3]
            };
            assert_eq!(
                out[0].as_tensor().unwrap().host_f32().unwrap(),
                want.as_slice()
            );
        }
        assert_eq!(model.calls.lock().unwrap().len(), 2);
    }

    #[test]
    fn key_order_mismatch_is_a_build_error() {
        let model = fake(
            &["keys:f32:batch,9"],
            &["token:f32:batch,1,3"],
            &[("wgraph.role", "action_embedder"), ("wgraph.keys", "A,W")],
            |i| vec![i[0].clone()],
        );
        let e = build_with(
            &ActionEmbedder,
            vec![("model", ParamValue::ModelRef("m".into()))],
            vec![("m", model)],
        )
        .err()
        .unwrap();
        assert!(
            e.message.contains("was made for keys `A,W`"),
            "{}",
            e.message
        );
    }
}
