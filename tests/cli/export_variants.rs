//! Exports wired unedited: the same tiny diffusers UNet as the parity tests'
//! `unet_tiny.onnx` (inputs `x`, `t` f32[1]), exported the ways users'
//! exports come (`models-onnx/references/make_export_variants.py`):
//! diffusers' own names (`sample`, `timestep`, output `noise_pred`) with a
//! dynamic batch, an int64 timestep, and a batch fixed to 1 with a scalar
//! timestep. Each runs through `wgraph run` with three samplers, its names
//! mapped in the `model` declaration (`inputs = { x = "sample", t =
//! "timestep" }`), and must give the x/t-named f32 reference's latent
//! within 1e-5 (relative L2); `df_window` runs on the batch-1 export; a
//! wrong mapping fails `check` at the mapping.

use super::*;

fn refs() -> PathBuf {
    root().join("models-onnx/references")
}

const VP: &str = "role = denoiser, prediction = epsilon, schedule = linear, beta_start = 0.0001, beta_end = 0.02";
const MAPPED: &str = r#"inputs = { x = "sample", t = "timestep" }"#;

/// An f32 `.npy`'s values (numpy's float32 layout).
fn read_npy(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{}", path.display());
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = String::from_utf8_lossy(&bytes[10..10 + len]);
    assert!(header.contains("'<f4'"), "{header}");
    bytes[10 + len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The graph of one run: `model` declared with `extra` options, the
/// sampler line `sampler`, `frames` ticks; the last tick's latent.
fn latent(file: &str, extra: &str, sampler: &str, frames: usize) -> Vec<f32> {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let graph = format!(
        "model m = \"{}\" {{ {VP}{extra} }}\nnode noise: npy {{ path = \"{}\" }}\n\
         node dit: denoiser {{ model = m }}\nnode sampler: {sampler}\n\
         node out: npy_dump {{ dir = \"out\" }}\nnoise.out -> sampler.noise\nsampler.latent -> out.tensor\n",
        refs().join(file).display(),
        refs().join("noise.npy").display()
    );
    let g = d.join("g.world");
    std::fs::write(&g, &graph).unwrap();
    let o = wgraph(&[
        "run",
        g.to_str().unwrap(),
        "--frames",
        &frames.to_string(),
        "--seed",
        "3",
        "--out",
        d.join("run").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}\n{graph}", stderr(&o));
    read_npy(&d.join(format!("run/out/out_{:05}.npy", frames - 1)))
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

/// Three samplers whose model timesteps are whole numbers (so an int64
/// export sees exactly the f32 reference's timesteps).
const SAMPLERS: [&str; 3] = [
    "ddim { steps = 4, denoiser = @dit }",
    "uni_pc { steps = 5, denoiser = @dit }",
    "ddpm { steps = 5, denoiser = @dit }",
];

fn agrees_with_the_reference(file: &str) {
    for sampler in SAMPLERS {
        let want = latent("unet_tiny.onnx", "", sampler, 1);
        let got = latent(file, &format!(", {MAPPED}"), sampler, 1);
        let err = relative_l2(&got, &want);
        eprintln!("{file} with {sampler}: relative L2 {err:.3e}");
        assert!(err <= 1e-5, "{file} with {sampler}: relative L2 {err:.3e}");
    }
}

#[test]
fn diffusers_names_run_unedited() {
    agrees_with_the_reference("unet_tiny_native.onnx");
}

#[test]
fn an_int64_timestep_is_converted() {
    agrees_with_the_reference("unet_tiny_i64.onnx");
}

#[test]
fn a_batch_one_export_with_a_scalar_timestep_runs() {
    agrees_with_the_reference("unet_tiny_b1.onnx");
}

/// `df_window` calls the denoiser with a row per frame: the batch-1
/// exports (`unet_tiny.onnx` and the scalar-timestep one) run row by row
/// and give what the dynamic-batch export gives in one call.
#[test]
fn df_window_runs_on_batch_one_exports() {
    let sampler = "df_window { frames = 3, denoiser = @dit }";
    let want = latent("unet_tiny_native.onnx", &format!(", {MAPPED}"), sampler, 4);
    for (file, extra) in [
        ("unet_tiny.onnx", String::new()),
        ("unet_tiny_b1.onnx", format!(", {MAPPED}")),
    ] {
        let got = latent(file, &extra, sampler, 4);
        let err = relative_l2(&got, &want);
        assert!(err <= 1e-5, "{file}: relative L2 {err:.3e}");
    }
}

/// Fractional timesteps (Karras σ) reach an int64 export rounded: close to,
/// not equal to, the f32 export — the test can tell them apart.
#[test]
fn an_int64_timestep_is_rounded() {
    let sampler =
        r#"dpmpp_2m { steps = 6, scheduler = "karras", init_noise = "sigma", denoiser = @dit }"#;
    let want = latent("unet_tiny.onnx", "", sampler, 1);
    let got = latent("unet_tiny_i64.onnx", &format!(", {MAPPED}"), sampler, 1);
    let err = relative_l2(&got, &want);
    assert!(err > 1e-5 && err < 0.05, "relative L2 {err:.3e}");
}

fn check_error(extra: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("g.world");
    std::fs::write(
        &g,
        format!(
            "model m = \"{}\" {{ {VP}{extra} }}\nnode noise: npy {{ path = \"{}\" }}\n\
             node dit: denoiser {{ model = m }}\nnode sampler: ddim {{ steps = 4, denoiser = @dit }}\n\
             noise.out -> sampler.noise\n",
            refs().join("unet_tiny_native.onnx").display(),
            refs().join("noise.npy").display()
        ),
    )
    .unwrap();
    let o = wgraph(&["check", g.to_str().unwrap()]);
    assert_ne!(o.status.code(), Some(0));
    stderr(&o)
}

#[test]
fn a_wrong_mapping_fails_check_at_the_mapping() {
    // A name the file lacks: at the value, with the file's names.
    let extra = r#", inputs = { x = "sample", t = "tstep" }"#;
    let err = check_error(extra);
    assert!(
        err.contains("`inputs.t` maps to `tstep`, but the file has no input `tstep` (its inputs: `sample`, `timestep`)"),
        "{err}"
    );
    let line = format!(
        "model m = \"{}\" {{ {VP}",
        refs().join("unet_tiny_native.onnx").display()
    );
    let col = line.len() + extra.find("\"tstep\"").unwrap() + 1;
    assert!(err.contains(&format!("g.world:1:{col}")), "{err}");
    // A role port left unmapped: named, with the file's names to map.
    let err = check_error(r#", inputs = { x = "sample" }"#);
    assert!(
        err.contains("a denoiser takes inputs `x` and `t`, and this model has no `t`"),
        "{err}"
    );
    assert!(err.contains("`sample`, `timestep`"), "{err}");
    // Unmapped altogether.
    let err = check_error("");
    assert!(err.contains("has no `x`"), "{err}");
    // An output name the file lacks.
    let err = check_error(
        r#", inputs = { x = "sample", t = "timestep" }, outputs = { epsilon = "out" }"#,
    );
    assert!(err.contains("its outputs: `noise_pred`"), "{err}");
    // A value that is not a name.
    let err = check_error(r#", inputs = { x = sample, t = "timestep" }"#);
    assert!(
        err.contains("`inputs.x` must be the file's port name, a string"),
        "{err}"
    );
}
