//! Many players' worlds in one process: `wgraph bench FILE --players
//! 1,2,4,…` ([`bench_players`]) and its check `--verify-batching`
//! ([`verify_batching`]).
//!
//! Main types: [`PlayersOptions`] (with [`BatchSettings`]) and a
//! [`PlayerBackends`] in, [`PlayersReport`] (one [`PlayersRow`] per player
//! count and mode) out; [`VerifyReport`] for the check.
//!
//! `bench --players` answers "how many players does one machine hold, and
//! what does batching across them buy?". For each player count N, in one
//! run, alternating (the order flips every round, so a machine getting
//! busier favours neither), it runs the graph's first `frames` as fast as
//! it can:
//!
//! - **batched** — N sessions of the graph in this process, sharing one
//!   model cache whose models fuse the sessions' calls
//!   ([`wgraph_engine::batch`]), as `serve` runs its players;
//! - **unbatched** — the same N sessions with every call on its own;
//! - **processes** — N separate `wgraph run` processes at once (each its own
//!   models, as N separate servers would be; the executable is
//!   [`PlayersOptions::exe`]).
//!
//! Each reports session-ticks per second (all players' ticks over the
//! time the slowest took; model loading excluded in every mode), frames per
//! second per player, tick latency p50/p99 per player (the key a tick
//! plays is read when it starts, so this is the action-to-frame latency of
//! an unpaced world), the spread of the players' p99 (slowest over median:
//! is any player starved?) and, batched, the mean batch size. The figure
//! given per mode is the median of the rounds.
//!
//! When the graph's models are on Triton, each mode's timed run is also
//! bracketed by two readings of the server's per-model statistics
//! (`ModelStatistics`, read with `wgraph-triton`'s client: see
//! [`triton`]), and a second table gives per model the requests, rows and
//! executions of the runs and **requests per execution**: how many calls
//! Triton's dynamic batcher fused. The counters are the server's: another
//! client of the same server during the run is counted too, and the
//! process mode's window includes its children's start-up calls.

mod run;
pub mod triton;
mod verify;

pub use verify::{VerifyReport, VerifyRow, verify_batching};

use crate::LabError;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use triton::{TritonModel, TritonWatch};
use wgraph_engine::batch::BatchPolicy;
use wgraph_engine::model::{Backend, BackendKind, Provider};
use wgraph_engine::node::OutputConfig;
use wgraph_session::MissingFileHelp;
use wgraph_triton::{ModelCounts, TritonBackend};

/// Whether players' calls are fused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchAcross {
    /// Fused for every model, on a Triton server or not.
    On,
    /// Fused for models run in this process; models on a Triton server are
    /// left to its dynamic batcher.
    Auto,
    /// Every call on its own.
    Off,
}

/// How players' model calls are fused (`--batch-across-players`,
/// `--batch-wait-us`, `--batch-max-rows`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchSettings {
    /// Whether calls are fused, and of which models.
    pub across: BatchAcross,
    /// Longest a batch waits for more players' calls, in microseconds.
    pub wait_us: u32,
    /// Most rows in one batched call.
    pub max_rows: u32,
}

impl BatchSettings {
    /// The policy these settings ask for; `None` when batching is off.
    pub fn policy(&self) -> Option<BatchPolicy> {
        (self.across != BatchAcross::Off).then(|| BatchPolicy {
            max_rows: self.max_rows as usize,
            wait: Duration::from_micros(u64::from(self.wait_us)),
            ..BatchPolicy::default()
        })
    }

    /// Whether calls of models on a Triton server are fused here too.
    pub fn remote(&self) -> bool {
        self.across == BatchAcross::On
    }
}

/// Where in-process players' models come from (the binary's backend router).
pub trait PlayerBackends {
    /// The backend one mode's sessions share: every batchable model it
    /// loads behind a batching executor with `policy` (models on a Triton
    /// server too when `remote`), or, with `None`, every call on its own.
    /// With it, the Triton backend it loads through (clones share its
    /// record of the servers used).
    fn make(&self, batching: Option<(BatchPolicy, bool)>) -> (Arc<dyn Backend>, TritonBackend);

    /// A Triton client to read the servers' statistics with (its server
    /// override is passed on to the `wgraph run` processes).
    fn triton(&self) -> TritonBackend;
}

/// What `bench --players` runs.
#[derive(Debug, Clone)]
pub struct PlayersOptions {
    /// The graph file.
    pub file: PathBuf,
    /// The player counts, each run in every mode.
    pub counts: Vec<usize>,
    /// Frames each player plays.
    pub frames: u64,
    /// Rounds of every count and mode (the order flips each round).
    pub rounds: u32,
    /// `NODE.PARAM=VALUE` and `NODE=KIND` changes.
    pub set: Vec<String>,
    /// The first world's seed (the next player's is one more; default: the graph's).
    pub seed: Option<u64>,
    /// Worker threads per world (`None`: the engine's default).
    pub workers: Option<usize>,
    /// Ticks in flight per world.
    pub pipeline: usize,
    /// Replaces every model's execution provider.
    pub provider: Option<Provider>,
    /// Replaces every model's backend.
    pub backend_kind: Option<BackendKind>,
    /// How the batched mode fuses calls.
    pub batch: BatchSettings,
    /// Where in-process worlds' sinks write.
    pub output: OutputConfig,
    /// Help for a graph file that is not there.
    pub missing_file_help: Option<MissingFileHelp>,
    /// The `wgraph` executable the process mode starts (`wgraph run`).
    pub exe: PathBuf,
    /// More flags for each `wgraph run` process (`--provider`, `--backend`).
    pub run_flags: Vec<String>,
    /// Where progress lines go (the binary prints them on stderr).
    pub progress: Option<fn(&str)>,
}

impl PlayersOptions {
    fn say(&self, line: &str) {
        if let Some(progress) = self.progress {
            progress(line);
        }
    }
}

/// The three ways N players are run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Batched,
    Unbatched,
    Processes,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Batched => "batched",
            Mode::Unbatched => "unbatched",
            Mode::Processes => "processes",
        }
    }
}

/// One mode's figures for one player count, one round.
#[derive(Debug, Clone, Default)]
struct Figures {
    session_ticks_per_s: f64,
    /// Per player: ticks per second.
    fps: Vec<f64>,
    /// Per player: tick latency p50 and p99, ms.
    p50_ms: Vec<f64>,
    p99_ms: Vec<f64>,
    mean_batch: Option<f64>,
    /// Models on Triton: each model's counters over the timed run.
    triton: Option<BTreeMap<String, ModelCounts>>,
}

impl Figures {
    fn worst_p99(&self) -> f64 {
        self.p99_ms.iter().copied().fold(0.0, f64::max)
    }
    fn median_p50(&self) -> f64 {
        median(&self.p50_ms)
    }
    fn min_fps(&self) -> f64 {
        self.fps.iter().copied().fold(f64::INFINITY, f64::min)
    }
    /// Slowest player's p99 over the median player's.
    fn spread(&self) -> f64 {
        let m = median(&self.p99_ms);
        if m > 0.0 { self.worst_p99() / m } else { 0.0 }
    }
}

/// The median of the finite values (0 for none).
fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Parses `--players 1,2,4`: counts from 1 to 256.
pub fn parse_counts(text: &str) -> Result<Vec<usize>, String> {
    text.split(',')
        .map(|c| {
            let c = c.trim();
            match c.parse::<usize>() {
                Ok(n @ 1..=256) => Ok(n),
                _ => Err(format!(
                    "--players {text}: `{c}` is not a player count from 1 to 256"
                )),
            }
        })
        .collect()
}

/// One player count in one mode: the medians of its rounds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlayersRow {
    /// Players run at once.
    pub players: usize,
    /// `batched`, `unbatched` or `processes`.
    pub mode: String,
    /// All players' ticks over the time the slowest took.
    pub session_ticks_per_s: f64,
    /// The slowest player's ticks per second.
    pub fps_per_player_min: f64,
    /// The median player's ticks per second.
    pub fps_per_player_median: f64,
    /// The median player's tick latency p50, ms.
    pub tick_p50_ms: f64,
    /// The slowest player's tick latency p99, ms.
    pub tick_p99_ms_worst_player: f64,
    /// The slowest player's p99 over the median player's.
    pub p99_spread: f64,
    /// Rows per batched call (batched mode only).
    pub mean_batch: Option<f64>,
    /// Rounds measured.
    pub rounds: usize,
    /// Session-ticks per second over the process mode's (when it ran and was not 0).
    pub vs_processes: Option<f64>,
    /// Per model on Triton, the rounds' counters summed; `None` when no
    /// model is on Triton.
    pub triton: Option<BTreeMap<String, TritonModel>>,
}

/// What `bench --players` measured (its `--json` document).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlayersReport {
    /// The graph file, as given.
    pub graph: String,
    /// Frames each player played.
    pub frames_per_player: u64,
    /// Rounds of every count and mode.
    pub rounds: u32,
    /// The batched mode's longest wait, µs.
    pub batch_wait_us: u32,
    /// The batched mode's most rows per call.
    pub batch_max_rows: u32,
    /// The machine's cores.
    pub cores: usize,
    /// The Triton servers the players' models were on.
    pub triton_servers: Vec<String>,
    /// Every player count in every mode.
    pub rows: Vec<PlayersRow>,
}

/// Runs every player count in every mode, `options.rounds` times.
/// `--batch-across-players off` runs the unbatched and process modes only.
pub fn bench_players(
    options: &PlayersOptions,
    backends: &dyn PlayerBackends,
) -> Result<PlayersReport, LabError> {
    if options.frames == 0 || options.rounds == 0 {
        return Err(LabError::Usage(
            "--frames and --rounds must be at least 1".into(),
        ));
    }
    let policy = options.batch.policy();
    let modes: Vec<Mode> = if policy.is_some() {
        vec![Mode::Batched, Mode::Unbatched, Mode::Processes]
    } else {
        vec![Mode::Unbatched, Mode::Processes]
    };
    let scratch = std::env::temp_dir().join(format!("wgraph-players-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)
        .map_err(|e| LabError::Runtime(format!("{}: {e}", scratch.display())))?;
    let mut watch = TritonWatch::new(backends.triton(), options.progress);
    let measured = (|| -> Result<Vec<Vec<Vec<Figures>>>, LabError> {
        // results[count][mode] = the rounds' figures
        let mut results: Vec<Vec<Vec<Figures>>> =
            vec![vec![Vec::new(); modes.len()]; options.counts.len()];
        let names: Vec<&str> = modes.iter().map(|m| m.name()).collect();
        options.say(&format!(
            "bench --players: {} frames per player, {} rounds of {} (order flips each round)",
            options.frames,
            options.rounds,
            names.join(", ")
        ));
        for round in 0..options.rounds {
            for (ci, &n) in options.counts.iter().enumerate() {
                let mut order: Vec<usize> = (0..modes.len()).collect();
                if round % 2 == 1 {
                    order.reverse();
                }
                for mi in order {
                    // Round 0 runs an in-process mode first: the servers
                    // in use are known before any process mode runs.
                    let figures = match modes[mi] {
                        Mode::Batched => {
                            run::in_process(options, backends, n, policy.clone(), &mut watch)
                        }
                        Mode::Unbatched => run::in_process(options, backends, n, None, &mut watch),
                        Mode::Processes => run::processes(options, n, &scratch, &mut watch),
                    };
                    let figures = figures.map_err(|e| {
                        LabError::Runtime(format!("{n} players, {}: {e}", modes[mi].name()))
                    })?;
                    results[ci][mi].push(figures);
                }
            }
            options.say(&format!("round {} of {} done", round + 1, options.rounds));
        }
        Ok(results)
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    let results = measured?;
    let mut rows = Vec::new();
    for (ci, &n) in options.counts.iter().enumerate() {
        let summaries: Vec<PlayersRow> = results[ci]
            .iter()
            .zip(&modes)
            .map(|(rounds, mode)| summarize(n, *mode, rounds))
            .collect();
        let procs = modes
            .iter()
            .position(|m| *m == Mode::Processes)
            .map(|i| summaries[i].session_ticks_per_s);
        for mut row in summaries {
            row.vs_processes = procs
                .filter(|p| *p > 0.0)
                .map(|p| row.session_ticks_per_s / p);
            rows.push(row);
        }
    }
    Ok(PlayersReport {
        graph: options.file.display().to_string(),
        frames_per_player: options.frames,
        rounds: options.rounds,
        batch_wait_us: options.batch.wait_us,
        batch_max_rows: options.batch.max_rows,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        triton_servers: watch.servers.iter().cloned().collect(),
        rows,
    })
}

/// Median over rounds of each figure (`vs_processes` left to the caller).
fn summarize(players: usize, mode: Mode, rounds: &[Figures]) -> PlayersRow {
    let pick = |f: &dyn Fn(&Figures) -> f64| median(&rounds.iter().map(f).collect::<Vec<_>>());
    let batch = rounds
        .iter()
        .filter_map(|f| f.mean_batch)
        .collect::<Vec<_>>();
    PlayersRow {
        players,
        mode: mode.name().into(),
        session_ticks_per_s: pick(&|f| f.session_ticks_per_s),
        fps_per_player_min: pick(&|f| f.min_fps()),
        fps_per_player_median: pick(&|f| median(&f.fps)),
        tick_p50_ms: pick(&|f| f.median_p50()),
        tick_p99_ms_worst_player: pick(&|f| f.worst_p99()),
        p99_spread: pick(&|f| f.spread()),
        mean_batch: (!batch.is_empty()).then(|| median(&batch)),
        rounds: rounds.len(),
        vs_processes: None,
        triton: triton::summary(rounds),
    }
}

impl PlayersReport {
    /// The tables `bench --players` prints: every count and mode, then
    /// (models on Triton) what its dynamic batcher fused.
    pub fn text(&self) -> String {
        let mut text = format!(
            "{:>7}  {:<9}  {:>14}  {:>10}  {:>9}  {:>9}  {:>7}  {:>6}  {:>9}\n",
            "players",
            "mode",
            "session-tick/s",
            "fps/player",
            "p50 ms",
            "p99 ms",
            "spread",
            "batch",
            "vs procs"
        );
        let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
        for r in &self.rows {
            text += &format!(
                "{:>7}  {:<9}  {:>14.1}  {:>10.2}  {:>9.2}  {:>9.2}  {:>7.2}  {:>6}  {:>9}\n",
                r.players,
                r.mode,
                r.session_ticks_per_s,
                // An infinite minimum (no player ran) is written as JSON null, read back as 0.
                if r.fps_per_player_min.is_finite() {
                    r.fps_per_player_min
                } else {
                    0.0
                },
                r.tick_p50_ms,
                r.tick_p99_ms_worst_player,
                r.p99_spread,
                or_dash(r.mean_batch.map(|b| format!("{b:.2}"))),
                or_dash(r.vs_processes.map(|v| format!("{v:.2}x"))),
            );
        }
        text += &format!(
            "(fps/player: the slowest player's; p99: the slowest player's; spread: slowest p99 over the median player's; medians of {} rounds)\n",
            self.rounds
        );
        text + &triton::table(&self.rows, &self.triton_servers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn player_counts_parse_and_bad_ones_are_named() {
        assert_eq!(parse_counts("1,2, 4").unwrap(), vec![1, 2, 4]);
        assert!(parse_counts("1,x").unwrap_err().contains("`x`"));
        assert!(parse_counts("0").is_err());
        assert!(parse_counts("257").is_err());
        assert!(parse_counts("256").is_ok());
    }

    #[test]
    fn spread_is_the_slowest_p99_over_the_median() {
        let f = Figures {
            p99_ms: vec![10.0, 10.0, 30.0],
            ..Figures::default()
        };
        assert_eq!(f.spread(), 3.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    }

    /// A row is the median of its rounds; the table shows a dash for a
    /// figure a mode has not, and the JSON has the keys scripts read.
    #[test]
    fn rows_summarise_rounds_and_print() {
        let round = |tps: f64, batch: Option<f64>| Figures {
            session_ticks_per_s: tps,
            fps: vec![tps / 2.0, tps / 2.0],
            p50_ms: vec![1.0, 2.0],
            p99_ms: vec![4.0, 8.0],
            mean_batch: batch,
            triton: None,
        };
        let rounds = [
            round(10.0, Some(2.0)),
            round(30.0, Some(1.5)),
            round(20.0, None),
        ];
        let row = summarize(2, Mode::Batched, &rounds);
        assert_eq!(row.session_ticks_per_s, 20.0);
        assert_eq!(row.fps_per_player_min, 10.0);
        assert_eq!(row.tick_p99_ms_worst_player, 8.0);
        assert_eq!(row.p99_spread, 1.0);
        assert_eq!(row.mean_batch, Some(2.0));
        assert_eq!(row.rounds, 3);
        let report = PlayersReport {
            graph: "g.world".into(),
            frames_per_player: 4,
            rounds: 3,
            batch_wait_us: 500,
            batch_max_rows: 16,
            cores: 2,
            triton_servers: Vec::new(),
            rows: vec![row, summarize(2, Mode::Processes, &[round(10.0, None)])],
        };
        let text = report.text();
        assert!(text.contains("batched"), "{text}");
        assert!(text.lines().nth(2).unwrap().contains("  -  "), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["rows"][0]["mode"], "batched");
        assert_eq!(json["rows"][0]["mean_batch"], 2.0);
        assert!(json["rows"][1]["mean_batch"].is_null());
        assert!(json["rows"][1]["triton"].is_null());
    }
}
