//! `wgraph eval`: a graph against the ground-truth world.
//!
//! The ground truth ([`wgraph_groundtruth::World`], held-out seed) renders the start
//! view and, tick by tick, the view after each action. The graph is run from
//! that same start view (every `image` node's `path`, and an `npy` node named
//! `start_depth`, are pointed at it) with the same actions (every `actions`
//! node). Generated frame `t` is compared with ground-truth frame `t`:
//! PSNR and SSIM per tick and averaged, drift (the first tick under a PSNR
//! threshold), the VAE round trip of the ground truth (the graph's RGB
//! encoder and decoder), and action accuracy: an inverse-dynamics model
//! p(a | o_t, o_t+1) reads the keys back from generated frame pairs, next to
//! its accuracy on ground-truth pairs.
//!
//! A graph that simulates geometry (Yan-Edit's depth branch) names its depth
//! stream with an `npy_dump` node called `depth_dump` (signed depth
//! `2·d/16 − 1`, as the `world` node's `depth`); eval then also reports the
//! mean absolute depth error against the ground truth, in maze cells. The
//! theme of the ground truth (`--theme`) changes the look only, so running
//! eval twice with two themes (and the graph's style prompt set to match)
//! shows whether a restyle moved the geometry.
//!
//! **Detail over time**: per tick, the generated frame's high-frequency power
//! over the ground truth's (`quality::detail_ratio`), and the first tick it
//! falls below one half — a rollout blurring to the scene's mean colours
//! shows here even where PSNR stays high.
//!
//! **Instruction following** (`--instructions auto|FILE`): a schedule of
//! event captions ("12: a ghost appears"; `auto` is
//! [`wgraph_groundtruth::events::script`] for the world seed) goes to the ground
//! truth and to the graph — every `prompt_schedule` node's `schedule`
//! (tick 0: the global caption of the theme and layout) and every `world`
//! node's `events` are set to it. A detector of events from pixels
//! ([`wgraph_groundtruth::detect`]) reads both frame streams; an event is followed
//! when its effect is seen within `--event-window` ticks of its tick, and a
//! channel nobody asked for must never be seen
//! ([`wgraph_groundtruth::score_instructions`]). The ground truth's own score is
//! reported next to the graph's, as the detector's check.

use crate::backends::Backends;
use crate::load::{LoadConfig, Loaded, PathOverride, load};
use crate::quality::{
    Drift, PlotLabels, detail_half_tick, detail_ratio, drift_tick, edges_kept, plot_svg, psnr,
    ssim, strip,
};
use crate::{EvalArgs, Outcome};
use image::RgbImage;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wgraph_engine::graph::Graph;
use wgraph_engine::model::{Backend, Model, ModelOptions};
use wgraph_engine::node::{DisplayTarget, OutputConfig};
use wgraph_engine::schedule::{RunConfig, Runner};
use wgraph_engine::tensor::Tensor;
use wgraph_engine::value::Actions;
use wgraph_groundtruth::events::{self, Event, EventState};
use wgraph_groundtruth::{Keys, MAX_DEPTH, Theme, World, depth_to_signed, signed_to_depth};
use wgraph_nodes::image_io::{Range, image_to_tensor, tensor_to_image};

/// Seeds below this are used for training data; eval refuses them unless asked.
pub const FIRST_HELD_OUT_SEED: u64 = wgraph_groundtruth::FIRST_HELD_OUT_SEED;

fn fail(message: String) -> Outcome {
    eprintln!(
        "error: {}",
        wgraph_grammar::diagnostic::escape_controls(&message)
    );
    Outcome::RuntimeFailure
}

fn usage(message: String) -> Outcome {
    eprintln!(
        "error: {}",
        wgraph_grammar::diagnostic::escape_controls(&message)
    );
    Outcome::Usage
}

/// `wgraph eval FILE --world-seed K --actions A --frames N --json OUT`
pub fn eval(args: &EvalArgs) -> Outcome {
    if args.world_seed < FIRST_HELD_OUT_SEED && !args.allow_training_seed {
        return usage(format!(
            "--world-seed {} is a training seed; held-out seeds start at {FIRST_HELD_OUT_SEED} (or pass --allow-training-seed)",
            args.world_seed
        ));
    }
    if args.frames == 0 {
        return usage("--frames must be at least 1".into());
    }
    if !(0.0..=1.0).contains(&args.drift_fraction) {
        return usage(format!(
            "--drift-fraction {}: expected a share between 0 and 1",
            args.drift_fraction
        ));
    }
    // Refused before the run, not after it.
    if let Some(plot) = &args.plot
        && let Err(e) = crate::plotfile::check_name(plot)
    {
        return usage(e);
    }
    let Some(theme) = Theme::parse(&args.theme) else {
        return usage(format!(
            "--theme {}: expected dungeon, neon or forest",
            args.theme
        ));
    };
    let text = match wgraph_engine::input::read_to_string(&args.actions, wgraph_engine::input::TEXT)
    {
        Ok(t) => t,
        Err(e) => return usage(format!("--actions {}: {e}", args.actions.display())),
    };
    let actions = match wgraph_nodes::action_file::parse_action_file(&text) {
        Ok(a) => a,
        Err((line, m)) => {
            return usage(format!(
                "--actions {}: line {line}: {m}",
                args.actions.display()
            ));
        }
    };
    let schedule = match &args.instructions {
        None => None,
        Some(a) if a == "auto" => Some(events::script(args.world_seed, args.frames)),
        Some(file) => match read_instructions(Path::new(file)) {
            Ok(s) => Some(s),
            Err(m) => return usage(m),
        },
    };
    let work = std::env::temp_dir().join(format!("wgraph-eval-{}", std::process::id()));
    let outcome = evaluate(args, theme, &actions, schedule.as_deref(), &work);
    let _ = std::fs::remove_dir_all(&work);
    outcome
}

fn keys_of(a: Actions) -> Keys {
    let bits = a
        .multi_hot()
        .iter()
        .enumerate()
        .filter(|(_, v)| **v > 0.5)
        .fold(0u16, |b, (i, _)| b | (1 << i));
    Keys::from_bits(bits)
}

fn rgb(frame: &wgraph_groundtruth::Frame) -> Result<RgbImage, String> {
    RgbImage::from_raw(frame.width as u32, frame.height as u32, frame.rgb.clone())
        .ok_or_else(|| "internal: frame size".to_string())
}

/// An `--instructions` file: `TICK: caption` lines (`#` comments, blank
/// lines ignored); errors name the file and line.
fn read_instructions(path: &Path) -> Result<Vec<Event>, String> {
    let text = wgraph_engine::input::read_to_string(path, wgraph_engine::input::TEXT)
        .map_err(|e| format!("--instructions {}: {e}", path.display()))?;
    let mut out: Vec<Event> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if line.contains(['"', '\\']) {
            return Err(format!(
                "--instructions {}:{}: a caption may not contain `\"` or `\\`",
                path.display(),
                i + 1
            ));
        }
        let mut events = events::parse_schedule(&[line]).map_err(|m| {
            format!(
                "--instructions {}:{}: {}",
                path.display(),
                i + 1,
                m.trim_start_matches("entry 1: ")
            )
        })?;
        if let (Some(prev), Some(e)) = (out.last(), events.first())
            && e.tick < prev.tick
        {
            return Err(format!(
                "--instructions {}:{}: tick {} is before the previous line's",
                path.display(),
                i + 1,
                e.tick
            ));
        }
        out.append(&mut events);
    }
    Ok(out)
}

/// The `--set` flags that hand `schedule` to the graph: every
/// `prompt_schedule` node's `schedule` (tick 0 carries the global caption,
/// captions of one tick are joined by " and ") and every `world` node's
/// `events`.
fn instruction_sets(file: &Path, schedule: &[Event], global: &str) -> Vec<String> {
    let mut sources = wgraph_grammar::source::SourceMap::new();
    let Ok(parsed) = wgraph_grammar::load_graph(file, &mut sources, &wgraph_grammar::FsLoader)
    else {
        return Vec::new();
    };
    let quote = |entries: &[String]| {
        let items: Vec<String> = entries.iter().map(|e| format!("\"{e}\"")).collect();
        format!("[{}]", items.join(", "))
    };
    // prompt_schedule: one entry per tick, strictly increasing from 0.
    let mut prompts: Vec<(u64, String)> = vec![(0, global.to_string())];
    for e in schedule {
        match prompts.last_mut() {
            Some((t, text)) if *t == e.tick => {
                text.push_str(if e.tick == 0 { "; " } else { " and " });
                text.push_str(e.kind.caption());
            }
            _ => prompts.push((e.tick, e.kind.caption().to_string())),
        }
    }
    let prompts: Vec<String> = prompts.iter().map(|(t, c)| format!("{t}: {c}")).collect();
    let world_events = events::schedule_entries(schedule);
    let mut sets = Vec::new();
    for st in &parsed.statements {
        if let wgraph_grammar::ast::Statement::Node(n) = st {
            match n.kind.name.as_str() {
                "prompt_schedule" => {
                    sets.push(format!("{}.schedule={}", n.name.name, quote(&prompts)))
                }
                "world" if !world_events.is_empty() => {
                    sets.push(format!("{}.events={}", n.name.name, quote(&world_events)));
                }
                _ => {}
            }
        }
    }
    sets
}

fn evaluate(
    args: &EvalArgs,
    theme: Theme,
    actions: &[Actions],
    schedule: Option<&[Event]>,
    work: &Path,
) -> Outcome {
    let frames_dir = work.join("frames");
    if let Err(e) = std::fs::create_dir_all(&frames_dir) {
        return fail(format!("cannot create {}: {e}", work.display()));
    }
    // The graph first, to learn its resolution.
    let backend = Backends::new();
    let start_png = work.join("start.png");
    let start_depth = work.join("start_depth.npy");
    // The depth stream goes under the run's output directory (a graph's
    // output paths stay inside it), in a folder no other sink uses.
    let out_dir = work.join("out");
    let depth_dir = out_dir.join(DEPTH_DIR);
    // The start files must exist before the graph is built (its sources read them).
    let world = World::new(args.world_seed, theme);
    let mut set = args.set.clone();
    if let Some(schedule) = schedule {
        let global = events::global_caption(theme, world.layout());
        set.extend(instruction_sets(&args.file, schedule, global));
    }
    let config = LoadConfig {
        set: &set,
        seed: None,
        paths: vec![
            PathOverride::actions(&args.actions),
            PathOverride {
                kind: "image",
                name: None,
                param: "path",
                path: start_png.clone(),
                flag: "eval start frame",
                required: false,
            },
            PathOverride {
                kind: "npy",
                name: Some("start_depth"),
                param: "path",
                path: start_depth.clone(),
                flag: "eval start depth",
                required: false,
            },
            PathOverride {
                kind: "npy_dump",
                name: Some(DEPTH_SINK),
                param: "dir",
                path: PathBuf::from(DEPTH_DIR),
                flag: "eval depth stream",
                required: false,
            },
        ],
        output: OutputConfig {
            dir: out_dir,
            display: DisplayTarget::PngDir(frames_dir.clone()),
            ..OutputConfig::default()
        },
        provider: None,
        backend_kind: None,
        backend: &backend,
    };
    let (h, w) = graph_resolution(&args.file).unwrap_or((64, 64));
    let mut pose = world.start_pose();
    let start = world.render(&pose, w, h);
    let truth_start = match rgb(&start) {
        Ok(i) => i,
        Err(e) => return fail(e),
    };
    if let Err(e) = crate::plotfile::save_image(&truth_start, &start_png) {
        return fail(format!("cannot write {}: {e}", start_png.display()));
    }
    let depth: Vec<f32> = start.depth.iter().map(|d| depth_to_signed(*d)).collect();
    let written = Tensor::from_f32(&[1, 1, h, w], depth)
        .map_err(|e| e.to_string())
        .and_then(|t| wgraph_engine::npy::write_npy(&t).map_err(|e| e.to_string()))
        .and_then(|b| {
            wgraph_engine::output::write_file(&start_depth, &b).map_err(|e| e.to_string())
        });
    if let Err(e) = written {
        return fail(format!("cannot write the start depth: {e}"));
    }
    let graph = match load(&args.file, &config) {
        Loaded::Graph(g) => g,
        Loaded::Errors => return Outcome::GraphErrors,
        Loaded::Usage(u) => return usage(u),
    };
    if (graph.settings.height, graph.settings.width) != (h, w) {
        return fail("internal: resolution changed while loading".into());
    }
    // Ground truth.
    let mut truth = Vec::with_capacity(args.frames as usize);
    let mut truth_depth = Vec::with_capacity(args.frames as usize);
    let schedule = schedule.unwrap_or(&[]);
    let (mut state, mut next) = (EventState::default(), 0);
    for t in 0..args.frames as usize {
        let keys = actions.get(t).copied().map(keys_of).unwrap_or(Keys::NONE);
        world.step(&mut pose, keys);
        while let Some(e) = schedule.get(next).filter(|e| e.tick <= t as u64) {
            world.apply_event(&mut state, e.kind, &pose);
            next += 1;
        }
        let frame = world.render_events(&pose, &state, t as u64, w, h);
        match rgb(&frame) {
            Ok(i) => truth.push(i),
            Err(e) => return fail(e),
        }
        truth_depth.push(frame.depth);
    }
    // The graph.
    let ticks = args.frames.div_ceil(graph.settings.frames_per_tick as u64);
    let started = std::time::Instant::now();
    let report = match Runner::new(std::sync::Arc::clone(&graph)).and_then(|mut r| {
        r.run(
            &RunConfig {
                ticks,
                ..RunConfig::default()
            },
            &mut |_| {},
        )
    }) {
        Ok(r) => r,
        Err(e) => return fail(e.to_string()),
    };
    let ms_per_tick = started.elapsed().as_secs_f64() * 1e3 / report.ticks.max(1) as f64;
    let mut generated = Vec::new();
    for t in 0..report.ticks.min(args.frames) {
        let path = frames_dir.join(format!("frame_{t:05}.png"));
        match image::open(&path) {
            Ok(i) => generated.push(i.to_rgb8()),
            Err(e) => {
                return fail(format!(
                    "the graph's display wrote no frame {t} ({}): {e}",
                    path.display()
                ));
            }
        }
    }
    let n = generated.len();
    let psnr_per_tick: Vec<f64> = (0..n).map(|t| psnr(&truth[t], &generated[t])).collect();
    let ssim_per_tick: Vec<f64> = (0..n).map(|t| ssim(&truth[t], &generated[t])).collect();
    let edges_kept_per_tick: Vec<f64> = (0..n)
        .map(|t| edges_kept(&truth[t], &generated[t]))
        .collect();
    // The mean over ticks 1..=k, only when k ticks ran: a 16-tick run has
    // no "1-32" figure.
    let mean = |v: &[f64], k: usize| -> Option<f64> {
        (k > 0 && v.len() >= k).then(|| v[..k].iter().sum::<f64>() / k as f64)
    };
    let drift = Drift {
        fraction: args.drift_fraction,
        db: args.drift_db,
    };
    let drift_tick = drift_tick(&edges_kept_per_tick, &psnr_per_tick, drift);
    let detail_per_tick: Vec<f64> = (0..n)
        .map(|t| detail_ratio(&truth[t], &generated[t]))
        .collect();
    let detail_half = detail_half_tick(&detail_per_tick);
    // Ticks 20-32 (1-based), the late frames of a 32-tick walk.
    let detail_late = (n >= 32).then(|| detail_per_tick[19..32].iter().sum::<f64>() / 13.0);
    let instructions = (!schedule.is_empty() || args.instructions.is_some())
        .then(|| instruction_report(schedule, &truth[..n], &generated, args.event_window));
    // A malformed depth stream is reported (and fails the run) after the
    // JSON with every other figure is written: nothing measured is lost.
    let (depth_error_per_tick, depth_problem) = match depth_errors(&depth_dir, &truth_depth[..n]) {
        Ok(d) => (d, None),
        Err(e) => (None, Some(e)),
    };
    let reconstruction = reconstruction_psnr(&graph, &truth);
    let idm = match load_idm(&backend, args.idm.as_deref()) {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    let (acc_gen, acc_truth) = match &idm {
        Some(m) => {
            let gen_acc = action_accuracy(&**m, &truth_start, &generated, actions);
            let truth_acc = action_accuracy(&**m, &truth_start, &truth, actions);
            match (gen_acc, truth_acc) {
                (Ok(a), Ok(b)) => (Some(a), Some(b)),
                (Err(e), _) | (_, Err(e)) => return fail(format!("inverse-dynamics model: {e}")),
            }
        }
        None => (None, None),
    };
    let json = serde_json::json!({
        "graph": args.file.display().to_string(),
        "world_seed": args.world_seed,
        "theme": theme.name(),
        "actions": args.actions.display().to_string(),
        "frames": n,
        "psnr_per_tick": psnr_per_tick,
        "ssim_per_tick": ssim_per_tick,
        "psnr_mean_1_8": mean(&psnr_per_tick, 8),
        "psnr_mean_1_32": mean(&psnr_per_tick, 32),
        "psnr_mean_1_n": mean(&psnr_per_tick, n),
        "ssim_mean_1_8": mean(&ssim_per_tick, 8),
        "ssim_mean_1_32": mean(&ssim_per_tick, 32),
        "ssim_mean_1_n": mean(&ssim_per_tick, n),
        "reconstruction_psnr": reconstruction,
        "action_accuracy": acc_gen,
        "action_accuracy_ground_truth": acc_truth,
        "action_accuracy_keys": "W A S D Left Right Up Down (exact match; Space is not observable)",
        "action_accuracy_ratio": match (acc_gen, acc_truth) { (Some(a), Some(b)) if b > 0.0 => Some(a / b), _ => None },
        "depth_error_per_tick": depth_error_per_tick,
        "depth_error_mean_1_8": depth_error_per_tick.as_deref().and_then(|d| mean(d, 8)),
        "depth_error_mean_1_32": depth_error_per_tick.as_deref().and_then(|d| mean(d, 32)),
        "depth_error_mean_1_n": depth_error_per_tick.as_deref().and_then(|d| mean(d, n)),
        "depth_error_problem": depth_problem,
        "depth_error_unit": "mean absolute depth error in maze cells (ground truth 0-16; from the graph's `depth_dump` node)",
        "edges_kept_per_tick": edges_kept_per_tick,
        "edges_kept_mean_1_8": mean(&edges_kept_per_tick, 8),
        "edges_kept_mean_1_32": mean(&edges_kept_per_tick, 32),
        "edges_kept_mean_1_n": mean(&edges_kept_per_tick, n),
        "drift_threshold_db": args.drift_db,
        "drift_fraction": args.drift_fraction,
        "drift_tick": drift_tick,
        "drift_definition": drift.definition(),
        "ms_per_tick": ms_per_tick,
        "detail_per_tick": detail_per_tick,
        "detail_mean_1_n": mean(&detail_per_tick, n),
        "detail_mean_20_32": detail_late,
        "detail_half_tick": detail_half,
        "detail_definition": "high-frequency power (mean square of luma minus its 3x3 box blur) of the generated frame over the ground truth's, per tick; detail_half_tick: the first tick under 0.5",
    });
    let mut json = json;
    if let (Some(report), Some(obj)) = (&instructions, json.as_object_mut()) {
        obj.insert("instruction_following".into(), report.json.clone());
    }
    if let Some(path) = &args.strip {
        let count = n.min(12);
        let picks: Vec<usize> = (0..count)
            .map(|i| {
                if count <= 1 {
                    0
                } else {
                    i * (n - 1) / (count - 1)
                }
            })
            .collect();
        let drawn = strip(&truth, &generated, &picks)
            .and_then(|img| crate::plotfile::save_image(&img, path));
        if let Err(e) = drawn {
            return fail(format!("cannot write {}: {e}", path.display()));
        }
    }
    if let Some(path) = &args.plot {
        let title = format!(
            "{}: against the ground truth (world seed {}, {}), {n} ticks",
            args.file.display(),
            args.world_seed,
            theme.name()
        );
        let labels = PlotLabels {
            title: &title,
            drift,
            drift_tick,
        };
        let svg = plot_svg(&psnr_per_tick, &edges_kept_per_tick, &labels);
        if let Err(e) = crate::plotfile::save(path, &svg) {
            return fail(e);
        }
    }
    let fmt = |v: Option<f64>| v.map_or("n/a".to_string(), |x| format!("{x:.2}"));
    // The tick ranges reported: 1-8 and 1-n, as far as the run went.
    let ranges: Vec<usize> = if n > 8 { vec![8, n] } else { vec![n] };
    if let Some(d) = &depth_error_per_tick
        && !args.quiet
    {
        println!(
            "{}: depth error {} cells",
            args.file.display(),
            ranges
                .iter()
                .map(|&k| format!("ticks 1-{k} {}", fmt(mean(d, k))))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !args.quiet {
        let by_range = |v: &[f64], unit: &str| {
            ranges
                .iter()
                .map(|&k| format!("ticks 1-{k} {}{unit}", fmt(mean(v, k))))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "{}: {n} ticks; PSNR {}; SSIM {}; VAE round trip {} dB; action accuracy {} (ground truth {}); {}",
            args.file.display(),
            by_range(&psnr_per_tick, " dB"),
            by_range(&ssim_per_tick, ""),
            fmt(reconstruction),
            fmt(acc_gen),
            fmt(acc_truth),
            match drift_tick {
                Some(t) => format!(
                    "drift at tick {t} (edges kept {:.2}, tick 1 {:.2}; PSNR {:.2} dB)",
                    edges_kept_per_tick[t - 1],
                    edges_kept_per_tick[0],
                    psnr_per_tick[t - 1]
                ),
                None => format!("no drift in {n} ticks"),
            },
        );
        println!("  drift: {}", drift.definition());
        println!(
            "  detail (high-frequency power vs ground truth): ticks 1-{n} {}{}; {}",
            fmt(mean(&detail_per_tick, n)),
            detail_late.map_or(String::new(), |d| format!(", ticks 20-32 {d:.2}")),
            match detail_half {
                Some(t) => format!("below half at tick {t}"),
                None => format!("never below half in {n} ticks"),
            }
        );
        if let Some(r) = &instructions {
            println!("  {}", r.line);
        }
    }
    let written = serde_json::to_string_pretty(&json)
        .map_err(|e| e.to_string())
        .and_then(|s| {
            wgraph_engine::output::write_file(&args.json, (s + "\n").as_bytes())
                .map_err(|e| e.to_string())
        });
    match written {
        Ok(()) => match depth_problem {
            Some(problem) => fail(problem),
            None => Outcome::Ok,
        },
        Err(e) => fail(format!("cannot write {}: {e}", args.json.display())),
    }
}

/// Instruction following, as JSON and as a summary line.
struct InstructionReport {
    json: serde_json::Value,
    line: String,
}

/// Scores the generated and ground-truth frames against `schedule`.
fn instruction_report(
    schedule: &[Event],
    truth: &[RgbImage],
    generated: &[RgbImage],
    window: u64,
) -> InstructionReport {
    use serde_json::json;
    let signals = |frames: &[RgbImage]| -> Vec<events::Signals> {
        frames
            .iter()
            .map(|f| events::detect(f.as_raw(), f.width() as usize, f.height() as usize))
            .collect()
    };
    let (sg, st) = (signals(generated), signals(truth));
    let gen_score = events::score_instructions(&sg, schedule, window);
    let truth_score = events::score_instructions(&st, schedule, window);
    let per_event: Vec<serde_json::Value> = gen_score
        .followed
        .iter()
        .zip(&truth_score.followed)
        .map(|((e, ok), (_, ok_truth))| {
            json!({
                "tick": e.tick,
                "caption": e.kind.caption(),
                "event": e.kind.name(),
                "followed": ok,
                "followed_ground_truth": ok_truth,
            })
        })
        .collect();
    let unasked = |s: &events::InstructionScore| -> serde_json::Map<String, serde_json::Value> {
        s.unasked
            .iter()
            .map(|(c, at)| (c.name().to_string(), json!(at)))
            .collect()
    };
    let seen: Vec<Vec<&str>> = sg
        .iter()
        .map(|s| s.channels().iter().map(|c| c.name()).collect())
        .collect();
    let (ok, trials) = gen_score.counts();
    let (ok_t, _) = truth_score.counts();
    let json = json!({
        "score": gen_score.score(),
        "score_ground_truth": truth_score.score(),
        "successes": ok,
        "successes_ground_truth": ok_t,
        "trials": trials,
        "window": window,
        "schedule": events::schedule_entries(schedule),
        "events": per_event,
        "unasked_first_seen": unasked(&gen_score),
        "unasked_first_seen_ground_truth": unasked(&truth_score),
        "seen_per_tick": seen,
        "definition": format!("trials: each scheduled event (its effect seen within {window} ticks of its tick) and each channel (ghost, dark, snow, door: never seen where the schedule has it off); score = successes / trials"),
    });
    let line = format!(
        "instruction following {:.2} ({ok}/{trials}; ground truth {:.2}) over {} events, window {window} ticks",
        gen_score.score(),
        truth_score.score(),
        schedule.len()
    );
    InstructionReport { json, line }
}

/// The `npy_dump` node whose tensors eval reads as the graph's depth stream.
pub const DEPTH_SINK: &str = "depth_dump";

/// Where, under the run's output directory, the depth stream goes.
const DEPTH_DIR: &str = "eval-depth-stream";

/// Mean absolute depth error per tick (maze cells) of the graph's depth
/// stream (`depth_dump`'s files in `dir`, signed depth) against the ground
/// truth (cells); `None` when the graph has no depth stream.
fn depth_errors(dir: &Path, truth: &[Vec<f32>]) -> Result<Option<Vec<f64>>, String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(None);
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "npy"))
        .collect();
    files.sort();
    if files.len() < truth.len() {
        return Err(format!(
            "`{DEPTH_SINK}` wrote {} depth maps for {} ticks",
            files.len(),
            truth.len()
        ));
    }
    let mut errors = Vec::with_capacity(truth.len());
    for (t, (file, gt)) in files.iter().zip(truth).enumerate() {
        let tensor = wgraph_engine::npy::read_npy_file(file)
            .map_err(|e| format!("`{DEPTH_SINK}` tick {t}: {e}"))?;
        let generated = tensor
            .host_f32()
            .map_err(|e| format!("`{DEPTH_SINK}` tick {t}: {e}"))?;
        if generated.len() != gt.len() {
            return Err(format!(
                "`{DEPTH_SINK}` tick {t}: a depth map of {} ({} values) for a {}-pixel frame; expected f32[1, 1, H, W] at the world resolution",
                tensor.tensor_type(),
                generated.len(),
                gt.len()
            ));
        }
        let total: f64 = generated
            .iter()
            .zip(gt)
            .map(|(g, d)| f64::from((signed_to_depth(*g) - d.clamp(0.0, MAX_DEPTH)).abs()))
            .sum();
        errors.push(total / gt.len().max(1) as f64);
    }
    Ok(Some(errors))
}

/// The `world { resolution = HxW }` of a graph, read without building it
/// (the start frame must be rendered at that size before the build reads it).
fn graph_resolution(file: &Path) -> Option<(usize, usize)> {
    let mut sources = wgraph_grammar::source::SourceMap::new();
    let parsed = wgraph_grammar::load_graph(file, &mut sources, &wgraph_grammar::FsLoader).ok()?;
    parsed.statements.iter().rev().find_map(|s| match s {
        wgraph_grammar::ast::Statement::Settings(r) => match &r.get("resolution")?.value.kind {
            wgraph_grammar::ast::ValueKind::Size(d) => match d.as_slice() {
                [
                    wgraph_grammar::ast::DimExpr::Known(h),
                    wgraph_grammar::ast::DimExpr::Known(w),
                ] => Some((*h as usize, *w as usize)),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    })
}

/// The graph's RGB encoder and decoder (by role metadata), if it has both.
fn rgb_vae(graph: &Graph) -> Option<(Arc<dyn Model>, Arc<dyn Model>)> {
    let find = |role: &str| {
        graph.model_table.iter().map(|(_, m)| m).find(|m| {
            let s = m.signature();
            s.meta("wgraph.role") == Some(role)
                && s.meta("wgraph.modality").is_none_or(|x| x == "rgb")
        })
    };
    Some((
        Arc::clone(find("vae_encoder")?),
        Arc::clone(find("vae_decoder")?),
    ))
}

fn reconstruction_psnr(graph: &Graph, truth: &[RgbImage]) -> Option<f64> {
    let (enc, dec) = rgb_vae(graph)?;
    let mut total = 0.0;
    for frame in truth {
        let x = image_to_tensor(frame, Range::Signed).ok()?;
        let z = enc.run(&[x]).ok()?.into_iter().next()?;
        let y = dec.run(&[z]).ok()?.into_iter().next()?;
        total += psnr(frame, &tensor_to_image(&y, Range::Signed).ok()?.to_rgb8());
    }
    Some(total / truth.len().max(1) as f64)
}

fn load_idm(backend: &Backends, path: Option<&Path>) -> Result<Option<Arc<dyn Model>>, String> {
    let default = PathBuf::from("models-onnx/trained/idm.onnx");
    let path = match path {
        Some(p) => p.to_path_buf(),
        None if default.is_file() => default,
        None => return Ok(None),
    };
    let loaded = backend
        .load(&path, &ModelOptions::default())
        .map_err(|e| e.to_string())?;
    if loaded.model.signature().meta("wgraph.role") != Some("idm") {
        return Err(format!(
            "{} is not an inverse-dynamics model (wgraph.role = idm)",
            path.display()
        ));
    }
    Ok(Some(loaded.model))
}

/// Keys scored by action accuracy: W A S D Left Right Up Down. Space is left
/// out: the ground-truth world raises the eye while Space is held, so two
/// identical frames are as likely "Space held" as "no key" — no model can tell.
const SCORED_KEYS: usize = 8;

/// Fraction of ticks whose movement and camera keys the model reads back
/// exactly from (frame before, frame after).
fn action_accuracy(
    idm: &dyn Model,
    start: &RgbImage,
    frames: &[RgbImage],
    actions: &[Actions],
) -> Result<f64, String> {
    let mut right = 0usize;
    for (t, frame) in frames.iter().enumerate() {
        let before = if t == 0 { start } else { &frames[t - 1] };
        let a = image_to_tensor(before, Range::Signed).map_err(|e| e.to_string())?;
        let b = image_to_tensor(frame, Range::Signed).map_err(|e| e.to_string())?;
        let logits = idm.run(&[a, b]).map_err(|e| e.to_string())?;
        let logits = logits
            .first()
            .ok_or("no output")?
            .host_f32()
            .map_err(|e| e.to_string())?
            .to_vec();
        let truth = actions.get(t).copied().unwrap_or_default().multi_hot();
        if logits.len() == truth.len()
            && logits[..SCORED_KEYS]
                .iter()
                .zip(&truth[..SCORED_KEYS])
                .all(|(l, k)| (*l > 0.0) == (*k > 0.5))
        {
            right += 1;
        }
    }
    Ok(right as f64 / frames.len().max(1) as f64)
}
