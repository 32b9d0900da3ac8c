//! Batching across players: `wgraph bench --players` (batched, unbatched
//! and separate processes, in one run) and `--verify-batching` (every
//! world's frames, batched, against the same world run alone) per sampler
//! kind, guidance off and on.

use super::*;

/// (graph, `--set`s, tolerance): 0 means bit for bit. ONNX Runtime on the
/// CPU gives the Yan-Sim models' rows alike at any batch size; Yume's DiT
/// (attention) may differ in the last bits of a float.
const CASES: &[(&str, &[&str], &str)] = &[
    ("graphs/yan-sim.world", &[], "0"),
    ("graphs/yan-sim.world", &["sampler=euler"], "0"),
    ("graphs/yan-sim.world", &["sampler=sde"], "0"),
    ("graphs/yume.world", &[], "1e-5"),
    (
        "graphs/yume.world",
        &["dit.guidance={ text = 1.5 }"],
        "1e-5",
    ),
    ("graphs/yume.world", &["sampler=df_window"], "1e-5"),
    ("graphs/yume.world", &["sampler=self_forcing"], "1e-5"),
    ("graphs/yume.world", &["sampler=aam"], "1e-5"),
];

#[test]
fn batched_worlds_equal_each_world_run_alone_for_every_sampler_case() {
    let mut failures = Vec::new();
    for (graph, sets, tolerance) in CASES {
        let mut args = vec![
            "bench",
            graph,
            "--players",
            "2",
            "--frames",
            "2",
            "--verify-batching",
            "--tolerance",
            tolerance,
        ];
        for s in *sets {
            args.extend(["--set", s]);
        }
        let o = wgraph(&args);
        let out = stdout(&o);
        let case = format!("{graph} {sets:?}");
        if !o.status.success() {
            failures.push(format!("{case}: {}{}", out, stderr(&o)));
            continue;
        }
        // Calls were fused (two lock-step worlds: all of them, unless the
        // machine held a thread back past the wait), and the players'
        // worlds differ.
        let mean: f64 = out
            .split("mean batch ")
            .nth(1)
            .and_then(|t| t.split(':').next()?.trim().parse().ok())
            .unwrap_or(0.0);
        if mean <= 1.5 || out.contains("alike whatever its seed") {
            failures.push(format!("{case}: {out}"));
        }
        if *tolerance == "0" && !out.contains("bit for bit") {
            failures.push(format!("{case}: not bit for bit: {out}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn verify_batching_fails_when_a_difference_passes_the_tolerance() {
    // Yume's fused rows differ in the last bits: a zero tolerance says so.
    let o = wgraph(&[
        "bench",
        "graphs/yume.world",
        "--players",
        "2",
        "--frames",
        "2",
        "--verify-batching",
        "--set",
        "sampler=euler",
    ]);
    let out = stdout(&o);
    if out.contains("bit for bit") {
        // This machine's kernels gave equal rows: nothing to fail on.
        assert!(o.status.success(), "{}", stderr(&o));
    } else {
        assert_eq!(o.status.code(), Some(3), "{out}{}", stderr(&o));
        assert!(
            stderr(&o).contains("more than --tolerance"),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn bench_players_reports_every_mode_for_every_count() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("players.json");
    let o = wgraph(&[
        "bench",
        "graphs/yan-sim.world",
        "--players",
        "1,2",
        "--frames",
        "2",
        "--rounds",
        "1",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    for mode in ["batched", "unbatched", "processes"] {
        assert!(table.contains(mode), "{table}");
    }
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = doc["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 6, "{doc}");
    for row in rows {
        assert!(row["session_ticks_per_s"].as_f64().unwrap() > 0.0, "{row}");
        assert!(
            row["tick_p99_ms_worst_player"].as_f64().unwrap() > 0.0,
            "{row}"
        );
        let batched = row["mode"] == "batched";
        assert_eq!(row["mean_batch"].is_number(), batched, "{row}");
        if batched {
            let mean = row["mean_batch"].as_f64().unwrap();
            assert!((1.0..=2.0).contains(&mean), "{row}");
        }
        if row["mode"] == "processes" {
            assert_eq!(row["vs_processes"].as_f64(), Some(1.0), "{row}");
        }
    }
}

#[test]
fn bad_player_counts_and_flag_mixes_are_usage_errors() {
    for (args, says) in [
        (&["--players", "1,0"][..], "`0` is not a player count"),
        (&["--players", "two"][..], "`two` is not a player count"),
        (&["--verify-batching"][..], "--players"),
    ] {
        let mut all = vec!["bench", "graphs/yan-sim.world"];
        all.extend_from_slice(args);
        let o = wgraph(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    }
    let o = wgraph(&[
        "bench",
        "graphs/yan-sim.world",
        "--players",
        "2",
        "--verify-batching",
        "--batch-across-players",
        "off",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--batch-across-players on"),
        "{}",
        stderr(&o)
    );
}
