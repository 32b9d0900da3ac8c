//! The raycaster: per column a DDA ray through the tile map, then walls,
//! floor and ceiling/sky per pixel, then billboard objects against the
//! per-pixel depth buffer, with distance fog throughout.

use crate::events::{self, EventState};
use crate::maze::{Map, SpriteKind, Tile, TileKind};
use crate::texture::{
    Rgb, SKY_H, SKY_MAX_ELEV, SKY_W, TEX, Texture, ThemeTextures, mip_level, tint,
};
use crate::{EYE_HEIGHT, FOV_DEG, Frame, MAX_DEPTH, Pose, Theme, World};

/// tan(FOV / 2).
fn tan_half_fov() -> f32 {
    (FOV_DEG * 0.5).to_radians().tan()
}

/// What a ray hit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit {
    pub tile: Tile,
    pub tx: i32,
    pub ty: i32,
    /// Texture coordinate along the wall, left to right as seen.
    pub u: f32,
    /// Outward normal of the face hit: 0 = +x, 1 = −x, 2 = +y, 3 = −y.
    pub side: u8,
}

/// Casts a ray from (`px`, `py`) along (`dx`, `dy`); returns the distance in
/// units of the direction's length (the perpendicular distance when the
/// direction's component along the view is 1) and what it hit.
pub(crate) fn cast(map: &Map, px: f32, py: f32, dx: f32, dy: f32) -> (f32, Hit) {
    let (mut mx, mut my) = (px.floor() as i32, py.floor() as i32);
    let ddx = if dx == 0.0 {
        f32::INFINITY
    } else {
        (1.0 / dx).abs()
    };
    let ddy = if dy == 0.0 {
        f32::INFINITY
    } else {
        (1.0 / dy).abs()
    };
    let (sx, mut side_x) = match dx {
        d if d < 0.0 => (-1, (px - mx as f32) * ddx),
        d if d > 0.0 => (1, (mx as f32 + 1.0 - px) * ddx),
        _ => (0, f32::INFINITY),
    };
    let (sy, mut side_y) = match dy {
        d if d < 0.0 => (-1, (py - my as f32) * ddy),
        d if d > 0.0 => (1, (my as f32 + 1.0 - py) * ddy),
        _ => (0, f32::INFINITY),
    };
    let mut x_side = true;
    // Outside the map is solid, so a ray stops within 2·size + 2 steps.
    for _ in 0..2 * map.size() + 4 {
        if side_x < side_y {
            side_x += ddx;
            mx += sx;
            x_side = true;
        } else {
            side_y += ddy;
            my += sy;
            x_side = false;
        }
        if map.is_solid(mx, my) {
            break;
        }
    }
    let dist = if x_side { side_x - ddx } else { side_y - ddy };
    let along = if x_side {
        py + dist * dy
    } else {
        px + dist * dx
    };
    let mut u = along - along.floor();
    if (x_side && dx < 0.0) || (!x_side && dy > 0.0) {
        u = 1.0 - u;
    }
    let side = match (x_side, if x_side { sx } else { sy } > 0) {
        (true, true) => 1,
        (true, false) => 0,
        (false, true) => 3,
        (false, false) => 2,
    };
    let hit = Hit {
        tile: map.tile(mx, my),
        tx: mx,
        ty: my,
        u,
        side,
    };
    (dist, hit)
}

#[inline]
fn texel(c: [u8; 3]) -> Rgb {
    [f32::from(c[0]), f32::from(c[1]), f32::from(c[2])]
}

/// `c` seen through fog with visibility `vis` (1 = clear).
#[inline]
fn fogged(c: Rgb, fog: Rgb, vis: f32) -> [u8; 3] {
    let m = |i: usize| (fog[i] + (c[i] - fog[i]) * vis).round().clamp(0.0, 255.0) as u8;
    [m(0), m(1), m(2)]
}

#[inline]
fn put(rgb: &mut [u8], i: usize, c: [u8; 3]) {
    rgb[i * 3..i * 3 + 3].copy_from_slice(&c);
}

fn wall_texture(tex: &ThemeTextures, t: Tile) -> &Texture {
    let i = t.tint as usize;
    match t.kind {
        TileKind::Panel => &tex.panels[i % tex.panels.len()],
        TileKind::Door => &tex.doors[i % tex.doors.len()],
        TileKind::Pillar => &tex.pillars[i % tex.pillars.len()],
        TileKind::Wall | TileKind::Floor => &tex.walls[i % 4],
    }
}

/// The sky texel at azimuth `az` (turns, any value) and elevation tangent `elev`.
#[inline]
fn sky_at(sky: &[[u8; 3]], az: f32, elev: f32) -> Rgb {
    if sky.is_empty() {
        return [0.0; 3];
    }
    let col = ((az.rem_euclid(1.0) * SKY_W as f32) as usize).min(SKY_W - 1);
    let row = (((1.0 - elev / SKY_MAX_ELEV) * SKY_H as f32).max(0.0) as usize).min(SKY_H - 1);
    texel(sky[row * SKY_W + col])
}

/// Per-row values that do not depend on the column.
struct Row {
    /// Floor (below the horizon) or ceiling (above) distance; 0 at the horizon.
    dist: f32,
    /// Fog visibility at `dist`.
    vis: f32,
    /// Mip level of the floor/ceiling at `dist`.
    mip: usize,
}

pub(crate) fn render(world: &World, pose: &Pose, frame: &mut Frame) {
    render_with(world, pose, &EventState::default(), 0, frame);
}

/// [`render`] with the effects of `events` at `tick` (see `events.rs`).
pub(crate) fn render_with(
    world: &World,
    pose: &Pose,
    events: &EventState,
    tick: u64,
    frame: &mut Frame,
) {
    let (w, h) = (frame.width, frame.height);
    let Some(n) = w.checked_mul(h).filter(|n| n.checked_mul(3).is_some()) else {
        frame.rgb.clear();
        frame.depth.clear();
        return;
    };
    frame.rgb.clear();
    frame.rgb.resize(n * 3, 0);
    frame.depth.clear();
    frame.depth.resize(n, MAX_DEPTH);
    if n == 0 {
        return;
    }
    let tex = &*world.tex;
    let map = &world.map;
    let tan_half = tan_half_fov();
    let f = w as f32 * 0.5 / tan_half;
    let hz = h as f32 * (0.5 + pose.pitch);
    let eye = EYE_HEIGHT + pose.z;
    let (dir, right) = pose.axes();
    let (px, py) = (pose.x, pose.y);
    let density = tex.fog_density;
    let fog = tex.fog;
    // Pixels that give light (an open doorway): the dark and the overcast
    // leave them lit.
    let mut lit = if (events.dark || events.snow) && events.door.is_some() {
        vec![false; n]
    } else {
        Vec::new()
    };

    let rows: Vec<Row> = (0..h)
        .map(|y| {
            let yc = y as f32 + 0.5;
            let (height, off) = if yc > hz {
                (eye, yc - hz)
            } else {
                (1.0 - eye, hz - yc)
            };
            if off <= 0.0 {
                return Row {
                    dist: MAX_DEPTH,
                    vis: 0.0,
                    mip: 6,
                };
            }
            let dist = height * f / off;
            let footprint = TEX as f32 * dist * (dist / (height * f)).sqrt() / f;
            Row {
                dist,
                vis: (-density * dist).exp(),
                mip: mip_level(footprint),
            }
        })
        .collect();

    let rgb = &mut frame.rgb;
    let depth = &mut frame.depth;
    for x in 0..w {
        let cam = (2.0 * (x as f32 + 0.5) / w as f32 - 1.0) * tan_half;
        let (rx, ry) = (dir[0] + right[0] * cam, dir[1] + right[1] * cam);
        let (d, hit) = cast(map, px, py, rx, ry);
        let d = if d.is_finite() {
            d.max(1e-4)
        } else {
            MAX_DEPTH
        };
        let top = hz - (1.0 - eye) * f / d;
        let bottom = hz + eye * f / d;
        let span = bottom - top;
        let wall_tex = wall_texture(tex, hit.tile);
        let shade = if hit.tile.kind == TileKind::Wall {
            let s = map.size() as i32;
            if (0..s).contains(&hit.tx) && (0..s).contains(&hit.ty) {
                world.shade[(hit.ty * s + hit.tx) as usize]
            } else {
                [1.0; 3]
            }
        } else {
            [1.0; 3]
        };
        let wall_mip = mip_level(TEX as f32 * d / f);
        let wall_vis = (-density * d).exp();
        let wall_depth = d.min(MAX_DEPTH);
        let az = (pose.yaw + cam.atan().to_degrees()) / 360.0;
        let wall_at = |v: f32| {
            let c = texel(wall_tex.sample(hit.u, v, wall_mip));
            [c[0] * shade[0], c[1] * shade[1], c[2] * shade[2]]
        };
        for (y, row) in rows.iter().enumerate() {
            let yc = y as f32 + 0.5;
            let i = y * w + x;
            if yc < top {
                // Above the wall: ceiling or sky, geometrically far.
                let c = match &tex.ceiling {
                    Some(ceiling) => {
                        let (cx, cy) = (px + rx * row.dist, py + ry * row.dist);
                        fogged(texel(ceiling.sample(cx, cy, row.mip)), fog, row.vis)
                    }
                    None => fogged(sky_at(&tex.sky, az, (hz - yc) / f), fog, 1.0),
                };
                put(rgb, i, c);
            } else if yc < bottom {
                let v = (yc - top) / span;
                let door = events
                    .door
                    .filter(|d| (d.tx, d.ty, d.side) == (hit.tx, hit.ty, hit.side))
                    .and_then(|_| events::door_colour(hit.u, v));
                match door {
                    Some((c, true)) => {
                        put(rgb, i, fogged(c, c, 1.0));
                        if let Some(l) = lit.get_mut(i) {
                            *l = true;
                        }
                    }
                    Some((c, false)) => put(rgb, i, fogged(c, fog, wall_vis)),
                    None => put(rgb, i, fogged(wall_at(v), fog, wall_vis)),
                }
                depth[i] = wall_depth;
            } else {
                let fd = row.dist;
                let (fx, fy) = (px + rx * fd, py + ry * fd);
                let mut c = texel(tex.floor.sample(fx, fy, row.mip));
                if !tex.wet.is_empty() {
                    // A wet floor mirrors what stands on it.
                    let tx = ((fx.rem_euclid(1.0) * TEX as f32) as usize).min(TEX - 1);
                    let ty = ((fy.rem_euclid(1.0) * TEX as f32) as usize).min(TEX - 1);
                    let wet = 0.15 + 0.5 * tex.wet[ty * TEX + tx];
                    let yr = 2.0 * bottom - yc;
                    let refl = if yr >= top {
                        wall_at((yr - top) / span)
                    } else {
                        sky_at(&tex.sky, az, (hz - yr) / f)
                    };
                    for k in 0..3 {
                        c[k] += refl[k] * wet;
                    }
                }
                put(rgb, i, fogged(c, fog, row.vis));
                depth[i] = fd.min(MAX_DEPTH);
            }
        }
    }

    for s in &world.sprites {
        let (ox, oy) = (s.x - px, s.y - py);
        let ds = ox * dir[0] + oy * dir[1];
        if !(0.05..MAX_DEPTH).contains(&ds) {
            continue;
        }
        let lat = ox * right[0] + oy * right[1];
        let xc = w as f32 * 0.5 + f * lat / ds;
        let half = f * s.kind.half_width() / ds;
        let clip = |v: f32, hi: usize| (v.max(0.0) as usize).min(hi);
        let (x0, x1) = (clip((xc - half).floor(), w), clip((xc + half).ceil(), w));
        let top = hz - (s.kind.height() - eye) * f / ds;
        let bottom = hz + eye * f / ds;
        let (y0, y1) = (clip(top.floor(), h), clip(bottom.ceil(), h));
        let vis = (-density * ds).exp();
        for y in y0..y1 {
            let sz = eye - (y as f32 + 0.5 - hz) * ds / f;
            for x in x0..x1 {
                let i = y * w + x;
                if ds >= depth[i] {
                    continue;
                }
                let sx = (x as f32 + 0.5 - xc) * ds / f;
                if !s.kind.covers(sx, sz) {
                    continue;
                }
                depth[i] = ds;
                let (c, glow) = sprite_colour(world.theme, s.kind, s.tint, sx, sz);
                let v = if glow { vis.sqrt() } else { vis };
                put(rgb, i, fogged(c, fog, v));
            }
        }
    }

    if events.dark || events.snow {
        let k = if events.dark {
            [events::DARK_FACTOR; 3]
        } else {
            events::OVERCAST
        };
        for (i, px) in rgb.chunks_exact_mut(3).enumerate() {
            if !lit.get(i).copied().unwrap_or(false) {
                for (c, k) in px.iter_mut().zip(k) {
                    *c = (f32::from(*c) * k).round() as u8;
                }
            }
        }
    }
    if let Some([gx, gy]) = events.ghost {
        draw_ghost(&mut frame.rgb, &frame.depth, (w, h), pose, [gx, gy], tick);
    }
    if events.snow {
        events::draw_snow(world.seed, tick, events.dark, w, h, &mut frame.rgb);
    }
}

/// The ghost at world position `at`: a billboard tested against `depth`
/// (which it does not change: an apparition), unfogged, bobbing with `tick`.
fn draw_ghost(
    rgb: &mut [u8],
    depth: &[f32],
    (w, h): (usize, usize),
    pose: &Pose,
    at: [f32; 2],
    tick: u64,
) {
    let tan_half = tan_half_fov();
    let f = w as f32 * 0.5 / tan_half;
    let hz = h as f32 * (0.5 + pose.pitch);
    let eye = EYE_HEIGHT + pose.z;
    let (dir, right) = pose.axes();
    let (ox, oy) = (at[0] - pose.x, at[1] - pose.y);
    let ds = ox * dir[0] + oy * dir[1];
    if !(0.05..MAX_DEPTH).contains(&ds) {
        return;
    }
    let bob = 0.04 * (tick as f32 * 0.7).sin();
    let lat = ox * right[0] + oy * right[1];
    let xc = w as f32 * 0.5 + f * lat / ds;
    let half = f * events::GHOST_HALF_WIDTH / ds;
    let clip = |v: f32, hi: usize| (v.max(0.0) as usize).min(hi);
    let (x0, x1) = (clip((xc - half).floor(), w), clip((xc + half).ceil(), w));
    let top = hz - (events::GHOST_TOP + 0.05 - eye) * f / ds;
    let bottom = hz + eye * f / ds;
    let (y0, y1) = (clip(top.floor(), h), clip(bottom.ceil(), h));
    for y in y0..y1 {
        let sz = eye - (y as f32 + 0.5 - hz) * ds / f;
        for x in x0..x1 {
            let i = y * w + x;
            if ds >= depth[i] {
                continue;
            }
            let sx = (x as f32 + 0.5 - xc) * ds / f;
            if let Some(c) = events::ghost_colour(sx, sz, bob, tick) {
                put(rgb, i, fogged(c, c, 1.0));
            }
        }
    }
}

/// Lambert-plus-highlight shading of a sphere at (`nx`, `nz`) in [-1, 1]².
fn sphere(nx: f32, nz: f32) -> (f32, f32) {
    let ny = (1.0 - nx * nx - nz * nz).max(0.0).sqrt();
    let l = (-0.45 * nx + 0.55 * nz + 0.7 * ny).max(0.0);
    let spec = l.powi(24);
    (0.3 + 0.7 * l, spec)
}

/// An object's colour at (`sx`, `sz`) and whether it glows (half the fog).
fn sprite_colour(theme: Theme, kind: SpriteKind, t: u8, sx: f32, sz: f32) -> (Rgb, bool) {
    let c = tint(t);
    let lit = |k: f32, spec: f32| -> Rgb {
        [
            c[0] * k + 255.0 * spec,
            c[1] * k + 255.0 * spec,
            c[2] * k + 255.0 * spec,
        ]
    };
    let neon = theme == Theme::Neon;
    match kind {
        SpriteKind::Orb => {
            let (k, spec) = sphere(sx / 0.22, (sz - 0.22) / 0.22);
            if neon {
                (lit(0.6 + 0.6 * k, spec), true)
            } else {
                (lit(k, spec * 0.8), false)
            }
        }
        SpriteKind::Barrel => {
            let round = (1.0 - (sx / 0.22).powi(2)).max(0.0).sqrt();
            let band = (0.22..0.32).contains(&sz);
            let hoop = (0.08..0.11).contains(&sz) || (0.44..0.47).contains(&sz);
            let body: Rgb = match theme {
                Theme::Dungeon => [120.0, 78.0, 40.0],
                Theme::Neon => [36.0, 38.0, 48.0],
                Theme::Forest => [150.0, 112.0, 70.0],
            };
            let k = 0.45 + 0.55 * round;
            if band {
                (lit(k * if neon { 1.3 } else { 1.0 }, 0.0), neon)
            } else if hoop {
                ([60.0 * k, 60.0 * k, 66.0 * k], false)
            } else if theme == Theme::Forest && sz > 0.5 {
                ([235.0 * k, 240.0 * k, 250.0 * k], false) // snow on the lid
            } else {
                (body.map(|b| b * k), false)
            }
        }
        SpriteKind::Lamp => {
            if sz > 0.66 {
                let (k, spec) = sphere(sx / 0.12, (sz - 0.78) / 0.12);
                (lit(0.9 + 0.4 * k, spec), true)
            } else {
                let post: Rgb = match theme {
                    Theme::Dungeon => [45.0, 42.0, 40.0],
                    Theme::Neon => [20.0, 20.0, 26.0],
                    Theme::Forest => [80.0, 60.0, 42.0],
                };
                (post, false)
            }
        }
        SpriteKind::Crystal => {
            let facet = if sx < 0.0 { 1.0 } else { 0.65 };
            let upper = if sz > 0.35 { 1.1 } else { 0.85 };
            let k = facet * upper;
            match theme {
                Theme::Forest => {
                    // Ice: the tint washed towards white.
                    let ice = [
                        (c[0] + 400.0) / 3.0 * k,
                        (c[1] + 400.0) / 3.0 * k,
                        (c[2] + 420.0) / 3.0 * k,
                    ];
                    (ice, false)
                }
                _ => (lit(k, 0.0), neon),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cast_measures_perpendicular_distance() {
        let world = World::new(3, Theme::Dungeon);
        let p = world.start_pose();
        let (d, hit) = cast(world.map(), p.x, p.y, 1.0, 0.0);
        assert!(hit.tile.is_solid());
        // The hit face is the tile's west side.
        assert!((p.x + d - hit.tx as f32).abs() < 1e-4, "{d} {hit:?}");
        assert!((0.0..=1.0).contains(&hit.u));
    }
}
