//! `wgraph eval`: a graph's frames scored against the ground-truth world.

use super::*;

fn eval_json(args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("eval.json");
    let strip = dir.path().join("strip.png");
    let mut all = vec!["eval"];
    all.extend_from_slice(args);
    all.extend_from_slice(&[
        "--json",
        json.to_str().unwrap(),
        "--strip",
        strip.to_str().unwrap(),
    ]);
    let o = wgraph(&all);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let strip = image::open(&strip).unwrap();
    assert_eq!(
        strip.height(),
        18 + 2 * 64 + 2,
        "a row of tick numbers, then ground truth over generated"
    );
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

#[test]
fn the_ground_truth_scores_perfectly_against_itself() {
    // examples/world.world *is* the ground truth: same seed, same actions.
    let v = eval_json(&[
        "examples/world.world",
        "--world-seed",
        "1001",
        "--actions",
        "examples/actions/walk.txt",
        "--frames",
        "8",
        "--set",
        "gt.seed=1001",
    ]);
    let psnr = v["psnr_per_tick"].as_array().unwrap();
    assert_eq!(psnr.len(), 8);
    assert!(psnr.iter().all(|p| p.as_f64() == Some(100.0)), "{psnr:?}");
    assert!((v["ssim_mean_1_8"].as_f64().unwrap() - 1.0).abs() < 1e-9);
    assert!(v["drift_tick"].is_null());
    // Its `depth_dump` is the ground truth's depth: no error.
    let depth = v["depth_error_per_tick"].as_array().unwrap();
    assert_eq!(depth.len(), 8);
    assert!(
        depth.iter().all(|d| d.as_f64().unwrap() < 1e-4),
        "{depth:?}"
    );
    // Another world seed is a different maze: far from perfect.
    let v = eval_json(&[
        "examples/world.world",
        "--world-seed",
        "1002",
        "--actions",
        "examples/actions/walk.txt",
        "--frames",
        "8",
        "--set",
        "gt.seed=1001",
    ]);
    assert!(v["psnr_mean_1_8"].as_f64().unwrap() < 30.0);
    assert!(v["depth_error_mean_1_8"].as_f64().unwrap() > 0.02, "{v}");
}

#[test]
fn a_model_graph_gets_every_figure() {
    let v = eval_json(&[
        "graphs/yan-sim.world",
        "--world-seed",
        "1003",
        "--actions",
        "examples/actions/walk.txt",
        "--frames",
        "4",
    ]);
    for key in [
        "psnr_mean_1_8",
        "psnr_mean_1_32",
        "ssim_mean_1_32",
        "reconstruction_psnr",
        "drift_tick",
    ] {
        assert!(v.get(key).is_some(), "{key} missing: {v}");
    }
    assert!(
        v["reconstruction_psnr"].as_f64().is_some(),
        "yan-sim has an RGB VAE"
    );
    assert_eq!(v["psnr_per_tick"].as_array().unwrap().len(), 4);
    assert!(
        v["depth_error_per_tick"].is_null(),
        "yan-sim has no depth stream"
    );
}

#[test]
fn restyling_yan_edit_does_not_move_its_geometry() {
    // The ground truth in two themes, the renderer's style prompt to match:
    // the looks differ, the simulated depth (and its error) must not.
    let run = |theme: &str, style: &str| {
        eval_json(&[
            "graphs/yan-edit.world",
            "--world-seed",
            "1004",
            "--actions",
            "examples/actions/walk.txt",
            "--frames",
            "4",
            "--theme",
            theme,
            "--set",
            &format!("style.text={style:?}"),
        ])
    };
    let dungeon = run("dungeon", "an old brick dungeon");
    let forest = run("forest", "a snowy forest");
    let depth = |v: &serde_json::Value| v["depth_error_mean_1_n"].as_f64().unwrap();
    assert!(depth(&dungeon) < 2.0, "{dungeon}");
    assert!(
        (depth(&forest) - depth(&dungeon)).abs() <= 0.1 * depth(&dungeon),
        "theme changed the geometry: {} vs {}",
        depth(&forest),
        depth(&dungeon)
    );
    assert_ne!(dungeon["psnr_per_tick"], forest["psnr_per_tick"]);
}

#[test]
fn a_depth_stream_of_the_wrong_size_is_named_not_scored() {
    let dir = tempfile::tempdir().unwrap();
    let graph = dir.path().join("rgb_as_depth.world");
    std::fs::write(
        &graph,
        "world { resolution = 64x64 }\n\
         node input: actions { path = \"unused.txt\" }\n\
         node gt: world { }\n\
         node show: display { }\n\
         node depth_dump: npy_dump { }\n\
         input.actions -> gt.actions\n\
         gt.image -> show.image\n\
         gt.image -> depth_dump.tensor\n",
    )
    .unwrap();
    let o = wgraph(&[
        "eval",
        graph.to_str().unwrap(),
        "--world-seed",
        "1001",
        "--actions",
        "examples/actions/walk.txt",
        "--frames",
        "2",
        "--json",
        dir.path().join("e.json").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("`depth_dump` tick 0: a depth map of f32[1, 3, 64, 64]"),
        "{}",
        stderr(&o)
    );
    // Every other figure is still written.
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("e.json")).unwrap()).unwrap();
    assert_eq!(v["psnr_per_tick"].as_array().unwrap().len(), 2);
    assert!(v["depth_error_per_tick"].is_null());
    assert!(
        v["depth_error_problem"]
            .as_str()
            .unwrap()
            .contains("depth map")
    );
}

#[test]
fn training_seeds_are_refused() {
    let o = wgraph(&[
        "eval",
        "graphs/yan-sim.world",
        "--world-seed",
        "3",
        "--actions",
        "examples/actions/walk.txt",
        "--json",
        "/dev/null",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("held-out seeds start at 1000"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn instruction_following_and_detail_over_time_on_a_short_run() {
    // The ground truth as a graph gets the script through `gt.events`: it
    // follows every instruction, as the ground truth itself does.
    let v = eval_json(&[
        "examples/world.world",
        "--world-seed",
        "1003",
        "--actions",
        "examples/actions/walk.txt",
        "--frames",
        "16",
        "--set",
        "gt.seed=1003",
        "--instructions",
        "auto",
    ]);
    let psnr = v["psnr_per_tick"].as_array().unwrap();
    assert!(psnr.iter().all(|p| p.as_f64() == Some(100.0)), "{psnr:?}");
    let i = &v["instruction_following"];
    assert_eq!(i["score"], 1.0, "{i}");
    assert_eq!(i["score_ground_truth"], 1.0, "{i}");
    assert_eq!(i["window"], 4);
    let script = wgraph_groundtruth::events::script(1003, 16);
    assert_eq!(i["events"].as_array().unwrap().len(), script.len());
    assert_eq!(i["trials"].as_u64().unwrap() as usize, script.len() + 4);
    let detail = v["detail_per_tick"].as_array().unwrap();
    assert_eq!(detail.len(), 16);
    assert!(detail.iter().all(|d| d.as_f64() == Some(1.0)), "{detail:?}");
    assert!(v["detail_half_tick"].is_null());
    assert!(v["detail_mean_20_32"].is_null(), "16 ticks have no 20-32");

    // A graph that ignores the instructions (a panned start frame) misses
    // them; the ground truth follows them. Instructions from a file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ask.txt");
    std::fs::write(
        &file,
        "# two events\n2: a ghost appears\n5: the lights go out\n",
    )
    .unwrap();
    let v = eval_json(&[
        "examples/pan.world",
        "--world-seed",
        "1003",
        "--actions",
        "examples/actions/walk.txt",
        "--frames",
        "10",
        "--instructions",
        file.to_str().unwrap(),
    ]);
    let i = &v["instruction_following"];
    assert_eq!(i["score_ground_truth"], 1.0, "{i}");
    assert!(i["score"].as_f64().unwrap() < 1.0, "{i}");
    assert_eq!(i["events"][0]["followed"], false, "{i}");
    assert_eq!(i["events"][0]["followed_ground_truth"], true, "{i}");
    assert_eq!(
        i["schedule"],
        serde_json::json!(["2: a ghost appears", "5: the lights go out"])
    );

    // Bad files are usage errors naming the line.
    std::fs::write(&file, "2: a ghost appears\n3: a green valley\n").unwrap();
    let o = wgraph(&[
        "eval",
        "examples/world.world",
        "--world-seed",
        "1003",
        "--actions",
        "examples/actions/walk.txt",
        "--instructions",
        file.to_str().unwrap(),
        "--json",
        "/dev/null",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("ask.txt:2: `a green valley` names no event"),
        "{}",
        stderr(&o)
    );
}

/// Yume 1.5 draws snow when its event text asks for it, stops when asked,
/// and never unasked: its decoder (`vae_decoder_events`, fine-tuned on the
/// graph's own event rollouts) turns the denoiser's haze into flakes the
/// detector sees; the decoder it was fine-tuned from does not (the frames'
/// latents are the same: only the decoder differs). The match-retrieval
/// denoiser draws it too: its retrieval's event gate keeps it from pulling
/// the frames back to the snowless views it remembers (without the gate
/// this walk shows no snow).
#[test]
fn yume15_draws_snow_when_asked_and_only_then() {
    let dir = tempfile::tempdir().unwrap();
    let ask = dir.path().join("snow.txt");
    std::fs::write(&ask, "2: it starts to snow\n5: it stops snowing\n").unwrap();
    let none = dir.path().join("none.txt");
    std::fs::write(&none, "# no events\n").unwrap();
    let eval = |file: &Path, decoder: &str, denoiser: &str| {
        let v = eval_json(&[
            "graphs/yume15.world",
            "--world-seed",
            "1000",
            "--theme",
            "forest",
            "--actions",
            "examples/actions/walk.txt",
            "--frames",
            "8",
            "--instructions",
            file.to_str().unwrap(),
            "--set",
            &format!("decode.model={decoder}"),
            "--set",
            &format!("dit.model={denoiser}"),
        ]);
        v["instruction_following"].clone()
    };
    let i = eval(&ask, "vae_decoder_events", "yume15_dit");
    assert_eq!(i["events"][0]["event"], "snow_starts", "{i}");
    assert_eq!(i["events"][0]["followed"], true, "{i}");
    assert_eq!(i["events"][1]["event"], "snow_stops", "{i}");
    assert_eq!(i["events"][1]["followed"], true, "{i}");
    let seen = |i: &serde_json::Value, t: usize| {
        i["seen_per_tick"][t]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("snow"))
    };
    assert!(
        !seen(&i, 0) && !seen(&i, 1),
        "no snow before it is asked: {i}"
    );
    assert!(!seen(&i, 7), "the snow has stopped by tick 7: {i}");
    let i = eval(&none, "vae_decoder_events", "yume15_dit");
    assert!(i["unasked_first_seen"]["snow"].is_null(), "{i}");
    let i = eval(&ask, "vae_decoder_rollout", "yume15_dit");
    assert_eq!(i["events"][0]["followed"], false, "{i}");
    let i = eval(&ask, "vae_decoder_events", "yume15_dit_match");
    assert_eq!(i["events"][0]["followed"], true, "{i}");
    assert_eq!(i["events"][1]["followed"], true, "{i}");
}

/// Yume 1.5's memory, measured through the CLI: with the match-retrieval
/// denoiser (`dit.model=yume15_dit_match`), turning 180° away and back
/// (`docs/eval/turn-away-and-back.txt`, no events) on a held-out forest walk
/// scores higher on the way back with the full TSCM history than with the
/// memory-less variant (`memory.capacity=1`: the newest latent alone), the
/// start view at tick 24 clearly so (measured: +0.56 dB over ticks 13–24,
/// +2.0 dB at tick 24), while the way out, with nothing to recall, is
/// about the same.
#[test]
fn yume15_match_memory_brings_back_the_views_it_has_seen() {
    let dir = tempfile::tempdir().unwrap();
    let none = dir.path().join("none.txt");
    std::fs::write(&none, "# no events\n").unwrap();
    let psnr = |capacity: &str| {
        let v = eval_json(&[
            "graphs/yume15.world",
            "--world-seed",
            "1004",
            "--theme",
            "forest",
            "--actions",
            "docs/eval/turn-away-and-back.txt",
            "--frames",
            "24",
            "--instructions",
            none.to_str().unwrap(),
            "--set",
            "dit.model=yume15_dit_match",
            "--set",
            &format!("memory.capacity={capacity}"),
        ]);
        let p: Vec<f64> = v["psnr_per_tick"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_f64().unwrap())
            .collect();
        let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
        (mean(&p[..12]), mean(&p[12..24]), p[23])
    };
    let (out_full, back_full, start_full) = psnr("256");
    let (out_none, back_none, start_none) = psnr("1");
    assert!(
        back_full > back_none + 0.3,
        "turning back: {back_full:.2} dB with the history, {back_none:.2} dB without"
    );
    assert!(
        start_full > start_none + 1.0,
        "the start view again: {start_full:.2} dB with the history, {start_none:.2} dB without"
    );
    assert!(
        (out_full - out_none).abs() < 0.5,
        "turning away: {out_full:.2} dB with the history, {out_none:.2} dB without"
    );
}
