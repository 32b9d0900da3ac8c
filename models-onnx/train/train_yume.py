#!/usr/bin/env python3
"""Train the QCM-text-conditioned flow-matching denoiser of the Yume graph (CPU, PyTorch).

    python3 train_yume.py latents                # frames -> latents with the shipped trained/vae_encoder.onnx
    python3 train_yume.py captions               # the 512 key sets' QCM caption embeddings, via `wgraph run`
    python3 train_yume.py dit --minutes 24       # resumable: --resume <ckpt>/yume.pt
    python3 train_yume.py export                 # -> ../trained/dit_yume.onnx
    python3 train_yume.py export-blocks          # -> ../trained/yume_blocks/{embed,block0..3,head}.onnx
    python3 train_yume.py eval                   # held-out rollouts: steps x sampler in Python

Yume turns keys into text (Quantized Camera Motion: "Person moves forward (W).Camera turns right
(→)." after a fixed prefix), encodes it with a text encoder and conditions an image-to-video DiT
on it. Here the keys never reach the denoiser as keys: each transition of the training data is
conditioned on the embedding of exactly the caption the graph's `qcm` node writes for its keys,
encoded by the graph's frozen `text_encoder` (`models-onnx/text_encoder.onnx`); the `captions`
stage computes them with the engine itself (actions → qcm → text_encoder → npy_dump, one tick per
key set), so training and playing see the same vectors.

A real rectified-flow model: x_σ = (1 − σ)·x0 + σ·ε, trained at every σ in (0, 1] (σ drawn with
the sampler's shift 3, so the levels the graph visits are the ones trained most), and x_σ is an
input at every level — there is no gate, so the number of steps and the sampler change the
result. Preconditioning (EDM-style, with the previous latent as the prior: x0 ~ N(context, s²),
s² = the mean squared latent change per tick): m, P are the posterior mean and variance of x0
given x_σ and the context, the network F(x_σ, m, context, I2V condition, text, σ) predicts the
unit-variance residual, x0 = m + √P·F, and the loss is ‖F − (x0 − m)/√P‖² — at small σ this is
the flow-matching velocity loss (weight ≈ 1/σ²), at large σ an x0 loss. Exported as velocity
v = (x_σ − x0)/σ with t = 1000·σ.

The context (previous latent) is noise-augmented as in GameNGen (σ_c ~ U(0, 0.3), a quarter clean)
so long rollouts, which feed the model its own outputs, hold. The text is zeroed for 10 % of the
batch (classifier-free guidance's null condition: the `denoiser` node's `guidance = { text = … }`
uses zeros). Seeds >= 1000 are never trained on.
"""

import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (KEYS, TrainLoop, export_onnx, load_episodes, psnr, record,  # noqa: E402
                    round_weights_fp16, run_graph_dump, save_png, to_image, to_u8)
from models import RenderDiT, n_params, timestep_embedding  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
TRAINED = os.path.join(ROOT, "models-onnx", "trained")
SHIFT = 3.0  # the graph's Euler shift: training draws σ with the same warp
SIGMA_MIN = 1e-3


def key_bits(actions):
    """multi-hot [..., 9] -> key-set index sum(2^k) (KEYS order)."""
    return ((np.asarray(actions) > 0.5) * (1 << np.arange(len(KEYS)))).sum(-1).astype(np.int64)


def ort_session(name):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(os.path.join(TRAINED, name), opts, providers=["CPUExecutionProvider"])


def make_latents(args):
    """Every frame through the shipped `trained/vae_encoder.onnx` (the graph's own encoder)."""
    enc = ort_session("vae_encoder.onnx")
    os.makedirs(args.ckpt, exist_ok=True)
    for split, root, train in (("train", args.data, True), ("val", args.val, False)):
        eps = load_episodes(root, train=train)
        zs = []
        for e in eps:
            img = to_image(e["frames"]).numpy()
            zs.append(np.concatenate([enc.run(None, {"image": img[i:i + 256]})[0] for i in range(0, len(img), 256)]))
        allz = np.concatenate(zs)
        print(f"{split}: {len(eps)} episodes, latents {allz.shape}, mean {allz.mean():.3f} std {allz.std():.3f}",
              flush=True)
        np.savez(os.path.join(args.ckpt, f"latents_{split}.npz"),
                 **{f"z{i}": z for i, z in enumerate(zs)}, **{f"a{i}": e["actions"] for i, e in enumerate(eps)},
                 names=np.array([e["name"] for e in eps]), n=len(eps))


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
    os.makedirs(args.ckpt, exist_ok=True)
    np.save(os.path.join(args.ckpt, "qcm_captions.npy"), emb)
    distinct = len({e.tobytes() for e in emb})
    print(f"captions {emb.shape}: {distinct} distinct embeddings (QCM has 81 captions)")


def load_latents(args, split):
    d = np.load(os.path.join(args.ckpt, f"latents_{split}.npz"))
    n = int(d["n"])
    return [d[f"z{i}"] for i in range(n)], [d[f"a{i}"] for i in range(n)], [str(x) for x in d["names"]]


class YumeFlow(torch.nn.Module):
    """x0 = m + √P·F(x_σ, [context ; mask ; start ; m], text, σ): the preconditioned flow denoiser.
    m, P: posterior of x0 given x_σ = (1−σ)x0 + σε and the prior x0 ~ N(context, s²)."""

    def __init__(self, width, depth, zc, latent, prior_var):
        super().__init__()
        self.prior_var = float(prior_var)
        self.zc = zc
        self.net = RenderDiT(d=width, depth=depth, latent=latent, zc=zc, gate_sigma=None,
                             extra_channels=3 * zc + 1, residual_scale=0.0)

    def posterior(self, x, sigma, context):
        s = sigma.clamp(min=SIGMA_MIN).view(-1, 1, 1, 1)
        a = 1.0 - s
        prec = 1.0 / self.prior_var + a * a / (s * s)
        P = 1.0 / prec
        m = P * (context / self.prior_var + a * x / (s * s))
        return m, P

    def forward(self, x, sigma, context, cond, text):
        """-> (x0, F, m, P); cond = [mask ; start latent]."""
        m, P = self.posterior(x, sigma, context)
        Fh = self.net(x, 1000.0 * sigma, text, None, torch.cat([context, cond, m], 1))
        return m + P.sqrt() * Fh, Fh, m, P


def shifted(u, shift=SHIFT):
    """σ = shift·u / (1 + (shift − 1)·u): the flow samplers' time shift."""
    return shift * u / (1 + (shift - 1) * u)


def euler_sigmas(steps, shift=SHIFT):
    return [float(shifted(1.0 - i / steps, shift)) for i in range(steps)] + [0.0]


def sample(model, context, cond, text, steps, noise, stochastic=False, gen=None):
    """Euler (ODE) or Euler–Maruyama in Yume's form (re-noise x0 to the next σ) from σ = 1."""
    x = noise
    sig = euler_sigmas(steps)
    with torch.no_grad():
        for i in range(steps):
            s, s_next = sig[i], sig[i + 1]
            x0 = model(x, torch.full((x.shape[0],), s), context, cond, text)[0]
            if stochastic:
                e = torch.randn(x.shape, generator=gen)
                x = (1 - s_next) * x0 + s_next * e
            else:
                x = x + (s_next - s) * (x - x0) / s
    return x


def rollout(model, z0, acts, emb, horizon, steps, stochastic=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    cond = torch.cat([torch.ones_like(z0[:, :1]), z0], 1)
    ctx, outs = z0, []
    for t in range(horizon):
        text = emb[torch.from_numpy(key_bits(acts[:, t]))]
        ctx = sample(model, ctx, cond, text, steps, torch.randn(z0.shape, generator=g), stochastic, g)
        outs.append(ctx)
    return torch.stack(outs, 1)


def decode(dec, zs):
    flat = zs.flatten(0, 1).numpy()
    img = np.concatenate([dec.run(None, {"latent": flat[i:i + 256]})[0] for i in range(0, len(flat), 256)])
    return img.reshape(*zs.shape[:2], *img.shape[1:])


def val_metrics(model, vz, va, vframes, emb, dec, horizon=16, steps=4, stochastic=False):
    model.eval()
    z0 = torch.from_numpy(np.stack([z[0] for z in vz]))
    acts = np.stack([a[:horizon] for a in va])
    img = decode(dec, rollout(model, z0, acts, emb, horizon, steps, stochastic))
    gt = to_image(np.stack([f[1:horizon + 1] for f in vframes])).numpy()
    per_tick = [float(psnr(img[:, t], gt[:, t]).mean()) for t in range(horizon)]
    model.train()
    return per_tick, img, np.stack([f[1:horizon + 1] for f in vframes])


def load_model(args, ck):
    model = YumeFlow(ck["width"], ck["depth"], ck["zc"], ck["latent"], ck["prior_var"])
    model.load_state_dict(ck["model"])
    return model


def train_dit(args):
    torch.manual_seed(0)
    zs, acts, names = load_latents(args, "train")
    for n in names:
        if int(n.rsplit("_", 1)[1]) >= 1000:
            raise SystemExit(f"refusing to train on {n}: seed is held out (>= 1000)")
    vz, va, _ = load_latents(args, "val")
    vframes = [e["frames"] for e in load_episodes(args.val, train=False)]
    emb = torch.from_numpy(np.load(os.path.join(args.ckpt, "qcm_captions.npy")))
    dec = ort_session("vae_decoder.onnx")
    prior_var = float(np.mean([np.mean((z[1:] - z[:-1]) ** 2) for z in zs]))
    zc, latent = zs[0].shape[1], zs[0].shape[-1]
    done_steps, done_minutes = 0, 0.0
    if args.resume:
        ck = torch.load(args.resume)
        args.width, args.depth, prior_var = ck["width"], ck["depth"], ck["prior_var"]
        model = load_model(args, ck)
        done_steps, done_minutes = ck["steps"], ck["minutes"]
    else:
        model = YumeFlow(args.width, args.depth, zc, latent, prior_var)
    pairs = np.array([(e, t) for e in range(len(zs)) for t in range(len(acts[e]))])
    print(f"yume flow dit {n_params(model)/1e6:.3f}M params; {len(pairs)} transitions; prior_var {prior_var:.4f}",
          flush=True)
    Z = [torch.from_numpy(z) for z in zs]
    bits = [torch.from_numpy(key_bits(a)) for a in acts]
    loop = TrainLoop(model.parameters(), args.lr, args.minutes, "yume", ema=args.ema, log_every=args.log_every)
    rng = np.random.default_rng(done_steps)
    path = os.path.join(args.ckpt, "yume.pt")

    def save(minutes):
        torch.save(dict(model=model.state_dict(), width=args.width, depth=args.depth, zc=zc, latent=latent,
                        prior_var=prior_var, steps=done_steps + loop.steps, minutes=done_minutes + minutes), path)

    while loop.running():
        sel = pairs[rng.integers(0, len(pairs), args.batch)]
        B = len(sel)
        ctx = torch.stack([Z[e][t] for e, t in sel])
        x0 = torch.stack([Z[e][t + 1] for e, t in sel])
        start = torch.stack([Z[e][0] for e, _ in sel])
        text = emb[torch.stack([bits[e][t] for e, t in sel])]
        drop = torch.from_numpy((rng.random(B) >= args.text_dropout).astype(np.float32)).view(-1, 1, 1)
        text = text * drop
        csig = torch.from_numpy(rng.uniform(0, args.ctx_noise, B).astype(np.float32))
        csig[torch.from_numpy(rng.random(B) < 0.25)] = 0.0
        ctx = ctx + csig.view(-1, 1, 1, 1) * torch.randn_like(ctx)
        sigma = shifted(torch.from_numpy(rng.uniform(SIGMA_MIN, 1.0, B).astype(np.float32)))
        xt = (1 - sigma.view(-1, 1, 1, 1)) * x0 + sigma.view(-1, 1, 1, 1) * torch.randn_like(x0)
        cond = torch.cat([torch.ones_like(start[:, :1]), start], 1)
        _, Fh, m, P = model(xt, sigma, ctx, cond, text)
        loop.step(F.mse_loss(Fh, (x0 - m) / P.sqrt()))
        if loop.steps % 500 == 0:
            save(loop.timer.minutes())  # resumable (raw weights; the EMA lands at the end)
    minutes = loop.finish()
    save(minutes)
    per_tick, img, gt = val_metrics(model, vz, va, vframes, emb, dec)
    save_png(os.path.join(args.ckpt, "yume_val.png"),
             np.concatenate([np.concatenate(list(gt[0]), 1), np.concatenate(list(to_u8(img[0])), 1)], 0))
    record(args, dict(model="dit_yume (QCM text, flow matching, no gate)",
                      data=dict(transitions=int(len(pairs)), episodes=len(zs)),
                      steps=done_steps + loop.steps, batch=args.batch, minutes=round(minutes, 2), lr=args.lr,
                      resumed_from=args.resume, text_dropout=args.text_dropout, ctx_noise=args.ctx_noise,
                      final_train_loss=loop.final_loss(), val_psnr_tick1=round(per_tick[0], 2),
                      val_psnr_1_16=round(float(np.mean(per_tick)), 2),
                      val_psnr_per_tick=[round(p, 2) for p in per_tick], params=n_params(model)))


def evaluate(args):
    """Held-out rollouts (30 walks, 16 ticks) for Euler / Euler–Maruyama at several step counts."""
    ck = torch.load(os.path.join(args.ckpt, "yume.pt"))
    model = load_model(args, ck)
    vz, va, _ = load_latents(args, "val")
    vframes = [e["frames"] for e in load_episodes(args.val, train=False)]
    emb = torch.from_numpy(np.load(os.path.join(args.ckpt, "qcm_captions.npy")))
    dec = ort_session("vae_decoder.onnx")
    for stochastic in (False, True):
        for steps in (1, 2, 4, 8, 16):
            per_tick = val_metrics(model, vz, va, vframes, emb, dec, steps=steps, stochastic=stochastic)[0]
            print(f"{'sde' if stochastic else 'euler'} steps {steps:2d}: tick 1 {per_tick[0]:.2f} dB, "
                  f"ticks 1-16 {np.mean(per_tick):.2f} dB", flush=True)


class YumeVelocity(torch.nn.Module):
    """Exported: (x, t = 1000σ, cond = [mask ; start latent], context = previous latent, text) -> velocity."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, t, cond, context, text):
        sigma = (t / 1000.0).clamp(min=SIGMA_MIN)
        x0 = self.model(x, sigma, context, cond, text)[0]
        return (x - x0) / sigma.view(-1, 1, 1, 1)


def export(args):
    ck = torch.load(os.path.join(args.ckpt, "yume.pt"))
    model = load_model(args, ck)
    zc, h = ck["zc"], ck["latent"]
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    z = torch.zeros(1, zc, h, h)
    export_onnx(YumeVelocity(model).eval(), (z, torch.full((1,), 1000.0), torch.zeros(1, zc + 1, h, h), z,
                                             torch.zeros(1, 64, 64)),
                os.path.join(out, "dit_yume.onnx"), ["x", "t", "cond", "context", "text"], ["velocity"], "denoiser",
                f"trained Yume denoiser (QCM text): rectified-flow DiT ({ck['depth']} blocks, width {ck['width']}) "
                f"over the RGB latent ({zc}x{h}x{h}); x_t seen at every noise level; previous latent, the I2V "
                "condition [mask ; start latent] and the prior-posterior mean channel-concatenated; the "
                "Quantized-Camera-Motion caption's text-encoder tokens pooled by attention into adaLN; "
                "EDM-style preconditioning with the previous latent as prior; context noise-augmented (GameNGen); "
                "text dropped 10% in training (CFG)",
                dict({"frame_size": 64, "hidden_width": 64}, prediction="velocity", schedule="rectified_flow",
                     time_scale=1000, conditions="text,cond,context", context_frames=1, trained="true",
                     qcm_variant="yume", training_steps=ck["steps"], training_minutes=round(ck["minutes"], 1),
                     recommended_sampler="euler 8 steps, shift 3"))


class YumeEmbed(torch.nn.Module):
    """Everything of `YumeVelocity` before the DiT blocks: (x, t, cond, context, text) ->
    h [batch, N, D] (patch tokens + positions), c [batch, D] (the adaLN condition: timestep +
    pooled caption), and what the head needs: xin (the network's spatial input, x ‖ context ‖
    cond ‖ m), m and sqrt_p (the prior-posterior mean and standard deviation of x0) and sigma."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, t, cond, context, text):
        sigma = (t / 1000.0).clamp(min=SIGMA_MIN)
        m, P = self.model.posterior(x, sigma, context)
        net = self.model.net
        tn = 1000.0 * sigma
        assert net.gate_sigma is None, "the Yume network has no σ-gate"
        xin = torch.cat([x, context, cond, m], 1)
        h = net.inp(xin).flatten(2).transpose(1, 2) + net.pos
        c = F.silu(net.temb(timestep_embedding(tn, net.d)) + net.semb(net.pool_style(text)))
        return h, c, xin, m, P.sqrt(), sigma.view(-1, 1, 1, 1)


class YumeBlock(torch.nn.Module):
    """One DiT block: (h, c) -> h."""

    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, h, c):
        return self.block(h, c)


class YumeHead(torch.nn.Module):
    """Everything after the blocks: final adaLN, unpatchify, the conv refinement, x0 = m + √P·F and
    the velocity v = (x − x0)/σ (x is the first zc channels of xin)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, h, c, xin, m, sqrt_p, sigma):
        net = self.model.net
        B, H, W = xin.shape[0], xin.shape[2], xin.shape[3]
        s, b = net.ada_f(c).unsqueeze(1).chunk(2, dim=-1)
        h = net.out(net.nf(h) * (1 + s) + b)
        p = net.patch
        h = F.pixel_shuffle(h.transpose(1, 2).reshape(B, -1, H // p, W // p), p)
        sc, sh = net.r_film(c).view(B, -1, 1, 1).chunk(2, dim=1)
        out = net.r2(F.silu(net.r1(torch.cat([h, xin], 1)) * (1 + sc) + sh))
        x0 = m + sqrt_p * out
        return (xin[:, : net.zc] - x0) / sigma


BLOCK_DIR = "yume_blocks"
EMBED_OUTPUTS = ["h", "c", "xin", "m", "sqrt_p", "sigma"]


def export_blocks(args):
    """The weights of `export` split at the DiT blocks into separate ONNX files under
    <out>/yume_blocks/: embed.onnx, block0.onnx … block{depth-1}.onnx, head.onnx (the engine's
    `block_denoiser` kind runs them in turn, and Yume's block cache skips blocks between them).
    Checked with onnxruntime against the monolithic dit_yume.onnx on random inputs."""
    import onnxruntime as ort

    ck = torch.load(os.path.join(args.ckpt, "yume.pt"))
    model = load_model(args, ck)
    # The same fp16-rounded weights as `export` (export_onnx rounds in place; rounding twice is a no-op).
    round_weights_fp16(model)
    model.eval()
    zc, hw, depth, width = ck["zc"], ck["latent"], ck["depth"], ck["width"]
    out = os.path.join(os.path.abspath(args.out), BLOCK_DIR)
    os.makedirs(out, exist_ok=True)
    z = torch.zeros(1, zc, hw, hw)
    inputs = (z, torch.full((1,), 1000.0), torch.zeros(1, zc + 1, hw, hw), z, torch.zeros(1, 64, 64))
    embed = YumeEmbed(model).eval()
    with torch.no_grad():
        h, c, xin, m, sqrt_p, sigma = embed(*inputs)
    common = dict(frame_size=64, hidden_width=width, blocks=depth, split_of="dit_yume.onnx", trained="true",
                  training_steps=ck["steps"])
    export_onnx(embed, inputs, os.path.join(out, "embed.onnx"), ["x", "t", "cond", "context", "text"],
                EMBED_OUTPUTS, "denoiser_embed",
                "Yume denoiser, part 1 of the block split: prior-posterior preconditioning, patch embedding "
                f"(h: {h.shape[1]} tokens x {width}), adaLN condition c (timestep + attention-pooled caption); "
                "xin, m, sqrt_p, sigma for the head",
                common)
    for i, blk in enumerate(model.net.blocks):
        export_onnx(YumeBlock(blk).eval(), (h, c), os.path.join(out, f"block{i}.onnx"), ["h", "c"], ["h_out"],
                    "denoiser_block", f"Yume denoiser, DiT block {i} of {depth}: adaLN-modulated self-attention "
                    "and MLP on the token sequence, (h, c) -> h", dict(common, block_index=i))
    export_onnx(YumeHead(model).eval(), (h, c, xin, m, sqrt_p, sigma), os.path.join(out, "head.onnx"),
                ["h", "c"] + EMBED_OUTPUTS[2:], ["velocity"], "denoiser_head",
                "Yume denoiser, last part of the block split: final adaLN, unpatchify, conv refinement, "
                "x0 = m + sqrt_p·F and the rectified-flow velocity (x − x0)/σ",
                dict(common, prediction="velocity", schedule="rectified_flow", time_scale=1000,
                     conditions="text,cond,context", qcm_variant="yume"))
    # Faithful split: embed -> blocks -> head equals the monolithic export.
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = lambda p: ort.InferenceSession(p, opts, providers=["CPUExecutionProvider"])  # noqa: E731
    full = sess(os.path.join(os.path.abspath(args.out), "dit_yume.onnx"))
    parts = [sess(os.path.join(out, "embed.onnx"))] + [sess(os.path.join(out, f"block{i}.onnx"))
                                                       for i in range(depth)] + [sess(os.path.join(out, "head.onnx"))]
    rng = np.random.default_rng(0)
    worst = 0.0
    for batch in (1, 3):
        for trial in range(4):
            feed = dict(x=rng.standard_normal((batch, zc, hw, hw)).astype(np.float32),
                        t=rng.uniform(1.0, 1000.0, batch).astype(np.float32),
                        cond=rng.standard_normal((batch, zc + 1, hw, hw)).astype(np.float32),
                        context=rng.standard_normal((batch, zc, hw, hw)).astype(np.float32),
                        text=rng.standard_normal((batch, 64, 64)).astype(np.float32))
            if trial == 0:
                feed["t"][:] = 1000.0
            want = full.run(None, feed)[0]
            e = dict(zip(EMBED_OUTPUTS, parts[0].run(None, feed)))
            hh = e["h"]
            for blk in parts[1:-1]:
                hh = blk.run(None, {"h": hh, "c": e["c"]})[0]
            got = parts[-1].run(None, dict(e, h=hh))[0]
            diff = float(np.abs(got - want).max())
            worst = max(worst, diff)
            print(f"batch {batch} t {np.round(feed['t'], 1).tolist()}: max abs diff {diff:.2e} "
                  f"(|v| up to {np.abs(want).max():.2f})", flush=True)
    print(f"embed -> {depth} blocks -> head vs dit_yume.onnx: max abs diff {worst:.2e}")
    if worst >= 1e-4:
        raise SystemExit(f"the split does not reproduce dit_yume.onnx: max abs diff {worst:.2e} >= 1e-4")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=["latents", "captions", "dit", "export", "export-blocks", "eval"])
    ap.add_argument("--ckpt", default="/work/ckpt/yume")
    ap.add_argument("--data", default="/work/data/train")
    ap.add_argument("--val", default="/work/data/val")
    ap.add_argument("--out", default=TRAINED)
    ap.add_argument("--wgraph", default=os.path.join(ROOT, "target", "release", "wgraph"))
    ap.add_argument("--minutes", type=float, default=24.0)
    ap.add_argument("--resume", default=None, help="continue from a yume.pt (its width/depth/prior)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=8e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--text-dropout", type=float, default=0.1)
    ap.add_argument("--ctx-noise", type=float, default=0.3)
    ap.add_argument("--ema", type=float, default=0.999)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    {"latents": make_latents, "captions": make_captions, "dit": train_dit, "export": export,
     "export-blocks": export_blocks, "eval": evaluate}[args.stage](args)


if __name__ == "__main__":
    main()
