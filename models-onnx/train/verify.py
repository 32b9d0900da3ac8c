#!/usr/bin/env python3
"""Verify the trained ONNX models in models-onnx/trained/ with onnxruntime.

    python3 verify.py [--dir ../trained] [--ckpt /work/ckpt] [--val /work/data/val] [--ticks 32]

1. Contract: role and metadata keys, input/output names, dtypes, shapes (symbolic `batch`).
2. Export: each ONNX model against the torch checkpoint it came from (weights rounded to fp16 as
   exported), batch 1 and 3: max abs difference < 1e-4.
3. Quality on held-out world seeds (>= 1000), all through onnxruntime:
   - VAE reconstruction PSNR of every validation frame;
   - Yan-Sim rollouts: start frame -> encoder; each tick: action embedder, fresh N(0,1) noise,
     DDIM 4 steps (trailing, eta 0, diffusers' formula) calling dit_sim, decoder; the decoded
     frame's PSNR against the ground-truth next frame; per tick, one-tick, mean of ticks 1-8 and 1-32;
   - IDM exact-match and per-key accuracy on ground-truth pairs, and on generated pairs.
4. Latency: median onnxruntime CPU time per model (2 intra-op threads, batch 1) and one Yan-Sim tick.
Exits 1 when a contract or export check fails.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import KEYS, ddim_sample, load_episodes, psnr, round_weights_fp16, save_png, to_image, to_u8  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
KEYS_META = ",".join(KEYS)
EPS_META = {"wgraph.prediction": "epsilon", "wgraph.schedule": "scaled_linear", "wgraph.beta_start": "0.00085",
            "wgraph.beta_end": "0.012", "wgraph.train_steps": "1000", "wgraph.conditions": "action"}


def contract(lat):
    C, h, w = lat
    img = [3, 64, 64]
    vae = {"wgraph.latent_channels": "16", "wgraph.temporal_compression": "1", "wgraph.modality": "rgb",
           "wgraph.spatial_compression": str(64 // h), "wgraph.latent_scale": None}
    return {
        "vae_encoder": ("vae_encoder", [("image", img)], [("latent", lat)], vae),
        "vae_decoder": ("vae_decoder", [("latent", lat)], [("image", img)], vae),
        "dit_sim": ("denoiser", [("x", lat), ("t", []), ("context", lat), ("action", [1, 64])],
                    [("epsilon", lat)], EPS_META),
        "action_embedder": ("action_embedder", [("keys", [9])], [("token", [1, 64])], {"wgraph.keys": KEYS_META}),
        "idm": ("idm", [("frame_a", img), ("frame_b", img)], [("logits", [9])], {"wgraph.keys": KEYS_META}),
    }


FAIL = []


def check(ok, what):
    print(("  ok   " if ok else "  FAIL ") + what)
    if not ok:
        FAIL.append(what)


def session(path, threads=2):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def check_contract(name, sess, spec):
    role, ins, outs, meta = spec
    md = sess.get_modelmeta().custom_metadata_map
    check(md.get("wgraph.role") == role, f"{name}: wgraph.role = {role}")
    check(bool(md.get("wgraph.description")), f"{name}: wgraph.description present")
    for k, v in meta.items():
        check(k in md and (v is None or md[k] == v), f"{name}: {k} = {md.get(k)!r}" + ("" if v is None else f" (want {v})"))
    for io, want in ((sess.get_inputs(), ins), (sess.get_outputs(), outs)):
        check([i.name for i in io] == [n for n, _ in want], f"{name}: names {[i.name for i in io]}")
        for i, (n, shp) in zip(io, want):
            check(i.type == "tensor(float)" and i.shape == ["batch"] + shp, f"{name}: {n} {i.type} {i.shape}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=os.path.join(HERE, "..", "trained"))
    ap.add_argument("--ckpt", default="/work/ckpt")
    ap.add_argument("--val", default="/work/data/val")
    ap.add_argument("--ticks", type=int, default=32)
    ap.add_argument("--starts", type=int, default=0, help="rollouts (default: one per val episode, from frame 0)")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--strip", default=None, help="PNG: ground truth over generated frames of the first rollout")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    import train_sim

    d = os.path.abspath(args.dir)
    S = {n: session(os.path.join(d, n + ".onnx")) for n in ("vae_encoder", "vae_decoder", "dit_sim",
                                                            "action_embedder", "idm")}
    lat = S["vae_encoder"].get_outputs()[0].shape[1:]
    spec = contract(lat)
    print("== contract")
    for n, s in S.items():
        check_contract(n, s, spec[n])

    print("== onnxruntime vs torch (max abs diff < 1e-4)")
    ns = argparse.Namespace(ckpt=args.ckpt)
    senc, sdec = train_sim.load_vae(ns)
    dit, aemb = train_sim.load_dit(ns)
    from models import EpsWrapper

    wrap = EpsWrapper(dit).eval()
    idm = train_sim.load_idm(ns)
    for m in (senc, sdec, wrap, aemb, idm):
        round_weights_fp16(m)
    rng = np.random.default_rng(0)
    for B in (1, 3):
        img = rng.uniform(-1, 1, (B, 3, 64, 64)).astype(np.float32)
        img2 = rng.uniform(-1, 1, (B, 3, 64, 64)).astype(np.float32)
        z = rng.standard_normal((B, *lat)).astype(np.float32)
        c = rng.standard_normal((B, *lat)).astype(np.float32)
        t = rng.uniform(0, 999, B).astype(np.float32)
        keys = (rng.random((B, 9)) < 0.3).astype(np.float32)
        tok = S["action_embedder"].run(None, {"keys": keys})[0]
        cases = [
            ("vae_encoder", {"image": img}, lambda: senc(torch.from_numpy(img))),
            ("vae_decoder", {"latent": z}, lambda: sdec(torch.from_numpy(z))),
            ("action_embedder", {"keys": keys}, lambda: aemb(torch.from_numpy(keys))),
            ("dit_sim", {"x": z, "t": t, "context": c, "action": tok},
             lambda: wrap(torch.from_numpy(z), torch.from_numpy(t), torch.from_numpy(c), torch.from_numpy(tok))),
            ("idm", {"frame_a": img, "frame_b": img2}, lambda: idm(torch.from_numpy(img), torch.from_numpy(img2))),
        ]
        for n, feed, ref in cases:
            o = S[n].run(None, feed)[0]
            with torch.no_grad():
                r = ref().numpy()
            diff = float(np.abs(o - r).max())
            check(o.shape == r.shape and diff < 1e-4 and np.isfinite(o).all(), f"{n} batch {B}: max abs diff {diff:.2e}")

    if FAIL:
        print(f"{len(FAIL)} check(s) failed")
        sys.exit(1)

    # ---------------------------------------------------------------- quality (onnxruntime only)
    val = load_episodes(args.val, train=False)
    assert all(e["seed"] is None or e["seed"] >= 1000 for e in val), "validation must use held-out seeds"
    enc = lambda x: S["vae_encoder"].run(None, {"image": x})[0]  # noqa: E731
    dec = lambda z: S["vae_decoder"].run(None, {"latent": z})[0]  # noqa: E731
    emb = lambda k: S["action_embedder"].run(None, {"keys": k})[0]  # noqa: E731

    print("== VAE reconstruction (held-out frames)")
    rec = []
    for e in val:
        x = to_image(e["frames"]).numpy()
        rec.append(psnr(dec(enc(x)), x))
    rec = np.concatenate(rec)
    print(f"  reconstruction PSNR {rec.mean():.2f} dB over {len(rec)} frames (min {rec.min():.2f})")

    print(f"== Yan-Sim rollouts: {args.ticks} ticks, DDIM 4 steps trailing eta 0")
    T = args.ticks
    starts = [(i, 0) for i in range(len(val))]
    if args.starts:
        r2 = np.random.default_rng(1)
        starts = [(int(r2.integers(len(val))), 0) for _ in range(args.starts)]
        starts = [(e, int(r2.integers(0, len(val[e]["actions"]) - T + 1))) for e, _ in starts]
    starts = [(e, s) for e, s in starts if len(val[e]["actions"]) >= s + T]
    per_tick, gen_pairs, gen_frames = [], [], []
    nrng = np.random.default_rng(1234)
    for e, s in starts:
        f, a = val[e]["frames"], val[e]["actions"]
        ctx = enc(to_image(f[s:s + 1]).numpy())
        prev = to_image(f[s:s + 1]).numpy()
        pt, frames = [], []
        for k in range(T):
            tok = emb(a[s + k:s + k + 1])
            noise = nrng.standard_normal(ctx.shape).astype(np.float32)
            cur_ctx = ctx

            def eps_fn(x, tt, cur_ctx=cur_ctx, tok=tok):
                return S["dit_sim"].run(None, {"x": x.astype(np.float32), "t": np.full((1,), tt, np.float32),
                                               "context": cur_ctx, "action": tok})[0]

            z = ddim_sample(eps_fn, noise, 4, "trailing").astype(np.float32)
            img = dec(z)
            pt.append(float(psnr(img, to_image(f[s + k + 1:s + k + 2]).numpy())[0]))
            gen_pairs.append((prev, img, a[s + k]))
            frames.append(img[0])
            prev, ctx = img, z
        per_tick.append(pt)
        gen_frames.append((f[s + 1:s + 1 + T], np.stack(frames)))
    per_tick = np.array(per_tick)
    mean_tick = per_tick.mean(0)
    print("  PSNR per tick (mean over %d rollouts):" % len(per_tick))
    for k in range(T):
        print(f"    tick {k + 1:2d}: {mean_tick[k]:6.2f} dB")
    res = dict(rollouts=len(per_tick), one_tick_psnr=float(mean_tick[0]), psnr_mean_1_8=float(mean_tick[:8].mean()),
               psnr_mean_1_32=float(mean_tick[:32].mean()), psnr_per_tick=[round(float(v), 3) for v in mean_tick],
               reconstruction_psnr=float(rec.mean()))
    # one-tick PSNR over many held-out transitions (ground-truth context each time)
    one = []
    for e in val:
        f, a = e["frames"], e["actions"]
        idx = np.arange(0, len(a), 2)
        ctx = enc(to_image(f[idx]).numpy())
        tok = emb(a[idx])
        noise = nrng.standard_normal(ctx.shape).astype(np.float32)
        z = ddim_sample(lambda x, tt: S["dit_sim"].run(None, {"x": x.astype(np.float32),
                                                              "t": np.full((len(x),), tt, np.float32),
                                                              "context": ctx, "action": tok})[0], noise, 4)
        one.append(psnr(dec(z.astype(np.float32)), to_image(f[idx + 1]).numpy()))
    one = np.concatenate(one)
    res["one_tick_psnr_all_transitions"] = float(one.mean())
    res["one_tick_transitions"] = int(len(one))
    themes = sorted({val[e]["theme"] for e, _ in starts})
    res["per_theme"] = {}
    for th in themes:
        sel = [i for i, (e, _) in enumerate(starts) if val[e]["theme"] == th]
        pt = per_tick[sel]
        res["per_theme"][th] = dict(rollouts=len(sel), one_tick=float(pt[:, 0].mean()),
                                    mean_1_8=float(pt[:, :8].mean()), mean_1_32=float(pt[:, :32].mean()))
        print(f"  {th:8s} ({len(sel)} rollouts): tick 1 {pt[:, 0].mean():.2f}, ticks 1-8 {pt[:, :8].mean():.2f}, "
              f"ticks 1-{T} {pt.mean():.2f} dB")
    print(f"  one-tick PSNR (tick 1 of the rollouts): {res['one_tick_psnr']:.2f} dB")
    print(f"  one-tick PSNR (ground-truth context, {len(one)} held-out transitions): {one.mean():.2f} dB")
    print(f"  mean PSNR ticks 1-8: {res['psnr_mean_1_8']:.2f} dB, ticks 1-{T}: {mean_tick.mean():.2f} dB")

    print("== IDM (held-out)")
    P, Y = [], []
    for e in val:
        f, a = e["frames"], e["actions"]
        x = to_image(f).numpy()
        P.append(S["idm"].run(None, {"frame_a": x[:-1], "frame_b": x[1:]})[0] > 0)
        Y.append(a > 0.5)
    P, Y = np.concatenate(P), np.concatenate(Y)
    gt_exact = float((P == Y).all(1).mean())
    gt_key = (P == Y).mean(0)
    Pa = np.concatenate([S["idm"].run(None, {"frame_a": p, "frame_b": q})[0] > 0 for p, q, _ in gen_pairs])
    Ya = np.stack([a > 0.5 for _, _, a in gen_pairs])
    gen_exact = float((Pa == Ya).all(1).mean())
    gen_key = (Pa == Ya).mean(0)
    print(f"  ground-truth pairs ({len(Y)}): exact match {gt_exact:.4f}")
    print(f"  generated pairs ({len(Ya)}): exact match {gen_exact:.4f}  (ratio {gen_exact / max(gt_exact, 1e-9):.3f})")
    print("  per key      " + " ".join(f"{k:>6}" for k in KEYS))
    print("  gt  acc      " + " ".join(f"{v:6.3f}" for v in gt_key))
    print("  gen acc      " + " ".join(f"{v:6.3f}" for v in gen_key))
    print("  key freq     " + " ".join(f"{v:6.3f}" for v in Y.mean(0)))
    res.update(idm_exact_match_ground_truth=gt_exact, idm_per_key_ground_truth=dict(zip(KEYS, map(float, gt_key))),
               idm_exact_match_generated=gen_exact, idm_per_key_generated=dict(zip(KEYS, map(float, gen_key))))

    if args.strip and gen_frames:
        gt, gen = gen_frames[0]
        n = min(16, len(gt))
        save_png(args.strip, np.concatenate([np.concatenate(list(gt[:n]), 1),
                                             np.concatenate(list(to_u8(gen[:n])), 1)], 0))

    print("== latency (onnxruntime CPU, 2 intra-op threads, batch 1, median of %d)" % args.runs)
    feeds = {
        "vae_encoder": {"image": np.zeros((1, 3, 64, 64), np.float32)},
        "vae_decoder": {"latent": np.zeros((1, *lat), np.float32)},
        "action_embedder": {"keys": np.zeros((1, 9), np.float32)},
        "dit_sim": {"x": np.zeros((1, *lat), np.float32), "t": np.full((1,), 999.0, np.float32),
                    "context": np.zeros((1, *lat), np.float32), "action": np.zeros((1, 1, 64), np.float32)},
        "idm": {"frame_a": np.zeros((1, 3, 64, 64), np.float32), "frame_b": np.zeros((1, 3, 64, 64), np.float32)},
    }
    ms = {}
    for n, feed in feeds.items():
        for _ in range(5):
            S[n].run(None, feed)
        ts = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            S[n].run(None, feed)
            ts.append(time.perf_counter() - t0)
        ms[n] = 1000 * float(np.median(ts))
        size = os.path.getsize(os.path.join(d, n + ".onnx")) / 1e6
        print(f"  {n:16s} {size:6.3f} MB  {ms[n]:7.3f} ms")
    tick = ms["vae_encoder"] + ms["action_embedder"] + 4 * ms["dit_sim"] + ms["vae_decoder"]
    print(f"  Yan-Sim tick (encoder + action embedder + 4 x dit_sim + decoder): {tick:.2f} ms")
    res["latency_ms"] = ms
    res["tick_ms"] = tick
    if args.json:
        json.dump(res, open(args.json, "w"), indent=1)
    print("all checks passed")


if __name__ == "__main__":
    main()
