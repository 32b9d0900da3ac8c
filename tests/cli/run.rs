//! `wgraph run`: frames, outputs, overrides, seeds, metrics and exit codes
//! on the example graphs.

use super::*;

#[test]
fn writes_one_png_per_frame() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("frames");
    let o = wgraph(&[
        "run",
        "examples/pan.world",
        "--frames",
        "16",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let files = pngs(&out);
    assert_eq!(files.len(), 16);
    assert!(files[0].ends_with("frame_00000.png") && files[15].ends_with("frame_00015.png"));
    let a = image::open(&files[0]).unwrap().to_rgb8();
    assert_eq!(a.dimensions(), (64, 64));
    // The walk turns right on tick 2: the view must have moved.
    let b = image::open(&files[4]).unwrap().to_rgb8();
    assert_ne!(a.as_raw(), b.as_raw());
}

#[test]
fn set_overrides_a_parameter() {
    // speed 0: the camera never moves, so every frame is the start frame.
    let dir = tempfile::tempdir().unwrap();
    let o = wgraph(&[
        "run",
        "examples/pan.world",
        "--frames",
        "6",
        "--out",
        dir.path().to_str().unwrap(),
        "-q",
        "--set",
        "camera.speed=0",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let frames: Vec<Vec<u8>> = pngs(dir.path())
        .iter()
        .map(|p| image::open(p).unwrap().to_rgb8().into_raw())
        .collect();
    assert_eq!(frames.len(), 6);
    assert!(frames.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn gif_output_has_every_frame() {
    let dir = tempfile::tempdir().unwrap();
    let gif = dir.path().join("pan.gif");
    let o = wgraph(&[
        "run",
        "examples/pan.world",
        "--frames",
        "10",
        "--out",
        gif.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    use image::AnimationDecoder;
    let file = std::io::BufReader::new(std::fs::File::open(&gif).unwrap());
    let frames = image::codecs::gif::GifDecoder::new(file)
        .unwrap()
        .into_frames()
        .collect_frames()
        .unwrap();
    assert_eq!(frames.len(), 10);
}

#[test]
fn actions_flag_replaces_the_action_file() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.txt");
    std::fs::write(&keys, "-\n-\n-\n").unwrap();
    let out = dir.path().join("o");
    let o = wgraph(&[
        "run",
        "examples/pan.world",
        "--frames",
        "3",
        "--actions",
        keys.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let frames: Vec<Vec<u8>> = pngs(&out)
        .iter()
        .map(|p| image::open(p).unwrap().to_rgb8().into_raw())
        .collect();
    assert!(
        frames.windows(2).all(|w| w[0] == w[1]),
        "no keys, no motion"
    );
    std::fs::write(&keys, "W\nQ\n").unwrap();
    let o = wgraph(&[
        "run",
        "examples/pan.world",
        "--actions",
        keys.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("line 2"), "{}", stderr(&o));
}

#[test]
fn seed_changes_noise_and_runs_are_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let run = |seed: &str, name: &str| -> Vec<u8> {
        let out = dir.path().join(name);
        let o = wgraph(&[
            "run",
            "examples/trail.world",
            "--frames",
            "2",
            "--seed",
            seed,
            "--out",
            out.to_str().unwrap(),
            "-q",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        std::fs::read(out.join("latents/dump_00001.npy")).unwrap()
    };
    assert_eq!(run("1", "a"), run("1", "b"));
    assert_ne!(run("1", "a"), run("2", "c"));
}

#[test]
fn results_do_not_depend_on_workers_or_pipelining() {
    let dir = tempfile::tempdir().unwrap();
    let mut dumps = Vec::new();
    for (i, (workers, depth)) in [("0", "1"), ("2", "1"), ("2", "4")].iter().enumerate() {
        let out = dir.path().join(format!("w{i}"));
        let o = wgraph(&[
            "run",
            "examples/trail.world",
            "--frames",
            "6",
            "--workers",
            workers,
            "--pipeline",
            depth,
            "--out",
            out.to_str().unwrap(),
            "-q",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        dumps.push(std::fs::read(out.join("latents/dump_00005.npy")).unwrap());
    }
    assert_eq!(dumps[0], dumps[1]);
    assert_eq!(dumps[0], dumps[2]);
}

#[test]
fn metrics_json_has_per_node_timings() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.json");
    let o = wgraph(&[
        "run",
        "examples/flow.world",
        "--frames",
        "5",
        "--out",
        dir.path().join("o").to_str().unwrap(),
        "--metrics",
        m.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&m).unwrap()).unwrap();
    assert_eq!(v["metrics"]["ticks"], 5);
    let nodes = v["metrics"]["nodes"].as_array().unwrap();
    let velocity = nodes.iter().find(|n| n["name"] == "velocity").unwrap();
    assert_eq!(velocity["count"], 20, "4 steps x 5 ticks");
    for key in ["mean_ms", "p50_ms", "p99_ms"] {
        assert!(velocity[key].as_f64().unwrap() >= 0.0);
    }
    assert!(v["ms_per_tick"].as_f64().unwrap() > 0.0);
}

#[test]
fn sampler_with_exact_velocity_reproduces_the_start_frame() {
    let dir = tempfile::tempdir().unwrap();
    let o = wgraph(&[
        "run",
        "examples/flow.world",
        "--frames",
        "1",
        "--out",
        dir.path().to_str().unwrap(),
        "-q",
        "--set",
        "sampler.steps=3",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let got = image::open(dir.path().join("frame_00000.png"))
        .unwrap()
        .to_rgb8();
    let want = image::open(root().join("examples/assets/start.png"))
        .unwrap()
        .to_rgb8();
    let max_diff = got
        .as_raw()
        .iter()
        .zip(want.as_raw())
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    assert!(max_diff <= 1, "max pixel difference {max_diff}");
}

#[test]
fn exit_codes_for_usage_graph_and_runtime_errors() {
    assert_eq!(
        wgraph(&["run", "examples/pan.world", "--set", "nodot=1"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        wgraph(&["run", "examples/pan.world", "--frames", "x"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        wgraph(&["run", "tests/fixtures/broken/cycle.world"])
            .status
            .code(),
        Some(1)
    );
    let o = wgraph(&["run", "examples/pan.world", "--set", "nobody.speed=1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("`--set`: no node named `nobody`"),
        "{}",
        stderr(&o)
    );
    // The output directory cannot be created under a regular file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain");
    std::fs::write(&file, "x").unwrap();
    let o = wgraph(&[
        "run",
        "examples/pan.world",
        "--out",
        file.join("sub").to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("show"),
        "names the failing node: {}",
        stderr(&o)
    );
}
