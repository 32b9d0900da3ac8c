#!/usr/bin/env bash
# The GPU measurements of issue 12, in one run (about 5 minutes on an H200).
#
#   benches/gpu/run.sh               # on the GPU machine, after the parts of
#                                    # benches/gpu/pack.sh are in .gpu-stage/
#   benches/gpu/run.sh --cpu-only    # here: the same steps on the CPU provider
#                                    # (checks the script itself)
#
# Writes to $OUT (default out/gpu): device.txt, doctor.json, one bench JSON
# per graph x provider x CUDA-graph setting, kernels.txt, and summary.md —
# the table that goes into benches/RESULTS.md.
set -uo pipefail
cd "$(dirname "$0")/../.."

cpu_only=false
[ "${1:-}" = "--cpu-only" ] && cpu_only=true
out=${OUT:-out/gpu}
mkdir -p "$out"
frames=${GPU_BENCH_FRAMES:-64}
rounds=${GPU_BENCH_ROUNDS:-5}
log() { echo "== $*" | tee -a "$out/log.txt"; }

if $cpu_only; then
    wgraph=${WGRAPH_BIN:-target/release/wgraph}
    providers="cpu"
else
    bundle=.gpu/bundle
    if [ ! -x "$bundle/wgraph" ]; then
        log "unpacking .gpu-stage/part-*"
        (cd .gpu-stage && sha256sum -c SHA256SUMS) >> "$out/log.txt" 2>&1 || {
            echo "parts missing or damaged: see $out/log.txt" >&2
            exit 2
        }
        mkdir -p "$bundle"
        cat .gpu-stage/part-* | xz -d | tar -C "$bundle" -xf -
    fi
    wgraph=$bundle/wgraph
    export ORT_DYLIB_PATH
    ORT_DYLIB_PATH=$(ls "$bundle"/ort/libonnxruntime.so.* | head -1)
    # CUDA 13 user-space libraries: the ones PyTorch (cu130) brings in its
    # nvidia-* packages, plus any system CUDA.
    nvidia_libs=$(python3 - <<'PY' 2>/dev/null
import glob, os, site
dirs = set()
for base in site.getsitepackages() + [site.getusersitepackages()]:
    for lib in glob.glob(os.path.join(base, "nvidia", "*", "lib")):
        dirs.add(lib)
print(":".join(sorted(dirs)))
PY
)
    export LD_LIBRARY_PATH="$bundle/ort:${nvidia_libs}:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
    providers="cpu cuda"
    if ldconfig -p 2>/dev/null | grep -q libnvinfer.so.10 ||
        ls ${nvidia_libs//:/ } 2>/dev/null | grep -q libnvinfer.so.10; then
        providers="$providers tensorrt"
    else
        log "libnvinfer.so.10 not found: TensorRT not measured"
    fi
fi

log "device"
{ nvidia-smi -L 2>&1 || echo "no nvidia-smi"; date -u; } > "$out/device.txt"
"$wgraph" doctor --json > "$out/doctor.json" 2> "$out/doctor.err"
log "doctor: exit $?"

bench() { # graph provider tag [extra args...]
    local graph=$1 provider=$2 tag=$3
    shift 3
    local name
    name=$(basename "$graph" .world)-$provider-$tag
    log "bench $name"
    "$wgraph" bench "$graph" --provider "$provider" --frames "$frames" --rounds "$rounds" \
        --json "$out/$name.json" "$@" > "$out/$name.txt" 2>&1 || log "bench $name failed (see $out/$name.txt)"
}

# A copy of GRAPH in $out with `options` added to every model declaration
# (relative paths made absolute).
with_options() { # graph options tag
    local copy
    copy="$out/$(basename "$1" .world)+$3.world"
    sed -E -e "s|\"\.\./|\"$PWD/|g" -e "s|^(model [^\"]*\"[^\"]*\").*$|\1 { $2 }|" "$1" > "$copy"
    echo "$copy"
}

for g in graphs/yan-sim.world graphs/yume.world; do
    for p in $providers; do
        bench "$g" "$p" plain
    done
    # CUDA graphs on (fixed-address buffers; on the CPU provider no graph).
    graph_copy=$(with_options "$g" "cuda_graph = true" cudagraph)
    bench "$graph_copy" "$([ "$cpu_only" = true ] && echo cpu || echo cuda)" cudagraph
    rm -f "$graph_copy"
done

log "step-math kernels: host against CUDA"
if "$wgraph" kernels --help > /dev/null 2>&1; then
    device=$([ "$cpu_only" = true ] && echo host || echo cuda)
    "$wgraph" kernels --device "$device" > "$out/kernels.txt" 2>&1 || log "kernels failed (see $out/kernels.txt)"
else
    echo "this wgraph has no kernels command" > "$out/kernels.txt"
fi

log "summary"
python3 - "$out" <<'PY' | tee "$out/summary.md"
import glob, json, os, sys
out = sys.argv[1]
print("| graph | provider | setting | ms/tick | fps | engine/raw | copies/tick (mean, max) |")
print("|---|---|---|---:|---:|---:|---|")
for path in sorted(glob.glob(os.path.join(out, "*.json"))):
    if path.endswith("doctor.json"):
        continue
    d = json.load(open(path))
    graph, provider, setting = os.path.basename(path)[:-5].rsplit("-", 2)
    graph = graph.split("+")[0]
    c = d.get("metrics", {}).get("host_device_copies", {})
    print(f"| {graph} | {provider} | {setting} | {d['engine_ms_per_tick']:.3f} | "
          f"{d['engine_fps']:.1f} | {d['engine_over_raw']:.3f} | "
          f"{c.get('per_tick_mean', float('nan')):.1f}, {c.get('per_tick_max', '?')} |")
PY
