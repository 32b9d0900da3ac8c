#!/usr/bin/env bash
# gRPC call overhead of the triton backend against local ONNX Runtime, on
# one graph: writes a python-backend repository with `wgraph triton-repo`,
# starts tritonserver (the PyPI wheel, tests/support/install-triton.sh) on
# free loopback ports, then runs the graph ROUNDS times each way,
# alternating (local, triton, local, …), FRAMES ticks a run, `--metrics`
# each, and prints per-node p50 and mean ms per tick. The server is
# stopped by its pid at the end.
#   cargo build --release && benches/triton.sh graphs/yan-sim.world 64 3
set -euo pipefail
cd "$(dirname "$0")/.."
graph="${1:-graphs/yan-sim.world}"
frames="${2:-64}"
rounds="${3:-3}"
wgraph="${WGRAPH:-target/release/wgraph}"
venv="$(tests/support/install-triton.sh | tail -1)"
work="$(mktemp -d)"
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
"$wgraph" triton-repo "$graph" "$work/repo" --platform python >/dev/null 2>&1
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
grpc=$(port); http=$(port)
PATH="$venv/bin:$PATH" LD_LIBRARY_PATH="$venv/triton-libs" "$venv/bin/tritonserver" \
    --model-repository="$work/repo" --backend-directory="$venv/backends" \
    --grpc-address=127.0.0.1 --http-address=127.0.0.1 --grpc-port="$grpc" --http-port="$http" \
    --allow-metrics=false --allow-gpu-metrics=false >"$work/server.txt" 2>&1 &
server=$!
for _ in $(seq 1 300); do
    python3 - "$http" <<'PY' && break
import sys, urllib.request
try:
    urllib.request.urlopen("http://127.0.0.1:%s/v2/health/ready" % sys.argv[1], timeout=1)
except Exception:
    sys.exit(1)
PY
    sleep 0.2
done
for r in $(seq 1 "$rounds"); do
    "$wgraph" run "$graph" --frames "$frames" --out - -q --metrics "$work/local-$r.json" >/dev/null
    "$wgraph" run "$graph" --frames "$frames" --out - -q --metrics "$work/triton-$r.json" \
        --backend triton --triton-server "127.0.0.1:$grpc" >/dev/null
done
python3 - "$work" "$rounds" "$http" <<'PY'
import json, statistics, sys, urllib.request
work, rounds, http = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def load(kind):
    return [json.load(open("%s/%s-%d.json" % (work, kind, r))) for r in range(1, rounds + 1)]
runs = {"local": load("local"), "triton": load("triton")}
nodes = [n["name"] for n in runs["local"][0]["metrics"]["nodes"] if n["kind"] in
         ("encoder", "decoder", "denoiser", "action_embedder", "model", "text_encoder")]
print("| node | local ORT p50 / mean ms per call | Triton p50 / mean ms per call |")
print("|---|---|---|")
def stat(r, name, key):
    return next(n[key] for n in r["metrics"]["nodes"] if n["name"] == name)
for name in nodes:
    f = {k: [statistics.median(stat(r, name, key) for r in v) for key in ("p50_ms", "mean_ms")]
         for k, v in runs.items()}
    print("| %s | %.3f / %.3f | %.3f / %.3f |" % (name, *f["local"], *f["triton"]))
tick = {k: statistics.median(r["ms_per_tick"] if not isinstance(r["ms_per_tick"], dict) else r["ms_per_tick"].get("mean", 0) for r in v)
        for k, v in runs.items()}
print("| ms per tick (median of runs) | %.2f | %.2f |" % (tick["local"], tick["triton"]))
# The server's side of the same calls (all triton runs together): time
# from the request's arrival to its answer, and the model's execution in
# it; the rest of a call's client-side time is gRPC, the network stack and
# the client.
print()
print("| model on Triton | requests | server: request p. call ms | of which compute ms |")
print("|---|---|---|---|")
index = json.load(urllib.request.urlopen(urllib.request.Request(
    "http://127.0.0.1:%s/v2/repository/index" % http, data=b"{}", method="POST")))
for m in index:
    st = json.load(urllib.request.urlopen("http://127.0.0.1:%s/v2/models/%s/stats" % (http, m["name"])))
    s = st["model_stats"][0]["inference_stats"]
    n = max(s["success"]["count"], 1)
    compute = (s["compute_input"]["ns"] + s["compute_infer"]["ns"] + s["compute_output"]["ns"]) / n / 1e6
    print("| %s | %d | %.3f | %.3f |" % (m["name"], s["success"]["count"], s["success"]["ns"] / n / 1e6, compute))
PY
