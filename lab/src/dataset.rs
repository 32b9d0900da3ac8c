//! Episodes of the ground-truth world (crate `wgraph-groundtruth`) written
//! as training data: the writer behind `wgraph dataset`.
//!
//! # Main types
//! - [`DatasetOptions`]: what to write (seeds, ticks, policy, themes, frame
//!   size, events, output directory); [`write`] checks and writes it.
//! - [`DatasetReport`]: what was written (episodes, coverage, time), as the
//!   binary prints it.
//!
//! For each seed a [`Policy`] drives the player for `frames` ticks (the
//! walks, the balanced sampling and the event scripts are the ground-truth
//! crate's [`wgraph_groundtruth::policy`]); the trajectory (keys and poses)
//! depends only on the geometry, so the themes of a seed are the *same*
//! walk in different looks (paired data for theme-conditioned models). Each
//! episode is a directory `OUT/<theme>_<seed>/` with
//!
//! | file | contents |
//! |---|---|
//! | `frames.npy` | u8 `[N+1, H, W, 3]`; frame 0 is the start view, frame t+1 the view after action t |
//! | `depth.npy` | f32 `[N+1, H, W]`, perpendicular distance in cells (sky: 16) |
//! | `actions.npy` | f32 `[N, 9]`, multi-hot in the order W A S D Left Right Up Down Space |
//! | `actions.txt` | the same keys as an action file (`wgraph run --actions` reads it) |
//! | `poses.npy` | f32 `[N+1, 4]`: x, y, yaw (degrees), pitch after each frame's keys |
//! | `captions.json` | the global caption (theme and layout), and the event schedule: per event its tick, first frame (tick + 1), caption and name |
//! | `local.txt` | one line per frame: the local caption in force (the captions of the events of the latest tick with events up to that frame), `-` before any |
//! | `events.npy` | f32 `[N+1, 4]`: per frame, whether ghost, dark, snow, door are on (the world's event state, not a detection) |
//!
//! and `OUT/index.json` lists the episodes (with each one's global caption,
//! layout, event count and whether its seed is held out, ≥
//! [`FIRST_HELD_OUT_SEED`]), the action histogram and the position coverage
//! (fraction of a world's floor tiles the walk visited).
//!
//! **Events.** [`EventPolicy::None`] renders no events: the frames are what
//! they were before events existed, and the schedule is empty.
//! [`EventPolicy::Auto`] gives every episode the seeded script of
//! `wgraph_groundtruth::events::script` (2–4 events), the same for every
//! theme of a seed; event `tick` t is applied after action t, so frame
//! t + 1 is the first to show it.
//!
//! **Held-out seeds.** Seeds ≥ [`FIRST_HELD_OUT_SEED`] are for `wgraph
//! eval`; the dataset writes them (eval sweeps read their walks) but marks
//! them `held_out` in the index, and the training scripts refuse them.
//!
//! Everything is seeded from the options: the same options write the same
//! bytes (episodes depend on the seeds before them through the shared
//! action counts, [`Balance`]). Episodes are rendered on all cores.

use crate::LabError;
use serde::Serialize;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use wgraph_engine::npy::write_npy;
use wgraph_engine::tensor::Tensor;
use wgraph_groundtruth::events::{self, Channel, Event, EventState};
use wgraph_groundtruth::policy::{Balance, EventPolicy, Policy, Walk, walk};
use wgraph_groundtruth::{FIRST_HELD_OUT_SEED, Frame, Keys, MAX_DEPTH, Theme, World};

/// Largest bytes of one episode's frames (they are built in memory).
const MAX_EPISODE_BYTES: usize = 1 << 30;

/// What [`write`] writes.
#[derive(Debug, Clone)]
pub struct DatasetOptions {
    /// World seeds, in order (the end is excluded); must not be empty.
    pub seeds: Range<u64>,
    /// Actions per episode (at least 1); an episode has `frames + 1` frames.
    pub frames: usize,
    /// How the player is driven.
    pub policy: Policy,
    /// The looks of each seed's walk: one episode per seed and theme.
    pub themes: Vec<Theme>,
    /// Frame height and width in pixels (8 to 1024).
    pub size: usize,
    /// Which events the episodes get.
    pub events: EventPolicy,
    /// Output directory (created if missing).
    pub out: PathBuf,
}

/// What [`write`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetReport {
    /// The output directory.
    pub out: PathBuf,
    /// Episodes written (seeds × themes).
    pub episodes: usize,
    /// The seeds walked.
    pub seeds: Vec<u64>,
    /// The themes' names, in the order written.
    pub themes: Vec<&'static str>,
    /// Frames per episode (actions + 1).
    pub frames: usize,
    /// Frame height and width in pixels.
    pub size: usize,
    /// The policy's name.
    pub policy: &'static str,
    /// The event policy's name.
    pub events: &'static str,
    /// Fraction of a world's floor tiles visited, mean over seeds.
    pub coverage: f64,
    /// Wall-clock seconds the whole write took.
    pub seconds: f64,
}

/// Checks `options` and writes the dataset they describe.
///
/// # Errors
/// [`LabError::Usage`] for options out of range (nothing is written);
/// [`LabError::Runtime`] when a file cannot be written or encoded.
pub fn write(options: &DatasetOptions) -> Result<DatasetReport, LabError> {
    let started = std::time::Instant::now();
    check(options)?;
    std::fs::create_dir_all(&options.out).map_err(|e| io_error(&options.out, &e))?;
    let themes = &options.themes;

    // Walks, in seed order (the balance counts run across the dataset).
    let mut balance = Balance::default();
    let mut walks = Vec::new();
    for seed in options.seeds.clone() {
        let world = World::new(seed, Theme::Dungeon);
        let mut walk = walk(&world, options.frames, options.policy, &mut balance);
        walk.events = options.events.schedule(seed, options.frames as u64);
        walks.push((seed, world, walk));
    }

    // Render and write every (seed, theme), on all cores.
    let jobs: Vec<(usize, Theme)> = (0..walks.len())
        .flat_map(|w| themes.iter().map(move |&t| (w, t)))
        .collect();
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<String>> = Mutex::new(None);
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(jobs.len());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(w, theme)) = jobs.get(i) else {
                        break;
                    };
                    let (seed, world, walk) = &walks[w];
                    let dir = options.out.join(format!("{theme}_{seed}"));
                    let world = world.with_theme(theme);
                    if let Err(m) = write_episode(&world, walk, options.size, &dir) {
                        let mut f = failure.lock().unwrap_or_else(|e| e.into_inner());
                        f.get_or_insert(m);
                        next.store(jobs.len(), Ordering::Relaxed);
                    }
                }
            });
        }
    });
    if let Some(m) = failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(LabError::Runtime(m));
    }

    let index = index_json(options, &walks, &balance);
    let path = options.out.join("index.json");
    let text = serde_json::to_string_pretty(&index)
        .map_err(|e| LabError::Runtime(format!("cannot serialise the index: {e}")))?
        + "\n";
    wgraph_engine::output::write_file(&path, text.as_bytes()).map_err(|e| io_error(&path, &e))?;
    Ok(DatasetReport {
        out: options.out.clone(),
        episodes: jobs.len(),
        seeds: walks.iter().map(|(s, _, _)| *s).collect(),
        themes: themes.iter().map(|t| t.name()).collect(),
        frames: options.frames + 1,
        size: options.size,
        policy: options.policy.name(),
        events: options.events.name(),
        coverage: mean_coverage(&walks),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The usage errors of `options`, in the order the binary has always
/// reported them.
fn check(options: &DatasetOptions) -> Result<(), LabError> {
    if options.seeds.is_empty() {
        return Err(LabError::Usage(format!(
            "the seed range {}..{} is empty: A..B needs A < B (B is excluded)",
            options.seeds.start, options.seeds.end
        )));
    }
    if options.frames == 0 {
        return Err(LabError::Usage("--frames must be at least 1".to_string()));
    }
    if !(8..=1024).contains(&options.size) {
        return Err(LabError::Usage(format!(
            "--size must be within 8..=1024 pixels, got {}",
            options.size
        )));
    }
    let bytes = (options.frames + 1)
        .checked_mul(options.size * options.size * 3)
        .filter(|&b| b <= MAX_EPISODE_BYTES);
    if bytes.is_none() {
        return Err(LabError::Usage(format!(
            "an episode of {} frames at {}x{} exceeds 1 GiB; use fewer --frames or a smaller --size",
            options.frames + 1,
            options.size,
            options.size
        )));
    }
    Ok(())
}

fn io_error(path: &Path, e: &std::io::Error) -> LabError {
    LabError::Runtime(format!("cannot write `{}`: {e}", path.display()))
}

/// Renders `walk` in `world` and writes its files into `dir`.
fn write_episode(world: &World, walk: &Walk, size: usize, dir: &Path) -> Result<(), String> {
    let io = |p: &Path, e: std::io::Error| format!("cannot write `{}`: {e}", p.display());
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let frames = walk.poses.len();
    let mut rgb = Vec::with_capacity(frames * size * size * 3);
    let mut depth = Vec::with_capacity(frames * size * size);
    let mut frame = Frame {
        width: size,
        height: size,
        ..Frame::default()
    };
    // Frame 0 is before any tick; frame t + 1 is after tick t (its events too).
    let mut states = vec![EventState::default()];
    states.extend(events::replay(world, &walk.events, &walk.poses[1..]));
    let mut on = Vec::with_capacity(frames * 4);
    for (f, (pose, state)) in walk.poses.iter().zip(&states).enumerate() {
        let tick = f.saturating_sub(1) as u64;
        world.render_events_into(pose, state, tick, &mut frame);
        rgb.extend_from_slice(&frame.rgb);
        depth.extend_from_slice(&frame.depth);
        on.extend(Channel::ALL.map(|c| f32::from(u8::from(state.is_on(c)))));
    }
    let n = walk.actions.len();
    let hot: Vec<f32> = walk.actions.iter().flat_map(|k| k.multi_hot()).collect();
    let poses: Vec<f32> = walk.poses.iter().flat_map(|p| p.to_array()).collect();
    let tensors = [
        ("frames.npy", Tensor::from_u8(&[frames, size, size, 3], rgb)),
        ("depth.npy", Tensor::from_f32(&[frames, size, size], depth)),
        ("actions.npy", Tensor::from_f32(&[n, 9], hot)),
        ("poses.npy", Tensor::from_f32(&[frames, 4], poses)),
        ("events.npy", Tensor::from_f32(&[frames, 4], on)),
    ];
    for (name, tensor) in tensors {
        let bytes = tensor
            .and_then(|t| write_npy(&t))
            .map_err(|e| format!("cannot encode {name}: {e}"))?;
        let path = dir.join(name);
        wgraph_engine::output::write_file(&path, &bytes).map_err(|e| io(&path, e))?;
    }
    let mut text = format!(
        "# wgraph dataset: world seed {}, theme {}; one line of keys per tick\n",
        world.seed(),
        world.theme()
    );
    for k in &walk.actions {
        text.push_str(&k.to_string());
        text.push('\n');
    }
    let path = dir.join("actions.txt");
    wgraph_engine::output::write_file(&path, text.as_bytes()).map_err(|e| io(&path, e))?;

    let captions = captions_json(world, &walk.events);
    let path = dir.join("captions.json");
    let text = serde_json::to_string_pretty(&captions)
        .map_err(|e| format!("cannot encode captions.json: {e}"))?;
    wgraph_engine::output::write_file(&path, (text + "\n").as_bytes()).map_err(|e| io(&path, e))?;
    let path = dir.join("local.txt");
    let local = local_captions(&walk.events, frames).join("\n") + "\n";
    wgraph_engine::output::write_file(&path, local.as_bytes()).map_err(|e| io(&path, e))
}

/// An episode's `captions.json`: global caption, theme, layout, events.
fn captions_json(world: &World, schedule: &[Event]) -> serde_json::Value {
    use serde_json::json;
    let layout = world.layout();
    json!({
        "global": events::global_caption(world.theme(), layout),
        "theme": world.theme().name(),
        "layout": layout.name(),
        "events": schedule.iter().map(|e| json!({
            "tick": e.tick,
            "frame": e.tick + 1,
            "caption": e.kind.caption(),
            "event": e.kind.name(),
        })).collect::<Vec<_>>(),
        "channels": Channel::ALL.map(Channel::name),
    })
}

/// Per frame, the local caption in force: the captions of the latest tick
/// with events at or before the frame's tick (frame f shows tick f − 1),
/// joined by " and "; `-` before any.
fn local_captions(schedule: &[Event], frames: usize) -> Vec<String> {
    (0..frames)
        .map(|f| {
            let Some(tick) = f.checked_sub(1).map(|t| t as u64) else {
                return "-".to_string();
            };
            let Some(last) = schedule.iter().rev().find(|e| e.tick <= tick) else {
                return "-".to_string();
            };
            schedule
                .iter()
                .filter(|e| e.tick == last.tick)
                .map(|e| e.kind.caption())
                .collect::<Vec<_>>()
                .join(" and ")
        })
        .collect()
}

fn mean_coverage(walks: &[(u64, World, Walk)]) -> f64 {
    walks.iter().map(|(_, _, w)| w.coverage).sum::<f64>() / walks.len().max(1) as f64
}

fn index_json(
    options: &DatasetOptions,
    walks: &[(u64, World, Walk)],
    balance: &Balance,
) -> serde_json::Value {
    use serde_json::json;
    let themes = &options.themes;
    let mut episodes = Vec::new();
    for (seed, world, walk) in walks {
        for t in themes {
            episodes.push(json!({
                "dir": format!("{t}_{seed}"),
                "seed": seed,
                "held_out": *seed >= FIRST_HELD_OUT_SEED,
                "theme": t.name(),
                "layout": world.layout().name(),
                "global_caption": events::global_caption(*t, world.layout()),
                "events": walk.events.len(),
                "coverage": walk.coverage,
                "visited_tiles": walk.visited,
                "free_tiles": world.map().free_tiles(),
            }));
        }
    }
    let keys: serde_json::Map<String, serde_json::Value> = Keys::NAMES
        .iter()
        .zip(balance.keys())
        .map(|(n, c)| (n.to_string(), json!(c)))
        .collect();
    let combos: serde_json::Map<String, serde_json::Value> = balance
        .combos()
        .iter()
        .map(|(k, c)| (k.to_string(), json!(c)))
        .collect();
    json!({
        "generator": concat!("wgraph dataset ", env!("CARGO_PKG_VERSION")),
        "seeds": walks.iter().map(|(s, _, _)| s).collect::<Vec<_>>(),
        "themes": themes.iter().map(|t| t.name()).collect::<Vec<_>>(),
        "frames": options.frames + 1,
        "actions_per_episode": options.frames,
        "size": [options.size, options.size],
        "policy": options.policy.name(),
        "events": options.events.name(),
        "event_captions": wgraph_groundtruth::EventKind::ALL.map(wgraph_groundtruth::EventKind::caption),
        "key_order": Keys::NAMES,
        "max_depth": MAX_DEPTH,
        "episodes": episodes,
        "action_histogram": keys,
        "combo_histogram": combos,
        "histogram_note": "ticks per key (and per key combination) over one walk per seed; themes share the walk",
        "coverage": mean_coverage(walks),
        "coverage_note": "fraction of a world's floor tiles visited, mean over seeds",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(out: &Path) -> DatasetOptions {
        DatasetOptions {
            seeds: 0..2,
            frames: 8,
            policy: Policy::Explore,
            themes: vec![Theme::Dungeon, Theme::Neon],
            size: 16,
            events: EventPolicy::Auto,
            out: out.to_path_buf(),
        }
    }

    #[test]
    fn bad_options_are_usage_errors_and_write_nothing() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let out = dir.path().join("out");
        let bad = [
            DatasetOptions {
                seeds: 3..3,
                ..options(&out)
            },
            DatasetOptions {
                frames: 0,
                ..options(&out)
            },
            DatasetOptions {
                size: 4,
                ..options(&out)
            },
            DatasetOptions {
                frames: usize::MAX / 2,
                ..options(&out)
            },
        ];
        for o in bad {
            assert!(matches!(write(&o), Err(LabError::Usage(_))), "{o:?}");
        }
        assert!(!out.exists());
    }

    #[test]
    fn writes_every_episode_and_the_index() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let report = write(&options(dir.path())).expect("the dataset is written");
        assert_eq!(report.episodes, 4);
        assert_eq!(report.seeds, [0, 1]);
        assert_eq!(report.themes, ["dungeon", "neon"]);
        assert_eq!((report.frames, report.size), (9, 16));
        for ep in ["dungeon_0", "neon_0", "dungeon_1", "neon_1"] {
            let local =
                std::fs::read_to_string(dir.path().join(ep).join("local.txt")).expect("local.txt");
            assert_eq!(local.lines().count(), 9, "{ep}");
        }
        let index = std::fs::read_to_string(dir.path().join("index.json")).expect("index");
        let index: serde_json::Value = serde_json::from_str(&index).expect("index JSON");
        assert_eq!(index["episodes"].as_array().map(Vec::len), Some(4));
        assert_eq!(index["policy"], "explore");
        assert_eq!(index["events"], "auto");
        // The same walk in both themes.
        let actions = |ep: &str| {
            let text = std::fs::read_to_string(dir.path().join(ep).join("actions.txt"))
                .expect("actions.txt");
            text.lines().skip(1).map(str::to_string).collect::<Vec<_>>()
        };
        assert_eq!(actions("dungeon_1"), actions("neon_1"));
        assert!(serde_json::to_string(&report).is_ok());
    }

    #[test]
    fn local_captions_follow_the_latest_tick_with_events() {
        use wgraph_groundtruth::EventKind;
        let schedule = [
            Event {
                tick: 1,
                kind: EventKind::ALL[0],
            },
            Event {
                tick: 1,
                kind: EventKind::ALL[2],
            },
            Event {
                tick: 3,
                kind: EventKind::ALL[4],
            },
        ];
        let local = local_captions(&schedule, 6);
        let both = format!(
            "{} and {}",
            EventKind::ALL[0].caption(),
            EventKind::ALL[2].caption()
        );
        assert_eq!(local[0], "-");
        assert_eq!(local[1], "-");
        assert_eq!(local[2], both);
        assert_eq!(local[3], both);
        assert_eq!(local[4], EventKind::ALL[4].caption());
        assert_eq!(local[5], EventKind::ALL[4].caption());
    }
}
