"""Yume's block cache (arXiv 2507.17744, §5.6.2, eqs. 12–13) in NumPy, for
tests/cli.rs (mod block_cache): the block-split analytic denoiser of
make_models.py (block_embed, block_b0..b2, block_head) under rectified-flow
Euler, with the residuals of the cached blocks stored in bfloat16.

    python3 blocks.py CASE.json NOISE.npy COND.npy WGRAPH_OUT_DIR

CASE: {"steps", "shift", "cache": [block indices], "cache_steps": l_c}.
NOISE holds one [1, 4, 2, 2] noise per tick (axis 0); WGRAPH_OUT_DIR the
run's out_00000.npy, out_00001.npy, … (the sampler's latent per tick).
Within a tick the denoiser's calls go full, l_c cached, full, …: a full call
runs every block and keeps C^l = bf16(Block^l(h) − h) of each cached block;
a cached call computes h + C^l for those blocks and runs the others. The
first call of every tick is full. Prints {"max_abs_error": ...}.
"""
import glob
import json
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


if __name__ == "__main__":
    case = json.load(open(sys.argv[1]))
    noise, cond = np.load(sys.argv[2]), np.load(sys.argv[3])
    outs = sorted(glob.glob(f"{sys.argv[4]}/out_*.npy"))
    assert outs, f"no outputs in {sys.argv[4]}"
    net = Denoiser(case["cache"], case["cache_steps"])
    err, top = 0.0, 0.0
    for tick, path in enumerate(outs):
        net.new_tick()
        want = euler(case, net, noise[tick], cond)
        got = np.load(path).astype(np.float64)
        err = max(err, float(np.abs(got - want).max()))
        top = max(top, float(np.abs(want).max()))
    # The same run without a cache, to show that caching changed the result.
    exact = Denoiser([], 1)
    uncached = max(float(np.abs(euler(case, exact, noise[t], cond) - np.load(p)).max()) for t, p in enumerate(outs))
    print(json.dumps({"max_abs_error": err, "max_abs_value": top, "ticks": len(outs),
                      "difference_from_uncached": uncached}))
