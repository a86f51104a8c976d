"""The segmentation networks: plain PyTorch modules, built from a small JSON-able description.

- :class:`UNet`: the U-Net of Ronneberger et al. 2015 in 2-D or 3-D — per level two 3x3 convolutions
  with batch norm and ReLU, max-pool down, transposed convolution up, skip connections by concatenation.
  ``base`` channels at the top level, doubling per level.
- :class:`MSDNet`: the Mixed-Scale Dense network of Pelt & Sethian 2018 — ``depth`` layers of width one,
  each a dilated 3x3 convolution over *all* previous feature maps (the input included), dilations
  cycling 1..``max_dilation``; a 1x1 convolution over all maps gives the class scores.

:func:`build` makes a network from ``(arch, in_channels, classes, hparams)``, the description a model file
stores, so loading a model never unpickles code.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.errors import ParameterError

#: Default hyper-parameters per architecture (a model file stores the ones it used).
DEFAULTS: dict[str, dict] = {
    "unet": {"base": 16, "levels": 4},
    "unet3d": {"base": 16, "levels": 4},
    "msd": {"depth": 100, "width": 1, "max_dilation": 10},
}

#: The range each hyper-parameter may take: wide enough for any network that fits a GPU, narrow
#: enough that a crafted model file cannot make :func:`build` allocate terabytes.
LIMITS: dict[str, tuple[int, int]] = {"base": (1, 256), "levels": (1, 8), "depth": (1, 512), "width": (1, 64),
                                      "max_dilation": (1, 128)}


def _layers(ndim: int):
    if ndim == 2:
        return nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.ConvTranspose2d
    return nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d, nn.ConvTranspose3d


class _DoubleConv(nn.Sequential):
    def __init__(self, ndim: int, cin: int, cout: int):
        conv, norm, _, _ = _layers(ndim)
        super().__init__(
            conv(cin, cout, 3, padding=1, bias=False), norm(cout), nn.ReLU(inplace=True),
            conv(cout, cout, 3, padding=1, bias=False), norm(cout), nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """U-Net with ``levels`` resolution levels (``levels - 1`` poolings).

    Input sizes must be multiples of ``2 ** (levels - 1)`` along every spatial axis
    (:attr:`size_multiple`); inference pads tiles to that.
    """

    def __init__(self, in_channels: int, classes: int, base: int = 16, levels: int = 4, ndim: int = 2):
        super().__init__()
        if levels < 1 or base < 1:
            raise ParameterError(f"U-Net needs levels >= 1 and base >= 1, got levels={levels}, base={base}")
        conv, _, pool, up = _layers(ndim)
        widths = [base * 2 ** i for i in range(levels)]
        self.size_multiple = 2 ** (levels - 1)
        self.down = nn.ModuleList()
        c = in_channels
        for w in widths:
            self.down.append(_DoubleConv(ndim, c, w))
            c = w
        self.pool = pool(2)
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.up.append(up(c, w, 2, stride=2))
            self.merge.append(_DoubleConv(ndim, 2 * w, w))
            c = w
        self.head = conv(c, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < len(self.down) - 1:
                skips.append(x)
                x = self.pool(x)
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat([skips.pop(), up(x)], dim=1))
        return self.head(x)


class MSDNet(nn.Module):
    """Mixed-Scale Dense network (2-D): dense, dilated, width-one layers; no pooling, any input size."""

    def __init__(self, in_channels: int, classes: int, depth: int = 100, width: int = 1, max_dilation: int = 10):
        super().__init__()
        if depth < 1 or width < 1 or max_dilation < 1:
            raise ParameterError("MS-D needs depth, width and max_dilation >= 1")
        self.size_multiple = 1
        self.layers = nn.ModuleList()
        c = in_channels
        for i in range(depth):
            d = i % max_dilation + 1
            self.layers.append(nn.Conv2d(c, width, 3, padding=d, dilation=d, padding_mode="reflect"))
            c += width
        self.head = nn.Conv2d(c, classes, 1)
        # Pelt & Sethian initialise each layer from a normal distribution scaled by its fan-in.
        for layer in self.layers:
            nn.init.normal_(layer.weight, 0.0, (2.0 / (9 * layer.in_channels)) ** 0.5)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = x
        for layer in self.layers:
            maps = torch.cat([maps, torch.relu(layer(maps))], dim=1)
        return self.head(maps)


def build(arch: str, in_channels: int, classes: int, hparams: dict | None = None) -> nn.Module:
    """Build the network a model description names (unknown hyper-parameters are an error)."""
    if arch not in DEFAULTS:
        raise ParameterError(f"unknown architecture {arch!r}; choose one of {', '.join(DEFAULTS)}")
    hp = dict(DEFAULTS[arch])
    for k, v in (hparams or {}).items():
        if k not in hp:
            raise ParameterError(f"architecture {arch!r} has no hyper-parameter {k!r} (it has {', '.join(hp)})")
        if isinstance(v, bool) or not isinstance(v, int | float) or v != int(v):
            raise ParameterError(f"hyper-parameter {k!r} must be a whole number, got {v!r}")
        lo, hi = LIMITS[k]
        if not lo <= v <= hi:
            raise ParameterError(f"hyper-parameter {k!r} must be {lo}..{hi}, got {v}")
        hp[k] = int(v)
    if arch == "msd":
        return MSDNet(in_channels, classes, **hp)
    return UNet(in_channels, classes, ndim=3 if arch == "unet3d" else 2, **hp)


def spatial_dims(arch: str) -> int:
    return 3 if arch == "unet3d" else 2
