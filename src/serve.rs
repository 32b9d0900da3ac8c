//! `wgraph serve FILE...`: each graph a live world, played in a browser
//! (crate `wgraph-web`). Worlds tick on their own threads at their graph's
//! fps; the server runs until Ctrl-C or SIGTERM, then every world stops at a
//! tick boundary and finishes its sinks.

use crate::backends::Backends;
use crate::live::{CliSource, Watcher};
use crate::load::Failure;
use crate::{Outcome, ServeArgs};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use wgraph_engine::graph::Graph;
use wgraph_engine::model::ModelCache;
use wgraph_engine::node::{DisplayTarget, OutputConfig};
use wgraph_engine::world::{GraphSource, World, WorldConfig, WorldEvent};
use wgraph_web::Prompt;

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
        && !(fps.is_finite() && fps > 0.0)
    {
        eprintln!("error: --fps must be a positive number of ticks per second");
        return Outcome::Usage;
    }
    let output = OutputConfig {
        dir: args.out.clone(),
        display: DisplayTarget::Discard,
    };
    let mut web_worlds = Vec::new();
    let mut threads = Vec::new();
    let mut handles = Vec::new();
    for file in &args.files {
        let source = Arc::new(CliSource {
            file: file.clone(),
            set: args.set.clone(),
            seed: args.seed,
            paths: Vec::new(),
            output: output.clone(),
            provider: args.provider.map(Into::into),
            backend_kind: args.backend.map(Into::into),
            // One cache per world: a cache keeps only what its own graph uses.
            models: Arc::new(ModelCache::new(Backends::new())),
            record: false,
        });
        let built = match source.build_first() {
            Ok(b) => b,
            Err(Failure::Errors(text)) => {
                eprint!("{text}");
                return Outcome::GraphErrors;
            }
            Err(Failure::Usage(u)) => {
                eprintln!("error: {}", u.0);
                return Outcome::Usage;
            }
        };
        let prompts = prompts_of(&built.graph);
        let name = if built.graph.settings.name.is_empty() {
            file.display().to_string()
        } else {
            built.graph.settings.name.clone()
        };
        let (on_late, degrade) =
            match crate::live::late_policy(&built.graph, args.on_late.as_deref(), &args.degrade) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {}: {e}", file.display());
                    return Outcome::Usage;
                }
            };
        let config = WorldConfig {
            on_late,
            degrade,
            workers: args.workers.unwrap_or(0),
            fps: Some(args.fps.unwrap_or(built.graph.settings.fps)),
            stats_every: Some(Duration::from_secs(1)),
            ..WorldConfig::default()
        };
        let files = built.files;
        let mut world = match World::new(
            Arc::new(built.graph),
            Some(Arc::clone(&source) as Arc<dyn GraphSource>),
            Vec::new(),
            config,
        ) {
            Ok(w) => w,
            Err(e) => {
                eprintln!("error: {e}");
                return Outcome::RuntimeFailure;
            }
        };
        let handle = world.handle();
        let watcher = if args.watch {
            match Watcher::start(handle.clone(), &files) {
                Ok(w) => Some(w),
                Err(e) => {
                    eprintln!("error: {e}");
                    return Outcome::RuntimeFailure;
                }
            }
        } else {
            None
        };
        let (mut bridge, web) = wgraph_web::channel(&name, handle.clone(), prompts);
        handles.push(handle);
        web_worlds.push(web);
        let label = name.clone();
        let thread = std::thread::Builder::new()
            .name(format!("world {name}"))
            .spawn(move || {
                let mut watcher = watcher;
                let result = world.run(&mut |event| {
                    bridge.on_event(event);
                    match event {
                        WorldEvent::Reloaded(info) => {
                            eprintln!("{label}: {}", info.line());
                            if let Some(w) = watcher.as_mut()
                                && let Err(e) = w.watch(&info.files)
                            {
                                eprintln!("{label}: warning: {e}");
                            }
                        }
                        WorldEvent::Degraded {
                            tick,
                            level,
                            change,
                            why,
                        } => eprintln!(
                            "{label}: degrade level {level} at tick {tick}: {change} ({why})"
                        ),
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
                }
                let finished = world.finish();
                (
                    result.is_ok() && finished.is_ok(),
                    world.ticks_done(),
                    world.late_ticks(),
                )
            });
        match thread {
            Ok(t) => threads.push((name, t)),
            Err(e) => {
                eprintln!("error: cannot start a world thread: {e}");
                return Outcome::RuntimeFailure;
            }
        }
    }
    let count = web_worlds.len();
    let started = std::time::Instant::now();
    let latencies: Vec<_> = web_worlds.iter().map(|w| w.latency_probe()).collect();
    let served = wgraph_web::serve(
        web_worlds,
        addr,
        |bound| {
            eprintln!(
                "serving {count} world{} at http://{bound}/ — Ctrl-C stops",
                if count == 1 { "" } else { "s" }
            );
        },
        shutdown_signal(),
        Arc::new(|line: &str| eprintln!("{line}")),
    );
    for h in &handles {
        h.stop();
    }
    let mut outcome = Outcome::Ok;
    if let Err(e) = served {
        eprintln!("error: cannot serve on {addr}: {e}");
        outcome = Outcome::RuntimeFailure;
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut rows = Vec::new();
    for ((name, t), latency) in threads.into_iter().zip(latencies) {
        match t.join() {
            Ok((ok, ticks, late)) => {
                let (p50, p99, n) = latency.summary();
                eprintln!(
                    "{name}: {ticks} ticks, {late} late; key→frame latency p50 {p50:.1} ms, p99 {p99:.1} ms ({n} key changes)"
                );
                rows.push(serde_json::json!({
                    "world": name,
                    "ticks": ticks,
                    "seconds": seconds,
                    "fps": if seconds > 0.0 { ticks as f64 / seconds } else { 0.0 },
                    "late_ticks": late,
                    "latency_p50_ms": p50,
                    "latency_p99_ms": p99,
                    "latency_samples": n,
                }));
                if !ok {
                    outcome = Outcome::RuntimeFailure;
                }
            }
            Err(_) => outcome = Outcome::RuntimeFailure,
        }
    }
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
