//! Text-triggered events and global captions: what a text asks of the world.
//!
//! # Events
//! An [`Event`] is a caption's [`EventKind`] and the tick it happens at.
//! Seven kinds on four [`Channel`]s: a ghost appears / vanishes, the lights
//! go out / come back, it starts / stops snowing, a door opens. Each has a
//! canonical caption ([`EventKind::caption`]); [`EventKind::from_caption`]
//! reads free text ("suddenly the lights go out and it starts to snow").
//!
//! [`World::apply_event`](crate::World::apply_event) turns an event into
//! [`EventState`] — the whole effect of every event so far, a few fields (a
//! ghost's world position, a door's wall face, two switches), so a world's
//! event log never grows: replaying the events gives the same state, and
//! the same state, seed, pose and tick render the same frame
//! ([`World::render_events`](crate::World::render_events)).
//!
//! Events change colours only: geometry, collisions, poses and depth are the
//! same with and without them (tested), like themes.
//! - **ghost**: a glowing mint-green sheet ghost with dark eyes, anchored at
//!   a world position up to 2 cells ahead of where the player looked when it
//!   appeared; it floats there (bobbing with the tick), hidden by walls, and
//!   stays when the player turns away.
//! - **lights out**: everything but light sources (the ghost, an open door,
//!   snow flakes, a little) drops to [`DARK_FACTOR`] of its brightness.
//! - **snow**: white flakes falling over the view, their positions a pure
//!   function of seed and tick, under an overcast sky (the scene a little
//!   dimmer and bluer, [`OVERCAST`]).
//! - **door**: the wall face the player looks at (the nearest face within
//!   ±30° of the heading) opens onto a pink-lit doorway; it stays open.
//!
//! # Detection
//! [`detect`] reads a frame's [`Signals`] from its pixels alone (hand-written
//! statistics, calibrated on the ground truth): the share of ghost-coloured
//! and door-light-coloured pixels, the density of isolated bright speckles
//! (flakes), and the 90th percentile of luma over the other pixels (dark).
//! `wgraph eval` scores instruction following with it ([`score_instructions`]).
//!
//! # Global captions
//! [`global_caption`] names a theme and [`Layout`] ("a torch-lit stone
//! dungeon corridor"); [`parse_global_caption`] reads a theme and layout back
//! from text. A layout is a property of the seed (where the walk starts);
//! [`find_seed`] finds a seed with a given layout.

use crate::{Pose, Theme, World};

/// Brightness left when the lights are out.
pub const DARK_FACTOR: f32 = 0.04;
/// Brightness (R, G, B) of the overcast while it snows (flakes stand out
/// even against white).
pub const OVERCAST: [f32; 3] = [0.85, 0.85, 0.9];

/// The ghost's colour (before shading).
pub const GHOST_RGB: [u8; 3] = [118, 246, 178];
/// The light of an open doorway (its centre).
pub const DOOR_RGB: [u8; 3] = [255, 128, 204];
/// A snow flake in the light.
pub const FLAKE_RGB: [u8; 3] = [238, 242, 252];

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

/// The wall face an open door is on: tile and the face's outward normal
/// (0 = +x, 1 = −x, 2 = +y, 3 = −y).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DoorFace {
    /// Tile x.
    pub tx: i32,
    /// Tile y.
    pub ty: i32,
    /// Outward normal of the face.
    pub side: u8,
}

/// The effect of every event so far: what [`World::render_events`]
/// draws besides the world. Small and of fixed size, whatever the number of
/// events.
///
/// [`World::render_events`]: crate::World::render_events
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EventState {
    /// The ghost's world position.
    pub ghost: Option<[f32; 2]>,
    /// Whether the lights are out.
    pub dark: bool,
    /// Whether it snows.
    pub snow: bool,
    /// The open door.
    pub door: Option<DoorFace>,
}

impl EventState {
    /// Whether nothing has happened (the world renders as without events).
    pub fn is_quiet(&self) -> bool {
        *self == EventState::default()
    }

    /// Whether `channel` is on.
    pub fn is_on(&self, channel: Channel) -> bool {
        match channel {
            Channel::Ghost => self.ghost.is_some(),
            Channel::Dark => self.dark,
            Channel::Snow => self.snow,
            Channel::Door => self.door.is_some(),
        }
    }

    /// The state as integers and floats for snapshots:
    /// `[has_ghost, dark, snow, has_door, door_tx, door_ty, door_side]` and
    /// `[ghost_x, ghost_y]`.
    pub fn encode(&self) -> ([i64; 7], [f32; 2]) {
        let d = self.door.unwrap_or(DoorFace {
            tx: 0,
            ty: 0,
            side: 0,
        });
        let g = self.ghost.unwrap_or([0.0, 0.0]);
        (
            [
                i64::from(self.ghost.is_some()),
                i64::from(self.dark),
                i64::from(self.snow),
                i64::from(self.door.is_some()),
                i64::from(d.tx),
                i64::from(d.ty),
                i64::from(d.side),
            ],
            g,
        )
    }

    /// The inverse of [`EventState::encode`]; `None` for malformed values.
    pub fn decode(ints: &[i64], floats: &[f32]) -> Option<EventState> {
        let [g, dark, snow, door, tx, ty, side] = *ints else {
            return None;
        };
        let [gx, gy] = *floats else {
            return None;
        };
        let flag = |v: i64| match v {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        };
        let ghost = flag(g)?.then_some([gx, gy]);
        if ghost.is_some_and(|p| !(p[0].is_finite() && p[1].is_finite())) {
            return None;
        }
        let door = if flag(door)? {
            Some(DoorFace {
                tx: i32::try_from(tx).ok()?,
                ty: i32::try_from(ty).ok()?,
                side: u8::try_from(side).ok().filter(|s| *s < 4)?,
            })
        } else {
            None
        };
        Some(EventState {
            ghost,
            dark: flag(dark)?,
            snow: flag(snow)?,
            door,
        })
    }
}

impl World {
    /// Applies one event seen from `pose` to `state`. Events are idempotent:
    /// a ghost that is already there stays where it is, an open door stays
    /// the one that opened.
    pub fn apply_event(&self, state: &mut EventState, kind: EventKind, pose: &Pose) {
        match kind {
            EventKind::GhostAppears => {
                if state.ghost.is_none() {
                    let ahead = self.probe(pose, 0.0);
                    let d = if ahead > 2.6 {
                        2.0
                    } else {
                        (ahead - 0.6).max(ahead * 0.5)
                    };
                    let (fwd, _) = pose.axes();
                    state.ghost = Some([pose.x + fwd[0] * d, pose.y + fwd[1] * d]);
                }
            }
            EventKind::GhostVanishes => state.ghost = None,
            EventKind::LightsOut => state.dark = true,
            EventKind::LightsOn => state.dark = false,
            EventKind::SnowStarts => state.snow = true,
            EventKind::SnowStops => state.snow = false,
            EventKind::DoorOpens => {
                if state.door.is_none() {
                    state.door = Some(self.facing_wall(pose));
                }
            }
        }
    }

    /// The wall face a door opens in: straight ahead when it is within 5
    /// cells, else the nearest wall face within ±30° of the heading.
    fn facing_wall(&self, pose: &Pose) -> DoorFace {
        let face = |offset: f32| {
            let (s, c) = (pose.yaw + offset).to_radians().sin_cos();
            let (d, hit) = crate::render::cast(&self.map, pose.x, pose.y, c, s);
            (
                d,
                DoorFace {
                    tx: hit.tx,
                    ty: hit.ty,
                    side: hit.side,
                },
            )
        };
        let ahead = face(0.0);
        if ahead.0 <= 5.0 {
            return ahead.1;
        }
        [-30.0, -20.0, -10.0, 10.0, 20.0, 30.0]
            .into_iter()
            .map(face)
            .fold(ahead, |best, f| if f.0 < best.0 - 1e-3 { f } else { best })
            .1
    }

    /// The view from `pose` with the effects of `events` at `tick` (the
    /// tick moves the snow and the ghost's bobbing). With a quiet
    /// [`EventState`] this is [`World::render`].
    pub fn render_events(
        &self,
        pose: &Pose,
        events: &EventState,
        tick: u64,
        width: usize,
        height: usize,
    ) -> crate::Frame {
        let mut frame = crate::Frame {
            width,
            height,
            ..crate::Frame::default()
        };
        self.render_events_into(pose, events, tick, &mut frame);
        frame
    }

    /// [`World::render_events`] into `frame`, reusing its buffers.
    pub fn render_events_into(
        &self,
        pose: &Pose,
        events: &EventState,
        tick: u64,
        frame: &mut crate::Frame,
    ) {
        crate::render::render_with(self, pose, events, tick, frame);
    }
}

/// Replays `events` (sorted by tick) along a walk: `poses[t]` is the pose
/// after tick `t`'s keys, and the result's element `t` is the state after
/// every event with tick ≤ `t` (each applied from `poses[tick]`).
pub fn replay(world: &World, events: &[Event], poses: &[Pose]) -> Vec<EventState> {
    let mut state = EventState::default();
    let mut next = 0;
    poses
        .iter()
        .enumerate()
        .map(|(t, pose)| {
            while let Some(e) = events.get(next).filter(|e| e.tick <= t as u64) {
                world.apply_event(&mut state, e.kind, pose);
                next += 1;
            }
            state
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Drawing (called by the renderer).

/// A small hash in [0, 1).
fn h01(a: u64, b: u64) -> f32 {
    (crate::mix64(a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b) >> 40) as f32 / (1u64 << 24) as f32
}

/// Whether (`sx` from the centre line, `sz` above the floor, world units) is
/// on the ghost, and its colour there; `bob` lifts it.
pub(crate) fn ghost_colour(sx: f32, sz: f32, bob: f32, tick: u64) -> Option<[f32; 3]> {
    let z = sz - bob;
    let (hx, hz, r) = (0.0, 0.62, 0.2);
    let head = (sx - hx).powi(2) + (z - hz).powi(2) <= r * r;
    let hem = 0.14 + 0.04 * (sx * 40.0 + tick as f32 * 0.9).sin();
    let body = sx.abs() <= 0.2 + 0.06 * (0.62 - z).max(0.0) && (hem..=hz).contains(&z);
    if !(head || body) {
        return None;
    }
    for ex in [-0.075, 0.075] {
        if ((sx - ex) / 0.04).powi(2) + ((z - 0.66) / 0.05).powi(2) <= 1.0 {
            return Some([30.0, 40.0, 60.0]);
        }
    }
    let k = 0.9 + 0.1 * (1.0 - (sx / 0.26).powi(2)).max(0.0);
    Some(GHOST_RGB.map(|c| f32::from(c) * k))
}

/// Half the ghost's width and its height (world units).
pub(crate) const GHOST_HALF_WIDTH: f32 = 0.28;
/// The ghost's top above the floor (world units).
pub(crate) const GHOST_TOP: f32 = 0.9;

/// The open door at face coordinates (`u` across, `v` down, in [0, 1]):
/// the doorway's light (emissive) inside a dark frame (not), or `None`
/// elsewhere on the face.
pub(crate) fn door_colour(u: f32, v: f32) -> Option<([f32; 3], bool)> {
    if !(0.16..=0.84).contains(&u) || !(0.07..=1.0).contains(&v) {
        return None;
    }
    if !(0.2..=0.8).contains(&u) || v < 0.12 {
        return Some(([58.0, 40.0, 30.0], false));
    }
    // Brighter at the centre of the opening.
    let c = 1.0 - ((u - 0.5) / 0.3).powi(2) * 0.08;
    Some((DOOR_RGB.map(|x| f32::from(x) * c), true))
}

/// Draws falling snow over `rgb` (`w` × `h`), dimmer in the dark.
pub(crate) fn draw_snow(seed: u64, tick: u64, dark: bool, w: usize, h: usize, rgb: &mut [u8]) {
    let s = (h / 64).max(1);
    let flakes = (w * h) * 5 / (100 * s * s);
    let colour = if dark { [150u8, 155, 170] } else { FLAKE_RGB };
    let t = tick as f32;
    for k in 0..flakes as u64 {
        let u0 = h01(seed ^ 0x5_0F1A, k);
        let v0 = h01(seed ^ 0x5_0F1B, k);
        let speed = 0.03 + 0.05 * h01(seed ^ 0x5_0F1C, k);
        let drift = 0.02 * (h01(seed ^ 0x5_0F1D, k) - 0.5);
        let u = (u0 + drift * t).rem_euclid(1.0);
        let v = (v0 + speed * t).rem_euclid(1.0);
        let (x0, y0) = ((u * w as f32) as usize, (v * h as f32) as usize);
        for y in y0..(y0 + s).min(h) {
            for x in x0..(x0 + s).min(w) {
                let i = (y * w + x) * 3;
                rgb[i..i + 3].copy_from_slice(&colour);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Detection.

/// What a frame shows, read from its pixels.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Signals {
    /// Share of ghost-coloured pixels.
    pub ghost: f64,
    /// Share of door-light-coloured pixels.
    pub door: f64,
    /// Share of pixels that are isolated bright speckles (flakes).
    pub snow: f64,
    /// 90th percentile of luma (0–255) over the pixels that are neither
    /// ghost, door light nor flakes (255 when those cover over 3/4 of the
    /// frame: light sources fill the view).
    pub luma_p90: f64,
}

/// Thresholds of [`Signals::channels`].
pub mod thresholds {
    /// A ghost is seen at this share of ghost-coloured pixels.
    pub const GHOST: f64 = 0.004;
    /// A door is seen at this share of door-light pixels.
    pub const DOOR: f64 = 0.0015;
    /// Snow is seen at this share of speckle pixels.
    pub const SNOW: f64 = 0.009;
    /// The lights are out below this 90th percentile of luma.
    pub const DARK_P90: f64 = 14.0;
}

impl Signals {
    /// Whether `channel` is seen.
    pub fn seen(&self, channel: Channel) -> bool {
        match channel {
            Channel::Ghost => self.ghost >= thresholds::GHOST,
            Channel::Door => self.door >= thresholds::DOOR,
            Channel::Snow => self.snow >= thresholds::SNOW,
            Channel::Dark => self.luma_p90 < thresholds::DARK_P90,
        }
    }

    /// The channels seen, in [`Channel::ALL`] order.
    pub fn channels(&self) -> Vec<Channel> {
        Channel::ALL.into_iter().filter(|c| self.seen(*c)).collect()
    }
}

fn luma(p: &[u8]) -> i32 {
    (i32::from(p[0]) * 299 + i32::from(p[1]) * 587 + i32::from(p[2]) * 114) / 1000
}

fn is_ghost(p: &[u8]) -> bool {
    let [r, g, b] = [p[0], p[1], p[2]].map(i32::from);
    (80..=150).contains(&r) && g >= 200 && (135..=205).contains(&b) && g - b >= 40 && b - r >= 25
}

fn is_door(p: &[u8]) -> bool {
    let [r, g, b] = [p[0], p[1], p[2]].map(i32::from);
    r >= 215 && (90..=160).contains(&g) && (160..=235).contains(&b) && r - b >= 25 && b - g >= 40
}

/// Reads a frame's [`Signals`]: `rgb` is `[h, w, 3]` row-major. Frames too
/// small for a neighbourhood (under 3×3) or of the wrong length read as
/// nothing seen.
pub fn detect(rgb: &[u8], w: usize, h: usize) -> Signals {
    let n = w.saturating_mul(h);
    if w < 3 || h < 3 || rgb.len() != n.saturating_mul(3) {
        return Signals {
            luma_p90: 255.0,
            ..Signals::default()
        };
    }
    let lum: Vec<i32> = rgb.chunks_exact(3).map(luma).collect();
    let s = (h / 64).max(1);
    let (mut ghost, mut door, mut snow) = (0usize, 0usize, 0usize);
    let mut rest: Vec<i32> = Vec::with_capacity(n);
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let p = &rgb[i * 3..i * 3 + 3];
            if is_ghost(p) {
                ghost += 1;
                continue;
            }
            if is_door(p) {
                door += 1;
                continue;
            }
            // A speckle: brighter than the mean of its ring at distance s
            // (clamped at the border) by a clear margin.
            let l = lum[i];
            let at = |dx: isize, dy: isize| {
                let xx = (x as isize + dx * s as isize).clamp(0, w as isize - 1) as usize;
                let yy = (y as isize + dy * s as isize).clamp(0, h as isize - 1) as usize;
                lum[yy * w + xx]
            };
            let ring = [
                (-1, -1),
                (0, -1),
                (1, -1),
                (-1, 0),
                (1, 0),
                (-1, 1),
                (0, 1),
                (1, 1),
            ];
            let max = ring.iter().map(|&(dx, dy)| at(dx, dy)).max().unwrap_or(255);
            if l >= 110 && l - max >= 40 {
                snow += 1;
                continue;
            }
            rest.push(l);
        }
    }
    // Too little of the scene left to judge (a ghost or a doorway fills the
    // view): lit, since both give light.
    let luma_p90 = if rest.len() < n / 4 {
        255.0
    } else {
        let k = (rest.len() * 9 / 10).min(rest.len() - 1);
        let (_, v, _) = rest.select_nth_unstable(k);
        f64::from(*v)
    };
    let share = |c: usize| c as f64 / n as f64;
    Signals {
        ghost: share(ghost),
        door: share(door),
        snow: share(snow),
        luma_p90,
    }
}

// ---------------------------------------------------------------------------
// Instruction following.

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
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| Event {
            tick: (i as u64 + 1) * span / slots - 1 + rng.below(2) as u64,
            kind,
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Global captions.

/// Where a walk starts: the layout a global caption names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    /// A corridor of the maze.
    Corridor,
    /// An open room (a hall, a plaza, a clearing).
    Hall,
}

impl Layout {
    /// Every layout.
    pub const ALL: [Layout; 2] = [Layout::Corridor, Layout::Hall];

    /// `corridor` or `hall`.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Corridor => "corridor",
            Layout::Hall => "hall",
        }
    }
}

impl World {
    /// The layout at the start: a hall when at least 7 of the 9 tiles
    /// around the start are floor, else a corridor.
    pub fn layout(&self) -> Layout {
        let (x, y) = self.start_pose().tile();
        let open = (-1..=1)
            .flat_map(|dy| (-1..=1).map(move |dx| (dx, dy)))
            .filter(|(dx, dy)| !self.map().is_solid(x + dx, y + dy))
            .count();
        if open >= 7 {
            Layout::Hall
        } else {
            Layout::Corridor
        }
    }
}

/// The global caption of a theme and layout.
pub fn global_caption(theme: Theme, layout: Layout) -> &'static str {
    match (theme, layout) {
        (Theme::Dungeon, Layout::Corridor) => "a torch-lit stone dungeon corridor with brick walls",
        (Theme::Dungeon, Layout::Hall) => "a torch-lit stone dungeon hall with coloured pillars",
        (Theme::Neon, Layout::Corridor) => "a neon city corridor at night with glowing signs",
        (Theme::Neon, Layout::Hall) => "a neon city plaza at night with glowing pillars",
        (Theme::Forest, Layout::Corridor) => "a snowy forest path between hedges",
        (Theme::Forest, Layout::Hall) => "a snowy forest clearing among the trees",
    }
}

/// The theme and layout a text names (either may be missing): theme words
/// `dungeon`/`stone`/`brick`/`torch`, `neon`/`city`/`cyber`,
/// `forest`/`snowy`/`tree`/`hedge`; layout words `corridor`/`path`/
/// `passage`/`hallway`/`tunnel`, `hall`/`room`/`plaza`/`clearing`/`chamber`/
/// `square`. The first theme word in the text wins.
pub fn parse_global_caption(text: &str) -> (Option<Theme>, Option<Layout>) {
    let t = text.to_lowercase();
    let first = |words: &[&str]| words.iter().filter_map(|w| t.find(w)).min();
    let themes = [
        (
            Theme::Dungeon,
            first(&["dungeon", "stone", "brick", "torch"]),
        ),
        (Theme::Neon, first(&["neon", "city", "cyber"])),
        (
            Theme::Forest,
            first(&["forest", "snowy", "tree", "hedge", "woods"]),
        ),
    ];
    let theme = themes
        .iter()
        .filter_map(|(th, at)| at.map(|a| (a, *th)))
        .min_by_key(|(a, _)| *a)
        .map(|(_, th)| th);
    // "hallway" is a corridor: look for corridor words first, removing them.
    let corridor = ["corridor", "hallway", "path", "passage", "tunnel"];
    let hall = ["hall", "room", "plaza", "clearing", "chamber", "square"];
    let mut rest = t.clone();
    let mut c_at = None;
    for w in corridor {
        if let Some(i) = rest.find(w) {
            c_at = Some(c_at.map_or(i, |c: usize| c.min(i)));
            rest = rest.replace(w, &" ".repeat(w.len()));
        }
    }
    let h_at = hall.iter().filter_map(|w| rest.find(w)).min();
    let layout = match (c_at, h_at) {
        (Some(c), Some(h)) => Some(if c < h {
            Layout::Corridor
        } else {
            Layout::Hall
        }),
        (Some(_), None) => Some(Layout::Corridor),
        (None, Some(_)) => Some(Layout::Hall),
        (None, None) => None,
    };
    (theme, layout)
}

/// The first seed from `from` (within 10 000 seeds) whose world starts in
/// `layout`.
pub fn find_seed(layout: Layout, from: u64) -> Option<u64> {
    (from..from.saturating_add(10_000)).find(|&s| World::new(s, Theme::Dungeon).layout() == layout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Keys, MAX_DEPTH};

    /// A walk of `n` ticks that keeps moving: forward, turning at walls,
    /// with glances (seeded).
    fn walk(world: &World, n: usize) -> Vec<Pose> {
        let mut rng = crate::SplitMix64::new(world.seed());
        let mut pose = world.start_pose();
        let keys = [
            Keys::W,
            Keys::W,
            Keys::W,
            Keys::LEFT,
            Keys::RIGHT,
            Keys::W | Keys::LEFT,
            Keys::UP,
            Keys::DOWN,
            Keys::NONE,
        ];
        (0..n)
            .map(|_| {
                let k = if world.probe(&pose, 0.0) < 0.8 {
                    Keys::LEFT
                } else {
                    keys[rng.below(keys.len())]
                };
                world.step(&mut pose, k);
                pose
            })
            .collect()
    }

    fn frames(world: &World, events: &[Event], poses: &[Pose]) -> Vec<crate::Frame> {
        replay(world, events, poses)
            .iter()
            .zip(poses)
            .enumerate()
            .map(|(t, (s, p))| world.render_events(p, s, t as u64, 64, 64))
            .collect()
    }

    #[test]
    fn captions_name_their_events() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::from_caption(k.caption()), vec![k], "{k:?}");
        }
        assert_eq!(
            EventKind::from_caption("Suddenly the LIGHTS GO OUT and it starts to snow"),
            vec![EventKind::LightsOut, EventKind::SnowStarts]
        );
        assert_eq!(
            EventKind::from_caption("it stops snowing"),
            vec![EventKind::SnowStops]
        );
        assert_eq!(
            EventKind::from_caption("the ghost vanishes"),
            vec![EventKind::GhostVanishes]
        );
        for t in crate::Theme::ALL {
            for l in Layout::ALL {
                let c = global_caption(t, l);
                assert!(EventKind::from_caption(c).is_empty(), "{c}");
                assert_eq!(parse_global_caption(c), (Some(t), Some(l)), "{c}");
            }
        }
        assert_eq!(
            parse_global_caption("a neon hallway"),
            (Some(crate::Theme::Neon), Some(Layout::Corridor))
        );
        assert_eq!(parse_global_caption("a green valley"), (None, None));
    }

    #[test]
    fn schedules_parse_and_errors_name_the_entry() {
        let s = parse_schedule(&[
            "4: a ghost appears",
            " 4 : the lights go out",
            "9:a door opens",
        ])
        .unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(
            s[2],
            Event {
                tick: 9,
                kind: EventKind::DoorOpens
            }
        );
        assert_eq!(parse_schedule(&schedule_entries(&s)).unwrap(), s);
        let e = parse_schedule(&["4: a ghost appears", "2: a door opens"]).unwrap_err();
        assert!(e.starts_with("entry 2: tick 2 is before"), "{e}");
        let e = parse_schedule(&["3: a green valley"]).unwrap_err();
        assert!(
            e.starts_with("entry 1: `a green valley` names no event"),
            "{e}"
        );
        assert!(
            parse_schedule(&["x: a ghost appears"])
                .unwrap_err()
                .contains("`x` is not a tick")
        );
        assert!(parse_schedule(&["a ghost appears"]).is_err());
    }

    #[test]
    fn layouts_and_seeds() {
        let corridor = find_seed(Layout::Corridor, 0).unwrap();
        let hall = find_seed(Layout::Hall, 0).unwrap();
        assert_eq!(
            World::new(corridor, crate::Theme::Neon).layout(),
            Layout::Corridor
        );
        assert_eq!(
            World::new(hall, crate::Theme::Forest).layout(),
            Layout::Hall
        );
    }

    #[test]
    fn states_encode_and_decode() {
        let world = World::new(3, crate::Theme::Dungeon);
        let mut s = EventState::default();
        assert!(s.is_quiet());
        for k in EventKind::ALL {
            world.apply_event(&mut s, k, &world.start_pose());
        }
        world.apply_event(&mut s, EventKind::GhostAppears, &world.start_pose());
        world.apply_event(&mut s, EventKind::LightsOut, &world.start_pose());
        assert!(s.ghost.is_some() && s.dark && !s.snow && s.door.is_some());
        let (i, f) = s.encode();
        assert_eq!(EventState::decode(&i, &f), Some(s));
        let (i, f) = EventState::default().encode();
        assert_eq!(EventState::decode(&i, &f), Some(EventState::default()));
        assert_eq!(EventState::decode(&[2, 0, 0, 0, 0, 0, 0], &f), None);
        assert_eq!(EventState::decode(&i[..3], &f), None);
        assert_eq!(EventState::decode(&[0, 0, 0, 1, 0, 0, 9], &f), None);
    }

    #[test]
    fn events_render_deterministically_and_change_colours_only() {
        for theme in crate::Theme::ALL {
            let world = World::new(1003, theme);
            let poses = walk(&world, 24);
            let events = parse_schedule(&[
                "3: a ghost appears",
                "8: it starts to snow",
                "12: a door opens",
                "16: the lights go out",
            ])
            .unwrap();
            let a = frames(&world, &events, &poses);
            let b = frames(&world.with_theme(theme), &events, &poses);
            assert_eq!(a, b, "same seed, poses and events: same frames");
            let quiet = frames(&world, &[], &poses);
            for (t, (e, q)) in a.iter().zip(&quiet).enumerate() {
                assert_eq!(e.depth, q.depth, "tick {t}: depth is geometry only");
                if t < 3 {
                    assert_eq!(e.rgb, q.rgb, "tick {t}: nothing happened yet");
                } else {
                    assert_ne!(e.rgb, q.rgb, "tick {t}: the events show");
                }
                assert!(e.depth.iter().all(|d| *d <= MAX_DEPTH));
            }
            // A quiet state renders exactly as `render`.
            let p = poses[5];
            assert_eq!(
                world.render_events(&p, &EventState::default(), 7, 64, 64),
                world.render(&p, 64, 64)
            );
            // Snow moves with the tick.
            let s = EventState {
                snow: true,
                ..EventState::default()
            };
            assert_ne!(
                world.render_events(&p, &s, 1, 64, 64).rgb,
                world.render_events(&p, &s, 2, 64, 64).rgb
            );
        }
    }

    #[test]
    fn the_ghost_stays_where_it_appeared() {
        let world = World::new(1005, crate::Theme::Neon);
        let pose = world.start_pose();
        let mut s = EventState::default();
        world.apply_event(&mut s, EventKind::GhostAppears, &pose);
        let g = s.ghost.unwrap();
        let seen = |p: &Pose, s: &EventState| {
            let f = world.render_events(p, s, 0, 64, 64);
            detect(&f.rgb, 64, 64).seen(Channel::Ghost)
        };
        assert!(seen(&pose, &s));
        // Turned around, it is behind: not seen; turned back, there again.
        let mut back = pose;
        back.yaw = (back.yaw + 180.0) % 360.0;
        assert!(!seen(&back, &s));
        world.apply_event(&mut s, EventKind::GhostAppears, &back);
        assert_eq!(
            s.ghost,
            Some(g),
            "a second \"ghost appears\" keeps the first"
        );
        assert!(seen(&pose, &s));
    }

    #[test]
    fn each_event_is_detected_and_quiet_frames_show_none() {
        let kinds = [
            (EventKind::GhostAppears, Channel::Ghost),
            (EventKind::LightsOut, Channel::Dark),
            (EventKind::SnowStarts, Channel::Snow),
            (EventKind::DoorOpens, Channel::Door),
        ];
        let mut quiet_frames = 0;
        for seed in 1000..1010 {
            for theme in crate::Theme::ALL {
                let world = World::new(seed, theme);
                for pose in walk(&world, 12).iter().step_by(3) {
                    let q = world.render(pose, 64, 64);
                    let sig = detect(&q.rgb, 64, 64);
                    assert!(sig.channels().is_empty(), "{seed} {theme}: {sig:?}");
                    quiet_frames += 1;
                    for (kind, ch) in kinds {
                        let mut s = EventState::default();
                        world.apply_event(&mut s, kind, pose);
                        let f = world.render_events(pose, &s, 5, 64, 64);
                        let sig = detect(&f.rgb, 64, 64);
                        assert_eq!(sig.channels(), vec![ch], "{seed} {theme} {kind:?}: {sig:?}");
                    }
                }
            }
        }
        assert_eq!(quiet_frames, 120);
        // Degenerate frames see nothing.
        assert!(detect(&[0; 12], 2, 2).channels().is_empty());
        assert!(detect(&[0; 10], 64, 64).channels().is_empty());
    }

    #[test]
    fn scoring_counts_misses_and_unasked_events() {
        let lit = Signals {
            luma_p90: 80.0,
            ..Signals::default()
        };
        let ghost = Signals { ghost: 0.05, ..lit };
        let events = [Event {
            tick: 2,
            kind: EventKind::GhostAppears,
        }];
        // Seen at tick 4 (within 2 ticks): followed, nothing unasked.
        let s = score_instructions(&[lit, lit, lit, lit, ghost, lit], &events, 2);
        assert_eq!(s.counts(), (5, 5));
        assert_eq!(s.score(), 1.0);
        // Seen only at tick 5: missed.
        let s = score_instructions(&[lit, lit, lit, lit, lit, ghost], &events, 2);
        assert_eq!(s.followed, vec![(events[0], false)]);
        assert_eq!(s.counts(), (4, 5));
        // Seen before it was asked for: unasked at frame 1.
        let s = score_instructions(&[lit, ghost, lit, ghost], &events, 2);
        assert_eq!(s.unasked[0], (Channel::Ghost, Some(1)));
        // The lights go out, come back: dark after the grace is unasked.
        let dark = Signals {
            luma_p90: 3.0,
            ..Signals::default()
        };
        let ev = [
            Event {
                tick: 1,
                kind: EventKind::LightsOut,
            },
            Event {
                tick: 3,
                kind: EventKind::LightsOn,
            },
        ];
        let s = score_instructions(&[lit, dark, dark, dark, lit, lit], &ev, 1);
        assert_eq!(s.score(), 1.0, "{s:?}");
        let s = score_instructions(&[lit, dark, dark, dark, dark, dark], &ev, 1);
        assert_eq!(s.followed[1], (ev[1], false));
        assert_eq!(s.unasked[1], (Channel::Dark, Some(5)));
        // Never dark: "the lights come back" is not followed either.
        let s = score_instructions(&[lit; 6], &ev, 1);
        assert_eq!(s.followed, vec![(ev[0], false), (ev[1], false)]);
    }

    /// The detector's check: the ground truth follows its scripts (≥ 0.95)
    /// on 30 held-out walks (seeds 1000..1010, every theme).
    #[test]
    fn the_ground_truth_follows_its_scripts() {
        let (mut ok, mut trials, mut events) = (0, 0, 0);
        for seed in 1000..1010 {
            for theme in crate::Theme::ALL {
                let world = World::new(seed, theme);
                let poses = walk(&world, 32);
                let schedule = script(seed, 32);
                assert!((2..=4).contains(&schedule.len()), "{schedule:?}");
                assert!(schedule.windows(2).all(|w| w[0].tick < w[1].tick));
                events += schedule.len();
                let signals: Vec<Signals> = frames(&world, &schedule, &poses)
                    .iter()
                    .map(|f| detect(&f.rgb, 64, 64))
                    .collect();
                let (o, n) = score_instructions(&signals, &schedule, 4).counts();
                ok += o;
                trials += n;
            }
        }
        let score = ok as f64 / trials as f64;
        assert!(score >= 0.95, "{ok}/{trials}");
        assert!(
            events >= 60 && trials >= 30 * 4 + events,
            "{events} {trials}"
        );
        // Every kind of scripted event occurs in the scripts.
        let kinds: std::collections::HashSet<EventKind> = (1000..1030)
            .flat_map(|s| script(s, 32))
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds.len(), 6, "{kinds:?}");
    }
}
