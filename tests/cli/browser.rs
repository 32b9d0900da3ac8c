//! `wgraph serve` in a real browser: Debian's chromium, headless, driven
//! over the Chrome DevTools Protocol (a WebSocket, with `tungstenite`).
//! The first test to open a page installs chromium if it is missing
//! (`support::chromium`); `WGRAPH_CHROMIUM` names another binary.

use super::*;
use serde_json::{Value as Json, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

// One browser at a time, and not beside other timed or core-hungry
// tests (`take_turns`): chromium and a world per test on two cores
// would measure the machine, not wgraph.

/// The token the served worlds get (`--token`): pages and sockets show it.
const TOKEN: &str = "wgraph-browser-test-token";

/// `wgraph serve ARGS --port 0`; returns the child and its address.
fn serve(dir: &Path, args: &[&str]) -> (Killed, String) {
    let log = std::fs::File::create(dir.join("serve.txt")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_wgraph"))
        .arg("serve")
        .args(args)
        .args(["--port", "0", "--token", TOKEN])
        .current_dir(root())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let child = Killed(child);
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(dir.join("serve.txt")).unwrap_or_default();
        if let Some(i) = text.find("http://") {
            let addr = text[i + 7..].split('/').next().unwrap().to_string();
            return (child, addr);
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no address: {text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A GET over HTTP/1.1 (chromium's DevTools server ignores HTTP/1.0
/// and keeps connections open), read up to its Content-Length.
fn http_get(addr: &str, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return String::new();
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            });
            if length.is_some_and(|n| body.len() >= n) {
                return body.to_string();
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => {
                return text
                    .split_once("\r\n\r\n")
                    .map(|(_, b)| b.to_string())
                    .unwrap_or_default();
            }
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
        }
    }
}

struct Page {
    _browser: Killed,
    ws: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    id: u64,
    // Dropped last: the next browser starts after this one is gone.
    _one: std::sync::MutexGuard<'static, ()>,
}

impl Page {
    fn open(dir: &Path, url: &str) -> Page {
        let one = take_turns();
        // A fresh profile each time: a used one holds the last
        // browser's DevToolsActivePort.
        static OPENED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = OPENED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let profile = dir.join(format!("profile-{n}"));
        let browser = Command::new(chromium())
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let browser = Killed(browser);
        let start = Instant::now();
        let port = loop {
            // Whole once it has its second line (the browser target's path).
            if let Ok(t) = std::fs::read_to_string(profile.join("DevToolsActivePort"))
                && t.lines().count() >= 2
                && let Some(p) = t.lines().next()
            {
                break p.to_string();
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "chromium did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let addr = format!("127.0.0.1:{port}");
        let ws_url = loop {
            let list: Json =
                serde_json::from_str(&http_get(&addr, "/json/list")).unwrap_or(json!([]));
            let page = list.as_array().and_then(|l| {
                l.iter().find(|t| {
                    // The page takes the token out of its address.
                    let base = url.split('?').next().unwrap_or(url);
                    t["type"] == "page" && t["url"].as_str().is_some_and(|u| u.starts_with(base))
                })
            });
            if let Some(p) = page {
                break p["webSocketDebuggerUrl"].as_str().unwrap().to_string();
            }
            assert!(start.elapsed() < Duration::from_secs(60), "no page");
            std::thread::sleep(Duration::from_millis(50));
        };
        let (ws, _) = tungstenite::connect(ws_url).unwrap();
        Page {
            _browser: browser,
            ws,
            id: 0,
            _one: one,
        }
    }

    fn call(&mut self, method: &str, params: Json) -> Json {
        self.id += 1;
        let id = self.id;
        let msg = json!({"id": id, "method": method, "params": params});
        self.ws
            .send(tungstenite::Message::text(msg.to_string()))
            .unwrap();
        loop {
            let m = self.ws.read().unwrap();
            if let tungstenite::Message::Text(t) = m {
                let j: Json = serde_json::from_str(t.as_str()).unwrap();
                if j["id"] == id {
                    return j;
                }
            }
        }
    }

    /// `window.wgraph`, the page's state.
    fn state(&mut self) -> Json {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": "JSON.stringify(window.wgraph || null)", "returnByValue": true}),
        );
        serde_json::from_str(r["result"]["result"]["value"].as_str().unwrap_or("null")).unwrap()
    }

    fn eval(&mut self, expression: &str) {
        self.call("Runtime.evaluate", json!({"expression": expression}));
    }

    fn key(&mut self, kind: &str, code: &str, key: &str, vk: u32) {
        self.call(
            "Input.dispatchKeyEvent",
            json!({"type": kind, "code": code, "key": key, "windowsVirtualKeyCode": vk}),
        );
    }

    fn wait_until(&mut self, what: &str, ok: impl Fn(&Json) -> bool) -> Json {
        let start = Instant::now();
        loop {
            let s = self.state();
            if ok(&s) {
                return s;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "{what}: {s}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn n(j: &Json, k: &str) -> u64 {
    j[k].as_u64().unwrap_or(0)
}

/// Holding W for one second moves the world; frames arrive at the
/// graph's rate; the server measured the key-to-frame latency.
fn hold_w_and_see_the_world_move(graph: &str, fps: u64) {
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("metrics.json");
    let (mut server, addr) = serve(dir.path(), &[graph, "--metrics", metrics.to_str().unwrap()]);
    let url = format!("http://{addr}/?token={TOKEN}");
    let mut page = Page::open(dir.path(), &url);
    let s = page.wait_until("controls and gets frames", |s| {
        s["controller"] == true && n(s, "frames") > 3
    });
    // Idle: two seconds of frames. A busy machine runs fewer ticks, so
    // the frames are counted against the ticks the world ran (the page
    // sees each frame's tick), not against the clock: at least half of
    // them reach the page (the rate a player sees is in --metrics).
    let tick = |s: &Json| s["lastTick"].as_u64().unwrap_or(0);
    let (f0, h0, t0) = (
        n(&s, "frames"),
        s["hashes"].as_array().unwrap().len(),
        tick(&s),
    );
    std::thread::sleep(Duration::from_secs(2));
    let s = page.wait_until("ticks go on", |s| tick(s) >= t0 + 4);
    let (f1, h1, t1) = (
        n(&s, "frames"),
        s["hashes"].as_array().unwrap().len(),
        tick(&s),
    );
    assert!(
        2 * (f1 - f0) >= t1 - t0,
        "{graph}: {} frames for {} ticks (at {fps} fps)",
        f1 - f0,
        t1 - t0
    );
    page.key("keyDown", "KeyW", "w", 87);
    std::thread::sleep(Duration::from_secs(2));
    // Held until at least 6 ticks ran with it, however busy the machine:
    // with at least half of them on the page, 3 changed frames are due.
    page.wait_until("ticks with W held", |s| tick(s) >= t1 + 6);
    page.key("keyUp", "KeyW", "w", 87);
    let s = page.state();
    let (f2, h2, t2) = (
        n(&s, "frames"),
        s["hashes"].as_array().unwrap().len(),
        tick(&s),
    );
    assert!(
        2 * (f2 - f1) >= t2 - t1,
        "{graph}: {} frames for the {} ticks W was held",
        f2 - f1,
        t2 - t1
    );
    assert!(
        h2 - h1 >= 3,
        "{graph}: frames changed {} times while W was held",
        h2 - h1
    );
    if graph.ends_with("examples/world.world") {
        assert_eq!(h1, h0, "the ground truth stands still while no key is held");
    }
    // Play a little: turn left and right, so latency has samples.
    for (code, key, vk) in [
        ("ArrowLeft", "ArrowLeft", 37),
        ("ArrowRight", "ArrowRight", 39),
    ] {
        for _ in 0..3 {
            page.key("keyDown", code, key, vk);
            std::thread::sleep(Duration::from_millis(300));
            page.key("keyUp", code, key, vk);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // The HUD reports the measured latency.
    let s = page.wait_until("HUD latency", |s| {
        s["hud"]["latency_count"].as_u64().is_some_and(|c| c >= 1)
    });
    assert!(s["hud"]["latency_p50_ms"].as_f64().unwrap() > 0.0, "{s}");
    signal_int(&mut server.0);
    let log = std::fs::read_to_string(dir.path().join("serve.txt")).unwrap();
    assert!(log.contains("key→frame latency p50"), "{log}");
    let m: Json = serde_json::from_str(&std::fs::read_to_string(&metrics).unwrap()).unwrap();
    let w = &m["worlds"][0];
    assert!(w["latency_samples"].as_u64().unwrap() >= 6, "{m}");
    // `cargo test --release --test cli playable_in_a_browser -- --nocapture` prints the figures.
    eprintln!("{graph} played in chromium: {w}");
}

fn signal_int(child: &mut Child) {
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "serve did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_ground_truth_world_is_playable_in_a_browser() {
    hold_w_and_see_the_world_move("examples/world.world", 8);
}

#[test]
fn yan_sim_is_playable_in_a_browser() {
    hold_w_and_see_the_world_move("graphs/yan-sim.world", 16);
}

#[test]
fn yume_is_playable_in_a_browser() {
    hold_w_and_see_the_world_move("graphs/yume.world", 16);
}

/// The WebSocket protocol without a browser: a malformed message is
/// answered with an error, an oversized one closes that socket only, a
/// second viewer watches while the first controls, and a viewer that
/// never reads does not slow the others.
#[test]
fn sockets_answer_bad_messages_and_a_stalled_viewer_slows_nobody() {
    let dir = tempfile::tempdir().unwrap();
    // One shared world: the first viewer controls, the others watch.
    let (mut server, addr) = serve(
        dir.path(),
        &["examples/world.world", "--fps", "20", "--shared"],
    );
    let url = format!("ws://{addr}/w/0/ws?token={TOKEN}");
    let open = || tungstenite::connect(url.as_str()).unwrap().0;
    let mut first = open();
    let next_json = |ws: &mut tungstenite::WebSocket<_>| -> Json {
        loop {
            if let tungstenite::Message::Text(t) = ws.read().unwrap() {
                let j: Json = serde_json::from_str(t.as_str()).unwrap();
                if j["type"] != "tick" && j["type"] != "hud" {
                    return j;
                }
            }
        }
    };
    let hello = next_json(&mut first);
    assert_eq!(hello["controller"], true, "{hello}");
    let _stalled = open(); // connects and never reads
    let mut second = open();
    assert_eq!(next_json(&mut second)["controller"], false);
    first.send(tungstenite::Message::text("{not json")).unwrap();
    let e = next_json(&mut first);
    assert_eq!(e["type"], "error");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("malformed message"),
        "{e}"
    );
    second
        .send(tungstenite::Message::text(
            r#"{"type":"keys","keys":["W"]}"#,
        ))
        .unwrap();
    assert_eq!(
        next_json(&mut second)["controller"],
        false,
        "a watcher cannot steer"
    );
    first
        .send(tungstenite::Message::text(
            r#"{"type":"keys","keys":["Q"]}"#,
        ))
        .unwrap();
    assert_eq!(next_json(&mut first)["message"], "unknown key `Q`");
    // Frames keep coming to the first viewer as the world ticks: at
    // least half of the ticks run meanwhile (counted by the frames' own
    // tick numbers, so a busy machine running fewer ticks still passes).
    let start = Instant::now();
    let (mut frames, mut ticks) = (0u64, Vec::new());
    while start.elapsed() < Duration::from_secs(2) || frames < 4 {
        if let tungstenite::Message::Binary(b) = first.read().unwrap() {
            assert_eq!(b[0], b'F');
            frames += 1;
            ticks.push(u32::from_le_bytes([b[1], b[2], b[3], b[4]]) as u64);
        }
    }
    let ran = ticks.last().unwrap() - ticks.first().unwrap() + 1;
    assert!(
        2 * frames >= ran,
        "{frames} frames for {ran} ticks beside a stalled viewer"
    );
    // An oversized message closes that socket; the server goes on.
    let big = format!(r#"{{"type":"keys","keys":["{}"]}}"#, "W".repeat(10_000));
    let _ = second.send(tungstenite::Message::text(big));
    let closed = (0..1000).any(|_| second.read().is_err());
    assert!(closed, "the oversized message's socket is closed");
    let mut third = open();
    assert_eq!(next_json(&mut third)["type"], "hello");
    signal_int(&mut server.0);
    let log = std::fs::read_to_string(dir.path().join("serve.txt")).unwrap();
    assert!(log.contains("malformed message"), "{log}");
}

/// Every prompt a graph exposes gets a box: Yume 1.5's events and
/// Yan-Gen's local caption (`prompt_schedule`s), Yan-Gen's global caption.
#[test]
fn pages_offer_every_prompt_the_graph_exposes() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = serve(dir.path(), &["graphs/yume15.world", "graphs/yan-gen.world"]);
    let hello = |i: usize| -> Json {
        let (mut ws, _) =
            tungstenite::connect(format!("ws://{addr}/w/{i}/ws?token={TOKEN}")).unwrap();
        loop {
            if let tungstenite::Message::Text(t) = ws.read().unwrap() {
                let j: Json = serde_json::from_str(t.as_str()).unwrap();
                if j["type"] == "hello" {
                    return j;
                }
            }
        }
    };
    let names = |j: &Json| -> Vec<String> {
        j["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                format!(
                    "{}.{}={}",
                    p["node"].as_str().unwrap(),
                    p["param"].as_str().unwrap(),
                    p["value"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(names(&hello(0)), ["events.text=a quiet street at dusk"]);
    let yan_gen = names(&hello(1));
    assert!(
        yan_gen.iter().any(|p| p.starts_with("global.text=")),
        "{yan_gen:?}"
    );
    assert!(
        yan_gen.iter().any(|p| p.starts_with("captions.text=")),
        "{yan_gen:?}"
    );
}

/// Yan-Edit's style prompt box restyles the world live.
#[test]
fn the_style_prompt_box_restyles_yan_edit_live() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = serve(
        dir.path(),
        &["graphs/yan-edit.world", "examples/world.world"],
    );
    let index = http_get(&addr, "/");
    assert!(
        index.contains("href=\"/w/0\"") && index.contains("href=\"/w/1\""),
        "{index}"
    );
    let mut page = Page::open(dir.path(), &format!("http://{addr}/w/0?token={TOKEN}"));
    let s = page.wait_until("frames", |s| n(s, "frames") > 2);
    assert_eq!(s["role"], "player", "{s}");
    // The page keeps the token and takes it out of the address bar.
    let search = page.call(
        "Runtime.evaluate",
        json!({"expression": "location.search", "returnByValue": true}),
    );
    assert_eq!(search["result"]["result"]["value"], "", "{search}");
    page.eval(
        "const i = document.querySelector('input[data-node=style]'); \
         i.value = 'a snowy forest'; i.dispatchEvent(new Event('change'));",
    );
    let s = page.wait_until("the reload", |s| n(s, "reloads") >= 1);
    // A world of one's own: reloading the page gets the same world back
    // (the tab keeps its session's id and token).
    let session = s["session"].clone();
    assert!(session.is_string(), "{s}");
    page.eval("location.reload()");
    page.wait_until("the same world after reloading the page", |s| {
        s["session"] == session && s["resumed"] == true && n(s, "frames") > 0
    });
    let log = std::fs::read_to_string(dir.path().join("serve.txt")).unwrap();
    assert!(
        log.contains("(set style.text = \"a snowy forest\"): changed style.text"),
        "{log}"
    );
    assert!(
        !log.contains("models reloaded"),
        "a prompt change reloads no model: {log}"
    );
    drop(page);
    // Without the token the page only says how to get in.
    let mut page = Page::open(dir.path(), &format!("http://{addr}/w/1"));
    page.wait_until("the refusal", |s| s["refused"] == true);
    let role = page.call(
        "Runtime.evaluate",
        json!({"expression": "document.getElementById('role').textContent", "returnByValue": true}),
    );
    assert!(
        role["result"]["result"]["value"]
            .as_str()
            .is_some_and(|t| t.contains("needs its token")),
        "{role}"
    );
}
