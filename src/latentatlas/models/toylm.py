"""A small attention-only transformer (Elhage et al. 2021, "A Mathematical Framework for Transformer
Circuits"): token and learned position embeddings, ``n_layers`` blocks of multi-head attention added to
the residual stream (no MLPs, no layer norm, so every path through the model is a product of matrices),
and an unembedding. Two layers on repeated random spans grow a previous-token head in layer 0 and an
induction head in layer 1 that reads it, which is why it is this lab's ground truth.

Attention runs through :func:`latentatlas.models.attention.attend`, so capture sees its query, key and
probabilities as it does any transformers model's. ``W_Q``… per head are exposed for circuit scores
(``ov_circuit``): the copying score needs ``W_U · W_O^h · W_V^h · W_E``.
"""

from __future__ import annotations

import functools

from dataclasses import dataclass

import torch
from torch import nn

from .attention import attend
from .registry import register


@dataclass
class AttnOnlyConfig:
    kind: str = "attn_only"
    vocab: int = 64
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    ctx: int = 64
    # "learned": absolute position embeddings added to the tokens; "rotary": no position embedding, the
    # query and key rotated by position (RoPE), so "attend to the previous token" is one fixed rotation
    positions: str = "learned"

    def __post_init__(self) -> None:
        from ..errors import LatentAtlasError

        for name in ("vocab", "d_model", "n_heads", "n_layers", "ctx"):
            v = getattr(self, name)
            if not 1 <= v <= 1 << 16:
                raise LatentAtlasError(f"attention-only model config has {name}={v}; expected 1 to 65,536")
        if self.d_model % self.n_heads:
            raise LatentAtlasError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.positions not in ("learned", "rotary"):
            raise LatentAtlasError(f"attention-only model config has positions='{self.positions}'; expected learned or rotary")
        if self.positions == "rotary" and (self.d_model // self.n_heads) % 2:
            raise LatentAtlasError(f"rotary positions need an even head size, got {self.d_model // self.n_heads}")


@functools.lru_cache(maxsize=32)
def _rotation(t: int, d: int, base: float, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE's cos and sin tables, (t, d), made once per shape (every training step reuses them)."""
    inv = base ** (-torch.arange(0, d, 2, device=device, dtype=torch.float32) / d)
    ang = torch.arange(t, device=device, dtype=torch.float32)[:, None] * inv[None]
    return torch.cat([ang.cos()] * 2, -1).to(dtype), torch.cat([ang.sin()] * 2, -1).to(dtype)


def rotate(x: torch.Tensor, base: float = 10_000.0) -> torch.Tensor:
    """RoPE (Su et al. 2021) in the half-split layout Llama uses: (batch, heads, T, d) rotated by position."""
    t, d = x.shape[-2], x.shape[-1]
    cos, sin = _rotation(t, d, base, x.device, x.dtype)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


class Attention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, rotary: bool = False):
        super().__init__()
        self.n_heads, self.d_head, self.rotary = n_heads, d_model // n_heads, rotary
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        split = lambda y: y.view(b, t, self.n_heads, self.d_head).transpose(1, 2)  # noqa: E731
        q, k = split(self.q_proj(x)), split(self.k_proj(x))
        if self.rotary:
            q, k = rotate(q), rotate(k)
        out, _ = attend(self, q, k, split(self.v_proj(x)), mask, causal_only=True, need_probs=False, is_causal=True)
        return self.o_proj(out.reshape(b, t, -1))


@register("attn_only", config=AttnOnlyConfig)
class AttnOnlyTransformer(nn.Module):
    def __init__(self, config: AttnOnlyConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab, config.d_model)
        rotary = config.positions == "rotary"
        self.pos = None if rotary else nn.Embedding(config.ctx, config.d_model)
        self.layers = nn.ModuleList([Attention(config.d_model, config.n_heads, rotary) for _ in range(config.n_layers)])
        self.unembed = nn.Linear(config.d_model, config.vocab, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        t = tokens.shape[-1]
        if t > self.config.ctx:
            from ..errors import LatentAtlasError

            raise LatentAtlasError(f"the input has {t} tokens, more than this model's {self.config.ctx} positions")
        x = self.embed(tokens)
        if self.pos is not None:
            x = x + self.pos(torch.arange(t, device=tokens.device))
        causal = torch.full((t, t), float("-inf"), device=tokens.device).triu(1)  # additive: cheaper than a boolean fill
        for layer in self.layers:
            x = x + layer(x, causal)
        return self.unembed(x)

    def loss(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Next-token cross-entropy over every position, and the in-context-learning split: the loss on
        the span's first copy against its second copy (Olsson et al.'s ICL score, per token)."""
        tokens, role = batch[:, 0], batch[:, 1]
        logits = self(tokens[:, :-1])
        ce = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1), reduction="none").view(tokens.shape[0], -1)
        target_role = role[:, 1:]
        first, repeat = target_role == 1, target_role == 2
        loss_first = ce[first].mean() if first.any() else ce.new_zeros(())
        loss_repeat = ce[repeat].mean() if repeat.any() else ce.new_zeros(())
        return {"loss": ce.mean(), "loss_first": loss_first.detach(), "loss_repeat": loss_repeat.detach(),
                "icl": (loss_repeat - loss_first).detach()}

    def ov_circuit(self, layer: int, head: int) -> torch.Tensor:
        """The head's OV circuit reduced to d_head × d_head: its nonzero eigenvalues are those of the full
        vocab × vocab ``W_U · W_O^h · W_V^h · W_E`` (a product's eigenvalues are unchanged by cycling it)."""
        a = self.layers[layer]
        sl = slice(head * a.d_head, (head + 1) * a.d_head)
        w_v = a.v_proj.weight[sl]          # d_head × d_model
        w_o = a.o_proj.weight[:, sl]       # d_model × d_head
        w_e = self.embed.weight.T          # d_model × vocab
        w_u = self.unembed.weight          # vocab × d_model
        return w_v @ w_e @ w_u @ w_o
