//! Every sampler against an independent NumPy implementation of its
//! published formula (tests/reference/samplers.py), on analytic denoisers
//! exported to ONNX (tests/reference/make_models.py: a flow velocity model
//! and a VP ε model), with exact step noise injected through `step_noise`.

use super::*;

/// An interpreter with numpy: `$WGRAPH_PYTHON`, `python3` if it has
/// numpy, else the environment `wgraph bench --baseline python` makes.
pub(crate) fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("WGRAPH_PYTHON") {
        return PathBuf::from(p);
    }
    let has_numpy = |p: &Path| {
        Command::new(p)
            .args(["-c", "import numpy"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if has_numpy(Path::new("python3")) {
        return PathBuf::from("python3");
    }
    // wgraph's cache folder, as backend-ort/src/runtime.rs finds it.
    let nonempty = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let home = nonempty("WGRAPH_CACHE_DIR")
        .or_else(|| {
            nonempty("XDG_CACHE_HOME")
                .filter(|x| x.is_absolute())
                .map(|x| x.join("wgraph"))
        })
        .or_else(|| nonempty("HOME").map(|h| h.join(".cache/wgraph")))
        .expect("a cache folder");
    let venv = home.join("python-baseline/bin/python");
    if !has_numpy(&venv) {
        // wgraph makes it (onnxruntime + numpy) on first use.
        let o = wgraph(&[
            "bench",
            "graphs/yan-sim.world",
            "--baseline",
            "python",
            "--frames",
            "1",
            "--rounds",
            "1",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    venv
}

#[test]
fn every_sampler_matches_its_published_formula() {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let n = 16; // [1, 4, 2, 2]
    let noise: Vec<f32> = (0..n).map(|i| (i as f32 * 1.3).cos()).collect();
    let steps_noise: Vec<f32> = (0..8 * n).map(|i| (i as f32 * 0.37).sin()).collect();
    write_npy(&d.join("noise.npy"), &[1, 4, 2, 2], &noise);
    let reference = root().join("tests/reference");
    // (sampler, model, parameters, steps of step noise; 0: none wired)
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], usize);
    let cases: &[Case] = &[
        ("euler", "flow", &[("steps", "4"), ("shift", "3.0")], 0),
        ("euler", "vp_eps", &[("steps", "4"), ("shift", "1.0")], 0),
        // Dynamic shift: 4 tokens (patch 1) → μ = 0.5 + (4 − 1)/7, shift e^μ ≈ 2.5.
        (
            "euler",
            "flow",
            &[
                ("steps", "4"),
                ("dynamic_shift", "true"),
                ("base_shift", "0.5"),
                ("max_shift", "1.5"),
                ("base_tokens", "1.0"),
                ("max_tokens", "8.0"),
                ("patch", "1"),
            ],
            0,
        ),
        (
            "sde",
            "flow",
            &[("steps", "3"), ("dynamic_shift", "true"), ("eta", "0.3")],
            3,
        ),
        (
            "sde",
            "flow",
            &[("steps", "4"), ("shift", "3.0"), ("eta", "0.3")],
            4,
        ),
        (
            "sde",
            "vp_eps",
            &[("steps", "3"), ("shift", "1.0"), ("eta", "0.5")],
            3,
        ),
        (
            "tts_ode",
            "flow",
            &[
                ("steps", "4"),
                ("shift", "1.0"),
                ("interval", "2"),
                ("depth", "2"),
            ],
            0,
        ),
        (
            "tts_sde",
            "flow",
            &[
                ("steps", "5"),
                ("shift", "2.0"),
                ("interval", "2"),
                ("depth", "2"),
                ("eta", "0.3"),
            ],
            5,
        ),
        (
            "self_forcing",
            "flow",
            &[("timesteps", "[1000, 750, 500, 250]"), ("shift", "5.0")],
            3,
        ),
        (
            "self_forcing",
            "vp_eps",
            &[("timesteps", "[1000, 600, 300]"), ("shift", "3.0")],
            2,
        ),
        ("ddim", "vp_eps", &[("steps", "4"), ("eta", "0.0")], 0),
        ("ddim", "vp_eps", &[("steps", "3"), ("eta", "0.5")], 3),
        ("ddim", "flow", &[("steps", "4"), ("eta", "0.0")], 0),
        // A model with no metadata (plain.onnx), its contract given in
        // the graph's `model` declaration: every prediction and noise
        // process each sampler family converts.
        ("ddim", "vp_v", &[("steps", "4"), ("eta", "0.0")], 0),
        ("ddim", "vp_sample", &[("steps", "3"), ("eta", "0.5")], 3),
        ("ddim", "flow_sample", &[("steps", "4"), ("eta", "0.0")], 0),
        ("euler", "vp_v", &[("steps", "4"), ("shift", "2.0")], 0),
        (
            "euler",
            "flow_sample",
            &[("steps", "4"), ("shift", "3.0")],
            0,
        ),
        ("euler", "flow_t1", &[("steps", "4"), ("shift", "3.0")], 0),
        (
            "sde",
            "vp_sample",
            &[("steps", "3"), ("shift", "1.0"), ("eta", "0.3")],
            3,
        ),
        // AAM: the published operator (A⁺A = I), a rank-deficient
        // kernel (a real projection), and a Gaussian low-pass.
        (
            "aam",
            "flow",
            &[("steps", "4"), ("shift", "3.0"), ("refine", "2")],
            0,
        ),
        (
            "aam",
            "flow",
            &[
                ("steps", "4"),
                ("refine", "3"),
                ("kernel_w", "[0.5, 0.5, 0.5]"),
                ("kernel_h", "[1.0, 1.0, 1.0]"),
            ],
            0,
        ),
        (
            "aam",
            "vp_eps",
            &[
                ("steps", "3"),
                ("refine", "2"),
                ("filter", "\"gaussian\""),
                ("blur_sigma", "0.7"),
            ],
            0,
        ),
    ];
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
    for (i, (sampler, model, kv, noise_steps)) in cases.iter().enumerate() {
        let params: String = kv
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let case_dir = d.join(format!("case{i}"));
        std::fs::create_dir(&case_dir).unwrap();
        let steps_path = case_dir.join("steps.npy");
        let k = (*noise_steps).max(1);
        write_npy(&steps_path, &[k, 1, 4, 2, 2], &steps_noise[..k * n]);
        let wire = if *noise_steps > 0 {
            format!(
                "node sn: npy {{ path = \"{}\" }}\nsn.out -> sampler.step_noise\n",
                steps_path.display()
            )
        } else {
            String::new()
        };
        let (options, file) = declaration(model);
        let graph = format!(
            "model m = \"{}\" {options}\nnode noise: npy {{ path = \"{}\" }}\nnode dit: denoiser {{ model = m }}\n\
             node sampler: {sampler} {{ {params}, denoiser = @dit }}\nnode out: npy_dump {{ dir = \"out\" }}\n\
             noise.out -> sampler.noise\nsampler.latent -> out.tensor\n{wire}",
            reference.join(format!("{file}.onnx")).display(),
            d.join("noise.npy").display()
        );
        // The parameters as JSON for the reference.
        let mut case = serde_json::json!({ "sampler": sampler, "model": model });
        for (k, v) in kv.iter() {
            case[*k] = serde_json::from_str(v).unwrap();
        }
        let err = run_and_compare(
            &python,
            &case_dir,
            &graph,
            &case,
            &d.join("noise.npy"),
            None,
        );
        assert!(
            err <= 1e-5,
            "{sampler} on {model} ({params}): max abs error {err}"
        );
    }
}

/// Runs `graph` (its `out` node dumps the sampler's latent) for one
/// tick in `case_dir` and returns the reference's max abs error on
/// `case` (`case_dir/steps.npy` holds the step noise; `conds`, the
/// folder of c.npy and ctx.npy for guided cases).
fn run_and_compare(
    python: &Path,
    case_dir: &Path,
    graph: &str,
    case: &serde_json::Value,
    noise: &Path,
    conds: Option<&Path>,
) -> f64 {
    let file = case_dir.join("g.world");
    std::fs::write(&file, graph).unwrap();
    let o = wgraph(&[
        "run",
        file.to_str().unwrap(),
        "--frames",
        "1",
        "--out",
        case_dir.join("run").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{case}: {}", stderr(&o));
    let out = case_dir.join("run/out/out_00000.npy");
    let case_path = case_dir.join("case.json");
    std::fs::write(&case_path, case.to_string()).unwrap();
    let r = Command::new(python)
        .arg(root().join("tests/reference/samplers.py"))
        .args([
            &case_path,
            &noise.to_path_buf(),
            &case_dir.join("steps.npy"),
            &out,
        ])
        .args(conds)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let j: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    eprintln!("{case}: {j}");
    j["max_abs_error"].as_f64().unwrap()
}

/// `df_window` against diffusion forcing written in NumPy (VP
/// coordinates, DDIM η = 0): 6 ticks of a window of 3 frames on the
/// chained analytic model (`context` and `context_t` per row) — the
/// window filling on tick 0 from the wired step noise, then one call per
/// tick — with and without `chain`, a window of 1 (plain DDIM-1) and of
/// 4. Error bound: 1e-5 of the largest value.
#[test]
fn df_window_matches_diffusion_forcing() {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let n = 16; // [1, 4, 2, 2]
    let noise: Vec<f32> = (0..n).map(|i| (i as f32 * 1.3).cos()).collect();
    let steps_noise: Vec<f32> = (0..8 * n).map(|i| (i as f32 * 0.37).sin()).collect();
    let ctx: Vec<f32> = (0..n)
        .map(|i| (i as f32 * 0.45 + 1.0).cos() * 0.6)
        .collect();
    write_npy(&d.join("noise.npy"), &[1, 4, 2, 2], &noise);
    write_npy(&d.join("ctx.npy"), &[1, 4, 2, 2], &ctx);
    let model = root().join("tests/reference/df_chain.onnx");
    for (i, (frames, chain)) in [(3, true), (3, false), (1, true), (4, true)]
        .iter()
        .enumerate()
    {
        let case_dir = d.join(format!("case{i}"));
        std::fs::create_dir(&case_dir).unwrap();
        let k = (frames - 1).max(1);
        write_npy(
            &case_dir.join("steps.npy"),
            &[k, 1, 4, 2, 2],
            &steps_noise[..k * n],
        );
        let chain_param = if *chain { ", chain = \"context\"" } else { "" };
        let graph = format!(
            "model m = \"{}\"\nnode start: npy {{ path = \"{}\" }}\nnode noise: npy {{ path = \"{}\" }}\n\
             node sn: npy {{ path = \"{}\" }}\nnode context: start_then {{ }}\n\
             node dit: denoiser {{ model = m{chain_param} }}\n\
             node sampler: df_window {{ frames = {frames}, denoiser = @dit }}\nnode out: npy_dump {{ dir = \"out\" }}\n\
             start.out -> context.start\nfeedback sampler.latent -> context.then init zeros(1x4x2x2)\n\
             context.out -> dit.context\nnoise.out -> sampler.noise\nsn.out -> sampler.step_noise\n\
             sampler.latent -> out.tensor\n",
            model.display(),
            d.join("ctx.npy").display(),
            d.join("noise.npy").display(),
            case_dir.join("steps.npy").display(),
        );
        let file = case_dir.join("g.world");
        std::fs::write(&file, graph).unwrap();
        let o = wgraph(&[
            "run",
            file.to_str().unwrap(),
            "--frames",
            "6",
            "--out",
            case_dir.join("run").to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let case = serde_json::json!({ "sampler": "df_window", "model": "vp_eps", "frames": frames, "chain": chain });
        let case_path = case_dir.join("case.json");
        std::fs::write(&case_path, case.to_string()).unwrap();
        let r = Command::new(&python)
            .arg(root().join("tests/reference/samplers.py"))
            .arg(&case_path)
            .arg(d.join("noise.npy"))
            .arg(case_dir.join("steps.npy"))
            .arg(case_dir.join("run/out"))
            .arg(d.join("ctx.npy"))
            .output()
            .unwrap();
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let j: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
        eprintln!("{case}: {j}");
        assert_eq!(j["ticks"], 6, "{j}");
        // The window feeds its outputs back (x̂0 at t = 999 divides by
        // √ᾱ ≈ 0.07), so values grow to 1e4 over the ticks: the bound is
        // 1e-5 of the largest value (at least 1e-5), f32 rounding well
        // inside it.
        let err = j["max_abs_error"].as_f64().unwrap();
        let scale = j["max_abs_value"].as_f64().unwrap().max(1.0);
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
/// VP samplers, with exact step noise.
#[test]
fn guidance_matches_its_published_formula() {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let n = 16; // [1, 4, 2, 2]
    let noise: Vec<f32> = (0..n).map(|i| (i as f32 * 1.3).cos()).collect();
    let steps_noise: Vec<f32> = (0..8 * n).map(|i| (i as f32 * 0.37).sin()).collect();
    let c: Vec<f32> = (0..n).map(|i| (i as f32 * 0.7).sin() * 0.8).collect();
    let ctx: Vec<f32> = (0..n)
        .map(|i| (i as f32 * 0.45 + 1.0).cos() * 0.6)
        .collect();
    write_npy(&d.join("noise.npy"), &[1, 4, 2, 2], &noise);
    write_npy(&d.join("c.npy"), &[1, 4, 2, 2], &c);
    write_npy(&d.join("ctx.npy"), &[1, 4, 2, 2], &ctx);
    // (sampler, model, sampler parameters, denoiser parameters, steps of step noise)
    type Case<'a> = (&'a str, &'a str, &'a str, &'a str, usize);
    let cases: &[Case] = &[
        (
            "euler",
            "flow_cond",
            "steps = 4, shift = 3.0",
            "guidance = { c = 3.0 }",
            0,
        ),
        (
            "euler",
            "flow_cond",
            "steps = 4, shift = 1.0",
            "guidance = { c = 3.0, ctx = 1.5 }",
            0,
        ),
        (
            "euler",
            "flow_cond",
            "steps = 6, shift = 1.0",
            "guidance = { c = 3.0 }, guidance_interval = [0.3, 0.7]",
            0,
        ),
        (
            "sde",
            "flow_cond",
            "steps = 5, shift = 2.0, eta = 0.3",
            "guidance = { c = 3.0, ctx = 1.5 }, guidance_interval = [0.2, 0.8]",
            5,
        ),
        (
            "euler",
            "flow_cond",
            "steps = 4, shift = 3.0",
            "guidance = { c = 3.0 }, guidance_mode = residual",
            0,
        ),
        (
            "euler",
            "flow_cond",
            "steps = 4, shift = 3.0",
            "guidance = { c = 3.0 }, guidance_mode = residual, residual_reference = \"ctx\"",
            0,
        ),
        (
            "self_forcing",
            "flow_cond",
            "timesteps = [1000, 750, 500, 250], shift = 5.0",
            "guidance = { c = 2.0 }, guidance_mode = residual, residual_reference = \"ctx\", guidance_interval = [0.0, 0.99]",
            3,
        ),
        (
            "ddim",
            "vp_cond",
            "steps = 4, eta = 0.0",
            "guidance = { c = 3.0 }, guidance_interval = [0.0, 0.7]",
            0,
        ),
        (
            "ddim",
            "vp_cond",
            "steps = 3, eta = 0.5",
            "guidance = { c = 1.5 }, guidance_mode = residual, residual_reference = \"ctx\"",
            3,
        ),
        (
            "euler",
            "vp_cond",
            "steps = 4, shift = 1.0",
            "guidance = { c = 1.5, ctx = 1.2 }, guidance_mode = residual, guidance_interval = [0.3, 0.9]",
            0,
        ),
        (
            "ddim",
            "flow_cond",
            "steps = 4, eta = 0.0",
            "guidance = { c = 3.0 }, guidance_mode = residual",
            0,
        ),
    ];
    let reference = root().join("tests/reference");
    for (i, (sampler, model, params, guidance, noise_steps)) in cases.iter().enumerate() {
        let case_dir = d.join(format!("case{i}"));
        std::fs::create_dir(&case_dir).unwrap();
        let steps_path = case_dir.join("steps.npy");
        let k = (*noise_steps).max(1);
        write_npy(&steps_path, &[k, 1, 4, 2, 2], &steps_noise[..k * n]);
        let wire = if *noise_steps > 0 {
            format!(
                "node sn: npy {{ path = \"{}\" }}\nsn.out -> sampler.step_noise\n",
                steps_path.display()
            )
        } else {
            String::new()
        };
        let graph = format!(
            "model m = \"{}\"\nnode noise: npy {{ path = \"{}\" }}\n\
             node c: npy {{ path = \"{}\" }}\nnode ctx: npy {{ path = \"{}\" }}\n\
             node dit: denoiser {{ model = m, {guidance} }}\n\
             node sampler: {sampler} {{ {params}, denoiser = @dit }}\nnode out: npy_dump {{ dir = \"out\" }}\n\
             noise.out -> sampler.noise\nc.out -> dit.c\nctx.out -> dit.ctx\nsampler.latent -> out.tensor\n{wire}",
            reference.join(format!("{model}.onnx")).display(),
            d.join("noise.npy").display(),
            d.join("c.npy").display(),
            d.join("ctx.npy").display(),
        );
        // The same settings as JSON for the reference.
        let mut case = serde_json::json!({ "sampler": sampler, "model": model });
        for kv in split_top(params) {
            let (k, v) = kv.split_once('=').unwrap();
            case[k.trim()] = serde_json::from_str(v.trim()).unwrap();
        }
        for kv in split_top(guidance) {
            let (k, v) = kv.split_once('=').unwrap();
            let (k, v) = (k.trim(), v.trim());
            case[k] = match k {
                "guidance" => serde_json::Value::Array(
                    split_top(v.trim_start_matches('{').trim_end_matches('}'))
                        .iter()
                        .map(|e| {
                            let (name, scale) = e.split_once('=').unwrap();
                            serde_json::json!([name.trim(), scale.trim().parse::<f64>().unwrap()])
                        })
                        .collect(),
                ),
                "guidance_mode" => serde_json::json!(v),
                _ => serde_json::from_str(v).unwrap(),
            };
        }
        let err = run_and_compare(
            &python,
            &case_dir,
            &graph,
            &case,
            &d.join("noise.npy"),
            Some(d),
        );
        assert!(
            err <= 1e-5,
            "{sampler} on {model} ({params}; {guidance}): max abs error {err}"
        );
    }
}

/// `a = 1, b = [1, 2], c = { x = 1, y = 2 }` → its top-level entries.
fn split_top(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth) = (Vec::new(), String::new(), 0);
    for ch in s.chars() {
        match ch {
            '[' | '{' => depth += 1,
            ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}
