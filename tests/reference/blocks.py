"""Yume's block cache (arXiv 2507.17744, §5.6.2, eqs. 12–13) in NumPy, the
oracle of tests/cli/block_cache.rs: the block-split analytic denoiser of
make_models.py (block_embed, block_b0..b2, block_head) under rectified-flow
Euler, with the residuals of the cached blocks stored in bfloat16.

    python3 blocks.py --write-fixtures [DIR]   # DIR: tests/reference/blocks

writes DIR/cases.json (CASES below: name, steps, shift, cache = [block
indices], cache_steps = l_c), the inputs every case shares (noise.npy
[3, 1, 4, 2, 2], one [1, 4, 2, 2] noise per tick; cond.npy [1, 4, 2, 2]) and,
per case, NAME.npy [2, 3, 1, 4, 2, 2] in float64: row 0 the reference latent
of each of the 3 ticks with the case's cache, row 1 the same run without a
cache (the test checks that a cache changed the result). The test runs
wgraph on the same inputs and compares, no Python at test time. Rerunning
the script rewrites the fixtures byte for byte.

Within a tick the denoiser's calls go full, l_c cached, full, …: a full call
runs every block and keeps C^l = bf16(Block^l(h) − h) of each cached block;
a cached call computes h + C^l for those blocks and runs the others. The
first call of every tick is full.
"""
import json
import os
import sys

import numpy as np

f32 = np.float32
BLOCKS = [(0.1, 0.5, 0.1), (-0.05, -0.3, 0.2), (0.08, 0.2, -0.1)]  # (q, r, m), as make_models.py


def bf16(a):
    """Round float32 to bfloat16 (nearest, ties to even), back to float32."""
    bits = np.asarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.astype(np.uint32).view(np.float32)


def embed(x, t, cond):
    x = x.astype(f32)
    h = (x + cond.astype(f32) * f32(0.5)).reshape(-1, 4, 4)
    c = (np.full((x.shape[0],), t, dtype=f32) * f32(0.001)).reshape(-1, 1, 1)
    return h, c, x * f32(0.2)


def block(k, h, c):
    q, r, m = (f32(v) for v in BLOCKS[k])
    rolled = np.concatenate([h[:, 3:4], h[:, 0:3]], axis=1)
    return ((h + (h * h) * q) + c * r) + rolled * m


def head(h, skip):
    return h.reshape(-1, 4, 2, 2) * f32(0.7) - skip


class Denoiser:
    def __init__(self, cache, cache_steps):
        self.cache, self.l_c = set(cache), cache_steps
        self.since_full, self.residuals = None, {}

    def new_tick(self):
        self.since_full = None

    def __call__(self, x, t, cond):
        h, c, skip = embed(x, t, cond)
        reuse = self.since_full is not None and self.since_full < self.l_c
        if self.cache:
            self.since_full = self.since_full + 1 if reuse else 0
        for k in range(len(BLOCKS)):
            if k in self.cache and reuse:
                h = h + self.residuals[k]
                continue
            out = block(k, h, c)
            if k in self.cache:
                self.residuals[k] = bf16(out - h)
            h = out
        return head(h, skip)


def flow_sigmas(steps, shift):
    s = 1.0 - np.arange(steps) / steps
    return list(shift * s / (1.0 + (shift - 1.0) * s)) + [0.0]


def euler(case, net, noise, cond):
    s = flow_sigmas(case["steps"], case.get("shift", 1.0))
    x = noise.astype(np.float64)
    for i in range(case["steps"]):
        v = net(x.astype(f32), f32(1000.0 * s[i]), cond).astype(np.float64)
        x = (x + (s[i + 1] - s[i]) * v).astype(f32).astype(np.float64)  # the engine keeps x in f32
    return x


# The test's cases: (steps, shift, cache, cache_steps), 3 ticks each.
CASES = [
    (4, 3.0, [], 1),
    (4, 3.0, [1], 1),
    (5, 3.0, [0, 2], 2),
    (3, 1.0, [0, 1, 2], 1),
    (6, 2.0, [2, 0], 2),
    (5, 3.0, [1, 2], 1),
]
TICKS = 3


def inputs():
    """The shared inputs, float32: cos/sin of float32 multiples, rounded from float64."""
    f = np.float32
    i, j = np.arange(TICKS * 16, dtype=f), np.arange(16, dtype=f)
    return {
        "noise": np.cos((i * f(1.3)).astype(np.float64)).astype(f).reshape(TICKS, 1, 4, 2, 2),
        "cond": (np.sin((j * f(0.7)).astype(np.float64)).astype(f) * f(0.5)).reshape(1, 4, 2, 2),
    }


def write_fixtures(out):
    os.makedirs(out, exist_ok=True)
    table = []
    for n, (steps, shift, cache, cache_steps) in enumerate(CASES):
        blocks = "".join(map(str, cache)) or "none"
        table.append({"name": f"b{n:02d}_steps{steps}_cache_{blocks}_lc{cache_steps}",
                      "steps": steps, "shift": shift, "cache": cache, "cache_steps": cache_steps})
    with open(os.path.join(out, "cases.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps({"ticks": TICKS, "cases": table}, indent=1) + "\n")
    given = inputs()
    for name, a in given.items():
        np.save(os.path.join(out, f"{name}.npy"), a)
    noise, cond = given["noise"], given["cond"]
    for case in table:
        cached, exact = Denoiser(case["cache"], case["cache_steps"]), Denoiser([], 1)
        rows = []
        for net in (cached, exact):
            ticks = []
            for tick in range(TICKS):
                net.new_tick()
                ticks.append(euler(case, net, noise[tick], cond))
            rows.append(ticks)
        np.save(os.path.join(out, f"{case['name']}.npy"), np.asarray(rows, dtype=np.float64))


if __name__ == "__main__":
    if sys.argv[1:2] != ["--write-fixtures"]:
        sys.exit(__doc__)
    write_fixtures(sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "blocks"))
