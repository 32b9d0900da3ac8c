#!/usr/bin/env bash
# Installs a real Triton Inference Server for the Triton tests
# (tests/cli/triton.rs): a Python 3.11 venv in target/triton-venv (ignored)
# with PyPI's nvidia-pytriton (tritonserver 2.51 with the python backend),
# onnxruntime and numpy, and a backends folder laid out the way tritonserver
# wants it (target/triton-venv/backends/python). Called on first need by
# the tests (triton() in tests/cli/support.rs). Idempotent: when the venv is
# complete it only looks and exits 0. Two callers at once are serialised by
# a lock (flock on target/triton-venv.lock); a half-made venv (no `.done`
# marker) is removed and made again.
# Prints, on its last line, the venv's path.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
venv="${WGRAPH_TRITON_VENV:-$target/triton-venv}"
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock -w 1200 9
if [ -f "$venv/.done" ]; then
    echo "$venv"
    exit 0
fi
python="${WGRAPH_TRITON_PYTHON:-python3.11}"
if ! command -v "$python" >/dev/null 2>&1; then
    echo "install-triton.sh: $python not found (tritonserver's python backend stub is built for 3.11)" >&2
    exit 1
fi
echo "installing tritonserver (nvidia-pytriton), onnxruntime and numpy into $venv for the Triton tests" >&2
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install -q nvidia-pytriton onnxruntime numpy >&2
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
tt="$site/pytriton/tritonserver"
if [ ! -x "$tt/bin/tritonserver" ]; then
    echo "install-triton.sh: no tritonserver in $tt" >&2
    exit 1
fi
# One backends folder: the python backend's files and the 3.11 stub.
mkdir -p "$venv/backends/python"
cp "$tt"/backends/python/*.* "$venv/backends/python/"
cp "$tt"/python_backend_stubs/3.11/triton_python_backend_stub "$venv/backends/python/"
ln -sfn "$tt/bin/tritonserver" "$venv/bin/tritonserver"
ln -sfn "$site/nvidia_pytriton.libs" "$venv/triton-libs"
touch "$venv/.done"
echo "$venv"
