//! Tests of the swap's pieces, its report and table, and one whole swap
//! run in process on the ground-truth graph (no models).

use super::*;
use crate::eval::tests::{NoModels, root};

/// A measured row of `sets` at `ms` per tick and `psnr` against the reference.
fn row(sets: &[&str], ms: f64, psnr: f64) -> SwapRow {
    SwapRow {
        combination: sets
            .iter()
            .filter_map(|s| s.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        label: sets.join(" "),
        skipped: None,
        figures: Some(RowFigures {
            ms_per_tick_p50: ms,
            ms_per_tick_p99: ms,
            fps: 1e3 / ms,
            denoiser_calls_per_tick: 1.0,
            denoiser_passes_per_tick: 1.0,
            model_calls_per_tick: 1.0,
            psnr_vs_reference: psnr,
            ssim_vs_reference: 1.0,
            psnr_vs_ground_truth: None,
            ssim_vs_ground_truth: None,
            ground_truth: None,
            pareto: false,
        }),
    }
}

/// A report of `rows` against `sampler.steps=32`, ranked.
fn report_of(graph: &str, rows: Vec<SwapRow>) -> SwapReport {
    let mut report = SwapReport {
        graph: graph.into(),
        frames: 4,
        reference: vec!["sampler.steps=32".into()],
        reference_ms_per_tick_p50: 1.0,
        quality: Quality::Reference,
        swaps: Vec::new(),
        rows,
        recommended: None,
        not_recommended: None,
    };
    rank(&mut report, None, None);
    report
}

#[test]
fn specs_and_combinations() {
    let a = parse_swap("sampler=euler,ddim").unwrap();
    let b = parse_swap("sampler.steps=2, 4").unwrap();
    assert_eq!(b.values, ["2", "4"]);
    assert_eq!(
        combinations(&[a, b]),
        [
            vec!["sampler=euler", "sampler.steps=2"],
            vec!["sampler=euler", "sampler.steps=4"],
            vec!["sampler=ddim", "sampler.steps=2"],
            vec!["sampler=ddim", "sampler.steps=4"],
        ]
    );
    assert!(parse_swap("sampler").is_err());
    assert!(parse_swap("sampler=").is_err());
    // Lists and records keep their commas.
    let c = parse_swap("dit.guidance_interval=[0, 1], [0.2, 0.8],{a = 1, b = 2},\"x, y\"").unwrap();
    assert_eq!(
        c.values,
        ["[0, 1]", "[0.2, 0.8]", "{a = 1, b = 2}", "\"x, y\""]
    );
}

#[test]
fn reference_flags_split_into_settings() {
    assert_eq!(
        split_settings(&["sampler=dpmpp_2m sampler.steps=50".into(), "dit.x=1".into()]),
        ["sampler=dpmpp_2m", "sampler.steps=50", "dit.x=1"]
    );
    assert_eq!(
        split_settings(&["dit.guidance_interval=[0, 0.6] a.b=\"x y\"".into()]),
        ["dit.guidance_interval=[0, 0.6]", "a.b=\"x y\""]
    );
}

#[test]
fn the_front_and_the_recommendation() {
    // (row, ms, quality): 1 is slower and worse than 0; 3 is the best.
    let pts = [
        (0, 5.0, 20.0),
        (1, 6.0, 19.0),
        (2, 9.0, 30.0),
        (3, 12.0, 31.0),
    ];
    assert_eq!(pareto_front(&pts), [0, 2, 3]);
    // A tie to rounding: the faster of the two only.
    let tie = [(0, 7.0, 24.4893), (1, 6.0, 24.4892), (2, 9.0, 30.0)];
    assert_eq!(pareto_front(&tie), [1, 2]);
    let rows: Vec<(usize, f64, f64, f64)> = pts
        .iter()
        .map(|&(i, ms, q)| (i, ms, 1000.0 / ms, q))
        .collect();
    assert_eq!(recommend(&rows, Some(100.0), None), Ok(2));
    assert_eq!(recommend(&rows, None, Some(25.0)), Ok(2));
    assert_eq!(recommend(&rows, None, Some(30.5)), Ok(3));
    assert!(
        recommend(&rows, Some(500.0), None)
            .unwrap_err()
            .contains("500 fps")
    );
    assert!(recommend(&rows, None, None).is_err());
    assert_eq!(
        truth_plot_path(Path::new("out/s.png")),
        Path::new("out/s-gt.png")
    );
}

#[test]
fn the_plot_labels_every_point_and_both_axes() {
    let report = report_of(
        "g<1>.world",
        vec![
            row(&["sampler=euler"], 5.0, 20.0),
            row(&["sampler=ddim"], 9.0, 30.0),
        ],
    );
    let svg = plot_svg(&report, Quality::Reference);
    assert_eq!(svg.matches("<circle").count(), 2);
    assert!(svg.contains(">sampler=euler</text>") && svg.contains(">sampler=ddim</text>"));
    assert!(svg.contains("time per tick, p50 (ms)"));
    assert!(svg.contains("PSNR against the reference, sampler.steps=32 (dB)"));
    assert!(svg.contains("g&lt;1&gt;.world"));
}

/// Points that sit together get labels that do not overlap (the bench
/// of yume: ddim 2 and euler 2 at the same speed and quality).
#[test]
fn labels_of_close_points_do_not_overlap() {
    let two = |kind: &str, ms: f64, psnr: f64| {
        row(&[&format!("sampler={kind}"), "sampler.steps=2"], ms, psnr)
    };
    let report = report_of(
        "g.world",
        vec![
            two("euler", 7.8, 28.07),
            two("ddim", 8.3, 27.97),
            two("sde", 8.0, 28.0),
            two("far", 40.0, 20.0),
        ],
    );
    let svg = plot_svg(&report, Quality::Reference);
    // (x, y) of each point label.
    let labels: Vec<(f64, f64)> = svg
        .lines()
        .filter(|l| l.contains("<circle"))
        .map(|l| {
            let text = &l[l.find("<text x=\"").unwrap() + 9..];
            let x: f64 = text[..text.find('"').unwrap()].parse().unwrap();
            let rest = &text[text.find("y=\"").unwrap() + 3..];
            let y: f64 = rest[..rest.find('"').unwrap()].parse().unwrap();
            (x, y)
        })
        .collect();
    assert_eq!(labels.len(), 4);
    for (i, a) in labels.iter().enumerate() {
        for b in &labels[i + 1..] {
            let apart = (a.1 - b.1).abs() >= 14.0 || (a.0 - b.0).abs() > 150.0;
            assert!(apart, "labels at {a:?} and {b:?} overlap:\n{svg}");
        }
    }
    assert!(crate::plot::svg_to_png(&svg).is_ok());
}

/// A whole swap in process: the ground-truth graph's theme swapped, each
/// combination evaluated against the ground truth in memory (its
/// [`EvalReport`] in the row), frames taken from the runs. Only the theme
/// the ground truth has is perfect, and a PSNR target recommends it.
#[test]
fn a_swap_evaluates_each_combination_in_memory() {
    let options = SwapOptions {
        file: root().join("examples/world.world"),
        swaps: vec![parse_swap("gt.theme=neon,dungeon").unwrap()],
        reference: vec!["gt.theme=dungeon".into()],
        frames: 3,
        rounds: 1,
        set: vec!["gt.seed=1001".into()],
        ground_truth: Some(GroundTruth {
            world_seed: 1001,
            actions: root().join("examples/actions/walk.txt"),
        }),
        target_psnr: Some(99.0),
        ..SwapOptions::default()
    };
    let report = swap(&options, &Models::new(Arc::new(NoModels)), &()).unwrap();
    assert_eq!(report.quality, Quality::GroundTruth);
    assert_eq!(report.rows.len(), 2);
    let figures = |i: usize| report.rows[i].figures.as_ref().unwrap();
    let (neon, dungeon) = (figures(0), figures(1));
    // Against the reference run (the dungeon): frames from the runs' events.
    assert_eq!(dungeon.psnr_vs_reference, 100.0);
    assert!(neon.psnr_vs_reference < 40.0, "{neon:?}");
    // Against the ground truth: the eval's report, consumed in memory.
    let eval = dungeon.ground_truth.as_ref().unwrap();
    assert_eq!(eval.frames, 3);
    assert_eq!(dungeon.psnr_vs_ground_truth, eval.psnr_mean_1_n);
    assert_eq!(dungeon.psnr_vs_ground_truth, Some(100.0));
    assert!(neon.psnr_vs_ground_truth.unwrap() < 40.0);
    let rec = report.recommended.as_ref().unwrap();
    assert_eq!(report.rows[rec.row].label, "gt.theme=dungeon");
    // The JSON `bench --swap --json` writes.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["quality"], "psnr_vs_ground_truth");
    assert_eq!(json["rows"][1]["combination"]["gt.theme"], "dungeon");
    assert_eq!(json["rows"][1]["ground_truth"]["psnr_mean_1_n"], 100.0);
    assert_eq!(json["rows"][1]["pareto"], true);
    assert!(json["rows"][1].get("skipped").is_none());
    assert_eq!(json["recommended"]["combination"]["gt.theme"], "dungeon");
    assert_eq!(json["recommended"]["target_psnr"], 99.0);
    let table = report.table();
    let last = table.lines().last().unwrap();
    assert!(
        last.starts_with("recommended for ≥ 99 dB: gt.theme=dungeon"),
        "{table}"
    );
}

/// A combination that does not apply is a skipped row: in the table, in
/// the JSON (no figures), never on the front or recommended.
#[test]
fn skipped_rows_rank_nowhere() {
    let mut report = report_of("g.world", vec![row(&["sampler=euler"], 5.0, 20.0)]);
    report.rows.push(SwapRow {
        combination: [("sampler".to_string(), "df_window".to_string())].into(),
        label: "sampler=df_window".into(),
        skipped: Some("no steps".into()),
        figures: None,
    });
    rank(&mut report, Some(1.0), None);
    assert_eq!(report.recommended.as_ref().map(|r| r.row), Some(0));
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json["rows"][1],
        serde_json::json!({"combination": {"sampler": "df_window"}, "skipped": "no steps"})
    );
    assert_eq!(json["rows"][0]["pareto"], true);
    assert!(json["rows"][0]["ground_truth"].is_null());
    let table = report.table();
    assert!(table.contains("sampler=df_window                        skipped: no steps"));
    assert!(table.contains("(1 of 2 ran, 1 skipped: they do not apply)"));
    rank(&mut report, Some(1e12), None);
    assert!(report.recommended.is_none());
    assert!(json_null(&report));
    assert!(report.table().ends_with(
        "recommended: none: no setting reaches 1000000000000 fps (the front: sampler=euler)\n"
    ));
}

fn json_null(report: &SwapReport) -> bool {
    serde_json::to_value(report).unwrap()["recommended"].is_null()
}
