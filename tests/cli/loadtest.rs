//! `wgraph loadtest` against a real `wgraph serve` on loopback: three
//! players get three worlds of their own and frames in each, the JSON
//! report has the per-player figures, a player beyond `--max-worlds` makes
//! it exit 3 naming that player, and a host that is not loopback is a usage
//! error. Time limits only catch hangs.

use super::*;
use serde_json::Value as Json;
use std::time::{Duration, Instant};

const TOKEN: &str = "wgraph-loadtest-test-token";

/// `wgraph serve ARGS` with this file's token.
fn start(dir: &Path, args: &[&str]) -> Served {
    Served::start(dir, &[args, &["--token", TOKEN]].concat())
}

/// `wgraph loadtest ARGS`, killed if it runs past a generous hang guard.
fn loadtest(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let (out, err) = (dir.join("stdout.txt"), dir.join("stderr.txt"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_wgraph"))
        .arg("loadtest")
        .args(args)
        .current_dir(root())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "loadtest hung: {}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status.code().unwrap_or(-1),
        std::fs::read_to_string(&out).unwrap_or_default(),
        std::fs::read_to_string(&err).unwrap_or_default(),
    )
}

#[test]
fn three_players_get_three_worlds_and_frames_in_each() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["examples/pan.world", "--max-worlds", "8"]);
    let json = dir.path().join("out.json");
    let json_arg = json.to_str().unwrap();
    let (code, out, err) = loadtest(
        dir.path(),
        &[
            &server.url,
            "--players",
            "3",
            "--seconds",
            "3",
            "--json",
            json_arg,
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("3 of 3 player(s) got frames"), "{out}");
    let report: Json = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let players = report["per_player"].as_array().expect("per_player");
    assert_eq!(players.len(), 3, "{report}");
    let mut sessions = Vec::new();
    for p in players {
        for field in [
            "player",
            "status",
            "session",
            "frames",
            "fps",
            "frames_lost",
            "key_changes",
            "key_to_frame_ms",
        ] {
            assert!(p.get(field).is_some(), "no `{field}` in {p}");
        }
        assert_eq!(p["status"], "ok", "{p}");
        assert!(p["frames"].as_u64().unwrap() > 0, "{p}");
        assert!(p["key_to_frame_ms"].get("p50").is_some(), "{p}");
        assert!(p["key_to_frame_ms"].get("p99").is_some(), "{p}");
        sessions.push(p["session"].as_str().expect("a session id").to_string());
    }
    sessions.sort();
    sessions.dedup();
    assert_eq!(
        sessions.len(),
        3,
        "each player has a world of their own: {report}"
    );
    assert_eq!(report["summary"]["players_ok"], 3, "{report}");
    // The token is not copied into the report.
    assert!(!report.to_string().contains(TOKEN), "{report}");
}

#[test]
fn a_player_beyond_max_worlds_makes_it_fail_naming_the_player() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["examples/pan.world", "--max-worlds", "1"]);
    let (code, out, err) = loadtest(
        dir.path(),
        &[&server.url, "--players", "2", "--seconds", "2"],
    );
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(
        err.contains(": refused: server full: 1 worlds running, try again"),
        "{err}"
    );
    let refused = err.lines().find(|l| l.contains("refused")).unwrap();
    assert!(
        refused.starts_with("loadtest: player 1:") || refused.starts_with("loadtest: player 2:"),
        "{refused}"
    );
    assert!(
        out.contains("1 of 2 player(s) got frames; 1 refused"),
        "{out}"
    );
}

#[test]
fn hosts_beyond_loopback_and_bad_arguments_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = loadtest(
        dir.path(),
        &[
            "http://10.1.2.3:8080/?token=x",
            "--players",
            "1",
            "--seconds",
            "1",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--allow-remote"), "{err}");
    for args in [
        &["not a url", "--players", "1", "--seconds", "1"][..],
        &[
            "http://127.0.0.1:9/?token=x",
            "--players",
            "0",
            "--seconds",
            "1",
        ],
        &[
            "http://127.0.0.1:9/?token=x",
            "--players",
            "1",
            "--seconds",
            "0",
        ],
        &[
            "http://127.0.0.1:9/?token=x",
            "--players",
            "1001",
            "--seconds",
            "1",
        ],
        &[
            "http://127.0.0.1:9/?token=x",
            "--players",
            "1",
            "--seconds",
            "3601",
        ],
        &[
            "http://127.0.0.1:9/elsewhere?token=x",
            "--players",
            "1",
            "--seconds",
            "1",
        ],
    ] {
        let (code, _, err) = loadtest(dir.path(), args);
        assert_eq!(code, 2, "{args:?}: {err}");
    }
}
