"""Run this script in a virtual environment that has models-onnx/requirements.txt.

`check.py` and `export.py` call `ensure()` before importing numpy / onnx /
onnxruntime: when the running interpreter lacks them, a venv is made (once) at
`$WGRAPH_CACHE_DIR/models-venv` (default `~/.cache/wgraph/models-venv`), the
pinned requirements are installed into it with pip, and the script re-runs
itself with that interpreter. Nothing is done by hand on a fresh machine.
"""

import importlib.util
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def _cache_dir():
    if os.environ.get("WGRAPH_CACHE_DIR"):
        return os.environ["WGRAPH_CACHE_DIR"]
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = xdg if xdg and os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "wgraph")


def ensure(modules):
    """Re-exec in the project's venv unless every module in `modules` imports."""
    if all(importlib.util.find_spec(m) is not None for m in modules):
        return
    venv = os.path.join(_cache_dir(), "models-venv")
    python = os.path.join(venv, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(venv):
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        raise SystemExit(f"{venv} lacks {', '.join(missing)} even after installing {HERE}/requirements.txt")
    if not os.path.exists(python):
        print(f"making a Python environment for the model scripts at {venv} (once) ...", file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "venv", venv])
    stamp = os.path.join(venv, ".requirements")
    want = open(os.path.join(HERE, "requirements.txt")).read()
    if not os.path.exists(stamp) or open(stamp).read() != want:
        subprocess.check_call([python, "-m", "pip", "install", "-q", "-r", os.path.join(HERE, "requirements.txt")])
        with open(stamp, "w") as f:
            f.write(want)
    os.execv(python, [python] + sys.argv)
