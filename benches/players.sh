#!/usr/bin/env bash
# How many players one machine holds at a graph's fps: `wgraph serve GRAPH`
# (a world per player) on loopback, then `wgraph loadtest` with 1, 2, 4, …
# players for S seconds each; one summary line per N.
#
#   benches/players.sh graphs/yan-sim.world "1 2 4 8" 8
#
# Needs a release build (cargo build --release). Traffic stays on 127.0.0.1;
# the server is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
graph=${1:-graphs/yan-sim.world}
counts=${2:-"1 2 4 8"}
seconds=${3:-8}
bin=target/release/wgraph
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }
log=$(mktemp)
"$bin" serve "$graph" --port 0 --max-worlds 64 --max-worlds-per-address 64 --resume-within 0 2>"$log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 1 600); do
    url=$(grep -o 'http://[^ ]*' "$log" | head -1 || true)
    [ -n "$url" ] && break
    sleep 0.1
done
[ -n "$url" ] || { cat "$log" >&2; exit 1; }
echo "# $graph, $(nproc) cores, $seconds s per run"
for n in $counts; do
    printf 'players %3s: ' "$n"
    "$bin" loadtest "$url" --players "$n" --seconds "$seconds" | tail -1
    sleep 2
done
