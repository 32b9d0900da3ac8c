//! The batching flags `serve` and `bench` share ([`BatchArgs`]), and
//! `wgraph bench FILE --players 1,2,4,…` ([`bench_players`]): flags →
//! [`wgraph_lab::players`] → the tables (the measurement is the lab's).

use crate::Outcome;
use crate::bench::BenchArgs;
use crate::commands::{lab_failure, usage};
use clap::ValueEnum;
use std::sync::Arc;
use wgraph_engine::batch::BatchPolicy;
use wgraph_engine::model::Backend;
use wgraph_lab::players::{BatchAcross, BatchSettings, PlayerBackends, PlayersOptions};
use wgraph_triton::TritonBackend;

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
    /// These flags as the lab takes them.
    pub fn settings(&self) -> BatchSettings {
        BatchSettings {
            across: match self.batch_across_players {
                Switch::On => BatchAcross::On,
                Switch::Auto => BatchAcross::Auto,
                Switch::Off => BatchAcross::Off,
            },
            wait_us: self.batch_wait_us,
            max_rows: self.batch_max_rows,
        }
    }

    /// The policy these flags ask for; `None` when batching is off.
    pub fn policy(&self) -> Option<BatchPolicy> {
        self.settings().policy()
    }
}

/// The in-process players' models: this build's backends, batched or not.
struct CliBackends;

impl PlayerBackends for CliBackends {
    fn make(&self, batching: Option<(BatchPolicy, bool)>) -> (Arc<dyn Backend>, TritonBackend) {
        let backends = match batching {
            Some((policy, remote)) => crate::load::backends().batched(policy, remote),
            None => crate::load::backends(),
        };
        let triton = backends.triton().clone();
        (Arc::new(backends), triton)
    }

    fn triton(&self) -> TritonBackend {
        crate::load::backends().triton().clone()
    }
}

/// `wgraph bench FILE --players 1,2,4,8` (and `--verify-batching`).
pub fn bench_players(args: &BenchArgs, counts: &str) -> Outcome {
    let counts = match wgraph_lab::players::parse_counts(counts) {
        Ok(c) => c,
        Err(e) => return usage(&e),
    };
    // This very binary, even if a rebuild replaced its file meanwhile
    // (Linux: /proc/self/exe, resolved in the child, is its parent's image).
    let proc_exe = std::path::Path::new("/proc/self/exe");
    let exe = if proc_exe.exists() {
        proc_exe.to_path_buf()
    } else {
        match std::env::current_exe() {
            Ok(exe) => exe,
            Err(e) => {
                eprintln!("error: cannot find this wgraph: {e}");
                return Outcome::RuntimeFailure;
            }
        }
    };
    let mut run_flags = Vec::new();
    for (flag, value) in [
        (
            "--provider",
            args.model.provider.and_then(|p| p.to_possible_value()),
        ),
        (
            "--backend",
            args.model.backend.and_then(|b| b.to_possible_value()),
        ),
    ] {
        if let Some(v) = value {
            run_flags.extend([flag.to_string(), v.get_name().to_string()]);
        }
    }
    let options = PlayersOptions {
        file: args.file.clone(),
        counts,
        frames: args.frames,
        rounds: args.rounds,
        set: args.params.set.clone(),
        seed: args.seed,
        workers: args.workers,
        pipeline: args.pipeline,
        provider: args.model.provider(),
        backend_kind: args.model.backend_kind(),
        batch: args.batch.settings(),
        output: crate::outputs::front_end(None, None),
        missing_file_help: Some(crate::load::missing_graph_help),
        exe,
        run_flags,
        progress: Some(|line| eprintln!("{line}")),
    };
    if args.verify_batching {
        let mut print = |row: &wgraph_lab::players::VerifyRow| print!("{}", row.text());
        return match wgraph_lab::players::verify_batching(
            &options,
            &CliBackends,
            args.tolerance,
            &mut print,
        ) {
            Ok(_) => Outcome::Ok,
            Err(e) => lab_failure(e),
        };
    }
    let report = match wgraph_lab::players::bench_players(&options, &CliBackends) {
        Ok(r) => r,
        Err(e) => return lab_failure(e),
    };
    print!("{}", report.text());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).unwrap_or_default() + "\n";
        if let Err(e) = wgraph_engine::output::write_file(path, text.as_bytes()) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return Outcome::RuntimeFailure;
        }
    }
    Outcome::Ok
}
