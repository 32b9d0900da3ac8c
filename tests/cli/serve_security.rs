//! `wgraph serve` as an attacker meets it: hostile `Origin` and `Host`
//! headers, sockets without the world's token, terminal escapes in client
//! text, floods of bad messages, idle and slow sockets by the hundred, and a
//! world that dies. Every check drives a real HTTP or WebSocket client
//! against a real server on loopback; every server is killed at the end.

use super::*;
use serde_json::Value as Json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The token these tests give `--token`.
const TOKEN: &str = "wgraph-test-token-0123456789";

impl Served {
    /// A raw HTTP/1.1 GET with these headers; the status code and body.
    fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut request = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n");
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        s.write_all(request.as_bytes()).unwrap();
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        let code = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (code, body)
    }

    /// Opens world 0's socket with these extra headers and query.
    fn socket(
        &self,
        query: &str,
        headers: &[(&str, &str)],
    ) -> Result<tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>, u16> {
        use tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://{}/w/0/ws{query}", self.addr)
            .into_client_request()
            .unwrap();
        for (k, v) in headers {
            request.headers_mut().insert(
                tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                tungstenite::http::HeaderValue::from_str(v).unwrap(),
            );
        }
        match tungstenite::connect(request) {
            Ok((ws, _)) => Ok(ws),
            Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
            Err(e) => panic!("{e}"),
        }
    }

    /// Waits until the log says `what` (or panics after a minute).
    fn wait_for_log(&self, what: &str) -> String {
        let start = Instant::now();
        loop {
            let log = self.log();
            if log.contains(what) {
                return log;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no `{what}`: {log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Reads until the server closes the socket (true) or 20 s pass (false).
fn hung_up_on(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

fn with_token() -> String {
    format!("?token={TOKEN}")
}

/// A page on another site (or a rebinding name) cannot reach or drive the
/// world; the world's own page with its token can; without the token a
/// socket is refused, or only watches under `--public-view`.
#[test]
fn other_origins_other_hosts_and_tokenless_sockets_cannot_steer() {
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(dir.path(), &["examples/pan.world", "--token", TOKEN]);
    let addr = server.addr.clone();
    assert!(
        server
            .log()
            .contains(&format!("http://{addr}/?token={TOKEN}")),
        "the printed address carries the token: {}",
        server.log()
    );
    // DNS rebinding: the attacker's name as Host.
    let (code, body) = server.get("/", &[("Host", "evil.example:8080")]);
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("does not answer to host `evil.example:8080`"),
        "{body}"
    );
    let (code, body) = server.get("/", &[("Host", &addr)]);
    assert_eq!(code, 200);
    assert!(body.contains("<canvas"), "{body}");
    let (code, _) = server.get(
        "/",
        &[(
            "Host",
            &format!("localhost:{}", addr.split(':').nth(1).unwrap()),
        )],
    );
    assert_eq!(code, 200);
    // A hostile page's socket, even one that knows the token.
    let refused = server.socket(&with_token(), &[("Origin", "http://evil.example")]);
    assert_eq!(refused.err(), Some(403));
    assert_eq!(
        server.socket(&with_token(), &[("Origin", "null")]).err(),
        Some(403)
    );
    // No token, a wrong token.
    assert_eq!(server.socket("", &[]).err(), Some(401));
    assert_eq!(server.socket("?token=guess", &[]).err(), Some(401));
    // The world's own page with the token steers.
    let own = format!("http://{addr}");
    let mut player = server.socket(&with_token(), &[("Origin", &own)]).unwrap();
    let hello = next_json(&mut player);
    assert_eq!(hello["controller"], true, "{hello}");
    assert_eq!(hello["role"], "player", "{hello}");
    let log = server.log();
    assert!(log.contains("refused a socket of `pan`"), "{log}");
    drop(server);

    // --public-view: a tokenless socket watches and cannot steer;
    // --allow-origin lets a named studio page in.
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(
        dir.path(),
        &[
            "examples/pan.world",
            "--token",
            TOKEN,
            "--public-view",
            // One world for all: a tokenless socket watches it.
            "--shared",
            "--allow-origin",
            "https://studio.example",
        ],
    );
    let mut watcher = server.socket("", &[]).unwrap();
    let hello = next_json(&mut watcher);
    assert_eq!(hello["role"], "viewer", "{hello}");
    assert_eq!(hello["controller"], false, "{hello}");
    for msg in [
        r#"{"type":"take"}"#,
        r#"{"type":"keys","keys":["W"]}"#,
        r#"{"type":"set","node":"x","param":"text","text":"y"}"#,
    ] {
        watcher.send(tungstenite::Message::text(msg)).unwrap();
        let e = next_json(&mut watcher);
        assert_eq!(e["type"], "error", "{msg}: {e}");
        assert!(
            e["message"].as_str().unwrap().contains("may only watch"),
            "{e}"
        );
    }
    let mut studio = server
        .socket(&with_token(), &[("Origin", "https://studio.example")])
        .unwrap();
    assert_eq!(next_json(&mut studio)["role"], "player");
}

/// A non-loopback address refuses to start without tokens unless told to,
/// and warns either way.
#[test]
fn a_public_address_needs_tokens_or_an_explicit_flag() {
    let o = wgraph(&[
        "serve",
        "examples/pan.world",
        "--host",
        "0.0.0.0",
        "--port",
        "0",
        "--no-token",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("add --public"), "{}", stderr(&o));
    let o = wgraph(&["serve", "examples/pan.world", "--token", "short"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("at least 16 characters"),
        "{}",
        stderr(&o)
    );
    let o = wgraph(&["serve", "examples/pan.world", "--allow-origin", "*"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // With a token it starts, and warns.
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(dir.path(), &["examples/pan.world", "--host", "0.0.0.0"]);
    let log = server.log();
    assert!(log.contains("warning: serving on 0.0.0.0:"), "{log}");
    assert!(log.contains("?token="), "{log}");
}

/// Client text reaches the operator's terminal only as visible characters,
/// a flood of bad messages prints a handful of lines, and a prompt with
/// control characters is refused.
#[test]
fn client_text_cannot_drive_the_operators_terminal_or_flood_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(
        dir.path(),
        &["graphs/yume15.world", "--token", TOKEN, "--fps", "2"],
    );
    let mut ws = server.socket(&with_token(), &[]).unwrap();
    next_json(&mut ws);
    let hostile = "\u{1b}]0;pwned\u{7}\u{1b}[2J";
    let msgs = [
        serde_json::json!({ "type": hostile }).to_string(),
        serde_json::json!({ "type": "keys", "keys": [hostile] }).to_string(),
        serde_json::json!({ "type": "set", "node": "events", "param": "text", "text": hostile })
            .to_string(),
    ];
    for m in &msgs {
        ws.send(tungstenite::Message::text(m.as_str())).unwrap();
        assert_eq!(next_json(&mut ws)["type"], "error", "{m}");
    }
    // 2000 malformed messages.
    for i in 0..2000 {
        ws.send(tungstenite::Message::text(format!("{{not json {i}")))
            .unwrap();
    }
    // The socket still answers (its replies were read as they came).
    ws.send(tungstenite::Message::text(r#"{"type":"take"}"#))
        .unwrap();
    let start = Instant::now();
    loop {
        let j = next_json(&mut ws);
        if j["type"] == "role" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60));
    }
    let log = server.wait_for_log("unknown message type");
    assert!(
        !log.contains('\u{1b}'),
        "an escape reached the terminal: {log:?}"
    );
    assert!(
        !log.contains('\u{7}'),
        "a BEL reached the terminal: {log:?}"
    );
    assert!(log.contains("\u{241b}]0;pwned\u{2407}"), "{log}");
    let lines = log
        .lines()
        .filter(|l| l.contains("malformed message"))
        .count();
    assert!(
        (1..=10).contains(&lines),
        "{lines} lines for 2000 malformed messages"
    );
    assert!(
        !log.contains("reloaded"),
        "the hostile prompt was refused: {log}"
    );
}

/// Hundreds of idle sockets and slow headers neither exhaust the process
/// nor stop the world: connections over the caps are closed at once, slow
/// headers time out, and a player still gets in afterwards.
#[test]
fn idle_and_slow_sockets_are_capped_and_timed_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(
        dir.path(),
        &[
            "examples/pan.world",
            "--token",
            TOKEN,
            "--max-connections",
            "40",
            "--max-per-address",
            "20",
            "--header-timeout",
            "1",
        ],
    );
    // 300 idle sockets: at most 20 stay open.
    let idle: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(&server.addr).ok())
        .collect();
    let mut closed = 0;
    // Each socket ends: at once (over the cap) or after the header timeout.
    for mut s in idle {
        if hung_up_on(&mut s) {
            closed += 1;
        }
    }
    assert_eq!(closed, 300, "every idle socket was closed");
    // A kept-alive connection idle after its response ends too.
    let mut kept = TcpStream::connect(&server.addr).unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    kept.write_all(format!("GET /app.css HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).as_bytes())
        .unwrap();
    let mut first = [0u8; 12];
    kept.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    assert!(
        hung_up_on(&mut kept),
        "an idle kept-alive connection stayed open"
    );
    // Slowloris: a header that never ends, one byte every 50 ms (30 s in
    // all): the server hangs up long before.
    let mut slow = TcpStream::connect(&server.addr).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .unwrap();
    let hung_up = (0..600).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        slow.write_all(b"a").is_err()
    });
    assert!(hung_up, "a request whose headers never end was kept open");
    // The world is alive and a player gets in.
    let mut ws = server.socket(&with_token(), &[]).unwrap();
    assert_eq!(next_json(&mut ws)["type"], "hello");
    let frame = (0..200).find_map(|_| match ws.read().unwrap() {
        tungstenite::Message::Binary(b) => Some(b),
        _ => None,
    });
    assert!(frame.is_some_and(|b| b[0] == b'F'), "frames still come");
    let log = server.log();
    assert!(log.contains("connection limit reached"), "{log}");
    assert!(!log.contains("error"), "{log}");
}

/// A world that fails says so on its page, and the server stops with an
/// error instead of serving a dead world.
#[test]
fn a_failed_world_is_reported_on_the_page_and_in_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut server = Served::start(
        dir.path(),
        &[
            "examples/world.world",
            // The one world of a shared server: when it fails, the server stops.
            "--shared",
            "--token",
            TOKEN,
            "--out",
            out.to_str().unwrap(),
            "--fps",
            "4",
        ],
    );
    let mut ws = server.socket(&with_token(), &[]).unwrap();
    assert_eq!(next_json(&mut ws)["failed"], Json::Null);
    while !matches!(ws.read().unwrap(), tungstenite::Message::Binary(_)) {}
    // The depth dump's directory becomes a file: its next write fails.
    let depth = out.join("depth");
    let start = Instant::now();
    while !depth.is_file() {
        let _ = std::fs::remove_dir_all(&depth);
        let _ = std::fs::write(&depth, b"in the way");
        assert!(start.elapsed() < Duration::from_secs(60));
    }
    let mut failed = None;
    while failed.is_none() {
        let j = match ws.read() {
            Ok(tungstenite::Message::Text(t)) => serde_json::from_str::<Json>(t.as_str()).unwrap(),
            Ok(_) => continue,
            Err(e) => panic!("the socket closed before the page was told: {e}"),
        };
        if j["type"] == "failed" {
            failed = j["message"].as_str().map(String::from);
        }
        assert!(start.elapsed() < Duration::from_secs(60));
    }
    let failed = failed.expect("the page was told the world failed");
    assert!(failed.contains("depth"), "{failed}");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the server kept serving a dead world: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(3), "{}", server.log());
    assert!(
        server.log().contains("no world is running"),
        "{}",
        server.log()
    );
}

/// A viewer that connects and sends no keys is not a key change: the
/// summary says there is no latency to report, and `--metrics` has no
/// figures (not zeros).
#[test]
fn a_viewer_that_sends_no_keys_measures_no_latency() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("metrics.json");
    let mut server = Served::start(
        dir.path(),
        &[
            "examples/pan.world",
            "--token",
            TOKEN,
            // Slow ticks: the viewer arrives while the first frame is the
            // newest, as with a big model's slow first tick.
            "--fps",
            "1",
            "--metrics",
            metrics.to_str().unwrap(),
        ],
    );
    let mut ws = server.socket(&with_token(), &[]).unwrap();
    assert_eq!(next_json(&mut ws)["controller"], true);
    let mut frames = 0;
    while frames < 2 {
        if let tungstenite::Message::Binary(_) = ws.read().unwrap() {
            frames += 1;
        }
    }
    Command::new("kill")
        .args(["-INT", &server.child.id().to_string()])
        .status()
        .unwrap();
    let start = Instant::now();
    while server.child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "serve did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = server.log();
    assert!(
        log.contains("pan: ") && log.contains("no key changes, so no key→frame latency"),
        "{log}"
    );
    let m: Json = serde_json::from_str(&std::fs::read_to_string(&metrics).unwrap()).unwrap();
    assert_eq!(m["worlds"][0]["latency_samples"], 0, "{m}");
    assert_eq!(m["worlds"][0]["latency_p50_ms"], Json::Null, "{m}");
}
