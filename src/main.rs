//! `wgraph`: the command-line front end.
//!
//! A thin layer over the library crates: `wgraph-grammar` parses and loads
//! graph files, `wgraph-engine` checks and runs them, `wgraph-nodes` provides
//! the node kinds. This binary parses flags (clap), renders diagnostics, draws
//! the progress bar and maps outcomes to exit codes:
//! 0 success, 1 graph errors, 2 usage errors, 3 runtime failure.

mod backends;
mod blocks;
mod commands;
mod dataset;
mod eval;
mod interrupt;
mod kernels;
mod load;
mod loadtest;
mod new;
mod outputs;
mod play;
mod players;
mod replay;
mod run;
mod serve;
mod swap;
mod triton_repo;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "wgraph",
    version,
    about = "Run interactive video world models written as .world graphs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The Triton server (gRPC HOST:PORT) of every `backend = triton` model,
    /// replacing the graph's `server` and `world { triton_server }`.
    #[arg(long, global = true, value_name = "HOST:PORT")]
    triton_server: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check graph files: exit 0 when all are valid, 1 with diagnostics on stderr.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Load every model on this execution provider.
        #[arg(long, value_enum)]
        provider: Option<ProviderArg>,
        /// Load every model with this backend (`wonnx` needs a build with the `wonnx` feature).
        #[arg(long, value_enum)]
        backend: Option<BackendArg>,
    },
    /// Print a graph as dot, json or mermaid.
    Graph {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
        /// Override a parameter: NODE.PARAM=VALUE (repeatable).
        #[arg(long = "set", value_name = "NODE.PARAM=VALUE")]
        set: Vec<String>,
    },
    /// Run a graph: render frames, write outputs.
    Run(RunArgs),
    /// List node kinds, or show one kind's parameters.
    Kinds { kind: Option<String> },
    /// Start a new world: write NAME.world, a commented graph that runs
    /// without models (never overwrites a file).
    New {
        /// The file to write (`.world` is added when missing).
        name: PathBuf,
    },
    /// Engine against a raw loop of the same model calls, alternating.
    Bench(BenchArgs),
    /// Write episodes of the ground-truth world: frames, depth, actions, poses.
    Dataset(dataset::DatasetArgs),
    /// Write a Triton model repository for a graph's models (one folder per model, named as in the graph).
    TritonRepo(triton_repo::TritonRepoArgs),
    /// Play worlds in a browser: frames over a WebSocket, keys and prompts back.
    Serve(ServeArgs),
    /// Play a world in the terminal: truecolor half blocks, keys, a HUD; q quits.
    Play(PlayArgs),
    /// Reproduce a run written with `run --record`, frame for frame.
    Replay(ReplayArgs),
    /// Compare a graph with the ground-truth world: PSNR, SSIM, action accuracy, drift.
    Eval(EvalArgs),
    /// Score the blocks of a `block_denoiser` (Yume's MSE importance) and
    /// propose the ones its block cache should skip.
    Blocks(blocks::BlocksArgs),
    /// Run the step-math cases (sampler updates, guidance, re-noising,
    /// pooling) on the host or the CUDA kernels: largest difference from
    /// the reference and time per op (exit 3 when the device is unusable).
    Kernels(kernels::KernelsArgs),
    /// Scripted players on a running `wgraph serve`, each in a world of
    /// their own: frames, fps, frames lost, key-to-frame p50/p99 per player
    /// (exit 3 when any player was refused or got no frame).
    Loadtest(loadtest::LoadtestArgs),
    /// Report the ONNX Runtime library, execution providers, GPUs and the
    /// CUDA step-math kernels (exit 3 when no ONNX Runtime is usable).
    Doctor {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    file: PathBuf,
    /// The baseline: `raw` replays the graph's model calls in a plain loop;
    /// `python` runs Yan-Sim's researcher-style Python loop (yan-sim only).
    #[arg(long, value_enum, default_value_t = Baseline::Raw)]
    baseline: Baseline,
    /// With `--baseline python`: the Python loop's DDIM steps (default: the
    /// graph's `sampler.steps`, 4 when it has none), so the engine's fastest
    /// setting can be timed against Yan-Sim as published (`--baseline-steps 4`)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1000))]
    baseline_steps: Option<u64>,
    /// Ticks per round.
    #[arg(long, default_value_t = 32)]
    frames: u64,
    /// Timed rounds of each (engine, raw, engine, raw, ...), after one warm-up round.
    #[arg(long, default_value_t = 5)]
    rounds: u32,
    /// Write the figures as JSON.
    #[arg(long, value_name = "FILE.json")]
    json: Option<PathBuf>,
    /// Override a parameter: NODE.PARAM=VALUE (repeatable).
    #[arg(long = "set", value_name = "NODE.PARAM=VALUE")]
    set: Vec<String>,
    /// Worker threads of the engine (0, the default: the calling thread).
    #[arg(long)]
    workers: Option<usize>,
    /// Ticks in flight when using workers.
    #[arg(long, default_value_t = 2)]
    pipeline: usize,
    /// Load every model on this execution provider.
    #[arg(long, value_enum)]
    provider: Option<ProviderArg>,
    /// Load every model with this backend (`wonnx` needs a build with the `wonnx` feature).
    #[arg(long, value_enum)]
    backend: Option<BackendArg>,
    /// Quality columns: evaluate against the ground-truth world with this held-out seed.
    #[arg(long, requires = "actions")]
    world_seed: Option<u64>,
    /// The action file for the quality columns.
    #[arg(long)]
    actions: Option<PathBuf>,
    /// Compare settings: NODE.PARAM=V1,V2,... or NODE=KIND1,KIND2,...
    /// (repeatable; every combination runs, same seed and actions).
    #[arg(long, value_name = "SPEC")]
    swap: Vec<String>,
    /// With --swap: a plot of quality (PSNR against the reference) over ms
    /// per tick, one labelled point per combination (.png or .svg).
    #[arg(long, value_name = "OUT.png", requires = "swap")]
    plot: Option<PathBuf>,
    /// With --swap: the high-quality run the others are compared with
    /// (NODE.PARAM=VALUE or NODE=KIND, repeatable or several in one
    /// quoted flag: `--reference "sampler=dpmpp_2m sampler.steps=50"`;
    /// default sampler.steps=32, or sampler=ddim sampler.steps=32 for a
    /// sampler without steps). The table names it.
    #[arg(long, value_name = "NODE.PARAM=VALUE")]
    reference: Vec<String>,
    /// With --swap: the last line recommends the best-quality setting that
    /// runs at least this many ticks per second.
    #[arg(
        long,
        value_name = "FPS",
        requires = "swap",
        conflicts_with = "target_psnr"
    )]
    target_fps: Option<f64>,
    /// With --swap: the last line recommends the fastest setting whose PSNR
    /// (against the ground truth with --world-seed, else the reference)
    /// is at least this (dB).
    #[arg(long, value_name = "DB", requires = "swap")]
    target_psnr: Option<f64>,
    /// Many players: run 1, 2, 4, … sessions of the graph at once — in this
    /// process with their model calls batched, unbatched, and as separate
    /// `wgraph run` processes — and compare session-ticks/s, fps and tick
    /// latency per player (e.g. `--players 1,2,4,8`).
    #[arg(long, value_name = "N,N,...", conflicts_with_all = ["swap", "baseline_steps"])]
    players: Option<String>,
    /// With --players: run each count's worlds (seeds --seed, --seed + 1,
    /// …) batched and each alone, compare every frame, and fail when
    /// batching changed one by more than --tolerance.
    #[arg(long, requires = "players")]
    verify_batching: bool,
    /// With --verify-batching: the largest difference allowed (0: bit for bit).
    #[arg(long, default_value_t = 0.0, requires = "verify_batching")]
    tolerance: f64,
    /// With --players: the first world's seed (default: the graph's).
    #[arg(long)]
    seed: Option<u64>,
    #[command(flatten)]
    batch: players::BatchArgs,
}

/// Whose clock players' worlds tick on (`serve --tick-clock`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TickClock {
    /// One clock for every player's world of a graph.
    Shared,
    /// Each world its own, from when it opened.
    Own,
}

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// One or more graph files: one world each.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Port to listen on (0: any free port; the address is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to bind; anything but 127.0.0.1 opens the worlds to the network.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Reload each world when its files change.
    #[arg(long)]
    watch: bool,
    /// Ticks per second (default: each graph's fps).
    #[arg(long)]
    fps: Option<f64>,
    /// Directory for the graphs' file sinks (the displayed frames go to the
    /// browser); without it they write nothing.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Per-tick file sinks (numbered PNG frames, `png`, `npy_dump`) keep only
    /// their newest N files, removing older ones as they go.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    keep_last: Option<u64>,
    /// Override a parameter: NODE.PARAM=VALUE (repeatable).
    #[arg(long = "set", value_name = "NODE.PARAM=VALUE")]
    set: Vec<String>,
    /// Seed for every random source.
    #[arg(long)]
    seed: Option<u64>,
    /// Load every model on this execution provider.
    #[arg(long, value_enum)]
    provider: Option<ProviderArg>,
    /// Load every model with this backend (`wonnx` needs a build with the `wonnx` feature).
    #[arg(long, value_enum)]
    backend: Option<BackendArg>,
    /// Worker threads per world.
    #[arg(long)]
    workers: Option<usize>,
    /// At the end, write each world's ticks, fps, late ticks and key-to-frame
    /// latency (p50, p99) as JSON.
    #[arg(long, value_name = "FILE.json")]
    metrics: Option<PathBuf>,
    /// When ticks run late: drop (start the next at once, never queue) or
    /// degrade (apply --degrade settings in order while behind); default: the graph's `on_late`.
    #[arg(long, value_name = "drop|degrade")]
    on_late: Option<String>,
    /// A cheaper setting for --on-late degrade, NODE.PARAM=VALUE (repeatable, in order).
    #[arg(long, value_name = "NODE.PARAM=VALUE")]
    degrade: Vec<String>,
    /// Also answer requests for this host name (default: loopback names and
    /// the bound address only, against DNS rebinding; repeatable).
    #[arg(long, value_name = "NAME")]
    allow_host: Vec<String>,
    /// Also let pages from this origin open a world's socket, e.g.
    /// https://studio.example (default: the server's own pages only; repeatable).
    #[arg(long, value_name = "ORIGIN")]
    allow_origin: Vec<String>,
    /// Let sockets without a world's token watch it (never steer).
    #[arg(long)]
    public_view: bool,
    /// The token every world's URL carries (at least 16 letters, digits, `-`
    /// or `_`; default: a random one per world, printed at start).
    #[arg(long, value_name = "TOKEN", conflicts_with = "no_token")]
    token: Option<String>,
    /// Let any socket steer, without a token (loopback only, unless --public).
    #[arg(long)]
    no_token: bool,
    /// Allow --no-token on a non-loopback --host: anyone who reaches the
    /// address steers the worlds.
    #[arg(long)]
    public: bool,
    /// Open connections at most, in all (the rest are closed at once).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_connections: u32,
    /// Open connections at most from one IP address.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_per_address: u32,
    /// Seconds a client has to send a request's headers.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=3600))]
    header_timeout: u32,
    /// One world per graph for every visitor (one controls, the others
    /// watch) instead of a world per player.
    #[arg(long)]
    shared: bool,
    /// Worlds running at once, all graphs' players together; one more
    /// player is told the server is full.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_worlds: u32,
    /// Seconds a player's world waits for them to come back (a reload of
    /// the page, a dropped connection) before it ends.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(0..=86_400))]
    resume_within: u32,
    /// Worlds one IP address may have open at once (per graph).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_worlds_per_address: u32,
    /// Keep a player's world here when they have been gone --resume-within
    /// seconds (its snapshot), and bring it back as it was when they
    /// return, instead of ending it.
    #[arg(long, value_name = "DIR")]
    session_store: Option<PathBuf>,
    /// With --session-store: seconds a world with no player runs before it
    /// is kept in the store and its memory freed.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(0..=604_800))]
    idle: u32,
    /// With --session-store: keep every player's world there every N ticks
    /// too, so a server that dies loses at most N ticks of it (another
    /// replica sharing the store brings it back).
    #[arg(long, value_name = "N", requires = "session_store",
          value_parser = clap::value_parser!(u64).range(1..))]
    snapshot_every: Option<u64>,
    /// Players' worlds of a graph start their ticks on one clock (`shared`:
    /// their model calls arrive together and are fused) or each on its own
    /// from when it opened (`own`).
    #[arg(long, value_enum, default_value_t = TickClock::Shared)]
    tick_clock: TickClock,
    /// With --session-store: seconds a kept world waits for its player
    /// before it is deleted (default 7 days; at least twice a running
    /// world's claim on its file, so only worlds no server runs expire).
    #[arg(long, value_name = "SECONDS", default_value_t = 604_800,
          value_parser = clap::value_parser!(u64).range(60..=315_360_000))]
    store_keep: u64,
    /// Memory players' worlds may use (e.g. 8G, 512M; default: 80% of the
    /// machine's): `serve` prints each graph's memory plan and turns away a
    /// player whose world would not fit.
    #[arg(long, value_name = "SIZE")]
    memory: Option<String>,
    #[command(flatten)]
    batch: players::BatchArgs,
}

#[derive(clap::Args, Debug)]
pub struct PlayArgs {
    file: PathBuf,
    /// How frames are drawn: truecolor half blocks, the kitty graphics
    /// protocol (kitty, WezTerm, Ghostty), or auto (kitty where detected).
    #[arg(long, default_value = "auto", value_parser = ["auto", "kitty", "blocks"])]
    graphics: String,
    /// When ticks run late: drop (start the next at once, never queue) or
    /// degrade (apply --degrade settings in order while behind); default: the graph's `on_late`.
    #[arg(long, value_name = "drop|degrade")]
    on_late: Option<String>,
    /// A cheaper setting for --on-late degrade, NODE.PARAM=VALUE (repeatable, in order).
    #[arg(long, value_name = "NODE.PARAM=VALUE")]
    degrade: Vec<String>,
    /// Reload the world when its files change.
    #[arg(long)]
    watch: bool,
    /// Ticks per second (default: the graph's fps).
    #[arg(long)]
    fps: Option<f64>,
    /// Directory for the graph's file sinks (the displayed frames go to the
    /// terminal); without it they write nothing.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Per-tick file sinks (numbered PNG frames, `png`, `npy_dump`) keep only
    /// their newest N files, removing older ones as they go.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    keep_last: Option<u64>,
    /// Override a parameter: NODE.PARAM=VALUE (repeatable).
    #[arg(long = "set", value_name = "NODE.PARAM=VALUE")]
    set: Vec<String>,
    /// Seed for every random source.
    #[arg(long)]
    seed: Option<u64>,
    /// Load every model on this execution provider.
    #[arg(long, value_enum)]
    provider: Option<ProviderArg>,
    /// Load every model with this backend (`wonnx` needs a build with the `wonnx` feature).
    #[arg(long, value_enum)]
    backend: Option<BackendArg>,
}

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// A recording written by `wgraph run --record FILE`.
    file: PathBuf,
    /// Output directory, a .gif file, or a .y4m file (`-`: stdout) for the displayed frames.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// No summary.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    file: PathBuf,
    /// Seed of the ground-truth world (held out: 1000 and above).
    #[arg(long)]
    world_seed: u64,
    /// Look of the ground-truth world: dungeon, neon or forest.
    #[arg(long, default_value = "dungeon")]
    theme: String,
    /// The action file fed to both the graph and the ground truth.
    #[arg(long)]
    actions: PathBuf,
    /// Ticks to compare.
    #[arg(long, default_value_t = 32)]
    frames: u64,
    /// Where to write the figures.
    #[arg(long, value_name = "FILE.json")]
    json: PathBuf,
    /// A picture: ground truth (top row) over generated frames (bottom
    /// row), up to 12 ticks, labelled.
    #[arg(long, value_name = "OUT.png")]
    strip: Option<PathBuf>,
    /// A plot of PSNR and edges kept over ticks, with the drift tick (.png or .svg).
    #[arg(long, value_name = "OUT.png")]
    plot: Option<PathBuf>,
    /// Inverse-dynamics model (default: models-onnx/trained/idm.onnx when present).
    #[arg(long)]
    idm: Option<PathBuf>,
    /// Drift: the first tick whose PSNR falls below this many dB (or see --drift-fraction).
    #[arg(long, default_value_t = 15.0)]
    drift_db: f64,
    /// Drift: the first tick whose frame keeps less than this share of the
    /// ground-truth edges tick 1 kept (or see --drift-db).
    #[arg(long, default_value_t = 0.5, value_name = "0..1")]
    drift_fraction: f64,
    /// Evaluate on a training seed anyway.
    #[arg(long)]
    allow_training_seed: bool,
    /// Override a parameter: NODE.PARAM=VALUE (repeatable).
    #[arg(long = "set", value_name = "NODE.PARAM=VALUE")]
    set: Vec<String>,
    /// Score instruction following: `auto` (a seeded script of 2-4 events
    /// for this world seed) or a file of `TICK: caption` lines. The events
    /// go to the ground truth and to the graph (every `prompt_schedule`
    /// node's schedule, every `world` node's `events`).
    #[arg(long, value_name = "auto|FILE")]
    instructions: Option<String>,
    /// Instruction following: ticks after an event's tick within which its
    /// effect must be seen.
    #[arg(long, default_value_t = 4, value_name = "K")]
    event_window: u64,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Baseline {
    /// The graph's own model calls, replayed in a plain Rust loop.
    Raw,
    /// Yan-Sim written in Python (onnxruntime + numpy), benches/yan_sim.py.
    Python,
}

/// Execution providers on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ProviderArg {
    Cpu,
    Cuda,
    Tensorrt,
}

/// Model backends on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum BackendArg {
    /// ONNX Runtime (CPU, CUDA, TensorRT).
    Ort,
    /// wonnx: WebGPU through wgpu (Vulkan, Metal, DX12); static shapes only.
    Wonnx,
    /// A Triton Inference Server over gRPC (`--triton-server HOST:PORT`).
    Triton,
}

impl From<BackendArg> for wgraph_engine::model::BackendKind {
    fn from(b: BackendArg) -> Self {
        match b {
            BackendArg::Ort => Self::Ort,
            BackendArg::Wonnx => Self::Wonnx,
            BackendArg::Triton => Self::Triton,
        }
    }
}

impl From<ProviderArg> for wgraph_engine::model::Provider {
    fn from(p: ProviderArg) -> Self {
        match p {
            ProviderArg::Cpu => Self::Cpu,
            ProviderArg::Cuda => Self::Cuda,
            ProviderArg::Tensorrt => Self::TensorRt,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    file: PathBuf,
    /// Number of frames to produce (ticks = frames / frames_per_tick, rounded up);
    /// default 16, or until stopped with --watch.
    #[arg(long)]
    frames: Option<u64>,
    /// Keep running and reload the graph when it, an included file, a model
    /// or a data file changes; stop with Ctrl-C.
    #[arg(long)]
    watch: bool,
    /// Scripted live edits: lines `TICK: NODE.PARAM = VALUE` or `TICK: keys = W+A`.
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,
    /// Start ticks on this clock (ticks per second); default: the graph's
    /// fps with --watch, as fast as possible otherwise; 0: as fast as possible.
    #[arg(long)]
    fps: Option<f64>,
    /// Write the world's state (every node's memory, the tick, feedback
    /// values) to FILE at the end of the run, or before tick --save-at.
    #[arg(long, value_name = "FILE")]
    save_state: Option<PathBuf>,
    /// With --save-state: save before this tick instead of at the end
    /// (a tick the run reaches: at most --frames' last tick + 1).
    #[arg(long, value_name = "TICK", requires = "save_state",
          value_parser = clap::value_parser!(u64).range(..=wgraph_engine::snapshot::MAX_TICK))]
    save_at: Option<u64>,
    /// Continue from a state written by --save-state (same graph, seed,
    /// models and parameter values); --frames counts from the world's first tick.
    #[arg(long, value_name = "FILE")]
    load_state: Option<PathBuf>,
    /// With --load-state: load a state taken with other parameter values
    /// (--set, an edited graph) and continue with this run's values.
    #[arg(long, requires = "load_state")]
    allow_param_changes: bool,
    /// Write what the run received (live keys, events, reloads with their
    /// graph texts) to FILE; `wgraph replay FILE` reproduces its frames.
    #[arg(long, value_name = "FILE", conflicts_with = "load_state")]
    record: Option<PathBuf>,
    /// When ticks run late: drop (start the next at once, never queue) or
    /// degrade (apply --degrade settings in order while behind); default: the graph's `on_late`.
    #[arg(long, value_name = "drop|degrade")]
    on_late: Option<String>,
    /// A cheaper setting for --on-late degrade, NODE.PARAM=VALUE (repeatable, in order).
    #[arg(long, value_name = "NODE.PARAM=VALUE")]
    degrade: Vec<String>,
    /// Action file fed to the graph's `actions` nodes (one line per tick).
    #[arg(long)]
    actions: Option<PathBuf>,
    /// Output directory, a .gif file, or a .y4m file (`-`: stdout) for the
    /// displayed frames; default `out`, except with --watch: a live run
    /// without --out writes nothing.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Per-tick file sinks (numbered PNG frames, `png`, `npy_dump`) keep only
    /// their newest N files, removing older ones as they go.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    keep_last: Option<u64>,
    /// Load every model on this execution provider.
    #[arg(long, value_enum)]
    provider: Option<ProviderArg>,
    /// Load every model with this backend (`wonnx` needs a build with the `wonnx` feature).
    #[arg(long, value_enum)]
    backend: Option<BackendArg>,
    /// Override a parameter: NODE.PARAM=VALUE (repeatable).
    #[arg(long = "set", value_name = "NODE.PARAM=VALUE")]
    set: Vec<String>,
    /// Seed for every random source (replaces the world's seed).
    #[arg(long)]
    seed: Option<u64>,
    /// Worker threads (0, the default: run every node on the calling thread).
    #[arg(long)]
    workers: Option<usize>,
    /// Ticks in flight at once when using workers (1: no pipelining).
    #[arg(long, default_value_t = 2)]
    pipeline: usize,
    /// Write per-node timings and ms per tick as JSON.
    #[arg(long, value_name = "FILE.json")]
    metrics: Option<PathBuf>,
    /// Print the per-node timing table.
    #[arg(long)]
    timings: bool,
    /// No progress bar or summary.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum GraphFormat {
    Dot,
    Json,
    Mermaid,
}

fn main() -> ExitCode {
    // A file-size limit (`ulimit -f`) makes writes past it fail with EFBIG
    // when SIGXFSZ is ignored, so a sink reports it like a full disk (exit 3,
    // naming the file) instead of the process dumping core mid-frame.
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to SIG_IGN, before any thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    // Model digests kept across runs: an unchanged model is not hashed at start.
    if let Some(base) = wgraph_ort::runtime::cache_base() {
        wgraph_engine::model::remember_digests_in(base.join("model-digests.json"));
    }
    // Commands that print reports (`kinds | head`, `check … | grep -m1`) end
    // quietly when the reader goes away, as `cat` does, instead of
    // panicking in `println!`. Commands that stream frames keep SIGPIPE
    // ignored (Rust's default) and report the write error themselves.
    #[cfg(unix)]
    if matches!(
        cli.command,
        Command::Check { .. }
            | Command::Graph { .. }
            | Command::Kinds { .. }
            | Command::Doctor { .. }
            | Command::Bench(_)
            | Command::Eval(_)
            | Command::Blocks(_)
            | Command::Kernels(_)
            | Command::Loadtest(_)
            | Command::Dataset(_)
            | Command::TritonRepo(_)
    ) {
        // SAFETY: restoring a signal's default disposition, before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    backends::set_triton_server(cli.triton_server.clone());
    let outcome = match cli.command {
        Command::Check {
            files,
            provider,
            backend,
        } => commands::check(&files, provider, backend),
        Command::Graph { file, format, set } => commands::graph(&file, format, &set),
        Command::Run(args) => run::run(&args),
        Command::Kinds { kind } => commands::kinds(kind.as_deref()),
        Command::New { name } => new::new_world(&name),
        Command::Bench(args) => commands::bench(&args),
        Command::Doctor { json } => commands::doctor(json),
        Command::Eval(args) => eval::eval(&args),
        Command::Blocks(args) => blocks::blocks(&args),
        Command::Kernels(args) => kernels::kernels(&args),
        Command::Loadtest(args) => loadtest::loadtest(&args),
        Command::Replay(args) => replay::replay(&args),
        Command::Serve(args) => serve::serve(&args),
        Command::Play(args) => play::play(&args),
        Command::Dataset(args) => dataset::run(&args),
        Command::TritonRepo(args) => triton_repo::triton_repo(&args),
    };
    ExitCode::from(outcome as u8)
}

/// Exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok = 0,
    GraphErrors = 1,
    Usage = 2,
    RuntimeFailure = 3,
}
