//! A running world edited live (`run --watch`): reloads, recordings and
//! `replay`, degrading when behind, scripted events, Ctrl-C and SIGTERM.

use super::*;
use std::process::Child;
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
        std::os::unix::fs::symlink(root().join("graphs/parts"), dir.path().join("graphs/parts"))
            .unwrap();
    }
    dir
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

/// The acceptance run: edits to a running yan-sim — a parameter,
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
            // 5 fps: a slot of 200 ms, the bound on each reload's swap
            // (checked at the end).
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
        serde_json::from_str(&std::fs::read_to_string(d.join("metrics.json")).unwrap()).unwrap();
    let ticks = metrics["metrics"]["ticks"].as_u64().unwrap() as usize;
    let frames = pngs(&d.join("out"));
    assert_eq!(frames.len(), ticks);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.file_name().unwrap(), format!("frame_{i:05}.png").as_str());
    }
    assert_eq!(metrics["reloads"], 5);
    // Reloads that load no model keep the clock (5 fps here): each is
    // prepared off the tick thread, and its swap, the only part on the tick
    // thread, takes far less than a tick's 200 ms slot. (Late ticks are
    // not counted: on a busy machine a tick of yan-sim can take longer
    // than its slot with no reload at all.)
    let swaps: Vec<f64> = log
        .lines()
        .filter(|l| l.starts_with("reloaded at tick"))
        .map(|l| {
            assert!(l.contains("; prepare "), "{l}");
            let ms = l
                .rsplit_once(", swap ")
                .and_then(|(_, s)| s.strip_suffix(" ms"));
            ms.and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("no swap time in: {l}"))
        })
        .collect();
    assert_eq!(swaps.len(), 5, "{log}");
    assert!(
        swaps.iter().all(|&ms| ms < 200.0),
        "a swap held the tick thread for a slot or more: {swaps:?}\n{log}"
    );
    eprintln!("late ticks: {} of {ticks}", metrics["late_ticks"]);
}

/// A live session — keys from an events file, a live model switch made
/// in place (`decode.model`), a file edit at whatever tick the watcher
/// sees it, Ctrl-C — is recorded; `wgraph replay`
/// reproduces every frame bit for bit, and refuses once a file it needs
/// has changed.
#[test]
fn replay_reproduces_a_recorded_live_run() {
    let dir = project("yan-sim.world");
    let d = dir.path();
    let graph = d.join("graphs/yan-sim.world");
    let original = std::fs::read_to_string(&graph).unwrap();
    std::fs::write(
        d.join("events.txt"),
        "2: keys = Left\n4: decode.model = vae_decoder_rollout\n6: keys = live\n",
    )
    .unwrap();
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
    // The model switch at tick 4, made to the decoder alone.
    let text = wait_for(d, "reloaded at tick 4", 1);
    assert!(text.contains("(node rebuilt "), "{text}");
    std::fs::write(&graph, original.replace("steps = 4", "steps = 2")).unwrap();
    wait_for(d, "reloaded at tick", 2);
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
    // The GIF holds a frame before the edit (its header comes with the
    // first frame), however long a busy machine takes to run a tick.
    let start = Instant::now();
    while std::fs::metadata(d.join("w.gif")).map_or(0, |m| m.len()) == 0 {
        assert!(start.elapsed() < Duration::from_secs(60), "no frame");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(
        &graph,
        text.replace("resolution = 64x64", "resolution = 32x32"),
    )
    .unwrap();
    let log = wait_for(d, "reload failed", 1);
    assert!(
        log.contains("the frame size changed, but `w.gif` already holds frames of the old size"),
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
    // The graph, its five models (the rollout decoder is declared too), the start image and the keys.
    wait_for(d, "watching 8 files", 1);
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
        stderr(&o).contains("reloaded at tick 3 (set sampler.steps = 2): changed sampler.steps"),
        "{}",
        stderr(&o)
    );
    // Made to the sampler alone: no parse, no check of the graph, no model.
    let text = stderr(&o);
    let line = text
        .lines()
        .find(|l| l.starts_with("reloaded at tick 3"))
        .unwrap_or_default();
    assert!(
        line.contains("(node rebuilt ") && !line.contains("parse") && !line.contains("models"),
        "{line}"
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
