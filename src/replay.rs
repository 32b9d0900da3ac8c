//! `--record FILE` and `wgraph replay FILE`: a live run written down so it
//! can be reproduced exactly.
//!
//! A recording is JSON lines:
//!
//! ```text
//! {"wgraph_record":1, "graph":…, "cwd":…, "seed":…, "actions":…, "provider":…, "backend":…,
//!  "build":{"sets":[…], "sources":{path: text}, "files":{path: sha256}}}
//! {"tick":12, "keys":"W+Left"}          live keys from this tick on (null: none)
//! {"tick":40, "reload":{"cause":…, "sets":[…], "sources":{…}, "files":{…}}}
//! {"end":120}
//! ```
//!
//! Graph texts are stored whole (they are small and may have been edited
//! many times); models and data files by SHA-256, checked before a replay
//! starts. [`replay`] rebuilds the first graph from the recorded texts,
//! applies the recorded keys and reloads at their ticks (waiting for each
//! rebuild, so timing cannot change the result) and runs to the recorded
//! end: the frames are the recorded run's, bit for bit.

use crate::backends::Backends;
use crate::live::CliSource;
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
use wgraph_grammar::source::SourceMap;

/// The format version.
const RECORD_VERSION: u64 = 1;

/// Hex of a digest.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a recording needs of one build: the parameter changes, every graph
/// text, and the digest of every other file.
pub fn provenance(sets: &[String], sources: &SourceMap, files: &[PathBuf]) -> Json {
    let texts: serde_json::Map<String, Json> = sources
        .files()
        .filter_map(|(_, f)| {
            let p = f.path.as_ref()?;
            Some((p.display().to_string(), json!(f.text)))
        })
        .collect();
    let digests: serde_json::Map<String, Json> = files
        .iter()
        .filter(|p| !texts.contains_key(&p.display().to_string()))
        .filter_map(|p| Some((p.display().to_string(), json!(hex(&file_digest(p).ok()?)))))
        .collect();
    json!({ "sets": sets, "sources": texts, "files": digests })
}

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
}

impl Recorder {
    /// Creates `path` and writes the header.
    pub fn create(path: &Path, header: Json) -> Result<Recorder, String> {
        let file =
            std::fs::File::create(path).map_err(|e| format!("--record {}: {e}", path.display()))?;
        let mut r = Recorder {
            out: std::io::BufWriter::new(file),
            path: path.to_path_buf(),
            keys: None,
            error: None,
        };
        r.line(&header);
        Ok(r)
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

    /// Tick `tick` ran with `input`.
    pub fn tick(&mut self, tick: u64, input: &TickInput) {
        if input.actions != self.keys {
            self.keys = input.actions;
            self.line(&json!({ "tick": tick, "keys": keys_text(input.actions) }));
        }
    }

    /// A new graph runs from `tick`.
    pub fn reload(&mut self, tick: u64, cause: &str, provenance: Option<&Json>) {
        let mut r = provenance.cloned().unwrap_or_else(|| json!({}));
        r["cause"] = json!(cause);
        self.line(&json!({ "tick": tick, "reload": r }));
    }

    /// The run ended after `ticks` ticks; returns a write error, if any.
    pub fn end(mut self, ticks: u64) -> Result<(), String> {
        self.line(&json!({ "end": ticks }));
        self.error.map_or(Ok(()), Err)
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
            Err(Failure::Usage(u)) => Err(format!("error: {}\n", u.0)),
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
pub fn replay(args: &ReplayArgs) -> Outcome {
    match run_replay(args) {
        Ok(outcome) => outcome,
        Err(e) => {
            let line = format!("{}: {e}", args.file.display());
            eprintln!(
                "error: {}",
                wgraph_grammar::diagnostic::escape_controls(&line)
            );
            Outcome::RuntimeFailure
        }
    }
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
    for line in lines {
        let j = parse(line)?;
        if let Some(e) = j.get("end").and_then(Json::as_u64) {
            end = Some(e);
            continue;
        }
        let tick = j
            .get("tick")
            .and_then(Json::as_u64)
            .ok_or_else(|| format!("line {}: no tick", line.0 + 1))?;
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
    let end = end.ok_or("the recording has no end line (the recorded run did not stop cleanly)")?;
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
    let built = source.build(&[]).map_err(|e| {
        eprint!("{e}");
        "the recorded graph does not build".to_string()
    })?;
    let config = WorldConfig {
        max_ticks: Some(end),
        ..WorldConfig::default()
    };
    let mut world = World::new(
        Arc::new(built.graph),
        Some(Arc::clone(&source) as Arc<dyn GraphSource>),
        Vec::new(),
        config,
    )
    .map_err(|e| e.to_string())?;
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
                "replay stopped by Ctrl-C after {} of {end} ticks; outputs in {target}",
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
        (_, Err(e)) => Err(e.to_string()),
        (Err(e), _) => Err(e.to_string()),
        _ => Err(format!(
            "{failed_reloads} recorded reload(s) did not build; the replay is not exact"
        )),
    }
}

/// The header of a recording of `source`'s run.
pub fn header(source: &CliSource, provenance: Option<&Json>) -> Json {
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
