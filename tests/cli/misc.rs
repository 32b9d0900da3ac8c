//! The commands around the graphs: `--version`, `kinds`, a closed pipe, a
//! mistake in a flag, and the model check script of `models-onnx/`.

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

/// `python3 models-onnx/check.py` works on a machine whose Python has no
/// numpy or onnxruntime: the script makes its own environment (once, in
/// wgraph's cache folder) from models-onnx/requirements.txt.
#[test]
fn the_model_check_script_installs_what_it_needs() {
    let _env = models_env_turn();
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
