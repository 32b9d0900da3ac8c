//! Instruction following: frames scored against a schedule, and the
//! scripted schedules walks are scored on.
//!
//! # Main types
//! - [`InstructionScore`]: per scheduled event whether it was followed in
//!   time, per channel whether it was seen unasked; made by
//!   [`score_instructions`].
//! - [`script`]: a seeded schedule of two to four events for a walk.

use super::{Channel, Event, EventKind, Signals};

/// How a walk followed its events.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InstructionScore {
    /// Per scheduled event: (event, whether its effect was seen within the
    /// window after its tick).
    pub followed: Vec<(Event, bool)>,
    /// Per channel the schedule never switched on before (or outside the
    /// grace after switching it off): whether it was seen anyway, and first
    /// at which frame.
    pub unasked: Vec<(Channel, Option<usize>)>,
}

impl InstructionScore {
    /// Successes over trials: each scheduled event is a trial (seen in time),
    /// each channel a trial (never seen unasked).
    pub fn score(&self) -> f64 {
        let ok = self.followed.iter().filter(|(_, ok)| *ok).count()
            + self.unasked.iter().filter(|(_, at)| at.is_none()).count();
        let trials = self.followed.len() + self.unasked.len();
        if trials == 0 {
            1.0
        } else {
            ok as f64 / trials as f64
        }
    }

    /// Successes and trials (to pool walks).
    pub fn counts(&self) -> (usize, usize) {
        let ok = self.followed.iter().filter(|(_, ok)| *ok).count()
            + self.unasked.iter().filter(|(_, at)| at.is_none()).count();
        (ok, self.followed.len() + self.unasked.len())
    }
}

/// Scores frames against a schedule: `signals[t]` is what frame `t` shows,
/// frame `t` being the view after tick `t` (events with tick `t` are in it).
/// An event is followed when its effect (the channel on, or off for a
/// turning-off event) is seen in some frame `tick ..= tick + window`; a
/// turning-off event also needs the channel seen on since the event that
/// turned it on (if the schedule has one). A
/// channel is seen *unasked* when it is seen in a frame where the schedule
/// has it off and has not turned it off within the last `window` ticks.
pub fn score_instructions(signals: &[Signals], events: &[Event], window: u64) -> InstructionScore {
    let n = signals.len() as u64;
    let followed = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.tick < n)
        .map(|(i, e)| {
            let (ch, on) = e.kind.effect();
            let end = (e.tick + window).min(n - 1);
            let mut seen = (e.tick..=end).any(|t| signals[t as usize].seen(ch) == on);
            // Turning off counts only when what it turns off was seen on
            // since the event that turned it on (else "no snow" is free).
            if !on
                && let Some(start) = events[..i]
                    .iter()
                    .rev()
                    .find(|p| p.kind.effect() == (ch, true))
                    .map(|p| p.tick)
            {
                seen &= (start..e.tick).any(|t| signals[t as usize].seen(ch));
            }
            (*e, seen)
        })
        .collect();
    let unasked = Channel::ALL
        .into_iter()
        .map(|ch| {
            let mut on = false;
            let mut off_at: Option<u64> = None;
            let mut next = 0;
            let first = (0..n).find(|&t| {
                while let Some(e) = events.get(next).filter(|e| e.tick <= t) {
                    let (c, turn_on) = e.kind.effect();
                    if c == ch {
                        if on && !turn_on {
                            off_at = Some(e.tick);
                        }
                        on = turn_on;
                    }
                    next += 1;
                }
                let grace = off_at.is_some_and(|o| t <= o + window);
                !on && !grace && signals[t as usize].seen(ch)
            });
            (ch, first.map(|t| t as usize))
        })
        .collect();
    InstructionScore { followed, unasked }
}

/// A scripted schedule for a walk of `frames` ticks, seeded: two or three
/// events, ticks spread over the walk with room for the window, always one
/// turning-on event of a channel, sometimes its turning-off (the lights
/// come back, the snow stops) — so that every walk both asks for events and
/// leaves others unasked.
pub fn script(seed: u64, frames: u64) -> Vec<Event> {
    let mut rng = crate::SplitMix64::new(crate::mix64(seed ^ 0x5C21_97E0));
    let ons = [
        EventKind::GhostAppears,
        EventKind::LightsOut,
        EventKind::SnowStarts,
        EventKind::DoorOpens,
    ];
    let mut order = ons.to_vec();
    rng.shuffle(&mut order);
    let count = 2 + rng.below(2);
    let span = frames.max(4);
    let mut kinds: Vec<EventKind> = order[..count].to_vec();
    // A lights-out or snow that is not the last may be turned off again.
    if let Some(i) = kinds
        .iter()
        .position(|k| matches!(k, EventKind::LightsOut | EventKind::SnowStarts))
        && rng.chance(0.5)
    {
        let off = if kinds[i] == EventKind::LightsOut {
            EventKind::LightsOn
        } else {
            EventKind::SnowStops
        };
        kinds.insert(i + 1, off);
    }
    let slots = kinds.len() as u64 + 1;
    let mut earliest = 0;
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| {
            // A walk of a few ticks puts its first events at 0 and keeps
            // their order (a longer one spaces them apart anyway).
            let tick = ((i as u64 + 1) * span / slots).saturating_sub(1) + rng.below(2) as u64;
            earliest = tick.max(earliest);
            Event {
                tick: earliest,
                kind,
            }
        })
        .collect()
}
