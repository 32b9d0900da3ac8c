//! Event state: the whole effect of every event so far.
//!
//! # Main types
//! - [`EventState`]: a few fields (a ghost's world position, a door's wall
//!   [`DoorFace`], two switches), changed by
//!   [`World::apply_event`](crate::World::apply_event) and drawn by
//!   [`World::render_events`](crate::World::render_events).
//! - [`replay`]: the states along a walk, from its schedule and poses.

use super::{Channel, Event, EventKind};
use crate::{Pose, World};

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
