//! Detection: what a frame shows, read from its pixels alone.
//!
//! # Main types
//! - [`Signals`]: the share of ghost-coloured and door-light-coloured
//!   pixels, the density of isolated bright speckles (flakes) and the 90th
//!   percentile of luma over the other pixels, measured by [`detect`] and
//!   judged against [`thresholds`].

use super::Channel;

/// What a frame shows, read from its pixels.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Signals {
    /// Share of ghost-coloured pixels.
    pub ghost: f64,
    /// Share of door-light-coloured pixels.
    pub door: f64,
    /// Share of pixels that are isolated bright speckles (flakes).
    pub snow: f64,
    /// 90th percentile of luma (0–255) over the pixels that are neither
    /// ghost, door light nor flakes (255 when those cover over 3/4 of the
    /// frame: light sources fill the view).
    pub luma_p90: f64,
}

/// Thresholds of [`Signals::channels`].
pub mod thresholds {
    /// A ghost is seen at this share of ghost-coloured pixels.
    pub const GHOST: f64 = 0.004;
    /// A door is seen at this share of door-light pixels.
    pub const DOOR: f64 = 0.0015;
    /// Snow is seen at this share of speckle pixels.
    pub const SNOW: f64 = 0.009;
    /// The lights are out below this 90th percentile of luma.
    pub const DARK_P90: f64 = 14.0;
}

impl Signals {
    /// Whether `channel` is seen.
    pub fn seen(&self, channel: Channel) -> bool {
        match channel {
            Channel::Ghost => self.ghost >= thresholds::GHOST,
            Channel::Door => self.door >= thresholds::DOOR,
            Channel::Snow => self.snow >= thresholds::SNOW,
            Channel::Dark => self.luma_p90 < thresholds::DARK_P90,
        }
    }

    /// The channels seen, in [`Channel::ALL`] order.
    pub fn channels(&self) -> Vec<Channel> {
        Channel::ALL.into_iter().filter(|c| self.seen(*c)).collect()
    }
}

fn luma(p: &[u8]) -> i32 {
    (i32::from(p[0]) * 299 + i32::from(p[1]) * 587 + i32::from(p[2]) * 114) / 1000
}

fn is_ghost(p: &[u8]) -> bool {
    let [r, g, b] = [p[0], p[1], p[2]].map(i32::from);
    (80..=150).contains(&r) && g >= 200 && (135..=205).contains(&b) && g - b >= 40 && b - r >= 25
}

fn is_door(p: &[u8]) -> bool {
    let [r, g, b] = [p[0], p[1], p[2]].map(i32::from);
    r >= 215 && (90..=160).contains(&g) && (160..=235).contains(&b) && r - b >= 25 && b - g >= 40
}

/// Reads a frame's [`Signals`]: `rgb` is `[h, w, 3]` row-major. Frames too
/// small for a neighbourhood (under 3×3) or of the wrong length read as
/// nothing seen.
pub fn detect(rgb: &[u8], w: usize, h: usize) -> Signals {
    let n = w.saturating_mul(h);
    if w < 3 || h < 3 || rgb.len() != n.saturating_mul(3) {
        return Signals {
            luma_p90: 255.0,
            ..Signals::default()
        };
    }
    let lum: Vec<i32> = rgb.chunks_exact(3).map(luma).collect();
    let s = (h / 64).max(1);
    let (mut ghost, mut door, mut snow) = (0usize, 0usize, 0usize);
    let mut rest: Vec<i32> = Vec::with_capacity(n);
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let p = &rgb[i * 3..i * 3 + 3];
            if is_ghost(p) {
                ghost += 1;
                continue;
            }
            if is_door(p) {
                door += 1;
                continue;
            }
            // A speckle: brighter than the mean of its ring at distance s
            // (clamped at the border) by a clear margin.
            let l = lum[i];
            let at = |dx: isize, dy: isize| {
                let xx = (x as isize + dx * s as isize).clamp(0, w as isize - 1) as usize;
                let yy = (y as isize + dy * s as isize).clamp(0, h as isize - 1) as usize;
                lum[yy * w + xx]
            };
            let ring = [
                (-1, -1),
                (0, -1),
                (1, -1),
                (-1, 0),
                (1, 0),
                (-1, 1),
                (0, 1),
                (1, 1),
            ];
            let max = ring.iter().map(|&(dx, dy)| at(dx, dy)).max().unwrap_or(255);
            if l >= 110 && l - max >= 40 {
                snow += 1;
                continue;
            }
            rest.push(l);
        }
    }
    // Too little of the scene left to judge (a ghost or a doorway fills the
    // view): lit, since both give light.
    let luma_p90 = if rest.len() < n / 4 {
        255.0
    } else {
        let k = (rest.len() * 9 / 10).min(rest.len() - 1);
        let (_, v, _) = rest.select_nth_unstable(k);
        f64::from(*v)
    };
    let share = |c: usize| c as f64 / n as f64;
    Signals {
        ghost: share(ghost),
        door: share(door),
        snow: share(snow),
        luma_p90,
    }
}
