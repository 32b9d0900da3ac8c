//! What every test module of `tests/cli.rs` shares: the binary and its
//! output, the repository, files a run wrote, processes run beside a test,
//! and what some tests need installed.
//!
//! Installs (chromium for the browser tests, a Vulkan driver for wonnx) are
//! made by the test that needs them, before it needs them, once per test
//! process ([`chromium`], [`ensure_vulkan`]): README's test command passes
//! on a fresh machine whatever order the tests run in. `.ci/run` installs
//! both up front too; the scripts then return at once. The models' Python
//! environment is made by the first script that needs it, one script at a
//! time ([`models_env_turn`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Tests that measure time (play rates in a browser, a live world's clock)
/// and tests that load every core (wonnx on the software Vulkan driver)
/// take turns: on two cores one would measure the other, not wgraph.
static TAKE_TURNS: Mutex<()> = Mutex::new(());

pub fn take_turns() -> MutexGuard<'static, ()> {
    TAKE_TURNS.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn wgraph(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgraph"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("wgraph runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn world_files(dir: &Path, out: &mut Vec<PathBuf>) {
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

pub fn pngs(dir: &Path) -> Vec<PathBuf> {
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
pub fn write_npy(path: &Path, shape: &[usize], data: &[f32]) {
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

/// `wgraph ARGS` in `dir`, stdout discarded, stderr to `dir/stderr.txt`
/// (read while it runs).
pub fn spawn(dir: &Path, args: &[&str]) -> Child {
    let log = std::fs::File::create(dir.join("stderr.txt")).unwrap();
    Command::new(env!("CARGO_BIN_EXE_wgraph"))
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("wgraph starts")
}

/// Sends `sig` (`-INT`, `-TERM`, `-KILL`) to `child`.
pub fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// A child process killed (and reaped) when the test ends, passed or not.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `wgraph serve ARGS --port 0` on loopback, its stderr in
/// `dir/serve.txt`, killed (and reaped) when dropped. `start` returns once
/// the address is printed; `url` is the first address exactly as printed
/// (with its `?token=`), `addr` its `HOST:PORT`.
pub struct Served {
    pub child: Child,
    pub addr: String,
    pub url: String,
    pub log: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    pub fn start(dir: &Path, args: &[&str]) -> Served {
        let log = dir.join("serve.txt");
        let child = Command::new(env!("CARGO_BIN_EXE_wgraph"))
            .arg("serve")
            .args(args)
            .args(["--port", "0"])
            .current_dir(root())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut served = Served {
            child,
            addr: String::new(),
            url: String::new(),
            log,
        };
        let start = std::time::Instant::now();
        loop {
            let text = served.log();
            if let Some(i) = text.find("http://") {
                served.url = text[i..].split_whitespace().next().unwrap().to_string();
                served.addr = text[i + 7..].split('/').next().unwrap().to_string();
                return served;
            }
            if let Some(status) = served.child.try_wait().unwrap() {
                panic!("serve exited ({status}): {text}");
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(60),
                "no address: {text}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// What the server printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// One install at a time: the scripts share apt's lock.
static INSTALLING: Mutex<()> = Mutex::new(());

/// Runs `tests/support/SCRIPT`; `Err` says why it did not succeed.
fn install(script: &str) -> Result<(), String> {
    let _one = INSTALLING.lock().unwrap_or_else(|p| p.into_inner());
    let path = root().join("tests/support").join(script);
    match Command::new(&path).status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("tests/support/{script} failed ({s})")),
        Err(e) => Err(format!("tests/support/{script} did not start: {e}")),
    }
}

/// A WebGPU adapter for the wonnx backend: Mesa's software Vulkan driver
/// (lavapipe) and the Vulkan loader, installed by
/// `tests/support/install-vulkan.sh` when missing (once per test process;
/// quick when they are there). Every test that checks or runs a graph on
/// wonnx — `graphs/yan-sim-wonnx.world` among the shipped graphs — calls
/// this first. Without the `wonnx` feature nothing needs a driver.
pub fn ensure_vulkan() {
    if !cfg!(feature = "wonnx") {
        return;
    }
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(e) = DONE.get_or_init(|| install("install-vulkan.sh")) {
        panic!("no Vulkan driver for the wonnx backend: {e}");
    }
}

/// The models' Python environment (`models-onnx/script_env.py`): a venv in
/// wgraph's cache, made and filled with pip by the first script that lacks
/// numpy & co. Two scripts making it at once (on a fresh machine) would
/// both write the same folder, so a test running such a script
/// (`models-onnx/check.py`, `tests/support/onnx_backend_suite.py`) holds
/// this turn around it: the first makes the environment, the next finds it.
pub fn models_env_turn() -> MutexGuard<'static, ()> {
    static MODELS_ENV: Mutex<()> = Mutex::new(());
    MODELS_ENV.lock().unwrap_or_else(|p| p.into_inner())
}

/// HAProxy (Debian's), installed by `tests/support/install-haproxy.sh` on
/// first need (once per test process).
pub fn haproxy() -> PathBuf {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(e) = DONE.get_or_init(|| install("install-haproxy.sh")) {
        panic!("no HAProxy for the failover test: {e}");
    }
    ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("haproxy"))
}

/// The browser: `WGRAPH_CHROMIUM`, or Debian's chromium, installed by
/// `tests/support/install-chromium.sh` on first need (once per test
/// process).
pub fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("WGRAPH_CHROMIUM") {
        return PathBuf::from(p);
    }
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    let path = PathBuf::from("/usr/bin/chromium");
    let installed = DONE.get_or_init(|| {
        if path.exists() {
            Ok(())
        } else {
            install("install-chromium.sh")
        }
    });
    assert!(
        path.exists(),
        "{} not found and tests/support/install-chromium.sh could not install it ({installed:?})",
        path.display()
    );
    path
}

/// A WebSocket client to `wgraph serve`.
pub type Socket = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The next JSON message that is not a tick or HUD update; `None` when the
/// socket ends or errs (a server that died).
pub fn try_next_json(ws: &mut Socket) -> Option<serde_json::Value> {
    loop {
        if let tungstenite::Message::Text(t) = ws.read().ok()? {
            let j: serde_json::Value = serde_json::from_str(t.as_str()).ok()?;
            if j["type"] != "tick" && j["type"] != "hud" {
                return Some(j);
            }
        }
    }
}

/// The next JSON message that is not a tick or HUD update.
pub fn next_json(ws: &mut Socket) -> serde_json::Value {
    try_next_json(ws).expect("a JSON message from the server")
}

/// The next frame (a binary message: a tag byte, the tick little-endian,
/// four more header bytes, the pixels): its tick and its pixels; `None`
/// when the socket ends or errs.
pub fn try_next_frame(ws: &mut Socket) -> Option<(u32, Vec<u8>)> {
    loop {
        if let tungstenite::Message::Binary(b) = ws.read().ok()? {
            let tick = u32::from_le_bytes(b.get(1..5)?.try_into().ok()?);
            return Some((tick, b.get(9..).unwrap_or_default().to_vec()));
        }
    }
}

/// The next frame: its tick and its pixels.
pub fn next_frame(ws: &mut Socket) -> (u32, Vec<u8>) {
    try_next_frame(ws).expect("a frame from the server")
}

/// Frames until one from tick `tick` or later.
pub fn frame_at(ws: &mut Socket, tick: u32) -> (u32, Vec<u8>) {
    loop {
        let f = next_frame(ws);
        if f.0 >= tick {
            return f;
        }
    }
}
