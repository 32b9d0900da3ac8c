#!/usr/bin/env bash
# What one clock for all players buys: `wgraph serve GRAPH` with
# `--tick-clock shared` (every player's world ticks at the same instants)
# against `--tick-clock own` (each from when it opened), alternating for
# R rounds; each round N loadtest players for S seconds. Per run: the share
# of players' model calls that ran fused (1 − model runs / players' calls,
# from /metrics over the run), loadtest's fps per player and key→frame p99.
#
#   benches/tick-clock.sh graphs/yan-sim.world 4 8 2 [FPS]
#
# FPS (default: the graph's) paces the worlds; pick one the machine holds
# for N players, or every world runs late and flat out on either clock.
#
# Needs a release build (cargo build --release). Traffic stays on 127.0.0.1;
# each server is stopped after its run.
set -euo pipefail
cd "$(dirname "$0")/.."
graph=${1:-graphs/yan-sim.world}
players=${2:-4}
seconds=${3:-8}
rounds=${4:-2}
fps=${5:-}
bin=target/release/wgraph
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }
counter() { grep "^$1{graph=" | awk '{ s += $2 } END { print s + 0 }'; }
one_run() {
    local clock=$1 log server url metrics calls0 runs0 calls1 runs1 line
    log=$(mktemp)
    "$bin" serve "$graph" --port 0 --tick-clock "$clock" ${fps:+--fps "$fps"} --max-worlds 64 \
        --max-worlds-per-address 64 --resume-within 0 2>"$log" &
    server=$!
    url=""
    for _ in $(seq 1 600); do
        url=$(grep -o 'http://[^ ]*' "$log" | head -1 || true)
        [ -n "$url" ] && break
        sleep 0.1
    done
    [ -n "$url" ] || { cat "$log" >&2; kill $server; exit 1; }
    base=${url%%\?*}
    metrics=$(curl -s "${base%/}/metrics")
    calls0=$(echo "$metrics" | counter wgraph_session_model_calls_total)
    runs0=$(echo "$metrics" | counter wgraph_model_calls_total)
    line=$("$bin" loadtest "$url" --players "$players" --seconds "$seconds" | tail -1)
    metrics=$(curl -s "${base%/}/metrics")
    calls1=$(echo "$metrics" | counter wgraph_session_model_calls_total)
    runs1=$(echo "$metrics" | counter wgraph_model_calls_total)
    kill $server 2>/dev/null; wait $server 2>/dev/null || true; rm -f "$log"
    awk -v c=$((calls1 - calls0)) -v r=$((runs1 - runs0)) -v clock="$clock" -v line="$line" \
        'BEGIN { printf "%-6s fused %5.1f%% (%d runs for %d calls) | %s\n", clock, c ? 100 * (1 - r / c) : 0, r, c, line }'
}
echo "# $graph, $players players at ${fps:-the graph\'s} fps, $seconds s per run, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$rounds"); do
    if [ $((round % 2)) -eq 1 ]; then order="shared own"; else order="own shared"; fi
    for clock in $order; do one_run "$clock"; sleep 1; done
done
