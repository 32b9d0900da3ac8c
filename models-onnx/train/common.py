"""Shared helpers for wgraph's training scripts: data loading, the DDIM schedule and sampler
(diffusers semantics, as wgraph's `ddim` node), PSNR, PNG strips, ONNX metadata."""

import json
import math
import os
import struct
import subprocess
import tempfile
import time
import zlib

import numpy as np
import torch

KEYS = ["W", "A", "S", "D", "Left", "Right", "Up", "Down", "Space"]
HELD_OUT_SEED = 1000  # seeds >= 1000 are held out for `wgraph eval`: never train on them
FRAME = 64
LATENT_CHANNELS = 16
TOKEN = 64  # action token width (models-onnx contract)

# DDIM schedule of the contract (diffusers DDIMScheduler: scaled_linear betas)
BETA_START, BETA_END, TRAIN_STEPS = 0.00085, 0.012, 1000


def alphas_cumprod():
    betas = np.linspace(BETA_START**0.5, BETA_END**0.5, TRAIN_STEPS, dtype=np.float64) ** 2
    return np.cumprod(1.0 - betas)


def ddim_timesteps(steps, spacing="trailing"):
    T = TRAIN_STEPS
    if spacing == "trailing":
        ts = np.round(np.arange(T, 0, -T / steps)).astype(np.int64) - 1
        return ts[:steps]
    if spacing == "leading":
        return (np.arange(0, steps) * (T // steps))[::-1].astype(np.int64)
    return np.round(np.linspace(0, T - 1, steps))[::-1].astype(np.int64)


def ddim_sample(eps_fn, noise, steps=4, spacing="trailing"):
    """Deterministic DDIM (eta 0), exactly diffusers' DDIMScheduler.step with set_alpha_to_one.
    eps_fn(x, t_float_batch) -> epsilon. Works with numpy arrays or torch tensors."""
    ac = alphas_cumprod()
    ratio = TRAIN_STEPS // steps
    x = noise
    for t in ddim_timesteps(steps, spacing):
        a_t = float(ac[t])
        p = t - ratio
        a_p = float(ac[p]) if p >= 0 else 1.0
        eps = eps_fn(x, t)
        x0 = (x - (1 - a_t) ** 0.5 * eps) / a_t**0.5
        x = a_p**0.5 * x0 + (1 - a_p) ** 0.5 * eps
    return x


def psnr(a, b):
    """PSNR in dB of images in [-1, 1] (peak-to-peak 2), per item of the batch axis."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    mse = ((a - b) ** 2).reshape(a.shape[0], -1).mean(1)
    return 10 * np.log10(4.0 / np.maximum(mse, 1e-12))


# ----------------------------------------------------------------------------------------
# Data (`wgraph dataset` layout)
# ----------------------------------------------------------------------------------------


def episode_dirs(root):
    """Episode directories of a dataset root, with their world seed (from index.json when it
    says, else from the `<theme>_<seed>` directory name)."""
    out = []
    idx = os.path.join(root, "index.json")
    seeds = {}
    if os.path.exists(idx):
        meta = json.load(open(idx))
        eps = meta.get("episodes", meta) if isinstance(meta, dict) else meta
        for e in eps if isinstance(eps, list) else []:
            if isinstance(e, dict):
                name = e.get("name") or e.get("dir") or e.get("path")
                if name is not None and "seed" in e:
                    seeds[os.path.basename(str(name).rstrip("/"))] = int(e["seed"])
    for name in sorted(os.listdir(root)):
        d = os.path.join(root, name)
        if not os.path.isfile(os.path.join(d, "frames.npy")):
            continue
        seed = seeds.get(name)
        if seed is None:
            tail = name.rsplit("_", 1)[-1]
            seed = int(tail) if tail.isdigit() else None
        theme = name.rsplit("_", 1)[0] if "_" in name else ""
        out.append((d, seed, theme))
    return out


MAX_DEPTH = 16.0  # `wgraph dataset` depth.npy: distance in cells, sky = 16


def depth_to_u8(depth):
    """depth.npy (cells) -> u8 [..., H, W, 1] of the signed depth 2·d/16 − 1 (the `world` node's and
    the depth models' range), quantised like an image so `to_image` reads it back into [-1, 1]."""
    signed = 2.0 * np.clip(depth, 0.0, MAX_DEPTH) / MAX_DEPTH - 1.0
    return np.round((signed + 1.0) * 127.5).astype(np.uint8)[..., None]


def load_episodes(root, train=True, limit=None, modality="rgb"):
    """List of dicts(frames u8 [N+1,64,64,C], actions f32 [N,9], name, seed, theme); C = 3 for
    modality "rgb" (frames.npy), 1 for "depth" (depth.npy as signed depth, see `depth_to_u8`).
    With train=True any episode with a seed >= 1000 (or unknown seed) is refused."""
    eps = []
    for d, seed, theme in episode_dirs(root):
        if train and (seed is None or seed >= HELD_OUT_SEED):
            raise SystemExit(f"refusing to train on {d}: seed {seed} is held out (>= {HELD_OUT_SEED}) or unknown")
        if modality == "depth":
            f = depth_to_u8(np.load(os.path.join(d, "depth.npy")))
        else:
            f = np.load(os.path.join(d, "frames.npy"))
        a = np.load(os.path.join(d, "actions.npy")).astype(np.float32)
        assert f.dtype == np.uint8 and f.shape[1:] == (FRAME, FRAME, 1 if modality == "depth" else 3), f.shape
        assert a.shape == (f.shape[0] - 1, len(KEYS)), (a.shape, f.shape)
        eps.append(dict(frames=f, actions=a, name=os.path.basename(d), seed=seed, theme=theme, dir=d))
        if limit and len(eps) >= limit:
            break
    if not eps:
        raise SystemExit(f"no episodes under {root}")
    return eps


def to_image(u8):
    """u8 [..., H, W, C] (numpy) -> float tensor [..., C, H, W] in [-1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(u8)).float().div_(127.5).sub_(1.0)
    return t.movedim(-1, -3)


def to_u8(img):
    """[..., C, H, W] in [-1, 1] -> u8 [..., H, W, C]."""
    if isinstance(img, torch.Tensor):
        img = img.detach().cpu().numpy()
    return np.clip(np.round((np.moveaxis(img, -3, -1) + 1) * 127.5), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------
# Output helpers
# ----------------------------------------------------------------------------------------


def save_png(path, img):
    """u8 [H, W, 3] -> PNG (no imaging library needed)."""
    img = np.ascontiguousarray(img.astype(np.uint8))
    if img.ndim == 2 or img.shape[-1] == 1:  # depth: grey
        img = np.ascontiguousarray(np.repeat(img.reshape(img.shape[0], img.shape[1], 1), 3, axis=-1))
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def round_weights_fp16(module):
    """Round every floating parameter/buffer of `module` to fp16 precision (kept as fp32), so the
    fp16-stored ONNX file (see `store_fp16`) computes exactly what the torch module computes."""
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            if t.is_floating_point() and t.numel() >= FP16_MIN_ELEMENTS:
                t.copy_(t.half().float())


FP16_MIN_ELEMENTS = 1024


def store_fp16(model):
    """Store large float32 initializers as float16 + a Cast to float32 (ONNX Runtime folds the
    Cast when it loads the model: the computation stays float32, the file is half the size)."""
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    casts = []
    keep = []
    for init in g.initializer:
        arr = numpy_helper.to_array(init)
        h = arr.astype(np.float16) if init.data_type == TensorProto.FLOAT else None
        # only tensors that fp16 holds exactly (the rounded weights; folded constants may not be)
        if h is not None and arr.size >= FP16_MIN_ELEMENTS and np.array_equal(h.astype(np.float32), arr):
            keep.append(numpy_helper.from_array(h, init.name + "_fp16"))
            casts.append(helper.make_node("Cast", [init.name + "_fp16"], [init.name], to=TensorProto.FLOAT,
                                          name=init.name + "_cast"))
        else:
            keep.append(init)
    del g.initializer[:]
    g.initializer.extend(keep)
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    return model


def export_onnx(module, args, path, input_names, output_names, role, description, meta, fp16_storage=True):
    """torch.onnx.export (opset 17, dynamic axis 0 `batch`) + wgraph metadata_props. With
    fp16_storage the module's weights are first rounded to fp16 precision (in place) and stored
    as fp16 in the file."""
    import onnx

    module.eval()
    if fp16_storage:
        round_weights_fp16(module)
    dyn = {n: {0: "batch"} for n in input_names + output_names}
    tmp = path + ".tmp.onnx"
    with torch.no_grad():
        torch.onnx.export(module, args, tmp, input_names=input_names, output_names=output_names,
                          dynamic_axes=dyn, opset_version=17, do_constant_folding=True, dynamo=False)
    m = onnx.load(tmp)
    os.remove(tmp)
    if fp16_storage:
        m = store_fp16(m)
        meta = dict(meta, weight_storage="float16 initializers cast to float32 at load")
    props = {"wgraph.role": role, "wgraph.description": description}
    props.update({k if k.startswith("wgraph.") else "wgraph." + k: str(v) for k, v in meta.items()})
    del m.metadata_props[:]
    for k, v in props.items():
        e = m.metadata_props.add()
        e.key, e.value = k, v
    m.doc_string = description
    m.producer_name = "wgraph models-onnx/train"
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, path)
    return path


class Timer:
    def __init__(self):
        import time

        self._time = time.time
        self.t0 = time.time()

    def minutes(self):
        return (self._time() - self.t0) / 60.0


MACHINE = "2-core CPU VM, shared"


def lr_at(frac, base, warm=0.03, floor=0.05):
    """Learning rate at `frac` of the time budget: linear warm-up, cosine decay to floor·base."""
    if frac < warm:
        return base * frac / warm
    p = min(1.0, (frac - warm) / (1 - warm))
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))


def record(args, rec):
    """Append a training record (+ machine and time) to <args.ckpt>/records.jsonl and print it."""
    rec = dict(rec, machine=MACHINE, time=time.strftime("%Y-%m-%d %H:%M:%S"))
    os.makedirs(args.ckpt, exist_ok=True)
    with open(os.path.join(args.ckpt, "records.jsonl"), "a") as f:
        f.write(json.dumps(rec) + "\n")
    print(json.dumps(rec, indent=1))


def run_graph_dump(wgraph, graph_text, frames, files=None):
    """Run a .world graph (text) with `wgraph run` for `frames` ticks and return what its
    `npy_dump { dir = "emb" }` wrote, stacked [frames, ...] (batch axis dropped). `files` maps
    extra file names to contents, written next to the graph (relative paths resolve there).
    Training scripts get their text conditions this way: exactly the vectors a graph computes."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in (files or {}).items():
            with open(os.path.join(tmp, name), "w") as f:
                f.write(text)
        g = os.path.join(tmp, "dump.world")
        with open(g, "w") as f:
            f.write(graph_text)
        out = os.path.join(tmp, "out")
        subprocess.run([wgraph, "run", g, "--frames", str(frames), "--out", out], check=True,
                       stdout=subprocess.DEVNULL)
        names = sorted(os.listdir(os.path.join(out, "emb")))
        assert len(names) == frames, (len(names), frames)
        return np.stack([np.load(os.path.join(out, "emb", n))[0] for n in names]).astype(np.float32)


class TrainLoop:
    """The loop the training stages share: AdamW, a cosine learning rate over a time budget,
    gradient clipping, an EMA of the weights and a loss log.

        loop = TrainLoop(params, lr=6e-4, minutes=10, name="render")
        while loop.running():      # sets this step's learning rate; `loop.frac` = budget used
            loss = ...
            loop.step(loss)        # backward, clip, AdamW step, EMA, log every `log_every`
        minutes = loop.finish()    # the EMA weights into the parameters
    """

    def __init__(self, params, lr, minutes, name, ema=0.999, log_every=50, clip=1.0, weight_decay=0.0):
        self.params = list(params)
        self.opt = torch.optim.AdamW(self.params, lr=lr, weight_decay=weight_decay, betas=(0.9, 0.99))
        self.base_lr, self.budget, self.name = lr, minutes, name
        self.ema_decay, self.log_every, self.clip = ema, log_every, clip
        self.ema = [p.detach().clone() for p in self.params] if ema else None
        self.timer, self.steps, self.hist = Timer(), 0, []

    @property
    def frac(self):
        return self.timer.minutes() / self.budget

    @property
    def lr(self):
        return self.opt.param_groups[0]["lr"]

    def running(self):
        if self.timer.minutes() >= self.budget:
            return False
        for g in self.opt.param_groups:
            g["lr"] = lr_at(self.frac, self.base_lr)
        return True

    def step(self, loss):
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        self.opt.step()
        if self.ema is not None:
            with torch.no_grad():
                d = min(self.ema_decay, (1 + self.steps) / (10 + self.steps))
                for e, p in zip(self.ema, self.params):
                    e.mul_(d).add_(p.detach(), alpha=1 - d)
        self.steps += 1
        self.hist.append(loss.item())
        if self.steps % self.log_every == 0:
            print(f"{self.name} step {self.steps} {self.timer.minutes():.1f} min lr {self.lr:.2e} "
                  f"loss {np.mean(self.hist[-self.log_every:]):.4f}", flush=True)

    def final_loss(self, n=100):
        return float(np.mean(self.hist[-n:]))

    def finish(self):
        minutes = self.timer.minutes()
        if self.ema is not None:
            with torch.no_grad():
                for e, p in zip(self.ema, self.params):
                    p.copy_(e)
        return minutes


def sample_sigma_gated(n, rng, gate_sigma, frac_gated):
    """Rectified-flow noise levels for gated x0 models: `frac_gated` of them uniform in
    [gate_sigma, 1] (where x_t is unseen: the graphs' sampler steps), the rest in [0, gate_sigma)."""
    hi = rng.uniform(gate_sigma, 1.0, n)
    lo = rng.uniform(0.0, gate_sigma, n)
    return torch.from_numpy(np.where(rng.random(n) < frac_gated, hi, lo).astype(np.float32))


def flow_noise(x0, sigma):
    """x_σ = (1 − σ)·x0 + σ·ε (rectified flow; σ per batch item)."""
    s = sigma.view(-1, *([1] * (x0.dim() - 1)))
    return (1 - s) * x0 + s * torch.randn_like(x0)
