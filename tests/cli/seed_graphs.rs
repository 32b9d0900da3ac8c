//! The shipped graphs (`graphs/`): each renders moving frames; outputs,
//! actions, providers, `doctor` and `bench` on them.

use super::*;

const GRAPHS: [&str; 6] = [
    "yan-sim",
    "yan-gen",
    "yan-edit",
    "yume",
    "yume-blocks",
    "yume15",
];

fn frame_stats(path: &Path) -> (f64, f64) {
    let img = image::open(path).unwrap().to_rgb8();
    let px: Vec<f64> = img.as_raw().iter().map(|&b| b as f64).collect();
    let mean = px.iter().sum::<f64>() / px.len() as f64;
    let var = px.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / px.len() as f64;
    (mean, var.sqrt())
}

#[test]
fn every_seed_graph_renders_16_non_constant_frames() {
    let dir = tempfile::tempdir().unwrap();
    for g in GRAPHS {
        let out = dir.path().join(g);
        let o = wgraph(&[
            "run",
            &format!("graphs/{g}.world"),
            "--frames",
            "16",
            "--actions",
            "examples/actions/walk.txt",
            "--out",
            out.to_str().unwrap(),
            "-q",
        ]);
        // A non-finite pixel would fail the display sink (exit 3).
        assert_eq!(o.status.code(), Some(0), "{g}: {}", stderr(&o));
        let frames = pngs(&out);
        assert_eq!(frames.len(), 16, "{g}");
        for f in &frames {
            let (_, std) = frame_stats(f);
            assert!(std > 1.0, "{g}: {} is constant", f.display());
        }
        let first = image::open(&frames[0]).unwrap().to_rgb8().into_raw();
        let last = image::open(&frames[15]).unwrap().to_rgb8().into_raw();
        assert_ne!(first, last, "{g}: the world does not move");
    }
}

#[test]
fn gif_and_y4m_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let gif = dir.path().join("sim.gif");
    let o = wgraph(&[
        "run",
        "graphs/yan-sim.world",
        "--frames",
        "8",
        "--out",
        gif.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(std::fs::read(&gif).unwrap().starts_with(b"GIF89a"));
    let o = wgraph(&[
        "run",
        "graphs/yan-sim.world",
        "--frames",
        "3",
        "--out",
        "-",
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        o.stdout.starts_with(b"YUV4MPEG2 W64 H64 F16:1"),
        "{:?}",
        &o.stdout[..20.min(o.stdout.len())]
    );
    let frames = o.stdout.windows(6).filter(|w| w == b"FRAME\n").count();
    assert_eq!(frames, 3);
    assert_eq!(
        o.stdout.len(),
        o.stdout.iter().position(|&b| b == b'\n').unwrap() + 1 + 3 * (6 + 3 * 64 * 64)
    );
}

#[test]
fn the_actions_change_what_yan_sim_shows() {
    let dir = tempfile::tempdir().unwrap();
    let keys_a = dir.path().join("a.txt");
    let keys_b = dir.path().join("b.txt");
    std::fs::write(&keys_a, "W\nW\nW\nW\n").unwrap();
    std::fs::write(&keys_b, "W\nLeft\nLeft\nLeft\n").unwrap();
    let mut last = Vec::new();
    for (name, keys) in [("a", &keys_a), ("b", &keys_b)] {
        let out = dir.path().join(name);
        let o = wgraph(&[
            "run",
            "graphs/yan-sim.world",
            "--frames",
            "4",
            "--actions",
            keys.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "-q",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let frames = pngs(&out);
        last.push((
            image::open(&frames[0]).unwrap().to_rgb8().into_raw(),
            image::open(&frames[3]).unwrap().to_rgb8().into_raw(),
        ));
    }
    assert_eq!(last[0].0, last[1].0, "same keys on tick 0, same frame");
    assert_ne!(last[0].1, last[1].1, "different keys, different frames");
}

#[test]
fn provider_fallback_warns_and_strict_fails() {
    let o = wgraph(&["check", "graphs/yan-sim.world", "--provider", "cuda"]);
    let err = stderr(&o);
    if err.contains("warning") {
        // CPU-only runtime: loaded on CPU with a plain warning.
        assert_eq!(o.status.code(), Some(0), "{err}");
        assert!(err.contains("provider `cuda` is not available"), "{err}");
    } else {
        assert_eq!(o.status.code(), Some(0), "{err}");
    }
}

#[test]
fn doctor_reports_the_runtime() {
    // `doctor` looks for a WebGPU adapter too (with the wonnx feature).
    ensure_vulkan();
    let o = wgraph(&["doctor", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let text = v.to_string();
    assert!(text.contains("1.31"), "{text}");
    assert!(text.to_lowercase().contains("cpu"), "{text}");
}

#[test]
fn bench_compares_engine_and_raw_loop() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let o = wgraph(&[
        "bench",
        "graphs/yan-sim.world",
        "--baseline",
        "raw",
        "--frames",
        "4",
        "--rounds",
        "2",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let raw = v["raw_ms_per_tick"].as_f64().unwrap();
    let engine = v["engine_ms_per_tick"].as_f64().unwrap();
    assert!(raw > 0.0 && engine > 0.0);
    assert!((v["engine_over_raw"].as_f64().unwrap() - engine / raw).abs() < 1e-9);
    let (p50, p99) = (
        v["action_to_frame_p50_ms"].as_f64().unwrap(),
        v["action_to_frame_p99_ms"].as_f64().unwrap(),
    );
    assert!(p50 > 0.0 && p99 >= p50, "{v}");
    // encoder once (cached) + action embedder per new key set + 4 denoiser calls + decoder per tick
    let calls = v["model_calls_per_tick"].as_f64().unwrap();
    assert!((5.0..=7.0).contains(&calls), "{calls}");
    assert!(v["quality"].is_null(), "no ground truth asked for");
}

#[test]
fn bench_has_quality_columns_with_a_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let o = wgraph(&[
        "bench",
        "graphs/yan-sim.world",
        "--frames",
        "4",
        "--rounds",
        "1",
        "--json",
        json.to_str().unwrap(),
        "--world-seed",
        "1004",
        "--actions",
        "examples/actions/walk.txt",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["quality"]["world_seed"], 1004);
    assert_eq!(v["quality"]["psnr_per_tick"].as_array().unwrap().len(), 4);
}

/// The least mean absolute difference (0–255 pixels) two global captions
/// must make in `yan_gen_frames_follow_the_global_caption`.
const MIN_CAPTION_EFFECT: f64 = 4.0;

/// The RGB frames of `wgraph run GRAPH --frames N EXTRA...` into `dir/name`.
fn run_frames(dir: &Path, name: &str, graph: &str, frames: usize, extra: &[&str]) -> Vec<Vec<u8>> {
    let out = dir.join(name);
    let n = frames.to_string();
    let mut args = vec![
        "run",
        graph,
        "--frames",
        &n,
        "--out",
        out.to_str().unwrap(),
        "-q",
    ];
    args.extend_from_slice(extra);
    let o = wgraph(&args);
    assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
    let pngs = pngs(&out);
    assert_eq!(pngs.len(), frames, "{name}");
    pngs.iter()
        .map(|f| image::open(f).unwrap().to_rgb8().into_raw())
        .collect()
}

/// Mean absolute difference (0–255) between two runs' frames, from frame `from` on.
fn mean_abs_difference(a: &[Vec<u8>], b: &[Vec<u8>], from: usize) -> f64 {
    let (mut sum, mut n) = (0.0f64, 0usize);
    for (a, b) in a.iter().zip(b).skip(from) {
        for (x, y) in a.iter().zip(b) {
            sum += (f64::from(*x) - f64::from(*y)).abs();
            n += 1;
        }
    }
    sum / n.max(1) as f64
}

/// Yan-Gen's trained denoiser obeys its global caption: the same start
/// frame, keys and noise under two captions of the ground-truth world
/// ("a torch-lit stone dungeon corridor ...", the graph's own, and "a snowy
/// forest path between hedges") give frames that differ by a measurable
/// amount (mean absolute difference over the run, 0–255 pixels).
#[test]
fn yan_gen_frames_follow_the_global_caption() {
    let dir = tempfile::tempdir().unwrap();
    let run =
        |name: &str, extra: &[&str]| run_frames(dir.path(), name, "graphs/yan-gen.world", 6, extra);
    let own = run("own", &[]);
    let again = run("again", &[]);
    assert_eq!(own, again, "a run with the same caption is deterministic");
    let forest = run(
        "forest",
        &[
            "--set",
            "global.text=\"a snowy forest path between hedges\"",
        ],
    );
    let mad = mean_abs_difference(&own, &forest, 0);
    assert!(
        mad > MIN_CAPTION_EFFECT,
        "mean abs difference {mad:.2} (0-255)"
    );
}

/// The least mean absolute difference (0–255 pixels) "a ghost appears" at
/// tick 1 must make in `yume15_frames_follow_the_event_text`.
const MIN_EVENT_EFFECT: f64 = 4.0;

/// Yume 1.5 runs its trained denoiser and obeys its event stream: the same
/// start frame, keys and noise with the graph's schedule (no event in the
/// first 4 ticks) and with "a ghost appears" from tick 1 give frames that
/// differ by a measurable amount (mean absolute difference, 0–255 pixels).
#[test]
fn yume15_frames_follow_the_event_text() {
    let graph = std::fs::read_to_string("graphs/yume15.world").unwrap();
    assert!(
        graph.contains("\"../models-onnx/trained/dit_yume15.onnx\""),
        "yume15 runs the trained denoiser"
    );
    let dir = tempfile::tempdir().unwrap();
    let run =
        |name: &str, extra: &[&str]| run_frames(dir.path(), name, "graphs/yume15.world", 4, extra);
    let own = run("own", &[]);
    let ghost = run(
        "ghost",
        &[
            "--set",
            "events.schedule=[\"0: a quiet street at dusk\", \"1: a ghost appears\"]",
        ],
    );
    assert_eq!(own[0], ghost[0], "tick 0 has the same event text in both");
    let mad = mean_abs_difference(&own, &ghost, 1);
    assert!(
        mad > MIN_EVENT_EFFECT,
        "mean abs difference {mad:.2} (0-255)"
    );
}

/// The decoder fine-tuned on generated latents (`train_decoder.py`) is one
/// `--set` away in the graphs that declare it, and it puts back detail the
/// shipped decoder smooths away: same rollouts (the latents do not depend
/// on the decoder), more high-frequency power in every frame after the first.
#[test]
fn the_rollout_decoder_keeps_more_detail_of_the_same_rollout() {
    let dir = tempfile::tempdir().unwrap();
    let graph = root().join("graphs/yan-sim.world");
    let graph = graph.to_str().unwrap();
    let shipped = run_frames(dir.path(), "shipped", graph, 6, &[]);
    let rollout = run_frames(
        dir.path(),
        "rollout",
        graph,
        6,
        &["--set", "decode.model=vae_decoder_rollout"],
    );
    let hf = |raw: &Vec<u8>| {
        let img = image::RgbImage::from_raw(64, 64, raw.clone()).unwrap();
        wgraph_lab::quality::hf_power(&img)
    };
    for (t, (a, b)) in shipped.iter().zip(&rollout).enumerate().skip(1) {
        assert!(
            hf(b) > 2.0 * hf(a),
            "frame {t}: detail {:.1} with the rollout decoder, {:.1} shipped",
            hf(b),
            hf(a)
        );
    }
    let d = mean_abs_difference(&shipped, &rollout, 0);
    assert!(d > 1.0 && d < 40.0, "mean |Δ| {d:.2}/255");
}
