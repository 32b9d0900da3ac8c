"""Reference outputs of wgraph's samplers from the public libraries, on a
small real exported model, for tests/cli/sampler_parity.rs.

Builds a tiny diffusers `UNet2DModel` (seeded, random weights), exports it
with `torch.onnx.export` (unet_tiny.onnx: inputs `x` f32[1, 2, 8, 8] and
`t` f32[1], output `out`), then runs each case's sampler from diffusers'
schedulers or k-diffusion's `sample_*` on that ONNX file (through ONNX
Runtime, the runtime wgraph uses, so both sides evaluate the same network)
from the same start noise (noise.npy) and, for stochastic samplers, the same
step noise (step_noise.npy, one tensor per step, as wgraph's `step_noise`
input takes it). Writes <case>.npy and cases.json (the table the Rust test
reads: the wgraph sampler kind, the model declaration, its parameters).

Also a k-diffusion-style model (kd_tiny.onnx, a few KB): a tiny seeded conv
net inside k-diffusion's own Karras preconditioner `layers.Denoiser`
(σ_data 0.5), exported whole, so the file is k-diffusion's denoiser
D(x, σ) -> x₀ on the VE process x = x₀ + σ·ε, called with σ itself
(inputs `input`, `sigma`, output `denoised`); wgraph declares it
`schedule = ve, sigma_min = 0.002, sigma_max = 80, prediction = sample`.
Its references are k-diffusion's `sample_*` on it. And README's "Bring your
own model" graphs' references (byo_*.npy, tests/cli/sampler_parity.rs reads
README itself): k-diffusion on kd_tiny.onnx, diffusers / k-diffusion on
unet_tiny_native.onnx (diffusers' port names; made by
make_export_variants.py, run that first).

    python3.11 -m venv /work/venv-ref   # outside the repository
    /work/venv-ref/bin/pip install torch diffusers k-diffusion onnx onnxruntime
    /work/venv-ref/bin/python models-onnx/references/make_sampler_refs.py

CPU only; deterministic (fixed seeds, one thread).
"""
import json
import os
import sys

import numpy as np
import onnxruntime as ort
import torch

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
SHAPE = (1, 2, 8, 8)
T = 1000
# The model's declared VP schedule: DDPM's linear betas (not the
# scaled_linear default that `ddim` used to assume).
BETAS = dict(beta_schedule="linear", beta_start=0.0001, beta_end=0.02, num_train_timesteps=T)
VP_DECL = "{ role = denoiser, prediction = epsilon, schedule = linear, beta_start = 0.0001, beta_end = 0.02 }"
FLOW_DECL = "{ role = denoiser, prediction = velocity, schedule = rectified_flow }"


def export():
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=8,
        in_channels=2,
        out_channels=2,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    ).eval()

    class Wrap(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x, t):
            return self.m(x, t).sample

    path = os.path.join(HERE, "unet_tiny.onnx")
    x = torch.zeros(SHAPE)
    t = torch.tensor([500.0])
    kwargs = dict(input_names=["x", "t"], output_names=["out"], opset_version=17)
    try:
        torch.onnx.export(Wrap(unet), (x, t), path, dynamo=False, **kwargs)
    except TypeError:
        torch.onnx.export(Wrap(unet), (x, t), path, **kwargs)
    return path


class Net:
    """The exported network through ONNX Runtime: eps/velocity at (x, t)."""

    def __init__(self, path, names=("x", "t")):
        self.names = names
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        self.s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

    def __call__(self, x, t):
        x = np.asarray(x.detach().cpu() if torch.is_tensor(x) else x, dtype=np.float32)
        t = np.asarray(t.detach().cpu() if torch.is_tensor(t) else t, dtype=np.float32).reshape(1)
        return torch.from_numpy(self.s.run(None, {self.names[0]: x, self.names[1]: t})[0])


def acs():
    return torch.cumprod(1.0 - torch.linspace(0.0001, 0.02, T, dtype=torch.float64), 0)


def diffusers_loop(sched, net, noise, steps, step_kwargs=None, patch=None, z=None, last_denoised=False,
                   flow_t=False):
    """The scheduler's loop. `flow_t`: the model is called at t = 1000σ of
    the step's σ (the multistep schedulers keep `use_flow_sigmas` timesteps
    as int64, which truncates 1000σ; wgraph and FlowMatch do not)."""
    sched.set_timesteps(steps)
    x = torch.from_numpy(noise) * getattr(sched, "init_noise_sigma", 1.0)
    mod, step = None, [0]
    if patch:
        import importlib

        # The scheduler's noise is step i's injected tensor (a step that
        # draws nothing — LCM's last, DDPM's at t = 0 — skips its draw).
        mod = importlib.import_module(patch)
        saved = mod.randn_tensor
        mod.randn_tensor = lambda *a, **k: torch.from_numpy(z[step[0]].copy())
    try:
        for i, t in enumerate(sched.timesteps):
            step[0] = i
            scale = getattr(sched, "scale_model_input", None)
            xin = scale(x, t) if scale else x
            tm = float(sched.sigmas[i]) * 1000.0 if flow_t else float(t)
            y = net(xin, torch.tensor([tm]))
            out = sched.step(y, t, x, **(step_kwargs or {}))
            x = out.prev_sample
            if last_denoised:
                den = out.denoised
    finally:
        if mod is not None:
            mod.randn_tensor = saved
    return (den if last_denoised else x).numpy()


def kdiff(name, net, noise, sigmas, z=None, **kw):
    """k-diffusion's sampler `name` on the VP ε export, through its
    `DiscreteEpsDDPMDenoiser` over the model's ᾱ."""
    from k_diffusion.external import DiscreteEpsDDPMDenoiser

    class Inner(torch.nn.Module):
        def forward(self, x, t):
            return net(x, t)

    return ksample(name, DiscreteEpsDDPMDenoiser(Inner(), acs(), quantize=False), noise, sigmas, z, **kw)


def ksample(name, model, noise, sigmas, z=None, **kw):
    """k-diffusion's sampler `name` on a denoiser D(x, σ): x = noise·σ₀,
    step i's noise the injected z[i]."""
    import k_diffusion.sampling as ks

    x = (torch.from_numpy(noise).double() * sigmas[0]).float()
    extra = {}
    if z is not None:
        steps = iter(range(len(z)))
        extra["noise_sampler"] = lambda s, sn: torch.from_numpy(z[next(steps)].copy())
    return getattr(ks, name)(model, x, sigmas.float(), disable=True, **extra, **kw).numpy()


KD_DECL = "{ role = denoiser, prediction = sample, schedule = ve, sigma_min = 0.002, sigma_max = 80.0, inputs = { x = \"input\", t = \"sigma\" } }"
KD_SIGMA = (0.002, 80.0)


def export_kd():
    """k-diffusion's Karras preconditioner around a tiny σ-conditioned conv
    net (seeded random weights): D(input, sigma) -> denoised."""
    from k_diffusion.layers import Denoiser

    class Inner(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv_in = torch.nn.Conv2d(2, 8, 3, padding=1)
            self.emb = torch.nn.Linear(2, 8)
            self.conv_out = torch.nn.Conv2d(8, 2, 3, padding=1)

        def forward(self, x, sigma):
            c_noise = sigma.log() / 4  # EDM's noise conditioning
            e = self.emb(torch.stack([c_noise, torch.cos(3 * c_noise)], -1))
            h = torch.nn.functional.silu(self.conv_in(x) + e[:, :, None, None])
            return self.conv_out(h)

    torch.manual_seed(1)
    model = Denoiser(Inner(), sigma_data=0.5).eval()
    path = os.path.join(HERE, "kd_tiny.onnx")
    args = (torch.zeros(SHAPE), torch.tensor([1.0]))
    kwargs = dict(input_names=["input", "sigma"], output_names=["denoised"], opset_version=17)
    try:
        torch.onnx.export(model, args, path, dynamo=False, **kwargs)
    except TypeError:
        torch.onnx.export(model, args, path, **kwargs)
    return path


def const_model(net):
    """ComfyUI's CONST model sampling (rectified flow) as a k-diffusion
    denoiser: the velocity model called at t = 1000σ on x as is,
    D(x, σ) = x − σ·v."""
    return lambda x, sigma: x - sigma.reshape(-1, 1, 1, 1) * net(x, sigma * 1000.0)


def euler_ancestral_rf(model, x, sigmas, noise, eta=1.0, s_noise=1.0):
    """What ComfyUI runs for `euler_ancestral` on a CONST (flow) model
    (comfy/k_diffusion/sampling.py, `sample_euler_ancestral_RF`): Euler to
    σ_down = σ'·(1 + (σ'/σ − 1)·η), then re-noised by α'/α_down and
    √(σ'² − σ_down²·α'²/α_down²)·z."""
    for i in range(len(sigmas) - 1):
        s, s1 = sigmas[i], sigmas[i + 1]
        denoised = model(x, s.reshape(1))
        if s1 == 0:
            x = denoised
            continue
        down = s1 * (1 + (s1 / s - 1) * eta)
        a1, ad = 1 - s1, 1 - down
        renoise = (s1 ** 2 - down ** 2 * a1 ** 2 / ad ** 2) ** 0.5
        r = down / s
        x = r * x + (1 - r) * denoised
        if eta > 0:
            x = (a1 / ad) * x + noise(i) * s_noise * renoise
    return x


def sample_ddpm(model, x, sigmas, noise):
    """ComfyUI's `sample_ddpm` (comfy/k_diffusion/sampling.py:
    `generic_step_sampler` with `DDPMSampler_step`): the DDPM posterior
    between two σ on the VP point x/√(1+σ²), re-scaled to the VE form."""
    for i in range(len(sigmas) - 1):
        s, s1 = sigmas[i], sigmas[i + 1]
        denoised = model(x, s.reshape(1))
        eps = (x - denoised) / s
        xv = x / torch.sqrt(1.0 + s ** 2.0)
        ac, ac1 = 1 / (s * s + 1), 1 / (s1 * s1 + 1)
        alpha = ac / ac1
        mu = (1.0 / alpha).sqrt() * (xv - (1 - alpha) * eps / (1 - ac).sqrt())
        if s1 > 0:
            mu += ((1 - alpha) * (1.0 - ac1) / (1.0 - ac)).sqrt() * noise(i)
        x = mu
        if s1 != 0:
            x = x * torch.sqrt(1.0 + s1 ** 2.0)
    return x


def sample_lcm(model, x, sigmas, noise):
    """ComfyUI's `sample_lcm`: the consistency estimate, re-noised to the
    next σ with fresh noise (EPS `noise_scaling`: x = D + σ'·z)."""
    for i in range(len(sigmas) - 1):
        x = model(x, sigmas[i].reshape(1))
        if sigmas[i + 1] > 0:
            x = x + sigmas[i + 1] * noise(i)
    return x


def lcm_model(den, scaling=10.0):
    """An LCM's consistency function as a k-diffusion denoiser: diffusers'
    boundary condition `c_skip·x_vp + c_out·x₀` at the fractional timestep
    of σ (`sigma_to_t`), x_vp = x/√(1+σ²) the point the model is called at."""

    def d(x, sigma):
        t = den.sigma_to_t(sigma).double() * scaling
        c_skip, c_out = 0.25 / (t * t + 0.25), t / (t * t + 0.25) ** 0.5
        x0 = den(x, sigma).double()
        xv = x.double() / (1 + sigma.double() ** 2) ** 0.5
        return (c_out * x0 + c_skip * xv).float()

    return d


def eps_denoiser(net):
    """k-diffusion's `DiscreteEpsDDPMDenoiser` over the VP ε export (the
    model called at the fractional timestep of σ)."""
    from k_diffusion.external import DiscreteEpsDDPMDenoiser

    class Inner(torch.nn.Module):
        def forward(self, x, t):
            return net(x, t)

    return DiscreteEpsDDPMDenoiser(Inner(), acs(), quantize=False)


def model_sigmas():
    ac = acs()
    s = ((1 - ac) / ac) ** 0.5
    return float(s[0]), float(s[-1])


def main():
    path = export()
    net = Net(path)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(SHAPE).astype(np.float32)
    z = rng.standard_normal((10,) + SHAPE).astype(np.float32)
    np.save(os.path.join(HERE, "noise.npy"), noise)
    np.save(os.path.join(HERE, "step_noise.npy"), z)

    import diffusers as d
    import k_diffusion.sampling as ks

    smin, smax = model_sigmas()
    karras = lambda n: ks.get_sigmas_karras(n, smin, smax, rho=7.0, device="cpu").double()
    expo = lambda n: ks.get_sigmas_exponential(n, smin, smax, device="cpu").double()
    cases = []

    def save(name, ref):
        out = ref()
        np.save(os.path.join(HERE, f"{name}.npy"), out.astype(np.float32))
        print(f"{name}: |x| {np.abs(out).max():.3f}", file=sys.stderr)

    def case(name, sampler, model, params, ref, draws=0, matches=""):
        save(name, ref)
        cases.append(dict(name=name, sampler=sampler, model=model, params=params,
                          draws=draws, matches=matches))

    # DDIM: the model's declared linear betas (issue 21's first bug).
    case("ddim_trailing", "ddim", "vp", "steps = 4",
         lambda: diffusers_loop(d.DDIMScheduler(**BETAS, timestep_spacing="trailing", clip_sample=False), net, noise, 4),
         matches="diffusers DDIMScheduler(trailing)")
    case("ddim_leading_offset_clip", "ddim", "vp",
         'steps = 5, spacing = "leading", steps_offset = 1, set_alpha_to_one = false, clip_sample = true, clip_sample_range = 1.5',
         lambda: diffusers_loop(d.DDIMScheduler(**BETAS, timestep_spacing="leading", steps_offset=1, set_alpha_to_one=False,
                                                clip_sample=True, clip_sample_range=1.5), net, noise, 5),
         matches="diffusers DDIMScheduler(leading, steps_offset=1, set_alpha_to_one=False, clip_sample)")

    def ddim_eta():
        s = d.DDIMScheduler(**BETAS, timestep_spacing="trailing", clip_sample=False)
        s.set_timesteps(3)
        x = torch.from_numpy(noise)
        for i, t in enumerate(s.timesteps):
            y = net(x, torch.tensor([float(t)]))
            x = s.step(y, t, x, eta=1.0, variance_noise=torch.from_numpy(z[i].copy())).prev_sample
        return x.numpy()

    case("ddim_eta1", "ddim", "vp", "steps = 3, eta = 1.0", ddim_eta, draws=3,
         matches="diffusers DDIMScheduler(eta=1, variance_noise)")
    case("ddpm", "ddpm", "vp", "steps = 4",
         lambda: diffusers_loop(d.DDPMScheduler(**BETAS, timestep_spacing="trailing", clip_sample=False), net, noise, 4,
                                patch="diffusers.schedulers.scheduling_ddpm", z=z),
         draws=4, matches="diffusers DDPMScheduler(trailing, fixed_small)")
    case("uni_pc", "uni_pc", "vp", "steps = 5",
         lambda: diffusers_loop(d.UniPCMultistepScheduler(**BETAS, timestep_spacing="trailing"), net, noise, 5),
         matches="diffusers UniPCMultistepScheduler(bh2, order 2, trailing)")
    case("uni_pc_order3", "uni_pc", "vp", "steps = 6, order = 3",
         lambda: diffusers_loop(d.UniPCMultistepScheduler(**BETAS, timestep_spacing="trailing", solver_order=3), net, noise, 6),
         matches="diffusers UniPCMultistepScheduler(bh2, order 3, trailing)")
    case("lcm", "lcm", "vp", "steps = 4",
         lambda: diffusers_loop(d.LCMScheduler(**BETAS), net, noise, 4,
                                patch="diffusers.schedulers.scheduling_lcm", z=z, last_denoised=True),
         draws=4, matches="diffusers LCMScheduler")
    # Euler (flow-space in wgraph) on the VP model: diffusers' spacing.
    case("euler_vp_trailing", "euler", "vp", 'steps = 4, init_noise = "sigma"',
         lambda: diffusers_loop(d.EulerDiscreteScheduler(**BETAS, timestep_spacing="trailing"), net, noise, 4),
         matches="diffusers EulerDiscreteScheduler(trailing)")
    case("euler_vp_leading", "euler", "vp", 'steps = 4, spacing = "leading", steps_offset = 1',
         lambda: diffusers_loop(d.EulerDiscreteScheduler(**BETAS, timestep_spacing="leading", steps_offset=1), net, noise, 4),
         matches="diffusers EulerDiscreteScheduler(leading, steps_offset=1)")
    case("euler_vp_linspace", "euler", "vp", 'steps = 5, spacing = "linspace", init_noise = "sigma"',
         lambda: diffusers_loop(d.EulerDiscreteScheduler(**BETAS, timestep_spacing="linspace"), net, noise, 5),
         matches="diffusers EulerDiscreteScheduler(linspace)")
    # k-diffusion, Karras / exponential σ of the model.
    case("euler_karras", "euler", "vp", 'steps = 6, scheduler = "karras", init_noise = "sigma"',
         lambda: kdiff("sample_euler", net, noise, karras(6)), matches="k-diffusion sample_euler, get_sigmas_karras")
    case("euler_ancestral_karras", "euler_ancestral", "vp", 'steps = 6, scheduler = "karras", init_noise = "sigma"',
         lambda: kdiff("sample_euler_ancestral", net, noise, karras(6), z=z), draws=6,
         matches="k-diffusion sample_euler_ancestral")
    case("heun_karras", "heun", "vp", 'steps = 4, scheduler = "karras", init_noise = "sigma"',
         lambda: kdiff("sample_heun", net, noise, karras(4)), matches="k-diffusion sample_heun")
    case("dpmpp_2m_karras", "dpmpp_2m", "vp", 'steps = 6, scheduler = "karras", init_noise = "sigma"',
         lambda: kdiff("sample_dpmpp_2m", net, noise, karras(6)), matches="k-diffusion sample_dpmpp_2m")
    case("dpmpp_2m_exponential", "dpmpp_2m", "vp", 'steps = 5, scheduler = "exponential", init_noise = "sigma"',
         lambda: kdiff("sample_dpmpp_2m", net, noise, expo(5)),
         matches="k-diffusion sample_dpmpp_2m, get_sigmas_exponential")
    case("dpmpp_2m_sde_karras", "dpmpp_2m_sde", "vp", 'steps = 6, scheduler = "karras", init_noise = "sigma"',
         lambda: kdiff("sample_dpmpp_2m_sde", net, noise, karras(6), z=z), draws=6,
         matches="k-diffusion sample_dpmpp_2m_sde(midpoint)")
    case("dpmpp_3m_sde_karras", "dpmpp_3m_sde", "vp", 'steps = 6, scheduler = "karras", init_noise = "sigma"',
         lambda: kdiff("sample_dpmpp_3m_sde", net, noise, karras(6), z=z), draws=6,
         matches="k-diffusion sample_dpmpp_3m_sde")
    # ComfyUI's beta and sgm_uniform schedulers (their formulas over the
    # model's σ table), run by k-diffusion's sample_euler.
    import scipy.stats

    table = ((1 - acs()) / acs()) ** 0.5
    ts = np.rint(scipy.stats.beta.ppf(1 - np.linspace(0, 1, 6, endpoint=False), 0.6, 0.6) * (T - 1))
    beta_sig = torch.cat([table[[int(t) for t in dict.fromkeys(ts)]], torch.zeros(1, dtype=torch.float64)])
    case("euler_beta", "euler", "vp", 'steps = 6, scheduler = "beta", init_noise = "sigma"',
         lambda: kdiff("sample_euler", net, noise, beta_sig), matches="ComfyUI beta_scheduler (scipy beta.ppf), k-diffusion sample_euler")

    def sgm():
        from k_diffusion.external import DiscreteSchedule

        sched = DiscreteSchedule(table, quantize=False)
        t = torch.linspace(T - 1, 0, 7, dtype=torch.float64)[:-1]
        return torch.cat([sched.t_to_sigma(t), torch.zeros(1, dtype=torch.float64)])

    sgm_sig = sgm()
    case("dpmpp_2m_sgm_uniform", "dpmpp_2m", "vp", 'steps = 6, scheduler = "sgm_uniform", init_noise = "sigma"',
         lambda: kdiff("sample_dpmpp_2m", net, noise, sgm_sig),
         matches="ComfyUI sgm_uniform (k-diffusion t_to_sigma), k-diffusion sample_dpmpp_2m")
    sig = karras(5)
    lst = ", ".join(repr(float(v)) for v in sig[:-1])
    case("dpmpp_2m_sigmas", "dpmpp_2m", "vp", f'sigmas = [{lst}], init_noise = "sigma"',
         lambda: kdiff("sample_dpmpp_2m", net, noise, sig), matches="k-diffusion sample_dpmpp_2m, explicit σ")
    # ddim, ddpm and lcm off the default scheduler: σ-space steps on the
    # scheduler's levels, as k-diffusion / ComfyUI run them.
    case("ddim_karras", "ddim", "vp", 'steps = 5, scheduler = "karras", init_noise = "sigma"',
         lambda: kdiff("sample_euler", net, noise, karras(5)),
         matches="k-diffusion sample_euler (DDIM, eta = 0), get_sigmas_karras")
    zs = lambda i: torch.from_numpy(z[i].copy())

    def ddpm_karras():
        den, sig = eps_denoiser(net), karras(6)
        x = (torch.from_numpy(noise).double() * sig[0]).float()
        out = sample_ddpm(den, x, sig.float(), zs).numpy()
        anc = kdiff("sample_euler_ancestral", net, noise, sig, z=z)
        gap = np.linalg.norm(out - anc) / np.linalg.norm(anc)
        print(f"ddpm_karras: ComfyUI sample_ddpm vs k-diffusion sample_euler_ancestral(eta=1): {gap:.2e}",
              file=sys.stderr)
        return out

    case("ddpm_karras", "ddpm", "vp", 'steps = 6, scheduler = "karras", init_noise = "sigma"', ddpm_karras,
         draws=6, matches="ComfyUI sample_ddpm (= k-diffusion sample_euler_ancestral, eta = 1), get_sigmas_karras")

    def lcm_exponential():
        sig = expo(4)
        x = (torch.from_numpy(noise).double() * sig[0]).float()
        return sample_lcm(lcm_model(eps_denoiser(net)), x, sig.float(), zs).numpy()

    case("lcm_exponential", "lcm", "vp", 'steps = 4, scheduler = "exponential", init_noise = "sigma"',
         lcm_exponential, draws=4,
         matches="ComfyUI sample_lcm, diffusers' LCM boundary condition, get_sigmas_exponential")
    # The same file as a rectified-flow velocity model: diffusers' FlowMatch.
    case("euler_flow_sd3", "euler", "flow", 'steps = 4, scheduler = "normal", shift = 3.0',
         lambda: diffusers_loop(d.FlowMatchEulerDiscreteScheduler(shift=3.0), net, noise, 4),
         matches="diffusers FlowMatchEulerDiscreteScheduler(shift=3)")

    def flow_dynamic():
        s = d.FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                              base_image_seq_len=256, max_image_seq_len=4096)
        tokens = SHAPE[2] * SHAPE[3] / 4
        m = (1.15 - 0.5) / (4096 - 256)
        mu = tokens * m + (0.5 - m * 256)
        s.set_timesteps(4, mu=mu)
        x = torch.from_numpy(noise)
        for t in s.timesteps:
            y = net(x, torch.tensor([float(t)]))
            x = s.step(y, t, x).prev_sample
        return x.numpy()

    case("euler_flow_dynamic", "euler", "flow", 'steps = 4, scheduler = "normal", dynamic_shift = true', flow_dynamic,
         matches="diffusers FlowMatchEulerDiscreteScheduler(use_dynamic_shifting)")
    # The k-diffusion-family rules on the flow model (α = 1 − σ), on
    # diffusers' flow σ list (`use_flow_sigmas`, shift 3) given as `sigmas`.
    def flow_case(name, sampler, cls, extra, draws=0, patch=None, **kw):
        mk = lambda: cls(use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=3.0, **kw)
        probe = mk()
        probe.set_timesteps(5)
        lst = ", ".join(repr(float(v)) for v in probe.sigmas[:-1])
        case(name, sampler, "flow", f"sigmas = [{lst}]{extra}",
             lambda: diffusers_loop(mk(), net, noise, 5, patch=patch, z=z, flow_t=True), draws=draws,
             matches=f"diffusers {cls.__name__}(use_flow_sigmas, flow_shift=3{', ' if kw else ''}{', '.join(f'{k}={v}' for k, v in kw.items())})")

    flow_case("dpmpp_2m_flow", "dpmpp_2m", d.DPMSolverMultistepScheduler, "")
    flow_case("dpmpp_2m_sde_flow", "dpmpp_2m_sde", d.DPMSolverMultistepScheduler, "", draws=5,
              patch="diffusers.schedulers.scheduling_dpmsolver_multistep", algorithm_type="sde-dpmsolver++")
    flow_case("uni_pc_flow", "uni_pc", d.UniPCMultistepScheduler, "")
    # k-diffusion's Heun and Euler ancestral on the flow model the way
    # ComfyUI runs them on a CONST model: `sample_heun` on D(x, σ) = x − σ·v,
    # `euler_ancestral` as `sample_euler_ancestral_RF`. Flux's schedule
    # shift(linspace(1, 0, N+1)[:N]), shift 3: wgraph's default.
    flow_sig = torch.linspace(1, 0, 6, dtype=torch.float64)
    flow_sig = 3 * flow_sig / (1 + 2 * flow_sig)
    const = const_model(net)
    case("heun_flow", "heun", "flow", "steps = 5, shift = 3.0",
         lambda: ks.sample_heun(const, torch.from_numpy(noise), flow_sig.float(), disable=True).numpy(),
         matches="k-diffusion sample_heun on the flow model as ComfyUI's CONST (D = x − σ·v)")
    case("euler_ancestral_flow", "euler_ancestral", "flow", "steps = 5, shift = 3.0",
         lambda: euler_ancestral_rf(const, torch.from_numpy(noise), flow_sig.float(),
                                    lambda i: torch.from_numpy(z[i].copy())).numpy(), draws=5,
         matches="ComfyUI sample_euler_ancestral_RF (k-diffusion's Euler ancestral on a CONST flow model)")
    # The k-diffusion-style model: k-diffusion's own samplers on D(x, σ).
    kd = Net(export_kd(), names=("input", "sigma"))
    kd_karras = lambda n: ks.get_sigmas_karras(n, *KD_SIGMA, rho=7.0, device="cpu").double()
    case("euler_ancestral_ve", "euler_ancestral", "ve", 'steps = 6, scheduler = "karras"',
         lambda: ksample("sample_euler_ancestral", kd, noise, kd_karras(6), z=z), draws=6,
         matches="k-diffusion sample_euler_ancestral on a k-diffusion Denoiser")
    case("dpmpp_2m_sde_ve", "dpmpp_2m_sde", "ve", 'steps = 6, scheduler = "karras"',
         lambda: ksample("sample_dpmpp_2m_sde", kd, noise, kd_karras(6), z=z), draws=6,
         matches="k-diffusion sample_dpmpp_2m_sde on a k-diffusion Denoiser")
    case("dpmpp_2m_exponential_ve", "dpmpp_2m", "ve", 'steps = 5, scheduler = "exponential"',
         lambda: ksample("sample_dpmpp_2m", kd, noise,
                          ks.get_sigmas_exponential(5, *KD_SIGMA, device="cpu").double()),
         matches="k-diffusion sample_dpmpp_2m, get_sigmas_exponential, on a k-diffusion Denoiser")
    json.dump(dict(shape=list(SHAPE), vp=VP_DECL, flow=FLOW_DECL, ve=KD_DECL, files=dict(ve="kd_tiny.onnx"),
                   cases=cases),
              open(os.path.join(HERE, "cases.json"), "w"), indent=1)

    # README's "Bring your own model" graphs (three samplers on each model).
    byo = save
    byo("byo_kd_euler", lambda: ksample("sample_euler", kd, noise, kd_karras(6)))
    byo("byo_kd_heun", lambda: ksample("sample_heun", kd, noise, kd_karras(4)))
    byo("byo_kd_dpmpp_2m", lambda: ksample("sample_dpmpp_2m", kd, noise, kd_karras(6)))
    native = os.path.join(HERE, "unet_tiny_native.onnx")
    if not os.path.exists(native):
        sys.exit("unet_tiny_native.onnx is missing: run make_export_variants.py first")
    unet = Net(native, names=("sample", "timestep"))
    byo("byo_unet_ddim", lambda: diffusers_loop(d.DDIMScheduler(**BETAS, timestep_spacing="trailing", clip_sample=False),
                                                unet, noise, 4))
    byo("byo_unet_uni_pc", lambda: diffusers_loop(d.UniPCMultistepScheduler(**BETAS, timestep_spacing="trailing"),
                                                  unet, noise, 5))
    byo("byo_unet_dpmpp_2m", lambda: kdiff("sample_dpmpp_2m", unet, noise, karras(6)))


if __name__ == "__main__":
    main()
