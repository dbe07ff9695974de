"""Sparse autoencoders on activations: ReLU (L1 weighted by decoder norm), TopK (+ AuxK), BatchTopK and
JumpReLU, in one module with one config.

The shared shape: ``f = act(W_enc (x̃ − b_dec) + b_enc)``, ``x̂ = W_dec f + b_dec`` with x̃ the input
times a fixed scale that makes E‖x̃‖ = √d (``normalize_input``; the scale is stored with the weights and
undone on the way out, so ``forward`` maps raw activations to raw reconstructions). Training starts
from ``init_from_data``: ``b_dec`` at the data mean and the scale; the encoder starts as the decoder's
transpose. Losses are per token, summed over the d dims, in the normalised space.

- ``relu``: ``‖x̃ − x̂‖² + λ Σ_i f_i ‖W_dec,i‖`` (Anthropic, "Towards Monosemanticity" and the
  April 2024 update), λ ramped up from 0 over ``sparsity_warmup`` steps.
- ``topk``: keep the k largest pre-activations per token (Gao et al. 2024, "Scaling and evaluating
  sparse autoencoders"). Decoding uses unit-norm directions W_dec,i/‖W_dec,i‖ and the pre-activations
  are multiplied by ‖W_dec,i‖, so the code carries each row's norm (as SAELens'
  ``rescale_acts_by_decoder_norm``); rows start at norm 0.1, which sets Adam's step relative to the
  weights (measured: FVU 0.14 vs 0.19 for unit-norm rows after 100 steps, docs/benchmarks.md). AuxK: the
  residual is reconstructed from the
  ``aux_k`` largest pre-activations of dead latents, loss ``min(n_dead/aux_k, 1) · ‖e − ê‖²`` weighted
  by ``aux_coeff`` (1/32 in the paper; the damping for few dead latents as in EleutherAI's sae and SAELens).
- ``batchtopk``: the k·B largest over the whole batch (Bussmann et al. 2024); at inference a fixed
  threshold θ, an exponential moving average of the smallest kept activation during training, saved
  with the weights.
- ``jumprelu``: ``f = z · H(z − θ)`` with a learned per-latent θ, trained through straight-through
  estimators with a rectangle kernel of width ``bandwidth`` (Rajamanoharan et al. 2024, "Jumping
  Ahead"), sparsity ``λ · L0``.

A latent is dead once it has not fired for ``dead_tokens`` training tokens (tracked in a buffer, so it
survives checkpoints and resume).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register

ARCHS = ("relu", "topk", "batchtopk", "jumprelu")


@dataclass
class SAEConfig:
    kind: str = "sae"
    arch: str = "topk"
    d_in: int = 384
    d_sae: int = 3072
    k: int = 32
    l1_coeff: float = 5.0  # relu
    l0_coeff: float = 0.5  # jumprelu (per token, normalised space where E‖x‖² ≈ d)
    sparsity_warmup: int = 0  # steps over which λ ramps from 0 (relu, jumprelu)
    aux_k: int = 512  # topk / batchtopk: latents used to model the residual (AuxK)
    aux_coeff: float = 1 / 32
    dead_tokens: int = 1_000_000
    threshold_init: float = 0.001  # jumprelu
    bandwidth: float = 0.001  # jumprelu
    normalize_input: bool = True
    # topk / batchtopk: carry each decoder row's norm in the code and decode with unit rows (the default, as
    # trained here); False keeps the plain parameterisation (f = act(pre), x̂ = f W_dec + b_dec), which is
    # how SAELens's TopK SAEs without ``rescale_acts_by_decoder_norm`` encode and decode
    rescale_by_decoder_norm: bool = True

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got '{self.arch}'")
        if self.d_in < 1 or self.d_sae < 1:
            raise ValueError(f"d_in and d_sae must be >= 1, got {self.d_in} and {self.d_sae}")
        if self.arch in ("topk", "batchtopk") and not 1 <= self.k <= self.d_sae:
            raise ValueError(f"k must be between 1 and d_sae={self.d_sae}, got {self.k}")


class _JumpReLU(torch.autograd.Function):
    """z · H(z − θ); ∂/∂θ through a rectangle kernel of width ε (straight-through), ∂/∂z = H(z − θ)."""

    @staticmethod
    def forward(ctx, z, theta, eps):
        ctx.save_for_backward(z, theta)
        ctx.eps = eps
        return z * (z > theta)

    @staticmethod
    def backward(ctx, grad):
        z, theta = ctx.saved_tensors
        eps = ctx.eps
        gate = (z > theta).to(grad.dtype)
        near = ((z - theta).abs() < eps / 2).to(grad.dtype)
        g_theta = (-(theta / eps) * near * grad).sum(0)
        return grad * gate, g_theta, None


class _Step(torch.autograd.Function):
    """H(z − θ) with ∂/∂θ = −(1/ε)·K((z − θ)/ε) (rectangle K) and no gradient to z."""

    @staticmethod
    def forward(ctx, z, theta, eps):
        ctx.save_for_backward(z, theta)
        ctx.eps = eps
        return (z > theta).to(z.dtype)

    @staticmethod
    def backward(ctx, grad):
        z, theta = ctx.saved_tensors
        eps = ctx.eps
        near = ((z - theta).abs() < eps / 2).to(grad.dtype)
        return None, (-(1.0 / eps) * near * grad).sum(0), None


@register("sae", config=SAEConfig)
class SAE(nn.Module):
    def __init__(self, config: SAEConfig):
        super().__init__()
        self.config = c = config
        direction = torch.randn(c.d_sae, c.d_in)
        direction /= direction.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(direction * 0.1)
        self.W_enc = nn.Parameter(self.W_dec.detach().t().clone())
        self.b_enc = nn.Parameter(torch.zeros(c.d_sae))
        self.b_dec = nn.Parameter(torch.zeros(c.d_in))
        if c.arch == "jumprelu":
            self.log_threshold = nn.Parameter(torch.full((c.d_sae,), math.log(c.threshold_init)))
        self.register_buffer("input_scale", torch.ones(()))
        self.register_buffer("threshold", torch.zeros(()))  # batchtopk inference threshold
        self.register_buffer("tokens_since_fired", torch.zeros(c.d_sae, dtype=torch.int64))
        self.register_buffer("sparsity_scale", torch.ones(()))

    # -- set-up ------------------------------------------------------------------------------------
    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        """Set the input scale (E‖x̃‖ = √d) and b_dec (the mean of x̃) from a sample of activations."""
        x = x.float()
        if self.config.normalize_input:
            self.input_scale.fill_(math.sqrt(self.config.d_in) / x.norm(dim=1).mean().clamp_min(1e-12))
        self.b_dec.copy_((x * self.input_scale).mean(0))

    def before_step(self, step: int, total: int) -> None:
        w = self.config.sparsity_warmup
        self.sparsity_scale.fill_(min(1.0, (step + 1) / w) if w > 0 else 1.0)

    # -- the map -----------------------------------------------------------------------------------
    @property
    def rescaled(self) -> bool:
        """TopK and BatchTopK decode with unit directions and carry each row's norm in the code (unless
        ``rescale_by_decoder_norm`` is off)."""
        return self.config.arch in ("topk", "batchtopk") and self.config.rescale_by_decoder_norm

    def decoder(self) -> torch.Tensor:
        """The rows codes multiply in decoding (unit rows for TopK/BatchTopK)."""
        if self.rescaled:
            return self.W_dec / self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return self.W_dec

    def pre_acts(self, x_norm: torch.Tensor) -> torch.Tensor:
        pre = (x_norm - self.b_dec) @ self.W_enc + self.b_enc
        return pre * self.W_dec.norm(dim=1) if self.rescaled else pre

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        c = self.config
        if c.arch == "relu":
            return torch.relu(pre)
        if c.arch == "topk":
            vals, idx = torch.topk(pre, c.k, dim=-1)
            return torch.zeros_like(pre).scatter(-1, idx, torch.relu(vals))
        if c.arch == "batchtopk":
            z = torch.relu(pre)
            if self.training:
                flat = z.flatten()
                keep = min(c.k * z.shape[0], flat.numel())
                vals, idx = torch.topk(flat, keep)
                out = torch.zeros_like(flat).scatter(0, idx, vals).view_as(z)
                with torch.no_grad():
                    positive = vals[vals > 0]
                    if positive.numel():
                        low = positive.min()
                        if self.threshold.item() == 0:
                            self.threshold.copy_(low)
                        else:
                            self.threshold.mul_(0.99).add_(0.01 * low)
                return out
            return z * (z > self.threshold)
        theta = self.log_threshold.exp()
        return _JumpReLU.apply(torch.relu(pre), theta, c.bandwidth)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent codes for raw activations ``x`` [..., d_in]."""
        return self.activate(self.pre_acts(x * self.input_scale))

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """Raw-space reconstruction from codes."""
        return (f @ self.decoder() + self.b_dec) / self.input_scale

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.encode(x)
        return self.decode(f), f

    # -- training ----------------------------------------------------------------------------------
    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        c = self.config
        x_norm = x.float() * self.input_scale
        pre = self.pre_acts(x_norm)
        if c.arch == "topk":
            # Decode from the k (index, value) pairs with embedding_bag: k·d work per token instead of
            # d_sae·d, forward and backward, with no dense [batch, d_sae] code (the same sum as f @ W_dec).
            vals, idx = torch.topk(pre, c.k, dim=-1)
            vals = torch.relu(vals)
            dec = self.decoder()
            x_hat = F.embedding_bag(idx, dec, per_sample_weights=vals, mode="sum") + self.b_dec
            on = vals > 0
            l0 = on.float().sum(-1).mean()
            any_fired = torch.zeros(c.d_sae, dtype=torch.bool, device=x.device).index_fill_(0, idx[on], True)
        else:
            f = self.activate(pre)
            dec = self.decoder()
            x_hat = f @ dec + self.b_dec
            fired = f > 0
            l0 = fired.float().sum(-1).mean()
            any_fired = fired.any(0)
        err = x_norm - x_hat
        mse = err.pow(2).sum(-1).mean()
        out = {"mse": mse.detach(), "l0": l0.detach()}
        total_var = (x_norm - x_norm.mean(0)).pow(2).sum(-1).mean()
        out["fvu"] = (mse / total_var.clamp_min(1e-12)).detach()
        loss = mse
        if c.arch == "relu":
            l1 = (f * self.W_dec.norm(dim=1)).sum(-1).mean()
            loss = loss + c.l1_coeff * self.sparsity_scale * l1
            out["l1"] = l1.detach()
        elif c.arch == "jumprelu":
            theta = self.log_threshold.exp()
            l0_ste = _Step.apply(torch.relu(pre), theta, c.bandwidth).sum(-1).mean()
            loss = loss + c.l0_coeff * self.sparsity_scale * l0_ste
        if self.training:
            with torch.no_grad():
                self.tokens_since_fired.add_(x.shape[0])
                self.tokens_since_fired[any_fired] = 0
        dead = self.tokens_since_fired >= c.dead_tokens
        out["dead"] = dead.float().mean().detach()
        if c.arch in ("topk", "batchtopk") and c.aux_coeff > 0:
            n_dead = int(dead.sum())
            if n_dead:
                k_aux = min(c.aux_k, n_dead)
                # top-k among the dead latents' columns only (cheaper than masking the full [batch, d_sae])
                dead_idx = torch.nonzero(dead).squeeze(1)
                a_vals, j = torch.topk(pre.index_select(1, dead_idx), k_aux, dim=-1)
                a_idx = dead_idx[j]
                e = err.detach()
                e_hat = F.embedding_bag(a_idx, dec, per_sample_weights=torch.relu(a_vals), mode="sum")
                # on the same scale as the main loss (‖·‖² per token), damped while few latents are dead
                aux = min(n_dead / c.aux_k, 1.0) * (e - e_hat).pow(2).sum(-1).mean()
                loss = loss + c.aux_coeff * aux
                out["aux"] = aux.detach()
            else:
                out["aux"] = torch.zeros((), device=x.device)
        out["loss"] = loss
        return out
