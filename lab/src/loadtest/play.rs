//! One scripted player ([`play`]): connects, waits for `hello`, changes
//! keys on a timer and counts the frames that come back into a [`Player`].

use super::url::Target;
use super::{Latency, PlayerReport};
use hdrhistogram::Histogram;
use serde_json::Value;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use tungstenite::Message;

/// How one player's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Status {
    /// Played to the end (frames or not: see `frames`).
    Played,
    /// The server was full (its message).
    Refused(String),
    /// No connection, or the server said `error`, or the socket broke.
    Failed(String),
}

/// One player's figures.
pub(super) struct Player {
    pub(super) index: u32,
    pub(super) status: Status,
    pub(super) session: Option<String>,
    pub(super) frames: u64,
    /// Seconds from the first frame to the end of play.
    pub(super) frame_span: f64,
    pub(super) lost: u64,
    pub(super) malformed: u64,
    pub(super) first_tick: Option<u32>,
    pub(super) last_tick: Option<u32>,
    pub(super) key_changes: u64,
    /// Key changes never followed by a later tick's frame before the next change.
    pub(super) unanswered: u64,
    pub(super) latency_us: Histogram<u64>,
    /// The last `error` message the server sent after `hello`, if any.
    pub(super) last_error: Option<String>,
}

impl Player {
    pub(super) fn new(index: u32) -> Player {
        Player {
            index,
            status: Status::Played,
            session: None,
            frames: 0,
            frame_span: 0.0,
            lost: 0,
            malformed: 0,
            first_tick: None,
            last_tick: None,
            key_changes: 0,
            unanswered: 0,
            latency_us: latency_histogram(),
            last_error: None,
        }
    }

    pub(super) fn fps(&self) -> f64 {
        if self.frames > 1 && self.frame_span > 0.0 {
            (self.frames - 1) as f64 / self.frame_span
        } else {
            0.0
        }
    }

    /// Played, and got at least one frame.
    pub(super) fn ok(&self) -> bool {
        self.status == Status::Played && self.frames > 0
    }

    pub(super) fn status_word(&self) -> &'static str {
        match &self.status {
            Status::Played if self.frames > 0 => "ok",
            Status::Played => "no frames",
            Status::Refused(_) => "refused",
            Status::Failed(_) => "failed",
        }
    }

    pub(super) fn message(&self) -> Option<&str> {
        match &self.status {
            Status::Refused(m) | Status::Failed(m) => Some(m),
            Status::Played => self.last_error.as_deref(),
        }
    }

    pub(super) fn report(&self) -> PlayerReport {
        PlayerReport {
            player: self.index,
            status: self.status_word().into(),
            message: self.message().map(str::to_string),
            session: self.session.clone(),
            frames: self.frames,
            fps: round(self.fps(), 2),
            frames_lost: self.lost,
            malformed: self.malformed,
            first_tick: self.first_tick,
            last_tick: self.last_tick,
            key_changes: self.key_changes,
            key_changes_unanswered: self.unanswered,
            key_to_frame_ms: Latency::of(&self.latency_us),
        }
    }
}

pub(super) fn latency_histogram() -> Histogram<u64> {
    // 1 µs to 1 h, 3 significant digits; these bounds are valid.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap_or_else(|_| {
        Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant digits are valid"))
    })
}

pub(super) fn ms(h: &Histogram<u64>, q: f64) -> Option<f64> {
    (!h.is_empty()).then(|| round(h.value_at_quantile(q) as f64 / 1000.0, 2))
}

pub(super) fn round(x: f64, digits: i32) -> f64 {
    let k = 10f64.powi(digits);
    (x * k).round() / k
}

type Socket = tungstenite::WebSocket<TcpStream>;

/// Connects one player: TCP with a timeout, then the WebSocket handshake.
fn connect(addrs: &[SocketAddr], target: &Target) -> Result<Socket, String> {
    let mut last = String::from("no address");
    for addr in addrs {
        match TcpStream::connect_timeout(addr, Duration::from_secs(5)) {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .map_err(|e| e.to_string())?;
                stream
                    .set_write_timeout(Some(Duration::from_secs(10)))
                    .map_err(|e| e.to_string())?;
                return match tungstenite::client::client(target.ws_url.as_str(), stream) {
                    Ok((socket, _)) => Ok(socket),
                    Err(tungstenite::HandshakeError::Failure(e)) => {
                        Err(format!("WebSocket handshake with {addr}: {e}"))
                    }
                    Err(tungstenite::HandshakeError::Interrupted(_)) => {
                        Err(format!("WebSocket handshake with {addr}: timed out"))
                    }
                };
            }
            Err(e) => last = format!("cannot connect to {addr}: {e}"),
        }
    }
    Err(last)
}

/// A key change sent, waiting for a later tick's frame.
struct Pending {
    sent: Instant,
    /// The last tick seen when it was sent.
    after: Option<u32>,
}

/// One player, from connecting to `end`.
pub(super) fn play(
    index: u32,
    addrs: &[SocketAddr],
    target: &Target,
    end: Instant,
    every: Duration,
) -> Player {
    let mut p = Player::new(index);
    let mut ws = match connect(addrs, target) {
        Ok(ws) => ws,
        Err(e) => {
            p.status = Status::Failed(e);
            return p;
        }
    };
    // Short reads from here on, so keys go out on time and play ends on time.
    let _ = ws
        .get_mut()
        .set_read_timeout(Some(Duration::from_millis(20)));
    let mut hello = false;
    let mut keys_down = false;
    let mut next_keys = Instant::now();
    let mut pending: Option<Pending> = None;
    let mut first_frame: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if hello && now >= next_keys {
            keys_down = !keys_down;
            let keys = if keys_down {
                r#"{"type":"keys","keys":["W"]}"#
            } else {
                r#"{"type":"keys","keys":[]}"#
            };
            if let Err(e) = ws.send(Message::text(keys)) {
                p.status = Status::Failed(format!("sending keys: {e}"));
                break;
            }
            if pending.is_some() {
                p.unanswered += 1;
            }
            pending = Some(Pending {
                sent: Instant::now(),
                after: p.last_tick,
            });
            p.key_changes += 1;
            next_keys = now + every;
        }
        match ws.read() {
            Ok(Message::Binary(b)) => {
                let arrived = Instant::now();
                if b.len() < 9 || b[0] != b'F' {
                    p.malformed += 1;
                    continue;
                }
                let tick = u32::from_le_bytes([b[1], b[2], b[3], b[4]]);
                let (w, h) = (
                    u16::from_le_bytes([b[5], b[6]]) as usize,
                    u16::from_le_bytes([b[7], b[8]]) as usize,
                );
                if b.len() != 9 + w * h * 3 {
                    p.malformed += 1;
                    continue;
                }
                if let Some(last) = p.last_tick
                    && tick > last
                {
                    p.lost += u64::from(tick - last - 1);
                }
                p.frames += 1;
                first_frame.get_or_insert(arrived);
                p.first_tick.get_or_insert(tick);
                p.last_tick = Some(p.last_tick.map_or(tick, |l| l.max(tick)));
                if let Some(k) = &pending
                    && k.after.is_none_or(|after| tick > after)
                {
                    let us = arrived.duration_since(k.sent).as_micros();
                    let _ = p
                        .latency_us
                        .record(u64::try_from(us).unwrap_or(u64::MAX).max(1));
                    pending = None;
                }
            }
            Ok(Message::Text(t)) => {
                let Ok(j) = serde_json::from_str::<Value>(t.as_str()) else {
                    continue;
                };
                let message = j["message"].as_str().unwrap_or("").to_string();
                match j["type"].as_str() {
                    Some("hello") => {
                        hello = true;
                        next_keys = Instant::now();
                        p.session = j["session"]["id"].as_str().map(str::to_string);
                        if let Some(failed) = j["failed"].as_str() {
                            p.last_error = Some(format!("world failed: {failed}"));
                        }
                    }
                    Some("full") => {
                        p.status = Status::Refused(message);
                        break;
                    }
                    Some("unavailable" | "error") if !hello => {
                        p.status = Status::Failed(message);
                        break;
                    }
                    Some("error") => p.last_error = Some(message),
                    _ => {}
                }
            }
            Ok(Message::Close(_)) => {
                if !hello {
                    p.status = Status::Failed("the server closed the socket".into());
                }
                break;
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                if !hello {
                    p.status = Status::Failed("the server closed the socket".into());
                }
                break;
            }
            Err(e) => {
                p.status = Status::Failed(format!("socket: {e}"));
                break;
            }
        }
    }
    let stop = Instant::now().min(end);
    if let Some(first) = first_frame {
        p.frame_span = stop.saturating_duration_since(first).as_secs_f64();
    }
    if pending.is_some() {
        p.unanswered += 1;
    }
    // Leave politely; the server ends (or keeps) the world.
    let _ = ws.close(None);
    let _ = ws.flush();
    p
}
