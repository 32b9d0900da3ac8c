#!/usr/bin/env python3
"""Verify the models in models-onnx/ against the wgraph model contract, with onnxruntime.

    python3 models-onnx/check.py                 # checks the shipped 64x64 models
    python3 models-onnx/check.py --dir /tmp/m128 # checks a `export.py --size 128` build

For every model: metadata keys, input/output names, dtypes and shapes (symbolic `batch`),
then random inputs at batch 1 and batch 2: outputs finite, non-constant, batch items
independent (row 0 of the batch-2 run equals the batch-1 run), every input changes the
output. Prints file size and median CPU latency (batch 1, --threads intra-op threads), and
the cost of one Yan-Sim tick (encoder + action embedder + 4 denoiser calls + decoder).
Exits 1 on any failure.
"""

import argparse
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import script_env  # noqa: E402  (a venv with requirements.txt when numpy & co. are missing)

script_env.ensure(["numpy", "onnxruntime"])

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

D, L, C, MEM = 64, 64, 16, 32
KEYS = "W,A,S,D,Left,Right,Up,Down,Space"
EPS = {"wgraph.prediction": "epsilon", "wgraph.schedule": "scaled_linear", "wgraph.beta_start": "0.00085",
       "wgraph.beta_end": "0.012", "wgraph.train_steps": "1000"}
VEL = {"wgraph.prediction": "velocity"}


def contract(frame):
    """name -> (role, inputs [(name, dtype, shape without batch)], outputs, required metadata)."""
    s = frame // 16
    lat = [C, s, s]
    img = [3, frame, frame]
    dep = [1, frame, frame]
    f, i = "float", "int64"
    vae = {"wgraph.latent_channels": "16", "wgraph.spatial_compression": "16", "wgraph.temporal_compression": "1"}
    return {
        "vae_encoder": ("vae_encoder", [("image", f, img)], [("latent", lat)], dict(vae, **{"wgraph.modality": "rgb"})),
        "vae_decoder": ("vae_decoder", [("latent", f, lat)], [("image", img)], dict(vae, **{"wgraph.modality": "rgb"})),
        "depth_encoder": ("vae_encoder", [("depth", f, dep)], [("latent", lat)], dict(vae, **{"wgraph.modality": "depth"})),
        "depth_decoder": ("vae_decoder", [("latent", f, lat)], [("depth", dep)], dict(vae, **{"wgraph.modality": "depth"})),
        "image_encoder": ("image_encoder", [("image", f, img)], [("embedding", [1, D])], {}),
        "text_encoder": ("text_encoder", [("tokens", i, [L])], [("embedding", [L, D])], {"wgraph.tokenizer": None}),
        "action_embedder": ("action_embedder", [("keys", f, [9])], [("token", [1, D])], {"wgraph.keys": KEYS}),
        "dit_sim": ("denoiser", [("x", f, lat), ("t", f, []), ("context", f, lat), ("action", f, [1, D])],
                    [("epsilon", lat)], dict(EPS, **{"wgraph.conditions": "action"})),
        "dit_gen": ("denoiser", [("x", f, lat), ("t", f, []), ("context", f, lat), ("global_text", f, [L, D]),
                                 ("local_text", f, [L, D]), ("image", f, [1, D]), ("action", f, [1, D])],
                    [("velocity", lat)], dict(VEL, **{"wgraph.conditions": "global_text,local_text,image,action"})),
        "dit_depth": ("denoiser", [("x", f, lat), ("t", f, []), ("context", f, lat), ("structure", f, [L, D]),
                                   ("action", f, [1, D])],
                      [("epsilon", lat)], dict(EPS, **{"wgraph.conditions": "structure,action"})),
        "controlnet": ("controlnet", [("x", f, lat), ("t", f, []), ("hint", f, lat)], [("control", [D, s, s])],
                       {"wgraph.hidden_width": "64"}),
        "dit_render": ("denoiser", [("x", f, lat), ("t", f, []), ("style", f, [L, D]), ("control", f, [D, s, s])],
                       [("velocity", lat)], dict(VEL, **{"wgraph.conditions": "style,control"})),
        "dit_yume": ("denoiser", [("x", f, lat), ("t", f, []), ("cond", f, [17, s, s]), ("text", f, [L, D]),
                                  ("memory", f, [MEM, 16])],
                     [("velocity", lat)], dict(VEL, **{"wgraph.conditions": "text,memory,cond"})),
        "dit_yume15": ("denoiser", [("x", f, lat), ("t", f, []), ("cond", f, [17, s, s]), ("event_text", f, [L, D]),
                                    ("action_text", f, [L, D]), ("memory", f, [MEM, D])],
                       [("velocity", lat)], dict(VEL, **{"wgraph.conditions": "event_text,action_text,memory,cond"})),
    }


def random_input(rng, name, dtype, shape, batch, vocab_size):
    full = [batch] + shape
    if dtype == "int64":  # token ids: words, then right padding
        tok = rng.integers(2, vocab_size, size=full).astype(np.int64)
        tok[:, 12:] = 0
        return tok
    if name == "keys":
        return (rng.random(full) < 0.4).astype(np.float32)
    if name == "t":
        return rng.uniform(0, 999, size=full).astype(np.float32)
    if name in ("image", "depth") and len(shape) == 3:
        return rng.uniform(-1, 1, size=full).astype(np.float32)
    return rng.standard_normal(full).astype(np.float32)


WORD_RE = re.compile(r"[^\W_]+|\S")


def check_tokenizer(tk, problems):
    for k, v in {"type": "word", "lowercase": True, "max_length": L, "pad_id": 0, "unk_id": 1}.items():
        if tk.get(k) != v:
            problems.append(f"tokenizer {k}={tk.get(k)!r}, want {v!r}")
    vocab = tk["vocab"]
    if vocab[:2] != ["[pad]", "[unk]"] or len(set(vocab)) != len(vocab):
        problems.append("tokenizer vocab must start [pad],[unk] and have no duplicates")
    index = {w: i for i, w in enumerate(vocab)}
    sentences = [
        "This video depicts a city walk scene with a first-person view (FPV).Person moves forward and left (W+A)."
        "Camera tilts down and turns right (↓→).Actual distance moved:4 at 100 meters per second.Angular change "
        "rate (turn speed):0.View rotation speed:0.",
        "First-person perspective.The camera pushes forward (W).The camera pans to the left (←).The camera's "
        "movement direction remains stationary (·).The rotation direction of the camera remains stationary (·).",
        "A ghost appears in the neon city street at night.",
    ]
    for s in sentences:
        unk = [w for w in WORD_RE.findall(s.lower()) if w not in index]
        if unk:
            problems.append(f"tokenizer: unknown words {unk} in {s[:40]!r}")
    return len(vocab)


def median_ms(sess, feed, runs):
    sess.run(None, feed)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=here)
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads (default 2)")
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_args()

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    load = lambda n: ort.InferenceSession(os.path.join(args.dir, n + ".onnx"), opts, providers=["CPUExecutionProvider"])  # noqa: E731

    frame = int(load("vae_encoder").get_modelmeta().custom_metadata_map["wgraph.frame_size"])
    spec = contract(frame)
    rng = np.random.default_rng(0)
    print(f"onnxruntime {ort.__version__}, {args.threads} intra-op threads, {os.cpu_count()} CPUs visible, "
          f"frames {frame}x{frame}, dir {args.dir}")
    print(f"{'model':18s} {'role':16s} {'size MB':>8s} {'b1 ms':>8s} {'b2 ms':>8s}  output std  status")
    failures, total, lat, vocab_size = 0, 0, {}, 2
    for name, (role, ins, outs, meta) in spec.items():
        problems = []
        path = os.path.join(args.dir, name + ".onnx")
        size = os.path.getsize(path)
        total += size
        sess = load(name)
        md = sess.get_modelmeta().custom_metadata_map
        need = dict(meta, **{"wgraph.role": role, "wgraph.description": None})
        for k, v in need.items():
            if k not in md or (v is not None and md[k] != v):
                problems.append(f"metadata {k}={md.get(k)!r}, want {v!r}")
        if "wgraph.tokenizer" in md:
            vocab_size = check_tokenizer(json.loads(md["wgraph.tokenizer"]), problems)
        got_in = [(i.name, i.type, i.shape) for i in sess.get_inputs()]
        want_in = [(n, f"tensor({dt})", ["batch"] + sh) for n, dt, sh in ins]
        if got_in != want_in:
            problems.append(f"inputs {got_in} != {want_in}")
        got_out = [(o.name, o.type, o.shape) for o in sess.get_outputs()]
        want_out = [(n, "tensor(float)", ["batch"] + sh) for n, sh in outs]
        if got_out != want_out:
            problems.append(f"outputs {got_out} != {want_out}")
        if problems:
            failures += 1
            print(f"{name:18s} FAIL: " + "; ".join(problems))
            continue

        feed2 = {n: random_input(rng, n, dt, sh, 2, vocab_size) for n, dt, sh in ins}
        feed1 = {n: v[:1] for n, v in feed2.items()}
        y2 = sess.run(None, feed2)[0]
        y1 = sess.run(None, feed1)[0]
        oname, oshape = outs[0]
        if list(y2.shape) != [2] + oshape or list(y1.shape) != [1] + oshape:
            problems.append(f"output shape {y1.shape}/{y2.shape}")
        if not (np.isfinite(y2).all() and np.isfinite(y1).all()):
            problems.append("non-finite output")
        std = float(y1.std())
        if std < 1e-3:
            problems.append(f"constant output (std {std:.2e})")
        if np.abs(y2[0] - y2[1]).max() < 1e-5:
            problems.append("batch items give the same output")
        if np.abs(y2[:1] - y1).max() > 1e-4 * (1 + np.abs(y1).max()):
            problems.append("batch-2 row 0 differs from batch-1 run")
        if role == "vae_decoder" and np.abs(y2).max() > 1.0:
            problems.append("decoder output outside [-1, 1]")
        for n, dt, sh in ins:  # every input must matter
            other = dict(feed1, **{n: random_input(rng, n, dt, sh, 1, vocab_size)})
            if np.array_equal(other[n], feed1[n]):
                other[n] = 1 - other[n]
            if np.abs(sess.run(None, other)[0] - y1).max() < 1e-5:
                problems.append(f"input {n} has no effect")
        ms1 = median_ms(sess, feed1, args.runs)
        ms2 = median_ms(sess, feed2, args.runs)
        lat[name] = ms1
        status = "ok" if not problems else "FAIL: " + "; ".join(problems)
        failures += bool(problems)
        print(f"{name:18s} {role:16s} {size / 1e6:8.3f} {ms1:8.3f} {ms2:8.3f}  {std:10.3f}  {status}")
    print(f"{'total':35s} {total / 1e6:8.3f}")
    if all(k in lat for k in ("vae_encoder", "action_embedder", "dit_sim", "vae_decoder")):
        tick = lat["vae_encoder"] + lat["action_embedder"] + 4 * lat["dit_sim"] + lat["vae_decoder"]
        print(f"Yan-Sim tick (encoder + action embedder + 4 x dit_sim + decoder, batch 1): {tick:.2f} ms")
    if all(k in lat for k in ("controlnet", "dit_render", "dit_depth", "depth_decoder", "vae_decoder")):
        tick = 4 * (lat["dit_depth"] + lat["controlnet"] + lat["dit_render"]) + lat["depth_decoder"] + lat["vae_decoder"]
        print(f"Yan-Edit tick (4 x (dit_depth + controlnet + dit_render) + both decoders): {tick:.2f} ms")
    print("all ok" if not failures else f"{failures} model(s) FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
