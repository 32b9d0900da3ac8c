//! `wgraph dataset`: episodes of the ground-truth world (crate
//! `wgraph-groundtruth`) as training data.
//!
//! For each seed of `--seeds` a policy drives the player for `--frames` ticks;
//! the trajectory (keys and poses) depends only on the geometry, so with
//! `--theme all` the three themes of a seed are the *same* walk in three
//! looks (paired data for theme-conditioned models). Each episode is a
//! directory `OUT/<theme>_<seed>/` with
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
//! layout, event count and whether its seed is held out, ≥ 1000), the action
//! histogram and the position coverage (fraction of a world's floor tiles
//! the walk visited).
//!
//! **Events.** `--events none` (the default) renders no events: the frames
//! are what they were before events existed, and the schedule is empty.
//! `--events auto` gives every episode the seeded script of
//! `wgraph_groundtruth::events::script` (2–4 events: a ghost appears, the lights go
//! out and maybe come back, it starts and maybe stops snowing, a door
//! opens), the same for every theme of a seed; event `tick` t is applied
//! after action t, so frame t + 1 is the first to show it.
//!
//! **Held-out seeds.** Seeds ≥ 1000 are for `wgraph eval`; the dataset
//! writes them (eval sweeps read their walks) but marks them `held_out` in
//! the index, and the training scripts refuse them.
//!
//! **Policies.** `random`: each decision draws one of [`COMBOS`] uniformly
//! and holds it 1–4 ticks. `explore`: walks forward and turns when a wall or
//! object is close ahead (the depth of the centre column at the horizon,
//! `World::probe`), towards the more open side; at junctions it often turns
//! into side passages it has not visited; otherwise it draws a combination
//! with balanced sampling, as PlayGen does: each combination has a target
//! share ([`TARGETS`], about half of them with W, so the walk is mostly
//! forward) and its weight is the target times `target / observed share`
//! (clamped to 0.25–4) over every action chosen so far in the dataset, so
//! under-represented actions are preferred and the histogram converges to
//! the targets. Everything is seeded from the arguments: the same command
//! writes the same bytes (episodes depend on the seeds before them through
//! the shared action counts).

use crate::Outcome;
use clap::ValueEnum;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use wgraph_engine::npy::write_npy;
use wgraph_engine::tensor::Tensor;
use wgraph_groundtruth::events::{self, Channel, Event, EventState};
use wgraph_groundtruth::{Frame, Keys, MAX_DEPTH, Pose, SplitMix64, Theme, World, mix64};

/// Arguments of `wgraph dataset`.
#[derive(clap::Args, Debug)]
pub struct DatasetArgs {
    /// World seeds: `A..B` (B excluded), `A..=B`, or one seed `A`.
    #[arg(long, value_name = "A..B")]
    seeds: String,
    /// Actions per episode; an episode has N + 1 frames.
    #[arg(long, value_name = "N")]
    frames: usize,
    /// How the player is driven.
    #[arg(long, value_enum, default_value_t = Policy::Explore)]
    policy: Policy,
    /// The look of the episodes (`all`: every seed in every theme, same walk).
    #[arg(long, value_enum, default_value_t = ThemeArg::Dungeon)]
    theme: ThemeArg,
    /// Frame height and width in pixels.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Text-triggered events: `none`, or `auto` (a seeded script per seed).
    #[arg(long, value_enum, default_value_t = EventsArg::None)]
    events: EventsArg,
    /// Output directory.
    out: PathBuf,
}

/// Episode policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Policy {
    /// Random key combinations held 1–4 ticks.
    Random,
    /// Mostly forward, turning at walls, balanced across actions.
    Explore,
}

/// `--events` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EventsArg {
    /// No events (the frames of datasets written before events existed).
    None,
    /// `wgraph_groundtruth::events::script(seed, frames)` for every seed.
    Auto,
}

/// First held-out seed (`wgraph eval`'s).
use wgraph_groundtruth::FIRST_HELD_OUT_SEED;

/// `--theme` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ThemeArg {
    Dungeon,
    Neon,
    Forest,
    All,
}

impl ThemeArg {
    fn themes(self) -> Vec<Theme> {
        match self {
            ThemeArg::Dungeon => vec![Theme::Dungeon],
            ThemeArg::Neon => vec![Theme::Neon],
            ThemeArg::Forest => vec![Theme::Forest],
            ThemeArg::All => Theme::ALL.to_vec(),
        }
    }
}

/// The key combinations the policies choose from.
pub const COMBOS: [Keys; 15] = [
    Keys::NONE,
    Keys::W,
    Keys::S,
    Keys::A,
    Keys::D,
    Keys::LEFT,
    Keys::RIGHT,
    Keys::UP,
    Keys::DOWN,
    Keys::SPACE,
    Keys::from_bits(Keys::W.bits() | Keys::LEFT.bits()),
    Keys::from_bits(Keys::W.bits() | Keys::RIGHT.bits()),
    Keys::from_bits(Keys::W.bits() | Keys::A.bits()),
    Keys::from_bits(Keys::W.bits() | Keys::D.bits()),
    Keys::from_bits(Keys::W.bits() | Keys::SPACE.bits()),
];

/// Target share of each of [`COMBOS`] under `explore` (sums to 1).
pub const TARGETS: [f64; 15] = [
    0.07, 0.20, 0.06, 0.06, 0.06, 0.08, 0.08, 0.05, 0.05, 0.04, 0.07, 0.07, 0.04, 0.04, 0.03,
];

/// Largest bytes of one episode's frames (they are built in memory).
const MAX_EPISODE_BYTES: usize = 1 << 30;

/// `wgraph dataset ...`
pub fn run(args: &DatasetArgs) -> Outcome {
    let started = std::time::Instant::now();
    let (first, end) = match parse_seeds(&args.seeds) {
        Ok(r) => r,
        Err(m) => return usage(&m),
    };
    if args.frames == 0 {
        return usage("--frames must be at least 1");
    }
    if !(8..=1024).contains(&args.size) {
        return usage(&format!(
            "--size must be within 8..=1024 pixels, got {}",
            args.size
        ));
    }
    let bytes = (args.frames + 1)
        .checked_mul(args.size * args.size * 3)
        .filter(|&b| b <= MAX_EPISODE_BYTES);
    if bytes.is_none() {
        return usage(&format!(
            "an episode of {} frames at {}x{} exceeds 1 GiB; use fewer --frames or a smaller --size",
            args.frames + 1,
            args.size,
            args.size
        ));
    }
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        return io_failure(&args.out, &e);
    }
    let themes = args.theme.themes();

    // Walks, in seed order (the balance counts run across the dataset).
    let mut balance = Balance::default();
    let mut walks = Vec::new();
    for seed in first..end {
        let world = World::new(seed, Theme::Dungeon);
        let mut walk = walk(&world, args.frames, args.policy, &mut balance);
        if args.events == EventsArg::Auto {
            walk.events = events::script(seed, args.frames as u64);
        }
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
                    let dir = args.out.join(format!("{theme}_{seed}"));
                    let world = world.with_theme(theme);
                    if let Err(m) = write_episode(&world, walk, args.size, &dir) {
                        let mut f = failure.lock().unwrap_or_else(|e| e.into_inner());
                        f.get_or_insert(m);
                        next.store(jobs.len(), Ordering::Relaxed);
                    }
                }
            });
        }
    });
    if let Some(m) = failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        eprintln!("error: {m}");
        return Outcome::RuntimeFailure;
    }

    let index = index_json(args, &themes, &walks, &balance);
    let path = args.out.join("index.json");
    let text = match serde_json::to_string_pretty(&index) {
        Ok(t) => t + "\n",
        Err(e) => {
            eprintln!("error: cannot serialise the index: {e}");
            return Outcome::RuntimeFailure;
        }
    };
    if let Err(e) = wgraph_engine::output::write_file(&path, text.as_bytes()) {
        return io_failure(&path, &e);
    }
    let coverage = mean_coverage(&walks);
    let names: Vec<&str> = themes.iter().map(|t| t.name()).collect();
    println!(
        "wrote {} episodes ({} seeds × {}) of {} frames at {}x{} to {}: policy {}, coverage {:.1}%, {:.2} s",
        jobs.len(),
        walks.len(),
        names.join("/"),
        args.frames + 1,
        args.size,
        args.size,
        args.out.display(),
        policy_name(args.policy),
        coverage * 100.0,
        started.elapsed().as_secs_f64()
    );
    Outcome::Ok
}

fn usage(message: &str) -> Outcome {
    eprintln!(
        "error: {}",
        wgraph_grammar::diagnostic::escape_controls(message)
    );
    Outcome::Usage
}

fn io_failure(path: &Path, e: &std::io::Error) -> Outcome {
    eprintln!("error: cannot write `{}`: {e}", path.display());
    Outcome::RuntimeFailure
}

fn policy_name(p: Policy) -> &'static str {
    match p {
        Policy::Random => "random",
        Policy::Explore => "explore",
    }
}

/// `A..B`, `A..=B` or `A` as the half-open range `[A, B)`.
fn parse_seeds(text: &str) -> Result<(u64, u64), String> {
    let bad =
        || format!("--seeds: expected A..B, A..=B or a single seed (numbers >= 0), got `{text}`");
    let num = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
    let (a, b) = if let Some((a, b)) = text.split_once("..=") {
        let b = num(b)?.checked_add(1).ok_or_else(bad)?;
        (num(a)?, b)
    } else if let Some((a, b)) = text.split_once("..") {
        (num(a)?, num(b)?)
    } else {
        let a = num(text)?;
        (a, a.checked_add(1).ok_or_else(bad)?)
    };
    if a >= b {
        return Err(format!(
            "--seeds `{text}` is empty: A..B needs A < B (B is excluded)"
        ));
    }
    Ok((a, b))
}

/// Action counts across the dataset, per combination and per key.
#[derive(Debug, Default)]
struct Balance {
    combos: std::collections::BTreeMap<Keys, u64>,
    keys: [u64; 9],
    total: u64,
}

impl Balance {
    fn record(&mut self, k: Keys) {
        *self.combos.entry(k).or_default() += 1;
        for (i, c) in self.keys.iter_mut().enumerate() {
            if k.contains(Keys::key(i)) {
                *c += 1;
            }
        }
        self.total += 1;
    }

    /// Balanced-sampling weight of `COMBOS[i]`.
    fn weight(&self, i: usize) -> f64 {
        let target = TARGETS[i];
        if self.total < 30 {
            return target;
        }
        let seen = self.combos.get(&COMBOS[i]).copied().unwrap_or(0) as f64 / self.total as f64;
        target * (target / seen.max(1e-6)).clamp(0.25, 4.0)
    }
}

/// One seed's walk: the keys of each tick and the pose after each frame.
struct Walk {
    actions: Vec<Keys>,
    poses: Vec<Pose>,
    /// Floor tiles visited / floor tiles.
    coverage: f64,
    visited: usize,
    /// Scheduled events (tick t: after action t).
    events: Vec<Event>,
}

/// Drives `world` for `n` ticks with `policy`.
fn walk(world: &World, n: usize, policy: Policy, balance: &mut Balance) -> Walk {
    let salt = match policy {
        Policy::Random => 0x52A4_D0A1,
        Policy::Explore => 0xE8F1_0E2E,
    };
    let mut rng = SplitMix64::new(mix64(world.seed() ^ salt));
    let size = world.map().size();
    let mut visits = vec![0u32; size * size];
    let visit = |p: &Pose, visits: &mut Vec<u32>| {
        let (x, y) = p.tile();
        if (0..size as i32).contains(&x) && (0..size as i32).contains(&y) {
            visits[y as usize * size + x as usize] += 1;
        }
    };
    let mut pose = world.start_pose();
    visit(&pose, &mut visits);
    let mut poses = vec![pose];
    let mut actions = Vec::with_capacity(n);
    // Keys planned for the next ticks.
    let mut plan: VecDeque<Keys> = VecDeque::new();
    for _ in 0..n {
        let keys = match policy {
            Policy::Random => {
                if plan.is_empty() {
                    let k = COMBOS[rng.below(COMBOS.len())];
                    plan.extend(std::iter::repeat_n(k, rng.range(1, 4)));
                }
                plan.pop_front().unwrap_or(Keys::NONE)
            }
            Policy::Explore => {
                // Judged along the nearest axis: a weave's slanted view of a
                // corridor wall is not a dead end.
                let axis = (pose.yaw / 90.0).round() * 90.0 - pose.yaw;
                let ahead = world.probe(&pose, axis);
                if ahead < 0.75 && plan.front().is_some_and(|k| k.contains(Keys::W)) {
                    plan.clear(); // about to bump into something
                }
                if plan.is_empty() {
                    let view = View { axis, ahead };
                    plan_explore(world, &pose, view, &visits, &mut rng, balance, &mut plan);
                }
                plan.pop_front().unwrap_or(Keys::NONE)
            }
        };
        balance.record(keys);
        world.step(&mut pose, keys);
        visit(&pose, &mut visits);
        actions.push(keys);
        poses.push(pose);
    }
    let free = world.map().free_tiles().max(1);
    let visited = visits.iter().filter(|&&v| v > 0).count();
    Walk {
        actions,
        poses,
        coverage: visited as f64 / free as f64,
        visited,
        events: Vec::new(),
    }
}

/// Ticks of Left (negative) or Right (positive) that turn `yaw` to the
/// axis-aligned heading nearest to `yaw + delta` degrees.
fn turn_ticks(yaw: f32, delta: f32) -> i32 {
    let target = ((yaw + delta) / 90.0).round() * 90.0;
    let diff = (target - yaw + 540.0).rem_euclid(360.0) - 180.0;
    (diff / wgraph_groundtruth::TURN_DEG).round() as i32
}

fn push_turn(plan: &mut VecDeque<Keys>, ticks: i32) {
    let key = if ticks < 0 { Keys::LEFT } else { Keys::RIGHT };
    plan.extend(std::iter::repeat_n(key, ticks.unsigned_abs() as usize));
}

/// What `explore` sees along the nearest axis-aligned heading.
struct View {
    /// Degrees from the heading to that axis.
    axis: f32,
    /// Distance to the first wall or object along it.
    ahead: f32,
}

/// Plans the next `explore` manoeuvre into `plan`: a turn at a wall, a turn
/// into an unvisited side passage, or a balanced draw of [`COMBOS`] expanded
/// into a short manoeuvre that keeps the heading axis-aligned (glances and
/// weaves turn back by as much as they turned; looks return to level).
fn plan_explore(
    world: &World,
    pose: &Pose,
    view: View,
    visits: &[u32],
    rng: &mut SplitMix64,
    balance: &Balance,
    plan: &mut VecDeque<Keys>,
) {
    let size = world.map().size();
    let visits_at = |offset: f32| {
        let (s, c) = (pose.yaw + view.axis + offset).to_radians().sin_cos();
        let (x, y) = ((pose.x + c).floor(), (pose.y + s).floor());
        if x < 0.0 || y < 0.0 || x as usize >= size || y as usize >= size {
            return u32::MAX;
        }
        visits[y as usize * size + x as usize]
    };
    let open = |offset: f32| world.probe(pose, view.axis + offset) > 1.2;
    if view.ahead < 0.75 {
        // Blocked: turn 90° to an open side (the less visited one), or around.
        let side = match (open(-90.0), open(90.0)) {
            (true, true) => match visits_at(-90.0).cmp(&visits_at(90.0)) {
                std::cmp::Ordering::Less => -90.0,
                std::cmp::Ordering::Greater => 90.0,
                // Equally new: the less used key.
                std::cmp::Ordering::Equal if balance.keys[4] <= balance.keys[5] => -90.0,
                std::cmp::Ordering::Equal => 90.0,
            },
            (true, false) => -90.0,
            (false, true) => 90.0,
            (false, false) if balance.keys[4] <= balance.keys[5] => -180.0,
            (false, false) => 180.0,
        };
        push_turn(plan, turn_ticks(pose.yaw, side));
        if plan.is_empty() {
            plan.push_back(Keys::LEFT); // already aligned yet blocked: any turn helps
        }
        return;
    }
    // Junction: an unvisited side passage; turn into it.
    for offset in [-90.0, 90.0] {
        if open(offset) && visits_at(offset) == 0 && visits_at(0.0) > 0 && rng.chance(0.6) {
            push_turn(plan, turn_ticks(pose.yaw, offset));
            if !plan.is_empty() {
                return;
            }
        }
    }
    let weights: Vec<f64> = (0..COMBOS.len()).map(|i| balance.weight(i)).collect();
    let mut pick = rng.unit() * weights.iter().sum::<f64>();
    let mut i = 0;
    while i + 1 < weights.len() && pick >= weights[i] {
        pick -= weights[i];
        i += 1;
    }
    let k = COMBOS[i];
    let back = |k: Keys| -> Keys {
        let swap = [
            (Keys::LEFT, Keys::RIGHT),
            (Keys::RIGHT, Keys::LEFT),
            (Keys::UP, Keys::DOWN),
            (Keys::DOWN, Keys::UP),
        ];
        swap.iter()
            .fold(Keys::from_bits(k.bits() & Keys::W.bits()), |acc, (a, b)| {
                if k.contains(*a) { acc | *b } else { acc }
            })
    };
    let turns = [Keys::LEFT, Keys::RIGHT, Keys::UP, Keys::DOWN];
    if turns.iter().any(|t| k.contains(*t)) {
        // Glance, look or weave: there and back.
        let reps = rng.range(1, 3);
        plan.extend(std::iter::repeat_n(k, reps));
        plan.extend(std::iter::repeat_n(back(k), reps));
    } else {
        let reps = match k {
            k if k == Keys::W => rng.range(2, 8),
            k if k.contains(Keys::W) => rng.range(1, 4),
            _ => rng.range(1, 3),
        };
        plan.extend(std::iter::repeat_n(k, reps));
    }
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
    args: &DatasetArgs,
    themes: &[Theme],
    walks: &[(u64, World, Walk)],
    balance: &Balance,
) -> serde_json::Value {
    use serde_json::json;
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
        .zip(balance.keys)
        .map(|(n, c)| (n.to_string(), json!(c)))
        .collect();
    let combos: serde_json::Map<String, serde_json::Value> = balance
        .combos
        .iter()
        .map(|(k, c)| (k.to_string(), json!(c)))
        .collect();
    json!({
        "generator": concat!("wgraph dataset ", env!("CARGO_PKG_VERSION")),
        "seeds": walks.iter().map(|(s, _, _)| s).collect::<Vec<_>>(),
        "themes": themes.iter().map(|t| t.name()).collect::<Vec<_>>(),
        "frames": args.frames + 1,
        "actions_per_episode": args.frames,
        "size": [args.size, args.size],
        "policy": policy_name(args.policy),
        "events": match args.events { EventsArg::None => "none", EventsArg::Auto => "auto" },
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

    #[test]
    fn seed_ranges() {
        assert_eq!(parse_seeds("0..2"), Ok((0, 2)));
        assert_eq!(parse_seeds("3..=5"), Ok((3, 6)));
        assert_eq!(parse_seeds("7"), Ok((7, 8)));
        assert!(parse_seeds("2..2").unwrap_err().contains("empty"));
        assert!(parse_seeds("a..3").is_err());
        assert!(parse_seeds("-1..3").is_err());
        assert!(parse_seeds("18446744073709551615..=18446744073709551615").is_err());
        assert!((TARGETS.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn explore_balances_actions_and_moves_around() {
        let mut balance = Balance::default();
        let (mut coverage, mut random_coverage) = (0.0, 0.0);
        for seed in 0..4 {
            let world = World::new(seed, Theme::Dungeon);
            let r = walk(&world, 400, Policy::Random, &mut Balance::default());
            random_coverage += r.coverage;
            let w = walk(&world, 400, Policy::Explore, &mut balance);
            assert_eq!(w.actions.len(), 400);
            assert_eq!(w.poses.len(), 401);
            for p in &w.poses {
                assert!(world.is_free(p.x, p.y));
            }
            coverage += w.coverage;
        }
        // Every combination is used, none dominates, W is the most common key.
        let total = balance.total as f64;
        for (i, k) in COMBOS.iter().enumerate() {
            let share = balance.combos.get(k).copied().unwrap_or(0) as f64 / total;
            assert!(share > TARGETS[i] * 0.3, "{k}: {share}");
            assert!(share < TARGETS[i] * 3.0 + 0.05, "{k}: {share}");
        }
        let w = balance.keys[0];
        assert!(balance.keys.iter().all(|&c| c <= w), "{:?}", balance.keys);
        assert!(
            coverage > 1.2 * random_coverage && coverage / 4.0 > 0.04,
            "explore {coverage}, random {random_coverage}"
        );
        let mut b2 = Balance::default();
        let world = World::new(0, Theme::Dungeon);
        let a = walk(&world, 50, Policy::Random, &mut b2);
        let b = walk(&world, 50, Policy::Random, &mut Balance::default());
        assert_eq!(a.actions, b.actions, "deterministic");
        assert!(a.actions.iter().all(|k| COMBOS.contains(k)));
    }
}
