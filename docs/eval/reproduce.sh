#!/usr/bin/env bash
# Reproduces the figures of docs/eval/README.md: every trained graph against the
# ground-truth world on held-out seed 1001, two samplers each, plus Yan-Edit's
# theme-invariance pair. Usage: docs/eval/reproduce.sh [OUT_DIR]  (from the repository root)
set -euo pipefail
out=${1:-out/eval}
mkdir -p "$out"
cargo build --release -q
w=./target/release/wgraph
acts=docs/eval/seed1001-actions.txt
run() { # name graph theme [--set ...]
    local name=$1 graph=$2 theme=$3; shift 3
    "$w" eval "$graph" --world-seed 1001 --actions "$acts" --frames 32 --theme "$theme" \
        --json "$out/$name.json" --strip "$out/$name-strip.png" "$@" > /dev/null
}
run yan-sim-ddim4           graphs/yan-sim.world  dungeon
run yan-sim-ddim8           graphs/yan-sim.world  dungeon --set sampler.steps=8
run yan-edit-euler4         graphs/yan-edit.world dungeon
run yan-edit-euler8         graphs/yan-edit.world dungeon --set render.steps=8
run yan-edit-euler4-forest  graphs/yan-edit.world forest  --set 'style.text="a snowy forest"'
run yan-edit-euler4-neon    graphs/yan-edit.world neon    --set 'style.text="a neon city at night"'
run yume-euler4             graphs/yume.world     dungeon
run yume-euler8             graphs/yume.world     dungeon --set sampler.steps=8
python3 - "$out" <<'PY'
import json, sys, os
out = sys.argv[1]
f = lambda v: "" if v is None else f"{v:.2f}"
print("| run | PSNR tick 1 | PSNR 1-8 | PSNR 1-32 | SSIM 1-32 | action acc. (gen / GT) | depth error 1-32 (cells) | drift | ms/tick |")
print("|---|---:|---:|---:|---:|---|---:|---|---:|")
for name in sorted(n[:-5] for n in os.listdir(out) if n.endswith(".json")):
    d = json.load(open(os.path.join(out, name + ".json")))
    print(f"| {name} | {f(d['psnr_per_tick'][0])} | {f(d['psnr_mean_1_8'])} | {f(d['psnr_mean_1_32'])} | "
          f"{f(d['ssim_mean_1_32'])} | {f(d['action_accuracy'])} / {f(d['action_accuracy_ground_truth'])} | "
          f"{f(d.get('depth_error_mean_1_32'))} | {d['drift_tick'] or 'never'} | {f(d['ms_per_tick'])} |")
PY
