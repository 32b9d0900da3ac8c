//! `Session::open` and `Session::run` on model-free graphs: a run to its
//! tick limit, the errors a caller maps to exit codes, and a watched
//! session that follows a rename-save.

use std::path::Path;
use std::sync::Arc;
use wgraph_engine::model::{Backend, LoadedModel, ModelCache, ModelError, ModelOptions};
use wgraph_engine::world::{WorldConfig, WorldEnd, WorldEvent};
use wgraph_session::{OpenError, Session, SessionOptions};

/// A backend for graphs without models.
struct NoModels;

impl Backend for NoModels {
    fn load(&self, path: &Path, _: &ModelOptions) -> Result<LoadedModel, ModelError> {
        Err(ModelError::Load(format!(
            "no models here: {}",
            path.display()
        )))
    }
}

/// Options for `file` whose frames go next to it (not to `out/` in the
/// crate's folder).
fn in_tempdir(file: &Path) -> SessionOptions {
    let out = file.with_file_name("out");
    SessionOptions {
        output: wgraph_engine::node::OutputConfig::for_path(&out).unwrap(),
        ..SessionOptions::new(file)
    }
}

fn models() -> Arc<ModelCache<NoModels>> {
    Arc::new(ModelCache::new(NoModels))
}

fn graph(value: f64) -> String {
    format!(
        "world {{ resolution = 8x8 }}\n\
         node c: constant {{ shape = [1, 3, 8, 8], value = {value} }}\n\
         node show: display {{ }}\n\
         c -> show.image\n"
    )
}

fn ticks(n: u64) -> impl FnOnce(&wgraph_engine::graph::Graph) -> Result<WorldConfig, String> {
    move |_| {
        Ok(WorldConfig {
            max_ticks: Some(n),
            ..WorldConfig::default()
        })
    }
}

#[test]
fn a_session_opens_runs_to_its_limit_and_knows_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("g.world");
    std::fs::write(&file, graph(0.5)).unwrap();
    let mut session = Session::open(in_tempdir(&file), models(), ticks(3)).unwrap();
    assert!(!session.watching());
    assert!(session.files.iter().any(|f| f.ends_with("g.world")));
    let mut frames = 0;
    let end = session
        .run(&mut |e| frames += u64::from(matches!(e, WorldEvent::Frame { .. })))
        .unwrap();
    assert!(matches!(end, WorldEnd::TickLimit), "{end:?}");
    assert_eq!(session.world.ticks_done(), 3);
    assert_eq!(frames, 3);
}

#[test]
fn open_errors_say_what_kind_of_mistake_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.world");
    let options = SessionOptions {
        missing_file_help: Some(|_| "try graphs/yan-sim.world".to_string()),
        ..SessionOptions::new(&missing)
    };
    match Session::open(options, models(), ticks(1)) {
        Err(OpenError::Graph(text)) => {
            assert!(text.contains("try graphs/yan-sim.world"), "{text}");
            assert!(text.contains("nope.world: 1 error"), "{text}");
        }
        other => panic!("{:?}", other.err()),
    }
    let file = dir.path().join("g.world");
    std::fs::write(&file, graph(0.5)).unwrap();
    let refused = Session::open(in_tempdir(&file), models(), |_| {
        Err("--fps: not here".to_string())
    });
    assert!(matches!(refused, Err(OpenError::Usage(u)) if u == "--fps: not here"));
    let options = SessionOptions {
        set: vec!["c.value".into()],
        ..in_tempdir(&file)
    };
    assert!(matches!(
        Session::open(options, models(), ticks(1)),
        Err(OpenError::Usage(u)) if u.contains("expected NODE.PARAM=VALUE")
    ));
}

#[test]
fn a_watched_session_follows_a_rename_save() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("g.world");
    std::fs::write(&file, graph(0.5)).unwrap();
    let options = SessionOptions {
        watch: true,
        ..in_tempdir(&file)
    };
    // Bounded: 20 fps for at most 60 s; the reload stops it long before.
    let configure = |_: &wgraph_engine::graph::Graph| {
        Ok(WorldConfig {
            max_ticks: Some(1200),
            fps: Some(20.0),
            ..WorldConfig::default()
        })
    };
    let mut session = Session::open(options, models(), configure).unwrap();
    assert!(session.watching());
    let handle = session.handle();
    let mut edited = false;
    let mut reloads = Vec::new();
    session
        .run(&mut |e| match e {
            WorldEvent::Tick { .. } if !edited => {
                edited = true;
                // An editor's save: a temporary file renamed over the graph.
                let tmp = file.with_extension("world.swp");
                std::fs::write(&tmp, graph(0.25)).unwrap();
                std::fs::rename(&tmp, &file).unwrap();
            }
            WorldEvent::Reloaded(info) => {
                reloads.push(info.line());
                handle.stop();
            }
            _ => {}
        })
        .unwrap();
    assert_eq!(reloads.len(), 1, "{reloads:?}");
    assert!(reloads[0].contains("changed c.value"), "{reloads:?}");
}

/// A live parameter change is made to the node it names: the graph file is
/// not read again (here it no longer parses), the frames change from the
/// tick it is set at, and a bad value fails where it is written.
#[test]
fn a_live_change_rebuilds_its_node_without_reading_the_graph_again() {
    use wgraph_engine::world::{ParamSet, ScriptedEvent};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("g.world");
    std::fs::write(&file, graph(0.5)).unwrap();
    let options = SessionOptions {
        rebuilds: true,
        ..in_tempdir(&file)
    };
    let mut session = Session::open(options, models(), ticks(5)).unwrap();
    std::fs::write(&file, "node broken:\n").unwrap();
    let set = |value: &str| ParamSet {
        node: "c".into(),
        param: "value".into(),
        value: value.into(),
    };
    session.world.script([
        (2, ScriptedEvent::Set(set("0.25"))),
        (3, ScriptedEvent::Set(set("\"dark\""))),
    ]);
    let (mut firsts, mut phases, mut failures) = (Vec::new(), Vec::new(), Vec::new());
    session
        .run(&mut |e| match e {
            WorldEvent::Frame { image, .. } => {
                firsts.push(image.host_as::<f32>().unwrap()[0]);
            }
            WorldEvent::Reloaded(info) => {
                phases.extend(info.phases.iter().map(|(name, _)| name.to_string()));
            }
            WorldEvent::ReloadFailed { message, .. } => failures.push(message.clone()),
            _ => {}
        })
        .unwrap();
    assert_eq!(firsts, vec![0.5, 0.5, 0.25, 0.25, 0.25]);
    assert_eq!(phases, vec!["node rebuilt"]);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].contains("--set c.value:1:1") && failures[0].contains("g.world: 1 error"),
        "{}",
        failures[0]
    );
}

/// A live change of a file parameter rebuilds the graph, so the new file
/// is among the files the world watches and a recording hashes.
#[test]
fn a_live_change_of_a_file_rebuilds_and_lists_the_file() {
    use wgraph_engine::world::{ParamSet, ScriptedEvent};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("g.world");
    std::fs::write(
        &file,
        "world { resolution = 64x64 }\n\
         node keys: actions { }\n\
         node maze: world { theme = dungeon }\n\
         node show: display { }\n\
         keys.actions -> maze.actions\n\
         maze.image -> show.image\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("walk.txt"), "W\nW\nW\n").unwrap();
    let options = SessionOptions {
        rebuilds: true,
        ..in_tempdir(&file)
    };
    let mut session = Session::open(options, models(), ticks(3)).unwrap();
    session.world.script([(
        1,
        ScriptedEvent::Set(ParamSet {
            node: "keys".into(),
            param: "path".into(),
            // A `--set` path is relative to the working directory.
            value: format!("{:?}", dir.path().join("walk.txt").display().to_string()),
        }),
    )]);
    let mut reloads = Vec::new();
    session
        .run(&mut |e| {
            if let WorldEvent::Reloaded(info) = e {
                let phases: Vec<&str> = info.phases.iter().map(|(n, _)| *n).collect();
                reloads.push((phases.contains(&"parse"), info.files.clone()));
            }
            if let WorldEvent::ReloadFailed { message, .. } = e {
                panic!("{message}");
            }
        })
        .unwrap();
    assert_eq!(reloads.len(), 1);
    assert!(reloads[0].0, "a rebuild, not a change in place");
    assert!(
        reloads[0].1.iter().any(|f| f.ends_with("walk.txt")),
        "{:?}",
        reloads[0].1
    );
}
