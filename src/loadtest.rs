//! `wgraph loadtest URL --players N --seconds S`: N scripted players on a
//! running `wgraph serve`, each on a WebSocket of its own (so, in the
//! default per-player mode, each in a world of its own).
//!
//! The URL is the one `serve` prints (`http://HOST:PORT/?token=T` or
//! `http://HOST:PORT/w/N?token=T`; `ws://` is taken too); the socket address
//! `ws://HOST:PORT/w/N/ws?token=T` is derived from it. Only loopback hosts
//! are allowed unless `--allow-remote` is given.
//!
//! Each player is one thread with a blocking tungstenite client: it waits for
//! the server's `hello` (or `full`/`error`), then alternates holding W and
//! holding nothing every `--keys-every` milliseconds until `--seconds` have
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
//! It prints a table per player and a summary, and `--json FILE` writes the
//! same. Exit 0 when every player got frames; 3 when any player was refused
//! (`full`), could not connect, or got no frame; 2 for usage errors.

use crate::Outcome;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tungstenite::Message;

/// `wgraph loadtest`'s arguments.
#[derive(clap::Args, Debug)]
pub struct LoadtestArgs {
    /// The address `wgraph serve` printed: `http://HOST:PORT/?token=T` or
    /// `http://HOST:PORT/w/N?token=T`.
    url: String,
    /// Players, each on a socket (a world) of their own (1 to 1000).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1000))]
    players: u32,
    /// How long the players play, in seconds (1 to 3600); then they leave.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=3600))]
    seconds: u32,
    /// Milliseconds between key changes (W held, then nothing, in turn;
    /// 10 to 60000). Key→frame latency is the time from sending a change to
    /// the first frame with a tick greater than the last tick seen when it
    /// was sent: the wait for the next tick's frame, not a check that the
    /// key took effect in it.
    #[arg(long, value_name = "MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    keys_every: u64,
    /// Write the per-player figures and the summary as JSON.
    #[arg(long, value_name = "FILE.json")]
    json: Option<PathBuf>,
    /// Allow a host that is not loopback (a load test sends its traffic
    /// only to this machine unless told otherwise).
    #[arg(long)]
    allow_remote: bool,
}

/// Where the players connect: the socket's address and the WebSocket URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// `HOST:PORT` as written in the URL (IPv6 in brackets).
    authority: String,
    /// The host without brackets.
    host: String,
    port: u16,
    /// `ws://HOST:PORT/w/N/ws?token=T`.
    ws_url: String,
}

/// Derives the WebSocket URL from the address `serve` printed.
fn parse_url(url: &str) -> Result<Target, String> {
    let url = url.trim();
    let rest = ["http://", "ws://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme))
        .ok_or_else(|| {
            if url.starts_with("https://") || url.starts_with("wss://") {
                "TLS is not supported: `wgraph serve` speaks plain http".to_string()
            } else {
                "expected the address `wgraph serve` printed, e.g. http://127.0.0.1:8080/?token=…"
                    .to_string()
            }
        })?;
    let fragment_free = rest.split_once('#').map_or(rest, |(r, _)| r);
    let (before_query, query) = match fragment_free.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (fragment_free, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(i) => (&before_query[..i], &before_query[i..]),
        None => (before_query, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("no host in `{url}`"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, p) = v6
            .split_once(']')
            .ok_or_else(|| format!("unclosed `[` in `{authority}`"))?;
        (h, p.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("no host in `{url}`"));
    }
    let port = match port {
        None | Some("") => 80,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("bad port `{p}` in `{url}`"))?,
    };
    // `/` or nothing is the first world; `/w/N` (with or without a trailing
    // `/` or `/ws`) is world N.
    let trimmed = path.trim_end_matches('/');
    let world = if trimmed.is_empty() {
        0
    } else {
        let n = trimmed
            .strip_prefix("/w/")
            .map(|n| n.strip_suffix("/ws").unwrap_or(n))
            .ok_or_else(|| {
                format!(
                    "expected the path `/` or `/w/N` (as `wgraph serve` prints it), not `{path}`"
                )
            })?;
        n.parse::<u32>()
            .map_err(|_| format!("bad world number `{n}` in `{url}`"))?
    };
    let token = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("token="));
    if let Some(t) = token
        && !t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b))
    {
        return Err("the token has characters a URL cannot carry unescaped".into());
    }
    let query = token.map(|t| format!("?token={t}")).unwrap_or_default();
    Ok(Target {
        authority: authority.to_string(),
        host: host.to_string(),
        port,
        ws_url: format!("ws://{authority}/w/{world}/ws{query}"),
    })
}

/// Whether `host` is this machine: a loopback address or `localhost`.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// How one player's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    /// Played to the end (frames or not: see `frames`).
    Played,
    /// The server was full (its message).
    Refused(String),
    /// No connection, or the server said `error`, or the socket broke.
    Failed(String),
}

/// One player's figures.
struct Player {
    index: u32,
    status: Status,
    session: Option<String>,
    frames: u64,
    /// Seconds from the first frame to the end of play.
    frame_span: f64,
    lost: u64,
    malformed: u64,
    first_tick: Option<u32>,
    last_tick: Option<u32>,
    key_changes: u64,
    /// Key changes never followed by a later tick's frame before the next change.
    unanswered: u64,
    latency_us: Histogram<u64>,
    /// The last `error` message the server sent after `hello`, if any.
    last_error: Option<String>,
}

impl Player {
    fn new(index: u32) -> Player {
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

    fn fps(&self) -> f64 {
        if self.frames > 1 && self.frame_span > 0.0 {
            (self.frames - 1) as f64 / self.frame_span
        } else {
            0.0
        }
    }

    /// Played, and got at least one frame.
    fn ok(&self) -> bool {
        self.status == Status::Played && self.frames > 0
    }

    fn status_word(&self) -> &'static str {
        match &self.status {
            Status::Played if self.frames > 0 => "ok",
            Status::Played => "no frames",
            Status::Refused(_) => "refused",
            Status::Failed(_) => "failed",
        }
    }

    fn message(&self) -> Option<&str> {
        match &self.status {
            Status::Refused(m) | Status::Failed(m) => Some(m),
            Status::Played => self.last_error.as_deref(),
        }
    }

    fn json(&self) -> Value {
        json!({
            "player": self.index,
            "status": self.status_word(),
            "message": self.message(),
            "session": self.session,
            "frames": self.frames,
            "fps": round(self.fps(), 2),
            "frames_lost": self.lost,
            "malformed": self.malformed,
            "first_tick": self.first_tick,
            "last_tick": self.last_tick,
            "key_changes": self.key_changes,
            "key_changes_unanswered": self.unanswered,
            "key_to_frame_ms": latency_json(&self.latency_us),
        })
    }
}

fn latency_histogram() -> Histogram<u64> {
    // 1 µs to 1 h, 3 significant digits; these bounds are valid.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap_or_else(|_| {
        Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant digits are valid"))
    })
}

fn ms(h: &Histogram<u64>, q: f64) -> Option<f64> {
    (!h.is_empty()).then(|| round(h.value_at_quantile(q) as f64 / 1000.0, 2))
}

fn latency_json(h: &Histogram<u64>) -> Value {
    json!({
        "samples": h.len(),
        "p50": ms(h, 0.5),
        "p99": ms(h, 0.99),
        "max": (!h.is_empty()).then(|| round(h.max() as f64 / 1000.0, 2)),
    })
}

fn round(x: f64, digits: i32) -> f64 {
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
fn play(
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

/// `wgraph loadtest`.
pub fn loadtest(args: &LoadtestArgs) -> Outcome {
    let target = match parse_url(&args.url) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: {e}", args.url);
            return Outcome::Usage;
        }
    };
    if !args.allow_remote && !is_loopback(&target.host) {
        eprintln!(
            "error: {} is not this machine: a load test sends traffic only to loopback \
             (127.0.0.1, ::1, localhost) unless --allow-remote is given",
            target.host
        );
        return Outcome::Usage;
    }
    let addrs: Vec<SocketAddr> = match (target.host.as_str(), target.port).to_socket_addrs() {
        Ok(a) => a
            .filter(|a| args.allow_remote || a.ip().is_loopback())
            .collect(),
        Err(e) => {
            eprintln!("error: cannot resolve {}: {e}", target.host);
            return Outcome::RuntimeFailure;
        }
    };
    if addrs.is_empty() {
        eprintln!("error: {} resolves to no usable address", target.host);
        return Outcome::RuntimeFailure;
    }
    eprintln!(
        "loadtest: {} player(s) for {} s on {} (keys change every {} ms)",
        args.players, args.seconds, target.authority, args.keys_every
    );
    let start = Instant::now();
    let end = start + Duration::from_secs(u64::from(args.seconds));
    let every = Duration::from_millis(args.keys_every);
    let mut players: Vec<Player> = std::thread::scope(|scope| {
        let handles: Vec<_> = (1..=args.players)
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
    let elapsed = start.elapsed().as_secs_f64();
    print_table(&players);
    let summary = summary(&players);
    println!();
    println!(
        "{} of {} player(s) got frames; {} refused, {} failed; {} frames, {:.1} fps per player (mean), \
         {} lost; key→frame p50 {} ms, p99 {} ms ({} samples; next tick's frame after the key)",
        summary["players_ok"],
        players.len(),
        summary["refused"],
        summary["failed"],
        summary["frames"],
        summary["fps_mean"].as_f64().unwrap_or(0.0),
        summary["frames_lost"],
        fmt_ms(summary["key_to_frame_ms"]["p50"].as_f64()),
        fmt_ms(summary["key_to_frame_ms"]["p99"].as_f64()),
        summary["key_to_frame_ms"]["samples"],
    );
    for p in players.iter().filter(|p| !p.ok()) {
        eprintln!(
            "loadtest: player {}: {}{}",
            p.index,
            p.status_word(),
            p.message().map(|m| format!(": {m}")).unwrap_or_default()
        );
    }
    if let Some(path) = &args.json {
        let report = json!({
            "url": redact(&args.url),
            "ws_url": redact(&target.ws_url),
            "players": args.players,
            "seconds": args.seconds,
            "elapsed_s": round(elapsed, 3),
            "keys_every_ms": args.keys_every,
            "key_to_frame": "from sending a key change to the first frame whose tick is greater than the last tick seen when it was sent",
            "per_player": players.iter().map(Player::json).collect::<Vec<_>>(),
            "summary": summary,
        });
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("error: cannot write {}: {e}", path.display());
            return Outcome::RuntimeFailure;
        }
    }
    if players.iter().all(Player::ok) {
        Outcome::Ok
    } else {
        Outcome::RuntimeFailure
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

fn print_table(players: &[Player]) {
    println!(
        "{:>6}  {:<10}  {:<18}  {:>7}  {:>6}  {:>5}  {:>5}  {:>8}  {:>8}",
        "player", "status", "session", "frames", "fps", "lost", "keys", "p50 ms", "p99 ms"
    );
    for p in players {
        let session = p.session.as_deref().unwrap_or("-");
        let session: String = if session.chars().count() > 18 {
            session.chars().take(17).chain(['…']).collect()
        } else {
            session.to_string()
        };
        println!(
            "{:>6}  {:<10}  {:<18}  {:>7}  {:>6.1}  {:>5}  {:>5}  {:>8}  {:>8}",
            p.index,
            p.status_word(),
            session,
            p.frames,
            p.fps(),
            p.lost,
            p.key_changes,
            fmt_ms(ms(&p.latency_us, 0.5)),
            fmt_ms(ms(&p.latency_us, 0.99)),
        );
    }
}

fn summary(players: &[Player]) -> Value {
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
    json!({
        "players_ok": ok.len(),
        "refused": players.iter().filter(|p| matches!(p.status, Status::Refused(_))).count(),
        "failed": players.iter().filter(|p| matches!(p.status, Status::Failed(_))).count(),
        "no_frames": players.iter().filter(|p| p.status == Status::Played && p.frames == 0).count(),
        "frames": players.iter().map(|p| p.frames).sum::<u64>(),
        "frames_lost": players.iter().map(|p| p.lost).sum::<u64>(),
        "fps_mean": round(mean, 2),
        "fps_min": if fps.is_empty() { Value::Null } else { json!(round(min, 2)) },
        "key_to_frame_ms": latency_json(&all),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_as_serve_prints_them() {
        let t = parse_url("http://127.0.0.1:8080/?token=abc").unwrap();
        assert_eq!(t.ws_url, "ws://127.0.0.1:8080/w/0/ws?token=abc");
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 8080));
        let t = parse_url("http://127.0.0.1:9/w/2?token=x-y").unwrap();
        assert_eq!(t.ws_url, "ws://127.0.0.1:9/w/2/ws?token=x-y");
        let t = parse_url("http://[::1]:81/").unwrap();
        assert_eq!(
            (t.host.as_str(), t.ws_url.as_str()),
            ("::1", "ws://[::1]:81/w/0/ws")
        );
        assert!(is_loopback("::1") && is_loopback("localhost") && is_loopback("127.0.0.2"));
        assert!(!is_loopback("10.1.2.3") && !is_loopback("example.com"));
        for bad in [
            "",
            "ftp://x/",
            "http://",
            "http://h:0/",
            "http://h:x/",
            "http://h/foo",
            "http://h/w/x",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
