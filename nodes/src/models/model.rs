//! `encoder`, `decoder`, `model`: run a model on wired inputs.
//!
//! The node's ports are the model's own: inputs and outputs carry the names
//! of the model's signature (`image` → `latent` for a VAE encoder, `latent` →
//! `image` for a decoder), so wiring reads like the model. The kind checks the
//! model's role. Outputs of a call on the very same input tensors as the last
//! tick (a constant start frame) are reused instead of recomputed.

use crate::common::*;
use crate::models::io::{
    SameInputCache, model_with_role, resolved_outputs, run_model_on_device, unify_port,
};
use std::sync::Arc;
use wgraph_engine::model::Model;
use wgraph_engine::types::Bindings;

const PARAMS: &[ParamSpec] = &[ParamSpec::required(
    "model",
    ParamType::ModelRef,
    "the model to run",
)];

/// Any ONNX model: no metadata needed, ports are the model's own.
pub struct AnyModel;

impl NodeKind for AnyModel {
    fn name(&self) -> &'static str {
        "model"
    }
    fn summary(&self) -> &'static str {
        "runs any ONNX model: its inputs and outputs are the node's ports, no wgraph metadata needed"
    }
    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        Ok(Box::new(ModelNode {
            model: cx.model("model")?,
            model_name: cx.params.model_ref("model")?,
        }))
    }
}

/// VAE encoder (image/depth → latent) or a CLIP-style image encoder.
pub struct Encoder;
/// VAE decoder or lightweight decoder (latent → image/depth).
pub struct Decoder;

const ENCODER_ROLES: &[&str] = &["vae_encoder", "image_encoder"];
const DECODER_ROLES: &[&str] = &["vae_decoder"];

impl NodeKind for Encoder {
    fn name(&self) -> &'static str {
        "encoder"
    }
    fn summary(&self) -> &'static str {
        "runs a VAE encoder or CLIP-style image encoder model: frame → latent / embedding"
    }
    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        build(cx, ENCODER_ROLES, "encoder")
    }
}

impl NodeKind for Decoder {
    fn name(&self) -> &'static str {
        "decoder"
    }
    fn summary(&self) -> &'static str {
        "runs a VAE / lightweight decoder model: latent → frame"
    }
    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        build(cx, DECODER_ROLES, "decoder")
    }
}

fn build(cx: &BuildContext<'_>, roles: &[&str], kind: &str) -> Result<Box<dyn Node>, BuildError> {
    Ok(Box::new(ModelNode {
        model: model_with_role(cx, "model", roles, kind)?,
        model_name: cx.params.model_ref("model")?,
    }))
}

struct ModelNode {
    model: Arc<dyn Model>,
    model_name: String,
}

impl Node for ModelNode {
    /// Inputs go to the model as they are: a device tensor from the model
    /// before feeds this one without a host copy.
    fn accepts_device_inputs(&self) -> bool {
        true
    }
    fn inputs(&self) -> Vec<PortSpec> {
        self.model
            .signature()
            .inputs
            .iter()
            .map(|p| PortSpec::wired(&p.name))
            .collect()
    }
    fn input_type(&self, port: usize) -> Option<String> {
        let sig = self.model.signature();
        sig.inputs.get(port).map(|p| p.ty.to_string())
    }
    fn outputs(&self) -> Vec<PortSpec> {
        self.model
            .signature()
            .outputs
            .iter()
            .map(|p| PortSpec::output(&p.name))
            .collect()
    }
    fn infer(
        &self,
        inputs: &[Option<ValueType>],
        _: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        let sig = self.model.signature();
        let mut bindings = Bindings::new();
        for (i, port) in sig.inputs.iter().enumerate() {
            unify_port(
                &mut bindings,
                port,
                i,
                inputs.get(i).and_then(Option::as_ref),
            )?;
        }
        resolved_outputs(&*self.model, &bindings)
    }
    fn init_state(&self) -> Result<State, NodeError> {
        Ok(Box::new(SameInputCache::default()))
    }
    fn eval(
        &self,
        state: &mut State,
        inputs: &[Option<Value>],
        _: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        let tensors = (0..inputs.len())
            .map(|i| tensor_arg(inputs, i).cloned())
            .collect::<Result<Vec<_>, _>>()?;
        let cache = state_mut::<SameInputCache>(state)?;
        if let Some(out) = cache.get(&tensors) {
            return Ok(out);
        }
        let out: Vec<Value> = run_model_on_device(&*self.model, &self.model_name, &tensors)?
            .into_iter()
            .map(Value::Tensor)
            .collect();
        cache.put(tensors, &out);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::io::fake::{build_with, fake};
    use wgraph_engine::params::ParamValue;

    fn vae() -> Arc<crate::models::io::fake::FakeModel> {
        fake(
            &["image:f32:batch,3,8,8"],
            &["latent:f32:batch,4,2,2"],
            &[("wgraph.role", "vae_encoder")],
            |ins| {
                let n = ins[0].shape()[0];
                vec![Tensor::full_f32(&[n, 4, 2, 2], ins[0].host_f32().unwrap()[0]).unwrap()]
            },
        )
    }

    #[test]
    fn ports_mirror_the_model_and_shapes_are_checked() {
        let node = build_with(
            &Encoder,
            vec![("model", ParamValue::ModelRef("m".into()))],
            vec![("m", vae())],
        )
        .unwrap();
        assert_eq!(node.inputs()[0].name, "image");
        assert_eq!(node.outputs()[0].name, "latent");
        let ok = node
            .infer(
                &[Some(ValueType::tensor(DType::F32, &[1, 3, 8, 8]))],
                &mut wgraph_engine::node::NoInferCalls,
            )
            .unwrap();
        assert_eq!(ok, vec![ValueType::tensor(DType::F32, &[1, 4, 2, 2])]);
        let err = node
            .infer(
                &[Some(ValueType::tensor(DType::F32, &[1, 3, 16, 16]))],
                &mut wgraph_engine::node::NoInferCalls,
            )
            .unwrap_err();
        assert_eq!(err.input, Some(0));
        assert!(
            err.message.contains(
                "model input `image` expects f32[batch, 3, 8, 8], found f32[1, 3, 16, 16]"
            ),
            "{}",
            err.message
        );
    }

    #[test]
    fn role_is_checked() {
        let err = build_with(
            &Decoder,
            vec![("model", ParamValue::ModelRef("m".into()))],
            vec![("m", vae())],
        )
        .err()
        .unwrap();
        assert_eq!(err.param.as_deref(), Some("model"));
        assert!(
            err.message.contains("has role `vae_encoder`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn same_input_tensor_is_not_recomputed() {
        let model = vae();
        let node = build_with(
            &Encoder,
            vec![("model", ParamValue::ModelRef("m".into()))],
            vec![("m", model.clone())],
        )
        .unwrap();
        let frame = Tensor::full_f32(&[1, 3, 8, 8], 0.5).unwrap();
        let mut state = node.init_state().unwrap();
        let settings = wgraph_engine::settings::Settings::default();
        for tick in 0..3 {
            let mut none = wgraph_engine::node::NoCallees;
            let mut cx = TickContext::new(tick, &settings, &mut none);
            let out = node
                .eval(&mut state, &[Some(frame.clone().into())], &mut cx)
                .unwrap();
            assert_eq!(out[0].as_tensor().unwrap().host_f32().unwrap()[0], 0.5);
        }
        assert_eq!(model.calls.lock().unwrap().len(), 1);
        let other = Tensor::full_f32(&[1, 3, 8, 8], 0.5).unwrap();
        let mut none = wgraph_engine::node::NoCallees;
        let mut cx = TickContext::new(3, &settings, &mut none);
        node.eval(&mut state, &[Some(other.into())], &mut cx)
            .unwrap();
        assert_eq!(
            model.calls.lock().unwrap().len(),
            2,
            "a new tensor is a new call"
        );
    }
}
