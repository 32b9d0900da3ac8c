//! `wgraph`: the command-line front end.
//!
//! A thin layer over the library crates: `wgraph-grammar` parses and loads
//! graph files, `wgraph-engine` checks and runs them, `wgraph-nodes` provides
//! the node kinds. This binary parses flags (clap), renders diagnostics, draws
//! the progress bar and maps outcomes to exit codes:
//! 0 success, 1 graph errors, 2 usage errors, 3 runtime failure.
//!
//! Each command's flags (`*Args`) live in the command's own file; the flag
//! groups several commands share are in `flags.rs`.

mod bench;
mod blocks;
mod commands;
mod dataset;
mod eval;
mod flags;
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

use clap::{Parser, Subcommand};
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
    Check(commands::CheckArgs),
    /// Print a graph as dot, json or mermaid.
    Graph(commands::GraphArgs),
    /// Run a graph: render frames, write outputs.
    Run(run::RunArgs),
    /// List node kinds, or show one kind's parameters.
    Kinds { kind: Option<String> },
    /// Start a new world: write NAME.world, a commented graph that runs
    /// without models (never overwrites a file).
    New {
        /// The file to write (`.world` is added when missing).
        name: PathBuf,
    },
    /// Engine against a raw loop of the same model calls, alternating.
    Bench(bench::BenchArgs),
    /// Write episodes of the ground-truth world: frames, depth, actions, poses.
    Dataset(dataset::DatasetArgs),
    /// Write a Triton model repository for a graph's models (one folder per model, named as in the graph).
    TritonRepo(triton_repo::TritonRepoArgs),
    /// Play worlds in a browser: frames over a WebSocket, keys and prompts back.
    Serve(serve::ServeArgs),
    /// Play a world in the terminal: truecolor half blocks, keys, a HUD; q quits.
    Play(play::PlayArgs),
    /// Reproduce a run written with `run --record`, frame for frame.
    Replay(replay::ReplayArgs),
    /// Compare a graph with the ground-truth world: PSNR, SSIM, action accuracy, drift.
    Eval(eval::EvalArgs),
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
        Command::Check(_)
            | Command::Graph(_)
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
    wgraph_backends::set_triton_server(cli.triton_server.clone());
    let outcome = match cli.command {
        Command::Check(args) => commands::check(&args),
        Command::Graph(args) => commands::graph(&args),
        Command::Run(args) => run::run(&args),
        Command::Kinds { kind } => commands::kinds(kind.as_deref()),
        Command::New { name } => new::new_world(&name),
        Command::Bench(args) => bench::bench(&args),
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
