//! `wgraph serve`'s server, as a library: graph files become live worlds
//! served over HTTP until the server stops.
//!
//! - [`ServeOptions`] — everything the command line says about serving,
//!   as plain values (the binary turns flags into it).
//! - [`GraphFile`] — one graph to serve: its [`SessionOptions`] and the
//!   model cache its sessions share (the caller picks the backends and
//!   how players' model calls are fused).
//! - [`serve_files`] — opens each graph (a shared world, or a checked graph
//!   whose players each get a world: opened on demand, bounded by its
//!   memory plan, kept in and restored from the session store), serves
//!   them with [`serve`](crate::serve), and at the end stops every world
//!   and hands back their figures ([`Served`]). Errors before serving are
//!   [`HostError`]s, their text ready to print.
//!
//! Everything the server says goes to a [`Log`].

use crate::plan::{MemoryBudget, bound_worlds, measure_rss_per_world, measure_world};
use crate::store::{LEASE, SWEEP_EVERY, SessionStore, StoreError};
use crate::worlds::{Reaper, Worlds, prompts_of};
use crate::{Log, OpenWorld, ReopenWorld, ServeConfig, ServedGraph, Token};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use wgraph_engine::batch::BatchStats;
use wgraph_engine::memory::MemoryPlan;
use wgraph_engine::model::{Backend, ModelCache};
use wgraph_engine::world::{TickGrid, WorldConfig};
use wgraph_grammar::diagnostic::escape_controls;
use wgraph_session::{OpenError, Session, SessionOptions};

/// How to serve (see the module docs): `serve`'s flags as plain values.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address, access policy, connection and session limits.
    pub config: ServeConfig,
    /// One world per graph for everyone (`--shared`), not one per player.
    pub shared: bool,
    /// One token for every world (`--token`); `None`: a random one each.
    pub token: Option<Token>,
    /// Ticks per second, replacing the graph's (`--fps`).
    pub fps: Option<f64>,
    /// Worker threads per world (`--workers`; 0: inline).
    pub workers: usize,
    /// The late-tick policy (`--on-late`) and its settings (`--degrade`).
    pub on_late: Option<String>,
    /// Cheaper settings for `on_late = degrade`, in order.
    pub degrade: Vec<String>,
    /// Players' worlds of a graph tick on one clock (`--tick-clock shared`).
    pub shared_clock: bool,
    /// Where players' worlds are kept (`--session-store DIR`, created).
    pub session_store: Option<PathBuf>,
    /// A world is written to the store every N ticks (`--snapshot-every`).
    pub snapshot_every: Option<u64>,
    /// How long a kept world waits for its player (`--store-keep`; at least
    /// twice the longest claim).
    pub store_keep: Duration,
    /// What players' worlds may use (see [`memory_budget`](crate::plan::memory_budget)).
    pub memory: Option<MemoryBudget>,
}

/// One graph to serve.
pub struct GraphFile<B: Backend> {
    /// The graph file and what the command line changes about it.
    pub options: SessionOptions,
    /// The models its sessions share (loaded once for every player).
    pub models: Arc<ModelCache<B>>,
    /// Where fused model calls are counted (`None`: they are not fused).
    pub batch: Option<Arc<BatchStats>>,
}

/// Where a world is played: its name and, unless `--no-token`, the token
/// its link carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The world's name (the graph's, or its file).
    pub name: String,
    /// The token a page shows to steer it.
    pub token: Option<String>,
}

/// Why the server did not start; the text is ready to print.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A graph has errors (rendered, with the `FILE: N errors` line).
    #[error("{0}")]
    Graph(String),
    /// A flag, or a graph's world configuration, is not what it should be
    /// (the memory plan leaves no room for a world, too).
    #[error("{0}")]
    Usage(String),
    /// A world fails, or something could not start.
    #[error("{0}")]
    Runtime(String),
}

impl From<OpenError> for HostError {
    fn from(e: OpenError) -> HostError {
        match e {
            OpenError::Graph(text) => HostError::Graph(text),
            // A flag may quote the user's text: shown, never acted on.
            OpenError::Usage(u) => HostError::Usage(escape_controls(&u).into_owned()),
            OpenError::Runtime(e) => HostError::Runtime(escape_controls(&e).into_owned()),
        }
    }
}

/// How serving ended.
#[derive(Debug)]
pub struct Served {
    /// The server could not serve (already logged as `error: cannot serve
    /// on ADDR: …`).
    pub serve_failed: bool,
    /// A world ended on an error.
    pub world_failed: bool,
    /// One row per session (the newest [`KEEP_FINISHED`](crate::worlds::KEEP_FINISHED)).
    pub rows: Vec<serde_json::Value>,
}

/// Opens `graphs` and serves them until `shutdown` completes (see the
/// module docs); `on_bound` hears the bound address and each world's link.
pub fn serve_files<B: Backend + 'static>(
    graphs: Vec<GraphFile<B>>,
    options: &ServeOptions,
    on_bound: impl FnOnce(SocketAddr, &[Link]),
    shutdown: impl Future<Output = ()> + Send + 'static,
    log: Log,
) -> Result<Served, HostError> {
    // This server among replicas sharing a session store.
    let owner: Arc<str> = {
        let t = Token::random().map_err(|e| HostError::Runtime(e.to_string()))?;
        format!("{}-{}", std::process::id(), &t.as_str()[..8]).into()
    };
    let mut served = Vec::new();
    let mut links = Vec::new();
    // Per-player graphs' memory plans (name, plan) and their index in `served`.
    let mut plans: Vec<(String, MemoryPlan)> = Vec::new();
    let mut planned = Vec::new();
    // Every world thread started, shared or per player, joined at the end.
    let worlds = Worlds::new(Arc::clone(&log));
    // The longest claim a running world's file has (the sweep keeps at
    // least twice it).
    let mut longest_lease = LEASE;
    for graph in graphs {
        let opened = open_graph(graph, options, served.len(), &owner, &worlds, &log)?;
        links.push(Link {
            name: opened.name,
            token: (!options.config.access.no_token).then(|| opened.token.as_str().to_string()),
        });
        if let Some((name, plan)) = opened.plan {
            planned.push(served.len());
            plans.push((name, plan));
        }
        longest_lease = longest_lease.max(opened.lease);
        served.push(opened.served);
    }
    if !plans.is_empty() {
        let in_use = wgraph_session::rss::current_rss_kib().map_or(0, |k| k * 1024);
        let bounds = bound_worlds(
            &plans,
            options.memory.as_ref(),
            options.config.sessions.max_worlds,
            in_use,
            &|line| log(line),
        )
        .map_err(HostError::Usage)?;
        for (index, bound) in planned.into_iter().zip(bounds) {
            if let (Some(ServedGraph::PerPlayer { max_worlds, .. }), Some(bound)) =
                (served.get_mut(index), bound)
            {
                *max_worlds = Some(bound);
            }
        }
    }
    // The store is bounded in time: swept now and every minute.
    let sweep_store = options.session_store.clone().map(|dir| {
        let keep = options.store_keep.max(2 * longest_lease);
        let log = Arc::clone(&log);
        Box::new(
            move || match crate::store::sweep(&dir, keep, std::time::SystemTime::now()) {
                Ok(swept) => {
                    if let Some(line) = swept.line(keep) {
                        log(&line);
                    }
                }
                Err(e) => log(&format!("warning: session store {}: {e}", dir.display())),
            },
        ) as Box<dyn Fn() + Send>
    });
    if let Some(sweep) = &sweep_store {
        sweep();
    }
    // Ended worlds' threads are joined within a second, not at the end.
    let reaper = Reaper::start(&worlds, sweep_store, SWEEP_EVERY);
    let addr = options.config.addr;
    let result = crate::serve(
        served,
        options.config.clone(),
        |bound| on_bound(bound, &links),
        shutdown,
        Arc::clone(&log),
    );
    let serve_failed = match result {
        Ok(()) => false,
        Err(e) => {
            log(&format!("error: cannot serve on {addr}: {e}"));
            true
        }
    };
    reaper.stop();
    let finished = worlds.stop_all();
    if finished.dropped > 0 {
        log(&format!(
            "({} earlier sessions' figures were not kept: the newest {} are)",
            finished.dropped,
            crate::worlds::KEEP_FINISHED
        ));
    }
    Ok(Served {
        serve_failed,
        world_failed: finished.failed,
        rows: finished.rows,
    })
}

/// One graph opened for serving.
struct Opened {
    name: String,
    token: Token,
    served: ServedGraph,
    /// A per-player graph's memory plan.
    plan: Option<(String, MemoryPlan)>,
    /// The claim its worlds' files have in the session store.
    lease: Duration,
}

/// Opens one graph: its shared world, or (per player) checks it, measures
/// its memory plan and makes how its players' worlds are opened and
/// brought back from the store.
fn open_graph<B: Backend + 'static>(
    graph: GraphFile<B>,
    options: &ServeOptions,
    index: usize,
    owner: &Arc<str>,
    worlds: &Worlds,
    log: &Log,
) -> Result<Opened, HostError> {
    let GraphFile {
        options: session_options,
        models,
        batch,
    } = graph;
    let file = session_options.file.clone();
    let label = file.display().to_string();
    let mut prompts = Vec::new();
    let mut name = label.clone();
    let mut config = WorldConfig::default();
    let session = Session::open(session_options.clone(), Arc::clone(&models), |graph| {
        if let Some(note) =
            wgraph_session::outputs::skipped_note(&label, graph, &session_options.output, false)
        {
            log(&note);
        }
        prompts = prompts_of(graph);
        if !graph.settings.name.is_empty() {
            name = graph.settings.name.clone();
        }
        let (on_late, degrade) =
            wgraph_session::late_policy(graph, options.on_late.as_deref(), &options.degrade)
                .map_err(|e| format!("{label}: {e}"))?;
        config = WorldConfig {
            on_late,
            degrade,
            workers: options.workers,
            fps: Some(options.fps.unwrap_or(graph.settings.fps)),
            stats_every: Some(Duration::from_secs(1)),
            // An edit of `world { fps }` re-paces the world unless --fps was given.
            follow_graph_fps: options.fps.is_none(),
            snapshot_every: options.snapshot_every.and_then(std::num::NonZeroU64::new),
            // Players' worlds of this graph tick on one clock: their
            // model calls arrive together and are fused.
            tick_grid: (!options.shared && options.shared_clock).then(TickGrid::new),
            ..WorldConfig::default()
        };
        Ok(config.clone())
    });
    let mut session = session?;
    let token = match options.token.clone() {
        Some(t) => t,
        None => Token::random().map_err(|e| HostError::Runtime(e.to_string()))?,
    };
    if options.shared {
        let web = worlds.start(session, &name, prompts, token.clone(), None);
        return Ok(Opened {
            name,
            token,
            served: ServedGraph::Shared(web),
            plan: None,
            lease: LEASE,
        });
    }
    // Per player: the graph is checked; each player's world is opened
    // like this one when they come (this one is not needed, but for the
    // memory plan its state is measured).
    let mut plan = match measure_world(&mut session) {
        Ok(snapshot) => MemoryPlan::of(session.graph(), snapshot.as_ref()),
        Err(e) => {
            return Err(HostError::Runtime(format!(
                "{}: the world fails on its first ticks: {e}",
                file.display()
            )));
        }
    };
    drop(session);
    let store = options.session_store.as_ref().map(|dir| SessionStore {
        dir: dir.clone(),
        graph: index,
        owner: Arc::clone(owner),
        lease: SessionStore::lease_for(options.snapshot_every, config.fps),
        periodic: options.snapshot_every.is_some(),
    });
    let lease = store.as_ref().map_or(LEASE, |s| s.lease);
    let open_session = {
        let models = Arc::clone(&models);
        move || {
            let config = config.clone();
            Session::open(session_options.clone(), Arc::clone(&models), move |_| {
                Ok(config)
            })
            .map_err(|e| match e {
                OpenError::Graph(text) => text,
                OpenError::Usage(u) | OpenError::Runtime(u) => u,
            })
        }
    };
    // What a world really holds once it runs (its thread, runner, the
    // backend's scratch): two more, side by side.
    plan.measured_bytes = measure_rss_per_world(&open_session, 2);
    let open: OpenWorld = {
        let (open_session, worlds, store) = (open_session.clone(), worlds.clone(), store.clone());
        let (graph_name, prompts) = (name.clone(), prompts.clone());
        Arc::new(move |id: &str| {
            let session = open_session()?;
            let token = Token::random().map_err(|e| e.to_string())?;
            let keep = store.as_ref().map(|s| s.place(id, &token));
            Ok(worlds.start(session, &graph_name, prompts.clone(), token, keep))
        })
    };
    // A session kept in the store comes back as it was left.
    let reopen: Option<ReopenWorld> = store.map(|store| {
        let (worlds, graph_name, log) = (worlds.clone(), name.clone(), Arc::clone(log));
        Arc::new(move |id: &str, token: &str| {
            let kept = match store.take(id, token)? {
                Ok(kept) => kept,
                Err(elsewhere) => return Some(Err(elsewhere.to_string())),
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
                        Err(StoreError::Taken) => {
                            return Err("the world was taken meanwhile".into());
                        }
                        Err(e) => return Err(format!("the session store: {e}")),
                    }
                }
                log(&format!(
                    "{graph_name}: session {id} back from the store at tick {}",
                    kept.tick
                ));
                Ok(worlds.start(session, &graph_name, prompts.clone(), token, Some(keep)))
            })();
            match &opened {
                Ok(_) => kept.done(),
                Err(_) => kept.put_back(),
            }
            Some(opened)
        }) as ReopenWorld
    });
    Ok(Opened {
        name: name.clone(),
        token: token.clone(),
        served: ServedGraph::PerPlayer {
            name: name.clone(),
            link: token,
            open,
            reopen,
            batch,
            max_worlds: None,
        },
        plan: Some((name, plan)),
        lease,
    })
}
