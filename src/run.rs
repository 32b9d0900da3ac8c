//! `wgraph run FILE`: a world opened through `wgraph-session`, run to
//! `--frames`, a source's end, or Ctrl-C; with `--watch` it reloads as its
//! files change. Around the session: `--events`, `--load-state` /
//! `--save-state` / `--save-at`, `--record`, the progress bar, `--metrics`.

use crate::Outcome;
use crate::commands::usage;
use crate::flags::{KeepLast, LateFlags, ModelFlags, SeedFlag, SetFlags};
use crate::load::PathOverride;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wgraph_engine::schedule::RunConfig;
use wgraph_engine::world::{ScriptedEvent, World, WorldConfig, WorldEvent};
use wgraph_session::SessionOptions;

/// `wgraph run`'s flags.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The graph file (`.world`).
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
    #[command(flatten)]
    late: LateFlags,
    /// Action file fed to the graph's `actions` nodes (one line per tick).
    #[arg(long)]
    actions: Option<PathBuf>,
    /// Output directory, a .gif file, or a .y4m file (`-`: stdout) for the
    /// displayed frames; default `out`, except with --watch: a live run
    /// without --out writes nothing.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    sinks: KeepLast,
    #[command(flatten)]
    model: ModelFlags,
    #[command(flatten)]
    params: SetFlags,
    #[command(flatten)]
    seed: SeedFlag,
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

/// `wgraph run FILE ...`: a [`World`] that runs to `--frames`, a source's
/// end, or Ctrl-C; with `--watch` it reloads its graph as files change.
pub fn run(args: &RunArgs) -> Outcome {
    let output = match crate::outputs::run(args.out.as_deref(), args.watch, args.sinks.keep_last) {
        Ok(o) => o,
        Err(e) => return usage(&format!("--out {e}")),
    };
    if args.pipeline == 0 {
        return usage("--pipeline must be at least 1");
    }
    if args.frames == Some(0) {
        return usage("--frames must be at least 1");
    }
    if let Some(fps) = args.fps
        && fps != 0.0
        && let Err(e) = wgraph_engine::settings::check_fps(fps)
    {
        return usage(&format!("--fps: {e} (or 0: as fast as it can)"));
    }
    // Before anything is loaded: a signal during a long model load exits.
    let interrupt = crate::interrupt::Interrupt::install();
    let script = match &args.events {
        None => Vec::new(),
        Some(path) => match wgraph_engine::input::read_to_string(path, wgraph_engine::input::TEXT)
            .map_err(|e| format!("--events {}: {e}", path.display()))
            .and_then(|text| wgraph_session::parse_events(path, &text))
        {
            Ok(events) => events,
            Err(e) => return usage(&e),
        },
    };
    let options = SessionOptions {
        set: args.params.set.clone(),
        seed: args.seed.seed,
        paths: args
            .actions
            .as_deref()
            .map(PathOverride::actions)
            .into_iter()
            .collect(),
        output: output.clone(),
        provider: args.model.provider(),
        backend_kind: args.model.backend_kind(),
        watch: args.watch,
        rebuilds: script
            .iter()
            .any(|(_, e)| matches!(e, ScriptedEvent::Set(_))),
        record: args.record.is_some(),
        ..crate::load::session_options(&args.file)
    };
    let frames = args.frames.or((!args.watch).then_some(16));
    let workers = args.workers.unwrap_or_else(|| RunConfig::default().workers);
    let mut per_tick = 1;
    let mut max_ticks = None;
    let session = crate::load::open_session(options, crate::load::model_cache(), |graph| {
        wgraph_session::checks::check_events(graph, &script, args.events.as_deref())?;
        crate::outputs::note_skipped(&args.file.display().to_string(), graph, &output, true);
        per_tick = graph.settings.frames_per_tick as u64;
        max_ticks = frames.map(|f| f.div_ceil(per_tick));
        if let Some(ticks) = max_ticks {
            for warning in wgraph_session::checks::short_action_files(graph, ticks) {
                eprintln!("{warning}");
            }
        }
        let fps = match args.fps {
            Some(f) if f > 0.0 => Some(f),
            Some(_) => None,
            None => args.watch.then_some(graph.settings.fps),
        };
        let (on_late, degrade) =
            wgraph_session::late_policy(graph, args.late.on_late.as_deref(), &args.late.degrade)?;
        Ok(WorldConfig {
            workers,
            pipeline_depth: args.pipeline,
            max_ticks,
            fps,
            on_late,
            degrade,
            // `--fps` wins over the graph's; without it a reload re-paces.
            follow_graph_fps: args.fps.is_none(),
            ..WorldConfig::default()
        })
    });
    let mut session = match session {
        Ok(s) => s,
        Err(outcome) => return outcome,
    };
    let files = session.files.clone();
    let provenance = session.provenance.clone();
    let world = &mut session.world;
    interrupt.attach(world.handle());
    world.script(script);
    if let Some(path) = &args.load_state
        && let Err(e) = load_state(world, path, args.allow_param_changes)
    {
        // A state that does not fit this run is a mistake in the command.
        return usage(&format!("--load-state {}: {e}", path.display()));
    }
    let first_tick = world.ticks_done();
    let span = wgraph_session::checks::RunSpan {
        first_tick,
        max_ticks,
        frames: args.frames,
        per_tick,
    };
    if let Err(e) = span.check(args.save_at) {
        return usage(&e);
    }
    let save_plan = wgraph_session::state_file::SavePlan::new(args.save_at, max_ticks);
    if let Some(tick) = save_plan.mid_run {
        world.script([(tick, ScriptedEvent::Snapshot)]);
    }
    let mut snapshot_taken = false;
    let mut save_failed = false;
    let mut recorder = match &args.record {
        None => None,
        Some(path) => {
            match wgraph_session::replay::Recorder::create(
                path,
                wgraph_session::replay::header(&session.source, provenance.as_deref()),
            ) {
                Ok(r) => Some(r),
                Err(e) => {
                    eprintln!("error: {}", wgraph_grammar::diagnostic::escape_controls(&e));
                    return Outcome::RuntimeFailure;
                }
            }
        }
    };
    let handle = world.handle();
    if args.watch && !args.quiet {
        eprintln!(
            "watching {} file{} for changes; Ctrl-C stops",
            files.len(),
            if files.len() == 1 { "" } else { "s" }
        );
    }
    let bar = progress_bar(args.quiet, max_ticks);
    let mut rss = wgraph_session::rss::RssSeries::new(100);
    let result = session.run(&mut |event| match event {
        WorldEvent::Tick { tick, input, .. } => {
            bar.inc(1);
            rss.tick(*tick);
            if let Some(r) = recorder.as_mut() {
                r.tick(*tick, input);
                // A recording that cannot be written stops the run: what it
                // holds so far replays, nothing after would.
                if let Some(e) = r.take_error() {
                    save_failed = true;
                    bar.suspend(|| {
                        eprintln!(
                            "error: {e}; stopping the run (the recording replays up to tick {tick})"
                        )
                    });
                    handle.stop();
                }
            }
        }
        WorldEvent::Reloaded(info) => {
            let mut line = info.line();
            if let Some(fps) = args.fps
                && info
                    .swap
                    .diff
                    .settings
                    .iter()
                    .any(|c| c.starts_with("fps "))
            {
                line.push_str(&format!(
                    "; --fps {fps} wins over the graph's fps: the world keeps ticking at {}",
                    if fps > 0.0 {
                        format!("{fps} fps")
                    } else {
                        "full speed".to_string()
                    }
                ));
            }
            bar.suspend(|| eprintln!("{line}"));
            if let Some(r) = recorder.as_mut() {
                r.reload(info.tick, &info.cause, info.provenance.as_deref());
                if let Some(e) = r.take_error() {
                    save_failed = true;
                    bar.suspend(|| eprintln!("error: {e}; stopping the run"));
                    handle.stop();
                }
            }
        }
        WorldEvent::Degraded {
            tick,
            level,
            change,
            why,
        } => {
            bar.suspend(|| eprintln!("degrade level {level} at tick {tick}: {change} ({why})"));
        }
        WorldEvent::Snapshot { tick, snapshot } => {
            snapshot_taken = true;
            if let Some(path) = &args.save_state {
                let written = snapshot
                    .as_ref()
                    .map_err(|e| e.to_string())
                    .and_then(|s| wgraph_session::state_file::write_json(path, s));
                match written {
                    Ok(()) => bar.suspend(|| {
                        eprintln!("state before tick {tick} saved to {}", path.display())
                    }),
                    Err(e) => {
                        save_failed = true;
                        bar.suspend(|| eprintln!("error: --save-state {}: {e}", path.display()));
                    }
                }
            }
        }
        WorldEvent::ReloadFailed { cause, message } => {
            bar.suspend(|| {
                eprint!("{message}");
                if !message.ends_with('\n') {
                    eprintln!();
                }
                eprintln!("reload failed ({cause}); the running graph is unchanged");
            });
        }
        _ => {}
    });
    bar.finish_and_clear();
    let world = &mut session.world;
    let stopped_by = match &result {
        Ok(end) => wgraph_session::metrics::stopped_by(end, interrupt.signal_name()),
        Err(_) => None,
    };
    if result.is_ok()
        && let Some(path) = &args.save_state
    {
        use wgraph_session::state_file::{EndSave, save_state};
        match save_plan.at_end(snapshot_taken, world.ticks_done()) {
            EndSave::Missed { ticks, save_at } => {
                save_failed = true;
                eprintln!(
                    "error: --save-state {}: the run stopped at tick {ticks}, before tick {save_at} (--save-at): no state saved",
                    path.display(),
                );
            }
            EndSave::SaveNow => {
                if let Err(e) = save_state(world, path) {
                    save_failed = true;
                    eprintln!("error: --save-state {}: {e}", path.display());
                }
            }
            EndSave::SavedMidRun => {}
        }
    }
    if let Some(r) = recorder.take()
        && let Err(e) = r.end(world.ticks_done())
    {
        save_failed = true;
        eprintln!("error: {e}");
    }
    let reloads = world.reloads();
    let late = world.late_ticks();
    let graph = Arc::clone(world.graph());
    let (report, outcome) = match world.finish() {
        Ok(report) => (report, Outcome::Ok),
        Err(e) => {
            eprintln!(
                "error: {}",
                wgraph_grammar::diagnostic::escape_controls(&e.to_string())
            );
            let planned = max_ticks.map_or_else(String::new, |t| format!(" of {t}"));
            eprintln!(
                "{}{planned} ticks completed before the failure; their outputs are kept in {}",
                e.report.ticks,
                output.dir.display()
            );
            (*e.report, Outcome::RuntimeFailure)
        }
    };
    let summary = report.metrics.report(&graph);
    if let Some(path) = &args.metrics {
        let written = wgraph_session::metrics::RunMetrics {
            graph: &args.file,
            workers,
            pipeline_depth: args.pipeline,
            reloads,
            late_ticks: late,
            rss: &rss,
            summary: &summary,
        }
        .write(path);
        if let Err(e) = written {
            eprintln!("error: cannot write metrics to {}: {e}", path.display());
            return Outcome::RuntimeFailure;
        }
    }
    if !args.quiet && outcome == Outcome::Ok {
        let line = wgraph_session::metrics::RunSummary {
            summary: &summary,
            stopped_by: stopped_by.as_deref().unwrap_or_default(),
            live: (args.watch || reloads > 0).then_some((reloads, late)),
            display: &output.display,
        }
        .line();
        eprintln!("{line}");
    }
    if args.timings {
        print!("{}", summary.table());
    }
    if save_failed && outcome == Outcome::Ok {
        return Outcome::RuntimeFailure;
    }
    outcome
}

/// Loads the snapshot at `path` into `world` (before its first tick),
/// naming on stderr the parameter values that differ (with
/// `allow_param_changes`).
fn load_state(world: &mut World, path: &Path, allow_param_changes: bool) -> Result<(), String> {
    let changes = wgraph_session::state_file::load_state(world, path, allow_param_changes)?;
    if !changes.is_empty() {
        eprintln!(
            "note: --load-state {}: continuing with other parameter values than the state was saved with: {}",
            path.display(),
            changes.join(", ")
        );
    }
    Ok(())
}

/// A progress bar (a spinner when the run has no end).
fn progress_bar(quiet: bool, ticks: Option<u64>) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let (bar, template) = match ticks {
        Some(t) => (
            ProgressBar::new(t),
            "{spinner} tick {pos}/{len} [{bar:30}] {per_sec} eta {eta}",
        ),
        None => (ProgressBar::no_length(), "{spinner} tick {pos} {per_sec}"),
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}
