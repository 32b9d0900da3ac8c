//! Procedural textures, one set per [`Theme`], generated once per process
//! and shared by every world of that theme (they do not depend on the seed:
//! seeds place landmarks, themes paint them).
//!
//! Textures are [`TEX`]² texels, tileable, with a box-filtered mip chain so
//! that distant walls and floor do not shimmer. Texture coordinates: `u`
//! along the wall / east on the floor, `v` down the wall / south on the
//! floor, both in [0, 1).

use crate::Theme;
use crate::maze::TINTS;
use std::sync::{Arc, OnceLock};

/// Texels per texture side (mip level 0).
pub const TEX: usize = 64;
const TEX_LOG2: usize = 6;

/// Sky panorama: columns over 360°, rows over the elevation tangent
/// 0..[`SKY_MAX_ELEV`].
pub(crate) const SKY_W: usize = 720;
pub(crate) const SKY_H: usize = 160;
pub(crate) const SKY_MAX_ELEV: f32 = 2.0;

/// An RGB colour with channels in 0..=255 (as floats).
pub(crate) type Rgb = [f32; 3];

/// The landmark palette: red, green, blue, yellow, purple, orange, cyan, white.
pub const TINT_RGB: [[u8; 3]; TINTS as usize] = [
    [220, 45, 45],
    [40, 200, 70],
    [55, 95, 235],
    [240, 210, 40],
    [165, 60, 215],
    [245, 130, 30],
    [40, 210, 220],
    [235, 235, 235],
];

pub(crate) fn tint(i: u8) -> Rgb {
    let c = TINT_RGB[(i % TINTS) as usize];
    [f32::from(c[0]), f32::from(c[1]), f32::from(c[2])]
}

/// A 32-bit hash of a lattice point and a salt.
pub(crate) fn hash2(x: i32, y: i32, salt: u32) -> u32 {
    let mut h = (x as u32).wrapping_mul(0x8DA6_B343)
        ^ (y as u32).wrapping_mul(0xD816_3841)
        ^ salt.wrapping_mul(0xCB1A_B31F).wrapping_add(0x9E37_79B9);
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B_3C6D);
    h ^= h >> 12;
    h = h.wrapping_mul(0x297A_2D39);
    h ^ (h >> 15)
}

/// A hash as a number in [0, 1).
fn rand01(x: i32, y: i32, salt: u32) -> f32 {
    (hash2(x, y, salt) >> 8) as f32 / (1u32 << 24) as f32
}

fn smooth(t: f32) -> f32 {
    t * t * (3.0 - 2.0 * t)
}

/// Value noise in [0, 1), periodic with period 1 in `u` and `v`.
fn noise(u: f32, v: f32, freq: i32, salt: u32) -> f32 {
    let (x, y) = (u * freq as f32, v * freq as f32);
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (smooth(x - x0), smooth(y - y0));
    let (i, j) = (x0 as i32, y0 as i32);
    let at = |a: i32, b: i32| rand01(a.rem_euclid(freq), b.rem_euclid(freq), salt);
    let top = at(i, j) + (at(i + 1, j) - at(i, j)) * fx;
    let bottom = at(i, j + 1) + (at(i + 1, j + 1) - at(i, j + 1)) * fx;
    top + (bottom - top) * fy
}

/// Fractal value noise in [0, 1), periodic with period 1.
fn fbm(u: f32, v: f32, freq: i32, octaves: u32, salt: u32) -> f32 {
    let (mut sum, mut amp, mut norm, mut f) = (0.0, 1.0, 0.0, freq);
    for o in 0..octaves {
        sum += amp * noise(u, v, f, salt.wrapping_add(o * 101));
        norm += amp;
        amp *= 0.5;
        f *= 2;
    }
    sum / norm
}

fn mix(a: Rgb, b: Rgb, t: f32) -> Rgb {
    let t = t.clamp(0.0, 1.0);
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

fn scale(a: Rgb, k: f32) -> Rgb {
    [a[0] * k, a[1] * k, a[2] * k]
}

fn add(a: Rgb, b: Rgb, k: f32) -> Rgb {
    [a[0] + b[0] * k, a[1] + b[1] * k, a[2] + b[2] * k]
}

/// A narrow glowing line at distance `d`: a bright core and a soft halo.
fn glow(d: f32, width: f32) -> f32 {
    let core = (-(d / width) * (d / width)).exp();
    let halo = (-(d / (width * 4.0)) * (d / (width * 4.0))).exp();
    core + 0.45 * halo
}

/// Distance to the outline of the axis-aligned box [u0, u1] × [v0, v1].
fn box_outline(u: f32, v: f32, u0: f32, v0: f32, u1: f32, v1: f32) -> f32 {
    let (cu, cv) = ((u0 + u1) / 2.0, (v0 + v1) / 2.0);
    let (hu, hv) = ((u1 - u0) / 2.0, (v1 - v0) / 2.0);
    let (qu, qv) = ((u - cu).abs() - hu, (v - cv).abs() - hv);
    let outside = (qu.max(0.0).powi(2) + qv.max(0.0).powi(2)).sqrt();
    (outside + qu.max(qv).min(0.0)).abs()
}

/// One texture with its mip chain (level k is `TEX >> k` texels per side).
#[derive(Debug)]
pub(crate) struct Texture {
    levels: Vec<Vec<[u8; 3]>>,
}

impl Texture {
    fn paint(f: impl Fn(f32, f32) -> Rgb) -> Texture {
        let mut base = Vec::with_capacity(TEX * TEX);
        for y in 0..TEX {
            for x in 0..TEX {
                let (u, v) = ((x as f32 + 0.5) / TEX as f32, (y as f32 + 0.5) / TEX as f32);
                let c = f(u, v);
                base.push(c.map(|ch| ch.round().clamp(0.0, 255.0) as u8));
            }
        }
        let mut levels = vec![base];
        for k in 1..=TEX_LOG2 {
            let (prev, s) = (&levels[k - 1], TEX >> k);
            let mut next = Vec::with_capacity(s * s);
            for y in 0..s {
                for x in 0..s {
                    let mut acc = [0u32; 3];
                    for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                        let p = prev[(2 * y + dy) * 2 * s + 2 * x + dx];
                        for c in 0..3 {
                            acc[c] += u32::from(p[c]);
                        }
                    }
                    next.push(acc.map(|a| ((a + 2) / 4) as u8));
                }
            }
            levels.push(next);
        }
        Texture { levels }
    }

    /// The texel at (`u`, `v`) (wrapped) of mip `level` (clamped).
    #[inline]
    pub(crate) fn sample(&self, u: f32, v: f32, level: usize) -> [u8; 3] {
        let level = level.min(TEX_LOG2);
        let s = TEX >> level;
        let x = ((u * s as f32) as i64).rem_euclid(s as i64) as usize;
        let y = ((v * s as f32) as i64).rem_euclid(s as i64) as usize;
        self.levels[level][y * s + x]
    }
}

/// The mip level for a footprint of `texels` level-0 texels per pixel.
#[inline]
pub(crate) fn mip_level(texels: f32) -> usize {
    if texels <= 1.0 || texels.is_nan() {
        0
    } else {
        (texels.log2() as usize).min(TEX_LOG2)
    }
}

/// Every texture and colour a theme uses.
#[derive(Debug)]
pub(crate) struct ThemeTextures {
    /// Plain wall variants (`Tile::tint` 0..4).
    pub walls: [Texture; 4],
    /// Panel, door and pillar textures per tint.
    pub panels: Vec<Texture>,
    pub doors: Vec<Texture>,
    pub pillars: Vec<Texture>,
    pub floor: Texture,
    /// The ceiling (Dungeon) or `None` for a sky.
    pub ceiling: Option<Texture>,
    /// Sky panorama, `SKY_W` × `SKY_H` (empty with a ceiling).
    pub sky: Vec<[u8; 3]>,
    /// Floor wetness in [0, 1] per level-0 texel (Neon; empty otherwise).
    pub wet: Vec<f32>,
    pub fog: Rgb,
    /// Fog per world unit: visible fraction = exp(-density · distance).
    pub fog_density: f32,
}

/// The textures of `theme`, built on first use.
pub(crate) fn theme_textures(theme: Theme) -> Arc<ThemeTextures> {
    static CACHE: [OnceLock<Arc<ThemeTextures>>; 3] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    CACHE[theme as usize]
        .get_or_init(|| Arc::new(build(theme)))
        .clone()
}

fn build(theme: Theme) -> ThemeTextures {
    let tints = 0..TINTS;
    let per_tint = |f: &dyn Fn(f32, f32, u8) -> Rgb| -> Vec<Texture> {
        tints
            .clone()
            .map(|t| Texture::paint(|u, v| f(u, v, t)))
            .collect()
    };
    match theme {
        Theme::Dungeon => ThemeTextures {
            walls: [0, 1, 2, 3].map(|k| Texture::paint(|u, v| dungeon::wall(u, v, k))),
            panels: per_tint(&dungeon::panel),
            doors: per_tint(&dungeon::door),
            pillars: per_tint(&dungeon::pillar),
            floor: Texture::paint(dungeon::floor),
            ceiling: Some(Texture::paint(dungeon::ceiling)),
            sky: Vec::new(),
            wet: Vec::new(),
            fog: [12.0, 9.0, 7.0],
            fog_density: 0.2,
        },
        Theme::Neon => ThemeTextures {
            walls: [0, 1, 2, 3].map(|k| Texture::paint(|u, v| neon::wall(u, v, k))),
            panels: per_tint(&neon::panel),
            doors: per_tint(&neon::door),
            pillars: per_tint(&neon::pillar),
            floor: Texture::paint(neon::floor),
            ceiling: None,
            sky: sky(neon::sky),
            wet: (0..TEX * TEX)
                .map(|i| {
                    let (u, v) = ((i % TEX) as f32 / TEX as f32, (i / TEX) as f32 / TEX as f32);
                    neon::wetness(u, v)
                })
                .collect(),
            fog: [24.0, 14.0, 38.0],
            fog_density: 0.13,
        },
        Theme::Forest => ThemeTextures {
            walls: [0, 1, 2, 3].map(|k| Texture::paint(|u, v| forest::wall(u, v, k))),
            panels: per_tint(&forest::panel),
            doors: per_tint(&forest::door),
            pillars: per_tint(&forest::pillar),
            floor: Texture::paint(forest::floor),
            ceiling: None,
            sky: sky(forest::sky),
            wet: Vec::new(),
            fog: [214.0, 222.0, 232.0],
            fog_density: 0.12,
        },
    }
}

/// Paints a sky panorama from `f(azimuth in [0, 1), elevation tangent)`.
fn sky(f: impl Fn(f32, f32) -> Rgb) -> Vec<[u8; 3]> {
    let mut out = Vec::with_capacity(SKY_W * SKY_H);
    for y in 0..SKY_H {
        let elev = (1.0 - (y as f32 + 0.5) / SKY_H as f32) * SKY_MAX_ELEV;
        for x in 0..SKY_W {
            let az = (x as f32 + 0.5) / SKY_W as f32;
            out.push(f(az, elev).map(|c| c.round().clamp(0.0, 255.0) as u8));
        }
    }
    out
}

mod dungeon {
    use super::*;

    /// Bricks: 6 rows of 3 per tile, alternate rows offset by half a brick.
    fn bricks(u: f32, v: f32, base: Rgb, salt: u32) -> Rgb {
        let rows = 6.0;
        let row = (v * rows).floor();
        let bu = u * 3.0 + if row as i32 % 2 == 1 { 0.5 } else { 0.0 };
        let col = (bu.floor() as i32).rem_euclid(3);
        let (fu, fv) = (bu.fract(), (v * rows).fract());
        let grain = 0.75 + 0.5 * fbm(u, v, 8, 3, salt);
        let edge = fu.min(1.0 - fu).min((fv.min(1.0 - fv)) * 0.5);
        if edge < 0.035 {
            return scale([78.0, 72.0, 66.0], 0.7 + 0.3 * grain);
        }
        let per_brick = 0.7 + 0.5 * rand01(col, row as i32, salt);
        let bevel = (edge / 0.08).min(1.0) * 0.25 + 0.75;
        scale(base, per_brick * grain * bevel)
    }

    pub fn wall(u: f32, v: f32, variant: u8) -> Rgb {
        match variant {
            0 => bricks(u, v, [140.0, 62.0, 44.0], 11),
            1 => {
                // Mossy bricks.
                let b = bricks(u, v, [125.0, 70.0, 50.0], 12);
                let moss = fbm(u, v, 4, 4, 13) + v * 0.35 - 0.55;
                mix(b, [50.0, 90.0, 40.0], moss * 3.0)
            }
            2 => {
                // Large grey stone blocks.
                let (bu, bv) = (u * 2.0 + if v < 0.5 { 0.0 } else { 0.5 }, v * 2.0);
                let (fu, fv) = (bu.fract(), bv.fract());
                let g = 0.7 + 0.5 * fbm(u, v, 8, 4, 14);
                let blk = rand01(bu.floor() as i32 % 2, bv.floor() as i32, 15);
                if fu.min(1.0 - fu).min(fv.min(1.0 - fv)) < 0.03 {
                    [50.0, 48.0, 46.0]
                } else {
                    scale([110.0, 105.0, 100.0], g * (0.8 + 0.3 * blk))
                }
            }
            _ => {
                // Bricks with a dark soot stain.
                let b = bricks(u, v, [150.0, 80.0, 52.0], 16);
                let soot = fbm(u, v, 3, 3, 17) - 0.45;
                mix(b, [30.0, 25.0, 22.0], soot * 2.0)
            }
        }
    }

    /// A hanging banner with an emblem.
    pub fn panel(u: f32, v: f32, t: u8) -> Rgb {
        let back = bricks(u, v, [140.0, 62.0, 44.0], 11);
        let du = (u - 0.5).abs();
        if (0.05..0.09).contains(&v) && du < 0.27 {
            return [90.0, 60.0, 30.0]; // rod
        }
        let bottom = 0.72 - 0.12 * (1.0 - du / 0.22);
        if du < 0.22 && v > 0.09 && v < bottom {
            let c = tint(t);
            let (eu, ev) = (u - 0.5, v - 0.34);
            let r = (eu * eu + ev * ev).sqrt();
            if (0.07..0.1).contains(&r) || r < 0.03 {
                return [225.0, 190.0, 80.0]; // golden emblem
            }
            let border = du > 0.19 || v < 0.12;
            let fold = 0.85 + 0.15 * (u * 40.0).sin();
            return scale(c, if border { 0.6 } else { 0.85 * fold });
        }
        back
    }

    /// A wooden door in an arched stone frame, a coloured plaque above.
    pub fn door(u: f32, v: f32, t: u8) -> Rgb {
        let back = bricks(u, v, [140.0, 62.0, 44.0], 11);
        let du = (u - 0.5).abs();
        if du < 0.1 && (0.06..0.15).contains(&v) {
            return scale(tint(t), 0.9);
        }
        // Arch: a half circle of radius 0.32 on top of a rectangle.
        let inside = |pad: f32| {
            let r = 0.32 + pad;
            du < r && (v > 0.52 || (du * du + (v - 0.52).powi(2)).sqrt() < r)
        };
        if inside(0.0) {
            let plank = ((u - 0.18) / 0.128).floor();
            let fu = ((u - 0.18) / 0.128).fract();
            let wood = scale(
                [112.0, 72.0, 38.0],
                (0.75 + 0.4 * fbm(u * 0.25, v, 16, 3, 21))
                    * (0.85 + 0.2 * rand01(plank as i32, 0, 22)),
            );
            if fu < 0.06 {
                return scale(wood, 0.55);
            }
            if (0.58..0.62).contains(&v) || (0.86..0.9).contains(&v) {
                return [55.0, 55.0, 60.0]; // iron bands
            }
            let (hu, hv) = (u - 0.7, v - 0.72);
            if hu * hu + hv * hv < 0.0009 {
                return tint(t);
            }
            return wood;
        }
        if inside(0.05) {
            return scale([150.0, 145.0, 135.0], 0.8 + 0.3 * fbm(u, v, 8, 2, 23));
        }
        back
    }

    /// A painted, fluted stone column.
    pub fn pillar(u: f32, v: f32, t: u8) -> Rgb {
        let stone = scale([165.0, 158.0, 148.0], 0.8 + 0.3 * fbm(u, v, 8, 3, 31));
        if !(0.08..=0.92).contains(&v) {
            return stone;
        }
        let flute = ((u * 6.0).fract() - 0.5).abs();
        let shade = 0.55 + 0.45 * (std::f32::consts::PI * (u * 2.0).fract()).sin();
        let c = mix(tint(t), stone, 0.15);
        scale(c, shade * if flute > 0.42 { 0.6 } else { 1.0 })
    }

    /// Grey flagstones, 2×2 per tile.
    pub fn floor(u: f32, v: f32) -> Rgb {
        let (bu, bv) = (u * 2.0, v * 2.0);
        let (fu, fv) = (bu.fract(), bv.fract());
        if fu.min(1.0 - fu).min(fv.min(1.0 - fv)) < 0.03 {
            return [38.0, 36.0, 34.0];
        }
        let slab = 0.75 + 0.35 * rand01(bu as i32, bv as i32, 41);
        scale(
            [98.0, 94.0, 88.0],
            slab * (0.7 + 0.55 * fbm(u, v, 8, 4, 42)),
        )
    }

    /// Dark wooden beams.
    pub fn ceiling(u: f32, v: f32) -> Rgb {
        let beam = (u * 2.0).fract();
        let wood = scale([46.0, 34.0, 25.0], 0.7 + 0.5 * fbm(u, v * 0.25, 16, 3, 51));
        if beam < 0.08 { scale(wood, 0.45) } else { wood }
    }
}

mod neon {
    use super::*;

    const STRIPES: [Rgb; 4] = [
        [0.0, 235.0, 255.0],
        [255.0, 40.0, 200.0],
        [130.0, 255.0, 60.0],
        [255.0, 150.0, 20.0],
    ];

    fn metal(u: f32, v: f32) -> Rgb {
        let seam = (u * 2.0).fract();
        let base = scale([20.0, 22.0, 32.0], 0.75 + 0.5 * fbm(u, v, 8, 3, 61));
        if seam < 0.025 {
            [6.0, 6.0, 10.0]
        } else if seam < 0.05 {
            scale(base, 1.6)
        } else {
            base
        }
    }

    pub fn wall(u: f32, v: f32, variant: u8) -> Rgb {
        let c = STRIPES[variant as usize % 4];
        let v0 = if variant < 2 { 0.3 } else { 0.68 };
        let mut out = add(metal(u, v), c, 0.55 * glow(v - v0, 0.014));
        if variant % 2 == 1 {
            // A second, thin stripe.
            out = add(out, c, 0.25 * glow(v - v0 - 0.08, 0.006));
        }
        out
    }

    /// A neon sign: a glowing frame and a glyph that depends on the tint.
    pub fn panel(u: f32, v: f32, t: u8) -> Rgb {
        let c = tint(t);
        let frame = box_outline(u, v, 0.18, 0.18, 0.82, 0.62);
        let (gu, gv) = (u - 0.5, v - 0.4);
        let glyph = match t % 3 {
            0 => ((gu * gu + gv * gv).sqrt() - 0.12).abs(),
            1 => box_outline(u, v, 0.38, 0.28, 0.62, 0.52),
            _ => (gu.abs() * 0.9 + gv.abs() * 0.5 - 0.1).abs(), // diamond
        };
        let light = glow(frame, 0.012) + glow(glyph, 0.012);
        add(scale(metal(u, v), 0.7), c, 0.9 * light)
    }

    pub fn door(u: f32, v: f32, t: u8) -> Rgb {
        let c = tint(t);
        let inside = (0.2..0.8).contains(&u) && v > 0.25;
        let mut base = if inside {
            let slat = (v * 14.0).fract();
            scale([34.0, 36.0, 46.0], if slat < 0.12 { 0.6 } else { 1.0 })
        } else {
            metal(u, v)
        };
        let edge = box_outline(u, v, 0.2, 0.25, 0.8, 1.1);
        base = add(base, c, 0.8 * glow(edge, 0.01));
        let lamp = ((u - 0.5).powi(2) + (v - 0.14).powi(2)).sqrt();
        add(base, c, 0.8 * glow(lamp, 0.02))
    }

    pub fn pillar(u: f32, v: f32, t: u8) -> Rgb {
        let c = tint(t);
        let shade = 0.5 + 0.5 * (std::f32::consts::PI * (u * 2.0).fract()).sin();
        let base = scale([16.0, 16.0, 22.0], 0.6 + 0.6 * shade);
        let tube = (((u * 2.0).fract()) - 0.5).abs();
        let rings = glow(v - 0.1, 0.01) + glow(v - 0.9, 0.01);
        add(base, c, 0.9 * glow(tube, 0.03) + 0.6 * rings)
    }

    pub fn wetness(u: f32, v: f32) -> f32 {
        ((fbm(u, v, 2, 4, 71) - 0.45) * 4.0).clamp(0.0, 1.0)
    }

    /// Dark wet asphalt with puddles.
    pub fn floor(u: f32, v: f32) -> Rgb {
        let grit = 0.7 + 0.6 * fbm(u, v, 16, 3, 72);
        let dry = scale([26.0, 25.0, 32.0], grit);
        mix(dry, [12.0, 14.0, 26.0], wetness(u, v))
    }

    /// Night sky: a purple glow at the horizon, stars, a distant skyline.
    pub fn sky(az: f32, elev: f32) -> Rgb {
        let mut c = mix([48.0, 22.0, 70.0], [4.0, 4.0, 14.0], (elev / 0.8).sqrt());
        let (sx, sy) = ((az * 360.0) as i32, (elev * 90.0) as i32);
        if rand01(sx, sy, 81) > 0.985 {
            c = add(c, [200.0, 200.0, 220.0], rand01(sx, sy, 82));
        }
        let block = (az * 90.0).floor() as i32;
        let height = 0.06 + 0.16 * rand01(block.rem_euclid(90), 0, 83);
        if elev < height {
            c = [10.0, 8.0, 18.0];
            let (wx, wy) = ((az * 720.0) as i32, (elev * 200.0) as i32);
            if wx % 2 == 0 && wy % 2 == 0 && rand01(wx, wy, 84) > 0.7 {
                c = [230.0, 190.0, 90.0];
            }
        }
        c
    }
}

mod forest {
    use super::*;

    fn snow(u: f32, v: f32) -> Rgb {
        scale([236.0, 241.0, 250.0], 0.9 + 0.1 * fbm(u, v, 16, 2, 91))
    }

    fn hedge(u: f32, v: f32, dark: bool, salt: u32) -> Rgb {
        let f = fbm(u, v, 8, 4, salt);
        let (lo, hi) = if dark {
            ([14.0, 40.0, 26.0], [40.0, 85.0, 50.0])
        } else {
            ([22.0, 52.0, 28.0], [70.0, 118.0, 60.0])
        };
        let mut c = mix(lo, hi, f * 1.4 - 0.2);
        let (lx, ly) = ((u * 32.0) as i32, (v * 32.0) as i32);
        if rand01(lx, ly, salt + 1) > 0.93 {
            c = scale(c, 1.35);
        }
        // Snow caps along the top and clumps on the leaves.
        let line = 0.12 + 0.08 * noise(u, 0.0, 8, salt + 2);
        if v < line || fbm(u, v, 6, 3, salt + 3) > 0.7 - v * 0.1 {
            return snow(u, v);
        }
        c
    }

    pub fn wall(u: f32, v: f32, variant: u8) -> Rgb {
        match variant {
            0 => hedge(u, v, false, 101),
            1 => {
                // Tree trunks showing below the foliage.
                let trunk = ((u * 3.0).fract() - 0.5).abs() < 0.09;
                if v > 0.72 && trunk {
                    scale([92.0, 62.0, 40.0], 0.7 + 0.4 * fbm(u, v, 16, 2, 104))
                } else {
                    hedge(u, v, false, 105)
                }
            }
            2 => hedge(u, v, true, 106),
            _ => {
                // Hedge with red berries.
                let c = hedge(u, v, false, 108);
                let (bx, by) = ((u * 24.0) as i32, (v * 24.0) as i32);
                if v > 0.2 && rand01(bx, by, 109) > 0.95 {
                    [200.0, 30.0, 40.0]
                } else {
                    c
                }
            }
        }
    }

    /// A painted wooden sign on a post.
    pub fn panel(u: f32, v: f32, t: u8) -> Rgb {
        let du = (u - 0.5).abs();
        if du < 0.32 && (0.28..0.3).contains(&v) {
            return snow(u, v);
        }
        if du < 0.3 && (0.3..0.6).contains(&v) {
            let wood = scale(
                [150.0, 110.0, 70.0],
                0.8 + 0.3 * fbm(u * 0.3, v, 16, 2, 111),
            );
            let (gu, gv) = (u - 0.5, v - 0.45);
            let mark = match t % 3 {
                0 => (gu * gu + gv * gv).sqrt() < 0.09,
                1 => gu.abs() < 0.15 && gv.abs() < 0.04,
                _ => gu.abs() + gv.abs() < 0.11,
            };
            return if mark { tint(t) } else { wood };
        }
        if du < 0.035 && v >= 0.6 {
            return [100.0, 70.0, 45.0];
        }
        hedge(u, v, false, 101)
    }

    /// A wooden gate with a coloured wreath.
    pub fn door(u: f32, v: f32, t: u8) -> Rgb {
        let (wu, wv) = (u - 0.5, v - 0.5);
        let r = (wu * wu + wv * wv).sqrt();
        if (0.07..0.12).contains(&r) {
            return scale(
                tint(t),
                0.8 + 0.2 * rand01((u * 40.0) as i32, (v * 40.0) as i32, 121),
            );
        }
        if (0.12..0.88).contains(&u) && v > 0.22 {
            let slat = ((u - 0.12) * 10.0).fract();
            if slat < 0.12 {
                return [30.0, 30.0, 25.0];
            }
            if v < 0.26 {
                return snow(u, v);
            }
            return scale(
                [170.0, 130.0, 85.0],
                0.8 + 0.3 * fbm(u * 0.2, v, 16, 2, 122),
            );
        }
        hedge(u, v, false, 101)
    }

    /// A painted totem pole with a snow cap.
    pub fn pillar(u: f32, v: f32, t: u8) -> Rgb {
        if v < 0.07 {
            return snow(u, v);
        }
        let shade = 0.55 + 0.45 * (std::f32::consts::PI * (u * 2.0).fract()).sin();
        let band = [0.2..0.32, 0.5..0.62, 0.8..0.9]
            .iter()
            .any(|r| r.contains(&v));
        let c = if band {
            tint(t)
        } else {
            scale([125.0, 88.0, 58.0], 0.8 + 0.3 * fbm(u, v * 0.3, 16, 2, 131))
        };
        scale(c, shade)
    }

    /// Snow with soft blue shadows and sparkles.
    pub fn floor(u: f32, v: f32) -> Rgb {
        let f = fbm(u, v, 4, 4, 141);
        let mut c = mix([196.0, 208.0, 228.0], [240.0, 244.0, 250.0], f * 1.6 - 0.3);
        if rand01((u * 64.0) as i32, (v * 64.0) as i32, 142) > 0.985 {
            c = [255.0, 255.0, 255.0];
        }
        c
    }

    /// Pale sky with distant snowy mountains and faint clouds.
    pub fn sky(az: f32, elev: f32) -> Rgb {
        let mut c = mix(
            [208.0, 218.0, 230.0],
            [150.0, 178.0, 214.0],
            (elev / 1.2).sqrt(),
        );
        let cloud = fbm(az, elev * 0.5, 8, 4, 151);
        c = mix(c, [238.0, 240.0, 245.0], (cloud - 0.55) * 2.5);
        let ridge = 0.05 + 0.18 * fbm(az, 0.0, 6, 4, 152);
        if elev < ridge {
            let snowy = elev > ridge - 0.04;
            c = if snowy {
                [226.0, 231.0, 240.0]
            } else {
                [158.0, 170.0, 192.0]
            };
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_periodic_and_bounded() {
        for i in 0..50 {
            let (u, v) = (i as f32 * 0.037, i as f32 * 0.051);
            let a = fbm(u, v, 4, 3, 9);
            assert!((0.0..1.0).contains(&a));
            assert!((a - fbm(u + 1.0, v + 1.0, 4, 3, 9)).abs() < 1e-4);
        }
    }

    #[test]
    fn every_theme_builds_distinct_textures() {
        let mean = |t: &Texture| t.sample(0.5, 0.5, TEX_LOG2);
        let d = theme_textures(Theme::Dungeon);
        let n = theme_textures(Theme::Neon);
        let f = theme_textures(Theme::Forest);
        assert!(d.ceiling.is_some() && n.ceiling.is_none());
        assert_eq!(n.sky.len(), SKY_W * SKY_H);
        assert_ne!(mean(&d.walls[0]), mean(&n.walls[0]));
        assert_ne!(mean(&f.floor), mean(&n.floor));
        // Landmark tints differ from each other.
        assert_ne!(mean(&d.pillars[0]), mean(&d.pillars[1]));
        assert_eq!(mip_level(0.5), 0);
        assert_eq!(mip_level(4.5), 2);
        assert_eq!(mip_level(1e9), TEX_LOG2);
    }
}
