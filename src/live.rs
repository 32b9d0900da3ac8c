//! What the CLI adds to a live world: the [`GraphSource`] that rebuilds a
//! graph from its files and flags ([`CliSource`]), the file watcher
//! ([`Watcher`]) and `--events` files ([`parse_events`]).
//!
//! The watcher only sends "these files changed" to the world's reloader
//! (dora's pattern: a typed message, nothing else); parsing, checking and
//! model loading happen on the reloader's thread, and the world swaps at a
//! tick boundary.

use crate::backends::Backends;
use crate::load::{Failure, LoadConfig, PathOverride, Quiet, load_quiet};
use notify_debouncer_full::notify::{EventKind, RecursiveMode, event::AccessKind};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use wgraph_engine::model::{Backend, BackendKind, ModelCache, Provider};
use wgraph_engine::node::OutputConfig;
use wgraph_engine::world::{Built, GraphSource, ParamSet, ScriptedEvent, WorldHandle};
use wgraph_grammar::FsLoader;

/// Rebuilds a graph file with the command line's flags and a live world's
/// parameter changes; models come from a [`ModelCache`], so a rebuild
/// reloads only models whose file contents or options changed.
pub struct CliSource {
    pub file: PathBuf,
    pub set: Vec<String>,
    pub seed: Option<u64>,
    pub paths: Vec<PathOverride>,
    pub output: OutputConfig,
    pub provider: Option<Provider>,
    /// Replaces every model's backend.
    pub backend_kind: Option<BackendKind>,
    pub models: Arc<ModelCache<Backends>>,
    /// Note what each build was made from (`--record`).
    pub record: bool,
}

impl CliSource {
    fn config(&self) -> LoadConfig<'_> {
        LoadConfig {
            set: &self.set,
            seed: self.seed,
            paths: self.paths.clone(),
            output: self.output.clone(),
            provider: self.provider,
            backend_kind: self.backend_kind,
            backend: &*self.models as &dyn Backend,
        }
    }

    /// The first build, printing warnings; errors come back rendered.
    pub fn build_first(&self) -> Result<Built, Failure> {
        let q = load_quiet(&self.file, &self.config(), &[], &FsLoader)?;
        crate::load::print_warnings(&q);
        self.models.retain(&q.graph.model_table);
        Ok(self.built(q, &[]))
    }

    fn built(&self, q: Quiet, extra: &[String]) -> Built {
        let provenance = self.record.then(|| {
            let sets: Vec<String> = self.set.iter().chain(extra).cloned().collect();
            Arc::new(crate::replay::provenance(&sets, &q.sources, &q.files))
        });
        Built {
            phases: vec![
                ("parse", q.parse),
                ("check+build", q.build),
                ("models loaded", self.models.take_load_time()),
            ],
            graph: q.graph,
            files: q.files,
            provenance,
        }
    }
}

impl GraphSource for CliSource {
    fn build(&self, sets: &[ParamSet]) -> Result<Built, String> {
        let extra: Vec<String> = sets
            .iter()
            .map(|s| format!("{}.{}={}", s.node, s.param, s.value))
            .collect();
        // Model load time counts from here (not failed builds before).
        let _ = self.models.take_load_time();
        match load_quiet(&self.file, &self.config(), &extra, &FsLoader) {
            Ok(q) => {
                crate::load::print_warnings(&q);
                // The cache keeps only what the new graph uses (bounded).
                self.models.retain(&q.graph.model_table);
                Ok(self.built(q, &extra))
            }
            Err(Failure::Errors(text)) => Err(text),
            Err(Failure::Usage(u)) => Err(format!("error: {}\n", u.0)),
        }
    }
}

/// Watches a world's files (`notify`, debounced) and tells the world's
/// reloader which of them changed. It watches their *directories*, so an
/// editor that saves by writing a temporary file and renaming it over the
/// original (vim, JetBrains, VS Code) is seen like one that writes in place.
pub struct Watcher {
    debouncer: Debouncer<notify_debouncer_full::notify::RecommendedWatcher, RecommendedCache>,
    files: Arc<std::sync::Mutex<BTreeSet<PathBuf>>>,
    dirs: BTreeSet<PathBuf>,
}

/// How long a burst of file events is gathered before one reload.
const DEBOUNCE: Duration = Duration::from_millis(100);

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

impl Watcher {
    /// Starts watching `files` for `handle`'s world.
    pub fn start(handle: WorldHandle, files: &[PathBuf]) -> Result<Watcher, String> {
        let watched: Arc<std::sync::Mutex<BTreeSet<PathBuf>>> = Arc::default();
        let shared = Arc::clone(&watched);
        let debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
            let Ok(events) = result else { return };
            let files = shared.lock().unwrap_or_else(|p| p.into_inner());
            let mut changed: Vec<PathBuf> = Vec::new();
            for event in &events {
                // Reading a file (ours included, while rebuilding) is not a change.
                if matches!(
                    event.kind,
                    EventKind::Access(
                        AccessKind::Open(_) | AccessKind::Read | AccessKind::Close(_)
                    )
                ) && !matches!(
                    event.kind,
                    EventKind::Access(AccessKind::Close(
                        notify_debouncer_full::notify::event::AccessMode::Write
                    ))
                ) {
                    continue;
                }
                for p in &event.paths {
                    let p = absolute(p);
                    if files.contains(&p) && !changed.contains(&p) {
                        changed.push(p);
                    }
                }
            }
            if !changed.is_empty() {
                handle.files_changed(changed);
            }
        })
        .map_err(|e| format!("cannot watch files: {e}"))?;
        let mut w = Watcher {
            debouncer,
            files: watched,
            dirs: BTreeSet::new(),
        };
        w.watch(files)?;
        Ok(w)
    }

    /// Watches `files` (a reloaded graph's) from now on.
    pub fn watch(&mut self, files: &[PathBuf]) -> Result<(), String> {
        let files: BTreeSet<PathBuf> = files.iter().map(|p| absolute(p)).collect();
        for f in &files {
            let Some(dir) = f.parent() else { continue };
            if self.dirs.insert(dir.to_path_buf()) {
                self.debouncer
                    .watch(dir, RecursiveMode::NonRecursive)
                    .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
            }
        }
        *self.files.lock().unwrap_or_else(|p| p.into_inner()) = files;
        Ok(())
    }
}

/// Parses an `--events` file: one event per line,
///
/// ```text
/// # comments and blank lines are ignored
/// 12: sampler.steps = 8                  # a parameter (graph syntax)
/// 40: style.text = "a snowy village"     # a prompt
/// 50: keys = W+Left                      # hold keys (as in action files)
/// 80: keys = live                        # back to the action file / front end
/// ```
///
/// Errors name the file and line.
pub fn parse_events(path: &Path, text: &str) -> Result<Vec<(u64, ScriptedEvent)>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let at = |msg: String| format!("{}:{}: {msg}", path.display(), i + 1);
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        let (tick, rest) = line.split_once(':').ok_or_else(|| {
            at("expected `TICK: NODE.PARAM = VALUE` or `TICK: keys = KEYS`".into())
        })?;
        let tick: u64 = tick
            .trim()
            .parse()
            .map_err(|_| at(format!("`{}` is not a tick number", tick.trim())))?;
        let (target, value) = rest
            .split_once('=')
            .ok_or_else(|| at("expected `NODE.PARAM = VALUE` after the tick".into()))?;
        let (target, value) = (target.trim(), value.trim());
        let event = if target == "keys" {
            if value == "live" {
                ScriptedEvent::Keys(None)
            } else {
                let keys = wgraph_nodes::action_file::parse_action_file(value)
                    .map_err(|(_, msg)| at(msg))?;
                ScriptedEvent::Keys(Some(keys.first().copied().unwrap_or_default()))
            }
        } else {
            let (node, param) = target
                .split_once('.')
                .filter(|(n, p)| !n.is_empty() && !p.is_empty())
                .ok_or_else(|| at(format!("`{target}` is not NODE.PARAM or `keys`")))?;
            if value.is_empty() {
                return Err(at(format!("no value for `{target}`")));
            }
            ScriptedEvent::Set(ParamSet {
                node: node.into(),
                param: param.into(),
                value: value.into(),
            })
        };
        out.push((tick, event));
    }
    Ok(out)
}

/// The line without a trailing `# comment` (a `#` inside a string stays).
fn strip_comment(line: &str) -> &str {
    let mut in_string = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_string = !in_string,
            '#' if !in_string => return &line[..i],
            _ => {}
        }
    }
    line
}

/// The late-tick policy of a world: the graph's `on_late`/`degrade`
/// settings, replaced by `--on-late`/`--degrade` flags when given. Every
/// degrade entry must name a node of the graph and a parameter of its kind.
pub fn late_policy(
    graph: &wgraph_engine::graph::Graph,
    on_late: Option<&str>,
    degrade: &[String],
) -> Result<(wgraph_engine::settings::LatePolicy, Vec<ParamSet>), String> {
    use wgraph_engine::settings::{LatePolicy, split_setting};
    let policy = match on_late {
        None => graph.settings.on_late,
        Some("drop") => LatePolicy::Drop,
        Some("degrade") => LatePolicy::Degrade,
        Some(other) => return Err(format!("--on-late {other}: expected drop or degrade")),
    };
    let entries: Vec<String> = if degrade.is_empty() {
        graph.settings.degrade.clone()
    } else {
        degrade.to_vec()
    };
    let registry = wgraph_nodes::registry();
    let mut sets = Vec::new();
    for e in &entries {
        let (node, param, value) = split_setting(e)
            .ok_or_else(|| format!("degrade `{e}`: expected NODE.PARAM = VALUE"))?;
        let id = graph
            .find(node)
            .ok_or_else(|| format!("degrade `{e}`: the graph has no node `{node}`"))?;
        let kind = graph.node(id).kind;
        if !registry
            .get(kind)
            .is_some_and(|k| k.params().iter().any(|p| p.name == param))
        {
            return Err(format!(
                "degrade `{e}`: `{node}` ({kind}) has no parameter `{param}`"
            ));
        }
        sets.push(ParamSet {
            node: node.into(),
            param: param.into(),
            value: value.into(),
        });
    }
    if policy == LatePolicy::Degrade && sets.is_empty() {
        return Err("--on-late degrade needs degrade settings (world { degrade = [...] } or --degrade NODE.PARAM=VALUE)".into());
    }
    Ok((policy, sets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wgraph_engine::value::{Actions, Key};

    #[test]
    fn events_parse_with_comments_strings_and_keys() {
        let text = "# intro\n\n3: sampler.steps = 8  # fewer\n5: style.text = \"a # b\"\n\
                    7: keys = W+Left\n9: keys = -\n11: keys = live\n";
        let events = parse_events(Path::new("e.txt"), text).unwrap();
        let set = |n: &str, p: &str, v: &str| {
            ScriptedEvent::Set(ParamSet {
                node: n.into(),
                param: p.into(),
                value: v.into(),
            })
        };
        assert_eq!(
            events,
            vec![
                (3, set("sampler", "steps", "8")),
                (5, set("style", "text", "\"a # b\"")),
                (
                    7,
                    ScriptedEvent::Keys(Some(Actions::none().with(Key::W).with(Key::Left)))
                ),
                (9, ScriptedEvent::Keys(Some(Actions::none()))),
                (11, ScriptedEvent::Keys(None)),
            ]
        );
    }

    #[test]
    fn event_errors_name_the_line() {
        for (text, want) in [
            ("x: a.b = 1", "e.txt:1: `x` is not a tick number"),
            (
                "\n4 a.b = 1",
                "e.txt:2: expected `TICK: NODE.PARAM = VALUE` or `TICK: keys = KEYS`",
            ),
            ("4: ab = 1", "e.txt:1: `ab` is not NODE.PARAM or `keys`"),
            ("4: a.b =", "e.txt:1: no value for `a.b`"),
            (
                "4: keys = Q",
                "e.txt:1: unknown key `Q` (keys: W A S D Left Right Up Down Space)",
            ),
        ] {
            assert_eq!(parse_events(Path::new("e.txt"), text).unwrap_err(), want);
        }
    }
}
