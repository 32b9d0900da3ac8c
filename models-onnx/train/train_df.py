#!/usr/bin/env python3
"""Train the diffusion-forcing Yan-Sim denoiser `dit_sim_df` (CPU, PyTorch) over precomputed latents.

    python3 train_df.py dit --minutes 30                                  # run 1 (lr 8e-4, cosine)
    python3 train_df.py dit --minutes 20 --lr 4e-4 --resume /work/ckpt/df/df.pt   # run 2
    python3 train_df.py export                   # -> ../trained/dit_sim_df.onnx (+ ORT vs torch check)
    python3 train_df.py eval                     # 30 held-out walks, 16 ticks: DDIM-4 vs the df window

The model (`models.SimDiTDF`) is Yan-Sim's DiT (width 128, 4 blocks, 2x2 patches, refinement 64,
context prior) without the t-gate, with a second level input `context_t`: the VP timestep s of
its (noisy) context, context = √ᾱ(s)·z_prev + √(1−ᾱ(s))·ε'. Diffusion forcing: every training
sample draws the frame's level t and the context's level s independently of the data, so one
batched call can advance a window of frames at staggered levels (999, 749, 499, 249), each row's
context being the row before it (the engine's `df_window` sampler). The previous frame at s = 0 is
the ordinary single-frame case (plain DDIM; the engine then fills context_t = 0).

Data: the latents of `train_yume.py latents` (the shipped `trained/vae_encoder.onnx`, the encoder
yan-sim uses), under --latents; frame t, action t -> frame t+1. Actions enter as the frozen shipped
`trained/action_embedder.onnx` tokens of the 512 key sets, computed once. Seeds >= 1000 (the val
split) are never trained on. Checkpoints, records.jsonl and logs go to --ckpt (outside the repo).
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (KEYS, TrainLoop, alphas_cumprod, ddim_sample, export_onnx, load_episodes, psnr,  # noqa: E402
                    record, save_png, to_image, to_u8)
from models import EpsWrapperDF, SimDiTDF, n_params  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
TRAINED = os.path.join(ROOT, "models-onnx", "trained")
DDIM_TS = [999, 749, 499, 249]  # the engine's 4-step trailing DDIM timesteps = the window's levels
STAGGER = 250  # level gap between neighbouring rows of the window
AC = torch.tensor(alphas_cumprod(), dtype=torch.float32)


def key_bits(actions):
    """multi-hot [..., 9] -> key-set index sum(2^k) (KEYS order)."""
    return ((np.asarray(actions) > 0.5) * (1 << np.arange(len(KEYS)))).sum(-1).astype(np.int64)


def ort_session(path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def action_tokens():
    """[512, 1, 64]: the shipped (frozen) action embedder's token of every key set."""
    keys = ((np.arange(1 << len(KEYS))[:, None] >> np.arange(len(KEYS))) & 1).astype(np.float32)
    return ort_session(os.path.join(TRAINED, "action_embedder.onnx")).run(None, {"keys": keys})[0]


def load_latents(root, split):
    d = np.load(os.path.join(root, f"latents_{split}.npz"))
    n = int(d["n"])
    return [d[f"z{i}"] for i in range(n)], [d[f"a{i}"] for i in range(n)], [str(x) for x in d["names"]]


def ab(t):
    """ᾱ(t), t float tensor in [0, 999] (linear between the table's entries, as `AlphaBar`)."""
    t = t.clamp(0, 999)
    lo = torch.floor(t)
    hi = torch.clamp(lo + 1, max=999)
    f = t - lo
    return AC[lo.long()] * (1 - f) + AC[hi.long()] * f


def sample_levels(B, rng, ctx_noise):
    """(t, s, aug σ) per sample. t: half at the window's levels ±20, half uniform in [0, 999].
    s: 35 % 0 (clean; 75 % of those with Gaussian augmentation σ ~ U(0, ctx_noise)), 45 % the
    window's stagger max(0, t − 250) ±20, 20 % uniform in [0, t]."""
    t = rng.uniform(0, 999, B)
    m = rng.random(B) < 0.5
    t[m] = np.clip(rng.choice(DDIM_TS, int(m.sum())) + rng.uniform(-20, 20, int(m.sum())), 0, 999)
    u = rng.random(B)
    s = np.zeros(B)
    stag = (u >= 0.35) & (u < 0.80)
    s[stag] = np.clip(t[stag] - STAGGER + rng.uniform(-20, 20, int(stag.sum())), 0, 999)
    uni = u >= 0.80
    s[uni] = rng.uniform(0, 1, int(uni.sum())) * t[uni]
    clean = u < 0.35
    aug = np.where(clean & (rng.random(B) < 0.75), rng.uniform(0, ctx_noise, B), 0.0)
    f = lambda v: torch.from_numpy(v.astype(np.float32))  # noqa: E731
    return f(t), f(s), f(aug), torch.from_numpy(clean)


def noisy_context(z_prev, s, aug, clean):
    """clean rows: z_prev + aug·ε'; the others the VP point √ᾱ(s)·z_prev + √(1−ᾱ(s))·ε'."""
    e = torch.randn_like(z_prev)
    a = ab(s).view(-1, 1, 1, 1)
    vp = a.sqrt() * z_prev + (1 - a).sqrt() * e
    cl = z_prev + aug.view(-1, 1, 1, 1) * e
    return torch.where(clean.view(-1, 1, 1, 1), cl, vp)


def precond_loss(model, x0, z_prev_ctx, t, s, tok, noise=None):
    a = ab(t).view(-1, 1, 1, 1)
    noise = torch.randn_like(x0) if noise is None else noise
    xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
    x0h = model(xt, t, z_prev_ctx, s, tok)
    _, c_out, _ = model.precondition_df(xt, t, z_prev_ctx, s)
    return ((x0h - x0) / c_out).pow(2).mean()


def build_model(ck=None, prior_var=0.617, width=128, depth=4, refine=64):
    if ck is not None:
        prior_var, width, depth, refine = ck["prior_var"], ck["width"], ck["depth"], ck["refine"]
    m = SimDiTDF(d=width, depth=depth, heads=4, latent=16, patch=2, mlp=4, prior_var=prior_var, refine=refine)
    if ck is not None:
        m.load_state_dict(ck["model"])
    return m


def warm_start_from_onnx(model, path):
    """Copy the shipped dit_sim.onnx weights into a SimDiTDF (everything but the new context-level
    MLP, which stays zero-initialised: the model starts as the shipped network without its gate)."""
    import onnx
    from onnx import numpy_helper

    g = onnx.load(path).graph
    arrs = {i.name: numpy_helper.to_array(i).astype(np.float32) for i in g.initializer}
    sd = model.state_dict()
    new = {}
    for name, arr in arrs.items():
        key = name[:-5] if name.endswith("_fp16") else name
        if key.startswith("dit.") and key[4:] in sd:
            new[key[4:]] = torch.from_numpy(arr).view(sd[key[4:]].shape)
    # MatMul weights lost their names (x @ W^T): qkv, proj, mlp.0, mlp.2 per block, then out
    mm = [n for n in arrs if n.startswith("onnx::MatMul")]
    mm.sort(key=lambda n: int(n.split("_")[1]))
    order = [f"blocks.{b}.{k}.weight" for b in range(len(model.blocks)) for k in ("qkv", "proj", "mlp.0", "mlp.2")]
    order.append("out.weight")
    assert len(mm) == len(order), (len(mm), len(order))
    for n, key in zip(mm, order):
        new[key] = torch.from_numpy(arrs[n]).t().contiguous()
        assert new[key].shape == sd[key].shape, (key, new[key].shape, sd[key].shape)
    missing = [k for k in sd if k not in new]
    assert all(k.startswith("cemb.") for k in missing), missing
    model.load_state_dict(new, strict=False)
    return float(model.prior_var)


def window_states(model, Z, starts, frame_bits, tokens, W=len(DDIM_TS)):
    """Sampler-in-the-loop (self forcing) for the df window: from the clean latent Z[p] of every
    start p, run the window procedure with the model itself (no gradient) through its warm-up (W
    sub-steps) to the first steady-state call, and return that call's inputs — rows at 249, 499,
    749, 999, each context the row before it (row 0: the model's own emitted frame, level 0) —
    with the true latents the rows become (Z[p+2..p+W+1]) and their own actions. Row i of window
    n is item i·N + n."""
    N = len(starts)
    with torch.no_grad():
        clean, rows = Z[starts], []  # rows: [latent, level index, frame offset]
        for call in range(W + 1):
            rows.append([torch.randn_like(clean), 0, call + 1])
            x = torch.cat([r[0] for r in rows])
            t = torch.cat([torch.full((N,), float(DDIM_TS[r[1]])) for r in rows])
            ctx = torch.cat([clean] + [r[0] for r in rows[:-1]])
            ctx_t = torch.cat([torch.zeros(N)] + [torch.full((N,), float(DDIM_TS[r[1]])) for r in rows[:-1]])
            tok = torch.cat([tokens[frame_bits[starts + r[2] - 1]] for r in rows])
            if call == W:
                x0 = torch.cat([Z[starts + r[2]] for r in rows])
                return x, t, ctx, ctx_t, tok, x0
            x0h = model(x, t, ctx, ctx_t, tok)
            emitted = None
            for i, r in enumerate(rows):
                xi = x0h[i * N:(i + 1) * N]
                a_t = AC[DDIM_TS[r[1]]]
                e = (r[0] - a_t.sqrt() * xi) / (1 - a_t).sqrt()
                if r[1] + 1 < W:
                    a_n = AC[DDIM_TS[r[1] + 1]]
                    r[0] = a_n.sqrt() * xi + (1 - a_n).sqrt() * e
                    r[1] += 1
                else:
                    emitted = xi
            if emitted is not None:
                rows.pop(0)
                clean = emitted


def train_dit(args):
    torch.manual_seed(0)
    zs, acts, names = load_latents(args.latents, "train")
    for n in names:
        if int(n.rsplit("_", 1)[1]) >= 1000:
            raise SystemExit(f"refusing to train on {n}: seed is held out (>= 1000)")
    vz, va, _ = load_latents(args.latents, "val")
    os.makedirs(args.ckpt, exist_ok=True)
    tokens = torch.from_numpy(action_tokens())
    # flat arrays: one tensor of every training latent; (prev, next, key set) per transition
    offs = np.cumsum([0] + [len(z) for z in zs])
    prev = np.concatenate([offs[e] + np.arange(len(a)) for e, a in enumerate(acts)])
    bits = torch.from_numpy(np.concatenate([key_bits(a) for a in acts]))
    prior_var = float(np.mean([np.mean((z[1:] - z[:-1]) ** 2) for z in zs]))
    # per flat frame index: the key set of the transition leaving it (-1: an episode's last frame),
    # and the frames a window rollout may start from (W + 1 more frames in the same episode)
    frame_bits = torch.full((int(offs[-1]),), -1, dtype=torch.long)
    frame_bits[torch.from_numpy(prev)] = bits
    W = len(DDIM_TS)
    wstarts = np.concatenate([offs[e] + np.arange(len(a) - W) for e, a in enumerate(acts)])
    Z = torch.from_numpy(np.concatenate(zs))
    del zs
    done_steps, done_minutes, init, history = 0, 0.0, None, []
    if args.resume:
        ck = torch.load(args.resume)
        model = build_model(ck)
        prior_var = ck["prior_var"]
        done_steps, done_minutes, init = ck["steps"], ck["minutes"], ck.get("init")
        history = list(ck.get("history", []))
    else:
        model = build_model(prior_var=prior_var, width=args.width, depth=args.depth, refine=args.refine)
        if args.init_onnx:
            prior_var = warm_start_from_onnx(model, args.init_onnx)
            init = os.path.relpath(args.init_onnx, ROOT)
    print(f"dit_sim_df {n_params(model)/1e6:.3f}M params; {len(prev)} transitions; prior_var {prior_var:.4f}; "
          f"init {init}; resumed {args.resume} ({done_steps} steps, {done_minutes:.1f} min)", flush=True)
    model.train()
    loop = TrainLoop(model.parameters(), args.lr, args.minutes, "df", ema=args.ema, log_every=args.log_every)
    rng = np.random.default_rng(1000 + done_steps)
    path = os.path.join(args.ckpt, "df.pt")

    def save(minutes, final=False):
        sd = model.state_dict()
        if not final and loop.ema is not None:  # the EMA, so a mid-run checkpoint exports as is
            names = [n for n, _ in model.named_parameters()]
            sd = dict(sd, **{n: e.clone() for n, e in zip(names, loop.ema)})
        torch.save(dict(model=sd, raw=None if final else model.state_dict(), width=model.d,
                        depth=len(model.blocks), refine=model.refine, prior_var=prior_var, init=init,
                        steps=done_steps + loop.steps, minutes=done_minutes + minutes, final=final,
                        history=history + [dict(steps=loop.steps, minutes=round(minutes, 2), lr=args.lr,
                                                window_frac=args.window_frac)]), path + ".tmp")
        os.replace(path + ".tmp", path)

    last_save = time.time()
    n_win = int(round(args.batch * args.window_frac / W))  # windows per step (W rows each)
    while loop.running():
        B = args.batch - n_win * W
        i = rng.integers(0, len(prev), B)
        z_prev, x0 = Z[prev[i]], Z[prev[i] + 1]
        tok = tokens[bits[i]]
        t, s, aug, clean = sample_levels(B, rng, args.ctx_noise)
        ctx = noisy_context(z_prev, s, aug, clean)
        a = ab(t).view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * torch.randn_like(x0)
        if n_win:
            wx, wt, wctx, ws, wtok, wx0 = window_states(model, Z, torch.from_numpy(
                wstarts[rng.integers(0, len(wstarts), n_win)]), frame_bits, tokens)
            xt, t, ctx, s = torch.cat([xt, wx]), torch.cat([t, wt]), torch.cat([ctx, wctx]), torch.cat([s, ws])
            tok, x0 = torch.cat([tok, wtok]), torch.cat([x0, wx0])
        x0h = model(xt, t, ctx, s, tok)
        _, c_out, _ = model.precondition_df(xt, t, ctx, s)
        loop.step(((x0h - x0) / c_out).pow(2).mean())
        if time.time() - last_save > 60 * args.ckpt_every:
            save(loop.timer.minutes())
            last_save = time.time()
    minutes = loop.finish()
    save(minutes, final=True)
    vl = val_losses(model, vz, va, tokens)
    record(args, dict(model="dit_sim_df (diffusion forcing, context_t)", data=dict(transitions=int(len(prev))),
                      steps=done_steps + loop.steps, run_steps=loop.steps, batch=args.batch,
                      minutes=round(minutes, 2), total_minutes=round(done_minutes + minutes, 2), lr=args.lr,
                      ema=args.ema, resumed_from=args.resume, init=init, ctx_noise=args.ctx_noise,
                      window_frac=args.window_frac,
                      final_train_loss=round(loop.final_loss(), 4), val_loss=vl, params=n_params(model)))


def val_losses(model, vz, va, tokens):
    """Held-out preconditioned loss at the window's levels, clean context (s = 0) and the stagger
    (s = t − 250), fixed noise."""
    model.eval()
    g = torch.Generator().manual_seed(1)
    z_prev = torch.from_numpy(np.concatenate([z[:-1] for z in vz]))[::2]
    x0 = torch.from_numpy(np.concatenate([z[1:] for z in vz]))[::2]
    tok = tokens[torch.from_numpy(np.concatenate([key_bits(a) for a in va]))[::2]]
    out = {}
    with torch.no_grad():
        for mode in ("clean", "stagger"):
            per = []
            for tt in DDIM_TS:
                ss = 0.0 if mode == "clean" else float(max(0, tt - STAGGER))
                tot = 0.0
                for j in range(0, len(x0), 256):
                    n = x0[j:j + 256].shape[0]
                    t = torch.full((n,), float(tt))
                    s = torch.full((n,), ss)
                    a = ab(s).view(-1, 1, 1, 1)
                    e1 = torch.randn(x0[j:j + 256].shape, generator=g)
                    e2 = torch.randn(x0[j:j + 256].shape, generator=g)
                    ctx = z_prev[j:j + 256] if ss == 0 else a.sqrt() * z_prev[j:j + 256] + (1 - a).sqrt() * e2
                    tot += precond_loss(model, x0[j:j + 256], ctx, t, s, tok[j:j + 256], e1).item() * n
                per.append(round(tot / len(x0), 4))
            out[mode] = dict(zip([str(t) for t in DDIM_TS], per), mean=round(float(np.mean(per)), 4))
    model.train()
    print(f"val loss {out}", flush=True)
    return out


# ----------------------------------------------------------------------------------------
# Export
# ----------------------------------------------------------------------------------------


def export(args):
    ck = torch.load(os.path.join(args.ckpt, "df.pt"))
    model = build_model(ck).eval()
    wrap = EpsWrapperDF(model).eval()
    out = os.path.join(os.path.abspath(args.out), "dit_sim_df.onnx")
    z = torch.zeros(1, 16, 16, 16)
    names = ["x", "t", "context", "context_t", "action"]
    desc = (f"trained diffusion-forcing Yan-Sim denoiser (dit_sim_df): the Yan-Sim DiT ({ck['depth']} blocks, "
            f"width {ck['width']}, adaLN on timestep + context timestep + action token, 2x2 patches of the 16x16 "
            "latent) without the t-gate, trained with per-frame noise levels: `context` is the previous frame's "
            "latent at VP level `context_t` (sqrt(abar(s))*z_prev + sqrt(1-abar(s))*eps; 0 = clean), so one batched "
            "call advances a window of frames at staggered levels (999, 749, 499, 249; the df_window sampler). "
            "Predicts the noise of the next latent (internally x0 with a context prior whose variance includes "
            "the context's noise); the action is the shipped action_embedder's token"
            + (f"; initialised from {os.path.basename(ck['init'])}" if ck.get("init") else "")
            + ("; part of the training on the df window's own states (sampler in the loop)"
               if any(h.get("window_frac") for h in ck.get("history", [])) else ""))
    meta = dict({"frame_size": 64, "hidden_width": 64}, prediction="epsilon", conditions="action",
                schedule="scaled_linear", beta_start="0.00085", beta_end="0.012", train_steps=1000,
                context_frames=1, context_level_input="context_t", dit_width=ck["width"], dit_depth=ck["depth"],
                patch_size=2, trained="true", training_steps=ck["steps"],
                training_minutes=round(ck["minutes"], 1), training_runs=json.dumps(ck.get("history", [])),
                recommended_sampler="df_window (window 4, levels 999,749,499,249, deterministic DDIM steps)")
    export_onnx(wrap, (z, torch.full((1,), 999.0), z, torch.zeros(1), torch.zeros(1, 1, 64)), out, names,
                ["epsilon"], "denoiser", desc, meta)
    # ORT vs torch (the module's weights are now rounded to the file's fp16 values)
    sess = ort_session(out)
    g = torch.Generator().manual_seed(0)
    worst = 0.0
    for B in (1, 4):
        inp = dict(x=torch.randn(B, 16, 16, 16, generator=g), t=torch.rand(B, generator=g) * 999,
                   context=torch.randn(B, 16, 16, 16, generator=g), context_t=torch.rand(B, generator=g) * 999,
                   action=torch.randn(B, 1, 64, generator=g))
        if B == 4:
            inp["t"] = torch.tensor([249.0, 499.0, 749.0, 999.0])
            inp["context_t"] = torch.tensor([0.0, 249.0, 499.0, 749.0])
        with torch.no_grad():
            ref = wrap(*[inp[n] for n in names]).numpy()
        got = sess.run(None, {n: v.numpy() for n, v in inp.items()})[0]
        d = float(np.abs(got - ref).max())
        worst = max(worst, d)
        print(f"batch {B}: ORT vs torch max |diff| {d:.2e} (|eps| max {np.abs(ref).max():.2f})")
    assert worst < 1e-4, worst
    print(f"{out}: {os.path.getsize(out)/1e6:.3f} MB; inputs "
          + ", ".join(f"{i.name} {i.shape}" for i in sess.get_inputs())
          + "; outputs " + ", ".join(f"{o.name} {o.shape}" for o in sess.get_outputs()))


# ----------------------------------------------------------------------------------------
# Eval: 16-tick rollouts from frame 0 of every held-out walk, true actions, onnxruntime
# ----------------------------------------------------------------------------------------


def ddim_rollout(eps_fn, z0, tok_seq, noise_seq):
    """(a), (b): plain 4-step trailing DDIM per tick, context = the previous generated latent."""
    ctx, outs = z0, []
    for k in range(len(tok_seq)):
        z = ddim_sample(lambda x, tt: eps_fn(x, np.full((x.shape[0],), float(tt), np.float32), ctx, tok_seq[k]),
                        noise_seq[k], 4)
        outs.append(z)
        ctx = z
    return np.stack(outs, 1)


def window_rollout(eps_fn, z0, tok_seq, noise_seq, W=4, own_actions=False):
    """(c): the df window. Rows oldest first, each [latent, level index into DDIM_TS]. Tick 0 warms
    up with W sub-steps (a new noise row at 999 each, one call over all rows); then one call per
    tick. In a call row k's context is row k−1's current latent at its level (row 0: the last
    emitted clean latent, level 0); every row takes one deterministic DDIM step; a row at 249 goes
    to clean (its x0) and is emitted. All rows get the current tick's action. `noise_seq` holds
    the entering rows' noise in order (len(tok_seq) + W − 1 of them). `own_actions` (a diagnostic,
    oracle look-ahead): each row gets the action of the tick it will be emitted at instead (tok_seq
    then holds W − 1 ticks more than are rolled out)."""
    ac = alphas_cumprod()
    N = z0.shape[0]
    fresh = iter(noise_seq)
    clean, rows, outs, calls = z0, [], [], 0
    H = len(tok_seq) - (W - 1 if own_actions else 0)
    for k in range(H):
        for j in range(W if k == 0 else 1):
            rows.append([next(fresh), 0, j if k == 0 else k + len(rows)])  # [latent, level, emit tick]
            x = np.concatenate([r[0] for r in rows])
            t = np.concatenate([np.full(N, float(DDIM_TS[r[1]]), np.float32) for r in rows])
            ctx = np.concatenate([clean] + [r[0] for r in rows[:-1]])
            ctx_t = np.concatenate([np.zeros(N, np.float32)]
                                   + [np.full(N, float(DDIM_TS[r[1]]), np.float32) for r in rows[:-1]])
            tok = np.concatenate([tok_seq[r[2] if own_actions else k] for r in rows])
            eps = eps_fn(x, t, ctx, tok, ctx_t)
            calls += 1
            emitted = None
            for i, r in enumerate(rows):
                a_t = float(ac[DDIM_TS[r[1]]])
                e = eps[i * N:(i + 1) * N]
                x0 = (r[0] - (1 - a_t) ** 0.5 * e) / a_t ** 0.5
                if r[1] + 1 < len(DDIM_TS):
                    a_n = float(ac[DDIM_TS[r[1] + 1]])
                    r[0] = (a_n ** 0.5 * x0 + (1 - a_n) ** 0.5 * e).astype(np.float32)
                    r[1] += 1
                else:  # 249 -> clean (set_alpha_to_one): the x0 estimate
                    emitted = x0.astype(np.float32)
            if emitted is not None:
                rows.pop(0)
                clean = emitted
                outs.append(emitted)
    assert len(outs) == H, len(outs)
    return np.stack(outs, 1), calls


def evaluate(args):
    vz, va, names = load_latents(args.latents, "val")
    H = args.horizon
    z0 = np.stack([z[0] for z in vz]).astype(np.float32)
    gt = np.stack([z[1:H + 1] for z in vz]).astype(np.float32)  # [N, H, 16, 16, 16]
    tokens = action_tokens()
    tok_seq = [tokens[key_bits(np.stack([a[k] for a in va]))] for k in range(H + 3)]
    rng = np.random.default_rng(0)
    noise_seq = [rng.standard_normal(z0.shape).astype(np.float32) for _ in range(H + 3)]  # (c) needs W-1 more
    eps = load_episodes(args.val, train=False)
    assert [e["name"] for e in eps] == names, "val frames and val latents disagree"
    vframes = [e["frames"] for e in eps]
    gt_img = to_image(np.stack([f[1:H + 1] for f in vframes])).numpy()
    dec = ort_session(os.path.join(TRAINED, "vae_decoder.onnx"))
    ship = ort_session(os.path.join(TRAINED, "dit_sim.onnx"))
    df = ort_session(os.path.join(os.path.abspath(args.out), "dit_sim_df.onnx"))
    print(f"dit_sim_df metadata: training_steps {df.get_modelmeta().custom_metadata_map.get('wgraph.training_steps')}"
          f", minutes {df.get_modelmeta().custom_metadata_map.get('wgraph.training_minutes')}", flush=True)

    def ship_eps(x, t, ctx, tok):
        return ship.run(None, dict(x=x, t=t, context=ctx, action=tok))[0]

    def df_eps(x, t, ctx, tok, ctx_t=None):
        ctx_t = np.zeros(x.shape[0], np.float32) if ctx_t is None else ctx_t
        return df.run(None, dict(x=x, t=t, context=ctx, context_t=ctx_t, action=tok))[0]

    results = {}
    runs = [("a: dit_sim.onnx, DDIM 4", lambda: (ddim_rollout(ship_eps, z0, tok_seq[:H], noise_seq), 4 * H)),
            ("b: dit_sim_df, DDIM 4 (context_t 0)", lambda: (ddim_rollout(df_eps, z0, tok_seq[:H], noise_seq), 4 * H)),
            ("c: dit_sim_df, df window 4", lambda: window_rollout(df_eps, z0, tok_seq[:H], noise_seq)),
            ("c': df window 4, each row its own action (diagnostic, look-ahead)",
             lambda: window_rollout(df_eps, z0, tok_seq, noise_seq, own_actions=True))]
    strips = [np.concatenate(list(to_u8(gt_img[0])), 1)]
    for name, fn in runs:
        t0 = time.time()
        z, calls = fn()
        secs = time.time() - t0
        mse = ((z - gt) ** 2).mean(axis=(0, 2, 3, 4))
        flat = z.reshape(-1, 16, 16, 16)
        img = np.concatenate([dec.run(None, {"latent": flat[i:i + 240]})[0] for i in range(0, len(flat), 240)])
        img = img.reshape(z.shape[0], H, 3, 64, 64)
        p = np.array([psnr(img[:, k], gt_img[:, k]).mean() for k in range(H)])
        strips.append(np.concatenate(list(to_u8(img[0])), 1))
        results[name] = dict(latent_mse_1_16=round(float(mse.mean()), 4), latent_mse_tick1=round(float(mse[0]), 4),
                             latent_mse_1_8=round(float(mse[:8].mean()), 4), psnr_1_16=round(float(p.mean()), 2),
                             psnr_tick1=round(float(p[0]), 2), psnr_1_8=round(float(p[:8].mean()), 2),
                             model_calls=calls, seconds=round(secs, 1),
                             latent_mse_per_tick=[round(float(v), 3) for v in mse],
                             psnr_per_tick=[round(float(v), 2) for v in p])
        print(f"{name}: latent MSE ticks 1-16 {mse.mean():.4f} (tick 1 {mse[0]:.4f}, 1-8 {mse[:8].mean():.4f}); "
              f"decoded PSNR 1-16 {p.mean():.2f} dB (tick 1 {p[0]:.2f}, 1-8 {p[:8].mean():.2f}); {calls} calls per "
              f"rollout batch, {secs:.1f} s", flush=True)
    copy = ((z0[:, None] - gt) ** 2).mean(axis=(0, 2, 3, 4))
    print(f"reference: copying frame 0 gives latent MSE 1-16 {copy.mean():.4f} (tick 1 {copy[0]:.4f})")
    os.makedirs(args.ckpt, exist_ok=True)
    save_png(os.path.join(args.ckpt, "df_eval.png"), np.concatenate(strips, 0))
    record(args, dict(stage="eval dit_sim_df", walks=len(vz), horizon=H, results=results,
                      copy_latent_mse_1_16=round(float(copy.mean()), 4)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=["dit", "export", "eval"])
    ap.add_argument("--ckpt", default="/work/ckpt/df")
    ap.add_argument("--latents", default="/work/ckpt/yume", help="latents_{train,val}.npz of train_yume.py latents")
    ap.add_argument("--val", default="/work/data/val")
    ap.add_argument("--out", default=TRAINED)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--resume", default=None, help="continue from a df.pt")
    ap.add_argument("--init-onnx", default=os.path.join(TRAINED, "dit_sim.onnx"),
                    help="warm start from the shipped dit_sim.onnx weights ('' = from scratch)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=8e-4)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--ckpt-every", type=float, default=4.0, help="minutes between checkpoints")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--refine", type=int, default=64)
    ap.add_argument("--ctx-noise", type=float, default=0.3)
    ap.add_argument("--window-frac", type=float, default=0.0,
                    help="part of each batch on the df window's own states (sampler in the loop / self forcing)")
    ap.add_argument("--horizon", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    {"dit": train_dit, "export": export, "eval": evaluate}[args.stage](args)


if __name__ == "__main__":
    main()
