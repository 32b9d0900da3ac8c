//! What a run may write (issue 19): a graph, a `--set` or a recording
//! names output paths only inside the run's output directory, and a live
//! world (`serve`, `play`, `run --watch`) writes files only under an
//! explicit `--out`, bounded by `--keep-last N`.

use super::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// `wgraph ARGS` run in `dir`.
fn wgraph_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgraph"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("wgraph runs")
}

/// Every file and directory under `dir`, relative, sorted (links not followed).
fn tree(dir: &Path) -> Vec<String> {
    let mut all = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            all.push(p.strip_prefix(dir).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                todo.push(p);
            }
        }
    }
    all.sort();
    all
}

/// A graph of one small image into `sink` (a `gif`/`png`/`y4m`/`npy_dump`
/// declaration of node `s`), written to `dir/g.world`.
fn sink_graph(dir: &Path, sink: &str) -> PathBuf {
    let port = if sink.contains("npy_dump") {
        "tensor"
    } else {
        "image"
    };
    let file = dir.join("g.world");
    std::fs::write(
        &file,
        format!(
            "node src: constant {{ shape = 1x3x4x4, value = 0.5 }}\nnode s: {sink}\nsrc.out -> s.{port}\n"
        ),
    )
    .unwrap();
    file
}

/// An absolute path, a `..` escape and a prefix naming a directory are
/// refused by `check` and `run` at the parameter (file:line:col), and
/// nothing is written outside `--out` — also through `--set`.
#[test]
fn a_graph_cannot_write_outside_the_output_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let victim = d.join("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    let out = d.join("out");
    let cases = [
        (
            format!("gif {{ path = \"{}\" }}", victim.display()),
            "2:22",
            format!("`{}` is absolute", victim.display()),
        ),
        (
            "gif { path = \"../escape.gif\" }".to_string(),
            "2:22",
            "`../escape.gif` goes up with `..`".to_string(),
        ),
        (
            "y4m { path = \"sub/../../escape.y4m\" }".to_string(),
            "2:22",
            "goes up with `..`".to_string(),
        ),
        (
            "png { dir = \"..\" }".to_string(),
            "2:21",
            "`..` goes up with `..`".to_string(),
        ),
        (
            "npy_dump { dir = \"/\" }".to_string(),
            "2:26",
            "`/` is absolute".to_string(),
        ),
        (
            "npy_dump { prefix = \"../escape\" }".to_string(),
            "2:29",
            "`prefix` of node `s` (npy_dump) is part of a file name and may not contain `/`"
                .to_string(),
        ),
    ];
    for (sink, at, why) in &cases {
        let graph = sink_graph(d, sink);
        let g = graph.to_str().unwrap();
        for args in [
            vec!["check", g],
            vec!["run", g, "--frames", "2", "--out", out.to_str().unwrap()],
        ] {
            let o = wgraph(&args);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(1), "{sink}: {err}");
            assert!(err.contains(why.as_str()), "{sink}: {err}");
            assert!(err.contains(&format!("g.world:{at}")), "{sink}: {err}");
        }
    }
    // The same through `--set`: located at the flag's value.
    let graph = sink_graph(d, "gif { }");
    let set = format!("s.path={}", victim.display());
    let o = wgraph(&[
        "run",
        graph.to_str().unwrap(),
        "--frames",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--set",
        &set,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("--set s.path:1:1"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert_eq!(tree(d), ["g.world", "victim.txt"], "nothing was written");
    // Inside the directory, a path is fine and lands under `--out`.
    let graph = sink_graph(d, "gif { path = \"sub/./w.gif\" }");
    let o = wgraph(&[
        "run",
        graph.to_str().unwrap(),
        "--frames",
        "2",
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(out.join("sub/w.gif").is_file());
}

/// A link at a sink's file name inside the output directory (left there
/// by someone else) is replaced by the file, never followed.
#[test]
fn a_link_in_the_output_directory_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("out");
    std::fs::create_dir_all(out.join("t")).unwrap();
    let victims = [d.join("victim-gif.txt"), d.join("victim-npy.txt")];
    for v in &victims {
        std::fs::write(v, "precious").unwrap();
    }
    std::os::unix::fs::symlink(&victims[0], out.join("w.gif")).unwrap();
    std::os::unix::fs::symlink(&victims[1], out.join("t/s_00000.npy")).unwrap();
    for sink in [
        "gif { path = \"w.gif\" }",
        "npy_dump { dir = \"t\", prefix = \"s\" }",
    ] {
        let graph = sink_graph(d, sink);
        let o = wgraph(&[
            "run",
            graph.to_str().unwrap(),
            "--frames",
            "1",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{sink}: {}", stderr(&o));
    }
    for v in &victims {
        assert_eq!(std::fs::read_to_string(v).unwrap(), "precious");
    }
    for f in ["w.gif", "t/s_00000.npy"] {
        let meta = std::fs::symlink_metadata(out.join(f)).unwrap();
        assert!(meta.file_type().is_file(), "{f} is a file now");
    }
}

/// A recording, header line and end line around `build`'s graph `text`,
/// recorded in `dir` with the given `--set` values.
fn forged_recording(dir: &Path, text: &str, sets: &[&str]) -> PathBuf {
    let graph = dir.join("g.world").display().to_string();
    let header = serde_json::json!({
        "wgraph_record": 1,
        "graph": graph,
        "cwd": dir.display().to_string(),
        "seed": null,
        "actions": null,
        "provider": null,
        "backend": null,
        "build": { "sets": sets, "sources": { graph.clone(): text }, "files": {} },
    });
    let rec = dir.join("rec.jsonl");
    std::fs::write(&rec, format!("{header}\n{{\"end\":2}}\n")).unwrap();
    rec
}

/// `wgraph replay` of a forged recording — a graph text or a recorded
/// `--set` naming a file outside the output directory — is refused at the
/// parameter and writes nothing; a recording's outputs go under `--out`.
#[test]
fn replay_writes_only_under_its_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let victim = d.join("victim.gif");
    std::fs::write(&victim, "precious").unwrap();
    let replayed = d.join("replayed");
    let base = "node src: constant { shape = 1x3x4x4, value = 0.5 }\nnode show: display { }\nsrc.out -> show.image\nsrc.out -> s.image\n";
    let forged = [
        (
            format!("{base}node s: gif {{ path = \"{}\" }}\n", victim.display()),
            Vec::new(),
            "g.world:5:",
        ),
        (
            format!("{base}node s: gif {{ path = \"../victim.gif\" }}\n"),
            Vec::new(),
            "g.world:5:",
        ),
        (
            format!("{base}node s: gif {{ }}\n"),
            vec![format!("s.path={}", victim.display())],
            "--set s.path:1:1",
        ),
    ];
    for (text, sets, at) in &forged {
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        let rec = forged_recording(d, text, &sets);
        let o = wgraph(&[
            "replay",
            rec.to_str().unwrap(),
            "--out",
            replayed.to_str().unwrap(),
        ]);
        let err = stderr(&o);
        assert!(!o.status.success(), "{err}");
        assert!(
            err.contains("must stay inside the run's output directory"),
            "{err}"
        );
        assert!(err.contains(at), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(!replayed.exists(), "{err}");
    }
    // An honest recording: the GIF and the frames land under `--out`.
    let rec = forged_recording(
        d,
        &format!("{base}node s: gif {{ path = \"w.gif\" }}\n"),
        &[],
    );
    let o = wgraph(&[
        "replay",
        rec.to_str().unwrap(),
        "--out",
        replayed.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        tree(&replayed),
        ["frame_00000.png", "frame_00001.png", "w.gif"]
    );
    assert_eq!(
        tree(d),
        [
            "rec.jsonl",
            "replayed",
            "replayed/frame_00000.png",
            "replayed/frame_00001.png",
            "replayed/w.gif",
            "victim.gif"
        ]
    );
}

/// A copy of `examples/world.world` (a display and an `npy_dump` of the
/// depth each tick) in `dir`, with its action files linked.
fn world_project(dir: &Path) {
    std::fs::copy(root().join("examples/world.world"), dir.join("world.world")).unwrap();
    std::os::unix::fs::symlink(root().join("examples/actions"), dir.join("actions")).unwrap();
}

/// A live run (`--watch`) without `--out` writes nothing and says so once;
/// with `--out` and `--keep-last N`, every per-tick sink keeps its newest N
/// files (batch runs too).
#[test]
fn a_live_run_writes_only_what_was_asked_and_keep_last_bounds_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    world_project(d);
    let o = wgraph_in(d, &["run", "world.world", "--watch", "--frames", "4"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("4 ticks"), "{err}");
    assert_eq!(
        err.matches(
            "note: world.world: a live world writes files only under --out: \
             the displayed frames and the file sinks `depth_dump` (npy_dump) are skipped"
        )
        .count(),
        1,
        "{err}"
    );
    assert_eq!(tree(d), ["actions", "world.world"], "nothing written");

    for (name, live) in [("live", true), ("batch", false)] {
        let mut args = vec![
            "run",
            "world.world",
            "--frames",
            "6",
            "--out",
            name,
            "--keep-last",
            "2",
        ];
        if live {
            args.push("--watch");
        }
        let o = wgraph_in(d, &args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(0), "{name}: {err}");
        assert!(!err.contains("note:"), "{name}: {err}");
        assert_eq!(
            tree(&d.join(name)),
            [
                "depth",
                "depth/depth_dump_00004.npy",
                "depth/depth_dump_00005.npy",
                "frame_00004.png",
                "frame_00005.png",
            ],
            "{name}"
        );
    }
    let o = wgraph_in(d, &["run", "world.world", "--keep-last", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// `wgraph serve` without `--out` ticks its world and writes no file (the
/// depth stream of `examples/world.world` used to fill `out/depth`).
#[test]
fn serve_without_out_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("project");
    std::fs::create_dir(&d).unwrap();
    world_project(&d);
    let metrics = dir.path().join("metrics.json");
    let log_path = dir.path().join("stderr.txt");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wgraph"))
        .args(["serve", "world.world", "--port", "0", "--fps", "20"])
        .arg("--metrics")
        .arg(&metrics)
        .current_dir(&d)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("wgraph starts");
    let start = Instant::now();
    let read = || std::fs::read_to_string(&log_path).unwrap_or_default();
    while !read().contains("http://") {
        if start.elapsed() > Duration::from_secs(60) || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("serve did not start:\n{}", read());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let the world tick (its tick count is checked below): a viewer on
    // the printed link (`http://ADDR/?token=T`) gets two frames, two ticks,
    // however slowly a busy machine runs them.
    let link = read();
    let link = link[link.find("http://").unwrap() + 7..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let (addr, query) = link.split_once('/').unwrap();
    let (mut ws, _) = tungstenite::connect(format!("ws://{addr}/w/0/ws{query}")).unwrap();
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    }
    let mut frames = 0;
    while frames < 2 {
        match ws.read() {
            Ok(tungstenite::Message::Binary(_)) => frames += 1,
            Ok(_) => {}
            Err(e) => panic!("no frames ({e}):\n{}", read()),
        }
    }
    drop(ws);
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("serve did not stop:\n{}", read());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let err = read();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(
        err.contains("the file sinks `depth_dump` (npy_dump) are skipped"),
        "{err}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&metrics).unwrap()).unwrap();
    let ticks = json["worlds"][0]["ticks"].as_u64().unwrap();
    assert!(ticks > 0, "the world ticked: {json}");
    assert_eq!(tree(&d), ["actions", "world.world"], "nothing written");
}
