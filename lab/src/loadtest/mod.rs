//! `wgraph loadtest URL --players N --seconds S`: N scripted players on a
//! running `wgraph serve`, each on a WebSocket of its own (so, in the
//! default per-player mode, each in a world of its own).
//!
//! Main types: [`LoadtestOptions`] in, [`LoadtestReport`] (a
//! [`PlayerReport`] per player, a [`Summary`] folded from them) out, from
//! [`loadtest`].
//!
//! The URL is the one `serve` prints (`http://HOST:PORT/?token=T` or
//! `http://HOST:PORT/w/N?token=T`; `ws://` is taken too); the socket address
//! `ws://HOST:PORT/w/N/ws?token=T` is derived from it. Only loopback hosts
//! are allowed unless `allow_remote` is set.
//!
//! Each player is one thread with a blocking tungstenite client: it waits for
//! the server's `hello` (or `full`/`error`), then alternates holding W and
//! holding nothing every `keys_every_ms` milliseconds until `seconds` have
//! passed, and counts what comes back:
//! - frames (binary `F`, tick u32 LE, width u16 LE, height u16 LE, RGB) and
//!   their rate over the time from the first frame to the end;
//! - frames lost: gaps in the tick numbers of consecutive frames (the server
//!   sends each viewer only the newest frame, so a slow reader loses some);
//! - key→frame latency: from sending a key change to the first frame whose
//!   tick is greater than the last tick seen when the key was sent. This is
//!   the wait for the next tick's frame, not proof that the key took effect
//!   in it (the server's own HUD and `/metrics` measure that); p50/p99 per
//!   player from an HDR histogram (µs, shown in ms).
//!
//! The report gives a table per player and a summary ([`LoadtestReport::text`])
//! and serialises as `--json` writes it. Every player got frames when
//! [`LoadtestReport::all_ok`].

mod play;
mod url;

use crate::LabError;
use hdrhistogram::Histogram;
use play::{Player, Status, latency_histogram, ms, play, round};
use serde::Serialize;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};
use url::{is_loopback, parse_url};

/// What `wgraph loadtest` does.
#[derive(Debug, Clone)]
pub struct LoadtestOptions {
    /// The address `wgraph serve` printed.
    pub url: String,
    /// Players, each on a socket of their own.
    pub players: u32,
    /// How long the players play, in seconds.
    pub seconds: u32,
    /// Milliseconds between key changes (W held, then nothing, in turn).
    pub keys_every_ms: u64,
    /// Allow a host that is not loopback.
    pub allow_remote: bool,
    /// Where the progress line goes (the binary prints it on stderr).
    pub progress: Option<fn(&str)>,
}

/// Key→frame latencies, ms.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    /// Latencies measured.
    pub samples: u64,
    /// Median (none without samples).
    pub p50: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Largest.
    pub max: Option<f64>,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        Latency {
            samples: h.len(),
            p50: ms(h, 0.5),
            p99: ms(h, 0.99),
            max: (!h.is_empty()).then(|| round(h.max() as f64 / 1000.0, 2)),
        }
    }
}

/// One player's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlayerReport {
    /// The player's number, from 1.
    pub player: u32,
    /// `ok`, `no frames`, `refused` or `failed`.
    pub status: String,
    /// Why it was refused or failed, or the server's last error.
    pub message: Option<String>,
    /// The session id the server gave.
    pub session: Option<String>,
    /// Frames received.
    pub frames: u64,
    /// Frames per second from the first frame to the end.
    pub fps: f64,
    /// Ticks skipped between consecutive frames.
    pub frames_lost: u64,
    /// Binary messages that were not frames.
    pub malformed: u64,
    /// The first frame's tick.
    pub first_tick: Option<u32>,
    /// The last (highest) frame tick.
    pub last_tick: Option<u32>,
    /// Key changes sent.
    pub key_changes: u64,
    /// Key changes never followed by a later tick's frame before the next change.
    pub key_changes_unanswered: u64,
    /// Key→frame latency.
    pub key_to_frame_ms: Latency,
}

impl PlayerReport {
    /// Played, and got at least one frame.
    pub fn ok(&self) -> bool {
        self.status == "ok"
    }
}

/// Every player's figures folded together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Players that played and got frames.
    pub players_ok: usize,
    /// Players the server refused (full).
    pub refused: usize,
    /// Players that could not connect or whose socket broke.
    pub failed: usize,
    /// Players that played but got no frame.
    pub no_frames: usize,
    /// Frames, all players.
    pub frames: u64,
    /// Frames lost, all players.
    pub frames_lost: u64,
    /// Mean fps of the players that got frames.
    pub fps_mean: f64,
    /// The slowest of them (none when no player got frames).
    pub fps_min: Option<f64>,
    /// Every player's key→frame latencies together.
    pub key_to_frame_ms: Latency,
}

/// What `wgraph loadtest` measured (its `--json` document).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadtestReport {
    /// The address given, its token hidden.
    pub url: String,
    /// The socket address, its token hidden.
    pub ws_url: String,
    /// Players.
    pub players: u32,
    /// Seconds of play.
    pub seconds: u32,
    /// Seconds the test took.
    pub elapsed_s: f64,
    /// Milliseconds between key changes.
    pub keys_every_ms: u64,
    /// What key→frame measures.
    pub key_to_frame: String,
    /// Every player, in order.
    pub per_player: Vec<PlayerReport>,
    /// The players folded together.
    pub summary: Summary,
}

/// Runs `options.players` players against the server for `options.seconds`.
pub fn loadtest(options: &LoadtestOptions) -> Result<LoadtestReport, LabError> {
    let target =
        parse_url(&options.url).map_err(|e| LabError::Usage(format!("{}: {e}", options.url)))?;
    if !options.allow_remote && !is_loopback(&target.host) {
        return Err(LabError::Usage(format!(
            "{} is not this machine: a load test sends traffic only to loopback \
             (127.0.0.1, ::1, localhost) unless --allow-remote is given",
            target.host
        )));
    }
    let addrs: Vec<SocketAddr> = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|e| LabError::Runtime(format!("cannot resolve {}: {e}", target.host)))?
        .filter(|a| options.allow_remote || a.ip().is_loopback())
        .collect();
    if addrs.is_empty() {
        return Err(LabError::Runtime(format!(
            "{} resolves to no usable address",
            target.host
        )));
    }
    if let Some(progress) = options.progress {
        progress(&format!(
            "loadtest: {} player(s) for {} s on {} (keys change every {} ms)",
            options.players, options.seconds, target.authority, options.keys_every_ms
        ));
    }
    let start = Instant::now();
    let end = start + Duration::from_secs(u64::from(options.seconds));
    let every = Duration::from_millis(options.keys_every_ms);
    let mut players: Vec<Player> = std::thread::scope(|scope| {
        let handles: Vec<_> = (1..=options.players)
            .map(|i| {
                let (addrs, target) = (&addrs, &target);
                let handle = std::thread::Builder::new()
                    .name(format!("player {i}"))
                    .stack_size(256 * 1024)
                    .spawn_scoped(scope, move || play(i, addrs, target, end, every));
                (i, handle)
            })
            .collect();
        handles
            .into_iter()
            .map(|(i, h)| match h {
                Ok(h) => h.join().unwrap_or_else(|_| {
                    let mut p = Player::new(i);
                    p.status = Status::Failed("the player's thread panicked".into());
                    p
                }),
                Err(e) => {
                    let mut p = Player::new(i);
                    p.status = Status::Failed(format!("cannot start a thread: {e}"));
                    p
                }
            })
            .collect()
    });
    players.sort_by_key(|p| p.index);
    Ok(LoadtestReport {
        url: redact(&options.url),
        ws_url: redact(&target.ws_url),
        players: options.players,
        seconds: options.seconds,
        elapsed_s: round(start.elapsed().as_secs_f64(), 3),
        keys_every_ms: options.keys_every_ms,
        key_to_frame: "from sending a key change to the first frame whose tick is greater than the last tick seen when it was sent".into(),
        per_player: players.iter().map(Player::report).collect(),
        summary: summary(&players),
    })
}

impl LoadtestReport {
    /// Every player played and got frames.
    pub fn all_ok(&self) -> bool {
        self.per_player.iter().all(PlayerReport::ok)
    }

    /// One line per player that did not get frames: why.
    pub fn failures(&self) -> Vec<String> {
        self.per_player
            .iter()
            .filter(|p| !p.ok())
            .map(|p| {
                format!(
                    "loadtest: player {}: {}{}",
                    p.player,
                    p.status,
                    p.message
                        .as_ref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                )
            })
            .collect()
    }

    /// The table of players, a blank line and the summary line.
    pub fn text(&self) -> String {
        let mut text = format!(
            "{:>6}  {:<10}  {:<18}  {:>7}  {:>6}  {:>5}  {:>5}  {:>8}  {:>8}\n",
            "player", "status", "session", "frames", "fps", "lost", "keys", "p50 ms", "p99 ms"
        );
        for p in &self.per_player {
            let session = p.session.as_deref().unwrap_or("-");
            let session: String = if session.chars().count() > 18 {
                session.chars().take(17).chain(['…']).collect()
            } else {
                session.to_string()
            };
            text += &format!(
                "{:>6}  {:<10}  {:<18}  {:>7}  {:>6.1}  {:>5}  {:>5}  {:>8}  {:>8}\n",
                p.player,
                p.status,
                session,
                p.frames,
                p.fps,
                p.frames_lost,
                p.key_changes,
                fmt_ms(p.key_to_frame_ms.p50),
                fmt_ms(p.key_to_frame_ms.p99),
            );
        }
        let s = &self.summary;
        text + &format!(
            "\n{} of {} player(s) got frames; {} refused, {} failed; {} frames, {:.1} fps per player (mean), \
             {} lost; key→frame p50 {} ms, p99 {} ms ({} samples; next tick's frame after the key)\n",
            s.players_ok,
            self.per_player.len(),
            s.refused,
            s.failed,
            s.frames,
            s.fps_mean,
            s.frames_lost,
            fmt_ms(s.key_to_frame_ms.p50),
            fmt_ms(s.key_to_frame_ms.p99),
            s.key_to_frame_ms.samples,
        )
    }
}

/// A URL with its token hidden (reports get shared).
fn redact(url: &str) -> String {
    match url.split_once("token=") {
        Some((base, _)) => format!("{base}token=…"),
        None => url.to_string(),
    }
}

fn fmt_ms(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |v| format!("{v:.1}"))
}

/// Folds every player's figures into the summary.
fn summary(players: &[Player]) -> Summary {
    let mut all = latency_histogram();
    for p in players {
        let _ = all.add(&p.latency_us);
    }
    let ok: Vec<&Player> = players.iter().filter(|p| p.ok()).collect();
    let fps: Vec<f64> = ok.iter().map(|p| p.fps()).collect();
    let mean = if fps.is_empty() {
        0.0
    } else {
        fps.iter().sum::<f64>() / fps.len() as f64
    };
    let min = fps.iter().copied().fold(f64::INFINITY, f64::min);
    Summary {
        players_ok: ok.len(),
        refused: players
            .iter()
            .filter(|p| matches!(p.status, Status::Refused(_)))
            .count(),
        failed: players
            .iter()
            .filter(|p| matches!(p.status, Status::Failed(_)))
            .count(),
        no_frames: players
            .iter()
            .filter(|p| p.status == Status::Played && p.frames == 0)
            .count(),
        frames: players.iter().map(|p| p.frames).sum(),
        frames_lost: players.iter().map(|p| p.lost).sum(),
        fps_mean: round(mean, 2),
        fps_min: (!fps.is_empty()).then(|| round(min, 2)),
        key_to_frame_ms: Latency::of(&all),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Players fold into the summary: refused, failed and frameless ones
    /// counted apart, fps over the players that got frames, latencies of
    /// every player together; the report passes only when all got frames.
    #[test]
    fn players_fold_into_the_summary() {
        let mut fast = Player::new(1);
        fast.frames = 11;
        fast.frame_span = 1.0;
        let _ = fast.latency_us.record(1_000);
        let mut slow = Player::new(2);
        slow.frames = 6;
        slow.frame_span = 1.0;
        slow.lost = 3;
        let _ = slow.latency_us.record(2_000);
        let empty = Player::new(3);
        let mut refused = Player::new(4);
        refused.status = Status::Refused("full".into());
        let players = [fast, slow, empty, refused];
        let s = summary(&players);
        assert_eq!(
            (s.players_ok, s.refused, s.failed, s.no_frames),
            (2, 1, 0, 1)
        );
        assert_eq!((s.frames, s.frames_lost), (17, 3));
        assert_eq!((s.fps_mean, s.fps_min), (7.5, Some(5.0)));
        assert_eq!(s.key_to_frame_ms.samples, 2);
        assert_eq!(s.key_to_frame_ms.p50, Some(1.0));
        assert_eq!(s.key_to_frame_ms.max, Some(2.0));
        let report = LoadtestReport {
            url: redact("http://127.0.0.1:1/?token=secret"),
            ws_url: String::new(),
            players: 4,
            seconds: 1,
            elapsed_s: 1.0,
            keys_every_ms: 500,
            key_to_frame: String::new(),
            per_player: players.iter().map(Player::report).collect(),
            summary: s,
        };
        assert!(!report.all_ok());
        assert_eq!(report.url, "http://127.0.0.1:1/?token=…");
        assert_eq!(
            report.failures(),
            [
                "loadtest: player 3: no frames",
                "loadtest: player 4: refused: full"
            ]
        );
        assert!(
            report
                .text()
                .contains("\n2 of 4 player(s) got frames; 1 refused, 0 failed; 17 frames, 7.5 fps")
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["per_player"][1]["frames_lost"], 3);
        assert!(json["summary"]["fps_min"].is_number());
        assert!(json["per_player"][2]["key_to_frame_ms"]["p50"].is_null());
    }
}
