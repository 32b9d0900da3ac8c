//! `wgraph serve FILE...`: each graph a live world, played in a browser
//! (crate `wgraph-web`). Worlds tick on their own threads at their graph's
//! fps; the server runs until Ctrl-C or SIGTERM, then every world stops at a
//! tick boundary and finishes its sinks.

use crate::backends::Backends;
use crate::session_store::{KeptPlace, LEASE, SessionStore, StoreError};
use crate::{Outcome, ServeArgs};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use wgraph_engine::graph::Graph;
use wgraph_engine::memory::{MemoryPlan, human_bytes};
use wgraph_engine::world::{TickGrid, WorldConfig, WorldEvent, WorldHandle};
use wgraph_session::{OpenError, Session, SessionOptions};
use wgraph_web::{Access, Limits, Prompt, ServeConfig, Token, is_public, parse_origin};
use wgraph_web::{LatencyProbe, OpenWorld, ReopenWorld, ServedGraph, SessionLimits, WebWorld};

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

/// `wgraph serve FILE... [--port P] [--host H] [--watch]`
pub fn serve(args: &ServeArgs) -> Outcome {
    let addr: SocketAddr = match format!("{}:{}", args.host, args.port).parse() {
        Ok(a) => a,
        Err(_) => {
            eprintln!(
                "error: --host {} --port {}: not an address",
                args.host, args.port
            );
            return Outcome::Usage;
        }
    };
    if let Some(fps) = args.fps
        && let Err(e) = wgraph_engine::settings::check_fps(fps)
    {
        eprintln!("error: --fps: {e}");
        return Outcome::Usage;
    }
    let Some(access) = access_policy(args, &addr) else {
        return Outcome::Usage;
    };
    let budget = match memory_budget(args.memory.as_deref()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: --memory {e}");
            return Outcome::Usage;
        }
    };

    // One token for every world (`--token`), or a random one each.
    let fixed_token = match args.token.as_deref().map(Token::parse).transpose() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: --token: {e}");
            return Outcome::Usage;
        }
    };
    if let Some(dir) = &args.session_store {
        if args.shared {
            eprintln!("error: --session-store keeps players' own worlds; --shared has none");
            return Outcome::Usage;
        }
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("error: --session-store {}: {e}", dir.display());
            return Outcome::Usage;
        }
    }
    let output = crate::outputs::front_end(args.out.as_deref(), args.keep_last);
    let mut graphs = Vec::new();
    let mut links = Vec::new();
    // This server among replicas sharing a session store.
    let owner: Arc<str> = match Token::random() {
        Ok(t) => format!("{}-{}", std::process::id(), &t.as_str()[..8]).into(),
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::RuntimeFailure;
        }
    };
    // Per-player graphs' memory plans (name, plan, index in `graphs`).
    let mut plans: Vec<(String, MemoryPlan, usize)> = Vec::new();
    // Every world thread started, shared or per player, joined at the end.
    let worlds: Worlds = Arc::default();
    // The longest claim a running world's file has (the sweep keeps at
    // least twice it).
    let mut longest_lease = LEASE;
    for file in &args.files {
        let label = file.display().to_string();
        let options = SessionOptions {
            set: args.set.clone(),
            seed: args.seed,
            output: output.clone(),
            provider: args.provider.map(Into::into),
            backend_kind: args.backend.map(Into::into),
            watch: args.watch,
            // Prompt boxes change parameters live.
            rebuilds: true,
            notices: Arc::new(move |line: &str| eprintln!("{label}: {line}")),
            ..crate::load::session_options(file)
        };
        let mut prompts = Vec::new();
        let mut name = file.display().to_string();
        let mut config = WorldConfig::default();
        // The graph's models, loaded once for every session of it; with
        // players, their calls fused (`--batch-across-players`).
        let batch = (!args.shared).then(|| args.batch.policy()).flatten();
        let batch_stats = batch.as_ref().map(|p| Arc::clone(&p.stats));
        let models = Arc::new(wgraph_engine::model::ModelCache::new(match batch {
            Some(policy) => Backends::new().batched(
                policy,
                args.batch.batch_across_players == crate::players::Switch::On,
            ),
            None => Backends::new(),
        }));
        let session = crate::load::open_session(options.clone(), Arc::clone(&models), |graph| {
            crate::outputs::note_skipped(&file.display().to_string(), graph, &output, false);
            prompts = prompts_of(graph);
            if !graph.settings.name.is_empty() {
                name = graph.settings.name.clone();
            }
            let (on_late, degrade) =
                wgraph_session::late_policy(graph, args.on_late.as_deref(), &args.degrade)
                    .map_err(|e| format!("{}: {e}", file.display()))?;
            config = WorldConfig {
                on_late,
                degrade,
                workers: args.workers.unwrap_or(0),
                fps: Some(args.fps.unwrap_or(graph.settings.fps)),
                stats_every: Some(Duration::from_secs(1)),
                // An edit of `world { fps }` re-paces the world unless --fps was given.
                follow_graph_fps: args.fps.is_none(),
                snapshot_every: args.snapshot_every.and_then(std::num::NonZeroU64::new),
                // Players' worlds of this graph tick on one clock: their
                // model calls arrive together and are fused.
                tick_grid: (!args.shared && args.tick_clock == crate::TickClock::Shared)
                    .then(TickGrid::new),
                ..WorldConfig::default()
            };
            Ok(config.clone())
        });
        let mut session = match session {
            Ok(s) => s,
            Err(outcome) => return outcome,
        };
        let token = match fixed_token.clone().map_or_else(Token::random, Ok) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {e}");
                return Outcome::RuntimeFailure;
            }
        };
        links.push((
            name.clone(),
            (!access.no_token).then(|| token.as_str().to_string()),
        ));
        if args.shared {
            let web = start_world(session, &name, prompts, token, None, &worlds);
            graphs.push(ServedGraph::Shared(web));
            continue;
        }
        // Per player: the graph is checked; each player's world is opened
        // like this one when they come (this one is not needed, but for
        // the memory plan its state is measured).
        let mut plan = match measure_world(&mut session) {
            Ok(snapshot) => MemoryPlan::of(session.graph(), snapshot.as_ref()),
            Err(e) => {
                eprintln!(
                    "error: {}: the world fails on its first ticks: {e}",
                    file.display()
                );
                return Outcome::RuntimeFailure;
            }
        };
        drop(session);
        let store = args.session_store.as_ref().map(|dir| SessionStore {
            dir: dir.clone(),
            graph: graphs.len(),
            owner: Arc::clone(&owner),
            lease: args
                .snapshot_every
                .zip(config.fps)
                .and_then(|(every, fps)| Duration::try_from_secs_f64(3.0 * every as f64 / fps).ok())
                .filter(|l| *l > LEASE)
                .unwrap_or(LEASE),
            periodic: args.snapshot_every.is_some(),
        });
        if let Some(store) = &store {
            longest_lease = longest_lease.max(store.lease);
        }
        let open_session = {
            let (options, models) = (options.clone(), Arc::clone(&models));
            move || {
                let config = config.clone();
                Session::open(options.clone(), Arc::clone(&models), move |_| Ok(config)).map_err(
                    |e| match e {
                        OpenError::Graph(text) => text,
                        OpenError::Usage(u) | OpenError::Runtime(u) => u,
                    },
                )
            }
        };
        // What a world really holds once it runs (its thread, runner,
        // the backend's scratch): two more, side by side.
        plan.measured_bytes = measure_rss_per_world(&open_session, 2);
        plans.push((name.clone(), plan, graphs.len()));
        let open: OpenWorld = {
            let (open_session, worlds, store) =
                (open_session.clone(), Arc::clone(&worlds), store.clone());
            let (graph_name, prompts) = (name.clone(), prompts.clone());
            Arc::new(move |id: &str| {
                let session = open_session()?;
                let token = Token::random().map_err(|e| e.to_string())?;
                let keep = store.as_ref().map(|s| s.place(id, &token));
                Ok(start_world(
                    session,
                    &graph_name,
                    prompts.clone(),
                    token,
                    keep,
                    &worlds,
                ))
            })
        };
        // A session kept in the store comes back as it was left.
        let reopen: Option<ReopenWorld> = store.map(|store| {
            let (worlds, graph_name) = (Arc::clone(&worlds), name.clone());
            Arc::new(move |id: &str, token: &str| {
                let kept = match store.take(id, token)? {
                    Ok(kept) => kept,
                    Err(elsewhere) => return Some(Err(elsewhere)),
                };
                let opened = (|| {
                    let mut session = open_session()?;
                    session
                        .world
                        .restore(&kept.snapshot)
                        .map_err(|e| format!("the kept world does not fit the graph now: {e}"))?;
                    let token = Token::parse(token).map_err(|e| e.to_string())?;
                    let keep = store.place(id, &token);
                    // Replicas share the store: claimed for this server at
                    // once (see `LEASE`).
                    if store.periodic {
                        match keep.write(kept.tick, &kept.snapshot, true) {
                            Ok(()) => {}
                            Err(StoreError::Io(e)) => {
                                return Err(format!("the session store: {e}"));
                            }
                            Err(StoreError::Taken) => {
                                return Err("the world was taken meanwhile".into());
                            }
                        }
                    }
                    let keep = Some(keep);
                    eprintln!(
                        "{graph_name}: session {id} back from the store at tick {}",
                        kept.tick
                    );
                    Ok(start_world(
                        session,
                        &graph_name,
                        prompts.clone(),
                        token,
                        keep,
                        &worlds,
                    ))
                })();
                match &opened {
                    Ok(_) => kept.done(),
                    Err(_) => kept.put_back(),
                }
                Some(opened)
            }) as ReopenWorld
        });
        graphs.push(ServedGraph::PerPlayer {
            name,
            link: token,
            open,
            reopen,
            batch: batch_stats,
            max_worlds: None,
        });
    }
    if let Err(e) = apply_memory_plans(&plans, budget, args.max_worlds as usize, &mut graphs) {
        eprintln!("error: {e}");
        return Outcome::Usage;
    }
    let config = ServeConfig {
        addr,
        access,
        limits: Limits {
            max_connections: args.max_connections as usize,
            max_per_address: args.max_per_address as usize,
            header_timeout: Duration::from_secs(u64::from(args.header_timeout)),
        },
        sessions: SessionLimits {
            max_worlds: args.max_worlds as usize,
            resume_within: Duration::from_secs(u64::from(args.resume_within)),
            idle: Duration::from_secs(u64::from(args.idle)),
            max_worlds_per_address: args.max_worlds_per_address as usize,
        },
    };
    // The store is bounded in time: swept now and every minute.
    let sweep_store = args.session_store.clone().map(|dir| {
        let keep = Duration::from_secs(args.store_keep).max(2 * longest_lease);
        move || match crate::session_store::sweep(&dir, keep, std::time::SystemTime::now()) {
            Ok(swept) => {
                if let Some(line) = swept.line(keep) {
                    eprintln!("{line}");
                }
            }
            Err(e) => eprintln!("warning: session store {}: {e}", dir.display()),
        }
    });
    if let Some(sweep) = &sweep_store {
        sweep();
    }
    // Ended worlds' threads are joined within a second, not at the end.
    let (reaper_stop, reaper_stopped) = crossbeam_channel::bounded::<()>(0);
    let reaper = {
        let worlds = Arc::clone(&worlds);
        std::thread::spawn(move || {
            let mut swept = std::time::Instant::now();
            while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                reaper_stopped.recv_timeout(Duration::from_secs(1))
            {
                worlds.lock().unwrap_or_else(|p| p.into_inner()).reap();
                if let Some(sweep) = &sweep_store
                    && swept.elapsed() >= crate::session_store::SWEEP_EVERY
                {
                    swept = std::time::Instant::now();
                    sweep();
                }
            }
        })
    };
    let served = wgraph_web::serve(
        graphs,
        config,
        |bound| print_links(bound, &links),
        shutdown_signal(),
        Arc::new(|line: &str| eprintln!("{line}")),
    );
    let mut outcome = Outcome::Ok;
    if let Err(e) = served {
        eprintln!("error: cannot serve on {addr}: {e}");
        outcome = Outcome::RuntimeFailure;
    }
    drop(reaper_stop);
    let _ = reaper.join();
    let mut registry = std::mem::take(&mut *worlds.lock().unwrap_or_else(|p| p.into_inner()));
    for w in &registry.running {
        w.handle.stop();
    }
    for w in std::mem::take(&mut registry.running) {
        registry.finished(w);
    }
    if registry.failed && args.shared {
        outcome = Outcome::RuntimeFailure;
    }
    if registry.dropped > 0 {
        eprintln!(
            "({} earlier sessions' figures were not kept: the newest {KEEP_FINISHED} are)",
            registry.dropped
        );
    }
    let rows: Vec<serde_json::Value> = registry.rows.into_iter().collect();
    if let Some(path) = &args.metrics {
        let text = serde_json::to_string_pretty(&serde_json::json!({ "worlds": rows }))
            .unwrap_or_default();
        if let Err(e) = wgraph_engine::output::write_file(path, (text + "\n").as_bytes()) {
            eprintln!("error: cannot write {}: {e}", path.display());
            outcome = Outcome::RuntimeFailure;
        }
    }
    outcome
}

/// Runs a throwaway world of a per-player graph for two ticks (at most
/// about five seconds) and snapshots it: what one player's world holds
/// once it runs. A world that fails here would fail for every player.
fn measure_world(session: &mut Session<Backends>) -> Result<Option<serde_json::Value>, String> {
    let handle = session.handle();
    let started = std::time::Instant::now();
    let mut ticks = 0;
    session
        .run(&mut |event| {
            if matches!(event, WorldEvent::Tick { .. }) {
                ticks += 1;
            }
            if ticks >= 2 || started.elapsed() > Duration::from_secs(5) {
                handle.stop();
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(session.world.snapshot().ok())
}

/// Resident bytes one more world adds: `count` worlds opened (models
/// already loaded), each run two ticks on a thread of its own as `serve`
/// runs them, held together; the growth of this process over `count`.
/// `None` where resident memory cannot be read or a world fails.
fn measure_rss_per_world(
    open: &(dyn Fn() -> Result<Session<Backends>, String> + Sync),
    count: usize,
) -> Option<u64> {
    let before = crate::rss::current_rss_kib()?;
    let worlds: Vec<Session<Backends>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..count)
            .map(|_| {
                s.spawn(|| {
                    let mut session = open().ok()?;
                    measure_world(&mut session).ok()?;
                    Some(session)
                })
            })
            .collect();
        threads
            .into_iter()
            .filter_map(|t| t.join().ok().flatten())
            .collect()
    });
    let after = crate::rss::current_rss_kib()?;
    (worlds.len() == count).then(|| after.saturating_sub(before) * 1024 / count as u64)
}

/// The memory players' worlds may use: `--memory` (a size), or 80% of
/// what the machine has; `None` where neither is known.
fn memory_budget(flag: Option<&str>) -> Result<Option<(u64, String)>, String> {
    if let Some(text) = flag {
        let bytes = wgraph_engine::memory::parse_bytes(text)?;
        return Ok(Some((bytes, format!("--memory {}", human_bytes(bytes)))));
    }
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        let line = t.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    });
    Ok(total.map(|t| {
        let bytes = t / 5 * 4;
        (
            bytes,
            format!(
                "--memory {} (80% of this machine's {})",
                human_bytes(bytes),
                human_bytes(t)
            ),
        )
    }))
}

/// Prints each per-player graph's memory plan and bounds its worlds by it:
/// the budget less what the server holds now (the models are loaded),
/// shared evenly by the per-player graphs.
fn apply_memory_plans(
    plans: &[(String, MemoryPlan, usize)],
    budget: Option<(u64, String)>,
    max_worlds: usize,
    graphs: &mut [ServedGraph],
) -> Result<(), String> {
    if plans.is_empty() {
        return Ok(());
    }
    let in_use = crate::rss::current_rss_kib().map_or(0, |k| k * 1024);
    for (name, plan, index) in plans {
        let mut line = format!(
            "{name}: memory plan: model weights {} (loaded once, shared by every player); each player's world {} ({}state {} + {} of values per tick{})",
            human_bytes(plan.weights_bytes),
            human_bytes(plan.per_world()),
            if plan.measured_bytes.is_some() {
                "measured: two worlds running, without viewers; of it "
            } else {
                ""
            },
            human_bytes(plan.state_bytes),
            human_bytes(plan.values_bytes),
            if plan.unknown_values > 0 {
                format!(
                    "; {} outputs of unknown shape not counted",
                    plan.unknown_values
                )
            } else {
                String::new()
            }
        );
        match &budget {
            Some((bytes, said)) => {
                let share = bytes.saturating_sub(in_use) / plans.len() as u64;
                let fit = plan.worlds_that_fit(share);
                let fit_usize = usize::try_from(fit).unwrap_or(usize::MAX);
                line.push_str(&format!(
                    "; {said}, {} in use now{}: room for {fit} worlds",
                    human_bytes(in_use),
                    if plans.len() > 1 {
                        format!(", shared by {} graphs", plans.len())
                    } else {
                        String::new()
                    }
                ));
                if fit_usize < max_worlds {
                    line.push_str(&format!(
                        " (fewer than --max-worlds {max_worlds}: the plan is the limit)"
                    ));
                } else {
                    line.push_str(&format!(" (--max-worlds {max_worlds} is the limit)"));
                }
                if fit == 0 {
                    eprintln!("{line}");
                    return Err(format!(
                        "{said} leaves no room for a world of {name}: {} in use now, {} per world",
                        human_bytes(in_use),
                        human_bytes(plan.per_world())
                    ));
                }
                if let Some(ServedGraph::PerPlayer { max_worlds, .. }) = graphs.get_mut(*index) {
                    *max_worlds = Some(fit_usize);
                }
            }
            None => {
                line.push_str("; the machine's memory is not known: bounded by --max-worlds only")
            }
        }
        eprintln!("{line}");
    }
    Ok(())
}

/// A world thread `serve` started.
struct Started {
    name: String,
    /// The session's number among its graph's (`name#N` in the log).
    session: usize,
    label: String,
    handle: WorldHandle,
    latency: LatencyProbe,
    started: std::time::Instant,
    thread: std::thread::JoinHandle<(bool, u64, u64)>,
}

/// The figures kept of ended sessions (the newest; a server runs for days).
const KEEP_FINISHED: usize = 256;

/// Every world thread running, and the figures of those that ended: a
/// thread is joined within a second of its end (a reaper thread, and
/// whenever a world starts) or when the server stops, so nothing grows with
/// the sessions served.
#[derive(Default)]
struct Registry {
    running: Vec<Started>,
    /// Sessions started so far, per graph.
    numbers: std::collections::HashMap<String, usize>,
    rows: std::collections::VecDeque<serde_json::Value>,
    /// Rows let go to keep `rows` bounded.
    dropped: u64,
    /// A world ended on an error (or its thread panicked).
    failed: bool,
}

impl Registry {
    /// Joins `w`, prints its summary line, keeps its figures.
    fn finished(&mut self, w: Started) {
        let seconds = w.started.elapsed().as_secs_f64();
        let Ok((ok, ticks, late)) = w.thread.join() else {
            eprintln!("{}: the world's thread panicked", w.label);
            self.failed = true;
            return;
        };
        self.failed |= !ok;
        let (p50, p99, n) = w.latency.summary();
        eprintln!(
            "{}: {ticks} ticks, {late} late; {}",
            w.label,
            latency_summary(p50, p99, n)
        );
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
    fn reap(&mut self) {
        let (done, running): (Vec<Started>, Vec<Started>) = std::mem::take(&mut self.running)
            .into_iter()
            .partition(|w| w.thread.is_finished());
        self.running = running;
        for w in done {
            self.finished(w);
        }
    }
}

/// The registry of world threads.
type Worlds = Arc<Mutex<Registry>>;

/// Starts `session`'s tick thread, bridged to a web world; registers it in
/// `worlds`.
/// `keep`: where the world's state goes when its player has been gone too
/// long (`--session-store`).
fn start_world(
    mut session: Session<Backends>,
    name: &str,
    prompts: Vec<Prompt>,
    token: Token,
    keep: Option<KeptPlace>,
    worlds: &Worlds,
) -> WebWorld {
    let handle = session.handle();
    let (mut bridge, web) = wgraph_web::channel(name, handle.clone(), prompts, token);
    let mut registry = worlds.lock().unwrap_or_else(|p| p.into_inner());
    registry.reap();
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
    let thread = std::thread::Builder::new()
        .name(format!("world {label}"))
        .spawn(move || {
            let label = world_label;
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
                    } => {
                        match keep.as_ref().map(|p| p.write(*tick, snapshot, true)) {
                            Some(Err(StoreError::Taken)) if !taken => {
                                taken = true;
                                eprintln!(
                                    "{label}: another server has taken this world from the session store; stopping this copy"
                                );
                                stopper.stop();
                            }
                            Some(Err(StoreError::Io(e)))
                                if !std::mem::replace(&mut store_failed, true) =>
                            {
                                eprintln!("{label}: error: cannot write the session store: {e}");
                            }
                            _ => {}
                        }
                    }
                    WorldEvent::Reloaded(info) => eprintln!("{label}: {}", info.line()),
                    WorldEvent::Degraded {
                        tick,
                        level,
                        change,
                        why,
                    } => {
                        eprintln!("{label}: degrade level {level} at tick {tick}: {change} ({why})")
                    }
                    WorldEvent::ReloadFailed { cause, message } => {
                        eprint!("{message}");
                        eprintln!(
                            "{label}: reload failed ({cause}); the running graph is unchanged"
                        );
                    }
                    _ => {}
                }
            });
            if let Err(e) = &result {
                eprintln!("{label}: error: {e}");
                eprintln!("{label}: the world has stopped; its page says so");
                bridge.failed(&e.to_string());
            }
            // Its player is gone: keep the world as it is, to come back to.
            if result.is_ok()
                && bridge.evicted()
                && !taken
                && let Some(place) = &keep
            {
                match place.keep(&session.world) {
                    Ok(tick) => eprintln!("{label}: kept in the session store at tick {tick}"),
                    Err(e) => {
                        eprintln!("{label}: error: cannot keep the world in the session store: {e}")
                    }
                }
            }
            let world = &mut session.world;
            let finished = world.finish();
            (
                result.is_ok() && finished.is_ok(),
                world.ticks_done(),
                world.late_ticks(),
            )
        })
        // Out of threads: the world runs nowhere; its page says so.
        .unwrap_or_else(|e| {
            let message = format!("cannot start a world thread: {e}");
            std::thread::spawn(move || {
                eprintln!("error: {message}");
                (false, 0, 0)
            })
        });
    registry.running.push(Started {
        name: name.to_string(),
        session: number,
        label,
        handle,
        latency: web.latency_probe(),
        started: std::time::Instant::now(),
        thread,
    });
    web
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

/// The access policy from the flags; `None` after a usage error (printed).
fn access_policy(args: &ServeArgs, addr: &SocketAddr) -> Option<Access> {
    let mut access = Access::local(addr.ip());
    access.public_view = args.public_view;
    access.no_token = args.no_token;
    access.extra_hosts = args
        .allow_host
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    for origin in &args.allow_origin {
        match parse_origin(origin) {
            Ok(o) => access.extra_origins.push(o),
            Err(e) => {
                eprintln!("error: --allow-origin {e}");
                return None;
            }
        }
    }
    if is_public(addr) {
        if args.no_token && !args.public {
            eprintln!(
                "error: --host {} reaches beyond this machine and --no-token lets anyone who reaches it steer the worlds; \
                 drop --no-token (each world then has a secret token), or add --public if that is what you want",
                args.host
            );
            return None;
        }
        eprintln!(
            "warning: serving on {addr}, which other machines can reach; the traffic is plain HTTP, \
             so anyone on the path can read a world's token (put a TLS proxy in front for a public demo)"
        );
        if args.no_token {
            eprintln!("warning: --no-token --public: anyone who reaches {addr} steers the worlds");
        }
    }
    Some(access)
}

/// Prints where each world is played (with its token: the only way to steer).
fn print_links(bound: SocketAddr, links: &[(String, Option<String>)]) {
    let query = |token: &Option<String>| {
        token
            .as_ref()
            .map(|t| format!("?token={t}"))
            .unwrap_or_default()
    };
    if let [(name, token)] = links {
        eprintln!(
            "serving {name} at http://{bound}/{} — Ctrl-C stops",
            query(token)
        );
    } else {
        eprintln!(
            "serving {} worlds at http://{bound}/ — Ctrl-C stops",
            links.len()
        );
        for (i, (name, token)) in links.iter().enumerate() {
            eprintln!("  {name}: http://{bound}/w/{i}{}", query(token));
        }
    }
    if links.iter().any(|(_, t)| t.is_some()) {
        eprintln!("  (a world's token lets a page steer it: share the link only with its player)");
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
