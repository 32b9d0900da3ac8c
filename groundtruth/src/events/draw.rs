//! Drawing events (called by the renderer): the ghost's sheet, an open
//! door's light and falling snow, as pure functions of position, seed and
//! tick.

use super::{DOOR_RGB, FLAKE_RGB, GHOST_RGB};

/// A small hash in [0, 1).
fn h01(a: u64, b: u64) -> f32 {
    (crate::mix64(a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b) >> 40) as f32 / (1u64 << 24) as f32
}

/// Whether (`sx` from the centre line, `sz` above the floor, world units) is
/// on the ghost, and its colour there; `bob` lifts it.
pub(crate) fn ghost_colour(sx: f32, sz: f32, bob: f32, tick: u64) -> Option<[f32; 3]> {
    let z = sz - bob;
    let (hx, hz, r) = (0.0, 0.62, 0.2);
    let head = (sx - hx).powi(2) + (z - hz).powi(2) <= r * r;
    let hem = 0.14 + 0.04 * (sx * 40.0 + tick as f32 * 0.9).sin();
    let body = sx.abs() <= 0.2 + 0.06 * (0.62 - z).max(0.0) && (hem..=hz).contains(&z);
    if !(head || body) {
        return None;
    }
    for ex in [-0.075, 0.075] {
        if ((sx - ex) / 0.04).powi(2) + ((z - 0.66) / 0.05).powi(2) <= 1.0 {
            return Some([30.0, 40.0, 60.0]);
        }
    }
    let k = 0.9 + 0.1 * (1.0 - (sx / 0.26).powi(2)).max(0.0);
    Some(GHOST_RGB.map(|c| f32::from(c) * k))
}

/// Half the ghost's width and its height (world units).
pub(crate) const GHOST_HALF_WIDTH: f32 = 0.28;
/// The ghost's top above the floor (world units).
pub(crate) const GHOST_TOP: f32 = 0.9;

/// The open door at face coordinates (`u` across, `v` down, in [0, 1]):
/// the doorway's light (emissive) inside a dark frame (not), or `None`
/// elsewhere on the face.
pub(crate) fn door_colour(u: f32, v: f32) -> Option<([f32; 3], bool)> {
    if !(0.16..=0.84).contains(&u) || !(0.07..=1.0).contains(&v) {
        return None;
    }
    if !(0.2..=0.8).contains(&u) || v < 0.12 {
        return Some(([58.0, 40.0, 30.0], false));
    }
    // Brighter at the centre of the opening.
    let c = 1.0 - ((u - 0.5) / 0.3).powi(2) * 0.08;
    Some((DOOR_RGB.map(|x| f32::from(x) * c), true))
}

/// Draws falling snow over `rgb` (`w` × `h`), dimmer in the dark.
pub(crate) fn draw_snow(seed: u64, tick: u64, dark: bool, w: usize, h: usize, rgb: &mut [u8]) {
    let s = (h / 64).max(1);
    let flakes = (w * h) * 5 / (100 * s * s);
    let colour = if dark { [150u8, 155, 170] } else { FLAKE_RGB };
    let t = tick as f32;
    for k in 0..flakes as u64 {
        let u0 = h01(seed ^ 0x5_0F1A, k);
        let v0 = h01(seed ^ 0x5_0F1B, k);
        let speed = 0.03 + 0.05 * h01(seed ^ 0x5_0F1C, k);
        let drift = 0.02 * (h01(seed ^ 0x5_0F1D, k) - 0.5);
        let u = (u0 + drift * t).rem_euclid(1.0);
        let v = (v0 + speed * t).rem_euclid(1.0);
        let (x0, y0) = ((u * w as f32) as usize, (v * h as f32) as usize);
        for y in y0..(y0 + s).min(h) {
            for x in x0..(x0 + s).min(w) {
                let i = (y * w + x) * 3;
                rgb[i..i + 3].copy_from_slice(&colour);
            }
        }
    }
}
