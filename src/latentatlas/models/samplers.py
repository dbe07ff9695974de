"""Samplers for :mod:`.flow` models (and for the exact field of a Gaussian mixture), each counted honestly
in network evaluations (NFE).

Every sampler but ``midpoint`` is a diffusers scheduler, driven the way its pipelines drive it
(``set_timesteps``, ``scale_model_input``, ``step``); the field is asked for what the scheduler wants:

| name | path | scheduler | NFE for ``steps`` |
| --- | --- | --- | --- |
| ``euler`` | flow | ``FlowMatchEulerDiscreteScheduler``, σ = 1, 1 − 1/N, …, 1/N, 0 | N |
| ``heun`` | flow | ``FlowMatchHeunDiscreteScheduler`` on the same grid (the last step to σ = 0 is Euler) | 2N − 1 |
| ``midpoint`` | flow | written here (no diffusers scheduler): x += h·v(x + h/2·v(x, t), t + h/2) | 2N |
| ``dpm++`` | flow for fm models, VP for eps/v | ``DPMSolverMultistepScheduler`` (DPM-Solver++ 2M) | N |
| ``ddim`` | VP | ``DDIMScheduler``, η = 0 (deterministic), trailing spacing | N |
| ``ddim-eta1`` | VP | ``DDIMScheduler``, η = 1 | N |
| ``ddpm`` | VP | ``DDPMScheduler`` ancestral, trailing spacing | N |

"flow" integrates the FM path in σ = 1 − t (diffusers' convention: x_σ = (1 − σ)·data + σ·noise, model
output noise − data = −v); "VP" runs the discrete DDPM schedule of the model (``linear`` for an fm
model). ``nfe`` is a budget: the largest N whose NFE fits is used, and the count actually made is
reported. The VP samplers use trailing timestep spacing (start at τ = T − 1, Lin et al. 2024): the default
"leading" spacing starts DDIM at τ = 750 of 1000 on 4 steps, from noise it was not trained for.

Trajectories are returned on the FM path whatever the sampler: a VP state x at level ᾱ is drawn as
x/(α + σ) at t = α/(α + σ), so all samplers share one time axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import LatentAtlasError
from .flow import Field, fm_time_of, scheduler

SAMPLERS = ("euler", "midpoint", "heun", "dpm++", "ddim", "ddim-eta1", "ddpm")
FLOW_SAMPLERS = ("euler", "midpoint", "heun")
VP_SAMPLERS = ("ddim", "ddim-eta1", "ddpm")
STOCHASTIC = ("ddim-eta1", "ddpm")


@dataclass
class SampleResult:
    x: torch.Tensor  # (n, d) the samples
    nfe: int  # network evaluations made, counted
    steps: int  # solver steps
    sampler: str
    times: np.ndarray  # (k + 1,) FM time of each recorded state (0 = noise, 1 = data)
    trajectory: torch.Tensor | None = None  # (k + 1, n, d) on the FM path, when asked for


class _Counted:
    """The field with its calls counted, so NFE is what was run, not what a formula says."""

    def __init__(self, field: Field):
        self.field, self.calls = field, 0

    def velocity(self, x, t):
        self.calls += 1
        return self.field.velocity(x, t)

    def eps(self, x, tau, abar):
        self.calls += 1
        return self.field.eps(x, tau, abar)


def steps_for(sampler: str, nfe: int) -> int:
    """The number of solver steps whose NFE fits in ``nfe``."""
    if sampler not in SAMPLERS:
        raise LatentAtlasError(f"sampler '{sampler}' is not one of {', '.join(SAMPLERS)}")
    if sampler == "midpoint":
        n = nfe // 2
    elif sampler == "heun":
        n = (nfe + 1) // 2
    else:
        n = nfe
    if n < 1:
        raise LatentAtlasError(f"--nfe {nfe} is too few for sampler '{sampler}'; it needs at least {2 if sampler == 'midpoint' else 1}")
    return n


def path_of(sampler: str, objective: str) -> str:
    if sampler in FLOW_SAMPLERS:
        return "flow"
    if sampler in VP_SAMPLERS:
        return "vp"
    return "flow" if objective == "fm" else "vp"


def _vp_scheduler(sampler: str, schedule: str, train_timesteps: int):
    DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler = (scheduler(n) for n in
                                                                  ("DDIMScheduler", "DDPMScheduler", "DPMSolverMultistepScheduler"))

    beta = {"linear": "linear", "cosine": "squaredcos_cap_v2"}[schedule]
    common = dict(num_train_timesteps=train_timesteps, beta_schedule=beta, prediction_type="epsilon")
    if sampler in ("ddim", "ddim-eta1"):
        return DDIMScheduler(**common, timestep_spacing="trailing", clip_sample=False, set_alpha_to_one=True)
    if sampler == "ddpm":
        return DDPMScheduler(**common, timestep_spacing="trailing", clip_sample=False)
    return DPMSolverMultistepScheduler(**common, algorithm_type="dpmsolver++", solver_order=2, final_sigmas_type="zero")


@torch.no_grad()
def sample(field: Field, x0: torch.Tensor, sampler: str = "euler", nfe: int = 30, *, objective: str = "fm",
           schedule: str = "linear", train_timesteps: int = 1000, seed: int = 0, trajectory: bool = False) -> SampleResult:
    """Integrate from the noise ``x0`` (n, d) to data with ``sampler`` within ``nfe`` network evaluations.
    ``objective``/``schedule`` say which path the model lives on (``dpm++`` follows it; the VP samplers use
    its schedule). ``seed`` drives the stochastic samplers' noise."""
    steps = steps_for(sampler, nfe)
    if x0.ndim != 2:
        raise LatentAtlasError(f"the starting noise should be (n, d), got shape {tuple(x0.shape)}")
    counted = _Counted(field)
    gen = torch.Generator(device=x0.device).manual_seed(int(seed))
    states, times = [x0.clone()], [0.0]
    path = path_of(sampler, objective)
    x = x0.clone()
    if sampler == "midpoint":
        grid = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
        for i in range(steps):
            t, h = grid[i], grid[i + 1] - grid[i]
            mid = x + (h / 2).to(x.dtype) * counted.velocity(x, t)
            x = x + h.to(x.dtype) * counted.velocity(mid, t + h / 2)
            states.append(x.clone())
            times.append(float(grid[i + 1]))
    elif path == "flow":
        x = _flow_sampler(counted, x, sampler, steps, states, times)
    else:
        sch = _vp_scheduler(sampler, schedule, train_timesteps)
        sch.set_timesteps(steps, device=x.device)
        x = x * sch.init_noise_sigma
        abar_table = sch.alphas_cumprod.double()
        kw = {"eta": 1.0} if sampler == "ddim-eta1" else {}
        for tau in sch.timesteps:
            inp = sch.scale_model_input(x, tau)
            abar = abar_table[int(tau)]
            e = counted.eps(inp, torch.tensor(float(tau), dtype=torch.float64), abar)
            x = sch.step(e, tau, x, generator=gen, **kw).prev_sample
            # the state after this step sits at the next timestep's level (ᾱ = 1 after the last)
            nxt = _next_abar(sch, tau, abar_table)
            t, scale = fm_time_of(nxt)
            states.append(x / scale.to(x.dtype))
            times.append(float(t))
    if not torch.isfinite(x).all():
        raise LatentAtlasError(f"sampler '{sampler}' at {nfe} NFE produced NaN or infinite values; try more steps or another sampler")
    traj = torch.stack(states) if trajectory else None
    return SampleResult(x, counted.calls, steps, sampler, np.asarray(times), traj)


def _next_abar(sch, tau, table: torch.Tensor) -> torch.Tensor:
    ts = [int(t) for t in sch.timesteps]
    i = ts.index(int(tau))
    return table[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0, dtype=torch.float64)


def _flow_sampler(counted: _Counted, x: torch.Tensor, sampler: str, steps: int, states: list, times: list) -> torch.Tensor:
    DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler, FlowMatchHeunDiscreteScheduler = (
        scheduler(n) for n in ("DPMSolverMultistepScheduler", "FlowMatchEulerDiscreteScheduler", "FlowMatchHeunDiscreteScheduler"))

    grid = np.linspace(1.0, 1.0 / steps, steps)  # σ = 1 − t; the scheduler appends σ = 0
    if sampler == "euler":
        sch = FlowMatchEulerDiscreteScheduler(shift=1.0)
        sch.set_timesteps(sigmas=grid, device=x.device)
    elif sampler == "heun":
        sch = FlowMatchHeunDiscreteScheduler(shift=1.0)
        sch.set_timesteps(steps, device=x.device)
        # the same uniform grid as Euler (its own set_timesteps ends at σ = 1/T, spending a step on the last 0.1 %)
        sig = torch.tensor(grid, dtype=torch.float32, device=x.device)
        sch.timesteps = torch.cat([sig[:1], sig[1:].repeat_interleave(2)]) * sch.config.num_train_timesteps
        full = torch.cat([sig, torch.zeros(1, device=x.device)])
        sch.sigmas = torch.cat([full[:1], full[1:-1].repeat_interleave(2), full[-1:]])
    else:
        sch = DPMSolverMultistepScheduler(use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=1.0,
                                          solver_order=2, final_sigmas_type="zero")
        sch.set_timesteps(steps, device=x.device)
    T = sch.config.num_train_timesteps
    for i, ts in enumerate(sch.timesteps):
        sigma = float(ts) / T
        t = torch.tensor(1.0 - sigma, dtype=torch.float64)
        out = -counted.velocity(x, t)  # diffusers' flow output is noise − data
        x = sch.step(out, ts, x).prev_sample
        if sampler == "heun" and getattr(sch, "state_in_first_order", True) is False:
            continue  # Heun's predictor: an intermediate state, not a point of the solution
        nxt = sch.sigmas[min(sch.step_index, len(sch.sigmas) - 1)] if sch.step_index is not None else 0.0
        states.append(x.clone())
        times.append(1.0 - float(nxt))
    if times[-1] < 1.0:  # Heun's last step to σ = 0 is an Euler step, left in its predictor state
        states.append(x.clone())
        times.append(1.0)
    return x
