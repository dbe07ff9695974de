"""Flow-matching and diffusion models for small spaces (2-D toys, a VAE's latents): a network, the objective
it was trained with, and the conversions that let any sampler read any model.

Time and paths, fixed for the whole lab:

- **Flow matching / rectified flow** (``objective="fm"``): x_t = (1 − t)·x0 + t·x1 with x0 ~ N(0, I) at
  t = 0 and data x1 at t = 1; the network predicts the velocity v = x1 − x0 (Lipman et al. 2023; Liu et
  al. 2022). Sampling integrates dx/dt = v from 0 to 1.
- **VP diffusion** (``objective="eps"`` or ``"v"``): x = α·x1 + σ·ε with α = √ᾱ_τ, σ = √(1 − ᾱ_τ) on the
  discrete DDPM schedule τ = 0 … T − 1 (``schedule="linear"``: β from 1e-4 to 0.02, Ho et al. 2020;
  ``"cosine"``: Nichol & Dhariwal 2021), both taken from diffusers' ``DDPMScheduler`` so that its samplers
  see the schedule they were written for. ``"eps"`` predicts ε, ``"v"`` predicts v = α·ε − σ·x1 (Salimans &
  Ho 2022).

The two paths are one family up to a rescaling: x_VP = (α + σ)·x_FM at FM time t = α / (α + σ) (the same
x0 = ε, x1). :class:`Prediction` uses it to give every model both a velocity at FM time t and an ε at VP
step τ, whatever it was trained to predict, so every sampler in :mod:`.samplers` runs on every model —
and on the exact answer for a Gaussian mixture, which exposes the same two methods.

A batch for ``loss`` is (B, d) data points, or (B, 2·d) pairs (x0, x1) for reflow (training on the coupling
a first model's sampler produced, Liu et al. 2022).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn

from .registry import register

OBJECTIVES = ("fm", "eps", "v")
SCHEDULES = ("linear", "cosine")
NETS = ("sinusoidal", "plain")


@dataclass
class FlowConfig:
    kind: str = "flow"
    dim: int = 2
    objective: str = "fm"
    schedule: str = "linear"  # the VP objectives' β schedule (ignored for fm)
    net: str = "sinusoidal"  # "plain": Diffusion Explorer's network (Linear(d + 1, 64), 3 × ELU, Linear(64, d))
    hidden: int = 256
    depth: int = 3
    t_freqs: int = 16  # sinusoidal embedding of the time: 2·t_freqs features
    x_freqs: int = 8  # and of each coordinate: 2·x_freqs features per coordinate (plus the raw value)
    x_scale: float = 1.0  # coordinates are divided by this before their embedding (the data's spread)
    train_timesteps: int = 1000

    def __post_init__(self) -> None:
        from ..errors import LatentAtlasError

        if self.objective not in OBJECTIVES:
            raise LatentAtlasError(f"flow objective '{self.objective}' is not one of {', '.join(OBJECTIVES)}")
        if self.schedule not in SCHEDULES:
            raise LatentAtlasError(f"flow schedule '{self.schedule}' is not one of {', '.join(SCHEDULES)}")
        if self.net not in NETS:
            raise LatentAtlasError(f"flow network '{self.net}' is not one of {', '.join(NETS)}")
        for name, lo, hi in (("dim", 1, 4096), ("hidden", 1, 1 << 14), ("depth", 1, 64), ("t_freqs", 1, 1024),
                             ("x_freqs", 0, 1024), ("train_timesteps", 2, 100_000)):
            v = getattr(self, name)
            if not lo <= v <= hi:
                raise LatentAtlasError(f"flow config has {name}={v}; expected {lo} to {hi:,}")
        if not (math.isfinite(self.x_scale) and self.x_scale > 0):
            raise LatentAtlasError(f"flow config has x_scale={self.x_scale}; expected a positive number")


def sinusoidal(x: torch.Tensor, freqs: int, max_period: float = 1000.0) -> torch.Tensor:
    """sin/cos features of ``x`` (..., ) at ``freqs`` geometric frequencies from 1 to ``max_period``
    (Vaswani et al. 2017's timestep embedding, on a value in about [0, 1]): (..., 2·freqs)."""
    f = torch.exp(torch.linspace(0.0, math.log(max_period), freqs, device=x.device, dtype=x.dtype))
    a = x[..., None] * f
    return torch.cat([a.sin(), a.cos()], dim=-1)


class SinusoidalMLP(nn.Module):
    """The better baseline: sinusoidal embeddings of t and of each coordinate, an MLP with SiLU and a
    residual hidden stack."""

    def __init__(self, c: FlowConfig):
        super().__init__()
        self.c = c
        width_in = c.dim * (1 + 2 * c.x_freqs) + 2 * c.t_freqs
        self.inp = nn.Linear(width_in, c.hidden)
        self.blocks = nn.ModuleList([nn.Sequential(nn.SiLU(), nn.Linear(c.hidden, c.hidden)) for _ in range(c.depth - 1)])
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(c.hidden, c.dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        c = self.c
        xs = x / c.x_scale
        parts = [xs, sinusoidal(t, c.t_freqs)]
        if c.x_freqs:
            parts.append(sinusoidal(xs, c.x_freqs, max_period=100.0).flatten(-2))
        h = self.inp(torch.cat(parts, dim=-1))
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)


class PlainMLP(nn.Module):
    """Diffusion Explorer's network, for comparison: (t, x) → 3 hidden layers of 64 ELU units → d."""

    def __init__(self, c: FlowConfig):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(c.dim + 1, 64), nn.ELU(), nn.Linear(64, 64), nn.ELU(),
                                 nn.Linear(64, 64), nn.ELU(), nn.Linear(64, c.dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([t[:, None], x], dim=-1))


_SCHEDULERS: dict[str, type] = {}
_SCHEDULERS_LOCK = threading.Lock()
SCHEDULER_NAMES = ("DDIMScheduler", "DDPMScheduler", "DPMSolverMultistepScheduler", "FlowMatchEulerDiscreteScheduler",
                   "FlowMatchHeunDiscreteScheduler")


def scheduler(name: str) -> type:
    """A diffusers scheduler class, the first lookup under a lock: diffusers' lazy module raised ImportError
    when two server threads resolved its names at the same moment (two trajectory requests)."""
    if name not in _SCHEDULERS:
        with _SCHEDULERS_LOCK:
            if not _SCHEDULERS:
                import diffusers

                _SCHEDULERS.update({n: getattr(diffusers, n) for n in SCHEDULER_NAMES})
    return _SCHEDULERS[name]


def alphas_cumprod(schedule: str, timesteps: int = 1000) -> torch.Tensor:
    """ᾱ_τ for τ = 0 … T − 1 from diffusers' DDPMScheduler (float64)."""
    DDPMScheduler = scheduler("DDPMScheduler")
    beta = {"linear": "linear", "cosine": "squaredcos_cap_v2"}[schedule]
    return DDPMScheduler(num_train_timesteps=timesteps, beta_schedule=beta).alphas_cumprod.double()


class Field(Protocol):
    """What a sampler needs: a velocity at FM time t and an ε at VP step τ (continuous), on (n, d) points."""

    def velocity(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor: ...
    def eps(self, x: torch.Tensor, tau: torch.Tensor, abar: torch.Tensor) -> torch.Tensor: ...


def _col(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1))).expand(like.shape[0], *([1] * (like.ndim - 1)))


def fm_time_of(abar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """FM time t = α/(α + σ) and the scale α + σ of VP level ᾱ (x_VP = (α + σ)·x_FM)."""
    a, s = abar.clamp(0, 1).sqrt(), (1 - abar).clamp(0, 1).sqrt()
    return a / (a + s), a + s


def abar_of(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The VP level ᾱ = α² with α/(α + σ) = t, α² + σ² = 1, and the scale α + σ (the inverse of fm_time_of)."""
    t = t.double()
    r = torch.sqrt(t * t + (1 - t) ** 2)
    a, s = t / r, (1 - t) / r
    return a * a, a + s


class FlowModel(nn.Module):
    """A network trained with one objective; ``loss`` for the trainer, ``prediction`` for the samplers."""

    def __init__(self, config: FlowConfig):
        super().__init__()
        self.config = config
        self.net = PlainMLP(config) if config.net == "plain" else SinusoidalMLP(config)
        if config.objective != "fm":
            self.register_buffer("abar", alphas_cumprod(config.schedule, config.train_timesteps).float(), persistent=False)

    # the network's own output, in the parametrisation it was trained on; time input in [0, 1]
    def forward(self, x: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        return self.net(x, time.to(x.dtype).expand(x.shape[0]))

    def loss(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Squared error summed over coordinates, mean over the batch (the scale the exact floor uses)."""
        c = self.config
        if batch.shape[-1] == 2 * c.dim:  # reflow: the coupling is given
            x0, x1 = batch[:, : c.dim], batch[:, c.dim:]
        else:
            x1 = batch
            x0 = torch.randn_like(x1)
        n = x1.shape[0]
        if c.objective == "fm":
            t = torch.rand(n, device=x1.device, dtype=x1.dtype)
            xt = (1 - t[:, None]) * x0 + t[:, None] * x1
            target, pred = x1 - x0, self(xt, t)
        else:
            tau = torch.randint(0, c.train_timesteps, (n,), device=x1.device)
            abar = self.abar[tau].to(x1.dtype)[:, None]
            a, s = abar.sqrt(), (1 - abar).sqrt()
            xt = a * x1 + s * x0
            target = x0 if c.objective == "eps" else a * x0 - s * x1
            pred = self(xt, tau.to(x1.dtype) / c.train_timesteps)
        return {"loss": ((pred - target) ** 2).sum(-1).mean()}

    def prediction(self) -> "Prediction":
        return Prediction(self)


class Prediction:
    """A trained :class:`FlowModel` seen as a :class:`Field`: its output converted to a velocity at FM time
    t or to an ε at VP level ᾱ, whichever it was trained to predict. Calls are counted (``nfe``)."""

    def __init__(self, model: FlowModel):
        self.model = model
        self.c = model.config
        self.nfe = 0
        if self.c.objective != "fm":
            # log-SNR of each training step, increasing with τ reversed: to find the τ of any ᾱ
            ab = model.abar.double().cpu()
            self._log_snr = torch.log(ab / (1 - ab))

    def _tau_of(self, abar: torch.Tensor) -> torch.Tensor:
        """The continuous step τ whose log-SNR equals that of ᾱ (linear interpolation of the table)."""
        lam = torch.log(abar.double().clamp(1e-12, 1 - 1e-12) / (1 - abar.double().clamp(1e-12, 1 - 1e-12)))
        table = self._log_snr.flip(0)  # increasing
        steps = torch.arange(len(table) - 1, -1, -1, dtype=torch.float64)  # τ for each entry of ``table``
        lam = lam.clamp(float(table[0]), float(table[-1]))
        i = torch.searchsorted(table, lam).clamp(1, len(table) - 1)
        w = (lam - table[i - 1]) / (table[i] - table[i - 1])
        return steps[i - 1] + w * (steps[i] - steps[i - 1])

    @torch.no_grad()
    def _net(self, x: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        return self.model(x, time.to(x.dtype).reshape(-1).expand(x.shape[0]))

    def velocity(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float64).reshape(-1).expand(x.shape[0])
        if self.c.objective == "fm":
            return self._net(x, t)
        abar, scale = abar_of(t)
        xv = x * _col(scale, x)
        e = self._eps_vp(xv, self._tau_of(abar), abar)
        # x_FM = (1 − t)·x0 + t·x1 and x0 = ε: the velocity x1 − x0 = (x − ε)/t − ε = (x − e)/t
        tt = _col(t, x).clamp_min(1e-6)
        return (x - e) / tt

    def eps(self, x: torch.Tensor, tau: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
        abar = torch.as_tensor(abar, dtype=torch.float64).reshape(-1).expand(x.shape[0])
        if self.c.objective == "fm":
            t, scale = fm_time_of(abar)
            xf = x / _col(scale, x)
            v = self._net(xf, t)
            return xf - _col(t, x) * v  # x0 = x_t − t·v
        tau = torch.as_tensor(tau, dtype=torch.float64).reshape(-1).expand(x.shape[0])
        return self._eps_vp(x, tau, abar)

    def _eps_vp(self, x: torch.Tensor, tau: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
        out = self._net(x, tau / self.c.train_timesteps)
        if self.c.objective == "eps":
            return out
        a, s = _col(abar.sqrt(), x), _col((1 - abar).sqrt(), x)
        return s * x + a * out  # ε = σ·x + α·v when v = α·ε − σ·x1


register("flow", config=FlowConfig)(FlowModel)


def data_scale(points: np.ndarray) -> float:
    """The spread the sinusoidal embedding divides coordinates by: the largest per-coordinate std."""
    return float(max(1e-6, np.asarray(points, dtype=np.float64).std(axis=0).max()))
