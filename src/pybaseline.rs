//! `wgraph bench --baseline python`: yan-sim written the way a researcher
//! would (`benches/yan_sim.py`: onnxruntime + numpy, a plain loop), run
//! alternately with the engine.
//!
//! The script is embedded in the binary. Its interpreter is `$WGRAPH_PYTHON`,
//! else `python3` when it imports onnxruntime and numpy, else a virtual
//! environment in wgraph's cache that is created on first use (`python3 -m
//! venv`, then pip installs onnxruntime and numpy) — nothing by hand.

use std::path::{Path, PathBuf};
use std::process::Command;
use wgraph_engine::graph::Graph;
use wgraph_engine::params::ParamValue;

/// The Python loop's source.
pub const SCRIPT: &str = include_str!("../benches/yan_sim.py");

fn imports_ok(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import onnxruntime, numpy"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// An interpreter with onnxruntime and numpy.
pub fn python() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("WGRAPH_PYTHON").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let system = PathBuf::from("python3");
    if imports_ok(&system) {
        return Ok(system);
    }
    let base = wgraph_ort::runtime::cache_base().ok_or(
        "no cache folder for the Python baseline's environment (set WGRAPH_CACHE_DIR or HOME)",
    )?;
    let venv = base.join("python-baseline");
    let bin = venv.join("bin").join("python");
    if imports_ok(&bin) {
        return Ok(bin);
    }
    eprintln!(
        "installing the Python baseline's environment (onnxruntime {}, numpy) into {}",
        wgraph_ort::runtime::MANAGED_VERSION,
        venv.display()
    );
    let run = |cmd: &mut Command, what: &str| -> Result<(), String> {
        let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{what} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    // Built aside and renamed into place, so two processes making it at once
    // (parallel tests) never see or leave a half-made environment.
    let staging = base.join(format!("python-baseline.tmp-{}", std::process::id()));
    let staged_bin = staging.join("bin").join("python");
    let made = (|| {
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&staging),
            "python3 -m venv",
        )?;
        run(
            Command::new(&staged_bin).args([
                "-m",
                "pip",
                "install",
                "-q",
                &format!("onnxruntime=={}", wgraph_ort::runtime::MANAGED_VERSION),
                "numpy",
            ]),
            "pip install onnxruntime numpy",
        )
    })();
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    if std::fs::rename(&staging, &venv).is_err() {
        // Another process finished first: use its environment.
        let _ = std::fs::remove_dir_all(&staging);
    }
    if imports_ok(&bin) {
        Ok(bin)
    } else {
        Err(format!(
            "the environment in {} cannot import onnxruntime and numpy",
            venv.display()
        ))
    }
}

/// What the loop needs from the graph: the models' folder and the action file.
pub fn inputs(graph: &Graph) -> Result<(PathBuf, Option<PathBuf>), String> {
    let model = |name: &str| graph.models.iter().find(|m| m.name == name);
    let dit = model("sim_dit")
        .filter(|_| ["vae_encoder", "vae_decoder", "action_mlp"].iter().all(|m| model(m).is_some()))
        .ok_or(
            "--baseline python is Yan-Sim's loop (benches/yan_sim.py): the graph needs yan-sim's models \
             (vae_encoder, vae_decoder, sim_dit, action_mlp), as graphs/yan-sim.world declares them",
        )?;
    let dir = dit
        .path
        .parent()
        .map(Path::to_path_buf)
        .ok_or("the denoiser's model has no folder")?;
    let actions = graph
        .nodes
        .iter()
        .filter(|n| n.kind == "actions")
        .find_map(|n| match n.params.get("path") {
            Some(ParamValue::Path(p)) => Some(p.clone()),
            _ => None,
        });
    Ok((dir, actions))
}

/// Runs one timed round of `ticks` ticks; returns ms per tick.
pub fn round(
    python: &Path,
    script: &Path,
    models: &Path,
    actions: Option<&Path>,
    ticks: u64,
    steps: u64,
) -> Result<f64, String> {
    let mut cmd = Command::new(python);
    cmd.arg(script).arg("--models").arg(models).args([
        "--ticks",
        &ticks.to_string(),
        "--steps",
        &steps.to_string(),
    ]);
    if let Some(a) = actions {
        cmd.arg("--actions").arg(a);
    }
    let out = cmd.output().map_err(|e| format!("python baseline: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "python baseline failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or("");
    let json: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("python baseline printed `{line}`: {e}"))?;
    json["ms_per_tick"]
        .as_f64()
        .ok_or_else(|| format!("python baseline printed `{line}`"))
}
