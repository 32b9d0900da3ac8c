#!/usr/bin/env python3
"""Held-out sweep: every trained graph, two samplers each, on world seeds 1000..1009 in all three
themes (30 walks of 32 ticks from `wgraph dataset --policy explore`), averaged per graph and theme.

    python3 docs/eval/sweep.py [--seeds 1000..1010] [--frames 32] [--out out/sweep] [--only yan-edit [--exact]]
                               [--add "NAME=GRAPH[;NODE.PARAM=VALUE...]"]   # a candidate graph as one more row

Run from the repository root after `cargo build --release`. Prints a markdown table of means
(PSNR ticks 1-8 and 1-32, SSIM 1-32, action accuracy on generated and ground-truth pairs and
their ratio, depth error for graphs with a depth stream).
"""

import argparse
import json
import os
import subprocess
import sys

STYLE = {"dungeon": "an old brick dungeon", "neon": "a neon city at night", "forest": "a snowy forest"}
RUNS = [  # name, graph, extra --set values
    ("yan-sim ddim 4", "graphs/yan-sim.world", []),
    ("yan-sim ddim 8", "graphs/yan-sim.world", ["sampler.steps=8"]),
    ("yan-edit euler 4", "graphs/yan-edit.world", []),
    ("yan-edit euler 8", "graphs/yan-edit.world", ["render.steps=8"]),
    ("yume euler 4", "graphs/yume.world", []),
    ("yume euler 8", "graphs/yume.world", ["sampler.steps=8"]),
    # the decoder fine-tuned on generated latents (models-onnx/train/train_decoder.py)
    ("yan-sim ddim 4 rollout-decoder", "graphs/yan-sim.world", ["decode.model=vae_decoder_rollout"]),
    ("yume euler 4 rollout-decoder", "graphs/yume.world", ["decode.model=vae_decoder_rollout"]),
    ("yume15 euler 4", "graphs/yume15.world", []),
    ("yume15 euler 4 rollout-decoder", "graphs/yume15.world", ["decode.model=vae_decoder_rollout"]),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="1000..1010")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--out", default="out/sweep")
    ap.add_argument("--wgraph", default="./target/release/wgraph")
    ap.add_argument("--only", default="", help="run only the graphs whose name contains this")
    ap.add_argument("--exact", action="store_true", help="--only names one run exactly")
    ap.add_argument("--add", action="append", default=[], metavar="NAME=GRAPH[;SET...]",
                    help="one more row: a graph file (e.g. a copy of a seed graph with a candidate model), "
                         "';'-separated --set values after it")
    args = ap.parse_args()
    for spec in args.add:
        name, sep, rest = spec.partition("=")
        if not sep or not rest:
            ap.error(f"--add {spec!r}: expected NAME=GRAPH[;NODE.PARAM=VALUE...]")
        graph, *sets = rest.split(";")
        RUNS.append((name, graph, sets))
    data = os.path.join(args.out, "walks")
    if not os.path.isdir(data):
        subprocess.run([args.wgraph, "dataset", "--seeds", args.seeds, "--frames", str(args.frames), "--policy",
                        "explore", "--theme", "all", data], check=True, stdout=subprocess.DEVNULL)
    walks = sorted(d for d in os.listdir(data) if os.path.isdir(os.path.join(data, d)))
    rows = {}
    for name, graph, sets in RUNS:
        if args.only not in name or (args.exact and args.only != name):
            continue
        for walk in walks:
            theme, seed = walk.rsplit("_", 1)
            js = os.path.join(args.out, f"{name.replace(' ', '-')}-{walk}.json")
            cmd = [args.wgraph, "eval", graph, "--world-seed", seed, "--theme", theme, "--actions",
                   os.path.join(data, walk, "actions.txt"), "--frames", str(args.frames), "--json", js]
            for s in sets + ([f'style.text="{STYLE[theme]}"'] if "yan-edit" in graph else []):
                cmd += ["--set", s]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            d = json.load(open(js))
            rows.setdefault((name, theme), []).append(d)
            rows.setdefault((name, "all"), []).append(d)

    def mean(ds, key):
        v = [d[key] for d in ds if d.get(key) is not None]
        return sum(v) / len(v) if v else None

    f = lambda v: "" if v is None else f"{v:.2f}"  # noqa: E731

    def median_half(ds):
        """Median over walks of the first tick whose detail falls below half (never: n + 1)."""
        ticks = sorted(d.get("detail_half_tick") or d["frames"] + 1 for d in ds)
        return ticks[len(ticks) // 2] if ticks else ""
    print(f"Held-out seeds {args.seeds}, {args.frames} ticks, explore walks; means over walks.\n")
    print("| graph, sampler | theme | walks | PSNR tick 1 | PSNR 1-8 | PSNR 1-32 | SSIM 1-32 | action acc. gen / GT (ratio) | depth error (cells) | detail 1-32 | detail 20-32 | detail < ½ at tick (median) |")
    print("|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    order = {t: i for i, t in enumerate(["all", "dungeon", "neon", "forest"])}
    for (name, theme), ds in sorted(rows.items(), key=lambda kv: ([r[0] for r in RUNS].index(kv[0][0]),
                                                                   order.get(kv[0][1], 9))):
        tick1 = sum(d["psnr_per_tick"][0] for d in ds) / len(ds)
        gen, gt = mean(ds, "action_accuracy"), mean(ds, "action_accuracy_ground_truth")
        ratio = gen / gt if gen is not None and gt else None
        print(f"| {name} | {theme} | {len(ds)} | {f(tick1)} | {f(mean(ds, 'psnr_mean_1_8'))} | "
              f"{f(mean(ds, 'psnr_mean_1_32'))} | {f(mean(ds, 'ssim_mean_1_32'))} | {f(gen)} / {f(gt)} ({f(ratio)}) | "
              f"{f(mean(ds, 'depth_error_mean_1_32'))} | {f(mean(ds, 'detail_mean_1_n'))} | "
              f"{f(mean(ds, 'detail_mean_20_32'))} | {median_half(ds)} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
