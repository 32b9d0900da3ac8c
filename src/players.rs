//! Many players' worlds in one process: the batching flags `serve` and
//! `bench` share ([`BatchArgs`]), and `wgraph bench FILE --players
//! 1,2,4,…` ([`bench_players`]).
//!
//! `bench --players` answers "how many players does one machine hold, and
//! what does batching across them buy?". For each player count N, in one
//! run, alternating (the order flips every round, so a machine getting
//! busier favours neither), it runs the graph's first `--frames` as fast as
//! it can:
//!
//! - **batched** — N sessions of the graph in this process, sharing one
//!   model cache whose models fuse the sessions' calls
//!   ([`wgraph_engine::batch`]), as `serve` runs its players;
//! - **unbatched** — the same N sessions with every call on its own;
//! - **processes** — N separate `wgraph run` processes at once (each its own
//!   models, as N separate servers would be).
//!
//! Each reports session-ticks per second (all players' ticks over the
//! time the slowest took; model loading excluded in every mode), frames per
//! second per player, tick latency p50/p99 per player (the key a tick
//! plays is read when it starts, so this is the action-to-frame latency of
//! an unpaced world), the spread of the players' p99 (slowest over median:
//! is any player starved?) and, batched, the mean batch size. The figure
//! printed per mode is the median of the rounds.
//!
//! When the graph's models are on Triton (`--backend triton
//! --triton-server ADDR`), each mode's timed run is also bracketed by two
//! readings of the server's per-model statistics (`ModelStatistics`), and a
//! second table gives per model the requests, rows and executions of the
//! runs and **requests per execution**: how many calls Triton's dynamic
//! batcher fused. (Unbatched and process players send their own requests,
//! which only Triton can fuse; batched players' calls arrive already fused,
//! several rows a request.) The counters are the server's: another client
//! of the same server during the run is counted too, and the process mode's
//! window includes its children's start-up calls.

use crate::{BenchArgs, Outcome};
use clap::ValueEnum;
use hdrhistogram::Histogram;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wgraph_engine::batch::BatchPolicy;
use wgraph_engine::schedule::RunConfig;
use wgraph_engine::tensor::{DType, Tensor};
use wgraph_engine::world::{WorldConfig, WorldEvent};
use wgraph_session::{Session, SessionOptions};
use wgraph_triton::{ModelCounts, TritonBackend};

/// Whether players' calls are fused (`--batch-across-players`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    /// Fused for every model, on a Triton server or not.
    On,
    /// Fused for models run in this process; models on a Triton server are
    /// left to its dynamic batcher (one request per player's call).
    Auto,
    /// Every call on its own (bit-exact for replay).
    Off,
}

/// How players' model calls are fused (`serve`, `bench --players`).
#[derive(clap::Args, Debug, Clone)]
pub struct BatchArgs {
    /// Fuse calls of one model from different players' worlds into one
    /// batched call (results equal each world run alone where the backend's
    /// kernels do not depend on the batch size; `off` keeps every world
    /// bit-exact for replay; `auto` leaves models on a Triton server to its
    /// dynamic batcher).
    #[arg(long, value_enum, default_value_t = Switch::On)]
    pub batch_across_players: Switch,
    /// Longest a batch waits for more players' calls, in microseconds (0:
    /// never waits; calls already queued are still fused).
    #[arg(long, value_name = "US", default_value_t = 500,
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub batch_wait_us: u32,
    /// Most rows in one batched call.
    #[arg(long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch_max_rows: u32,
}

impl BatchArgs {
    /// The policy these flags ask for; `None` when batching is off.
    pub fn policy(&self) -> Option<BatchPolicy> {
        (self.batch_across_players != Switch::Off).then(|| BatchPolicy {
            max_rows: self.batch_max_rows as usize,
            wait: Duration::from_micros(u64::from(self.batch_wait_us)),
            ..BatchPolicy::default()
        })
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

/// Reads the Triton servers' per-model counters around each timed run
/// (nothing when no model is on Triton).
struct TritonWatch {
    reader: TritonBackend,
    /// The servers the in-process sessions loaded models from.
    servers: BTreeSet<String>,
    warned: bool,
}

impl TritonWatch {
    fn new() -> Self {
        TritonWatch {
            reader: crate::backends::Backends::new().triton().clone(),
            servers: BTreeSet::new(),
            warned: false,
        }
    }

    /// Every model's counters on the servers in use, once they have
    /// settled: Triton counts a request after it has answered it, so a
    /// reading right after the last answer may miss it. Read until two
    /// readings 50 ms apart agree (at most 1 s).
    fn read(&mut self) -> Option<BTreeMap<String, ModelCounts>> {
        let mut last = self.read_once()?;
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(50));
            let next = self.read_once()?;
            if next == last {
                break;
            }
            last = next;
        }
        Some(last)
    }

    /// Every model's counters on the servers in use, by model name
    /// (`server/model` when there are several servers); `None` when no
    /// model is on Triton or a server's statistics cannot be read (said
    /// once on stderr).
    fn read_once(&mut self) -> Option<BTreeMap<String, ModelCounts>> {
        if self.servers.is_empty() {
            return None;
        }
        let mut all = BTreeMap::new();
        let several = self.servers.len() > 1;
        for server in &self.servers {
            match self.reader.statistics(server) {
                Ok(counts) => {
                    for (model, c) in counts {
                        let key = if several {
                            format!("{server}/{model}")
                        } else {
                            model
                        };
                        all.insert(key, c);
                    }
                }
                Err(e) => {
                    if !self.warned {
                        eprintln!("warning: no Triton statistics (requests per execution): {e}");
                        self.warned = true;
                    }
                    return None;
                }
            }
        }
        Some(all)
    }
}

/// Each model's counters between two readings (models without requests
/// between them left out).
fn counts_between(
    before: Option<BTreeMap<String, ModelCounts>>,
    after: Option<BTreeMap<String, ModelCounts>>,
) -> Option<BTreeMap<String, ModelCounts>> {
    let (before, after) = (before?, after?);
    Some(
        after
            .into_iter()
            .map(|(model, a)| {
                let d = before.get(&model).map_or(a, |b| a.since(b));
                (model, d)
            })
            .filter(|(_, d)| d.requests > 0 || d.executions > 0)
            .collect(),
    )
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
    let counts: Vec<usize> = text
        .split(',')
        .map(|c| {
            let c = c.trim();
            match c.parse::<usize>() {
                Ok(n @ 1..=256) => Ok(n),
                _ => Err(format!(
                    "--players {text}: `{c}` is not a player count from 1 to 256"
                )),
            }
        })
        .collect::<Result<_, _>>()?;
    Ok(counts)
}

/// `wgraph bench FILE --players 1,2,4,8`
pub fn bench_players(args: &BenchArgs, counts: &[usize]) -> Outcome {
    if args.frames == 0 || args.rounds == 0 {
        return crate::commands::usage("--frames and --rounds must be at least 1");
    }
    if args.verify_batching {
        return verify(args, counts);
    }
    // `--batch-across-players off` benches the unbatched and process modes only.
    run_all(args, counts, args.batch.policy())
}

fn run_all(args: &BenchArgs, counts: &[usize], policy: Option<BatchPolicy>) -> Outcome {
    let modes: Vec<Mode> = if policy.is_some() {
        vec![Mode::Batched, Mode::Unbatched, Mode::Processes]
    } else {
        vec![Mode::Unbatched, Mode::Processes]
    };
    let scratch = std::env::temp_dir().join(format!("wgraph-players-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&scratch) {
        eprintln!("error: {}: {e}", scratch.display());
        return Outcome::RuntimeFailure;
    }
    let mut watch = TritonWatch::new();
    let outcome = (|| {
        // results[count][mode] = the rounds' figures
        let mut results: Vec<Vec<Vec<Figures>>> = vec![vec![Vec::new(); modes.len()]; counts.len()];
        eprintln!(
            "bench --players: {} frames per player, {} rounds of {} (order flips each round)",
            args.frames,
            args.rounds,
            modes
                .iter()
                .map(|m| m.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
        for round in 0..args.rounds {
            for (ci, &n) in counts.iter().enumerate() {
                let mut order: Vec<usize> = (0..modes.len()).collect();
                if round % 2 == 1 {
                    order.reverse();
                }
                for mi in order {
                    // Round 0 runs an in-process mode first: the servers
                    // in use are known before any process mode runs.
                    let figures = match modes[mi] {
                        Mode::Batched => in_process(args, n, policy.clone(), &mut watch),
                        Mode::Unbatched => in_process(args, n, None, &mut watch),
                        Mode::Processes => processes(args, n, &scratch, &mut watch),
                    };
                    match figures {
                        Ok(f) => results[ci][mi].push(f),
                        Err(e) => {
                            eprintln!("error: {} players, {}: {e}", n, modes[mi].name());
                            return Outcome::RuntimeFailure;
                        }
                    }
                }
            }
            eprintln!("round {} of {} done", round + 1, args.rounds);
        }
        report(args, counts, &modes, &results, &watch)
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    outcome
}

/// Median over rounds of each figure.
fn summarize(rounds: &[Figures]) -> serde_json::Value {
    let pick = |f: &dyn Fn(&Figures) -> f64| median(&rounds.iter().map(f).collect::<Vec<_>>());
    let batch = rounds
        .iter()
        .filter_map(|f| f.mean_batch)
        .collect::<Vec<_>>();
    let triton = triton_summary(rounds);
    serde_json::json!({
        "triton": triton,
        "session_ticks_per_s": pick(&|f| f.session_ticks_per_s),
        "fps_per_player_min": pick(&|f| f.min_fps()),
        "fps_per_player_median": pick(&|f| median(&f.fps)),
        "tick_p50_ms": pick(&|f| f.median_p50()),
        "tick_p99_ms_worst_player": pick(&|f| f.worst_p99()),
        "p99_spread": pick(&|f| f.spread()),
        "mean_batch": (!batch.is_empty()).then(|| median(&batch)),
        "rounds": rounds.len(),
    })
}

/// Per model on Triton, the rounds' counters summed and their ratios:
/// `{model: {requests, rows, executions, requests_per_execution,
/// rows_per_execution}}`; null when no model is on Triton.
fn triton_summary(rounds: &[Figures]) -> serde_json::Value {
    let mut sum: BTreeMap<String, ModelCounts> = BTreeMap::new();
    let mut any = false;
    for f in rounds {
        for (model, c) in f.triton.iter().flatten() {
            any = true;
            let s = sum.entry(model.clone()).or_default();
            *s = s.plus(c);
        }
        any |= f.triton.is_some();
    }
    if !any {
        return serde_json::Value::Null;
    }
    sum.into_iter()
        .map(|(model, c)| {
            (
                model,
                serde_json::json!({
                    "requests": c.requests,
                    "rows": c.rows,
                    "executions": c.executions,
                    "requests_per_execution": c.requests_per_execution(),
                    "rows_per_execution": c.rows_per_execution(),
                }),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn report(
    args: &BenchArgs,
    counts: &[usize],
    modes: &[Mode],
    results: &[Vec<Vec<Figures>>],
    watch: &TritonWatch,
) -> Outcome {
    println!(
        "{:>7}  {:<9}  {:>14}  {:>10}  {:>9}  {:>9}  {:>7}  {:>6}  {:>9}",
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
    let mut rows = Vec::new();
    for (ci, &n) in counts.iter().enumerate() {
        let summaries: Vec<serde_json::Value> = results[ci].iter().map(|r| summarize(r)).collect();
        let procs = modes
            .iter()
            .position(|m| *m == Mode::Processes)
            .map(|i| summaries[i]["session_ticks_per_s"].as_f64().unwrap_or(0.0));
        for (mi, mode) in modes.iter().enumerate() {
            let s = &summaries[mi];
            let get = |k: &str| s[k].as_f64().unwrap_or(0.0);
            let ratio = procs
                .filter(|p| *p > 0.0)
                .map(|p| get("session_ticks_per_s") / p);
            println!(
                "{:>7}  {:<9}  {:>14.1}  {:>10.2}  {:>9.2}  {:>9.2}  {:>7.2}  {:>6}  {:>9}",
                n,
                mode.name(),
                get("session_ticks_per_s"),
                get("fps_per_player_min"),
                get("tick_p50_ms"),
                get("tick_p99_ms_worst_player"),
                get("p99_spread"),
                s["mean_batch"]
                    .as_f64()
                    .map_or_else(|| "-".to_string(), |b| format!("{b:.2}")),
                ratio.map_or_else(|| "-".to_string(), |r| format!("{r:.2}x")),
            );
            let mut row = s.clone();
            row["players"] = n.into();
            row["mode"] = mode.name().into();
            row["vs_processes"] = ratio.into();
            rows.push(row);
        }
    }
    println!(
        "(fps/player: the slowest player's; p99: the slowest player's; spread: slowest p99 over the median player's; medians of {} rounds)",
        args.rounds
    );
    print_triton(&rows, &watch.servers);
    if let Some(path) = &args.json {
        let doc = serde_json::json!({
            "graph": args.file.display().to_string(),
            "frames_per_player": args.frames,
            "rounds": args.rounds,
            "batch_wait_us": args.batch.batch_wait_us,
            "batch_max_rows": args.batch.batch_max_rows,
            "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "triton_servers": watch.servers.iter().collect::<Vec<_>>(),
            "rows": rows,
        });
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
        if let Err(e) = wgraph_engine::output::write_file(path, text.as_bytes()) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return Outcome::RuntimeFailure;
        }
    }
    Outcome::Ok
}

/// The second table: per mode and model on Triton, what its dynamic
/// batcher fused (all rounds together).
fn print_triton(rows: &[serde_json::Value], servers: &BTreeSet<String>) {
    if servers.is_empty() {
        return;
    }
    let servers: Vec<&str> = servers.iter().map(String::as_str).collect();
    println!();
    println!(
        "Triton's dynamic batcher ({}; the rounds' requests together):",
        servers.join(", ")
    );
    println!(
        "{:>7}  {:<9}  {:<16}  {:>9}  {:>9}  {:>10}  {:>9}  {:>9}",
        "players", "mode", "model", "requests", "rows", "executions", "req/exec", "rows/exec"
    );
    for row in rows {
        let Some(models) = row["triton"].as_object() else {
            continue;
        };
        for (model, c) in models {
            let ratio = |k: &str| {
                c[k].as_f64()
                    .map_or_else(|| "-".to_string(), |r| format!("{r:.2}"))
            };
            let count = |k: &str| c[k].as_u64().unwrap_or(0);
            println!(
                "{:>7}  {:<9}  {:<16}  {:>9}  {:>9}  {:>10}  {:>9}  {:>9}",
                row["players"].as_u64().unwrap_or(0),
                row["mode"].as_str().unwrap_or(""),
                model,
                count("requests"),
                count("rows"),
                count("executions"),
                ratio("requests_per_execution"),
                ratio("rows_per_execution"),
            );
        }
    }
    println!(
        "(req/exec: requests per model execution, what Triton fused; rows/exec: batch rows per execution — batched players send several rows a request)"
    );
}

/// N sessions in this process, one model cache (batched or not), run at once.
fn in_process(
    args: &BenchArgs,
    n: usize,
    policy: Option<BatchPolicy>,
    watch: &mut TritonWatch,
) -> Result<Figures, String> {
    let stats = policy.as_ref().map(|p| Arc::clone(&p.stats));
    let (sessions, triton) = open_sessions(args, n, None, policy)?;
    watch.servers.extend(triton.servers_used());
    // Only the ticks' calls count (not those the sessions made as they opened).
    if let Some(s) = &stats {
        s.reset();
    }
    let triton_before = watch.read();
    let start = Instant::now();
    let threads: Vec<_> = sessions
        .into_iter()
        .map(|mut session| {
            std::thread::spawn(move || {
                let mut latency = histogram();
                let mut ticks = 0u64;
                let begun = Instant::now();
                let end = session.run(&mut |event| {
                    if let WorldEvent::Tick { latency: l, .. } = event {
                        ticks += 1;
                        let _ = latency.record(l.as_micros().max(1) as u64);
                    }
                });
                (
                    end.map_err(|e| e.to_string()),
                    ticks,
                    begun.elapsed(),
                    latency,
                )
            })
        })
        .collect();
    let mut figures = Figures::default();
    let mut total = 0;
    for t in threads {
        let (end, ticks, took, latency) = t
            .join()
            .map_err(|_| "a session's thread panicked".to_string())?;
        end?;
        total += ticks;
        figures
            .fps
            .push(ticks as f64 / took.as_secs_f64().max(1e-9));
        figures
            .p50_ms
            .push(latency.value_at_quantile(0.5) as f64 / 1000.0);
        figures
            .p99_ms
            .push(latency.value_at_quantile(0.99) as f64 / 1000.0);
    }
    figures.session_ticks_per_s = total as f64 / start.elapsed().as_secs_f64().max(1e-9);
    figures.mean_batch = stats.map(|s| s.summary().mean_batch());
    figures.triton = counts_between(triton_before, watch.read());
    Ok(figures)
}

/// `bench --players N --verify-batching`: N worlds (seeds `seed`, `seed +
/// 1`, …) run at once with their calls batched, each frame compared with
/// the same world run alone, unbatched. Prints the largest difference and
/// whether the frames are bit for bit the same; fails when a difference
/// passes `--tolerance`.
fn verify(args: &BenchArgs, counts: &[usize]) -> Outcome {
    let Some(mut policy) = args.batch.policy() else {
        return crate::commands::usage(
            "--verify-batching compares batched worlds: it needs --batch-across-players on or auto",
        );
    };
    // Lock-step: every world's call waits for the others', so as many calls
    // as can be are fused (a check, not a timing).
    policy.wait = policy.wait.max(Duration::from_secs(1));
    let base_seed = args.seed.unwrap_or(0);
    let mut worst = 0.0f64;
    let mut exact = true;
    for &n in counts {
        let seeds: Vec<u64> = (0..n as u64).map(|i| base_seed.wrapping_add(i)).collect();
        let mut alone = Vec::with_capacity(n);
        for &seed in &seeds {
            match frames_of(args, &[seed], None) {
                Ok(mut f) => alone.push(f.remove(0)),
                Err(e) => {
                    eprintln!("error: {e}");
                    return Outcome::RuntimeFailure;
                }
            }
        }
        let together = match frames_of(args, &seeds, Some(policy.clone())) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: {e}");
                return Outcome::RuntimeFailure;
            }
        };
        let fused = policy.stats.summary().mean_batch();
        let mut diff = 0.0f64;
        let mut same = true;
        let mut frames = 0;
        // Worlds that all look alike would not show rows put back in the wrong order.
        let alike = alone.windows(2).all(|w| {
            w[0].len() == w[1].len() && w[0].iter().zip(&w[1]).all(|(a, b)| compare(a, b).1)
        });
        for (player, (a, b)) in alone.iter().zip(&together).enumerate() {
            if a.len() != b.len() {
                eprintln!(
                    "error: player {player} (seed {}) made {} frames batched and {} alone",
                    seeds[player],
                    b.len(),
                    a.len()
                );
                return Outcome::RuntimeFailure;
            }
            for (x, y) in a.iter().zip(b) {
                frames += 1;
                let (d, bits) = compare(x, y);
                diff = diff.max(d);
                same &= bits;
            }
        }
        println!(
            "{n} players, {frames} frames, mean batch {fused:.2}: {}",
            if same {
                "batched frames equal each world run alone, bit for bit".to_string()
            } else {
                format!("largest difference from each world run alone {diff:.3e}")
            }
        );
        if n > 1 && alike {
            println!(
                "  (every world's frames are alike whatever its seed: the order of the rows was not checked)"
            );
        }
        worst = worst.max(diff);
        exact &= same;
    }
    if !exact && worst > args.tolerance {
        eprintln!(
            "error: batching changed frames by {worst:.3e}, more than --tolerance {:e}",
            args.tolerance
        );
        return Outcome::RuntimeFailure;
    }
    Outcome::Ok
}

/// The displayed frames of one world per seed, run at once on one model
/// cache (batched by `policy`, or not).
fn frames_of(
    args: &BenchArgs,
    seeds: &[u64],
    policy: Option<BatchPolicy>,
) -> Result<Vec<Vec<Tensor>>, String> {
    let (sessions, _) = open_sessions(args, seeds.len(), Some(seeds), policy.clone())?;
    // Opened (their build-time calls made one by one, not counted): now
    // lock-step, counted afresh.
    if let Some(p) = &policy {
        p.min_calls
            .store(seeds.len(), std::sync::atomic::Ordering::Relaxed);
        p.stats.reset();
    }
    let threads: Vec<_> = sessions
        .into_iter()
        .map(|mut session| {
            std::thread::spawn(move || {
                let mut frames = Vec::new();
                let end = session.run(&mut |event| {
                    if let WorldEvent::Frame { image, .. } = event {
                        frames.push(image.clone());
                    }
                });
                end.map(|_| frames).map_err(|e| e.to_string())
            })
        })
        .collect();
    let frames = threads
        .into_iter()
        .map(|t| {
            t.join()
                .map_err(|_| "a session's thread panicked".to_string())?
        })
        .collect();
    if let Some(p) = &policy {
        p.min_calls.store(1, std::sync::atomic::Ordering::Relaxed);
    }
    frames
}

/// Largest absolute difference of two frames, and whether they are the same bits.
fn compare(a: &Tensor, b: &Tensor) -> (f64, bool) {
    let (Ok(a), Ok(b)) = (a.to_host(), b.to_host()) else {
        return (f64::INFINITY, false);
    };
    if a.shape() != b.shape() || a.dtype() != b.dtype() {
        return (f64::INFINITY, false);
    }
    let (Ok(x), Ok(y)) = (a.host(), b.host()) else {
        return (f64::INFINITY, false);
    };
    if x.to_le_bytes() == y.to_le_bytes() {
        return (0.0, true);
    }
    let values = |t: &Tensor| -> Vec<f64> {
        match t.dtype() {
            DType::F32 => t
                .host_f32()
                .map(|v| v.iter().map(|&e| f64::from(e)).collect()),
            DType::U8 => t
                .host_u8()
                .map(|v| v.iter().map(|&e| f64::from(e)).collect()),
            DType::F64 => t.host_f64().map(<[f64]>::to_vec),
            _ => Ok(Vec::new()),
        }
        .unwrap_or_default()
    };
    let (va, vb) = (values(&a), values(&b));
    if va.len() != a.len() {
        return (f64::INFINITY, false);
    }
    let d = va
        .iter()
        .zip(&vb)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f64::max);
    (d, false)
}

/// `n` sessions of the graph on one model cache (batched by `policy`, or
/// not), unpaced, each to run `--frames`; `seeds` gives each its seed.
/// With them, their Triton backend (which servers they loaded models from).
fn open_sessions(
    args: &BenchArgs,
    n: usize,
    seeds: Option<&[u64]>,
    policy: Option<BatchPolicy>,
) -> Result<(Vec<Session<crate::backends::Backends>>, TritonBackend), String> {
    let backends = match policy {
        Some(p) => crate::backends::Backends::new()
            .batched(p, args.batch.batch_across_players == Switch::On),
        None => crate::backends::Backends::new(),
    };
    let triton = backends.triton().clone();
    let models = Arc::new(wgraph_engine::model::ModelCache::new(backends));
    let mut sessions = Vec::with_capacity(n);
    for i in 0..n {
        let options = SessionOptions {
            set: args.set.clone(),
            seed: seeds.and_then(|s| s.get(i).copied()).or(args.seed),
            output: crate::outputs::front_end(None, None),
            provider: args.provider.map(Into::into),
            backend_kind: args.backend.map(Into::into),
            notices: Arc::new(|_: &str| {}),
            ..crate::load::session_options(&args.file)
        };
        let frames = args.frames;
        let workers = args.workers.unwrap_or_else(|| RunConfig::default().workers);
        let pipeline = args.pipeline;
        let session = Session::open(options, Arc::clone(&models), move |graph| {
            Ok(WorldConfig {
                workers,
                pipeline_depth: pipeline,
                max_ticks: Some(frames.div_ceil(graph.settings.frames_per_tick as u64)),
                fps: None,
                ..WorldConfig::default()
            })
        })
        .map_err(|e| match e {
            wgraph_session::OpenError::Graph(text) => text,
            wgraph_session::OpenError::Usage(u) | wgraph_session::OpenError::Runtime(u) => u,
        })?;
        sessions.push(session);
    }
    Ok((sessions, triton))
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 1 hour, 3 significant digits: fixed size.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant histogram bounds are valid")
}

/// N `wgraph run` processes at once; each reports its own tick loop.
fn processes(
    args: &BenchArgs,
    n: usize,
    scratch: &Path,
    watch: &mut TritonWatch,
) -> Result<Figures, String> {
    // This very binary, even if a rebuild replaced its file meanwhile
    // (Linux: /proc/self/exe, resolved in the child, is its parent's image).
    let proc_exe = std::path::Path::new("/proc/self/exe");
    let exe = if proc_exe.exists() {
        proc_exe.to_path_buf()
    } else {
        std::env::current_exe().map_err(|e| format!("cannot find this wgraph: {e}"))?
    };
    let triton_before = watch.read();
    let mut children = Vec::with_capacity(n);
    for i in 0..n {
        let metrics: PathBuf = scratch.join(format!("run-{n}-{i}.json"));
        let _ = std::fs::remove_file(&metrics);
        let mut cmd = std::process::Command::new(&exe);
        // `--watch` without `--out` writes nothing, as the in-process worlds;
        // `--fps 0` runs as fast as it can.
        cmd.arg("run")
            .arg(&args.file)
            .args(["--watch", "--fps", "0", "--frames"])
            .arg(args.frames.to_string())
            .arg("--metrics")
            .arg(&metrics)
            .arg("--pipeline")
            .arg(args.pipeline.to_string());
        if let Some(w) = args.workers {
            cmd.arg("--workers").arg(w.to_string());
        }
        if let Some(server) = watch.reader.server_override() {
            cmd.arg("--triton-server").arg(server);
        }
        for s in &args.set {
            cmd.arg("--set").arg(s);
        }
        for (flag, value) in [
            (
                "--provider",
                args.provider.and_then(|p| p.to_possible_value()),
            ),
            (
                "--backend",
                args.backend.and_then(|b| b.to_possible_value()),
            ),
        ] {
            if let Some(v) = value {
                cmd.arg(flag).arg(v.get_name());
            }
        }
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        children.push((child, metrics));
    }
    let mut figures = Figures::default();
    let mut total = 0.0;
    let mut slowest = 0.0f64;
    let mut failure = None;
    for (child, metrics) in children {
        let output = child
            .wait_with_output()
            .map_err(|e| format!("a `wgraph run` process: {e}"))?;
        if !output.status.success() {
            failure.get_or_insert_with(|| {
                format!(
                    "a `wgraph run` process failed ({}): {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                )
            });
            continue;
        }
        let doc: serde_json::Value = std::fs::read_to_string(&metrics)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .ok_or_else(|| {
                format!(
                    "a `wgraph run` process wrote no metrics to {}",
                    metrics.display()
                )
            })?;
        let m = &doc["metrics"];
        let ticks = m["ticks"].as_f64().unwrap_or(0.0);
        let wall = m["wall_ms"].as_f64().unwrap_or(0.0) / 1000.0;
        total += ticks;
        slowest = slowest.max(wall);
        figures
            .fps
            .push(m["ticks_per_second"].as_f64().unwrap_or(0.0));
        figures
            .p50_ms
            .push(m["tick"]["p50_ms"].as_f64().unwrap_or(0.0));
        figures
            .p99_ms
            .push(m["tick"]["p99_ms"].as_f64().unwrap_or(0.0));
    }
    if let Some(f) = failure {
        return Err(f);
    }
    figures.session_ticks_per_s = if slowest > 0.0 { total / slowest } else { 0.0 };
    figures.triton = counts_between(triton_before, watch.read());
    Ok(figures)
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

    /// A run's share of the server's counters, summed over rounds, with
    /// requests per execution; no Triton, no figures.
    #[test]
    fn triton_counters_between_readings_sum_over_rounds() {
        let c = |requests, rows, executions| ModelCounts {
            requests,
            rows,
            executions,
        };
        let before = BTreeMap::from([
            ("dit".to_string(), c(5, 5, 5)),
            ("vae".to_string(), c(1, 1, 1)),
        ]);
        let after = BTreeMap::from([
            ("dit".to_string(), c(21, 29, 9)),
            ("vae".to_string(), c(1, 1, 1)),
        ]);
        let d = counts_between(Some(before.clone()), Some(after)).unwrap();
        assert_eq!(d.len(), 1, "a model without requests is left out");
        assert_eq!(d["dit"], c(16, 24, 4));
        assert!(counts_between(None, Some(before)).is_none());
        let rounds = [
            Figures {
                triton: Some(d.clone()),
                ..Figures::default()
            },
            Figures {
                triton: Some(d),
                ..Figures::default()
            },
        ];
        let s = triton_summary(&rounds);
        assert_eq!(s["dit"]["requests"], 32);
        assert_eq!(s["dit"]["requests_per_execution"], 4.0);
        assert_eq!(s["dit"]["rows_per_execution"], 6.0);
        assert!(triton_summary(&[Figures::default()]).is_null());
    }
}
