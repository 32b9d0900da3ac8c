//! Episode policies: how the keys and events of one episode are chosen from
//! a seed (what `wgraph dataset` records as training data).
//!
//! # Main types
//! - [`Policy`]: how the player is driven. `Random` draws one of [`COMBOS`]
//!   uniformly and holds it 1–4 ticks. `Explore` walks forward and turns
//!   when a wall or object is close ahead (the depth of the centre column at
//!   the horizon, [`World::probe`]), towards the more open side; at
//!   junctions it often turns into side passages it has not visited;
//!   otherwise it draws a combination with balanced sampling, as PlayGen
//!   does: each combination has a target share ([`TARGETS`], about half of
//!   them with W, so the walk is mostly forward) and its weight is the
//!   target times `target / observed share` (clamped to 0.25–4) over every
//!   action chosen so far, so under-represented actions are preferred and
//!   the histogram converges to the targets.
//! - [`Balance`]: the action counts the balanced sampling reads, shared by
//!   every walk of a dataset (so a walk depends on the seeds walked before
//!   it with the same `Balance`).
//! - [`Walk`]: one seed's walk, made by [`walk`]: the keys of each tick, the
//!   pose after each frame, the floor coverage, and the scheduled events.
//! - [`EventPolicy`]: which events an episode gets: none, or the seeded
//!   script of [`events::script`].
//!
//! The trajectory depends only on the geometry (a walk in one theme is the
//! same walk in every theme), and everything is seeded from the seed and
//! the `Balance`: the same arguments give the same walk.

use crate::events::{self, Event};
use crate::{Keys, Pose, SplitMix64, TURN_DEG, World, mix64};
use std::collections::{BTreeMap, VecDeque};

/// How the player is driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Random key combinations held 1–4 ticks.
    Random,
    /// Mostly forward, turning at walls, balanced across actions.
    Explore,
}

impl Policy {
    /// The policy's name, as `wgraph dataset --policy` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Random => "random",
            Policy::Explore => "explore",
        }
    }
}

/// Which events an episode gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventPolicy {
    /// No events (the frames of datasets written before events existed).
    None,
    /// [`events::script`]`(seed, frames)` for every seed.
    Auto,
}

impl EventPolicy {
    /// The policy's name, as `wgraph dataset --events` spells it.
    pub fn name(self) -> &'static str {
        match self {
            EventPolicy::None => "none",
            EventPolicy::Auto => "auto",
        }
    }

    /// The event schedule of an episode of `seed` with `frames` ticks (event
    /// `tick` t is applied after action t).
    pub fn schedule(self, seed: u64, frames: u64) -> Vec<Event> {
        match self {
            EventPolicy::None => Vec::new(),
            EventPolicy::Auto => events::script(seed, frames),
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

/// Target share of each of [`COMBOS`] under [`Policy::Explore`] (sums to 1).
pub const TARGETS: [f64; 15] = [
    0.07, 0.20, 0.06, 0.06, 0.06, 0.08, 0.08, 0.05, 0.05, 0.04, 0.07, 0.07, 0.04, 0.04, 0.03,
];

/// Action counts across a dataset, per combination and per key.
#[derive(Debug, Default, Clone)]
pub struct Balance {
    combos: BTreeMap<Keys, u64>,
    keys: [u64; 9],
    total: u64,
}

impl Balance {
    /// Counts one tick's keys.
    pub fn record(&mut self, k: Keys) {
        *self.combos.entry(k).or_default() += 1;
        for (i, c) in self.keys.iter_mut().enumerate() {
            if k.contains(Keys::key(i)) {
                *c += 1;
            }
        }
        self.total += 1;
    }

    /// Ticks per key combination recorded so far.
    pub fn combos(&self) -> &BTreeMap<Keys, u64> {
        &self.combos
    }

    /// Ticks per key, in [`Keys::NAMES`] order.
    pub fn keys(&self) -> [u64; 9] {
        self.keys
    }

    /// Ticks recorded.
    pub fn total(&self) -> u64 {
        self.total
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
#[derive(Debug, Clone, PartialEq)]
pub struct Walk {
    /// The keys of each tick (`n` of them).
    pub actions: Vec<Keys>,
    /// The start pose, then the pose after each tick (`n + 1`).
    pub poses: Vec<Pose>,
    /// Floor tiles visited / floor tiles.
    pub coverage: f64,
    /// Floor tiles visited.
    pub visited: usize,
    /// Scheduled events (tick t: after action t); [`walk`] leaves it empty.
    pub events: Vec<Event>,
}

/// Drives `world` for `n` ticks with `policy`, counting every tick's keys
/// in `balance` (which `Explore` also reads).
pub fn walk(world: &World, n: usize, policy: Policy, balance: &mut Balance) -> Walk {
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
    (diff / TURN_DEG).round() as i32
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Theme;

    #[test]
    fn targets_sum_to_one() {
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
        let total = balance.total() as f64;
        for (i, k) in COMBOS.iter().enumerate() {
            let share = balance.combos().get(k).copied().unwrap_or(0) as f64 / total;
            assert!(share > TARGETS[i] * 0.3, "{k}: {share}");
            assert!(share < TARGETS[i] * 3.0 + 0.05, "{k}: {share}");
        }
        let w = balance.keys()[0];
        assert!(
            balance.keys().iter().all(|&c| c <= w),
            "{:?}",
            balance.keys()
        );
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

    #[test]
    fn walks_are_the_same_in_every_theme_and_count_every_tick() {
        let (mut b1, mut b2) = (Balance::default(), Balance::default());
        let a = walk(&World::new(3, Theme::Dungeon), 60, Policy::Explore, &mut b1);
        let b = walk(&World::new(3, Theme::Forest), 60, Policy::Explore, &mut b2);
        assert_eq!(a, b);
        assert_eq!(b1.total(), 60);
        assert_eq!(b1.combos().values().sum::<u64>(), 60);
        assert!(a.events.is_empty());
        assert!((0.0..=1.0).contains(&a.coverage) && a.visited >= 1);
    }

    #[test]
    fn event_policies() {
        assert!(EventPolicy::None.schedule(5, 100).is_empty());
        assert_eq!(EventPolicy::Auto.schedule(5, 100), events::script(5, 100));
        assert_eq!(EventPolicy::Auto.name(), "auto");
        assert_eq!(Policy::Explore.name(), "explore");
    }
}
