//! `bench --baseline python`: yan-sim written the way a researcher would
//! (`benches/yan_sim.py`: onnxruntime + numpy, a plain loop), run
//! alternately with the engine.
//!
//! Main types: [`PythonSetup`] (where the interpreter's environment lives)
//! and [`PythonLoop`] (an interpreter, the script written out, the graph's
//! models and actions: one [`PythonLoop::round`] per timed round).
//!
//! The script is embedded in the crate ([`SCRIPT`]). Its interpreter is
//! `$WGRAPH_PYTHON`, else `python3` when it imports onnxruntime and numpy,
//! else a virtual environment in wgraph's cache that is created on first use
//! (`python3 -m venv`, then pip installs onnxruntime and numpy) — nothing by
//! hand.

use std::path::{Path, PathBuf};
use std::process::Command;
use wgraph_engine::graph::Graph;
use wgraph_engine::params::ParamValue;

/// The Python loop's source.
pub const SCRIPT: &str = include_str!("../../benches/yan_sim.py");

/// Where the baseline's Python environment is made, when the system's
/// `python3` lacks onnxruntime or numpy.
#[derive(Debug, Clone, Default)]
pub struct PythonSetup {
    /// wgraph's cache folder (`python-baseline/` is made in it); `None`:
    /// no environment can be made.
    pub cache_base: Option<PathBuf>,
    /// The onnxruntime version pip installs (the one the engine loads).
    pub onnxruntime_version: String,
    /// Told before the environment is installed (it takes a while).
    pub notice: Option<fn(&str)>,
}

fn imports_ok(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import onnxruntime, numpy"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// An interpreter with onnxruntime and numpy (made in `setup`'s cache when
/// there is none).
pub fn python(setup: &PythonSetup) -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("WGRAPH_PYTHON").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let system = PathBuf::from("python3");
    if imports_ok(&system) {
        return Ok(system);
    }
    let base = setup.cache_base.clone().ok_or(
        "no cache folder for the Python baseline's environment (set WGRAPH_CACHE_DIR or HOME)",
    )?;
    let venv = base.join("python-baseline");
    let bin = venv.join("bin").join("python");
    if imports_ok(&bin) {
        return Ok(bin);
    }
    if let Some(notice) = setup.notice {
        notice(&format!(
            "installing the Python baseline's environment (onnxruntime {}, numpy) into {}",
            setup.onnxruntime_version,
            venv.display()
        ));
    }
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
                &format!("onnxruntime=={}", setup.onnxruntime_version),
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

/// The Python loop ready to run: an interpreter, the script written out,
/// and what it reads of the graph.
#[derive(Debug, Clone)]
pub struct PythonLoop {
    /// The interpreter (see [`python`]).
    pub python: PathBuf,
    /// [`SCRIPT`], written to a file.
    pub script: PathBuf,
    /// The folder of yan-sim's models.
    pub models: PathBuf,
    /// The graph's action file, if it has one.
    pub actions: Option<PathBuf>,
    /// The loop's DDIM steps.
    pub steps: u64,
}

impl PythonLoop {
    /// Prepares the loop for `graph`: checks it is yan-sim's, finds an
    /// interpreter, writes the script into `work`; `steps`, else the
    /// graph's `sampler.steps`, else 4.
    pub fn prepare(
        graph: &Graph,
        setup: &PythonSetup,
        work: &Path,
        steps: Option<u64>,
    ) -> Result<PythonLoop, String> {
        let (models, actions) = inputs(graph)?;
        let python = python(setup)?;
        std::fs::create_dir_all(work).map_err(|e| e.to_string())?;
        let script = work.join("yan_sim.py");
        std::fs::write(&script, SCRIPT).map_err(|e| e.to_string())?;
        let steps = steps.unwrap_or_else(|| {
            graph
                .find("sampler")
                .and_then(|id| graph.node(id).params.int("steps").ok())
                .unwrap_or(4) as u64
        });
        Ok(PythonLoop {
            python,
            script,
            models,
            actions,
            steps,
        })
    }

    /// Runs one timed round of `ticks` ticks; returns ms per tick.
    pub fn round(&self, ticks: u64) -> Result<f64, String> {
        let mut cmd = Command::new(&self.python);
        cmd.arg(&self.script)
            .arg("--models")
            .arg(&self.models)
            .args([
                "--ticks",
                &ticks.to_string(),
                "--steps",
                &self.steps.to_string(),
            ]);
        if let Some(a) = &self.actions {
            cmd.arg("--actions").arg(a);
        }
        let out = cmd.output().map_err(|e| format!("python baseline: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "python baseline failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        ms_per_tick(&String::from_utf8_lossy(&out.stdout))
    }
}

/// The figure the script prints: its last line is `{"ms_per_tick": …}`.
pub fn ms_per_tick(stdout: &str) -> Result<f64, String> {
    let line = stdout.lines().last().unwrap_or("");
    let json: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("python baseline printed `{line}`: {e}"))?;
    json["ms_per_tick"]
        .as_f64()
        .ok_or_else(|| format!("python baseline printed `{line}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_line_carries_the_figure() {
        let out = "warming up\n{\"ms_per_tick\": 12.5, \"ticks\": 4}\n";
        assert_eq!(ms_per_tick(out), Ok(12.5));
        assert!(ms_per_tick("").is_err());
        assert!(
            ms_per_tick("{\"ticks\": 4}")
                .unwrap_err()
                .contains("printed")
        );
    }
}
