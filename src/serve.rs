//! `wgraph serve FILE...`: each graph a live world, played in a browser.
//! The flags become a [`ServeOptions`] and one [`GraphFile`] per graph (its
//! model cache, its players' calls fused as `--batch-across-players` says);
//! the server is `wgraph_web::host`'s. Here: checking the flags, printing
//! the links, Ctrl-C/SIGTERM, the exit code and `--metrics`.

use crate::Outcome;
use crate::flags::{LateFlags, LiveWorldFlags, ModelFlags, SeedFlag, SetFlags};
use crate::players;
use clap::ValueEnum;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use wgraph_session::SessionOptions;
use wgraph_web::host::{GraphFile, HostError, Link, ServeOptions};
use wgraph_web::{Access, Limits, ServeConfig, SessionLimits, Token, is_public, parse_origin};

/// Whose clock players' worlds tick on (`serve --tick-clock`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TickClock {
    /// One clock for every player's world of a graph.
    Shared,
    /// Each world its own, from when it opened.
    Own,
}

/// `wgraph serve`'s flags.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// One or more graph files: one world each.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Port to listen on (0: any free port; the address is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to bind; anything but 127.0.0.1 opens the worlds to the network.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[command(flatten)]
    live: LiveWorldFlags,
    #[command(flatten)]
    params: SetFlags,
    #[command(flatten)]
    seed: SeedFlag,
    #[command(flatten)]
    model: ModelFlags,
    /// Worker threads per world.
    #[arg(long)]
    workers: Option<usize>,
    /// At the end, write each world's ticks, fps, late ticks and key-to-frame
    /// latency (p50, p99) as JSON.
    #[arg(long, value_name = "FILE.json")]
    metrics: Option<PathBuf>,
    #[command(flatten)]
    late: LateFlags,
    /// Also answer requests for this host name (default: loopback names and
    /// the bound address only, against DNS rebinding; repeatable).
    #[arg(long, value_name = "NAME")]
    allow_host: Vec<String>,
    /// Also let pages from this origin open a world's socket, e.g.
    /// https://studio.example (default: the server's own pages only; repeatable).
    #[arg(long, value_name = "ORIGIN")]
    allow_origin: Vec<String>,
    /// Let sockets without a world's token watch it (never steer).
    #[arg(long)]
    public_view: bool,
    /// The token every world's URL carries (at least 16 letters, digits, `-`
    /// or `_`; default: a random one per world, printed at start).
    #[arg(long, value_name = "TOKEN", conflicts_with = "no_token")]
    token: Option<String>,
    /// Let any socket steer, without a token (loopback only, unless --public).
    #[arg(long)]
    no_token: bool,
    /// Allow --no-token on a non-loopback --host: anyone who reaches the
    /// address steers the worlds.
    #[arg(long)]
    public: bool,
    /// Open connections at most, in all (the rest are closed at once).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_connections: u32,
    /// Open connections at most from one IP address.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_per_address: u32,
    /// Seconds a client has to send a request's headers.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=3600))]
    header_timeout: u32,
    /// One world per graph for every visitor (one controls, the others
    /// watch) instead of a world per player.
    #[arg(long)]
    shared: bool,
    /// Worlds running at once, all graphs' players together; one more
    /// player is told the server is full.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_worlds: u32,
    /// Seconds a player's world waits for them to come back (a reload of
    /// the page, a dropped connection) before it ends.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(0..=86_400))]
    resume_within: u32,
    /// Worlds one IP address may have open at once (per graph).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_worlds_per_address: u32,
    /// Keep a player's world here when they have been gone --resume-within
    /// seconds (its snapshot), and bring it back as it was when they
    /// return, instead of ending it.
    #[arg(long, value_name = "DIR")]
    session_store: Option<PathBuf>,
    /// With --session-store: seconds a world with no player runs before it
    /// is kept in the store and its memory freed.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(0..=604_800))]
    idle: u32,
    /// With --session-store: keep every player's world there every N ticks
    /// too, so a server that dies loses at most N ticks of it (another
    /// replica sharing the store brings it back).
    #[arg(long, value_name = "N", requires = "session_store",
          value_parser = clap::value_parser!(u64).range(1..))]
    snapshot_every: Option<u64>,
    /// Players' worlds of a graph start their ticks on one clock (`shared`:
    /// their model calls arrive together and are fused) or each on its own
    /// from when it opened (`own`).
    #[arg(long, value_enum, default_value_t = TickClock::Shared)]
    tick_clock: TickClock,
    /// With --session-store: seconds a kept world waits for its player
    /// before it is deleted (default 7 days; at least twice a running
    /// world's claim on its file, so only worlds no server runs expire).
    #[arg(long, value_name = "SECONDS", default_value_t = 604_800,
          value_parser = clap::value_parser!(u64).range(60..=315_360_000))]
    store_keep: u64,
    /// Memory players' worlds may use (e.g. 8G, 512M; default: 80% of the
    /// machine's): `serve` prints each graph's memory plan and turns away a
    /// player whose world would not fit.
    #[arg(long, value_name = "SIZE")]
    memory: Option<String>,
    #[command(flatten)]
    batch: players::BatchArgs,
}

/// `wgraph serve FILE... [--port P] [--host H] [--watch]`
pub fn serve(args: &ServeArgs) -> Outcome {
    let options = match serve_options(args) {
        Ok(o) => o,
        Err(outcome) => return outcome,
    };
    let output = crate::outputs::front_end(args.live.out.as_deref(), args.live.sinks.keep_last);
    let graphs = args
        .files
        .iter()
        .map(|file| {
            let label = file.display().to_string();
            // The graph's models, loaded once for every session of it; with
            // players, their calls fused (`--batch-across-players`).
            let batch = (!args.shared).then(|| args.batch.policy()).flatten();
            let stats = batch.as_ref().map(|p| Arc::clone(&p.stats));
            let backends = match batch {
                Some(policy) => crate::load::backends().batched(
                    policy,
                    args.batch.batch_across_players == crate::players::Switch::On,
                ),
                None => crate::load::backends(),
            };
            GraphFile {
                options: SessionOptions {
                    set: args.params.set.clone(),
                    seed: args.seed.seed,
                    output: output.clone(),
                    provider: args.model.provider(),
                    backend_kind: args.model.backend_kind(),
                    watch: args.live.watch,
                    // Prompt boxes change parameters live.
                    rebuilds: true,
                    notices: Arc::new(move |line: &str| eprintln!("{label}: {line}")),
                    ..crate::load::session_options(file)
                },
                models: Arc::new(wgraph_engine::model::ModelCache::new(backends)),
                batch: stats,
            }
        })
        .collect();
    let served = wgraph_web::host::serve_files(
        graphs,
        &options,
        print_links,
        shutdown_signal(),
        Arc::new(|line: &str| eprintln!("{line}")),
    );
    let served = match served {
        Ok(s) => s,
        Err(HostError::Graph(text)) => {
            eprint!("{text}");
            return Outcome::GraphErrors;
        }
        Err(HostError::Usage(e)) => {
            eprintln!("error: {e}");
            return Outcome::Usage;
        }
        Err(HostError::Runtime(e)) => {
            eprintln!("error: {e}");
            return Outcome::RuntimeFailure;
        }
    };
    let mut outcome = Outcome::Ok;
    if served.serve_failed || (served.world_failed && args.shared) {
        outcome = Outcome::RuntimeFailure;
    }
    if let Some(path) = &args.metrics {
        let text = serde_json::to_string_pretty(&serde_json::json!({ "worlds": served.rows }))
            .unwrap_or_default();
        if let Err(e) = wgraph_engine::output::write_file(path, (text + "\n").as_bytes()) {
            eprintln!("error: cannot write {}: {e}", path.display());
            outcome = Outcome::RuntimeFailure;
        }
    }
    outcome
}

/// The flags as [`ServeOptions`]; a usage error is printed.
fn serve_options(args: &ServeArgs) -> Result<ServeOptions, Outcome> {
    let addr: SocketAddr = match format!("{}:{}", args.host, args.port).parse() {
        Ok(a) => a,
        Err(_) => {
            eprintln!(
                "error: --host {} --port {}: not an address",
                args.host, args.port
            );
            return Err(Outcome::Usage);
        }
    };
    if let Some(fps) = args.live.fps
        && let Err(e) = wgraph_engine::settings::check_fps(fps)
    {
        eprintln!("error: --fps: {e}");
        return Err(Outcome::Usage);
    }
    let access = access_policy(args, &addr).ok_or(Outcome::Usage)?;
    let memory = wgraph_web::plan::memory_budget(args.memory.as_deref()).map_err(|e| {
        eprintln!("error: --memory {e}");
        Outcome::Usage
    })?;
    // One token for every world (`--token`), or a random one each.
    let token = args
        .token
        .as_deref()
        .map(Token::parse)
        .transpose()
        .map_err(|e| {
            eprintln!("error: --token: {e}");
            Outcome::Usage
        })?;
    if let Some(dir) = &args.session_store {
        if args.shared {
            eprintln!("error: --session-store keeps players' own worlds; --shared has none");
            return Err(Outcome::Usage);
        }
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("error: --session-store {}: {e}", dir.display());
            return Err(Outcome::Usage);
        }
    }
    Ok(ServeOptions {
        config: ServeConfig {
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
        },
        shared: args.shared,
        token,
        fps: args.live.fps,
        workers: args.workers.unwrap_or(0),
        on_late: args.late.on_late.clone(),
        degrade: args.late.degrade.clone(),
        shared_clock: args.tick_clock == TickClock::Shared,
        session_store: args.session_store.clone(),
        snapshot_every: args.snapshot_every,
        store_keep: Duration::from_secs(args.store_keep),
        memory,
    })
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

/// Prints where each world is played (with its token: the only way to
/// steer), in one write: a reader of the log never sees half an address.
fn print_links(bound: SocketAddr, links: &[Link]) {
    use std::fmt::Write as _;
    let query = |token: &Option<String>| {
        token
            .as_ref()
            .map(|t| format!("?token={t}"))
            .unwrap_or_default()
    };
    let mut text = String::new();
    if let [Link { name, token }] = links {
        let _ = writeln!(
            text,
            "serving {name} at http://{bound}/{} — Ctrl-C stops",
            query(token)
        );
    } else {
        let _ = writeln!(
            text,
            "serving {} worlds at http://{bound}/ — Ctrl-C stops",
            links.len()
        );
        for (i, Link { name, token }) in links.iter().enumerate() {
            let _ = writeln!(text, "  {name}: http://{bound}/w/{i}{}", query(token));
        }
    }
    if links.iter().any(|l| l.token.is_some()) {
        text.push_str(
            "  (a world's token lets a page steer it: share the link only with its player)\n",
        );
    }
    eprint!("{text}");
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
