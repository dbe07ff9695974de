"""Figures of merit for autoencoders and VAEs, computed from arrays.

Inputs are the data `x`, the decoder output `x_hat`, and the encoder's posterior parameters `mu` and
`logvar` (the diagonal Gaussian q(z|x) = N(mu, exp(logvar))). Everything here is numpy; torch tensors
on the CPU are accepted wherever an array is, because `np.asarray` reads them.
See docs/metrics.md for the definitions.
"""

from __future__ import annotations

import math

import numpy as np

from latentatlas.analysis.bootstrap import (
    Estimate,
    _as_float_matrix,
    _centred_interval,
    _check_same_rows,
    _interval,
    _rng,
)
from latentatlas.errors import LatentAtlasError

__all__ = [
    "reconstruction_error_per_sample",
    "reconstruction_error",
    "kl_per_sample",
    "kl_per_dim",
    "kl_total",
    "elbo",
    "active_units",
    "aggregate_posterior_kl",
]

_LIKELIHOODS = ("bernoulli", "gaussian")


def _flatten_samples(arr, name: str) -> np.ndarray:
    try:
        out = np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise LatentAtlasError(f"{name} must be a numeric array, got {type(arr).__name__}.") from exc
    if out.ndim == 0 or out.shape[0] == 0:
        raise LatentAtlasError(f"{name} must have a leading sample axis with at least one sample.")
    out = out.reshape(out.shape[0], -1)
    if out.shape[1] == 0:
        raise LatentAtlasError(f"{name} has no values per sample (shape {np.shape(arr)}).")
    if not np.all(np.isfinite(out)):
        raise LatentAtlasError(f"{name} contains NaN or infinite values.")
    return out


def _posterior(mu, logvar) -> tuple[np.ndarray, np.ndarray]:
    mu = _as_float_matrix(mu, "mu")
    try:
        lv = np.asarray(logvar, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise LatentAtlasError(f"logvar must be a numeric array, got {type(logvar).__name__}.") from exc
    if lv.ndim == 1:
        lv = lv[:, None]
    if lv.shape != mu.shape:
        raise LatentAtlasError(
            f"logvar has shape {lv.shape} but mu has shape {mu.shape}; they must match."
        )
    # -inf is allowed (a point-mass posterior, variance 0); NaN and +inf are not.
    if np.any(np.isnan(lv)) or np.any(np.isposinf(lv)):
        raise LatentAtlasError("logvar contains NaN or +inf values.")
    return mu, lv


def _recon_inputs(x, x_hat, likelihood: str) -> tuple[np.ndarray, np.ndarray]:
    if likelihood not in _LIKELIHOODS:
        raise LatentAtlasError(f"likelihood must be one of {_LIKELIHOODS}, got {likelihood!r}.")
    x2 = _flatten_samples(x, "x")
    xh = _flatten_samples(x_hat, "x_hat")
    if x2.shape != xh.shape:
        raise LatentAtlasError(
            f"x has shape {np.shape(x)} but x_hat has shape {np.shape(x_hat)}; they must match."
        )
    if likelihood == "bernoulli" and (x2.min() < 0.0 or x2.max() > 1.0):
        raise LatentAtlasError("x must lie in [0, 1] for the bernoulli likelihood.")
    return x2, xh


def _recon_rows(x2: np.ndarray, xh: np.ndarray, likelihood: str) -> np.ndarray:
    if likelihood == "gaussian":
        return np.sum((x2 - xh) ** 2, axis=1)
    # Stable BCE-with-logits: max(l, 0) - l*x + log(1 + exp(-|l|)).
    return np.sum(np.maximum(xh, 0.0) - xh * x2 + np.log1p(np.exp(-np.abs(xh))), axis=1)


def reconstruction_error_per_sample(x, x_hat, likelihood: str = "bernoulli") -> np.ndarray:
    """(N,) reconstruction error of each sample, summed over all its values.

    bernoulli: binary cross-entropy with `x_hat` given as logits and `x` in [0, 1] (the exact negative
    log-likelihood of a Bernoulli decoder when x is binary). gaussian: the summed squared error
    sum (x - x_hat)^2, which is 2 * (Gaussian NLL with unit variance) minus a constant, not the NLL itself.
    """
    x2, xh = _recon_inputs(x, x_hat, likelihood)
    return _recon_rows(x2, xh, likelihood)


def reconstruction_error(
    x,
    x_hat,
    likelihood: str = "bernoulli",
    *,
    rng: np.random.Generator | int | None = None,
    num_resamples: int = 200,
) -> Estimate:
    """Mean per-sample reconstruction error (see `reconstruction_error_per_sample`), bootstrap CI over
    samples; details hold the mean squared error per value (pixel) and its own interval."""
    x2, xh = _recon_inputs(x, x_hat, likelihood)
    per_sample = _recon_rows(x2, xh, likelihood)
    if likelihood == "bernoulli":
        # For logits the per-value MSE is measured on the probabilities the decoder predicts.
        xh = 1.0 / (1.0 + np.exp(-xh))
    mse_rows = np.mean((x2 - xh) ** 2, axis=1)
    n = per_sample.shape[0]
    gen = _rng(rng)
    low, high = _interval(lambda idx: per_sample[idx].mean(), n, gen, num_resamples)
    mse_low, mse_high = _interval(lambda idx: mse_rows[idx].mean(), n, gen, num_resamples)
    return Estimate(
        name="reconstruction_error",
        value=float(per_sample.mean()),
        ci_low=low,
        ci_high=high,
        n=n,
        details={
            "likelihood": likelihood,
            "values_per_sample": int(x2.shape[1]),
            "mse_per_value": float(mse_rows.mean()),
            "mse_per_value_ci": [mse_low, mse_high],
            "std_per_sample": float(per_sample.std(ddof=1)) if n > 1 else 0.0,
        },
    )


def _kl_matrix(mu: np.ndarray, lv: np.ndarray) -> np.ndarray:
    # KL(N(mu, s^2) || N(0, 1)) = 0.5 (mu^2 + s^2 - 1 - log s^2); +inf where s^2 = 0.
    with np.errstate(over="ignore"):
        return 0.5 * (mu**2 + np.exp(lv) - 1.0 - lv)


def kl_per_sample(mu, logvar) -> np.ndarray:
    """(N,) KL(q(z|x) || N(0, I)) of each sample, summed over latent dims."""
    mu, lv = _posterior(mu, logvar)
    return _kl_matrix(mu, lv).sum(axis=1)


def kl_per_dim(mu, logvar) -> np.ndarray:
    """(D,) mean over samples of KL(N(mu_d, exp(logvar_d)) || N(0, 1)) for each latent dim d."""
    mu, lv = _posterior(mu, logvar)
    return _kl_matrix(mu, lv).mean(axis=0)


def kl_total(
    mu,
    logvar,
    *,
    rng: np.random.Generator | int | None = None,
    num_resamples: int = 200,
) -> Estimate:
    """Mean over samples of the total KL to the prior, with the per-dim means in details."""
    mu, lv = _posterior(mu, logvar)
    kl = _kl_matrix(mu, lv)
    per_sample = kl.sum(axis=1)
    n = per_sample.shape[0]
    low, high = _interval(lambda idx: per_sample[idx].mean(), n, _rng(rng), num_resamples)
    return Estimate(
        name="kl_total",
        value=float(per_sample.mean()),
        ci_low=low,
        ci_high=high,
        n=n,
        details={"kl_per_dim": kl.mean(axis=0)},
    )


def elbo(
    recon_nll_per_sample,
    kl_per_sample,
    *,
    rng: np.random.Generator | int | None = None,
    num_resamples: int = 200,
) -> Estimate:
    """Mean evidence lower bound -(nll + kl) over samples, bootstrap CI over samples.

    Pass the decoder's true negative log-likelihood per sample; the squared error returned for the
    gaussian likelihood is not one (see docs/metrics.md).
    """
    nll = _as_float_matrix(recon_nll_per_sample, "recon_nll_per_sample")
    kl = _as_float_matrix(kl_per_sample, "kl_per_sample")
    if nll.shape[1] != 1 or kl.shape[1] != 1:
        raise LatentAtlasError(
            "recon_nll_per_sample and kl_per_sample must be 1-D arrays with one value per sample."
        )
    _check_same_rows(nll, "recon_nll_per_sample", kl, "kl_per_sample")
    per_sample = -(nll[:, 0] + kl[:, 0])
    n = per_sample.shape[0]
    low, high = _interval(lambda idx: per_sample[idx].mean(), n, _rng(rng), num_resamples)
    return Estimate(
        name="elbo",
        value=float(per_sample.mean()),
        ci_low=low,
        ci_high=high,
        n=n,
        details={"mean_nll": float(nll.mean()), "mean_kl": float(kl.mean())},
    )


def active_units(
    mu,
    threshold: float = 0.01,
    *,
    rng: np.random.Generator | int | None = None,
    num_resamples: int = 200,
) -> Estimate:
    """Number of latent dims whose posterior mean varies across the data (Burda et al. 2016).

    A dim u is active when Var_x(E_q(z|x)[z_u]) > threshold (sample variance, ddof=1). The interval is a
    percentile bootstrap of the count over samples, so both ends are whole numbers.
    """
    mu = _as_float_matrix(mu, "mu")
    n = mu.shape[0]
    if n < 2:
        raise LatentAtlasError("active_units needs at least two samples to measure a variance.")
    variances = mu.var(axis=0, ddof=1)

    def count(idx):
        return float(np.sum(mu[idx].var(axis=0, ddof=1) > threshold))

    low, high = _interval(count, n, _rng(rng), num_resamples)
    return Estimate(
        name="active_units",
        value=float(np.sum(variances > threshold)),
        ci_low=low,
        ci_high=high,
        n=n,
        details={
            "threshold": float(threshold),
            "variance_per_dim": variances,
            "active": variances > threshold,
            "num_dims": int(mu.shape[1]),
        },
    )


def _gaussian_kl_to_standard(m: np.ndarray, s: np.ndarray) -> float:
    # KL(N(m, S) || N(0, I)) = 0.5 (tr S + m^T m - D - log det S); +inf when S is singular.
    sign, logdet = np.linalg.slogdet(s)
    if sign <= 0 or not np.isfinite(logdet):
        return float("inf")
    return float(0.5 * (np.trace(s) + m @ m - m.shape[0] - logdet))


def _aggregate_moments(mu: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = mu.mean(axis=0)
    centred = mu - m
    # ddof=0: these are the exact moments of the empirical mixture (1/N) sum_i N(mu_i, diag var_i).
    s = centred.T @ centred / mu.shape[0]
    s[np.diag_indices_from(s)] += var.mean(axis=0)
    return m, s


def aggregate_posterior_kl(
    mu,
    logvar,
    *,
    rng: np.random.Generator | int | None = None,
    num_resamples: int = 200,
) -> Estimate:
    """KL(N(m, S) || N(0, I)) for the Gaussian moment-matched to the aggregate posterior q(z) = E_x q(z|x).

    m = mean(mu), S = Cov(mu) + mean(diag(exp(logvar))). Zero when the encoded data, as a whole, looks
    like the prior to second order; +inf when S is singular. CI: rows resampled, median-centred percentile
    interval (see docs/metrics.md).
    """
    mu, lv = _posterior(mu, logvar)
    var = np.exp(lv)
    m, s = _aggregate_moments(mu, var)
    value = _gaussian_kl_to_standard(m, s)

    def stat(idx):
        return _gaussian_kl_to_standard(*_aggregate_moments(mu[idx], var[idx]))

    n = mu.shape[0]
    if np.isfinite(value):
        # The KL is convex in the moments and bounded below by 0, so resampled values sit above the
        # estimate; the median-centred interval keeps their spread without that shift.
        low, high, ci_info = _centred_interval(stat, value, n, _rng(rng), num_resamples, (0.0, math.inf))
    else:
        low, high, ci_info = None, None, {"ci": "not computed: the moment-matched covariance is singular"}
    return Estimate(
        name="aggregate_posterior_kl",
        value=value,
        ci_low=low,
        ci_high=high,
        n=n,
        details={
            "mean": m,
            "covariance_diag": np.diag(s),
            "mean_term": float(0.5 * m @ m),
            "covariance_term": float(value - 0.5 * m @ m) if np.isfinite(value) else float("inf"),
            **ci_info,
        },
    )
