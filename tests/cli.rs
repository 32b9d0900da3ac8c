//! The `wgraph` binary, driven as a user would. One integration-test binary,
//! grouped by subcommand.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The in-tree fuzzer (also run long by `examples/fuzz_check.rs`).
#[path = "fuzz/mod.rs"]
mod fuzz;

/// Tests that measure time (play rates in a browser, a live world's clock)
/// and tests that load every core (wonnx on the software Vulkan driver)
/// take turns: on two cores one would measure the other, not wgraph.
static TAKE_TURNS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn take_turns() -> std::sync::MutexGuard<'static, ()> {
    TAKE_TURNS.lock().unwrap_or_else(|p| p.into_inner())
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn wgraph(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgraph"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("wgraph runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn world_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            world_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "world") {
            out.push(p);
        }
    }
}

fn pngs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "png"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Writes a little-endian f32 `.npy` file.
fn write_npy(path: &Path, shape: &[usize], data: &[f32]) {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let dict = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
        dims.join(", ")
    );
    let mut header = dict.into_bytes();
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(&header);
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

mod check {
    use super::*;

    #[test]
    fn accepts_every_shipped_graph_and_example() {
        let mut files = Vec::new();
        world_files(&root().join("graphs"), &mut files);
        world_files(&root().join("examples"), &mut files);
        assert!(files.len() >= 4, "{files:?}");
        for f in files {
            // A graph on the wonnx backend is accepted without the feature
            // too, with a note (tests/cli/wonnx.rs).
            let o = wgraph(&["check", f.to_str().unwrap()]);
            assert_eq!(o.status.code(), Some(0), "{}: {}", f.display(), stderr(&o));
            assert!(stdout(&o).contains(": ok ("));
        }
    }

    /// Each file in tests/fixtures/broken states the diagnostics it must
    /// produce as `// expect: TEXT` lines; TEXT starting with `L:C:` must
    /// appear as `FILE:L:C:` in the rendered output.
    #[test]
    fn rejects_broken_graphs_with_located_errors() {
        let mut files = Vec::new();
        world_files(&root().join("tests/fixtures/broken"), &mut files);
        files.sort();
        assert!(files.len() >= 8);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            let rel = f
                .strip_prefix(root())
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let o = wgraph(&["check", &rel]);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(1), "{rel}: {err}");
            assert!(!err.contains("panicked"), "{rel}: {err}");
            let expectations: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("// expect: "))
                .collect();
            assert!(!expectations.is_empty(), "{rel} has no expectations");
            // `// not: TEXT`: a consequence of an error already reported must
            // not be reported again (one mistake, one error).
            for absent in text.lines().filter_map(|l| l.strip_prefix("// not: ")) {
                assert!(
                    !err.contains(absent),
                    "{rel}: `{absent}` must not appear in:\n{err}"
                );
            }
            // Located expectations are the errors, exactly and in order;
            // unlocated ones (notes, help) must appear somewhere.
            let mut located_count = 0;
            let mut cursor = 0;
            for exp in expectations {
                let (loc, msg) = match exp.split_once(": ") {
                    Some((loc, msg)) if loc.split(':').all(|p| p.parse::<u32>().is_ok()) => {
                        (Some(loc), msg)
                    }
                    _ => (None, exp),
                };
                assert!(err.contains(msg), "{rel}: expected `{msg}` in:\n{err}");
                if let Some(loc) = loc {
                    located_count += 1;
                    let located = format!("{rel}:{loc}");
                    let at = err[cursor..].find(&located).map(|i| i + cursor);
                    assert!(
                        at.is_some(),
                        "{rel}: expected location `{located}` after byte {cursor} (errors in the order of the expectations) in:\n{err}"
                    );
                    cursor = at.unwrap_or(cursor) + located.len();
                }
            }
            let summary = format!("{rel}: {located_count} error");
            assert!(
                err.contains(&format!("{summary}\n")) || err.contains(&format!("{summary}s\n")),
                "{rel}: expected exactly {located_count} errors (one per located `// expect:`) in:\n{err}"
            );
        }
    }

    #[test]
    fn reports_every_file_and_fails_if_any_fails() {
        let o = wgraph(&[
            "check",
            "examples/pan.world",
            "tests/fixtures/broken/cycle.world",
        ]);
        assert_eq!(o.status.code(), Some(1));
        assert!(stdout(&o).contains("examples/pan.world: ok"));
        assert!(stderr(&o).contains("cycle without a feedback edge"));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let seed_text = std::fs::read(root().join("examples/trail.world")).unwrap();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for i in 0..24 {
            let mut bytes = seed_text.clone();
            for _ in 0..(1 + next() % 12) {
                let pos = (next() as usize) % bytes.len();
                match next() % 3 {
                    0 => bytes[pos] = next() as u8,
                    1 => {
                        bytes.remove(pos);
                    }
                    _ => bytes.insert(pos, b"{}[]()\"@.->=x\n\xff"[(next() % 15) as usize]),
                }
            }
            let path = dir.path().join(format!("m{i}.world"));
            std::fs::write(&path, &bytes).unwrap();
            let o = wgraph(&["check", path.to_str().unwrap()]);
            let err = stderr(&o);
            assert!(matches!(o.status.code(), Some(0 | 1)), "{err}");
            assert!(!err.contains("panicked"), "{err}");
        }
    }
}

mod graph {
    use super::*;

    #[test]
    fn json_lists_nodes_kinds_params_and_ported_edges() {
        let o = wgraph(&["graph", "examples/trail.world", "--format", "json"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let nodes = v["nodes"].as_array().unwrap();
        let blend = nodes.iter().find(|n| n["name"] == "blend").unwrap();
        assert_eq!(blend["kind"], "lerp");
        assert_eq!(blend["params"]["t"], 0.35);
        let edges = v["edges"].as_array().unwrap();
        let fb = edges.iter().find(|e| e["feedback"] == true).unwrap();
        assert_eq!(
            (&fb["from"], &fb["from_port"], &fb["to"], &fb["to_port"]),
            (&"clip".into(), &"out".into(), &"blend".into(), &"a".into())
        );
        assert_eq!(v["settings"]["resolution"], serde_json::json!([64, 64]));
    }

    #[test]
    fn dot_and_mermaid_show_edges_and_calls() {
        let dot = stdout(&wgraph(&[
            "graph",
            "examples/flow.world",
            "--format",
            "dot",
        ]));
        assert!(dot.starts_with("digraph world {"));
        assert!(
            dot.contains("\"eps\" -> \"sampler\" [label=\"out → noise\"]"),
            "{dot}"
        );
        assert!(
            dot.contains("\"sampler\" -> \"velocity\" [label=\"calls\", style=dotted]"),
            "{dot}"
        );
        let mermaid = stdout(&wgraph(&[
            "graph",
            "examples/trail.world",
            "--format",
            "mermaid",
        ]));
        assert!(mermaid.starts_with("flowchart LR"));
        assert!(mermaid.contains("-.->|\"out → a (t-1)\"|"), "{mermaid}");
    }

    #[test]
    fn set_is_applied_before_export() {
        let o = wgraph(&[
            "graph",
            "examples/flow.world",
            "--format",
            "json",
            "--set",
            "sampler.steps=9",
        ]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let sampler = v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == "sampler")
            .unwrap()
            .clone();
        assert_eq!(sampler["params"]["steps"], 9);
    }
}

mod run {
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
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&m).unwrap()).unwrap();
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
}

mod misc {
    use super::*;

    #[test]
    fn version_and_kinds() {
        let o = wgraph(&["--version"]);
        assert_eq!(o.status.code(), Some(0));
        assert!(stdout(&o).starts_with("wgraph "));
        let kinds = stdout(&wgraph(&["kinds"]));
        for k in [
            "euler",
            "noise",
            "display",
            "npy",
            "image",
            "actions",
            "target_flow",
        ] {
            assert!(
                kinds.lines().any(|l| l.starts_with(k)),
                "{k} missing from:\n{kinds}"
            );
        }
        let euler = stdout(&wgraph(&["kinds", "euler"]));
        assert!(
            euler.contains("denoiser") && euler.contains("(required)"),
            "{euler}"
        );
        // Values as a graph writes them, and the kind's ports.
        assert!(euler.contains("an integer = 4 "), "{euler}");
        assert!(
            !euler.contains("Int(") && !euler.contains("Choice("),
            "{euler}"
        );
        assert!(euler.contains("inputs:  noise\n"), "{euler}");
        assert!(euler.contains("calls:   @denoiser(x, t)\n"), "{euler}");
        assert!(euler.contains("outputs: latent\n"), "{euler}");
        let ddim = stdout(&wgraph(&["kinds", "ddim"]));
        assert!(
            ddim.contains("leading|trailing|linspace = trailing "),
            "{ddim}"
        );
        assert!(ddim.contains("optional inputs: step_noise"), "{ddim}");
        let encoder = stdout(&wgraph(&["kinds", "encoder"]));
        assert!(
            encoder.contains("ports: set by its parameters"),
            "{encoder}"
        );
    }
}

mod seed_graphs {
    use super::*;

    const GRAPHS: [&str; 6] = [
        "yan-sim",
        "yan-gen",
        "yan-edit",
        "yume",
        "yume-blocks",
        "yume15",
    ];

    fn frame_stats(path: &Path) -> (f64, f64) {
        let img = image::open(path).unwrap().to_rgb8();
        let px: Vec<f64> = img.as_raw().iter().map(|&b| b as f64).collect();
        let mean = px.iter().sum::<f64>() / px.len() as f64;
        let var = px.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / px.len() as f64;
        (mean, var.sqrt())
    }

    #[test]
    fn every_seed_graph_renders_16_non_constant_frames() {
        let dir = tempfile::tempdir().unwrap();
        for g in GRAPHS {
            let out = dir.path().join(g);
            let o = wgraph(&[
                "run",
                &format!("graphs/{g}.world"),
                "--frames",
                "16",
                "--actions",
                "examples/actions/walk.txt",
                "--out",
                out.to_str().unwrap(),
                "-q",
            ]);
            // A non-finite pixel would fail the display sink (exit 3).
            assert_eq!(o.status.code(), Some(0), "{g}: {}", stderr(&o));
            let frames = pngs(&out);
            assert_eq!(frames.len(), 16, "{g}");
            for f in &frames {
                let (_, std) = frame_stats(f);
                assert!(std > 1.0, "{g}: {} is constant", f.display());
            }
            let first = image::open(&frames[0]).unwrap().to_rgb8().into_raw();
            let last = image::open(&frames[15]).unwrap().to_rgb8().into_raw();
            assert_ne!(first, last, "{g}: the world does not move");
        }
    }

    #[test]
    fn gif_and_y4m_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let gif = dir.path().join("sim.gif");
        let o = wgraph(&[
            "run",
            "graphs/yan-sim.world",
            "--frames",
            "8",
            "--out",
            gif.to_str().unwrap(),
            "-q",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(std::fs::read(&gif).unwrap().starts_with(b"GIF89a"));
        let o = wgraph(&[
            "run",
            "graphs/yan-sim.world",
            "--frames",
            "3",
            "--out",
            "-",
            "-q",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(
            o.stdout.starts_with(b"YUV4MPEG2 W64 H64 F16:1"),
            "{:?}",
            &o.stdout[..20.min(o.stdout.len())]
        );
        let frames = o.stdout.windows(6).filter(|w| w == b"FRAME\n").count();
        assert_eq!(frames, 3);
        assert_eq!(
            o.stdout.len(),
            o.stdout.iter().position(|&b| b == b'\n').unwrap() + 1 + 3 * (6 + 3 * 64 * 64)
        );
    }

    #[test]
    fn the_actions_change_what_yan_sim_shows() {
        let dir = tempfile::tempdir().unwrap();
        let keys_a = dir.path().join("a.txt");
        let keys_b = dir.path().join("b.txt");
        std::fs::write(&keys_a, "W\nW\nW\nW\n").unwrap();
        std::fs::write(&keys_b, "W\nLeft\nLeft\nLeft\n").unwrap();
        let mut last = Vec::new();
        for (name, keys) in [("a", &keys_a), ("b", &keys_b)] {
            let out = dir.path().join(name);
            let o = wgraph(&[
                "run",
                "graphs/yan-sim.world",
                "--frames",
                "4",
                "--actions",
                keys.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "-q",
            ]);
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
            let frames = pngs(&out);
            last.push((
                image::open(&frames[0]).unwrap().to_rgb8().into_raw(),
                image::open(&frames[3]).unwrap().to_rgb8().into_raw(),
            ));
        }
        assert_eq!(last[0].0, last[1].0, "same keys on tick 0, same frame");
        assert_ne!(last[0].1, last[1].1, "different keys, different frames");
    }

    #[test]
    fn provider_fallback_warns_and_strict_fails() {
        let o = wgraph(&["check", "graphs/yan-sim.world", "--provider", "cuda"]);
        let err = stderr(&o);
        if err.contains("warning") {
            // CPU-only runtime: loaded on CPU with a plain warning.
            assert_eq!(o.status.code(), Some(0), "{err}");
            assert!(err.contains("provider `cuda` is not available"), "{err}");
        } else {
            assert_eq!(o.status.code(), Some(0), "{err}");
        }
    }

    #[test]
    fn doctor_reports_the_runtime() {
        let o = wgraph(&["doctor", "--json"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let text = v.to_string();
        assert!(text.contains("1.31"), "{text}");
        assert!(text.to_lowercase().contains("cpu"), "{text}");
    }

    #[test]
    fn bench_compares_engine_and_raw_loop() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("bench.json");
        let o = wgraph(&[
            "bench",
            "graphs/yan-sim.world",
            "--baseline",
            "raw",
            "--frames",
            "4",
            "--rounds",
            "2",
            "--json",
            json.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let raw = v["raw_ms_per_tick"].as_f64().unwrap();
        let engine = v["engine_ms_per_tick"].as_f64().unwrap();
        assert!(raw > 0.0 && engine > 0.0);
        assert!((v["engine_over_raw"].as_f64().unwrap() - engine / raw).abs() < 1e-9);
        let (p50, p99) = (
            v["action_to_frame_p50_ms"].as_f64().unwrap(),
            v["action_to_frame_p99_ms"].as_f64().unwrap(),
        );
        assert!(p50 > 0.0 && p99 >= p50, "{v}");
        // encoder once (cached) + action embedder per new key set + 4 denoiser calls + decoder per tick
        let calls = v["model_calls_per_tick"].as_f64().unwrap();
        assert!((5.0..=7.0).contains(&calls), "{calls}");
        assert!(v["quality"].is_null(), "no ground truth asked for");
    }

    #[test]
    fn bench_has_quality_columns_with_a_ground_truth() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("bench.json");
        let o = wgraph(&[
            "bench",
            "graphs/yan-sim.world",
            "--frames",
            "4",
            "--rounds",
            "1",
            "--json",
            json.to_str().unwrap(),
            "--world-seed",
            "1004",
            "--actions",
            "examples/actions/walk.txt",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(v["quality"]["world_seed"], 1004);
        assert_eq!(v["quality"]["psnr_per_tick"].as_array().unwrap().len(), 4);
    }
}

mod dataset {
    use super::*;
    use wgraph_engine::npy::read_npy;
    use wgraph_engine::tensor::Tensor;

    fn npy(path: &Path) -> Tensor {
        read_npy(&std::fs::read(path).unwrap()).unwrap()
    }

    fn generate(out: &Path) -> Output {
        wgraph(&[
            "dataset",
            "--seeds",
            "0..2",
            "--frames",
            "8",
            "--policy",
            "explore",
            out.to_str().unwrap(),
        ])
    }

    #[test]
    fn writes_episodes_that_replay_through_the_world_node() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let o = generate(&a);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(stdout(&o).contains("wrote 2 episodes"), "{}", stdout(&o));
        for seed in 0..2 {
            let ep = a.join(format!("dungeon_{seed}"));
            let frames = npy(&ep.join("frames.npy"));
            assert_eq!(frames.shape(), [9, 64, 64, 3]);
            assert!(frames.host_u8().is_ok());
            assert_eq!(npy(&ep.join("depth.npy")).shape(), [9, 64, 64]);
            let actions = npy(&ep.join("actions.npy"));
            assert_eq!(actions.shape(), [8, 9]);
            assert!(
                actions
                    .host_f32()
                    .unwrap()
                    .iter()
                    .all(|&v| v == 0.0 || v == 1.0)
            );
            assert_eq!(npy(&ep.join("poses.npy")).shape(), [9, 4]);
            let text = std::fs::read_to_string(ep.join("actions.txt")).unwrap();
            let ticks = wgraph_nodes::action_file::parse_action_file(&text).unwrap();
            assert_eq!(ticks.len(), 8);
            for (t, acts) in ticks.iter().enumerate() {
                let hot = &actions.host_f32().unwrap()[t * 9..][..9];
                assert_eq!(acts.multi_hot(), hot, "tick {t}");
            }
        }
        let index: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(a.join("index.json")).unwrap()).unwrap();
        assert_eq!(index["seeds"], serde_json::json!([0, 1]));
        assert_eq!(index["frames"], 9);
        assert_eq!(index["policy"], "explore");
        let hist = index["action_histogram"].as_object().unwrap();
        assert_eq!(hist.len(), 9);
        let coverage = index["coverage"].as_f64().unwrap();
        assert!(coverage > 0.0 && coverage < 1.0, "{coverage}");

        // The same arguments write the same bytes.
        assert_eq!(generate(&b).status.code(), Some(0));
        for f in [
            "frames.npy",
            "depth.npy",
            "actions.npy",
            "poses.npy",
            "actions.txt",
        ] {
            let (x, y) = (a.join("dungeon_1").join(f), b.join("dungeon_1").join(f));
            assert_eq!(std::fs::read(x).unwrap(), std::fs::read(y).unwrap(), "{f}");
        }
        assert_eq!(
            std::fs::read(a.join("index.json")).unwrap(),
            std::fs::read(b.join("index.json")).unwrap()
        );

        // The action file drives a graph, and the world node shows the
        // dataset's frames 1..=8 exactly.
        let ep = a.join("dungeon_1");
        let keys = ep.join("actions.txt");
        let shown = dir.path().join("shown");
        let o = wgraph(&[
            "run",
            "examples/pan.world",
            "--frames",
            "8",
            "--actions",
            keys.to_str().unwrap(),
            "--out",
            shown.to_str().unwrap(),
            "-q",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let o = wgraph(&[
            "run",
            "examples/world.world",
            "--frames",
            "8",
            "--seed",
            "1",
            "--actions",
            keys.to_str().unwrap(),
            "--out",
            shown.to_str().unwrap(),
            "-q",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let frames = npy(&ep.join("frames.npy"));
        let bytes = frames.host_u8().unwrap();
        let pngs = pngs(&shown);
        assert_eq!(pngs.len(), 8);
        for (t, p) in pngs.iter().enumerate() {
            let img = image::open(p).unwrap().to_rgb8().into_raw();
            assert_eq!(
                img,
                bytes[(t + 1) * 64 * 64 * 3..][..64 * 64 * 3],
                "frame {t}"
            );
        }
        let depth = pngs.len();
        assert_eq!(
            std::fs::read_dir(shown.join("depth")).unwrap().count(),
            depth
        );
    }

    #[test]
    fn all_themes_share_the_walk_and_bad_arguments_fail() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("d");
        let o = wgraph(&[
            "dataset",
            "--seeds",
            "4",
            "--frames",
            "5",
            "--policy",
            "random",
            "--theme",
            "all",
            "--size",
            "32",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let read = |t: &str, f: &str| std::fs::read(out.join(format!("{t}_4")).join(f)).unwrap();
        for t in ["neon", "forest"] {
            assert_eq!(read(t, "depth.npy"), read("dungeon", "depth.npy"));
            let keys = |t: &str| {
                let text = String::from_utf8(read(t, "actions.txt")).unwrap();
                wgraph_nodes::action_file::parse_action_file(&text).unwrap()
            };
            assert_eq!(keys(t), keys("dungeon"));
            assert_eq!(read(t, "actions.npy"), read("dungeon", "actions.npy"));
            assert_ne!(read(t, "frames.npy"), read("dungeon", "frames.npy"));
        }
        assert_eq!(npy(&out.join("neon_4/frames.npy")).shape(), [6, 32, 32, 3]);

        for args in [
            &["--seeds", "3..1", "--frames", "4"][..],
            &["--seeds", "x", "--frames", "4"],
            &["--seeds", "0..1", "--frames", "0"],
            &["--seeds", "0..1", "--frames", "2", "--size", "4"],
            &["--seeds", "0..1", "--frames", "2", "--policy", "sideways"],
        ] {
            let mut all = vec!["dataset"];
            all.extend_from_slice(args);
            all.push(out.to_str().unwrap());
            let o = wgraph(&all);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
            assert!(stderr(&o).contains("error"), "{}", stderr(&o));
        }
        // An output path under a regular file cannot be created.
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let o = wgraph(&[
            "dataset",
            "--seeds",
            "0..1",
            "--frames",
            "2",
            file.join("sub").to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
        assert!(stderr(&o).contains("cannot write"), "{}", stderr(&o));
    }
}

mod eval {
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
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("e.json")).unwrap())
                .unwrap();
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
}

mod live {
    use super::*;
    use std::process::{Child, Stdio};
    use std::time::{Duration, Instant};

    /// A temporary project: `graphs/NAME` copied (so it can be edited), the
    /// models and examples it names linked in.
    fn project(graph: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("graphs")).unwrap();
        std::fs::copy(
            root().join("graphs").join(graph),
            dir.path().join("graphs").join(graph),
        )
        .unwrap();
        for linked in ["models-onnx", "examples"] {
            std::os::unix::fs::symlink(root().join(linked), dir.path().join(linked)).unwrap();
        }
        if root().join("graphs/parts").is_dir() {
            std::os::unix::fs::symlink(
                root().join("graphs/parts"),
                dir.path().join("graphs/parts"),
            )
            .unwrap();
        }
        dir
    }

    /// `wgraph ARGS` in `dir`, stderr to `dir/stderr.txt` (read while it runs).
    fn spawn(dir: &Path, args: &[&str]) -> Child {
        let log = std::fs::File::create(dir.join("stderr.txt")).unwrap();
        Command::new(env!("CARGO_BIN_EXE_wgraph"))
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("wgraph starts")
    }

    /// Waits until the log holds `needle` `count` times; returns the log.
    fn wait_for(dir: &Path, needle: &str, count: usize) -> String {
        let start = Instant::now();
        loop {
            let log = std::fs::read_to_string(dir.join("stderr.txt")).unwrap_or_default();
            if log.matches(needle).count() >= count {
                return log;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no {count}× `{needle}` in:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn interrupt(child: &Child) {
        signal(child, "-INT");
    }

    fn signal(child: &Child, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    fn wait_exit(child: &mut Child) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            if start.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                panic!("wgraph did not stop");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The issue's acceptance run: edits to a running yan-sim — a parameter,
    /// a rewire, a kind swap, a syntax error, its fix, and an editor's
    /// rename-save — each picked up (or reported with its location) while
    /// the world keeps ticking; Ctrl-C ends it cleanly with every frame.
    #[test]
    fn watch_reloads_edits_while_the_world_runs() {
        let _turn = take_turns();
        let dir = project("yan-sim.world");
        let d = dir.path();
        let graph = d.join("graphs/yan-sim.world");
        let original = std::fs::read_to_string(&graph).unwrap();
        let mut child = spawn(
            d,
            &[
                "run",
                "graphs/yan-sim.world",
                "--watch",
                // 5 fps: a tick is late only 200 ms after its slot, so a
                // reload that blocked the loop shows while a test running
                // beside this one on two cores does not.
                "--fps",
                "5",
                "--out",
                "out",
                "--metrics",
                "metrics.json",
            ],
        );
        wait_for(d, "watching", 1);
        let frames_after = |n: usize| {
            let start = Instant::now();
            while pngs(&d.join("out")).len() < n {
                assert!(start.elapsed() < Duration::from_secs(60), "no frames");
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        frames_after(3);
        // 1. A parameter, written in place.
        let steps2 = original.replace("steps = 4", "steps = 2");
        assert_ne!(steps2, original);
        std::fs::write(&graph, &steps2).unwrap();
        let log = wait_for(d, "reloaded at tick", 1);
        assert!(
            log.contains("changed sampler.steps; state kept: 10 nodes, fresh: sampler, feedback carried: sampler;"),
            "{log}"
        );
        // 2. A rewire: show the context latent instead of the new one.
        let rewired = steps2.replace(
            "sampler.latent -> decode.latent",
            "context.out -> decode.latent",
        );
        std::fs::write(&graph, &rewired).unwrap();
        let log = wait_for(d, "reloaded at tick", 2);
        assert!(
            log.contains("rewired +context.out -> decode.latent, -sampler.latent -> decode.latent"),
            "{log}"
        );
        // 3. The sampler swapped for another kind (Euler on the ε model,
        // converted from its VP schedule), and a source swapped too.
        let swapped = rewired
            .replace(
                "node sampler: ddim { steps = 2, eta = 0.0, denoiser = @dit }",
                "node sampler: euler { steps = 2, denoiser = @dit }",
            )
            .replace(
                "node eps: noise { shape = [1, 16, 16, 16] }",
                "node eps: constant { shape = [1, 16, 16, 16], value = 0.0 }",
            );
        assert!(swapped.contains("sampler: euler") && swapped.contains("eps: constant"));
        std::fs::write(&graph, &swapped).unwrap();
        let log = wait_for(d, "reloaded at tick", 3);
        assert!(
            log.contains("changed eps (noise -> constant), sampler (ddim -> euler);"),
            "{log}"
        );
        // 4. A syntax error: reported with its location; the world goes on.
        let broken = swapped.replace("node show: display { }", "node show: display {");
        std::fs::write(&graph, &broken).unwrap();
        let log = wait_for(d, "reload failed", 1);
        assert!(log.contains("graphs/yan-sim.world:"), "{log}");
        assert!(log.contains("graphs/yan-sim.world: 1 error"), "{log}");
        let frames_then = pngs(&d.join("out")).len();
        frames_after(frames_then + 3);
        // 5. The fix is picked up.
        std::fs::write(&graph, &swapped).unwrap();
        wait_for(d, "reloaded at tick", 4);
        // 6. A rename-save (vim, JetBrains, VS Code): temp file, then rename.
        let renamed = swapped.replace("euler { steps = 2", "euler { steps = 3");
        assert_ne!(renamed, swapped);
        let tmp = d.join("graphs/.yan-sim.world.swp");
        std::fs::write(&tmp, &renamed).unwrap();
        std::fs::rename(&tmp, &graph).unwrap();
        let log = wait_for(d, "reloaded at tick", 5);
        assert!(log.matches("changed sampler.steps").count() >= 2, "{log}");
        frames_after(pngs(&d.join("out")).len() + 2);
        interrupt(&child);
        assert_eq!(wait_exit(&mut child), Some(0));
        let log = std::fs::read_to_string(d.join("stderr.txt")).unwrap();
        assert!(log.contains("(stopped by Ctrl-C), 5 reloads"), "{log}");
        // No tick lost: every tick has its frame, numbered without a gap.
        let metrics: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("metrics.json")).unwrap())
                .unwrap();
        let ticks = metrics["metrics"]["ticks"].as_u64().unwrap() as usize;
        let frames = pngs(&d.join("out"));
        assert_eq!(frames.len(), ticks);
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f.file_name().unwrap(), format!("frame_{i:05}.png").as_str());
        }
        assert_eq!(metrics["reloads"], 5);
        // Reloads that load no model keep the clock (5 fps here).
        assert_eq!(metrics["late_ticks"], 0, "{log}");
    }

    /// A live session — keys from an events file, a file edit at whatever
    /// tick the watcher sees it, Ctrl-C — is recorded; `wgraph replay`
    /// reproduces every frame bit for bit, and refuses once a file it needs
    /// has changed.
    #[test]
    fn replay_reproduces_a_recorded_live_run() {
        let dir = project("yan-sim.world");
        let d = dir.path();
        let graph = d.join("graphs/yan-sim.world");
        let original = std::fs::read_to_string(&graph).unwrap();
        std::fs::write(d.join("events.txt"), "2: keys = Left\n6: keys = live\n").unwrap();
        let mut child = spawn(
            d,
            &[
                "run",
                "graphs/yan-sim.world",
                "--watch",
                "--fps",
                "20",
                "--out",
                "live",
                "--events",
                "events.txt",
                "--record",
                "rec.jsonl",
            ],
        );
        wait_for(d, "watching", 1);
        while pngs(&d.join("live")).len() < 8 {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::fs::write(&graph, original.replace("steps = 4", "steps = 2")).unwrap();
        wait_for(d, "reloaded at tick", 1);
        let n = pngs(&d.join("live")).len();
        while pngs(&d.join("live")).len() < n + 3 {
            std::thread::sleep(Duration::from_millis(20));
        }
        interrupt(&child);
        assert_eq!(wait_exit(&mut child), Some(0));
        let rec = d.join("rec.jsonl");
        let text = std::fs::read_to_string(&rec).unwrap();
        assert!(text.contains("{\"keys\":\"Left\",\"tick\":2}"), "{text}");
        assert!(text.contains("\"reload\""), "{text}");
        let replayed = d.join("replayed");
        let o = wgraph(&[
            "replay",
            rec.to_str().unwrap(),
            "--out",
            replayed.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let (live, again) = (pngs(&d.join("live")), pngs(&replayed));
        assert_eq!(live.len(), again.len());
        for (a, b) in live.iter().zip(&again) {
            assert_eq!(
                std::fs::read(a).unwrap(),
                std::fs::read(b).unwrap(),
                "{}",
                a.display()
            );
        }
        // A file the recording needs has changed since: refused.
        std::fs::write(d.join("graphs/extra.txt"), "x").unwrap();
        let tampered = text.replacen("\"files\":{", "\"files\":{\"graphs/extra.txt\":\"00\",", 1);
        std::fs::write(&rec, tampered).unwrap();
        let o = wgraph(&[
            "replay",
            rec.to_str().unwrap(),
            "--out",
            replayed.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(2));
        assert!(
            stderr(&o).contains("graphs/extra.txt changed since the recording"),
            "{}",
            stderr(&o)
        );
    }

    /// A reload that would break an open output (a GIF whose frame size
    /// changes) is refused; the old graph keeps running and the GIF stays valid.
    #[test]
    fn a_reload_that_would_corrupt_an_open_gif_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let graph = d.join("world.world");
        let text = std::fs::read_to_string(root().join("examples/world.world")).unwrap();
        std::fs::write(&graph, &text).unwrap();
        std::os::unix::fs::symlink(root().join("examples/actions"), d.join("actions")).unwrap();
        let mut child = spawn(
            d,
            &[
                "run",
                "world.world",
                "--watch",
                "--fps",
                "20",
                "--out",
                "w.gif",
            ],
        );
        wait_for(d, "watching", 1);
        std::thread::sleep(Duration::from_millis(400));
        std::fs::write(
            &graph,
            text.replace("resolution = 64x64", "resolution = 32x32"),
        )
        .unwrap();
        let log = wait_for(d, "reload failed", 1);
        assert!(
            log.contains(
                "the frame size changed, but `w.gif` already holds frames of the old size"
            ),
            "{log}"
        );
        std::thread::sleep(Duration::from_millis(300));
        interrupt(&child);
        assert_eq!(wait_exit(&mut child), Some(0));
        let bytes = std::fs::read(d.join("w.gif")).unwrap();
        assert_eq!(bytes.last(), Some(&0x3B), "the GIF is whole");
        assert!(!d.join("w.gif.tmp").exists());
    }

    /// A model file rewritten under a running world: half-written, it is an
    /// error like any other (the old graph keeps running); complete and
    /// different, it is reloaded — and only that model.
    #[test]
    fn watch_reloads_a_changed_model_and_survives_a_half_written_one() {
        let dir = project("yan-sim.world");
        let d = dir.path();
        let graph = d.join("graphs/yan-sim.world");
        let text = std::fs::read_to_string(&graph).unwrap();
        std::fs::create_dir(d.join("models")).unwrap();
        let model = d.join("models/dit.onnx");
        let bytes = std::fs::read(root().join("models-onnx/trained/dit_sim.onnx")).unwrap();
        std::fs::write(&model, &bytes).unwrap();
        let text = text.replace("../models-onnx/trained/dit_sim.onnx", "../models/dit.onnx");
        std::fs::write(&graph, text).unwrap();
        let mut child = spawn(
            d,
            &["run", "graphs/yan-sim.world", "--watch", "--out", "out"],
        );
        wait_for(d, "watching 7 files", 1);
        std::fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();
        let log = wait_for(d, "reload failed (dit.onnx changed)", 1);
        assert!(log.contains("cannot load model `sim_dit`"), "{log}");
        let n = pngs(&d.join("out")).len();
        while pngs(&d.join("out")).len() < n + 3 {
            std::thread::sleep(Duration::from_millis(20));
        }
        // The same network with another doc string: a different file.
        let mut changed = bytes.clone();
        changed.extend_from_slice(b"\x32\x05hello");
        std::fs::write(&model, &changed).unwrap();
        let log = wait_for(d, "reloaded at tick", 1);
        assert!(
            log.contains(
                "changed dit (model); models reloaded: sim_dit; state kept: 10 nodes, fresh: dit"
            ),
            "{log}"
        );
        interrupt(&child);
        assert_eq!(wait_exit(&mut child), Some(0));
    }

    /// A world that cannot keep its clock degrades (and says so); a degrade
    /// entry naming nothing is a usage error.
    #[test]
    fn degrade_when_behind_and_reject_bad_entries() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let o = wgraph(&[
            "run",
            "graphs/yan-sim.world",
            "--frames",
            "250",
            "--fps",
            "1000",
            "--on-late",
            "degrade",
            "--degrade",
            "sampler.steps=1",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let log = stderr(&o);
        assert!(
            log.contains("degrade level 1 at tick")
                && log.contains(": sampler.steps = 1 (behind: tick"),
            "{log}"
        );
        assert!(
            log.contains("(set sampler.steps = 1): changed sampler.steps"),
            "{log}"
        );
        assert_eq!(pngs(&out).len(), 250, "no frame lost while degrading");
        let o = wgraph(&[
            "run",
            "graphs/yan-sim.world",
            "--on-late",
            "degrade",
            "--degrade",
            "smapler.steps=1",
        ]);
        assert_eq!(o.status.code(), Some(2));
        assert!(
            stderr(&o).contains("the graph has no node `smapler`"),
            "{}",
            stderr(&o)
        );
        let o = wgraph(&["run", "graphs/yan-sim.world", "--on-late", "degrade"]);
        assert_eq!(o.status.code(), Some(2));
        assert!(
            stderr(&o).contains("needs degrade settings"),
            "{}",
            stderr(&o)
        );
    }

    #[test]
    fn events_apply_at_their_tick_and_typos_are_usage_errors() {
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("events.txt");
        std::fs::write(&events, "# a live edit, scripted\n3: sampler.steps = 2\n").unwrap();
        let out = dir.path().join("out");
        let o = wgraph(&[
            "run",
            "graphs/yan-sim.world",
            "--frames",
            "6",
            "--events",
            events.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(
            stderr(&o)
                .contains("reloaded at tick 3 (set sampler.steps = 2): changed sampler.steps"),
            "{}",
            stderr(&o)
        );
        assert_eq!(pngs(&out).len(), 6);
        // The first three frames match a run without the event; later ones do not.
        let plain = dir.path().join("plain");
        let o = wgraph(&[
            "run",
            "graphs/yan-sim.world",
            "--frames",
            "6",
            "--out",
            plain.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0));
        let (a, b) = (pngs(&out), pngs(&plain));
        for i in 0..6 {
            let same = std::fs::read(&a[i]).unwrap() == std::fs::read(&b[i]).unwrap();
            assert_eq!(same, i < 3, "frame {i}");
        }
        std::fs::write(&events, "3: sampler.stepz = 2\n").unwrap();
        let o = wgraph(&[
            "run",
            "graphs/yan-sim.world",
            "--events",
            events.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(2));
        assert!(
            stderr(&o).contains("`sampler` (ddim) has no parameter `stepz`"),
            "{}",
            stderr(&o)
        );
        std::fs::write(&events, "3 sampler.steps = 2\n").unwrap();
        let o = wgraph(&[
            "run",
            "graphs/yan-sim.world",
            "--events",
            events.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(2));
        assert!(
            stderr(&o).contains("events.txt:1: expected"),
            "{}",
            stderr(&o)
        );
    }

    /// Ctrl-C or SIGTERM in a plain run: the GIF gets its trailer, a y4m
    /// stream holds whole frames only, exit 0 with the summary.
    #[test]
    fn ctrl_c_and_sigterm_finish_every_sink() {
        for (sig, out, min_len, name) in [
            ("-INT", "world.gif", 2000, "Ctrl-C"),
            ("-TERM", "world.y4m", 30000, "SIGTERM"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(out);
            let mut child = spawn(
                dir.path(),
                &[
                    "run",
                    root().join("examples/world.world").to_str().unwrap(),
                    "--frames",
                    "100000",
                    "--fps",
                    "30",
                    "--out",
                    path.to_str().unwrap(),
                ],
            );
            let start = Instant::now();
            while std::fs::metadata(&path).map_or(0, |m| m.len()) < min_len {
                assert!(start.elapsed() < Duration::from_secs(60), "no frames");
                std::thread::sleep(Duration::from_millis(20));
            }
            signal(&child, sig);
            assert_eq!(wait_exit(&mut child), Some(0), "{sig}");
            let log = std::fs::read_to_string(dir.path().join("stderr.txt")).unwrap();
            assert!(log.contains(&format!("(stopped by {name})")), "{log}");
            let bytes = std::fs::read(&path).unwrap();
            if out.ends_with(".gif") {
                assert_eq!(bytes.last(), Some(&0x3B), "the GIF trailer was written");
            } else {
                // Header line, then FRAME\n + 3 planes of 64x64 per frame.
                let header = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
                let frame = 6 + 3 * 64 * 64;
                assert_eq!((bytes.len() - header) % frame, 0, "whole frames only");
            }
        }
    }
}

mod yan_edit_live {
    use super::*;

    fn npys(dir: &Path) -> Vec<Vec<u8>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "npy"))
            .collect();
        files.sort();
        files.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }

    /// A live theme change of the ground-truth world keeps the player where
    /// it is: the depth stream equals a run without the change, the frames
    /// change from that tick on.
    #[test]
    fn a_live_theme_change_keeps_the_players_pose() {
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("events.txt");
        std::fs::write(&events, "5: gt.theme = neon\n").unwrap();
        let run = |name: &str, extra: &[&str]| {
            let out = dir.path().join(name);
            let mut args = vec![
                "run",
                "examples/world.world",
                "--frames",
                "10",
                "--out",
                out.to_str().unwrap(),
            ];
            args.extend_from_slice(extra);
            let o = wgraph(&args);
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
            assert!(!stderr(&o).contains("reset"), "{}", stderr(&o));
            out
        };
        let plain = run("plain", &[]);
        let live = run("live", &["--events", events.to_str().unwrap()]);
        assert_eq!(npys(&plain.join("depth")), npys(&live.join("depth")));
        let (a, b) = (pngs(&plain), pngs(&live));
        for i in 0..10 {
            let same = std::fs::read(&a[i]).unwrap() == std::fs::read(&b[i]).unwrap();
            assert_eq!(same, i < 5, "frame {i}");
        }
    }

    /// A style change mid-run restyles the renderer's frames from its tick
    /// on and leaves the simulator's depth latents bit-identical.
    #[test]
    fn a_live_restyle_changes_the_frames_and_not_the_geometry() {
        let dir = tempfile::tempdir().unwrap();
        let graph = dir.path().join("edit.world");
        std::fs::write(
            &graph,
            format!(
                "include \"{}\"\nnode latents: npy_dump {{ dir = \"latents\" }}\nsimulate.latent -> latents.tensor\n",
                root().join("graphs/yan-edit.world").display()
            ),
        )
        .unwrap();
        let events = dir.path().join("events.txt");
        std::fs::write(&events, "4: style.text = \"a snowy forest\"\n").unwrap();
        let run = |name: &str, extra: &[&str]| {
            let out = dir.path().join(name);
            let mut args = vec![
                "run",
                graph.to_str().unwrap(),
                "--frames",
                "8",
                "--out",
                out.to_str().unwrap(),
            ];
            args.extend_from_slice(extra);
            let o = wgraph(&args);
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
            (o, out)
        };
        let (_, plain) = run("plain", &[]);
        let (o, live) = run("live", &["--events", events.to_str().unwrap()]);
        assert!(
            stderr(&o).contains(
                "reloaded at tick 4 (set style.text = \"a snowy forest\"): changed style.text"
            ),
            "{}",
            stderr(&o)
        );
        assert_eq!(
            npys(&plain.join("latents")),
            npys(&live.join("latents")),
            "depth latents bit-identical"
        );
        let (a, b) = (pngs(&plain), pngs(&live));
        assert_eq!((a.len(), b.len()), (8, 8));
        for i in 0..8 {
            let same = std::fs::read(&a[i]).unwrap() == std::fs::read(&b[i]).unwrap();
            assert_eq!(same, i < 4, "frame {i}: restyled from tick 4 on");
        }
    }
}

mod snapshots {
    use super::*;

    /// Running N ticks equals running N/2, saving, loading and running the
    /// rest — frame for frame, bit for bit — for a graph with feedback
    /// (yan-sim), one with memory (yume15), the ground-truth world (pose)
    /// and a diffusion-forcing window (the frames in flight, yan-sim-df).
    #[test]
    fn save_and_load_continue_a_run_bit_for_bit() {
        for (graph, frames) in [
            ("graphs/yan-sim.world", 12),
            ("graphs/yan-sim-df.world", 12),
            ("graphs/yume15.world", 12),
            ("examples/world.world", 12),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
            let (all, half) = (frames.to_string(), (frames / 2).to_string());
            let run = |args: &[&str]| {
                let o = wgraph(args);
                assert_eq!(o.status.code(), Some(0), "{graph}: {}", stderr(&o));
            };
            run(&["run", graph, "--frames", &all, "--out", &p("full")]);
            let state = p("state.json");
            run(&[
                "run",
                graph,
                "--frames",
                &half,
                "--out",
                &p("a"),
                "--save-state",
                &state,
            ]);
            run(&[
                "run",
                graph,
                "--frames",
                &all,
                "--out",
                &p("b"),
                "--load-state",
                &state,
            ]);
            let (full, rest) = (pngs(&dir.path().join("full")), pngs(&dir.path().join("b")));
            assert_eq!(rest.len(), frames / 2, "{graph}");
            for r in &rest {
                let f = dir.path().join("full").join(r.file_name().unwrap());
                assert!(full.contains(&f), "{graph}: {}", f.display());
                assert_eq!(
                    std::fs::read(r).unwrap(),
                    std::fs::read(&f).unwrap(),
                    "{graph}: {}",
                    r.display()
                );
            }
            // --save-at: the same state, taken mid-run.
            let at = p("at.json");
            run(&[
                "run",
                graph,
                "--frames",
                &all,
                "--out",
                &p("c"),
                "--save-state",
                &at,
                "--save-at",
                &half,
            ]);
            let json = |f: &str| -> serde_json::Value {
                serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap()
            };
            assert_eq!(json(&at), json(&state), "{graph}");
        }
    }

    #[test]
    fn a_state_of_another_graph_or_model_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s.json");
        let out = dir.path().join("o");
        let o = wgraph(&[
            "run",
            "graphs/yan-sim.world",
            "--frames",
            "2",
            "--out",
            out.to_str().unwrap(),
            "--save-state",
            state.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let o = wgraph(&[
            "run",
            "examples/world.world",
            "--out",
            out.to_str().unwrap(),
            "--load-state",
            state.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(2));
        assert!(
            stderr(&o).contains("the snapshot is of another graph: it has node `action` (action_embedder) that this graph lacks"),
            "{}",
            stderr(&o)
        );
        let o = wgraph(&[
            "run",
            "graphs/yan-sim.world",
            "--seed",
            "5",
            "--out",
            out.to_str().unwrap(),
            "--load-state",
            state.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains("taken with seed"), "{}", stderr(&o));
        std::fs::write(&state, "{\"wgraph_snapshot\": 99}").unwrap();
        let o = wgraph(&[
            "run",
            "graphs/yan-sim.world",
            "--out",
            out.to_str().unwrap(),
            "--load-state",
            state.to_str().unwrap(),
        ]);
        assert!(
            stderr(&o).contains("snapshot format version 99"),
            "{}",
            stderr(&o)
        );
    }
}

/// `wgraph serve` in a real browser: Debian's chromium, headless, driven
/// over the Chrome DevTools Protocol (a WebSocket, with `tungstenite`).
/// `.ci/run` installs chromium; `WGRAPH_CHROMIUM` names another binary.
mod browser {
    use super::*;
    use serde_json::{Value as Json, json};
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::process::{Child, Stdio};
    use std::time::{Duration, Instant};

    // One browser at a time, and not beside other timed or core-hungry
    // tests (`take_turns`): chromium and a world per test on two cores
    // would measure the machine, not wgraph.

    /// The browser: `WGRAPH_CHROMIUM`, or Debian's chromium, installed by
    /// `tests/support/install-chromium.sh` on first need.
    fn chromium() -> PathBuf {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        if let Some(p) = std::env::var_os("WGRAPH_CHROMIUM") {
            return PathBuf::from(p);
        }
        let path = PathBuf::from("/usr/bin/chromium");
        INSTALL.call_once(|| {
            if !path.exists() {
                let _ = Command::new(root().join("tests/support/install-chromium.sh")).status();
            }
        });
        assert!(
            path.exists(),
            "{} not found and tests/support/install-chromium.sh could not install it",
            path.display()
        );
        path
    }

    /// The token the served worlds get (`--token`): pages and sockets show it.
    const TOKEN: &str = "wgraph-browser-test-token";

    struct Killed(Child);

    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// `wgraph serve ARGS --port 0`; returns the child and its address.
    fn serve(dir: &Path, args: &[&str]) -> (Killed, String) {
        let log = std::fs::File::create(dir.join("serve.txt")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_wgraph"))
            .arg("serve")
            .args(args)
            .args(["--port", "0", "--token", TOKEN])
            .current_dir(root())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let child = Killed(child);
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(dir.join("serve.txt")).unwrap_or_default();
            if let Some(i) = text.find("http://") {
                let addr = text[i + 7..].split('/').next().unwrap().to_string();
                return (child, addr);
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no address: {text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A GET over HTTP/1.1 (chromium's DevTools server ignores HTTP/1.0
    /// and keeps connections open), read up to its Content-Length.
    fn http_get(addr: &str, path: &str) -> String {
        let Ok(mut s) = TcpStream::connect(addr) else {
            return String::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        if write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .is_err()
        {
            return String::new();
        }
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                });
                if length.is_some_and(|n| body.len() >= n) {
                    return body.to_string();
                }
            }
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => {
                    return text
                        .split_once("\r\n\r\n")
                        .map(|(_, b)| b.to_string())
                        .unwrap_or_default();
                }
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
        }
    }

    struct Page {
        _browser: Killed,
        ws: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
        id: u64,
        // Dropped last: the next browser starts after this one is gone.
        _one: std::sync::MutexGuard<'static, ()>,
    }

    impl Page {
        fn open(dir: &Path, url: &str) -> Page {
            let one = take_turns();
            // A fresh profile each time: a used one holds the last
            // browser's DevToolsActivePort.
            static OPENED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = OPENED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let profile = dir.join(format!("profile-{n}"));
            let browser = Command::new(chromium())
                .args([
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--remote-debugging-port=0",
                ])
                .arg(format!("--user-data-dir={}", profile.display()))
                .arg(url)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let browser = Killed(browser);
            let start = Instant::now();
            let port = loop {
                // Whole once it has its second line (the browser target's path).
                if let Ok(t) = std::fs::read_to_string(profile.join("DevToolsActivePort"))
                    && t.lines().count() >= 2
                    && let Some(p) = t.lines().next()
                {
                    break p.to_string();
                }
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "chromium did not start"
                );
                std::thread::sleep(Duration::from_millis(50));
            };
            let addr = format!("127.0.0.1:{port}");
            let ws_url = loop {
                let list: Json =
                    serde_json::from_str(&http_get(&addr, "/json/list")).unwrap_or(json!([]));
                let page = list.as_array().and_then(|l| {
                    l.iter().find(|t| {
                        // The page takes the token out of its address.
                        let base = url.split('?').next().unwrap_or(url);
                        t["type"] == "page"
                            && t["url"].as_str().is_some_and(|u| u.starts_with(base))
                    })
                });
                if let Some(p) = page {
                    break p["webSocketDebuggerUrl"].as_str().unwrap().to_string();
                }
                assert!(start.elapsed() < Duration::from_secs(60), "no page");
                std::thread::sleep(Duration::from_millis(50));
            };
            let (ws, _) = tungstenite::connect(ws_url).unwrap();
            Page {
                _browser: browser,
                ws,
                id: 0,
                _one: one,
            }
        }

        fn call(&mut self, method: &str, params: Json) -> Json {
            self.id += 1;
            let id = self.id;
            let msg = json!({"id": id, "method": method, "params": params});
            self.ws
                .send(tungstenite::Message::text(msg.to_string()))
                .unwrap();
            loop {
                let m = self.ws.read().unwrap();
                if let tungstenite::Message::Text(t) = m {
                    let j: Json = serde_json::from_str(t.as_str()).unwrap();
                    if j["id"] == id {
                        return j;
                    }
                }
            }
        }

        /// `window.wgraph`, the page's state.
        fn state(&mut self) -> Json {
            let r = self.call(
                "Runtime.evaluate",
                json!({"expression": "JSON.stringify(window.wgraph || null)", "returnByValue": true}),
            );
            serde_json::from_str(r["result"]["result"]["value"].as_str().unwrap_or("null")).unwrap()
        }

        fn eval(&mut self, expression: &str) {
            self.call("Runtime.evaluate", json!({"expression": expression}));
        }

        fn key(&mut self, kind: &str, code: &str, key: &str, vk: u32) {
            self.call(
                "Input.dispatchKeyEvent",
                json!({"type": kind, "code": code, "key": key, "windowsVirtualKeyCode": vk}),
            );
        }

        fn wait_until(&mut self, what: &str, ok: impl Fn(&Json) -> bool) -> Json {
            let start = Instant::now();
            loop {
                let s = self.state();
                if ok(&s) {
                    return s;
                }
                assert!(start.elapsed() < Duration::from_secs(60), "{what}: {s}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn n(j: &Json, k: &str) -> u64 {
        j[k].as_u64().unwrap_or(0)
    }

    /// Holding W for one second moves the world; frames arrive at the
    /// graph's rate; the server measured the key-to-frame latency.
    fn hold_w_and_see_the_world_move(graph: &str, fps: u64) {
        let dir = tempfile::tempdir().unwrap();
        let metrics = dir.path().join("metrics.json");
        let (mut server, addr) =
            serve(dir.path(), &[graph, "--metrics", metrics.to_str().unwrap()]);
        let url = format!("http://{addr}/?token={TOKEN}");
        let mut page = Page::open(dir.path(), &url);
        let s = page.wait_until("controls and gets frames", |s| {
            s["controller"] == true && n(s, "frames") > 3
        });
        // Idle: two seconds of frames. A busy machine runs fewer ticks, so
        // the frames are counted against the ticks the world ran (the page
        // sees each frame's tick), not against the clock: at least half of
        // them reach the page (the rate a player sees is in --metrics).
        let tick = |s: &Json| s["lastTick"].as_u64().unwrap_or(0);
        let (f0, h0, t0) = (
            n(&s, "frames"),
            s["hashes"].as_array().unwrap().len(),
            tick(&s),
        );
        std::thread::sleep(Duration::from_secs(2));
        let s = page.wait_until("ticks go on", |s| tick(s) >= t0 + 4);
        let (f1, h1, t1) = (
            n(&s, "frames"),
            s["hashes"].as_array().unwrap().len(),
            tick(&s),
        );
        assert!(
            2 * (f1 - f0) >= t1 - t0,
            "{graph}: {} frames for {} ticks (at {fps} fps)",
            f1 - f0,
            t1 - t0
        );
        page.key("keyDown", "KeyW", "w", 87);
        std::thread::sleep(Duration::from_secs(2));
        // Held until at least 4 ticks ran with it, however busy the machine.
        page.wait_until("ticks with W held", |s| tick(s) >= t1 + 4);
        page.key("keyUp", "KeyW", "w", 87);
        let s = page.state();
        let (f2, h2, t2) = (
            n(&s, "frames"),
            s["hashes"].as_array().unwrap().len(),
            tick(&s),
        );
        assert!(
            2 * (f2 - f1) >= t2 - t1,
            "{graph}: {} frames for the {} ticks W was held",
            f2 - f1,
            t2 - t1
        );
        assert!(
            h2 - h1 >= 3,
            "{graph}: frames changed {} times while W was held",
            h2 - h1
        );
        if graph.ends_with("examples/world.world") {
            assert_eq!(h1, h0, "the ground truth stands still while no key is held");
        }
        // Play a little: turn left and right, so latency has samples.
        for (code, key, vk) in [
            ("ArrowLeft", "ArrowLeft", 37),
            ("ArrowRight", "ArrowRight", 39),
        ] {
            for _ in 0..3 {
                page.key("keyDown", code, key, vk);
                std::thread::sleep(Duration::from_millis(300));
                page.key("keyUp", code, key, vk);
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        // The HUD reports the measured latency.
        let s = page.wait_until("HUD latency", |s| {
            s["hud"]["latency_count"].as_u64().is_some_and(|c| c >= 1)
        });
        assert!(s["hud"]["latency_p50_ms"].as_f64().unwrap() > 0.0, "{s}");
        signal_int(&mut server.0);
        let log = std::fs::read_to_string(dir.path().join("serve.txt")).unwrap();
        assert!(log.contains("key→frame latency p50"), "{log}");
        let m: Json = serde_json::from_str(&std::fs::read_to_string(&metrics).unwrap()).unwrap();
        let w = &m["worlds"][0];
        assert!(w["latency_samples"].as_u64().unwrap() >= 6, "{m}");
        // `cargo test --release --test cli playable_in_a_browser -- --nocapture` prints the figures.
        eprintln!("{graph} played in chromium: {w}");
    }

    fn signal_int(child: &mut Child) {
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "serve did not stop"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn the_ground_truth_world_is_playable_in_a_browser() {
        hold_w_and_see_the_world_move("examples/world.world", 8);
    }

    #[test]
    fn yan_sim_is_playable_in_a_browser() {
        hold_w_and_see_the_world_move("graphs/yan-sim.world", 16);
    }

    #[test]
    fn yume_is_playable_in_a_browser() {
        hold_w_and_see_the_world_move("graphs/yume.world", 16);
    }

    /// The WebSocket protocol without a browser: a malformed message is
    /// answered with an error, an oversized one closes that socket only, a
    /// second viewer watches while the first controls, and a viewer that
    /// never reads does not slow the others.
    #[test]
    fn sockets_answer_bad_messages_and_a_stalled_viewer_slows_nobody() {
        let dir = tempfile::tempdir().unwrap();
        let (mut server, addr) = serve(dir.path(), &["examples/world.world", "--fps", "20"]);
        let url = format!("ws://{addr}/w/0/ws?token={TOKEN}");
        let open = || tungstenite::connect(url.as_str()).unwrap().0;
        let mut first = open();
        let next_json = |ws: &mut tungstenite::WebSocket<_>| -> Json {
            loop {
                if let tungstenite::Message::Text(t) = ws.read().unwrap() {
                    let j: Json = serde_json::from_str(t.as_str()).unwrap();
                    if j["type"] != "tick" && j["type"] != "hud" {
                        return j;
                    }
                }
            }
        };
        let hello = next_json(&mut first);
        assert_eq!(hello["controller"], true, "{hello}");
        let _stalled = open(); // connects and never reads
        let mut second = open();
        assert_eq!(next_json(&mut second)["controller"], false);
        first.send(tungstenite::Message::text("{not json")).unwrap();
        let e = next_json(&mut first);
        assert_eq!(e["type"], "error");
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .starts_with("malformed message"),
            "{e}"
        );
        second
            .send(tungstenite::Message::text(
                r#"{"type":"keys","keys":["W"]}"#,
            ))
            .unwrap();
        assert_eq!(
            next_json(&mut second)["controller"],
            false,
            "a watcher cannot steer"
        );
        first
            .send(tungstenite::Message::text(
                r#"{"type":"keys","keys":["Q"]}"#,
            ))
            .unwrap();
        assert_eq!(next_json(&mut first)["message"], "unknown key `Q`");
        // Frames keep coming to the first viewer as the world ticks: at
        // least half of the ticks run meanwhile (counted by the frames' own
        // tick numbers, so a busy machine running fewer ticks still passes).
        let start = Instant::now();
        let (mut frames, mut ticks) = (0u64, Vec::new());
        while start.elapsed() < Duration::from_secs(2) || frames < 4 {
            if let tungstenite::Message::Binary(b) = first.read().unwrap() {
                assert_eq!(b[0], b'F');
                frames += 1;
                ticks.push(u32::from_le_bytes([b[1], b[2], b[3], b[4]]) as u64);
            }
        }
        let ran = ticks.last().unwrap() - ticks.first().unwrap() + 1;
        assert!(
            2 * frames >= ran,
            "{frames} frames for {ran} ticks beside a stalled viewer"
        );
        // An oversized message closes that socket; the server goes on.
        let big = format!(r#"{{"type":"keys","keys":["{}"]}}"#, "W".repeat(10_000));
        let _ = second.send(tungstenite::Message::text(big));
        let closed = (0..1000).any(|_| second.read().is_err());
        assert!(closed, "the oversized message's socket is closed");
        let mut third = open();
        assert_eq!(next_json(&mut third)["type"], "hello");
        signal_int(&mut server.0);
        let log = std::fs::read_to_string(dir.path().join("serve.txt")).unwrap();
        assert!(log.contains("malformed message"), "{log}");
    }

    /// Every prompt a graph exposes gets a box: Yume 1.5's events and
    /// Yan-Gen's local caption (`prompt_schedule`s), Yan-Gen's global caption.
    #[test]
    fn pages_offer_every_prompt_the_graph_exposes() {
        let dir = tempfile::tempdir().unwrap();
        let (_server, addr) = serve(dir.path(), &["graphs/yume15.world", "graphs/yan-gen.world"]);
        let hello = |i: usize| -> Json {
            let (mut ws, _) =
                tungstenite::connect(format!("ws://{addr}/w/{i}/ws?token={TOKEN}")).unwrap();
            loop {
                if let tungstenite::Message::Text(t) = ws.read().unwrap() {
                    let j: Json = serde_json::from_str(t.as_str()).unwrap();
                    if j["type"] == "hello" {
                        return j;
                    }
                }
            }
        };
        let names = |j: &Json| -> Vec<String> {
            j["prompts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    format!(
                        "{}.{}={}",
                        p["node"].as_str().unwrap(),
                        p["param"].as_str().unwrap(),
                        p["value"].as_str().unwrap()
                    )
                })
                .collect()
        };
        assert_eq!(names(&hello(0)), ["events.text=a quiet street at dusk"]);
        let yan_gen = names(&hello(1));
        assert!(
            yan_gen.iter().any(|p| p.starts_with("global.text=")),
            "{yan_gen:?}"
        );
        assert!(
            yan_gen.iter().any(|p| p.starts_with("captions.text=")),
            "{yan_gen:?}"
        );
    }

    /// Yan-Edit's style prompt box restyles the world live.
    #[test]
    fn the_style_prompt_box_restyles_yan_edit_live() {
        let dir = tempfile::tempdir().unwrap();
        let (_server, addr) = serve(
            dir.path(),
            &["graphs/yan-edit.world", "examples/world.world"],
        );
        let index = http_get(&addr, "/");
        assert!(
            index.contains("href=\"/w/0\"") && index.contains("href=\"/w/1\""),
            "{index}"
        );
        let mut page = Page::open(dir.path(), &format!("http://{addr}/w/0?token={TOKEN}"));
        let s = page.wait_until("frames", |s| n(s, "frames") > 2);
        assert_eq!(s["role"], "player", "{s}");
        // The page keeps the token and takes it out of the address bar.
        let search = page.call(
            "Runtime.evaluate",
            json!({"expression": "location.search", "returnByValue": true}),
        );
        assert_eq!(search["result"]["result"]["value"], "", "{search}");
        page.eval(
            "const i = document.querySelector('input[data-node=style]'); \
             i.value = 'a snowy forest'; i.dispatchEvent(new Event('change'));",
        );
        page.wait_until("the reload", |s| n(s, "reloads") >= 1);
        let log = std::fs::read_to_string(dir.path().join("serve.txt")).unwrap();
        assert!(
            log.contains("(set style.text = \"a snowy forest\"): changed style.text"),
            "{log}"
        );
        assert!(
            !log.contains("models reloaded"),
            "a prompt change reloads no model: {log}"
        );
        drop(page);
        // Without the token the page only says how to get in.
        let mut page = Page::open(dir.path(), &format!("http://{addr}/w/1"));
        page.wait_until("the refusal", |s| s["refused"] == true);
        let role = page.call(
            "Runtime.evaluate",
            json!({"expression": "document.getElementById('role').textContent", "returnByValue": true}),
        );
        assert!(
            role["result"]["result"]["value"]
                .as_str()
                .is_some_and(|t| t.contains("needs its token")),
            "{role}"
        );
    }
}

/// `wgraph play` through a pseudo-terminal, as a user's terminal runs it.
mod terminal_player {
    use super::*;
    use portable_pty::{CommandBuilder, PtySize, native_pty_system};
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    /// Runs `wgraph play GRAPH` in a pseudo-terminal with
    /// `env`, holds W for a second (a terminal without release events
    /// repeats the key), quits with `q`; returns everything it printed.
    fn play_in_pty(graph: &str, env: &[(&str, &str)]) -> String {
        let pty = native_pty_system();
        let pair = pty
            .openpty(PtySize {
                rows: 40,
                cols: 100,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_wgraph"));
        cmd.args(["play", graph, "--fps", "20"]);
        cmd.cwd(root());
        cmd.env("TERM", "xterm-256color");
        cmd.env_remove("KITTY_WINDOW_ID");
        cmd.env_remove("TERM_PROGRAM");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = pair.slave.spawn_command(cmd).unwrap();
        drop(pair.slave);
        let output = Arc::new(Mutex::new(Vec::<u8>::new()));
        let mut reader = pair.master.try_clone_reader().unwrap();
        let sink = Arc::clone(&output);
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let mut writer = pair.master.take_writer().unwrap();
        let text = || String::from_utf8_lossy(&output.lock().unwrap()).to_string();
        let start = Instant::now();
        while !text().contains("q quits") {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no HUD: {}",
                text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let hold = Instant::now();
        while hold.elapsed() < Duration::from_secs(1) {
            writer.write_all(b"w").unwrap();
            writer.flush().unwrap();
            std::thread::sleep(Duration::from_millis(40));
        }
        std::thread::sleep(Duration::from_millis(300));
        writer.write_all(b"q").unwrap();
        writer.flush().unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "{status:?}: {}", text());
        std::thread::sleep(Duration::from_millis(200));
        text()
    }

    fn check_played(out: &str) {
        let left = out
            .rfind("\u{1b}[?1049l")
            .expect("left the alternate screen");
        assert!(
            out[left..].contains("\u{1b}[?25h") || out.contains("\u{1b}[?25h"),
            "cursor shown"
        );
        let distinct: u64 = out
            .split(" distinct)")
            .next()
            .and_then(|s| s.rsplit('(').next())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        assert!(distinct >= 3, "the world moved while W was held: {out}");
        assert!(!out.contains("(0 key changes)"), "{out}");
    }

    #[test]
    fn play_draws_frames_takes_keys_and_restores_the_terminal() {
        let out = play_in_pty("graphs/yan-sim.world", &[]);
        assert!(
            out.contains('▀') && out.contains("\u{1b}[38;2;"),
            "truecolor half blocks"
        );
        check_played(&out);
    }

    /// In kitty (and WezTerm, Ghostty) frames are real pixels.
    #[test]
    fn play_uses_kitty_graphics_where_the_terminal_speaks_it() {
        let out = play_in_pty("examples/world.world", &[("KITTY_WINDOW_ID", "1")]);
        assert!(
            out.contains("\u{1b}_Ga=T,i=1,p=1,q=2,f=24,s=64,v=64,"),
            "kitty images"
        );
        assert!(!out.contains('▀'), "no half blocks");
        check_played(&out);
    }
}

mod python_baseline {
    use super::*;

    /// `bench --baseline python` runs the researcher-style Python loop
    /// (installing its environment on first use) and the engine alternately;
    /// it refuses a graph that is not yan-sim.
    #[test]
    fn bench_against_the_python_loop() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("bench.json");
        let o = wgraph(&[
            "bench",
            "graphs/yan-sim.world",
            "--baseline",
            "python",
            "--frames",
            "4",
            "--rounds",
            "1",
            "--json",
            json.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(
            stdout(&o).contains("Python loop (onnxruntime + numpy, DDIM 4 steps)"),
            "{}",
            stdout(&o)
        );
        let j: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(j["baseline"], "python");
        assert_eq!(j["baseline_steps"], 4, "the graph's sampler.steps");
        assert!(j["baseline_ms_per_tick"].as_f64().unwrap() > 0.0);
        assert!(j["engine_over_baseline"].as_f64().unwrap() > 0.0);
        // The engine at one step against the Python loop at four.
        let o = wgraph(&[
            "bench",
            "graphs/yan-sim.world",
            "--baseline",
            "python",
            "--baseline-steps",
            "4",
            "--set",
            "sampler.steps=1",
            "--frames",
            "2",
            "--rounds",
            "1",
            "--json",
            json.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(stdout(&o).contains("DDIM 4 steps"), "{}", stdout(&o));
        let j: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(j["baseline_steps"], 4);
        let o = wgraph(&["bench", "graphs/yan-sim.world", "--baseline-steps", "4"]);
        assert_eq!(o.status.code(), Some(2));
        assert!(
            stderr(&o).contains("needs --baseline python"),
            "{}",
            stderr(&o)
        );
        let o = wgraph(&[
            "bench",
            "graphs/yume.world",
            "--baseline",
            "python",
            "--frames",
            "2",
        ]);
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains("Yan-Sim's loop"), "{}", stderr(&o));
    }
}

mod bench_swap {
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
                    r["combination"]["sampler"] == kind
                        && r["combination"]["sampler.steps"] == steps
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
}

/// Every sampler against an independent NumPy implementation of its
/// published formula (tests/reference/samplers.py), on analytic denoisers
/// exported to ONNX (tests/reference/make_models.py: a flow velocity model
/// and a VP ε model), with exact step noise injected through `step_noise`.
mod sampler_reference {
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
                                serde_json::json!([
                                    name.trim(),
                                    scale.trim().parse::<f64>().unwrap()
                                ])
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
}

/// `python3 models-onnx/check.py` works on a machine whose Python has no
/// numpy or onnxruntime: the script makes its own environment (once, in
/// wgraph's cache folder) from models-onnx/requirements.txt.
#[test]
fn the_model_check_script_installs_what_it_needs() {
    let o = Command::new("python3")
        .args(["-S", "models-onnx/check.py", "--runs", "2"])
        .current_dir(root())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("all ok"), "{out}");
}

/// A report piped into a reader that goes away (`wgraph kinds | head -1`)
/// ends quietly, never with a panic.
#[test]
fn a_closed_pipe_is_not_a_panic() {
    for args in [
        &["kinds"][..],
        &["kinds", "euler"],
        &["check", "graphs/yan-sim.world"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wgraph"))
            .args(args)
            .current_dir(root())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// Mistakes in flags give one error each, about the flag, not about the
/// nodes downstream of the node the flag broke.
#[test]
fn a_flag_mistake_is_one_error() {
    let dir = tempfile::tempdir().unwrap();
    let actions = dir.path().join("a.txt");
    std::fs::write(&actions, "W\nQ+W\n").unwrap();
    let out = dir.path().join("o");
    let cases: [(&[&str], &str); 4] = [
        (
            &["--set", "sampler.stpes=4"],
            "unknown parameter `stpes` for node `sampler` (ddim)",
        ),
        (
            &["--set", "samplr=euler"],
            "`--set`: no node named `samplr`",
        ),
        (&["--set", "sampler=eulr"], "unknown node kind `eulr`"),
        (&["--actions", actions.to_str().unwrap()], "line 2 of"),
    ];
    for (flags, message) in cases {
        let mut args = vec!["run", "graphs/yan-sim.world", "--frames", "1", "--out"];
        args.push(out.to_str().unwrap());
        args.extend_from_slice(flags);
        let o = wgraph(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{flags:?}: {err}");
        assert!(err.contains(message), "{flags:?}: {err}");
        assert_eq!(err.matches("error:").count(), 1, "{flags:?}: {err}");
        assert!(
            err.contains("graphs/yan-sim.world: 1 error\n"),
            "{flags:?}: {err}"
        );
    }
}

/// A model without metadata works in a role-specific kind once the graph's
/// `model` declaration gives its contract; without it the error says how.
#[test]
fn a_models_role_can_be_given_in_the_graph() {
    let dir = tempfile::tempdir().unwrap();
    let plain = root().join("tests/reference/plain.onnx");
    let graph = |decl: &str| {
        format!(
            "model net = \"{}\" {decl}\nnode x: constant {{ shape = 1x4x2x2, value = 0.5 }}\n\
             node t: constant {{ shape = [1], value = 500 }}\nnode enc: encoder {{ model = net }}\n\
             node out: npy_dump {{ dir = \"o\" }}\nx.out -> enc.x\nt.out -> enc.t\nenc.y -> out.tensor\n",
            plain.display()
        )
    };
    let file = dir.path().join("g.world");
    std::fs::write(&file, graph("")).unwrap();
    let o = wgraph(&["check", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("declare it in the graph: `model net = \"…\" { role = vae_encoder }`"),
        "{}",
        stderr(&o)
    );
    std::fs::write(&file, graph("{ role = vae_encoder }")).unwrap();
    let o = wgraph(&["check", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Yume's block cache (`block_denoiser`): the cache arithmetic against
/// NumPy (tests/reference/blocks.py) on the analytic block-split denoiser of
/// tests/reference/make_models.py; the shipped block split of Yume's
/// denoiser against the monolithic model; `wgraph blocks`.
mod block_cache {
    use super::*;
    use wgraph_engine::npy::read_npy;

    fn npy_f32(path: &Path) -> Vec<f32> {
        read_npy(&std::fs::read(path).unwrap())
            .unwrap()
            .host_f32()
            .unwrap()
            .to_vec()
    }

    /// 3 ticks of Euler on the analytic split denoiser, for several cache
    /// sets and l_c = 1 and 2, against the NumPy reference (residuals
    /// rounded to bf16 there too): max abs error ≤ 1e-5. A cache that
    /// changes nothing would pass the error bound too, so each cached case
    /// must also differ from the uncached run.
    #[test]
    fn cache_arithmetic_matches_the_numpy_reference() {
        let python = sampler_reference::python();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let noise: Vec<f32> = (0..48).map(|i| (i as f32 * 1.3).cos()).collect();
        let cond: Vec<f32> = (0..16).map(|i| (i as f32 * 0.7).sin() * 0.5).collect();
        write_npy(&d.join("noise.npy"), &[3, 1, 4, 2, 2], &noise);
        write_npy(&d.join("cond.npy"), &[1, 4, 2, 2], &cond);
        let reference = root().join("tests/reference");
        // (steps, shift, cache, cache_steps)
        let cases: &[(usize, f64, &[usize], usize)] = &[
            (4, 3.0, &[], 1),
            (4, 3.0, &[1], 1),
            (5, 3.0, &[0, 2], 2),
            (3, 1.0, &[0, 1, 2], 1),
            (6, 2.0, &[2, 0], 2),
            (5, 3.0, &[1, 2], 1),
        ];
        for (i, (steps, shift, cache, cache_steps)) in cases.iter().enumerate() {
            let case_dir = d.join(format!("case{i}"));
            std::fs::create_dir(&case_dir).unwrap();
            let list: Vec<String> = cache.iter().map(ToString::to_string).collect();
            let model = |n: &str| {
                reference
                    .join(format!("block_{n}.onnx"))
                    .display()
                    .to_string()
            };
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
                d.join("noise.npy").display(),
                d.join("cond.npy").display(),
                list.join(", "),
            );
            let file = case_dir.join("g.world");
            std::fs::write(&file, graph).unwrap();
            let o = wgraph(&[
                "run",
                file.to_str().unwrap(),
                "--frames",
                "3",
                "--out",
                case_dir.join("run").to_str().unwrap(),
            ]);
            assert_eq!(o.status.code(), Some(0), "case {i}: {}", stderr(&o));
            let case = serde_json::json!({
                "steps": steps, "shift": shift, "cache": cache, "cache_steps": cache_steps,
            });
            let case_path = case_dir.join("case.json");
            std::fs::write(&case_path, case.to_string()).unwrap();
            let r = Command::new(&python)
                .arg(root().join("tests/reference/blocks.py"))
                .arg(&case_path)
                .arg(d.join("noise.npy"))
                .arg(d.join("cond.npy"))
                .arg(case_dir.join("run/out"))
                .output()
                .unwrap();
            assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
            let j: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
            eprintln!("{case}: {j}");
            assert_eq!(j["ticks"], 3, "{j}");
            let err = j["max_abs_error"].as_f64().unwrap();
            assert!(err <= 1e-5, "{case}: max abs error {err}");
            let changed = j["difference_from_uncached"].as_f64().unwrap();
            if cache.is_empty() {
                assert!(changed <= 1e-5, "{case}: {j}");
            } else {
                assert!(changed > 1e-4, "{case}: the cache changed nothing: {j}");
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
        let (split, split_frames) =
            latents(dir.path(), "graphs/yume-blocks.world", &["dit.cache=[]"]);
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
        assert!(stderr(&o).contains("`dit` is a `denoiser` node; `wgraph blocks` measures a `block_denoiser` (it has none)"), "{}", stderr(&o));
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
}

/// The generic `model` kind: any ONNX file, no wgraph metadata; its ports
/// are the model's own, checked against the wiring at build time. Port
/// names as exporters write them (`input.1`, `0`, `out:0`) are quoted.
mod generic_model {
    use super::*;

    /// A graph feeding x = 0.5 and t = 500 into `tests/reference/MODEL`
    /// through `wiring` (its edges, `X` and `T` the constant nodes, `net`
    /// the model node, `out` an `npy_dump`).
    fn graph(model: &str, wiring: &str) -> String {
        format!(
            "model m = \"{}\"\nnode x: constant {{ shape = [1, 4, 2, 2], value = 0.5 }}\n\
             node t: constant {{ shape = [1], value = 500.0 }}\nnode net: model {{ model = m }}\n\
             node out: npy_dump {{ dir = \"o\" }}\n{wiring}",
            root().join("tests/reference").join(model).display()
        )
    }

    /// Runs `text`; the last value the model wrote.
    fn run_graph(dir: &Path, text: &str) -> f32 {
        let file = dir.join("g.world");
        std::fs::write(&file, text).unwrap();
        let out = dir.join("run");
        let o = wgraph(&[
            "run",
            file.to_str().unwrap(),
            "--frames",
            "1",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let bytes = std::fs::read(out.join("o/out_00000.npy")).unwrap();
        f32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap())
    }

    fn check_errors(dir: &Path, text: &str) -> String {
        let file = dir.join("g.world");
        std::fs::write(&file, text).unwrap();
        let o = wgraph(&["check", file.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1));
        stderr(&o)
    }

    /// 0.8·0.5 − 0.0003·500 + 0.1·0.25, the analytic network.
    const WANT: f32 = 0.275;

    #[test]
    fn any_onnx_model_runs_with_its_own_ports() {
        let dir = tempfile::tempdir().unwrap();
        let text = graph(
            "plain.onnx",
            "x.out -> net.x\nt.out -> net.t\nnet.y -> out.tensor\n",
        );
        assert!((run_graph(dir.path(), &text) - WANT).abs() < 1e-6);
        // A wrong shape is a build-time error naming the node and port.
        let err = check_errors(
            dir.path(),
            &text.replace("shape = [1, 4, 2, 2]", "shape = [1, 4, 3, 3]"),
        );
        assert!(
            err.contains("type mismatch at input `net.x`: model input `x` expects f32[1, 4, 2, 2]"),
            "{err}"
        );
    }

    #[test]
    fn quoted_port_names_reach_exported_models() {
        let dir = tempfile::tempdir().unwrap();
        let wiring = "x.out -> net.\"input.1\"\nt.out -> net.\"0\"\nnet.\"out:0\" -> out.tensor\n";
        let text = graph("dotted.onnx", wiring);
        assert!((run_graph(dir.path(), &text) - WANT).abs() < 1e-6);
        // Leave one input unwired: the help names it in a form that parses.
        let err = check_errors(dir.path(), &text.replace("t.out -> net.\"0\"\n", ""));
        assert!(
            err.contains("connect it: `some_node.out -> net.\"0\"`"),
            "{err}"
        );
    }
}

/// Ports of other dtypes than f32 — bool masks, i32 indices, f64, and the
/// small integers and f16 — through the generic `model` kind: `.npy`
/// inputs of those dtypes in, the model's outputs dumped and compared with
/// the values the network computes (`tests/reference/dtypes.onnx`,
/// `small_types.onnx`, made by `make_models.py`).
mod model_dtypes {
    use super::*;
    use wgraph_engine::npy::{read_npy, write_npy};
    use wgraph_engine::tensor::{Tensor, f16};

    fn put(dir: &Path, name: &str, t: &Tensor) {
        std::fs::write(dir.join(name), write_npy(t).unwrap()).unwrap();
    }

    /// `dtypes.onnx` fed from `mask.npy` (one [1, 4] slice per tick),
    /// `idx.npy` and `x.npy`, every output dumped under `o/`.
    fn dtypes_graph(dir: &Path) -> PathBuf {
        let mut text = format!(
            "model m = \"{}\"\nnode mask: npy {{ path = \"mask.npy\", sequence = true }}\n\
             node idx: npy {{ path = \"idx.npy\" }}\nnode x: npy {{ path = \"x.npy\" }}\n\
             node net: model {{ model = m }}\nmask.out -> net.mask\nidx.out -> net.idx\nx.out -> net.x\n",
            root().join("tests/reference/dtypes.onnx").display()
        );
        for o in ["picked", "inverted", "shifted", "counted", "recip"] {
            text += &format!(
                "node d_{o}: npy_dump {{ dir = \"o\", prefix = \"{o}\" }}\nnet.{o} -> d_{o}.tensor\n"
            );
        }
        let file = dir.join("g.world");
        std::fs::write(&file, text).unwrap();
        file
    }

    fn run(file: &Path, frames: &str) -> (Output, PathBuf) {
        let out = file.parent().unwrap().join("run");
        let o = wgraph(&[
            "run",
            file.to_str().unwrap(),
            "--frames",
            frames,
            "--out",
            out.to_str().unwrap(),
        ]);
        (o, out.join("o"))
    }

    fn dumped(dir: &Path, name: &str) -> Tensor {
        read_npy(&std::fs::read(dir.join(name)).unwrap()).unwrap()
    }

    #[test]
    fn bool_i32_and_f64_ports_run_through_the_model_kind() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let masks = [true, false, false, true, false, false, true, true];
        put(
            d,
            "mask.npy",
            &Tensor::from_bool(&[2, 1, 4], masks.to_vec()).unwrap(),
        );
        let idx = [0, -3, 7, i32::MAX - 10];
        put(
            d,
            "idx.npy",
            &Tensor::from_i32(&[1, 4], idx.to_vec()).unwrap(),
        );
        // Values f32 cannot hold: f64 must travel as f64.
        let x = [0.1, -2.5, 1e-300, 4.000000000000001];
        put(d, "x.npy", &Tensor::from_f64(&[1, 4], x.to_vec()).unwrap());
        let file = dtypes_graph(d);
        let o = wgraph(&["check", file.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let o = wgraph(&["graph", file.to_str().unwrap(), "--format", "json"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let json = stdout(&o);
        for ty in ["\"bool[1, 4]\"", "\"i32[1, 4]\"", "\"f64[1, 4]\""] {
            assert!(json.contains(ty), "{ty} in {json}");
        }
        let (o, out) = run(&file, "2");
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        for tick in 0..2 {
            let mask = &masks[tick * 4..tick * 4 + 4];
            let f = |name: &str| dumped(&out, &format!("{name}_{tick:05}.npy"));
            let picked: Vec<f64> = (0..4).map(|i| if mask[i] { x[i] } else { -x[i] }).collect();
            let picked_t = f("picked");
            assert_eq!(picked_t.shape(), &[1, 4]);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(picked_t.host_f64().unwrap()),
                bits(&picked),
                "tick {tick}"
            );
            let inverted: Vec<bool> = mask.iter().map(|m| !m).collect();
            assert_eq!(f("inverted").host_bool().unwrap(), &inverted[..]);
            let shifted: Vec<i32> = idx.iter().map(|i| i + 10).collect();
            assert_eq!(f("shifted").host_i32().unwrap(), &shifted[..]);
            let counted: Vec<i32> = (0..4).map(|i| idx[i] + i32::from(mask[i])).collect();
            assert_eq!(f("counted").host_i32().unwrap(), &counted[..]);
            let recip: Vec<f64> = x.iter().map(|v| 1.0 / v).collect();
            assert_eq!(bits(f("recip").host_f64().unwrap()), bits(&recip));
        }
    }

    #[test]
    fn wrong_dtypes_are_check_errors_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        put(
            d,
            "mask.npy",
            &Tensor::from_bool(&[1, 1, 4], vec![true; 4]).unwrap(),
        );
        put(
            d,
            "idx.npy",
            &Tensor::from_i32(&[1, 4], vec![1; 4]).unwrap(),
        );
        put(
            d,
            "x.npy",
            &Tensor::from_f64(&[1, 4], vec![1.0; 4]).unwrap(),
        );
        let file = dtypes_graph(d);
        // An f32 mask where the model takes bool.
        put(
            d,
            "mask.npy",
            &Tensor::from_f32(&[1, 1, 4], vec![1.0; 4]).unwrap(),
        );
        let o = wgraph(&["check", file.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1));
        assert!(
            stderr(&o).contains("model input `mask` expects bool[1, 4], found f32[1, 4]"),
            "{}",
            stderr(&o)
        );
        // A node that computes on floats keeps asking for f32.
        put(
            d,
            "mask.npy",
            &Tensor::from_bool(&[1, 1, 4], vec![true; 4]).unwrap(),
        );
        let mut text = std::fs::read_to_string(&file).unwrap();
        text += "node s: scale { factor = 2.0 }\nnet.inverted -> s.x\nnode s_out: npy_dump { dir = \"o\" }\ns.out -> s_out.tensor\n";
        std::fs::write(&file, text).unwrap();
        let o = wgraph(&["check", file.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1));
        assert!(
            stderr(&o).contains("expected an f32 tensor, found bool[1, 4]"),
            "{}",
            stderr(&o)
        );
    }

    /// 1/0 in an f64 output fails the model node, as a NaN in f32 does.
    #[test]
    fn a_non_finite_f64_output_fails_the_node_that_made_it() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        put(
            d,
            "mask.npy",
            &Tensor::from_bool(&[1, 1, 4], vec![true; 4]).unwrap(),
        );
        put(
            d,
            "idx.npy",
            &Tensor::from_i32(&[1, 4], vec![1; 4]).unwrap(),
        );
        put(
            d,
            "x.npy",
            &Tensor::from_f64(&[1, 4], vec![1.0, 2.0, 0.0, 0.0]).unwrap(),
        );
        let (o, _) = run(&dtypes_graph(d), "1");
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
        assert!(
            stderr(&o).contains(
                "output `recip` (from model `m`) holds a non-finite value (inf) at element 2; 2 of its 4 values are NaN or infinite"
            ),
            "{}",
            stderr(&o)
        );
        // An f64 .npy holding NaN is refused when it loads.
        put(
            d,
            "x.npy",
            &Tensor::from_f64(&[1, 4], vec![1.0, f64::NAN, 1.0, 1.0]).unwrap(),
        );
        let o = wgraph(&["check", dtypes_graph(d).to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1));
        assert!(
            stderr(&o).contains("holds a non-finite value at element 1"),
            "{}",
            stderr(&o)
        );
    }

    #[test]
    fn small_int_and_f16_ports_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let h = [f16::from_f32(0.5), f16::from_f32(-2.0), f16::MAX];
        let inputs = [
            ("a", Tensor::from_i8(&[3], vec![-128, 0, 127]).unwrap()),
            (
                "b",
                Tensor::from_i16(&[3], vec![i16::MIN, -2, i16::MAX]).unwrap(),
            ),
            ("c", Tensor::from_u16(&[3], vec![0, 1, u16::MAX]).unwrap()),
            ("d", Tensor::from_u32(&[3], vec![0, 7, u32::MAX]).unwrap()),
            ("e", Tensor::from_f16(&[3], h.to_vec()).unwrap()),
        ];
        let mut text = format!(
            "model m = \"{}\"\nnode net: model {{ model = m }}\n",
            root().join("tests/reference/small_types.onnx").display()
        );
        for (n, t) in &inputs {
            put(d, &format!("{n}.npy"), t);
            text += &format!(
                "node {n}: npy {{ path = \"{n}.npy\" }}\n{n}.out -> net.{n}\n\
                 node d_{n}: npy_dump {{ dir = \"o\", prefix = \"{n}\" }}\nnet.{n}_out -> d_{n}.tensor\n"
            );
        }
        text += "node d_wide: npy_dump { dir = \"o\", prefix = \"wide\" }\nnet.e_f32 -> d_wide.tensor\n";
        let file = d.join("g.world");
        std::fs::write(&file, text).unwrap();
        let (o, out) = run(&file, "1");
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        for (n, t) in &inputs {
            assert_eq!(&dumped(&out, &format!("{n}_00000.npy")), t, "{n}");
        }
        assert_eq!(
            dumped(&out, "wide_00000.npy").host_f32().unwrap(),
            &[0.5, -2.0, 65504.0]
        );
    }
}

/// Issue 11 §3: nothing lost, nothing hung, nothing aborted. Each test
/// drives a fault as a user meets it and checks the run fails cleanly,
/// names what is at fault, and keeps what was already written.
mod faults {
    use super::*;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    /// `wgraph ARGS` in `dir` that must end within `secs` (a hang fails the
    /// test instead of stalling it).
    fn wgraph_within(dir: &Path, args: &[&str], secs: u64) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wgraph"))
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wgraph runs");
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > Duration::from_secs(secs) {
                let _ = child.kill();
                let o = child.wait_with_output().unwrap();
                panic!("wgraph {args:?} hung; stderr:\n{}", stderr(&o));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    }

    fn mkfifo(path: &Path) {
        let made = Command::new("mkfifo").arg(path).status().unwrap();
        assert!(made.success());
    }

    /// A project with `g.world` holding `text` (and the examples linked in).
    fn project(text: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(root().join("examples"), dir.path().join("examples")).unwrap();
        std::fs::write(dir.path().join("g.world"), text).unwrap();
        dir
    }

    /// Devices, FIFOs and directories given as inputs are refused before
    /// they are opened (nothing blocks, nothing eats memory), each located.
    #[test]
    fn unbounded_inputs_are_refused_not_read() {
        let dir = project("include \"examples/pan.world\"\n");
        let d = dir.path();
        mkfifo(&d.join("fifo"));
        let refused = "not a regular file (a character device); wgraph reads only regular files";
        // --actions /dev/zero: located at the flag.
        let o = wgraph_within(d, &["run", "g.world", "--actions", "/dev/zero"], 30);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains(&format!("cannot read `/dev/zero`: {refused}")));
        assert!(stderr(&o).contains("--actions:1:1"), "{}", stderr(&o));
        // --events and --load-state from a FIFO nobody writes.
        let o = wgraph_within(d, &["run", "g.world", "--events", "fifo"], 30);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("--events fifo: not a regular file (a named pipe)"));
        let o = wgraph_within(d, &["run", "g.world", "--load-state", "fifo"], 30);
        assert!(stderr(&o).contains("--load-state fifo: not a regular file (a named pipe)"));
        let o = wgraph_within(d, &["replay", "/dev/zero"], 30);
        assert!(stderr(&o).contains(refused), "{}", stderr(&o));
        // In a graph: includes of a device and of a FIFO, one error each.
        std::fs::write(
            d.join("inc.world"),
            "include \"/dev/zero\"\ninclude \"fifo\"\n",
        )
        .unwrap();
        let o = wgraph_within(d, &["check", "inc.world"], 30);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!(
                "error: cannot read include `/dev/zero`: {refused}\n  ┌─ inc.world:1:1"
            )),
            "{err}"
        );
        assert!(err.contains("error: cannot read include `fifo`: not a regular file (a named pipe); wgraph reads only regular files\n  ┌─ inc.world:2:1"), "{err}");
        // An array, an image, a feedback init and a model that are not
        // regular files: located at their paths.
        std::fs::write(
            d.join("data.world"),
            "node a: npy { path = \"/dev/zero\" }\nnode i: image { path = \"fifo\" }\n\
             model m = \"/dev/zero\"\nnode s: add { }\ni.image -> s.a\n\
             feedback s.out -> s.b init npy(\"fifo\")\n",
        )
        .unwrap();
        let o = wgraph_within(d, &["check", "data.world"], 30);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        for (at, what) in [
            ("data.world:1:22", "a character device"),
            ("data.world:2:24", "a named pipe"),
            ("data.world:3:11", "a character device"),
            ("data.world:6:28", "a named pipe"),
        ] {
            let located = err
                .split("error: ")
                .find(|e| e.contains(at))
                .unwrap_or_else(|| panic!("nothing at {at}:\n{err}"));
            assert!(
                located.contains(&format!("not a regular file ({what})")),
                "{located}"
            );
        }
        let o = wgraph_within(d, &["check", "/dev/zero"], 30);
        assert!(stderr(&o).contains(refused), "{}", stderr(&o));
    }

    /// The frames of a GIF (it must decode, trailer and all).
    fn gif_frames(path: &Path) -> usize {
        use image::AnimationDecoder;
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(
            bytes.last(),
            Some(&0x3B),
            "{}: no GIF trailer",
            path.display()
        );
        image::codecs::gif::GifDecoder::new(std::io::Cursor::new(bytes))
            .unwrap()
            .into_frames()
            .collect_frames()
            .unwrap()
            .len()
    }

    /// Whole frames of a 4:4:4 y4m stream of `w`×`h` frames.
    fn y4m_frames(path: &Path, w: usize, h: usize) -> usize {
        let bytes = std::fs::read(path).unwrap();
        let header = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
        let frame = 6 + 3 * w * h;
        assert_eq!((bytes.len() - header) % frame, 0, "whole frames only");
        (bytes.len() - header) / frame
    }

    /// A model that returns NaN on tick 2 (sqrt of a negative input) fails
    /// the run naming the node, the model and the port, after the sinks
    /// are finished: the two frames before it are kept, whatever the output.
    #[test]
    fn nan_fails_the_node_that_made_it_and_keeps_earlier_frames() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut x = Vec::new();
        for v in [0.25f32, 0.5, -1.0, 0.25] {
            x.extend(std::iter::repeat_n(v, 192));
        }
        write_npy(&d.join("x.npy"), &[4, 1, 3, 8, 8], &x);
        std::fs::write(
            d.join("g.world"),
            format!(
                "world {{ resolution = 8x8 }}\nmodel m = \"{}\"\n\
                 node x: npy {{ path = \"x.npy\", sequence = true }}\nnode net: model {{ model = m }}\n\
                 node show: display {{ }}\nx.out -> net.x\nnet.y -> show.image\n",
                root().join("tests/fixtures/models/sqrt.onnx").display()
            ),
        )
        .unwrap();
        for out in ["frames", "v.gif", "v.y4m"] {
            let o = wgraph_within(d, &["run", "g.world", "--frames", "4", "--out", out], 120);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(3), "{out}: {err}");
            assert!(
                err.contains(
                    "node `net` (model) failed on tick 2: output `y` (from model `m`) holds a non-finite value (NaN) at element 0; 192 of its 192 values are NaN or infinite"
                ),
                "{out}: {err}"
            );
            assert!(!err.contains("`show`"), "the sink is not blamed: {err}");
            let kept = match out {
                "frames" => pngs(&d.join(out))
                    .iter()
                    .filter(|p| image::open(p).is_ok())
                    .count(),
                "v.gif" => gif_frames(&d.join(out)),
                _ => y4m_frames(&d.join(out), 8, 8),
            };
            assert_eq!(kept, 2, "{out}");
        }
    }

    /// Sizes that would abort on allocation are errors at `check`, each at
    /// the value that is too large (element-count overflow included); the
    /// one derived size (a resize to 16384x16384 of an RGB image) is named
    /// at its node.
    #[test]
    fn huge_shapes_are_refused_at_check() {
        let dir = project(
            "world { resolution = 4000000x4000000 }\n\
             node n: noise { shape = [1, 3, 99999999, 99999999] }\n\
             node o: noise { shape = [99999999999, 99999999999, 99999999999] }\n\
             node c: constant { shape = 1x3x64x64, value = 1.0 }\nnode s: add { }\nc.out -> s.a\n\
             feedback s.out -> s.b init zeros(1x99999x99999x99999)\n\
             node r: resize { size = 16384x16384 }\nc.out -> r.x\n",
        );
        let o = wgraph_within(dir.path(), &["check", "g.world"], 60);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        let limit = "a tensor may hold at most 268435456 (2^28)";
        for (at, what) in [
            (
                "g.world:1:22",
                "resolution 4000000x4000000 is too large: an RGB frame of shape [3, 4000000, 4000000] holds 48000000000000 values",
            ),
            (
                "g.world:2:25",
                "shape [1, 3, 99999999, 99999999] holds 3.000e16 values",
            ),
            (
                "g.world:3:25",
                "shape [99999999999, 99999999999, 99999999999] holds 1.000e33 values",
            ),
            (
                "g.world:7:28",
                "feedback init: shape [1, 99999, 99999, 99999] holds 999970000299999 values",
            ),
            (
                "g.world:8:1",
                "output `r.out` would be f32[1, 3, 16384, 16384]: shape [1, 3, 16384, 16384] holds 805306368 values",
            ),
        ] {
            let located = err
                .split("error: ")
                .find(|e| e.contains(at))
                .unwrap_or_else(|| panic!("nothing at {at}:\n{err}"));
            assert!(located.contains(&format!("{what}; {limit}")), "{located}");
        }
        assert!(err.contains("g.world: 5 errors"), "{err}");
    }

    /// A graph whose frames 0 and 1 are flat (PNGs of a few hundred bytes)
    /// and frame 2 noise (a 64x64 PNG of some 12 KiB).
    fn growing_frames(d: &Path) {
        let mut x = vec![0.5f32; 2 * 3 * 64 * 64];
        let mut state = 12345u32;
        x.extend((0..3 * 64 * 64).map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1 << 24) as f32 * 2.0 - 1.0
        }));
        write_npy(&d.join("x.npy"), &[3, 1, 3, 64, 64], &x);
        std::fs::write(
            d.join("g.world"),
            "node x: npy { path = \"x.npy\", sequence = true }\nnode show: display { }\nx.out -> show.image\n",
        )
        .unwrap();
    }

    /// Write errors fail the run (exit 3) naming the file, and leave the
    /// frames written before intact: a PNG folder on a file-size limit
    /// (`ulimit -f`, EFBIG: wgraph ignores SIGXFSZ), a GIF and a y4m stream
    /// on a full device, standard output on a full device, the metrics.
    #[test]
    fn write_errors_fail_the_run_and_keep_finished_frames() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        growing_frames(d);
        let exe = env!("CARGO_BIN_EXE_wgraph");
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -f 8 && exec '{exe}' run g.world --frames 3 --out frames"
            ))
            .current_dir(d)
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(3), "{err}");
        assert!(
            err.contains("node `show` (display) failed on tick 2: cannot write `frames/frame_00002.png`: File too large"),
            "{err}"
        );
        let mut names: Vec<String> = std::fs::read_dir(d.join("frames"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["frame_00000.png", "frame_00001.png"],
            "no empty or temporary file"
        );
        for n in &names {
            image::open(d.join("frames").join(n)).unwrap();
        }
        // Single-file sinks on a full device: the display's `--out x.gif` /
        // `x.y4m` (the user's own path, so a link there is followed; a
        // graph's sinks write only under `--out` and replace links).
        let sinks = project("include \"examples/pan.world\"\n");
        for kind in ["gif", "y4m"] {
            let out = format!("full.{kind}");
            std::os::unix::fs::symlink("/dev/full", sinks.path().join(&out)).unwrap();
            let o = wgraph_within(
                sinks.path(),
                &["run", "g.world", "--frames", "2", "--out", &out],
                60,
            );
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(3), "{kind}: {err}");
            assert!(
                err.contains(&format!("node `show` (display) failed on tick 0: cannot write `{out}`: No space left on device")),
                "{kind}: {err}"
            );
        }
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let o = Command::new(exe)
            .args(["run", "examples/pan.world", "--frames", "2", "--out", "-"])
            .current_dir(root())
            .stdout(full)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("cannot write standard output: No space left on device"),
            "{}",
            stderr(&o)
        );
        let o = wgraph_within(
            d,
            &[
                "run",
                "g.world",
                "--frames",
                "1",
                "--out",
                "m",
                "--metrics",
                "/dev/full",
            ],
            60,
        );
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("cannot write metrics to /dev/full: No space left on device"),
            "{}",
            stderr(&o)
        );
    }

    /// However a long run is stopped — SIGTERM (finish, exit 0), SIGTERM
    /// twice (the second exits at once), SIGKILL (nothing runs at all) —
    /// the GIF on disk ends with its trailer and decodes, and a y4m stream
    /// holds whole frames only.
    #[test]
    fn a_stopped_or_killed_run_leaves_outputs_that_decode() {
        for (signals, out) in [
            (&["-TERM"][..], "w.gif"),
            (&["-TERM", "-TERM"][..], "w.gif"),
            (&["-KILL"][..], "w.gif"),
            (&["-KILL"][..], "w.y4m"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(out);
            let mut child = Command::new(env!("CARGO_BIN_EXE_wgraph"))
                .args(["run", root().join("examples/world.world").to_str().unwrap()])
                .args([
                    "--frames",
                    "100000",
                    "--fps",
                    "30",
                    "--out",
                    path.to_str().unwrap(),
                ])
                .current_dir(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let start = Instant::now();
            while std::fs::metadata(&path).map_or(0, |m| m.len()) < 40_000 {
                assert!(start.elapsed() < Duration::from_secs(60), "no frames");
                std::thread::sleep(Duration::from_millis(20));
            }
            for sig in signals {
                let sent = Command::new("kill")
                    .args([*sig, &child.id().to_string()])
                    .status()
                    .unwrap();
                assert!(sent.success());
            }
            let status = child.wait().unwrap();
            match signals {
                ["-TERM"] => assert_eq!(status.code(), Some(0), "{signals:?}"),
                ["-TERM", "-TERM"] => assert!(
                    matches!(status.code(), Some(0 | 130)),
                    "{signals:?}: {status:?}"
                ),
                _ => assert_eq!(status.code(), None, "killed"),
            }
            let frames = if out.ends_with(".gif") {
                gif_frames(&path)
            } else {
                y4m_frames(&path, 64, 64)
            };
            assert!(frames >= 2, "{signals:?} {out}: {frames} frames");
        }
    }

    /// An "ONNX Runtime" whose `GetApi` returns null (it reports a good
    /// version): reported as no usable runtime — never a panic inside
    /// `ort` — by `doctor` (exit 3, text and JSON) and by a model load. A
    /// bogus `ORT_DYLIB_PATH` also makes `doctor` exit 3.
    #[test]
    fn an_unusable_onnx_runtime_is_reported_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("fake.c"),
            "#include <stddef.h>\n\
             typedef struct { const void *(*get_api)(unsigned); const char *(*version)(void); } base_t;\n\
             static const void *get_api(unsigned v) { (void)v; return NULL; }\n\
             static const char *version(void) { return \"1.31.1\"; }\n\
             static const base_t base = { get_api, version };\n\
             const base_t *OrtGetApiBase(void) { return &base; }\n",
        )
        .unwrap();
        let lib = d.join("libonnxruntime.so");
        let cc = Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&lib)
            .arg(d.join("fake.c"))
            .output()
            .expect("a C compiler (cc) builds the fake library");
        assert!(cc.status.success(), "{}", stderr(&cc));
        let with_lib = |lib: &Path, args: &[&str]| {
            Command::new(env!("CARGO_BIN_EXE_wgraph"))
                .args(args)
                .env("ORT_DYLIB_PATH", lib)
                .current_dir(root())
                .output()
                .unwrap()
        };
        let o = with_lib(&lib, &["doctor"]);
        let text = format!("{}{}", stdout(&o), stderr(&o));
        assert_eq!(o.status.code(), Some(3), "{text}");
        assert!(!text.contains("panicked"), "{text}");
        assert!(
            text.contains(&format!(
                "ONNX Runtime: not usable: ORT_DYLIB_PATH is set to {}: no usable ONNX Runtime: {} reports version 1.31.1 but has no C API version 31 (GetApi returned null)",
                lib.display(),
                lib.display()
            )),
            "{text}"
        );
        let o = with_lib(&lib, &["doctor", "--json"]);
        assert_eq!(o.status.code(), Some(3));
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(
            j["runtime"]["error"]
                .as_str()
                .unwrap()
                .contains("no usable ONNX Runtime")
        );
        let o = with_lib(&lib, &["check", "graphs/yan-sim.world"]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("no usable ONNX Runtime"),
            "{}",
            stderr(&o)
        );
        let o = with_lib(&d.join("no-such-lib.so"), &["doctor"]);
        assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
        assert!(stdout(&o).contains("ONNX Runtime: not usable: ORT_DYLIB_PATH is set to"));
    }

    /// `--out x.mp4` is an error listing what wgraph writes (nothing is
    /// created); a directory named with a dot works when it exists or ends
    /// in `/`.
    #[test]
    fn an_unknown_output_extension_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let pan = root().join("examples/pan.world");
        let o = wgraph_within(d, &["run", pan.to_str().unwrap(), "--out", "x.mp4"], 60);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(
            stderr(&o).contains(
                "error: --out `x.mp4`: wgraph does not write .mp4 files; --out takes a directory (PNG frames), \
                 a .gif file, a .y4m file, or - (y4m on standard output, e.g. `--out - | ffmpeg -i - out.mp4`)"
            ),
            "{}",
            stderr(&o)
        );
        assert!(!d.join("x.mp4").exists());
        let o = wgraph_within(
            d,
            &[
                "run",
                pan.to_str().unwrap(),
                "--frames",
                "2",
                "--out",
                "run.v2/",
            ],
            60,
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(pngs(&d.join("run.v2")).len(), 2);
    }

    /// An action file shorter than the run: one warning naming the file,
    /// its length and the tick it runs out; none when it is long enough.
    #[test]
    fn a_short_action_file_is_named_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.txt"), "# three ticks\nW\nW\nLeft\n").unwrap();
        let world = root().join("examples/world.world");
        let run = |frames: &str| {
            wgraph_within(
                d,
                &[
                    "run",
                    world.to_str().unwrap(),
                    "--actions",
                    "a.txt",
                    "--frames",
                    frames,
                    "--out",
                    "o",
                ],
                120,
            )
        };
        let o = run("5");
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let warning = "warning: action file `a.txt` has 3 ticks of keys but the run has 5 ticks: \
                       `input` holds no keys from tick 3 on (set `on_end = loop` or `stop`, or run fewer frames)";
        assert_eq!(stderr(&o).matches(warning).count(), 1, "{}", stderr(&o));
        let o = run("3");
        assert_eq!(o.status.code(), Some(0));
        assert!(
            !stderr(&o).contains("warning: action file"),
            "{}",
            stderr(&o)
        );
    }

    /// Control bytes in a graph (an ESC sequence that would recolour or
    /// clear the terminal) are shown as control pictures in the snippet and
    /// the message, located by character like any other error; none reach
    /// stderr. The same for a usage error quoting user text.
    #[test]
    fn control_bytes_in_sources_are_escaped_in_diagnostics() {
        let dir = project("node a\x1b[2J: noise\x1b[31m { }\nnode b: \x07 { }\n");
        let o = wgraph_within(dir.path(), &["check", "g.world"], 60);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(!err.contains('\x1b') && !err.contains('\x07'), "{err:?}");
        assert!(
            err.contains("\u{241b}[2J"),
            "the snippet shows the byte: {err}"
        );
        assert!(err.contains("g.world:1:7"), "{err}");
        let pan = root().join("examples/pan.world");
        let o = wgraph_within(
            dir.path(),
            &["run", pan.to_str().unwrap(), "--set", "x\x1b[2J=1"],
            60,
        );
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(!stderr(&o).contains('\x1b'), "{:?}", stderr(&o));
        assert!(
            stderr(&o).contains("--set `x\u{241b}[2J=1`"),
            "{}",
            stderr(&o)
        );
    }

    /// A short fuzzing run over the loader and checker (the long one is
    /// `cargo run --release --example fuzz_check -- --runs 1000000`): no
    /// input panics or takes longer than the bound, and mutants get past
    /// the parser into the checker and build into graphs.
    #[test]
    fn fuzzing_the_loader_and_checker_finds_no_crash() {
        let dir = tempfile::tempdir().unwrap();
        let report = fuzz::run(
            &fuzz::Options {
                runs: 20_000,
                seed: 11,
                time_bound: Duration::from_secs(20),
                crash_dir: dir.path().to_path_buf(),
                root: root(),
            },
            0,
        );
        eprintln!(
            "fuzz: {} executions in {:.1} s ({:.0}/s), {} parsed, {} built, slowest {:?}",
            report.executions,
            report.elapsed.as_secs_f64(),
            report.per_second(),
            report.parsed,
            report.built,
            report.slowest
        );
        assert!(report.crashes.is_empty(), "{:?}", report.crashes);
        assert_eq!(report.executions, 20_000);
        assert!(report.seeds >= 20, "{}", report.seeds);
        assert!(report.parsed > 500 && report.built > 50, "{report:?}");
    }
}

#[path = "cli/exported_models.rs"]
mod exported_models;

#[path = "cli/onnx_backend.rs"]
mod onnx_backend;

#[path = "cli/gpu_paths.rs"]
mod gpu_paths;

#[path = "cli/wonnx.rs"]
mod wonnx;

#[path = "cli/kernels.rs"]
mod kernels;

#[path = "cli/serve_security.rs"]
mod serve_security;

#[path = "cli/output_safety.rs"]
mod output_safety;

#[path = "cli/lost_work.rs"]
mod lost_work;

#[path = "cli/first_contact.rs"]
mod first_contact;
