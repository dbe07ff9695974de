"""Encoder/decoder bodies shared by the autoencoder family.

The conv pair is the architecture of Higgins et al. (2017) and Locatello et al. (2019) for 64x64
inputs (four stride-2 4x4 convolutions, then a 256-unit layer), generalised to any square power-of-two
size >= 16. Small inputs (sklearn digits, vectors) use an MLP.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def conv_depth(size: int) -> int:
    return int(math.log2(size // 4))


def conv_supported(shape: tuple[int, ...]) -> bool:
    if len(shape) != 3:
        return False
    _, h, w = shape
    return h == w and h >= 16 and (h & (h - 1)) == 0


class ConvEncoder(nn.Module):
    def __init__(self, shape: tuple[int, int, int], out_features: int, hidden: int = 256):
        super().__init__()
        channels, size, _ = shape
        widths = [32, 32, 64, 64] + [64] * max(0, conv_depth(size) - 4)
        widths = widths[: conv_depth(size)]
        layers: list[nn.Module] = []
        c = channels
        for w in widths:
            layers += [nn.Conv2d(c, w, 4, stride=2, padding=1), nn.ReLU()]
            c = w
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c * 16, hidden), nn.ReLU(), nn.Linear(hidden, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x))


class ConvDecoder(nn.Module):
    def __init__(self, shape: tuple[int, int, int], in_features: int, hidden: int = 256):
        super().__init__()
        channels, size, _ = shape
        depth = conv_depth(size)
        widths = ([64] * max(0, depth - 4) + [64, 64, 32, 32])[-depth:]
        self.top = widths[0]
        self.fc = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, self.top * 16), nn.ReLU())
        layers: list[nn.Module] = []
        outs = widths[1:] + [channels]
        for i, (a, b) in enumerate(zip(widths, outs)):
            layers.append(nn.ConvTranspose2d(a, b, 4, stride=2, padding=1))
            if i < len(outs) - 1:
                layers.append(nn.ReLU())
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(z.shape[0], self.top, 4, 4)
        return self.deconv(h)


class MLPEncoder(nn.Module):
    def __init__(self, shape: tuple[int, ...], out_features: int, hidden: int = 256):
        super().__init__()
        d = math.prod(shape)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MLPDecoder(nn.Module):
    def __init__(self, shape: tuple[int, ...], in_features: int, hidden: int = 256):
        super().__init__()
        self.shape = tuple(shape)
        d = math.prod(shape)
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, d))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.shape)
