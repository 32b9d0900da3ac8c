//! A Triton model repository for a graph's models (`wgraph triton-repo`).
//!
//! One folder per model, named after the graph's `model` declaration (the
//! naming rule the backend asks by): `config.pbtxt` with the ports' dtypes
//! and shapes from the ONNX file, and `1/model.onnx` (external-data files
//! beside it under their own names, as the file refers to them). A model
//! whose every input and output starts with a symbolic axis has a batch
//! axis: `max_batch_size` (the axis left out of `dims`) and dynamic batching
//! with a small `max_queue_delay_microseconds`. The `wgraph.*` metadata
//! goes into `parameters`, so the server describes the model's contract too.
//!
//! Two flavours ([`Platform`]): `onnxruntime` (Triton's ONNX Runtime
//! backend, which also runs TensorRT: GPU servers) and `python` (Triton's
//! python backend running `1/model.py`, [`MODEL_PY`], which runs the ONNX
//! file with onnxruntime on the CPU: what the `nvidia-pytriton` wheel can
//! run). In the python flavour the requests Triton's dynamic batcher hands
//! one `execute` are stacked on the batch axis and run as one onnxruntime
//! call (split back per request; each runs alone when they cannot be
//! stacked or the stacked call fails).

use crate::onnx::{LocalDim, LocalModel, LocalPort};
use crate::triton_dtype;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Which Triton backend runs the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// `platform: "onnxruntime_onnx"` (GPU servers; TensorRT through it).
    OnnxRuntime,
    /// `backend: "python"` with [`MODEL_PY`] (CPU, the PyPI wheel).
    Python,
}

/// How the repository's models are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepoOptions {
    pub platform: Platform,
    /// Dynamic batching's wait for more requests (µs). Keep it small: a lone
    /// stream waits this long on every call.
    pub max_queue_delay_us: u64,
    /// Instances of each model (`instance_group { count }`).
    pub instances: u32,
    /// `max_batch_size` of a model with a batch axis.
    pub max_batch: u32,
}

impl Default for RepoOptions {
    fn default() -> Self {
        RepoOptions {
            platform: Platform::Python,
            max_queue_delay_us: 100,
            instances: 1,
            max_batch: 8,
        }
    }
}

/// The python backend's model: runs `model.onnx` beside it with
/// onnxruntime on the CPU, one call per request.
pub const MODEL_PY: &str = r#"# Written by `wgraph triton-repo --platform python`: Triton's python backend
# running this folder's model.onnx with onnxruntime on the CPU.
import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        here = os.path.dirname(os.path.abspath(__file__))
        options = ort.SessionOptions()
        self.session = ort.InferenceSession(
            os.path.join(here, "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.config = json.loads(args["model_config"])

    def execute(self, requests):
        # The requests Triton's dynamic batcher gave this call run as one
        # batch (stacked on the batch axis, split back) when they can.
        if len(requests) > 1 and self.config.get("max_batch_size", 0) > 0:
            fused = self._fused(requests)
            if fused is not None:
                return fused
        return [self._one(request) for request in requests]

    def _feed(self, request):
        feed = {}
        for name in self.inputs:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is None:
                raise ValueError("missing input `%s`" % name)
            feed[name] = tensor.as_numpy()
        return feed

    def _answer(self, results):
        tensors = [
            pb_utils.Tensor(name, np.ascontiguousarray(value))
            for name, value in zip(self.outputs, results)
        ]
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def _one(self, request):
        try:
            return self._answer(self.session.run(self.outputs, self._feed(request)))
        except Exception as e:  # one bad request fails alone
            return pb_utils.InferenceResponse(
                output_tensors=[], error=pb_utils.TritonError(str(e))
            )

    def _fused(self, requests):
        # None (each request then runs alone) when the requests cannot be
        # stacked or the stacked run fails.
        try:
            feeds = [self._feed(request) for request in requests]
            if not self.inputs:
                return None
            rows = []
            for feed in feeds:
                n = None
                for name in self.inputs:
                    value, first = feed[name], feeds[0][name]
                    if value.ndim == 0 or value.dtype != first.dtype or value.shape[1:] != first.shape[1:]:
                        return None
                    if n is None:
                        n = value.shape[0]
                    elif value.shape[0] != n:
                        return None
                rows.append(n)
            stacked = {name: np.concatenate([feed[name] for feed in feeds]) for name in self.inputs}
            results = self.session.run(self.outputs, stacked)
            if any(np.ndim(value) == 0 or len(value) != sum(rows) for value in results):
                return None
        except Exception:
            return None
        responses, start = [], 0
        for n in rows:
            responses.append(self._answer([value[start:start + n] for value in results]))
            start += n
        return responses
"#;

/// A string in protobuf text format.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\{:03o}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// True when every port starts with a symbolic axis (the batch).
pub fn has_batch_axis(model: &LocalModel) -> bool {
    let ports: Vec<&LocalPort> = model.inputs.iter().chain(&model.outputs).collect();
    !ports.is_empty()
        && ports
            .iter()
            .all(|p| matches!(p.dims.first(), Some(LocalDim::Sym(_))))
}

fn ports(out: &mut String, what: &str, ports: &[LocalPort], skip: usize) -> Result<(), String> {
    let _ = writeln!(out, "{what} [");
    for (i, p) in ports.iter().enumerate() {
        let dtype = p.dtype.ok_or_else(|| {
            format!(
                "{what} `{}` has a dtype Triton configs cannot name here",
                p.name
            )
        })?;
        let dims: Vec<String> = p.dims[skip.min(p.dims.len())..]
            .iter()
            .map(|d| match d {
                LocalDim::Known(n) => n.to_string(),
                LocalDim::Sym(_) => "-1".to_string(),
            })
            .collect();
        // A port that is only its batch axis (a timestep `[batch]`):
        // Triton's dims may not be empty, so it travels as `[batch, 1]` and
        // the model sees `[batch]`.
        let (dims, reshape) = if dims.is_empty() && skip == 1 {
            ("1".to_string(), "\n    reshape: { shape: [ ] }")
        } else if dims.is_empty() {
            return Err(format!(
                "{what} `{}` is a scalar; Triton configs need at least one dimension",
                p.name
            ));
        } else {
            (dims.join(", "), "")
        };
        let comma = if i + 1 < ports.len() { "," } else { "" };
        let _ = writeln!(
            out,
            "  {{\n    name: {}\n    data_type: TYPE_{}\n    dims: [ {dims} ]{reshape}\n  }}{comma}",
            quote(&p.name),
            triton_dtype(dtype),
        );
    }
    out.push_str("]\n");
    Ok(())
}

/// `config.pbtxt` of the model `name` whose ONNX file says `model`.
pub fn config_pbtxt(
    name: &str,
    model: &LocalModel,
    options: &RepoOptions,
) -> Result<String, String> {
    let mut out = String::new();
    let _ = writeln!(out, "# Written by `wgraph triton-repo`.");
    let _ = writeln!(out, "name: {}", quote(name));
    match options.platform {
        Platform::OnnxRuntime => {
            let _ = writeln!(out, "platform: \"onnxruntime_onnx\"");
        }
        Platform::Python => {
            let _ = writeln!(out, "backend: \"python\"");
        }
    }
    let batch = has_batch_axis(model);
    let skip = usize::from(batch);
    let _ = writeln!(
        out,
        "max_batch_size: {}",
        if batch { options.max_batch } else { 0 }
    );
    ports(&mut out, "input", &model.inputs, skip)?;
    ports(&mut out, "output", &model.outputs, skip)?;
    if batch {
        let _ = writeln!(
            out,
            "dynamic_batching {{\n  max_queue_delay_microseconds: {}\n}}",
            options.max_queue_delay_us
        );
    }
    let kind = match options.platform {
        Platform::Python => "\n    kind: KIND_CPU",
        Platform::OnnxRuntime => "",
    };
    let _ = writeln!(
        out,
        "instance_group [\n  {{\n    count: {}{kind}\n  }}\n]",
        options.instances.max(1)
    );
    let meta: Vec<_> = model
        .metadata
        .iter()
        .filter(|(k, _)| k.starts_with("wgraph."))
        .collect();
    if !meta.is_empty() {
        out.push_str("parameters [\n");
        for (i, (k, v)) in meta.iter().enumerate() {
            let comma = if i + 1 < meta.len() { "," } else { "" };
            let _ = writeln!(
                out,
                "  {{\n    key: {}\n    value: {{ string_value: {} }}\n  }}{comma}",
                quote(k),
                quote(v)
            );
        }
        out.push_str("]\n");
    }
    Ok(out)
}

/// Writes the folder of model `name` under `repo`: `config.pbtxt`,
/// `1/model.onnx` (a copy of `files[0]`), the other `files` (external data)
/// beside it under their own names, and `1/model.py` for
/// [`Platform::Python`]. Returns the files written.
pub fn write_model(
    repo: &Path,
    name: &str,
    files: &[PathBuf],
    options: &RepoOptions,
) -> Result<Vec<PathBuf>, String> {
    let Some(onnx) = files.first() else {
        return Err(format!("model `{name}`: no file"));
    };
    let local = LocalModel::read(onnx)?;
    let config = config_pbtxt(name, &local, options).map_err(|e| format!("model `{name}`: {e}"))?;
    let folder = repo.join(name);
    let version = folder.join("1");
    std::fs::create_dir_all(&version)
        .map_err(|e| format!("cannot create {}: {e}", version.display()))?;
    let mut written = Vec::new();
    let write = |path: PathBuf, bytes: &[u8]| -> Result<PathBuf, String> {
        std::fs::write(&path, bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    };
    written.push(write(folder.join("config.pbtxt"), config.as_bytes())?);
    let copy = |from: &Path, to: PathBuf| -> Result<PathBuf, String> {
        std::fs::copy(from, &to)
            .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))?;
        Ok(to)
    };
    written.push(copy(onnx, version.join("model.onnx"))?);
    for data in &files[1..] {
        let Some(file_name) = data.file_name() else {
            continue;
        };
        written.push(copy(data, version.join(file_name))?);
    }
    if options.platform == Platform::Python {
        written.push(write(version.join("model.py"), MODEL_PY.as_bytes())?);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wgraph_engine::tensor::DType;

    #[test]
    fn a_batched_model_gets_dynamic_batching_and_its_metadata() {
        let port = |name: &str, dims: Vec<LocalDim>| LocalPort {
            name: name.into(),
            dtype: Some(DType::F32),
            dims,
        };
        let model = LocalModel {
            inputs: vec![port(
                "x",
                vec![LocalDim::Sym(Some("batch".into())), LocalDim::Known(16)],
            )],
            outputs: vec![port("y", vec![LocalDim::Sym(None), LocalDim::Sym(None)])],
            metadata: [
                ("wgraph.role".to_string(), "denoiser".to_string()),
                ("wgraph.note".to_string(), "say \"hi\"\n".to_string()),
                ("other".to_string(), "x".to_string()),
            ]
            .into(),
        };
        let text = config_pbtxt("dit", &model, &RepoOptions::default()).unwrap();
        for want in [
            "name: \"dit\"",
            "backend: \"python\"",
            "max_batch_size: 8",
            "data_type: TYPE_FP32\n    dims: [ 16 ]",
            "dims: [ -1 ]",
            "max_queue_delay_microseconds: 100",
            "kind: KIND_CPU",
            "key: \"wgraph.note\"\n    value: { string_value: \"say \\\"hi\\\"\\n\" }",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        assert!(!text.contains("other"));
        let fixed = LocalModel {
            inputs: vec![port("x", vec![LocalDim::Known(1), LocalDim::Known(16)])],
            ..model
        };
        let text = config_pbtxt(
            "dit",
            &fixed,
            &RepoOptions {
                platform: Platform::OnnxRuntime,
                ..RepoOptions::default()
            },
        )
        .unwrap();
        assert!(text.contains("max_batch_size: 0") && !text.contains("dynamic_batching"));
        assert!(text.contains("dims: [ 1, 16 ]") && text.contains("onnxruntime_onnx"));
    }
}
