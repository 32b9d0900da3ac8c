"""Export variants of `unet_tiny.onnx` for tests/cli/export_variants.rs: the
same seeded diffusers `UNet2DModel` as make_sampler_refs.py (same weights),
exported the ways users' exports come, to be wired unedited with
`model … { inputs = { x = "sample", t = "timestep" } }`:

- unet_tiny_native.onnx: diffusers' own names (`sample`, `timestep`,
  output `noise_pred`), a dynamic batch axis, an f32 `timestep[batch]`;
- unet_tiny_i64.onnx: the same with an int64 `timestep[batch]`;
- unet_tiny_b1.onnx: batch fixed to 1 and a scalar f32 `timestep`.

    /work/venv-ref/bin/python models-onnx/references/make_export_variants.py

CPU only; deterministic.
"""
import os

import torch

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
SHAPE = (1, 2, 8, 8)


def unet():
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    return UNet2DModel(
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

    def forward(self, sample, timestep):
        return self.m(sample, timestep).sample


def export(name, t, dynamic):
    path = os.path.join(HERE, name)
    kwargs = dict(input_names=["sample", "timestep"], output_names=["noise_pred"], opset_version=17)
    if dynamic:
        kwargs["dynamic_axes"] = {"sample": {0: "batch"}, "timestep": {0: "batch"}, "noise_pred": {0: "batch"}}
    args = (torch.zeros(SHAPE), t)
    try:
        torch.onnx.export(Wrap(unet()), args, path, dynamo=False, **kwargs)
    except TypeError:
        torch.onnx.export(Wrap(unet()), args, path, **kwargs)
    print("wrote", path)


if __name__ == "__main__":
    export("unet_tiny_native.onnx", torch.tensor([500.0]), True)
    export("unet_tiny_i64.onnx", torch.tensor([500], dtype=torch.int64), True)
    export("unet_tiny_b1.onnx", torch.tensor(500.0), False)
