//! `--record FILE` and `wgraph replay FILE`: a live run written down so it
//! can be reproduced exactly.
//!
//! - [`Recorder`] — writes a recording as a run goes; [`header`] is its
//!   first line, made of the run's [`FileSource`].
//! - [`Replay`] — a recording opened ([`Replay::open`], with
//!   [`ReplayOptions`]): its first graph built from the recorded texts, the
//!   world scripted with the recorded keys and reloads; [`Replay::run`]
//!   runs it to the recorded end ([`Replayed`]). [`ReplayError`] says why a
//!   recording cannot be replayed, by kind (the exit code is the caller's).
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
//! starts. [`Replay`] rebuilds the first graph from the recorded texts,
//! applies the recorded keys and reloads at their ticks (waiting for each
//! rebuild, so timing cannot change the result) and runs to the recorded
//! end: the frames are the recorded run's, bit for bit.

use crate::{FileSource, MissingFileHelp, Notices, hex};
use serde_json::{Value as Json, json};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use wgraph_engine::load::{LoadOptions, PathOverride};
use wgraph_engine::model::{Backend, BackendKind, ModelCache, Provider, file_digest};
use wgraph_engine::node::{OutputConfig, TickInput};
use wgraph_engine::value::Actions;
use wgraph_engine::world::{
    Built, GraphSource, ScriptedEvent, World, WorldConfig, WorldEnd, WorldEvent,
};
use wgraph_grammar::MemLoader;

/// The format version.
const RECORD_VERSION: u64 = 1;

/// A tick's keys as a recording writes them (`null`: none held, `-`: idle).
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
struct ReplaySource<B: Backend> {
    file: PathBuf,
    versions: Vec<Version>,
    next: AtomicUsize,
    seed: Option<u64>,
    paths: Vec<PathOverride>,
    output: OutputConfig,
    provider: Option<Provider>,
    backend_kind: Option<BackendKind>,
    models: ModelCache<B>,
    missing_file_help: Option<MissingFileHelp>,
}

impl<B: Backend> GraphSource for ReplaySource<B> {
    fn build(&self, _sets: &[wgraph_engine::world::ParamSet]) -> Result<Built, String> {
        let i = self.next.fetch_add(1, Ordering::SeqCst);
        let v = self
            .versions
            .get(i)
            .ok_or_else(|| "the recording has no graph for this reload".to_string())?;
        let loader = MemLoader(v.sources.clone());
        let registry = wgraph_nodes::registry();
        let options = LoadOptions {
            registry: &registry,
            set: v.sets.clone(),
            changes: Vec::new(),
            seed: self.seed,
            paths: self.paths.clone(),
            output: self.output.clone(),
            provider: self.provider,
            backend_kind: self.backend_kind,
            backend: Some(&self.models as &dyn Backend),
        };
        match crate::load_rendered(&self.file, &options, &loader, self.missing_file_help) {
            Ok(q) => {
                self.models.retain(&q.graph.model_table);
                Ok(Built {
                    graph: q.graph,
                    files: q.files,
                    provenance: None,
                    phases: Vec::new(),
                })
            }
            Err(crate::Failure::Errors(text)) => Err(text),
            Err(crate::Failure::Usage(u)) => Err(format!("error: {u}\n")),
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

/// What to replay.
#[derive(Clone)]
pub struct ReplayOptions {
    /// The recording (`wgraph run --record FILE`).
    pub recording: PathBuf,
    /// Output directory, a `.gif` or a `.y4m` file for the displayed
    /// frames (made absolute before the recording's directory is entered).
    pub out: PathBuf,
    /// Where warnings go (a recording cut short by a kill).
    pub notices: Notices,
    /// Help for a recorded graph file that is not there.
    pub missing_file_help: Option<MissingFileHelp>,
}

/// Why a recording was not replayed (exactly); the text is ready to print
/// after the recording's name.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Not a recording, or one that cannot be replayed as it is (a file it
    /// needs changed or is missing).
    #[error("{0}")]
    Recording(String),
    /// The recorded graph does not build (its errors, rendered).
    #[error("the recorded graph does not build")]
    Graph(String),
    /// The replay failed while running (or a recorded reload did not
    /// build, so it is not exact).
    #[error("{0}")]
    Runtime(String),
}

/// A recording opened for replay (see the module docs).
pub struct Replay {
    /// The world, scripted with the recorded keys and reloads; it stops at
    /// the recorded end (front ends attach a stop signal to its handle).
    pub world: World,
    /// The tick the replay ends at (the recorded end, or the last whole
    /// tick of a recording cut short).
    pub end: u64,
    /// Where the displayed frames and the sinks' files go.
    pub output: OutputConfig,
}

/// How a replay ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// Ticks run.
    pub ticks: u64,
    /// Recorded reloads applied.
    pub reloads: u64,
    /// The world was stopped (by a signal) before the recorded end.
    pub stopped: bool,
}

impl Replay {
    /// Reads `options.recording`, checks every file it names by digest,
    /// enters the recorded working directory (model and data paths in the
    /// recorded graphs are relative to it: this changes the process's
    /// current directory), builds the first recorded graph with `backend`'s
    /// models and scripts its world.
    pub fn open<B: Backend + 'static>(
        options: &ReplayOptions,
        backend: B,
    ) -> Result<Replay, ReplayError> {
        let recorded = read_recording(options)?;
        let output = OutputConfig::for_path(&recorded.out)
            .map_err(|e| ReplayError::Recording(format!("--out {e}")))?;
        let header = &recorded.header;
        let str_of = |k: &str| header.get(k).and_then(Json::as_str).map(PathBuf::from);
        let source = Arc::new(ReplaySource {
            file: recorded.graph,
            versions: recorded.versions,
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
            models: ModelCache::new(backend),
            missing_file_help: options.missing_file_help,
        });
        let built = source.build(&[]).map_err(ReplayError::Graph)?;
        let config = WorldConfig {
            max_ticks: Some(recorded.end),
            ..WorldConfig::default()
        };
        let mut world = World::new(
            Arc::new(built.graph),
            Some(source as Arc<dyn GraphSource>),
            Vec::new(),
            config,
        )
        .map_err(|e| ReplayError::Runtime(e.to_string()))?;
        world.script(recorded.script);
        Ok(Replay {
            world,
            end: recorded.end,
            output,
        })
    }

    /// Runs the replay to the recorded end (or until its world is
    /// stopped) and finishes its sinks; `reload_failed` hears each recorded
    /// reload that did not build (its rendered errors). A replay stopped
    /// early is not an error; one whose recorded reloads did not all build
    /// is.
    pub fn run(&mut self, reload_failed: &mut dyn FnMut(&str)) -> Result<Replayed, ReplayError> {
        let mut failed_reloads = 0;
        let result = self.world.run(&mut |e| {
            if let WorldEvent::ReloadFailed { message, .. } = e {
                failed_reloads += 1;
                reload_failed(message);
            }
        });
        let report = self.world.finish();
        let replayed = |ticks, stopped| Replayed {
            ticks,
            reloads: self.world.reloads(),
            stopped,
        };
        match (result, report) {
            (Ok(WorldEnd::Stopped), Ok(r)) => Ok(replayed(r.ticks, true)),
            (Ok(WorldEnd::TickLimit | WorldEnd::SourceStopped(_)), Ok(r))
                if failed_reloads == 0 =>
            {
                Ok(replayed(r.ticks, false))
            }
            (_, Err(e)) => Err(ReplayError::Runtime(e.to_string())),
            (Err(e), _) => Err(ReplayError::Runtime(e.to_string())),
            _ => Err(ReplayError::Runtime(format!(
                "{failed_reloads} recorded reload(s) did not build; the replay is not exact"
            ))),
        }
    }
}

/// A recording read and checked.
struct Recorded {
    header: Json,
    /// The recorded graph file.
    graph: PathBuf,
    /// Its versions: the first build, then each reload's.
    versions: Vec<Version>,
    /// The recorded keys and reloads at their ticks.
    script: Vec<(u64, ScriptedEvent)>,
    end: u64,
    /// `options.out`, absolute.
    out: PathBuf,
}

fn read_recording(options: &ReplayOptions) -> Result<Recorded, ReplayError> {
    let bad = ReplayError::Recording;
    let text = wgraph_engine::input::read_to_string(&options.recording, wgraph_engine::input::DATA)
        .map_err(|e| bad(e.to_string()))?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let parse = |(i, l): (usize, &str)| -> Result<Json, String> {
        serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1))
    };
    let header = parse(lines.next().ok_or(bad("an empty recording".into()))?).map_err(bad)?;
    match header.get("wgraph_record").and_then(Json::as_u64) {
        Some(RECORD_VERSION) => {}
        Some(v) => {
            return Err(bad(format!(
                "recording format {v}; this wgraph reads {RECORD_VERSION}"
            )));
        }
        None => return Err(bad("not a wgraph recording".into())),
    }
    let str_of = |k: &str| header.get(k).and_then(Json::as_str).map(PathBuf::from);
    let out = std::path::absolute(&options.out).map_err(|e| bad(e.to_string()))?;
    if let Some(cwd) = str_of("cwd") {
        // Model and data paths in the recorded graphs are relative to it.
        std::env::set_current_dir(&cwd)
            .map_err(|e| bad(format!("the recording's directory {}: {e}", cwd.display())))?;
    }
    let first = header
        .get("build")
        .ok_or(bad("the header has no build".into()))?;
    let mut versions = vec![version(first).map_err(bad)?];
    check_files(first).map_err(bad)?;
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
            Err(e) => return Err(bad(e)),
        };
        if let Some(e) = j.get("end").and_then(Json::as_u64) {
            end = Some(e);
            continue;
        }
        let tick = j
            .get("tick")
            .and_then(Json::as_u64)
            .ok_or_else(|| bad(format!("line {}: no tick", line.0 + 1)))?;
        if j.get("reload").is_none() {
            ran = ran.max(Some(tick));
        }
        if let Some(keys) = j.get("keys") {
            let keys = match keys.as_str() {
                None => None,
                Some(k) => Some(
                    wgraph_nodes::action_file::parse_action_file(k)
                        .map_err(|(_, e)| bad(format!("line {}: {e}", line.0 + 1)))?
                        .first()
                        .copied()
                        .unwrap_or_default(),
                ),
            };
            script.push((tick, ScriptedEvent::Keys(keys)));
        } else if let Some(r) = j.get("reload") {
            check_files(r).map_err(bad)?;
            versions.push(version(r).map_err(bad)?);
            script.push((tick, ScriptedEvent::Rebuild));
        }
    }
    let end = match end {
        Some(end) => end,
        None => {
            // A killed run: replay what it recorded whole.
            let whole = ran.map_or(0, |t| t.saturating_add(1));
            if whole == 0 {
                return Err(bad(
                    "the recording has no end line and no whole tick: the recorded run was stopped before its first tick ended, so there is nothing to replay".into(),
                ));
            }
            (options.notices)(&format!(
                "warning: {}: the recording was cut short at tick {whole} (no end line{}: the recorded run was killed); replaying its {whole} whole tick{}",
                wgraph_grammar::diagnostic::escape_controls(
                    &options.recording.display().to_string()
                ),
                if half_line {
                    ", its last line half written"
                } else {
                    ""
                },
                if whole == 1 { "" } else { "s" }
            ));
            whole
        }
    };
    let graph = str_of("graph").ok_or(bad("the header names no graph".into()))?;
    Ok(Recorded {
        header,
        graph,
        versions,
        script,
        end,
        out,
    })
}

/// The header of a recording of `source`'s run.
pub fn header<B: Backend>(source: &FileSource<B>, provenance: Option<&Json>) -> Json {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn options(recording: &Path) -> (ReplayOptions, Arc<std::sync::Mutex<Vec<String>>>) {
        let said = Arc::new(std::sync::Mutex::new(Vec::new()));
        let notes = Arc::clone(&said);
        let options = ReplayOptions {
            recording: recording.to_path_buf(),
            out: PathBuf::from("out"),
            notices: Arc::new(move |l: &str| notes.lock().unwrap().push(l.to_string())),
            missing_file_help: None,
        };
        (options, said)
    }

    fn header() -> Json {
        json!({
            "wgraph_record": RECORD_VERSION,
            "graph": "g.world",
            "build": { "sets": ["a.b=1"], "sources": { "g.world": "world {}" }, "files": {} },
        })
    }

    #[test]
    fn a_recording_reads_back_as_written_and_a_killed_one_up_to_its_last_whole_tick() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.rec");
        let mut r = Recorder::create(&path, header()).unwrap();
        let keys = TickInput::with_actions(Actions::none());
        r.tick(0, &keys);
        r.tick(1, &keys);
        r.reload(
            2,
            "edit",
            Some(&json!({ "sets": [], "sources": { "g.world": "x" } })),
        );
        r.tick(2, &TickInput::NONE);
        r.end(3).unwrap();
        let (opts, said) = options(&path);
        let rec = read_recording(&opts).unwrap();
        assert_eq!(rec.end, 3);
        assert_eq!(rec.versions.len(), 2);
        assert_eq!(rec.versions[0].sets, ["a.b=1"]);
        assert_eq!(
            rec.script.len(),
            3,
            "keys at 0, a reload at 2, no keys at 2"
        );
        assert!(said.lock().unwrap().is_empty());

        // Killed: no end line, its last line half written.
        let text = std::fs::read_to_string(&path).unwrap();
        let cut = text.rfind("{\"end\"").unwrap();
        std::fs::write(&path, format!("{}{{\"tick\":3,\"ke", &text[..cut])).unwrap();
        let rec = read_recording(&opts).unwrap();
        assert_eq!(rec.end, 3, "ticks 0..=2 ran whole");
        let said = said.lock().unwrap();
        assert!(said[0].contains("cut short at tick 3"), "{said:?}");
        assert!(said[0].contains("its last line half written"), "{said:?}");
    }

    #[test]
    fn what_is_not_a_recording_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.rec");
        std::fs::write(&path, "{\"hello\":1}\n").unwrap();
        let err = |p: &Path| match read_recording(&options(p).0) {
            Err(ReplayError::Recording(e)) => e,
            Err(e) => panic!("{e:?}"),
            Ok(_) => panic!("read"),
        };
        assert_eq!(err(&path), "not a wgraph recording");
        std::fs::write(&path, format!("{}\n", header())).unwrap();
        assert!(err(&path).starts_with("the recording has no end line and no whole tick"));
        let mut changed = header();
        changed["build"]["files"] = json!({ path.display().to_string(): "00" });
        std::fs::write(&path, format!("{changed}\n{{\"end\":1}}\n")).unwrap();
        assert!(err(&path).contains("changed since the recording"));
    }
}
