#!/usr/bin/env bash
# One machine → many: two `wgraph serve` replicas of GRAPH sharing a session
# store, behind HAProxy on 127.0.0.1:8080. Ctrl-C stops everything.
#
#   examples/deploy/run-replicas.sh graphs/yan-sim.world
#
# Needs a release build (cargo build --release) and HAProxy (Debian:
# apt-get install haproxy). With TRITON=ADDR the replicas' models run on a
# Triton server there (start it first: README, "Model calls on Triton").
set -euo pipefail
cd "$(dirname "$0")/../.."
graph=${1:-graphs/yan-sim.world}
store=${STORE:-/tmp/wgraph-store}
token=${TOKEN:-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}
bin=target/release/wgraph
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }
command -v haproxy >/dev/null || { echo "install HAProxy first: apt-get install haproxy" >&2; exit 2; }
mkdir -p "$store"
global=() backend=()
if [ -n "${TRITON:-}" ]; then global=(--triton-server "$TRITON"); backend=(--backend triton); fi
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT
for port in 8081 8082; do
    "$bin" "${global[@]}" serve "$graph" "${backend[@]}" --port "$port" --token "$token" \
        --session-store "$store" --snapshot-every 16 &
    pids+=($!)
done
haproxy -f examples/deploy/haproxy.cfg &
pids+=($!)
echo "play at http://127.0.0.1:8080/?token=$token (Ctrl-C stops)"
wait
