//! The ground-truth world of wgraph: a seeded, procedural first-person maze
//! that renders RGB **and depth** from the same actions the graphs use.
//!
//! Models are trained on its frames, and `wgraph eval` compares generated
//! frames with it, so it is deterministic (a pure function of seed, theme,
//! actions and the events asked for, identical on every run), fast (a 64×64 frame in well under a
//! millisecond) and plain Rust with no dependencies.
//!
//! # Main types
//! - [`World`]: one world, built by [`World::new`]`(seed, theme)`. The seed
//!   fixes the geometry — a [`MAZE_CELLS`]² maze (recursive backtracker on a
//!   [`SplitMix64`], plus loops and open rooms), landmarks ([`TileKind`]
//!   pillars, doors, wall panels in eight colours) and billboard objects
//!   ([`Sprite`]) — and the start pose; the [`Theme`] changes only the look.
//! - [`Pose`]: where the player stands and looks; [`World::step`] moves it by
//!   one tick of [`Keys`] (with collision), [`World::start_pose`] is the seeded
//!   start.
//! - [`Keys`]: the keys held during one tick, W A S D Left Right Up Down
//!   Space, as a bitset in that order (the order of wgraph's multi-hot vectors).
//! - [`Frame`]: [`World::render`]'s output, `rgb` u8 `[H, W, 3]` and `depth`
//!   f32 `[H, W]` in world units, both row-major.
//! - [`Map`]: the tile map ([`World::map`]); one tile is one world unit ("cell").
//! - [`events`]: text-triggered events ([`EventKind`], [`Event`],
//!   [`EventState`], [`World::apply_event`], [`World::render_events`]), their
//!   detector ([`detect`], [`score_instructions`]) and the global captions of
//!   theme and [`Layout`] ([`global_caption`], [`parse_global_caption`]).
//! - [`policy`]: how an episode's keys and events are chosen from a seed
//!   ([`policy::Policy`], [`policy::walk`], [`policy::EventPolicy`]), as
//!   `wgraph dataset` records them.
//!
//! # Coordinates and motion
//! `x` grows east, `y` south, in tiles. `yaw` is in degrees, 0 = facing +x,
//! 90 = facing +y (so Right increases it). Per tick: W/S move
//! [`MOVE_STEP`] forward/back, A/D strafe [`STRAFE_STEP`], Left/Right turn
//! [`TURN_DEG`], Up/Down change `pitch` by [`PITCH_STEP`] within
//! ±[`MAX_PITCH`], and Space is a hop: the eye is [`HOP_HEIGHT`] higher
//! during every tick Space is held (`Pose::z`), and back down on the first
//! tick without it. Turning and looking apply before moving, so W+Left
//! walks along the new heading. Opposite keys cancel.
//!
//! # Rendering
//! One DDA ray per column against the tile map (walls are one unit tall, the
//! eye at half a unit plus the hop), textured walls with mip-mapping, floor
//! and ceiling casting, billboard objects tested against a per-pixel depth
//! buffer, and distance fog. `pitch` shears the view: the horizon sits at
//! row `H · (0.5 + pitch)`. The horizontal field of view is [`FOV_DEG`].
//!
//! Depth is geometric and the same in every theme: the perpendicular
//! distance (along the view direction) of the wall, floor point or object a
//! pixel sees, clamped to [`MAX_DEPTH`]. The world is open above the walls —
//! Dungeon's dark ceiling is a backdrop like the other themes' skies — so
//! everything above the walls reads [`MAX_DEPTH`]. [`depth_to_signed`] is the
//! mapping to [-1, 1] that the `world` node kind uses.
//!
//! ```
//! use wgraph_groundtruth::{Keys, Theme, World};
//! let world = World::new(7, Theme::Neon);
//! let mut pose = world.start_pose();
//! world.step(&mut pose, Keys::W | Keys::LEFT);
//! let frame = world.render(&pose, 64, 64);
//! assert_eq!(frame.rgb.len(), 64 * 64 * 3);
//! ```

#![warn(missing_docs)]

pub mod events;
mod maze;
pub mod policy;
mod render;
mod rng;
mod texture;

pub use events::{
    Channel, DoorFace, Event, EventKind, EventState, InstructionScore, Layout, Signals, detect,
    global_caption, parse_global_caption, score_instructions,
};
pub use maze::{MAZE_CELLS, Map, SPRITE_RADIUS, Sprite, SpriteKind, TINTS, Tile, TileKind};
pub use rng::{SplitMix64, mix64};
pub use texture::{TEX, TINT_RGB};

use std::fmt;
use std::sync::Arc;

/// World seeds at or above this are held out: `wgraph dataset` marks them
/// `held_out` and `wgraph eval` refuses a lower one unless told to.
pub const FIRST_HELD_OUT_SEED: u64 = 1000;

/// Distance forward/back per tick of W/S (world units).
pub const MOVE_STEP: f32 = 0.25;
/// Distance sideways per tick of A/D (world units).
pub const STRAFE_STEP: f32 = 0.2;
/// Yaw change per tick of Left/Right (degrees).
pub const TURN_DEG: f32 = 15.0;
/// Pitch change per tick of Up/Down (a fraction of the frame height; a
/// power of two, so repeated looks are exact).
pub const PITCH_STEP: f32 = 0.125;
/// The largest |pitch|.
pub const MAX_PITCH: f32 = 0.375;
/// How much higher the eye is while Space is held (world units).
pub const HOP_HEIGHT: f32 = 0.15;
/// Eye height above the floor without a hop (walls are 1 unit tall).
pub const EYE_HEIGHT: f32 = 0.5;
/// Half the side of the player's square collision box (world units).
pub const PLAYER_RADIUS: f32 = 0.2;
/// Horizontal field of view (degrees).
pub const FOV_DEG: f32 = 66.0;
/// Depth of the sky and of anything farther (world units).
pub const MAX_DEPTH: f32 = 16.0;

/// Maps a depth in world units to [-1, 1]: linear, 0 → −1 and
/// [`MAX_DEPTH`] (or farther) → 1, i.e. `2 · min(max(d, 0), MAX_DEPTH) / MAX_DEPTH − 1`.
pub fn depth_to_signed(depth: f32) -> f32 {
    2.0 * depth.clamp(0.0, MAX_DEPTH) / MAX_DEPTH - 1.0
}

/// The inverse of [`depth_to_signed`] (values outside [-1, 1] are clamped).
pub fn signed_to_depth(v: f32) -> f32 {
    (v.clamp(-1.0, 1.0) + 1.0) * 0.5 * MAX_DEPTH
}

/// The look of a world. A theme never changes geometry: the same seed gives
/// the same maze, poses and depth in every theme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Theme {
    /// Brick walls, stone floor, dark wooden ceiling, dark fog.
    Dungeon,
    /// Dark metal walls with glowing neon stripes, wet floor, night sky.
    Neon,
    /// Snowy hedges and trees, snow floor, pale sky, white mist.
    Forest,
}

impl Theme {
    /// Every theme.
    pub const ALL: [Theme; 3] = [Theme::Dungeon, Theme::Neon, Theme::Forest];

    /// The theme's lower-case name: `dungeon`, `neon` or `forest`.
    pub fn name(self) -> &'static str {
        match self {
            Theme::Dungeon => "dungeon",
            Theme::Neon => "neon",
            Theme::Forest => "forest",
        }
    }

    /// Parses a name as written by [`Theme::name`] (case-insensitive).
    pub fn parse(s: &str) -> Option<Theme> {
        Theme::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for Theme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The keys held during one tick: a bitset, bit `i` = [`Keys::NAMES`]`[i]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Keys(u16);

impl Keys {
    /// No key.
    pub const NONE: Keys = Keys(0);
    /// Forward.
    pub const W: Keys = Keys(1 << 0);
    /// Strafe left.
    pub const A: Keys = Keys(1 << 1);
    /// Back.
    pub const S: Keys = Keys(1 << 2);
    /// Strafe right.
    pub const D: Keys = Keys(1 << 3);
    /// Turn left.
    pub const LEFT: Keys = Keys(1 << 4);
    /// Turn right.
    pub const RIGHT: Keys = Keys(1 << 5);
    /// Look up.
    pub const UP: Keys = Keys(1 << 6);
    /// Look down.
    pub const DOWN: Keys = Keys(1 << 7);
    /// Hop.
    pub const SPACE: Keys = Keys(1 << 8);
    /// Key names in bit order (the order of wgraph's multi-hot action vectors).
    pub const NAMES: [&'static str; 9] =
        ["W", "A", "S", "D", "Left", "Right", "Up", "Down", "Space"];

    /// Keys from bits (bits above the 9 keys are dropped).
    pub const fn from_bits(bits: u16) -> Keys {
        Keys(bits & 0x1FF)
    }

    /// The bits.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// The single key `i` of [`Keys::NAMES`] (none when `i >= 9`).
    pub const fn key(i: usize) -> Keys {
        if i < 9 { Keys(1 << i) } else { Keys(0) }
    }

    /// Whether every key of `other` is held.
    pub const fn contains(self, other: Keys) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no key is held.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// One float per key in [`Keys::NAMES`] order: 1.0 when held.
    pub fn multi_hot(self) -> [f32; 9] {
        std::array::from_fn(|i| f32::from(u8::from(self.0 & (1 << i) != 0)))
    }

    /// Parses the action-file form: key names joined by `+` or spaces
    /// (any case), `-` or nothing for no key.
    pub fn parse(s: &str) -> Option<Keys> {
        let s = s.trim();
        if s == "-" {
            return Some(Keys::NONE);
        }
        s.split(|c: char| c == '+' || c.is_whitespace())
            .filter(|w| !w.is_empty())
            .try_fold(Keys::NONE, |k, w| {
                let i = Keys::NAMES.iter().position(|n| n.eq_ignore_ascii_case(w))?;
                Some(k | Keys::key(i))
            })
    }

    fn axis(self, plus: Keys, minus: Keys) -> f32 {
        f32::from(u8::from(self.contains(plus))) - f32::from(u8::from(self.contains(minus)))
    }
}

impl std::ops::BitOr for Keys {
    type Output = Keys;
    fn bitor(self, rhs: Keys) -> Keys {
        Keys(self.0 | rhs.0)
    }
}

impl fmt::Display for Keys {
    /// The action-file form: `W+Left`, or `-` for no key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("-");
        }
        let names: Vec<&str> = (0..9)
            .filter(|&i| self.0 & (1 << i) != 0)
            .map(|i| Keys::NAMES[i])
            .collect();
        f.write_str(&names.join("+"))
    }
}

/// Where the player is and looks.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Pose {
    /// East, in tiles.
    pub x: f32,
    /// South, in tiles.
    pub y: f32,
    /// Heading in degrees in [0, 360): 0 = +x, 90 = +y.
    pub yaw: f32,
    /// Horizon shift as a fraction of the frame height, positive = looking
    /// up, within ±[`MAX_PITCH`].
    pub pitch: f32,
    /// Eye lift of a hop (0 or [`HOP_HEIGHT`]; set by Space in [`World::step`]).
    pub z: f32,
}

impl Pose {
    /// `[x, y, yaw, pitch]`, the pose vector of datasets and the `world`
    /// node (the hop is not in it: it is implied by this tick's Space key).
    pub fn to_array(self) -> [f32; 4] {
        [self.x, self.y, self.yaw, self.pitch]
    }

    /// The tile the player stands on.
    pub fn tile(self) -> (i32, i32) {
        (self.x.floor() as i32, self.y.floor() as i32)
    }

    /// Unit vectors (forward, right) of the heading.
    pub fn axes(self) -> ([f32; 2], [f32; 2]) {
        let (s, c) = self.yaw.to_radians().sin_cos();
        ([c, s], [-s, c])
    }
}

/// A rendered view.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Frame {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Colours, `[height, width, 3]` row-major.
    pub rgb: Vec<u8>,
    /// Perpendicular distance in world units, `[height, width]` row-major,
    /// at most [`MAX_DEPTH`] (the sky).
    pub depth: Vec<f32>,
}

/// One ground-truth world: geometry from a seed, look from a theme.
#[derive(Clone)]
pub struct World {
    seed: u64,
    theme: Theme,
    map: Map,
    sprites: Vec<Sprite>,
    start: Pose,
    /// Per-tile colour multipliers of plain walls (regional tints, so
    /// different parts of the maze look different).
    shade: Vec<[f32; 3]>,
    tex: Arc<texture::ThemeTextures>,
}

impl fmt::Debug for World {
    /// Seed, theme, start and object count (not the texture data).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("World")
            .field("seed", &self.seed)
            .field("theme", &self.theme)
            .field("start", &self.start)
            .field("sprites", &self.sprites.len())
            .finish_non_exhaustive()
    }
}

impl World {
    /// Builds world `seed` in `theme`. Cheap: textures are built once per
    /// theme and shared.
    pub fn new(seed: u64, theme: Theme) -> World {
        let layout = maze::generate(seed);
        let map = layout.map;
        let size = map.size();
        let mut rng = SplitMix64::new(mix64(seed ^ 0x57A2_7000));
        // Regional tints: 3×3 zones, each shifting the wall colour a little.
        // Mostly brightness, a little hue, so snow stays white.
        let zones: Vec<[f32; 3]> = (0..9)
            .map(|_| {
                let b = 0.84 + 0.3 * rng.unit() as f32;
                std::array::from_fn(|_| b * (0.94 + 0.12 * rng.unit() as f32))
            })
            .collect();
        let shade = (0..size * size)
            .map(|i| {
                let (x, y) = (i % size, i / size);
                zones[(y * 3 / size) * 3 + x * 3 / size]
            })
            .collect();
        let mut world = World {
            seed,
            theme,
            map,
            sprites: layout.sprites,
            start: Pose::default(),
            shade,
            tex: texture::theme_textures(theme),
        };
        let (tx, ty) = layout.start_tiles[rng.below(layout.start_tiles.len())];
        let mut start = Pose {
            x: tx as f32 + 0.5,
            y: ty as f32 + 0.5,
            ..Pose::default()
        };
        // Face the longest open view among the four directions.
        let mut best = -1.0;
        for yaw in [0.0, 90.0, 180.0, 270.0] {
            let d = world.probe(&Pose { yaw, ..start }, 0.0);
            if d > best {
                best = d;
                start.yaw = yaw;
            }
        }
        world.start = start;
        world
    }

    /// The same geometry in another theme (cheap).
    pub fn with_theme(&self, theme: Theme) -> World {
        World {
            theme,
            tex: texture::theme_textures(theme),
            ..self.clone()
        }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The theme.
    pub fn theme(&self) -> Theme {
        self.theme
    }

    /// The tile map.
    pub fn map(&self) -> &Map {
        &self.map
    }

    /// The billboard objects.
    pub fn sprites(&self) -> &[Sprite] {
        &self.sprites
    }

    /// The seeded start pose: the centre of a floor cell, facing its longest
    /// open view, level, no hop.
    pub fn start_pose(&self) -> Pose {
        self.start
    }

    /// Applies one tick of `keys` to `pose` (see the crate docs for the
    /// rules). Movement slides along walls and objects: a blocked move on
    /// one axis is retried at 1/2, 1/4, 1/8 and 1/16 of its length, the
    /// other axis still moves. A pose in free space stays in free space.
    pub fn step(&self, pose: &mut Pose, keys: Keys) {
        let turn = keys.axis(Keys::RIGHT, Keys::LEFT);
        pose.yaw = (pose.yaw + turn * TURN_DEG).rem_euclid(360.0);
        if pose.yaw >= 360.0 {
            pose.yaw = 0.0; // rem_euclid of a tiny negative number
        }
        let look = keys.axis(Keys::UP, Keys::DOWN);
        pose.pitch = (pose.pitch + look * PITCH_STEP).clamp(-MAX_PITCH, MAX_PITCH);
        pose.z = if keys.contains(Keys::SPACE) {
            HOP_HEIGHT
        } else {
            0.0
        };
        let (fwd, right) = pose.axes();
        let f = keys.axis(Keys::W, Keys::S) * MOVE_STEP;
        let s = keys.axis(Keys::D, Keys::A) * STRAFE_STEP;
        let (dx, dy) = (fwd[0] * f + right[0] * s, fwd[1] * f + right[1] * s);
        let mut len = dx;
        for _ in 0..5 {
            if len == 0.0 || self.is_free(pose.x + len, pose.y) {
                pose.x += len;
                break;
            }
            len *= 0.5;
        }
        let mut len = dy;
        for _ in 0..5 {
            if len == 0.0 || self.is_free(pose.x, pose.y + len) {
                pose.y += len;
                break;
            }
            len *= 0.5;
        }
    }

    /// Whether the player's collision box centred at (`x`, `y`) touches no
    /// wall and no object.
    pub fn is_free(&self, x: f32, y: f32) -> bool {
        if !(x.is_finite() && y.is_finite()) {
            return false;
        }
        let r = PLAYER_RADIUS;
        let (x0, x1) = ((x - r).floor() as i32, (x + r).floor() as i32);
        let (y0, y1) = ((y - r).floor() as i32, (y + r).floor() as i32);
        for ty in y0..=y1 {
            for tx in x0..=x1 {
                if self.map.is_solid(tx, ty) {
                    return false;
                }
            }
        }
        let reach = (r + SPRITE_RADIUS) * (r + SPRITE_RADIUS);
        self.sprites
            .iter()
            .all(|s| (s.x - x).powi(2) + (s.y - y).powi(2) >= reach)
    }

    /// Distance from the eye along the heading turned by `offset_deg`
    /// (positive = right) to the first wall or object, at most
    /// [`MAX_DEPTH`]. For `offset_deg = 0` this is the depth of the centre
    /// column at the horizon.
    pub fn probe(&self, pose: &Pose, offset_deg: f32) -> f32 {
        let (s, c) = (pose.yaw + offset_deg).to_radians().sin_cos();
        let (d, _) = render::cast(&self.map, pose.x, pose.y, c, s);
        let mut best = d;
        for sp in &self.sprites {
            // Ray against the object's blocking circle.
            let (ox, oy) = (sp.x - pose.x, sp.y - pose.y);
            let t = ox * c + oy * s;
            let miss2 = ox * ox + oy * oy - t * t;
            let r2 = SPRITE_RADIUS * SPRITE_RADIUS;
            if t > 0.0 && miss2 <= r2 {
                best = best.min(t - (r2 - miss2).sqrt());
            }
        }
        best.clamp(0.0, MAX_DEPTH)
    }

    /// Renders the view from `pose` at `width` × `height`.
    pub fn render(&self, pose: &Pose, width: usize, height: usize) -> Frame {
        let mut frame = Frame {
            width,
            height,
            ..Frame::default()
        };
        self.render_into(pose, &mut frame);
        frame
    }

    /// Renders into `frame`, reusing its buffers (its `width` and `height`
    /// say the size).
    pub fn render_into(&self, pose: &Pose, frame: &mut Frame) {
        render::render(self, pose, frame);
    }
}

#[cfg(test)]
mod tests;
