//! `wgraph dataset`: episodes of the ground-truth world (crate
//! `wgraph-groundtruth`) as training data.
//!
//! Flags and wiring only: the flags become a
//! [`wgraph_lab::dataset::DatasetOptions`], the lab writes the episodes
//! (the file layout is documented there, the episode policies in
//! `wgraph_groundtruth::policy`), and the report is printed as one line.
//! Usage errors exit 2, write failures 3.

use crate::Outcome;
use clap::ValueEnum;
use std::path::PathBuf;
use wgraph_groundtruth::Theme;
use wgraph_groundtruth::policy::{EventPolicy, Policy as EpisodePolicy};
use wgraph_lab::LabError;
use wgraph_lab::dataset::{DatasetOptions, DatasetReport};

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

impl From<Policy> for EpisodePolicy {
    fn from(p: Policy) -> EpisodePolicy {
        match p {
            Policy::Random => EpisodePolicy::Random,
            Policy::Explore => EpisodePolicy::Explore,
        }
    }
}

/// `--events` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EventsArg {
    /// No events (the frames of datasets written before events existed).
    None,
    /// `wgraph_groundtruth::events::script(seed, frames)` for every seed.
    Auto,
}

impl From<EventsArg> for EventPolicy {
    fn from(e: EventsArg) -> EventPolicy {
        match e {
            EventsArg::None => EventPolicy::None,
            EventsArg::Auto => EventPolicy::Auto,
        }
    }
}

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

/// `wgraph dataset ...`
pub fn run(args: &DatasetArgs) -> Outcome {
    let seeds = match parse_seeds(&args.seeds) {
        Ok((first, end)) => first..end,
        Err(m) => return usage(&m),
    };
    let options = DatasetOptions {
        seeds,
        frames: args.frames,
        policy: args.policy.into(),
        themes: args.theme.themes(),
        size: args.size,
        events: args.events.into(),
        out: args.out.clone(),
    };
    match wgraph_lab::dataset::write(&options) {
        Ok(report) => {
            print_report(&report);
            Outcome::Ok
        }
        Err(LabError::Usage(m)) => usage(&m),
        Err(LabError::Graph(m)) => {
            eprintln!("error: {m}");
            Outcome::GraphErrors
        }
        Err(e) => {
            eprintln!("error: {e}");
            Outcome::RuntimeFailure
        }
    }
}

fn print_report(r: &DatasetReport) {
    println!(
        "wrote {} episodes ({} seeds × {}) of {} frames at {}x{} to {}: policy {}, coverage {:.1}%, {:.2} s",
        r.episodes,
        r.seeds.len(),
        r.themes.join("/"),
        r.frames,
        r.size,
        r.size,
        r.out.display(),
        r.policy,
        r.coverage * 100.0,
        r.seconds
    );
}

fn usage(message: &str) -> Outcome {
    eprintln!(
        "error: {}",
        wgraph_grammar::diagnostic::escape_controls(message)
    );
    Outcome::Usage
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
    }
}
