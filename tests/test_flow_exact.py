"""Known-answer tests of the exact flow-matching / VP-diffusion oracle for Gaussian mixtures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from latentatlas.analysis.flow_exact import (
    field_error,
    fm_denoised,
    fm_loss_floor,
    fm_marginal_log_prob,
    fm_posterior,
    fm_velocity,
    vp_denoised,
    vp_eps,
    vp_eps_error,
    vp_marginal_log_prob,
    vp_score,
)
from latentatlas.data.toys import GaussianMixture
from latentatlas.errors import LatentAtlasError

# unequal weights and widths, so no answer holds by symmetry alone
MIX = GaussianMixture(means=((2.0, 0.0), (-1.0, 1.5), (0.0, -2.0)), sigmas=(0.3, 0.6, 0.2), weights=(0.5, 0.3, 0.2))


def _se(est) -> float:
    """The standard error implied by a 95% percentile interval."""
    return (est.ci_high - est.ci_low) / (2 * 1.96)


def _points(n=7, seed=0, scale=2.0, dtype=torch.float64):
    return torch.from_numpy(np.random.default_rng(seed).normal(0, scale, (n, 2))).to(dtype)


# -- endpoints ----------------------------------------------------------------------------------------


def test_at_t0_the_velocity_is_the_mixture_mean_minus_x():
    x = torch.cat([_points(), torch.tensor([[1e3, -1e3], [0.0, 0.0]], dtype=torch.float64)])
    mean = torch.tensor([0.5 * 2 + 0.3 * -1 + 0.2 * 0, 0.5 * 0 + 0.3 * 1.5 + 0.2 * -2], dtype=torch.float64)
    torch.testing.assert_close(fm_velocity(MIX, x, 0.0), mean - x)
    torch.testing.assert_close(fm_denoised(MIX, x, 0.0), mean.expand_as(x))
    torch.testing.assert_close(fm_posterior(MIX, x, 0.0), torch.tensor([[0.5, 0.3, 0.2]], dtype=torch.float64).expand(len(x), 3))


def test_at_t1_the_velocity_is_x_even_for_vanishing_components():
    # E[x1 - x0 | x1 = x] = x - E[x0] = x; the variance s_k² is tiny here, far points included
    tiny = GaussianMixture(means=((0.0, 0.0), (3.0, 1.0)), sigmas=(1e-9, 1e-300))
    x = torch.cat([_points(scale=5.0), torch.tensor([[3.0, 1.0], [40.0, -40.0]], dtype=torch.float64)])
    v = fm_velocity(tiny, x, 1.0)
    assert torch.isfinite(v).all()
    torch.testing.assert_close(v, x)
    torch.testing.assert_close(fm_denoised(tiny, x, 1.0), x)
    assert torch.isfinite(fm_posterior(tiny, x, 1.0)).all()
    # beyond float64's range for squared distances the answers stay finite
    far = torch.tensor([[1e200, 0.0]], dtype=torch.float64)
    assert torch.isfinite(fm_velocity(tiny, far, 0.5)).all() and torch.isfinite(fm_posterior(tiny, far, 1.0)).all()


def test_near_t1_a_point_mass_pulls_straight_at_its_mode():
    # s -> 0: x1 = μ, so x0 = (x - tμ)/(1 - t) and x1 - x0 = (μ - x)/(1 - t), arriving at μ at t = 1
    mu = torch.tensor([1.5, -0.5], dtype=torch.float64)
    point = GaussianMixture(means=(tuple(mu.tolist()),), sigmas=1e-9)
    x = _points()
    for t in (0.5, 0.9, 0.999):
        torch.testing.assert_close(fm_velocity(point, x, t), (mu - x) / (1 - t), rtol=1e-9, atol=1e-9)


# -- one Gaussian against generic linear-Gaussian conditioning ----------------------------------------


def _linear_gaussian_conditional(mean_z, cov_z, a, b, x):
    """E[b z | a z = x] for z ~ N(mean_z, cov_z): b m + b Σ aᵀ (a Σ aᵀ)⁻¹ (x - a m), row by row."""
    gain = b @ cov_z @ a.T @ np.linalg.inv(a @ cov_z @ a.T)
    return (b @ mean_z)[None] + (x - (a @ mean_z)[None]) @ gain.T


@pytest.mark.parametrize("d", [1, 3])
def test_single_gaussian_velocity_and_denoiser_match_gaussian_conditioning(d):
    rng = np.random.default_rng(1)
    mu, s = rng.normal(size=d), 0.7
    mix = GaussianMixture(means=(tuple(mu),), sigmas=s)
    eye, zero = np.eye(d), np.zeros((d, d))
    mean_z = np.concatenate([mu, np.zeros(d)])  # z = (x1, x0)
    cov_z = np.block([[s**2 * eye, zero], [zero, eye]])
    x = rng.normal(size=(5, d))
    for t in (0.0, 0.2, 0.5, 0.93, 1.0):
        a = np.hstack([t * eye, (1 - t) * eye])
        want_v = _linear_gaussian_conditional(mean_z, cov_z, a, np.hstack([eye, -eye]), x)
        want_d = _linear_gaussian_conditional(mean_z, cov_z, a, np.hstack([eye, zero]), x)
        np.testing.assert_allclose(fm_velocity(mix, torch.from_numpy(x), t).numpy(), want_v, atol=1e-10)
        np.testing.assert_allclose(fm_denoised(mix, torch.from_numpy(x), t).numpy(), want_d, atol=1e-10)
    # VP: z = (x1, ε), x = α x1 + σ ε
    alpha, sigma = 0.8, 0.6
    a = np.hstack([alpha * eye, sigma * eye])
    want_eps = _linear_gaussian_conditional(mean_z, cov_z, a, np.hstack([zero, eye]), x)
    want_x1 = _linear_gaussian_conditional(mean_z, cov_z, a, np.hstack([eye, zero]), x)
    np.testing.assert_allclose(vp_eps(mix, torch.from_numpy(x), alpha, sigma).numpy(), want_eps, atol=1e-10)
    np.testing.assert_allclose(vp_denoised(mix, torch.from_numpy(x), alpha, sigma).numpy(), want_x1, atol=1e-10)


def test_time_per_row_equals_time_one_at_a_time():
    x = _points(4)
    t = torch.tensor([0.0, 0.25, 0.7, 1.0], dtype=torch.float64)
    rows = torch.cat([fm_velocity(MIX, x[i:i + 1], float(t[i])) for i in range(4)])
    torch.testing.assert_close(fm_velocity(MIX, x, t), rows)


# -- densities ---------------------------------------------------------------------------------------


def _scipy_mixture_log_pdf(x, locs, variances, weights):
    dens = sum(w * multivariate_normal(mean=m, cov=v * np.eye(2)).pdf(x) for m, v, w in zip(locs, variances, weights))
    return np.log(dens)


def test_marginal_log_prob_matches_scipy_and_integrates_to_one():
    means, s2, w = MIX.means_array, MIX.sigmas_array**2, MIX.weights_array
    x = _points(6)
    h = 0.025
    grid = np.arange(-7, 7, h) + h / 2
    gx, gy = np.meshgrid(grid, grid)
    flat = torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], 1))
    for t in (0.3, 0.95):
        want = _scipy_mixture_log_pdf(x.numpy(), t * means, (1 - t) ** 2 + t**2 * s2, w)
        np.testing.assert_allclose(fm_marginal_log_prob(MIX, x, t).numpy(), want, rtol=1e-10)
        mass = torch.exp(fm_marginal_log_prob(MIX, flat, t)).sum().item() * h * h
        assert abs(mass - 1.0) < 1e-6
    alpha, sigma = 0.6, 0.8
    want = _scipy_mixture_log_pdf(x.numpy(), alpha * means, alpha**2 * s2 + sigma**2, w)
    np.testing.assert_allclose(vp_marginal_log_prob(MIX, x, alpha, sigma).numpy(), want, rtol=1e-10)


def test_vp_score_is_the_gradient_of_the_vp_log_density():
    x = _points(9).requires_grad_(True)
    alpha = torch.linspace(0.0, 1.0, 9, dtype=torch.float64)
    sigma = torch.sqrt(1 - alpha**2).clamp_min(0.05)
    (grad,) = torch.autograd.grad(vp_marginal_log_prob(MIX, x, alpha, sigma).sum(), x)
    torch.testing.assert_close(vp_score(MIX, x.detach(), alpha, sigma), grad)
    torch.testing.assert_close(vp_eps(MIX, x.detach(), alpha, sigma), -sigma[:, None] * grad)


def test_vp_and_fm_agree_under_the_change_of_variables():
    # α x1 + σ ε = (α + σ)·(t x1 + (1 - t) ε) with t = α / (α + σ): the FM point is x / (α + σ)
    x = _points(8, scale=1.5)
    for alpha, sigma in ((0.6, 0.8), (0.995, 0.0998), (0.1, 0.995)):
        t, y = alpha / (alpha + sigma), x / (alpha + sigma)
        torch.testing.assert_close(vp_denoised(MIX, x, alpha, sigma), fm_denoised(MIX, y, t))
        # E[ε | x] = E[x0 | y] = E[x1 | y] - E[x1 - x0 | y]
        torch.testing.assert_close(vp_eps(MIX, x, alpha, sigma), fm_denoised(MIX, y, t) - fm_velocity(MIX, y, t))
        torch.testing.assert_close(vp_marginal_log_prob(MIX, x, alpha, sigma),
                                   fm_marginal_log_prob(MIX, y, t) - 2 * math.log(alpha + sigma))
        torch.testing.assert_close(vp_score(MIX, x, alpha, sigma), -vp_eps(MIX, x, alpha, sigma) / sigma)


# -- the oracle in law ---------------------------------------------------------------------------------


@pytest.mark.parametrize("t, point", [(0.3, (0.2, 0.5)), (0.55, (0.3, 0.2)), (0.8, (-0.7, 1.0))])
def test_velocity_and_posterior_equal_a_rejection_sampled_conditional(t, point):
    """E[x1 - x0 | x_t = x] by exact rejection sampling, independent of the oracle's algebra.

    Propose x1 from the mixture and accept it with probability exp(-‖x - t·x1‖² / (2(1 - t)²)), the
    likelihood p(x_t = x | x1) = N(x; t·x1, (1 - t)² I) divided by its maximum: accepted x1 are exact
    draws from p(x1 | x_t = x). Given x1 and x_t = x, x0 = (x - t·x1) / (1 - t) is determined, so the
    mean of x1 - x0 over accepted draws is an unbiased estimate of v*(x, t) with an ordinary standard
    error; the share of accepted draws from each component estimates the responsibilities.
    """
    rng = np.random.default_rng(7)
    x = np.array(point)
    x1, comp = MIX.sample(400_000, rng)
    x1 = x1.astype(np.float64)
    accept = rng.random(len(x1)) < np.exp(-((x[None] - t * x1) ** 2).sum(1) / (2 * (1 - t) ** 2))
    x1, comp = x1[accept], comp[accept]
    assert len(x1) >= 2000
    target = x1 - (x[None] - t * x1) / (1 - t)
    se = target.std(0, ddof=1) / math.sqrt(len(target))
    v = fm_velocity(MIX, torch.from_numpy(x[None]), t).numpy()[0]
    assert np.all(np.abs(v - target.mean(0)) < 4.5 * se), (v, target.mean(0), se)
    share = np.bincount(comp, minlength=3) / len(comp)
    r = fm_posterior(MIX, torch.from_numpy(x[None]), t).numpy()[0]
    assert np.all(np.abs(r - share) < 4.5 * np.sqrt(r * (1 - r) / len(comp)) + 1e-3), (r, share)


@pytest.fixture
def one_thread():
    """Hundreds of small tensor operations in a row: torch's thread pool only adds waiting on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_euler_integration_of_the_exact_field_reproduces_the_mode_weights(one_thread):
    n, steps = 3000, 400
    x = torch.from_numpy(np.random.default_rng(3).standard_normal((n, 2)))
    for i in range(steps):
        x = x + fm_velocity(MIX, x, i / steps) / steps
    nearest = torch.cdist(x, torch.from_numpy(MIX.means_array)).argmin(1).numpy()
    share = np.bincount(nearest, minlength=3) / n
    w = MIX.weights_array
    assert np.all(np.abs(share - w) < 4 * np.sqrt(w * (1 - w) / n)), share
    for k in range(3):
        assert np.linalg.norm(x.numpy()[nearest == k].mean(0) - MIX.means_array[k]) < 0.1


# -- the loss floor and the field error ---------------------------------------------------------------


@pytest.mark.parametrize("d, s", [(2, 0.5), (3, 1.0)])
def test_loss_floor_of_one_gaussian_is_pi_over_two_d_s(d, s):
    # Cov(x1 - x0 | x_t) = s² / ((1 - t)² + t² s²) per coordinate, and ∫₀¹ dt / ((1 - t)² + t² s²) = π / (2s)
    mix = GaussianMixture(means=(tuple(np.linspace(-1, 2, d)),), sigmas=s)
    est = fm_loss_floor(mix, n_samples=20_000, random_state=0)
    assert abs(est.value - math.pi / 2 * d * s) < 4 * _se(est)
    assert est.ci_low < est.value < est.ci_high and est.n == 20_000


def test_loss_floor_equals_the_plain_monte_carlo_loss_of_the_exact_field():
    est = fm_loss_floor(MIX, n_samples=20_000, random_state=1)
    rng = np.random.default_rng(11)
    n = 20_000
    t = rng.random(n)
    x0 = rng.standard_normal((n, 2))
    x1 = MIX.sample(n, rng)[0].astype(np.float64)
    xt = (1 - t)[:, None] * x0 + t[:, None] * x1
    v = fm_velocity(MIX, torch.from_numpy(xt), torch.from_numpy(t)).numpy()
    per = (((x1 - x0) - v) ** 2).sum(1)
    se = per.std(ddof=1) / math.sqrt(n)
    assert abs(per.mean() - est.value) < 4 * math.hypot(se, _se(est))


def test_field_error_of_the_exact_field_is_zero_and_of_a_shift_is_its_squared_norm():
    exact = field_error(lambda x, t: fm_velocity(MIX, x, t), MIX, n_samples=500)
    assert exact.value == pytest.approx(0.0, abs=1e-10)
    shift = torch.tensor([0.3, -0.4])
    shifted = field_error(lambda x, t: fm_velocity(MIX, x, t) + shift, MIX, n_samples=500)
    assert abs(shifted.value - 0.25) < 1e-5


def test_field_error_of_the_zero_field_is_the_mean_square_of_the_exact_one():
    # one Gaussian: v* = μ + c(t)(x - tμ), c = (t s² - (1 - t)) / v, x - tμ ~ N(0, v I), so
    # E‖v*‖² = ‖μ‖² + d c² v; over t ~ U(0, 1), c² v = 1 + s² - s² / v integrates to 1 + s² - πs/2
    mu, s, d = np.array([1.0, 2.0]), 0.5, 2
    mix = GaussianMixture(means=(tuple(mu),), sigmas=s)
    zero = lambda x, t: torch.zeros_like(x)  # noqa: E731
    est = field_error(zero, mix, n_samples=8000, random_state=2)
    assert abs(est.value - (mu @ mu + d * (1 + s**2 - math.pi * s / 2))) < 4 * _se(est)
    t = 0.5
    v = (1 - t) ** 2 + t**2 * s**2
    fixed = field_error(zero, mix, n_samples=8000, random_state=2, t_range=(t, t))
    assert abs(fixed.value - (mu @ mu + d * (t * s**2 - (1 - t)) ** 2 / v)) < 4 * _se(fixed)


def test_vp_eps_error_known_answers():
    mu, s, d = np.array([1.0, -1.0]), 0.5, 2
    mix = GaussianMixture(means=(tuple(mu),), sigmas=s)
    alpha_fn, sigma_fn = (lambda t: torch.cos(t * math.pi / 2)), (lambda t: torch.sin(t * math.pi / 2))
    exact = vp_eps_error(lambda x, t: vp_eps(mix, x, alpha_fn(t.double()), sigma_fn(t.double())), mix, alpha_fn, sigma_fn,
                         n_samples=500, t_range=(0.05, 0.95))
    assert exact.value == pytest.approx(0.0, abs=1e-10)
    # fixed α, σ: E[ε | x] = (σ / u)(x - αμ) with x - αμ ~ N(0, u I), u = α² s² + σ²,
    # so E‖E[ε | x]‖² = d σ² / u
    alpha, sigma = 0.8, 0.6
    est = vp_eps_error(lambda x, t: torch.zeros_like(x), mix, lambda t: alpha, lambda t: sigma, n_samples=8000)
    assert abs(est.value - d * sigma**2 / (alpha**2 * s**2 + sigma**2)) < 4 * _se(est)


# -- dtypes and bad input -----------------------------------------------------------------------------


def test_answers_come_back_in_the_dtype_of_x():
    x = _points(3, dtype=torch.float32)
    for out in (fm_velocity(MIX, x, 0.4), fm_denoised(MIX, x, 0.4), fm_marginal_log_prob(MIX, x, 0.4),
                vp_score(MIX, x, 0.6, 0.8), vp_eps(MIX, x, 0.6, 0.8)):
        assert out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize("call, words", [
    (lambda: fm_velocity(MIX, torch.zeros(3, 3), 0.5), "x has shape (3, 3)"),
    (lambda: fm_velocity(MIX, torch.tensor([[0.0, float("nan")]]), 0.5), "x has NaN"),
    (lambda: fm_velocity(MIX, torch.zeros(3, 2), 1.5), "t must be at most 1"),
    (lambda: fm_velocity(MIX, torch.zeros(3, 2), torch.zeros(4)), "t has shape (4,)"),
    (lambda: fm_velocity(MIX, torch.zeros(2, 2), torch.tensor([0.5, -0.1])),
     "t has NaN, infinite or out-of-range values; expected finite values in [0, 1]"),
    (lambda: fm_velocity(MIX, torch.zeros(2, 2), np.array([0.5, 0.2, 0.1])), "t has shape (3,)"),
    (lambda: vp_eps(MIX, torch.zeros(2, 2), torch.tensor([0.5, -1.0]), 0.5), "expected finite values of at least 0"),
    (lambda: fm_velocity(object(), torch.zeros(3, 2), 0.5), "mixture of type object"),
    (lambda: vp_score(MIX, torch.zeros(3, 2), 0.0, 0.0), "alpha and sigma are both 0"),
    (lambda: field_error(lambda x, t: x[:, :1], MIX, n_samples=10), "v_fn returned shape (10, 1)"),
    (lambda: field_error(lambda x, t: x * float("nan"), MIX, n_samples=10), "v_fn returned NaN"),
    (lambda: field_error(lambda x, t: x, MIX, n_samples=10, t_range=(0.8, 0.2)), "t_range (0.8, 0.2) is reversed"),
    (lambda: fm_loss_floor(MIX, n_samples=0), "n_samples must be between"),
])
def test_bad_input_is_one_sentence_naming_it(call, words):
    with pytest.raises(LatentAtlasError) as info:
        call()
    message = str(info.value)
    assert words in message and "\n" not in message
