"""Tests for latentatlas.analysis.vae_metrics and the Estimate/bootstrap basics, against known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from latentatlas.analysis.bootstrap import Estimate, bootstrap_ci
from latentatlas.analysis.vae_metrics import (
    active_units,
    aggregate_posterior_kl,
    elbo,
    kl_per_dim,
    kl_per_sample,
    kl_total,
    reconstruction_error,
    reconstruction_error_per_sample,
)
from latentatlas.errors import LatentAtlasError


def _contains(est: Estimate) -> bool:
    return est.ci_low <= est.value <= est.ci_high


# -- bootstrap / Estimate --------------------------------------------------------------------------


def test_bootstrap_ci_of_a_mean_matches_the_normal_interval():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=2000)
    low, high = bootstrap_ci(lambda idx: x[idx].mean(), x.size, np.random.default_rng(1), num_resamples=400)
    half = 1.96 * x.std(ddof=1) / math.sqrt(x.size)
    assert low < x.mean() < high
    assert (high - low) == pytest.approx(2 * half, rel=0.2)


def test_bootstrap_ci_rejects_bad_arguments():
    with pytest.raises(LatentAtlasError, match="num_resamples"):
        bootstrap_ci(lambda idx: 0.0, 10, np.random.default_rng(0), num_resamples=0)
    with pytest.raises(LatentAtlasError, match="alpha"):
        bootstrap_ci(lambda idx: 0.0, 10, np.random.default_rng(0), alpha=1.5)


def test_estimate_to_dict_is_json_serialisable():
    est = Estimate("x", np.float32(1.5), 1.0, 2.0, np.int64(10), {"m": np.eye(2), "flag": np.bool_(True)})
    d = est.to_dict()
    assert json.loads(json.dumps(d)) == {
        "name": "x", "value": 1.5, "ci_low": 1.0, "ci_high": 2.0, "n": 10,
        "details": {"m": [[1.0, 0.0], [0.0, 1.0]], "flag": True},
    }


# -- reconstruction --------------------------------------------------------------------------------


def test_bernoulli_reconstruction_matches_torch_bce_with_logits():
    rng = np.random.default_rng(0)
    x = (rng.random((64, 1, 5, 5)) > 0.5).astype(np.float32)
    logits = rng.normal(0, 4, size=x.shape).astype(np.float32)
    logits[0, 0, 0, 0] = 80.0  # far out in the tail, where a naive log(sigmoid) overflows
    ours = reconstruction_error_per_sample(x, logits, "bernoulli")
    ref = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(logits, dtype=torch.float64), torch.tensor(x, dtype=torch.float64), reduction="none"
    ).sum(dim=(1, 2, 3))
    np.testing.assert_allclose(ours, ref.numpy(), rtol=1e-10)
    est = reconstruction_error(x, logits, "bernoulli", rng=0)
    assert est.value == pytest.approx(ours.mean())
    assert est.n == 64 and _contains(est) and est.ci_low < est.ci_high
    probs = 1 / (1 + np.exp(-logits.astype(np.float64)))
    assert est.details["mse_per_value"] == pytest.approx(np.mean((x - probs) ** 2))


def test_gaussian_reconstruction_is_summed_squared_error():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 7))
    x_hat = x + rng.normal(0, 0.5, size=x.shape)
    ours = reconstruction_error_per_sample(x, x_hat, "gaussian")
    np.testing.assert_allclose(ours, np.sum((x - x_hat) ** 2, axis=1))
    est = reconstruction_error(x, x_hat, "gaussian", rng=0)
    assert est.details["mse_per_value"] == pytest.approx(np.mean((x - x_hat) ** 2))
    assert est.value == pytest.approx(7 * 0.25, rel=0.2)


def test_reconstruction_rejects_bad_input():
    x = np.zeros((4, 3))
    with pytest.raises(LatentAtlasError, match="likelihood"):
        reconstruction_error(x, x, "poisson")
    with pytest.raises(LatentAtlasError, match="must match"):
        reconstruction_error(x, np.zeros((5, 3)), "gaussian")
    with pytest.raises(LatentAtlasError, match=r"\[0, 1\]"):
        reconstruction_error(x + 2.0, x, "bernoulli")


# -- KL --------------------------------------------------------------------------------------------


def test_kl_per_dim_matches_torch_kl_divergence():
    rng = np.random.default_rng(2)
    mu = rng.normal(0, 1.5, size=(300, 6))
    logvar = rng.normal(-1, 1, size=(300, 6))
    q = torch.distributions.Normal(torch.tensor(mu), torch.exp(0.5 * torch.tensor(logvar)))
    p = torch.distributions.Normal(torch.zeros(6, dtype=torch.float64), torch.ones(6, dtype=torch.float64))
    ref = torch.distributions.kl_divergence(q, p)
    np.testing.assert_allclose(kl_per_dim(mu, logvar), ref.mean(0).numpy(), rtol=1e-10)
    np.testing.assert_allclose(kl_per_sample(mu, logvar), ref.sum(1).numpy(), rtol=1e-10)
    est = kl_total(mu, logvar, rng=0)
    assert est.value == pytest.approx(ref.sum(1).mean().item())
    np.testing.assert_allclose(est.details["kl_per_dim"], ref.mean(0).numpy(), rtol=1e-10)
    assert _contains(est) and est.ci_low < est.ci_high


def test_kl_is_zero_at_the_prior():
    assert np.all(kl_per_dim(np.zeros((10, 3)), np.zeros((10, 3))) == 0.0)


def test_kl_rejects_mismatched_shapes():
    with pytest.raises(LatentAtlasError, match="logvar has shape"):
        kl_per_dim(np.zeros((10, 3)), np.zeros((10, 4)))


# -- ELBO ------------------------------------------------------------------------------------------


def test_elbo_is_minus_nll_plus_kl():
    rng = np.random.default_rng(3)
    nll = rng.uniform(50, 60, size=400)
    kl = rng.uniform(5, 10, size=400)
    est = elbo(nll, kl, rng=0)
    assert est.value == pytest.approx(-(nll + kl).mean())
    assert _contains(est) and est.ci_low < est.ci_high and est.n == 400
    with pytest.raises(LatentAtlasError, match="rows"):
        elbo(nll, kl[:-1])


# -- active units ----------------------------------------------------------------------------------


def test_active_units_counts_dims_whose_mean_varies():
    rng = np.random.default_rng(4)
    mu = np.concatenate([rng.normal(0, 1, size=(500, 3)), rng.normal(0, 0.01, size=(500, 2))], axis=1)
    est = active_units(mu, rng=0)
    assert est.value == 3
    assert est.ci_low == 3 and est.ci_high == 3  # far from the threshold, every resample agrees
    assert list(est.details["active"]) == [True, True, True, False, False]
    np.testing.assert_allclose(est.details["variance_per_dim"], mu.var(axis=0, ddof=1))


def test_active_units_interval_widens_near_the_threshold():
    rng = np.random.default_rng(5)
    mu = rng.normal(0, 1, size=(200, 4)) * np.sqrt([1.0, 0.01, 0.01, 0.01])
    est = active_units(mu, threshold=0.01, rng=0)
    assert est.ci_low <= est.value <= est.ci_high
    assert est.ci_low < est.ci_high


# -- aggregate posterior ---------------------------------------------------------------------------


def test_aggregate_posterior_matching_the_prior_gives_zero():
    rng = np.random.default_rng(6)
    n, d = 40000, 4
    # Means with variance 0.5 plus posteriors of variance 0.5: the mixture has covariance I.
    mu = rng.normal(0, math.sqrt(0.5), (n, d))
    est = aggregate_posterior_kl(mu, np.full((n, d), math.log(0.5)), rng=0, num_resamples=30)
    assert abs(est.value) < 5e-3
    # Point-mass posteriors (logvar very negative) with standard-normal means: also the prior.
    est = aggregate_posterior_kl(rng.normal(0, 1, (n, d)), np.full((n, d), -30.0), rng=0, num_resamples=30)
    assert abs(est.value) < 5e-3
    assert _contains(est)


def test_aggregate_posterior_kl_matches_closed_form():
    rng = np.random.default_rng(7)
    n, d = 50000, 3
    shift = np.array([1.0, -0.5, 0.25])
    a2, b2 = 2.0, 0.5  # Var of the means and of each posterior
    mu = shift + rng.normal(0, math.sqrt(a2), (n, d))
    logvar = np.full((n, d), math.log(b2))
    s = a2 + b2
    expected = 0.5 * d * (s - 1 - math.log(s)) + 0.5 * shift @ shift
    est = aggregate_posterior_kl(mu, logvar, rng=0, num_resamples=50)
    assert est.value == pytest.approx(expected, rel=0.02)
    assert _contains(est) and est.ci_low < est.ci_high
    # Exact against torch on the same empirical moments.
    m = mu.mean(0)
    cov = np.cov(mu.T, ddof=0) + np.diag(np.exp(logvar).mean(0))
    ref = torch.distributions.kl_divergence(
        torch.distributions.MultivariateNormal(torch.tensor(m), torch.tensor(cov)),
        torch.distributions.MultivariateNormal(torch.zeros(d, dtype=torch.float64), torch.eye(d, dtype=torch.float64)),
    )
    assert est.value == pytest.approx(ref.item(), rel=1e-9)


def test_aggregate_posterior_kl_is_infinite_for_a_degenerate_mixture():
    mu = np.zeros((100, 2))
    mu[:, 0] = np.linspace(-1, 1, 100)
    est = aggregate_posterior_kl(mu, np.full((100, 2), -np.inf), num_resamples=0)
    assert est.value == math.inf and est.ci_low is None
