//! The subcommands.

use crate::backends::Backends;
use crate::bench::RecordingBackend;
use crate::load::{LoadConfig, Loaded, PathOverride, load};
use crate::{BackendArg, BenchArgs, GraphFormat, Outcome, ProviderArg, RunArgs};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wgraph_engine::describe;
use wgraph_engine::node::{DisplayTarget, OutputConfig};
use wgraph_engine::params::{ParamSpec, ParamType};
use wgraph_engine::schedule::{RunConfig, Runner};
use wgraph_engine::world::{ScriptedEvent, World, WorldConfig, WorldEnd, WorldEvent};
use wgraph_session::SessionOptions;

fn usage(message: &str) -> Outcome {
    eprintln!(
        "error: {}",
        wgraph_grammar::diagnostic::escape_controls(message)
    );
    Outcome::Usage
}

/// `wgraph check FILE...`
pub fn check(
    files: &[PathBuf],
    provider: Option<ProviderArg>,
    backend_kind: Option<BackendArg>,
) -> Outcome {
    let mut outcome = Outcome::Ok;
    // A model on a backend this build lacks is checked with ONNX Runtime and
    // noted once (see `CheckBackends`); `--backend wonnx` asked for it
    // explicitly and stays an error.
    let fallback = crate::backends::CheckBackends::new();
    let plain = Backends::new();
    let backend: &dyn wgraph_engine::model::Backend = match backend_kind {
        Some(_) => &plain,
        None => &fallback,
    };
    for file in files {
        let config = LoadConfig {
            set: &[],
            seed: None,
            paths: Vec::new(),
            output: OutputConfig::default(),
            provider: provider.map(Into::into),
            backend_kind: backend_kind.map(Into::into),
            backend,
        };
        let loaded = load(file, &config);
        let missing = fallback.take_missing();
        match loaded {
            Loaded::Graph(graph) => {
                for feature in &missing {
                    eprintln!(
                        "note: {}: {}",
                        file.display(),
                        crate::backends::feature_note(feature)
                    );
                }
                println!(
                    "{}: ok ({} nodes, {} edges{})",
                    file.display(),
                    graph.nodes.len(),
                    graph.edges.len(),
                    missing
                        .iter()
                        .map(|f| format!("; needs the `{f}` feature to run"))
                        .collect::<String>()
                )
            }
            Loaded::Errors => outcome = Outcome::GraphErrors,
            Loaded::Usage(u) => return usage(&u),
        }
    }
    outcome
}

/// The graph `wgraph new NAME` writes (`{name}` is replaced): a commented
/// world that runs without models or files, so `check`, `run` and `play`
/// work on it at once.
const NEW_WORLD: &str = r#"// {name}: a new wgraph world. Check it, run it (16 PNG frames; `--out
// {name}.gif` for a GIF), play it in the terminal or in the browser:
//
//   wgraph check {file}
//   wgraph run {file} --frames 16 --out out/{name}
//   wgraph play {file}
//   wgraph serve {file} --watch
//
// Playing, W A S D and the arrows walk and q quits; with --watch, edit this
// file while the world runs and it reloads.
//
// A world is a graph: `node NAME: KIND { params }` declares a node, `a.out -> b.in`
// wires an output to an input, and the graph runs once per tick. `wgraph kinds`
// lists the node kinds, `wgraph kinds lerp` shows one kind's parameters, and
// README.md ("The .world language") has the whole language.

world {
    name = "{name}"
    seed = 1                 // every random source derives from it (--seed replaces it)
    fps = 8                  // ticks per second when played live
    resolution = 64x64       // the frame size; shapes below may say H and W
}

// The player's keys: live from `play`/`serve`, or one line per tick from
// `--actions FILE` (e.g. examples/actions/walk.txt in wgraph's repository).
node keys: actions { }

// A seeded first-person maze the keys walk through (no model needed):
// `image` is the view, `depth` its distance per pixel.
node maze: world { theme = dungeon }    // dungeon | neon | forest

// A motion trail: each frame is half the new view, half the last frame.
node trail: lerp { t = 0.5 }            // out = a + t·(b − a)

// What the player sees: PNGs in --out DIR, a .gif, the browser or the terminal.
node show: display { }

keys.actions -> maze.actions
maze.image -> trail.b
// `feedback` carries the previous tick's value; `init` is tick 0's.
feedback trail.out -> trail.a init zeros(1x3xHxW)
trail.out -> show.image

// Next: a model. `model m = "my.onnx"` declares one, `node net: model { model = m }`
// runs it, and `wgraph check` says which inputs to wire (README: "Bring your own model").
"#;

/// `wgraph new NAME`: writes NAME.world (`.world` added when missing), a
/// commented starting graph that runs without models; refuses to replace
/// an existing file.
pub fn new_world(name: &Path) -> Outcome {
    let file = if name.extension().is_some_and(|e| e == "world") {
        name.to_path_buf()
    } else {
        let mut os = name.as_os_str().to_owned();
        os.push(".world");
        PathBuf::from(os)
    };
    let Some(stem) = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty() && !s.starts_with('.'))
        // The path is written into the file's comments.
        .filter(|_| !file.display().to_string().contains(char::is_control))
    else {
        return usage(&format!(
            "`{}` is not a file name: try `wgraph new my-world`",
            name.display()
        ));
    };
    // The name as a string value of the graph, and as a word in comments.
    let world_name: String = stem
        .chars()
        .map(|c| {
            if c == '"' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let text = NEW_WORLD
        .replace("{file}", &file.display().to_string())
        .replace("{name}", &world_name);
    let written = wgraph_engine::output::create_parent(&file).and_then(|()| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&file)?;
        std::io::Write::write_all(&mut f, text.as_bytes())
    });
    match written {
        Ok(()) => {
            println!("wrote {}", file.display());
            println!("  check it: wgraph check {}", file.display());
            println!(
                "  run it:   wgraph run {} --frames 16 --out out/{world_name}",
                file.display()
            );
            println!("  play it:  wgraph play {}", file.display());
            Outcome::Ok
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => usage(&format!(
            "{} already exists; wgraph new never replaces a file (choose another name)",
            file.display()
        )),
        Err(e) => {
            eprintln!(
                "error: cannot write {}: {}",
                file.display(),
                wgraph_grammar::diagnostic::escape_controls(&e.to_string())
            );
            Outcome::RuntimeFailure
        }
    }
}

/// `wgraph graph FILE --format F`
pub fn graph(file: &Path, format: GraphFormat, set: &[String]) -> Outcome {
    let backend = Backends::new();
    let config = LoadConfig {
        set,
        seed: None,
        paths: Vec::new(),
        output: OutputConfig::default(),
        provider: None,
        backend_kind: None,
        backend: &backend,
    };
    let graph = match load(file, &config) {
        Loaded::Graph(g) => g,
        Loaded::Errors => return Outcome::GraphErrors,
        Loaded::Usage(u) => return usage(&u),
    };
    let text = match format {
        GraphFormat::Dot => describe::to_dot(&graph),
        GraphFormat::Mermaid => describe::to_mermaid(&graph),
        GraphFormat::Json => match serde_json::to_string_pretty(&describe::to_json(&graph)) {
            Ok(s) => s + "\n",
            Err(e) => {
                eprintln!("error: cannot serialise graph: {e}");
                return Outcome::RuntimeFailure;
            }
        },
    };
    print!("{text}");
    Outcome::Ok
}

/// `wgraph run FILE ...`: a [`World`] that runs to `--frames`, a source's
/// end, or Ctrl-C; with `--watch` it reloads its graph as files change.
pub fn run(args: &RunArgs) -> Outcome {
    let output = match crate::outputs::run(args.out.as_deref(), args.watch, args.keep_last) {
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
        set: args.set.clone(),
        seed: args.seed,
        paths: args
            .actions
            .as_deref()
            .map(PathOverride::actions)
            .into_iter()
            .collect(),
        output: output.clone(),
        provider: args.provider.map(Into::into),
        backend_kind: args.backend.map(Into::into),
        watch: args.watch,
        rebuilds: script
            .iter()
            .any(|(_, e)| matches!(e, ScriptedEvent::Set(_))),
        record: args.record.is_some(),
        ..crate::load::session_options(&args.file)
    };
    let frames = args.frames.or((!args.watch).then_some(16));
    let mut per_tick = 1;
    let mut max_ticks = None;
    let session = crate::load::open_session(options, crate::load::model_cache(), |graph| {
        check_events(graph, &script, args.events.as_deref())?;
        crate::outputs::note_skipped(&args.file.display().to_string(), graph, &output, true);
        per_tick = graph.settings.frames_per_tick as u64;
        max_ticks = frames.map(|f| f.div_ceil(per_tick));
        if let Some(ticks) = max_ticks {
            warn_short_action_files(graph, ticks);
        }
        let fps = match args.fps {
            Some(f) if f > 0.0 => Some(f),
            Some(_) => None,
            None => args.watch.then_some(graph.settings.fps),
        };
        let (on_late, degrade) =
            wgraph_session::late_policy(graph, args.on_late.as_deref(), &args.degrade)?;
        Ok(WorldConfig {
            workers: args.workers.unwrap_or_else(|| RunConfig::default().workers),
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
    if let Some(ticks) = max_ticks
        && ticks <= first_tick
    {
        let frames = match args.frames {
            Some(f) => format!("--frames {f}"),
            None => "--frames 16 (the default)".to_string(),
        };
        return usage(&format!(
            "the loaded state continues at tick {first_tick}, and {frames} ends the run at tick {ticks} \
             (--frames counts from the world's first tick): nothing would run; \
             pass --frames {} or more",
            first_tick.saturating_mul(per_tick).saturating_add(1)
        ));
    }
    // `--save-at` names a tick the run reaches; at the run's last tick it is
    // the state at the end.
    if let Some(at) = args.save_at {
        if at < first_tick {
            return usage(&format!(
                "--save-at {at}: the loaded state starts at tick {first_tick}, so tick {at} has already passed"
            ));
        }
        if let Some(ticks) = max_ticks
            && at > ticks
        {
            return usage(&format!(
                "--save-at {at} is past the end of the run: it runs ticks {first_tick} to {}, \
                 so the last state it can save is before tick {ticks}, its end \
                 (--frames counts from the world's first tick)",
                ticks - 1
            ));
        }
    }
    let save_mid_run = args.save_at.filter(|&at| Some(at) != max_ticks);
    if let Some(tick) = save_mid_run {
        world.script([(tick, ScriptedEvent::Snapshot)]);
    }
    let mut snapshot_taken = false;
    let mut save_failed = false;
    let mut recorder = match &args.record {
        None => None,
        Some(path) => {
            match crate::replay::Recorder::create(
                path,
                crate::replay::header(&session.source, provenance.as_deref()),
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
    let mut rss = crate::rss::RssSeries::new(100);
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
                    .and_then(|s| write_json(path, s));
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
        Ok(WorldEnd::SourceStopped(node)) => Some(format!(" (stopped early by `{node}`)")),
        Ok(WorldEnd::Stopped) => Some(match interrupt.signal_name() {
            Some(signal) => format!(" (stopped by {signal})"),
            None => " (stopped)".to_string(),
        }),
        _ => None,
    };
    if result.is_ok()
        && let Some(path) = &args.save_state
    {
        let ticks = world.ticks_done();
        // Was the state `--save-at` asked for taken? Mid-run it is a
        // scripted snapshot; at the run's last tick, the state at the end.
        let missed = match args.save_at {
            Some(_) if save_mid_run.is_some() => !snapshot_taken,
            Some(at) => ticks != at,
            None => false,
        };
        if missed {
            save_failed = true;
            eprintln!(
                "error: --save-state {}: the run stopped at tick {ticks}, before tick {} (--save-at): no state saved",
                path.display(),
                args.save_at.unwrap_or_default()
            );
        } else if save_mid_run.is_none() {
            let written = world
                .snapshot()
                .map_err(|e| e.to_string())
                .and_then(|s| write_json(path, &s));
            if let Err(e) = written {
                save_failed = true;
                eprintln!("error: --save-state {}: {e}", path.display());
            }
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
        let json = serde_json::json!({
            "graph": args.file.display().to_string(),
            "workers": args.workers.unwrap_or_else(|| RunConfig::default().workers),
            "pipeline_depth": args.pipeline,
            "ms_per_tick": if summary.ticks > 0 { summary.wall_ms / summary.ticks as f64 } else { 0.0 },
            "reloads": reloads,
            "late_ticks": late,
            "rss_kib": rss.to_json(),
            "metrics": summary,
        });
        let written = serde_json::to_string_pretty(&json)
            .map_err(|e| e.to_string())
            .and_then(|s| {
                wgraph_engine::output::write_file(path, (s + "\n").as_bytes())
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = written {
            eprintln!("error: cannot write metrics to {}: {e}", path.display());
            return Outcome::RuntimeFailure;
        }
    }
    if !args.quiet && outcome == Outcome::Ok {
        let target = match &output.display {
            DisplayTarget::PngDir(p) | DisplayTarget::Gif(p) | DisplayTarget::Y4m(p) => {
                p.display().to_string()
            }
            DisplayTarget::Discard => "nowhere (discarded)".to_string(),
        };
        let live = if args.watch || reloads > 0 {
            format!(
                ", {reloads} reload{}, {late} late tick{}",
                if reloads == 1 { "" } else { "s" },
                if late == 1 { "" } else { "s" }
            )
        } else {
            String::new()
        };
        eprintln!(
            "{} ticks in {:.1} ms, {:.2} ms per tick ({:.1} ticks/s){}{live}; outputs in {target}",
            summary.ticks,
            summary.wall_ms,
            if summary.ticks > 0 {
                summary.wall_ms / summary.ticks as f64
            } else {
                0.0
            },
            summary.ticks_per_second,
            stopped_by.unwrap_or_default(),
        );
    }
    if args.timings {
        print!("{}", summary.table());
    }
    if save_failed && outcome == Outcome::Ok {
        return Outcome::RuntimeFailure;
    }
    outcome
}

/// Loads the snapshot at `path` into `world` (before its first tick). A
/// snapshot taken with other parameter values is refused unless
/// `allow_param_changes`, and then the changes are named.
fn load_state(world: &mut World, path: &Path, allow_param_changes: bool) -> Result<(), String> {
    let text = wgraph_engine::input::read_to_string(path, wgraph_engine::input::DATA)
        .map_err(|e| e.to_string())?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("not a JSON snapshot: {e}"))?;
    let changes = wgraph_engine::snapshot::param_changes(&json, world.graph()).unwrap_or_default();
    let options = wgraph_engine::snapshot::RestoreOptions {
        allow_param_changes,
    };
    match world.restore_with(&json, options) {
        Err(e) if !changes.is_empty() && !allow_param_changes => Err(format!(
            "{e} (pass --allow-param-changes to load it and continue with this run's values)"
        )),
        Err(e) => Err(e.to_string()),
        Ok(()) => {
            if !changes.is_empty() {
                eprintln!(
                    "note: --load-state {}: continuing with other parameter values than the state was saved with: {}",
                    path.display(),
                    changes.join(", ")
                );
            }
            Ok(())
        }
    }
}

/// Says once, before the run, when an `actions` node's file (`on_end =
/// idle`) runs out before the run does: from then on it holds no keys.
fn warn_short_action_files(graph: &wgraph_engine::graph::Graph, ticks: u64) {
    for n in graph.nodes.iter().filter(|n| n.kind == "actions") {
        let (Ok(path), Ok(on_end)) = (n.params.path("path"), n.params.choice("on_end")) else {
            continue;
        };
        if on_end != "idle" {
            continue;
        }
        let lines = wgraph_engine::input::read_to_string(&path, wgraph_engine::input::TEXT)
            .ok()
            .and_then(|t| wgraph_nodes::action_file::parse_action_file(&t).ok())
            .map(|a| a.len() as u64);
        if let Some(lines) = lines.filter(|&l| l < ticks) {
            eprintln!(
                "warning: action file `{}` has {lines} tick{} of keys but the run has {ticks} ticks: \
                 `{}` holds no keys from tick {lines} on (set `on_end = loop` or `stop`, or run fewer frames)",
                path.display(),
                if lines == 1 { "" } else { "s" },
                n.name
            );
        }
    }
}

/// Writes a JSON document, whole or not at all (temp file + rename).
fn write_json(path: &Path, json: &serde_json::Value) -> Result<(), String> {
    let text = serde_json::to_string(json).map_err(|e| e.to_string())?;
    wgraph_engine::output::write_file(path, (text + "\n").as_bytes()).map_err(|e| e.to_string())
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

/// Every scripted parameter change names a node of the graph and a
/// parameter of its kind (a typo is a usage error before anything runs).
fn check_events(
    graph: &wgraph_engine::graph::Graph,
    script: &[(u64, ScriptedEvent)],
    path: Option<&Path>,
) -> Result<(), String> {
    let registry = wgraph_nodes::registry();
    let file = path.map_or_else(String::new, |p| p.display().to_string());
    for (tick, e) in script {
        let ScriptedEvent::Set(set) = e else { continue };
        let Some(id) = graph.find(&set.node) else {
            return Err(format!(
                "--events {file}: tick {tick}: the graph has no node `{}`",
                set.node
            ));
        };
        let kind = graph.node(id).kind;
        let known = registry
            .get(kind)
            .is_some_and(|k| k.params().iter().any(|p| p.name == set.param));
        if !known {
            return Err(format!(
                "--events {file}: tick {tick}: `{}` ({kind}) has no parameter `{}` (see `wgraph kinds {kind}`)",
                set.node, set.param
            ));
        }
    }
    Ok(())
}

/// `wgraph kinds [KIND]`
pub fn kinds(kind: Option<&str>) -> Outcome {
    let registry = wgraph_nodes::registry();
    match kind {
        None => {
            // One column for the summaries, as wide as the longest name.
            let width = registry
                .kinds()
                .map(|k| k.name().chars().count())
                .max()
                .unwrap_or(0);
            for k in registry.kinds() {
                println!("{:<width$}  {}", k.name(), k.summary());
            }
            Outcome::Ok
        }
        Some(name) => {
            let Some(k) = registry.get(name) else {
                let hint = wgraph_grammar::diagnostic::did_you_mean(name, registry.names())
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default();
                return usage(&format!("unknown node kind `{name}`{hint}"));
            };
            println!("{}: {}", k.name(), k.summary());
            println!("parameters:");
            if k.params().is_empty() {
                println!("  (none)");
            }
            // Columns as wide as this kind's longest name and type.
            let name_w = k.params().iter().map(|p| p.name.len()).max().unwrap_or(0);
            let rows: Vec<(&str, String, &str)> = k
                .params()
                .iter()
                .map(|p| (p.name, describe_param(p), p.doc))
                .collect();
            let type_w = rows
                .iter()
                .map(|r| r.1.chars().count())
                .max()
                .unwrap_or(0)
                .min(48);
            for (name, ty, doc) in rows {
                if ty.chars().count() > type_w {
                    // A type too long for the column: the doc on its own line,
                    // in the doc column.
                    println!("  {name:<name_w$}  {ty}");
                    println!("  {:<name_w$}  {:<type_w$}  {doc}", "", "");
                } else {
                    println!("  {name:<name_w$}  {ty:<type_w$}  {doc}");
                }
            }
            match wgraph_nodes::ports::default_ports(k.as_ref()) {
                Some(ports) => {
                    let list = |ps: &[wgraph_engine::node::PortSpec], role| -> String {
                        let names: Vec<String> = ps
                            .iter()
                            .filter(|p| p.role == role)
                            .map(|p| wgraph_grammar::diagnostic::port_syntax(&p.name))
                            .collect();
                        if names.is_empty() {
                            "(none)".into()
                        } else {
                            names.join(", ")
                        }
                    };
                    use wgraph_engine::node::PortRole;
                    println!("inputs:  {}", list(&ports.inputs, PortRole::Wired));
                    let optional = list(&ports.inputs, PortRole::Optional);
                    if optional != "(none)" {
                        println!("optional inputs: {optional}");
                    }
                    let called = list(&ports.inputs, PortRole::Call);
                    if called != "(none)" {
                        println!("from its caller: {called}");
                    }
                    for c in &ports.calls {
                        println!("calls:   @{}({})", c.param, c.args.join(", "));
                    }
                    println!("outputs: {}", list(&ports.outputs, PortRole::Wired));
                }
                None => println!(
                    "ports: set by its parameters (a model's inputs and outputs, a file's shape); \
                     `wgraph graph FILE` lists them for a graph that uses it"
                ),
            }
            Outcome::Ok
        }
    }
}

fn describe_param(p: &ParamSpec) -> String {
    let ty = match p.ty {
        ParamType::Choice(c) => c.join("|"),
        other => other.describe(),
    };
    use wgraph_engine::params::Default as D;
    match p.default {
        None => format!("{ty} (required)"),
        Some(D::Absent) => format!("{ty} (optional)"),
        Some(D::Int(i)) => format!("{ty} = {i}"),
        Some(D::Float(f)) => format!("{ty} = {f:?}"),
        Some(D::Bool(b)) => format!("{ty} = {b}"),
        Some(D::Str(s)) => format!("{ty} = {s:?}"),
        Some(D::Choice(c)) => format!("{ty} = {c}"),
    }
}

/// `wgraph doctor`: exits 3 when no ONNX Runtime is usable, so scripts can tell.
pub fn doctor(json: bool) -> Outcome {
    let report = wgraph_ort::doctor();
    let outcome = if report.runtime.is_ok() {
        Outcome::Ok
    } else {
        Outcome::RuntimeFailure
    };
    let (wonnx_text, wonnx_json) = crate::backends::wonnx_report();
    if json {
        let mut value = report.to_json();
        if let Some(object) = value.as_object_mut() {
            object.insert("wonnx".into(), wonnx_json);
            object.insert("cuda_kernels".into(), crate::kernels::status_json());
        }
        match serde_json::to_string_pretty(&value) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return Outcome::RuntimeFailure;
            }
        }
    } else {
        let report = report.to_string();
        let newline = if report.ends_with('\n') { "" } else { "\n" };
        print!("{report}{newline}{wonnx_text}");
        println!("{}", crate::kernels::status_text());
    }
    outcome
}

/// `wgraph bench FILE --baseline raw`
pub fn bench(args: &BenchArgs) -> Outcome {
    if args.frames == 0 || args.rounds == 0 {
        return usage("--frames and --rounds must be at least 1");
    }
    if args.baseline_steps.is_some() && args.baseline != crate::Baseline::Python {
        return usage("--baseline-steps sets the Python loop's steps: it needs --baseline python");
    }
    if !args.swap.is_empty() {
        return crate::swap::bench_swap(args);
    }
    if args.pipeline == 0 {
        return usage("--pipeline must be at least 1");
    }
    let out_dir = std::env::temp_dir().join(format!("wgraph-bench-{}", std::process::id()));
    let ort = Backends::new();
    let recording = RecordingBackend::new(&ort);
    let config = LoadConfig {
        set: &args.set,
        seed: None,
        paths: Vec::new(),
        output: OutputConfig {
            dir: out_dir.clone(),
            display: DisplayTarget::Discard,
            ..OutputConfig::default()
        },
        provider: args.provider.map(Into::into),
        backend_kind: args.backend.map(Into::into),
        backend: &recording,
    };
    let graph = match load(&args.file, &config) {
        Loaded::Graph(g) => g,
        Loaded::Errors => return Outcome::GraphErrors,
        Loaded::Usage(u) => return usage(&u),
    };
    let ticks = args.frames.div_ceil(graph.settings.frames_per_tick as u64);
    let run_config = RunConfig {
        ticks,
        workers: args.workers.unwrap_or_else(|| RunConfig::default().workers),
        pipeline_depth: args.pipeline,
    };
    let engine_round =
        || -> Result<(std::time::Duration, wgraph_engine::schedule::RunReport), String> {
            let mut runner =
                Runner::new(std::sync::Arc::clone(&graph)).map_err(|e| e.to_string())?;
            let start = std::time::Instant::now();
            let report = runner
                .run(&run_config, &mut |_| {})
                .map_err(|e| e.to_string())?;
            Ok((start.elapsed(), report))
        };
    let python = if args.baseline == crate::Baseline::Python {
        let prepared = crate::pybaseline::inputs(&graph).and_then(|(models, actions)| {
            let python = crate::pybaseline::python()?;
            std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
            let script = out_dir.join("yan_sim.py");
            std::fs::write(&script, crate::pybaseline::SCRIPT).map_err(|e| e.to_string())?;
            let steps = args.baseline_steps.unwrap_or_else(|| {
                graph
                    .find("sampler")
                    .and_then(|id| graph.node(id).params.int("steps").ok())
                    .unwrap_or(4) as u64
            });
            Ok((python, script, models, actions, steps))
        });
        match prepared {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("error: {e}");
                return Outcome::Usage;
            }
        }
    } else {
        None
    };
    let mut engine_ms = Vec::new();
    let mut raw_ms = Vec::new();
    let mut calls_per_tick = 0.0;
    let mut last_report = None;
    // Round 0 warms up (sessions, allocations) and is not timed.
    for round in 0..=args.rounds {
        recording.take();
        let (elapsed, report) = match engine_round() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                let _ = std::fs::remove_dir_all(&out_dir);
                return Outcome::RuntimeFailure;
            }
        };
        let done = report.ticks.max(1);
        let calls = recording.take();
        let baseline_ms = match &python {
            Some((python, script, models, actions, steps)) => {
                crate::pybaseline::round(python, script, models, actions.as_deref(), done, *steps)
            }
            None => recording
                .replay(&calls)
                .map(|d| d.as_secs_f64() * 1e3 / done as f64)
                .map_err(|e| format!("raw loop: {e}")),
        };
        let baseline_ms = match baseline_ms {
            Ok(ms) => ms,
            Err(e) => {
                eprintln!("error: {e}");
                let _ = std::fs::remove_dir_all(&out_dir);
                return Outcome::RuntimeFailure;
            }
        };
        if round > 0 {
            engine_ms.push(elapsed.as_secs_f64() * 1e3 / done as f64);
            raw_ms.push(baseline_ms);
            calls_per_tick = calls.len() as f64 / done as f64;
            last_report = Some(report);
        }
    }
    let _ = std::fs::remove_dir_all(&out_dir);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (engine, raw) = (mean(&engine_ms), mean(&raw_ms));
    let nodes = last_report.map(|r| r.metrics.report(&graph));
    let quality = match (args.world_seed, &args.actions) {
        (Some(world_seed), Some(actions)) => {
            match bench_quality(args, world_seed, actions, &out_dir) {
                Ok(q) => Some(q),
                Err(outcome) => return outcome,
            }
        }
        _ => None,
    };
    let baseline_name = if python.is_some() { "python" } else { "raw" };
    let python_steps = python.as_ref().map(|p| p.4);
    let json = serde_json::json!({
        "graph": args.file.display().to_string(),
        "baseline": baseline_name,
        "baseline_steps": python_steps,
        "ticks_per_round": ticks,
        "rounds": args.rounds,
        "workers": run_config.workers,
        "pipeline_depth": run_config.pipeline_depth,
        "model_calls_per_tick": calls_per_tick,
        "raw_ms_per_tick": raw,
        "engine_ms_per_tick": engine,
        "engine_over_raw": if raw > 0.0 { engine / raw } else { 0.0 },
        "baseline_ms_per_tick": raw,
        "engine_over_baseline": if raw > 0.0 { engine / raw } else { 0.0 },
        "engine_fps": if engine > 0.0 { 1e3 / engine } else { 0.0 },
        "raw_ms_per_tick_rounds": raw_ms,
        "engine_ms_per_tick_rounds": engine_ms,
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        // Unpaced, keys are read as a tick starts and its frame is out as it
        // ends: the action-to-frame latency is the tick's latency (a paced
        // world adds the wait for the next tick; `serve --metrics` measures it).
        "action_to_frame_p50_ms": nodes.as_ref().map(|n| n.tick.p50_ms),
        "action_to_frame_p99_ms": nodes.as_ref().map(|n| n.tick.p99_ms),
        "metrics": nodes,
        "quality": quality,
    });
    if let Some(n) = &nodes {
        println!(
            "action-to-frame (key read at a tick's start, frame out at its end): p50 {:.2} ms, p99 {:.2} ms",
            n.tick.p50_ms, n.tick.p99_ms
        );
    }
    if python.is_some() {
        println!(
            "{}: engine {engine:.3} ms/tick ({:.1} fps), Python loop (onnxruntime + numpy, DDIM {} steps) {raw:.3} ms/tick ({:.1} fps); engine/python = {:.3}",
            args.file.display(),
            if engine > 0.0 { 1e3 / engine } else { 0.0 },
            python_steps.unwrap_or(0),
            if raw > 0.0 { 1e3 / raw } else { 0.0 },
            if raw > 0.0 { engine / raw } else { 0.0 },
        );
    } else {
        println!(
            "{}: engine {engine:.3} ms/tick ({:.1} fps), raw loop of the same {calls_per_tick:.0} model calls {raw:.3} ms/tick; engine/raw = {:.3}",
            args.file.display(),
            if engine > 0.0 { 1e3 / engine } else { 0.0 },
            if raw > 0.0 { engine / raw } else { 0.0 },
        );
    }
    if let Some(path) = &args.json {
        let written = serde_json::to_string_pretty(&json)
            .map_err(|e| e.to_string())
            .and_then(|s| {
                wgraph_engine::output::write_file(path, (s + "\n").as_bytes())
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = written {
            eprintln!("error: cannot write {}: {e}", path.display());
            return Outcome::RuntimeFailure;
        }
    }
    Outcome::Ok
}

/// The quality columns of a bench: `wgraph eval` on the same graph, settings
/// and frame count.
pub(crate) fn bench_quality(
    args: &BenchArgs,
    world_seed: u64,
    actions: &Path,
    work: &Path,
) -> Result<serde_json::Value, Outcome> {
    bench_quality_with(args, &args.set, world_seed, actions, work)
}

/// [`bench_quality`] with these `--set` flags.
pub(crate) fn bench_quality_with(
    args: &BenchArgs,
    set: &[String],
    world_seed: u64,
    actions: &Path,
    work: &Path,
) -> Result<serde_json::Value, Outcome> {
    let json = work.with_extension("quality.json");
    let eval_args = crate::EvalArgs {
        file: args.file.clone(),
        world_seed,
        theme: "dungeon".into(),
        actions: actions.to_path_buf(),
        frames: args.frames,
        json: json.clone(),
        strip: None,
        plot: None,
        idm: None,
        drift_db: 15.0,
        drift_fraction: 0.5,
        allow_training_seed: false,
        set: set.to_vec(),
        quiet: true,
    };
    let outcome = crate::eval::eval(&eval_args);
    if outcome != Outcome::Ok {
        return Err(outcome);
    }
    let text = std::fs::read_to_string(&json).map_err(|e| {
        eprintln!("error: {e}");
        Outcome::RuntimeFailure
    })?;
    let _ = std::fs::remove_file(&json);
    serde_json::from_str(&text).map_err(|e| {
        eprintln!("error: {e}");
        Outcome::RuntimeFailure
    })
}
