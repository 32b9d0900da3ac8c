//! Unit tests of the events module.

use super::*;
use crate::{Keys, MAX_DEPTH, Pose, World};

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

/// Scripts for walks of a few ticks (`wgraph dataset --frames 4 --events
/// auto`) stay in range and keep their order instead of underflowing.
#[test]
fn scripts_of_short_walks_start_at_tick_zero_at_the_earliest() {
    for frames in 0..=8 {
        for seed in 0..200 {
            let events = script(seed, frames);
            assert!((2..=4).contains(&events.len()), "{frames} {seed}");
            for pair in events.windows(2) {
                assert!(pair[0].tick <= pair[1].tick, "{frames} {seed}: {events:?}");
            }
            let last = events.last().map_or(0, |e| e.tick);
            assert!(last < frames.max(4) + 1, "{frames} {seed}: {events:?}");
        }
    }
}
