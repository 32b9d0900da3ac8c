//! Every sampler against the public libraries on a real exported model:
//! the references in `models-onnx/references/` were made by
//! `make_sampler_refs.py` (torch + diffusers / k-diffusion on CPU) from a
//! tiny diffusers `UNet2DModel` exported with `torch.onnx.export`
//! (`unet_tiny.onnx`), the same start noise (`noise.npy`) and, for the
//! stochastic samplers, the same step noise (`step_noise.npy`, wired into
//! the sampler's `step_noise`). The table is `cases.json`: one test per
//! case below, each running wgraph on the case's graph and comparing its
//! latent to the committed output at ≤ 1e-5 relative L2. No torch needed.
//! The `ve` cases run a k-diffusion-style model (`kd_tiny.onnx`: k-diffusion's
//! `Denoiser` D(x, σ), declared `schedule = ve`) against k-diffusion's own
//! `sample_*`; `readme_byo_graphs_match_the_libraries` runs README's "Bring
//! your own model" graphs as README writes them.

use super::*;

/// The committed references.
fn refs() -> PathBuf {
    root().join("models-onnx/references")
}

/// An f32 little-endian C-order `.npy` (what numpy's `np.save` writes
/// for float32): its values.
fn read_f32_npy(path: &Path) -> Vec<f32> {
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
        header.contains("'<f4'") && header.contains("'fortran_order': False"),
        "{}: {header}",
        path.display()
    );
    bytes[start + len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn table() -> serde_json::Value {
    let text = std::fs::read_to_string(refs().join("cases.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Runs case `name` of `cases.json` and returns wgraph's relative L2
/// error against the reference.
pub(crate) fn parity_error(name: &str) -> f64 {
    let table = table();
    let case = table["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no case `{name}` in cases.json"))
        .clone();
    let s = |k: &str| case[k].as_str().unwrap().to_string();
    let (sampler, model, params) = (s("sampler"), s("model"), s("params"));
    let decl = table[model.as_str()].as_str().unwrap();
    // The model's file: `files.<model>`, else the diffusers UNet.
    let file = table["files"][model.as_str()]
        .as_str()
        .unwrap_or("unet_tiny.onnx");
    let draws = case["draws"].as_u64().unwrap() as usize;
    let shape: Vec<usize> = table["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let n: usize = shape.iter().product();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let wire = if draws > 0 {
        // The first `draws` tensors of the committed step noise.
        let all = read_f32_npy(&refs().join("step_noise.npy"));
        let mut sn_shape = vec![draws];
        sn_shape.extend(&shape);
        write_npy(&d.join("steps.npy"), &sn_shape, &all[..draws * n]);
        format!(
            "node sn: npy {{ path = \"{}\" }}\nsn.out -> sampler.step_noise\n",
            d.join("steps.npy").display()
        )
    } else {
        String::new()
    };
    let graph = format!(
        "model m = \"{}\" {decl}\nnode noise: npy {{ path = \"{}\" }}\nnode dit: denoiser {{ model = m }}\n\
         node sampler: {sampler} {{ {params}, denoiser = @dit }}\nnode out: npy_dump {{ dir = \"out\" }}\n\
         noise.out -> sampler.noise\nsampler.latent -> out.tensor\n{wire}",
        refs().join(file).display(),
        refs().join("noise.npy").display()
    );
    let err = error_against(name, &graph, d, "out");
    eprintln!("{name} ({sampler} on {model}, {params}): relative L2 {err:.3e}");
    err
}

/// Runs `graph` for one tick in `dir` and returns the relative L2 error of
/// the latent its `out` node wrote (under `out_dir`) against the
/// reference `name.npy`.
fn error_against(name: &str, graph: &str, dir: &Path, out_dir: &str) -> f64 {
    let file = dir.join("g.world");
    std::fs::write(&file, graph).unwrap();
    let o = wgraph(&[
        "run",
        file.to_str().unwrap(),
        "--frames",
        "1",
        "--out",
        dir.join("run").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{name}: {}\n{graph}", stderr(&o));
    let got = read_f32_npy(&dir.join(format!("run/{out_dir}/out_00000.npy")));
    relative_l2(&got, &read_f32_npy(&refs().join(format!("{name}.npy"))))
}

fn relative_l2(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (g, w) in got.iter().zip(want) {
        num += (f64::from(*g) - f64::from(*w)).powi(2);
        den += f64::from(*w).powi(2);
    }
    (num / den.max(1e-30)).sqrt()
}

/// One `#[test]` per case of `cases.json`, named after it.
macro_rules! parity {
    ($($name:ident),* $(,)?) => {
        const NAMES: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                let err = parity_error(stringify!($name));
                assert!(err <= 1e-5, "{}: relative L2 {err:.3e} > 1e-5", stringify!($name));
            }
        )*
    };
}

parity![
    ddim_trailing,
    ddim_leading_offset_clip,
    ddim_eta1,
    ddpm,
    lcm,
    uni_pc,
    uni_pc_order3,
    euler_vp_trailing,
    euler_vp_leading,
    euler_vp_linspace,
    euler_karras,
    euler_ancestral_karras,
    heun_karras,
    dpmpp_2m_karras,
    dpmpp_2m_exponential,
    dpmpp_2m_sde_karras,
    dpmpp_3m_sde_karras,
    dpmpp_2m_sigmas,
    euler_beta,
    dpmpp_2m_sgm_uniform,
    ddim_karras,
    ddpm_karras,
    lcm_exponential,
    euler_flow_sd3,
    euler_flow_dynamic,
    dpmpp_2m_flow,
    dpmpp_2m_sde_flow,
    uni_pc_flow,
    heun_flow,
    euler_ancestral_flow,
    euler_ancestral_ve,
    dpmpp_2m_sde_ve,
    dpmpp_2m_exponential_ve,
];

/// Every case of the table has its test above (a case added to
/// `cases.json` without one fails here).
#[test]
fn every_case_has_a_test() {
    let table = table();
    for c in table["cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        assert!(
            NAMES.contains(&name),
            "case `{name}` has no test in sampler_parity.rs"
        );
    }
}

/// README's "Bring your own model" graphs: each ```text block with
/// `node sampler:` lines marked `// = NAME.npy`, once per such line (that
/// line active, the block's other sampler lines left out), as README
/// writes it but for the repository-relative paths made absolute. Returns
/// (NAME, graph).
fn readme_byo_graphs() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let refs_dir = format!("\"{}/models-onnx/", root().display());
    let mut out = Vec::new();
    for block in readme.split("```text\n").skip(1) {
        let block = block.split("```").next().unwrap_or("");
        if !block.contains("// = byo_") {
            continue;
        }
        let is_sampler = |l: &str| l.trim_start_matches("// ").starts_with("node sampler:");
        for line in block.lines().filter(|l| is_sampler(l)) {
            let Some(name) = line
                .split("// = ")
                .nth(1)
                .and_then(|r| r.split(".npy").next())
            else {
                continue;
            };
            let graph: String = block
                .lines()
                .filter(|l| !is_sampler(l) || *l == line)
                .map(|l| match l == line {
                    true => format!("{}\n", l.trim_start_matches("// ")),
                    false => format!("{l}\n"),
                })
                .collect();
            out.push((name.to_string(), graph.replace("\"models-onnx/", &refs_dir)));
        }
    }
    out
}

/// README shows a diffusers UNet export and a k-diffusion-style model with
/// three samplers each; each graph gives what diffusers / k-diffusion give
/// on the same ONNX file and start noise (`byo_*.npy`, made by
/// `make_sampler_refs.py`), within 1e-5 relative L2.
#[test]
fn readme_byo_graphs_match_the_libraries() {
    let graphs = readme_byo_graphs();
    let names: Vec<&str> = graphs.iter().map(|(n, _)| n.as_str()).collect();
    for model in ["byo_unet_", "byo_kd_"] {
        let n = names.iter().filter(|n| n.starts_with(model)).count();
        assert!(n >= 3, "README shows {n} `{model}*` graphs: {names:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, graph) in &graphs {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        let err = error_against(name, graph, &d, "latents");
        eprintln!("README {name}: relative L2 {err:.3e}");
        assert!(err <= 1e-5, "README {name}: relative L2 {err:.3e}\n{graph}");
    }
}

/// `check` refuses a `ve` model without its σ range, with the range
/// reversed, or predicting what a ve model cannot (velocity), at the node
/// or sampler that reads it.
#[test]
fn a_ve_model_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let check = |decl: &str| -> String {
        let g = dir.path().join("g.world");
        std::fs::write(
            &g,
            format!(
                "model kd = \"{}\" {{ role = denoiser, {decl}, inputs = {{ x = \"input\", t = \"sigma\" }} }}\n\
                 node noise: npy {{ path = \"{}\" }}\nnode dit: denoiser {{ model = kd }}\n\
                 node sampler: heun {{ steps = 4, denoiser = @dit }}\nnoise.out -> sampler.noise\n",
                refs().join("kd_tiny.onnx").display(),
                refs().join("noise.npy").display()
            ),
        )
        .unwrap();
        let o = wgraph(&["check", g.to_str().unwrap()]);
        assert_ne!(o.status.code(), Some(0), "{decl}");
        stderr(&o)
    };
    let e = check("prediction = sample, schedule = ve, sigma_min = 0.002");
    assert!(
        e.contains("wgraph.schedule = ve needs wgraph.sigma_min and wgraph.sigma_max"),
        "{e}"
    );
    let e = check("prediction = sample, schedule = ve, sigma_min = 80.0, sigma_max = 0.002");
    assert!(e.contains("0 < sigma_min < sigma_max"), "{e}");
    let e = check("prediction = velocity, schedule = ve, sigma_min = 0.002, sigma_max = 80.0");
    assert!(
        e.contains("`heun` cannot run `@dit`: it predicts `velocity` on the ve process"),
        "{e}"
    );
}

/// `ddim`, `ddpm` and `lcm` take every scheduler, stepping in σ off the
/// default one; a combination that has no meaning there is refused at
/// `check`, located at the parameter: DDIM's η (its noise is defined
/// between whole timesteps), `init_noise` on the default scheduler (diffusers
/// starts at x_T = noise), `lcm`'s `original_steps` beside a scheduler.
#[test]
fn vp_samplers_refuse_what_a_scheduler_does_not_mean() {
    let dir = tempfile::tempdir().unwrap();
    let check = |sampler: &str| -> String {
        let g = dir.path().join("g.world");
        std::fs::write(
            &g,
            format!(
                "model m = \"{}\" {}\nnode noise: npy {{ path = \"{}\" }}\nnode dit: denoiser {{ model = m }}\n\
                 node sampler: {sampler}, denoiser = @dit }}\nnoise.out -> sampler.noise\n",
                refs().join("unet_tiny.onnx").display(),
                table()["vp"].as_str().unwrap(),
                refs().join("noise.npy").display()
            ),
        )
        .unwrap();
        let o = wgraph(&["check", g.to_str().unwrap()]);
        assert_ne!(o.status.code(), Some(0), "{sampler}");
        stderr(&o)
    };
    let e = check("ddim { steps = 4, scheduler = \"karras\", eta = 1.0");
    assert!(
        e.contains("g.world:4:") && e.contains("`eta = 1` is DDIM's noise"),
        "{e}"
    );
    let e = check("ddpm { steps = 4, init_noise = \"sigma\"");
    assert!(
        e.contains("g.world:4:") && e.contains("`init_noise` applies with a `scheduler`"),
        "{e}"
    );
    let e = check("lcm { scheduler = \"karras\", original_steps = 20");
    assert!(
        e.contains("g.world:4:") && e.contains("`original_steps` picks"),
        "{e}"
    );
}
