#!/usr/bin/env python3
"""Train wgraph's first real models on `wgraph dataset` data (CPU, PyTorch) and export them.

    python3 train_sim.py vae     --data /work/data/train --val /work/data/val --minutes 12
    python3 train_sim.py latents --data /work/data/train --val /work/data/val
    python3 train_sim.py dit     --minutes 20
    python3 train_sim.py idm     --data /work/data/train --val /work/data/val --minutes 5
    python3 train_sim.py export  [--out ../trained]

Stages (each saves its checkpoint under --ckpt, outside the repository):
  vae      conv autoencoder 3x64x64 <-> 16x(64/f)x(64/f), f = --compression 4 (shipped) or 8
           (MSE + latent noise + tiny L2 penalty); then the per-channel latent mean and one scalar
           scale (unit variance) are measured on the training frames and folded into the exported
           encoder/decoder (`wgraph.latent_scale`, `wgraph.latent_shift`).
  latents  encodes every training / validation frame with the normalised encoder.
  dit      Yan-Sim denoiser: predicts the NEXT latent from (context latent, action token), trained
           jointly with the action embedder. x0 estimate with a context prior (EDM-style
           preconditioning), exported as epsilon through ᾱ(t); above t = 249 (--gate-t) x_t is gated
           out, so the engine's 4-step trailing DDIM returns the conditional mean; Gaussian noise on
           the context and self-rollout contexts for autoregression (see README.md).
  idm      inverse dynamics p(a | o_t, o_t+1), 9 independent sigmoids.
  export   ONNX (opset 17, dynamic `batch`, fp16-stored weights) + metadata into models-onnx/trained/.

Every stage is time-budgeted (--minutes) with a cosine learning-rate decay over the budget, and
appends a JSON record (data size, steps, batch, minutes, losses, metrics) to <ckpt>/records.jsonl.
Seeds >= 1000 are refused for training (held out for `wgraph eval`).
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (KEYS, LATENT_CHANNELS, TOKEN, Timer, TrainLoop, alphas_cumprod, ddim_sample,  # noqa: E402
                    export_onnx, load_episodes, lr_at, psnr, record, save_png, to_image, to_u8)
from models import (IDM, ActionEmbedder, Decoder, Encoder, EpsWrapper, ScaledDecoder, ScaledEncoder,  # noqa: E402
                    SimDiT, n_params)

HERE = os.path.dirname(os.path.abspath(__file__))


def data_size(eps):
    return dict(episodes=len(eps), frames=int(sum(e["frames"].shape[0] for e in eps)),
                transitions=int(sum(e["actions"].shape[0] for e in eps)))


# ----------------------------------------------------------------------------------------
# VAE
# ----------------------------------------------------------------------------------------


def channels(modality):
    return 1 if modality == "depth" else 3


def build_vae(f=None, zc=None, modality=None):
    a = args_global
    f = f or a.compression
    zc = zc or a.latent_channels
    c = channels(modality or a.modality)
    return Encoder(f, zc=zc, cin=c), Decoder(f, zc=zc, cout=c)


def vae_eval(enc, dec, frames_u8, bs=256, shift=None, scale=None):
    """PSNR of tanh(dec(enc(x))) over u8 frames [N,64,64,3] (deterministic path)."""
    out = []
    with torch.no_grad():
        for i in range(0, len(frames_u8), bs):
            x = to_image(frames_u8[i:i + bs])
            y = torch.tanh(dec(enc(x)))
            out.append(psnr(y.numpy(), x.numpy()))
    return float(np.concatenate(out).mean())


def train_vae(args):
    torch.manual_seed(0)
    eps = load_episodes(args.data, modality=args.modality)
    val = load_episodes(args.val, train=False, modality=args.modality)
    frames = np.concatenate([e["frames"] for e in eps])
    vframes = np.concatenate([e["frames"] for e in val])[:: max(1, args.val_stride)]
    print(f"vae: {len(frames)} train frames, {len(vframes)} val frames", flush=True)
    enc, dec = build_vae()
    print(f"encoder {n_params(enc)/1e6:.3f}M, decoder {n_params(dec)/1e6:.3f}M params", flush=True)
    params = list(enc.parameters()) + list(dec.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0, betas=(0.9, 0.99))
    rng = np.random.default_rng(0)
    timer, step, budget = Timer(), 0, args.minutes
    hist = []
    while timer.minutes() < budget:
        frac = timer.minutes() / budget
        for g in opt.param_groups:
            g["lr"] = lr_at(frac, args.lr)
        idx = rng.integers(0, len(frames), args.batch)
        x = to_image(frames[idx])
        mu = enc(x)
        # latent noise relative to the batch's latent std: the decoder learns to tolerate small
        # latent errors (the denoiser's), like a VAE with a fixed posterior variance
        std = mu.detach().std()
        z = mu + args.latent_noise * std * torch.randn_like(mu)
        y = torch.tanh(dec(z))
        rec = F.mse_loss(y, x)
        reg = args.l2 * mu.pow(2).mean()
        loss = rec + reg
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        hist.append(rec.item())
        if step % args.log_every == 0:
            p = 10 * math.log10(4 / max(np.mean(hist[-args.log_every:]), 1e-12))
            print(f"vae step {step} {timer.minutes():.1f} min lr {opt.param_groups[0]['lr']:.2e} "
                  f"mse {np.mean(hist[-args.log_every:]):.5f} (train psnr~{p:.2f}) mu std {std:.3f}", flush=True)
        if args.eval_every and step % args.eval_every == 0:
            print(f"  val psnr {vae_eval(enc, dec, vframes[:512]):.2f} dB", flush=True)
    minutes = timer.minutes()
    enc.eval()
    dec.eval()
    # latent normalisation: per-channel mean, one scalar scale for unit variance
    with torch.no_grad():
        sub = frames[rng.choice(len(frames), min(len(frames), 4096), replace=False)]
        mus = torch.cat([enc(to_image(sub[i:i + 256])) for i in range(0, len(sub), 256)])
        shift = mus.mean(dim=(0, 2, 3))
        scale = 1.0 / float((mus - shift.view(1, -1, 1, 1)).std())
        per_ch_std = ((mus - shift.view(1, -1, 1, 1)) * scale).std(dim=(0, 2, 3))
    train_psnr = vae_eval(enc, dec, frames[rng.choice(len(frames), min(len(frames), 2048), replace=False)])
    val_psnr = vae_eval(enc, dec, vframes)
    torch.save(dict(enc=enc.state_dict(), dec=dec.state_dict(), shift=shift, scale=scale, f=args.compression,
                    zc=args.latent_channels, modality=args.modality),
               os.path.join(args.ckpt, "vae.pt"))
    # a picture: val frames over reconstructions
    with torch.no_grad():
        x = to_image(vframes[:: max(1, len(vframes) // 8)][:8])
        y = torch.tanh(dec(enc(x)))
    save_png(os.path.join(args.ckpt, "vae_val.png"),
             np.concatenate([np.concatenate(list(to_u8(x)), 1), np.concatenate(list(to_u8(y)), 1)], 0))
    record(args, dict(model=f"vae ({args.modality})", latent_channels=args.latent_channels, spatial_compression=args.compression, data=data_size(eps), val_data=data_size(val), steps=step, batch=args.batch,
                      minutes=round(minutes, 2), lr=args.lr, latent_noise=args.latent_noise,
                      final_train_mse=float(np.mean(hist[-100:])), train_psnr=round(train_psnr, 2),
                      val_psnr=round(val_psnr, 2), latent_scale=scale,
                      latent_channel_std_min_max=[float(per_ch_std.min()), float(per_ch_std.max())],
                      params=n_params(enc) + n_params(dec)))


def load_vae(args):
    ck = torch.load(os.path.join(args.ckpt, "vae.pt"))
    enc, dec = build_vae(ck.get("f", 8), ck.get("zc", LATENT_CHANNELS), ck.get("modality", "rgb"))
    enc.load_state_dict(ck["enc"])
    dec.load_state_dict(ck["dec"])
    return ScaledEncoder(enc, ck["shift"], ck["scale"]).eval(), ScaledDecoder(dec, ck["shift"], ck["scale"]).eval()


# ----------------------------------------------------------------------------------------
# Latents
# ----------------------------------------------------------------------------------------


def encode_episodes(senc, eps):
    out = []
    with torch.no_grad():
        for e in eps:
            f = e["frames"]
            z = torch.cat([senc(to_image(f[i:i + 256])) for i in range(0, len(f), 256)])
            out.append(z.numpy().astype(np.float32))
    return out


def make_latents(args):
    senc, _ = load_vae(args)
    for split, root, train in (("train", args.data, True), ("val", args.val, False)):
        eps = load_episodes(root, train=train, modality=args.modality)
        zs = encode_episodes(senc, eps)
        allz = np.concatenate(zs)
        print(f"{split}: {len(eps)} episodes, latents {allz.shape}, mean {allz.mean():.3f} std {allz.std():.3f}")
        np.savez(os.path.join(args.ckpt, f"latents_{split}.npz"),
                 **{f"z{i}": z for i, z in enumerate(zs)}, **{f"a{i}": e["actions"] for i, e in enumerate(eps)},
                 names=np.array([e["name"] for e in eps]), n=len(eps))


def load_latents(args, split):
    d = np.load(os.path.join(args.ckpt, f"latents_{split}.npz"))
    n = int(d["n"])
    return [d[f"z{i}"] for i in range(n)], [d[f"a{i}"] for i in range(n)], list(d["names"])


# ----------------------------------------------------------------------------------------
# Denoiser + action embedder
# ----------------------------------------------------------------------------------------


def build_dit(latent, zc):
    a = args_global
    patch = a.dit_patch or (2 if latent >= 16 else 1)
    return (SimDiT(d=a.dit_width, depth=a.dit_depth, heads=4, latent=latent, patch=patch, mlp=a.dit_mlp,
                   prior_var=a.prior_var, refine=a.dit_refine, gate_t=a.gate_t, zc=zc), ActionEmbedder())


def rollout_latents(dit, aemb, z0, actions, steps=4, seed=0, noise=None):
    """Autoregressive DDIM rollout in latent space: z0 [B,16,h,w], actions [B,T,9] -> [B,T,16,h,w]."""
    wrap = EpsWrapper(dit).eval()
    g = torch.Generator().manual_seed(seed)
    ctx, outs = z0, []
    with torch.no_grad():
        for t in range(actions.shape[1]):
            tok = aemb(actions[:, t])
            n = torch.randn(z0.shape, generator=g) if noise is None else noise[:, t]
            z = ddim_sample(lambda x, tt: wrap(x, torch.full((x.shape[0],), float(tt)), ctx, tok), n, steps)
            outs.append(z)
            ctx = z
    return torch.stack(outs, 1)


def dit_val(dit, aemb, vz, va, sdec, vframes, horizon=32, n_start=8, seed=0):
    """Latent one-step MSE and decoded PSNR of 1-tick and `horizon`-tick rollouts from val starts."""
    dit.eval()
    aemb.eval()
    rng = np.random.default_rng(seed)
    starts = []
    for _ in range(n_start):
        e = rng.integers(len(vz))
        s = rng.integers(0, len(va[e]) - horizon + 1)
        starts.append((e, s))
    z0 = torch.from_numpy(np.stack([vz[e][s] for e, s in starts]))
    acts = torch.from_numpy(np.stack([va[e][s:s + horizon] for e, s in starts]))
    gt = np.stack([vframes[e][s + 1:s + 1 + horizon] for e, s in starts])  # u8 [B,T,64,64,3]
    zs = rollout_latents(dit, aemb, z0, acts, seed=seed)
    with torch.no_grad():
        imgs = sdec(zs.flatten(0, 1)).view(len(starts), horizon, -1, 64, 64).numpy()
    gtf = to_image(gt).numpy()
    per_tick = np.array([psnr(imgs[:, t], gtf[:, t]).mean() for t in range(horizon)])
    # one-tick PSNR over many val transitions (clean context each time)
    ctx, tgt, ac = [], [], []
    for e in range(len(vz)):
        for s in range(0, len(va[e]), 4):
            ctx.append(vz[e][s]); ac.append(va[e][s]); tgt.append(vframes[e][s + 1])
    ctx = torch.from_numpy(np.stack(ctx)); ac = torch.from_numpy(np.stack(ac))[:, None]
    z1 = torch.cat([rollout_latents(dit, aemb, ctx[i:i + 256], ac[i:i + 256], seed=seed + 1)[:, 0]
                    for i in range(0, len(ctx), 256)])
    with torch.no_grad():
        im1 = torch.cat([sdec(z1[i:i + 256]) for i in range(0, len(z1), 256)]).numpy()
    one = float(psnr(im1, to_image(np.stack(tgt)).numpy()).mean())
    dit.train()
    aemb.train()
    return one, per_tick, imgs, gt


DDIM_TS = [999, 749, 499, 249]  # the engine's 4-step trailing DDIM timesteps


def sample_t_gated(n, rng, gate_t, frac_above):
    """frac_above of the timesteps uniform in [gate_t, 999] (where x0 is a function of context and
    action only: the 4 trailing DDIM steps), the rest uniform in [0, gate_t)."""
    hi = rng.uniform(gate_t, 999, n)
    lo = rng.uniform(0, gate_t, n)
    t = np.where(rng.random(n) < frac_above, np.round(hi), np.floor(lo))
    return torch.from_numpy(t.astype(np.float32))


def sample_t(n, rng, frac_ddim):
    """Half the timesteps at the engine's 4 trailing DDIM steps (999, 749, 499, 249), the rest
    uniform in [0, 999] (so other samplers / step counts still work)."""
    t = rng.integers(0, 1000, n)
    m = rng.random(n) < frac_ddim
    t[m] = rng.choice([999, 749, 499, 249], int(m.sum()))
    return torch.from_numpy(t.astype(np.float32))


def train_dit(args):
    torch.manual_seed(0)
    zs, acts, _ = load_latents(args, "train")
    vz, va, vnames = load_latents(args, "val")
    val_eps = load_episodes(args.val, train=False, modality=args.modality)
    vframes = [e["frames"] for e in val_eps]
    _, sdec = load_vae(args)
    # flat index of transitions (episode, t)
    pairs = np.array([(e, t) for e in range(len(zs)) for t in range(len(acts[e]))])
    Z = [torch.from_numpy(z) for z in zs]
    A = [torch.from_numpy(a) for a in acts]
    latent = zs[0].shape[-1]
    # prior variance of the per-tick latent change (the preconditioning's s²)
    args.prior_var = float(np.mean([np.mean((z[1:] - z[:-1]) ** 2) for z in zs]))
    print(f"prior_var (mean squared latent change per tick) {args.prior_var:.4f}")
    zc = zs[0].shape[1]
    dit, aemb = build_dit(latent, zc)
    print(f"dit {n_params(dit)/1e6:.3f}M, action embedder {n_params(aemb)/1e6:.4f}M params; "
          f"{len(pairs)} transitions", flush=True)
    resumed = None
    if args.resume:
        ck = torch.load(args.resume)
        dit.load_state_dict(ck["dit"])
        aemb.load_state_dict(ck["aemb"])
        resumed = dict(path=args.resume, steps=ck.get("steps"), minutes=ck.get("minutes"))
        print(f"resumed from {args.resume}")
    loop = TrainLoop(list(dit.parameters()) + list(aemb.parameters()), args.lr, args.minutes, "dit",
                     ema=args.ema, log_every=args.log_every)
    ac = torch.tensor(alphas_cumprod(), dtype=torch.float32)
    rng = np.random.default_rng(0)
    wrap = EpsWrapper(dit)
    while loop.running():
        frac, step = loop.frac, loop.steps
        sel = pairs[rng.integers(0, len(pairs), args.batch)]
        ctx = torch.stack([Z[e][t] for e, t in sel])
        x0 = torch.stack([Z[e][t + 1] for e, t in sel])
        a = torch.stack([A[e][t] for e, t in sel])
        B = len(sel)
        # self-rollout contexts (sampling-aware): for a part of the batch, replace the context by the
        # model's own 4-step prediction of it from the frame before (the error it will see when
        # playing), after the first part of training
        n_roll = int(B * args.rollout_frac) if frac >= args.rollout_start else 0
        if n_roll:
            k = int(rng.integers(1, args.rollout_max + 1))  # unroll k ticks of the model's own predictions
            ok = [i for i in range(B) if sel[i][1] >= k][:n_roll]
            if ok:
                pe = torch.stack([Z[sel[i][0]][sel[i][1] - k] for i in ok])
                with torch.no_grad():
                    dit.eval()
                    for j in range(k, 0, -1):
                        tok = aemb(torch.stack([A[sel[i][0]][sel[i][1] - j] for i in ok]))
                        if 0 < args.gate_t <= DDIM_TS[-1]:  # gated: the 4-step DDIM output is x0 at t=999
                            pe = dit(torch.randn_like(pe), torch.full((len(ok),), 999.0), pe, tok)
                        else:
                            pe = ddim_sample(lambda x, tt: wrap(x, torch.full((x.shape[0],), float(tt)), pe, tok),
                                             torch.randn_like(pe), 4)
                    dit.train()
                ctx[ok] = pe
        # Gaussian noise augmentation of the context (robust autoregression)
        sig = torch.from_numpy(rng.uniform(0, args.ctx_noise, B).astype(np.float32))
        sig[torch.from_numpy(rng.random(B) < 0.25)] = 0.0
        ctx = ctx + sig.view(-1, 1, 1, 1) * torch.randn_like(ctx)
        # keys dropout? no: the engine always gives a key set (possibly empty)
        if args.gate_t > 0:
            t = sample_t_gated(B, rng, args.gate_t, args.frac_ddim)
        else:
            t = sample_t(B, rng, args.frac_ddim)
        ab = ac[t.long()].view(-1, 1, 1, 1)
        noise = torch.randn_like(x0)
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        # sampler-in-the-loop (sampling-aware): for part of the batch, x_t is not the ground truth
        # noised but the state the engine's sampler reaches (4-step trailing DDIM from pure noise,
        # run with the current model for K = 0..3 steps, no gradient); the model learns to predict the
        # true next latent from there, i.e. the mean over what the noise cannot tell it. The 4-step
        # DDIM output then converges to the conditional mean (the PSNR-optimal prediction) instead
        # of a sample of an imperfect model.
        n_traj = int(B * args.traj_frac) if args.gate_t <= 0 else 0
        if n_traj:
            K = step % 4
            sub = slice(0, n_traj)
            xs = torch.randn_like(x0[sub])
            if K:
                with torch.no_grad():
                    tok = aemb(a[sub])
                    for k in range(K):
                        tk, tn = DDIM_TS[k], DDIM_TS[k + 1]
                        x0h = dit(xs, torch.full((n_traj,), float(tk)), ctx[sub], tok)
                        eps = (xs - ac[tk].sqrt() * x0h) / (1 - ac[tk]).sqrt()
                        xs = ac[tn].sqrt() * x0h + (1 - ac[tn]).sqrt() * eps
            xt = torch.cat([xs, xt[n_traj:]])
            t[sub] = float(DDIM_TS[K])
        x0_hat = dit(xt, t, ctx, aemb(a))
        _, c_out, _ = dit.precondition(xt, t, ctx)
        loop.step(((x0_hat - x0) / c_out).pow(2).mean())  # unit-variance target at every t (EDM-style)
        if args.eval_every and loop.steps % args.eval_every == 0:
            one, per_tick, _, _ = dit_val(dit, aemb, vz, va, sdec, vframes, horizon=16, n_start=4)
            print(f"  val one-tick psnr {one:.2f}, 16-tick mean {per_tick.mean():.2f} (raw weights)", flush=True)
    minutes, step = loop.finish(), loop.steps  # EMA weights for the checkpoint
    # val loss on held-out transitions at the 4 DDIM timesteps
    dit.eval()
    aemb.eval()
    with torch.no_grad():
        vl = []
        g = torch.Generator().manual_seed(1)
        for e in range(len(vz)):
            ctx = torch.from_numpy(vz[e][:-1]); x0 = torch.from_numpy(vz[e][1:]); a = torch.from_numpy(va[e])
            for tt in (999, 749, 499, 249):
                t = torch.full((len(x0),), float(tt))
                ab = ac[tt]
                n = torch.randn(x0.shape, generator=g)
                xt = ab.sqrt() * x0 + (1 - ab).sqrt() * n
                _, c_out, _ = dit.precondition(xt, t, ctx)
                vl.append((((dit(xt, t, ctx, aemb(a)) - x0) / c_out).pow(2).mean().item()))
    one, per_tick, imgs, gt = dit_val(dit, aemb, vz, va, sdec, vframes, horizon=32, n_start=args.val_starts)
    torch.save(dict(dit=dit.state_dict(), aemb=aemb.state_dict(), width=args.dit_width, depth=args.dit_depth,
                    mlp=args.dit_mlp, latent=latent, zc=zc, patch=dit.patch, prior_var=args.prior_var,
                    refine=args.dit_refine, gate_t=args.gate_t, steps=step + ((resumed or {}).get("steps") or 0),
                    minutes=minutes + ((resumed or {}).get("minutes") or 0)), os.path.join(args.ckpt, "dit.pt"))
    strip = np.concatenate([np.concatenate(list(gt[0][:16]), 1), np.concatenate(list(to_u8(imgs[0][:16])), 1)], 0)
    save_png(os.path.join(args.ckpt, "dit_val.png"), strip)
    record(args, dict(model="dit_sim+action_embedder" if args.modality == "rgb" else "dit_depth+action_embedder_depth", data=dict(transitions=int(len(pairs)), episodes=len(zs)),
                      steps=step, batch=args.batch, minutes=round(minutes, 2), lr=args.lr,
                      ctx_noise=args.ctx_noise, frac_ddim=args.frac_ddim, traj_frac=args.traj_frac, gate_t=args.gate_t, rollout_frac=args.rollout_frac,
                      rollout_start=args.rollout_start, rollout_max=args.rollout_max, ema=args.ema, resumed=resumed,
                      final_train_loss=loop.final_loss(200), val_loss_ddim_steps=float(np.mean(vl)),
                      val_one_tick_psnr=round(one, 2), val_psnr_1_8=round(float(per_tick[:8].mean()), 2),
                      val_psnr_1_32=round(float(per_tick.mean()), 2),
                      val_psnr_per_tick=[round(float(p), 2) for p in per_tick],
                      params=n_params(dit) + n_params(aemb)))


def load_dit(args):
    ck = torch.load(os.path.join(args.ckpt, "dit.pt"))
    dit = SimDiT(d=ck["width"], depth=ck["depth"], heads=4, mlp=ck["mlp"], latent=ck.get("latent", 8),
                 patch=ck.get("patch", 1), prior_var=ck["prior_var"], refine=ck["refine"], gate_t=ck.get("gate_t", 0.0),
                 zc=ck.get("zc", LATENT_CHANNELS))
    aemb = ActionEmbedder()
    dit.load_state_dict(ck["dit"])
    aemb.load_state_dict(ck["aemb"])
    return dit.eval(), aemb.eval()


# ----------------------------------------------------------------------------------------
# Inverse dynamics
# ----------------------------------------------------------------------------------------


def idm_metrics(idm, eps, bs=512):
    P, Y = [], []
    with torch.no_grad():
        for e in eps:
            f, a = e["frames"], e["actions"]
            for i in range(0, len(a), bs):
                fa = to_image(f[i:i + bs][: len(a[i:i + bs])])
                fb = to_image(f[i + 1:i + 1 + bs][: len(a[i:i + bs])])
                P.append((idm(fa, fb) > 0).numpy())
                Y.append(a[i:i + bs] > 0.5)
    P, Y = np.concatenate(P), np.concatenate(Y)
    return dict(exact_match=float((P == Y).all(1).mean()),
                per_key={k: round(float(v), 4) for k, v in zip(KEYS, (P == Y).mean(0))},
                key_frequency={k: round(float(v), 4) for k, v in zip(KEYS, Y.mean(0))},
                pairs=int(len(Y)))


def train_idm(args):
    torch.manual_seed(0)
    eps = load_episodes(args.data)
    val = load_episodes(args.val, train=False)
    F0 = [e["frames"] for e in eps]
    A0 = [e["actions"] for e in eps]
    pairs = np.array([(e, t) for e in range(len(eps)) for t in range(len(A0[e]))])
    idm = IDM()
    print(f"idm {n_params(idm)/1e6:.3f}M params, {len(pairs)} pairs", flush=True)
    opt = torch.optim.AdamW(idm.parameters(), lr=args.lr, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    timer, step, hist = Timer(), 0, []
    while timer.minutes() < args.minutes:
        frac = timer.minutes() / args.minutes
        for g in opt.param_groups:
            g["lr"] = lr_at(frac, args.lr)
        sel = pairs[rng.integers(0, len(pairs), args.batch)]
        fa = to_image(np.stack([F0[e][t] for e, t in sel]))
        fb = to_image(np.stack([F0[e][t + 1] for e, t in sel]))
        y = torch.from_numpy(np.stack([A0[e][t] for e, t in sel]))
        loss = F.binary_cross_entropy_with_logits(idm(fa, fb), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        hist.append(loss.item())
        if step % args.log_every == 0:
            print(f"idm step {step} {timer.minutes():.1f} min bce {np.mean(hist[-args.log_every:]):.4f}", flush=True)
    minutes = timer.minutes()
    idm.eval()
    with torch.no_grad():
        vbce = []
        for e in val:
            f, a = e["frames"], e["actions"]
            vbce.append(F.binary_cross_entropy_with_logits(idm(to_image(f[:-1]), to_image(f[1:])),
                                                           torch.from_numpy(a)).item())
    torch.save(dict(idm=idm.state_dict()), os.path.join(args.ckpt, "idm.pt"))
    record(args, dict(model="idm", data=data_size(eps), val_data=data_size(val), steps=step, batch=args.batch,
                      minutes=round(minutes, 2), lr=args.lr, final_train_bce=float(np.mean(hist[-200:])),
                      val_bce=float(np.mean(vbce)), train_metrics=idm_metrics(idm, eps[:40]),
                      val_metrics=idm_metrics(idm, val), params=n_params(idm)))


def load_idm(args):
    idm = IDM()
    idm.load_state_dict(torch.load(os.path.join(args.ckpt, "idm.pt"))["idm"])
    return idm.eval()


# ----------------------------------------------------------------------------------------
# Export
# ----------------------------------------------------------------------------------------


def export_depth(args, out):
    """Yan-Edit's mechanics simulator: depth VAE, depth denoiser and its action embedder."""
    senc, sdec = load_vae(args)
    ck = torch.load(os.path.join(args.ckpt, "vae.pt"))
    f, zc = ck.get("f", 8), ck.get("zc", LATENT_CHANNELS)
    h = 64 // f
    common = {"frame_size": 64, "hidden_width": TOKEN}
    vae_meta = dict(common, latent_channels=zc, spatial_compression=f, temporal_compression=1, modality="depth",
                    latent_scale=f"{float(ck['scale']):.6g}",
                    latent_shift=json.dumps([round(float(v), 6) for v in ck["shift"]]), trained="true")
    lat = torch.zeros(1, zc, h, h)
    export_onnx(senc, (torch.zeros(1, 1, 64, 64),), os.path.join(out, "depth_encoder.onnx"), ["depth"], ["latent"],
                "vae_encoder", f"trained depth-map VAE encoder (Yan-Edit's mechanics simulator): signed depth "
                f"2*d/16-1 in [-1,1] -> {zc}x{h}x{h} latent, normalised to unit variance", vae_meta)
    export_onnx(sdec, (lat,), os.path.join(out, "depth_decoder.onnx"), ["latent"], ["depth"], "vae_decoder",
                f"trained depth-map decoder: {zc}x{h}x{h} latent -> signed depth in [-1,1] (tanh)", vae_meta)
    dit, aemb = load_dit(args)
    dck = torch.load(os.path.join(args.ckpt, "dit.pt"))
    export_onnx(EpsWrapper(dit).eval(), (lat, torch.full((1,), 999.0), lat, torch.zeros(1, 1, TOKEN)),
                os.path.join(out, "dit_depth.onnx"), ["x", "t", "context", "action"], ["epsilon"], "denoiser",
                f"trained Yan-Edit mechanics simulator: the Yan-Sim DiT ({dck['depth']} blocks, width {dck['width']}) "
                f"on depth latents ({zc}x{h}x{h}); predicts the noise of the next depth latent from the previous one "
                "and the action token (x0 with a context prior; for t >= 249 x0 depends on context and action only)",
                dict(common, prediction="epsilon", conditions="action", schedule="scaled_linear",
                     beta_start="0.00085", beta_end="0.012", train_steps=1000, context_frames=1, modality="depth",
                     dit_width=dck["width"], dit_depth=dck["depth"], patch_size=dck.get("patch", 1), trained="true",
                     recommended_sampler="ddim 4 steps, eta 0, trailing"))
    export_onnx(aemb, (torch.zeros(1, 9),), os.path.join(out, "action_embedder_depth.onnx"), ["keys"], ["token"],
                "action_embedder", "trained action MLP of the depth simulator (trained jointly with dit_depth)",
                dict(common, keys=",".join(KEYS), trained="true"))


def export_all(args):
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    if args.modality == "depth":
        return export_depth(args, out)
    senc, sdec = load_vae(args)
    ck = torch.load(os.path.join(args.ckpt, "vae.pt"))
    scale = float(ck["scale"])
    f = ck.get("f", 8)
    h = 64 // f
    common = {"frame_size": 64, "hidden_width": TOKEN}
    vae_meta = dict(common, latent_channels=LATENT_CHANNELS, spatial_compression=f, temporal_compression=1,
                    modality="rgb", latent_scale=f"{scale:.6g}",
                    latent_shift=json.dumps([round(float(v), 6) for v in ck["shift"]]), trained="true")
    img = torch.zeros(1, 3, 64, 64)
    lat = torch.zeros(1, LATENT_CHANNELS, h, h)
    export_onnx(senc, (img,), os.path.join(out, "vae_encoder.onnx"), ["image"], ["latent"], "vae_encoder",
                f"trained RGB VAE encoder (Yan's VAE, scaled down: {f}x spatial, no temporal compression, 16 latent "
                "channels; latents normalised to unit variance: (mu - latent_shift) * latent_scale)", vae_meta)
    export_onnx(sdec, (lat,), os.path.join(out, "vae_decoder.onnx"), ["latent"], ["image"], "vae_decoder",
                f"trained lightweight RGB decoder (Yan's lightweight decoder: {f}x upsampling, tanh output in [-1,1]; "
                "undoes latent_scale/latent_shift)", vae_meta)
    dit, aemb = load_dit(args)
    wrap = EpsWrapper(dit).eval()
    dck = torch.load(os.path.join(args.ckpt, "dit.pt"))
    export_onnx(wrap, (lat, torch.full((1,), 999.0), lat, torch.zeros(1, 1, TOKEN)),
                os.path.join(out, "dit_sim.onnx"), ["x", "t", "context", "action"], ["epsilon"], "denoiser",
                f"trained Yan-Sim denoiser: DiT ({dck['depth']} blocks, width {dck['width']}, adaLN on timestep + "
                f"action token) on {dck.get('patch', 1)}x{dck.get('patch', 1)} patches of the {h}x{h} latent, previous latent channel-concatenated as context; "
                "predicts the noise of the next frame's latent (internally an x0 estimate with a context prior, converted to "
                "epsilon with the schedule; for t >= 249 x0 depends on context and action only, so 4-step trailing DDIM "
                "returns the conditional mean)",
                dict(common, prediction="epsilon", conditions="action", schedule="scaled_linear",
                     beta_start="0.00085", beta_end="0.012", train_steps=1000, context_frames=1,
                     dit_width=dck["width"], dit_depth=dck["depth"], patch_size=dck.get("patch", 1), trained="true",
                     recommended_sampler="ddim 4 steps, eta 0, trailing"))
    export_onnx(aemb, (torch.zeros(1, 9),), os.path.join(out, "action_embedder.onnx"), ["keys"], ["token"],
                "action_embedder", "trained Yan action MLP: keyboard multi-hot -> one action token (trained jointly "
                "with dit_sim)", dict(common, keys=",".join(KEYS), trained="true"))
    idm = load_idm(args)
    export_onnx(idm, (img, img), os.path.join(out, "idm.onnx"), ["frame_a", "frame_b"], ["logits"], "idm",
                "inverse dynamics model p(a | o_t, o_t+1): two frames -> one logit per key (independent sigmoids), "
                "the playability measure of wgraph eval", dict(common, keys=",".join(KEYS), trained="true"))
    total = 0
    for f in sorted(os.listdir(out)):
        if f.endswith(".onnx"):
            s = os.path.getsize(os.path.join(out, f))
            total += s
            print(f"{f}: {s/1e6:.3f} MB")
    print(f"total {total/1e6:.3f} MB")


# ----------------------------------------------------------------------------------------


def main():
    global args_global
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=["vae", "latents", "dit", "idm", "export"])
    ap.add_argument("--data", default="/work/data/train")
    ap.add_argument("--val", default="/work/data/val")
    ap.add_argument("--ckpt", default="/work/ckpt")
    ap.add_argument("--modality", choices=["rgb", "depth"], default="rgb",
                    help="rgb: frames.npy (Yan-Sim); depth: depth.npy (Yan-Edit's simulator; use its own --ckpt)")
    ap.add_argument("--latent-channels", type=int, default=LATENT_CHANNELS)
    ap.add_argument("--out", default=os.path.join(HERE, "..", "trained"))
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--eval-every", type=int, default=0)
    ap.add_argument("--val-stride", type=int, default=1)
    ap.add_argument("--val-starts", type=int, default=16)
    # vae
    ap.add_argument("--compression", type=int, default=8, choices=[4, 8])
    ap.add_argument("--latent-noise", type=float, default=0.05)
    ap.add_argument("--l2", type=float, default=1e-5)
    # dit
    ap.add_argument("--dit-width", type=int, default=128)
    ap.add_argument("--dit-depth", type=int, default=4)
    ap.add_argument("--dit-mlp", type=int, default=4)
    ap.add_argument("--dit-refine", type=int, default=64, help="channels of the full-resolution conv refinement (0: none)")
    ap.add_argument("--dit-patch", type=int, default=0, help="0: 2 for 16x16 latents, 1 for 8x8")
    ap.add_argument("--ctx-noise", type=float, default=0.3)
    ap.add_argument("--frac-ddim", type=float, default=0.75,
                    help="share of timesteps at/above the gate (gated) or at the 4 DDIM steps (not gated)")
    ap.add_argument("--rollout-frac", type=float, default=0.25)
    ap.add_argument("--gate-t", type=float, default=249.0, help="x0 ignores x_t for t >= gate_t (0: off)")
    ap.add_argument("--traj-frac", type=float, default=0.5, help="part of the batch trained on sampler states")
    ap.add_argument("--rollout-start", type=float, default=0.5)
    ap.add_argument("--rollout-max", type=int, default=1, help="unroll 1..N ticks of own predictions for the context")
    ap.add_argument("--resume", default=None, help="dit checkpoint to start from (fine-tuning)")
    ap.add_argument("--ema", type=float, default=0.999)
    args = ap.parse_args()
    args_global = args
    torch.set_num_threads(args.threads)
    os.makedirs(args.ckpt, exist_ok=True)
    defaults = {"vae": (32, 1e-3), "dit": (128, 5e-4), "idm": (128, 1e-3)}
    b, lr = defaults.get(args.stage, (32, 1e-3))
    args.batch = args.batch or b
    args.lr = args.lr or lr
    {"vae": train_vae, "latents": make_latents, "dit": train_dit, "idm": train_idm, "export": export_all}[args.stage](args)


args_global = None

if __name__ == "__main__":
    main()
