"""A model whose dynamic dimensions have no names, for the check that two
unnamed dimensions are distinct (tests/cli/lost_work.rs). Run once; the
.onnx file is committed.

`unnamed_dims.onnx`: x f32[?, ?] in;
    t f32[?, ?] = transpose(x)      (x of [2, 5] gives [5, 2])
    y f32[?, ?] = 2·x
out. Every `?` is a dimension with neither a size nor a name (ONNX's
unknown dimension): none of them has to equal another.
"""
import os

import onnx
from onnx import TensorProto, helper

x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, None])
t = helper.make_tensor_value_info("t", TensorProto.FLOAT, [None, None])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, None])
two = helper.make_node("Constant", [], ["two"], value=helper.make_tensor("two", TensorProto.FLOAT, [1], [2.0]))
nodes = [
    two,
    helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0]),
    helper.make_node("Mul", ["x", "two"], ["y"]),
]
g = helper.make_graph(nodes, "unnamed_dims", [x], [t, y])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
m.ir_version = 8
onnx.checker.check_model(m)
for v in list(m.graph.input) + list(m.graph.output):
    for d in v.type.tensor_type.shape.dim:
        assert not d.HasField("dim_value") and not d.HasField("dim_param"), v.name
onnx.save(m, os.path.join(os.path.dirname(os.path.abspath(__file__)), "unnamed_dims.onnx"))
