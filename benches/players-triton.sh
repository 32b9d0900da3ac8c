#!/usr/bin/env bash
# How many players one machine holds at a graph's fps, with the graph's
# models local (ONNX Runtime in the serve process) and on Triton: starts
# tritonserver (the PyPI wheel, tests/support/install-triton.sh; a
# `--platform python` repository written by `wgraph triton-repo`) and two
# `wgraph serve GRAPH` on 127.0.0.1 — one local, one `--backend triton` —
# then runs `wgraph loadtest` with N scripted players for S seconds against
# each, alternating (local, triton for one N, triton, local for the next),
# and prints a row per run. Then, for each way, up to BISECT (default 2)
# more runs halve the gap between the largest N that held and the smallest
# that did not, and the largest N that held the graph's fps is printed. A
# run holds when every player got frames and the slowest player's fps is
# at least HOLD (default 0.9) times the graph's fps. Each
# Triton row also gives, from the server's statistics over that run, each
# model's requests per execution (what Triton's dynamic batcher fused; serve
# batches players' calls itself too, so a request carries several rows).
# WAYS picks the serves (default "local triton triton_on"; triton is
# `--backend triton` with the default `--batch-across-players auto`: every
# player's call its own request, so only Triton's dynamic batcher fuses
# them; triton_on is `--batch-across-players on`: wgraph fuses players'
# calls before they reach Triton; triton_off, `off`, is the same requests as
# auto for a graph whose models are all on Triton). A graph
# without models (the ground-truth world) runs local only.
#
#   cargo build --release
#   benches/players-triton.sh graphs/yan-sim.world "1 2 4 8" 6
#   benches/players-triton.sh examples/world.world "4 16 32" 6
#
# Traffic stays on 127.0.0.1; every server started here is stopped at the
# end (tritonserver with its python stubs, by its process group).
set -euo pipefail
cd "$(dirname "$0")/.."
graph=${1:-graphs/yan-sim.world}
counts=${2:-"1 2 4 8"}
seconds=${3:-6}
hold=${HOLD:-0.9}
bisect=${BISECT:-2}
bin=${WGRAPH:-target/release/wgraph}
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }
work=$(mktemp -d)
pids=()
triton_pid=""
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -n "$triton_pid" ] && kill -- "-$triton_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$bin" graph "$graph" --format json >"$work/graph.json"
read -r fps models < <(python3 -c '
import json, sys
g = json.load(open(sys.argv[1]))
print(g["settings"]["fps"], len(g.get("models") or []))' "$work/graph.json")

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ready() {
    python3 - "$1" <<'PY'
import sys, urllib.request
try:
    urllib.request.urlopen("http://127.0.0.1:%s/v2/health/ready" % sys.argv[1], timeout=1)
except Exception:
    sys.exit(1)
PY
}

backends="local"
if [ "$models" -gt 0 ]; then
    backends=${WAYS:-"local triton triton_on"}
    venv="$(tests/support/install-triton.sh | tail -1)"
    "$bin" triton-repo "$graph" "$work/repo" --platform python >/dev/null 2>&1
    grpc=$(port); http=$(port)
    # Its own process group (setsid): its python backend stubs go with it.
    PATH="$venv/bin:$PATH" LD_LIBRARY_PATH="$venv/triton-libs" setsid "$venv/bin/tritonserver" \
        --model-repository="$work/repo" --backend-directory="$venv/backends" \
        --grpc-address=127.0.0.1 --http-address=127.0.0.1 --grpc-port="$grpc" --http-port="$http" \
        --allow-metrics=false --allow-gpu-metrics=false >"$work/triton.txt" 2>&1 &
    triton_pid=$!
    for _ in $(seq 1 600); do ready "$http" && break; sleep 0.2; done
    ready "$http" || { cat "$work/triton.txt" >&2; exit 1; }
fi

# serve_one NAME FLAGS...: starts `wgraph serve`, sets url_NAME.
serve_one() {
    local name=$1; shift
    "$bin" serve "$graph" --port 0 --max-worlds 1024 --max-worlds-per-address 1024 \
        --max-connections 4096 --max-per-address 4096 --resume-within 0 \
        "$@" 2>"$work/serve-$name.txt" &
    pids+=($!)
    local url=""
    for _ in $(seq 1 600); do
        url=$(grep -o 'http://[^ ]*' "$work/serve-$name.txt" | head -1 || true)
        [ -n "$url" ] && break
        sleep 0.1
    done
    [ -n "$url" ] || { cat "$work/serve-$name.txt" >&2; exit 1; }
    printf -v "url_$name" '%s' "$url"
}
serve_one local
for b in $backends; do
    case $b in
        local) ;;
        triton) serve_one triton --backend triton --triton-server "127.0.0.1:$grpc" ;;
        triton_off) serve_one triton_off --backend triton --triton-server "127.0.0.1:$grpc" \
            --batch-across-players off ;;
        triton_on) serve_one triton_on --backend triton --triton-server "127.0.0.1:$grpc" \
            --batch-across-players on ;;
        *) echo "unknown way $b (local, triton, triton_on, triton_off)" >&2; exit 2 ;;
    esac
done

stats() { # Triton's per-model counters, as JSON {model: [requests, rows, executions]}
    python3 - "$http" <<'PY'
import json, sys, urllib.request
st = json.load(urllib.request.urlopen("http://127.0.0.1:%s/v2/models/stats" % sys.argv[1], timeout=10))
out = {}
for m in st["model_stats"]:
    c = out.setdefault(m["name"], [0, 0, 0])
    c[0] += m["inference_stats"]["success"]["count"]
    c[1] += m["inference_count"]
    c[2] += m["execution_count"]
print(json.dumps(out))
PY
}

echo "# $graph ($fps fps, $models models), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $seconds s per run, holds: slowest player >= $hold x $fps fps"
echo "| backend | players | fps per player (slowest / mean) | frames lost | key→frame p50 / p99 | holds | Triton: requests per execution (rows per execution) |"
echo "|---|---|---|---|---|---|---|"
touch "$work/rows.txt"
# run_one BACKEND N: one loadtest, one row; exit status 0 when it held.
run_one() {
    local b=$1 n=$2 url_var="url_$1" before="{}" after="{}"
    [ "$b" != local ] && before=$(stats)
    "$bin" loadtest "${!url_var}" --players "$n" --seconds "$seconds" --json "$work/lt.json" >/dev/null 2>"$work/lt.err" || true
    [ "$b" != local ] && after=$(stats)
    python3 - "$work/lt.json" "$b" "$n" "$fps" "$hold" "$before" "$after" <<'PY' | tee -a "$work/rows.txt"
import json, sys
path, b, n, fps, hold, before, after = sys.argv[1:]
try:
    s = json.load(open(path))["summary"]
except Exception:
    s = {"players_ok": 0}
n, fps, hold = int(n), float(fps), float(hold)
ok = s.get("players_ok", 0) == n and (s.get("fps_min") or 0) >= hold * fps
before, after = json.loads(before), json.loads(after)
fused = []
for m, a in sorted(after.items()):
    d = [x - y for x, y in zip(a, before.get(m, [0, 0, 0]))]
    if d[2] > 0:
        fused.append("%s %.2f (%.2f)" % (m, d[0] / d[2], d[1] / d[2]))
k = s.get("key_to_frame_ms") or {}
f = lambda x: "-" if x is None else "%.1f" % x
why = ""
if s.get("players_ok", 0) != n:
    why = " (%s of %d played; %s refused, %s failed)" % (s.get("players_ok", 0), n, s.get("refused", "?"), s.get("failed", "?"))
print("| %s | %d | %s / %s | %s | %s / %s ms | %s%s | %s |" % (
    b, n, f(s.get("fps_min")), f(s.get("fps_mean")), s.get("frames_lost", "-"),
    f(k.get("p50")), f(k.get("p99")), "yes" if ok else "no", why, ", ".join(fused) or "-"))
PY
    sleep 2
    tail -1 "$work/rows.txt" | grep -q '| yes'
}
# gap BACKEND: "HELD FAILED" — the largest N that held and the smallest
# larger one that did not (0 when none).
gap() {
    python3 - "$work/rows.txt" "$1" <<'PY'
import sys
rows = [l.split("|") for l in open(sys.argv[1]) if l.startswith("| " + sys.argv[2] + " ")]
held = [int(r[2]) for r in rows if r[6].strip() == "yes"]
h = max(held) if held else 0
failed = [int(r[2]) for r in rows if not r[6].strip().startswith("yes") and int(r[2]) > h]
print(h, min(failed) if failed else 0)
PY
}
i=0
# flip: sets `order`, the backends, reversed every other call.
flip() {
    order=$backends
    [ $((i % 2)) -eq 1 ] && order=$(echo "$backends" | tr ' ' '\n' | tac | tr '\n' ' ')
    i=$((i + 1))
}
for n in $counts; do
    flip
    for b in $order; do run_one "$b" "$n" || true; done
done
for _ in $(seq 1 "$bisect"); do
    flip
    for b in $order; do
        read -r h f < <(gap "$b")
        m=$(( (h + f) / 2 ))
        if [ "$f" -gt 0 ] && [ "$m" -gt "$h" ] && [ "$m" -lt "$f" ]; then run_one "$b" "$m" || true; fi
    done
done
for b in $backends; do
    read -r h f < <(gap "$b")
    if [ "$h" -eq 0 ]; then
        echo "$b: no N held (the smallest tried, $f, did not)"
    elif [ "$f" -gt 0 ]; then
        echo "$b: largest N that held: $h (the smallest larger N tried, $f, did not)"
    else
        echo "$b: largest N that held: $h (every larger N tried held too)"
    fi
done
