// wgraph's world page: frames over a WebSocket onto a canvas, keys and mouse
// back, a HUD, prompt boxes, reload errors. State the tests read is kept in
// `window.wgraph`.
"use strict";
(() => {
  const index = document.body.dataset.world;
  const canvas = document.getElementById("view");
  const ctx = canvas.getContext("2d");
  const hud = document.getElementById("hud");
  const errorBox = document.getElementById("error");
  const logBox = document.getElementById("log");
  const roleBox = document.getElementById("role");
  const takeButton = document.getElementById("take");
  const state = (window.wgraph = {
    connected: false, controller: false, frames: 0, lastTick: -1, skipped: 0,
    hashes: [], fps: 0, hud: null, errors: 0, reloads: 0, role: null, failed: null, refused: false,
    session: null, resumed: false, full: null,
  });
  // The world's token comes in the address `wgraph serve` printed. The page
  // keeps it for this tab (a reload still steers) and takes it out of the
  // address bar, so a screenshot or a shared link does not carry it.
  const tokenKey = `wgraph-token-${index}`;
  const params = new URLSearchParams(location.search);
  if (params.has("token")) {
    sessionStorage.setItem(tokenKey, params.get("token"));
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? `?${rest}` : "") + location.hash);
  }
  const token = sessionStorage.getItem(tokenKey);
  // A world of one's own (per-player serving): its id and token, kept for
  // this tab so a reload or a dropped connection gets the same world back.
  const sessionKey = `wgraph-session-${index}`;
  const stored = () => { try { return JSON.parse(sessionStorage.getItem(sessionKey)); } catch { return null; } };
  const KEYS = {
    KeyW: "W", KeyA: "A", KeyS: "S", KeyD: "D", ArrowLeft: "Left", ArrowRight: "Right",
    ArrowUp: "Up", ArrowDown: "Down", Space: "Space",
  };
  const held = new Set();
  const mouse = new Map(); // key -> release time (ms)
  let ws;
  let image = null;
  const arrivals = [];

  function send(msg) { if (ws && ws.readyState === 1) ws.send(JSON.stringify(msg)); }
  function sendKeys() {
    const now = performance.now();
    const keys = new Set(held);
    for (const [k, until] of mouse) { if (until > now) keys.add(k); else mouse.delete(k); }
    send({ type: "keys", keys: [...keys] });
  }
  function log(line) {
    const lines = (logBox.textContent + line + "\n").split("\n");
    logBox.textContent = lines.slice(-20).join("\n");
  }
  function showRole() {
    if (state.failed) {
      roleBox.textContent = "this world has stopped";
      takeButton.hidden = true;
      return;
    }
    roleBox.textContent = state.controller ? "you control this world"
      : state.role === "viewer" ? "watching (no token: open the address the server printed to play)"
      : "watching (another viewer controls)";
    takeButton.hidden = state.controller || state.role !== "player";
  }
  function showFailure(message) {
    state.failed = message;
    errorBox.hidden = false;
    errorBox.textContent = `The world stopped on an error:\n${message}`;
    showRole();
  }
  function hash(bytes) {
    let h = 2166136261 >>> 0;
    for (let i = 0; i < bytes.length; i += 7) { h ^= bytes[i]; h = Math.imul(h, 16777619) >>> 0; }
    return h;
  }
  function drawFrame(buf) {
    const view = new DataView(buf);
    if (view.getUint8(0) !== 70) return;
    const tick = view.getUint32(1, true), w = view.getUint16(5, true), h = view.getUint16(7, true);
    const rgb = new Uint8Array(buf, 9);
    if (canvas.width !== w || canvas.height !== h || !image) {
      canvas.width = w; canvas.height = h; image = ctx.createImageData(w, h);
    }
    const px = image.data;
    for (let i = 0, j = 0; i < w * h; i++, j += 3) {
      px[i * 4] = rgb[j]; px[i * 4 + 1] = rgb[j + 1]; px[i * 4 + 2] = rgb[j + 2]; px[i * 4 + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
    if (state.lastTick >= 0 && tick > state.lastTick + 1) state.skipped += tick - state.lastTick - 1;
    state.lastTick = tick;
    state.frames++;
    const hsh = hash(rgb);
    if (state.hashes[state.hashes.length - 1] !== hsh) state.hashes.push(hsh);
    if (state.hashes.length > 1000) state.hashes.splice(0, 500);
    const now = performance.now();
    arrivals.push(now);
    while (arrivals.length && arrivals[0] < now - 1000) arrivals.shift();
    state.fps = arrivals.length;
    renderHud();
  }
  function renderHud() {
    const h = state.hud;
    let text = `tick ${state.lastTick}  ${state.fps} fps  skipped ${state.skipped}`;
    if (h) {
      text += h.latency_count > 0 && h.latency_p50_ms != null
        ? `\nkey→frame p50 ${h.latency_p50_ms.toFixed(1)} ms  p99 ${h.latency_p99_ms.toFixed(1)} ms`
        : `\nkey→frame: no key changes yet`;
      text += `\ntick p50 ${h.tick_p50_ms.toFixed(2)} ms  late ticks ${h.late_ticks}`;
      for (const n of h.nodes) text += `\n  ${n.name.padEnd(14)} ${n.mean_ms.toFixed(2)} ms`;
    }
    hud.textContent = text;
  }
  function prompts(list) {
    const box = document.getElementById("prompts");
    box.textContent = "";
    for (const p of list) {
      const div = document.createElement("div");
      div.className = "prompt";
      const label = document.createElement("label");
      label.textContent = `${p.node}.${p.param}`;
      const input = document.createElement("input");
      input.value = p.value;
      input.dataset.node = p.node;
      input.dataset.param = p.param;
      input.addEventListener("change", () => send({ type: "set", node: p.node, param: p.param, text: input.value }));
      div.append(label, input);
      box.append(div);
    }
  }
  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const q = new URLSearchParams();
    if (token) q.set("token", token);
    const mine = stored();
    if (mine) { q.set("session", mine.id); q.set("session_token", mine.token); }
    const query = q.toString() ? `?${q}` : "";
    ws = new WebSocket(`${proto}//${location.host}/w/${index}/ws${query}`);
    ws.binaryType = "arraybuffer";
    let opened = false;
    ws.onopen = () => { opened = true; state.connected = true; };
    ws.onclose = () => {
      state.connected = false;
      if (state.failed) return;
      if (!opened) {
        // Refused before it opened: most likely no token (the server logs why).
        state.refused = true;
        roleBox.textContent = token ? "the server refused this page; retrying…"
          : "this world needs its token: open the address `wgraph serve` printed";
      } else {
        roleBox.textContent = "disconnected; retrying…";
      }
      setTimeout(connect, 2000);
    };
    ws.onmessage = (e) => {
      if (typeof e.data !== "string") { drawFrame(e.data); return; }
      const m = JSON.parse(e.data);
      if (m.type === "full" || m.type === "unavailable") {
        // No world for us now (the server is full, or the world could not
        // start here yet): say so, and try again later.
        state.full = m.message; errorBox.hidden = false; errorBox.textContent = m.message;
        return;
      }
      if (m.type === "hello") {
        if (m.session) {
          const before = stored();
          state.resumed = !!before && before.id === m.session.id;
          state.session = m.session.id;
          sessionStorage.setItem(sessionKey, JSON.stringify(m.session));
        }
        state.full = null; errorBox.hidden = true;
        state.controller = m.controller; state.role = m.role; state.refused = false;
        prompts(m.prompts);
        if (m.failed) showFailure(m.failed); else showRole();
      }
      else if (m.type === "failed") { showFailure(m.message); }
      else if (m.type === "role") { state.controller = m.controller; showRole(); }
      else if (m.type === "hud") { state.hud = m; renderHud(); }
      else if (m.type === "reload") { state.reloads++; errorBox.hidden = true; log(m.line); }
      else if (m.type === "reload_failed") { state.errors++; errorBox.hidden = false; errorBox.textContent = m.message; log(`reload failed (${m.cause}); the running graph is unchanged`); }
      else if (m.type === "error") { log(`error: ${m.message}`); }
    };
  }
  const typing = (e) => e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement;
  window.addEventListener("keydown", (e) => {
    if (typing(e)) return;
    const k = KEYS[e.code];
    if (!k) return;
    e.preventDefault();
    if (!held.has(k)) { held.add(k); sendKeys(); }
  });
  window.addEventListener("keyup", (e) => {
    const k = KEYS[e.code];
    if (!k) return;
    if (held.delete(k)) sendKeys();
  });
  window.addEventListener("blur", () => { held.clear(); sendKeys(); });
  window.addEventListener("mousemove", (e) => {
    if (!e.buttons) return;
    const until = performance.now() + 120;
    if (e.movementX > 1) mouse.set("Right", until);
    if (e.movementX < -1) mouse.set("Left", until);
    if (e.movementY > 1) mouse.set("Down", until);
    if (e.movementY < -1) mouse.set("Up", until);
    sendKeys();
    setTimeout(sendKeys, 130);
  });
  takeButton.addEventListener("click", () => send({ type: "take" }));
  connect();
})();
