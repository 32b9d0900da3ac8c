"""Real PyTorch models exported to ONNX, for `mod exported_models` in
tests/cli/exported_models.rs: each is run through a `.world` graph with the
generic `model` kind and compared with onnxruntime's own outputs.

    /path/to/python tests/models/export.py      # needs torch, onnx, onnxruntime, numpy

Deterministic (fixed seeds, CPU, one thread): rerunning it rewrites the
same bytes. Writes into tests/models/, next to this file: NAME.onnx;
STEM.in.PORT.npy, the inputs (PORT with non-alphanumerics as `_`), and
STEM.out.K.npy, onnxruntime's output K, with STEM = NAME or, for the
transformer run at two shapes, NAME.b2s7 / NAME.b1s4. The KV-cache decoder
runs a loop: kv.input_ids.npy and kv.position_ids.npy hold one [1, 1] slice
per tick, kv.logits.npy every tick's logits stacked, kv.present_0_key.npy
layer 0's key cache after the last tick.

Models are exported with torch.onnx.export's TorchScript exporter
(`dynamo=False`) and its default port names (`input.1`, `onnx::Add_3`, `12`,
...) unless a comment says otherwise; it needs no onnxscript (the default
exporter since torch 2.9 does; examples/byo-model/export.py uses that one).
Widths are tiny: the files are committed and CI has no torch.
"""
import os
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn
from torch.nn import functional as F

# the TorchScript exporter's deprecation notice; dynamic axes keyed by default names
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", message="Provided key .* for dynamic axes")

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 17


def export(name, model, args, dynamic=None, input_names=None, output_names=None):
    """Exports `model` on `args` to NAME.onnx; `dynamic` maps an input or
    output index to {axis: symbol} (keyed by index because the default port
    names are only known after a first export)."""
    path = os.path.join(HERE, f"{name}.onnx")
    kw = dict(opset_version=OPSET, dynamo=False)
    if input_names:
        kw["input_names"] = input_names
    if output_names:
        kw["output_names"] = output_names
    torch.onnx.export(model, args, path, **kw)
    if dynamic:
        g = onnx.load(path).graph
        names = [i.name for i in g.input] + [o.name for o in g.output]
        kw["dynamic_axes"] = {names[i]: axes for i, axes in dynamic.items()}
        torch.onnx.export(model, args, path, **kw)
    m = onnx.load(path)
    onnx.checker.check_model(m)
    return path


def session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def sanitise(port):
    return "".join(c if c.isalnum() or c == "_" else "_" for c in port)


def reference(name, feeds, tag=None):
    """Runs NAME.onnx on `feeds` (numpy arrays in input order) with
    onnxruntime; writes the inputs and outputs; returns the outputs."""
    sess = session(os.path.join(HERE, f"{name}.onnx"))
    ins = [i.name for i in sess.get_inputs()]
    outs = sess.run(None, dict(zip(ins, feeds)))
    stem = name if tag is None else f"{name}.{tag}"
    for port, x in zip(ins, feeds):
        np.save(os.path.join(HERE, f"{stem}.in.{sanitise(port)}.npy"), x)
    for k, y in enumerate(outs):
        np.save(os.path.join(HERE, f"{stem}.out.{k}.npy"), y)
    return ins, [o.name for o in sess.get_outputs()], outs


def check_torch(model, args, outs):
    with torch.no_grad():
        want = model(*args)
    want = want if isinstance(want, tuple) else (want,)
    for w, o in zip(want, outs):
        err = np.abs(w.numpy() - o).max()
        assert err < 1e-4, err


# --- the models -------------------------------------------------------------


class ConvNet(nn.Module):
    """Conv → BatchNorm (folded into the conv by the exporter) → ReLU →
    MaxPool → Conv → GELU → BatchNorm (after a non-linearity: stays a
    BatchNormalization op) → global AvgPool → Linear. Two outputs: the
    class logits and the feature map."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.b1 = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.b2 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.b1(self.c1(x))), 2)
        h = self.b2(F.gelu(self.c2(h)))
        return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1)), h


class Attention(nn.Module):
    """nn.MultiheadAttention as cross-attention: queries from `x`, keys and
    values from `memory`; outputs the attended values and the head-averaged
    attention weights."""

    def __init__(self):
        super().__init__()
        self.mha = nn.MultiheadAttention(16, 2, batch_first=True)

    def forward(self, x, memory):
        return self.mha(x, memory, memory, need_weights=True)


class Block(nn.Module):
    """A pre-norm transformer block on F.scaled_dot_product_attention."""

    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.n1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.n2 = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def split(self, t):  # no Python ints from shapes: they would be frozen into the export
        return t.unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def forward(self, x, bias):
        q, k, v = self.qkv(self.n1(x)).chunk(3, -1)
        a = F.scaled_dot_product_attention(self.split(q), self.split(k), self.split(v), attn_mask=bias)
        x = x + self.proj(a.transpose(1, 2).flatten(2))
        return x + self.ff(self.n2(x))


class Transformer(nn.Module):
    """Token ids, position ids and a padding mask (1 = token, 0 = pad), all
    [batch, seq] with batch and seq symbolic; causal attention that also
    ignores padding. Outputs per-token logits and a masked mean of the final
    hidden states."""

    def __init__(self, vocab=32, d=16, heads=2, layers=2, max_len=32):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(max_len, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, ids, positions, mask):
        x = self.tok(ids) + self.pos(positions)
        causal = (positions[:, None, :] <= positions[:, :, None]).float()  # key j <= query i
        keep = causal[:, None] * mask[:, None, None, :]
        bias = (1.0 - keep) * -1e4
        for blk in self.blocks:
            x = blk(x, bias)
        x = self.norm(x)
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return self.head(x), pooled


class KvDecoder(nn.Module):
    """One token per call with a fixed-size rolling KV cache per layer:
    `past_key_values.L.key/value` [1, heads, CACHE, d/heads] in,
    `present.L.key/value` out (the cache shifted by one slot, the new token's
    key/value in the last slot). `position_ids` [1, 1] says how many tokens
    came before, which masks the slots not yet filled."""

    CACHE = 6

    def __init__(self, vocab=32, d=16, heads=2, layers=2):
        super().__init__()
        self.heads, self.d = heads, d
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(64, d)
        self.n1 = nn.ModuleList(nn.LayerNorm(d) for _ in range(layers))
        self.qkv = nn.ModuleList(nn.Linear(d, 3 * d) for _ in range(layers))
        self.proj = nn.ModuleList(nn.Linear(d, d) for _ in range(layers))
        self.n2 = nn.ModuleList(nn.LayerNorm(d) for _ in range(layers))
        self.ff = nn.ModuleList(
            nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d)) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, ids, position, *past):
        h, dh, n = self.heads, self.d // self.heads, self.CACHE
        x = self.tok(ids) + self.pos(position)  # [1, 1, d]
        # slot j holds the token `n - 1 - j` steps back; filled once position >= that
        back = torch.arange(n - 1, -1, -1)
        bias = torch.where(back[None, None, None, :] <= position[:, None, None, :], 0.0, -1e4)
        present = []
        for i in range(len(self.qkv)):
            q, k, v = self.qkv[i](self.n1[i](x)).chunk(3, -1)
            q, k, v = (t.view(1, 1, h, dh).transpose(1, 2) for t in (q, k, v))
            pk = torch.cat([past[2 * i][:, :, 1:], k], 2)
            pv = torch.cat([past[2 * i + 1][:, :, 1:], v], 2)
            present += [pk, pv]
            a = F.scaled_dot_product_attention(q, pk, pv, attn_mask=bias)
            x = x + self.proj[i](a.transpose(1, 2).reshape(1, 1, self.d))
            x = x + self.ff[i](self.n2[i](x))
        return (self.head(self.norm(x)), *present)


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    np.random.seed(0)
    rng = np.random.default_rng(0)
    summary = {}

    # conv net
    m = ConvNet().eval()
    for bn in (m.b1, m.b2):  # non-trivial running statistics
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    x = rng.standard_normal((1, 3, 16, 16)).astype(np.float32)
    export("convnet", m, (torch.from_numpy(x),))
    ins, outs, ys = reference("convnet", [x])
    check_torch(m, (torch.from_numpy(x),), ys)
    summary["convnet"] = (ins, outs)

    # attention
    m = Attention().eval()
    x = rng.standard_normal((1, 5, 16)).astype(np.float32)
    mem = rng.standard_normal((1, 7, 16)).astype(np.float32)
    args = (torch.from_numpy(x), torch.from_numpy(mem))
    export("attention", m, args)
    ins, outs, ys = reference("attention", [x, mem])
    check_torch(m, args, ys)
    summary["attention"] = (ins, outs)

    # layer norm
    m = nn.LayerNorm(16).eval()
    with torch.no_grad():
        m.weight.uniform_(0.5, 1.5)
        m.bias.uniform_(-0.5, 0.5)
    x = (rng.standard_normal((2, 5, 16)) * 3 + 1).astype(np.float32)
    export("layernorm", m, (torch.from_numpy(x),))
    ins, outs, ys = reference("layernorm", [x])
    check_torch(m, (torch.from_numpy(x),), ys)
    summary["layernorm"] = (ins, outs)

    # transformer: batch and seq symbolic; references at two shapes from one file
    m = Transformer().eval()
    def feeds(b, s, pad):
        ids = rng.integers(0, 32, (b, s)).astype(np.int64)
        pos = np.tile(np.arange(s, dtype=np.int64), (b, 1))
        mask = np.ones((b, s), np.float32)
        mask[-1, s - pad:] = 0.0
        return [ids, pos, mask]
    f = feeds(2, 7, 3)
    args = tuple(torch.from_numpy(a) for a in f)
    export("transformer", m, args, dynamic={
        0: {0: "batch", 1: "seq"}, 1: {0: "batch", 1: "seq"}, 2: {0: "batch", 1: "seq"},
        3: {0: "batch", 1: "seq"}, 4: {0: "batch"},
    })
    ins, outs, ys = reference("transformer", f, tag="b2s7")
    check_torch(m, args, ys)
    f = feeds(1, 4, 1)
    _, _, ys = reference("transformer", f, tag="b1s4")
    check_torch(m, tuple(torch.from_numpy(a) for a in f), ys)
    summary["transformer"] = (ins, outs)

    # KV-cache decoder, HF-style port names (given explicitly, as HF's exporter does)
    m = KvDecoder().eval()
    layers, n = 2, KvDecoder.CACHE
    past_names = [f"past_key_values.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    present_names = [f"present.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    zeros = [np.zeros((1, 2, n, 8), np.float32) for _ in past_names]
    ids0 = np.array([[3]], np.int64)
    pos0 = np.array([[0]], np.int64)
    args = (torch.from_numpy(ids0), torch.from_numpy(pos0), *(torch.from_numpy(z) for z in zeros))
    export("kv_decoder", m, args, input_names=["input_ids", "position_ids", *past_names],
           output_names=["logits", *present_names])
    sess = session(os.path.join(HERE, "kv_decoder.onnx"))
    ticks = 9  # more than CACHE: the cache rolls over
    ids = rng.integers(0, 32, (ticks, 1, 1)).astype(np.int64)
    pos = np.arange(ticks, dtype=np.int64).reshape(ticks, 1, 1)
    np.save(os.path.join(HERE, "kv.input_ids.npy"), ids)
    np.save(os.path.join(HERE, "kv.position_ids.npy"), pos)
    past, logits = zeros, []
    for t in range(ticks):
        outs = sess.run(None, {"input_ids": ids[t], "position_ids": pos[t], **dict(zip(past_names, past))})
        with torch.no_grad():  # torch agrees, tick by tick
            want = m(torch.from_numpy(ids[t]), torch.from_numpy(pos[t]), *(torch.from_numpy(p) for p in past))
        for w, o in zip(want, outs):
            assert np.abs(w.numpy() - o).max() < 1e-4
        logits.append(outs[0])
        past = outs[1:]
    np.save(os.path.join(HERE, "kv.logits.npy"), np.stack(logits))
    np.save(os.path.join(HERE, "kv.present_0_key.npy"), past[0])
    summary["kv_decoder"] = (["input_ids", "position_ids", *past_names], ["logits", *present_names])

    for k, (i, o) in summary.items():
        print(f"{k}: inputs {i} outputs {o}")


if __name__ == "__main__":
    main()
