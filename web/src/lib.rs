//! wgraph's browser front end: live worlds served over HTTP and WebSocket.
//!
//! The main types:
//!
//! - [`Bridge`] — sits on a [`World`](wgraph_engine::world::World)'s tick
//!   thread as its observer: each displayed frame becomes an RGB message in
//!   a `watch` channel (it holds only the newest frame, so a slow viewer
//!   skips frames instead of stalling anything), each tick, reload, error
//!   and stats event becomes a JSON message on a bounded `broadcast`
//!   channel (a lagging viewer skips messages).
//! - [`WebWorld`] — the server's side of one world: those channels, the
//!   world's [`WorldHandle`] (keys, parameter changes), the prompts a page
//!   may edit, who controls the world, and the action-to-frame latency.
//! - [`serve`] — an axum server (tokio): `/` is the world's page (or, with
//!   several worlds, an index linking `/w/N`), `/w/N/ws` its WebSocket.
//!   Each socket is split into a reader task (keys, prompt edits, "take
//!   control"; messages are capped at [`MAX_MESSAGE`] bytes, malformed ones
//!   answered with an error and logged) and a writer task (frames, events).
//!   One viewer controls a world at a time; the others watch.
//! - [`Access`] (module `access`) — who may reach the server (`Host`), which
//!   pages may open a socket (`Origin`), and the world's [`Token`] that a
//!   socket must show to steer. [`Limits`] (module `listener`) — connection
//!   caps and the header timeout of the accept loop. [`ViewerLog`] (module
//!   `log`) — viewer mistakes for the operator's terminal, sanitised and
//!   rate-limited.
//! - [`WorldStatus`] — running or failed: a world that fails is reported to
//!   every page, and when no world is left running the server stops (so the
//!   program exits with an error instead of serving a dead world).
//!
//! - Serving many players (`wgraph serve` as a library): [`host`]
//!   (`ServeOptions`, `serve_files`: a shared world, or one world per player
//!   opened on demand), [`worlds`] (`Worlds`, the registry of world threads,
//!   and its `Reaper`), [`plan`] (the memory plan and `--memory` as a bound
//!   on worlds), [`store`] (`SessionStore`: idle worlds kept on disk and
//!   brought back, owner leases between replicas, the sweep bounding it).
//!
//! The page (HTML, JS, CSS in `assets/`) is embedded in the binary.
//!
//! Wire format. Server → page, binary: `b'F'`, tick (u32 LE), width (u16
//! LE), height (u16 LE), then `width × height × 3` RGB bytes. Server → page,
//! text: JSON objects with a `type` (`hello`, `role`, `tick`, `hud`,
//! `reload`, `reload_failed`, `error`, `failed`). Page → server, text: `{"type":
//! "keys", "keys": ["W", "Left"]}`, `{"type": "set", "node": …, "param": …,
//! "text": …}`, `{"type": "take"}`.

mod access;
pub mod host;
mod listener;
mod log;
mod metrics;
pub mod plan;
mod server;
mod sessions;
pub mod store;
pub mod worlds;

pub use access::{
    Access, MIN_TOKEN_LEN, Refusal, Role, Token, TokenError, is_public, parse_origin, same_secret,
};
pub use listener::Limits;
pub use log::{Log, ViewerLog, visible};
pub use server::{MAX_MESSAGE, ServeConfig, serve};
pub use sessions::{OpenWorld, ReopenWorld, ServedGraph, SessionLimits};

use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{broadcast, watch};
use wgraph_engine::frame::RgbFrame;
use wgraph_engine::metrics::Timings;
use wgraph_engine::value::Actions;
use wgraph_engine::world::{WorldEvent, WorldHandle};

/// A text parameter a page may edit live (a style prompt, a caption).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Prompt {
    pub node: String,
    pub param: String,
    /// The text when the world started.
    pub value: String,
}

/// The newest frame, encoded for the wire.
#[derive(Debug)]
pub struct FrameMsg {
    pub tick: u64,
    /// The binary message (header + RGB).
    pub bytes: Vec<u8>,
    /// When the key change this frame first reflects was made.
    pub input_at: Option<Instant>,
}

/// Whether a world still runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorldStatus {
    Running,
    /// The world stopped on an error (the message, made [`visible`]).
    Failed(Arc<str>),
}

/// The server's side of one world (see the crate docs).
pub struct WebWorld {
    pub name: String,
    pub handle: WorldHandle,
    pub prompts: Vec<Prompt>,
    /// The secret a socket shows to steer this world.
    pub token: Token,
    status: watch::Receiver<WorldStatus>,
    frames: watch::Receiver<Option<Arc<FrameMsg>>>,
    events: broadcast::Sender<Arc<str>>,
    /// The client id that controls the world (0: nobody).
    controller: AtomicU64,
    /// Key change → frame handed to the controlling viewer.
    latency: Arc<Mutex<Timings>>,
    /// Set when the server stops the world because its player is gone
    /// (the world thread then keeps its state in the session store).
    evicted: Arc<std::sync::atomic::AtomicBool>,
    /// Ticks run and late, for `/metrics`.
    counts: Arc<TickCounts>,
}

/// A world's tick counters (the bridge counts, `/metrics` reads).
#[derive(Debug, Default)]
pub struct TickCounts {
    pub ticks: AtomicU64,
    pub late: AtomicU64,
}

/// Bytes of the binary frame header.
pub const FRAME_HEADER: usize = 9;

/// Encodes a frame message.
pub fn encode_frame(tick: u64, frame: &RgbFrame) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(FRAME_HEADER + frame.rgb.len());
    bytes.push(b'F');
    bytes.extend_from_slice(&(tick as u32).to_le_bytes());
    bytes.extend_from_slice(&(frame.width as u16).to_le_bytes());
    bytes.extend_from_slice(&(frame.height as u16).to_le_bytes());
    bytes.extend_from_slice(&frame.rgb);
    bytes
}

/// Drops ANSI colour codes (diagnostics are rendered for a terminal).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The world-thread side: turns [`WorldEvent`]s into messages.
pub struct Bridge {
    evicted: Arc<std::sync::atomic::AtomicBool>,
    counts: Arc<TickCounts>,
    status: watch::Sender<WorldStatus>,
    frames: watch::Sender<Option<Arc<FrameMsg>>>,
    events: broadcast::Sender<Arc<str>>,
    latency: Arc<Mutex<Timings>>,
    late_ticks: u64,
}

/// A bridge and the web world it feeds. `handle` is the world's; the world
/// starts idle (no keys held) until a viewer takes control.
pub fn channel(
    name: &str,
    handle: WorldHandle,
    prompts: Vec<Prompt>,
    token: Token,
) -> (Bridge, WebWorld) {
    let (status_tx, status_rx) = watch::channel(WorldStatus::Running);
    let (frames_tx, frames_rx) = watch::channel(None);
    let (events, _) = broadcast::channel(64);
    let latency = Arc::new(Mutex::new(Timings::default()));
    let evicted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let counts = Arc::new(TickCounts::default());
    handle.hold_no_keys();
    (
        Bridge {
            evicted: Arc::clone(&evicted),
            counts: Arc::clone(&counts),
            status: status_tx,
            frames: frames_tx,
            events: events.clone(),
            latency: Arc::clone(&latency),
            late_ticks: 0,
        },
        WebWorld {
            name: name.to_string(),
            handle,
            prompts,
            token,
            status: status_rx,
            frames: frames_rx,
            events,
            controller: AtomicU64::new(0),
            latency,
            evicted,
            counts,
        },
    )
}

impl Bridge {
    /// True when the world was stopped because its player is gone (not by
    /// the server stopping, not by an error): its state is worth keeping.
    pub fn evicted(&self) -> bool {
        self.evicted.load(Ordering::SeqCst)
    }

    /// The world stopped on `error`: every page is told, and new sockets
    /// hear it in their `hello`.
    pub fn failed(&mut self, error: &str) {
        let message: Arc<str> = Arc::from(visible(&strip_ansi(error)).as_ref());
        self.status
            .send_replace(WorldStatus::Failed(Arc::clone(&message)));
        let _ = self.events.send(Arc::from(
            json!({ "type": "failed", "message": &*message }).to_string(),
        ));
    }

    /// The world's observer: call with every event.
    pub fn on_event(&mut self, event: &WorldEvent) {
        let text = match event {
            WorldEvent::Frame {
                tick,
                image,
                range,
                input_at,
            } => {
                if let Ok(frame) = RgbFrame::from_tensor(image, *range) {
                    self.frames.send_replace(Some(Arc::new(FrameMsg {
                        tick: *tick,
                        bytes: encode_frame(*tick, &frame),
                        input_at: *input_at,
                    })));
                }
                return;
            }
            WorldEvent::Tick {
                tick,
                latency,
                late,
                ..
            } => {
                self.late_ticks += u64::from(*late);
                self.counts.ticks.fetch_add(1, Ordering::Relaxed);
                self.counts
                    .late
                    .fetch_add(u64::from(*late), Ordering::Relaxed);
                json!({
                    "type": "tick",
                    "tick": tick,
                    "ms": latency.as_secs_f64() * 1e3,
                    "late_ticks": self.late_ticks,
                })
            }
            WorldEvent::Reloaded(info) => json!({ "type": "reload", "line": info.line() }),
            WorldEvent::ReloadFailed { cause, message } => json!({
                "type": "reload_failed",
                "cause": cause,
                "message": strip_ansi(message),
            }),
            WorldEvent::Stats(report) => {
                let latency = self.latency.lock().unwrap_or_else(|p| p.into_inner());
                // No key changes yet: no figures (a 0 would read as a measurement).
                let ms =
                    |q: f64| (latency.count() > 0).then(|| latency.quantile(q).as_secs_f64() * 1e3);
                json!({
                    "type": "hud",
                    "tick_p50_ms": report.tick.p50_ms,
                    "latency_p50_ms": ms(0.5),
                    "latency_p99_ms": ms(0.99),
                    "latency_count": latency.count(),
                    "late_ticks": self.late_ticks,
                    "nodes": report.nodes.iter().map(|n| json!({
                        "name": n.name,
                        "kind": n.kind,
                        "mean_ms": n.stats.mean_ms,
                    })).collect::<Vec<_>>(),
                })
            }
            _ => return,
        };
        // No receiver is fine: nobody is watching.
        let _ = self.events.send(Arc::from(text.to_string()));
    }
}

/// A view of a world's action-to-frame latency that outlives the server.
#[derive(Clone)]
pub struct LatencyProbe(Arc<Mutex<Timings>>);

impl LatencyProbe {
    /// (p50 ms, p99 ms, samples) so far.
    pub fn summary(&self) -> (f64, f64, u64) {
        let t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let ms = |q: f64| t.quantile(q).as_secs_f64() * 1e3;
        (ms(0.5), ms(0.99), t.count())
    }
}

impl WebWorld {
    /// Stops the world because its player is gone (see [`Bridge::evicted`]).
    pub fn evict(&self) {
        self.evicted.store(true, Ordering::SeqCst);
        self.handle.stop();
    }

    /// Ticks run and late so far.
    pub fn counts(&self) -> &TickCounts {
        &self.counts
    }

    /// The world's status now.
    pub fn status(&self) -> WorldStatus {
        self.status.borrow().clone()
    }

    /// Waits until the world no longer runs (failed, or its thread ended).
    pub async fn stopped(&self) {
        let mut status = self.status.clone();
        let _ = status.wait_for(|s| *s != WorldStatus::Running).await;
    }

    /// The action-to-frame latency, measured when frames are handed to the
    /// controlling viewer's socket.
    pub fn latency_probe(&self) -> LatencyProbe {
        LatencyProbe(Arc::clone(&self.latency))
    }

    fn take_control(&self, client: u64) {
        self.controller.store(client, Ordering::SeqCst);
    }

    fn controls(&self, client: u64) -> bool {
        self.controller.load(Ordering::SeqCst) == client
    }

    /// Makes `client` the controller if nobody is; true when it is now.
    fn claim_if_free(&self, client: u64) -> bool {
        self.controller
            .compare_exchange(0, client, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
            || self.controls(client)
    }

    /// `client` left: if it controlled the world, release the keys.
    fn release(&self, client: u64) {
        if self
            .controller
            .compare_exchange(client, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            self.handle.set_keys(Some(Actions::none()));
        }
    }

    fn record_latency(&self, input_at: Instant) {
        self.latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(input_at.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_encode_with_a_header_and_ansi_is_stripped() {
        let f = RgbFrame {
            width: 2,
            height: 1,
            rgb: vec![1, 2, 3, 4, 5, 6],
        };
        let b = encode_frame(7, &f);
        assert_eq!(&b[..FRAME_HEADER], &[b'F', 7, 0, 0, 0, 2, 0, 1, 0]);
        assert_eq!(&b[FRAME_HEADER..], &[1, 2, 3, 4, 5, 6]);
        assert_eq!(strip_ansi("\u{1b}[31merror\u{1b}[0m: x"), "error: x");
    }
}
