//! Models with external data, as large exports are (`torch.onnx.export`
//! writes `model.onnx` + `model.onnx.data`): a write to the weights while
//! a world runs never crashes it, a parameter edit never touches a model
//! (no reload, no hashing), external data under any name is watched and
//! part of the model's identity, and a reload releases the old weights.
//!
//! The models are written here, tens of MB each: `y = sum(x + w)` with `w`
//! stored in an external-data file (ONNX Runtime maps such files, and an
//! `Add` keeps its input mapped, so a truncated file would be read).

use super::*;
use std::process::Child;
use std::time::{Duration, Instant};

/// Elements of the weight `w` (f32): 48 MiB.
const N: usize = 12 << 20;

fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn len_field(number: u64, body: &[u8], out: &mut Vec<u8>) {
    varint(number << 3 | 2, out);
    varint(body.len() as u64, out);
    out.extend_from_slice(body);
}

fn int_field(number: u64, v: u64, out: &mut Vec<u8>) {
    varint(number << 3, out);
    varint(v, out);
}

/// `ValueInfoProto` of an f32[n] tensor.
fn value_info(name: &str, n: usize) -> Vec<u8> {
    let mut dim = Vec::new();
    int_field(1, n as u64, &mut dim);
    let mut shape = Vec::new();
    len_field(1, &dim, &mut shape);
    let mut tensor = Vec::new();
    int_field(1, 1, &mut tensor); // FLOAT
    len_field(2, &shape, &mut tensor);
    let mut ty = Vec::new();
    len_field(1, &tensor, &mut ty);
    let mut vi = Vec::new();
    len_field(1, name.as_bytes(), &mut vi);
    len_field(2, &ty, &mut vi);
    vi
}

/// An ONNX model `y = sum(x + w)` (x, y: f32[1], w: f32[n]) whose `w` is
/// stored in the external-data file `location`: every run reads all of it.
fn add_model(n: usize, location: &str) -> Vec<u8> {
    let mut w = Vec::new();
    int_field(1, n as u64, &mut w); // dims
    int_field(2, 1, &mut w); // FLOAT
    len_field(8, b"w", &mut w);
    for (k, v) in [
        ("location", location.to_string()),
        ("offset", "0".to_string()),
        ("length", (n * 4).to_string()),
    ] {
        let mut e = Vec::new();
        len_field(1, k.as_bytes(), &mut e);
        len_field(2, v.as_bytes(), &mut e);
        len_field(13, &e, &mut w);
    }
    int_field(14, 1, &mut w); // EXTERNAL
    let mut add = Vec::new();
    len_field(1, b"x", &mut add);
    len_field(1, b"w", &mut add);
    len_field(2, b"t", &mut add);
    len_field(4, b"Add", &mut add);
    let mut sum = Vec::new();
    len_field(1, b"t", &mut sum);
    len_field(2, b"y", &mut sum);
    len_field(4, b"ReduceSum", &mut sum);
    let mut graph = Vec::new();
    len_field(1, &add, &mut graph);
    len_field(1, &sum, &mut graph);
    len_field(2, b"add", &mut graph);
    len_field(5, &w, &mut graph);
    len_field(11, &value_info("x", 1), &mut graph);
    len_field(12, &value_info("y", 1), &mut graph);
    let mut opset = Vec::new();
    len_field(1, b"", &mut opset);
    int_field(2, 17, &mut opset);
    let mut model = Vec::new();
    int_field(1, 8, &mut model); // ir_version
    len_field(8, &opset, &mut model);
    len_field(7, &graph, &mut model);
    model
}

/// `n` f32 values `v`, little-endian.
fn weights(n: usize, v: f32) -> Vec<u8> {
    v.to_le_bytes().repeat(n)
}

/// A project in a temporary folder: `big.onnx` with its weights (all
/// `0.5`) in `location`, and `g.world` running it with its contract in
/// the `model` declaration (the graph's metadata) at `fps`.
fn project(location: &str, fps: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big.onnx"), add_model(N, location)).unwrap();
    std::fs::write(dir.path().join(location), weights(N, 0.5)).unwrap();
    std::fs::write(
        dir.path().join("g.world"),
        format!(
            "world {{ fps = {fps} }}\n\
             model m = \"big.onnx\" {{ role = vae_decoder }}\n\
             node x: constant {{ shape = [1], value = 0.25 }}\n\
             node net: model {{ model = m }}\n\
             node out: npy_dump {{ dir = \"o\" }}\n\
             x.out -> net.x\nnet.y -> out.tensor\n"
        ),
    )
    .unwrap();
    // Files written within 100 ms of being hashed are not trusted to keep
    // their stamps (coarse file times), so the first reload would hash
    // them again: let them settle as weights on disk do.
    std::thread::sleep(Duration::from_millis(300));
    dir
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("stderr.txt")).unwrap_or_default()
}

/// Waits until the log holds `needle` `count` times (the process still
/// running); returns the log.
fn wait_for(dir: &Path, child: &mut Child, needle: &str, count: usize) -> String {
    let start = Instant::now();
    loop {
        let text = log(dir);
        if text.matches(needle).count() >= count {
            return text;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("wgraph exited ({status}) before {count}× `{needle}`:\n{text}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no {count}× `{needle}` in:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops `child` with Ctrl-C; its exit code (None: killed by a signal).
fn stop(child: &mut Child) -> Option<i32> {
    signal(child, "-INT");
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

/// The ticks a finished run reports (`N ticks in …`).
fn ticks_run(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.split(" ticks in ").next()?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `N ticks in` line:\n{text}"))
}

/// The tick of the last `reloaded at tick N` line.
fn last_reload_tick(text: &str) -> u64 {
    text.lines()
        .filter_map(|l| {
            l.strip_prefix("reloaded at tick ")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .next_back()
        .unwrap_or_else(|| panic!("no reload in:\n{text}"))
}

fn vm(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix(" kB")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Overwriting the weights of a running model in place — as `cp` and
/// Python's `shutil.copyfile` do: truncate, then write — never crashes the
/// world (ONNX Runtime maps external data; it maps a private copy). The
/// watcher sees the write: a reload follows (the same bytes are no new
/// model; other bytes are), and the world ticks on and exits normally.
#[test]
fn overwriting_running_weights_in_place_never_crashes_the_world() {
    let _turn = take_turns();
    let dir = project("big.onnx.data", 20);
    let d = dir.path();
    let data = d.join("big.onnx.data");
    let mut child = Killed(spawn(d, &["run", "g.world", "--watch"]));
    wait_for(d, &mut child.0, "watching", 1);
    // Let it tick on the mapped weights first.
    std::thread::sleep(Duration::from_millis(1500));
    // `cp` of the same bytes: truncated, then written, slowly enough for
    // ticks to run while the file is short.
    let same = weights(N, 0.5);
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&data).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        for chunk in same.chunks(same.len() / 4) {
            f.write_all(chunk).unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let text = wait_for(d, &mut child.0, "reloaded at tick", 1);
    assert!(
        !text.contains("models reloaded"),
        "the same bytes are the same model:\n{text}"
    );
    // Other weights, copied in place as `cp` does.
    std::fs::write(d.join("new.data"), weights(N, 1.5)).unwrap();
    std::fs::copy(d.join("new.data"), &data).unwrap();
    let text = wait_for(d, &mut child.0, "models reloaded: m", 1);
    let reloaded_at = last_reload_tick(&text);
    std::thread::sleep(Duration::from_millis(1000));
    let code = stop(&mut child.0);
    let text = log(d);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        ticks_run(&text) > reloaded_at,
        "the world ticks on after the reload:\n{text}"
    );
}

/// With the model's contract given in the graph (`model m = … { role =
/// denoiser, … }`), a parameter edit, a comment and a `touch` of the graph
/// reload the graph only: no model reloaded, no model file hashed. A
/// `touch` of the weights hashes them (their mtime changed) and finds the
/// same model.
#[test]
fn a_parameter_edit_never_touches_a_model() {
    let dir = project("big.onnx.data", 10);
    let d = dir.path();
    let graph = d.join("g.world");
    let mut child = Killed(spawn(d, &["run", "g.world", "--watch"]));
    wait_for(d, &mut child.0, "watching", 1);
    let text = std::fs::read_to_string(&graph).unwrap();
    std::fs::write(&graph, text.replace("value = 0.25", "value = 0.75")).unwrap();
    wait_for(d, &mut child.0, "reloaded at tick", 1);
    let text = std::fs::read_to_string(&graph).unwrap();
    std::fs::write(&graph, format!("{text}// a comment\n")).unwrap();
    wait_for(d, &mut child.0, "reloaded at tick", 2);
    let now = std::fs::File::options().append(true).open(&graph).unwrap();
    now.set_modified(std::time::SystemTime::now()).unwrap();
    drop(now);
    let text = wait_for(d, &mut child.0, "reloaded at tick", 3);
    let reloads: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("reloaded at tick"))
        .collect();
    assert!(reloads[0].contains("changed x.value"), "{text}");
    for line in &reloads {
        assert!(!line.contains("models reloaded"), "{text}");
        assert!(!line.contains("models hashed"), "{text}");
    }
    assert!(!text.contains("hashed again"), "{text}");
    // The weights touched: hashed again, the same model.
    let data = std::fs::File::options()
        .append(true)
        .open(d.join("big.onnx.data"))
        .unwrap();
    data.set_modified(std::time::SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    drop(data);
    let text = wait_for(d, &mut child.0, "reloaded at tick", 4);
    let last = text
        .lines()
        .rfind(|l| l.starts_with("reloaded at tick"))
        .unwrap();
    assert!(last.contains("models hashed"), "{text}");
    assert!(!last.contains("models reloaded"), "{text}");
    assert_eq!(stop(&mut child.0), Some(0), "{}", log(d));
}

/// External data under a name of the exporter's choosing (`location =
/// weights.bin`) is one of the model's files: `check` and `run` list it,
/// the watcher watches it, and new weights in it reload the model.
#[test]
fn external_data_under_another_name_is_watched_and_reloads() {
    let dir = project("weights.bin", 10);
    let d = dir.path();
    let mut child = Killed(spawn(d, &["run", "g.world", "--watch"]));
    // g.world, big.onnx and weights.bin.
    let text = wait_for(d, &mut child.0, "watching", 1);
    assert!(text.contains("watching 3 files"), "{text}");
    // New weights, saved by rename as most tools do.
    std::fs::write(d.join("weights.tmp"), weights(N, 2.0)).unwrap();
    std::fs::rename(d.join("weights.tmp"), d.join("weights.bin")).unwrap();
    let text = wait_for(d, &mut child.0, "reloaded at tick", 1);
    assert!(text.contains("(weights.bin changed)"), "{text}");
    assert!(text.contains("models reloaded: m"), "{text}");
    assert_eq!(stop(&mut child.0), Some(0), "{}", log(d));
}

/// Each reload that loads new weights releases the old ones once it
/// commits: after three weight changes the process holds about one copy
/// (RSS within half the weights of what it held after the first load),
/// and the peak never held more than two (the old session and the new,
/// with half the weights' margin).
#[test]
fn reloads_release_the_old_weights() {
    let _turn = take_turns();
    let dir = project("big.onnx.data", 10);
    let d = dir.path();
    let mut child = Killed(spawn(d, &["run", "g.world", "--watch"]));
    let pid = child.0.id();
    wait_for(d, &mut child.0, "watching", 1);
    std::thread::sleep(Duration::from_millis(1500));
    let first = vm(pid, "VmRSS:");
    // The peak from here on (Linux: 5 resets VmHWM to VmRSS).
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let weights_kib = (N * 4 / 1024) as u64;
    for (i, v) in [1.0f32, 2.0, 3.0].into_iter().enumerate() {
        std::fs::write(d.join("w.tmp"), weights(N, v)).unwrap();
        std::fs::rename(d.join("w.tmp"), d.join("big.onnx.data")).unwrap();
        wait_for(d, &mut child.0, "models reloaded: m", i + 1);
        std::thread::sleep(Duration::from_millis(1000));
    }
    let after = vm(pid, "VmRSS:");
    let peak = vm(pid, "VmHWM:");
    assert_eq!(stop(&mut child.0), Some(0), "{}", log(d));
    assert!(
        after < first + weights_kib / 2,
        "RSS {after} KiB after three reloads, {first} KiB after the first load \
         (weights {weights_kib} KiB): old sessions are kept alive"
    );
    assert!(
        peak < first + weights_kib * 3 / 2,
        "peak RSS {peak} KiB during the reloads, {first} KiB after the first load \
         (weights {weights_kib} KiB): more than two copies at once"
    );
}
