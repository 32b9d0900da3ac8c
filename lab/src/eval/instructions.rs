//! Instruction following for [`super::evaluate`]: an `--instructions` file
//! read into events ([`read_instructions`]), the `--set` changes that hand a
//! schedule to a graph ([`instruction_sets`]), and the score of both frame
//! streams against it ([`InstructionFollowing`], from
//! [`instruction_following`]).

use image::RgbImage;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use wgraph_groundtruth::events::{self, Event};

/// Instruction following of one eval: the generated frames' score next to
/// the ground truth's (the detector's check), as eval's JSON has it under
/// `instruction_following`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstructionFollowing {
    /// Successes over trials of the generated frames.
    pub score: f64,
    /// Successes over trials of the ground-truth frames.
    pub score_ground_truth: f64,
    /// Trials the generated frames passed.
    pub successes: usize,
    /// Trials the ground-truth frames passed.
    pub successes_ground_truth: usize,
    /// Scheduled events and channels scored.
    pub trials: usize,
    /// Ticks after an event's tick within which its effect must be seen.
    pub window: u64,
    /// The schedule, as `TICK: caption` entries.
    pub schedule: Vec<String>,
    /// Per scheduled event: whether each frame stream followed it.
    pub events: Vec<EventFollowed>,
    /// Per channel nobody asked for: the first generated frame it was seen in.
    pub unasked_first_seen: BTreeMap<&'static str, Option<usize>>,
    /// Per channel nobody asked for: the first ground-truth frame it was seen in.
    pub unasked_first_seen_ground_truth: BTreeMap<&'static str, Option<usize>>,
    /// The channels the detector saw in each generated frame.
    pub seen_per_tick: Vec<Vec<&'static str>>,
    /// What the score counts, in words.
    pub definition: String,
}

/// One scheduled event and whether it was followed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventFollowed {
    /// The tick it was scheduled at.
    pub tick: u64,
    /// Its caption.
    pub caption: &'static str,
    /// The event's name.
    pub event: &'static str,
    /// Its effect was seen in the generated frames in time.
    pub followed: bool,
    /// Its effect was seen in the ground-truth frames in time.
    pub followed_ground_truth: bool,
}

impl InstructionFollowing {
    /// The summary line eval prints.
    pub fn summary_line(&self) -> String {
        format!(
            "instruction following {:.2} ({}/{}; ground truth {:.2}) over {} events, window {} ticks",
            self.score,
            self.successes,
            self.trials,
            self.score_ground_truth,
            self.schedule.len(),
            self.window
        )
    }
}

/// An `--instructions` file: `TICK: caption` lines (`#` comments, blank
/// lines ignored); errors name the file and line.
pub(super) fn read_instructions(path: &Path) -> Result<Vec<Event>, String> {
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

/// The `--set` changes that hand `schedule` to the graph: every
/// `prompt_schedule` node's `schedule` (tick 0 carries the global caption,
/// captions of one tick are joined by " and ") and every `world` node's
/// `events`.
pub(super) fn instruction_sets(file: &Path, schedule: &[Event], global: &str) -> Vec<String> {
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

/// Scores the generated and ground-truth frames against `schedule`.
pub(super) fn instruction_following(
    schedule: &[Event],
    truth: &[RgbImage],
    generated: &[RgbImage],
    window: u64,
) -> InstructionFollowing {
    let signals = |frames: &[RgbImage]| -> Vec<events::Signals> {
        frames
            .iter()
            .map(|f| events::detect(f.as_raw(), f.width() as usize, f.height() as usize))
            .collect()
    };
    let (sg, st) = (signals(generated), signals(truth));
    let gen_score = events::score_instructions(&sg, schedule, window);
    let truth_score = events::score_instructions(&st, schedule, window);
    let events: Vec<EventFollowed> = gen_score
        .followed
        .iter()
        .zip(&truth_score.followed)
        .map(|((e, ok), (_, ok_truth))| EventFollowed {
            tick: e.tick,
            caption: e.kind.caption(),
            event: e.kind.name(),
            followed: *ok,
            followed_ground_truth: *ok_truth,
        })
        .collect();
    let unasked = |s: &events::InstructionScore| -> BTreeMap<&'static str, Option<usize>> {
        s.unasked.iter().map(|(c, at)| (c.name(), *at)).collect()
    };
    let seen_per_tick: Vec<Vec<&'static str>> = sg
        .iter()
        .map(|s| s.channels().iter().map(|c| c.name()).collect())
        .collect();
    let (successes, trials) = gen_score.counts();
    let (successes_ground_truth, _) = truth_score.counts();
    InstructionFollowing {
        score: gen_score.score(),
        score_ground_truth: truth_score.score(),
        successes,
        successes_ground_truth,
        trials,
        window,
        schedule: events::schedule_entries(schedule),
        events,
        unasked_first_seen: unasked(&gen_score),
        unasked_first_seen_ground_truth: unasked(&truth_score),
        seen_per_tick,
        definition: format!(
            "trials: each scheduled event (its effect seen within {window} ticks of its tick) and each channel (ghost, dark, snow, door: never seen where the schedule has it off); score = successes / trials"
        ),
    }
}
