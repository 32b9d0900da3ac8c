#!/usr/bin/env python3
"""Fine-tune the shared RGB decoder on generated latents (issue 24 §4: rollouts that keep their detail).

Every trained graph decodes with `trained/vae_decoder.onnx`. It reconstructs the ground truth's own
latents with 0.8 of its high-frequency power, but the denoisers' rollout latents are smoother than any
encoded frame, and decoded as they are they keep a tenth of it. This stage keeps the encoder (so the
latent space, and every denoiser trained on it, stays as it is) and teaches the decoder to draw the
ground truth's frame from what the models actually generate (GameNGen's decoder fine-tuned on
generated latents):

    python3 train_decoder.py latents     # rollout latents of shipped graphs on training walks, by
                                         # `wgraph run` (each graph included, its sampler's latent dumped)
    python3 train_decoder.py dec --minutes 30    # from trained/vae_decoder.onnx's weights (or --resume)
    python3 train_decoder.py export      # -> ../trained/vae_decoder_rollout.onnx (fp16), ORT vs torch check
    python3 train_decoder.py pack        # fp16 state dict -> ckpt/decoder_rollout_fp16.pt (resumes)
    python3 train_decoder.py latents --events && python3 train_decoder.py dec --events --resume ... \
        --ckpt DIR && python3 train_decoder.py export --events --ckpt DIR   # -> vae_decoder_events.onnx

Pairs: (a) a rollout latent of tick t of a training walk -> the ground-truth frame t+1 of the same walk
(ticks before the walk's first scripted event: the graphs do not script the walks' events), from
`yan-sim` (DDIM 4), `yume` (Euler 4) and `yume15` (its first 20 ticks, before its own scripted ghost);
(b) the ground truth's encoded frames -> themselves, so the decoder still reconstructs; with `--events`
(`latents --events`, then `dec --events`), (c) yume15's rollouts of training walks whose script starts
snow, under that script, paired with the truth's frames where no ghost or door is on (`--event-frac` of
the rollout draws): the decoder learns to draw the snow the model can only hint at.
Loss: L1 + `--hf-weight` × the L1 between the two frames' local high-frequency energy maps (luma minus
its 3×3 box blur, squared, averaged over 8×8 cells — the quantity `wgraph eval`'s detail figure sums):
the decoder must put detail where the truth has it without matching its exact phase, which no model
that drifted from the truth could. Seeds >= 1000 are never trained on.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TRAINED = os.path.join(ROOT, "models-onnx", "trained")
sys.path.insert(0, HERE)
from common import export_onnx, psnr, record, round_weights_fp16, save_png, to_image, to_u8, TrainLoop  # noqa: E402
from models import Decoder, ScaledDecoder, n_params  # noqa: E402

HELD_OUT_SEED = 1000
# graph, ticks per walk: yume15 scripts "a ghost appears" at tick 20 (the walks do not).
GRAPHS = [("yan-sim", 32), ("yume", 32), ("yume15", 20)]
# `--events`: yume15 on walks whose script starts snow before tick 24, the walk's own script handed to
# the graph's event stream (as `wgraph eval --instructions` does); pairs whose target frame has no ghost
# and no open door (the decoder learns to draw snow and darkness from what the model makes of them, and
# is not asked to turn the model's ghost flood into the truth's sprite).
EVENT_SOURCE, EVENT_TICKS, EVENT_CHANNELS = "yume15-events", 32, ("ghost", "dark", "snow", "door")


def onnx_weights(path):
    """Initializers of an exported wgraph model, fp16 ones cast back to f32 under their torch names."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(path)
    out = {}
    for init in m.graph.initializer:
        name = init.name[:-len("_fp16")] if init.name.endswith("_fp16") else init.name
        out[name] = torch.from_numpy(numpy_helper.to_array(init).astype(np.float32).copy())
    meta = {p.key: p.value for p in m.metadata_props}
    return out, meta


def shipped_decoder():
    """trained/vae_decoder.onnx as a torch ScaledDecoder (same weights), plus its metadata."""
    w, meta = onnx_weights(os.path.join(TRAINED, "vae_decoder.onnx"))
    scale = float(meta["wgraph.latent_scale"])
    shift = json.loads(meta["wgraph.latent_shift"])
    dec = ScaledDecoder(Decoder(int(meta["wgraph.spatial_compression"])), shift, scale)
    state = {k: v for k, v in w.items() if k.startswith("dec.")}
    state["shift"] = w["shift"]
    missing, unexpected = dec.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise SystemExit(f"vae_decoder.onnx does not match models.Decoder: missing {missing}, unexpected {unexpected}")
    return dec, meta


def walk_dirs(root, n, seed=7):
    dirs = sorted(d for d in glob.glob(os.path.join(root, "*_*")) if os.path.isfile(os.path.join(d, "frames.npy")))
    for d in dirs:
        if int(d.rsplit("_", 1)[1]) >= HELD_OUT_SEED:
            raise SystemExit(f"refusing to train on {d}: seed is held out (>= {HELD_OUT_SEED})")
    rng = np.random.default_rng(seed)
    return [dirs[i] for i in rng.permutation(len(dirs))[:n]]


def rollout(wgraph, graph, walk, ticks, tmp, sets=()):
    """Latents a shipped graph generates on a walk (its start frame and keys, `sets` more `--set`s):
    [ticks, 16, h, w]."""
    from PIL import Image

    frames = np.load(os.path.join(walk, "frames.npy"))
    Image.fromarray(frames[0]).save(os.path.join(tmp, "start.png"))
    world = os.path.join(tmp, "dump.world")
    with open(world, "w") as f:
        f.write(f'world {{ name = "{graph}-latents" }}\ninclude "{os.path.join(ROOT, "graphs", graph + ".world")}"\n'
                'node dump: npy_dump { dir = "z", prefix = "z" }\nsampler.latent -> dump.tensor\n')
    out = os.path.join(tmp, "out")
    subprocess.run([wgraph, "run", world, "--frames", str(ticks), "--actions", os.path.join(walk, "actions.txt"),
                    "--set", f'start.path="{os.path.join(tmp, "start.png")}"', "--out", out]
                   + [a for kv in sets for a in ("--set", kv)],
                   check=True, stdout=subprocess.DEVNULL)
    return np.concatenate([np.load(os.path.join(out, "z", f"z_{t:05d}.npy")) for t in range(ticks)])


def first_event_tick(walk, ticks):
    with open(os.path.join(walk, "captions.json")) as f:
        cap = json.load(f)
    return min([e["tick"] for e in cap.get("events", [])] + [ticks])


def event_schedule_set(walk):
    """`events.schedule=[...]` of yume15's prompt_schedule for a walk's own script: tick 0 the global
    caption, then each event's caption at its tick (one tick's captions joined by " and "), as
    `wgraph eval --instructions` builds it."""
    with open(os.path.join(walk, "captions.json")) as f:
        cap = json.load(f)
    entries = [[0, cap["global"]]]
    for e in cap.get("events", []):
        if entries[-1][0] == e["tick"]:
            entries[-1][1] += ("; " if e["tick"] == 0 else " and ") + e["caption"]
        else:
            entries.append([e["tick"], e["caption"]])
    return "events.schedule=[" + ", ".join(f'"{t}: {c}"' for t, c in entries) + "]"


def snow_walks(root, n, seed=11):
    """Training walks whose script starts snow before tick 24 (seeded order, at most n)."""
    out = []
    for d in walk_dirs(root, 10 ** 9, seed):
        with open(os.path.join(d, "captions.json")) as f:
            evs = json.load(f).get("events", [])
        if any(e["caption"] == "it starts to snow" and e["tick"] < 24 for e in evs):
            out.append(d)
    return out[:n]


def write_pairs(path, label, walks, pairs_of):
    """Rollout pairs of `walks` into `path` (unless it exists): `pairs_of(walk, tmp)` gives the walk's
    latents, their target frames and ticks."""
    if os.path.exists(path):
        print("have", path)
        return
    Z, X, T, names = [], [], [], []
    for k, walk in enumerate(walks):
        with tempfile.TemporaryDirectory() as tmp:
            z, x, t = pairs_of(walk, tmp)
        Z.append(z), X.append(x), T.append(t)
        names.append(os.path.basename(walk))
        if k % 25 == 0:
            print(f"{label}: walk {k}/{len(walks)}", flush=True)
    np.savez_compressed(path, z=np.concatenate(Z).astype(np.float32), x=np.concatenate(X),
                        t=np.concatenate(T), names=np.array(names))
    print("wrote", path, sum(len(z) for z in Z), "pairs", flush=True)


def event_pairs(wgraph):
    """yume15 under the walk's own script; frames with a ghost or an open door left out."""
    def pairs_of(walk, tmp):
        z = rollout(wgraph, "yume15", walk, EVENT_TICKS, tmp, [event_schedule_set(walk)])
        frames, ev = np.load(os.path.join(walk, "frames.npy")), np.load(os.path.join(walk, "events.npy"))
        on = ev[1:1 + len(z)]
        keep = (on[:, EVENT_CHANNELS.index("ghost")] < 0.5) & (on[:, EVENT_CHANNELS.index("door")] < 0.5)
        return z[keep], frames[1:1 + len(z)][keep], np.arange(len(z))[keep]
    return pairs_of


def graph_pairs(wgraph, graph, ticks):
    """A graph's rollout up to the walk's first scripted event."""
    def pairs_of(walk, tmp):
        z = rollout(wgraph, graph, walk, ticks, tmp)[:first_event_tick(walk, ticks)]
        return z, np.load(os.path.join(walk, "frames.npy"))[1:1 + len(z)], np.arange(len(z))
    return pairs_of


def make_latents(args):
    os.makedirs(args.ckpt, exist_ok=True)
    if args.events:
        write_pairs(os.path.join(args.ckpt, f"lat_{EVENT_SOURCE}.npz"), EVENT_SOURCE,
                    snow_walks(args.data, args.walks), event_pairs(args.wgraph))
        return
    walks = walk_dirs(args.data, args.walks)
    for graph, ticks in GRAPHS:
        write_pairs(os.path.join(args.ckpt, f"lat_{graph}.npz"), graph, walks, graph_pairs(args.wgraph, graph, ticks))


def encoded_truth(args, n):
    """The ground truth's frames and their latents by trained/vae_encoder.onnx (pairs of kind b)."""
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.intra_op_num_threads = args.threads
    enc = ort.InferenceSession(os.path.join(TRAINED, "vae_encoder.onnx"), o, providers=["CPUExecutionProvider"])
    frames = np.concatenate([np.load(os.path.join(w, "frames.npy"))[::4] for w in walk_dirs(args.data, n, seed=11)])
    x = to_image(frames).numpy()
    z = np.concatenate([enc.run(None, {"image": x[i:i + 256]})[0] for i in range(0, len(x), 256)])
    return z.astype(np.float32), frames


def luma(img):
    """[B,3,H,W] in [-1,1] -> luma [B,1,H,W] in 0..255 (eval's weights)."""
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return ((img + 1) * 127.5 * w).sum(1, keepdim=True)


def hf_map(img, cell=8):
    """Local high-frequency energy: (luma - 3x3 box blur)^2 averaged over cell x cell (edges replicated)."""
    y = luma(img)
    blur = F.avg_pool2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return F.avg_pool2d((y - blur) ** 2, cell)


def hf_power(img):
    return hf_map(img, img.shape[-1]).flatten()


def load_pairs(args):
    """Rollout pairs of every source (and `--events`' source when its latents exist), with each
    pair's sampling weight: `--event-frac` of the draws go to the event source's pairs."""
    zs, xs, src = [], [], []
    names = [g for g, _ in GRAPHS] + ([EVENT_SOURCE] if args.events else [])
    for i, graph in enumerate(names):
        d = np.load(os.path.join(args.ckpt, f"lat_{graph}.npz"))
        zs.append(d["z"]), xs.append(d["x"]), src.append(np.full(len(d["z"]), i))
        print(f"{graph}: {len(d['z'])} rollout pairs", flush=True)
    src = np.concatenate(src)
    w = np.ones(len(src))
    if args.events:
        ev = src == len(names) - 1
        w[ev] = args.event_frac / ev.sum()
        w[~ev] = (1 - args.event_frac) / (~ev).sum()
    return np.concatenate(zs), np.concatenate(xs), w / w.sum()


def val_pairs(args):
    """Held-out rollouts (seeds 1000..): the same graphs on the validation walks, for the figures."""
    path = os.path.join(args.ckpt, "lat_val.npz")
    if not os.path.exists(path):
        dirs = sorted(d for d in glob.glob(os.path.join(args.val, "*_*"))
                      if int(d.rsplit("_", 1)[1]) >= HELD_OUT_SEED)[:args.val_walks]
        Z, X, T, G = [], [], [], []
        for gi, (graph, ticks) in enumerate(GRAPHS):
            pairs_of = graph_pairs(args.wgraph, graph, ticks)
            for walk in dirs:
                with tempfile.TemporaryDirectory() as tmp:
                    z, x, t = pairs_of(walk, tmp)
                Z.append(z), X.append(x), T.append(t), G.append(np.full(len(z), gi))
        np.savez_compressed(path, z=np.concatenate(Z).astype(np.float32), x=np.concatenate(X),
                            t=np.concatenate(T), g=np.concatenate(G))
    d = np.load(path)
    return d["z"], d["x"], d["t"], d["g"]


def figures(dec, z, x, t, g):
    """Per graph: PSNR and detail (HF power over the truth's) in ticks 1-8 and 9-32 of held-out rollouts."""
    out = {}
    with torch.no_grad():
        y = torch.cat([dec(torch.from_numpy(z[i:i + 256])) for i in range(0, len(z), 256)])
    truth = to_image(x)
    p = psnr(y.numpy(), truth.numpy())
    ratio = (hf_power(y) / hf_power(truth).clamp_min(1e-6)).numpy()
    for gi, (graph, _) in enumerate(GRAPHS):
        row = {}
        for lo, hi in ((0, 8), (8, 32)):
            m = (g == gi) & (t >= lo) & (t < hi)
            if m.any():
                row[f"psnr_{lo + 1}_{hi}"] = round(float(p[m].mean()), 2)
                row[f"detail_{lo + 1}_{hi}"] = round(float(ratio[m].mean()), 3)
        out[graph] = row
    return out, y


def train_dec(args):
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    z_roll, x_roll, w_roll = load_pairs(args)
    z_gt, x_gt = encoded_truth(args, args.walks)
    print(f"{len(z_roll)} rollout pairs, {len(z_gt)} reconstruction pairs", flush=True)
    if args.resume:
        ck = torch.load(args.resume)
        dec, _ = shipped_decoder()
        dec.load_state_dict({k: v.float() for k, v in ck["model"].items()})
        done_steps, done_minutes, runs = ck["steps"], ck["minutes"], ck.get("runs", [])
    else:
        dec, _ = shipped_decoder()
        done_steps, done_minutes, runs = 0, 0.0, []
    vz, vx, vt, vg = val_pairs(args)
    before, _ = figures(dec.eval(), vz, vx, vt, vg)
    print("before:", json.dumps(before), flush=True)
    dec.train()
    loop = TrainLoop(dec.parameters(), args.lr, args.minutes, "decoder", ema=args.ema, log_every=args.log_every)
    rng = np.random.default_rng(done_steps + 1)
    path = os.path.join(args.ckpt, "decoder_rollout.pt")

    def save(minutes, final=False):
        run = dict(steps=loop.steps, minutes=round(minutes, 2), lr=args.lr, batch=args.batch, hf_weight=args.hf_weight,
                   final_train_loss=round(loop.final_loss(), 4) if loop.hist else None)
        torch.save(dict(model=dec.state_dict(), steps=done_steps + loop.steps, minutes=done_minutes + minutes,
                        runs=runs + [run], final=final), path)

    n_gt = max(1, int(args.batch * args.recon_frac))
    while loop.running():
        i = rng.choice(len(z_roll), size=args.batch - n_gt, p=w_roll)
        j = rng.integers(len(z_gt), size=n_gt)
        z = torch.from_numpy(np.concatenate([z_roll[i], z_gt[j]]))
        x = to_image(np.concatenate([x_roll[i], x_gt[j]]))
        y = dec(z)
        loss = (y - x).abs().mean() + args.hf_weight * (hf_map(y) - hf_map(x)).abs().mean() / 100.0
        loop.step(loss)
        if loop.steps % args.save_every == 0:
            save(loop.timer.minutes())
    minutes = loop.finish()
    save(minutes, final=True)
    dec.eval()
    after, y = figures(dec, vz, vx, vt, vg)
    print("after:", json.dumps(after), flush=True)
    pick = np.flatnonzero((vg == 0) & (vt % 4 == 0))[:8]
    with torch.no_grad():
        shipped, _ = shipped_decoder()
        y0 = shipped.eval()(torch.from_numpy(vz[pick])).numpy()
    save_png(os.path.join(args.ckpt, "decoder_val.png"),
             np.concatenate([np.concatenate(list(vx[pick]), 1), np.concatenate(list(to_u8(y0)), 1),
                             np.concatenate(list(to_u8(y[pick].numpy())), 1)], 0))
    record(args, dict(model="vae_decoder_rollout (shipped decoder fine-tuned on rollout latents)",
                      data=dict(rollout_pairs=int(len(z_roll)), reconstruction_pairs=int(len(z_gt)),
                                graphs=[g for g, _ in GRAPHS] + ([EVENT_SOURCE] if args.events else [])),
                      event_frac=args.event_frac if args.events else 0.0,
                      steps=done_steps + loop.steps, run_steps=loop.steps, batch=args.batch, lr=args.lr,
                      minutes=round(minutes, 2), resumed_from=args.resume, hf_weight=args.hf_weight,
                      recon_frac=args.recon_frac, threads=args.threads, final_train_loss=loop.final_loss(),
                      val_before=before, val_after=after, params=n_params(dec)))


def load_trained(args):
    dec, meta = shipped_decoder()
    ck = torch.load(args.resume or os.path.join(args.ckpt, "decoder_rollout.pt"))
    dec.load_state_dict({k: v.float() for k, v in ck["model"].items()})
    return dec.eval(), meta, ck


def export(args):
    import onnxruntime as ort

    dec, meta, ck = load_trained(args)
    round_weights_fp16(dec)
    keep = {k[len("wgraph."):]: v for k, v in meta.items()
            if k.startswith("wgraph.") and k not in ("wgraph.role", "wgraph.description", "wgraph.weight_storage")}
    graphs = [g for g, _ in GRAPHS] + ([EVENT_SOURCE] if args.events else [])
    keep["fine_tuned"] = f"on rollout latents of {', '.join(graphs)}; {ck['steps']} steps"
    out = os.path.join(args.out, "vae_decoder_events.onnx" if args.events else "vae_decoder_rollout.onnx")
    lat = torch.zeros(1, 16, 16, 16)
    export_onnx(dec, (lat,), out, ["latent"], ["image"], "vae_decoder",
                "trained lightweight RGB decoder fine-tuned on generated latents (train_decoder.py): the shipped "
                "vae_decoder.onnx taught to draw the ground truth's frame from what the denoisers generate"
                + (" (and the snow and darkness yume15 hints at under its event text)" if args.events else "")
                + "; same "
                "latent space (4x upsampling, tanh output in [-1,1]; undoes latent_scale/latent_shift)", keep)
    z = torch.randn(4, 16, 16, 16)
    with torch.no_grad():
        ref = dec(z).numpy()
    got = ort.InferenceSession(out, providers=["CPUExecutionProvider"]).run(None, {"latent": z.numpy()})[0]
    print(f"wrote {out}; ORT vs torch max |diff| {np.abs(got - ref).max():.2e}")


def pack(args):
    _, _, ck = load_trained(args)
    small = dict(ck, model={k: v.half() for k, v in ck["model"].items()})
    torch.save(small, args.pack_to)
    print(f"wrote {args.pack_to} ({os.path.getsize(args.pack_to) / 1e6:.2f} MB)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=["latents", "dec", "export", "pack"])
    ap.add_argument("--ckpt", default="/work/ckpt/dec")
    ap.add_argument("--data", default="/work/data/gen", help="`wgraph dataset --events auto` training walks")
    ap.add_argument("--val", default="/work/data/gen-val", help="held-out walks (seeds >= 1000)")
    ap.add_argument("--walks", type=int, default=200)
    ap.add_argument("--val-walks", type=int, default=10)
    ap.add_argument("--wgraph", default=os.path.join(ROOT, "target", "release", "wgraph"))
    ap.add_argument("--out", default=TRAINED)
    ap.add_argument("--pack-to", default=os.path.join(HERE, "ckpt", "decoder_rollout_fp16.pt"))
    ap.add_argument("--resume", default=None, help="continue from decoder_rollout.pt or ckpt/decoder_rollout_fp16.pt")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--hf-weight", type=float, default=1.0)
    ap.add_argument("--recon-frac", type=float, default=0.25)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--save-every", type=int, default=100)
    ap.add_argument("--events", action="store_true",
                    help="latents: yume15 rollouts of snow walks under their own event scripts; dec: train on "
                         "them too (--event-frac of the rollout draws)")
    ap.add_argument("--event-frac", type=float, default=0.3)
    args = ap.parse_args()
    {"latents": make_latents, "dec": train_dec, "export": export, "pack": pack}[args.stage](args)


if __name__ == "__main__":
    main()
