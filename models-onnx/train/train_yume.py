#!/usr/bin/env python3
"""Train the QCM-text-conditioned denoiser of the Yume graph (CPU, PyTorch).

    python3 train_yume.py captions               # the 512 key sets' QCM caption embeddings, via `wgraph run`
    python3 train_yume.py dit --minutes 12
    python3 train_yume.py export                 # -> ../trained/dit_yume.onnx

Yume turns keys into text (Quantized Camera Motion: "Person moves forward (W).Camera turns right
(→)." after a fixed prefix), encodes it with a text encoder and conditions an image-to-video DiT
on it. Here the keys never reach the denoiser as keys: each transition of the training data is
conditioned on the embedding of exactly the caption the graph's `qcm` node writes for its keys,
encoded by the graph's frozen `text_encoder` (`models-onnx/text_encoder.onnx`); the `captions`
stage computes them with the engine itself (actions → qcm → text_encoder → npy_dump, one tick per
key set), so training and playing see the same vectors.

The network (`RenderDiT` with spatial conditions, see models.py) predicts the next latent
x0 = previous latent + s·F(x_t, previous latent, I2V condition [mask ; start latent], text),
exported as rectified-flow velocity v = (x_t − x0)/σ. For σ >= 0.5 x_t is unseen, so the graph's
Euler sampler at 4 steps, shift 3 (σ = 1, .9, .75, .5) returns the conditional mean; with more
steps the last ones refine from x_t. The text is zeroed for 10 % of the batch (classifier-free
guidance's null condition: the `denoiser` node's `guidance = { text = … }` uses zeros).

Needs the RGB latents of `train_sim.py latents` (--ckpt). Seeds >= 1000 are never trained on.
"""

import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (KEYS, TrainLoop, export_onnx, flow_noise, load_episodes, psnr, record,  # noqa: E402
                    run_graph_dump, sample_sigma_gated, save_png, to_image, to_u8)
from models import RenderDiT, load_rgb_decoder, n_params  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
GATE_SIGMA = 0.5


def key_bits(actions):
    """multi-hot [..., 9] -> key-set index sum(2^k) (KEYS order)."""
    return ((np.asarray(actions) > 0.5) * (1 << np.arange(len(KEYS)))).sum(-1).astype(np.int64)


def make_captions(args):
    """Embeddings [512, L, D] of the `qcm { variant = yume }` caption of every key set."""
    lines = []
    for b in range(1 << len(KEYS)):
        keys = [k for i, k in enumerate(KEYS) if b >> i & 1]
        lines.append("+".join(keys) if keys else "-")
    model = os.path.join(ROOT, "models-onnx", "text_encoder.onnx")
    emb = run_graph_dump(args.wgraph, 'world { name = "captions" fps = 1 resolution = 64x64 }\n'
                         f'model te = "{model}"\n'
                         'node keys: actions { path = "all.txt" }\n'
                         'node camera: qcm { variant = yume }\n'
                         'node caption: text_encoder { model = te, precompute = qcm_yume }\n'
                         'node dump: npy_dump { dir = "emb" }\n'
                         'keys.actions -> camera.actions\ncamera.text -> caption.text\n'
                         'caption.embedding -> dump.tensor\n', len(lines), {"all.txt": "\n".join(lines) + "\n"})
    np.save(os.path.join(args.ckpt, "qcm_captions.npy"), emb)
    distinct = len({e.tobytes() for e in emb})
    print(f"captions {emb.shape}: {distinct} distinct embeddings (QCM has 81 captions)")


def load_latents(args, split):
    d = np.load(os.path.join(args.ckpt, f"latents_{split}.npz"))
    n = int(d["n"])
    return [d[f"z{i}"] for i in range(n)], [d[f"a{i}"] for i in range(n)], [str(x) for x in d["names"]]


def build(args, zc, latent, prior_var):
    return RenderDiT(d=args.width, depth=args.depth, latent=latent, zc=zc, gate_sigma=GATE_SIGMA,
                     extra_channels=2 * zc + 1, residual_scale=float(np.sqrt(prior_var)))


def extra_of(context, start):
    """Spatial conditions: previous latent, then the I2V condition [mask = 1 ; start latent]."""
    return torch.cat([context, torch.ones_like(start[:, :1]), start], 1)


def euler(dit, context, start, text, sigmas, noise):
    x = noise
    with torch.no_grad():
        for i, s in enumerate(sigmas):
            t = torch.full((x.shape[0],), 1000.0 * s)
            x0 = dit(x, t, text, None, extra_of(context, start))
            v = (x - x0) / max(s, 1e-3)
            x = x + ((sigmas[i + 1] if i + 1 < len(sigmas) else 0.0) - s) * v
    return x


YUME_SIGMAS = [1.0, 0.9, 0.75, 0.5]  # flow_schedule(4, shift 3)


def rollout(dit, z0, acts, emb, horizon, seed=0):
    g = torch.Generator().manual_seed(seed)
    ctx, outs = z0, []
    for t in range(horizon):
        text = emb[torch.from_numpy(key_bits(acts[:, t]))]
        ctx = euler(dit, ctx, z0, text, YUME_SIGMAS, torch.randn(z0.shape, generator=g))
        outs.append(ctx)
    return torch.stack(outs, 1)


def val_metrics(dit, vz, va, vframes, emb, sdec, horizon=16):
    dit.eval()
    z0 = torch.from_numpy(np.stack([z[0] for z in vz]))
    acts = np.stack([a[:horizon] for a in va])
    zs = rollout(dit, z0, acts, emb, horizon)
    with torch.no_grad():
        img = sdec(zs.flatten(0, 1)).view(len(vz), horizon, 3, 64, 64).numpy()
    gt = to_image(np.stack([f[1:horizon + 1] for f in vframes])).numpy()
    per_tick = [float(psnr(img[:, t], gt[:, t]).mean()) for t in range(horizon)]
    dit.train()
    return per_tick, img, np.stack([f[1:horizon + 1] for f in vframes])


def train_dit(args):
    torch.manual_seed(0)
    zs, acts, names = load_latents(args, "train")
    for n in names:
        if int(n.rsplit("_", 1)[1]) >= 1000:
            raise SystemExit(f"refusing to train on {n}: seed is held out (>= 1000)")
    vz, va, _ = load_latents(args, "val")
    vframes = [e["frames"] for e in load_episodes(args.val, train=False)]
    emb = torch.from_numpy(np.load(os.path.join(args.ckpt, "qcm_captions.npy")))
    sdec = load_rgb_decoder(args.ckpt)
    prior_var = float(np.mean([np.mean((z[1:] - z[:-1]) ** 2) for z in zs]))
    zc, latent = zs[0].shape[1], zs[0].shape[-1]
    dit = build(args, zc, latent, prior_var)
    pairs = np.array([(e, t) for e in range(len(zs)) for t in range(len(acts[e]))])
    print(f"yume dit {n_params(dit)/1e6:.3f}M params; {len(pairs)} transitions; prior_var {prior_var:.4f}", flush=True)
    Z = [torch.from_numpy(z) for z in zs]
    bits = [torch.from_numpy(key_bits(a)) for a in acts]
    loop = TrainLoop(dit.parameters(), args.lr, args.minutes, "yume", ema=args.ema, log_every=args.log_every)
    rng = np.random.default_rng(0)
    while loop.running():
        sel = pairs[rng.integers(0, len(pairs), args.batch)]
        B = len(sel)
        ctx = torch.stack([Z[e][t] for e, t in sel])
        x0 = torch.stack([Z[e][t + 1] for e, t in sel])
        start = torch.stack([Z[e][0] for e, _ in sel])
        text = emb[torch.stack([bits[e][t] for e, t in sel])]
        drop = torch.from_numpy((rng.random(B) >= args.text_dropout).astype(np.float32)).view(-1, 1, 1)
        text = text * drop
        sig = torch.from_numpy(rng.uniform(0, args.ctx_noise, B).astype(np.float32))
        sig[torch.from_numpy(rng.random(B) < 0.25)] = 0.0
        ctx = ctx + sig.view(-1, 1, 1, 1) * torch.randn_like(ctx)
        sigma = sample_sigma_gated(B, rng, GATE_SIGMA, args.frac_gated)
        xt = flow_noise(x0, sigma)
        x0_hat = dit(xt, 1000.0 * sigma, text, None, extra_of(ctx, start))
        loop.step(F.mse_loss(x0_hat, x0) / prior_var)
    minutes, step = loop.finish(), loop.steps
    per_tick, img, gt = val_metrics(dit, vz, va, vframes, emb, sdec)
    torch.save(dict(dit=dit.state_dict(), width=args.width, depth=args.depth, zc=zc, latent=latent,
                    prior_var=prior_var, steps=step, minutes=minutes), os.path.join(args.ckpt, "yume.pt"))
    save_png(os.path.join(args.ckpt, "yume_val.png"),
             np.concatenate([np.concatenate(list(gt[0]), 1), np.concatenate(list(to_u8(img[0])), 1)], 0))
    record(args, dict(model="dit_yume (QCM text)", data=dict(transitions=int(len(pairs)), episodes=len(zs)),
                      steps=step, batch=args.batch, minutes=round(minutes, 2), lr=args.lr,
                      text_dropout=args.text_dropout, ctx_noise=args.ctx_noise,
                      final_train_loss=loop.final_loss(), val_psnr_tick1=round(per_tick[0], 2),
                      val_psnr_1_16=round(float(np.mean(per_tick)), 2),
                      val_psnr_per_tick=[round(p, 2) for p in per_tick], params=n_params(dit)))


class YumeVelocity(torch.nn.Module):
    """Exported: (x, t, cond = [mask ; start latent], context = previous latent, text) -> velocity."""

    def __init__(self, dit):
        super().__init__()
        self.dit = dit

    def forward(self, x, t, cond, context, text):
        x0 = self.dit(x, t, text, None, torch.cat([context, cond], 1))
        return (x - x0) / (t / 1000.0).clamp(min=1e-3).view(-1, 1, 1, 1)


def export(args):
    ck = torch.load(os.path.join(args.ckpt, "yume.pt"))
    args.width, args.depth = ck["width"], ck["depth"]
    dit = build(args, ck["zc"], ck["latent"], ck["prior_var"])
    dit.load_state_dict(ck["dit"])
    zc, h = ck["zc"], ck["latent"]
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    z = torch.zeros(1, zc, h, h)
    export_onnx(YumeVelocity(dit).eval(), (z, torch.full((1,), 1000.0), torch.zeros(1, zc + 1, h, h), z,
                                           torch.zeros(1, 64, 64)),
                os.path.join(out, "dit_yume.onnx"), ["x", "t", "cond", "context", "text"], ["velocity"], "denoiser",
                f"trained Yume denoiser (QCM text): DiT ({ck['depth']} blocks, width {ck['width']}) over the RGB latent "
                f"({zc}x{h}x{h}), previous latent and the I2V condition [mask ; start latent] channel-concatenated, "
                "the Quantized-Camera-Motion caption's text-encoder tokens pooled by attention into adaLN; predicts "
                "the next latent as previous + change, exported as rectified-flow velocity (for sigma >= 0.5 x_t is "
                "unseen: Euler 4 steps at shift 3 returns the conditional mean); text dropped 10% in training (CFG)",
                dict({"frame_size": 64, "hidden_width": 64}, prediction="velocity", schedule="rectified_flow",
                     time_scale=1000, conditions="text,cond,context", context_frames=1, trained="true",
                     qcm_variant="yume", recommended_sampler="euler 4 steps, shift 3"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=["captions", "dit", "export"])
    ap.add_argument("--ckpt", default="/work/ckpt")
    ap.add_argument("--val", default="/work/data/val")
    ap.add_argument("--out", default=os.path.join(HERE, "..", "trained"))
    ap.add_argument("--wgraph", default=os.path.join(ROOT, "target", "release", "wgraph"))
    ap.add_argument("--minutes", type=float, default=12.0)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=8e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--text-dropout", type=float, default=0.1)
    ap.add_argument("--ctx-noise", type=float, default=0.3)
    ap.add_argument("--frac-gated", type=float, default=0.75)
    ap.add_argument("--ema", type=float, default=0.999)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    {"captions": make_captions, "dit": train_dit, "export": export}[args.stage](args)


if __name__ == "__main__":
    main()
