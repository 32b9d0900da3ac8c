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
//!
//! # Files
//! `kinds.rs` (channels, kinds, schedules), `state.rs` (event state and its
//! replay), `draw.rs` (what the renderer draws), `detect.rs` (signals from
//! pixels), `instructions.rs` (scores and scripts), `captions.rs` (global
//! captions and layouts); the unit tests are in `tests.rs`.

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

mod captions;
mod detect;
mod draw;
mod instructions;
mod kinds;
mod state;

pub use captions::{Layout, find_seed, global_caption, parse_global_caption};
pub use detect::{Signals, detect, thresholds};
pub(crate) use draw::{GHOST_HALF_WIDTH, GHOST_TOP, door_colour, draw_snow, ghost_colour};
pub use instructions::{InstructionScore, score_instructions, script};
pub use kinds::{Channel, Event, EventKind, MAX_EVENTS, parse_schedule, schedule_entries};
pub use state::{DoorFace, EventState, replay};

#[cfg(test)]
mod tests;
