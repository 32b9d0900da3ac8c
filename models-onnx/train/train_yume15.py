#!/usr/bin/env python3
"""Train the Yume 1.5 denoiser of graphs/yume15.world: dual-stream text (event caption + the QCM
action caption), TSCM memory, I2V condition (CPU, PyTorch).

    python3 train_yume15.py captions     # event captions (train_gen.py's texts) + the 512 key sets'
                                         # `qcm { variant = yume15 }` captions -> text_encoder.onnx,
                                         # by `wgraph run` (the vectors the graph computes)
    python3 train_yume15.py dit --minutes 35     # warm start from train_gen.py's gen.pt (or --init '')
                                                 # resumable: --resume <ckpt>/yume15.pt or ckpt/yume15_fp16.pt
    python3 train_yume15.py export       # -> ../trained/dit_yume15.onnx (fp16 weights), ORT vs torch check
                                         #    (dit_yume15_<fusion>.onnx for a --fusion match/match_event one)
    python3 train_yume15.py pack         # fp16 state dict -> ckpt/yume15_fp16.pt (commit-sized, to resume)
    python3 train_yume15.py eval         # held-out rollouts: PSNR; memory ablation
    python3 train_yume15.py revisits     # turn-away-and-back walks of the training seeds (ground truth
                                         # rendered by `wgraph run`) -> <ckpt>/revisits.npz, for
                                         # dit --revisit-frac (samples whose memory holds the revisited view)
    python3 train_yume15.py revisits --held-out --data /work/data/gen-val   # the same of held-out seeds
    python3 train_yume15.py memory-check --resume A.pt,B.pt   # x0 error on held-out revisit targets:
                                         # the revisited latent in memory vs not vs memory off

Latents, actions and captions per frame are train_gen.py's (`train_gen.py latents`, default
--latents /work/ckpt/gen: the shipped trained/vae_encoder.onnx over `wgraph dataset --events auto`).

The graph's contract (`wgraph check graphs/yume15.world`): the denoiser gets
  x [B,16,16,16]  t [B] (1000σ)  cond [B,17,16,16] = [mask 1 ; start latent]
  event_text [B,64,64]   the prompt_schedule's caption through text_encoder: the global caption
                         (tick 0; `wgraph eval --instructions` puts the theme's global caption there)
                         until an event, then the event's caption ("a ghost appears")
  action_text [B,64,64]  the tick's keys -> qcm yume15 caption -> text_encoder (precomputed)
  memory [B,512,64]      tscm { samples = 8, patch = 2 }: the newest latent (the previous frame)
                         last, 7 others drawn at random from the history before it, in time order,
                         zeros for missing slots; each latent 2x2-patchified to 64 tokens of 64
and returns the velocity. There is no `context` port: the previous latent is the memory's last 64
tokens, which the network un-patchifies exactly and uses as Yan-Gen/Yume's prior (x0 ~ N(context, s²),
EDM-style preconditioning, x0 = m + √P·F). The 7 older latents' 8x8 token grids are average-pooled to
4x4 (TSCM's stronger compression of the past: 112 tokens), embedded with slot and position embeddings
and fused by linear attention in every block (Yume 1.5's TSCM fusion).

Network: train_gen.py's GenDiT blocks (adaLN self-attention, decoupled cross-attention, MLP) with
three cross-attention streams (event text through two key/value projections — warm-started from
Yan-Gen's global and local caption streams —, action text) + a linear-attention memory branch
(zero-initialised output); adaLN from the timestep and the attention-pooled action caption.
Training: rectified flow, σ with the graph's shift 5, event and action text each zeroed for 10 % of
the batch (CFG null = zeros), memory/context noise augmentation σ_c ~ U(0, 0.3) (a quarter clean),
event frames oversampled. Seeds >= 1000 are never trained on.
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
from common import (KEYS, TrainLoop, load_episodes, psnr, record, round_weights_fp16,  # noqa: E402
                    run_graph_dump, save_png, store_fp16, to_image, to_u8)
from models import n_params, timestep_embedding  # noqa: E402
from train_gen import (NEUTRAL, GenBlock, decode, euler_sigmas, event_weighted_pairs,  # noqa: E402
                       ort_session, shifted)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
TRAINED = os.path.join(ROOT, "models-onnx", "trained")
SHIFT = 5.0  # graphs/yume15.world: euler { steps = 4, shift = 5.0 }
SIGMA_MIN = 1e-3
SAMPLES, PATCH = 8, 2  # graphs/yume15.world: tscm { samples = 8, patch = 2 }
# Captions that say "no event" besides the data's "nothing happens" (the graph's default tick-0 text)
EXTRA_NEUTRAL = ["a quiet street at dusk"]
MEM_POOL = 2  # the older memory latents' 8x8 token grid is average-pooled to 4x4 inside the DiT


# ---------------------------------------------------------------- data

def make_captions(args):
    """Event captions (train_gen.py's texts.json) and the 512 key sets' QCM yume15 captions."""
    texts = json.load(open(os.path.join(args.latents, "texts.json"))) + EXTRA_NEUTRAL
    model = os.path.join(ROOT, "models-onnx", "text_encoder.onnx")
    sched = ", ".join(json.dumps(f"{i}: {t}") for i, t in enumerate(texts))
    emb = run_graph_dump(args.wgraph, 'world { name = "captions" fps = 1 resolution = 64x64 }\n'
                         f'model te = "{model}"\n'
                         f'node caps: prompt_schedule {{ schedule = [{sched}] }}\n'
                         'node enc: text_encoder { model = te }\n'
                         'node dump: npy_dump { dir = "emb" }\n'
                         'caps.text -> enc.text\nenc.embedding -> dump.tensor\n', len(texts))
    lines = []
    for b in range(1 << len(KEYS)):
        keys = [k for i, k in enumerate(KEYS) if b >> i & 1]
        lines.append("+".join(keys) if keys else "-")
    qcm = run_graph_dump(args.wgraph, 'world { name = "captions" fps = 1 resolution = 64x64 }\n'
                         f'model te = "{model}"\n'
                         'node keys: actions { path = "all.txt" }\n'
                         'node camera: qcm { variant = yume15 }\n'
                         'node caption: text_encoder { model = te, precompute = qcm_yume15 }\n'
                         'node dump: npy_dump { dir = "emb" }\n'
                         'keys.actions -> camera.actions\ncamera.text -> caption.text\n'
                         'caption.embedding -> dump.tensor\n', len(lines), {"all.txt": "\n".join(lines) + "\n"})
    os.makedirs(args.ckpt, exist_ok=True)
    np.save(os.path.join(args.ckpt, "event_emb.npy"), emb)
    np.save(os.path.join(args.ckpt, "qcm15_emb.npy"), qcm)
    json.dump(texts, open(os.path.join(args.ckpt, "texts.json"), "w"), indent=1)
    print(f"event captions {emb.shape} ({len(texts)} texts); qcm yume15 {qcm.shape}: "
          f"{len({e.tobytes() for e in qcm})} distinct (81 captions)")


def load_split(args, split):
    d = np.load(os.path.join(args.latents, f"latents_{split}.npz"))
    n = int(d["n"])
    return [{k: d[f"{k}{i}"] for k in ("z", "a", "g", "l", "e")} for i in range(n)], [str(x) for x in d["names"]]


def key_index(a):
    """[..., 9] keys (0/1) -> the key set's index b = Σ key_i·2^i (the qcm table's row)."""
    return (np.asarray(a) > 0.5).astype(np.int64) @ (1 << np.arange(len(KEYS)))


def event_ids(e, texts, neutral_frac, rng):
    """Per frame, the event stream's caption id: the global caption until the first event
    (`neutral_frac` of the time a no-event caption instead: "nothing happens" or EXTRA_NEUTRAL),
    then the event's caption."""
    neutral = texts.index(NEUTRAL)
    ids = e["l"].copy()
    before = ids == neutral
    ids[before] = int(e["g"])
    if rng is not None and rng.random() < neutral_frac:
        ids[before] = rng.choice([neutral] + [texts.index(t) for t in EXTRA_NEUTRAL])
    return ids


def patchify(z, p=PATCH):
    """[..., C, H, W] -> [..., (H/p)(W/p), C·p²] (the tscm node's token packing)."""
    *lead, C, H, W = z.shape
    z = z.reshape(*lead, C, H // p, p, W // p, p)
    nd = len(lead)
    perm = list(range(nd)) + [nd + 1, nd + 3, nd, nd + 2, nd + 4]
    return z.permute(*perm).reshape(*lead, (H // p) * (W // p), C * p * p)


def unpatchify(tok, C, H, W, p=PATCH):
    """[B, (H/p)(W/p), C·p²] -> [B, C, H, W] (exact inverse of patchify)."""
    B = tok.shape[0]
    return tok.reshape(B, H // p, W // p, C, p, p).permute(0, 3, 1, 4, 2, 5).reshape(B, C, H, W)


def memory_slots(t, rng, samples=SAMPLES):
    """TSCM at tick t: history z_0..z_t, newest z_t last, samples-1 others uniformly without
    replacement from 0..t-1 in time order; -1 = an empty (zero) slot."""
    k = min(samples - 1, t)
    picked = np.sort(rng.choice(t, k, replace=False)) if k else np.zeros(0, np.int64)
    return np.concatenate([np.full(samples - 1 - k, -1), picked, [t]]).astype(np.int64)


REVISIT_GAP = 8      # the revisited frame is at least this many ticks before the newest one (outside
                     # the 8-latent window that `--set memory.capacity=8` keeps)
REVISIT_RATIO = 0.5  # ... and nearer the target than the newest latent: |z_j - z_u|² < ratio·|z_t - z_u|²


def revisit_index(z, same_view):
    """Per target frame u (= t + 1, t the newest), the earlier frame j <= t - REVISIT_GAP that shows
    the same view (`same_view(j, u)`: same pose, or the same rendered frame) and whose latent is clearly
    nearer the target's than the newest latent is (REVISIT_RATIO); the nearest such j, else -1."""
    zf = z.reshape(len(z), -1).astype(np.float64)
    rv = np.full(len(z), -1, np.int64)
    for u in range(REVISIT_GAP + 2, len(z)):
        t = u - 1
        js = np.array([j for j in range(t - REVISIT_GAP + 1) if same_view(j, u)], np.int64)
        if not len(js):
            continue
        dj = ((zf[js] - zf[u]) ** 2).mean(1)
        best = int(np.argmin(dj))
        if dj[best] < REVISIT_RATIO * ((zf[t] - zf[u]) ** 2).mean():
            rv[u] = js[best]
    return rv


def pose_same_view(poses, events):
    """Same position (< 0.35 cells), heading (< 8°) and pitch, and the same events on."""
    def same(j, u):
        dh = abs((poses[j, 2] - poses[u, 2] + 180.0) % 360.0 - 180.0)
        return (np.hypot(*(poses[j, :2] - poses[u, :2])) < 0.35 and dh < 8.0
                and abs(poses[j, 3] - poses[u, 3]) < 0.13 and np.abs(events[j] - events[u]).max() < 0.5)
    return same


def make_revisits(args):
    """Turn-away-and-back walks of the training seeds (with `--held-out`: of the held-out seeds of
    --data = the validation walks, for `memory-check` only): per episode (theme_seed of --data,
    in a seeded random order), its first k actions (k in 0..24), then n ticks (6..12) of Left or Right
    and n + 0..4 ticks the other way, rendered by the ground-truth world (`wgraph run`, 50 walks per
    graph, no events), encoded by the shipped VAE encoder; the revisits are found by exact frame
    equality (turning in place)."""
    import subprocess
    import tempfile
    from common import episode_dirs
    enc = ort_session(os.path.join(TRAINED, "vae_encoder.onnx"))
    texts = json.load(open(os.path.join(args.latents, "texts.json")))
    neutral = texts.index(NEUTRAL)
    rng = np.random.default_rng(args.revisit_seed)
    dirs = episode_dirs(args.data)
    specs = []
    for i in rng.permutation(len(dirs)):
        d, seed, theme = dirs[i]
        if seed is None or (seed >= 1000) != args.held_out:
            raise SystemExit(f"refusing to use {d}: seed {seed} is " + (
                "a training seed (< 1000): --held-out walks are for evaluation" if args.held_out
                else "held out (>= 1000) or unknown"))
        if np.any(np.load(os.path.join(d, "events.npy"))[0]):
            continue  # frame 0 with an event on: not the event-free start frame
        acts = np.load(os.path.join(d, "actions.npy")).astype(np.float32)
        k, n, tail = int(rng.integers(0, 25)), int(rng.integers(6, 13)), int(rng.integers(0, 5))
        first = int(rng.integers(0, 2))
        turn = [np.eye(len(KEYS), dtype=np.float32)[KEYS.index(x)] for x in (("Left", "Right")[first],
                                                                            ("Left", "Right")[1 - first])]
        a = np.concatenate([acts[:k], np.stack([turn[0]] * n + [turn[1]] * (n + tail))])
        specs.append((d, seed, theme, a, f"{os.path.basename(d)}_turn{k}_{n}_{tail}"))
        if args.revisit_walks and len(specs) >= args.revisit_walks:
            break
    out, names, n_rv, chunk = {}, [], 0, 50
    for c in range(0, len(specs), chunk):
        part = specs[c:c + chunk]
        T = max(len(sp[3]) for sp in part)
        g = 'world { name = "gt" seed = 0 fps = 8 resolution = 64x64 }\n'
        with tempfile.TemporaryDirectory() as tmp:
            for w, (d, seed, theme, a, _) in enumerate(part):
                lines = ["+".join(KEYS[i] for i in np.flatnonzero(r > 0.5)) or "-" for r in a]
                lines += ["-"] * (T - len(lines))
                open(os.path.join(tmp, f"a{w}.txt"), "w").write("\n".join(lines) + "\n")
                g += (f'node in{w}: actions {{ path = "a{w}.txt" }}\n'
                      f'node gt{w}: world {{ seed = {seed}, theme = {theme} }}\n'
                      f'node d{w}: npy_dump {{ dir = "d{w}" }}\n'
                      f'in{w}.actions -> gt{w}.actions\ngt{w}.image -> d{w}.tensor\n')
            open(os.path.join(tmp, "walks.world"), "w").write(g)
            subprocess.run([args.wgraph, "run", os.path.join(tmp, "walks.world"), "--frames", str(T),
                            "--out", os.path.join(tmp, "out")], check=True, stdout=subprocess.DEVNULL)
            for w, (d, seed, theme, a, name) in enumerate(part):
                dd = os.path.join(tmp, "out", f"d{w}")
                fs = sorted(os.listdir(dd))[:len(a)]
                assert len(fs) == len(a), (len(fs), len(a))
                img = np.stack([np.load(os.path.join(dd, x))[0] for x in fs])
                f0 = to_image(np.load(os.path.join(d, "frames.npy"))[:1]).numpy()
                img = np.concatenate([f0, img]).astype(np.float32)  # [N+1, 3, 64, 64] in [-1, 1]
                z = enc.run(None, {"image": img})[0]
                u8 = np.round((img + 1.0) * 127.5)
                rv = revisit_index(z, lambda j, u: float(np.abs(u8[j] - u8[u]).mean()) < 0.5)
                cap = json.load(open(os.path.join(d, "captions.json")))
                i = len(names)
                out.update({f"z{i}": z, f"a{i}": a, f"g{i}": np.array(texts.index(cap["global"])),
                            f"l{i}": np.full(len(z), neutral), f"e{i}": np.zeros((len(z), 4), np.float32),
                            f"rv{i}": rv})
                names.append(name)
                n_rv += int((rv >= 0).sum())
        print(f"{len(names)} walks, {n_rv} revisit targets", flush=True)
    os.makedirs(args.ckpt, exist_ok=True)
    path = args.revisits or os.path.join(args.ckpt, "revisits_val.npz" if args.held_out else "revisits.npz")
    np.savez(path, **out, names=np.array(names), n=len(names))
    print(f"{path}: {len(names)} turn-away-and-back walks, {n_rv} revisit targets")


def revisit_pool(train, names, args):
    """(episode, t) pairs whose target frame t + 1 revisits an earlier view: from the training walks'
    poses, and from the turn-away-and-back walks of `make_revisits` (appended to `train`)."""
    pool = []
    for i, (e, name) in enumerate(zip(train, names)):
        poses = np.load(os.path.join(args.data, name, "poses.npy"))
        e["rv"] = revisit_index(e["z"], pose_same_view(poses, e["e"]))
        pool += [(i, u - 1) for u in np.flatnonzero(e["rv"] >= 0)]
    n_data = len(pool)
    path = args.revisits or os.path.join(args.ckpt, "revisits.npz")
    if os.path.exists(path):
        d = np.load(path)
        for k in range(int(d["n"])):
            name = str(d["names"][k])
            if int(name.split("_")[1]) >= 1000:
                raise SystemExit(f"refusing to train on {name}: seed is held out (>= 1000)")
            train.append({x: d[f"{x}{k}"] for x in ("z", "a", "g", "l", "e", "rv")})
            pool += [(len(train) - 1, u - 1) for u in np.flatnonzero(train[-1]["rv"] >= 0)]
    print(f"revisit targets: {n_data} in the training walks, {len(pool) - n_data} in {path}", flush=True)
    return np.array(pool, np.int64)


def with_revisit(slots, j, rng):
    """Slots (older ones in time order, newest last) with frame j among the older ones: it replaces
    a random older slot unless drawn already; time order kept."""
    if j in slots[:-1]:
        return slots
    old = slots[:-1].copy()
    old[rng.integers(len(old))] = j
    return np.concatenate([np.sort(old), slots[-1:]])


# ---------------------------------------------------------------- model

class LinearAttn(nn.Module):
    """Memory fusion by linear attention (φ = elu + 1), zero-initialised output."""

    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.proj = nn.Linear(d, d)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x, mem):
        B, N, D = x.shape
        hd = D // self.heads
        q = F.elu(self.q(x).view(B, N, self.heads, hd).transpose(1, 2)) + 1
        k, v = self.kv(mem).view(B, mem.shape[1], 2, self.heads, hd).permute(2, 0, 3, 1, 4)
        k = F.elu(k) + 1
        kv = k.transpose(-1, -2) @ v                                  # [B, h, hd, hd]
        z = 1.0 / (q @ k.sum(2, keepdim=True).transpose(-1, -2) + 1e-6)  # [B, h, N, 1]
        return self.proj(((q @ kv) * z).transpose(1, 2).reshape(B, N, D))


class Y15Block(GenBlock):
    def __init__(self, d, heads, cdim, n_cond):
        super().__init__(d, heads, cdim, n_cond)
        self.nm = nn.LayerNorm(d, eps=1e-6)
        self.mem = LinearAttn(d, heads)

    def forward(self, h, c, conds, mem):
        h = super().forward(h, c, conds)
        return h if mem is None else h + self.mem(self.nm(h), mem)  # None: the memory-less ablation


class Y15DiT(nn.Module):
    """F([x_σ ; context ; m ; cond], σ; event text, action text, memory) on 2x2 patches. Parameter
    names follow train_gen.GenDiT so Yan-Gen's weights warm-start it."""

    def __init__(self, d=96, depth=3, heads=4, latent=16, patch=2, zc=16, cdim=64, refine=48, samples=SAMPLES):
        super().__init__()
        self.d, self.patch, self.zc = d, patch, zc
        grid = latent // patch
        cin = 4 * zc + 1
        self.inp = nn.Conv2d(cin, d, 2 * patch, stride=patch, padding=patch // 2)
        self.pos = nn.Parameter(torch.randn(1, grid * grid, d) * 0.02)
        self.temb = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.pool_q = nn.Parameter(torch.randn(1, 1, cdim) * 0.02)
        self.aemb = nn.Linear(cdim, d)
        nn.init.zeros_(self.aemb.weight)
        nn.init.zeros_(self.aemb.bias)
        self.mgrid = latent // PATCH // MEM_POOL
        self.mem_in = nn.Linear(zc * PATCH * PATCH, d)
        self.mem_slot = nn.Parameter(torch.randn(samples - 1, 1, d) * 0.02)
        self.mem_pos = nn.Parameter(torch.randn(1, self.mgrid ** 2, d) * 0.02)
        self.mem_norm = nn.LayerNorm(d, eps=1e-6)
        self.blocks = nn.ModuleList([Y15Block(d, heads, cdim, 3) for _ in range(depth)])
        self.nf = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.ada_f = nn.Linear(d, 2 * d)
        nn.init.zeros_(self.ada_f.weight)
        nn.init.zeros_(self.ada_f.bias)
        self.out = nn.Linear(d, refine * patch * patch // 4)
        self.r1 = nn.Conv2d(refine // 4 + cin, refine, 3, padding=1)
        self.r_film = nn.Linear(d, 2 * refine)
        self.r2 = nn.Conv2d(refine, zc, 3, padding=1)

    def whiten_actions(self, mu, sd):
        """`--action-whiten`: the action text standardised per token and channel (`mu`, `sd`: over
        the 512 QCM captions' embeddings) before use. The frozen text encoder embeds opposite moves
        almost alike (the pooled "turn left" and "turn right" captions: cosine 0.99); standardised,
        what tells them apart is no longer a small part of a common vector. Added with a learned
        gain (zero at first: the model it starts from); mean and std are buffers, so the export
        carries them and the graph's wiring stays the same."""
        self.register_buffer("act_mu", mu)
        self.register_buffer("act_sd", sd)
        self.act_gain = nn.Parameter(torch.zeros(()))

    def forward(self, xin, t, etext, atext, memory, use_memory=True):
        B, _, H, W = xin.shape
        if hasattr(self, "act_mu"):
            atext = atext + self.act_gain * (atext - self.act_mu) / self.act_sd
        h = self.inp(xin).flatten(2).transpose(1, 2) + self.pos
        w = torch.softmax(self.pool_q @ atext.transpose(1, 2) / atext.shape[-1] ** 0.5, dim=-1)  # [B,1,L]
        pooled = (w @ atext)[:, 0]
        c = F.silu(self.temb(timestep_embedding(t, self.d)) + self.aemb(pooled))
        # the older latents (the newest is the context, concatenated above), their token grid
        # average-pooled MEM_POOL x MEM_POOL (TSCM's higher compression of the past)
        S, g, k = self.mem_slot.shape[0], self.mgrid, MEM_POOL
        old = memory[:, :S * (g * k) ** 2].reshape(B, S, g, k, g, k, -1).mean((3, 5)).reshape(B, S, g * g, -1)
        mem = self.mem_norm((self.mem_in(old) + self.mem_slot + self.mem_pos).reshape(B, S * g * g, self.d))
        conds = (etext, etext, atext)
        for blk in self.blocks:
            h = blk(h, c, conds, mem if use_memory else None)
        s, b = self.ada_f(c).unsqueeze(1).chunk(2, dim=-1)
        h = self.out(self.nf(h) * (1 + s) + b)
        p = self.patch
        h = F.pixel_shuffle(h.transpose(1, 2).reshape(B, -1, H // p, W // p), p)
        sc, sh = self.r_film(c).view(B, -1, 1, 1).chunk(2, dim=1)
        return self.r2(F.silu(self.r1(torch.cat([h, xin], 1)) * (1 + sc) + sh))


class SlotMatch(nn.Module):
    """TSCM retrieval by a per-slot match score (`--fusion match`). The linear-attention branch
    averages the slots; this one selects: the DiT's own estimate x̂ = m + √P·F̂ is compared with every
    candidate latent — the 7 older memory slots, the I2V start latent (cond) and the newest one — by
    a learned 1x1 feature map φ (identity at init): a global score per candidate (mean squared
    feature distance over the frame) and a local one (the same, 3x3-box averaged per cell), each with
    a learned inverse temperature; a softmax per cell over the candidates and a "none" option (x̂
    itself, learned logit), empty (all-zero) slots masked. The retrieved latent r, the suggestion
    (r − x̂)/√P (in F's units), what r holds beyond the context, (r − context)/√P (nothing, when the
    match is the newest latent or the start latent at tick 1), the weight left on "none" and σ go
    through a small conv net whose zero-initialised last layer adds ΔF: x0 = m + √P·(F̂ + ΔF). At init
    the model is the one it starts from."""

    def __init__(self, zc, hidden=48, edim=0, local_gate=False):
        super().__init__()
        self.phi = nn.Conv2d(zc, zc, 1)
        # `--fusion match_event`: a logit per candidate from the event text (mean over its tokens),
        # σ and the candidate's feature statistics (mean, std over the frame) beside x̂'s (`gate`:
        # under "the lights go out" a bright remembered view is no match); with `--local-gate` also
        # one per cell from the candidate's features and their difference from x̂'s (`gate_local`,
        # tried for the ghost and the door: not shipped). Zero at init: the model it starts from.
        self.gate = self.gate_local = None
        if edim:
            self.gate = nn.Sequential(nn.Linear(4 * zc + edim + 1, 64), nn.SiLU(), nn.Linear(64, 1))
            nn.init.zeros_(self.gate[2].weight)
            nn.init.zeros_(self.gate[2].bias)
        if edim and local_gate:
            self.gate_local = nn.Sequential(nn.Conv2d(2 * zc + edim + 1, 32, 1), nn.SiLU(),
                                            nn.Conv2d(32, 1, 3, padding=1))
            nn.init.zeros_(self.gate_local[2].weight)
            nn.init.zeros_(self.gate_local[2].bias)
        with torch.no_grad():
            self.phi.weight.copy_(torch.eye(zc).view(zc, zc, 1, 1))
            self.phi.bias.zero_()
        self.scale = nn.Parameter(torch.tensor([2.0, 1.0]))  # log inverse temperatures: global, local
        self.none = nn.Parameter(torch.tensor(0.0))
        self.c1 = nn.Conv2d(4 * zc + 2, hidden, 3, padding=1)
        self.c2 = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.c3 = nn.Conv2d(hidden, zc, 3, padding=1)
        nn.init.zeros_(self.c3.weight)
        nn.init.zeros_(self.c3.bias)

    def forward(self, xhat, cands, context, sqrt_p, sigma, etext=None):
        B, K, C, H, W = cands.shape
        fx = self.phi(xhat)
        fc = self.phi(cands.reshape(B * K, C, H, W)).reshape(B, K, C, H, W)
        d = ((fc - fx.unsqueeze(1)) ** 2).mean(2)                                   # [B, K, H, W]
        local = F.avg_pool2d(d, 3, stride=1, padding=1, count_include_pad=False)
        glob = d.mean((2, 3), keepdim=True)
        valid = (cands.abs().sum((2, 3, 4)) > 0).float().view(B, K, 1, 1)
        logits = -(self.scale[0].exp() * glob + self.scale[1].exp() * local) + (valid - 1.0) * 1e4
        if self.gate is not None:
            sc = torch.cat([fc.mean((3, 4)), fc.std((3, 4))], 2)                       # [B, K, 2C]
            sx = torch.cat([fx.mean((2, 3)), fx.std((2, 3))], 1).unsqueeze(1).expand(B, K, 2 * C)
            ev = etext.mean(1).unsqueeze(1).expand(B, K, etext.shape[-1])
            sg = sigma.view(B, 1, 1).expand(B, K, 1)
            logits = logits + self.gate(torch.cat([sc, sc - sx, ev, sg], 2)).view(B, K, 1, 1)
        if self.gate_local is not None:
            maps = torch.cat([fc, fc - fx.unsqueeze(1), ev.view(B, K, -1, 1, 1).expand(B, K, ev.shape[-1], H, W),
                              sg.view(B, K, 1, 1, 1).expand(B, K, 1, H, W)], 2)
            logits = logits + self.gate_local(maps.reshape(B * K, -1, H, W)).view(B, K, H, W)
        logits = torch.cat([logits, self.none.view(1, 1, 1, 1).expand(B, 1, H, W)], 1)
        w = torch.softmax(logits, 1)
        r = (w[:, :K].unsqueeze(2) * cands).sum(1) + w[:, K:] * xhat
        smap = sigma.view(-1, 1, 1, 1).expand(B, 1, H, W)
        h = F.silu(self.c1(torch.cat([xhat, r, (r - xhat) / sqrt_p, (r - context) / sqrt_p, w[:, K:], smap], 1)))
        return self.c3(F.silu(self.c2(h)))


FUSIONS = ("linear", "match", "match_event")


class Y15Flow(nn.Module):
    """x0 = m + √P·F: m, P the posterior of x0 given x_σ and the prior x0 ~ N(context, s²), the
    context being the memory's newest latent. `fusion`: "linear" (the DiT's linear-attention memory
    branch alone), "match" (and a `SlotMatch` retrieval on top) or "match_event" (its scores gated by
    the event text; `local_gate`: per cell too)."""

    def __init__(self, width, depth, zc, latent, prior_var, fusion="linear", local_gate=False):
        super().__init__()
        assert fusion in FUSIONS, fusion
        self.prior_var = float(prior_var)
        self.zc, self.latent, self.fusion = zc, latent, fusion
        self.net = Y15DiT(d=width, depth=depth, latent=latent, zc=zc)
        self.match = None
        if fusion != "linear":
            event = fusion == "match_event"
            self.match = SlotMatch(zc, edim=self.net.pool_q.shape[-1] if event else 0, local_gate=event and local_gate)

    def posterior(self, x, sigma, context):
        s = sigma.clamp(min=SIGMA_MIN).view(-1, 1, 1, 1)
        a = 1.0 - s
        P = 1.0 / (1.0 / self.prior_var + a * a / (s * s))
        m = P * (context / self.prior_var + a * x / (s * s))
        return m, P

    def forward(self, x, sigma, cond, etext, atext, memory, use_memory=True):
        ntok = (self.latent // PATCH) ** 2
        context = unpatchify(memory[:, -ntok:], self.zc, self.latent, self.latent)
        m, P = self.posterior(x, sigma, context)
        Fh = self.net(torch.cat([x, context, m, cond], 1), 1000.0 * sigma, etext, atext, memory, use_memory)
        Ff = Fh
        if self.match is not None and use_memory:
            S = memory.shape[1] // ntok - 1
            older = unpatchify(memory[:, :S * ntok].reshape(-1, ntok, memory.shape[-1]),
                               self.zc, self.latent, self.latent).reshape(-1, S, self.zc, self.latent, self.latent)
            cands = torch.cat([older, cond[:, 1:].unsqueeze(1), context.unsqueeze(1)], 1)
            sp = P.sqrt()
            Ff = Fh + self.match(m + sp * Fh, cands, context, sp, sigma.clamp(min=SIGMA_MIN), etext)
        return m + P.sqrt() * Ff, Ff, m, P, Fh


def warm_start(model, path):
    """Yan-Gen's GenFlow weights (train_gen.py's gen.pt / ckpt/gen_fp16.pt) into a Y15Flow: the
    shared DiT as is; the input and refinement convolutions' new channels (cond) zero; the event
    stream's two key/value projections from the global and the local caption's."""
    ck = torch.load(path)
    src = {k[len("net."):]: v.float() for k, v in ck["model"].items() if k.startswith("net.")}
    dst = model.net.state_dict()
    n = 0
    for k, v in src.items():
        tk = k
        if ".cross.kv." in k:
            i = int(k.split(".cross.kv.")[1].split(".")[0])
            if i > 1:
                continue  # image and action streams: gone
        if k in ("aemb.weight", "aemb.bias", "iemb.weight", "iemb.bias"):
            continue
        if tk not in dst:
            continue
        if dst[tk].shape == v.shape:
            dst[tk] = v
        elif k in ("inp.weight", "r1.weight"):
            w = torch.zeros_like(dst[tk])
            w[:, :v.shape[1]] = v
            dst[tk] = w
        else:
            print(f"warm start: skipping {k} {tuple(v.shape)} -> {tuple(dst[tk].shape)}")
            continue
        n += 1
    model.net.load_state_dict(dst)
    print(f"warm start from {path} ({ck['steps']} steps): {n} tensors", flush=True)
    return ck


def load_model(ck, fusion=None, local_gate=False):
    """The checkpoint's model; what `fusion` / `local_gate` add to the checkpoint's starts fresh as
    the identity: "match" on a "linear" checkpoint a SlotMatch, "match_event" on a "match" one the
    event gate, `local_gate` on a "match_event" one the per-cell gate (kept once trained)."""
    have = ck.get("fusion", "linear")
    fusion = fusion or have
    if fusion != have and have != "linear" and (have, fusion) != ("match", "match_event"):
        raise SystemExit(f"checkpoint has fusion {have!r}; cannot turn it into {fusion!r}")
    local_gate = local_gate or any(k.startswith("match.gate_local.") for k in ck["model"])
    model = Y15Flow(ck["width"], ck["depth"], ck["zc"], ck["latent"], ck["prior_var"], fusion, local_gate)
    if "net.act_mu" in ck["model"]:  # an --action-whiten checkpoint
        model.net.whiten_actions(ck["model"]["net.act_mu"].float(), ck["model"]["net.act_sd"].float())
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in ck["model"].items()}, strict=False)
    new = {"linear": "match.", "match": "match.gate", "match_event": "match.gate_local."}[have]
    assert not unexpected and all(k.startswith(new) for k in missing), (missing, unexpected)
    return model


# ---------------------------------------------------------------- rollouts

def cfg_x0(model, x, s, cond, et, at, mem, we=1.0, use_memory=True):
    """CFG over the event text as the graph's `guidance = { event_text = w }`: zeros = null."""
    sig = torch.full((x.shape[0],), s)
    p1 = model(x, sig, cond, et, at, mem, use_memory)[0]
    if we == 1.0:
        return p1
    p0 = model(x, sig, cond, torch.zeros_like(et), at, mem, use_memory)[0]
    return p0 + we * (p1 - p0)


def rollout(model, z0, akeys, etexts, qcm, horizon, steps=4, seed=0, we=1.0, use_memory=True):
    """The graph's loop: memory over [z0, ẑ1, ...], newest last; cond = [1 ; z0]."""
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    B = z0.shape[0]
    cond = torch.cat([torch.ones(B, 1, *z0.shape[2:]), z0], 1)
    hist = [z0]
    sig = euler_sigmas(steps, SHIFT)
    with torch.no_grad():
        for t in range(horizon):
            slots = memory_slots(t, rng)
            mem = torch.stack([hist[i] if i >= 0 else torch.zeros_like(z0) for i in slots], 1)
            mem = patchify(mem).reshape(B, -1, z0.shape[1] * PATCH * PATCH)
            at = qcm[torch.from_numpy(key_index(akeys[:, t]))]
            x = torch.randn(z0.shape, generator=gen)
            for i in range(steps):
                x0 = cfg_x0(model, x, sig[i], cond, etexts[:, t], at, mem, we, use_memory)
                x = x + (sig[i + 1] - sig[i]) * (x - x0) / sig[i]
            hist.append(x)
    return torch.stack(hist[1:], 1)


def val_metrics(model, val, vframes, texts, emb, qcm, dec, horizon=16, we=1.0, use_memory=True):
    model.eval()
    z0 = torch.from_numpy(np.stack([v["z"][0] for v in val]))
    acts = np.stack([v["a"][:horizon] for v in val])
    et = emb[torch.from_numpy(np.stack([event_ids(v, texts, 0, None)[1:horizon + 1] for v in val]))]
    out = decode(dec, rollout(model, z0, acts, et, qcm, horizon, we=we, use_memory=use_memory))
    gt = to_image(np.stack([f[1:horizon + 1] for f in vframes])).numpy()
    per_tick = [float(psnr(out[:, t], gt[:, t]).mean()) for t in range(horizon)]
    model.train()
    return per_tick, out, np.stack([f[1:horizon + 1] for f in vframes])


# ---------------------------------------------------------------- training

def load_tables(args):
    texts = json.load(open(os.path.join(args.ckpt, "texts.json")))
    emb = torch.from_numpy(np.load(os.path.join(args.ckpt, "event_emb.npy")))
    qcm = torch.from_numpy(np.load(os.path.join(args.ckpt, "qcm15_emb.npy")))
    gtexts = json.load(open(os.path.join(args.latents, "texts.json")))
    assert texts == gtexts + EXTRA_NEUTRAL, "captions stage is stale: rerun `train_yume15.py captions`"
    return texts, emb, qcm


def train_dit(args):
    torch.manual_seed(0)
    train, names = load_split(args, "train")
    for n in names:
        if int(n.rsplit("_", 1)[1]) >= 1000:
            raise SystemExit(f"refusing to train on {n}: seed is held out (>= 1000)")
    val, _ = load_split(args, "val")
    vframes = [e["frames"] for e in load_episodes(args.val, train=False)]
    texts, emb, qcm = load_tables(args)
    dec = ort_session(os.path.join(TRAINED, "vae_decoder.onnx"))
    zs = [e["z"] for e in train]
    prior_var = float(np.mean([np.mean((z[1:] - z[:-1]) ** 2) for z in zs]))
    zc, latent = zs[0].shape[1], zs[0].shape[-1]
    done_steps, done_minutes, runs = 0, 0.0, []
    warm = None
    if args.resume:
        ck = torch.load(args.resume)
        args.width, args.depth, prior_var = ck["width"], ck["depth"], ck["prior_var"]
        model = load_model(ck, args.fusion, args.local_gate)
        done_steps, done_minutes, runs = ck["steps"], ck["minutes"], ck.get("runs", [])
        warm = ck.get("warm_start")
    else:
        model = Y15Flow(args.width, args.depth, zc, latent, prior_var, args.fusion or "linear", args.local_gate)
        if args.init:
            g = warm_start(model, args.init)
            prior_var = model.prior_var = g["prior_var"]
            warm = dict(path=os.path.relpath(args.init, ROOT) if args.init.startswith(ROOT) else args.init,
                        steps=g["steps"], minutes=round(g["minutes"], 1))
    if args.action_whiten and not hasattr(model.net, "act_mu"):
        model.net.whiten_actions(qcm.float().mean(0), qcm.float().std(0) + 1e-3)
    if args.local_gate and model.fusion != "match_event":
        raise SystemExit("--local-gate gates the event-gated retrieval: add --fusion match_event")
    pairs, weights, n_event = event_weighted_pairs(train, args.event_weight, args.onset_weight)
    pool = revisit_pool(train, names, args) if args.revisit_frac > 0 else None
    turns = None
    if args.turn_frac > 0:  # every tick of the turn walks (appended to `train` by revisit_pool)
        if pool is None:
            raise SystemExit("--turn-frac draws from the revisit walks: add --revisit-frac")
        turns = np.array([(e, t) for e in range(len(names), len(train)) for t in range(len(train[e]["z"]) - 1)],
                         np.int64)
    print(f"yume15 dit {n_params(model)/1e6:.3f}M params; {len(pairs)} transitions ({n_event} with an event); "
          f"prior_var {prior_var:.4f}", flush=True)
    Z = [torch.from_numpy(e["z"]) for e in train]
    AK = [torch.from_numpy(key_index(e["a"])) for e in train]
    if args.freeze_backbone:  # only the SlotMatch retrieval learns: the DiT stays the model it was
        if model.match is None:
            raise SystemExit("--freeze-backbone trains the match fusion only: add --fusion match or match_event")
        for p in model.net.parameters():
            p.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    print(f"training {sum(p.numel() for p in trainable)} of {n_params(model)} parameters "
          f"(fusion {model.fusion})", flush=True)
    loop = TrainLoop(trainable, args.lr, args.minutes, "yume15", ema=args.ema, log_every=args.log_every)
    rng = np.random.default_rng(done_steps + 1)
    path = os.path.join(args.ckpt, "yume15.pt")
    zero = torch.zeros_like(Z[0][0])

    def save(minutes, final=False):
        run = dict(steps=loop.steps, minutes=round(minutes, 2), lr=args.lr, batch=args.batch,
                   final_train_loss=round(loop.final_loss(), 4) if loop.hist else None)
        torch.save(dict(model=model.state_dict(), width=args.width, depth=args.depth, zc=zc, latent=latent,
                        prior_var=prior_var, fusion=model.fusion, steps=done_steps + loop.steps, minutes=done_minutes + minutes,
                        runs=runs + [run], warm_start=warm, final=final), path)

    def keep(B):
        return torch.from_numpy((rng.random(B) >= args.drop).astype(np.float32)).view(-1, 1, 1)

    while loop.running():
        sel = pairs[rng.choice(len(pairs), args.batch, p=weights)]
        n_rv = int(round(args.revisit_frac * args.batch)) if pool is not None else 0
        n_turn = int(round(args.turn_frac * args.batch)) if turns is not None else 0
        if n_turn:  # any tick of a turn walk, its memory drawn as usual (mostly nothing to retrieve)
            sel = np.concatenate([sel[:args.batch - n_rv - n_turn], turns[rng.integers(len(turns), size=n_turn)],
                                  sel[args.batch - n_rv:]])
        if n_rv:  # revisit samples: the earlier view of the target put among the older memory slots
            sel = np.concatenate([sel[:args.batch - n_rv], pool[rng.integers(len(pool), size=n_rv)]])
        B = len(sel)
        x0 = torch.stack([Z[e][t + 1] for e, t in sel])
        csig = torch.from_numpy(rng.uniform(0, args.ctx_noise, B).astype(np.float32))
        csig[torch.from_numpy(rng.random(B) < 0.25)] = 0.0
        mem = []
        for b, (e, t) in enumerate(sel):
            slots = memory_slots(int(t), rng)
            if b >= B - n_rv:
                slots = with_revisit(slots, int(train[e]["rv"][t + 1]), rng)
            mem.append(torch.stack([Z[e][i] if i >= 0 else zero for i in slots]))
        mem = torch.stack(mem)  # [B, S, C, H, W]
        filled = torch.from_numpy(np.array([[1.0] * SAMPLES for _ in sel], np.float32))
        for b, (e, t) in enumerate(sel):
            filled[b, :max(0, SAMPLES - 1 - int(t))] = 0.0
        mem = mem + csig.view(-1, 1, 1, 1, 1) * torch.randn_like(mem) * filled.view(B, -1, 1, 1, 1)
        # tick 0's newest is the exact start latent in the graph
        t0 = torch.from_numpy(sel[:, 1] == 0)
        mem[t0, -1] = torch.stack([Z[e][0] for e, t in sel[sel[:, 1] == 0]]) if t0.any() else mem[t0, -1]
        memory = patchify(mem).reshape(B, -1, zc * PATCH * PATCH)
        cond = torch.cat([torch.ones(B, 1, latent, latent), torch.stack([Z[e][0] for e, _ in sel])], 1)
        eids = [event_ids(train[e], texts, args.neutral_frac, rng)[t + 1] for e, t in sel]
        et = emb[torch.tensor(eids)] * keep(B)
        at = qcm[torch.stack([AK[e][t] for e, t in sel])] * keep(B)
        sigma = shifted(torch.from_numpy(rng.uniform(SIGMA_MIN, 1.0, B).astype(np.float32)), SHIFT)
        xt = (1 - sigma.view(-1, 1, 1, 1)) * x0 + sigma.view(-1, 1, 1, 1) * torch.randn_like(x0)
        _, Ff, m, P, Fh = model(xt, sigma, cond, et, at, memory)
        target = (x0 - m) / P.sqrt()
        loss = F.mse_loss(Ff, target)
        if model.match is not None and not args.freeze_backbone:
            loss = loss + 0.5 * F.mse_loss(Fh, target)  # keeps x̂, the retrieval's query, an estimate
        loop.step(loss)
        if loop.steps % args.save_every == 0:
            save(loop.timer.minutes())  # resumable (raw weights; the EMA lands at the end)
    minutes = loop.finish()
    save(minutes, final=True)
    per_tick, img, gt = val_metrics(model, val, vframes, texts, emb, qcm, dec)
    save_png(os.path.join(args.ckpt, "yume15_val.png"),
             np.concatenate([np.concatenate(list(gt[k]), 1) for k in (0, 1)]
                            + [np.concatenate(list(to_u8(img[k])), 1) for k in (0, 1)], 0))
    record(args, dict(model="dit_yume15 (event text + QCM action text, TSCM memory, I2V cond; flow matching)",
                      data=dict(transitions=int(len(pairs)), event_transitions=n_event, episodes=len(train)),
                      steps=done_steps + loop.steps, run_steps=loop.steps, batch=args.batch,
                      minutes=round(minutes, 2), lr=args.lr, resumed_from=args.resume, warm_start=warm,
                      drop=args.drop, ctx_noise=args.ctx_noise, threads=args.threads,
                      event_weight=args.event_weight, onset_weight=args.onset_weight,
                      revisit_frac=args.revisit_frac, turn_frac=args.turn_frac, fusion=model.fusion,
                      local_gate=model.match is not None and model.match.gate_local is not None,
                      freeze_backbone=args.freeze_backbone, revisit_targets=int(len(pool)) if pool is not None else 0,
                      ema=args.ema,
                      final_train_loss=loop.final_loss(), val_psnr_tick1=round(per_tick[0], 2),
                      val_psnr_1_16=round(float(np.mean(per_tick)), 2),
                      val_psnr_per_tick=[round(p, 2) for p in per_tick], params=n_params(model)))


def evaluate(args):
    """Held-out 16-tick rollouts (Python): with the memory, and with only the newest latent in it."""
    ck = torch.load(args.resume or os.path.join(args.ckpt, "yume15.pt"))
    model = load_model(ck)
    val, _ = load_split(args, "val")
    vframes = [e["frames"] for e in load_episodes(args.val, train=False)]
    texts, emb, qcm = load_tables(args)
    dec = ort_session(os.path.join(TRAINED, "vae_decoder.onnx"))
    for use in (True, False):
        pt = val_metrics(model, val, vframes, texts, emb, qcm, dec, horizon=args.horizon, use_memory=use)[0]
        print(f"memory {'on ' if use else 'off'}: tick 1 {pt[0]:.2f} dB, ticks 1-{args.horizon} {np.mean(pt):.2f} dB",
              flush=True)


def memory_check(args):
    """Does the memory carry the revisited view? On held-out revisit targets — pose revisits of the
    validation walks (--val) and the targets of `revisits --held-out`'s turn walks — the x0 error
    (latent MSE against the true target) at σ 0.3/0.6/0.9/0.97 (fixed noise) with the revisited latent
    among the older slots, with the same slots without it, and with the memory off. Each checkpoint
    of `--resume` (comma-separated) is scored on the same items and noise."""
    val, names = load_split(args, "val")
    texts, emb, qcm = load_tables(args)
    rng = np.random.default_rng(0)
    items = []

    def add(e, rv):
        for u in np.flatnonzero(rv >= 0):
            t = int(u) - 1
            base = memory_slots(t, rng)
            cand = [x for x in range(t) if abs(x - rv[u]) > 2 and x not in base[:-1]]
            without = base.copy()
            if rv[u] in base[:-1]:
                without[np.flatnonzero(base == rv[u])[0]] = rng.choice(cand)
            without = np.concatenate([np.sort(without[:-1]), without[-1:]])
            items.append((e, t, with_revisit(without, int(rv[u]), rng), without))

    for e, nm in zip(val, names):
        if int(nm.rsplit("_", 1)[1]) < 1000:
            raise SystemExit(f"memory-check: {nm} is a training walk")
        add(e, revisit_index(e["z"], pose_same_view(np.load(os.path.join(args.val, nm, "poses.npy")), e["e"])))
    n_pose = len(items)
    path = args.revisits or os.path.join(args.ckpt, "revisits_val.npz")
    h = np.load(path)
    for i in range(int(h["n"])):
        if int(str(h["names"][i]).split("_")[1]) < 1000:
            raise SystemExit(f"memory-check: {path} holds a training walk ({h['names'][i]})")
        add({k: h[f"{k}{i}"] for k in "zagle"}, h[f"rv{i}"])
    print(f"{len(items)} held-out revisit targets ({n_pose} pose revisits of {args.val}, "
          f"{len(items) - n_pose} in {path})", flush=True)
    z = torch.from_numpy
    x0 = torch.stack([z(e["z"][t + 1]) for e, t, *_ in items])
    cond = torch.cat([torch.ones(len(items), 1, 16, 16), torch.stack([z(e["z"][0]) for e, *_ in items])], 1)
    et = emb[torch.tensor([event_ids(e, texts, 0, None)[t + 1] for e, t, *_ in items])]
    at = qcm[torch.tensor([int(key_index(e["a"][t])) for e, t, *_ in items])]

    def memory(which):
        m = torch.stack([torch.stack([z(e["z"][s]) for s in (w if which == 0 else wo)]) for e, t, w, wo in items])
        return patchify(m).reshape(len(items), -1, m.shape[2] * PATCH * PATCH)

    sig = [0.3, 0.6, 0.9, 0.97]
    gen = torch.Generator().manual_seed(0)
    noise = [torch.randn(x0.shape, generator=gen) for _ in sig]
    for ckpath in args.resume.split(","):
        model = load_model(torch.load(ckpath)).eval()
        row = {}
        for name, which, use in (("with the revisited latent", 0, True), ("without it", 1, True),
                                 ("memory off", 0, False)):
            mem, errs = memory(which), []
            with torch.no_grad():
                for s, n in zip(sig, noise):
                    S = torch.full((len(items),), s)
                    pred = model((1 - s) * x0 + s * n, S, cond, et, at, mem, use_memory=use)[0]
                    errs.append(float(((pred - x0) ** 2).mean()))
            row[name] = errs
        print(f"{ckpath} (fusion {model.fusion}): x0 MSE at σ {sig}, mean", flush=True)
        for name, errs in row.items():
            print(f"  {name:27s} " + " ".join(f"{v:.4f}" for v in errs) + f"  mean {np.mean(errs):.4f}", flush=True)


# ---------------------------------------------------------------- export

class Y15Velocity(nn.Module):
    """Exported: (x, t = 1000σ, cond, event_text, action_text, memory) -> velocity."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, t, cond, event_text, action_text, memory):
        sigma = (t / 1000.0).clamp(min=SIGMA_MIN)
        x0 = self.model(x, sigma, cond, event_text, action_text, memory)[0]
        return (x - x0) / sigma.view(-1, 1, 1, 1)


def export(args):
    import onnx

    ck = torch.load(args.resume or os.path.join(args.ckpt, "yume15.pt"))
    model = load_model(ck).eval()
    zc, h = ck["zc"], ck["latent"]
    ntok = SAMPLES * (h // PATCH) ** 2
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    fusion = ck.get("fusion", "linear")
    path = os.path.join(out, "dit_yume15.onnx" if fusion == "linear" else f"dit_yume15_{fusion}.onnx")
    wrap = Y15Velocity(model).eval()
    round_weights_fp16(wrap)
    g = torch.Generator().manual_seed(1)
    ex = (torch.randn(2, zc, h, h, generator=g), torch.tensor([800.0, 120.0]),
          torch.randn(2, zc + 1, h, h, generator=g), torch.randn(2, 64, 64, generator=g),
          torch.randn(2, 64, 64, generator=g), torch.randn(2, ntok, zc * PATCH * PATCH, generator=g))
    names = ["x", "t", "cond", "event_text", "action_text", "memory"]
    tmp = path + ".tmp.onnx"
    with torch.no_grad():
        ref = wrap(*ex).numpy()
        torch.onnx.export(wrap, ex, tmp, input_names=names, output_names=["velocity"],
                          dynamic_axes={n: {0: "batch"} for n in names + ["velocity"]},
                          opset_version=17, do_constant_folding=True, dynamo=False)
    m = store_fp16(onnx.load(tmp))
    os.remove(tmp)
    runs = "; ".join(f"{r['steps']} steps / {r['minutes']} min lr {r['lr']}" for r in ck.get("runs", []))
    warm = ck.get("warm_start")
    desc = (f"trained Yume 1.5 denoiser: rectified-flow DiT ({ck['depth']} blocks, width {ck['width']}) over the "
            f"RGB latent ({zc}x{h}x{h}); dual-stream text (event caption, QCM yume15 action caption) by "
            "decoupled cross-attention; TSCM memory (8 latents, 2x2 patches, newest last = the context, "
            "un-patchified as the EDM-style prior) fused by linear attention"
            + ("; a per-slot match retrieval over the older slots, the start latent and the newest one"
               if fusion != "linear" else "")
            + (", each candidate's score gated by the event text" if fusion == "match_event" else "") + "; I2V cond [mask ; start latent]; "
            "event and action text each dropped 10% in training (CFG null = zeros)")
    meta = {"wgraph.role": "denoiser", "wgraph.description": desc, "wgraph.frame_size": "64",
            "wgraph.hidden_width": "64", "wgraph.prediction": "velocity", "wgraph.schedule": "rectified_flow",
            "wgraph.time_scale": "1000", "wgraph.conditions": "event_text,action_text,memory,cond",
            "wgraph.memory_tokens": str(ntok), "wgraph.memory_samples": str(SAMPLES),
            "wgraph.memory_patch": str(PATCH), "wgraph.patch_size": "2", "wgraph.trained": "true",
            "wgraph.qcm_variant": "yume15", "wgraph.memory_fusion": fusion, "wgraph.training_steps": str(ck["steps"]),
            "wgraph.training_minutes": str(round(ck["minutes"], 1)), "wgraph.training_runs": runs,
            "wgraph.warm_start": json.dumps(warm) if warm else "none",
            "wgraph.recommended_sampler": "euler 4 steps, shift 5",
            "wgraph.weight_storage": "float16 initializers cast to float32 at load"}
    del m.metadata_props[:]
    for k, v in meta.items():
        e = m.metadata_props.add()
        e.key, e.value = k, v
    m.doc_string = desc
    m.producer_name = "wgraph models-onnx/train"
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, path)
    sess = ort_session(path)
    got = sess.run(None, {n: a.numpy() for n, a in zip(names, ex)})[0]
    got1 = sess.run(None, {n: a[:1].numpy() for n, a in zip(names, ex)})[0]
    err = max(float(np.abs(got - ref).max()), float(np.abs(got1 - ref[:1]).max()))
    print(f"exported {path} ({os.path.getsize(path) / 1e6:.2f} MB, {ck['steps']} steps); ORT vs torch max |Δ| {err:.2e}")
    assert err < 1e-3, err


def pack(args):
    """fp16 state dict of yume15.pt (a few MB), to commit and resume from on another machine."""
    ck = torch.load(os.path.join(args.ckpt, "yume15.pt"))
    ck["model"] = {k: v.half() if v.is_floating_point() else v for k, v in ck["model"].items()}
    os.makedirs(os.path.dirname(os.path.abspath(args.pack_to)), exist_ok=True)
    torch.save(ck, args.pack_to)
    print(f"{args.pack_to}: {os.path.getsize(args.pack_to) / 1e6:.2f} MB, {ck['steps']} steps")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=["captions", "dit", "export", "eval", "pack", "revisits", "memory-check"])
    ap.add_argument("--ckpt", default="/work/ckpt/yume15")
    ap.add_argument("--latents", default="/work/ckpt/gen", help="train_gen.py latents' --ckpt")
    ap.add_argument("--val", default="/work/data/gen-val")
    ap.add_argument("--out", default=TRAINED)
    gen = "/work/ckpt/gen/gen.pt"
    ap.add_argument("--init", default=gen if os.path.exists(gen) else os.path.join(HERE, "ckpt", "gen_fp16.pt"),
                    help="warm start from a Yan-Gen gen.pt / ckpt/gen_fp16.pt ('' = from scratch)")
    ap.add_argument("--pack-to", default=os.path.join(HERE, "ckpt", "yume15_fp16.pt"))
    ap.add_argument("--wgraph", default=os.path.join(ROOT, "target", "release", "wgraph"))
    ap.add_argument("--minutes", type=float, default=35.0)
    ap.add_argument("--resume", default=None, help="continue from a yume15.pt or yume15_fp16.pt")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=8e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--save-every", type=int, default=100)
    ap.add_argument("--width", type=int, default=96)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--drop", type=float, default=0.1, help="per-stream text dropout (CFG)")
    ap.add_argument("--neutral-frac", type=float, default=0.25,
                    help="share of episodes whose pre-event caption is 'nothing happens' instead of the global one")
    ap.add_argument("--ctx-noise", type=float, default=0.3)
    ap.add_argument("--event-weight", type=float, default=2.0)
    ap.add_argument("--onset-weight", type=float, default=8.0)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--horizon", type=int, default=16)
    ap.add_argument("--data", default="/work/data/gen", help="the training walks (poses.npy for revisits)")
    ap.add_argument("--revisit-frac", type=float, default=0.0,
                    help="share of each batch whose target revisits an earlier view, put in the memory")
    ap.add_argument("--turn-frac", type=float, default=0.0,
                    help="share of each batch drawn from any tick of the revisit stage's turn walks")
    ap.add_argument("--revisits", default=None, help="revisits stage's npz (default <ckpt>/revisits.npz)")
    ap.add_argument("--revisit-walks", type=int, default=0, help="revisits stage: at most this many (0 = all)")
    ap.add_argument("--revisit-seed", type=int, default=0)
    ap.add_argument("--held-out", action="store_true",
                    help="revisits: turn walks of the held-out seeds of --data (use --data /work/data/gen-val), "
                         "for memory-check only")
    ap.add_argument("--fusion", choices=FUSIONS, default=None,
                    help="memory fusion: linear (the DiT's linear-attention branch), match (+ per-slot "
                         "match retrieval; on a linear checkpoint it starts as the identity) or match_event "
                         "(match + a per-candidate gate from the event text; on a match checkpoint it starts "
                         "as that model)")
    ap.add_argument("--action-whiten", action="store_true",
                    help="dit: standardise the action text over the QCM caption table inside the model")
    ap.add_argument("--local-gate", action="store_true",
                    help="with --fusion match_event: gate each cell's scores by the event text too")
    ap.add_argument("--freeze-backbone", action="store_true",
                    help="train only the match fusion (the DiT's weights stay as loaded)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    {"captions": make_captions, "dit": train_dit, "export": export, "eval": evaluate, "pack": pack,
     "revisits": make_revisits, "memory-check": memory_check}[args.stage](args)


if __name__ == "__main__":
    main()
