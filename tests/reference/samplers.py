"""Independent NumPy implementations of the published sampler formulas, the
oracle of tests/cli/sampler_reference.rs: given a case (sampler, model,
parameters), the initial noise and the injected step noise, computes the
sampler's output on the analytic denoisers of make_models.py.

    python3 samplers.py --write-fixtures [DIR]   # DIR: tests/reference/samplers

reads DIR/cases.json (the tests' cases, their parameters written as the
graphs write them), writes the inputs every case shares (noise.npy
[1, 4, 2, 2]; step_noise.npy [8, 1, 4, 2, 2], a case with step noise using
its first draws; c.npy and ctx.npy, the conditions) and, per case, NAME.npy:
the reference output in float64 (df_window: one row per tick). The test runs
wgraph on the same inputs and compares, no Python at test time. Rerunning
the script rewrites the fixtures byte for byte.

A guidance case runs the conditioned model (flow_cond / vp_cond) on the
conditions c and ctx under the denoiser's guidance: nested CFG over the
listed conditions (dropped = zeros), only inside "guidance_interval" (flow σ;
a VP timestep's ᾱ read as the flow σ of the same level), and with
"guidance_mode": "residual" the all-dropped prediction replaced by
StreamDiffusion's virtual residual toward "residual_reference" (zeros if
absent): the output whose x0 estimate is the reference,
ε = (x − √ᾱ·r)/√(1−ᾱ), flow v = (x − r)/σ.
"""
import json
import os
import sys

import numpy as np


def model(x, t):
    # The analytic network, in float32 like ONNX Runtime.
    x = x.astype(np.float32)
    t = np.float32(t)
    return (np.float32(0.8) * x + np.float32(-0.0003) * t) + np.float32(0.1) * (x * x)


def alphas_cumprod(b0=0.00085, b1=0.012, n=1000):
    return np.cumprod(1.0 - np.linspace(b0 ** 0.5, b1 ** 0.5, n, dtype=np.float64) ** 2)


AC = alphas_cumprod()


def model_c(x, t, ctx, c):
    # flow_cond / vp_cond, in float32 like ONNX Runtime.
    f, x = np.float32, x.astype(np.float32)
    ctx, c = ctx.astype(np.float32), c.astype(np.float32)
    s = (f(0.8) * x + f(-0.0003) * f(t)) + f(0.1) * (x * x)
    return ((s + f(0.5) * c) + (x * c) * f(0.2)) + f(0.3) * ctx


# The network the samplers call: the analytic model, or the guided one.
NET = model


def guided(case, conds):
    g = case["guidance"]  # [[condition, scale], ...] in nesting order
    names = [n for n, _ in g]
    lo, hi = case.get("guidance_interval", [0.0, 1.0])
    vp = case["model"].startswith("vp")
    ref = conds[case["residual_reference"]] if "residual_reference" in case else 0.0

    def run(x, t, kept):
        v = {n: a if n not in names or n in kept else np.zeros_like(a) for n, a in conds.items()}
        return model_c(x, t, v["ctx"], v["c"]).astype(np.float64)

    def net(x, t):
        t = float(np.float32(t))
        if vp:
            a = float(np.interp(t, np.arange(len(AC)), AC))
            sigma = np.sqrt(1.0 - a) / (np.sqrt(a) + np.sqrt(1.0 - a))
        else:
            sigma = t / 1000.0
        if not lo <= sigma <= hi:
            return run(x, t, names)  # one pass, every condition kept
        p = [run(x, t, names[:j]) for j in range(len(g) + 1)]
        if case.get("guidance_mode") == "residual":
            xm = x.astype(np.float32).astype(np.float64)
            p[0] = (xm - np.sqrt(a) * ref) / np.sqrt(1.0 - a) if vp else (xm - ref) / sigma
        return p[0] + sum(s * (p[j + 1] - p[j]) for j, (_, s) in enumerate(g))

    return net


def flow_sigmas(steps, shift):
    s = 1.0 - np.arange(steps) / steps
    s = shift * s / (1.0 + (shift - 1.0) * s)
    return list(s) + [0.0]


def dynamic_sigmas(c, shape):
    """diffusers' FlowMatchEulerDiscreteScheduler with use_dynamic_shifting: mu linear in
    the image sequence length, sigma <- exp(mu) / (exp(mu) + (1/t - 1))."""
    tokens = np.prod(shape[2:]) / c.get("patch", 2) ** 2
    b0, b1 = c.get("base_tokens", 256.0), c.get("max_tokens", 4096.0)
    m = (c.get("max_shift", 1.15) - c.get("base_shift", 0.5)) / (b1 - b0)
    mu = m * tokens + (c.get("base_shift", 0.5) - m * b0)
    t = 1.0 - np.arange(c["steps"]) / c["steps"]
    return list(np.exp(mu) / (np.exp(mu) + (1.0 / t - 1.0))) + [0.0]


def sigmas_of(c, x, kind="flow"):
    if kind.startswith("vp"):
        return vp_flow_sigmas(c["steps"])
    if c.get("dynamic_shift"):
        return dynamic_sigmas(c, x.shape)
    return flow_sigmas(c["steps"], c.get("shift", 1.0))


# A VP model's σ table √((1−ᾱ)/ᾱ) (VE), ascending in t.
VE = np.sqrt((1.0 - AC) / AC)
LOG_VE = np.log(VE)


def vp_flow_sigmas(steps):
    """A VP model's default levels: σ at diffusers' trailing timesteps, as flow σ."""
    ts = (np.round(np.arange(1000, 0, -1000 / steps)) - 1).astype(np.int64)[:steps]
    ve = VE[ts]
    return list(ve / (1.0 + ve)) + [0.0]


def vp_entry(sigma):
    """The start noise as the VP point x_T, in flow units at flow level sigma."""
    ve = sigma / (1.0 - sigma)
    return np.sqrt(ve * ve + 1.0) / (1.0 + ve)


def vp_point(sigma):
    """VP/flow correspondence: the (fractional) timestep of flow σ — its VE σ
    interpolated in log σ (diffusers' _sigma_to_t) — and its ᾱ."""
    ve = np.clip(sigma / (1.0 - sigma) if sigma < 1.0 else np.inf, VE[0], VE[-1])
    ls = np.log(ve)
    low = int(np.clip(np.cumsum(ls - LOG_VE >= 0).argmax(), 0, len(VE) - 2))
    w = np.clip((LOG_VE[low] - ls) / (LOG_VE[low] - LOG_VE[low + 1]), 0.0, 1.0)
    return (1.0 - w) * low + w * (low + 1), 1.0 / (1.0 + ve * ve)


def denoise(kind, x, sigma):
    """x0 and eps estimates at flow level sigma, for each model kind:
    flow (velocity, t = 1000σ), flow_t1 (velocity, t = σ), flow_sample (x0);
    vp_eps, vp_v (diffusers' v_prediction), vp_sample (x0) on the VP point."""
    if kind.startswith("flow"):
        y = NET(x, np.float32((1.0 if kind == "flow_t1" else 1000.0) * sigma)).astype(np.float64)
        if kind == "flow_sample":
            return y, (x - (1.0 - sigma) * y) / sigma
        return x - sigma * y, x + (1.0 - sigma) * y
    t, a = vp_point(sigma)
    scale = np.sqrt(a) + np.sqrt(1.0 - a)
    xv = (x * scale).astype(np.float32).astype(np.float64)
    return vp_estimates(kind, xv, NET(xv, np.float32(t)).astype(np.float64), a)


def vp_estimates(kind, xv, y, a):
    """(x0, eps) of a VP model's output y at the VP point xv, ᾱ = a."""
    if kind == "vp_v":  # diffusers: x0 = √ᾱ·x − √(1−ᾱ)·v, ε = √ᾱ·v + √(1−ᾱ)·x
        return np.sqrt(a) * xv - np.sqrt(1.0 - a) * y, np.sqrt(a) * y + np.sqrt(1.0 - a) * xv
    if kind == "vp_sample":
        return y, (xv - np.sqrt(a) * y) / np.sqrt(1.0 - a)
    return (xv - np.sqrt(1.0 - a) * y) / np.sqrt(a), y


def euler(c, kind, x, z):
    s = sigmas_of(c, x, kind)
    if kind.startswith("vp"):
        x = x * vp_entry(s[0])
    for i in range(c["steps"]):
        x0, eps = denoise(kind, x, s[i])
        x = x + (s[i + 1] - s[i]) * (eps - x0)
    return x


def sde(c, kind, x, z):
    # Yume: x0 = x − σv; score = −(x − (1−σ)x0)/σ²;
    # x ← x + dσ·v − ½η²·score·dσ + η·√(σᵢ−σᵢ₊₁)·ε
    s, eta = sigmas_of(c, x, kind), c.get("eta", 0.3)
    if kind.startswith("vp"):
        x = x * vp_entry(s[0])
    for i in range(c["steps"]):
        x0, eps = denoise(kind, x, s[i])
        v, ds = eps - x0, s[i + 1] - s[i]
        score = -(x - (1.0 - s[i]) * x0) / s[i] ** 2
        x = x + ds * v - 0.5 * eta ** 2 * score * ds + eta * np.sqrt(s[i] - s[i + 1]) * z[i]
    return x


def tts(c, kind, x, z, stochastic):
    # Yume's code form of Alg. 3: every `interval`-th step, look ahead `depth`
    # Euler steps and use the velocity found at the deepest point.
    n, s = c["steps"], sigmas_of(c, x, kind)
    if kind.startswith("vp"):
        x = x * vp_entry(s[0])
    interval, depth = c.get("interval", 2), c.get("depth", 2)
    eta = c.get("eta", 0.3) if stochastic else 0.0
    for i in range(n):
        x0, eps = denoise(kind, x, s[i])
        v = eps - x0
        if depth > 0 and i % interval == 0 and i + 1 < n:
            ahead = x.copy()
            for j in range(i, min(i + depth, n - 1)):
                ahead = (ahead + (s[j + 1] - s[j]) * v).astype(np.float32).astype(np.float64)
                x0, eps = denoise(kind, ahead, s[j + 1])
                v = eps - x0
        ds = s[i + 1] - s[i]
        nxt = x + ds * v
        if eta > 0:
            score = -(x - (1.0 - s[i]) * x0) / s[i] ** 2
            nxt = nxt - 0.5 * eta ** 2 * score * ds + eta * np.sqrt(-ds) * z[i]
        x = nxt
    return x


def self_forcing(c, kind, x, z):
    levels = np.array(c.get("timesteps", [1000, 750, 500, 250]), dtype=np.float64) / 1000.0
    sh = c.get("shift", 5.0)
    sig = sh * levels / (1.0 + (sh - 1.0) * levels)
    if kind.startswith("vp"):
        # Level σ is the VP timestep σ·T − 1 (σ linear between timesteps).
        ve = np.interp(sig * 1000.0 - 1.0, np.arange(1000), VE)
        sig = ve / (1.0 + ve)
        x = x * vp_entry(sig[0])
    for i, s in enumerate(sig):
        x0, _ = denoise(kind, x, s)
        if i + 1 < len(sig):
            x = (1.0 - sig[i + 1]) * x0 + sig[i + 1] * z[i]
    return x0


def ddim(c, kind, x, z):
    # diffusers DDIM, trailing spacing, η; a flow model called at each ᾱ's
    # flow point, its velocity turned into ε.
    n, eta = c["steps"], c.get("eta", 0.0)
    ts = (np.round(np.arange(1000, 0, -1000 / n)) - 1).astype(np.int64)
    for i, t in enumerate(ts):
        a_t = AC[t]
        prev = t - 1000 // n
        a_p = AC[prev] if prev >= 0 else 1.0
        if kind.startswith("flow"):
            norm = np.sqrt(a_t) + np.sqrt(1.0 - a_t)
            sigma = np.sqrt(1.0 - a_t) / norm
            _, eps = denoise(kind, x / norm, sigma)
        else:
            y = NET(x.astype(np.float32), np.float32(t)).astype(np.float64)
            _, eps = vp_estimates(kind, x, y, a_t)
        std = eta * np.sqrt((1 - a_p) / (1 - a_t) * (1 - a_t / a_p))
        x0 = (x - np.sqrt(1 - a_t) * eps) / np.sqrt(a_t)
        x = np.sqrt(a_p) * x0 + np.sqrt(max(1 - a_p - std ** 2, 0.0)) * eps + (std * z[i] if std > 0 else 0.0)
        x = x.astype(np.float32).astype(np.float64)
    return x


def blur_matrix(kernel, n):
    # Yume Appendix D: A[i, j] = kernel[j - i + len // 2] inside the band.
    a = np.zeros((n, n))
    half = len(kernel) // 2
    for i in range(n):
        for j in range(i - half, i + half + 1):
            if 0 <= j < n:
                a[i, j] = kernel[j - i + half]
    return a


def pinv_projection(a):
    # A⁺A with singular values <= 1e-6 dropped (torch.linalg.svd in Yume's code).
    u, sv, vt = np.linalg.svd(a)
    s_pinv = np.where(sv > 1e-6, 1.0 / np.where(sv > 1e-6, sv, 1.0), 0.0)
    return (vt.T @ np.diag(s_pinv) @ u.T) @ a


def gaussian_matrix(sigma, n):
    reach = int(np.ceil(3 * sigma))
    d = np.arange(n)[None, :] - np.arange(n)[:, None]
    g = np.where(np.abs(d) <= reach, np.exp(-(d ** 2) / (2 * sigma ** 2)), 0.0)
    return g / g.sum(1, keepdims=True)


def aam(c, kind, x, z):
    # Yume Alg. 2: a full Euler pass gives z_orig; the refinement pass starts
    # from the same noise and, before each of its first K steps, takes the low
    # frequencies B(z_orig,σ) of the re-noised first pass and its own high ones.
    s = sigmas_of(c, x, kind)
    n, k = c["steps"], min(c.get("refine", 5), c["steps"])
    h, w = x.shape[-2], x.shape[-1]
    if c.get("filter", "pinv_blur") == "gaussian":
        bh, bw = gaussian_matrix(c.get("blur_sigma", 1.0), h), gaussian_matrix(c.get("blur_sigma", 1.0), w)
    else:
        bh = pinv_projection(blur_matrix(c.get("kernel_h", [0.1, 0.8, 0.1]), h))
        bw = pinv_projection(blur_matrix(c.get("kernel_w", [0.2, 0.6, 0.2]), w))

    def low(v):
        return bh @ v @ bw.T

    noise = x.copy()
    if kind.startswith("vp"):
        x = (x * vp_entry(s[0])).astype(np.float32).astype(np.float64)
    orig = x.copy()
    for i in range(n):
        x0, eps = denoise(kind, orig, s[i])
        orig = (orig + (s[i + 1] - s[i]) * (eps - x0)).astype(np.float32).astype(np.float64)
    y = x.copy()
    for i in range(n):
        if i < k:
            renoised = ((1 - s[i]) * orig + s[i] * noise).astype(np.float32).astype(np.float64)
            y = (low(renoised) + (y - low(y))).astype(np.float32).astype(np.float64)
        x0, eps = denoise(kind, y, s[i])
        y = (y + (s[i + 1] - s[i]) * (eps - x0)).astype(np.float32).astype(np.float64)
    return y


def model_chain(x, t, ctx, ct):
    # df_chain.onnx, per row (t and ct are [rows]), in float32 like ONNX Runtime.
    f = np.float32
    x, ctx = x.astype(f), ctx.astype(f)
    t4, ct4 = (np.asarray(v, dtype=f).reshape(-1, 1, 1, 1) for v in (t, ct))
    return (((f(0.8) * x + f(-0.0003) * t4) + f(0.1) * (x * x)) + f(0.3) * ctx) + f(0.0002) * ct4


def df_window(c, ctx0, noise, z, ticks):
    """Diffusion forcing with DDIM (η = 0) on the chained VP model, in VP
    coordinates: a window of W = frames latents at the trailing timesteps;
    each tick a noise frame enters at the top (x_T = noise; on an empty
    window the next ones come from z), one call on all rows (oldest first;
    row k's context is row k−1's latent and context_t its timestep, row 0's
    the last output and 0), every row x ← √ᾱ'·x̂0 + √(1−ᾱ')·ε̂; the frame
    past the last level leaves as x̂0. Returns the outputs of every tick."""
    w = c["frames"]
    ts = (np.round(np.arange(1000, 0, -1000 / w)) - 1).astype(np.int64)
    win, outs, prev = [], [], ctx0
    for _ in range(ticks):
        win.append([noise.copy(), 0])
        extra = 0
        while True:
            x = np.concatenate([f for f, _ in win])
            t = np.array([ts[l] for _, l in win], dtype=np.float64)
            ctx = np.concatenate([prev] + [f for f, _ in win[:-1]])
            ct = np.concatenate([[0.0], t[:-1]]) if c.get("chain") else np.zeros(len(win))
            if not c.get("chain"):
                ctx = np.concatenate([prev] * len(win))
            eps = model_chain(x, t, ctx, ct).astype(np.float64)
            left = None
            for p, (f, l) in enumerate(win):
                a = AC[ts[l]]
                x0 = (f[0] - np.sqrt(1 - a) * eps[p]) / np.sqrt(a)
                if l + 1 == w:
                    left = x0[None]
                else:
                    an = AC[ts[l + 1]]
                    win[p] = [(np.sqrt(an) * x0 + np.sqrt(1 - an) * eps[p])[None], l + 1]
            if left is not None:
                win.pop(0)
                outs.append(left)
                prev = left
                break
            win.append([z[extra], 0])
            extra += 1
    return np.concatenate(outs)


SAMPLERS = {
    "aam": aam,
    "euler": euler,
    "sde": sde,
    "tts_ode": lambda c, k, x, z: tts(c, k, x, z, False),
    "tts_sde": lambda c, k, x, z: tts(c, k, x, z, True),
    "self_forcing": self_forcing,
    "ddim": ddim,
}

def inputs():
    """The shared inputs, float32: cos/sin of float32 multiples, rounded from float64."""
    f = np.float32
    i, j = np.arange(16, dtype=f), np.arange(8 * 16, dtype=f)

    def rounded(fn, x):
        return fn(x.astype(np.float64)).astype(f)

    return {
        "noise": rounded(np.cos, i * f(1.3)).reshape(1, 4, 2, 2),
        "step_noise": rounded(np.sin, j * f(0.37)).reshape(8, 1, 4, 2, 2),
        "c": (rounded(np.sin, i * f(0.7)) * f(0.8)).reshape(1, 4, 2, 2),
        "ctx": (rounded(np.cos, i * f(0.45) + f(1.0)) * f(0.6)).reshape(1, 4, 2, 2),
    }


def split_top(s):
    """`a = 1, b = [1, 2], c = { x = 1 }` -> its top-level entries."""
    out, cur, depth = [], "", 0
    for ch in s:
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return out + ([cur] if cur.strip() else [])


def settings(case):
    """The case as the reference reads it: its graph parameters (sampler's,
    then denoiser's), each value JSON but `guidance = { name = scale, ... }`
    ([[name, scale], ...]) and `guidance_mode` (a bare word)."""
    c = {"sampler": case["sampler"], "model": case["model"]}
    for kv in split_top(case["params"]) + split_top(case.get("denoiser", "")):
        k, v = (p.strip() for p in kv.split("=", 1))
        if k == "guidance":
            c[k] = [[n.strip(), float(s)] for n, s in (e.split("=") for e in split_top(v.strip("{}")))]
        elif k == "guidance_mode":
            c[k] = v
        else:
            c[k] = json.loads(v)
    return c


def write_fixtures(out):
    global NET
    table = json.load(open(os.path.join(out, "cases.json")))
    given = inputs()
    for name, a in given.items():
        np.save(os.path.join(out, f"{name}.npy"), a)
    x = given["noise"].astype(np.float64)
    steps = given["step_noise"].astype(np.float64)
    conds = {n: given[n].astype(np.float64) for n in ("c", "ctx")}
    for group in ("samplers", "guidance"):
        for case in table[group]:
            c = settings(case)
            NET = guided(c, conds) if "guidance" in c else model
            z = steps[: max(case["step_noise"], 1)]
            want = SAMPLERS[c["sampler"]](c, c["model"], x, z)
            np.save(os.path.join(out, f"{case['name']}.npy"), np.asarray(want, dtype=np.float64))
    NET = model
    for case in table["df_window"]:
        # Six ticks, as the test runs them.
        z = steps[: max(case["frames"] - 1, 1)]
        want = df_window(case, conds["ctx"], x, z, 6)
        np.save(os.path.join(out, f"{case['name']}.npy"), want.astype(np.float64))


if __name__ == "__main__":
    if sys.argv[1:2] != ["--write-fixtures"]:
        sys.exit(__doc__)
    write_fixtures(sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "samplers"))
