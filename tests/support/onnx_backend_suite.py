#!/usr/bin/env python3
"""The ONNX package's own backend-test models, run through wgraph's generic
`model` kind with no wgraph metadata (tests/cli.rs, `onnx_backend_suite`).

    python3 tests/support/onnx_backend_suite.py prepare OUT   # graphs + inputs + ORT's outputs
    python3 tests/support/onnx_backend_suite.py compare OUT [SKIP…]   # wgraph's outputs vs ORT's, bit for bit

`prepare` takes every model of the suites below that ONNX Runtime (the same
version wgraph loads) can load and run, writes its test_data_set_0 inputs as
.npy, a .world graph (npy nodes -> the model's inputs, its outputs ->
npy_dump) and ONNX Runtime's own outputs, and a manifest.json listing them
(with their dtypes, and whether their data holds NaN or infinity) and the
models ONNX Runtime itself refuses (with its reason). `compare` reads
<OUT>/<name>/run/out/*.npy and prints a JSON summary; it exits 1 on any
difference. Runs in the models-onnx environment (made on first use).
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "models-onnx"))
import script_env  # noqa: E402

script_env.ensure(["numpy", "onnx", "onnxruntime"])

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import numpy_helper  # noqa: E402

SUITES = ["pytorch-converted", "pytorch-operator", "simple"]


def quoted(name):
    return '"' + name.replace("\\\\", "\\\\\\\\").replace('"', '\\\\"') + '"'


def load_inputs(test_dir, count):
    data = os.path.join(test_dir, "test_data_set_0")
    out = []
    for i in range(count):
        t = onnx.TensorProto()
        with open(os.path.join(data, f"input_{i}.pb"), "rb") as f:
            t.ParseFromString(f.read())
        out.append(numpy_helper.to_array(t))
    return out


def non_finite(feeds, want):
    """Where a model's test data holds NaN or infinity: "inputs" (wgraph's
    npy node refuses the file), "outputs" (wgraph fails the node that made
    them), or None."""
    bad = lambda arrays: any(a.dtype.kind == "f" and not np.isfinite(a).all() for a in arrays)
    return "inputs" if bad(feeds) else "outputs" if bad(want) else None


def prepare(out):
    root = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
    manifest = {"onnx": onnx.__version__, "onnxruntime": ort.__version__, "models": [], "refused_by_onnxruntime": []}
    for suite in SUITES:
        for name in sorted(os.listdir(os.path.join(root, suite))):
            test_dir = os.path.join(root, suite, name)
            model = os.path.join(test_dir, "model.onnx")
            if not os.path.exists(model):
                continue
            try:
                sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
                ins = sess.get_inputs()
                feeds = load_inputs(test_dir, len(ins))
                want = sess.run(None, {i.name: a for i, a in zip(ins, feeds)})
            except Exception as e:  # ONNX Runtime itself cannot: not wgraph's to run
                manifest["refused_by_onnxruntime"].append({"model": f"{suite}/{name}", "why": str(e).splitlines()[0][:200]})
                continue
            case = f"{suite}__{name}"
            d = os.path.join(out, case)
            os.makedirs(d, exist_ok=True)
            # A model's NaN (sqrt of a negative) is its answer here: compared, not refused.
            lines = ["world { on_nonfinite = allow }", f'model m = "{model}"', "node net: model { model = m }"]
            for k, (i, a) in enumerate(zip(ins, feeds)):
                np.save(os.path.join(d, f"in{k}.npy"), a)
                lines.append(f'node in{k}: npy {{ path = "in{k}.npy" }}')
                lines.append(f"in{k}.out -> net.{quoted(i.name)}")
            outputs = []
            for k, (o, a) in enumerate(zip(sess.get_outputs(), want)):
                np.save(os.path.join(d, f"want{k}.npy"), a)
                lines.append(f'node out{k}: npy_dump {{ dir = "out", prefix = "o{k}" }}')
                lines.append(f"net.{quoted(o.name)} -> out{k}.tensor")
                outputs.append(k)
            with open(os.path.join(d, "g.world"), "w") as f:
                f.write("\n".join(lines) + "\n")
            manifest["models"].append({"case": case, "outputs": outputs,
                                       "dtypes": sorted({str(a.dtype) for a in feeds + want}),
                                       "non_finite": non_finite(feeds, want)})
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(json.dumps({"models": len(manifest["models"]), "refused_by_onnxruntime": len(manifest["refused_by_onnxruntime"])}))


def compare(out):
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    bad = []
    skip = set(sys.argv[3:])
    for m in manifest["models"]:
        if m["case"] in skip:
            continue
        d = os.path.join(out, m["case"])
        for k in m["outputs"]:
            want = np.load(os.path.join(d, f"want{k}.npy"))
            got_path = os.path.join(d, "run", "out", f"o{k}_00000.npy")
            if not os.path.exists(got_path):
                bad.append(f"{m['case']}: output {k} missing")
                continue
            got = np.load(got_path)
            if got.dtype != want.dtype or got.shape != want.shape:
                bad.append(f"{m['case']}: output {k} is {got.dtype}{list(got.shape)}, onnxruntime gives {want.dtype}{list(want.shape)}")
            elif got.tobytes() != want.tobytes():
                err = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
                bad.append(f"{m['case']}: output {k} differs (max abs {err})")
    print(json.dumps({"compared": len(manifest["models"]) - len(skip), "differences": bad}))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    {"prepare": prepare, "compare": compare}[sys.argv[1]](sys.argv[2])
