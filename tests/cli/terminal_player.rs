//! `wgraph play` through a pseudo-terminal, as a user's terminal runs it.

use super::*;
use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Runs `wgraph play GRAPH` in a pseudo-terminal with
/// `env`, holds W for a second and at least 6 ticks (a terminal without
/// release events repeats the key), quits with `q`; returns everything it
/// printed.
fn play_in_pty(graph: &str, env: &[(&str, &str)]) -> String {
    let pty = native_pty_system();
    let pair = pty
        .openpty(PtySize {
            rows: 40,
            cols: 100,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_wgraph"));
    cmd.args(["play", graph, "--fps", "20"]);
    cmd.cwd(root());
    cmd.env("TERM", "xterm-256color");
    cmd.env_remove("KITTY_WINDOW_ID");
    cmd.env_remove("TERM_PROGRAM");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = pair.slave.spawn_command(cmd).unwrap();
    drop(pair.slave);
    let output = Arc::new(Mutex::new(Vec::<u8>::new()));
    let mut reader = pair.master.try_clone_reader().unwrap();
    let sink = Arc::clone(&output);
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let mut writer = pair.master.take_writer().unwrap();
    let text = || String::from_utf8_lossy(&output.lock().unwrap()).to_string();
    // The last half megabyte: a few frames, each with its HUD line.
    let tail = || {
        let out = output.lock().unwrap();
        String::from_utf8_lossy(&out[out.len().saturating_sub(1 << 19)..]).to_string()
    };
    let start = Instant::now();
    while !text().contains("q quits") {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no HUD: {}",
            text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Hold W for a second and at least 6 ticks (the HUD's tick number), so
    // a busy machine that runs fewer ticks still moves the world 3 times.
    let held_from = last_tick(&tail());
    let hold = Instant::now();
    while hold.elapsed() < Duration::from_secs(1) || last_tick(&tail()) < held_from + 6 {
        assert!(
            hold.elapsed() < Duration::from_secs(60),
            "no ticks while W was held: {}",
            text()
        );
        writer.write_all(b"w").unwrap();
        writer.flush().unwrap();
        std::thread::sleep(Duration::from_millis(40));
    }
    std::thread::sleep(Duration::from_millis(300));
    writer.write_all(b"q").unwrap();
    writer.flush().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}: {}", text());
    std::thread::sleep(Duration::from_millis(200));
    text()
}

/// The tick number of the last HUD line (`tick N  F fps  ...  q quits`) in
/// `out`; 0 before the first.
fn last_tick(out: &str) -> u64 {
    let number = |s: &str| -> Option<(u64, usize)> {
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        Some((s[..digits].parse().ok()?, digits))
    };
    out.rsplit("tick ")
        .find_map(|s| {
            let (tick, n) = number(s)?;
            let rest = s[n..].strip_prefix("  ")?;
            let (_, m) = number(rest)?;
            rest[m..].starts_with(" fps").then_some(tick)
        })
        .unwrap_or(0)
}

fn check_played(out: &str) {
    let left = out
        .rfind("\u{1b}[?1049l")
        .expect("left the alternate screen");
    assert!(
        out[left..].contains("\u{1b}[?25h") || out.contains("\u{1b}[?25h"),
        "cursor shown"
    );
    let distinct: u64 = out
        .split(" distinct)")
        .next()
        .and_then(|s| s.rsplit('(').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    assert!(distinct >= 3, "the world moved while W was held: {out}");
    assert!(!out.contains("(0 key changes)"), "{out}");
}

#[test]
fn play_draws_frames_takes_keys_and_restores_the_terminal() {
    let out = play_in_pty("graphs/yan-sim.world", &[]);
    assert!(
        out.contains('▀') && out.contains("\u{1b}[38;2;"),
        "truecolor half blocks"
    );
    check_played(&out);
}

/// In kitty (and WezTerm, Ghostty) frames are real pixels.
#[test]
fn play_uses_kitty_graphics_where_the_terminal_speaks_it() {
    let out = play_in_pty("examples/world.world", &[("KITTY_WINDOW_ID", "1")]);
    assert!(
        out.contains("\u{1b}_Ga=T,i=1,p=1,q=2,f=24,s=64,v=64,"),
        "kitty images"
    );
    assert!(!out.contains('▀'), "no half blocks");
    check_played(&out);
}
