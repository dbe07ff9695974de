"""The autoencoder family: AE, VAE, β-VAE, β-TCVAE, with an optional learned decoder variance.

One module covers the family because the members differ only in their loss:

* ``ae``: deterministic code, reconstruction loss only.
* ``vae``: ELBO, ``recon + KL`` (Kingma & Welling 2014).
* ``beta_vae``: ``recon + β·KL`` (Higgins et al. 2017).
* ``beta_tcvae``: ``recon + α·MI + β·TC + γ·dimKL``, with the three terms estimated by minibatch weighted
  sampling (Chen et al. 2018, eq. 4 and §C.1).

``learned_variance=True`` gives the Gaussian decoder a learned scalar log γ (Dai & Wipf 2019, "Diagnosing
and enhancing VAE models"): ``-log p(x|z) = ||x - x̂||² / (2γ) + (D/2)·log(2πγ)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import LatentAtlasError
from .nets import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder, conv_supported
from .registry import register

FAMILY = ("ae", "vae", "beta_vae", "beta_tcvae")
DEFAULT_BETA = {"ae": 0.0, "vae": 1.0, "beta_vae": 4.0, "beta_tcvae": 6.0}
LOG_2PI = math.log(2 * math.pi)


@dataclass
class VAEConfig:
    kind: str = "vae"
    input_shape: tuple[int, ...] = (1, 64, 64)
    latent_dim: int = 10
    beta: float | None = None  # None: the kind's default (DEFAULT_BETA)
    arch: str = "auto"  # "conv", "mlp" or "auto" (conv for square power-of-two images >= 16 px)
    hidden: int = 256
    likelihood: str = "bernoulli"  # "bernoulli" (logits) or "gaussian"
    learned_variance: bool = False  # Dai–Wipf learned log γ; implies a Gaussian likelihood
    tc_alpha: float = 1.0  # β-TCVAE weight on the index-code mutual information
    tc_gamma: float = 1.0  # β-TCVAE weight on the dimension-wise KL
    dataset_size: int = 0  # N for the minibatch-weighted-sampling estimate (β-TCVAE)

    def __post_init__(self) -> None:
        if self.kind not in FAMILY:
            raise ValueError(f"kind must be one of {FAMILY}, got '{self.kind}'")
        if self.beta is None:
            self.beta = DEFAULT_BETA[self.kind]
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {self.latent_dim}")
        if self.learned_variance:
            self.likelihood = "gaussian"
        if self.likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got '{self.likelihood}'")
        if self.arch == "auto":
            self.arch = "conv" if conv_supported(tuple(self.input_shape)) else "mlp"
        if self.arch not in ("conv", "mlp"):
            raise ValueError(f"arch must be 'conv', 'mlp' or 'auto', got '{self.arch}'")
        if self.arch == "conv" and not conv_supported(tuple(self.input_shape)):
            raise ValueError(f"the conv architecture needs square power-of-two images >= 16 px, got input shape {tuple(self.input_shape)}")
        if self.kind == "beta_tcvae" and self.dataset_size < 1:
            raise ValueError("beta_tcvae needs dataset_size (N) for its minibatch-weighted-sampling estimate")


@register(*FAMILY, config=VAEConfig)
class VAE(nn.Module):
    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        shape = tuple(config.input_shape)
        stochastic = config.kind != "ae"
        out = config.latent_dim * (2 if stochastic else 1)
        if config.arch == "conv":
            self.encoder = ConvEncoder(shape, out, config.hidden)
            self.decoder = ConvDecoder(shape, config.latent_dim, config.hidden)
        else:
            self.encoder = MLPEncoder(shape, out, config.hidden)
            self.decoder = MLPDecoder(shape, config.latent_dim, config.hidden)
        if config.learned_variance:
            self.log_gamma = nn.Parameter(torch.zeros(()))
        if config.arch == "conv":
            # NHWC runs these small-channel convolutions ~1.5x faster on CPU (oneDNN); the saved
            # weights are the same values in the standard layout.
            self.to(memory_format=torch.channels_last)

    @property
    def stochastic(self) -> bool:
        return self.config.kind != "ae"

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    # -- the pieces every consumer (eval, explorer, figures) uses ------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Posterior mean and log-variance (``None`` for the deterministic AE)."""
        self._check_input(x)
        if self.config.arch == "conv":
            x = x.contiguous(memory_format=torch.channels_last)
        h = self.encoder(x)
        if not self.stochastic:
            return h, None
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder output: logits for a Bernoulli likelihood, the mean for a Gaussian one."""
        return self.decoder(z)

    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """The decoded image in [0, 1]."""
        out = self.decode(z)
        return torch.sigmoid(out) if self.config.likelihood == "bernoulli" else out.clamp(0, 1)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        mu, _ = self.encode(x)
        return self.decode_mean(mu)

    @property
    def gamma(self) -> float | None:
        return float(self.log_gamma.exp()) if self.config.learned_variance else None

    # -- training ------------------------------------------------------------------------------------
    def recon_nll(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-sample negative log-likelihood of x under the decoder (summed over pixels)."""
        if self.config.likelihood == "bernoulli":
            return F.binary_cross_entropy_with_logits(out, x, reduction="none").flatten(1).sum(1)
        sq = (out - x).pow(2).flatten(1).sum(1)
        if self.config.learned_variance:
            d = x[0].numel()
            return 0.5 * sq / self.log_gamma.exp() + 0.5 * d * (self.log_gamma + LOG_2PI)
        return 0.5 * sq  # unit variance; constants dropped

    def loss(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        x = batch
        mu, logvar = self.encode(x)
        if not self.stochastic:
            recon = self.recon_nll(self.decode(mu), x).mean()
            return {"loss": recon, "recon": recon}
        std = torch.exp(0.5 * logvar)
        z = mu + std * torch.randn_like(std)
        recon = self.recon_nll(self.decode(z), x).mean()
        kl_dims = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)  # (B, D)
        kl = kl_dims.sum(1).mean()
        out = {"recon": recon, "kl": kl}
        if self.config.kind == "beta_tcvae":
            mi, tc, dwkl = self.tc_decomposition(z, mu, logvar)
            c = self.config
            out.update(mi=mi, tc=tc, dwkl=dwkl)
            out["loss"] = recon + c.tc_alpha * mi + c.beta * tc + c.tc_gamma * dwkl
        else:
            out["loss"] = recon + self.config.beta * kl
        out["elbo"] = -(recon + kl)
        if self.config.learned_variance:
            out["gamma"] = self.log_gamma.exp().detach()
        return out

    def tc_decomposition(self, z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Minibatch weighted sampling (Chen et al. 2018): log q(z_i) ≈ logsumexp_j log q(z_i|x_j) − log(N·M)."""
        batch = z.shape[0]
        # log q(z_i[d] | x_j) for every pair (i, j) and dim d: (B, B, D)
        diff = z.unsqueeze(1) - mu.unsqueeze(0)
        log_q_pairs = -0.5 * (diff.pow(2) * torch.exp(-logvar.unsqueeze(0)) + logvar.unsqueeze(0) + LOG_2PI)
        log_nm = math.log(batch * self.config.dataset_size)
        log_qz = torch.logsumexp(log_q_pairs.sum(2), dim=1) - log_nm
        log_prod_qzi = (torch.logsumexp(log_q_pairs, dim=1) - log_nm).sum(1)
        log_qz_given_x = (-0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + LOG_2PI)).sum(1)
        log_pz = (-0.5 * (z.pow(2) + LOG_2PI)).sum(1)
        mi = (log_qz_given_x - log_qz).mean()
        tc = (log_qz - log_prod_qzi).mean()
        dwkl = (log_prod_qzi - log_pz).mean()
        return mi, tc, dwkl

    def _check_input(self, x: torch.Tensor) -> None:
        expected = tuple(self.config.input_shape)
        if tuple(x.shape[1:]) != expected:
            raise LatentAtlasError(f"model input has shape {tuple(x.shape[1:])} per sample; this {self.config.kind} expects {expected}")
