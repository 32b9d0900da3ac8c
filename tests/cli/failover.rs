//! Beyond one machine: two `wgraph serve` replicas sharing a session store
//! (`--snapshot-every`) behind a real HAProxy (Debian's, with the cookie
//! affinity of `examples/deploy/haproxy.cfg`). Eight scripted players; one
//! replica is killed; its players come back through HAProxy to the other,
//! each to the same world, at most `--snapshot-every` ticks behind, and no
//! world runs twice. Everything on loopback; every process is killed at the
//! end, pass or fail.

use super::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tungstenite::client::IntoClientRequest;

const TOKEN: &str = "wgraph-failover-test-token";
const SNAPSHOT_EVERY: u64 = 2;

/// The page through HAProxy: the replica cookie it sets.
fn page_cookie(front: &str) -> Option<String> {
    let mut s = TcpStream::connect(front).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET /?token={TOKEN} HTTP/1.1\r\nHost: {front}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or(l.strip_prefix("Set-Cookie: "))
        })
        .and_then(|c| c.split(';').next())
        .map(str::to_string)
}

fn connect(front: &str, cookie: &str, query: &str) -> Option<Socket> {
    let mut request = format!("ws://{front}/w/0/ws?token={TOKEN}{query}")
        .into_client_request()
        .ok()?;
    request.headers_mut().insert("Cookie", cookie.parse().ok()?);
    let (mut ws, _) = tungstenite::connect(request).ok()?;
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_mut() {
        let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
    }
    Some(ws)
}

struct Player {
    cookie: String,
    id: String,
    token: String,
    ws: Socket,
}

#[test]
fn players_keep_their_worlds_when_a_replica_behind_haproxy_dies() {
    let haproxy = haproxy();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let every = SNAPSHOT_EVERY.to_string();
    let replica = |name: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        Served::start(
            &d,
            &[
                "examples/world.world",
                "--fps",
                "8",
                "--token",
                TOKEN,
                "--session-store",
                store.to_str().unwrap(),
                "--snapshot-every",
                &every,
                "--max-worlds-per-address",
                "16",
            ],
        )
    };
    let (r1, r2) = (replica("r1"), replica("r2"));
    // The shipped recipe, pointed at this test's ports.
    let front = format!("127.0.0.1:{}", free_port());
    let config = std::fs::read_to_string(root().join("examples/deploy/haproxy.cfg"))
        .unwrap()
        .replace("127.0.0.1:8080", &front)
        .replace("127.0.0.1:8081", &r1.addr)
        .replace("127.0.0.1:8082", &r2.addr);
    assert!(config.contains(&r2.addr), "the recipe names its replicas");
    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(&cfg, config).unwrap();
    let _proxy = Killed(
        Command::new(&haproxy)
            .args(["-db", "-f"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    let cookie = loop {
        if let Some(c) = page_cookie(&front) {
            break c;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "HAProxy never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(cookie.starts_with("wgraph_replica="), "{cookie}");
    // Eight players; the page's cookie alternates between the replicas.
    let mut players: Vec<Player> = (0..8)
        .map(|_| {
            let cookie = page_cookie(&front).expect("the page, through HAProxy");
            let mut ws = connect(&front, &cookie, "").expect("a world, through HAProxy");
            let hello = try_next_json(&mut ws).expect("hello");
            assert_eq!(hello["type"], "hello", "{hello}");
            let s = &hello["session"];
            Player {
                cookie,
                id: s["id"].as_str().unwrap().to_string(),
                token: s["token"].as_str().unwrap().to_string(),
                ws,
            }
        })
        .collect();
    let on_r1 = players.iter().filter(|p| p.cookie.ends_with("=r1")).count();
    assert!(
        (1..8).contains(&on_r1),
        "both replicas have players ({on_r1} on r1)"
    );
    // Everyone plays a few ticks (written to the store every 2).
    let mut left_at = Vec::new();
    for p in &mut players {
        let t0 = try_next_frame(&mut p.ws).map(|f| f.0).expect("a frame");
        let mut t = t0;
        while t < t0 + 4 {
            t = try_next_frame(&mut p.ws).map(|f| f.0).expect("a frame");
        }
        left_at.push(t);
    }
    // r1 dies (SIGKILL: nothing written on the way out).
    drop(r1);
    let died = Instant::now();
    let mut slowest = Duration::ZERO;
    for (p, &left) in players.iter_mut().zip(&left_at) {
        if p.cookie.ends_with("=r2") {
            // r2's players never noticed.
            try_next_frame(&mut p.ws)
                .map(|f| f.0)
                .expect("r2's players play on");
            continue;
        }
        let query = format!("&session={}&session_token={}", p.id, p.token);
        let (mut ws, hello) = loop {
            assert!(
                died.elapsed() < Duration::from_secs(60),
                "player {} not back: {}",
                p.id,
                r2.log()
            );
            if let Some(mut ws) = connect(&front, &p.cookie, &query)
                && let Some(j) = try_next_json(&mut ws)
                && j["type"] == "hello"
            {
                break (ws, j);
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        slowest = slowest.max(died.elapsed());
        assert_eq!(hello["session"]["id"], p.id.as_str(), "the same world");
        let tick = try_next_frame(&mut ws)
            .map(|f| f.0)
            .expect("a frame from r2");
        assert!(
            u64::from(tick) + SNAPSHOT_EVERY >= u64::from(left),
            "back at tick {tick}, left at {left}: at most {SNAPSHOT_EVERY} ticks lost"
        );
        p.ws = ws;
    }
    eprintln!("failover: every player of the dead replica back in {slowest:?}");
    // Each of r1's worlds came back once, on r2.
    let log = r2.log();
    for p in players.iter().filter(|p| p.cookie.ends_with("=r1")) {
        assert_eq!(
            log.matches(&format!("session {} back from the store", p.id))
                .count(),
            1,
            "{log}"
        );
    }
}
