//! Issue 11 §3: nothing lost, nothing hung, nothing aborted. Each test
//! drives a fault as a user meets it and checks the run fails cleanly,
//! names what is at fault, and keeps what was already written.

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
    // `doctor` looks for a WebGPU adapter too (with the wonnx feature).
    ensure_vulkan();
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
