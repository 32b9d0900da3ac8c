//! The HTTP server: routes, the page, and one WebSocket per viewer split
//! into a reader and a writer task (axum's chat example's shape), behind
//! the [`Access`] policy and the [`listener`](crate::listener)'s limits.

use crate::access::{Access, Refusal, Role};
use crate::listener::{Limits, Slot};
use crate::log::{Log, ViewerLog};
use crate::sessions::{Players, Refused, ServedGraph, SessionLimits};
use crate::{FrameMsg, WebWorld, WorldStatus};
use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value as Json, json};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use wgraph_engine::value::{Actions, Key};
use wgraph_engine::world::ParamSet;

/// The largest message a page may send, in bytes.
pub const MAX_MESSAGE: usize = 4096;

/// How long pages get to hear that the last world failed before the server
/// stops.
const LAST_WORDS: Duration = Duration::from_secs(2);

const PAGE: &str = include_str!("assets/world.html");
const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// One served graph, as the server holds it.
enum Served {
    Shared(Arc<WebWorld>),
    PerPlayer(Arc<Players>),
}

impl Served {
    fn name(&self) -> &str {
        match self {
            Served::Shared(w) => &w.name,
            Served::PerPlayer(p) => &p.name,
        }
    }
}

struct AppState {
    graphs: Vec<Served>,
    next_client: AtomicU64,
    access: Access,
    log: ViewerLog,
    sessions: SessionLimits,
    /// Per-player sessions of all graphs.
    worlds_running: AtomicUsize,
    /// Players told the server was full.
    refused: AtomicU64,
}

/// Where and how to serve (built from `serve`'s flags).
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub addr: SocketAddr,
    pub access: Access,
    pub limits: Limits,
    /// Per-player sessions: how many, how long one waits for its player.
    pub sessions: SessionLimits,
}

/// Serves `graphs` until `shutdown` completes or, when every graph is
/// shared, no world runs any more.
/// `on_bound` gets the address actually bound (port 0 picks a free one);
/// `log` gets the server's lines (viewer mistakes through a [`ViewerLog`]:
/// sanitised, rate-limited).
pub fn serve(
    graphs: Vec<ServedGraph>,
    config: ServeConfig,
    on_bound: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
    log: Log,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let viewer_log = ViewerLog::new(Arc::clone(&log));
    let result = runtime.block_on(async {
        let state = Arc::new(AppState {
            graphs: graphs
                .into_iter()
                .map(|g| match g {
                    ServedGraph::Shared(w) => Served::Shared(Arc::new(w)),
                    ServedGraph::PerPlayer {
                        name,
                        link,
                        open,
                        reopen,
                        batch,
                        max_worlds,
                    } => Served::PerPlayer(Arc::new(Players::new(
                        name, link, open, reopen, batch, max_worlds,
                    ))),
                })
                .collect(),
            next_client: AtomicU64::new(1),
            access: config.access,
            log: viewer_log.clone(),
            sessions: config.sessions,
            worlds_running: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
        });
        tokio::spawn(reap(Arc::clone(&state), log.clone()));
        let app = Router::new()
            .route("/", get(root))
            .route("/w/{index}", get(world_page))
            .route("/w/{index}/ws", get(socket))
            .route("/app.js", get(|| asset(APP_JS, "text/javascript")))
            .route("/app.css", get(|| asset(APP_CSS, "text/css")))
            .route("/metrics", get(metrics))
            .layer(middleware::from_fn_with_state(
                Arc::clone(&state),
                check_host,
            ))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind(config.addr).await?;
        on_bound(listener.local_addr()?);
        // A shared world that fails stops the server once no other runs;
        // per-player sessions come and go.
        let shared: Vec<Arc<WebWorld>> = state
            .graphs
            .iter()
            .filter_map(|g| match g {
                Served::Shared(w) => Some(Arc::clone(w)),
                Served::PerPlayer(_) => None,
            })
            .collect();
        let only_shared = shared.len() == state.graphs.len();
        let all_stopped = async move {
            if !only_shared {
                return std::future::pending().await;
            }
            futures_util::future::join_all(shared.iter().map(|w| w.stopped())).await;
            log("web: no world is running any more; the server stops");
            tokio::time::sleep(LAST_WORDS).await;
        };
        let stop = async move {
            tokio::select! {
                () = shutdown => {}
                () = all_stopped => {}
            }
        };
        crate::listener::run(listener, app, config.limits, viewer_log.clone(), stop).await;
        for g in &state.graphs {
            if let Served::PerPlayer(p) = g {
                p.stop_all();
            }
        }
        Ok(())
    });
    viewer_log.flush();
    // Open sockets end with the runtime.
    runtime.shutdown_timeout(Duration::from_millis(500));
    result
}

/// Every second: ends the per-player sessions whose player is gone for
/// good, or whose world failed.
async fn reap(state: Arc<AppState>, log: Log) {
    let mut every = tokio::time::interval(Duration::from_millis(250));
    loop {
        every.tick().await;
        for g in &state.graphs {
            if let Served::PerPlayer(p) = g {
                for line in p.reap(&state.worlds_running, p.grace(&state.sessions)) {
                    log(&format!("web: `{}`: {line}", p.name));
                }
            }
        }
    }
}

/// Every request: the `Host` header must be one this server answers
/// (DNS rebinding).
async fn check_host(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    match state.access.check_host(host) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            state
                .log
                .line(&format!("web: refused a request: {refusal}"));
            (StatusCode::FORBIDDEN, refusal.to_string()).into_response()
        }
    }
}

async fn asset(body: &'static str, kind: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

/// `/metrics` (see the `metrics` module).
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    use crate::metrics::{label, world};
    let mut out = String::from(crate::metrics::HEADER);
    for g in &state.graphs {
        let graph = label(g.name());
        match g {
            Served::Shared(w) => {
                let running = usize::from(w.status() == WorldStatus::Running);
                out.push_str(&format!("wgraph_worlds{{graph=\"{graph}\"}} {running}\n"));
                world(&mut out, &format!("graph=\"{graph}\""), w);
            }
            Served::PerPlayer(p) => {
                let mut body = String::new();
                let mut running = 0;
                p.each(|id, w| {
                    running += 1;
                    world(&mut body, &format!("graph=\"{graph}\",session=\"{id}\""), w);
                });
                out.push_str(&format!("wgraph_worlds{{graph=\"{graph}\"}} {running}\n"));
                out.push_str(&body);
                if let Some(stats) = &p.batch {
                    crate::metrics::batches(
                        &mut out,
                        &format!("graph=\"{graph}\""),
                        &stats.summary(),
                    );
                }
            }
        }
    }
    out.push_str(&format!(
        "wgraph_players_refused_total {}\n",
        state.refused.load(Ordering::Relaxed)
    ));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(state: &AppState, index: usize) -> Response {
    match state.graphs.get(index) {
        Some(g) => Html(
            PAGE.replace("{{NAME}}", &escape_html(g.name()))
                .replace("{{INDEX}}", &index.to_string()),
        )
        .into_response(),
        None => (StatusCode::NOT_FOUND, "no such world").into_response(),
    }
}

async fn root(State(state): State<Arc<AppState>>) -> Response {
    if state.graphs.len() == 1 {
        return page(&state, 0);
    }
    let links: String = state
        .graphs
        .iter()
        .enumerate()
        .map(|(i, g)| format!("<li><a href=\"/w/{i}\">{}</a></li>", escape_html(g.name())))
        .collect();
    Html(INDEX.replace("{{WORLDS}}", &links)).into_response()
}

async fn world_page(State(state): State<Arc<AppState>>, Path(index): Path<usize>) -> Response {
    page(&state, index)
}

async fn socket(
    ws: WebSocketUpgrade,
    State(state): State<Arc<AppState>>,
    Path(index): Path<usize>,
    Query(query): Query<HashMap<String, String>>,
    Extension(slot): Extension<Arc<Slot>>,
    headers: HeaderMap,
) -> Response {
    let Some(graph) = state.graphs.get(index) else {
        return (StatusCode::NOT_FOUND, "no such world").into_response();
    };
    let header_text = |name| headers.get(name).and_then(|h| h.to_str().ok());
    let refuse = |refusal: Refusal| {
        state.log.line(&format!(
            "web: refused a socket of `{}`: {refusal}",
            graph.name()
        ));
        let status = match refusal {
            Refusal::Token => StatusCode::UNAUTHORIZED,
            _ => StatusCode::FORBIDDEN,
        };
        (status, refusal.to_string()).into_response()
    };
    if let Err(refusal) = state.access.check_origin(
        header_text(header::ORIGIN),
        header_text(header::HOST).unwrap_or(""),
    ) {
        return refuse(refusal);
    }
    let shown = query.get("token").map(String::as_str);
    let client = state.next_client.fetch_add(1, Ordering::SeqCst);
    let log = state.log.clone();
    let ws = ws.max_message_size(MAX_MESSAGE).max_frame_size(MAX_MESSAGE);
    let players = match graph {
        Served::Shared(world) => {
            let role = match state.access.role(&world.token, shown) {
                Ok(r) => r,
                Err(refusal) => return refuse(refusal),
            };
            let world = Arc::clone(world);
            return ws.on_upgrade(move |socket| async move {
                viewer(socket, world, client, role, None, log).await;
                // The connection's place under the limits is freed with it.
                drop(slot);
            });
        }
        Served::PerPlayer(players) => Arc::clone(players),
    };
    // Per player: the session the socket names, if it shows its token
    // (running, or kept in the store: looked up once upgraded).
    let named = match (query.get("session"), query.get("session_token")) {
        (Some(id), Some(token)) => Some((id.clone(), token.clone())),
        _ => None,
    };
    // A new world needs the link's token; without it a socket may only
    // come back to its own session (running, or kept in the store).
    let link_ok = matches!(state.access.role(&players.link, shown), Ok(Role::Player));
    if !link_ok && named.is_none() {
        return refuse(Refusal::Token);
    }
    let state = Arc::clone(&state);
    ws.on_upgrade(move |mut socket| async move {
        // Found or made once upgraded, so a socket that never upgrades
        // holds no session's place.
        let made = Arc::clone(&players);
        let state2 = Arc::clone(&state);
        let ip = slot.ip();
        let session = tokio::task::spawn_blocking(move || {
            let (count, limits) = (&state2.worlds_running, &state2.sessions);
            if let Some((id, token)) = named {
                if let Some(w) = made.resume(&id, &token) {
                    return Ok(Some((id, w)));
                }
                if let Some(w) = made.reopen(&id, &token, ip, count, limits)? {
                    return Ok(Some((id, w)));
                }
            }
            if link_ok {
                made.create(ip, count, limits).map(Some)
            } else {
                Ok(None)
            }
        })
        .await
        .unwrap_or_else(|e| Err(Refused::Failed(e.to_string())));
        match session {
            Ok(Some((id, world))) => {
                let tag = Some((id.clone(), world.token.as_str().to_string()));
                viewer(socket, world, client, Role::Player, tag, log).await;
                players.left(&id);
            }
            Ok(None) => {
                let message =
                    "this world has ended; open the address `wgraph serve` printed for a new one";
                let _ = socket
                    .send(text(&json!({ "type": "error", "message": message })))
                    .await;
                let _ = socket.send(Message::Close(None)).await;
            }
            Err(refused) => {
                let kind = match refused {
                    Refused::Failed(_) => "unavailable",
                    Refused::Full(_) | Refused::TooManyHere(_) => "full",
                };
                let message = match refused {
                    Refused::Full(n) => {
                        state.refused.fetch_add(1, Ordering::Relaxed);
                        format!("server full: {n} worlds running, try again")
                    }
                    Refused::TooManyHere(n) => {
                        state.refused.fetch_add(1, Ordering::Relaxed);
                        format!(
                            "{n} worlds are already open from your address; close one, or try again"
                        )
                    }
                    Refused::Failed(e) => format!("could not start a world: {e}"),
                };
                log.line(&format!("web: `{}`: {message}", players.name));
                let _ = socket
                    .send(text(&json!({ "type": kind, "message": message })))
                    .await;
                let _ = socket.send(Message::Close(None)).await;
            }
        }
        drop(slot);
    })
}

/// One viewer: a writer task (frames, events, replies) and a reader loop.
/// `session`: the per-player session's id and token, told to its player.
async fn viewer(
    socket: WebSocket,
    world: Arc<WebWorld>,
    client: u64,
    role: Role,
    session: Option<(String, String)>,
    log: ViewerLog,
) {
    let (mut sink, mut stream) = socket.split();
    let (reply_tx, mut replies) = mpsc::channel::<Json>(16);
    let controls = role == Role::Player && world.claim_if_free(client);
    let failed = match world.status() {
        WorldStatus::Running => None,
        WorldStatus::Failed(message) => Some(message),
    };
    let hello = json!({
        "type": "hello",
        "name": world.name,
        "prompts": world.prompts,
        "controller": controls,
        "role": match role { Role::Player => "player", Role::Viewer => "viewer" },
        "failed": failed.as_deref(),
        "session": session.map(|(id, token)| json!({ "id": id, "token": token })),
        "max_message": crate::MAX_MESSAGE,
    });
    let mut frames = world.frames.clone();
    let mut events = world.events.subscribe();
    let writer_world = Arc::clone(&world);
    let mut writer = tokio::spawn(async move {
        let world = writer_world;
        if sink.send(text(&hello)).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                changed = frames.changed() => {
                    if changed.is_err() {
                        // The world ended: pass on what it said last (why it
                        // failed), then close the socket properly.
                        loop {
                            match events.try_recv() {
                                Ok(t) => {
                                    if sink.send(Message::Text(Utf8Bytes::from(&*t))).await.is_err() {
                                        break;
                                    }
                                }
                                Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                                Err(_) => break,
                            }
                        }
                        let _ = sink.send(Message::Close(None)).await;
                        break;
                    }
                    // Only the newest frame: a slow viewer skips, never queues.
                    let frame: Option<Arc<FrameMsg>> = frames.borrow_and_update().clone();
                    let Some(frame) = frame else { continue };
                    let bytes = Bytes::copy_from_slice(&frame.bytes);
                    if sink.send(Message::Binary(bytes)).await.is_err() {
                        break;
                    }
                    if let Some(at) = frame.input_at
                        && world.controls(client)
                    {
                        world.record_latency(at);
                    }
                }
                event = events.recv() => match event {
                    Ok(t) => {
                        if sink.send(Message::Text(Utf8Bytes::from(&*t))).await.is_err() {
                            break;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                reply = replies.recv() => match reply {
                    Some(r) => {
                        if sink.send(text(&r)).await.is_err() {
                            break;
                        }
                    }
                    None => break,
                },
            }
        }
    });
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(Ok(message)) = message else { break };
                let reply = match message {
                    Message::Text(t) => handle_message(&world, client, role, t.as_str()),
                    Message::Binary(_) => Err("binary messages are not accepted".to_string()),
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => Ok(None),
                };
                let reply = match reply {
                    Ok(r) => r,
                    Err(e) => {
                        log.line(&format!("web: viewer {client} of `{}`: {e}", world.name));
                        Some(json!({ "type": "error", "message": e }))
                    }
                };
                if let Some(r) = reply
                    && reply_tx.send(r).await.is_err()
                {
                    break;
                }
            }
            _ = &mut writer => break,
        }
    }
    writer.abort();
    world.release(client);
}

fn text(j: &Json) -> Message {
    Message::Text(Utf8Bytes::from(j.to_string()))
}

/// A page's message; `Ok(Some(reply))` to answer it.
fn handle_message(
    world: &WebWorld,
    client: u64,
    role: Role,
    text: &str,
) -> Result<Option<Json>, String> {
    let msg: Json = serde_json::from_str(text).map_err(|e| format!("malformed message: {e}"))?;
    let kind = msg.get("type").and_then(Json::as_str).unwrap_or("");
    if role == Role::Viewer && matches!(kind, "keys" | "take" | "set") {
        return Err("this socket has no token: it may only watch".into());
    }
    match kind {
        "keys" => {
            if !world.controls(client) {
                return Ok(Some(json!({ "type": "role", "controller": false })));
            }
            let names = msg
                .get("keys")
                .and_then(Json::as_array)
                .ok_or("`keys` must be a list of key names")?;
            let mut keys = Actions::none();
            for n in names {
                let name = n.as_str().unwrap_or("");
                let key = Key::parse(name).ok_or_else(|| format!("unknown key `{name}`"))?;
                keys = keys.with(key);
            }
            world.handle.set_keys(Some(keys));
            Ok(None)
        }
        "take" => {
            world.take_control(client);
            world.handle.hold_no_keys();
            Ok(Some(json!({ "type": "role", "controller": true })))
        }
        "set" => {
            let field = |k: &str| msg.get(k).and_then(Json::as_str).unwrap_or("").to_string();
            let (node, param, value) = (field("node"), field("param"), field("text"));
            if !world
                .prompts
                .iter()
                .any(|p| p.node == node && p.param == param)
            {
                return Err(format!("`{node}.{param}` is not a prompt of this world"));
            }
            if value.chars().any(crate::log::hidden) {
                return Err("a prompt is one line of text, without control characters".into());
            }
            let quoted = format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""));
            if !world.handle.set_param(ParamSet {
                node,
                param,
                value: quoted,
            }) {
                return Err("this world cannot change parameters".into());
            }
            Ok(None)
        }
        other => Err(format!("unknown message type `{other}`")),
    }
}
