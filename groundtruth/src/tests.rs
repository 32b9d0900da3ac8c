//! Behaviour of the world as a whole: determinism, themes, motion, rendering.

use super::*;

const SIZE: usize = 64;

/// A fixed walk through several kinds of keys.
fn script() -> Vec<Keys> {
    let mut v = vec![Keys::W; 6];
    v.extend([
        Keys::LEFT,
        Keys::W | Keys::RIGHT,
        Keys::A,
        Keys::D,
        Keys::UP,
    ]);
    v.extend([
        Keys::SPACE,
        Keys::S,
        Keys::DOWN,
        Keys::DOWN,
        Keys::W | Keys::SPACE,
    ]);
    v
}

/// Frames of `script()` from the start.
fn walk(world: &World, size: usize) -> Vec<Frame> {
    let mut pose = world.start_pose();
    let mut out = vec![world.render(&pose, size, size)];
    for k in script() {
        world.step(&mut pose, k);
        out.push(world.render(&pose, size, size));
    }
    out
}

fn differing_pixels(a: &Frame, b: &Frame) -> usize {
    a.rgb
        .chunks(3)
        .zip(b.rgb.chunks(3))
        .filter(|(p, q)| p != q)
        .count()
}

#[test]
fn same_seed_same_bytes() {
    for theme in Theme::ALL {
        let a = walk(&World::new(11, theme), SIZE);
        let b = walk(&World::new(11, theme), SIZE);
        assert_eq!(a, b, "{theme}");
        for f in &a {
            assert_eq!(f.rgb.len(), SIZE * SIZE * 3);
            assert_eq!(f.depth.len(), SIZE * SIZE);
            assert!(f.depth.iter().all(|d| (0.0..=MAX_DEPTH).contains(d)));
        }
    }
}

#[test]
fn themes_share_geometry_and_depth_exactly() {
    for seed in [0, 5, 42] {
        let worlds = Theme::ALL.map(|t| World::new(seed, t));
        assert_eq!(worlds[0].map(), worlds[1].map());
        assert_eq!(worlds[0].map(), worlds[2].map());
        assert_eq!(worlds[0].start_pose(), worlds[2].start_pose());
        let walks = worlds.each_ref().map(|w| walk(w, SIZE));
        for t in 1..3 {
            for (a, b) in walks[0].iter().zip(&walks[t]) {
                assert_eq!(a.depth, b.depth, "seed {seed} theme {t}");
                assert!(
                    differing_pixels(a, b) > SIZE * SIZE / 2,
                    "a theme changes the look"
                );
            }
        }
        let retheme = worlds[0].with_theme(Theme::Forest);
        assert_eq!(walk(&retheme, 16), walk(&worlds[2], 16));
    }
}

#[test]
fn different_seeds_differ() {
    let a = World::new(1, Theme::Dungeon);
    let b = World::new(2, Theme::Dungeon);
    assert_ne!(a.map(), b.map());
    let (fa, fb) = (walk(&a, SIZE), walk(&b, SIZE));
    let same = fa.iter().zip(&fb).filter(|(x, y)| x == y).count();
    assert_eq!(same, 0);
}

#[test]
fn a_full_turn_returns_the_same_frame() {
    let world = World::new(9, Theme::Neon);
    let start = world.start_pose();
    for key in [Keys::LEFT, Keys::RIGHT] {
        let mut pose = start;
        let first = world.render(&pose, SIZE, SIZE);
        let mut seen = Vec::new();
        for _ in 0..24 {
            world.step(&mut pose, key);
            let f = world.render(&pose, SIZE, SIZE);
            seen.push(f);
        }
        assert_eq!(pose, start);
        assert_eq!(seen[23], first);
        assert_ne!(seen[0], first, "a turn changes the view");
        assert_ne!(seen[11], first, "facing back looks different");
    }
}

#[test]
fn random_walks_never_enter_walls_or_objects() {
    for seed in [0, 1, 2] {
        let world = World::new(seed, Theme::Dungeon);
        let mut pose = world.start_pose();
        assert!(world.is_free(pose.x, pose.y));
        let mut rng = SplitMix64::new(seed);
        let mut tiles = std::collections::HashSet::new();
        for _ in 0..10_000 {
            // Mostly movement keys, often several at once.
            let keys = Keys::from_bits(rng.next_u64() as u16 & 0x3F);
            world.step(&mut pose, keys);
            assert!(world.is_free(pose.x, pose.y), "{pose:?}");
            let (tx, ty) = pose.tile();
            assert!(!world.map().is_solid(tx, ty), "{pose:?}");
            tiles.insert((tx, ty));
        }
        assert!(tiles.len() > 10, "the walk moves around: {}", tiles.len());
    }
}

#[test]
fn walking_changes_the_view_and_nears_walls() {
    let world = World::new(4, Theme::Forest);
    let mut pose = world.start_pose();
    let centre = (SIZE / 2) * SIZE + SIZE / 2;
    let mut prev = world.render(&pose, SIZE, SIZE);
    assert!((prev.depth[centre] - world.probe(&pose, 0.0)).abs() < 0.02);
    let mut moved = 0;
    for _ in 0..80 {
        let before = pose;
        world.step(&mut pose, Keys::W);
        let f = world.render(&pose, SIZE, SIZE);
        if pose == before {
            break;
        }
        moved += 1;
        assert!(differing_pixels(&prev, &f) > 20, "moving changes the frame");
        assert!(
            f.depth[centre] < prev.depth[centre],
            "{} -> {}",
            prev.depth[centre],
            f.depth[centre]
        );
        prev = f;
    }
    assert!(moved >= 2, "{moved}");
    assert!(
        prev.depth[centre] < PLAYER_RADIUS + 0.1,
        "{}",
        prev.depth[centre]
    );
}

#[test]
fn landmarks_and_objects_exist_and_differ_by_place() {
    let world = World::new(21, Theme::Dungeon);
    let map = world.map();
    assert!(map.count(TileKind::Pillar) > 0);
    assert!(map.count(TileKind::Door) > 0 && map.count(TileKind::Panel) > 0);
    assert!(!world.sprites().is_empty());
    // Views from far-apart free cells differ a lot.
    let mut views = Vec::new();
    for (x, y) in [(1, 1), (29, 29), (1, 29), (29, 1), (15, 15)] {
        let mut pose = world.start_pose();
        pose.x = x as f32 + 0.5;
        pose.y = y as f32 + 0.5;
        if world.is_free(pose.x, pose.y) {
            views.push(world.render(&pose, SIZE, SIZE));
        }
    }
    assert!(views.len() >= 2);
    for i in 0..views.len() {
        for j in 0..i {
            assert!(differing_pixels(&views[i], &views[j]) > SIZE * SIZE / 4);
        }
    }
}

#[test]
fn objects_are_drawn_in_front_of_walls_with_their_depth() {
    let world = World::new(8, Theme::Neon);
    let s = world.sprites()[0];
    // Stand 1.5 units from the object on its open side, facing it.
    let open = [(1.0f32, 0.0f32), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)]
        .into_iter()
        .find(|(dx, dy)| {
            !world
                .map()
                .is_solid((s.x + dx).floor() as i32, (s.y + dy).floor() as i32)
        })
        .expect("a dead end has an opening");
    let pose = Pose {
        x: s.x + open.0,
        y: s.y + open.1,
        yaw: (-open.1).atan2(-open.0).to_degrees().rem_euclid(360.0),
        ..Pose::default()
    };
    let f = world.render(&pose, SIZE, SIZE);
    // The object's base sits below the horizon at the centre column.
    let d = f.depth[(SIZE / 2 + 2) * SIZE + SIZE / 2];
    assert!((d - 1.0).abs() < 1e-4, "{d} {pose:?} {s:?}");
    assert!(world.probe(&pose, 0.0) < 1.0);
    assert!(world.probe(&pose, 0.0) > 0.7);
}

#[test]
fn looking_up_and_down_moves_the_horizon_and_clamps() {
    let world = World::new(2, Theme::Dungeon);
    let mut pose = world.start_pose();
    let level = world.render(&pose, SIZE, SIZE);
    let sky_rows = |f: &Frame| {
        (0..SIZE)
            .filter(|y| f.depth[y * SIZE..][..SIZE].iter().all(|&d| d == MAX_DEPTH))
            .count()
    };
    world.step(&mut pose, Keys::UP);
    let up = world.render(&pose, SIZE, SIZE);
    assert!(sky_rows(&up) > sky_rows(&level));
    for _ in 0..10 {
        world.step(&mut pose, Keys::UP);
    }
    assert_eq!(pose.pitch, MAX_PITCH);
    for _ in 0..20 {
        world.step(&mut pose, Keys::DOWN);
    }
    assert_eq!(pose.pitch, -MAX_PITCH);
    for _ in 0..3 {
        world.step(&mut pose, Keys::UP);
    }
    assert_eq!(pose.pitch, 0.0, "pitch steps are exact");
    assert_eq!(world.render(&pose, SIZE, SIZE), level);
}

#[test]
fn a_hop_lasts_while_space_is_held() {
    let world = World::new(6, Theme::Forest);
    let mut pose = world.start_pose();
    let before = world.render(&pose, SIZE, SIZE);
    world.step(&mut pose, Keys::SPACE);
    assert_eq!(pose.z, HOP_HEIGHT);
    assert_ne!(world.render(&pose, SIZE, SIZE), before);
    world.step(&mut pose, Keys::NONE);
    assert_eq!(pose.z, 0.0);
    assert_eq!(world.render(&pose, SIZE, SIZE), before);
}

#[test]
fn renders_other_sizes() {
    let world = World::new(3, Theme::Neon);
    let pose = world.start_pose();
    let big = world.render(&pose, 128, 128);
    assert_eq!(big.rgb.len(), 128 * 128 * 3);
    let small = world.render(&pose, SIZE, SIZE);
    // The centre pixel sees the same thing at both sizes.
    let (cb, cs) = (big.depth[64 * 128 + 64], small.depth[32 * SIZE + 32]);
    assert!((cb - cs).abs() < 0.05, "{cb} {cs}");
    let wide = world.render(&pose, 96, 48);
    assert_eq!(wide.depth.len(), 96 * 48);
    let empty = world.render(&pose, 0, 10);
    assert!(empty.rgb.is_empty() && empty.depth.is_empty());
    // A reused frame gives the same result.
    let mut reuse = big.clone();
    world.render_into(&pose, &mut reuse);
    assert_eq!(reuse, big);
}

#[test]
fn keys_format_and_parse() {
    assert_eq!((Keys::W | Keys::LEFT).to_string(), "W+Left");
    assert_eq!(Keys::NONE.to_string(), "-");
    for bits in 0..512u16 {
        let k = Keys::from_bits(bits);
        assert_eq!(Keys::parse(&k.to_string()), Some(k));
        let hot = k.multi_hot();
        assert_eq!(
            hot.iter().filter(|&&v| v == 1.0).count(),
            bits.count_ones() as usize
        );
    }
    assert_eq!(Keys::parse("w space"), Some(Keys::W | Keys::SPACE));
    assert_eq!(Keys::parse("W+Q"), None);
    assert_eq!(Keys::from_bits(0xFFFF).bits(), 0x1FF);
    assert_eq!(Theme::parse("NEON"), Some(Theme::Neon));
    assert_eq!(depth_to_signed(0.0), -1.0);
    assert_eq!(depth_to_signed(MAX_DEPTH * 2.0), 1.0);
    assert_eq!(signed_to_depth(depth_to_signed(4.0)), 4.0);
}

/// `cargo test --release -p wgraph-groundtruth -- --ignored --nocapture render_speed`
#[test]
#[ignore]
fn render_speed() {
    for theme in Theme::ALL {
        let world = World::new(1, theme);
        for size in [64, 128] {
            let mut pose = world.start_pose();
            let mut frame = Frame {
                width: size,
                height: size,
                ..Frame::default()
            };
            let keys = script();
            let n = 2000;
            let t = std::time::Instant::now();
            for i in 0..n {
                world.step(&mut pose, keys[i % keys.len()]);
                world.render_into(&pose, &mut frame);
            }
            let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
            println!("{theme} {size}x{size}: {us:.1} µs per frame");
        }
    }
}
