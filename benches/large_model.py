#!/usr/bin/env python3
"""Writes a DiT-sized ONNX model with external data, for measuring how
wgraph loads, reloads and holds large models (benches/RESULTS.md,
"Large models"). Nothing is downloaded and no weights are committed: the
weights are random, made here.

The network is a stack of transformer-block-shaped MLPs on tokens
x: f32[1, T, D] -> y: f32[1, T, D]: per block a `qkv` (D x 3D) and `proj`
(3D x D) projection and an MLP (D x 4D, 4D x D), each a MatMul on a weight
initializer, with residual adds. Width 1024 and 24 blocks give 302 M
parameters (1.2 GB of f32 weights, 0.6 GB in f16).

    python3 benches/large_model.py OUT.onnx [--width 1024] [--blocks 24]
        [--tokens 16] [--dtype f32|f16] [--location NAME]

`--location` names the external-data file (default `OUT.onnx.data`, as
`torch.onnx.export` writes it); every initializer's bytes go there, each
at an offset aligned to 4096 bytes. Needs numpy and onnx
(`pip install numpy onnx`).
"""

import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--blocks", type=int, default=24)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--dtype", choices=["f32", "f16"], default="f32")
    ap.add_argument("--location", default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    d, t = args.width, args.tokens
    np_dtype = np.float32 if args.dtype == "f32" else np.float16
    onnx_dtype = TensorProto.FLOAT if args.dtype == "f32" else TensorProto.FLOAT16
    location = args.location or os.path.basename(args.out) + ".data"
    data_path = os.path.join(os.path.dirname(os.path.abspath(args.out)), location)
    rng = np.random.default_rng(args.seed)

    nodes, inits = [], []
    offset = 0
    with open(data_path, "wb") as data:

        def weight(name, rows, cols):
            nonlocal offset
            pad = (-offset) % 4096
            data.write(b"\0" * pad)
            offset += pad
            w = (rng.standard_normal((rows, cols), dtype=np.float32) * (0.5 / np.sqrt(rows))).astype(np_dtype)
            raw = w.tobytes()
            data.write(raw)
            t = TensorProto()
            t.name = name
            t.data_type = onnx_dtype
            t.dims.extend([rows, cols])
            t.data_location = TensorProto.EXTERNAL
            for k, v in (("location", location), ("offset", str(offset)), ("length", str(len(raw)))):
                e = t.external_data.add()
                e.key, e.value = k, v
            offset += len(raw)
            inits.append(t)
            return name

        x = "x"
        if args.dtype == "f16":
            nodes.append(helper.make_node("Cast", [x], ["x16"], to=TensorProto.FLOAT16))
            x = "x16"
        for b in range(args.blocks):
            p = f"b{b}"
            qkv = weight(f"{p}.qkv", d, 3 * d)
            proj = weight(f"{p}.proj", 3 * d, d)
            fc1 = weight(f"{p}.fc1", d, 4 * d)
            fc2 = weight(f"{p}.fc2", 4 * d, d)
            nodes += [
                helper.make_node("MatMul", [x, qkv], [f"{p}.h"]),
                helper.make_node("Tanh", [f"{p}.h"], [f"{p}.ht"]),
                helper.make_node("MatMul", [f"{p}.ht", proj], [f"{p}.a"]),
                helper.make_node("Add", [x, f"{p}.a"], [f"{p}.r1"]),
                helper.make_node("MatMul", [f"{p}.r1", fc1], [f"{p}.m"]),
                helper.make_node("Tanh", [f"{p}.m"], [f"{p}.mt"]),
                helper.make_node("MatMul", [f"{p}.mt", fc2], [f"{p}.m2"]),
                helper.make_node("Add", [f"{p}.r1", f"{p}.m2"], [f"{p}.out"]),
            ]
            x = f"{p}.out"
        if args.dtype == "f16":
            nodes.append(helper.make_node("Cast", [x], ["y"], to=TensorProto.FLOAT))
        else:
            nodes.append(helper.make_node("Identity", [x], ["y"]))

    graph = helper.make_graph(
        nodes,
        "large",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, t, d])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, t, d])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with open(args.out, "wb") as f:
        f.write(model.SerializeToString())
    params = args.blocks * 12 * d * d
    print(f"{args.out}: {params / 1e6:.0f} M parameters, {offset / 2**20:.0f} MiB in {data_path}")


if __name__ == "__main__":
    main()
