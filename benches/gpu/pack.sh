#!/usr/bin/env bash
# Packs what the GPU machine needs and cannot download: the release wgraph
# binary and ONNX Runtime's GPU build (the `onnxruntime-gpu` wheel of the
# runtime version wgraph manages, built for CUDA 13), split into parts that
# fit the device tool's 64 MiB per call.
#
#   benches/gpu/pack.sh            # -> target/gpu/parts/part-aa, part-ab, ...
#
# Then, on the device tool (see benches/RESULTS.md, "GPU"), one call per
# part copies it into .gpu-stage/ there, and a last call runs
# benches/gpu/run.sh. Everything here lands under target/ (ignored by git).
set -euo pipefail
cd "$(dirname "$0")/../.."

ort_version=1.31.1
dest=target/gpu
rm -rf "$dest"
mkdir -p "$dest/bundle/ort" "$dest/parts" "$dest/wheel"

echo "== release binary"
cargo build --release --all-features
cp target/release/wgraph "$dest/bundle/wgraph"
strip "$dest/bundle/wgraph"

echo "== onnxruntime-gpu $ort_version (CUDA 13 build)"
python3 -m pip download --quiet --no-deps "onnxruntime-gpu==$ort_version" -d "$dest/wheel"
wheel=$(ls "$dest"/wheel/onnxruntime_gpu-*.whl)
# Only the shared libraries: the runtime and its CUDA/TensorRT providers.
python3 - "$wheel" "$dest/bundle/ort" <<'PY'
import sys, zipfile, os
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = os.path.basename(name)
        if name.startswith("onnxruntime/capi/lib") and ".so" in base:
            with z.open(name) as src, open(os.path.join(out, base), "wb") as dst:
                dst.write(src.read())
            print("  ", base)
PY

echo "== parts"
tar -C "$dest/bundle" -cf - . | xz -T0 -6 | split -b 60M - "$dest/parts/part-"
(cd "$dest/parts" && sha256sum part-* > SHA256SUMS)
ls -la "$dest/parts"
echo "carry each part in its own device call: see benches/RESULTS.md"
