"""A tiny next-frame predictor of the kind a user would bring: frame [1, 3,
64, 64] in [-1, 1] + this tick's keys [1, 9] (W A S D Left Right Up Down
Space, multi-hot, as the `keys` node gives them) → the next frame.

It is fit for 800 steps (under a minute on a CPU) to pan synthetic
images by 2 pixels per tick like `examples/pan.world` (Right/D: the picture
moves right, Down/S: down, wrapping around), then exported with a plain
`torch.onnx.export`: no wgraph metadata, no wgraph step. `next_frame.world`
runs the result with the generic `model` kind.

    python3 -m venv .venv && .venv/bin/pip install torch onnx onnxscript
    .venv/bin/python examples/byo-model/export.py     # writes examples/byo-model/next_frame.onnx
    wgraph run examples/byo-model/next_frame.world --frames 8 --out out/byo
"""
import os

import torch
from torch import nn
from torch.nn import functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
SPEED = 2  # pixels per tick
KEYS = ["W", "A", "S", "D", "Left", "Right", "Up", "Down", "Space"]


class NextFrame(nn.Module):
    """frame + keys → next frame: a residual conv net whose features the keys
    scale and shift (FiLM). Circular padding, so content can wrap around."""

    def __init__(self, width=32):
        super().__init__()
        self.enc = nn.Conv2d(3, width, 3, padding=1, padding_mode="circular")
        self.film = nn.Sequential(nn.Linear(len(KEYS), width), nn.GELU(), nn.Linear(width, 2 * width))
        self.dec = nn.Conv2d(width, 3, 3, padding=1, padding_mode="circular")

    def forward(self, image, keys):
        scale, shift = self.film(keys)[:, :, None, None].chunk(2, 1)
        h = self.enc(image) * (1 + scale) + shift
        return (image + self.dec(h)).clamp(-1, 1)


def pictures(n, gen, size=32):
    """Random smooth pictures with some hard-edged boxes, in [-1, 1]. Small:
    the net is convolutional (and circular), so what it learns on 32×32
    holds on 64×64."""
    x = F.interpolate(torch.rand(n, 3, 8, 8, generator=gen) * 2 - 1, size=size, mode="bilinear")
    for i in range(n):
        for _ in range(3):
            y0, x0 = torch.randint(0, size - 8, (2,), generator=gen).tolist()
            h, w = torch.randint(3, size // 3, (2,), generator=gen).tolist()
            x[i, :, y0 : y0 + h, x0 : x0 + w] = torch.rand(3, 1, 1, generator=gen) * 2 - 1
    return x


def panned(x, keys):
    """What `pan` does with these keys, one picture at a time."""
    held = lambda *ks: keys[:, [KEYS.index(k) for k in ks]].amax(1)
    dx = (held("Right", "D") - held("Left", "A")).long() * SPEED
    dy = (held("Down", "S") - held("Up", "W")).long() * SPEED
    return torch.stack([torch.roll(x[i], (int(dy[i]), int(dx[i])), (1, 2)) for i in range(len(x))])


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)  # deterministic, and fastest for a net this small
    gen = torch.Generator().manual_seed(0)
    model = NextFrame()
    steps, lr = 800, 1e-2
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    for step in range(steps):
        x = pictures(8, gen)
        keys = (torch.rand(8, len(KEYS), generator=gen) < 0.2).float()
        loss = F.mse_loss(model(x, keys), panned(x, keys))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 200 == 0 or step == steps - 1:
            print(f"step {step}: mse {loss.item():.5f}")
    model.eval()
    path = os.path.join(HERE, "next_frame.onnx")
    # The plain export. Port names are optional: without them the exporter
    # picks its own (here `image`, `keys` → `clamp`; with dynamo=False
    # `input.1`, `onnx::Gemm_1` → `78`), and a graph quotes those that are
    # not identifiers: `net."input.1"`.
    # external_data=False keeps the weights inside the one .onnx file.
    torch.onnx.export(
        model,
        (torch.zeros(1, 3, 64, 64), torch.zeros(1, len(KEYS))),
        path,
        input_names=["image", "keys"],
        output_names=["next"],
        external_data=False,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
