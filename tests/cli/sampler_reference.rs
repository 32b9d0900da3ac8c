//! Every sampler against an independent NumPy implementation of its
//! published formula (tests/reference/samplers.py), on analytic denoisers
//! exported to ONNX (tests/reference/make_models.py: a flow velocity model
//! and a VP ε model), with exact step noise injected through `step_noise`.
//! The NumPy references are committed fixtures in `tests/reference/samplers/`
//! (`python3 tests/reference/samplers.py --write-fixtures` wrote them, byte
//! for byte again on a rerun): `cases.json`, the cases of the tests below;
//! the inputs they share (`noise.npy`, `step_noise.npy`, `c.npy`, `ctx.npy`)
//! and one `NAME.npy` per case, the reference output in float64. No Python
//! at test time.

use super::*;

/// The committed references and their inputs.
fn fixtures() -> PathBuf {
    root().join("tests/reference/samplers")
}

/// `cases.json`: the cases of each test, by group.
fn cases(group: &str) -> Vec<serde_json::Value> {
    let path = fixtures().join("cases.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let table: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = table[group].as_array().unwrap().clone();
    assert!(!cases.is_empty(), "no {group} cases in {}", path.display());
    cases
}

/// The values of a little-endian C-order float32 or float64 `.npy` (what
/// numpy's `np.save` writes), as f64.
fn read_npy(path: &Path) -> Vec<f64> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{}", path.display());
    let (len, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        )
    };
    let header = String::from_utf8_lossy(&bytes[start..start + len]);
    assert!(
        header.contains("'fortran_order': False"),
        "{}: {header}",
        path.display()
    );
    let data = &bytes[start + len..];
    if header.contains("'<f4'") {
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect()
    } else {
        assert!(header.contains("'<f8'"), "{}: {header}", path.display());
        data.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
}

/// The first `draws` (at least 1) of the committed step noise, as
/// `case_dir/steps.npy`.
fn step_noise(case_dir: &Path, draws: usize) -> PathBuf {
    let n = 16; // [1, 4, 2, 2]
    let all = read_npy(&fixtures().join("step_noise.npy"));
    let k = draws.max(1);
    let values: Vec<f32> = all[..k * n].iter().map(|&v| v as f32).collect();
    let path = case_dir.join("steps.npy");
    write_npy(&path, &[k, 1, 4, 2, 2], &values);
    path
}

/// The step-noise wiring of a case with `draws` draws (none for 0).
fn wire(steps: &Path, draws: u64) -> String {
    if draws > 0 {
        format!(
            "node sn: npy {{ path = \"{}\" }}\nsn.out -> sampler.step_noise\n",
            steps.display()
        )
    } else {
        String::new()
    }
}

/// Runs `graph` (its `out` node dumps the sampler's latent) for `frames`
/// ticks in `case_dir` and returns the latents of every tick, in order.
fn run(case_dir: &Path, graph: &str, frames: usize) -> Vec<f64> {
    let file = case_dir.join("g.world");
    std::fs::write(&file, graph).unwrap();
    let o = wgraph(&[
        "run",
        file.to_str().unwrap(),
        "--frames",
        &frames.to_string(),
        "--out",
        case_dir.join("run").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{graph}\n{}", stderr(&o));
    (0..frames)
        .flat_map(|t| read_npy(&case_dir.join(format!("run/out/out_{t:05}.npy"))))
        .collect()
}

/// The max abs error of wgraph's `got` against the reference `NAME.npy`.
fn max_abs_error(name: &str, got: &[f64]) -> f64 {
    let want = read_npy(&fixtures().join(format!("{name}.npy")));
    assert_eq!(got.len(), want.len(), "{name}: wgraph's output size");
    got.iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0, f64::max)
}

/// The cases of `cases.json`'s `samplers`: each sampler on the flow and VP
/// models, and on plain.onnx (no metadata) under every prediction and
/// noise process a sampler family converts, its contract written in the
/// graph's `model` declaration. Max abs error ≤ 1e-5.
#[test]
fn every_sampler_matches_its_published_formula() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let reference = root().join("tests/reference");
    // The `model` declaration of each model name: the file's own
    // metadata, or plain.onnx with the contract written in the graph.
    fn declaration(model: &str) -> (String, &str) {
        const VP: &str = "schedule = scaled_linear, beta_start = 0.00085, beta_end = 0.012";
        let (file, options) = match model {
            "flow" | "vp_eps" => (model, String::new()),
            "vp_v" => ("plain", format!("{{ role = denoiser, prediction = v, {VP} }}")),
            "vp_sample" => (
                "plain",
                format!("{{ role = denoiser, prediction = sample, {VP}, train_steps = 1000 }}"),
            ),
            "flow_sample" => ("plain", "{ role = denoiser, prediction = sample }".into()),
            "flow_t1" => (
                "plain",
                "{ role = denoiser, prediction = velocity, schedule = rectified_flow, time_scale = 1 }"
                    .into(),
            ),
            other => panic!("no model {other}"),
        };
        (options, file)
    }
    for case in cases("samplers") {
        let s = |k: &str| case[k].as_str().unwrap().to_string();
        let (name, sampler, model, params) = (s("name"), s("sampler"), s("model"), s("params"));
        let draws = case["step_noise"].as_u64().unwrap();
        let case_dir = d.join(&name);
        std::fs::create_dir(&case_dir).unwrap();
        let steps = step_noise(&case_dir, draws as usize);
        let (options, file) = declaration(&model);
        let graph = format!(
            "model m = \"{}\" {options}\nnode noise: npy {{ path = \"{}\" }}\nnode dit: denoiser {{ model = m }}\n\
             node sampler: {sampler} {{ {params}, denoiser = @dit }}\nnode out: npy_dump {{ dir = \"out\" }}\n\
             noise.out -> sampler.noise\nsampler.latent -> out.tensor\n{}",
            reference.join(format!("{file}.onnx")).display(),
            fixtures().join("noise.npy").display(),
            wire(&steps, draws),
        );
        let err = max_abs_error(&name, &run(&case_dir, &graph, 1));
        eprintln!("{name}: {sampler} on {model} ({params}): max abs error {err:.3e}");
        assert!(
            err <= 1e-5,
            "{name}: {sampler} on {model} ({params}): max abs error {err}"
        );
    }
}

/// `df_window` against diffusion forcing written in NumPy (VP
/// coordinates, DDIM η = 0): 6 ticks of a window of 3 frames on the
/// chained analytic model (`context` and `context_t` per row) — the
/// window filling on tick 0 from the wired step noise, then one call per
/// tick — with and without `chain`, a window of 1 (plain DDIM-1) and of
/// 4 (`cases.json`'s `df_window`). Error bound: 1e-5 of the largest value.
#[test]
fn df_window_matches_diffusion_forcing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = root().join("tests/reference/df_chain.onnx");
    for case in cases("df_window") {
        let name = case["name"].as_str().unwrap();
        let frames = case["frames"].as_u64().unwrap();
        let chain = case["chain"].as_bool().unwrap();
        let case_dir = d.join(name);
        std::fs::create_dir(&case_dir).unwrap();
        let steps = step_noise(&case_dir, (frames - 1) as usize);
        let chain_param = if chain { ", chain = \"context\"" } else { "" };
        let graph = format!(
            "model m = \"{}\"\nnode start: npy {{ path = \"{}\" }}\nnode noise: npy {{ path = \"{}\" }}\n\
             node sn: npy {{ path = \"{}\" }}\nnode context: start_then {{ }}\n\
             node dit: denoiser {{ model = m{chain_param} }}\n\
             node sampler: df_window {{ frames = {frames}, denoiser = @dit }}\nnode out: npy_dump {{ dir = \"out\" }}\n\
             start.out -> context.start\nfeedback sampler.latent -> context.then init zeros(1x4x2x2)\n\
             context.out -> dit.context\nnoise.out -> sampler.noise\nsn.out -> sampler.step_noise\n\
             sampler.latent -> out.tensor\n",
            model.display(),
            fixtures().join("ctx.npy").display(),
            fixtures().join("noise.npy").display(),
            steps.display(),
        );
        // Six ticks, as the reference ran.
        let got = run(&case_dir, &graph, 6);
        assert!(
            !case_dir.join("run/out/out_00006.npy").exists(),
            "{name}: more than 6 ticks"
        );
        let err = max_abs_error(name, &got);
        // The window feeds its outputs back (x̂0 at t = 999 divides by
        // √ᾱ ≈ 0.07), so values grow to 1e4 over the ticks: the bound is
        // 1e-5 of the largest value (at least 1e-5), f32 rounding well
        // inside it.
        let scale = read_npy(&fixtures().join(format!("{name}.npy")))
            .iter()
            .fold(1.0, |m: f64, v| m.max(v.abs()));
        eprintln!("{name}: max abs error {err:.3e} (largest value {scale})");
        assert!(
            err <= 1e-5 * scale,
            "df_window {frames} frames, chain {chain}: max abs error {err} (largest value {scale})"
        );
    }
}

/// The denoiser's guidance against the NumPy formulas: nested CFG (its
/// passes stacked in one call: the conditioned models have a batch
/// dimension), `guidance_interval` (some steps in, some out; VP models
/// at the flow σ of their ᾱ) and `guidance_mode = residual` (the
/// virtual residual toward zeros or toward a wired latent), on flow and
/// VP samplers, with exact step noise (`cases.json`'s `guidance`).
#[test]
fn guidance_matches_its_published_formula() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let reference = root().join("tests/reference");
    for case in cases("guidance") {
        let s = |k: &str| case[k].as_str().unwrap().to_string();
        let (name, sampler, model) = (s("name"), s("sampler"), s("model"));
        let (params, guidance) = (s("params"), s("denoiser"));
        let draws = case["step_noise"].as_u64().unwrap();
        let case_dir = d.join(&name);
        std::fs::create_dir(&case_dir).unwrap();
        let steps = step_noise(&case_dir, draws as usize);
        let graph = format!(
            "model m = \"{}\"\nnode noise: npy {{ path = \"{}\" }}\n\
             node c: npy {{ path = \"{}\" }}\nnode ctx: npy {{ path = \"{}\" }}\n\
             node dit: denoiser {{ model = m, {guidance} }}\n\
             node sampler: {sampler} {{ {params}, denoiser = @dit }}\nnode out: npy_dump {{ dir = \"out\" }}\n\
             noise.out -> sampler.noise\nc.out -> dit.c\nctx.out -> dit.ctx\nsampler.latent -> out.tensor\n{}",
            reference.join(format!("{model}.onnx")).display(),
            fixtures().join("noise.npy").display(),
            fixtures().join("c.npy").display(),
            fixtures().join("ctx.npy").display(),
            wire(&steps, draws),
        );
        let err = max_abs_error(&name, &run(&case_dir, &graph, 1));
        eprintln!("{name}: {sampler} on {model} ({params}; {guidance}): max abs error {err:.3e}");
        assert!(
            err <= 1e-5,
            "{name}: {sampler} on {model} ({params}; {guidance}): max abs error {err}"
        );
    }
}
