//! The `triton` backend against a real Triton Inference Server: PyPI's
//! `nvidia-pytriton` wheel (tritonserver 2.51, python backend), installed
//! on first need by `tests/support/install-triton.sh` (`triton_venv()`),
//! serving a repository `wgraph triton-repo --platform python` wrote, on
//! 127.0.0.1 on free ports. Every server is a [`Server`], killed by its pid
//! when dropped (a failing test never leaks one); every wait is bounded.

use super::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use wgraph_engine::npy::read_npy_file;
use wgraph_engine::tensor::Tensor;

/// The Triton venv (`target/triton-venv`), made by
/// `tests/support/install-triton.sh` on first need (once per test process,
/// under the script's own lock across processes).
fn triton_venv() -> PathBuf {
    static DONE: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let script = root().join("tests/support/install-triton.sh");
        let o = Command::new(&script)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("{} did not start: {e}", script.display()))?;
        if !o.status.success() {
            return Err(format!("{} failed ({})", script.display(), o.status));
        }
        let venv = String::from_utf8_lossy(&o.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .to_string();
        Ok(PathBuf::from(venv))
    })
    .clone()
    .unwrap_or_else(|e| panic!("no Triton for the Triton tests: {e}"))
}

/// A free loopback port (bound, read, released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// A tritonserver on 127.0.0.1, killed and reaped when dropped.
struct Server {
    child: Child,
    grpc: u16,
    http: u16,
    log: PathBuf,
}

impl Server {
    /// Starts tritonserver on `repo` and waits (at most 180 s) until its
    /// `/v2/health/ready` answers 200.
    fn start(repo: &Path, log_dir: &Path) -> Server {
        Server::start_on(repo, log_dir, free_port(), free_port())
    }

    /// [`Server::start`] on given ports (a restart on the same address).
    fn start_on(repo: &Path, log_dir: &Path, grpc: u16, http: u16) -> Server {
        let venv = triton_venv();
        let log = log_dir.join(format!(
            "tritonserver-{grpc}-{}.txt",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        let out = std::fs::File::create(&log).unwrap();
        let path = format!(
            "{}:{}",
            venv.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let child = Command::new(venv.join("bin/tritonserver"))
            .arg(format!("--model-repository={}", repo.display()))
            .arg(format!(
                "--backend-directory={}",
                venv.join("backends").display()
            ))
            .args(["--grpc-address=127.0.0.1", "--http-address=127.0.0.1"])
            .arg(format!("--grpc-port={grpc}"))
            .arg(format!("--http-port={http}"))
            .args(["--allow-metrics=false", "--allow-gpu-metrics=false"])
            .env("LD_LIBRARY_PATH", venv.join("triton-libs"))
            .env("PATH", path)
            .env("VIRTUAL_ENV", &venv)
            .env("OMP_NUM_THREADS", "1")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            // Its own process group: the python backend's stubs are killed with it.
            .process_group(0)
            .spawn()
            .expect("tritonserver starts");
        let mut server = Server {
            child,
            grpc,
            http,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if ready(http) {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("tritonserver exited ({status}): {}", server.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "tritonserver not ready in 180 s: {}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.grpc)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the server and its python backend stubs (its process group) now.
    fn kill(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// True when `GET /v2/health/ready` on the HTTP port answers 200.
fn ready(http: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", http)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /v2/health/ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

/// `wgraph triton-repo --platform python` for `graph` into `dir/repo`.
fn write_repo(dir: &Path, graph: &str) -> PathBuf {
    let repo = dir.join("repo");
    let o = wgraph(&[
        "triton-repo",
        graph,
        repo.to_str().unwrap(),
        "--platform",
        "python",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    repo
}

/// A graph including `graph` with an `npy_dump` of the decoder's output.
fn dumping_graph(dir: &Path, graph: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let file = dir.join("g.world");
    std::fs::write(
        &file,
        format!(
            "include \"{}\"\nnode dump: npy_dump {{ dir = \"frames\" }}\ndecode.image -> dump.tensor\n",
            root().join(graph).display()
        ),
    )
    .unwrap();
    file
}

/// Runs `file` for `frames` ticks with `extra` flags into `out`.
fn run(file: &Path, out: &Path, frames: usize, extra: &[&str]) -> Output {
    let frames = frames.to_string();
    let mut args = vec![
        "run",
        file.to_str().unwrap(),
        "--frames",
        &frames,
        "--actions",
        "examples/actions/walk.txt",
        "--out",
        out.to_str().unwrap(),
        "-q",
    ];
    args.extend_from_slice(extra);
    wgraph(&args)
}

fn dumped(out: &Path, frames: usize) -> Vec<Tensor> {
    (0..frames)
        .map(|t| {
            let p = out.join(format!("frames/dump_{t:05}.npy"));
            read_npy_file(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        })
        .collect()
}

fn max_abs(a: &[Tensor], b: &[Tensor]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.shape(), y.shape());
            let (x, y) = (x.host_f32().unwrap(), y.host_f32().unwrap());
            x.iter()
                .zip(y)
                .map(|(p, q)| (p - q).abs())
                .collect::<Vec<_>>()
        })
        .fold(0.0, f32::max)
}

const TOL: f32 = 1e-5;
const YAN_SIM: &str = "graphs/yan-sim.world";

/// Yan-Sim with every model on Triton: `check` passes against the server's
/// metadata, 8 ticks equal local ONNX Runtime within [`TOL`]; a graph
/// whose models name the server in their declarations (`backend = triton,
/// server = …`) runs the same; a model the server lacks and a model whose
/// served shape differs from the local file are located load errors; a
/// server killed mid-run ends the run with a clear error and the frames
/// already written kept.
#[test]
fn yan_sim_on_triton_matches_local_onnx_runtime() {
    let _turn = take_turns();
    let dir = tempfile::tempdir().unwrap();
    let repo = write_repo(dir.path(), YAN_SIM);
    for model in ["vae_encoder", "vae_decoder", "sim_dit", "action_mlp"] {
        let config = std::fs::read_to_string(repo.join(model).join("config.pbtxt")).unwrap();
        assert!(config.contains("backend: \"python\""), "{config}");
        assert!(config.contains("max_batch_size: 8"), "{config}");
        assert!(repo.join(model).join("1/model.py").is_file());
        assert!(repo.join(model).join("1/model.onnx").is_file());
    }
    // Not over a non-empty folder, unless --force.
    let o = wgraph(&["triton-repo", YAN_SIM, repo.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is not empty"), "{}", stderr(&o));

    // One model served with a different shape than the local file's.
    let config = repo.join("vae_decoder/config.pbtxt");
    let text = std::fs::read_to_string(&config).unwrap();
    let bad_repo = dir.path().join("bad-repo");
    std::fs::create_dir_all(&bad_repo).unwrap();
    for model in ["vae_encoder", "vae_decoder", "sim_dit"] {
        copy_dir(&repo.join(model), &bad_repo.join(model));
    }
    std::fs::write(
        bad_repo.join("vae_decoder/config.pbtxt"),
        text.replacen("dims: [ 16, 16, 16 ]", "dims: [ 8, 16, 16 ]", 1),
    )
    .unwrap();

    let mut server = Server::start(&repo, dir.path());
    let addr = server.addr();
    let o = wgraph(&[
        "check",
        YAN_SIM,
        "--backend",
        "triton",
        "--triton-server",
        &addr,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let local = dir.path().join("local");
    let file = dumping_graph(&local, YAN_SIM);
    let o = run(&file, &local.join("out"), 8, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let reference = dumped(&local.join("out"), 8);

    let remote = dir.path().join("remote");
    let file = dumping_graph(&remote, YAN_SIM);
    let o = run(
        &file,
        &remote.join("out"),
        8,
        &["--backend", "triton", "--triton-server", &addr],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let d = max_abs(&reference, &dumped(&remote.join("out"), 8));
    eprintln!("yan-sim, 8 ticks: max |triton - local ort| = {d:.3e}");
    assert!(d <= TOL, "Triton differs from local ONNX Runtime by {d}");

    bench_players_reads_the_dynamic_batchers_fusion(dir.path(), &addr);

    // The graph's own syntax: `world { backend = triton, triton_server }`
    // and a model naming its server.
    let own = dir.path().join("own.world");
    let shipped = std::fs::read_to_string(root().join(YAN_SIM)).unwrap();
    let own_text = shipped
        .replace(
            "../models-onnx",
            &root().join("models-onnx").display().to_string(),
        )
        .replace(
            "../examples",
            &root().join("examples").display().to_string(),
        )
        .replace(
            "frames_per_tick = 1",
            &format!("frames_per_tick = 1\n    backend = triton\n    triton_server = \"{addr}\""),
        );
    std::fs::write(&own, &own_text).unwrap();
    let o = wgraph(&["check", own.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // A model the server lacks: the declaration, the name, the address, what it has.
    let missing = own_text
        .replace("model action_mlp  = \"", "model action_mlp2 = \"")
        .replace("model = action_mlp }", "model = action_mlp2 }");
    std::fs::write(&own, &missing).unwrap();
    let o = wgraph(&["check", own.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "model `action_mlp2` on Triton at {addr}: the server has no such model"
        )),
        "{err}"
    );
    assert!(
        err.contains("`action_mlp`") && err.contains("own.world:"),
        "{err}"
    );

    // The server restarted mid-run (killed, started again on the same
    // ports): the calls are retried until it is back, and the run ends
    // as if nothing had happened.
    let restarted = dir.path().join("restarted");
    let file = dumping_graph(&restarted, YAN_SIM);
    // 40 ticks, so the run is still going when the server goes (at tick 2).
    let mut child = spawn_run(&file, &restarted.join("out"), "40", &addr);
    wait_for(&restarted.join("out/frames/dump_00001.npy"), &mut child);
    let (grpc, http) = (server.grpc, server.http);
    server.kill();
    server = Server::start_on(&repo, dir.path(), grpc, http);
    let o = wait_bounded(child, Duration::from_secs(180));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let d = max_abs(&reference, &dumped(&restarted.join("out"), 8));
    assert!(restarted.join("out/frames/dump_00039.npy").is_file());
    assert!(
        d <= TOL,
        "after a restart, Triton differs from local ONNX Runtime by {d}"
    );

    // The server killed mid-run: a clear error, exit 3, frames kept.
    let killed = dir.path().join("killed");
    let file = dumping_graph(&killed, YAN_SIM);
    let mut child = spawn_run(&file, &killed.join("out"), "100000", &addr);
    let first = killed.join("out/frames/dump_00002.npy");
    wait_for(&first, &mut child);
    server.kill();
    let o = wait_bounded(child, Duration::from_secs(120));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!("on Triton at {addr}: the server is gone")),
        "{err}"
    );
    assert!(err.contains("tried 11 times"), "{err}");
    assert!(first.exists(), "frames already written are kept");
    drop(server);

    // Server down: which model, which address, what was tried.
    let o = wgraph(&[
        "check",
        YAN_SIM,
        "--backend",
        "triton",
        "--triton-server",
        &addr,
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "on Triton at {addr}: cannot reach the server (tried ServerReady"
        )),
        "{err}"
    );
    assert!(err.contains("yan-sim.world:"), "{err}");

    // Served shape differing from the local file: a located load error naming both.
    let bad = Server::start(&bad_repo, dir.path());
    let o = wgraph(&[
        "check",
        YAN_SIM,
        "--backend",
        "triton",
        "--triton-server",
        &bad.addr(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "input `latent` is FP32[-1, 8, 16, 16] on the server but FP32[batch, 16, 16, 16]"
        ),
        "{err}"
    );
}

/// `bench --players 2` with the models on Triton (the server of
/// [`yan_sim_on_triton_matches_local_onnx_runtime`], to keep CI time small):
/// every mode runs through the server, and the server's statistics, read
/// over gRPC (`ModelStatistics`) before and after each timed run, give each
/// model's requests, rows and executions — requests per execution is what
/// Triton's dynamic batcher fused.
fn bench_players_reads_the_dynamic_batchers_fusion(dir: &Path, addr: &str) {
    let json = dir.join("players.json");
    let o = wgraph(&[
        "bench",
        YAN_SIM,
        "--players",
        "2",
        "--frames",
        "2",
        "--rounds",
        "1",
        "--backend",
        "triton",
        "--triton-server",
        addr,
        "--json",
        json.to_str().unwrap(),
    ]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(o.status.code(), Some(0), "{}\n{out}", stderr(&o));
    assert!(out.contains("Triton's dynamic batcher"), "{out}");
    assert!(
        !stderr(&o).contains("no Triton statistics"),
        "{}",
        stderr(&o)
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["triton_servers"], serde_json::json!([addr]), "{doc}");
    let rows = doc["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{doc}");
    let dit = |mode: &str| {
        let row = rows.iter().find(|r| r["mode"] == mode).unwrap();
        row["triton"]["sim_dit"].clone()
    };
    for mode in ["batched", "unbatched", "processes"] {
        let c = dit(mode);
        let (requests, rows, executions) = (
            c["requests"].as_u64().unwrap_or(0),
            c["rows"].as_u64().unwrap_or(0),
            c["executions"].as_u64().unwrap_or(0),
        );
        // 2 players × 2 ticks, the denoiser called at least once a tick.
        assert!(rows >= 4 && requests >= 1 && executions >= 1, "{mode}: {c}");
        assert!(rows >= requests && requests >= executions, "{mode}: {c}");
        let fused = c["requests_per_execution"].as_f64().unwrap();
        assert!(
            (fused - requests as f64 / executions as f64).abs() < 1e-9,
            "{mode}: {c}"
        );
    }
    // The same ticks in process, fused by wgraph or not: the same rows.
    assert_eq!(dit("batched")["rows"], dit("unbatched")["rows"], "{doc}");
}

/// A server that accepts connections and never answers: the model's
/// `timeout_ms` bounds the wait and the error says so.
#[test]
fn a_silent_server_times_out_at_timeout_ms() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let _held = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().take(8).flatten() {
            held.push(s);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.world");
    std::fs::write(
        &file,
        format!(
            "model m = \"{}\" {{ backend = triton, server = \"{addr}\", timeout_ms = 300 }}\nnode n: model {{ model = m }}\n",
            root().join("tests/fixtures/models/sqrt.onnx").display()
        ),
    )
    .unwrap();
    let o = wgraph(&["check", file.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "model `m` on Triton at {addr}: cannot reach the server"
        )),
        "{err}"
    );
    assert!(err.contains("timed out after 300 ms"), "{err}");
    assert!(err.contains("t.world:1:"), "{err}");
}

/// `wgraph run` of `file` through the Triton server at `addr`, in the background.
fn spawn_run(file: &Path, out: &Path, frames: &str, addr: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_wgraph"))
        .args([
            "run",
            file.to_str().unwrap(),
            "--frames",
            frames,
            "--actions",
            "examples/actions/walk.txt",
            "--out",
            out.to_str().unwrap(),
            "-q",
            "--backend",
            "triton",
            "--triton-server",
            addr,
        ])
        .current_dir(root())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits (at most 120 s) until `file` exists while `child` runs.
fn wait_for(file: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !file.exists() {
        assert!(
            Instant::now() < deadline,
            "no {} through Triton in 120 s",
            file.display()
        );
        if let Ok(Some(s)) = child.try_wait() {
            panic!("run ended early ({s})");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// Waits for `child` at most `limit` (killed past it), with its stderr.
fn wait_bounded(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!(
                "run did not end in {limit:?} after the server died: {}",
                stderr(&o)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
