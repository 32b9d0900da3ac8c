//! `wgraph play FILE`: a world in the terminal.
//!
//! The world ticks on its own thread at its graph's fps
//! (`wgraph_session::view`); this thread owns the terminal (crossterm):
//! raw mode, the alternate screen (asking for the kitty keyboard protocol,
//! so key releases are reported), keys in, frames out as
//! `wgraph_session::terminal` draws them, and a one-line HUD. `q`, Esc or
//! Ctrl-C quit; the terminal is restored on every way out, a panic
//! included.

use crate::Outcome;
use crate::flags::{LateFlags, LiveWorldFlags, ModelFlags, SeedFlag, SetFlags};
use crossterm::event::{
    self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, KeyboardEnhancementFlags,
    PopKeyboardEnhancementFlags, PushKeyboardEnhancementFlags,
};
use crossterm::style::{Print, ResetColor};
use crossterm::{cursor, queue, terminal};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wgraph_engine::metrics::Timings;
use wgraph_engine::world::WorldConfig;
use wgraph_session::SessionOptions;
use wgraph_session::terminal::{Graphics, Held, frame_hash, key_of};
use wgraph_session::view::{View, spawn_viewed};

/// `wgraph play`'s flags.
#[derive(clap::Args, Debug)]
pub struct PlayArgs {
    /// The graph file (`.world`).
    file: PathBuf,
    /// How frames are drawn: truecolor half blocks, the kitty graphics
    /// protocol (kitty, WezTerm, Ghostty), or auto (kitty where detected).
    #[arg(long, default_value = "auto", value_parser = ["auto", "kitty", "blocks"])]
    graphics: String,
    #[command(flatten)]
    late: LateFlags,
    #[command(flatten)]
    live: LiveWorldFlags,
    #[command(flatten)]
    params: SetFlags,
    #[command(flatten)]
    seed: SeedFlag,
    #[command(flatten)]
    model: ModelFlags,
}

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

/// `wgraph play FILE`
pub fn play(args: &PlayArgs) -> Outcome {
    let label = args.file.display().to_string();
    let output = crate::outputs::front_end(args.live.out.as_deref(), args.live.sinks.keep_last);
    let options = SessionOptions {
        set: args.params.set.clone(),
        seed: args.seed.seed,
        output: output.clone(),
        provider: args.model.provider(),
        backend_kind: args.model.backend_kind(),
        watch: args.live.watch,
        rebuilds: true,
        ..crate::load::session_options(&args.file)
    };
    let session = crate::load::open_session(options, crate::load::model_cache(), |graph| {
        crate::outputs::note_skipped(&label, graph, &output, false);
        let fps = args.live.fps.unwrap_or(graph.settings.fps);
        wgraph_engine::settings::check_fps(fps).map_err(|e| format!("--fps: {e}"))?;
        let (on_late, degrade) =
            wgraph_session::late_policy(graph, args.late.on_late.as_deref(), &args.late.degrade)?;
        Ok(WorldConfig {
            on_late,
            degrade,
            fps: Some(fps),
            // `--fps` wins over the graph's; without it a reload re-paces.
            follow_graph_fps: args.live.fps.is_none(),
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
        graphics.draw(&mut buf, &frame, cols, rows.saturating_sub(1))?;
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
        let hash = frame_hash(&frame);
        if last_hash != Some(hash) {
            stats.distinct += 1;
            last_hash = Some(hash);
        }
    }
}
