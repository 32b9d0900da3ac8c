#!/usr/bin/env python3
"""Train the Yan-Gen denoiser of graphs/yan-gen.world: a flow-matching DiT conditioned on a global
caption, a local (event) caption, a reference image and the action, each through its own
(decoupled) cross-attention (CPU, PyTorch).

    python3 train_gen.py latents        # frames -> latents (trained/vae_encoder.onnx), reference
                                        # embeddings (image_encoder.onnx), captions per transition
    python3 train_gen.py captions       # the distinct global/local captions -> text_encoder.onnx,
                                        # by `wgraph run` (the vectors the graph computes)
    python3 train_gen.py dit --minutes 30        # resumable: --resume <ckpt>/gen.pt or ckpt/gen_fp16.pt
    python3 train_gen.py export         # -> ../trained/dit_gen.onnx + action_embedder_gen.onnx
    python3 train_gen.py pack           # the fp16 state dict (a few MB) -> ckpt/gen_fp16.pt, to resume elsewhere

Data: `wgraph dataset ... --events auto` (captions.json: the episode's global caption and its
events; local.txt: the local caption of every frame, `-` before the first event; events.npy).
Transition t -> t+1 is conditioned on the global caption, the local caption of frame t+1 (the
graph's `prompt_schedule` at tick t: tick t makes frame t+1), the reference frame (the episode's
first frame through the graph's frozen `image_encoder`), the keys of tick t (through an action MLP
trained jointly and exported as `action_embedder_gen.onnx`) and the previous latent (`context`).
The local caption `-` (no event yet) is trained as the text NEUTRAL below, which the graph's
schedule starts with.

The network (`GenDiT`): 2x2 patches of [x_σ ; context ; m] -> 64 tokens; each block is adaLN
(timestep + action + image) self-attention, then decoupled cross-attention — one query, a separate
key/value projection and attention per condition (global text tokens, local text tokens, the image
token, the action token), outputs summed (IP-Adapter style) — then an MLP. Rectified flow
x_σ = (1 − σ)x0 + σε with the Yume script's EDM-style preconditioning (prior x0 ~ N(context, s²)),
σ drawn with the graph's shift 5; exported as velocity (x_σ − x0)/σ at t = 1000σ.

Multi-condition CFG: each of global text, local text, image and action is zeroed independently
(`--drop`, 10 % each; the `denoiser` node's guidance uses zeros as the null condition). Context
noise augmentation (GameNGen, σ_c ~ U(0, 0.3), a quarter clean). Transitions whose frame has an
event are oversampled (`--event-weight`, onset ticks `--onset-weight`). Seeds >= 1000 are never
trained on.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (KEYS, TrainLoop, export_onnx, load_episodes, psnr, record,  # noqa: E402
                    run_graph_dump, save_png, to_image, to_u8)
from models import n_params, timestep_embedding  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
TRAINED = os.path.join(ROOT, "models-onnx", "trained")
SHIFT = 5.0  # graphs/yan-gen.world: euler { steps = 4, shift = 5.0 }
SIGMA_MIN = 1e-3
NEUTRAL = "nothing happens"  # the local caption before any event (`-` in local.txt)


def ort_session(path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def episode_captions(d, n_frames):
    cap = json.load(open(os.path.join(d, "captions.json")))
    local = [ln.strip() for ln in open(os.path.join(d, "local.txt")).read().splitlines()]
    assert len(local) == n_frames, (len(local), n_frames)
    local = [NEUTRAL if x in ("", "-") else x for x in local]
    return cap["global"], local


def make_latents(args):
    enc = ort_session(os.path.join(TRAINED, "vae_encoder.onnx"))
    img_enc = ort_session(os.path.join(ROOT, "models-onnx", "image_encoder.onnx"))
    os.makedirs(args.ckpt, exist_ok=True)
    texts = {}
    for split, root, train in (("train", args.data, True), ("val", args.val, False)):
        eps = load_episodes(root, train=train)
        out = {}
        for i, e in enumerate(eps):
            img = to_image(e["frames"]).numpy()
            out[f"z{i}"] = np.concatenate([enc.run(None, {"image": img[j:j + 256]})[0]
                                           for j in range(0, len(img), 256)])
            out[f"a{i}"] = e["actions"]
            out[f"r{i}"] = img_enc.run(None, {img_enc.get_inputs()[0].name: img[:1]})[0][0]
            g, local = episode_captions(e["dir"], len(img))
            out[f"g{i}"] = np.array(texts.setdefault(g, len(texts)))
            out[f"l{i}"] = np.array([texts.setdefault(x, len(texts)) for x in local])
            out[f"e{i}"] = np.load(os.path.join(e["dir"], "events.npy")).astype(np.float32)
        np.savez(os.path.join(args.ckpt, f"latents_{split}.npz"), **out,
                 names=np.array([e["name"] for e in eps]), n=len(eps))
        print(f"{split}: {len(eps)} episodes", flush=True)
    texts.setdefault(NEUTRAL, len(texts))
    json.dump(sorted(texts, key=texts.get), open(os.path.join(args.ckpt, "texts.json"), "w"), indent=1)
    print(f"{len(texts)} distinct captions: {sorted(texts, key=texts.get)}")


def make_captions(args):
    texts = json.load(open(os.path.join(args.ckpt, "texts.json")))
    model = os.path.join(ROOT, "models-onnx", "text_encoder.onnx")
    sched = ", ".join(json.dumps(f"{i}: {t}") for i, t in enumerate(texts))
    emb = run_graph_dump(args.wgraph, 'world { name = "captions" fps = 1 resolution = 64x64 }\n'
                         f'model te = "{model}"\n'
                         f'node caps: prompt_schedule {{ schedule = [{sched}] }}\n'
                         'node enc: text_encoder { model = te }\n'
                         'node dump: npy_dump { dir = "emb" }\n'
                         'caps.text -> enc.text\nenc.embedding -> dump.tensor\n', len(texts))
    np.save(os.path.join(args.ckpt, "caption_emb.npy"), emb)
    print(f"captions {emb.shape}: {len({e.tobytes() for e in emb})} distinct embeddings of {len(texts)} texts")


def load_split(args, split):
    d = np.load(os.path.join(args.ckpt, f"latents_{split}.npz"))
    n = int(d["n"])
    keys = ("z", "a", "r", "g", "l", "e")
    return [{k: d[f"{k}{i}"] for k in keys} for i in range(n)], [str(x) for x in d["names"]]


class CrossAttn(nn.Module):
    """Decoupled cross-attention: one query projection, a key/value projection and an attention
    per condition, outputs summed."""

    def __init__(self, d, cdim, n_cond, heads):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(d, d)
        self.kv = nn.ModuleList([nn.Linear(cdim, 2 * d) for _ in range(n_cond)])
        self.proj = nn.Linear(d, d)

    def forward(self, x, conds):
        B, N, D = x.shape
        hd = D // self.heads
        q = self.q(x).view(B, N, self.heads, hd).transpose(1, 2)
        out = 0
        for kv, c in zip(self.kv, conds):
            k, v = kv(c).view(B, c.shape[1], 2, self.heads, hd).permute(2, 0, 3, 1, 4)
            out = out + F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(B, N, D))


class GenBlock(nn.Module):
    def __init__(self, d, heads, cdim, n_cond, mlp=3):
        super().__init__()
        self.heads = heads
        self.n1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.nc = nn.LayerNorm(d, eps=1e-6)
        self.cross = CrossAttn(d, cdim, n_cond, heads)
        self.n2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(d, mlp * d), nn.GELU(approximate="tanh"), nn.Linear(mlp * d, d))
        self.ada = nn.Linear(d, 6 * d)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(self, h, c, conds):
        B, N, D = h.shape
        s1, b1, g1, s2, b2, g2 = self.ada(c).unsqueeze(1).chunk(6, dim=-1)
        x = self.n1(h) * (1 + s1) + b1
        q, k, v = self.qkv(x).view(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        h = h + g1 * self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, D))
        h = h + self.cross(self.nc(h), conds)
        x = self.n2(h) * (1 + s2) + b2
        return h + g2 * self.mlp(x)


class GenDiT(nn.Module):
    """F(x_σ, context, m, σ; global text, local text, image, action) on 2x2 patches."""

    def __init__(self, d=128, depth=4, heads=4, latent=16, patch=2, zc=16, cdim=64, refine=48):
        super().__init__()
        self.d, self.patch, self.zc = d, patch, zc
        grid = latent // patch
        cin = 3 * zc
        self.inp = nn.Conv2d(cin, d, 2 * patch, stride=patch, padding=patch // 2)
        self.pos = nn.Parameter(torch.randn(1, grid * grid, d) * 0.02)
        self.temb = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.aemb = nn.Linear(cdim, d)
        self.iemb = nn.Linear(cdim, d)
        self.blocks = nn.ModuleList([GenBlock(d, heads, cdim, 4) for _ in range(depth)])
        self.nf = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.ada_f = nn.Linear(d, 2 * d)
        nn.init.zeros_(self.ada_f.weight)
        nn.init.zeros_(self.ada_f.bias)
        self.out = nn.Linear(d, refine * patch * patch // 4)
        self.r1 = nn.Conv2d(refine // 4 + cin, refine, 3, padding=1)
        self.r_film = nn.Linear(d, 2 * refine)
        self.r2 = nn.Conv2d(refine, zc, 3, padding=1)

    def forward(self, xin, t, gtext, ltext, image, action):
        B, _, H, W = xin.shape
        h = self.inp(xin).flatten(2).transpose(1, 2) + self.pos
        c = F.silu(self.temb(timestep_embedding(t, self.d)) + self.aemb(action[:, 0]) + self.iemb(image[:, 0]))
        conds = (gtext, ltext, image, action)
        for blk in self.blocks:
            h = blk(h, c, conds)
        s, b = self.ada_f(c).unsqueeze(1).chunk(2, dim=-1)
        h = self.out(self.nf(h) * (1 + s) + b)
        p = self.patch
        h = F.pixel_shuffle(h.transpose(1, 2).reshape(B, -1, H // p, W // p), p)
        sc, sh = self.r_film(c).view(B, -1, 1, 1).chunk(2, dim=1)
        return self.r2(F.silu(self.r1(torch.cat([h, xin], 1)) * (1 + sc) + sh))


class ActionMLP(nn.Module):
    def __init__(self, d=64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(len(KEYS), 128), nn.SiLU(), nn.Linear(128, d))

    def forward(self, keys):
        return self.net(keys).unsqueeze(1)


class GenFlow(nn.Module):
    """x0 = m + √P·F: m, P the posterior of x0 given x_σ and the prior x0 ~ N(context, s²)."""

    def __init__(self, width, depth, zc, latent, prior_var):
        super().__init__()
        self.prior_var = float(prior_var)
        self.net = GenDiT(d=width, depth=depth, latent=latent, zc=zc)
        self.action = ActionMLP()

    def posterior(self, x, sigma, context):
        s = sigma.clamp(min=SIGMA_MIN).view(-1, 1, 1, 1)
        a = 1.0 - s
        P = 1.0 / (1.0 / self.prior_var + a * a / (s * s))
        m = P * (context / self.prior_var + a * x / (s * s))
        return m, P

    def forward(self, x, sigma, context, gtext, ltext, image, action_token):
        m, P = self.posterior(x, sigma, context)
        Fh = self.net(torch.cat([x, context, m], 1), 1000.0 * sigma, gtext, ltext, image, action_token)
        return m + P.sqrt() * Fh, Fh, m, P


def shifted(u, shift=SHIFT):
    return shift * u / (1 + (shift - 1) * u)


def euler_sigmas(steps, shift=SHIFT):
    return [float(shifted(1.0 - i / steps, shift)) for i in range(steps)] + [0.0]


def cfg_x0(model, x, s, ctx, g, lo, img, tok, wg=1.0, wl=1.0):
    """Nested CFG as the `denoiser` node: p0 all texts zero, p1 global kept, p2 both kept."""
    sig = torch.full((x.shape[0],), s)
    if wg == 1.0 and wl == 1.0:
        return model(x, sig, ctx, g, lo, img, tok)[0]
    z = torch.zeros_like(g)
    p0 = model(x, sig, ctx, z, z, img, tok)[0]
    p1 = model(x, sig, ctx, g, z, img, tok)[0]
    p2 = model(x, sig, ctx, g, lo, img, tok)[0]
    return p0 + wg * (p1 - p0) + wl * (p2 - p1)


def rollout(model, z0, acts, g, locs, img, horizon, steps=4, seed=0, wg=1.0, wl=1.0):
    gen = torch.Generator().manual_seed(seed)
    ctx, outs = z0, []
    sig = euler_sigmas(steps)
    with torch.no_grad():
        for t in range(horizon):
            tok = model.action(torch.from_numpy(acts[:, t]))
            x = torch.randn(z0.shape, generator=gen)
            for i in range(steps):
                x0 = cfg_x0(model, x, sig[i], ctx, g, locs[:, t], img, tok, wg, wl)
                x = x + (sig[i + 1] - sig[i]) * (x - x0) / sig[i]
            ctx = x
            outs.append(ctx)
    return torch.stack(outs, 1)


def decode(dec, zs):
    flat = zs.flatten(0, 1).numpy()
    img = np.concatenate([dec.run(None, {"latent": flat[i:i + 256]})[0] for i in range(0, len(flat), 256)])
    return img.reshape(*zs.shape[:2], *img.shape[1:])


def val_metrics(model, val, vframes, emb, dec, horizon=16):
    model.eval()
    z0 = torch.from_numpy(np.stack([v["z"][0] for v in val]))
    acts = np.stack([v["a"][:horizon] for v in val])
    g = emb[torch.from_numpy(np.stack([v["g"] for v in val]))]
    locs = emb[torch.from_numpy(np.stack([v["l"][1:horizon + 1] for v in val]))]
    img = torch.from_numpy(np.stack([v["r"] for v in val]))
    out = decode(dec, rollout(model, z0, acts, g, locs, img, horizon))
    gt = to_image(np.stack([f[1:horizon + 1] for f in vframes])).numpy()
    per_tick = [float(psnr(out[:, t], gt[:, t]).mean()) for t in range(horizon)]
    model.train()
    return per_tick, out, np.stack([f[1:horizon + 1] for f in vframes])


def load_model(ck):
    model = GenFlow(ck["width"], ck["depth"], ck["zc"], ck["latent"], ck["prior_var"])
    model.load_state_dict({k: v.float() for k, v in ck["model"].items()})
    return model


def event_weighted_pairs(train, event_weight, onset_weight):
    """Every (episode, tick) transition and its sampling weight: 1, `event_weight`
    when an event is on in the next frame, `onset_weight` when one starts or
    ends there (normalised); also how many transitions have an event on."""
    pairs, weights = [], []
    for i, e in enumerate(train):
        ev = e["e"]
        for t in range(len(e["a"])):
            pairs.append((i, t))
            w = 1.0
            if ev[t + 1].any():
                w = event_weight
            if (ev[t + 1] != ev[t]).any():
                w = onset_weight
            weights.append(w)
    pairs = np.array(pairs)
    weights = np.array(weights) / np.sum(weights)
    n_event = int(sum(1 for i, t in pairs if train[i]["e"][t + 1].any()))
    return pairs, weights, n_event


def train_dit(args):
    torch.manual_seed(0)
    train, names = load_split(args, "train")
    for n in names:
        if int(n.rsplit("_", 1)[1]) >= 1000:
            raise SystemExit(f"refusing to train on {n}: seed is held out (>= 1000)")
    val, _ = load_split(args, "val")
    vframes = [e["frames"] for e in load_episodes(args.val, train=False)]
    emb = torch.from_numpy(np.load(os.path.join(args.ckpt, "caption_emb.npy")))
    dec = ort_session(os.path.join(TRAINED, "vae_decoder.onnx"))
    zs = [e["z"] for e in train]
    prior_var = float(np.mean([np.mean((z[1:] - z[:-1]) ** 2) for z in zs]))
    zc, latent = zs[0].shape[1], zs[0].shape[-1]
    done_steps, done_minutes = 0, 0.0
    if args.resume:
        ck = torch.load(args.resume)
        args.width, args.depth, prior_var = ck["width"], ck["depth"], ck["prior_var"]
        model = load_model(ck)
        done_steps, done_minutes = ck["steps"], ck["minutes"]
    else:
        model = GenFlow(args.width, args.depth, zc, latent, prior_var)
    pairs, weights, n_event = event_weighted_pairs(train, args.event_weight, args.onset_weight)
    print(f"gen dit {n_params(model)/1e6:.3f}M params; {len(pairs)} transitions ({n_event} with an event); "
          f"prior_var {prior_var:.4f}", flush=True)
    Z = [torch.from_numpy(z) for z in zs]
    A = [torch.from_numpy(e["a"]) for e in train]
    R = torch.from_numpy(np.stack([e["r"] for e in train]))
    G = torch.from_numpy(np.stack([e["g"] for e in train]))
    L = [torch.from_numpy(e["l"]) for e in train]
    loop = TrainLoop(model.parameters(), args.lr, args.minutes, "gen", ema=args.ema, log_every=args.log_every)
    rng = np.random.default_rng(done_steps + 1)
    path = os.path.join(args.ckpt, "gen.pt")

    def save(minutes):
        torch.save(dict(model=model.state_dict(), width=args.width, depth=args.depth, zc=zc, latent=latent,
                        prior_var=prior_var, steps=done_steps + loop.steps, minutes=done_minutes + minutes), path)

    def keep(p):
        return torch.from_numpy((rng.random(len(p)) >= args.drop).astype(np.float32))

    while loop.running():
        sel = pairs[rng.choice(len(pairs), args.batch, p=weights)]
        B = len(sel)
        ctx = torch.stack([Z[e][t] for e, t in sel])
        x0 = torch.stack([Z[e][t + 1] for e, t in sel])
        ei = torch.from_numpy(sel[:, 0])
        g = emb[G[ei]] * keep(sel).view(-1, 1, 1)
        lo = emb[torch.stack([L[e][t + 1] for e, t in sel])] * keep(sel).view(-1, 1, 1)
        img = R[ei] * keep(sel).view(-1, 1, 1)
        tok = model.action(torch.stack([A[e][t] for e, t in sel])) * keep(sel).view(-1, 1, 1)
        csig = torch.from_numpy(rng.uniform(0, args.ctx_noise, B).astype(np.float32))
        csig[torch.from_numpy(rng.random(B) < 0.25)] = 0.0
        ctx = ctx + csig.view(-1, 1, 1, 1) * torch.randn_like(ctx)
        sigma = shifted(torch.from_numpy(rng.uniform(SIGMA_MIN, 1.0, B).astype(np.float32)))
        xt = (1 - sigma.view(-1, 1, 1, 1)) * x0 + sigma.view(-1, 1, 1, 1) * torch.randn_like(x0)
        _, Fh, m, P = model(xt, sigma, ctx, g, lo, img, tok)
        loop.step(F.mse_loss(Fh, (x0 - m) / P.sqrt()))
        if loop.steps % args.save_every == 0:
            save(loop.timer.minutes())  # resumable (raw weights; the EMA lands at the end)
    minutes = loop.finish()
    save(minutes)
    per_tick, img, gt = val_metrics(model, val, vframes, emb, dec)
    save_png(os.path.join(args.ckpt, "gen_val.png"),
             np.concatenate([np.concatenate(list(gt[k]), 1) for k in (0, 1)]
                            + [np.concatenate(list(to_u8(img[k])), 1) for k in (0, 1)], 0))
    record(args, dict(model="dit_gen (global/local caption, reference image, action; decoupled cross-attention; "
                            "flow matching)",
                      data=dict(transitions=int(len(pairs)), event_transitions=n_event, episodes=len(train)),
                      steps=done_steps + loop.steps, batch=args.batch, minutes=round(minutes, 2), lr=args.lr,
                      resumed_from=args.resume, drop=args.drop, ctx_noise=args.ctx_noise,
                      event_weight=args.event_weight, onset_weight=args.onset_weight,
                      final_train_loss=loop.final_loss(), val_psnr_tick1=round(per_tick[0], 2),
                      val_psnr_1_16=round(float(np.mean(per_tick)), 2),
                      val_psnr_per_tick=[round(p, 2) for p in per_tick], params=n_params(model)))


def evaluate(args):
    """Held-out 16-tick rollouts: the trained model; the global caption swapped; CFG."""
    ck = torch.load(os.path.join(args.ckpt, "gen.pt"))
    model = load_model(ck)
    val, _ = load_split(args, "val")
    vframes = [e["frames"] for e in load_episodes(args.val, train=False)]
    emb = torch.from_numpy(np.load(os.path.join(args.ckpt, "caption_emb.npy")))
    dec = ort_session(os.path.join(TRAINED, "vae_decoder.onnx"))
    per_tick = val_metrics(model, val, vframes, emb, dec)[0]
    print(f"own captions: tick 1 {per_tick[0]:.2f} dB, ticks 1-16 {np.mean(per_tick):.2f} dB", flush=True)


class GenVelocity(nn.Module):
    """Exported: (x, t = 1000σ, context, global_text, local_text, image, action) -> velocity."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, t, context, global_text, local_text, image, action):
        sigma = (t / 1000.0).clamp(min=SIGMA_MIN)
        x0 = self.model(x, sigma, context, global_text, local_text, image, action)[0]
        return (x - x0) / sigma.view(-1, 1, 1, 1)


def export(args):
    ck = torch.load(os.path.join(args.ckpt, "gen.pt"))
    model = load_model(ck)
    zc, h = ck["zc"], ck["latent"]
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    z = torch.zeros(1, zc, h, h)
    meta = dict(frame_size=64, hidden_width=64, trained="true", training_steps=ck["steps"],
                training_minutes=round(ck["minutes"], 1))
    export_onnx(GenVelocity(model).eval(),
                (z, torch.full((1,), 1000.0), z, torch.zeros(1, 64, 64), torch.zeros(1, 64, 64),
                 torch.zeros(1, 1, 64), torch.zeros(1, 1, 64)),
                os.path.join(out, "dit_gen.onnx"),
                ["x", "t", "context", "global_text", "local_text", "image", "action"], ["velocity"], "denoiser",
                f"trained Yan-Gen denoiser: rectified-flow DiT ({ck['depth']} blocks, width {ck['width']}) over "
                f"the RGB latent ({zc}x{h}x{h}); decoupled cross-attention (a separate key/value and attention "
                "per condition: global caption, local caption, reference image, action token, summed); "
                "previous latent as context (noise-augmented, EDM-style prior); each condition dropped 10% "
                "in training (multi-condition CFG, zeros = null); event frames oversampled",
                dict(meta, prediction="velocity", schedule="rectified_flow", time_scale=1000,
                     conditions="global_text,local_text,image,action", context_frames=1, patch_size=2,
                     neutral_local_caption=NEUTRAL, recommended_sampler="euler 4 steps, shift 5"))
    export_onnx(model.action.eval(), (torch.zeros(1, len(KEYS)),), os.path.join(out, "action_embedder_gen.onnx"),
                ["keys"], ["token"], "action_embedder",
                "Yan-Gen action MLP (keys -> one token), trained jointly with dit_gen",
                dict(meta, keys=",".join(KEYS)))
    print(f"exported dit_gen.onnx + action_embedder_gen.onnx to {out} ({ck['steps']} steps)")


def pack(args):
    """fp16 state dict of gen.pt (a few MB), to commit and resume from on another machine."""
    ck = torch.load(os.path.join(args.ckpt, "gen.pt"))
    ck["model"] = {k: v.half() if v.is_floating_point() else v for k, v in ck["model"].items()}
    os.makedirs(os.path.dirname(os.path.abspath(args.pack_to)), exist_ok=True)
    torch.save(ck, args.pack_to)
    print(f"{args.pack_to}: {os.path.getsize(args.pack_to) / 1e6:.2f} MB, {ck['steps']} steps")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=["latents", "captions", "dit", "export", "eval", "pack"])
    ap.add_argument("--ckpt", default="/work/ckpt/gen")
    ap.add_argument("--data", default="/work/data/gen")
    ap.add_argument("--val", default="/work/data/gen-val")
    ap.add_argument("--out", default=TRAINED)
    ap.add_argument("--pack-to", default=os.path.join(HERE, "ckpt", "gen_fp16.pt"))
    ap.add_argument("--wgraph", default=os.path.join(ROOT, "target", "release", "wgraph"))
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--resume", default=None, help="continue from a gen.pt or gen_fp16.pt")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=8e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--save-every", type=int, default=200)
    ap.add_argument("--width", type=int, default=96)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--drop", type=float, default=0.1, help="per-condition dropout (CFG)")
    ap.add_argument("--ctx-noise", type=float, default=0.3)
    ap.add_argument("--event-weight", type=float, default=2.0)
    ap.add_argument("--onset-weight", type=float, default=8.0)
    ap.add_argument("--ema", type=float, default=0.999)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # denormal AdamW moments / activations slow CPUs down
    {"latents": make_latents, "captions": make_captions, "dit": train_dit, "export": export, "eval": evaluate,
     "pack": pack}[args.stage](args)


if __name__ == "__main__":
    main()
