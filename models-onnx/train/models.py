"""The trained models' architectures (PyTorch). Shared by train_sim.py and verify.py."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import LATENT_CHANNELS, TOKEN, alphas_cumprod

# ----------------------------------------------------------------------------------------
# VAE (8x spatial: 3x64x64 <-> 16x8x8)
# ----------------------------------------------------------------------------------------


class ResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c1 = nn.Conv2d(c, c, 3, padding=1)
        self.c2 = nn.Conv2d(c, c, 3, padding=1)
        nn.init.zeros_(self.c2.weight)
        nn.init.zeros_(self.c2.bias)

    def forward(self, x):
        return x + self.c2(F.silu(self.c1(F.silu(x))))


class Encoder(nn.Module):
    """image [B,cin,64,64] (RGB: 3, depth: 1) -> mu [B,16,64/f,64/f] (unscaled), f = 4 or 8. Space-to-depth first."""

    def __init__(self, f=8, zc=LATENT_CHANNELS, cin=3):
        super().__init__()
        if f == 8:
            c0, c1, c2 = 64, 96, 128
            layers = [nn.PixelUnshuffle(2), nn.Conv2d(4 * cin, c0, 3, padding=1), nn.SiLU(),  # 32
                      nn.Conv2d(c0, c1, 4, stride=2, padding=1), nn.SiLU(), ResBlock(c1), nn.SiLU(),  # 16
                      nn.Conv2d(c1, c2, 4, stride=2, padding=1),  # 8
                      ResBlock(c2), ResBlock(c2), nn.SiLU(), nn.Conv2d(c2, zc, 1)]
        else:
            c0, c1 = 64, 128
            layers = [nn.PixelUnshuffle(2), nn.Conv2d(4 * cin, c0, 3, padding=1), ResBlock(c0), nn.SiLU(),  # 32
                      nn.Conv2d(c0, c1, 4, stride=2, padding=1),  # 16
                      ResBlock(c1), ResBlock(c1), nn.SiLU(), nn.Conv2d(c1, zc, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class Decoder(nn.Module):
    """latent [B,zc,64/f,64/f] (unscaled) -> image [B,cout,64,64] (pre-tanh). Depth-to-space last."""

    def __init__(self, f=8, zc=LATENT_CHANNELS, cout=3):
        super().__init__()
        if f == 8:
            c0, c1, c2 = 128, 96, 64
            layers = [nn.Conv2d(zc, c0, 3, padding=1), ResBlock(c0), ResBlock(c0), nn.SiLU(),
                      nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c0, c1, 3, padding=1), ResBlock(c1),
                      nn.SiLU(),  # 16
                      nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c1, c2, 3, padding=1), ResBlock(c2),
                      nn.SiLU(),  # 32
                      nn.Conv2d(c2, 4 * cout, 3, padding=1), nn.PixelShuffle(2)]  # 64
        else:
            c0, c1 = 128, 64
            layers = [nn.Conv2d(zc, c0, 3, padding=1), ResBlock(c0), ResBlock(c0), nn.SiLU(),  # 16
                      nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c0, c1, 3, padding=1), ResBlock(c1),
                      nn.SiLU(),  # 32
                      nn.Conv2d(c1, 4 * cout, 3, padding=1), nn.PixelShuffle(2)]  # 64
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(z)


class ScaledEncoder(nn.Module):
    """Exported encoder: normalised latent = (mu - shift) * scale (unit variance)."""

    def __init__(self, enc, shift, scale):
        super().__init__()
        self.enc = enc
        self.register_buffer("shift", torch.as_tensor(shift, dtype=torch.float32).view(1, -1, 1, 1))
        self.scale = float(scale)

    def forward(self, image):
        return (self.enc(image) - self.shift) * self.scale


class ScaledDecoder(nn.Module):
    def __init__(self, dec, shift, scale):
        super().__init__()
        self.dec = dec
        self.register_buffer("shift", torch.as_tensor(shift, dtype=torch.float32).view(1, -1, 1, 1))
        self.scale = float(scale)

    def forward(self, latent):
        return torch.tanh(self.dec(latent / self.scale + self.shift))


# ----------------------------------------------------------------------------------------
# Action embedder: keys [B,9] -> token [B,1,64]
# ----------------------------------------------------------------------------------------


class ActionEmbedder(nn.Module):
    def __init__(self, nkeys=9, d=TOKEN):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(nkeys, 128), nn.SiLU(), nn.Linear(128, d))

    def forward(self, keys):
        return self.net(keys).unsqueeze(1)


# ----------------------------------------------------------------------------------------
# Denoiser: small DiT on the 8x8 latent grid (1x1 patches), x ‖ context channel-concatenated,
# adaLN conditioning on timestep + action token. Internally predicts v; the exported graph
# converts to epsilon with the schedule's ᾱ(t):  ε = √ᾱ·v + √(1−ᾱ)·x.
# ----------------------------------------------------------------------------------------


def timestep_embedding(t, dim):
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class Block(nn.Module):
    def __init__(self, d, heads, mlp=4):
        super().__init__()
        self.heads = heads
        self.n1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.n2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(d, mlp * d), nn.GELU(approximate="tanh"), nn.Linear(mlp * d, d))
        self.ada = nn.Linear(d, 6 * d)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(self, h, c):
        B, N, D = h.shape
        s1, b1, g1, s2, b2, g2 = self.ada(c).unsqueeze(1).chunk(6, dim=-1)
        x = self.n1(h) * (1 + s1) + b1
        q, k, v = self.qkv(x).view(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v)
        h = h + g1 * self.proj(a.transpose(1, 2).reshape(B, N, D))
        x = self.n2(h) * (1 + s2) + b2
        return h + g2 * self.mlp(x)


class AlphaBar(nn.Module):
    """ᾱ(t) for float t in [0, 999], linear interpolation of the 1000-entry table."""

    def __init__(self):
        super().__init__()
        self.register_buffer("table", torch.tensor(alphas_cumprod(), dtype=torch.float32))

    def forward(self, t):
        t = t.clamp(0, 999)
        lo = torch.floor(t)
        frac = t - lo
        lo_i = lo.long()
        hi_i = torch.clamp(lo_i + 1, max=999)
        return self.table[lo_i] * (1 - frac) + self.table[hi_i] * frac


class SimDiT(nn.Module):
    """forward(x, t, context, action) -> x0 estimate of the next latent. `EpsWrapper` exports epsilon.

    Preconditioning with a context prior (EDM-style): model the next latent as x0 = context + δ,
    δ ~ N(0, s²) (s² = prior_var, the mean squared latent change per tick). Given x_t =
    √ᾱ·x0 + √(1−ᾱ)·ε, the Gaussian posterior of x0 has mean m = P·(context/s² + √ᾱ·x_t/(1−ᾱ)) and
    variance P = 1/(1/s² + ᾱ/(1−ᾱ)). The network F predicts the standardised residual:
    x0 = m + √P·F, so with F = 0 (the zero-initialised output) the model already copies the previous
    frame at high noise and keeps x_t at low noise, and the training target (x0 − m)/√P has unit
    variance at every t. Tokens: p×p patches of (x_t ‖ context ‖ m); adaLN on timestep + action
    token; a small full-resolution conv refinement on (unpatchified tokens ‖ inputs).

    Gate (gate_t = 249, the last of the engine's 4 trailing DDIM timesteps): for t >= gate_t the
    x0 estimate ignores x_t, so deterministic DDIM (eta 0) with trailing 4 steps returns exactly
    the network's x0 of (context, action) — the conditional mean, the PSNR-optimal prediction —
    whatever the noise; below gate_t the model is an ordinary (context-prior) denoiser, so samplers
    with more steps end by refining that prediction from x_t.
    """

    def __init__(self, d=128, depth=4, heads=4, latent=8, patch=1, zc=LATENT_CHANNELS, mlp=4, prior_var=0.3,
                 refine=64, gate_t=0.0):
        super().__init__()
        self.gate_t = float(gate_t)
        self.d = d
        self.patch = patch
        self.ab = AlphaBar()
        self.register_buffer("prior_var", torch.tensor(float(prior_var)))
        grid = latent // patch
        cin = 3 * zc
        if patch == 1:
            self.inp = nn.Conv2d(cin, d, 3, padding=1)
        else:  # a patch embedding that overlaps its neighbours (local mixing)
            self.inp = nn.Conv2d(cin, d, 2 * patch, stride=patch, padding=patch // 2)
        self.pos = nn.Parameter(torch.randn(1, grid * grid, d) * 0.02)
        self.temb = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.aemb = nn.Sequential(nn.Linear(TOKEN, d), nn.SiLU(), nn.Linear(d, d))
        self.blocks = nn.ModuleList([Block(d, heads, mlp) for _ in range(depth)])
        self.nf = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.ada_f = nn.Linear(d, 2 * d)
        nn.init.zeros_(self.ada_f.weight)
        nn.init.zeros_(self.ada_f.bias)
        self.refine = refine
        if refine:
            self.out = nn.Linear(d, refine * patch * patch // 4)
            self.r1 = nn.Conv2d(refine * 1 // 4 + cin, refine, 3, padding=1)
            self.r_film = nn.Linear(d, 2 * refine)
            nn.init.zeros_(self.r_film.weight)
            nn.init.zeros_(self.r_film.bias)
            self.r2 = nn.Conv2d(refine, zc, 3, padding=1)
            nn.init.zeros_(self.r2.weight)
            nn.init.zeros_(self.r2.bias)
        else:
            self.out = nn.Linear(d, zc * patch * patch)
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def precondition(self, x, t, context):
        """(prior mean m, residual scale c_out, gate w): x0 = m + c_out·F. With a gate (gate_t > 0),
        w = clamp((gate_t − t)/gate_t, 0, 1) fades x_t out above gate_t: there m = context,
        c_out = s and the network does not see x_t (x0 depends on context and action only)."""
        a = self.ab(t).view(-1, 1, 1, 1)
        s2 = self.prior_var
        P = 1.0 / (1.0 / s2 + a / (1 - a))
        m = P * (context / s2 + a.sqrt() * x / (1 - a))
        c = P.sqrt()
        if self.gate_t > 0:
            w = ((self.gate_t - t) / self.gate_t).clamp(0, 1).view(-1, 1, 1, 1)
            m = w * m + (1 - w) * context
            c = w * c + (1 - w) * s2.sqrt()
        else:
            w = torch.ones_like(a)
        return m, c, w

    def forward(self, x, t, context, action):
        B, C, H, W = x.shape
        m, c_out, w = self.precondition(x, t, context)
        inp = torch.cat([w * x, context, m], 1)
        h = self.inp(inp).flatten(2).transpose(1, 2) + self.pos
        c = F.silu(self.temb(timestep_embedding(t, self.d)) + self.aemb(action[:, 0]))
        for blk in self.blocks:
            h = blk(h, c)
        s, b = self.ada_f(c).unsqueeze(1).chunk(2, dim=-1)
        h = self.out(self.nf(h) * (1 + s) + b)  # [B, N, K p p]
        p = self.patch
        h = h.transpose(1, 2).reshape(B, -1, H // p, W // p)
        h = F.pixel_shuffle(h, p) if p > 1 else h
        if self.refine:
            sc, sh = self.r_film(c).view(B, -1, 1, 1).chunk(2, dim=1)
            r = F.silu(self.r1(torch.cat([h, inp], 1)) * (1 + sc) + sh)
            h = self.r2(r)
        return m + c_out * h


class EpsWrapper(nn.Module):
    """The exported denoiser: inputs x, t, context, action -> epsilon = (x − √ᾱ·x0)/√(1−ᾱ)."""

    def __init__(self, dit):
        super().__init__()
        self.dit = dit

    def forward(self, x, t, context, action):
        x0 = self.dit(x, t, context, action)
        a = self.dit.ab(t).view(-1, 1, 1, 1)
        return (x - a.sqrt() * x0) / (1 - a).sqrt()


class SimDiTDF(SimDiT):
    """The diffusion-forcing Yan-Sim denoiser: SimDiT without the gate, whose context may itself be
    noisy at a known VP level s (`context_t`): context = √ᾱ(s)·z_prev + √(1−ᾱ(s))·ε'.

    forward(x, t, context, context_t, action) -> x0 estimate of the next latent. The context prior
    is honest about the context's noise: ĉ = context/√ᾱ(s) is z_prev plus noise of variance
    (1−ᾱ(s))/ᾱ(s), so x0 ~ N(ĉ, v), v = prior_var + (1−ᾱ(s))/ᾱ(s); the posterior of x0 given
    x_t has variance P = 1/(1/v + ᾱ(t)/(1−ᾱ(t))) and mean m = P·(ĉ/v + √ᾱ(t)·x_t/(1−ᾱ(t))), and
    x0 = m + √P·F. At s = 0 this is SimDiT's preconditioning (up to ᾱ(0) = 0.99915). Tokens:
    patches of (x_t ‖ ĉ ‖ m); adaLN on emb(t) + emb(s) (zero-initialised) + action token.
    """

    def __init__(self, **kw):
        kw["gate_t"] = 0.0
        super().__init__(**kw)
        self.cemb = nn.Sequential(nn.Linear(self.d, self.d), nn.SiLU(), nn.Linear(self.d, self.d))
        nn.init.zeros_(self.cemb[2].weight)
        nn.init.zeros_(self.cemb[2].bias)

    def precondition_df(self, x, t, context, context_t):
        """-> (m, √P, ĉ)."""
        a = self.ab(t).view(-1, 1, 1, 1)
        a_s = self.ab(context_t).view(-1, 1, 1, 1)
        c_hat = context / a_s.sqrt()
        v = self.prior_var + (1 - a_s) / a_s
        P = 1.0 / (1.0 / v + a / (1 - a))
        m = P * (c_hat / v + a.sqrt() * x / (1 - a))
        return m, P.sqrt(), c_hat

    def forward(self, x, t, context, context_t, action):
        B, C, H, W = x.shape
        m, c_out, c_hat = self.precondition_df(x, t, context, context_t)
        inp = torch.cat([x, c_hat, m], 1)
        h = self.inp(inp).flatten(2).transpose(1, 2) + self.pos
        c = F.silu(self.temb(timestep_embedding(t, self.d)) + self.cemb(timestep_embedding(context_t, self.d))
                   + self.aemb(action[:, 0]))
        for blk in self.blocks:
            h = blk(h, c)
        s, b = self.ada_f(c).unsqueeze(1).chunk(2, dim=-1)
        h = self.out(self.nf(h) * (1 + s) + b)
        p = self.patch
        h = h.transpose(1, 2).reshape(B, -1, H // p, W // p)
        h = F.pixel_shuffle(h, p) if p > 1 else h
        if self.refine:
            sc, sh = self.r_film(c).view(B, -1, 1, 1).chunk(2, dim=1)
            r = F.silu(self.r1(torch.cat([h, inp], 1)) * (1 + sc) + sh)
            h = self.r2(r)
        return m + c_out * h


class EpsWrapperDF(nn.Module):
    """The exported diffusion-forcing denoiser: x, t, context, context_t, action -> epsilon."""

    def __init__(self, dit):
        super().__init__()
        self.dit = dit

    def forward(self, x, t, context, context_t, action):
        x0 = self.dit(x, t, context, context_t, action)
        a = self.dit.ab(t).view(-1, 1, 1, 1)
        return (x - a.sqrt() * x0) / (1 - a).sqrt()


# ----------------------------------------------------------------------------------------
# Inverse dynamics: frame_a, frame_b [B,3,64,64] -> logits [B,9]
# ----------------------------------------------------------------------------------------


class IDM(nn.Module):
    def __init__(self, nkeys=9, ch=(32, 48, 64, 64)):
        super().__init__()
        c0, c1, c2, c3 = ch
        self.net = nn.Sequential(
            nn.Conv2d(9, c0, 4, stride=2, padding=1), nn.SiLU(),   # 32
            nn.Conv2d(c0, c1, 4, stride=2, padding=1), nn.SiLU(),  # 16
            nn.Conv2d(c1, c2, 4, stride=2, padding=1), nn.SiLU(),  # 8
            nn.Conv2d(c2, c3, 4, stride=2, padding=1), nn.SiLU(),  # 4
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c3 * 16, 128), nn.SiLU(), nn.Linear(128, nkeys))

    def forward(self, frame_a, frame_b):
        return self.head(self.net(torch.cat([frame_a, frame_b, frame_b - frame_a], 1)))


def n_params(m):
    return sum(p.numel() for p in m.parameters())


# ----------------------------------------------------------------------------------------
# Yan-Edit renderer: depth latent + style prompt -> RGB latent, as a ControlNet branch
# (x_t, t, hint) -> control and a base renderer (x_t, t, style, control) -> x0, exported as
# rectified-flow velocity. Trained jointly; the split sits at an additive residual on the base's
# hidden tokens (the ControlNet shape: with control zeroed, the base renders the style alone).
# ----------------------------------------------------------------------------------------


def flow_gate(t, gate_sigma):
    """w(σ) = clamp((gate − σ)/gate, 0, 1), σ = t/1000: 0 (x_t unseen) at and above the gate.
    `gate_sigma = None`: no gate (w = 1, x_t seen at every noise level)."""
    if gate_sigma is None:
        return torch.ones_like(t).view(-1, 1, 1, 1)
    return ((gate_sigma - t / 1000.0) / gate_sigma).clamp(0, 1).view(-1, 1, 1, 1)


class ControlBranch(nn.Module):
    """ControlNet branch: (x_t, t, hint) -> control [B, d, g, g] (g = latent/patch), zero-initialised
    output. x_t is gated like the base (unseen for σ >= gate)."""

    def __init__(self, d=128, zc=LATENT_CHANNELS, hint_channels=4, patch=2, gate_sigma=0.5, blocks=2):
        super().__init__()
        self.gate_sigma = float(gate_sigma)
        self.inp = nn.Conv2d(zc + hint_channels, d, 2 * patch, stride=patch, padding=patch // 2)
        self.temb = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, 2 * d))
        self.d = d
        self.body = nn.Sequential(*[ResBlock(d) for _ in range(blocks)])
        self.out = nn.Conv2d(d, d, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x, t, hint):
        w = flow_gate(t, self.gate_sigma)
        h = self.inp(torch.cat([w * x, hint], 1))
        sc, sh = self.temb(timestep_embedding(t, self.d)).view(x.shape[0], -1, 1, 1).chunk(2, dim=1)
        return self.out(self.body(h * (1 + sc) + sh))


class RenderDiT(nn.Module):
    """Base renderer: (x_t, t, style tokens [B, L, 64], control [B, d, g, g]) -> x0 of the RGB latent.
    The style prompt is pooled by a learned query (attention over its tokens) into the adaLN
    condition; control is added to the patch tokens. For σ = t/1000 >= gate_sigma x_t is unseen, so
    the engine's 4-step shifted Euler (σ = 1, .94, .83, .63 at shift 5) returns the conditional
    mean of the frame given depth and style.

    The Yume graphs' denoiser is the same network with `extra_channels` (spatial conditions
    channel-concatenated to x_t: the previous latent and the I2V condition) and `residual_scale`
    s > 0: x0 = extra[:, :zc] + s·F (the previous latent plus a change, as Yan-Sim's context prior).
    """

    def __init__(self, d=128, depth=4, heads=4, latent=16, patch=2, zc=LATENT_CHANNELS, style_dim=TOKEN,
                 gate_sigma=0.5, refine=64, extra_channels=0, residual_scale=0.0):
        super().__init__()
        self.gate_sigma = None if gate_sigma is None else float(gate_sigma)
        self.d, self.patch, self.zc = d, patch, zc
        self.residual_scale = float(residual_scale)
        grid = latent // patch
        self.inp = nn.Conv2d(zc + extra_channels, d, 2 * patch, stride=patch, padding=patch // 2)
        self.pos = nn.Parameter(torch.randn(1, grid * grid, d) * 0.02)
        self.temb = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.query = nn.Parameter(torch.randn(1, 1, style_dim) * 0.1)
        self.key = nn.Linear(style_dim, style_dim)
        self.semb = nn.Sequential(nn.Linear(style_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.blocks = nn.ModuleList([Block(d, heads) for _ in range(depth)])
        self.nf = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.ada_f = nn.Linear(d, 2 * d)
        nn.init.zeros_(self.ada_f.weight)
        nn.init.zeros_(self.ada_f.bias)
        self.out = nn.Linear(d, refine * patch * patch // 4)
        self.r1 = nn.Conv2d(refine // 4 + zc + extra_channels, refine, 3, padding=1)
        self.r_film = nn.Linear(d, 2 * refine)
        self.r2 = nn.Conv2d(refine, zc, 3, padding=1)

    def pool_style(self, style):
        att = torch.softmax((self.key(style) * self.query).sum(-1) / math.sqrt(style.shape[-1]), dim=-1)  # [B, L]
        return (att.unsqueeze(-1) * style).sum(1)

    def forward(self, x, t, style, control=None, extra=None):
        B, C, H, W = x.shape
        w = flow_gate(t, self.gate_sigma)
        xin = w * x if extra is None else torch.cat([w * x, extra], 1)
        h = self.inp(xin)
        if control is not None:
            h = h + control
        h = h.flatten(2).transpose(1, 2) + self.pos
        c = F.silu(self.temb(timestep_embedding(t, self.d)) + self.semb(self.pool_style(style)))
        for blk in self.blocks:
            h = blk(h, c)
        s, b = self.ada_f(c).unsqueeze(1).chunk(2, dim=-1)
        h = self.out(self.nf(h) * (1 + s) + b)
        p = self.patch
        h = F.pixel_shuffle(h.transpose(1, 2).reshape(B, -1, H // p, W // p), p)
        sc, sh = self.r_film(c).view(B, -1, 1, 1).chunk(2, dim=1)
        out = self.r2(F.silu(self.r1(torch.cat([h, xin], 1)) * (1 + sc) + sh))
        if self.residual_scale > 0:
            out = extra[:, : self.zc] + self.residual_scale * out
        return out


class VelocityWrapper(nn.Module):
    """The exported base renderer: rectified-flow velocity v = (x_t − x0)/σ (x_t = (1−σ)·x0 + σ·ε)."""

    def __init__(self, dit):
        super().__init__()
        self.dit = dit

    def forward(self, x, t, style, control):
        x0 = self.dit(x, t, style, control)
        sigma = (t / 1000.0).clamp(min=1e-3).view(-1, 1, 1, 1)
        return (x - x0) / sigma


def load_rgb_decoder(ckpt):
    """The RGB decoder of `train_sim.py vae` (<ckpt>/vae.pt), normalisation folded in."""
    import os

    ck = torch.load(os.path.join(ckpt, "vae.pt"))
    dec = Decoder(ck.get("f", 8), zc=ck.get("zc", LATENT_CHANNELS), cout=3)
    dec.load_state_dict(ck["dec"])
    return ScaledDecoder(dec, ck["shift"], ck["scale"]).eval()
