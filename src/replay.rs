//! `wgraph replay FILE`: a recording (`run --record`) reproduced exactly —
//! the work is `wgraph_session::replay`'s; here the flags, Ctrl-C, the
//! summary line and the exit code.

use crate::Outcome;
use std::path::PathBuf;
use std::sync::Arc;
use wgraph_engine::node::DisplayTarget;
use wgraph_session::replay::{Replay, ReplayError, ReplayOptions};

/// `wgraph replay`'s flags.
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

/// `wgraph replay FILE`
///
/// Exits 2 when the recording cannot be replayed as given (not a
/// recording, a file it needs changed or missing), 1 when its graph does
/// not build, 3 when the replay fails while running.
pub fn replay(args: &ReplayArgs) -> Outcome {
    let options = ReplayOptions {
        recording: args.file.clone(),
        out: args.out.clone(),
        notices: Arc::new(|line: &str| eprintln!("{line}")),
        missing_file_help: Some(crate::load::missing_graph_help),
    };
    let interrupt = crate::interrupt::Interrupt::install();
    let mut replay = match Replay::open(&options, crate::load::backends()) {
        Ok(r) => r,
        Err(e) => return failed(args, e),
    };
    interrupt.attach(replay.world.handle());
    let replayed = match replay.run(&mut |message| eprint!("{message}")) {
        Ok(r) => r,
        Err(e) => return failed(args, e),
    };
    let target = match &replay.output.display {
        DisplayTarget::PngDir(p) | DisplayTarget::Gif(p) | DisplayTarget::Y4m(p) => {
            p.display().to_string()
        }
        DisplayTarget::Discard => "nowhere".into(),
    };
    if replayed.stopped {
        eprintln!(
            "replay stopped by {} after {} of {} ticks; outputs in {target}",
            interrupt.signal_name().unwrap_or("Ctrl-C"),
            replayed.ticks,
            replay.end
        );
    } else if !args.quiet {
        eprintln!(
            "replayed {} ticks, {} reload{}; outputs in {target}",
            replayed.ticks,
            replayed.reloads,
            if replayed.reloads == 1 { "" } else { "s" }
        );
    }
    Outcome::Ok
}

/// Prints `error: FILE: e` (a graph's errors first) and returns its exit code.
fn failed(args: &ReplayArgs, e: ReplayError) -> Outcome {
    let outcome = match &e {
        ReplayError::Recording(_) => Outcome::Usage,
        ReplayError::Graph(text) => {
            eprint!("{text}");
            Outcome::GraphErrors
        }
        ReplayError::Runtime(_) => Outcome::RuntimeFailure,
    };
    let line = format!("{}: {e}", args.file.display());
    eprintln!(
        "error: {}",
        wgraph_grammar::diagnostic::escape_controls(&line)
    );
    outcome
}
