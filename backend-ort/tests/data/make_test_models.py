#!/usr/bin/env python3
"""Writes the tiny ONNX models used by backend-ort/tests/ort.rs.

Run from anywhere (needs `pip install onnx numpy`); the outputs are committed
next to this script, so the tests never need Python for the models:

    python3 backend-ort/tests/data/make_test_models.py

- add.onnx      x f32[batch, 4], y f32[batch, 4] -> out f32[batch, 4] = x + y;
                metadata wgraph.role=test, wgraph.note=tiny
- tokens.onnx   ids i64[batch, seq] -> emb f32[batch, seq, 3] = table[ids],
                table[i] = [i, 10 i, 100 i] for i in 0..10
- bytes.onnx    img u8[?, 3] (first dim dynamic and unnamed) ->
                scaled f32[?, 3] = 2 * float(img)
- half.onnx     h f16[2] -> o f16[2] (Identity)
- u64.onnx      w u64[2] -> o u64[2] (Identity): a dtype wgraph does not support
- not_onnx.onnx garbage bytes
"""

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = [helper.make_opsetid("", 17)]
IR_VERSION = 8


def save(graph, name, metadata=None):
    model = helper.make_model(graph, opset_imports=OPSET, producer_name="wgraph-tests")
    model.ir_version = IR_VERSION
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value
    onnx.checker.check_model(model)
    path = os.path.join(HERE, name)
    onnx.save(model, path)
    print("wrote", path)


def add_model():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 4])
    node = helper.make_node("Add", ["x", "y"], ["out"])
    graph = helper.make_graph([node], "add", [x, y], [out])
    save(graph, "add.onnx", {"wgraph.role": "test", "wgraph.note": "tiny"})


def tokens_model():
    table = np.array([[i, 10 * i, 100 * i] for i in range(10)], dtype=np.float32)
    init = numpy_helper.from_array(table, name="table")
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "seq"])
    emb = helper.make_tensor_value_info("emb", TensorProto.FLOAT, ["batch", "seq", 3])
    node = helper.make_node("Gather", ["table", "ids"], ["emb"], axis=0)
    graph = helper.make_graph([node], "tokens", [ids], [emb], initializer=[init])
    save(graph, "tokens.onnx")


def bytes_model():
    img = helper.make_tensor_value_info("img", TensorProto.UINT8, [None, 3])
    scaled = helper.make_tensor_value_info("scaled", TensorProto.FLOAT, [None, 3])
    two = numpy_helper.from_array(np.array(2.0, dtype=np.float32), name="two")
    cast = helper.make_node("Cast", ["img"], ["as_float"], to=TensorProto.FLOAT)
    mul = helper.make_node("Mul", ["as_float", "two"], ["scaled"])
    graph = helper.make_graph([cast, mul], "bytes", [img], [scaled], initializer=[two])
    save(graph, "bytes.onnx")


def half_model():
    h = helper.make_tensor_value_info("h", TensorProto.FLOAT16, [2])
    o = helper.make_tensor_value_info("o", TensorProto.FLOAT16, [2])
    node = helper.make_node("Identity", ["h"], ["o"])
    graph = helper.make_graph([node], "half", [h], [o])
    save(graph, "half.onnx")


def u64_model():
    w = helper.make_tensor_value_info("w", TensorProto.UINT64, [2])
    o = helper.make_tensor_value_info("o", TensorProto.UINT64, [2])
    node = helper.make_node("Identity", ["w"], ["o"])
    graph = helper.make_graph([node], "u64", [w], [o])
    save(graph, "u64.onnx")


def garbage():
    path = os.path.join(HERE, "not_onnx.onnx")
    with open(path, "wb") as f:
        f.write(b"this is not an ONNX model\n\x00\x01\x02\xff\xfe garbage \x08\x12\x9f")
    print("wrote", path)


if __name__ == "__main__":
    add_model()
    tokens_model()
    bytes_model()
    half_model()
    u64_model()
    garbage()
