//! `--record FILE` and `wgraph replay FILE`: a live run written down so it
//! can be reproduced exactly.
//!
//! A recording is JSON lines:
//!
//! ```text
//! {"wgraph_record":1, "graph":…, "cwd":…, "seed":…, "actions":…, "provider":…, "backend":…,
//!  "build":{"sets":[…], "sources":{path: text}, "files":{path: sha256}}}
//! {"tick":12, "keys":"W+Left"}          live keys from this tick on (null: none); tick 12 ran
//! {"tick":13}                           tick 13 ran (no other line said so)
//! {"tick":40, "reload":{"cause":…, "sets":[…], "sources":{…}, "files":{…}}}
//! {"end":120}
//! ```
//!
//! Each line is written and flushed as its tick completes, so a run that
//! is killed (SIGKILL, a second Ctrl-C, a full disk) leaves a recording
//! without its end line that still replays up to its last whole tick. A
//! write that fails stops the run with an error naming the file; a
//! recording whose header could not be written whole is removed.
//!
//! Graph texts are stored whole (they are small and may have been edited
//! many times); models and data files by SHA-256, checked before a replay
//! starts. [`replay`] rebuilds the first graph from the recorded texts,
//! applies the recorded keys and reloads at their ticks (waiting for each
//! rebuild, so timing cannot change the result) and runs to the recorded
//! end: the frames are the recorded run's, bit for bit.

use crate::backends::Backends;
use crate::load::{Failure, LoadConfig, PathOverride, load_quiet};
use crate::{Outcome, ReplayArgs};
use serde_json::{Value as Json, json};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use wgraph_engine::model::{Backend, BackendKind, ModelCache, Provider, file_digest};
use wgraph_engine::node::{DisplayTarget, OutputConfig, TickInput};
use wgraph_engine::value::Actions;
use wgraph_engine::world::{
    Built, GraphSource, ScriptedEvent, World, WorldConfig, WorldEnd, WorldEvent,
};
use wgraph_grammar::MemLoader;
use wgraph_session::{FileSource, hex};

/// The format version.
const RECORD_VERSION: u64 = 1;

fn keys_text(a: Option<Actions>) -> Json {
    match a {
        None => Json::Null,
        Some(a) if a == Actions::none() => json!("-"),
        Some(a) => json!(a.to_string()),
    }
}

/// Writes a recording as the run goes (one flushed line per event).
pub struct Recorder {
    out: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
    keys: Option<Actions>,
    error: Option<String>,
    /// `error` was handed out by [`Recorder::take_error`].
    reported: bool,
}

impl Recorder {
    /// Creates `path` and writes the header.
    pub fn create(path: &Path, header: Json) -> Result<Recorder, String> {
        let file = wgraph_engine::output::create_parent(path)
            .and_then(|()| std::fs::File::create(path))
            .map_err(|e| format!("--record {}: {e}", path.display()))?;
        let mut r = Recorder {
            out: std::io::BufWriter::new(file),
            path: path.to_path_buf(),
            keys: None,
            error: None,
            reported: false,
        };
        r.line(&header);
        if let Some(e) = r.error.take() {
            // Half a header replays nothing: leave no file (a device such as
            // /dev/full is not ours to remove).
            if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
        Ok(r)
    }

    /// The first write error, once (the run stops on it); later calls and
    /// [`Recorder::end`] do not repeat it.
    pub fn take_error(&mut self) -> Option<String> {
        if self.reported {
            return None;
        }
        self.reported = self.error.is_some();
        self.error.clone()
    }

    fn line(&mut self, j: &Json) {
        if self.error.is_some() {
            return;
        }
        let written = writeln!(self.out, "{j}").and_then(|()| self.out.flush());
        if let Err(e) = written {
            self.error = Some(format!("--record {}: {e}", self.path.display()));
        }
    }

    /// Tick `tick` ran with `input`: a keys line when they changed, a
    /// bare tick line otherwise (so a killed run's recording says how far
    /// it got).
    pub fn tick(&mut self, tick: u64, input: &TickInput) {
        if input.actions != self.keys {
            self.keys = input.actions;
            self.line(&json!({ "tick": tick, "keys": keys_text(input.actions) }));
        } else {
            self.line(&json!({ "tick": tick }));
        }
    }

    /// A new graph runs from `tick`.
    pub fn reload(&mut self, tick: u64, cause: &str, provenance: Option<&Json>) {
        let mut r = provenance.cloned().unwrap_or_else(|| json!({}));
        r["cause"] = json!(cause);
        self.line(&json!({ "tick": tick, "reload": r }));
    }

    /// The run ended after `ticks` ticks; returns a write error not yet
    /// taken with [`Recorder::take_error`].
    pub fn end(mut self, ticks: u64) -> Result<(), String> {
        self.line(&json!({ "end": ticks }));
        self.take_error().map_or(Ok(()), Err)
    }
}

/// One graph version of a recording.
struct Version {
    sets: Vec<String>,
    sources: HashMap<PathBuf, Vec<u8>>,
}

/// Rebuilds a recording's graphs in order: the first build is the recorded
/// start, each later one the next recorded reload.
struct ReplaySource {
    file: PathBuf,
    versions: Vec<Version>,
    next: AtomicUsize,
    seed: Option<u64>,
    paths: Vec<PathOverride>,
    output: OutputConfig,
    provider: Option<Provider>,
    backend_kind: Option<BackendKind>,
    models: ModelCache<Backends>,
}

impl GraphSource for ReplaySource {
    fn build(&self, _sets: &[wgraph_engine::world::ParamSet]) -> Result<Built, String> {
        let i = self.next.fetch_add(1, Ordering::SeqCst);
        let v = self
            .versions
            .get(i)
            .ok_or_else(|| "the recording has no graph for this reload".to_string())?;
        let loader = MemLoader(v.sources.clone());
        let config = LoadConfig {
            set: &v.sets,
            seed: self.seed,
            paths: self.paths.clone(),
            output: self.output.clone(),
            provider: self.provider,
            backend_kind: self.backend_kind,
            backend: &self.models as &dyn Backend,
        };
        match load_quiet(&self.file, &config, &[], &loader) {
            Ok(q) => {
                self.models.retain(&q.graph.model_table);
                Ok(Built {
                    graph: q.graph,
                    files: q.files,
                    provenance: None,
                    phases: Vec::new(),
                })
            }
            Err(Failure::Errors(text)) => Err(text),
            Err(Failure::Usage(u)) => Err(format!("error: {u}\n")),
        }
    }
}

fn version(build: &Json) -> Result<Version, String> {
    let sets = build
        .get("sets")
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let sources = build
        .get("sources")
        .and_then(Json::as_object)
        .ok_or("a build without graph sources")?
        .iter()
        .map(|(p, t)| {
            (
                PathBuf::from(p),
                t.as_str().unwrap_or("").as_bytes().to_vec(),
            )
        })
        .collect();
    Ok(Version { sets, sources })
}

/// Every recorded file digest still matches the file on disk.
fn check_files(build: &Json) -> Result<(), String> {
    let Some(files) = build.get("files").and_then(Json::as_object) else {
        return Ok(());
    };
    for (path, digest) in files {
        let now = file_digest(Path::new(path))
            .map(|d| hex(&d))
            .map_err(|e| format!("{path}: {e} (the recording needs it)"))?;
        if Some(now.as_str()) != digest.as_str() {
            return Err(format!(
                "{path} changed since the recording (its SHA-256 differs): the replay would not be exact"
            ));
        }
    }
    Ok(())
}

/// `wgraph replay FILE`
///
/// Exits 2 when the recording cannot be replayed as given (not a
/// recording, a file it needs changed or missing), 1 when its graph does
/// not build, 3 when the replay fails while running.
pub fn replay(args: &ReplayArgs) -> Outcome {
    match run_replay(args) {
        Ok(outcome) => outcome,
        Err(e) => fail(args, &e, Outcome::Usage),
    }
}

/// Prints `error: FILE: e` and returns `outcome`.
fn fail(args: &ReplayArgs, e: &str, outcome: Outcome) -> Outcome {
    let line = format!("{}: {e}", args.file.display());
    eprintln!(
        "error: {}",
        wgraph_grammar::diagnostic::escape_controls(&line)
    );
    outcome
}

fn run_replay(args: &ReplayArgs) -> Result<Outcome, String> {
    let text = wgraph_engine::input::read_to_string(&args.file, wgraph_engine::input::DATA)
        .map_err(|e| e.to_string())?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let parse = |(i, l): (usize, &str)| -> Result<Json, String> {
        serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1))
    };
    let header = parse(lines.next().ok_or("an empty recording")?)?;
    match header.get("wgraph_record").and_then(Json::as_u64) {
        Some(RECORD_VERSION) => {}
        Some(v) => {
            return Err(format!(
                "recording format {v}; this wgraph reads {RECORD_VERSION}"
            ));
        }
        None => return Err("not a wgraph recording".into()),
    }
    let str_of = |k: &str| header.get(k).and_then(Json::as_str).map(PathBuf::from);
    let out = std::path::absolute(&args.out).map_err(|e| e.to_string())?;
    if let Some(cwd) = str_of("cwd") {
        // Model and data paths in the recorded graphs are relative to it.
        std::env::set_current_dir(&cwd)
            .map_err(|e| format!("the recording's directory {}: {e}", cwd.display()))?;
    }
    let first = header.get("build").ok_or("the header has no build")?;
    let mut versions = vec![version(first)?];
    check_files(first)?;
    let mut script = Vec::new();
    let mut end = None;
    // The ticks a line says ran (keys and bare tick lines are written as
    // their tick completes), and a last line cut in half by a kill.
    let mut ran: Option<u64> = None;
    let mut half_line = false;
    let lines: Vec<(usize, &str)> = lines.collect();
    for (k, &line) in lines.iter().enumerate() {
        let j = match parse(line) {
            Ok(j) => j,
            Err(_) if k + 1 == lines.len() && end.is_none() => {
                half_line = true;
                break;
            }
            Err(e) => return Err(e),
        };
        if let Some(e) = j.get("end").and_then(Json::as_u64) {
            end = Some(e);
            continue;
        }
        let tick = j
            .get("tick")
            .and_then(Json::as_u64)
            .ok_or_else(|| format!("line {}: no tick", line.0 + 1))?;
        if j.get("reload").is_none() {
            ran = ran.max(Some(tick));
        }
        if let Some(keys) = j.get("keys") {
            let keys = match keys.as_str() {
                None => None,
                Some(k) => Some(
                    wgraph_nodes::action_file::parse_action_file(k)
                        .map_err(|(_, e)| format!("line {}: {e}", line.0 + 1))?
                        .first()
                        .copied()
                        .unwrap_or_default(),
                ),
            };
            script.push((tick, ScriptedEvent::Keys(keys)));
        } else if let Some(r) = j.get("reload") {
            check_files(r)?;
            versions.push(version(r)?);
            script.push((tick, ScriptedEvent::Rebuild));
        }
    }
    let end = match end {
        Some(end) => end,
        None => {
            // A killed run: replay what it recorded whole.
            let whole = ran.map_or(0, |t| t.saturating_add(1));
            if whole == 0 {
                return Err(
                    "the recording has no end line and no whole tick: the recorded run was stopped before its first tick ended, so there is nothing to replay".into(),
                );
            }
            eprintln!(
                "warning: {}: the recording was cut short at tick {whole} (no end line{}: the recorded run was killed); replaying its {whole} whole tick{}",
                wgraph_grammar::diagnostic::escape_controls(&args.file.display().to_string()),
                if half_line {
                    ", its last line half written"
                } else {
                    ""
                },
                if whole == 1 { "" } else { "s" }
            );
            whole
        }
    };
    let graph_file = str_of("graph").ok_or("the header names no graph")?;
    let output = OutputConfig::for_path(&out).map_err(|e| format!("--out {e}"))?;
    let source = Arc::new(ReplaySource {
        file: graph_file,
        versions,
        next: AtomicUsize::new(0),
        seed: header.get("seed").and_then(Json::as_u64),
        paths: str_of("actions")
            .map(|p| PathOverride::actions(&p))
            .into_iter()
            .collect(),
        output: output.clone(),
        provider: header
            .get("provider")
            .and_then(Json::as_str)
            .and_then(Provider::parse),
        backend_kind: header
            .get("backend")
            .and_then(Json::as_str)
            .and_then(BackendKind::parse),
        models: ModelCache::new(Backends::new()),
    });
    let interrupt = crate::interrupt::Interrupt::install();
    let built = match source.build(&[]) {
        Ok(built) => built,
        Err(e) => {
            eprint!("{e}");
            return Ok(fail(
                args,
                "the recorded graph does not build",
                Outcome::GraphErrors,
            ));
        }
    };
    let config = WorldConfig {
        max_ticks: Some(end),
        ..WorldConfig::default()
    };
    let mut world = match World::new(
        Arc::new(built.graph),
        Some(Arc::clone(&source) as Arc<dyn GraphSource>),
        Vec::new(),
        config,
    ) {
        Ok(world) => world,
        Err(e) => return Ok(fail(args, &e.to_string(), Outcome::RuntimeFailure)),
    };
    interrupt.attach(world.handle());
    world.script(script);
    let mut failed_reloads = 0;
    let result = world.run(&mut |e| {
        if let WorldEvent::ReloadFailed { message, .. } = e {
            failed_reloads += 1;
            eprint!("{message}");
        }
    });
    let report = world.finish();
    let target = match &output.display {
        DisplayTarget::PngDir(p) | DisplayTarget::Gif(p) | DisplayTarget::Y4m(p) => {
            p.display().to_string()
        }
        DisplayTarget::Discard => "nowhere".into(),
    };
    match (result, report) {
        (Ok(WorldEnd::Stopped), Ok(r)) => {
            eprintln!(
                "replay stopped by {} after {} of {end} ticks; outputs in {target}",
                interrupt.signal_name().unwrap_or("Ctrl-C"),
                r.ticks
            );
            Ok(Outcome::Ok)
        }
        (Ok(WorldEnd::TickLimit | WorldEnd::SourceStopped(_)), Ok(r)) if failed_reloads == 0 => {
            if !args.quiet {
                eprintln!(
                    "replayed {} ticks, {} reload{}; outputs in {target}",
                    r.ticks,
                    world.reloads(),
                    if world.reloads() == 1 { "" } else { "s" }
                );
            }
            Ok(Outcome::Ok)
        }
        (_, Err(e)) => Ok(fail(args, &e.to_string(), Outcome::RuntimeFailure)),
        (Err(e), _) => Ok(fail(args, &e.to_string(), Outcome::RuntimeFailure)),
        _ => Ok(fail(
            args,
            &format!("{failed_reloads} recorded reload(s) did not build; the replay is not exact"),
            Outcome::RuntimeFailure,
        )),
    }
}

/// The header of a recording of `source`'s run.
pub fn header(source: &FileSource<Backends>, provenance: Option<&Json>) -> Json {
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .ok();
    json!({
        "wgraph_record": RECORD_VERSION,
        "graph": source.file.display().to_string(),
        "cwd": cwd,
        "seed": source.seed,
        "actions": source.paths.first().map(|p| p.path.display().to_string()),
        "provider": source.provider.map(|p| p.name()),
        "backend": source.backend_kind.map(|b| b.name()),
        "build": provenance,
    })
}
