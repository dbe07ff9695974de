"""A Stable-Diffusion-style VAE: diffusers' ``AutoencoderKL`` built from a small config and trained here,
and any ``AutoencoderKL`` folder a user has, loaded offline.

The built-in one keeps the parts of SD's VAE that matter to the question asked of it (does the mid-block
attention do anything?): ResNet down and up blocks, and a ``UNetMidBlock2D`` of ResNet, single-head
self-attention over every latent position, ResNet (``mid_block_add_attention=True``), in both encoder and
decoder. It is small (channels 16/32/32, one ResNet per down block) so that it trains on 32×32 sprites in
minutes on a CPU.

The loss follows the shape of the one SD's VAE was trained with (LDM's ``LPIPSWithDiscriminator``,
Rombach et al. 2022): a reconstruction error summed over pixels, plus ``kl_weight`` (1e-6, SD's value)
times the posterior's KL to N(0, I) summed over latent positions, both averaged over the batch. Three
departures, said here: the LPIPS perceptual term and the patch-GAN term are left out (no pretrained VGG
offline; a GAN would not train in minutes), so decodes are blurrier than SD's; the reconstruction error is
squared, not L1, because on sprites (95% black pixels) L1's early optimum is the median image, black, and
it had not left it after 150 steps (PSNR 14.2 dB, all-black is 13.6) where squared error reached 22.3 dB
in 50 (docs/benchmarks.md); and the posterior's log-variance starts at −6 (the bias of ``quant_conv``'s
log-variance half), because Adam moves a bias by about the learning rate per step, so a start at 0 would
spend hundreds of steps decoding mostly noise before SD's near-deterministic posterior is reached.

Images are in [0, 1] outside and in [-1, 1] inside, as diffusers' image processor feeds an AutoencoderKL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import LatentAtlasError
from .registry import register

WEIGHT_SUFFIX = ".safetensors"


@dataclass
class SDVAEConfig:
    kind: str = "sd_vae"
    in_channels: int = 1
    sample_size: int = 32
    block_out_channels: tuple[int, ...] = (16, 32, 32)
    layers_per_block: int = 1
    latent_channels: int = 4
    norm_num_groups: int = 8
    mid_block_add_attention: bool = True
    kl_weight: float = 1e-6

    def __post_init__(self) -> None:
        chans = tuple(self.block_out_channels)
        if not 1 <= len(chans) <= 6 or any(not 1 <= c <= 4096 for c in chans):
            raise LatentAtlasError(f"SD-VAE config has block_out_channels={chans}; expected 1 to 6 widths of 1 to 4,096")
        if any(c % self.norm_num_groups for c in chans):
            raise LatentAtlasError(f"SD-VAE config: every width in {chans} must be divisible by norm_num_groups {self.norm_num_groups}")
        for name, hi in (("in_channels", 16), ("layers_per_block", 8), ("latent_channels", 256), ("sample_size", 4096)):
            v = getattr(self, name)
            if not 1 <= v <= hi:
                raise LatentAtlasError(f"SD-VAE config has {name}={v}; expected 1 to {hi:,}")
        if self.sample_size % (1 << (len(chans) - 1)):
            raise LatentAtlasError(f"SD-VAE config: sample_size {self.sample_size} is not divisible by {1 << (len(chans) - 1)} "
                                   f"(its {len(chans) - 1} downsamplings)")
        if not 0 <= self.kl_weight <= 1e3:
            raise LatentAtlasError(f"SD-VAE config has kl_weight={self.kl_weight}; expected 0 to 1,000")


def _autoencoder_kl(config: SDVAEConfig) -> nn.Module:
    from diffusers import AutoencoderKL

    n = len(config.block_out_channels)
    return AutoencoderKL(in_channels=config.in_channels, out_channels=config.in_channels,
                         down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
                         block_out_channels=tuple(config.block_out_channels), layers_per_block=config.layers_per_block,
                         latent_channels=config.latent_channels, norm_num_groups=config.norm_num_groups,
                         sample_size=config.sample_size, mid_block_add_attention=config.mid_block_add_attention)


def reconstruct(vae: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """An AutoencoderKL's decode of its posterior mean, for images in [0, 1] (clamped back into [0, 1])."""
    z = vae.encode(x * 2 - 1).latent_dist.mode()
    return ((vae.decode(z).sample + 1) / 2).clamp(0, 1)


@register("sd_vae", config=SDVAEConfig)
class SDVAE(nn.Module):
    """``vae`` is the diffusers AutoencoderKL; its module names (``decoder.mid_block.attentions.0``) are
    those of every AutoencoderKL, so an ablation names the same module here and in SD's VAE."""

    def __init__(self, config: SDVAEConfig):
        super().__init__()
        self.config = config
        self.vae = _autoencoder_kl(config)
        quant = getattr(self.vae, "quant_conv", None)
        if quant is not None and quant.bias is not None:
            with torch.no_grad():  # the log-variance half of the posterior's parameters (see the module's docstring)
                quant.bias[config.latent_channels:] -= 6.0

    def _check_input(self, x: torch.Tensor) -> None:
        c, s = self.config.in_channels, self.config.sample_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, s, s):
            raise LatentAtlasError(f"SD-VAE input has shape {tuple(x.shape)}; expected (batch, {c}, {s}, {s}) images in [0, 1]")

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        return reconstruct(self.vae, x)

    def loss(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        self._check_input(batch)
        x = batch * 2 - 1
        posterior = self.vae.encode(x).latent_dist
        out = self.vae.decode(posterior.sample()).sample
        recon = (out - x).pow(2).flatten(1).sum(1).mean()
        kl = posterior.kl().mean()
        mse = ((out.detach() - x) / 2).pow(2).mean()  # in [0, 1] units, for the progress line
        return {"loss": recon + self.config.kl_weight * kl, "recon": recon.detach(), "kl": kl.detach(), "mse": mse}


# -- a user's AutoencoderKL folder ---------------------------------------------------------------------------

def autoencoder_kl_folder(path: str | Path) -> Path | None:
    """The folder holding an AutoencoderKL's config.json: ``path`` itself, or its ``vae/`` (a diffusers
    pipeline folder); None when neither is one."""
    p = Path(path).expanduser()
    for folder in (p, p / "vae"):
        cfg = folder / "config.json"
        if cfg.is_file() and cfg.stat().st_size < (1 << 20):
            try:
                if json.loads(cfg.read_text(encoding="utf-8")).get("_class_name") == "AutoencoderKL":
                    return folder
            except (ValueError, UnicodeDecodeError, AttributeError):
                continue
    return None


def load_autoencoder_kl(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """An AutoencoderKL from a local folder (or a pipeline folder's ``vae/``), offline and from
    safetensors only, in eval mode."""
    folder = autoencoder_kl_folder(path)
    if folder is None:
        raise LatentAtlasError(f"'{path}' is not an AutoencoderKL folder; expected a config.json with \"_class_name\": \"AutoencoderKL\" "
                               "(or a diffusers pipeline folder with a vae/ inside)")
    if not any(folder.glob(f"*{WEIGHT_SUFFIX}")):
        raise LatentAtlasError(f"AutoencoderKL folder '{folder}' has no .safetensors weights; only safetensors are loaded, never pickles")
    from diffusers import AutoencoderKL
    from diffusers.utils import logging as dlog

    dlog.set_verbosity_error()
    try:
        vae = AutoencoderKL.from_pretrained(str(folder), local_files_only=True, use_safetensors=True)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise LatentAtlasError(f"could not load the AutoencoderKL in '{folder}': {(str(exc).splitlines() or [type(exc).__name__])[0][:300]}") from exc
    return vae.to(device).eval()


def describe(vae: nn.Module) -> dict[str, Any]:
    """The few config values a report names (channels, sizes, whether the mid-blocks have attention)."""
    cfg = getattr(vae, "config", {})
    get = (lambda k: cfg.get(k)) if isinstance(cfg, dict) else (lambda k: getattr(cfg, k, None))
    keys = ("in_channels", "latent_channels", "block_out_channels", "layers_per_block", "sample_size", "mid_block_add_attention")
    return {k: (list(v) if isinstance(v, tuple) else v) for k in keys if (v := get(k)) is not None}
