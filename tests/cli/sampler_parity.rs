//! Every sampler against the public libraries on a real exported model:
//! the references in `models-onnx/references/` were made by
//! `make_sampler_refs.py` (torch + diffusers / k-diffusion on CPU) from a
//! tiny diffusers `UNet2DModel` exported with `torch.onnx.export`
//! (`unet_tiny.onnx`), the same start noise (`noise.npy`) and, for the
//! stochastic samplers, the same step noise (`step_noise.npy`, wired into
//! the sampler's `step_noise`). The table is `cases.json`: one test per
//! case below, each running wgraph on the case's graph and comparing its
//! latent to the committed output at ≤ 1e-5 relative L2. No torch needed.

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
        refs().join("unet_tiny.onnx").display(),
        refs().join("noise.npy").display()
    );
    let file = d.join("g.world");
    std::fs::write(&file, &graph).unwrap();
    let o = wgraph(&[
        "run",
        file.to_str().unwrap(),
        "--frames",
        "1",
        "--out",
        d.join("run").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{name}: {}\n{graph}", stderr(&o));
    let got = read_f32_npy(&d.join("run/out/out_00000.npy"));
    let want = read_f32_npy(&refs().join(format!("{name}.npy")));
    assert_eq!(got.len(), want.len(), "{name}");
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (g, w) in got.iter().zip(&want) {
        num += (f64::from(*g) - f64::from(*w)).powi(2);
        den += f64::from(*w).powi(2);
    }
    let err = (num / den.max(1e-30)).sqrt();
    eprintln!("{name} ({sampler} on {model}, {params}): relative L2 {err:.3e}");
    err
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
    euler_flow_sd3,
    euler_flow_dynamic,
    dpmpp_2m_flow,
    dpmpp_2m_sde_flow,
    uni_pc_flow,
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
