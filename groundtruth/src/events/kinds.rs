//! Event kinds and schedules: what a caption asks for and when.
//!
//! # Main types
//! - [`Channel`]: the four switches of the world (ghost, dark, snow, door).
//! - [`EventKind`]: the seven events, each with a canonical caption
//!   ([`EventKind::caption`]) and free-text reading
//!   ([`EventKind::from_caption`]).
//! - [`Event`]: a kind at a tick; [`parse_schedule`] and
//!   [`schedule_entries`] read and write schedules as `TICK:CAPTION` text.

/// One state of the world an event switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// A ghost is in the world.
    Ghost,
    /// The lights are out.
    Dark,
    /// It snows.
    Snow,
    /// A door is open.
    Door,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 4] = [Channel::Ghost, Channel::Dark, Channel::Snow, Channel::Door];

    /// `ghost`, `dark`, `snow` or `door`.
    pub fn name(self) -> &'static str {
        match self {
            Channel::Ghost => "ghost",
            Channel::Dark => "dark",
            Channel::Snow => "snow",
            Channel::Door => "door",
        }
    }
}

/// What a caption makes happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// "a ghost appears"
    GhostAppears,
    /// "the ghost vanishes"
    GhostVanishes,
    /// "the lights go out"
    LightsOut,
    /// "the lights come back"
    LightsOn,
    /// "it starts to snow"
    SnowStarts,
    /// "it stops snowing"
    SnowStops,
    /// "a door opens"
    DoorOpens,
}

/// Phrases that name each kind (lower case), the turning-off kinds first so
/// that "it stops snowing" is not read as snow starting.
const PHRASES: &[(EventKind, &[&str])] = &[
    (
        EventKind::GhostVanishes,
        &[
            "ghost vanishes",
            "ghost disappears",
            "ghost fades",
            "ghost is gone",
            "ghost leaves",
        ],
    ),
    (
        EventKind::LightsOn,
        &[
            "lights come back",
            "light comes back",
            "lights come on",
            "lights return",
            "light returns",
            "lights go on",
            "lights on",
            "lights back",
        ],
    ),
    (
        EventKind::SnowStops,
        &[
            "stops snowing",
            "stop snowing",
            "snow stops",
            "snow ends",
            "snowing ends",
        ],
    ),
    (EventKind::GhostAppears, &["ghost"]),
    (
        EventKind::LightsOut,
        &[
            "lights go out",
            "light goes out",
            "lights out",
            "lights off",
            "lights fail",
            "goes dark",
            "go dark",
            "darkness falls",
        ],
    ),
    (
        EventKind::SnowStarts,
        &[
            "starts to snow",
            "start to snow",
            "begins to snow",
            "snow starts",
            "snow begins",
            "snow falls",
            "snow is falling",
            "snowing",
            "snowfall",
        ],
    ),
    (
        EventKind::DoorOpens,
        &[
            "door opens",
            "door open",
            "doors open",
            "opens a door",
            "opens the door",
            "door swings open",
            "door creaks open",
        ],
    ),
];

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 7] = [
        EventKind::GhostAppears,
        EventKind::GhostVanishes,
        EventKind::LightsOut,
        EventKind::LightsOn,
        EventKind::SnowStarts,
        EventKind::SnowStops,
        EventKind::DoorOpens,
    ];

    /// The canonical caption ("a ghost appears").
    pub fn caption(self) -> &'static str {
        match self {
            EventKind::GhostAppears => "a ghost appears",
            EventKind::GhostVanishes => "the ghost vanishes",
            EventKind::LightsOut => "the lights go out",
            EventKind::LightsOn => "the lights come back",
            EventKind::SnowStarts => "it starts to snow",
            EventKind::SnowStops => "it stops snowing",
            EventKind::DoorOpens => "a door opens",
        }
    }

    /// A short identifier: `ghost_appears`, `lights_out`, ...
    pub fn name(self) -> &'static str {
        match self {
            EventKind::GhostAppears => "ghost_appears",
            EventKind::GhostVanishes => "ghost_vanishes",
            EventKind::LightsOut => "lights_out",
            EventKind::LightsOn => "lights_on",
            EventKind::SnowStarts => "snow_starts",
            EventKind::SnowStops => "snow_stops",
            EventKind::DoorOpens => "door_opens",
        }
    }

    /// The channel it switches and whether it switches it on.
    pub fn effect(self) -> (Channel, bool) {
        match self {
            EventKind::GhostAppears => (Channel::Ghost, true),
            EventKind::GhostVanishes => (Channel::Ghost, false),
            EventKind::LightsOut => (Channel::Dark, true),
            EventKind::LightsOn => (Channel::Dark, false),
            EventKind::SnowStarts => (Channel::Snow, true),
            EventKind::SnowStops => (Channel::Snow, false),
            EventKind::DoorOpens => (Channel::Door, true),
        }
    }

    /// The events a free text names, in [`EventKind::ALL`] order, each at
    /// most once ("the lights go out and it starts to snow" names two; a
    /// global caption such as "a snowy forest path" names none).
    pub fn from_caption(text: &str) -> Vec<EventKind> {
        let mut rest = text.to_lowercase();
        let mut found = Vec::new();
        for (kind, phrases) in PHRASES {
            let mut hit = false;
            for p in *phrases {
                while let Some(i) = rest.find(p) {
                    hit = true;
                    // Consumed, so "stops snowing" does not also start snow.
                    rest.replace_range(i..i + p.len(), &" ".repeat(p.len()));
                }
            }
            if hit {
                found.push(*kind);
            }
        }
        found.sort();
        found
    }
}

/// One scheduled event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Event {
    /// The tick it happens at (the world node's tick; frame `tick + 1` of a
    /// dataset episode is the first that shows it).
    pub tick: u64,
    /// What happens.
    pub kind: EventKind,
}

/// The most events a schedule may hold.
pub const MAX_EVENTS: usize = 4096;

/// Parses schedule entries `"TICK: caption"` (ticks non-decreasing; each
/// caption must name at least one event, and an entry naming several gives
/// one event each). Errors name the entry, counted from 1.
pub fn parse_schedule<S: AsRef<str>>(entries: &[S]) -> Result<Vec<Event>, String> {
    let mut out: Vec<Event> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let entry = entry.as_ref();
        let n = i + 1;
        let (tick, caption) = entry.split_once(':').ok_or_else(|| {
            format!("entry {n}: `{entry}` is not \"TICK: caption\" (e.g. \"12: a ghost appears\")")
        })?;
        let tick: u64 = tick.trim().parse().map_err(|_| {
            format!(
                "entry {n}: `{}` is not a tick (a non-negative integer)",
                tick.trim()
            )
        })?;
        if let Some(prev) = out.last()
            && tick < prev.tick
        {
            return Err(format!(
                "entry {n}: tick {tick} is before the previous entry's tick {}",
                prev.tick
            ));
        }
        let kinds = EventKind::from_caption(caption);
        if kinds.is_empty() {
            return Err(format!(
                "entry {n}: `{}` names no event (events: {})",
                caption.trim(),
                EventKind::ALL.map(EventKind::caption).join(", ")
            ));
        }
        out.extend(kinds.into_iter().map(|kind| Event { tick, kind }));
        if out.len() > MAX_EVENTS {
            return Err(format!("more than {MAX_EVENTS} events"));
        }
    }
    Ok(out)
}

/// A schedule as entries `"TICK: caption"` (the inverse of [`parse_schedule`]).
pub fn schedule_entries(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| format!("{}: {}", e.tick, e.kind.caption()))
        .collect()
}
