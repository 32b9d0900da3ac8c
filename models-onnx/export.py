#!/usr/bin/env python3
"""Build wgraph's small ONNX models directly as ONNX graphs (onnx.helper + numpy).

Every model stands for one component of the seed systems (Yan-Sim, Yan-Gen, Yan-Edit, Yume,
Yume 1.5) at toy scale: the same inputs, outputs and wiring, with RANDOM weights (seeded, so
the files are reproducible byte for byte). See README.md next to this file for the contract.

    python3 models-onnx/export.py                      # 64x64 frames, written to models-onnx/
    python3 models-onnx/export.py --size 128 --out /tmp/m128   # 128x128 frames, latent 8x8

No framework is needed: a small graph builder (class `Graph`) emits ONNX nodes for linear
layers, convolutions, layer norm, SiLU/GELU, multi-head attention, linear attention,
sinusoidal timestep embeddings and (un)patchify.
"""

import argparse
import json
import os
import re
import sys
from contextlib import contextmanager

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import script_env  # noqa: E402  (a venv with requirements.txt when numpy & co. are missing)

script_env.ensure(["numpy", "onnx"])

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

OPSET = 17
IR_VERSION = 8  # the IR version that goes with opset 17; loads in onnxruntime 1.31
D = 64  # hidden width of every transformer
HEADS = 4
BLOCKS = 2
DIT_MLP_RATIO = 2  # DiT MLP hidden = 2D (4D in DiT); keeps the shipped files < 8 MB
LATENT_CHANNELS = 16
SPATIAL_COMPRESSION = 16
TEXT_LEN = 64  # L: text tokens (a Yume QCM caption with its speed sentence is ~60)
MEMORY_TOKENS = 32  # Yume / Yume 1.5 memory tokens
YUME_MEMORY_CHANNELS = 16  # FramePack memory tokens carry latent channels (16)
KEYS = ["W", "A", "S", "D", "Left", "Right", "Up", "Down", "Space"]
NEG = -1e9  # additive attention mask value

# ----------------------------------------------------------------------------------------
# Text vocabulary (Yume quantized camera motion sentences + common scene words)
# ----------------------------------------------------------------------------------------

YUME1_PREFIX = "This video depicts a city walk scene with a first-person view (FPV)."
YUME1_MOVES = [
    "Person moves forward (W).",
    "Person moves left (A).",
    "Person moves backward (S).",
    "Person moves right (D).",
    "Person moves forward and left (W+A).",
    "Person moves forward and right (W+D).",
    "Person moves backward and right (S+D).",
    "Person moves backward and left (S+A).",
    "Person stands still (·).",
]
YUME1_CAMERA = [
    "Camera turns right (→).",
    "Camera turns left (←).",
    "Camera tilts up (↑).",
    "Camera tilts down (↓).",
    "Camera tilts up and turns right (↑→).",
    "Camera tilts up and turns left (↑←).",
    "Camera tilts down and turns right (↓→).",
    "Camera tilts down and turns left (↓←).",
    "Camera remains still (·).",
]
# Speed sentence templates: training form, and the shipped caption file's form (no space before
# "at"). The numbers are left out of the vocabulary sentences; digits 0-9, 10 and 100 are added
# as words. NB with the shipped form a number glued to "at" ("4at") is one token -> [unk].
YUME1_SPEED = [
    "Actual distance moved:{v} at 100 meters per second.Angular change rate (turn speed):{d}.View "
    "rotation speed:{r}.",
    "Actual distance moved:{v}at 100 meters per second.Angular change rate (turn speed):{d}.View "
    "rotation speed:{r}.",
]
YUME15_PREFIX = "First-person perspective."
YUME15_MOVES = [
    "The camera pushes forward (W).",
    "The camera moves to the left (A).",
    "The camera pulls back (S).",
    "The camera moves to the right (D).",
    "The camera's movement direction remains stationary (·).",
]
YUME15_CAMERA = [
    "The camera pans to the right (→).",
    "The camera pans to the left (←).",
    "The camera tilts up (↑).",
    "The camera tilts down (↓).",
    "The rotation direction of the camera remains stationary (·).",
]
SCENE_WORDS = """
a an the and or of in on at to from with into onto over under through across along around near
far behind before after above below between inside outside there here is are was were be being
it its this that these those some many few all one two three four five six seven eight nine ten
city street road alley avenue highway bridge tunnel sidewalk crosswalk square plaza park garden
forest tree trees woods jungle grass field meadow hill hills mountain mountains valley canyon cliff
cave river lake sea ocean beach shore island desert dune sand rock rocks stone snow ice rain fog
mist storm cloud clouds sky sun moon star stars night day dawn dusk sunset sunrise morning evening
light lights dark shadow shadows fire smoke water wave waves wind
house houses building buildings tower towers castle palace temple church ruins wall walls door
doors window windows roof floor stairs room hall corridor dungeon cellar basement shop shops market
station train car cars bus truck bicycle boat ship plane village town harbor port factory
brick wood wooden metal glass concrete marble neon lamp lamps sign signs
ghost monster dragon robot person people man woman child dog cat bird horse crowd soldier
knight zombie creature animal
appears appear disappears disappear explodes falls opens closes moves walks runs flies rises burns
starts stops begins ends collapses glows flickers shines suddenly slowly quickly
red green blue yellow white black gray grey orange purple pink brown golden silver bright dim
old new ancient modern abandoned empty busy quiet crowded wet dry cold warm foggy snowy rainy sunny
cloudy misty dusty ruined medieval futuristic cyberpunk fantasy realistic cinematic
style painting watercolor cartoon anime sketch photo photorealistic pixel art minecraft game
first person view camera video scene walk world
""".split()

WORD_RE = re.compile(r"[^\W_]+|\S")  # runs of letters/digits, or one other char


def tokenize(text):
    """The documented split rule: lowercase, then runs of letters/digits, each other non-space
    character alone. Mirrors `wgraph.tokenizer` so Rust can reproduce it."""
    return WORD_RE.findall(text.lower())


def build_vocab():
    speed = [t.format(v="", d="", r="") for t in YUME1_SPEED]
    sentences = [YUME1_PREFIX, YUME15_PREFIX] + YUME1_MOVES + YUME1_CAMERA + speed
    sentences += YUME15_MOVES + YUME15_CAMERA
    words = []
    for s in sentences:
        words += tokenize(s)
    words += [str(i) for i in range(10)] + ["10", "100"]
    words += SCENE_WORDS
    vocab = ["[pad]", "[unk]"]
    seen = set(vocab)
    for w in words:
        w = w.lower()
        if w not in seen:
            seen.add(w)
            vocab.append(w)
    return vocab


def tokenizer_json(vocab):
    return json.dumps(
        {
            "type": "word",
            "lowercase": True,
            "split": "words and punctuation: runs of letters/digits, each other non-space char alone",
            "split_regex": WORD_RE.pattern,
            "max_length": TEXT_LEN,
            "padding": "right, with pad_id, to max_length; longer input is truncated",
            "pad_id": 0,
            "unk_id": 1,
            "vocab": vocab,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


# ----------------------------------------------------------------------------------------
# Graph builder
# ----------------------------------------------------------------------------------------


class Graph:
    """Accumulates ONNX nodes and initializers. Every method returns the name of its output
    tensor; tensors are plain strings, so the model code reads like numpy/PyTorch."""

    def __init__(self, name, seed):
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.inputs, self.outputs = [], [], [], []
        self.scope = []
        self.count = 0
        self.consts = {}

    # --- bookkeeping -----------------------------------------------------------------
    @contextmanager
    def sub(self, name):
        self.scope.append(name)
        try:
            yield
        finally:
            self.scope.pop()

    def fresh(self, hint):
        self.count += 1
        return "/".join(self.scope + [f"{hint}_{self.count}"])

    def param(self, hint, array):
        name = "/".join(self.scope + [hint])
        assert all(i.name != name for i in self.inits), name
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def const(self, value, dtype=np.float32):
        arr = np.asarray(value, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self.consts:
            name = f"const_{len(self.consts)}"
            self.inits.append(numpy_helper.from_array(arr, name))
            self.consts[key] = name
        return self.consts[key]

    def op(self, op_type, *inputs, n_out=1, **attrs):
        outs = [self.fresh(op_type) for _ in range(n_out)]
        node_name = outs[0] + "_node"
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=node_name, **attrs))
        return outs[0] if n_out == 1 else outs

    def input(self, name, shape, elem=TensorProto.FLOAT):
        self.inputs.append(helper.make_tensor_value_info(name, elem, ["batch"] + list(shape)))
        return name

    def output(self, name, tensor, shape):
        self.nodes.append(helper.make_node("Identity", [tensor], [name], name=name + "_out"))
        self.outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch"] + list(shape)))

    def randn(self, shape, std):
        return (self.rng.standard_normal(shape) * std).astype(np.float32)

    # --- elementwise -----------------------------------------------------------------
    def add(self, a, b):
        return self.op("Add", a, b)

    def mul(self, a, b):
        return self.op("Mul", a, b)

    def silu(self, x):
        return self.mul(x, self.op("Sigmoid", x))

    def gelu(self, x):  # exact GELU: 0.5 x (1 + erf(x / sqrt 2)); opset 17 has no Gelu op
        e = self.op("Erf", self.mul(x, self.const(1 / np.sqrt(2))))
        return self.mul(self.mul(x, self.const(0.5)), self.add(e, self.const(1.0)))

    def reshape(self, x, shape):  # 0 in `shape` copies that dim (used for the batch dim)
        return self.op("Reshape", x, self.const(shape, np.int64))

    def transpose(self, x, perm):
        return self.op("Transpose", x, perm=list(perm))

    def concat(self, xs, axis):
        return self.op("Concat", *xs, axis=axis)

    def slice(self, x, axis, start, end):
        c = lambda v: self.const([v], np.int64)  # noqa: E731
        return self.op("Slice", x, c(start), c(end), c(axis))

    def unsqueeze(self, x, axes):
        return self.op("Unsqueeze", x, self.const(axes, np.int64))

    # --- layers ----------------------------------------------------------------------
    def linear(self, x, din, dout, name, gain=1.0, bias_offset=None):
        """x[..., din] @ W[din, dout] + b, W ~ N(0, gain^2 / din), b ~ N(0, 0.02^2) + bias_offset."""
        with self.sub(name):
            y = self.op("MatMul", x, self.param("W", self.randn((din, dout), gain / np.sqrt(din))))
            b = self.randn((dout,), 0.02)
            if bias_offset is not None:
                b = b + bias_offset.astype(np.float32)
            return self.add(y, self.param("b", b))

    def conv2d(self, x, cin, cout, k, name, stride=1, gain=1.0):
        with self.sub(name):
            w = self.param("W", self.randn((cout, cin, k, k), gain / np.sqrt(cin * k * k)))
            b = self.param("b", self.randn((cout,), 0.05))
            p = k // 2
            return self.op("Conv", x, w, b, kernel_shape=[k, k], strides=[stride, stride], pads=[p, p, p, p])

    def layer_norm(self, x, dim, name, affine=True):
        with self.sub(name):
            scale = np.ones(dim, np.float32)
            shift = np.zeros(dim, np.float32)
            if affine:
                scale = self.param("scale", scale)
                shift = self.param("bias", shift)
            else:
                scale, shift = self.const(scale), self.const(shift)
            return self.op("LayerNormalization", x, scale, shift, axis=-1, epsilon=1e-5)

    def upsample2x(self, x):
        return self.op("Resize", x, "", self.const([1, 1, 2, 2]), mode="nearest")

    # --- attention -------------------------------------------------------------------
    def _heads(self, x, n):  # [B, n, D] -> [B, H, n, D/H]
        return self.transpose(self.reshape(x, [0, n, HEADS, D // HEADS]), [0, 2, 1, 3])

    def _merge(self, x, n):  # [B, H, n, D/H] -> [B, n, D]
        return self.reshape(self.transpose(x, [0, 2, 1, 3]), [0, n, D])

    def attention(self, xq, nq, xkv, nk, name, dkv=D, mask=None, out_gain=0.5):
        """Multi-head softmax attention: q from xq [B,nq,D], k/v from xkv [B,nk,dkv].
        `mask` is an additive tensor broadcastable to [B, H, nq, nk] (0 keep, -1e9 drop)."""
        with self.sub(name):
            q = self._heads(self.linear(xq, D, D, "q"), nq)
            k = self._heads(self.linear(xkv, dkv, D, "k"), nk)
            v = self._heads(self.linear(xkv, dkv, D, "v"), nk)
            s = self.op("MatMul", q, self.transpose(k, [0, 1, 3, 2]))  # [B,H,nq,nk]
            s = self.mul(s, self.const(1 / np.sqrt(D // HEADS)))
            if mask is not None:
                s = self.add(s, mask)
            a = self.op("MatMul", self.op("Softmax", s, axis=-1), v)
            return self.linear(self._merge(a, nq), D, D, "out", gain=out_gain)

    def linear_attention(self, xq, nq, xkv, nk, name, dkv=D, out_gain=0.5):
        """Linear attention with feature map phi(x) = elu(x) + 1:
        out_i = phi(q_i) (sum_j phi(k_j)^T v_j) / (phi(q_i) . sum_j phi(k_j)); cost O(nq + nk)."""
        with self.sub(name):
            phi = lambda t: self.add(self.op("Elu", t), self.const(1.0))  # noqa: E731
            q = phi(self._heads(self.linear(xq, D, D, "q"), nq))  # [B,H,nq,dh]
            k = phi(self._heads(self.linear(xkv, dkv, D, "k"), nk))  # [B,H,nk,dh]
            v = self._heads(self.linear(xkv, dkv, D, "v"), nk)
            kv = self.op("MatMul", self.transpose(k, [0, 1, 3, 2]), v)  # [B,H,dh,dh]
            ksum = self.op("ReduceSum", k, self.const([2], np.int64), keepdims=1)  # [B,H,1,dh]
            num = self.op("MatMul", q, kv)  # [B,H,nq,dh]
            den = self.op("MatMul", q, self.transpose(ksum, [0, 1, 3, 2]))  # [B,H,nq,1]
            a = self.op("Div", num, self.add(den, self.const(1e-6)))
            return self.linear(self._merge(a, nq), D, D, "out", gain=out_gain)

    def mlp(self, x, name, ratio=4, act="gelu", out_gain=0.5):
        with self.sub(name):
            h = self.linear(x, D, D * ratio, "fc1")
            h = self.gelu(h) if act == "gelu" else self.silu(h)
            return self.linear(h, D * ratio, D, "fc2", gain=out_gain)

    # --- diffusion pieces ------------------------------------------------------------
    def timestep_embedding(self, t, name, dim=D):
        """t [B] (0..1000) -> sinusoidal [B, dim] -> MLP -> [B, D] (as in DiT)."""
        with self.sub(name):
            half = dim // 2
            freqs = np.exp(-np.log(10000.0) * np.arange(half) / half).astype(np.float32)
            arg = self.mul(self.unsqueeze(t, [1]), self.const(freqs))  # [B, half]
            emb = self.concat([self.op("Cos", arg), self.op("Sin", arg)], axis=1)
            h = self.silu(self.linear(emb, dim, D, "fc1"))
            return self.linear(h, D, D, "fc2")

    def patchify(self, x, c, h, w, p=1):
        """[B, c, h, w] -> [B, (h/p)(w/p), c p p] tokens, row-major over the patch grid."""
        x = self.reshape(x, [0, c, h // p, p, w // p, p])
        x = self.transpose(x, [0, 2, 4, 1, 3, 5])
        return self.reshape(x, [0, (h // p) * (w // p), c * p * p])

    def unpatchify(self, x, c, h, w, p=1):
        """Inverse of patchify: [B, (h/p)(w/p), c p p] -> [B, c, h, w]."""
        x = self.reshape(x, [0, h // p, w // p, c, p, p])
        x = self.transpose(x, [0, 3, 1, 4, 2, 5])
        return self.reshape(x, [0, c, h, w])

    def adaln(self, cond, n_chunks, name, gates=()):
        """adaLN modulation: SiLU(cond [B,D]) -> Linear -> n_chunks tensors [B,1,D].
        Gate chunks get bias +1, so residual branches start fully on (adaLN-Zero starts them
        at 0, which with random weights would make every block do nothing)."""
        with self.sub(name):
            offset = np.zeros(n_chunks * D, np.float32)
            for i in gates:
                offset[i * D : (i + 1) * D] = 1.0
            y = self.linear(self.silu(cond), D, n_chunks * D, "mod", gain=0.5, bias_offset=offset)
            y = self.unsqueeze(y, [1])
            return self.op("Split", y, self.const([D] * n_chunks, np.int64), axis=2, n_out=n_chunks)

    def modulate(self, x, shift, scale):
        return self.add(self.mul(x, self.add(scale, self.const(1.0))), shift)

    def dit_block(self, h, n, temb, name, self_mask=None, cross=(), linear_mem=None):
        """DiT block with adaLN (shift/scale/gate from the timestep embedding):
            h += gate1 * SelfAttn(mod(LN(h)))            (mask: e.g. causal)
            h += sum_c CrossAttn_c(LN(h), cond_c)        (decoupled: one per condition)
            h += LinearAttn(LN(h), memory)               (optional: Yume 1.5 TSCM)
            h += gate2 * MLP(mod(LN(h)))
        `cross` is a list of (name, tensor, n_tokens, width)."""
        with self.sub(name):
            sh1, sc1, g1, sh2, sc2, g2 = self.adaln(temb, 6, "adaln", gates=(2, 5))
            x = self.modulate(self.layer_norm(h, D, "norm1", affine=False), sh1, sc1)
            h = self.add(h, self.mul(g1, self.attention(x, n, x, n, "self_attn", mask=self_mask)))
            if cross:
                x = self.layer_norm(h, D, "norm_cross")
                outs = [self.attention(x, n, c, nc, f"cross_{cname}", dkv=dc) for cname, c, nc, dc in cross]
                total = outs[0]
                for o in outs[1:]:
                    total = self.add(total, o)
                h = self.add(h, total)
            if linear_mem is not None:
                mem, nm, dm = linear_mem
                x = self.layer_norm(h, D, "norm_mem")
                h = self.add(h, self.linear_attention(x, n, mem, nm, "memory_linear_attn", dkv=dm))
            x = self.modulate(self.layer_norm(h, D, "norm2", affine=False), sh2, sc2)
            return self.add(h, self.mul(g2, self.mlp(x, "mlp", ratio=DIT_MLP_RATIO)))

    def final_layer(self, h, temb, cout, name):
        with self.sub(name):
            sh, sc = self.adaln(temb, 2, "adaln")
            x = self.modulate(self.layer_norm(h, D, "norm", affine=False), sh, sc)
            return self.linear(x, D, cout, "proj")

    # --- model -----------------------------------------------------------------------
    def model(self, role, description, meta):
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.inits)
        m = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            ir_version=IR_VERSION,
            producer_name="wgraph models-onnx/export.py",
            doc_string=description,
        )
        props = {"wgraph.role": role, "wgraph.description": description}
        props.update({k if k.startswith("wgraph.") else "wgraph." + k: str(v) for k, v in meta.items()})
        helper.set_model_props(m, props)
        onnx.checker.check_model(m, full_check=True)
        return m


# ----------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------


class Sizes:
    def __init__(self, frame):
        assert frame % SPATIAL_COMPRESSION == 0, "frame size must be a multiple of 16"
        self.frame = frame
        self.lat = frame // SPATIAL_COMPRESSION  # latent side
        self.n = self.lat * self.lat  # latent tokens (1x1 patches)
        self.latent = [LATENT_CHANNELS, self.lat, self.lat]


def common_meta(s):
    return {"frame_size": s.frame, "hidden_width": D}


def vae_meta(s, modality):
    return dict(
        common_meta(s),
        latent_channels=LATENT_CHANNELS,
        spatial_compression=SPATIAL_COMPRESSION,
        temporal_compression=1,
        modality=modality,
    )


ENC_CHANNELS = [16, 32, 48, 64, 64]  # stem, then 4 stride-2 stages: 16x spatial compression
SILU_GAIN = 1.8  # conv + SiLU stacks: keeps activations O(1) (SiLU roughly halves small inputs)


def conv_encoder(g, x, cin):
    h = g.silu(g.conv2d(x, cin, ENC_CHANNELS[0], 3, "stem", gain=2.0))
    for i in range(4):
        h = g.silu(g.conv2d(h, ENC_CHANNELS[i], ENC_CHANNELS[i + 1], 3, f"down{i}", stride=2, gain=SILU_GAIN))
    return h  # [B, 64, lat, lat]


def vae_encoder(s, modality, seed):
    cin, iname = (3, "image") if modality == "rgb" else (1, "depth")
    g = Graph(f"{modality}_vae_encoder", seed)
    x = g.input(iname, [cin, s.frame, s.frame])
    h = conv_encoder(g, x, cin)
    z = g.conv2d(h, ENC_CHANNELS[-1], LATENT_CHANNELS, 1, "to_latent", gain=1.5)
    g.output("latent", z, s.latent)
    what = "RGB" if modality == "rgb" else "depth-map"
    desc = (
        f"{what} VAE encoder (Yan high-compression VAE, scaled down: 16x spatial, no temporal "
        f"compression, {LATENT_CHANNELS} latent channels)"
    )
    if modality == "depth":
        desc += "; Yan-Edit mechanics simulator works on these depth latents"
    return g.model("vae_encoder", desc, vae_meta(s, modality))


def vae_decoder(s, modality, seed):
    cout, oname = (3, "image") if modality == "rgb" else (1, "depth")
    g = Graph(f"{modality}_vae_decoder", seed)
    z = g.input("latent", s.latent)
    chans = [64, 64, 48, 32, 16]
    h = g.silu(g.conv2d(z, LATENT_CHANNELS, chans[0], 3, "from_latent"))
    for i in range(4):
        h = g.silu(g.conv2d(g.upsample2x(h), chans[i], chans[i + 1], 3, f"up{i}", gain=SILU_GAIN))
    y = g.op("Tanh", g.conv2d(h, chans[-1], cout, 3, "to_pixels", gain=1.5))
    g.output(oname, y, [cout, s.frame, s.frame])
    what = "RGB" if modality == "rgb" else "depth-map"
    desc = f"lightweight {what} VAE decoder (Yan's lightweight decoder: 16x upsampling, tanh output in [-1,1])"
    return g.model("vae_decoder", desc, vae_meta(s, modality))


def image_encoder(s, seed):
    """CLIP-style ViT: patchify (8x8 grid of patches) -> 1 transformer block -> mean pool -> proj."""
    g = Graph("image_encoder", seed)
    x = g.input("image", [3, s.frame, s.frame])
    p = s.frame // 8
    n = 64
    h = g.linear(g.patchify(x, 3, s.frame, s.frame, p), 3 * p * p, D, "patch_embed")
    h = g.add(h, g.param("pos_embed", g.randn((n, D), 0.1)))
    with g.sub("block0"):
        x = g.layer_norm(h, D, "norm1")
        h = g.add(h, g.attention(x, n, x, n, "attn"))
        h = g.add(h, g.mlp(g.layer_norm(h, D, "norm2"), "mlp"))
    pooled = g.op("ReduceMean", h, axes=[1], keepdims=1)  # [B,1,D]
    y = g.linear(g.layer_norm(pooled, D, "norm_out"), D, D, "proj")
    g.output("embedding", y, [1, D])
    desc = "CLIP-style reference-frame image encoder (Yan-Gen image condition): ViT patches -> 1 block -> pooled token"
    return g.model("image_encoder", desc, dict(common_meta(s), patch_size=p))


def text_encoder(s, seed, vocab):
    g = Graph("text_encoder", seed)
    tok = g.input("tokens", [TEXT_LEN], TensorProto.INT64)
    h = g.op("Gather", g.param("token_embed", g.randn((len(vocab), D), 1.0)), tok, axis=0)
    h = g.add(h, g.param("pos_embed", g.randn((TEXT_LEN, D), 0.1)))
    # key padding mask: pad tokens (id 0) are not attended to
    pad = g.op("Cast", g.op("Equal", tok, g.const(0, np.int64)), to=TensorProto.FLOAT)
    mask = g.reshape(g.mul(pad, g.const(NEG)), [0, 1, 1, TEXT_LEN])
    with g.sub("block0"):
        x = g.layer_norm(h, D, "norm1")
        h = g.add(h, g.attention(x, TEXT_LEN, x, TEXT_LEN, "attn", mask=mask))
        h = g.add(h, g.mlp(g.layer_norm(h, D, "norm2"), "mlp"))
    y = g.layer_norm(h, D, "norm_out")
    g.output("embedding", y, [TEXT_LEN, D])
    desc = (
        "text encoder (stands for the T5/umT5 encoder of Yan-Gen and Yume; encodes captions and Yume's "
        "quantized camera-motion sentences): word embedding + positions + 1 transformer block"
    )
    meta = dict(common_meta(s), tokenizer=tokenizer_json(vocab), max_length=TEXT_LEN, vocab_size=len(vocab))
    return g.model("text_encoder", desc, meta)


def action_embedder(s, seed):
    g = Graph("action_embedder", seed)
    k = g.input("keys", [len(KEYS)])
    h = g.silu(g.linear(k, len(KEYS), D, "fc1", gain=2.0))
    h = g.linear(h, D, D, "fc2", gain=SILU_GAIN)
    g.output("token", g.reshape(h, [0, 1, D]), [1, D])
    desc = "Yan action embedder: keyboard multi-hot -> MLP -> one action token"
    return g.model("action_embedder", desc, dict(common_meta(s), keys=",".join(KEYS)))


EPS_META = dict(prediction="epsilon", schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, train_steps=1000)
FLOW_META = dict(prediction="velocity", schedule="rectified_flow", time_scale=1000)


def causal_mask(n_ctx, n_x):
    """Context tokens attend only to context; x tokens attend to context and x."""
    n = n_ctx + n_x
    m = np.zeros((n, n), np.float32)
    m[:n_ctx, n_ctx:] = NEG
    return m


def latent_tokens(g, x, s, name, cin=LATENT_CHANNELS):
    """[B, cin, lat, lat] -> [B, n, D] (1x1 patches, linear projection, learned positions)."""
    with g.sub(name):
        h = g.linear(g.patchify(x, cin, s.lat, s.lat), cin, D, "proj")
        return g.add(h, g.param("pos", g.randn((s.n, D), 0.1)))


def denoiser(name, s, seed):
    """Start a denoiser graph: inputs x [B,16,h,w] and t [B]; returns (graph, x, timestep embedding)."""
    g = Graph(name, seed)
    x = g.input("x", s.latent)
    t = g.input("t", [])
    temb = g.timestep_embedding(t, "time_embed")
    return g, x, temb


def run_blocks(g, h, n, temb, **kw):
    for i in range(BLOCKS):
        h = g.dit_block(h, n, temb, f"block{i}", **kw)
    return h


def finish(g, h, n_total, n_x, temb, s, oname, desc, meta, cout=LATENT_CHANNELS):
    """Final adaLN layer on the x tokens, back to latent layout, output named `oname`."""
    if n_total != n_x:  # keep only the x tokens (the last n_x)
        h = g.slice(h, 1, n_total - n_x, n_total)
    y = g.final_layer(h, temb, cout, "final")
    g.output(oname, g.unpatchify(y, cout, s.lat, s.lat), [cout, s.lat, s.lat])
    return g.model("denoiser", desc, meta)


def causal_tokens(g, x, ctx, s):
    """Context (previous clean latent) tokens, then x tokens; separate projections and
    positions tell the two apart. Returns (tokens, count, causal mask)."""
    hc = latent_tokens(g, ctx, s, "context_embed")
    hx = latent_tokens(g, x, s, "x_embed")
    h = g.concat([hc, hx], axis=1)
    mask = g.const(causal_mask(s.n, s.n))
    return h, 2 * s.n, mask


def dit_sim(s, seed):
    g, x, temb = denoiser("dit_sim", s, seed)
    ctx = g.input("context", s.latent)
    act = g.input("action", [1, D])
    h, n, mask = causal_tokens(g, x, ctx, s)
    h = run_blocks(g, h, n, temb, self_mask=mask, cross=[("action", act, 1, D)])
    desc = (
        "Yan-Sim DiT denoiser: causal attention over previous-latent context + current latent tokens, "
        "cross-attention to the action token, timestep via sinusoidal embedding + adaLN; epsilon prediction for DDIM"
    )
    meta = dict(common_meta(s), **EPS_META, conditions="action", context_frames=1)
    return finish(g, h, n, s.n, temb, s, "epsilon", desc, meta)


def dit_gen(s, seed):
    g, x, temb = denoiser("dit_gen", s, seed)
    ctx = g.input("context", s.latent)
    gt = g.input("global_text", [TEXT_LEN, D])
    lt = g.input("local_text", [TEXT_LEN, D])
    img = g.input("image", [1, D])
    act = g.input("action", [1, D])
    h, n, mask = causal_tokens(g, x, ctx, s)
    cross = [
        ("global_text", gt, TEXT_LEN, D),
        ("local_text", lt, TEXT_LEN, D),
        ("image", img, 1, D),
        ("action", act, 1, D),
    ]
    h = run_blocks(g, h, n, temb, self_mask=mask, cross=cross)
    desc = (
        "Yan-Gen DiT denoiser: causal context + decoupled cross-attention (one per condition: global caption, "
        "local caption, reference image, action; summed); velocity prediction for few-step self-forcing sampling"
    )
    meta = dict(common_meta(s), **FLOW_META, conditions="global_text,local_text,image,action", context_frames=1)
    return finish(g, h, n, s.n, temb, s, "velocity", desc, meta)


def dit_depth(s, seed):
    g, x, temb = denoiser("dit_depth", s, seed)
    ctx = g.input("context", s.latent)
    st = g.input("structure", [TEXT_LEN, D])
    act = g.input("action", [1, D])
    h, n, mask = causal_tokens(g, x, ctx, s)
    h = run_blocks(g, h, n, temb, self_mask=mask, cross=[("structure", st, TEXT_LEN, D), ("action", act, 1, D)])
    desc = (
        "Yan-Edit mechanics simulator: Yan-Sim-style causal DiT on depth latents, conditioned on the structure "
        "prompt and the action token (decoupled cross-attention); epsilon prediction"
    )
    meta = dict(common_meta(s), **EPS_META, conditions="structure,action", context_frames=1, modality="depth")
    return finish(g, h, n, s.n, temb, s, "epsilon", desc, meta)


def controlnet(s, seed):
    g, x, temb = denoiser("controlnet", s, seed)
    hint = g.input("hint", s.latent)
    h = g.add(latent_tokens(g, x, s, "x_embed"), latent_tokens(g, hint, s, "hint_embed"))
    h = run_blocks(g, h, s.n, temb)
    with g.sub("zero_out"):  # ControlNet's zero convolution, here small (0.1x) instead of exactly 0
        y = g.linear(g.layer_norm(h, D, "norm"), D, D, "proj", gain=0.1)
    g.output("control", g.unpatchify(y, D, s.lat, s.lat), [D, s.lat, s.lat])
    desc = (
        "Yan-Edit ControlNet branch: DiT over noisy RGB latent + depth-latent hint, small (near-zero) output "
        "projection to residual features added to the renderer's hidden tokens"
    )
    return g.model("controlnet", desc, dict(common_meta(s), conditions="hint", hint_modality="depth"))


def dit_render(s, seed):
    g, x, temb = denoiser("dit_render", s, seed)
    style = g.input("style", [TEXT_LEN, D])
    control = g.input("control", [D, s.lat, s.lat])
    h = g.add(latent_tokens(g, x, s, "x_embed"), g.patchify(control, D, s.lat, s.lat))
    h = run_blocks(g, h, s.n, temb, cross=[("style", style, TEXT_LEN, D)])
    desc = (
        "Yan-Edit visual renderer: Yan-Gen-style DiT painting RGB latents from the style prompt "
        "(cross-attention) and ControlNet depth features (added to hidden tokens); velocity prediction"
    )
    meta = dict(common_meta(s), **FLOW_META, conditions="style,control")
    return finish(g, h, s.n, s.n, temb, s, "velocity", desc, meta)


def i2v_tokens(g, x, s):
    """Yume I2V input: concat(x [16ch], cond = mask [1ch] + start latent [16ch]) -> 33 channels."""
    cond = g.input("cond", [1 + LATENT_CHANNELS, s.lat, s.lat])
    xc = g.concat([x, cond], axis=1)
    return latent_tokens(g, xc, s, "x_embed", cin=2 * LATENT_CHANNELS + 1)


def dit_yume(s, seed):
    g, x, temb = denoiser("dit_yume", s, seed)
    hx = i2v_tokens(g, x, s)
    text = g.input("text", [TEXT_LEN, D])
    mem = g.input("memory", [MEMORY_TOKENS, YUME_MEMORY_CHANNELS])
    with g.sub("memory_embed"):  # FramePack-compressed history tokens, projected to D
        hm = g.linear(mem, YUME_MEMORY_CHANNELS, D, "proj")
        hm = g.add(hm, g.param("pos", g.randn((MEMORY_TOKENS, D), 0.1)))
    h = g.concat([hm, hx], axis=1)
    n = MEMORY_TOKENS + s.n
    mask = g.const(causal_mask(MEMORY_TOKENS, s.n))
    h = run_blocks(g, h, n, temb, self_mask=mask, cross=[("text", text, TEXT_LEN, D)])
    desc = (
        "Yume I2V DiT (stands for Wan-2.1 I2V): x concatenated with mask + start latent (33 channels), "
        "cross-attention to the QCM caption (text), FramePack-compressed memory tokens joined into self-attention; "
        "velocity prediction, t = 1000*sigma"
    )
    meta = dict(common_meta(s), **FLOW_META, conditions="text,memory,cond", memory_tokens=MEMORY_TOKENS)
    return finish(g, h, n, s.n, temb, s, "velocity", desc, meta)


def dit_yume15(s, seed):
    g, x, temb = denoiser("dit_yume15", s, seed)
    hx = i2v_tokens(g, x, s)
    ev = g.input("event_text", [TEXT_LEN, D])
    ac = g.input("action_text", [TEXT_LEN, D])
    mem = g.input("memory", [MEMORY_TOKENS, D])
    with g.sub("memory_embed"):
        hm = g.layer_norm(mem, D, "norm")
    cross = [("event_text", ev, TEXT_LEN, D), ("action_text", ac, TEXT_LEN, D)]
    h = run_blocks(g, hx, s.n, temb, cross=cross, linear_mem=(hm, MEMORY_TOKENS, D))
    desc = (
        "Yume 1.5 DiT: I2V channel concat (33 channels), dual-stream text (event + cached action descriptions, "
        "separate cross-attentions), TSCM memory fused by linear attention (elu+1 feature map: cost linear in "
        "memory length); velocity prediction"
    )
    conditions = "event_text,action_text,memory,cond"
    meta = dict(common_meta(s), **FLOW_META, conditions=conditions, memory_tokens=MEMORY_TOKENS)
    return finish(g, h, s.n, s.n, temb, s, "velocity", desc, meta)


def build_all(frame=64):
    s = Sizes(frame)
    vocab = build_vocab()
    # a fixed seed per model: the files are identical on every run
    return {
        "vae_encoder": vae_encoder(s, "rgb", 101),
        "vae_decoder": vae_decoder(s, "rgb", 102),
        "depth_encoder": vae_encoder(s, "depth", 103),
        "depth_decoder": vae_decoder(s, "depth", 104),
        "image_encoder": image_encoder(s, 105),
        "text_encoder": text_encoder(s, 106, vocab),
        "action_embedder": action_embedder(s, 107),
        "dit_sim": dit_sim(s, 108),
        "dit_gen": dit_gen(s, 109),
        "dit_depth": dit_depth(s, 110),
        "controlnet": controlnet(s, 111),
        "dit_render": dit_render(s, 112),
        "dit_yume": dit_yume(s, 113),
        "dit_yume15": dit_yume15(s, 114),
    }


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64, help="frame side in pixels (multiple of 16; latent = size/16)")
    ap.add_argument("--out", default=here, help="output directory (default: this directory)")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    total = 0
    for name, model in build_all(args.size).items():
        path = os.path.join(args.out, name + ".onnx")
        data = model.SerializeToString()
        with open(path, "wb") as f:
            f.write(data)
        total += len(data)
        print(f"{name + '.onnx':22s} {len(data) / 1e6:7.3f} MB")
    print(f"{'total':22s} {total / 1e6:7.3f} MB  ({args.size}x{args.size} frames -> {args.out})")


if __name__ == "__main__":
    sys.exit(main())
