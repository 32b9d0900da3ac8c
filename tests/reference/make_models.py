"""Analytic denoisers for the sampler reference tests (tests/cli.rs, mod
sampler_reference). Run once; the .onnx files are committed.

    out = 0.8·x − 0.0003·t + 0.1·x²     (x: f32[1, 4, 2, 2], t: f32[1])

`flow.onnx` declares it a rectified-flow velocity (t = 1000σ); `vp_eps.onnx`
an ε prediction of a VP model with scaled-linear betas (0.00085, 0.012, 1000);
`plain.onnx` is the same network with no wgraph metadata at all (output `y`),
for the generic `model` node; `dotted.onnx` names its ports as exporters do
(`input.1`, `0`, `out:0`), for quoted port names. `append.onnx` is a cache
that grows: present = concat(past, x) along axis 1 (past f32[1, n, 4], x
f32[1, 1, 4]), for the feedback check's message.

`flow_cond.onnx` and `vp_cond.onnx` (flow velocity; VP ε, scaled-linear)
add two conditions of x's shape and a symbolic batch dimension, for the
guidance reference tests (CFG passes stacked into one call):

    out = 0.8·x − 0.0003·t + 0.1·x² + 0.5·c + 0.2·x·c + 0.3·ctx
    (x, c, ctx: f32[batch, 4, 2, 2], t: f32[batch])

`block_embed.onnx`, `block_b0.onnx` … `block_b2.onnx`, `block_head.onnx`
are a denoiser split at its blocks, for the block cache reference
(`block_denoiser`; tests/reference/blocks.py), elementwise and exact in
float32 (h: f32[batch, 4, 4], 4 tokens of 4):

    embed: h = reshape(x + 0.5·cond), c = 0.001·t (f32[batch, 1, 1]), skip = 0.2·x
    block k: h ← h + q_k·h² + r_k·c + m_k·roll(h, 1 token)
    head: velocity = 0.7·reshape(h) − skip

`dtypes.onnx` has ports of the dtypes PyTorch and TF exports carry besides
f32: mask bool[1, 4], idx i32[1, 4], x f64[1, 4] in;
    picked   f64[1, 4] = where(mask, x, -x)
    inverted bool[1, 4] = not(mask)
    shifted  i32[1, 4] = idx + 10
    counted  i32[1, 4] = int32(mask) + idx
    recip    f64[1, 4] = 1 / x
out. `small_types.onnx` passes i8, i16, u16, u32 and f16 tensors ([3]
each, inputs a..e) through unchanged (a_out..e_out) and widens the f16 to
f32 (e_f32).
"""
import onnx
from onnx import TensorProto, helper


def model(path, meta, output=None, x_name="x", t_name="t"):
    x = helper.make_tensor_value_info(x_name, TensorProto.FLOAT, [1, 4, 2, 2])
    t = helper.make_tensor_value_info(t_name, TensorProto.FLOAT, [1])
    name = output or meta["wgraph.prediction"]
    y = helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 4, 2, 2])
    c = lambda n, v: helper.make_node("Constant", [], [n], value=helper.make_tensor(n, TensorProto.FLOAT, [1], [v]))
    nodes = [
        c("a", 0.8), c("b", -0.0003), c("q", 0.1),
        helper.make_node("Mul", [x_name, "a"], ["ax"]),
        helper.make_node("Mul", [t_name, "b"], ["bt"]),
        helper.make_node("Mul", [x_name, x_name], ["xx"]),
        helper.make_node("Mul", ["xx", "q"], ["qxx"]),
        helper.make_node("Add", ["ax", "bt"], ["s1"]),
        helper.make_node("Add", ["s1", "qxx"], [name]),
    ]
    g = helper.make_graph(nodes, "analytic", [x, t], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    onnx.checker.check_model(m)
    onnx.save(m, path)


model("flow.onnx", {"wgraph.role": "denoiser", "wgraph.prediction": "velocity"})
model("vp_eps.onnx", {
    "wgraph.role": "denoiser", "wgraph.prediction": "epsilon", "wgraph.schedule": "scaled_linear",
    "wgraph.beta_start": "0.00085", "wgraph.beta_end": "0.012", "wgraph.train_steps": "1000",
})
model("plain.onnx", {}, output="y")
model("dotted.onnx", {}, output="out:0", x_name="input.1", t_name="0")


def conditioned(path, meta):
    shape = ["batch", 4, 2, 2]
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("x", "ctx", "c")]
    t = helper.make_tensor_value_info("t", TensorProto.FLOAT, ["batch"])
    name = meta["wgraph.prediction"]
    y = helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
    c = lambda n, v: helper.make_node("Constant", [], [n], value=helper.make_tensor(n, TensorProto.FLOAT, [1], [v]))
    axes = helper.make_node("Constant", [], ["axes"], value=helper.make_tensor("axes", TensorProto.INT64, [3], [1, 2, 3]))
    nodes = [
        c("a", 0.8), c("b", -0.0003), c("q", 0.1), c("k", 0.5), c("m", 0.2), c("r", 0.3), axes,
        helper.make_node("Unsqueeze", ["t", "axes"], ["t4"]),
        helper.make_node("Mul", ["x", "a"], ["ax"]),
        helper.make_node("Mul", ["t4", "b"], ["bt"]),
        helper.make_node("Mul", ["x", "x"], ["xx"]),
        helper.make_node("Mul", ["xx", "q"], ["qxx"]),
        helper.make_node("Mul", ["c", "k"], ["kc"]),
        helper.make_node("Mul", ["x", "c"], ["xc"]),
        helper.make_node("Mul", ["xc", "m"], ["mxc"]),
        helper.make_node("Mul", ["ctx", "r"], ["rctx"]),
        helper.make_node("Add", ["ax", "bt"], ["s1"]),
        helper.make_node("Add", ["s1", "qxx"], ["s2"]),
        helper.make_node("Add", ["s2", "kc"], ["s3"]),
        helper.make_node("Add", ["s3", "mxc"], ["s4"]),
        helper.make_node("Add", ["s4", "rctx"], [name]),
    ]
    g = helper.make_graph(nodes, "analytic_conditioned", [ins[0], t, ins[1], ins[2]], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    onnx.checker.check_model(m)
    onnx.save(m, path)


conditioned("flow_cond.onnx", {"wgraph.role": "denoiser", "wgraph.prediction": "velocity"})
conditioned("vp_cond.onnx", {
    "wgraph.role": "denoiser", "wgraph.prediction": "epsilon", "wgraph.schedule": "scaled_linear",
    "wgraph.beta_start": "0.00085", "wgraph.beta_end": "0.012", "wgraph.train_steps": "1000",
})


def append(path):
    past = helper.make_tensor_value_info("past", TensorProto.FLOAT, [1, "n", 4])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4])
    present = helper.make_tensor_value_info("present", TensorProto.FLOAT, [1, "n_plus_1", 4])
    g = helper.make_graph([helper.make_node("Concat", ["past", "x"], ["present"], axis=1)], "append", [past, x], [present])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, path)


append("append.onnx")


def save(m, path):
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, path)


def dtypes(path):
    info = helper.make_tensor_value_info
    ins = [info("mask", TensorProto.BOOL, [1, 4]), info("idx", TensorProto.INT32, [1, 4]),
           info("x", TensorProto.DOUBLE, [1, 4])]
    outs = [info("picked", TensorProto.DOUBLE, [1, 4]), info("inverted", TensorProto.BOOL, [1, 4]),
            info("shifted", TensorProto.INT32, [1, 4]), info("counted", TensorProto.INT32, [1, 4]),
            info("recip", TensorProto.DOUBLE, [1, 4])]
    ten = helper.make_node("Constant", [], ["ten"], value=helper.make_tensor("ten", TensorProto.INT32, [1], [10]))
    nodes = [
        ten,
        helper.make_node("Neg", ["x"], ["neg"]),
        helper.make_node("Where", ["mask", "x", "neg"], ["picked"]),
        helper.make_node("Not", ["mask"], ["inverted"]),
        helper.make_node("Add", ["idx", "ten"], ["shifted"]),
        helper.make_node("Cast", ["mask"], ["mask_i32"], to=TensorProto.INT32),
        helper.make_node("Add", ["mask_i32", "idx"], ["counted"]),
        helper.make_node("Reciprocal", ["x"], ["recip"]),
    ]
    g = helper.make_graph(nodes, "dtypes", ins, outs)
    save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)


def small_types(path):
    info = helper.make_tensor_value_info
    types = [("a", TensorProto.INT8), ("b", TensorProto.INT16), ("c", TensorProto.UINT16),
             ("d", TensorProto.UINT32), ("e", TensorProto.FLOAT16)]
    ins = [info(n, t, [3]) for n, t in types]
    outs = [info(f"{n}_out", t, [3]) for n, t in types] + [info("e_f32", TensorProto.FLOAT, [3])]
    nodes = [helper.make_node("Identity", [n], [f"{n}_out"]) for n, _ in types]
    nodes.append(helper.make_node("Cast", ["e"], ["e_f32"], to=TensorProto.FLOAT))
    g = helper.make_graph(nodes, "small_types", ins, outs)
    save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)


dtypes("dtypes.onnx")
small_types("small_types.onnx")


def chained(path):
    """df_chain.onnx: a VP ε-model of the diffusion-forcing contract, for the
    df_window reference: ε = 0.8x − 0.0003t + 0.1x² + 0.3·context
    + 0.0002·context_t (context_t per row, like t)."""
    shape = ["batch", 4, 2, 2]
    x, ctx = (helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("x", "context"))
    t, ct = (helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch"]) for n in ("t", "context_t"))
    y = helper.make_tensor_value_info("epsilon", TensorProto.FLOAT, shape)
    c = lambda n, v: helper.make_node("Constant", [], [n], value=helper.make_tensor(n, TensorProto.FLOAT, [1], [v]))
    axes = helper.make_node("Constant", [], ["axes"], value=helper.make_tensor("axes", TensorProto.INT64, [3], [1, 2, 3]))
    nodes = [
        c("a", 0.8), c("b", -0.0003), c("q", 0.1), c("r", 0.3), c("l", 0.0002), axes,
        helper.make_node("Unsqueeze", ["t", "axes"], ["t4"]),
        helper.make_node("Unsqueeze", ["context_t", "axes"], ["ct4"]),
        helper.make_node("Mul", ["x", "a"], ["ax"]),
        helper.make_node("Mul", ["t4", "b"], ["bt"]),
        helper.make_node("Mul", ["x", "x"], ["xx"]),
        helper.make_node("Mul", ["xx", "q"], ["qxx"]),
        helper.make_node("Mul", ["context", "r"], ["rctx"]),
        helper.make_node("Mul", ["ct4", "l"], ["lct"]),
        helper.make_node("Add", ["ax", "bt"], ["s1"]),
        helper.make_node("Add", ["s1", "qxx"], ["s2"]),
        helper.make_node("Add", ["s2", "rctx"], ["s3"]),
        helper.make_node("Add", ["s3", "lct"], ["epsilon"]),
    ]
    g = helper.make_graph(nodes, "analytic_chained", [x, t, ctx, ct], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    meta = {
        "wgraph.role": "denoiser", "wgraph.prediction": "epsilon", "wgraph.schedule": "scaled_linear",
        "wgraph.beta_start": "0.00085", "wgraph.beta_end": "0.012", "wgraph.train_steps": "1000",
        "wgraph.context_level_input": "context_t",
    }
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    onnx.checker.check_model(m)
    onnx.save(m, path)


chained("df_chain.onnx")


BLOCKS = [(0.1, 0.5, 0.1), (-0.05, -0.3, 0.2), (0.08, 0.2, -0.1)]  # (q, r, m) of blocks 0..2


def split(prefix):
    """The block-split analytic denoiser (see the module docs)."""
    info = helper.make_tensor_value_info
    f = TensorProto.FLOAT
    c = lambda n, v: helper.make_node("Constant", [], [n], value=helper.make_tensor(n, f, [1], [v]))
    i64 = lambda n, v: helper.make_node("Constant", [], [n], value=helper.make_tensor(n, TensorProto.INT64, [len(v)], v))
    latent, tokens, rows = ["batch", 4, 2, 2], ["batch", 4, 4], ["batch", 1, 1]

    def finish(nodes, name, ins, outs, meta, path):
        m = helper.make_model(helper.make_graph(nodes, name, ins, outs), opset_imports=[helper.make_opsetid("", 17)])
        for k, v in meta.items():
            p = m.metadata_props.add()
            p.key, p.value = k, v
        save(m, path)

    finish([c("half", 0.5), c("milli", 0.001), c("fifth", 0.2), i64("hs", [-1, 4, 4]), i64("cs", [-1, 1, 1]),
            helper.make_node("Mul", ["cond", "half"], ["hc"]),
            helper.make_node("Add", ["x", "hc"], ["s"]),
            helper.make_node("Reshape", ["s", "hs"], ["h"]),
            helper.make_node("Mul", ["t", "milli"], ["tm"]),
            helper.make_node("Reshape", ["tm", "cs"], ["c"]),
            helper.make_node("Mul", ["x", "fifth"], ["skip"])],
           "embed", [info("x", f, latent), info("t", f, ["batch"]), info("cond", f, latent)],
           [info("h", f, tokens), info("c", f, rows), info("skip", f, latent)],
           {"wgraph.role": "denoiser_embed"}, f"{prefix}_embed.onnx")
    for k, (q, r, mix) in enumerate(BLOCKS):
        finish([c("q", q), c("r", r), c("m", mix), i64("s0", [0]), i64("s3", [3]), i64("s4", [4]), i64("ax", [1]),
                helper.make_node("Mul", ["h", "h"], ["hh"]),
                helper.make_node("Mul", ["hh", "q"], ["qhh"]),
                helper.make_node("Mul", ["c", "r"], ["rc"]),
                helper.make_node("Slice", ["h", "s3", "s4", "ax"], ["last"]),
                helper.make_node("Slice", ["h", "s0", "s3", "ax"], ["first"]),
                helper.make_node("Concat", ["last", "first"], ["rolled"], axis=1),
                helper.make_node("Mul", ["rolled", "m"], ["mr"]),
                helper.make_node("Add", ["h", "qhh"], ["a1"]),
                helper.make_node("Add", ["a1", "rc"], ["a2"]),
                helper.make_node("Add", ["a2", "mr"], ["h_out"])],
               f"block{k}", [info("h", f, tokens), info("c", f, rows)], [info("h_out", f, tokens)],
               {"wgraph.role": "denoiser_block"}, f"{prefix}_b{k}.onnx")
    finish([c("w", 0.7), i64("ls", [-1, 4, 2, 2]),
            helper.make_node("Reshape", ["h", "ls"], ["hl"]),
            helper.make_node("Mul", ["hl", "w"], ["hw"]),
            helper.make_node("Sub", ["hw", "skip"], ["velocity"])],
           "head", [info("h", f, tokens), info("skip", f, latent)], [info("velocity", f, latent)],
           {"wgraph.role": "denoiser_head", "wgraph.prediction": "velocity", "wgraph.schedule": "rectified_flow"},
           f"{prefix}_head.onnx")


split("block")
