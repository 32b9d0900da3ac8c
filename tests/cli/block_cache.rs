//! Yume's block cache (`block_denoiser`): the cache arithmetic against
//! NumPy (tests/reference/blocks.py; its references are committed fixtures
//! in `tests/reference/blocks/`, no Python at test time) on the analytic
//! block-split denoiser of tests/reference/make_models.py; the shipped
//! block split of Yume's denoiser against the monolithic model; `wgraph
//! blocks`.

use super::*;
use wgraph_engine::npy::read_npy;

fn npy_f32(path: &Path) -> Vec<f32> {
    read_npy(&std::fs::read(path).unwrap())
        .unwrap()
        .host_f32()
        .unwrap()
        .to_vec()
}

/// The committed NumPy references of the cache arithmetic and their
/// inputs (`python3 tests/reference/blocks.py --write-fixtures` wrote them,
/// byte for byte again on a rerun).
fn fixtures() -> PathBuf {
    root().join("tests/reference/blocks")
}

/// The values of the committed `NAME.npy`, as f64, and its shape.
fn fixture(name: &str) -> (Vec<f64>, Vec<usize>) {
    let path = fixtures().join(format!("{name}.npy"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let t = read_npy(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let values = match t.host_f64() {
        Ok(v) => v.to_vec(),
        Err(_) => t.host_f32().unwrap().iter().map(|&v| v as f64).collect(),
    };
    (values, t.shape().to_vec())
}

/// The max abs difference of `a` and `b`.
fn max_abs_difference(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// 3 ticks of Euler on the analytic split denoiser, for several cache
/// sets and l_c = 1 and 2 (tests/reference/blocks/cases.json), against the
/// NumPy reference (residuals rounded to bf16 there too): max abs error
/// ≤ 1e-5. A cache that changes nothing would pass the error bound too,
/// so each cached case must also differ from the uncached reference.
#[test]
fn cache_arithmetic_matches_the_numpy_reference() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = fixtures().join("cases.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let table: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ticks = table["ticks"].as_u64().unwrap() as usize;
    let cases = table["cases"].as_array().unwrap();
    assert!(!cases.is_empty(), "no cases in {}", path.display());
    let reference = root().join("tests/reference");
    let model = |n: &str| {
        reference
            .join(format!("block_{n}.onnx"))
            .display()
            .to_string()
    };
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let steps = case["steps"].as_u64().unwrap();
        let shift = case["shift"].as_f64().unwrap();
        let cache_steps = case["cache_steps"].as_u64().unwrap();
        let cache: Vec<u64> = case["cache"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        let case_dir = d.join(name);
        std::fs::create_dir(&case_dir).unwrap();
        let list: Vec<String> = cache.iter().map(ToString::to_string).collect();
        let graph = format!(
            "model e = \"{}\"\nmodel b0 = \"{}\"\nmodel b1 = \"{}\"\nmodel b2 = \"{}\"\nmodel hd = \"{}\"\n\
             node noise: npy {{ path = \"{}\", sequence = true }}\nnode cond: npy {{ path = \"{}\" }}\n\
             node dit: block_denoiser {{ embed = e, blocks = [b0, b1, b2], head = hd, cache = [{}], cache_steps = {cache_steps} }}\n\
             node sampler: euler {{ steps = {steps}, shift = {shift:?}, denoiser = @dit }}\n\
             node out: npy_dump {{ dir = \"out\" }}\n\
             noise.out -> sampler.noise\ncond.out -> dit.cond\nsampler.latent -> out.tensor\n",
            model("embed"),
            model("b0"),
            model("b1"),
            model("b2"),
            model("head"),
            fixtures().join("noise.npy").display(),
            fixtures().join("cond.npy").display(),
            list.join(", "),
        );
        let file = case_dir.join("g.world");
        std::fs::write(&file, graph).unwrap();
        let o = wgraph(&[
            "run",
            file.to_str().unwrap(),
            "--frames",
            &ticks.to_string(),
            "--out",
            case_dir.join("run").to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        let out = case_dir.join("run/out");
        assert!(
            !out.join(format!("out_{ticks:05}.npy")).exists(),
            "{name}: more than {ticks} ticks"
        );
        let got: Vec<f64> = (0..ticks)
            .flat_map(|t| npy_f32(&out.join(format!("out_{t:05}.npy"))))
            .map(f64::from)
            .collect();
        // Row 0: the case's cache; row 1: the same run without a cache.
        let (want, shape) = fixture(name);
        assert_eq!(shape, [2, ticks, 1, 4, 2, 2], "{name}.npy");
        let (cached, uncached) = want.split_at(want.len() / 2);
        let err = max_abs_difference(&got, cached);
        let changed = max_abs_difference(&got, uncached);
        eprintln!("{case}: max abs error {err:.3e}, difference from uncached {changed:.3e}");
        assert!(err <= 1e-5, "{case}: max abs error {err}");
        if cache.is_empty() {
            assert!(changed <= 1e-5, "{case}: {changed}");
        } else {
            assert!(
                changed > 1e-4,
                "{case}: the cache changed nothing: {changed}"
            );
        }
    }
}

/// `graph` with a dump of the sampler's latent per tick, run for 2 ticks.
fn latents(dir: &Path, graph: &str, set: &[&str]) -> (Vec<Vec<f32>>, Vec<PathBuf>) {
    let name = graph.replace(['/', '.'], "_");
    let wrapper = dir.join(format!("{name}.world"));
    std::fs::write(
        &wrapper,
        format!(
            "include \"{}\"\nnode lat: npy_dump {{ dir = \"lat\" }}\nsampler.latent -> lat.tensor\n",
            root().join(graph).display()
        ),
    )
    .unwrap();
    let out = dir.join(format!("{name}_out"));
    let mut args = vec![
        "run",
        wrapper.to_str().unwrap(),
        "--frames",
        "2",
        "--out",
        out.to_str().unwrap(),
        "-q",
    ];
    for s in set {
        args.extend(["--set", s]);
    }
    let o = wgraph(&args);
    assert_eq!(o.status.code(), Some(0), "{graph}: {}", stderr(&o));
    let lat = (0..2)
        .map(|t| npy_f32(&out.join(format!("lat/lat_{t:05}.npy"))))
        .collect();
    (lat, pngs(&out))
}

/// With `cache = []` the block split is a faithful copy of Yume's
/// denoiser: graphs/yume-blocks.world's latents equal graphs/yume.world's
/// within 1e-4 and its frames are the same pictures; with the shipped
/// cache set they differ (the cache is in effect).
#[test]
fn yume_blocks_without_a_cache_is_yume() {
    let dir = tempfile::tempdir().unwrap();
    let (yume, yume_frames) = latents(dir.path(), "graphs/yume.world", &[]);
    let (split, split_frames) = latents(dir.path(), "graphs/yume-blocks.world", &["dit.cache=[]"]);
    for (t, (a, b)) in yume.iter().zip(&split).enumerate() {
        assert_eq!(a.len(), b.len());
        let err = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(err <= 1e-4, "tick {t}: max abs difference {err}");
    }
    assert_eq!(yume_frames.len(), 2);
    for (a, b) in yume_frames.iter().zip(&split_frames) {
        let (a, b) = (
            image::open(a).unwrap().to_rgb8(),
            image::open(b).unwrap().to_rgb8(),
        );
        let worst = a
            .pixels()
            .zip(b.pixels())
            .flat_map(|(p, q)| (0..3).map(move |c| p.0[c].abs_diff(q.0[c])))
            .max();
        assert!(worst <= Some(1), "{worst:?}");
    }
    let (cached, _) = latents(dir.path(), "graphs/yume-blocks.world", &[]);
    let moved = yume[1]
        .iter()
        .zip(&cached[1])
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(moved > 1e-4, "the shipped cache set changed nothing");
}

/// `wgraph blocks`: a score and a rank per block, a `cache = [...]` line,
/// the JSON; refused for a node that is not a block_denoiser and for a
/// proposal larger than the blocks.
#[test]
fn blocks_scores_every_block_and_proposes_a_cache_set() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("blocks.json");
    let o = wgraph(&[
        "blocks",
        "graphs/yume-blocks.world",
        "dit",
        "--frames",
        "2",
        "--propose",
        "2",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("2 ticks, 4 segments, l_c = 1"), "{out}");
    for b in 0..4 {
        let row = out
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{b}  yume_block{b}")))
            .unwrap_or_else(|| panic!("no row for block {b}:\n{out}"));
        let score: f64 = row.split_whitespace().nth(2).unwrap().parse().unwrap();
        assert!(score > 0.0 && score.is_finite(), "{row}");
    }
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let blocks = j["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 4);
    let mut lowest: Vec<(f64, u64)> = blocks
        .iter()
        .map(|b| (b["mse"].as_f64().unwrap(), b["index"].as_u64().unwrap()))
        .collect();
    lowest.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut want: Vec<u64> = lowest[..2].iter().map(|p| p.1).collect();
    want.sort_unstable();
    let cache: Vec<u64> = j["cache"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(cache, want);
    let line = format!("cache = [{}, {}]", want[0], want[1]);
    assert!(out.lines().any(|l| l == line), "{line} in:\n{out}");
    // l_c = 2 with Euler 4: one segment (calls 0–2) per tick.
    let o = wgraph(&[
        "blocks",
        "graphs/yume-blocks.world",
        "dit",
        "--frames",
        "2",
        "--cache-steps",
        "2",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("2 ticks, 2 segments, l_c = 2"),
        "{}",
        stdout(&o)
    );
    let o = wgraph(&["blocks", "graphs/yume.world", "dit"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(
            "`dit` is a `denoiser` node; `wgraph blocks` measures a `block_denoiser` (it has none)"
        ),
        "{}",
        stderr(&o)
    );
    let o = wgraph(&[
        "blocks",
        "graphs/yume-blocks.world",
        "dit",
        "--propose",
        "5",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--propose 5: `dit` has 4 blocks"),
        "{}",
        stderr(&o)
    );
}

/// Guidance on the block split: graphs/yume-blocks.world with `cache = []`
/// and `guidance = { text = 1.5 }` gives graphs/yume.world's guided latents
/// (within 1e-4) — the block cache sits behind the denoiser's network, so
/// CFG is the denoiser's — and with the shipped cache set it runs and
/// differs (the cache is in effect under guidance too).
#[test]
fn guided_block_split_is_guided_yume() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "dit.guidance={ text = 1.5 }";
    let (yume, _) = latents(dir.path(), "graphs/yume.world", &[cfg]);
    let (unguided, _) = latents(dir.path(), "graphs/yume-blocks.world", &["dit.cache=[]"]);
    let d = dir.path().join("guided");
    std::fs::create_dir(&d).unwrap();
    let (split, _) = latents(&d, "graphs/yume-blocks.world", &["dit.cache=[]", cfg]);
    let max_diff = |a: &[f32], b: &[f32]| {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    };
    for (t, (a, b)) in yume.iter().zip(&split).enumerate() {
        let err = max_diff(a, b);
        assert!(err <= 1e-4, "tick {t}: max abs difference {err}");
    }
    assert!(
        max_diff(&split[0], &unguided[0]) > 1e-3,
        "guidance changed nothing"
    );
    let d = dir.path().join("cached");
    std::fs::create_dir(&d).unwrap();
    let (cached, _) = latents(&d, "graphs/yume-blocks.world", &[cfg]);
    assert!(
        max_diff(&cached[1], &split[1]) > 1e-4,
        "the cache changed nothing"
    );
    // A guided condition the embed does not have: refused before a tick.
    let o = wgraph(&[
        "run",
        "graphs/yume-blocks.world",
        "--frames",
        "1",
        "--out",
        dir.path().join("refused").to_str().unwrap(),
        "--set",
        "dit.guidance={ txt = 1.5 }",
    ]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("`txt` is not a condition of `yume_embed`"),
        "{}",
        stderr(&o)
    );
}
