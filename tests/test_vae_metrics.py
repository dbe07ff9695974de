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
    total_correlation,
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


# -- total correlation of the aggregate posterior --------------------------------------------------

SPRITES_N = 737_280  # the dataset size the rows are taken to be a sample of


def _gaussian_code(n, d, s2, corr, seed):
    """Posteriors N(mu_i, s2 I) with mu ~ N(0, C - s2 I): the aggregate posterior of infinitely many
    rows is exactly N(0, C), C the equicorrelation matrix, whose TC is -1/2 log det C."""
    c = np.full((d, d), corr) + (1.0 - corr) * np.eye(d)
    mu = np.random.default_rng(seed).standard_normal((n, d)) @ np.linalg.cholesky(c - s2 * np.eye(d)).T
    return mu, np.full((n, d), math.log(s2)), -0.5 * np.linalg.slogdet(c)[1]


def test_total_correlation_is_the_exact_mixture_tc_when_the_rows_are_the_dataset():
    # Brute force on a small sample: with dataset_size = n the estimate is the TC of the n-component
    # mixture at the drawn points, with no jackknife correction. The draws are replayed from the seed
    # (a permutation of the rows, then one standard normal per value).
    rng = np.random.default_rng(0)
    mu = rng.standard_normal((40, 3))
    lv = rng.uniform(-2.0, 0.0, (40, 3))
    est = total_correlation(mu, lv, rng=7, num_blocks=5)
    gen = np.random.default_rng(7)
    perm = gen.permutation(40)
    m, v = mu[perm], np.exp(lv[perm])
    z = m + np.sqrt(v) * gen.standard_normal(m.shape)
    log_each = -0.5 * ((z[:, None, :] - m[None]) ** 2 / v[None] + np.log(v[None]) + math.log(2 * math.pi))
    log_joint = np.log(np.exp(log_each.sum(axis=2)).mean(axis=1))
    log_marg = np.log(np.exp(log_each).mean(axis=1)).sum(axis=1)
    assert est.value == pytest.approx(float(np.mean(log_joint - log_marg)), abs=1e-10)
    assert est.details["bias_correction"] == 0.0 and est.value == est.details["uncorrected"]
    assert _contains(est)


def test_total_correlation_of_identical_posteriors_is_zero_and_its_decomposition_exact():
    # Every q(z|x) is N(0, 0.5 I): q(z) = N(0, 0.5 I), factorised, equal to every posterior.
    mu, lv = np.zeros((500, 4)), np.full((500, 4), math.log(0.5))
    est = total_correlation(mu, lv, dataset_size=SPRITES_N, rng=0)
    assert est.value == pytest.approx(0.0, abs=1e-10)
    assert est.details["index_code_mutual_info"] == pytest.approx(0.0, abs=1e-10)
    # dimension-wise KL: sum_d E_q[log q(z_d) - log p(z_d)] on the draws; its expectation is
    # 4 KL(N(0, 0.5) || N(0, 1)) = 2 (0.5 - 1 - log 0.5) = 0.386.
    assert est.details["dimension_wise_kl"] == pytest.approx(2 * (0.5 - 1 - math.log(0.5)), abs=0.05)


def test_total_correlation_does_not_change_under_per_dim_rescaling():
    mu, lv, _ = _gaussian_code(600, 4, 0.25, 0.4, seed=1)
    scale, shift = np.array([0.1, 1.0, 3.0, 10.0]), np.array([5.0, -1.0, 0.0, 2.0])
    a = total_correlation(mu, lv, dataset_size=SPRITES_N, rng=2)
    b = total_correlation(mu * scale + shift, lv + 2 * np.log(scale), dataset_size=SPRITES_N, rng=2)
    assert b.value == pytest.approx(a.value, abs=1e-9)
    assert b.ci_high - b.ci_low == pytest.approx(a.ci_high - a.ci_low, abs=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize(("corr", "truth"), [(0.0, 0.0), (0.5, 0.8370)])
def test_total_correlation_recovers_the_tc_of_a_gaussian_code(corr, truth):
    # Factorised (TC = 0) and equicorrelated (TC = -1/2 log det C = 0.837 for 5 dims at 0.5).
    mu, lv, exact = _gaussian_code(2000, 5, 0.25, corr, seed=3)
    assert exact == pytest.approx(truth, abs=1e-4)
    est = total_correlation(mu, lv, dataset_size=SPRITES_N, rng=4)
    assert est.ci_low <= exact <= est.ci_high, est
    assert abs(est.value - exact) < 0.05
    assert est.ci_high - est.ci_low < 0.2
    assert est.details["dataset_size"] == SPRITES_N and est.n == 2000


@pytest.mark.slow
def test_training_tc_at_batch_64_is_biased_by_nats_where_the_eval_estimate_is_not():
    # docs/metrics.md: on a factorised code (TC = 0) of 10 dims with posterior variance 0.25 the
    # minibatch-weighted TC of training (VAE.tc_decomposition, batch 64, N = 737,280) is
    # (D - 1) log N + 2.8 nats; total_correlation on 3,000 rows of the same code is within 0.2 of 0.
    from latentatlas.models.vae import VAE, VAEConfig

    d, s2 = 10, 0.25
    model = VAE(VAEConfig(kind="beta_tcvae", input_shape=(4,), latent_dim=d, hidden=8, dataset_size=SPRITES_N))
    gen = torch.Generator().manual_seed(0)
    excess = []
    for _ in range(100):
        mu = math.sqrt(1 - s2) * torch.randn(64, d, generator=gen, dtype=torch.float64)
        z = mu + math.sqrt(s2) * torch.randn(64, d, generator=gen, dtype=torch.float64)
        lv = torch.full((64, d), math.log(s2), dtype=torch.float64)
        excess.append(float(model.tc_decomposition(z, mu, lv)[1]) - (d - 1) * math.log(SPRITES_N))
    assert 2.4 < np.mean(excess) < 3.2
    mu, lv, _ = _gaussian_code(3000, d, s2, 0.0, seed=5)
    est = total_correlation(mu, lv, dataset_size=SPRITES_N, rng=6)
    assert abs(est.value) < 0.2


def test_total_correlation_rejects_bad_input():
    mu, lv, _ = _gaussian_code(50, 3, 0.25, 0.0, seed=0)
    with pytest.raises(LatentAtlasError, match="smaller than the number of rows"):
        total_correlation(mu, lv, dataset_size=10)
    with pytest.raises(LatentAtlasError, match="-inf"):
        total_correlation(mu, np.full_like(lv, -np.inf))
    with pytest.raises(LatentAtlasError, match="must match"):
        total_correlation(mu, lv[:, :2])
    json.dumps(total_correlation(mu, lv, rng=0).to_dict())
