"""The exact answers of flow matching and VP diffusion for a Gaussian-mixture target.

For a target p₁ = Σ_k w_k N(μ_k, s_k² I) every quantity a flow-matching or diffusion network learns has
a closed form, so a trained network can be compared with the truth instead of with samples.

Flow matching (Lipman et al. 2023) and rectified flow (Liu et al. 2022) here use the linear path
x_t = (1 − t)·x0 + t·x1, x0 ~ N(0, I) at t = 0 and x1 ~ p₁ at t = 1. Given component k, x_t is
N(t·μ_k, v_k(t) I) with v_k(t) = (1 − t)² + t² s_k², and Gaussian conditioning gives

    E[x1 | x_t = x, k] = μ_k + (t s_k² / v_k)·(x − t μ_k)
    E[x0 | x_t = x, k] = ((1 − t) / v_k)·(x − t μ_k)

The optimal velocity v*(x, t) = E[x1 − x0 | x_t = x] weights the per-component answers by the posterior
responsibilities r_k(x, t) ∝ w_k N(x; t μ_k, v_k I), computed in log space. At the endpoints:
v*(x, 0) = Σ_k w_k μ_k − x (every component looks the same through pure noise) and v*(x, 1) = x
(x0 is independent of x1, so E[x0 | x1 = x] = 0); both hold exactly, without a 0/0, for every s_k > 0.

VP diffusion (Ho et al. 2020; Song et al. 2021) writes x = α·x1 + σ·ε with α, σ chosen by the caller;
component k then gives N(α μ_k, u_k I), u_k = α² s_k² + σ², the score is Σ_k r_k·(α μ_k − x)/u_k and,
by Tweedie's formula, E[ε | x] = −σ·score. The two paths are the same up to scale: x_VP / (α + σ) is
x_FM at t = α / (α + σ).

Inputs: ``mixture`` is any object with ``means_array`` (K, d), ``sigmas_array`` (K,) and
``weights_array`` (K,); ``x`` a tensor (n, d); t, α, σ a number or an (n,) tensor. Everything is
computed on the CPU in float64 (the sizes are small; some accelerators have no float64) and returned in
x's dtype and on x's device; gradients flow through x.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from latentatlas.analysis.bootstrap import Estimate, _rng, mean_estimate
from latentatlas.errors import LatentAtlasError
from latentatlas.limits import check_float, check_int

__all__ = [
    "field_error",
    "fm_denoised",
    "fm_loss_floor",
    "fm_marginal_log_prob",
    "fm_posterior",
    "fm_velocity",
    "vp_denoised",
    "vp_eps",
    "vp_eps_error",
    "vp_marginal_log_prob",
    "vp_score",
]

# Component stds are floored here so that s_k² stays a normal float64: at t = 1 (or σ = 0) the variance
# is s_k² itself, and a zero variance would turn x/v into 0/0.
_MIN_SIGMA = 1e-100
_MAX_SAMPLES = 10_000_000
_CHUNK = 65_536  # rows per pass: the per-component residuals are rows × K × d


# -- inputs -----------------------------------------------------------------------------------------


class _Mixture:
    """A mixture's parameters as float64 tensors, checked once."""

    def __init__(self, mixture) -> None:
        try:
            means = np.asarray(mixture.means_array, dtype=np.float64)
            sigmas = np.asarray(mixture.sigmas_array, dtype=np.float64)
            weights = np.asarray(mixture.weights_array, dtype=np.float64)
        except AttributeError:
            raise LatentAtlasError(f"mixture of type {type(mixture).__name__} has no means_array, sigmas_array and "
                                   "weights_array; expected a Gaussian mixture.") from None
        except (TypeError, ValueError):
            raise LatentAtlasError("mixture has non-numeric parameters; "
                                   "expected means (K, d), sigmas (K,) and weights (K,).") from None
        if means.ndim != 2 or means.shape[0] < 1 or sigmas.shape != (means.shape[0],) or weights.shape != sigmas.shape:
            raise LatentAtlasError(f"mixture has means {means.shape}, sigmas {sigmas.shape} and weights {weights.shape}; "
                                   "expected (K, d), (K,) and (K,).")
        if not (np.isfinite(means).all() and np.isfinite(sigmas).all() and np.isfinite(weights).all()):
            raise LatentAtlasError("mixture has NaN or infinite parameters; expected finite means, sigmas and weights.")
        if np.any(sigmas <= 0) or np.any(weights < 0) or not np.any(weights > 0):
            raise LatentAtlasError("mixture has a non-positive sigma or a negative weight; expected sigmas above 0 "
                                   "and non-negative weights that are not all zero.")
        self.means_np, self.sigmas_np, self.weights_np = means, np.maximum(sigmas, _MIN_SIGMA), weights / weights.sum()
        self.means = torch.from_numpy(means)
        self.var = torch.from_numpy(self.sigmas_np ** 2)
        with np.errstate(divide="ignore"):  # a zero weight is log 0 = -inf, which softmax and logsumexp handle
            self.log_w = torch.from_numpy(np.log(self.weights_np))
        self.dim = means.shape[1]

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        component = rng.choice(len(self.weights_np), size=n, p=self.weights_np)
        return self.means_np[component] + self.sigmas_np[component, None] * rng.standard_normal((n, self.dim))


def _points(x, mix: _Mixture) -> tuple[torch.Tensor, dict]:
    """x as float64 (n, d) on the CPU (some accelerators have no float64), plus the dtype and device to answer in."""
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(np.asarray(x, dtype=np.float64))
        except (TypeError, ValueError):
            raise LatentAtlasError(f"x of type {type(x).__name__} is not numeric; expected a tensor (n, {mix.dim}).") from None
    if not (x.is_floating_point()):
        x = x.to(torch.float64)
    if x.ndim != 2 or x.shape[1] != mix.dim:
        raise LatentAtlasError(f"x has shape {tuple(x.shape)}; expected (n, {mix.dim}) for this mixture.")
    if not bool(torch.isfinite(x).all()):
        raise LatentAtlasError("x has NaN or infinite values; expected finite points.")
    return x.to("cpu", torch.float64), {"dtype": x.dtype, "device": x.device}


def _per_row(value, n: int, name: str, lo: float, hi: float | None) -> torch.Tensor:
    """A number or an (n,) tensor within [lo, hi], as a float64 column (n, 1)."""
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value) if value.ndim > 0 and value.dtype.kind in "iuf" else value
    if isinstance(value, torch.Tensor) and value.ndim > 0:
        v = value.to("cpu", torch.float64)
        if v.ndim != 1 or v.shape[0] != n:
            raise LatentAtlasError(f"{name} has shape {tuple(v.shape)}; expected a number or one value per row of x ({n},).")
        if not bool(torch.isfinite(v).all()) or bool((v < lo).any()) or (hi is not None and bool((v > hi).any())):
            span = f"in [{lo:g}, {hi:g}]" if hi is not None else f"of at least {lo:g}"
            raise LatentAtlasError(f"{name} has NaN, infinite or out-of-range values; expected finite values {span}.")
        return v[:, None]
    if isinstance(value, (torch.Tensor, np.ndarray, np.floating, np.integer)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise LatentAtlasError(f"{name} is not a number; expected a number or one value per row of x ({n},).") from None
    v = check_float(value, name, lo, hi)
    return torch.full((n, 1), v, dtype=torch.float64)


# -- the Gaussian pieces ---------------------------------------------------------------------------


def _components(mix: _Mixture, x: torch.Tensor, scale: torch.Tensor, var: torch.Tensor):
    """Per-component log w_k N(x; scale·μ_k, var_k I) (n, K) and the residuals x − scale·μ_k (n, K, d)."""
    resid = x[:, None, :] - scale[:, :, None] * mix.means[None]
    # a point so far out that its scaled squared distance overflows (|x| beyond about 1e150) would make
    # every component -inf and the responsibilities 0/0; capped, the answers stay finite, the overflowing
    # components sharing such a point equally
    scaled_sq = torch.nan_to_num((resid ** 2).sum(-1) / var, posinf=1e300)
    log_comp = mix.log_w - 0.5 * scaled_sq - 0.5 * mix.dim * torch.log(2 * math.pi * var)
    return log_comp, resid


def _fm_parts(mixture, x, t):
    mix = _Mixture(mixture)
    x64, like = _points(x, mix)
    t = _per_row(t, x64.shape[0], "t", 0.0, 1.0)
    var = (1 - t) ** 2 + t ** 2 * mix.var  # (n, K)
    log_comp, resid = _components(mix, x64, t, var)
    return mix, t, var, log_comp, resid, like


def _vp_parts(mixture, x, alpha, sigma):
    mix = _Mixture(mixture)
    x64, like = _points(x, mix)
    alpha = _per_row(alpha, x64.shape[0], "alpha", 0.0, None)
    sigma = _per_row(sigma, x64.shape[0], "sigma", 0.0, None)
    if bool(((alpha == 0) & (sigma == 0)).any()):
        raise LatentAtlasError("alpha and sigma are both 0 for some rows; expected at least one of them above 0.")
    var = alpha ** 2 * mix.var + sigma ** 2
    log_comp, resid = _components(mix, x64, alpha, var)
    return mix, alpha, sigma, var, log_comp, resid, like


def _weigh(log_comp: torch.Tensor, per_component: torch.Tensor) -> torch.Tensor:
    """Σ_k r_k·per_component_k with r = softmax over components, (n, d)."""
    return (torch.softmax(log_comp, dim=1)[:, :, None] * per_component).sum(1)


# -- flow matching ---------------------------------------------------------------------------------


def fm_marginal_log_prob(mixture, x, t) -> torch.Tensor:
    """log p_t(x) of the flow-matching path's marginal at time t, (n,)."""
    _, _, _, log_comp, _, like = _fm_parts(mixture, x, t)
    return torch.logsumexp(log_comp, dim=1).to(**like)


def fm_posterior(mixture, x, t) -> torch.Tensor:
    """Responsibilities r_k(x, t) = P(x1 came from component k | x_t = x), (n, K); rows sum to 1."""
    _, _, _, log_comp, _, like = _fm_parts(mixture, x, t)
    return torch.softmax(log_comp, dim=1).to(**like)


def fm_denoised(mixture, x, t) -> torch.Tensor:
    """E[x1 | x_t = x], (n, d); equals the mixture mean at t = 0 and x itself at t = 1."""
    mix, t, var, log_comp, resid, like = _fm_parts(mixture, x, t)
    gain = (t * mix.var / var)[:, :, None]
    return _weigh(log_comp, mix.means[None] + gain * resid).to(**like)


def fm_velocity(mixture, x, t) -> torch.Tensor:
    """The optimal velocity v*(x, t) = E[x1 − x0 | x_t = x], (n, d): what flow matching regresses onto."""
    mix, t, var, log_comp, resid, like = _fm_parts(mixture, x, t)
    gain = ((t * mix.var - (1 - t)) / var)[:, :, None]
    return _weigh(log_comp, mix.means[None] + gain * resid).to(**like)


# -- VP diffusion ----------------------------------------------------------------------------------


def vp_marginal_log_prob(mixture, x, alpha, sigma) -> torch.Tensor:
    """log p(x) for x = α·x1 + σ·ε, a mixture of N(α μ_k, (α² s_k² + σ²) I), (n,)."""
    *_, log_comp, _, like = _vp_parts(mixture, x, alpha, sigma)
    return torch.logsumexp(log_comp, dim=1).to(**like)


def vp_score(mixture, x, alpha, sigma) -> torch.Tensor:
    """∇ₓ log p(x) for x = α·x1 + σ·ε, (n, d)."""
    _, _, _, var, log_comp, resid, like = _vp_parts(mixture, x, alpha, sigma)
    return _weigh(log_comp, -resid / var[:, :, None]).to(**like)


def vp_eps(mixture, x, alpha, sigma) -> torch.Tensor:
    """E[ε | x] = −σ·∇ₓ log p(x) (Tweedie), what an ε-prediction network regresses onto, (n, d)."""
    _, _, sigma, var, log_comp, resid, like = _vp_parts(mixture, x, alpha, sigma)
    return _weigh(log_comp, (sigma / var)[:, :, None] * resid).to(**like)


def vp_denoised(mixture, x, alpha, sigma) -> torch.Tensor:
    """E[x1 | x] for x = α·x1 + σ·ε, (n, d)."""
    mix, alpha, _, var, log_comp, resid, like = _vp_parts(mixture, x, alpha, sigma)
    gain = (alpha * mix.var / var)[:, :, None]
    return _weigh(log_comp, mix.means[None] + gain * resid).to(**like)


# -- Monte-Carlo summaries with intervals -------------------------------------------------------------


def _check_run(n_samples, batch_size, num_resamples, t_range) -> tuple[float, float]:
    check_int(n_samples, "n_samples", 1, _MAX_SAMPLES)
    check_int(batch_size, "batch_size", 1, _MAX_SAMPLES)
    check_int(num_resamples, "num_resamples", 1, 100_000)
    try:
        lo, hi = t_range
    except (TypeError, ValueError):
        raise LatentAtlasError(f"t_range {t_range!r} is not a pair; expected (t_low, t_high) within [0, 1].") from None
    lo, hi = check_float(lo, "t_range's low end", 0.0, 1.0), check_float(hi, "t_range's high end", 0.0, 1.0)
    if lo > hi:
        raise LatentAtlasError(f"t_range ({lo:g}, {hi:g}) is reversed; expected t_low ≤ t_high.")
    return lo, hi


def _fm_draws(mix: _Mixture, n: int, rng: np.random.Generator, lo: float, hi: float):
    """t ~ U(lo, hi), x0 ~ N(0, I), x1 ~ mixture and x_t, all float64 numpy."""
    t = rng.uniform(lo, hi, n)
    x0 = rng.standard_normal((n, mix.dim))
    x1 = mix.sample(n, rng)
    return t, x0, x1, (1 - t)[:, None] * x0 + t[:, None] * x1


def _conditional_trace(mix: _Mixture, x: torch.Tensor, t: torch.Tensor) -> np.ndarray:
    """tr Cov(x1 − x0 | x_t = x) per row: within-component variance plus the spread of the component means."""
    tt = t[:, None]
    var = (1 - tt) ** 2 + tt ** 2 * mix.var
    log_comp, resid = _components(mix, x, tt, var)
    r = torch.softmax(log_comp, dim=1)
    per_comp = mix.means[None] + ((tt * mix.var - (1 - tt)) / var)[:, :, None] * resid
    v_star = (r[:, :, None] * per_comp).sum(1)
    spread = ((per_comp - v_star[:, None, :]) ** 2).sum(-1)
    return (r * (mix.dim * mix.var / var + spread)).sum(1).numpy()


def fm_loss_floor(mixture, n_samples: int = 20_000, random_state=0, num_resamples: int = 200) -> Estimate:
    """The smallest flow-matching loss any velocity field can reach, with a 95% bootstrap interval.

    The loss is E_{t~U(0,1), x0, x1} ‖(x1 − x0) − v(x_t, t)‖², the squared norm summed over the d
    coordinates and averaged over samples. At v = v* it equals E_t E_{x_t} tr Cov(x1 − x0 | x_t), which
    is estimated from draws of (t, x_t) with the conditional trace in closed form (Rao-Blackwellised:
    the same mean as plugging in draws of (x0, x1), with less variance). Per component the conditional
    covariance is (s_k² / v_k(t))·I, so per draw the value is
    Σ_k r_k·(d·s_k² / v_k + ‖m_k − v*‖²), m_k = E[x1 − x0 | x_t, k].
    For one Gaussian N(μ, s² I) the floor is (π/2)·d·s.
    """
    lo, hi = _check_run(n_samples, n_samples, num_resamples, (0.0, 1.0))
    mix = _Mixture(mixture)
    rng = _rng(random_state)
    t, _, _, xt = _fm_draws(mix, n_samples, rng, lo, hi)
    per_sample = np.concatenate([_conditional_trace(mix, torch.from_numpy(xt[i:i + _CHUNK]), torch.from_numpy(t[i:i + _CHUNK]))
                                 for i in range(0, n_samples, _CHUNK)])
    return mean_estimate("fm_loss_floor", per_sample, rng, num_resamples=num_resamples,
                         norm="squared norm summed over coordinates, mean over samples",
                         t="uniform on [0, 1]", estimator="conditional variance in closed form at sampled (t, x_t)")


def _error_per_sample(fn: Callable, what: str, x: np.ndarray, t: np.ndarray, exact: Callable, batch_size: int,
                      device) -> np.ndarray:
    """‖fn(x, t) − exact(x, t)‖² per row, calling ``fn`` on float32 batches on ``device`` without gradients."""
    out = np.empty(len(x))
    for start in range(0, len(x), batch_size):
        xb = torch.from_numpy(x[start:start + batch_size]).to(torch.float32)
        tb = torch.from_numpy(t[start:start + batch_size]).to(torch.float32)
        with torch.no_grad():
            got = fn(xb.to(device), tb.to(device))
            if not isinstance(got, torch.Tensor):
                try:
                    got = torch.as_tensor(np.asarray(got, dtype=np.float64))
                except (TypeError, ValueError):
                    raise LatentAtlasError(f"{what} returned a {type(got).__name__}; expected a tensor (n, d).") from None
            if tuple(got.shape) != tuple(xb.shape):
                raise LatentAtlasError(f"{what} returned shape {tuple(got.shape)}; "
                                       f"expected {tuple(xb.shape)}, one vector per point.")
            got = got.detach().to("cpu", torch.float64)
            if not bool(torch.isfinite(got).all()):
                raise LatentAtlasError(f"{what} returned NaN or infinite values; expected finite vectors.")
            want = exact(xb.to(torch.float64), tb.to(torch.float64))
        out[start:start + len(xb)] = ((got - want) ** 2).sum(1).numpy()
    return out


def field_error(v_fn: Callable, mixture, n_samples: int = 4096, random_state=0, t_range=(0.0, 1.0),
                batch_size: int = 4096, num_resamples: int = 200, device="cpu") -> Estimate:
    """E_{t~U(t_range), x~p_t} ‖v_fn(x, t) − v*(x, t)‖², squared norm summed over coordinates, with a 95% CI.

    ``v_fn(x, t)`` gets x float32 (n, d) and t float32 (n,) and returns (n, d) (a trained network's
    velocity), both on ``device``; x ~ p_t is drawn as x_t = (1 − t)·x0 + t·x1.
    """
    lo, hi = _check_run(n_samples, batch_size, num_resamples, t_range)
    if not callable(v_fn):
        raise LatentAtlasError(f"v_fn of type {type(v_fn).__name__} is not callable; expected v_fn(x, t) -> (n, d).")
    mix = _Mixture(mixture)
    rng = _rng(random_state)
    t, _, _, xt = _fm_draws(mix, n_samples, rng, lo, hi)
    per_sample = _error_per_sample(v_fn, "v_fn", xt, t, lambda x, tt: fm_velocity(mixture, x, tt), batch_size, device)
    return mean_estimate("field_error", per_sample, rng, num_resamples=num_resamples,
                         norm="squared norm summed over coordinates, mean over samples", t_range=[lo, hi])


def _schedule(fn: Callable, t: np.ndarray, name: str) -> np.ndarray:
    """``fn`` of a float64 tensor of times as a non-negative float64 array (n,); a number is broadcast."""
    with torch.no_grad():
        out = fn(torch.from_numpy(t))
    try:
        out = np.broadcast_to(np.asarray(torch.as_tensor(out, dtype=torch.float64)), t.shape).copy()
    except (TypeError, ValueError, RuntimeError):
        raise LatentAtlasError(f"{name} returned something that is not one number per time; "
                               f"expected a tensor ({len(t)},).") from None
    if not (np.isfinite(out).all() and (out >= 0).all()):
        raise LatentAtlasError(f"{name} returned negative, NaN or infinite values; expected finite values of at least 0.")
    return out


def vp_eps_error(eps_fn: Callable, mixture, alpha_fn: Callable, sigma_fn: Callable, n_samples: int = 4096,
                 random_state=0, t_range=(0.0, 1.0), batch_size: int = 4096, num_resamples: int = 200,
                 device="cpu") -> Estimate:
    """E_{t~U(t_range), x} ‖eps_fn(x, t) − E[ε | x]‖² for x = α(t)·x1 + σ(t)·ε, with a 95% CI.

    ``alpha_fn`` and ``sigma_fn`` map a float64 tensor of times (n,) to α and σ (n,); ``eps_fn(x, t)``
    gets x float32 (n, d) and t float32 (n,), both on ``device``. The norm is summed over coordinates.
    """
    lo, hi = _check_run(n_samples, batch_size, num_resamples, t_range)
    for fn, name in ((eps_fn, "eps_fn"), (alpha_fn, "alpha_fn"), (sigma_fn, "sigma_fn")):
        if not callable(fn):
            raise LatentAtlasError(f"{name} of type {type(fn).__name__} is not callable; expected a function of t.")
    mix = _Mixture(mixture)
    rng = _rng(random_state)
    t = rng.uniform(lo, hi, n_samples)
    alpha, sigma = _schedule(alpha_fn, t, "alpha_fn"), _schedule(sigma_fn, t, "sigma_fn")
    x = alpha[:, None] * mix.sample(n_samples, rng) + sigma[:, None] * rng.standard_normal((n_samples, mix.dim))

    def exact(xb: torch.Tensor, tb: torch.Tensor) -> torch.Tensor:
        t_np = tb.numpy()
        return vp_eps(mixture, xb, torch.from_numpy(_schedule(alpha_fn, t_np, "alpha_fn")),
                      torch.from_numpy(_schedule(sigma_fn, t_np, "sigma_fn")))

    per_sample = _error_per_sample(eps_fn, "eps_fn", x, t, exact, batch_size, device)
    return mean_estimate("vp_eps_error", per_sample, rng, num_resamples=num_resamples,
                         norm="squared norm summed over coordinates, mean over samples", t_range=[lo, hi])


class ExactField:
    """The exact answer as a sampler's field (``models.samplers``): the velocity v*(x, t) at FM time t and
    the ε*(x) at VP level ᾱ (α = √ᾱ, σ = √(1 − ᾱ)), so every sampler runs on it as on a trained model."""

    def __init__(self, mixture):
        self.mixture = mixture

    def velocity(self, x: torch.Tensor, t) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float64).reshape(-1).expand(x.shape[0])
        return fm_velocity(self.mixture, x, t)

    def eps(self, x: torch.Tensor, tau, abar) -> torch.Tensor:
        abar = torch.as_tensor(abar, dtype=torch.float64).reshape(-1).expand(x.shape[0])
        return vp_eps(self.mixture, x, abar.sqrt(), (1 - abar).sqrt())
