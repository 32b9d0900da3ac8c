//! `text_encoder`: text → embeddings, with the tokenizer that ships inside the
//! model (`wgraph.tokenizer` metadata) and a cache by text.
//!
//! The text is either the `text` parameter (a fixed prompt: Yan-Gen's global
//! caption, a style prompt) or a wired `text` input (a caption that changes:
//! Yume's QCM action text, a prompt schedule). Each distinct text is encoded
//! once per run; `precompute` encodes a finite caption set when the run
//! starts (Yume 1.5's action descriptions).

use crate::common::*;
use crate::models::io::{model_with_role, resolved_outputs, run_model};
use crate::sources::qcm::{QcmSpeeds, QcmVariant, all_captions};
use std::collections::HashMap;
use std::sync::Arc;
use wgraph_engine::model::Model;
use wgraph_engine::types::Bindings;

const PARAMS: &[ParamSpec] = &[
    ParamSpec::required(
        "model",
        ParamType::ModelRef,
        "the text encoder (wgraph.role = text_encoder)",
    ),
    ParamSpec::optional(
        "text",
        ParamType::Str,
        ParamDefault::Absent,
        "a fixed prompt (else wire the `text` input)",
    ),
    ParamSpec::optional(
        "precompute",
        ParamType::Choice(&["none", "qcm_yume", "qcm_yume15"]),
        ParamDefault::Choice("none"),
        "encode a finite caption set when the run starts (the `qcm` kind's captions at its default speeds)",
    ),
];

/// At most this many distinct texts are cached (then the cache restarts).
const CACHE_LIMIT: usize = 4096;

pub struct TextEncoder;

impl NodeKind for TextEncoder {
    fn name(&self) -> &'static str {
        "text_encoder"
    }
    fn summary(&self) -> &'static str {
        "encodes a prompt or caption with the model's own tokenizer; caches embeddings by text"
    }
    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let model = model_with_role(cx, "model", &["text_encoder"], "text_encoder")?;
        let model_name = cx.params.model_ref("model")?;
        let sig = model.signature();
        if sig.inputs.len() != 1 || sig.inputs[0].ty.dtype != DType::I64 || sig.outputs.len() != 1 {
            return Err(BuildError::param(
                "model",
                format!(
                    "text encoder `{model_name}` must take one i64 token input and give one output"
                ),
            ));
        }
        let tokenizer = Tokenizer::from_metadata(sig.meta("wgraph.tokenizer"))
            .map_err(|e| BuildError::param("model", format!("text encoder `{model_name}`: {e}")))?;
        let precompute = match cx.params.choice("precompute")?.as_str() {
            "qcm_yume" => all_captions(QcmVariant::Yume, Some(&QcmSpeeds::default())),
            "qcm_yume15" => all_captions(QcmVariant::Yume15, Some(&QcmSpeeds::default())),
            _ => Vec::new(),
        };
        Ok(Box::new(TextEncoderNode {
            fixed: cx.params.string("text").ok(),
            precompute,
            tokenizer,
            model,
            model_name,
        }))
    }
}

/// A word-level tokenizer described by the model's metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Tokenizer {
    lowercase: bool,
    max_length: usize,
    pad_id: i64,
    unk_id: i64,
    vocab: HashMap<String, i64>,
}

impl Tokenizer {
    /// Parses `wgraph.tokenizer` JSON: `{"type": "word", "lowercase": true,
    /// "max_length": 16, "pad_id": 0, "unk_id": 1, "vocab": [...]}`.
    pub fn from_metadata(json: Option<&str>) -> Result<Tokenizer, String> {
        let json = json.ok_or("the model has no `wgraph.tokenizer` metadata")?;
        let v: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("bad wgraph.tokenizer JSON: {e}"))?;
        if v["type"] != "word" {
            return Err(format!("unsupported tokenizer type {}", v["type"]));
        }
        let int = |k: &str| {
            v[k].as_i64()
                .ok_or(format!("wgraph.tokenizer needs an integer `{k}`"))
        };
        let max_length =
            usize::try_from(int("max_length")?).map_err(|_| "bad max_length".to_string())?;
        let vocab = v["vocab"]
            .as_array()
            .ok_or("wgraph.tokenizer needs a `vocab` list")?
            .iter()
            .enumerate()
            .filter_map(|(i, w)| Some((w.as_str()?.to_string(), i as i64)))
            .collect();
        Ok(Tokenizer {
            lowercase: v["lowercase"].as_bool().unwrap_or(true),
            max_length,
            pad_id: int("pad_id")?,
            unk_id: int("unk_id")?,
            vocab,
        })
    }

    /// Words and punctuation: runs of letters/digits, each other non-space
    /// character alone; unknown words map to `unk_id`; padded or truncated
    /// to `max_length`.
    pub fn encode(&self, text: &str) -> Vec<i64> {
        let text = if self.lowercase {
            text.to_lowercase()
        } else {
            text.to_string()
        };
        let mut ids = Vec::with_capacity(self.max_length);
        let mut word = String::new();
        let flush = |w: &mut String, ids: &mut Vec<i64>| {
            if !w.is_empty() {
                ids.push(self.vocab.get(w.as_str()).copied().unwrap_or(self.unk_id));
                w.clear();
            }
        };
        for c in text.chars() {
            if c.is_alphanumeric() {
                word.push(c);
            } else {
                flush(&mut word, &mut ids);
                if !c.is_whitespace() {
                    ids.push(
                        self.vocab
                            .get(c.to_string().as_str())
                            .copied()
                            .unwrap_or(self.unk_id),
                    );
                }
            }
        }
        flush(&mut word, &mut ids);
        ids.resize(self.max_length, self.pad_id);
        ids
    }
}

struct TextEncoderNode {
    model: Arc<dyn Model>,
    model_name: String,
    tokenizer: Tokenizer,
    fixed: Option<String>,
    precompute: Vec<String>,
}

impl TextEncoderNode {
    fn encode(&self, text: &str) -> Result<Value, NodeError> {
        let ids = self.tokenizer.encode(text);
        let tokens = Tensor::from_i64(&[1, ids.len()], ids)?;
        let out = run_model(&*self.model, &self.model_name, &[tokens])?;
        out.into_iter()
            .next()
            .map(Value::Tensor)
            .ok_or_else(|| NodeError::new("text encoder gave no output"))
    }
}

impl Node for TextEncoderNode {
    fn inputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::optional("text")]
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::output(&self.model.signature().outputs[0].name)]
    }
    fn infer(
        &self,
        inputs: &[Option<ValueType>],
        _: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        match (inputs.first().and_then(Option::as_ref), &self.fixed) {
            (Some(ValueType::Text), None) => {}
            (Some(ValueType::Text), Some(_)) => {
                return Err(TypeError::input(
                    0,
                    "both the `text` parameter and a wired `text` input are given; keep one",
                ));
            }
            (Some(other), _) => {
                return Err(TypeError::input(0, format!("expected text, found {other}")));
            }
            (None, Some(_)) => {}
            (None, None) => {
                return Err(TypeError::node(
                    "give a prompt: set `text = \"...\"` or wire a `text` input",
                ));
            }
        }
        let sig = self.model.signature();
        let mut b = Bindings::new();
        let tokens = TensorType::known(DType::I64, &[1, self.tokenizer.max_length]);
        b.unify(&sig.inputs[0].ty, &tokens).map_err(|why| {
            TypeError::node(format!(
                "the tokenizer makes {tokens} but model input `{}` is {}: {why}",
                sig.inputs[0].name, sig.inputs[0].ty
            ))
        })?;
        resolved_outputs(&*self.model, &b)
    }
    fn init_state(&self) -> Result<State, NodeError> {
        let mut cache = HashMap::new();
        for text in self.precompute.iter().chain(&self.fixed) {
            cache.insert(text.clone(), self.encode(text)?);
        }
        Ok(Box::new(cache))
    }
    fn live_prompt(&self) -> Option<(&'static str, String)> {
        // A fixed prompt (a wired text comes from elsewhere).
        self.fixed.clone().map(|t| ("text", t))
    }
    fn carry(&self, _: &State, cx: &CarryContext) -> Carry {
        // The cache maps text to the model's embedding: a new prompt does not
        // invalidate it (that is what makes a live prompt change cheap); a
        // new model does.
        if cx.models_changed || cx.outputs_changed {
            Carry::Fresh
        } else {
            Carry::Keep
        }
    }
    fn eval(
        &self,
        state: &mut State,
        inputs: &[Option<Value>],
        _: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        let text: &str = match (inputs.first(), &self.fixed) {
            (Some(Some(Value::Text(t))), _) => t,
            (_, Some(f)) => f,
            _ => return Err(NodeError::new("no text to encode")),
        };
        let cache = state_mut::<HashMap<String, Value>>(state)?;
        if let Some(v) = cache.get(text) {
            return Ok(vec![v.clone()]);
        }
        let v = self.encode(text)?;
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(text.to_string(), v.clone());
        Ok(vec![v])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::io::fake::{build_with, fake};
    use wgraph_engine::params::ParamValue;

    const TOK: &str = r#"{"type":"word","lowercase":true,"max_length":6,"pad_id":0,"unk_id":1,"vocab":["[pad]","[unk]","person","moves","forward","(",")","w","."]}"#;

    #[test]
    fn tokenizer_splits_words_and_punctuation() {
        let t = Tokenizer::from_metadata(Some(TOK)).unwrap();
        assert_eq!(
            t.encode("Person moves forward (W)."),
            vec![2, 3, 4, 5, 7, 6]
        );
        assert_eq!(t.encode("a ghost"), vec![1, 1, 0, 0, 0, 0]);
        assert!(
            Tokenizer::from_metadata(None)
                .unwrap_err()
                .contains("no `wgraph.tokenizer`")
        );
        assert!(
            Tokenizer::from_metadata(Some("{"))
                .unwrap_err()
                .contains("bad wgraph.tokenizer JSON")
        );
    }

    #[test]
    fn each_text_is_encoded_once() {
        let model = fake(
            &["tokens:i64:batch,6"],
            &["embedding:f32:batch,6,2"],
            &[("wgraph.role", "text_encoder"), ("wgraph.tokenizer", TOK)],
            |ins| {
                let ids = ins[0].host_i64().unwrap();
                vec![
                    Tensor::from_f32(
                        &[1, 6, 2],
                        ids.iter().flat_map(|&i| [i as f32, 0.0]).collect(),
                    )
                    .unwrap(),
                ]
            },
        );
        let node = build_with(
            &TextEncoder,
            vec![("model", ParamValue::ModelRef("m".into()))],
            vec![("m", model.clone())],
        )
        .unwrap();
        let types = node
            .infer(
                &[Some(ValueType::Text)],
                &mut wgraph_engine::node::NoInferCalls,
            )
            .unwrap();
        assert_eq!(types, vec![ValueType::tensor(DType::F32, &[1, 6, 2])]);
        let settings = wgraph_engine::settings::Settings::default();
        let mut state = node.init_state().unwrap();
        for text in ["person moves", "forward", "person moves"] {
            let mut none = wgraph_engine::node::NoCallees;
            let mut cx = TickContext::new(0, &settings, &mut none);
            node.eval(&mut state, &[Some(Value::Text(text.into()))], &mut cx)
                .unwrap();
        }
        assert_eq!(model.calls.lock().unwrap().len(), 2);
        let e = node
            .infer(&[None], &mut wgraph_engine::node::NoInferCalls)
            .unwrap_err();
        assert!(e.message.contains("give a prompt"), "{}", e.message);
    }
}
