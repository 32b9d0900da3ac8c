//! The world threads a server runs, shared or one per player.
//!
//! - [`Worlds`] — the registry: [`Worlds::start`] starts a
//!   [`Session`]'s tick thread bridged to a [`WebWorld`] (with a
//!   [`KeptPlace`] the world is written to the session store every
//!   `--snapshot-every` ticks and kept there when its player is gone);
//!   [`Worlds::reap`] joins the threads that ended, keeping the newest
//!   [`KEEP_FINISHED`] sessions' figures, so nothing grows with the sessions
//!   served; [`Worlds::stop_all`] stops and joins the rest at the end
//!   ([`Finished`]).
//! - [`Reaper`] — a thread that reaps every second (and sweeps the session
//!   store every [`SWEEP_EVERY`](crate::store::SWEEP_EVERY)).
//! - [`prompts_of`] and [`latency_summary`] — what a page may edit, and
//!   the key-to-frame latency as summary lines say it.

use crate::store::{KeptPlace, StoreError};
use crate::{LatencyProbe, Log, Prompt, Token, WebWorld};
use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use wgraph_engine::graph::Graph;
use wgraph_engine::model::Backend;
use wgraph_engine::world::{WorldEvent, WorldHandle};
use wgraph_session::Session;

/// The prompts a page may edit: every node that says it has one
/// ([`Node::live_prompt`](wgraph_engine::node::Node::live_prompt): a
/// `text_encoder`'s fixed text, a `prompt_schedule`).
pub fn prompts_of(graph: &Graph) -> Vec<Prompt> {
    graph
        .nodes
        .iter()
        .filter_map(|n| {
            let (param, value) = n.node.live_prompt()?;
            Some(Prompt {
                node: n.name.clone(),
                param: param.into(),
                value,
            })
        })
        .collect()
}

/// The key-to-frame latency as the summary line says it: percentiles only
/// where keys changed.
pub fn latency_summary(p50_ms: f64, p99_ms: f64, key_changes: u64) -> String {
    match key_changes {
        0 => "no key changes, so no key→frame latency".to_string(),
        1 => format!("key→frame latency {p50_ms:.1} ms (1 key change)"),
        n => format!("key→frame latency p50 {p50_ms:.1} ms, p99 {p99_ms:.1} ms ({n} key changes)"),
    }
}

/// The figures kept of ended sessions (the newest; a server runs for days).
pub const KEEP_FINISHED: usize = 256;

/// A world thread the server started.
struct Started {
    name: String,
    /// The session's number among its graph's (`name#N` in the log).
    session: usize,
    label: String,
    handle: WorldHandle,
    latency: LatencyProbe,
    started: Instant,
    thread: std::thread::JoinHandle<(bool, u64, u64)>,
}

/// Every world thread running, and the figures of those that ended.
#[derive(Default)]
struct Registry {
    running: Vec<Started>,
    /// Sessions started so far, per graph.
    numbers: HashMap<String, usize>,
    rows: VecDeque<serde_json::Value>,
    /// Rows let go to keep `rows` bounded.
    dropped: u64,
    /// A world ended on an error (or its thread panicked).
    failed: bool,
}

impl Registry {
    /// Joins `w`, logs its summary line, keeps its figures.
    fn finished(&mut self, w: Started, log: &Log) {
        let seconds = w.started.elapsed().as_secs_f64();
        let Ok((ok, ticks, late)) = w.thread.join() else {
            log(&format!("{}: the world's thread panicked", w.label));
            self.failed = true;
            return;
        };
        self.failed |= !ok;
        let (p50, p99, n) = w.latency.summary();
        log(&format!(
            "{}: {ticks} ticks, {late} late; {}",
            w.label,
            latency_summary(p50, p99, n)
        ));
        // No samples: no figures (a 0 would read as a measurement).
        let (p50, p99) = if n == 0 {
            (None, None)
        } else {
            (Some(p50), Some(p99))
        };
        if self.rows.len() == KEEP_FINISHED {
            self.rows.pop_front();
            self.dropped += 1;
        }
        self.rows.push_back(serde_json::json!({
            "world": w.name,
            "session": w.session,
            "ticks": ticks,
            "seconds": seconds,
            "fps": if seconds > 0.0 { ticks as f64 / seconds } else { 0.0 },
            "late_ticks": late,
            "latency_p50_ms": p50,
            "latency_p99_ms": p99,
            "latency_samples": n,
        }));
    }

    /// Joins the threads that have ended.
    fn reap(&mut self, log: &Log) {
        let (done, running): (Vec<Started>, Vec<Started>) = std::mem::take(&mut self.running)
            .into_iter()
            .partition(|w| w.thread.is_finished());
        self.running = running;
        for w in done {
            self.finished(w, log);
        }
    }
}

/// What the world threads did, once all have ended ([`Worlds::stop_all`]).
#[derive(Debug, Default)]
pub struct Finished {
    /// One row per session (the newest [`KEEP_FINISHED`]): world, session,
    /// ticks, seconds, fps, late ticks, latency percentiles.
    pub rows: Vec<serde_json::Value>,
    /// Sessions whose rows were let go to keep `rows` bounded.
    pub dropped: u64,
    /// A world ended on an error (or its thread panicked).
    pub failed: bool,
}

/// The registry of world threads (see the module docs); clones share it.
#[derive(Clone)]
pub struct Worlds {
    registry: Arc<Mutex<Registry>>,
    log: Log,
}

impl Worlds {
    /// An empty registry; summary lines and the worlds' events go to `log`.
    pub fn new(log: Log) -> Worlds {
        Worlds {
            registry: Arc::default(),
            log,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins the world threads that have ended (within a second of their
    /// end with a [`Reaper`], and whenever a world starts).
    pub fn reap(&self) {
        self.lock().reap(&self.log);
    }

    /// Stops every world still running (at a tick boundary), joins them
    /// all and hands back their figures.
    pub fn stop_all(&self) -> Finished {
        let mut registry = std::mem::take(&mut *self.lock());
        for w in &registry.running {
            w.handle.stop();
        }
        for w in std::mem::take(&mut registry.running) {
            registry.finished(w, &self.log);
        }
        Finished {
            rows: registry.rows.into_iter().collect(),
            dropped: registry.dropped,
            failed: registry.failed,
        }
    }

    /// Starts `session`'s tick thread, bridged to a web world named `name`;
    /// registers it. `keep`: where the world's state goes every
    /// `--snapshot-every` ticks and when its player has been gone too long
    /// (`--session-store`).
    pub fn start<B: Backend + 'static>(
        &self,
        session: Session<B>,
        name: &str,
        prompts: Vec<Prompt>,
        token: Token,
        keep: Option<KeptPlace>,
    ) -> WebWorld {
        let handle = session.handle();
        let (bridge, web) = crate::channel(name, handle.clone(), prompts, token);
        let mut registry = self.lock();
        registry.reap(&self.log);
        let number = {
            let n = registry.numbers.entry(name.to_string()).or_insert(0);
            *n += 1;
            *n
        };
        let label = if number == 1 {
            name.to_string()
        } else {
            format!("{name}#{number}")
        };
        let world_label = label.clone();
        let log = Arc::clone(&self.log);
        let thread = std::thread::Builder::new()
            .name(format!("world {label}"))
            .spawn(move || run_world(session, bridge, keep, &world_label, &log))
            // Out of threads: the world runs nowhere; its page says so.
            .unwrap_or_else(|e| {
                let message = format!("cannot start a world thread: {e}");
                let log = Arc::clone(&self.log);
                std::thread::spawn(move || {
                    log(&format!("error: {message}"));
                    (false, 0, 0)
                })
            });
        registry.running.push(Started {
            name: name.to_string(),
            session: number,
            label,
            handle,
            latency: web.latency_probe(),
            started: Instant::now(),
            thread,
        });
        web
    }
}

/// A world's tick thread: runs `session` until it ends, its events to the
/// page and the log; returns (ended well, ticks, late ticks).
fn run_world<B: Backend + 'static>(
    mut session: Session<B>,
    mut bridge: crate::Bridge,
    keep: Option<KeptPlace>,
    label: &str,
    log: &Log,
) -> (bool, u64, u64) {
    let mut store_failed = false;
    let mut taken = false;
    let stopper = session.handle();
    let result = session.run(&mut |event| {
        bridge.on_event(event);
        match event {
            // `--snapshot-every`: the world, claimed for this server.
            WorldEvent::Snapshot {
                tick,
                snapshot: Ok(snapshot),
            } => match keep.as_ref().map(|p| p.write(*tick, snapshot, true)) {
                Some(Err(StoreError::Taken)) if !taken => {
                    taken = true;
                    log(&format!(
                        "{label}: another server has taken this world from the session store; stopping this copy"
                    ));
                    stopper.stop();
                }
                Some(Err(e @ (StoreError::Io(_) | StoreError::Snapshot(_))))
                    if !std::mem::replace(&mut store_failed, true) =>
                {
                    log(&format!(
                        "{label}: error: cannot write the session store: {e}"
                    ));
                }
                _ => {}
            },
            WorldEvent::Reloaded(info) => log(&format!("{label}: {}", info.line())),
            WorldEvent::Degraded {
                tick,
                level,
                change,
                why,
            } => log(&format!(
                "{label}: degrade level {level} at tick {tick}: {change} ({why})"
            )),
            WorldEvent::ReloadFailed { cause, message } => log(&format!(
                "{message}{label}: reload failed ({cause}); the running graph is unchanged"
            )),
            _ => {}
        }
    });
    if let Err(e) = &result {
        log(&format!("{label}: error: {e}"));
        log(&format!("{label}: the world has stopped; its page says so"));
        bridge.failed(&e.to_string());
    }
    // Its player is gone: keep the world as it is, to come back to.
    if result.is_ok()
        && bridge.evicted()
        && !taken
        && let Some(place) = &keep
    {
        match place.keep(&session.world) {
            Ok(tick) => log(&format!(
                "{label}: kept in the session store at tick {tick}"
            )),
            Err(e) => log(&format!(
                "{label}: error: cannot keep the world in the session store: {e}"
            )),
        }
    }
    let world = &mut session.world;
    let finished = world.finish();
    (
        result.is_ok() && finished.is_ok(),
        world.ticks_done(),
        world.late_ticks(),
    )
}

/// A thread that joins ended world threads every second and runs a
/// periodic chore (the session store's sweep) every `every`; stopped and
/// joined by [`Reaper::stop`] (or when dropped).
pub struct Reaper {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reaper {
    /// Starts reaping `worlds`; `chore` (if any) runs every `every`.
    pub fn start(worlds: &Worlds, chore: Option<Box<dyn Fn() + Send>>, every: Duration) -> Reaper {
        let (stop, stopped) = mpsc::channel::<()>();
        let worlds = worlds.clone();
        let thread = std::thread::spawn(move || {
            let mut last = Instant::now();
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(Duration::from_secs(1))
            {
                worlds.reap();
                if let Some(chore) = &chore
                    && last.elapsed() >= every
                {
                    last = Instant::now();
                    chore();
                }
            }
        });
        Reaper {
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_summarised_only_where_keys_changed() {
        assert_eq!(
            latency_summary(0.0, 0.0, 0),
            "no key changes, so no key→frame latency"
        );
        assert_eq!(
            latency_summary(1.5, 9.0, 1),
            "key→frame latency 1.5 ms (1 key change)"
        );
        assert_eq!(
            latency_summary(1.0, 9.0, 3),
            "key→frame latency p50 1.0 ms, p99 9.0 ms (3 key changes)"
        );
    }
}
