"""Rewrite an ONNX model into one wgraph's wonnx backend can load.

    python3 models-onnx/decompose_for_wonnx.py IN.onnx OUT.onnx [--batch 1]

wonnx 0.5.1 (the WebGPU backend, backend-wonnx/) needs static shapes for
every value, knows only f32/i32/i64 tensors and lacks some operators the
shipped models use. This script, exactly (no approximations):

* fixes every symbolic input/output dimension named `batch` (and any other
  symbolic input dimension, which must then be given with --dim NAME=SIZE)
  to a number, and infers static shapes for every intermediate value;
* folds everything computable ahead of time (Shape, Constant, the
  f16 -> f32 Cast of stored weights, shape arithmetic) into f32/i64
  initializers;
* rewrites operators wonnx lacks into ones it has:
  LayerNormalization -> ReduceMean/Sub/Mul/Add/Sqrt/Div,
  DepthToSpace -> Reshape/Transpose/Reshape,
  Slice and Gather on an axis other than 0 -> Transpose/Gather(axis 0)/Transpose,
  Split with unequal sizes -> one Gather per part,
  Squeeze/Unsqueeze/Flatten -> Reshape (to the static shape),
  Clip of integers -> Cast/Clip/Cast (exact below 2^24), and an absent
  or infinite Clip bound -> the largest finite f32,
  Gemm with transA/transB -> Gemm of the transposed operand,
  MatMul of a stack by a matrix -> Reshape/MatMul/Reshape,
  a MatMul/Gemm over K not a multiple of 4 -> K padded with zeros (wonnx
  0.5.1 drops the remainder),
  a Cast to int64 -> a Cast to int32 (wonnx computes integers as i32);
* declares opset 15 when the model's is newer and every operator left
  means the same there (wonnx's Softmax compiles for opsets <= 15);
* stores int64 initializers as `int64_data` (wonnx ignores their raw data);
* writes the inferred shapes into `value_info` (wonnx reads them).

Metadata (`metadata_props`) is kept. The result is checked against the
original with ONNX Runtime on random inputs (max abs difference printed).

Run it in the models' venv (see script_env.py; made on first use).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import script_env  # noqa: E402

script_env.ensure(["numpy", "onnx", "onnxruntime"])

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper, shape_inference  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402


def fix_dims(model, sizes):
    for vi in list(model.graph.input) + list(model.graph.output):
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_param"):
                name = d.dim_param
                if name in sizes:
                    d.ClearField("dim_param")
                    d.dim_value = sizes[name]
                elif vi in model.graph.input:
                    raise SystemExit(f"input `{vi.name}` has symbolic dimension `{name}`: give it with --dim {name}=SIZE")
    # Output shapes are re-inferred.
    for o in model.graph.output:
        if any(d.HasField("dim_param") for d in o.type.tensor_type.shape.dim):
            o.type.tensor_type.ClearField("shape")
    del model.graph.value_info[:]


def infer(model):
    return shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)


def shapes_of(model):
    out = {}
    for vi in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        t = vi.type.tensor_type
        if t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim):
            out[vi.name] = [d.dim_value for d in t.shape.dim]
    return out


def types_of(model):
    out = {}
    for vi in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        out[vi.name] = vi.type.tensor_type.elem_type
    for init in model.graph.initializer:
        out[init.name] = init.data_type
    return out


def fold(model):
    """Folds Constant nodes, Shape of static values and nodes whose inputs are all constant."""
    changed = True
    while changed:
        changed = False
        model = infer(model)
        shapes = shapes_of(model)
        consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        graph_outputs = {o.name for o in model.graph.output}
        keep = []
        for node in model.graph.node:
            value = None
            if node.op_type == "Constant":
                value = [numpy_helper.to_array(node.attribute[0].t)] if node.attribute[0].name == "value" else None
                if value is None:
                    value = ReferenceEvaluator(helper.make_model(
                        helper.make_graph([node], "c", [], [helper.make_tensor_value_info(node.output[0], 0, None)]),
                        opset_imports=model.opset_import)).run(None, {})
            elif node.op_type == "Shape" and node.input[0] in shapes:
                start = next((a.i for a in node.attribute if a.name == "start"), 0)
                end = next((a.i for a in node.attribute if a.name == "end"), None)
                value = [np.array(shapes[node.input[0]][start:end], dtype=np.int64)]
            elif node.op_type == "Size" and node.input[0] in shapes:
                value = [np.array(int(np.prod(shapes[node.input[0]])), dtype=np.int64)]
            elif all(i == "" or i in consts for i in node.input) and node.input:
                g = helper.make_graph(
                    [node], "f",
                    [helper.make_tensor_value_info(i, helper.np_dtype_to_tensor_dtype(consts[i].dtype), consts[i].shape)
                     for i in node.input if i],
                    [helper.make_tensor_value_info(o, 0, None) for o in node.output])
                value = ReferenceEvaluator(helper.make_model(g, opset_imports=model.opset_import)).run(
                    None, {i: consts[i] for i in node.input if i})
            if value is None or any(o in graph_outputs for o in node.output):
                keep.append(node)
                continue
            for name, v in zip(node.output, value):
                if name:
                    v = np.asarray(v)
                    model.graph.initializer.append(numpy_helper.from_array(v, name))
                    consts[name] = v
            changed = True
        del model.graph.node[:]
        model.graph.node.extend(keep)
        prune(model)
    return model


def prune(model):
    """Drops nodes and initializers nothing uses."""
    needed = {o.name for o in model.graph.output}
    nodes = []
    for node in reversed(model.graph.node):
        if any(o in needed for o in node.output):
            nodes.append(node)
            needed.update(i for i in node.input if i)
    nodes.reverse()
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    inits = [i for i in model.graph.initializer if i.name in needed]
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits)


class Rewriter:
    def __init__(self, model):
        self.model = model
        self.shapes = shapes_of(model)
        self.types = types_of(model)
        self.consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        self.shapes.update({k: list(v.shape) for k, v in self.consts.items()})
        self.count = 0

    def fresh(self, base):
        self.count += 1
        return f"{base}__w{self.count}"

    def const(self, base, array):
        name = self.fresh(base)
        self.model.graph.initializer.append(numpy_helper.from_array(np.asarray(array), name))
        self.consts[name] = np.asarray(array)
        return name

    def gather_range(self, node, x, axis, indices, out, rank):
        """out = x taken at `indices` along `axis` (as Slice would): Transpose/Gather(0)/Transpose."""
        n = node.name or node.output[0]
        nodes = []
        src = x
        if axis != 0:
            perm = [axis] + [i for i in range(rank) if i != axis]
            src = self.fresh(n + "_front")
            nodes.append(helper.make_node("Transpose", [x], [src], name=self.fresh(n + "/Transpose"), perm=perm))
        idx = self.const(n + "_indices", np.array(indices, dtype=np.int32))
        if axis == 0:
            nodes.append(helper.make_node("Gather", [src, idx], [out], name=self.fresh(n + "/Gather"), axis=0))
            return nodes
        mid = self.fresh(n + "_gathered")
        nodes.append(helper.make_node("Gather", [src, idx], [mid], name=self.fresh(n + "/Gather"), axis=0))
        back = [0] * rank
        perm = [axis] + [i for i in range(rank) if i != axis]
        for pos, dim in enumerate(perm):
            back[dim] = pos
        nodes.append(helper.make_node("Transpose", [mid], [out], name=self.fresh(n + "/Transpose_back"), perm=back))
        return nodes

    def rewrite(self, node):
        op = node.op_type
        n = node.name or node.output[0]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if op == "LayerNormalization":
            x, scale = node.input[0], node.input[1]
            bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
            axis = attrs.get("axis", -1)
            rank = len(self.shapes[x])
            axis = axis + rank if axis < 0 else axis
            axes = list(range(axis, rank))
            eps = self.const(n + "_eps", np.array(attrs.get("epsilon", 1e-5), dtype=np.float32))
            t = {k: self.fresh(f"{n}_{k}") for k in ["mean", "centered", "sq", "var", "vareps", "std", "norm", "scaled"]}
            out = node.output[0]
            nodes = [
                helper.make_node("ReduceMean", [x], [t["mean"]], name=self.fresh(n + "/ReduceMean"), axes=axes, keepdims=1),
                helper.make_node("Sub", [x, t["mean"]], [t["centered"]], name=self.fresh(n + "/Sub")),
                helper.make_node("Mul", [t["centered"], t["centered"]], [t["sq"]], name=self.fresh(n + "/Mul")),
                helper.make_node("ReduceMean", [t["sq"]], [t["var"]], name=self.fresh(n + "/ReduceMean"), axes=axes, keepdims=1),
                helper.make_node("Add", [t["var"], eps], [t["vareps"]], name=self.fresh(n + "/Add")),
                helper.make_node("Sqrt", [t["vareps"]], [t["std"]], name=self.fresh(n + "/Sqrt")),
                helper.make_node("Div", [t["centered"], t["std"]], [t["norm"]], name=self.fresh(n + "/Div")),
                helper.make_node("Mul", [t["norm"], scale], [t["scaled"] if bias else out], name=self.fresh(n + "/Mul_scale")),
            ]
            if bias:
                nodes.append(helper.make_node("Add", [t["scaled"], bias], [out], name=self.fresh(n + "/Add_bias")))
            if len(node.output) > 1 and any(node.output[1:]):
                raise SystemExit(f"{n}: LayerNormalization's Mean/InvStdDev outputs are not supported")
            return nodes
        if op == "DepthToSpace":
            x = node.input[0]
            b = attrs["blocksize"]
            mode = attrs.get("mode", b"DCR")
            mode = mode.decode() if isinstance(mode, bytes) else mode
            N, C, H, W = self.shapes[x]
            if mode == "DCR":
                shape6, perm = [N, b, b, C // (b * b), H, W], [0, 3, 4, 1, 5, 2]
            else:
                shape6, perm = [N, C // (b * b), b, b, H, W], [0, 1, 4, 2, 5, 3]
            s6 = self.const(n + "_shape6", np.array(shape6, dtype=np.int64))
            s4 = self.const(n + "_shape4", np.array([N, C // (b * b), H * b, W * b], dtype=np.int64))
            r, tr = self.fresh(n + "_6d"), self.fresh(n + "_perm")
            return [
                helper.make_node("Reshape", [x, s6], [r], name=self.fresh(n + "/Reshape")),
                helper.make_node("Transpose", [r], [tr], name=self.fresh(n + "/Transpose"), perm=perm),
                helper.make_node("Reshape", [tr, s4], [node.output[0]], name=self.fresh(n + "/Reshape_back")),
            ]
        if op == "Slice":
            x = node.input[0]
            shape = self.shapes[x]
            rank = len(shape)
            starts = self.consts[node.input[1]].tolist()
            ends = self.consts[node.input[2]].tolist()
            axes = self.consts[node.input[3]].tolist() if len(node.input) > 3 and node.input[3] else list(range(len(starts)))
            steps = self.consts[node.input[4]].tolist() if len(node.input) > 4 and node.input[4] else [1] * len(starts)
            nodes, src = [], x
            for k, (s, e, a, st) in enumerate(zip(starts, ends, axes, steps)):
                a = a + rank if a < 0 else a
                indices = list(range(shape[a]))[slice(s, e, st)]
                if indices == list(range(shape[a])):
                    continue
                last = k == len(starts) - 1
                out = node.output[0] if last else self.fresh(n + "_part")
                nodes += self.gather_range(node, src, a, indices, out, rank)
                src = out
            if not nodes:
                return [helper.make_node("Identity", [x], [node.output[0]], name=self.fresh(n + "/Identity"))]
            if src != node.output[0]:
                nodes.append(helper.make_node("Identity", [src], [node.output[0]], name=self.fresh(n + "/Identity")))
            return nodes
        if op == "Gather" and attrs.get("axis", 0) != 0:
            x, idx = node.input
            rank = len(self.shapes[x])
            axis = attrs["axis"] + rank if attrs["axis"] < 0 else attrs["axis"]
            if idx not in self.consts:
                raise SystemExit(f"{n}: Gather on axis {axis} with computed indices is not supported")
            indices = self.consts[idx]
            if indices.ndim == 0:
                mid = self.fresh(n + "_keep")
                nodes = self.gather_range(node, x, axis, [int(indices)], mid, rank)
                sq = self.const(n + "_axes", np.array([axis], dtype=np.int64))
                return nodes + [helper.make_node("Squeeze", [mid, sq], [node.output[0]], name=self.fresh(n + "/Squeeze"))]
            if indices.ndim == 1:
                return self.gather_range(node, x, axis, indices.tolist(), node.output[0], rank)
            raise SystemExit(f"{n}: Gather with {indices.ndim}-d indices on axis {axis} is not supported")
        if op == "Split":
            x = node.input[0]
            shape = self.shapes[x]
            rank = len(shape)
            axis = attrs.get("axis", 0)
            axis = axis + rank if axis < 0 else axis
            if len(node.input) > 1 and node.input[1]:
                sizes = self.consts[node.input[1]].tolist()
            else:
                return [node]
            if len(set(sizes)) == 1 and sizes[0] * len(sizes) == shape[axis]:
                return [helper.make_node("Split", [x], list(node.output), name=node.name, axis=axis)]
            nodes, start = [], 0
            for size, out in zip(sizes, node.output):
                nodes += self.gather_range(node, x, axis, list(range(start, start + size)), out, rank)
                start += size
            return nodes
        if op in ("Squeeze", "Unsqueeze", "Flatten") and node.output[0] in self.shapes:
            # wonnx aliases Reshape with its shape as an attribute, but not
            # the opset-13 Squeeze/Unsqueeze with an `axes` input.
            shape = self.const(n + "_shape", np.array(self.shapes[node.output[0]], dtype=np.int64))
            return [helper.make_node("Reshape", [node.input[0], shape], [node.output[0]], name=node.name)]
        if op == "Clip" and self.types.get(node.input[0]) in (TensorProto.INT32, TensorProto.INT64):
            # wonnx clips floats only: clip the integer as a float (exact below 2^24).
            x = node.input[0]
            fx, fy = self.fresh(n + "_float"), self.fresh(n + "_clipped")
            bounds = []
            for b in list(node.input[1:3]) + [""] * (3 - len(node.input)):
                bounds.append(self.const(n + "_bound", self.consts[b].astype(np.float32)) if b else "")
            while bounds and not bounds[-1]:
                bounds.pop()
            to = self.types[x]
            return [
                helper.make_node("Cast", [x], [fx], name=self.fresh(n + "/Cast"), to=TensorProto.FLOAT),
                helper.make_node("Clip", [fx] + bounds, [fy], name=self.fresh(n + "/Clip")),
                helper.make_node("Cast", [fy], [node.output[0]], name=self.fresh(n + "/Cast_back"), to=to),
            ]
        if op == "Gemm" and (attrs.get("transA", 0) or attrs.get("transB", 0)):
            # wonnx's Gemm has no transA/transB: transpose the operand instead.
            inputs = list(node.input)
            nodes = []
            for k, flag in ((0, "transA"), (1, "transB")):
                if not attrs.get(flag, 0):
                    continue
                if inputs[k] in self.consts:
                    inputs[k] = self.const(inputs[k] + "_T", np.ascontiguousarray(self.consts[inputs[k]].T))
                else:
                    t = self.fresh(n + "_T")
                    nodes.append(helper.make_node("Transpose", [inputs[k]], [t], name=self.fresh(n + "/Transpose"), perm=[1, 0]))
                    inputs[k] = t
            rest = {k: v for k, v in attrs.items() if k not in ("transA", "transB")}
            return nodes + [helper.make_node("Gemm", inputs, list(node.output), name=node.name, **rest)]
        if op == "Clip" and self.types.get(node.input[0]) == TensorProto.FLOAT:
            # wonnx writes the bounds into its shader with one decimal
            # (`{:.1}`), and an absent bound as `inf`, which WGSL lacks: give
            # both, finite, and refuse bounds one decimal cannot hold.
            bounds = []
            for k, default in ((1, -np.finfo(np.float32).max), (2, np.finfo(np.float32).max)):
                name = node.input[k] if len(node.input) > k else ""
                v = float(self.consts[name]) if name else default
                if not np.isfinite(v):
                    v = float(np.sign(v) * np.finfo(np.float32).max)
                if abs(v) < 1e30 and float(f"{v:.1f}") != v:
                    raise SystemExit(f"{n}: Clip bound {v} is not exact with one decimal (wonnx rounds it)")
                bounds.append(v)
            if all(len(node.input) > k and node.input[k] for k in (1, 2)) and all(np.isfinite(float(self.consts[node.input[k]])) for k in (1, 2)):
                return [node]
            lo = self.const(n + "_min", np.array(bounds[0], dtype=np.float32))
            hi = self.const(n + "_max", np.array(bounds[1], dtype=np.float32))
            return [helper.make_node("Clip", [node.input[0], lo, hi], list(node.output), name=node.name)]
        if op in ("MatMul", "Gemm") and node.input[1] in self.consts and not attrs.get("transA", 0) \
                and not attrs.get("transB", 0) and self.shapes[node.input[0]][-1] % 4:
            # wonnx 0.5.1's matrix product reads K in chunks of 4 and drops
            # the rest: pad K with zeros (A's columns, B's rows).
            a, b = node.input[0], node.input[1]
            k = self.shapes[a][-1]
            pad = 4 - k % 4
            lead = self.shapes[a][:-1]
            zeros = self.const(n + "_zeros", np.zeros(lead + [pad], dtype=np.float32))
            b_arr = self.consts[b]
            b_pad = self.const(b + "_padK", np.concatenate([b_arr, np.zeros([pad] + list(b_arr.shape[1:]), b_arr.dtype)], axis=0))
            a_pad = self.fresh(n + "_padK")
            inputs = [a_pad, b_pad] + list(node.input[2:])
            return [
                helper.make_node("Concat", [a, zeros], [a_pad], name=self.fresh(n + "/Concat"), axis=len(lead)),
                helper.make_node(op, inputs, list(node.output), name=node.name, **attrs),
            ]
        if op == "MatMul":
            a, b = node.input
            sa, sb = self.shapes[a], self.shapes[b]
            if len(sa) > 2 and len(sb) == 2:
                # wonnx stacks matrices only when both sides have the same
                # leading dims: fold them into the rows instead.
                rows = int(np.prod(sa[:-1]))
                flat = self.const(n + "_rows", np.array([rows, sa[-1]], dtype=np.int64))
                back = self.const(n + "_shape", np.array(list(sa[:-1]) + [sb[-1]], dtype=np.int64))
                a2, y2 = self.fresh(n + "_2d"), self.fresh(n + "_y2d")
                return [
                    helper.make_node("Reshape", [a, flat], [a2], name=self.fresh(n + "/Reshape")),
                    helper.make_node("MatMul", [a2, b], [y2], name=node.name),
                    helper.make_node("Reshape", [y2, back], [node.output[0]], name=self.fresh(n + "/Reshape_back")),
                ]
            return [node]
        if op == "Cast" and attrs.get("to") == TensorProto.INT64:
            return [helper.make_node("Cast", list(node.input), list(node.output), name=node.name, to=TensorProto.INT32)]
        return [node]

    def run(self):
        nodes = []
        for node in self.model.graph.node:
            nodes += self.rewrite(node)
        del self.model.graph.node[:]
        self.model.graph.node.extend(nodes)
        self.retype_ints()
        # Types and shapes are inferred again from the rewritten graph.
        del self.model.graph.value_info[:]

    def retype_ints(self):
        """Int64 values downstream of a (now int32) Cast become int32: their constant operands too."""
        int32 = {o for n in self.model.graph.node if n.op_type == "Cast" and any(
            a.name == "to" and a.i == TensorProto.INT32 for a in n.attribute) for o in n.output}
        elementwise = {"Add", "Sub", "Mul", "Div", "Clip", "Min", "Max", "Mod"}
        inits = {i.name: i for i in self.model.graph.initializer}
        changed = True
        while changed:
            changed = False
            for node in self.model.graph.node:
                if node.op_type in elementwise and any(i in int32 for i in node.input):
                    for i, name in enumerate(node.input):
                        if name in inits and inits[name].data_type == TensorProto.INT64:
                            arr = numpy_helper.to_array(inits[name]).astype(np.int32)
                            new = self.const(name + "_i32", arr)
                            node.input[i] = new
                            inits[new] = self.model.graph.initializer[-1]
                    for o in node.output:
                        if o not in int32:
                            int32.add(o)
                            changed = True


def remove_identities(model):
    graph_outputs = {o.name for o in model.graph.output}
    rename = {}
    keep = []
    for node in model.graph.node:
        if node.op_type == "Identity" and node.output[0] not in graph_outputs:
            rename[node.output[0]] = rename.get(node.input[0], node.input[0])
        else:
            keep.append(node)
    for node in keep:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    del model.graph.node[:]
    model.graph.node.extend(keep)


def int64_as_values(model):
    """wonnx 0.5.1 uploads an int64 initializer from `int64_data` only (a
    `raw_data` one becomes empty): store them that way."""
    for i, init in enumerate(model.graph.initializer):
        if init.data_type == TensorProto.INT64 and init.raw_data:
            arr = numpy_helper.to_array(init)
            model.graph.initializer[i].CopyFrom(
                helper.make_tensor(init.name, TensorProto.INT64, arr.shape, arr.ravel().tolist()))


def lower_opset(model, target):
    """wonnx 0.5.1's Softmax compiles for opsets up to 15 only: declare
    opset `target` when every operator left means the same there."""
    from onnx import defs

    for imp in model.opset_import:
        if imp.domain not in ("", "ai.onnx") or imp.version <= target:
            continue
        for node in model.graph.node:
            now = defs.get_schema(node.op_type, imp.version).since_version
            then = defs.get_schema(node.op_type, target).since_version
            if now != then:
                raise SystemExit(f"{node.name}: {node.op_type} changed after opset {target}; wonnx needs opset <= {target}")
        imp.version = target


def random_inputs(model, seed=0):
    rng = np.random.default_rng(seed)
    feeds = {}
    inits = {i.name for i in model.graph.initializer}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
        if np.issubdtype(dtype, np.floating):
            feeds[vi.name] = rng.uniform(0, 1, shape).astype(dtype)
        else:
            feeds[vi.name] = rng.integers(0, 2, shape).astype(dtype)
    return feeds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--batch", type=int, default=1, help="size of the `batch` dimension (default 1)")
    ap.add_argument("--dim", action="append", default=[], metavar="NAME=SIZE", help="size of another symbolic input dimension")
    args = ap.parse_args()
    sizes = {"batch": args.batch}
    for d in args.dim:
        k, v = d.split("=", 1)
        sizes[k] = int(v)

    original = onnx.load(args.input)
    model = onnx.load(args.input)
    fix_dims(model, sizes)
    model = fold(model)
    for _ in range(3):
        rw = Rewriter(model)
        rw.run()
        model = infer(rw.model)
        model = fold(model)
    remove_identities(model)
    lower_opset(model, 15)
    int64_as_values(model)
    model = infer(model)
    prune(model)
    missing = [o for n in model.graph.node for o in n.output if o and o not in shapes_of(model)]
    if missing:
        raise SystemExit(f"no static shape inferred for {missing[:5]}")
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, args.output)

    import collections
    import onnxruntime as ort

    ops = collections.Counter(n.op_type for n in model.graph.node)
    print(f"{args.output}: {len(model.graph.node)} nodes: {dict(ops)}")
    feeds = random_inputs(model)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    want = ort.InferenceSession(original.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feeds)
    got = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feeds)
    for o, a, b in zip(model.graph.output, want, got):
        print(f"  output {o.name}: max |original - rewritten| = {float(np.max(np.abs(a - b))):.3g} (ONNX Runtime, random inputs)")


if __name__ == "__main__":
    main()
