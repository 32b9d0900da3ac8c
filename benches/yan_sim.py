"""Yan-Sim written the way a researcher would: onnxruntime + numpy, a plain loop.

The same models, sampler and shapes as graphs/yan-sim.world: encode the start
frame once; every tick, keys -> action MLP -> token, DDIM 4 steps (eta 0,
trailing spacing, scaled-linear betas) of the DiT on the previous latent, then
the decoder. No caching, no pipelining: one tick after the other.

`wgraph bench graphs/yan-sim.world --baseline python` runs this and the engine
alternately and reports the ratio. Alone:

    python3 benches/yan_sim.py --models models-onnx/trained --ticks 64 --rounds 3

prints one JSON line per timed round: {"ms_per_tick": ..., "ticks": ...}.
"""

import argparse
import json
import sys
import time

import numpy as np
import onnxruntime as ort


def alphas_cumprod(b0=0.00085, b1=0.012, steps=1000):
    betas = np.linspace(b0 ** 0.5, b1 ** 0.5, steps, dtype=np.float64) ** 2
    return np.cumprod(1.0 - betas)


def trailing_timesteps(n, t=1000):
    return (np.round(np.arange(t, 0, -t / n)) - 1).astype(np.int64)


KEYS = ["W", "A", "S", "D", "Left", "Right", "Up", "Down", "Space"]


def read_actions(path):
    rows = []
    with open(path) as f:
        for line in f:
            if line.lstrip().startswith("#"):
                continue
            line = line.split("#")[0].strip()
            held = set() if line in ("", "-") else {w.lower() for w in line.replace("+", " ").split()}
            rows.append(np.array([[1.0 if k.lower() in held else 0.0 for k in KEYS]], dtype=np.float32))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="models-onnx/trained")
    ap.add_argument("--actions", default="examples/actions/walk.txt")
    ap.add_argument("--ticks", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    so = ort.SessionOptions()
    cpu = ["CPUExecutionProvider"]
    enc = ort.InferenceSession(f"{args.models}/vae_encoder.onnx", so, providers=cpu)
    dec = ort.InferenceSession(f"{args.models}/vae_decoder.onnx", so, providers=cpu)
    dit = ort.InferenceSession(f"{args.models}/dit_sim.onnx", so, providers=cpu)
    mlp = ort.InferenceSession(f"{args.models}/action_embedder.onnx", so, providers=cpu)
    actions = read_actions(args.actions)
    ac = alphas_cumprod()
    ts = trailing_timesteps(args.steps)
    rng = np.random.default_rng(args.seed)
    start = rng.uniform(-1, 1, size=(1, 3, 64, 64)).astype(np.float32)

    def rollout(ticks):
        (latent,) = enc.run(None, {"image": start})
        context = latent
        frames = []
        for tick in range(ticks):
            keys = actions[tick] if tick < len(actions) else np.zeros((1, 9), np.float32)
            (token,) = mlp.run(None, {"keys": keys})
            x = rng.standard_normal((1, 16, 16, 16)).astype(np.float32)
            for i, t in enumerate(ts):
                (eps,) = dit.run(None, {"x": x, "t": np.array([t], np.float32), "context": context, "action": token})
                a_t = ac[t]
                a_p = ac[ts[i + 1]] if i + 1 < len(ts) else 1.0
                x0 = (x - np.sqrt(1 - a_t) * eps) / np.sqrt(a_t)
                x = (np.sqrt(a_p) * x0 + np.sqrt(1 - a_p) * eps).astype(np.float32)
            context = x
            (image,) = dec.run(None, {"latent": x})
            frames.append(image)
        return frames

    rollout(2)  # warm-up: first calls allocate
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        frames = rollout(args.ticks)
        elapsed = time.perf_counter() - t0
        assert all(np.isfinite(f).all() for f in frames)
        print(json.dumps({"ms_per_tick": elapsed * 1e3 / args.ticks, "ticks": args.ticks}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
