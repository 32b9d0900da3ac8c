//! Real PyTorch models (conv net, attention, layer norm, a transformer with
//! dynamic axes, a KV-cache decoder), exported by `tests/models/export.py`
//! with the exporters' default port names, run through `.world` graphs with
//! the generic `model` kind and compared with onnxruntime's own outputs
//! (`NAME.out.K.npy`, written by the same script). Also the `byo-model`
//! example, run exactly as the README says.

use super::*;
use wgraph_engine::npy::read_npy_file;
use wgraph_engine::tensor::Tensor;

/// Largest allowed difference from onnxruntime's outputs. On CPU the runs
/// are bit-exact (the same kernels run); the margin is for an onnxruntime
/// build or version other than the one that wrote the references.
const TOL: f32 = 1e-5;

fn models() -> PathBuf {
    root().join("tests/models")
}

fn npy(path: &Path) -> Tensor {
    read_npy_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A port as a graph writes it: quoted unless it is an identifier.
fn port(name: &str) -> String {
    let mut chars = name.chars();
    let ident = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ident {
        name.to_string()
    } else {
        format!("{name:?}")
    }
}

/// The largest absolute difference between `got` and `want` (same shape).
fn max_abs(what: &str, got: &Tensor, want: &Tensor) -> f32 {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let (g, w) = (got.host_f32().unwrap(), want.host_f32().unwrap());
    g.iter()
        .zip(w)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

/// Writes `text` to DIR/g.world, checks it, runs it for `frames` ticks into
/// DIR/run and returns that directory.
fn run(dir: &Path, text: &str, frames: usize) -> PathBuf {
    let file = dir.join("g.world");
    std::fs::write(&file, text).unwrap();
    let o = wgraph(&["check", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{text}\n{}", stderr(&o));
    let out = dir.join("run");
    let frames = frames.to_string();
    let o = wgraph(&[
        "run",
        file.to_str().unwrap(),
        "--frames",
        &frames,
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(0), "{text}\n{}", stderr(&o));
    out
}

/// One model node `net` running `tests/models/MODEL.onnx`, each input port
/// fed by an `npy` node, output K dumped by `npy_dump` node `oK` into `o/`.
fn graph(model: &str, inputs: &[(&str, PathBuf)], outputs: &[&str]) -> String {
    let mut g = format!(
        "model m = {:?}\nnode net: model {{ model = m }}\n",
        models().join(format!("{model}.onnx")).display().to_string()
    );
    for (i, (name, file)) in inputs.iter().enumerate() {
        g += &format!(
            "node in{i}: npy {{ path = {:?} }}\nin{i}.out -> net.{}\n",
            file.display().to_string(),
            port(name)
        );
    }
    for (k, name) in outputs.iter().enumerate() {
        g += &format!(
            "node o{k}: npy_dump {{ dir = \"o\" }}\nnet.{} -> o{k}.tensor\n",
            port(name)
        );
    }
    g
}

/// Runs `model` once on the inputs `STEM.in.PORT.npy` and compares every
/// output with onnxruntime's `STEM.out.K.npy`; returns the largest error.
fn matches_onnxruntime(model: &str, stem: &str, inputs: &[&str], outputs: &[&str]) -> f32 {
    let dir = tempfile::tempdir().unwrap();
    let sanitised = |p: &str| p.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
    let ins: Vec<(&str, PathBuf)> = inputs
        .iter()
        .map(|&p| (p, models().join(format!("{stem}.in.{}.npy", sanitised(p)))))
        .collect();
    let out = run(dir.path(), &graph(model, &ins, outputs), 1);
    let mut worst = 0.0f32;
    for k in 0..outputs.len() {
        let got = npy(&out.join(format!("o/o{k}_00000.npy")));
        let want = npy(&models().join(format!("{stem}.out.{k}.npy")));
        let err = max_abs(&format!("{stem} output {k}"), &got, &want);
        assert!(err <= TOL, "{stem} output {k}: max abs error {err}");
        worst = worst.max(err);
    }
    eprintln!("{stem}: max abs error vs onnxruntime {worst}");
    worst
}

#[test]
fn conv_net_matches_onnxruntime() {
    // Conv, folded and unfolded BatchNorm, ReLU, GELU (Erf), max and global
    // average pooling, Gemm; outputs `33` (logits) and `h` (feature map).
    matches_onnxruntime("convnet", "convnet", &["input.1"], &["33", "h"]);
}

#[test]
fn multihead_attention_matches_onnxruntime() {
    // nn.MultiheadAttention as cross-attention: attended values and weights.
    matches_onnxruntime(
        "attention",
        "attention",
        &["query.1", "key.1"],
        &["140", "139"],
    );
}

#[test]
fn layer_norm_matches_onnxruntime() {
    matches_onnxruntime("layernorm", "layernorm", &["input"], &["3"]);
}

const TRANSFORMER_IN: [&str; 3] = ["input.1", "input.3", "onnx::Unsqueeze_2"];
const TRANSFORMER_OUT: [&str; 2] = ["317", "314"];

#[test]
fn transformer_with_dynamic_axes_matches_onnxruntime_at_two_shapes() {
    // Token ids, position ids (i64) and a padding mask (f32), all
    // [batch, seq]; one model file, two shapes.
    for stem in ["transformer.b2s7", "transformer.b1s4"] {
        matches_onnxruntime("transformer", stem, &TRANSFORMER_IN, &TRANSFORMER_OUT);
    }
    // `batch` and `seq` bind across inputs: a mask of another shape is
    // refused at check time, naming the port and the dimension.
    let mut ins: Vec<(&str, PathBuf)> = TRANSFORMER_IN
        .iter()
        .map(|p| {
            let file = p.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
            (*p, models().join(format!("transformer.b2s7.in.{file}.npy")))
        })
        .collect();
    ins[2].1 = models().join("transformer.b1s4.in.onnx__Unsqueeze_2.npy");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("g.world");
    std::fs::write(&file, graph("transformer", &ins, &TRANSFORMER_OUT)).unwrap();
    let o = wgraph(&["check", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains(
            "model input `onnx::Unsqueeze_2` expects f32[batch, seq], found f32[1, 4]: \
             dimension 0 (`batch`) is 1 here but 2 elsewhere"
        ),
        "{err}"
    );
}

#[test]
fn kv_cache_decoder_feeds_its_cache_back_tick_by_tick() {
    // One token per tick; each layer's `present.L.key/value` comes back as
    // `past_key_values.L.key/value` on the next tick (a fixed-size rolling
    // cache: a feedback edge carries one type, so a cache that grows by a
    // token per tick is refused at check time).
    let m = models();
    let path = |f: &str| format!("{:?}", m.join(f).display().to_string());
    let mut g = format!(
        "model m = {}\nnode dec: model {{ model = m }}\n\
         node ids: npy {{ path = {}, sequence = true }}\n\
         node pos: npy {{ path = {}, sequence = true }}\n\
         node logits: npy_dump {{ dir = \"o\" }}\n\
         node cache: npy_dump {{ dir = \"o\" }}\n\
         ids.out -> dec.input_ids\npos.out -> dec.position_ids\n\
         dec.logits -> logits.tensor\ndec.\"present.0.key\" -> cache.tensor\n",
        path("kv_decoder.onnx"),
        path("kv.input_ids.npy"),
        path("kv.position_ids.npy"),
    );
    for layer in 0..2 {
        for kv in ["key", "value"] {
            g += &format!(
                "feedback dec.\"present.{layer}.{kv}\" -> dec.\"past_key_values.{layer}.{kv}\" \
                 init zeros(1x2x6x8)\n"
            );
        }
    }
    let want = npy(&m.join("kv.logits.npy"));
    let ticks = want.shape()[0];
    assert!(ticks > 6, "the cache (6 slots) rolls over");
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &g, ticks);
    let per_tick = want.len() / ticks;
    let mut worst = 0.0f32;
    for t in 0..ticks {
        let got = npy(&out.join(format!("o/logits_{t:05}.npy")));
        let w = &want.host_f32().unwrap()[t * per_tick..(t + 1) * per_tick];
        let want_t = Tensor::from_f32(&want.shape()[1..], w.to_vec()).unwrap();
        let err = max_abs(&format!("tick {t}"), &got, &want_t);
        assert!(err <= TOL, "tick {t}: max abs error {err}");
        worst = worst.max(err);
    }
    let last = npy(&out.join(format!("o/cache_{:05}.npy", ticks - 1)));
    let err = max_abs(
        "present.0.key",
        &last,
        &npy(&m.join("kv.present_0_key.npy")),
    );
    assert!(err <= TOL, "last cache: max abs error {err}");
    eprintln!("kv_decoder: {ticks} ticks, max abs error vs onnxruntime {worst}");
}

/// The README's command for the example, as written there.
fn readme_command() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let line = readme
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("wgraph run examples/byo-model/next_frame.world"))
        .expect("the README shows how to run examples/byo-model");
    line.split_whitespace().skip(1).map(String::from).collect()
}

#[test]
fn byo_model_example_runs_as_the_readme_says() {
    let mut args = readme_command();
    assert_eq!(
        args,
        [
            "run",
            "examples/byo-model/next_frame.world",
            "--frames",
            "8",
            "--out",
            "out/byo"
        ]
    );
    // Same command, its output directory moved into a temporary one.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out/byo");
    *args.last_mut().unwrap() = out.to_str().unwrap().to_string();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = wgraph(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let frames = pngs(&out);
    assert_eq!(frames.len(), 8, "{frames:?}");
    // The keys moved the picture.
    let first = std::fs::read(&frames[0]).unwrap();
    assert_ne!(first, std::fs::read(&frames[7]).unwrap());
}
