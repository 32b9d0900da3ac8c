//! A world drawn in a terminal (`wgraph play`): frames to bytes and keys to
//! [`Actions`], with no terminal of its own — the caller owns raw mode, the
//! screen and the event loop.
//!
//! Frames are drawn either as truecolor half blocks ([`draw_blocks`]: `▀`,
//! the foreground the upper pixel, the background the lower one) scaled to
//! the terminal, or with the kitty graphics protocol ([`draw_kitty`]: real
//! pixels in kitty, WezTerm, Ghostty); [`Graphics::detect`] picks one.
//! Keys are held ([`Held`]) from presses to releases where the terminal
//! reports releases (the kitty keyboard protocol), elsewhere until [`HOLD`]
//! after the last press or auto-repeat.

use crossterm::event::{KeyCode, KeyEventKind};
use crossterm::style::{Color, Print, ResetColor, SetBackgroundColor, SetForegroundColor};
use crossterm::{cursor, queue};
use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};
use wgraph_engine::frame::RgbFrame;
use wgraph_engine::value::{Actions, Key};

/// How long a key counts as held after a press where the terminal reports
/// no releases (auto-repeat renews it).
pub const HOLD: Duration = Duration::from_millis(150);

/// The world's key for a terminal key: W, A, S, D (either case), the
/// arrows and space; `None` for any other.
pub fn key_of(code: KeyCode) -> Option<Key> {
    Some(match code {
        KeyCode::Char('w' | 'W') => Key::W,
        KeyCode::Char('a' | 'A') => Key::A,
        KeyCode::Char('s' | 'S') => Key::S,
        KeyCode::Char('d' | 'D') => Key::D,
        KeyCode::Left => Key::Left,
        KeyCode::Right => Key::Right,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::Char(' ') => Key::Space,
        _ => return None,
    })
}

/// Keys held, from presses and (where reported) releases.
#[derive(Debug, Default)]
pub struct Held {
    since: HashMap<Key, Instant>,
    /// The terminal has reported a release: no hold timeout needed.
    releases_seen: bool,
}

impl Held {
    /// Takes in a press, auto-repeat or release of `key`.
    pub fn event(&mut self, key: Key, kind: KeyEventKind) {
        match kind {
            KeyEventKind::Press | KeyEventKind::Repeat => {
                self.since.insert(key, Instant::now());
            }
            KeyEventKind::Release => {
                self.releases_seen = true;
                self.since.remove(&key);
            }
        }
    }

    /// The keys held now (dropping those past [`HOLD`] where the terminal
    /// reports no releases).
    pub fn actions(&mut self) -> Actions {
        if !self.releases_seen {
            self.since.retain(|_, t| t.elapsed() < HOLD);
        }
        self.since.keys().fold(Actions::none(), |a, &k| a.with(k))
    }
}

/// How frames reach the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Graphics {
    /// Truecolor half blocks: every terminal with 24-bit colour.
    Blocks,
    /// The kitty graphics protocol (kitty, WezTerm, Ghostty): real pixels.
    Kitty,
}

impl Graphics {
    /// `kitty`, `blocks`, or anything else as `auto`: kitty where the
    /// terminal says it is one that speaks it.
    pub fn detect(choice: &str) -> Graphics {
        match choice {
            "kitty" => Graphics::Kitty,
            "blocks" => Graphics::Blocks,
            _ => {
                let var = |k: &str| std::env::var(k).unwrap_or_default();
                let kitty = std::env::var_os("KITTY_WINDOW_ID").is_some()
                    || var("TERM") == "xterm-kitty"
                    || matches!(var("TERM_PROGRAM").as_str(), "WezTerm" | "ghostty");
                if kitty {
                    Graphics::Kitty
                } else {
                    Graphics::Blocks
                }
            }
        }
    }

    /// Appends `frame` drawn this way into `cols × rows` cells to `out`.
    pub fn draw(
        self,
        out: &mut Vec<u8>,
        frame: &RgbFrame,
        cols: u16,
        rows: u16,
    ) -> std::io::Result<()> {
        match self {
            Graphics::Blocks => draw_blocks(out, frame, cols, rows),
            Graphics::Kitty => draw_kitty(out, frame, cols, rows),
        }
    }
}

/// Draws `frame` with the kitty graphics protocol into `cols × rows` cells:
/// one image (id 1, replaced every frame, so the terminal holds one), RGB,
/// base64 in chunks of at most 4096 bytes, responses suppressed.
pub fn draw_kitty(
    out: &mut Vec<u8>,
    frame: &RgbFrame,
    cols: u16,
    rows: u16,
) -> std::io::Result<()> {
    use base64::Engine as _;
    let (w, h) = (frame.width.max(1), frame.height.max(1));
    // Keep the aspect: a cell is about twice as tall as wide.
    let by_cols = usize::from(cols.max(1));
    let by_rows = usize::from(rows.max(1)) * 2 * w / h;
    let c = by_cols.min(by_rows).max(1);
    let r = (c * h / w / 2).max(1);
    queue!(out, cursor::MoveTo(0, 0))?;
    let data = base64::engine::general_purpose::STANDARD.encode(&frame.rgb);
    let chunks: Vec<&[u8]> = data.as_bytes().chunks(4096).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let more = u8::from(i + 1 < chunks.len());
        if i == 0 {
            write!(
                out,
                "\x1b_Ga=T,i=1,p=1,q=2,f=24,s={w},v={h},c={c},r={r},m={more};"
            )?;
        } else {
            write!(out, "\x1b_Gm={more};")?;
        }
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\x1b\\");
    }
    Ok(())
}

/// Draws `frame` scaled into `cols × rows` character cells (two pixels per
/// cell, truecolor half blocks).
pub fn draw_blocks(
    out: &mut Vec<u8>,
    frame: &RgbFrame,
    cols: u16,
    rows: u16,
) -> std::io::Result<()> {
    let (w, h) = (frame.width.max(1), frame.height.max(1));
    let cols = usize::from(cols.max(1));
    let rows = usize::from(rows.max(1));
    // The largest cell grid that keeps the aspect (a cell is 1 × 2 pixels).
    let scale = (cols as f64 / w as f64).min((rows * 2) as f64 / h as f64);
    let (dw, dh) = (
        ((w as f64 * scale) as usize).max(1),
        ((h as f64 * scale) as usize / 2).max(1),
    );
    for row in 0..dh {
        queue!(out, cursor::MoveTo(0, row as u16))?;
        for col in 0..dw {
            let x = (col * w / dw).min(w - 1);
            let top = ((2 * row) * h / (2 * dh)).min(h - 1);
            let bottom = ((2 * row + 1) * h / (2 * dh)).min(h - 1);
            let [r, g, b] = frame.pixel(x, top);
            let [r2, g2, b2] = frame.pixel(x, bottom);
            queue!(
                out,
                SetForegroundColor(Color::Rgb { r, g, b }),
                SetBackgroundColor(Color::Rgb {
                    r: r2,
                    g: g2,
                    b: b2
                }),
                Print('▀')
            )?;
        }
        queue!(out, ResetColor)?;
    }
    Ok(())
}

/// A 64-bit FNV-1a hash of a frame's pixels: tells a redrawn frame from a
/// new one.
pub fn frame_hash(frame: &RgbFrame) -> u64 {
    frame.rgb.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hold_until_released_or_timed_out() {
        let mut h = Held::default();
        h.event(Key::W, KeyEventKind::Press);
        assert!(h.actions().contains(Key::W));
        std::thread::sleep(HOLD + Duration::from_millis(20));
        assert!(
            !h.actions().contains(Key::W),
            "no release reported: timed out"
        );
        h.event(Key::W, KeyEventKind::Press);
        h.event(Key::A, KeyEventKind::Release);
        std::thread::sleep(HOLD + Duration::from_millis(20));
        assert!(h.actions().contains(Key::W), "releases are reported: held");
        h.event(Key::W, KeyEventKind::Release);
        assert_eq!(h.actions(), Actions::none());
    }

    #[test]
    fn kitty_frames_are_one_replaced_image_in_chunks() {
        let f = RgbFrame {
            width: 64,
            height: 64,
            rgb: vec![7; 64 * 64 * 3],
        };
        let mut out = Vec::new();
        draw_kitty(&mut out, &f, 80, 24).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.contains("\u{1b}_Ga=T,i=1,p=1,q=2,f=24,s=64,v=64,c=48,r=24,m=1;"),
            "{}",
            &s[..80]
        );
        // 12288 bytes → 16384 base64 characters → 4 chunks of 4096.
        assert_eq!(s.matches("\u{1b}_G").count(), 4);
        assert!(s.ends_with("\u{1b}_Gm=0;".to_string().as_str()) || s.contains("\u{1b}_Gm=0;"));
        assert_eq!(Graphics::detect("kitty"), Graphics::Kitty);
        assert_eq!(Graphics::detect("blocks"), Graphics::Blocks);
    }

    #[test]
    fn frames_draw_as_half_blocks_scaled_to_the_terminal() {
        let f = RgbFrame {
            width: 2,
            height: 2,
            rgb: vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9],
        };
        let mut out = Vec::new();
        draw_blocks(&mut out, &f, 4, 2).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert_eq!(
            s.matches('▀').count(),
            4 * 2,
            "2x2 pixels scaled to 4x2 cells"
        );
        assert!(s.contains("\u{1b}[38;2;255;0;0m"), "truecolor top pixel");
        assert!(s.contains("\u{1b}[48;2;0;0;255m"), "truecolor bottom pixel");
    }

    #[test]
    fn keys_map_to_the_worlds_keys() {
        assert_eq!(key_of(KeyCode::Char('W')), Some(Key::W));
        assert_eq!(key_of(KeyCode::Left), Some(Key::Left));
        assert_eq!(key_of(KeyCode::Char(' ')), Some(Key::Space));
        assert_eq!(key_of(KeyCode::Char('q')), None);
    }
}
