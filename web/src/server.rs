//! The HTTP server: routes, the page, and one WebSocket per viewer split
//! into a reader and a writer task (axum's chat example's shape).

use crate::{FrameMsg, WebWorld};
use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value as Json, json};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{broadcast, mpsc};
use wgraph_engine::value::{Actions, Key};
use wgraph_engine::world::ParamSet;

/// The largest message a page may send, in bytes.
pub const MAX_MESSAGE: usize = 4096;

const PAGE: &str = include_str!("assets/world.html");
const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

struct AppState {
    worlds: Vec<Arc<WebWorld>>,
    next_client: AtomicU64,
    log: Log,
}

/// Where the server reports what viewers did wrong (the program prints it).
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// Serves `worlds` on `addr` until `shutdown` completes. `on_bound` gets the
/// address actually bound (port 0 picks a free one); `log` gets one line per
/// malformed or refused message.
pub fn serve(
    worlds: Vec<WebWorld>,
    addr: SocketAddr,
    on_bound: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
    log: Log,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let state = Arc::new(AppState {
            worlds: worlds.into_iter().map(Arc::new).collect(),
            next_client: AtomicU64::new(1),
            log,
        });
        let app = Router::new()
            .route("/", get(root))
            .route("/w/{index}", get(world_page))
            .route("/w/{index}/ws", get(socket))
            .route("/app.js", get(|| asset(APP_JS, "text/javascript")))
            .route("/app.css", get(|| asset(APP_CSS, "text/css")))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind(addr).await?;
        on_bound(listener.local_addr()?);
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    })
}

async fn asset(body: &'static str, kind: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(state: &AppState, index: usize) -> Response {
    match state.worlds.get(index) {
        Some(w) => Html(
            PAGE.replace("{{NAME}}", &escape_html(&w.name))
                .replace("{{INDEX}}", &index.to_string()),
        )
        .into_response(),
        None => (StatusCode::NOT_FOUND, "no such world").into_response(),
    }
}

async fn root(State(state): State<Arc<AppState>>) -> Response {
    if state.worlds.len() == 1 {
        return page(&state, 0);
    }
    let links: String = state
        .worlds
        .iter()
        .enumerate()
        .map(|(i, w)| format!("<li><a href=\"/w/{i}\">{}</a></li>", escape_html(&w.name)))
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
) -> Response {
    let Some(world) = state.worlds.get(index).cloned() else {
        return (StatusCode::NOT_FOUND, "no such world").into_response();
    };
    let client = state.next_client.fetch_add(1, Ordering::SeqCst);
    ws.max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| viewer(socket, world, client, Arc::clone(&state.log)))
}

/// One viewer: a writer task (frames, events, replies) and a reader loop.
async fn viewer(socket: WebSocket, world: Arc<WebWorld>, client: u64, log: Log) {
    let (mut sink, mut stream) = socket.split();
    let (reply_tx, mut replies) = mpsc::channel::<Json>(16);
    let controls = world.claim_if_free(client);
    let hello = json!({
        "type": "hello",
        "name": world.name,
        "prompts": world.prompts,
        "controller": controls,
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
                    Message::Text(t) => handle_message(&world, client, t.as_str()),
                    Message::Binary(_) => Err("binary messages are not accepted".to_string()),
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => Ok(None),
                };
                let reply = match reply {
                    Ok(r) => r,
                    Err(e) => {
                        log(&format!("web: viewer {client} of `{}`: {e}", world.name));
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
fn handle_message(world: &WebWorld, client: u64, text: &str) -> Result<Option<Json>, String> {
    let msg: Json = serde_json::from_str(text).map_err(|e| format!("malformed message: {e}"))?;
    let kind = msg.get("type").and_then(Json::as_str).unwrap_or("");
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
            world.handle.set_keys(Some(Actions::none()));
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
            if value.contains('\n') {
                return Err("a prompt is one line".into());
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
