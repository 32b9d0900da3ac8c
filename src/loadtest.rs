//! `wgraph loadtest URL --players N --seconds S`: flags →
//! [`wgraph_lab::loadtest`] (N scripted players on a running `wgraph
//! serve`) → a table per player, a summary and `--json`. Exit 0 when every
//! player got frames; 3 when any player was refused (`full`), could not
//! connect, or got no frame; 2 for usage errors.

use crate::Outcome;
use crate::commands::lab_failure;
use std::path::PathBuf;
use wgraph_lab::loadtest::LoadtestOptions;

/// `wgraph loadtest`'s arguments.
#[derive(clap::Args, Debug)]
pub struct LoadtestArgs {
    /// The address `wgraph serve` printed: `http://HOST:PORT/?token=T` or
    /// `http://HOST:PORT/w/N?token=T`.
    url: String,
    /// Players, each on a socket (a world) of their own (1 to 1000).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1000))]
    players: u32,
    /// How long the players play, in seconds (1 to 3600); then they leave.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=3600))]
    seconds: u32,
    /// Milliseconds between key changes (W held, then nothing, in turn;
    /// 10 to 60000). Key→frame latency is the time from sending a change to
    /// the first frame with a tick greater than the last tick seen when it
    /// was sent: the wait for the next tick's frame, not a check that the
    /// key took effect in it.
    #[arg(long, value_name = "MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    keys_every: u64,
    /// Write the per-player figures and the summary as JSON.
    #[arg(long, value_name = "FILE.json")]
    json: Option<PathBuf>,
    /// Allow a host that is not loopback (a load test sends its traffic
    /// only to this machine unless told otherwise).
    #[arg(long)]
    allow_remote: bool,
}

/// `wgraph loadtest`.
pub fn loadtest(args: &LoadtestArgs) -> Outcome {
    let options = LoadtestOptions {
        url: args.url.clone(),
        players: args.players,
        seconds: args.seconds,
        keys_every_ms: args.keys_every,
        allow_remote: args.allow_remote,
        progress: Some(|line| eprintln!("{line}")),
    };
    let report = match wgraph_lab::loadtest::loadtest(&options) {
        Ok(r) => r,
        Err(e) => return lab_failure(e),
    };
    print!("{}", report.text());
    for line in report.failures() {
        eprintln!("{line}");
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("error: cannot write {}: {e}", path.display());
            return Outcome::RuntimeFailure;
        }
    }
    if report.all_ok() {
        Outcome::Ok
    } else {
        Outcome::RuntimeFailure
    }
}
