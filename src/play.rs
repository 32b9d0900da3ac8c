//! `wgraph play FILE`: a world in the terminal.
//!
//! The world ticks on its own thread at its graph's fps; this thread owns
//! the terminal (crossterm): raw mode, the alternate screen, keys in, frames
//! out as truecolor half blocks (`▀`: the foreground is the upper pixel,
//! the background the lower one), scaled to the terminal, and a one-line
//! HUD. Terminals that report key releases (the kitty keyboard protocol,
//! which we ask for) release keys exactly; elsewhere a key counts as held
//! until [`HOLD`] after its last press or auto-repeat. `q`, Esc or Ctrl-C
//! quit; the terminal is restored on every way out, a panic included.
//! The world's side (its thread, the newest frame) is
//! `wgraph_session::view`'s.

use crate::{Outcome, PlayArgs};
use crossterm::event::{
    self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, KeyboardEnhancementFlags,
    PopKeyboardEnhancementFlags, PushKeyboardEnhancementFlags,
};
use crossterm::style::{Color, Print, ResetColor, SetBackgroundColor, SetForegroundColor};
use crossterm::{cursor, queue, terminal};
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wgraph_engine::frame::RgbFrame;
use wgraph_engine::metrics::Timings;
use wgraph_engine::value::{Actions, Key};
use wgraph_engine::world::WorldConfig;
use wgraph_session::SessionOptions;
use wgraph_session::view::{View, spawn_viewed};

/// How long a key counts as held after a press where the terminal reports
/// no releases (auto-repeat renews it).
pub const HOLD: Duration = Duration::from_millis(150);

/// Puts the terminal back however the player ends.
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> std::io::Result<TerminalGuard> {
        terminal::enable_raw_mode()?;
        let mut out = std::io::stdout();
        queue!(
            out,
            terminal::EnterAlternateScreen,
            cursor::Hide,
            PushKeyboardEnhancementFlags(KeyboardEnhancementFlags::REPORT_EVENT_TYPES)
        )?;
        out.flush()?;
        Ok(TerminalGuard)
    }
}

fn restore_terminal() {
    let mut out = std::io::stdout();
    let _ = queue!(
        out,
        PopKeyboardEnhancementFlags,
        ResetColor,
        cursor::Show,
        terminal::LeaveAlternateScreen
    );
    let _ = out.flush();
    let _ = terminal::disable_raw_mode();
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

fn key_of(code: KeyCode) -> Option<Key> {
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
#[derive(Default)]
struct Held {
    since: HashMap<Key, Instant>,
    /// The terminal has reported a release: no hold timeout needed.
    releases_seen: bool,
}

impl Held {
    fn event(&mut self, key: Key, kind: KeyEventKind) {
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

    fn actions(&mut self) -> Actions {
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
    /// `auto`: kitty where the terminal says it is one that speaks it.
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
}

/// Draws `frame` with the kitty graphics protocol into `cols × rows` cells:
/// one image (id 1, replaced every frame, so the terminal holds one), RGB,
/// base64 in chunks of at most 4096 bytes, responses suppressed.
fn draw_kitty(out: &mut Vec<u8>, frame: &RgbFrame, cols: u16, rows: u16) -> std::io::Result<()> {
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

/// Draws `frame` scaled into `cols × rows` character cells (two pixels per cell).
fn draw(out: &mut Vec<u8>, frame: &RgbFrame, cols: u16, rows: u16) -> std::io::Result<()> {
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

/// `wgraph play FILE`
pub fn play(args: &PlayArgs) -> Outcome {
    let label = args.file.display().to_string();
    let output = crate::outputs::front_end(args.out.as_deref(), args.keep_last);
    let options = SessionOptions {
        set: args.set.clone(),
        seed: args.seed,
        output: output.clone(),
        provider: args.provider.map(Into::into),
        backend_kind: args.backend.map(Into::into),
        watch: args.watch,
        rebuilds: true,
        ..crate::load::session_options(&args.file)
    };
    let session = crate::load::open_session(options, crate::load::model_cache(), |graph| {
        crate::outputs::note_skipped(&label, graph, &output, false);
        let fps = args.fps.unwrap_or(graph.settings.fps);
        wgraph_engine::settings::check_fps(fps).map_err(|e| format!("--fps: {e}"))?;
        let (on_late, degrade) =
            wgraph_session::late_policy(graph, args.on_late.as_deref(), &args.degrade)?;
        Ok(WorldConfig {
            on_late,
            degrade,
            fps: Some(fps),
            // `--fps` wins over the graph's; without it a reload re-paces.
            follow_graph_fps: args.fps.is_none(),
            stats_every: Some(Duration::from_secs(1)),
            ..WorldConfig::default()
        })
    });
    let session = match session {
        Ok(s) => s,
        Err(outcome) => return outcome,
    };
    let handle = session.handle();
    // The player starts with no keys held (not a key change: no latency).
    handle.hold_no_keys();
    let shared = Arc::new(Mutex::new(View::default()));
    let world_thread = spawn_viewed(session, Arc::clone(&shared));

    // Restore the terminal before a panic message is printed.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        default_hook(info);
    }));
    let graphics = Graphics::detect(&args.graphics);
    let ui = run_ui(&shared, &handle, graphics);
    handle.stop();
    let (ok, ticks) = world_thread.join().unwrap_or((false, 0));
    let _ = std::panic::take_hook();
    let status = shared.lock().map(|s| s.status.clone()).unwrap_or_default();
    match ui {
        Ok(stats) => {
            let (p50, p99) = (
                stats.latency.quantile(0.5).as_secs_f64() * 1e3,
                stats.latency.quantile(0.99).as_secs_f64() * 1e3,
            );
            eprintln!(
                "{ticks} ticks; {} frames drawn ({} distinct); {}",
                stats.drawn,
                stats.distinct,
                wgraph_web::worlds::latency_summary(p50, p99, stats.latency.count())
            );
        }
        Err(e) => eprintln!("error: terminal: {e}"),
    }
    if !status.is_empty() {
        eprintln!("{status}");
    }
    if ok {
        Outcome::Ok
    } else {
        Outcome::RuntimeFailure
    }
}

struct UiStats {
    drawn: u64,
    distinct: u64,
    latency: Timings,
}

fn run_ui(
    shared: &Mutex<View>,
    handle: &wgraph_engine::world::WorldHandle,
    graphics: Graphics,
) -> std::io::Result<UiStats> {
    let _guard = TerminalGuard::enter()?;
    let mut held = Held::default();
    let mut stats = UiStats {
        drawn: 0,
        distinct: 0,
        latency: Timings::default(),
    };
    let mut last_tick = None;
    let mut last_hash = None;
    let mut arrivals: std::collections::VecDeque<Instant> = std::collections::VecDeque::new();
    let mut buf = Vec::new();
    loop {
        while event::poll(Duration::from_millis(4))? {
            if let Event::Key(KeyEvent {
                code,
                modifiers,
                kind,
                ..
            }) = event::read()?
            {
                let quit = matches!(code, KeyCode::Esc | KeyCode::Char('q'))
                    || (code == KeyCode::Char('c') && modifiers.contains(KeyModifiers::CONTROL));
                if quit && kind != KeyEventKind::Release {
                    return Ok(stats);
                }
                if let Some(k) = key_of(code) {
                    held.event(k, kind);
                }
            }
        }
        handle.set_keys(Some(held.actions()));
        let (frame, late, reload, done) = {
            let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
            let frame = match (&s.frame, last_tick) {
                (Some((t, _, _)), Some(l)) if *t == l => None,
                _ => s.frame.take(),
            };
            (frame, s.late_ticks, s.last_reload.clone(), s.done)
        };
        if done {
            return Ok(stats);
        }
        let Some((tick, frame, input_at)) = frame else {
            continue;
        };
        last_tick = Some(tick);
        let (cols, rows) = terminal::size()?;
        buf.clear();
        match graphics {
            Graphics::Blocks => draw(&mut buf, &frame, cols, rows.saturating_sub(1))?,
            Graphics::Kitty => draw_kitty(&mut buf, &frame, cols, rows.saturating_sub(1))?,
        }
        let now = Instant::now();
        arrivals.push_back(now);
        while arrivals
            .front()
            .is_some_and(|t| now - *t > Duration::from_secs(1))
        {
            arrivals.pop_front();
        }
        let ms = |q: f64| stats.latency.quantile(q).as_secs_f64() * 1e3;
        let hud = format!(
            "tick {tick}  {} fps  key→frame p50 {:.0} ms p99 {:.0} ms  late {late}  {reload}  q quits",
            arrivals.len(),
            ms(0.5),
            ms(0.99)
        );
        queue!(
            buf,
            cursor::MoveTo(0, rows.saturating_sub(1)),
            terminal::Clear(terminal::ClearType::CurrentLine),
            Print(&hud.chars().take(usize::from(cols)).collect::<String>())
        )?;
        let mut out = std::io::stdout();
        out.write_all(&buf)?;
        out.flush()?;
        if let Some(at) = input_at {
            stats.latency.record(at.elapsed());
        }
        stats.drawn += 1;
        let hash = frame.rgb.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        if last_hash != Some(hash) {
            stats.distinct += 1;
            last_hash = Some(hash);
        }
    }
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
        draw(&mut out, &f, 4, 2).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert_eq!(
            s.matches('▀').count(),
            4 * 2,
            "2x2 pixels scaled to 4x2 cells"
        );
        assert!(s.contains("\u{1b}[38;2;255;0;0m"), "truecolor top pixel");
        assert!(s.contains("\u{1b}[48;2;0;0;255m"), "truecolor bottom pixel");
    }
}
