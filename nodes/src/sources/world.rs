//! `world`: the ground-truth world (crate `wgraph-groundtruth`) as a source — a
//! seeded first-person maze that renders what the player's keys show, RGB
//! and depth, at the world resolution.
//!
//! Outputs per tick `t`: `start`, the view from the start pose (one tensor
//! built once and emitted every tick, so model nodes can tell it never
//! changes); `image`, the view after applying tick `t`'s keys; `depth`, its
//! depth mapped by [`depth_to_signed`]; `pose`, `[x, y, yaw, pitch]` after
//! the keys; `caption`, the global caption of its theme and layout. `image`
//! at tick `t` is frame `t + 1` of a `wgraph dataset` episode with the same
//! seed and keys (frame 0 is `start`).
//!
//! **Events** (`wgraph_groundtruth::events`): the `events` parameter schedules
//! captions (`["4: a ghost appears", "12: the lights go out"]`), and the
//! optional `text` input takes the graph's prompt — each time the text
//! changes, the events it names happen at that tick (wire a
//! `prompt_schedule`, whose `text` a front end or an `--events` line sets).
//! Both render deterministically: the state they leave (a ghost's world
//! position, an open door's face, two switches) is part of the node's state,
//! carried across reloads and saved in snapshots, so a replay gives the same
//! frames. Events change colours only: pose and depth are as without them.
//!
//! **Global caption**: the `caption` parameter ("a snowy forest path")
//! chooses the theme, and — when it names a layout (corridor or hall) — the
//! first seed from the chosen one whose walk starts in that layout.

use crate::common::*;
use std::sync::Arc;
pub use wgraph_groundtruth::depth_to_signed;
use wgraph_groundtruth::events::{self, Event, EventKind, EventState};
use wgraph_groundtruth::{Frame, Keys, Pose, Theme, World};

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
            ParamSpec::optional(
                "events",
                ParamType::StrList,
                ParamDefault::Absent,
                "scheduled events \"TICK: caption\", e.g. [\"4: a ghost appears\", \"12: the lights go out\"] (ghost appears/vanishes, lights go out/come back, it starts/stops snowing, a door opens)",
            ),
            ParamSpec::optional(
                "caption",
                ParamType::Str,
                ParamDefault::Absent,
                "a global caption (\"a snowy forest path\") that chooses the theme and, when it names corridor or hall, the first seed from `seed` that starts in that layout",
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
        let mut theme = Theme::parse(&name).ok_or_else(|| {
            BuildError::param(
                "theme",
                format!("unknown theme `{name}` (themes: {THEMES:?})"),
            )
        })?;
        let mut seed = seed;
        if let Ok(caption) = cx.params.string("caption") {
            let (t, layout) = events::parse_global_caption(&caption);
            theme = t.ok_or_else(|| {
                BuildError::param(
                    "caption",
                    format!(
                        "`{caption}` names no theme (e.g. \"{}\")",
                        events::global_caption(Theme::Forest, events::Layout::Corridor)
                    ),
                )
            })?;
            if let Some(layout) = layout {
                seed = events::find_seed(layout, seed).ok_or_else(|| {
                    BuildError::param(
                        "caption",
                        format!("no seed from {seed} starts in a {}", layout.name()),
                    )
                })?;
            }
        }
        let schedule = match cx.params.str_list("events") {
            Ok(list) => {
                events::parse_schedule(&list).map_err(|m| BuildError::param("events", m))?
            }
            Err(_) => Vec::new(),
        };
        let (height, width) = (cx.settings.height, cx.settings.width);
        if width.checked_mul(height).is_none_or(|n| n > MAX_PIXELS) {
            return Err(BuildError::new(format!(
                "the world renders at most {MAX_PIXELS} pixels; the resolution is {height}x{width}"
            )));
        }
        let world = World::new(seed, theme);
        let start = frame_image_tensor(&world.render(&world.start_pose(), width, height))
            .map_err(|e| BuildError::new(e.to_string()))?;
        let caption: Arc<str> = events::global_caption(theme, world.layout()).into();
        Ok(Box::new(WorldNode {
            world,
            height,
            width,
            start,
            schedule,
            caption,
        }))
    }
}

struct WorldNode {
    world: World,
    height: usize,
    width: usize,
    /// The start view, rendered once at build.
    start: Tensor,
    /// Scheduled events, sorted by tick.
    schedule: Vec<Event>,
    /// The global caption of the theme and layout.
    caption: Arc<str>,
}

/// The player in a maze: where it stands, which maze (seed) that is in, and
/// what the events so far did (fixed size, however many happened).
struct Walker {
    pose: Pose,
    seed: u64,
    events: EventState,
    /// The last text seen on the `text` input (its events happened when it
    /// arrived).
    text: Option<Arc<str>>,
}

impl Node for WorldNode {
    fn inputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::wired("actions"), PortSpec::optional("text")]
    }
    fn input_type(&self, port: usize) -> Option<String> {
        Some(match port {
            0 => ValueType::Actions.to_string(),
            _ => ValueType::Text.to_string(),
        })
    }
    fn outputs(&self) -> Vec<PortSpec> {
        ["start", "image", "depth", "pose", "caption"]
            .map(PortSpec::output)
            .into()
    }
    fn infer(
        &self,
        inputs: &[Option<ValueType>],
        _: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        actions_in(inputs, 0)?;
        match inputs.get(1).and_then(Option::as_ref) {
            None | Some(ValueType::Text) => {}
            Some(other) => {
                return Err(TypeError::input(1, format!("expected text, found {other}")));
            }
        }
        let (h, w) = (self.height, self.width);
        Ok(vec![
            ValueType::tensor(DType::F32, &[1, 3, h, w]),
            ValueType::tensor(DType::F32, &[1, 3, h, w]),
            ValueType::tensor(DType::F32, &[1, 1, h, w]),
            ValueType::tensor(DType::F32, &[1, 4]),
            ValueType::Text,
        ])
    }
    fn init_state(&self) -> Result<State, NodeError> {
        Ok(Box::new(Walker {
            pose: self.world.start_pose(),
            seed: self.world.seed(),
            events: EventState::default(),
            text: None,
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
        let walker = state
            .downcast_ref::<Walker>()
            .ok_or_else(|| NodeError::new("internal: node state has an unexpected type"))?;
        let p = &walker.pose;
        let mut saved = SavedState::new();
        saved.put_f32s("pose", &[p.x, p.y, p.yaw, p.pitch, p.z]);
        // Only when something happened: snapshots of quiet worlds stay as
        // they were.
        if !walker.events.is_quiet() || walker.text.is_some() {
            let (ints, floats) = walker.events.encode();
            saved.put_ints("events", &ints);
            saved.put_f32s("ghost", &floats);
            if let Some(t) = &walker.text {
                // The last text, as its UTF-8 bytes.
                let bytes: Vec<i64> = t.bytes().map(i64::from).collect();
                saved.put_ints("text", &bytes);
            }
        }
        Ok(Some(saved))
    }
    fn load_state(&self, saved: &SavedState) -> Result<State, NodeError> {
        let pose = match saved.f32s("pose")?[..] {
            [x, y, yaw, pitch, z] => Pose {
                x,
                y,
                yaw,
                pitch,
                z,
            },
            _ => return Err(NodeError::new("the snapshot's `pose` is malformed")),
        };
        let (events, text) = match saved.ints("events") {
            Ok(ints) => {
                let floats = saved.f32s("ghost")?;
                let events = EventState::decode(&ints, &floats)
                    .ok_or_else(|| NodeError::new("the snapshot's `events` is malformed"))?;
                let text = match saved.has("text") {
                    true => {
                        let bytes = saved
                            .ints("text")?
                            .into_iter()
                            .map(u8::try_from)
                            .collect::<Result<Vec<u8>, _>>()
                            .ok()
                            .and_then(|b| String::from_utf8(b).ok())
                            .ok_or_else(|| NodeError::new("the snapshot's `text` is malformed"))?;
                        Some(Arc::from(bytes))
                    }
                    false => None,
                };
                (events, text)
            }
            Err(_) => (EventState::default(), None),
        };
        Ok(Box::new(Walker {
            pose,
            seed: self.world.seed(),
            events,
            text,
        }))
    }
    fn eval(
        &self,
        state: &mut State,
        inputs: &[Option<Value>],
        cx: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        let keys = keys_of(actions_arg(inputs, 0)?);
        let text = match inputs.get(1) {
            Some(Some(Value::Text(t))) => Some(t.clone()),
            Some(Some(v)) => {
                return Err(NodeError::new(format!(
                    "input #1: expected text, found {}",
                    v.value_type()
                )));
            }
            _ => None,
        };
        let walker = state_mut::<Walker>(state)?;
        self.world.step(&mut walker.pose, keys);
        // This tick's events: the schedule's, then a changed text's.
        let from = self.schedule.partition_point(|e| e.tick < cx.tick);
        for e in self.schedule[from..]
            .iter()
            .take_while(|e| e.tick == cx.tick)
        {
            self.world
                .apply_event(&mut walker.events, e.kind, &walker.pose);
        }
        if let Some(t) = text
            && walker.text.as_deref() != Some(&*t)
        {
            for kind in EventKind::from_caption(&t) {
                self.world
                    .apply_event(&mut walker.events, kind, &walker.pose);
            }
            walker.text = Some(t);
        }
        let frame = self.world.render_events(
            &walker.pose,
            &walker.events,
            cx.tick,
            self.width,
            self.height,
        );
        let pose = Tensor::from_f32(&[1, 4], walker.pose.to_array().to_vec())?;
        Ok(vec![
            self.start.clone().into(),
            frame_image_tensor(&frame)?.into(),
            frame_depth_tensor(&frame)?.into(),
            pose.into(),
            Value::Text(self.caption.clone()),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::*;
    use wgraph_engine::node::{NoCallees, OutputConfig};
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

    /// Mean image value of output 1 (the view).
    fn brightness(out: &[Value]) -> f32 {
        let v = f32s(out, 1);
        v.iter().sum::<f32>() / v.len() as f32
    }

    #[test]
    fn scheduled_events_render_and_leave_pose_and_depth_alone() {
        let dir = tempfile::tempdir().unwrap();
        let events = P::StrList(vec![
            "1: a ghost appears".into(),
            "3: the lights go out".into(),
        ]);
        let node = build(
            &WorldSource,
            vec![("seed", P::Int(1003)), ("events", events)],
            dir.path(),
        )
        .unwrap();
        let quiet = build(&WorldSource, vec![("seed", P::Int(1003))], dir.path()).unwrap();
        let (a, q) = (run_walk(&*node), run_walk(&*quiet));
        assert_eq!(run_walk(&*node), a, "deterministic");
        assert_eq!(f32s(&a[0], 1), f32s(&q[0], 1), "tick 0: nothing yet");
        for t in 1..a.len() {
            assert_ne!(f32s(&a[t], 1), f32s(&q[t], 1), "tick {t}");
            assert_eq!(f32s(&a[t], 2), f32s(&q[t], 2), "depth, tick {t}");
            assert_eq!(f32s(&a[t], 3), f32s(&q[t], 3), "pose, tick {t}");
        }
        // Dark but for the glowing ghost.
        assert!(brightness(&a[3]) < -0.8, "dark: {}", brightness(&a[3]));
        assert!(brightness(&q[3]) > -0.7);
        // The global caption of the theme and layout.
        let world = World::new(1003, Theme::Dungeon);
        assert_eq!(
            a[0][4],
            Value::Text(events::global_caption(Theme::Dungeon, world.layout()).into())
        );

        let bad = P::StrList(vec!["2: a green valley".into()]);
        let e = build(&WorldSource, vec![("events", bad)], dir.path()).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("events"));
        assert!(
            e.message
                .starts_with("entry 1: `a green valley` names no event"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_text_input_triggers_events_and_snapshots_keep_them() {
        let dir = tempfile::tempdir().unwrap();
        let node = build(&WorldSource, vec![("seed", P::Int(1004))], dir.path()).unwrap();
        let types = infer(&*node, &[ValueType::Actions, ValueType::Text]).unwrap();
        assert_eq!(types[4], ValueType::Text);
        let e = infer(&*node, &[ValueType::Actions, ValueType::Actions]).unwrap_err();
        assert_eq!(e.message, "expected text, found actions");
        let text = |t: u64| -> Value {
            Value::Text(
                if t < 2 {
                    "a quiet corridor"
                } else {
                    "the lights go out"
                }
                .into(),
            )
        };
        let none = Actions::none();
        let out = run(&*node, 4, |t| vec![Value::Actions(none), text(t)]).unwrap();
        assert!(brightness(&out[1].0) > -0.7);
        assert!(brightness(&out[2].0) < -0.9 && brightness(&out[3].0) < -0.9);

        // Through a snapshot: the lights stay out, and the same text does
        // not trigger again (a new one does).
        let settings = Settings::default();
        let mut callees = NoCallees;
        let mut state = node.init_state().unwrap();
        for t in 0..3 {
            let mut cx = TickContext::new(t, &settings, &mut callees);
            node.eval(
                &mut state,
                &[Some(Value::Actions(none)), Some(text(t))],
                &mut cx,
            )
            .unwrap();
        }
        let saved = node.save_state(&state).unwrap().unwrap();
        let mut restored = node.load_state(&saved).unwrap();
        let mut cx = TickContext::new(3, &settings, &mut callees);
        let ins = [Some(Value::Actions(none)), Some(text(3))];
        let a = node.eval(&mut state, &ins, &mut cx).unwrap();
        let mut cx = TickContext::new(3, &settings, &mut callees);
        let b = node.eval(&mut restored, &ins, &mut cx).unwrap();
        assert_eq!(a, b);
        assert!(brightness(&b) < -0.9);
        let ins = [
            Some(Value::Actions(none)),
            Some(Value::Text("the lights come back".into())),
        ];
        let mut cx = TickContext::new(4, &settings, &mut callees);
        let c = node.eval(&mut restored, &ins, &mut cx).unwrap();
        assert!(brightness(&c) > -0.7);
        // A quiet world's snapshot is as before events existed.
        let quiet = node
            .save_state(&node.init_state().unwrap())
            .unwrap()
            .unwrap();
        assert!(!quiet.has("events"));
        assert!(node.load_state(&quiet).is_ok());
    }

    #[test]
    fn a_global_caption_chooses_theme_and_layout() {
        let dir = tempfile::tempdir().unwrap();
        let caption = |c: &str| P::Str(c.into());
        let node = build(
            &WorldSource,
            vec![
                ("seed", P::Int(0)),
                ("caption", caption("a snowy forest clearing")),
            ],
            dir.path(),
        )
        .unwrap();
        let out = run_walk(&*node);
        let hall = events::find_seed(events::Layout::Hall, 0).unwrap();
        assert_eq!(
            out[0][4],
            Value::Text(events::global_caption(Theme::Forest, events::Layout::Hall).into())
        );
        let forest = build(
            &WorldSource,
            vec![
                ("seed", P::Int(hall as i64)),
                ("theme", P::Choice("forest".into())),
            ],
            dir.path(),
        )
        .unwrap();
        assert_eq!(run_walk(&*forest), out);
        let e = build(
            &WorldSource,
            vec![("caption", caption("a green valley"))],
            dir.path(),
        )
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("caption"));
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
