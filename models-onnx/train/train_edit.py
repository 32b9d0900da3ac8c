#!/usr/bin/env python3
"""Train Yan-Edit's visual renderer: depth latent + style prompt -> RGB latent (CPU, PyTorch).

    python3 train_edit.py styles                 # the theme prompts' embeddings, through `wgraph run`
    python3 train_edit.py render --minutes 10    # ControlNet branch + base renderer, trained jointly
    python3 train_edit.py export                 # -> ../trained/{controlnet,dit_render}.onnx

Yan-Edit splits a world into a mechanics simulator (depth; `train_sim.py --modality depth`) and a
renderer that paints RGB over it in the style of a prompt. The renderer here is a ControlNet
branch (x_t, t, hint = the depth latent) -> control, added to the hidden tokens of a base renderer
(x_t, t, style = text-encoder tokens of the prompt, control) -> velocity (rectified flow,
x_t = (1 − σ)·x0 + σ·ε, t = 1000σ). Control is zeroed for 15 % of the batch, so with
`controlnet { scale = 0 }` the base renders the style without geometry.

Styles: the three ground-truth themes are described by three prompts (`STYLE_PROMPTS`), encoded
by the shipped text encoder `models-onnx/text_encoder.onnx` (random weights, frozen: it stands
for a frozen T5/CLIP), exactly as the graph's `text_encoder` node encodes them: the `styles` stage
runs a one-node graph through `wgraph run` and keeps its output.

Needs the RGB latents (`train_sim.py latents`, --ckpt) and the depth latents
(`train_sim.py latents --modality depth`, --depth-ckpt). Seeds >= 1000 are never trained on.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (TrainLoop, export_onnx, flow_noise, load_episodes, psnr, record, run_graph_dump,  # noqa: E402
                    sample_sigma_gated, save_png, to_image, to_u8)
from models import ControlBranch, RenderDiT, VelocityWrapper, load_rgb_decoder, n_params  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

# theme (as in `wgraph dataset` / the `world` node) -> the prompt that names its look
STYLE_PROMPTS = {
    "dungeon": "an old brick dungeon",
    "neon": "a neon city at night",
    "forest": "a snowy forest",
}
THEMES = list(STYLE_PROMPTS)
GATE_SIGMA = 0.5  # x_t unseen for σ >= 0.5: all four σ of the graph's Euler (shift 5: 1, .94, .83, .63)
ENGINE_SIGMAS = [1.0, 0.9375, 0.8333, 0.625]


# ----------------------------------------------------------------------------------------
# Styles: encode the prompts with the engine itself
# ----------------------------------------------------------------------------------------


def encode_prompts(wgraph, prompts):
    """[len(prompts), L, D]: the shipped text encoder's output for each prompt, by `wgraph run`."""
    model = os.path.join(ROOT, "models-onnx", "text_encoder.onnx")
    return np.concatenate([
        run_graph_dump(wgraph, 'world { name = "style" fps = 1 resolution = 64x64 }\n'
                       f'model te = "{model}"\n'
                       f'node prompt: text_encoder {{ model = te, text = "{text}" }}\n'
                       'node dump: npy_dump { dir = "emb" }\n'
                       'prompt.embedding -> dump.tensor\n', 1)
        for text in prompts])


def make_styles(args):
    emb = encode_prompts(args.wgraph, [STYLE_PROMPTS[t] for t in THEMES])
    np.savez(os.path.join(args.ckpt, "styles.npz"), emb=emb, themes=np.array(THEMES),
             prompts=np.array([STYLE_PROMPTS[t] for t in THEMES]))
    d = [[float(np.abs(emb[i] - emb[j]).mean()) for j in range(len(THEMES))] for i in range(len(THEMES))]
    print(f"styles {emb.shape}; mean |difference| between prompts: {np.round(d, 3).tolist()}")


# ----------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------


def load_pairs(args, split):
    """(rgb latents [E][N,16,16,16], depth latents [E][N,4,16,16], theme index per episode)."""
    r = np.load(os.path.join(args.ckpt, f"latents_{split}.npz"))
    d = np.load(os.path.join(args.depth_ckpt, f"latents_{split}.npz"))
    names = [str(n) for n in r["names"]]
    assert names == [str(n) for n in d["names"]], "RGB and depth latents come from different datasets"
    n = int(r["n"])
    themes = [THEMES.index(name.rsplit("_", 1)[0]) for name in names]
    return [r[f"z{i}"] for i in range(n)], [d[f"z{i}"] for i in range(n)], themes, names


def build(args, zc, hc, latent):
    cb = ControlBranch(d=args.width, zc=zc, hint_channels=hc, gate_sigma=GATE_SIGMA, blocks=args.control_blocks)
    base = RenderDiT(d=args.width, depth=args.depth, latent=latent, zc=zc, gate_sigma=GATE_SIGMA)
    return cb, base


def render(cb, base, hint, style, sigmas=ENGINE_SIGMAS, seed=0, scale=1.0):
    """The graph's sampler: shifted Euler over `sigmas` then to 0, velocity from the wrapper."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((hint.shape[0], base.zc, hint.shape[2], hint.shape[3]), generator=g)
    wrap = VelocityWrapper(base)
    with torch.no_grad():
        for i, s in enumerate(sigmas):
            t = torch.full((x.shape[0],), 1000.0 * s)
            v = wrap(x, t, style, scale * cb(x, t, hint))
            nxt = sigmas[i + 1] if i + 1 < len(sigmas) else 0.0
            x = x + (nxt - s) * v
    return x


def val_metrics(args, cb, base, vr, vd, vt, styles, sdec, frames):
    """Held-out PSNR of rendered frames (ground-truth depth latents, the episode's own style), per
    theme; and with the control zeroed (style only) for comparison."""
    cb.eval()
    base.eval()
    res = {}
    for scale, key in ((1.0, "psnr"), (0.0, "psnr_no_control")):
        per = {t: [] for t in THEMES}
        for e in range(len(vr)):
            idx = np.arange(0, len(vr[e]), 4)
            hint = torch.from_numpy(vd[e][idx])
            st = styles[vt[e]].expand(len(idx), -1, -1)
            z = render(cb, base, hint, st, scale=scale)
            with torch.no_grad():
                img = sdec(z).numpy()
            per[THEMES[vt[e]]].append(psnr(img, to_image(frames[e][idx]).numpy()))
        res[key] = {t: round(float(np.concatenate(v).mean()), 2) for t, v in per.items() if v}
        res[key]["all"] = round(float(np.mean([np.concatenate(v).mean() for v in per.values() if v])), 2)
    cb.train()
    base.train()
    return res


def train_render(args):
    torch.manual_seed(0)
    R, D, T, names = load_pairs(args, "train")
    for n in names:
        if int(n.rsplit("_", 1)[1]) >= 1000:
            raise SystemExit(f"refusing to train on {n}: seed is held out (>= 1000)")
    vr, vd, vt, _ = load_pairs(args, "val")
    vframes = [e["frames"] for e in load_episodes(args.val, train=False)]
    styles = torch.from_numpy(np.load(os.path.join(args.ckpt, "styles.npz"))["emb"])
    sdec = load_rgb_decoder(args.ckpt)
    zc, hc, latent = R[0].shape[1], D[0].shape[1], R[0].shape[-1]
    cb, base = build(args, zc, hc, latent)
    resumed = None
    if args.resume:
        ck = torch.load(args.resume)
        cb.load_state_dict(ck["cb"])
        base.load_state_dict(ck["base"])
        resumed = dict(path=args.resume, steps=ck.get("steps"), minutes=ck.get("minutes"))
        print(f"resumed from {args.resume}")
    print(f"controlnet {n_params(cb)/1e6:.3f}M, renderer {n_params(base)/1e6:.3f}M params; "
          f"{sum(len(r) for r in R)} frames", flush=True)
    pairs = np.array([(e, i) for e in range(len(R)) for i in range(len(R[e]))])
    Rt = [torch.from_numpy(r) for r in R]
    Dt = [torch.from_numpy(d) for d in D]
    loop = TrainLoop(list(cb.parameters()) + list(base.parameters()), args.lr, args.minutes, "render",
                     ema=args.ema, log_every=args.log_every)
    rng = np.random.default_rng(0)
    while loop.running():
        sel = pairs[rng.integers(0, len(pairs), args.batch)]
        B = len(sel)
        x0 = torch.stack([Rt[e][i] for e, i in sel])
        hint = torch.stack([Dt[e][i] for e, i in sel])
        # the graph's hints are the depth simulator's predictions, not encodings of true depth
        hs = torch.from_numpy(rng.uniform(0, args.hint_noise, B).astype(np.float32)).view(-1, 1, 1, 1)
        hint = hint + hs * torch.randn_like(hint)
        style = styles[torch.tensor([T[e] for e, _ in sel])]
        sigma = sample_sigma_gated(B, rng, GATE_SIGMA, args.frac_gated)
        xt = flow_noise(x0, sigma)
        t = 1000.0 * sigma
        keep = torch.from_numpy((rng.random(B) >= args.control_dropout).astype(np.float32)).view(-1, 1, 1, 1)
        x0_hat = base(xt, t, style, keep * cb(xt, t, hint))
        loop.step(F.mse_loss(x0_hat, x0))
    minutes, step = loop.finish(), loop.steps
    metrics = val_metrics(args, cb, base, vr, vd, vt, styles, sdec, vframes)
    torch.save(dict(cb=cb.state_dict(), base=base.state_dict(), width=args.width, depth=args.depth,
                    control_blocks=args.control_blocks, zc=zc, hc=hc, latent=latent,
                    steps=step + ((resumed or {}).get("steps") or 0),
                    minutes=minutes + ((resumed or {}).get("minutes") or 0)),
               os.path.join(args.ckpt, "render.pt"))
    # a picture: ground truth, then the same depth rendered in each of the three styles
    cb.eval()
    base.eval()
    e = 0
    idx = np.arange(0, 64, 8)
    rows = [np.concatenate(list(vframes[e][idx]), 1)]
    for k in range(len(THEMES)):
        z = render(cb, base, torch.from_numpy(vd[e][idx]), styles[k].expand(len(idx), -1, -1))
        with torch.no_grad():
            rows.append(np.concatenate(list(to_u8(sdec(z))), 1))
    save_png(os.path.join(args.ckpt, "render_val.png"), np.concatenate(rows, 0))
    record(args, dict(model="controlnet+dit_render", data=dict(frames=int(len(pairs)), episodes=len(R)), steps=step,
                      batch=args.batch, minutes=round(minutes, 2), lr=args.lr, hint_noise=args.hint_noise,
                      control_dropout=args.control_dropout, frac_gated=args.frac_gated, resumed=resumed,
                      final_train_loss=loop.final_loss(), val=metrics,
                      params=n_params(cb) + n_params(base)))


def load_render(args):
    ck = torch.load(os.path.join(args.ckpt, "render.pt"))
    args.width, args.depth, args.control_blocks = ck["width"], ck["depth"], ck["control_blocks"]
    cb, base = build(args, ck["zc"], ck["hc"], ck["latent"])
    cb.load_state_dict(ck["cb"])
    base.load_state_dict(ck["base"])
    return cb.eval(), base.eval(), ck


def export(args):
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    cb, base, ck = load_render(args)
    zc, hc, h = ck["zc"], ck["hc"], ck["latent"]
    g = h // base.patch
    common = {"frame_size": 64, "hidden_width": 64}
    x = torch.zeros(1, zc, h, h)
    t = torch.full((1,), 999.0)
    export_onnx(cb, (x, t, torch.zeros(1, hc, h, h)), os.path.join(out, "controlnet.onnx"), ["x", "t", "hint"],
                ["control"], "controlnet",
                f"trained Yan-Edit ControlNet branch: (noisy RGB latent, t, depth-latent hint {hc}x{h}x{h}) -> "
                f"control features {ck['width']}x{g}x{g} added to the base renderer's patch tokens",
                dict(common, conditions="hint", hint_modality="depth", trained="true"))
    export_onnx(VelocityWrapper(base).eval(), (x, t, torch.zeros(1, 64, 64), torch.zeros(1, ck["width"], g, g)),
                os.path.join(out, "dit_render.onnx"), ["x", "t", "style", "control"], ["velocity"], "denoiser",
                f"trained Yan-Edit renderer: DiT ({ck['depth']} blocks, width {ck['width']}) over the RGB latent "
                f"({zc}x{h}x{h}); style prompt tokens pooled by attention into adaLN, ControlNet features added "
                "to the tokens; rectified-flow velocity (for sigma >= 0.5 the x0 estimate ignores x_t, so Euler "
                "with 4 steps at shift 5 returns the mean frame for the depth and style). Trained on the styles: "
                + "; ".join(f"{k}: \"{v}\"" for k, v in STYLE_PROMPTS.items()),
                dict(common, prediction="velocity", schedule="rectified_flow", time_scale=1000,
                     conditions="style,control", trained="true", style_prompts=json.dumps(STYLE_PROMPTS),
                     recommended_sampler="euler 4 steps, shift 5"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=["styles", "render", "export"])
    ap.add_argument("--ckpt", default="/work/ckpt", help="RGB VAE + latents (train_sim.py); renderer saved here")
    ap.add_argument("--depth-ckpt", default="/work/ckpt/depth", help="depth latents (train_sim.py --modality depth)")
    ap.add_argument("--val", default="/work/data/val")
    ap.add_argument("--out", default=os.path.join(HERE, "..", "trained"))
    ap.add_argument("--wgraph", default=os.path.join(ROOT, "target", "release", "wgraph"))
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=6e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--control-blocks", type=int, default=2)
    ap.add_argument("--hint-noise", type=float, default=0.3)
    ap.add_argument("--control-dropout", type=float, default=0.15)
    ap.add_argument("--frac-gated", type=float, default=0.75)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--resume", default=None, help="render checkpoint to continue from")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    {"styles": make_styles, "render": train_render, "export": export}[args.stage](args)


if __name__ == "__main__":
    main()
