"""A factor classifier: a small network that reads an image and predicts each of its ground-truth factors
(sprites' shape, scale, position) as a class, one softmax head per factor.

It is a measuring instrument, not a subject: the flow lab's latent-diffusion table decodes latents sampled
by several samplers to images and compares the factors this network reads off them with the factors it reads
off real images (``labs/flow/latent.py``, docs/metrics.md). The body is the autoencoders' encoder (four
stride-2 4×4 convolutions and a 256-unit layer for 64×64 inputs; an MLP for other shapes), its output the
concatenated logits of all heads.

A training batch is one float array per row: the image's pixels, flattened, followed by its K factor
indices (exact as float32 for any index below 2²⁴); ``pack`` builds one, ``loss`` takes it apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import LatentAtlasError
from .nets import ConvEncoder, MLPEncoder, conv_supported
from .registry import register

KIND = "factor_classifier"


@dataclass
class FactorClassifierConfig:
    kind: str = KIND
    input_shape: tuple[int, ...] = (1, 64, 64)
    factor_names: tuple[str, ...] = ()
    factor_sizes: tuple[int, ...] = ()
    hidden: int = 256

    def __post_init__(self) -> None:
        if len(self.factor_names) != len(self.factor_sizes) or not self.factor_names:
            raise LatentAtlasError(f"a factor classifier needs one size per factor name and at least one factor, got "
                                   f"{len(self.factor_names)} name(s) and {len(self.factor_sizes)} size(s)")
        if any(not 2 <= s <= 100_000 for s in self.factor_sizes):
            raise LatentAtlasError(f"factor sizes {tuple(self.factor_sizes)} should each be between 2 and 100,000 classes")
        if len(set(self.factor_names)) != len(self.factor_names):
            raise LatentAtlasError(f"factor names {tuple(self.factor_names)} should be distinct")
        if not self.input_shape or any(s < 1 for s in self.input_shape) or math.prod(self.input_shape) > (1 << 24):
            raise LatentAtlasError(f"a factor classifier's input shape {tuple(self.input_shape)} should be positive and at most 2^24 values")
        if not 1 <= self.hidden <= 1 << 14:
            raise LatentAtlasError(f"a factor classifier's hidden width {self.hidden} should be between 1 and 16,384")


@register(KIND, config=FactorClassifierConfig)
class FactorClassifier(nn.Module):
    """Logits of every factor's classes from an image; ``loss`` is the sum of the heads' cross-entropies."""

    def __init__(self, config: FactorClassifierConfig):
        super().__init__()
        self.config = config
        shape = tuple(config.input_shape)
        out = int(sum(config.factor_sizes))
        self.conv = conv_supported(shape)
        self.body = ConvEncoder(shape, out, config.hidden) if self.conv else MLPEncoder(shape, out, config.hidden)
        if self.conv:
            self.to(memory_format=torch.channels_last)  # as the VAE: faster small convolutions on CPU
        self._splits = [int(s) for s in config.factor_sizes]

    @property
    def pixels(self) -> int:
        return math.prod(self.config.input_shape)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """One (B, size_k) logits tensor per factor."""
        shape = tuple(self.config.input_shape)
        if tuple(x.shape[1:]) != shape:
            raise LatentAtlasError(f"factor classifier input has shape {tuple(x.shape[1:])} per sample; it expects {shape}")
        if self.conv:
            x = x.contiguous(memory_format=torch.channels_last)
        return list(self.body(x).split(self._splits, dim=1))

    def loss(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        p = self.pixels
        x = batch[:, :p].reshape(batch.shape[0], *self.config.input_shape)
        y = batch[:, p:].round().long()
        logits = self(x)
        losses = [F.cross_entropy(lg, y[:, k]) for k, lg in enumerate(logits)]
        with torch.no_grad():
            acc = torch.stack([(lg.argmax(1) == y[:, k]).float().mean() for k, lg in enumerate(logits)]).mean()
        return {"loss": torch.stack(losses).sum(), "acc": acc}

    @torch.no_grad()
    def predict(self, x: np.ndarray | torch.Tensor, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """The most likely class of each factor (N, K) int64 and its probability (N, K) float32, for images
        in [0, 1] (a uint8 array is divided by 255)."""
        was = self.training
        self.eval()
        dev = next(self.parameters()).device
        arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        codes, probs = [], []
        for i in range(0, len(arr), batch_size):
            chunk = arr[i : i + batch_size]
            xb = torch.from_numpy(chunk.astype(np.float32) / 255.0 if chunk.dtype == np.uint8 else np.ascontiguousarray(chunk, np.float32))
            heads = [torch.softmax(lg.float(), dim=1) for lg in self(xb.to(dev))]
            best = [h.max(1) for h in heads]
            codes.append(torch.stack([b.indices for b in best], 1).cpu().numpy())
            probs.append(torch.stack([b.values for b in best], 1).cpu().numpy())
        self.train(was)
        k = len(self._splits)
        if not codes:
            return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
        return np.concatenate(codes).astype(np.int64), np.concatenate(probs).astype(np.float32)


def pack(images: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """A training batch: (B, C·H·W + K) float32, the flattened images then their factor indices."""
    images = np.asarray(images, dtype=np.float32)
    factors = np.asarray(factors)
    return np.concatenate([images.reshape(len(images), -1), factors.astype(np.float32).reshape(len(images), -1)], axis=1)
