//! `wgraph bench --swap`: samplers, step counts, reuse, windows and
//! guidance compared in one table.

use super::*;

/// `bench --swap`: every combination of a sampler's kind and steps, one
/// row each, quality against a high-step reference run.
#[test]
fn swapped_samplers_in_one_table() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("swap.json");
    let plot = dir.path().join("swap.png");
    let o = wgraph(&[
        "bench",
        "graphs/yan-sim.world",
        "--swap",
        "sampler=ddim,euler",
        "--swap",
        "sampler.steps=1,3",
        "--reference",
        "sampler.steps=8",
        "--frames",
        "4",
        "--json",
        json.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let table = stdout(&o);
    assert!(table.contains("sampler=euler sampler.steps=3"), "{table}");
    // The plot is a PNG with something drawn on it.
    let img = image::open(&plot).unwrap().to_rgb8();
    assert!(img.width() >= 400 && img.height() >= 300);
    let dark = img
        .pixels()
        .filter(|p| p.0.iter().all(|&c| c < 100))
        .count();
    assert!(dark > 500, "{dark} dark pixels: axes and labels missing");
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = j["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for r in rows {
        let steps: f64 = r["combination"]["sampler.steps"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(r["denoiser_calls_per_tick"].as_f64().unwrap(), steps, "{r}");
        assert!(r["ms_per_tick_p50"].as_f64().unwrap() > 0.0);
        let psnr = r["psnr_vs_reference"].as_f64().unwrap();
        assert!(psnr > 5.0 && psnr < 100.0, "{r}");
    }
    // The reference is the graph's own sampler at 8 steps: ddim at 3
    // steps is closer to it than ddim at 1 step.
    let psnr = |kind: &str, steps: &str| {
        rows.iter()
            .find(|r| {
                r["combination"]["sampler"] == kind && r["combination"]["sampler.steps"] == steps
            })
            .unwrap()["psnr_vs_reference"]
            .as_f64()
            .unwrap()
    };
    assert!(psnr("ddim", "3") > psnr("ddim", "1"));
    let o = wgraph(&["bench", "graphs/yan-sim.world", "--swap", "sampler"]);
    assert_eq!(o.status.code(), Some(2));
    // A plot name wgraph cannot write fails before any run.
    let o = wgraph(&[
        "bench",
        "graphs/yan-sim.world",
        "--swap",
        "sampler.steps=1,2",
        "--plot",
        "out.jpg",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("use a .png or .svg file name"));
}

/// The similarity filter and the window, measured through `bench
/// --swap`: with pauses in the keys, `still.enabled = true` runs fewer
/// denoiser calls (idle ticks reuse the last frame), and `df_window`
/// makes one call per tick where DDIM makes four (after the window
/// fills on tick 0), while `dit.max_batch = 1` splits that call into
/// one run per frame.
#[test]
fn reuse_and_windows_run_fewer_denoiser_calls() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("swap.json");
    let o = wgraph(&[
        "bench",
        "graphs/yan-sim.world",
        "--set",
        "keys.path=\"docs/eval/pauses-actions.txt\"",
        "--swap",
        "still.enabled=false,true",
        "--swap",
        "sampler=ddim,df_window",
        "--swap",
        "dit.max_batch=0,1",
        "--frames",
        "16",
        "--rounds",
        "1",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = j["rows"].as_array().unwrap();
    let calls = |enabled: &str, sampler: &str, max_batch: &str| {
        let r = rows
            .iter()
            .find(|r| {
                r["combination"]["still.enabled"] == enabled
                    && r["combination"]["sampler"] == sampler
                    && r["combination"]["dit.max_batch"] == max_batch
            })
            .unwrap();
        r["denoiser_calls_per_tick"].as_f64().unwrap()
    };
    assert_eq!(calls("false", "ddim", "0"), 4.0);
    assert!(calls("true", "ddim", "0") < 3.0, "{rows:?}");
    // 16 ticks: tick 0 fills the window (4 calls), then 1 per tick.
    assert_eq!(calls("false", "df_window", "0"), 19.0 / 16.0);
    // Split into runs of one row: 1 + 2 + 3 + 4 on tick 0, then 4.
    assert_eq!(calls("false", "df_window", "1"), (10.0 + 15.0 * 4.0) / 16.0);
    assert!(calls("true", "df_window", "0") < 19.0 / 16.0, "{rows:?}");
}

/// Cheaper guidance, counted: on yume with CFG on the caption, a
/// guidance interval skips the unconditional pass outside it and
/// residual CFG never runs it (the passes are batch rows: standard CFG
/// stacks its two passes into one call, so the calls stay 4).
#[test]
fn cheaper_guidance_runs_fewer_denoiser_passes() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("swap.json");
    let o = wgraph(&[
        "bench",
        "graphs/yume.world",
        "--set",
        "dit.guidance={text=1.5}",
        "--swap",
        "dit.guidance_mode=standard,residual",
        "--swap",
        "dit.guidance_interval=[0, 1],[0, 0.6]",
        "--reference",
        "sampler.steps=4",
        "--frames",
        "2",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = j["rows"].as_array().unwrap();
    let row = |mode: &str, interval: &str| {
        rows.iter()
            .find(|r| {
                r["combination"]["dit.guidance_mode"] == mode
                    && r["combination"]["dit.guidance_interval"] == interval
            })
            .unwrap()
    };
    // Euler 4 steps, shift 3: σ = 1, 0.9, 0.75, 0.5; [0, 0.6] guides the last.
    for (mode, interval, passes) in [
        ("standard", "[0, 1]", 8.0),
        ("standard", "[0, 0.6]", 5.0),
        ("residual", "[0, 1]", 4.0),
        ("residual", "[0, 0.6]", 4.0),
    ] {
        let r = row(mode, interval);
        assert_eq!(r["denoiser_calls_per_tick"].as_f64().unwrap(), 4.0, "{r}");
        assert_eq!(
            r["denoiser_passes_per_tick"].as_f64().unwrap(),
            passes,
            "{r}"
        );
    }
    // The reference is standard CFG at the same steps: identical frames.
    assert_eq!(
        row("standard", "[0, 1]")["psnr_vs_reference"]
            .as_f64()
            .unwrap(),
        100.0
    );
    let o = wgraph(&["kinds", "denoiser"]);
    for p in [
        "guidance_interval",
        "guidance_mode",
        "standard|residual",
        "residual_reference",
    ] {
        assert!(stdout(&o).contains(p), "{}", stdout(&o));
    }
}

/// "Which sampler?": a combination that does not apply (`df_window` has no
/// `steps`) is skipped and marked, not fatal; the reference is named and
/// set in one flag; with `--world-seed` the ground-truth columns and a
/// second plot appear; the Pareto front is marked in the table, the JSON
/// and the plots; the last line recommends a setting for the target.
#[test]
fn the_bench_recommends_a_sampler_and_skips_what_does_not_apply() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("swap.json");
    let plot = dir.path().join("swap.svg");
    let o = wgraph(&[
        "bench",
        "graphs/yan-sim.world",
        "--swap",
        "sampler=ddim,euler,df_window",
        "--swap",
        "sampler.steps=1,2",
        "--reference",
        "sampler=ddim sampler.steps=4",
        "--world-seed",
        "1001",
        "--actions",
        "docs/eval/seed1001-actions.txt",
        "--target-psnr",
        "1",
        "--frames",
        "2",
        "--rounds",
        "1",
        "--json",
        json.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let table = stdout(&o);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("reference: sampler=ddim sampler.steps=4 ("),
        "{table}"
    );
    assert!(
        lines[1].contains("PSNR GT") && lines[1].contains("front"),
        "{table}"
    );
    // df_window × steps: skipped, with the reason, in the table and the JSON.
    let skipped: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("sampler=") && l.contains(" skipped: "))
        .collect();
    assert_eq!(skipped.len(), 2, "{table}");
    assert!(
        skipped
            .iter()
            .all(|l| l.starts_with("sampler=df_window") && l.contains("steps")),
        "{table}"
    );
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = j["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    assert_eq!(
        j["reference"],
        serde_json::json!(["sampler=ddim", "sampler.steps=4"])
    );
    let ran: Vec<&serde_json::Value> = rows.iter().filter(|r| r.get("skipped").is_none()).collect();
    assert_eq!(ran.len(), 4);
    for r in &ran {
        assert!(r["psnr_vs_ground_truth"].as_f64().is_some(), "{r}");
    }
    // The front: no row on it is slower and worse than another row.
    let key = "psnr_vs_ground_truth";
    let front: Vec<&&serde_json::Value> = ran.iter().filter(|r| r["pareto"] == true).collect();
    assert!(!front.is_empty());
    for f in &front {
        let (ms, q) = (
            f["ms_per_tick_p50"].as_f64().unwrap(),
            f[key].as_f64().unwrap(),
        );
        assert!(
            !ran.iter().any(|r| {
                let (ms2, q2) = (
                    r["ms_per_tick_p50"].as_f64().unwrap(),
                    r[key].as_f64().unwrap(),
                );
                ms2 <= ms && q2 >= q - 0.01 && (ms2 < ms || q2 > q + 0.01)
            }),
            "{f} is dominated"
        );
    }
    let starred = lines.iter().filter(|l| l.ends_with('*')).count();
    assert_eq!(starred, front.len(), "{table}");
    // The recommendation: the fastest row at ≥ 1 dB, named on the last line.
    let best = ran
        .iter()
        .filter(|r| r[key].as_f64().unwrap() >= 1.0)
        .min_by(|a, b| {
            a["ms_per_tick_p50"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["ms_per_tick_p50"].as_f64().unwrap())
        })
        .unwrap();
    assert_eq!(j["recommended"]["combination"], best["combination"]);
    let last = lines.last().unwrap();
    let name = format!(
        "sampler={} sampler.steps={}",
        best["combination"]["sampler"].as_str().unwrap(),
        best["combination"]["sampler.steps"].as_str().unwrap()
    );
    assert!(
        last.starts_with("recommended for ≥ 1 dB: ") && last.contains(&name),
        "{table}"
    );
    // Two plots: against the reference and against the ground truth, the
    // front marked in each.
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.contains("PSNR against the reference, sampler=ddim sampler.steps=4"));
    let gt = std::fs::read_to_string(dir.path().join("swap-gt.svg")).unwrap();
    assert!(gt.contains("PSNR against the ground truth"));
    for s in [&svg, &gt] {
        assert_eq!(s.matches("<circle").count(), 4);
        assert!(s.contains("fill=\"#d62728\""));
    }
    // A target nothing meets: said on the last line, still exit 0.
    let o = wgraph(&[
        "bench",
        "graphs/yan-sim.world",
        "--swap",
        "sampler.steps=1",
        "--reference",
        "sampler.steps=2",
        "--target-fps",
        "1e12",
        "--frames",
        "1",
        "--rounds",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.lines()
            .last()
            .unwrap()
            .contains("no setting reaches 1000000000000 fps"),
        "{out}"
    );
}
