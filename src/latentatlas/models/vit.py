"""A small Vision Transformer (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words"), read in one
sitting: the image is cut into ``patch`` × ``patch`` squares by a strided convolution (one linear map per
patch), a learned CLS token is put in front, learned position embeddings are added, and ``n_layers``
pre-LN blocks (multi-head attention, then an MLP, each added to the residual stream) lead to a layer
norm and a linear classifier on the CLS token.

Attention runs through :func:`latentatlas.models.attention.attend`, so ``capture.attention`` reads the
trained model's own probabilities exactly as it reads any transformers model's. The names of the parts
follow transformers' ``ViTModel`` where they mean the same thing (``embeddings.patch_embeddings.projection``,
``embeddings.position_embeddings``, ``embeddings.cls_token``), so the views read either model the same way.

``loss(batch)`` takes one float array per batch, (N, 1 + C·H·W): the class in column 0, the pixels after
it (the trainer moves one array per step). While training, each image is shifted by up to ``shift``
pixels (zero fill) with torch's generator, whose state the trainer checkpoints: resume stays exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .attention import attend
from .registry import register


@dataclass
class ViTConfig:
    kind: str = "vit"
    image_size: int = 8
    channels: int = 1
    patch: int = 2
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 4
    mlp_ratio: int = 2
    n_classes: int = 10
    dropout: float = 0.1
    shift: int = 1  # training augmentation: random translation by up to this many pixels
    label_smoothing: float = 0.0  # cross-entropy against (1 − ε)·one-hot + ε/classes (Szegedy et al. 2016)

    def __post_init__(self) -> None:
        from ..errors import LatentAtlasError

        for name, hi in (("image_size", 4096), ("channels", 16), ("patch", 4096), ("d_model", 1 << 14), ("n_heads", 256),
                         ("n_layers", 256), ("mlp_ratio", 64), ("n_classes", 1 << 20)):
            v = getattr(self, name)
            if not 1 <= v <= hi:
                raise LatentAtlasError(f"ViT config has {name}={v}; expected 1 to {hi:,}")
        if self.image_size % self.patch:
            raise LatentAtlasError(f"ViT image_size {self.image_size} is not a multiple of its patch size {self.patch}")
        if self.d_model % self.n_heads:
            raise LatentAtlasError(f"ViT d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if (self.image_size // self.patch) ** 2 > 1 << 14:
            raise LatentAtlasError(f"ViT with image_size {self.image_size} and patch {self.patch} has more than 16,384 patches; use a larger patch")
        if not 0.0 <= self.dropout < 1.0:
            raise LatentAtlasError(f"ViT dropout {self.dropout} is not in [0, 1)")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise LatentAtlasError(f"ViT label_smoothing {self.label_smoothing} is not in [0, 1)")
        if not 0 <= self.shift < self.image_size:
            raise LatentAtlasError(f"ViT shift {self.shift} is not in [0, image_size)")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch


class PatchEmbeddings(nn.Module):
    def __init__(self, c: ViTConfig):
        super().__init__()
        self.projection = nn.Conv2d(c.channels, c.d_model, kernel_size=c.patch, stride=c.patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(x).flatten(2).transpose(1, 2)  # (batch, patches row-major, d_model)


class Embeddings(nn.Module):
    def __init__(self, c: ViTConfig):
        super().__init__()
        self.patch_embeddings = PatchEmbeddings(c)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.d_model))
        self.position_embeddings = nn.Parameter(torch.randn(1, c.grid**2 + 1, c.d_model) * 0.02)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_embeddings(x)
        return self.dropout(torch.cat([self.cls_token.expand(len(p), -1, -1), p], dim=1) + self.position_embeddings)


class SelfAttention(nn.Module):
    def __init__(self, c: ViTConfig):
        super().__init__()
        self.n_heads, self.d_head = c.n_heads, c.d_model // c.n_heads
        self.qkv = nn.Linear(c.d_model, 3 * c.d_model)
        self.out = nn.Linear(c.d_model, c.d_model)
        self.dropout = c.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, self.d_head).permute(2, 0, 3, 1, 4)
        # no mask: every patch sees every patch, so no row is empty (the check is skipped)
        o, _ = attend(self, q, k, v, None, dropout=self.dropout, causal_only=True, need_probs=False)
        return self.out(o.reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, c: ViTConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(c.d_model)
        self.attention = SelfAttention(c)
        self.norm2 = nn.LayerNorm(c.d_model)
        self.mlp = nn.Sequential(nn.Linear(c.d_model, c.mlp_ratio * c.d_model), nn.GELU(), nn.Dropout(c.dropout),
                                 nn.Linear(c.mlp_ratio * c.d_model, c.d_model), nn.Dropout(c.dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


@register("vit", config=ViTConfig)
class ViT(nn.Module):
    def __init__(self, config: ViTConfig):
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList([Block(config) for _ in range(config.n_layers)])
        self.norm = nn.LayerNorm(config.d_model)
        self.classifier = nn.Linear(config.d_model, config.n_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits (batch, n_classes) for images (batch, channels, side, side) in [0, 1]."""
        c = self.config
        if images.ndim != 4 or tuple(images.shape[1:]) != (c.channels, c.image_size, c.image_size):
            from ..errors import LatentAtlasError

            raise LatentAtlasError(f"the ViT reads images of shape (N, {c.channels}, {c.image_size}, {c.image_size}), got {tuple(images.shape)}")
        x = self.embeddings(images)
        for block in self.layers:
            x = block(x)
        return self.classifier(self.norm(x[:, 0]))

    def _shifted(self, x: torch.Tensor) -> torch.Tensor:
        """Each image moved by its own random (dy, dx) in [-shift, shift]², zero fill: one gather."""
        s, side = self.config.shift, self.config.image_size
        padded = nn.functional.pad(x, (s, s, s, s))
        off = torch.randint(0, 2 * s + 1, (len(x), 2), device=x.device)
        rows = (off[:, 0, None] + torch.arange(side, device=x.device))[:, None, :, None]
        cols = (off[:, 1, None] + torch.arange(side, device=x.device))[:, None, None, :]
        n = torch.arange(len(x), device=x.device)[:, None, None, None]
        ch = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        return padded[n, ch, rows, cols]

    def loss(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Cross-entropy of the class, and the batch's accuracy."""
        c = self.config
        labels = batch[:, 0].long()
        x = batch[:, 1:].reshape(-1, c.channels, c.image_size, c.image_size)
        if self.training and c.shift:
            x = self._shifted(x)
        logits = self(x)
        loss = nn.functional.cross_entropy(logits, labels, label_smoothing=c.label_smoothing if self.training else 0.0)
        return {"loss": loss, "accuracy": (logits.argmax(-1) == labels).float().mean().detach()}
