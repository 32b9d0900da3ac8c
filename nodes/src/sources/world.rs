//! `world`: the ground-truth world (crate `wgraph-world`) as a source — a
//! seeded first-person maze that renders what the player's keys show, RGB
//! and depth, at the world resolution.
//!
//! Outputs per tick `t`: `start`, the view from the start pose (one tensor
//! built once and emitted every tick, so model nodes can tell it never
//! changes); `image`, the view after applying tick `t`'s keys; `depth`, its
//! depth mapped by [`depth_to_signed`]; `pose`, `[x, y, yaw, pitch]` after
//! the keys. `image` at tick `t` is frame `t + 1` of a `wgraph dataset`
//! episode with the same seed and keys (frame 0 is `start`).

use crate::common::*;
pub use wgraph_world::depth_to_signed;
use wgraph_world::{Frame, Keys, Pose, Theme, World};

/// Theme names, in [`Theme::ALL`] order.
const THEMES: &[&str] = &["dungeon", "neon", "forest"];

/// The largest frame (pixels) the node renders.
const MAX_PIXELS: usize = 4096 * 4096;

/// A colour byte as an image value in [-1, 1]: `b / 127.5 − 1`.
pub fn pixel_to_signed(b: u8) -> f32 {
    f32::from(b) / 127.5 - 1.0
}

/// A frame's colours as an f32[1, 3, H, W] image tensor in [-1, 1].
pub fn frame_image_tensor(frame: &Frame) -> Result<Tensor, NodeError> {
    let n = frame.width * frame.height;
    let mut data = vec![0.0f32; 3 * n];
    for (i, px) in frame.rgb.chunks_exact(3).enumerate().take(n) {
        for (c, &b) in px.iter().enumerate() {
            data[c * n + i] = pixel_to_signed(b);
        }
    }
    Ok(Tensor::from_f32(&[1, 3, frame.height, frame.width], data)?)
}

/// A frame's depth as an f32[1, 1, H, W] tensor mapped by [`depth_to_signed`].
pub fn frame_depth_tensor(frame: &Frame) -> Result<Tensor, NodeError> {
    let data = frame.depth.iter().map(|&d| depth_to_signed(d)).collect();
    Ok(Tensor::from_f32(&[1, 1, frame.height, frame.width], data)?)
}

/// The keys of a tick's actions.
fn keys_of(actions: Actions) -> Keys {
    Key::ALL
        .iter()
        .enumerate()
        .filter(|(_, k)| actions.contains(**k))
        .fold(Keys::NONE, |keys, (i, _)| keys | Keys::key(i))
}

/// The `world` kind.
pub struct WorldSource;

impl NodeKind for WorldSource {
    fn name(&self) -> &'static str {
        "world"
    }
    fn summary(&self) -> &'static str {
        "the ground-truth world: a seeded first-person maze; outputs the start view, the view after this tick's keys, its depth and the pose"
    }
    fn params(&self) -> &'static [ParamSpec] {
        const PARAMS: &[ParamSpec] = &[
            ParamSpec::optional(
                "seed",
                ParamType::Int,
                ParamDefault::Int(-1),
                "which world (maze, landmarks, start); -1 (default) uses the world settings' seed",
            ),
            ParamSpec::optional(
                "theme",
                ParamType::Choice(THEMES),
                ParamDefault::Choice("dungeon"),
                "the look (never the geometry): dungeon, neon or forest",
            ),
        ];
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let seed = match cx.params.int("seed")? {
            -1 => cx.settings.seed,
            s => u64::try_from(s).map_err(|_| {
                BuildError::param(
                    "seed",
                    "the seed must be >= 0 (or -1 for the world settings' seed)",
                )
            })?,
        };
        let name = cx.params.choice("theme")?;
        let theme = Theme::parse(&name).ok_or_else(|| {
            BuildError::param(
                "theme",
                format!("unknown theme `{name}` (themes: {THEMES:?})"),
            )
        })?;
        let (height, width) = (cx.settings.height, cx.settings.width);
        if width.checked_mul(height).is_none_or(|n| n > MAX_PIXELS) {
            return Err(BuildError::new(format!(
                "the world renders at most {MAX_PIXELS} pixels; the resolution is {height}x{width}"
            )));
        }
        let world = World::new(seed, theme);
        let start = frame_image_tensor(&world.render(&world.start_pose(), width, height))
            .map_err(|e| BuildError::new(e.to_string()))?;
        Ok(Box::new(WorldNode {
            world,
            height,
            width,
            start,
        }))
    }
}

struct WorldNode {
    world: World,
    height: usize,
    width: usize,
    /// The start view, rendered once at build.
    start: Tensor,
}

/// The player in a maze: where it stands, and which maze (seed) that is in.
struct Walker {
    pose: Pose,
    seed: u64,
}

impl Node for WorldNode {
    fn inputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::wired("actions")]
    }
    fn input_type(&self, _port: usize) -> Option<String> {
        Some(ValueType::Actions.to_string())
    }
    fn outputs(&self) -> Vec<PortSpec> {
        ["start", "image", "depth", "pose"]
            .map(PortSpec::output)
            .into()
    }
    fn infer(
        &self,
        inputs: &[Option<ValueType>],
        _: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        actions_in(inputs, 0)?;
        let (h, w) = (self.height, self.width);
        Ok(vec![
            ValueType::tensor(DType::F32, &[1, 3, h, w]),
            ValueType::tensor(DType::F32, &[1, 3, h, w]),
            ValueType::tensor(DType::F32, &[1, 1, h, w]),
            ValueType::tensor(DType::F32, &[1, 4]),
        ])
    }
    fn init_state(&self) -> Result<State, NodeError> {
        Ok(Box::new(Walker {
            pose: self.world.start_pose(),
            seed: self.world.seed(),
        }))
    }
    fn carry(&self, old: &State, _: &CarryContext) -> Carry {
        // The player stays where it is across any edit of the look (theme,
        // size); a new seed is another maze, where that place may be a wall.
        match old.downcast_ref::<Walker>() {
            Some(w) if w.seed == self.world.seed() => Carry::Keep,
            Some(w) => Carry::Reset(format!(
                "the maze changed (seed {} -> {}); the player starts again",
                w.seed,
                self.world.seed()
            )),
            None => Carry::Fresh,
        }
    }
    fn save_state(&self, state: &State) -> Result<Option<SavedState>, NodeError> {
        let p = &state
            .downcast_ref::<Walker>()
            .ok_or_else(|| NodeError::new("internal: node state has an unexpected type"))?
            .pose;
        let mut saved = SavedState::new();
        saved.put_f32s("pose", &[p.x, p.y, p.yaw, p.pitch, p.z]);
        Ok(Some(saved))
    }
    fn load_state(&self, saved: &SavedState) -> Result<State, NodeError> {
        match saved.f32s("pose")?[..] {
            [x, y, yaw, pitch, z] => Ok(Box::new(Walker {
                pose: Pose {
                    x,
                    y,
                    yaw,
                    pitch,
                    z,
                },
                seed: self.world.seed(),
            })),
            _ => Err(NodeError::new("the snapshot's `pose` is malformed")),
        }
    }
    fn eval(
        &self,
        state: &mut State,
        inputs: &[Option<Value>],
        _: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        let keys = keys_of(actions_arg(inputs, 0)?);
        let pose = &mut state_mut::<Walker>(state)?.pose;
        self.world.step(pose, keys);
        let frame = self.world.render(pose, self.width, self.height);
        let pose = Tensor::from_f32(&[1, 4], pose.to_array().to_vec())?;
        Ok(vec![
            self.start.clone().into(),
            frame_image_tensor(&frame)?.into(),
            frame_depth_tensor(&frame)?.into(),
            pose.into(),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::*;
    use wgraph_engine::node::OutputConfig;
    use wgraph_engine::params::ParamValue as P;
    use wgraph_engine::settings::Settings;

    fn walk() -> Vec<Actions> {
        let none = Actions::none();
        vec![
            none.with(Key::W),
            none.with(Key::W).with(Key::Left),
            none,
            none.with(Key::Right),
            none.with(Key::Up).with(Key::Space),
        ]
    }

    fn run_walk(node: &dyn Node) -> Vec<Vec<Value>> {
        let acts = walk();
        run(node, acts.len() as u64, |t| {
            vec![Value::Actions(acts[t as usize])]
        })
        .unwrap()
        .into_iter()
        .map(|(o, _)| o)
        .collect()
    }

    #[test]
    fn renders_the_world_the_keys_walk_through() {
        let dir = tempfile::tempdir().unwrap();
        let node = build(&WorldSource, vec![("seed", P::Int(3))], dir.path()).unwrap();
        let types = infer(&*node, &[ValueType::Actions]).unwrap();
        assert_eq!(types[3], ValueType::tensor(DType::F32, &[1, 4]));
        let out = run_walk(&*node);

        let world = World::new(3, Theme::Dungeon);
        let mut pose = world.start_pose();
        let start = world.render(&pose, 64, 64);
        for (t, acts) in walk().into_iter().enumerate() {
            world.step(&mut pose, keys_of(acts));
            let frame = world.render(&pose, 64, 64);
            let o = &out[t];
            let s = o[0].as_tensor().unwrap();
            assert!(
                s.shares_data(out[0][0].as_tensor().unwrap()),
                "one start tensor"
            );
            assert_eq!(f32s(o, 0)[7], pixel_to_signed(start.rgb[7 * 3]));
            let image = f32s(o, 1);
            // Channel c of pixel i is at c·H·W + i.
            assert_eq!(image[4096 + 100], pixel_to_signed(frame.rgb[100 * 3 + 1]));
            assert!(image.iter().all(|v| (-1.0..=1.0).contains(v)));
            let depth = f32s(o, 2);
            assert_eq!(depth[2000], depth_to_signed(frame.depth[2000]));
            assert!(depth.iter().all(|v| (-1.0..=1.0).contains(v)));
            assert_eq!(f32s(o, 3), pose.to_array());
        }
        assert_ne!(f32s(&out[0], 1), f32s(&out[1], 1), "the keys move the view");
        assert_eq!(keys_of(walk()[4]), Keys::UP | Keys::SPACE);

        let e = infer(&*node, &[ValueType::tensor(DType::F32, &[1])]).unwrap_err();
        assert_eq!(e.message, "expected actions, found f32[1]");
    }

    #[test]
    fn seed_defaults_to_the_settings_and_theme_changes_only_the_look() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutputConfig {
            dir: dir.path().to_path_buf(),
            ..OutputConfig::default()
        };
        let settings = Settings {
            seed: 5,
            height: 24,
            width: 40,
            ..Settings::default()
        };
        let derived = build_in(&WorldSource, vec![], &out, &settings).unwrap();
        let explicit = build_in(&WorldSource, vec![("seed", P::Int(5))], &out, &settings).unwrap();
        let neon = build_in(
            &WorldSource,
            vec![("theme", P::Choice("neon".into()))],
            &out,
            &settings,
        )
        .unwrap();
        let (a, b, c) = (run_walk(&*derived), run_walk(&*explicit), run_walk(&*neon));
        assert_eq!(a, b);
        assert_eq!(f32s(&a[0], 1).len(), 3 * 24 * 40);
        for t in 0..a.len() {
            assert_ne!(f32s(&a[t], 1), f32s(&c[t], 1));
            assert_eq!(f32s(&a[t], 2), f32s(&c[t], 2));
            assert_eq!(f32s(&a[t], 3), f32s(&c[t], 3));
        }
        let other = build(&WorldSource, vec![("seed", P::Int(6))], dir.path()).unwrap();
        assert_ne!(
            run_walk(&*other)[0][0],
            run_walk(&*build(&WorldSource, vec![], dir.path()).unwrap())[0][0]
        );

        let e = build(&WorldSource, vec![("seed", P::Int(-2))], dir.path()).unwrap_err();
        assert!(e.message.contains(">= 0"), "{}", e.message);
        let huge = Settings {
            height: 100_000,
            width: 100_000,
            ..Settings::default()
        };
        assert!(build_in(&WorldSource, vec![], &out, &huge).is_err());
        assert_eq!(depth_to_signed(0.0), -1.0);
        assert_eq!(pixel_to_signed(255), 1.0);
        assert_eq!(pixel_to_signed(0), -1.0);
    }
}
