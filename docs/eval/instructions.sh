#!/usr/bin/env bash
# Instruction following and detail over time on 30 held-out walks (seeds 1000..1009 in all three
# themes, 32 ticks of `wgraph dataset --policy explore`), each with its seeded event script
# (`--instructions auto`). Usage, from the repository root:
#     docs/eval/instructions.sh [GRAPH] [OUT_DIR] [--set ...]
# GRAPH defaults to examples/world.world, the ground truth itself (its `gt.seed` is set per walk):
# its score is the detector's check (>= 0.95 required). Prints the pooled score and the ground
# truth's.
set -euo pipefail
graph=${1:-examples/world.world}
out=${2:-out/instructions}
shift $(( $# > 2 ? 2 : $# ))
mkdir -p "$out"
# WGRAPH=path/to/wgraph uses that binary instead of building the release one.
if [ -z "${WGRAPH:-}" ]; then cargo build --release -q; fi
w=${WGRAPH:-./target/release/wgraph}
[ -d "$out/walks" ] || "$w" dataset --seeds 1000..1010 --frames 32 --policy explore --theme all "$out/walks" > /dev/null
for dir in "$out"/walks/*_*/; do
    walk=$(basename "$dir"); theme=${walk%_*}; seed=${walk##*_}
    extra=()
    [ "$graph" = examples/world.world ] && extra=(--set "gt.seed=$seed" --set "gt.theme=$theme")
    "$w" eval "$graph" --world-seed "$seed" --theme "$theme" --actions "$dir/actions.txt" --frames 32 \
        --instructions auto --json "$out/$walk.json" "${extra[@]}" "$@" > /dev/null
done
python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
runs = [json.load(open(os.path.join(out, n))) for n in sorted(os.listdir(out)) if n.endswith(".json")]
ok = sum(r["instruction_following"]["successes"] for r in runs)
ok_t = sum(r["instruction_following"]["successes_ground_truth"] for r in runs)
n = sum(r["instruction_following"]["trials"] for r in runs)
ev = sum(len(r["instruction_following"]["events"]) for r in runs)
print(f"{len(runs)} walks, {ev} events, {n} trials")
print(f"instruction following {ok / n:.4f} ({ok}/{n}); ground truth {ok_t / n:.4f} ({ok_t}/{n})")
# Detail over time is in each JSON too, but with events in the ground truth (the lights out leave
# it no detail to keep) it is measured without --instructions: docs/eval/sweep.py.
PY
