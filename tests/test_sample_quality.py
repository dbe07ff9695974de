"""Sample-quality metrics (analysis/sample_quality.py) on inputs whose answer is known: double loops over
pairs, scipy's energy distance, closed forms for Gaussians, hand-built mixtures and hand-integrated paths."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.stats
import torch
from scipy.spatial.distance import pdist

from latentatlas.analysis.sample_quality import (
    energy_distance,
    energy_null,
    mmd,
    mode_errors,
    reaches_floor,
    straightness,
)
from latentatlas.errors import LatentAtlasError


def _pair_loop(x, y, f, unbiased):
    """(mean over x pairs, mean over y pairs, mean over x–y pairs) of f(a, b), written out pair by pair."""

    def within(a):
        pairs = [(i, j) for i in range(len(a)) for j in range(len(a)) if i != j or not unbiased]
        return sum(f(a[i], a[j]) for i, j in pairs) / len(pairs)

    cross = sum(f(a, b) for a in x for b in y) / (len(x) * len(y))
    return within(x), within(y), cross


def _euclid(a, b):
    return math.sqrt(sum((p - q) ** 2 for p, q in zip(a, b)))


def _mean_abs_normal(m, s):
    """E|N(m, s²)|: the folded normal's mean."""
    return s * math.sqrt(2 / math.pi) * math.exp(-m * m / (2 * s * s)) + m * (1 - 2 * scipy.stats.norm.cdf(-m / s))


# --- energy distance ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("unbiased", [True, False])
def test_energy_distance_is_the_pair_by_pair_formula(unbiased):
    rng = np.random.default_rng(0)
    # far from the origin on purpose: the norm expansion must not lose the distances to cancellation
    x = rng.normal(size=(7, 3)) + 1000.0
    y = rng.normal(0.5, 2.0, size=(5, 3)) + 1000.0
    xx, yy, xy = _pair_loop(x.tolist(), y.tolist(), _euclid, unbiased)
    est = energy_distance(x, y, unbiased=unbiased, num_resamples=0)
    assert est.value == pytest.approx(2 * xy - xx - yy, rel=1e-9, abs=1e-9)
    assert est.details["mean_xx"] == pytest.approx(xx, rel=1e-9)
    assert est.ci_low is None and est.n == 7 and est.details["n_y"] == 5


def test_v_statistic_is_the_square_of_scipys_energy_distance():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=40), rng.standard_t(3, size=31)
    est = energy_distance(x, y, unbiased=False, num_resamples=0)
    assert est.value == pytest.approx(scipy.stats.energy_distance(x, y) ** 2, rel=1e-10)


def test_unbiased_energy_distance_averages_to_zero_on_equal_laws_and_the_v_statistic_does_not():
    def standard_normal_2d(n, rng):
        return rng.normal(size=(n, 2))

    n, repeats = 20, 200
    null = energy_null(standard_normal_2d, n, repeats=repeats, random_state=3)
    assert abs(null["mean"]) < 4 * null["std"] / math.sqrt(repeats)
    assert min(null["values"]) < 0  # the U-statistic can go below 0

    # E[V] = 2·E‖X − X'‖ / n on equal laws, with E‖X − X'‖ = √π for X, X' ~ N(0, I₂) (√2 · Rayleigh mean)
    rng = np.random.default_rng(4)
    v = [
        energy_distance(rng.normal(size=(n, 2)), rng.normal(size=(n, 2)), unbiased=False, num_resamples=0).value
        for _ in range(repeats)
    ]
    assert abs(np.mean(v) - 2 * math.sqrt(math.pi) / n) < 4 * np.std(v) / math.sqrt(repeats)
    assert np.mean(v) > 8 * np.std(v) / math.sqrt(repeats)


def test_energy_distance_of_two_gaussians_is_within_its_interval_of_the_closed_form():
    delta = 1.0
    # X − Y ~ N(−δ, 2), X − X' and Y − Y' ~ N(0, 2)
    truth = 2 * _mean_abs_normal(delta, math.sqrt(2)) - 2 * _mean_abs_normal(0.0, math.sqrt(2))
    rng = np.random.default_rng(5)
    est = energy_distance(rng.normal(size=1500), rng.normal(delta, 1.0, size=1500), num_resamples=100, random_state=6)
    assert est.ci_low <= truth <= est.ci_high
    assert est.ci_high - est.ci_low < 0.5 * truth  # an interval that says something


def test_the_bootstrap_resamples_rows_and_pairs_only_distinct_original_rows():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(6, 2)), rng.normal(1.0, 1.0, size=(5, 2))
    b, seed = 40, 11
    est = energy_distance(x, y, num_resamples=b, random_state=seed)
    # the documented resample, by hand: rows of x, then rows of y, drawn with replacement; within-sample
    # pairs are pairs of positions holding different original rows
    draw = np.random.default_rng(seed)
    idx_x = [draw.integers(0, 6, size=6) for _ in range(b)]
    idx_y = [draw.integers(0, 5, size=5) for _ in range(b)]

    def within(a, idx):
        pairs = [(p, q) for p in idx for q in idx if p != q]
        return np.mean([_euclid(a[p], a[q]) for p, q in pairs]) if pairs else math.nan

    stats = []
    for ix, iy in zip(idx_x, idx_y):
        cross = np.mean([_euclid(x[p], y[q]) for p in ix for q in iy])
        stats.append(2 * cross - within(x, ix) - within(y, iy))
    stats = np.array(stats)
    low, high = np.quantile(stats[np.isfinite(stats)], [0.025, 0.975])
    assert est.ci_low == pytest.approx(low, rel=1e-9) and est.ci_high == pytest.approx(high, rel=1e-9)


def test_torch_input_gives_the_numpy_answer():
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(30, 4)).astype(np.float32), rng.normal(size=(25, 4)).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_(True)
    for metric in (energy_distance, mmd):
        a = metric(xt, torch.from_numpy(y), num_resamples=20)
        b = metric(x.astype(np.float64), y.astype(np.float64), num_resamples=20)
        assert (a.value, a.ci_low, a.ci_high) == pytest.approx((b.value, b.ci_low, b.ci_high), rel=1e-12)


# --- noise floor -------------------------------------------------------------------------------------------


def test_noise_floor_is_the_quantile_of_same_law_distances_and_separates_a_shifted_sampler():
    def target(n, rng):
        return rng.normal(size=(n, 2))

    n = 100
    null = energy_null(target, n, repeats=60, q=0.9, random_state=0)
    assert null["quantile"] == pytest.approx(np.quantile(null["values"], 0.9))
    assert null["std"] == pytest.approx(np.std(null["values"], ddof=1))
    assert len(null["values"]) == 60 and null["n"] == n

    rng = np.random.default_rng(9)
    exact = energy_distance(target(n, rng), target(n, rng), num_resamples=0)
    shifted = energy_distance(target(n, rng) + [1.0, 0.0], target(n, rng), num_resamples=0)
    assert reaches_floor(exact, null) and not reaches_floor(shifted, null)
    assert reaches_floor(null["quantile"], null) and not reaches_floor(null["quantile"] + 1e-9, null)
    with pytest.raises(LatentAtlasError, match="sample size"):
        reaches_floor(energy_distance(target(2 * n, rng), target(n, rng), num_resamples=0), null)


# --- MMD ---------------------------------------------------------------------------------------------------


def test_mmd_is_the_pair_by_pair_formula_and_the_median_heuristic_is_scipys_median_distance():
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=(8, 2)), rng.normal(0.3, 1.5, size=(6, 2))
    h = 0.7

    def kernel(a, b):
        return math.exp(-(_euclid(a, b) ** 2) / (2 * h * h))

    xx, yy, xy = _pair_loop(x.tolist(), y.tolist(), kernel, unbiased=True)
    assert mmd(x, y, bandwidth=h, num_resamples=0).value == pytest.approx(xx + yy - 2 * xy, rel=1e-10)

    est = mmd(x, y, num_resamples=0)
    median = float(np.median(pdist(np.concatenate([x, y]))))
    assert est.details["bandwidth"] == pytest.approx(median, rel=1e-12)
    assert est.details["bandwidth_rule"] == "median heuristic"


def test_mmd_of_two_gaussians_is_within_its_interval_of_the_closed_form():
    a, s, b, r, h = 0.0, 1.0, 1.0, 1.5, 1.0

    def mean_kernel(m1, s1, m2, s2):  # E k(X, Y), X ~ N(m1, s1²), Y ~ N(m2, s2²), independent
        v = h * h + s1 * s1 + s2 * s2
        return h / math.sqrt(v) * math.exp(-((m1 - m2) ** 2) / (2 * v))

    truth = mean_kernel(a, s, a, s) + mean_kernel(b, r, b, r) - 2 * mean_kernel(a, s, b, r)
    rng = np.random.default_rng(12)
    est = mmd(rng.normal(a, s, size=1500), rng.normal(b, r, size=1500), bandwidth=h, num_resamples=100)
    assert est.ci_low <= truth <= est.ci_high
    assert est.ci_high - est.ci_low < 0.5 * truth


# --- mixture modes -----------------------------------------------------------------------------------------


def test_exact_mixture_samples_find_every_mode_with_the_right_weights():
    means = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    sigmas, weights = np.array([0.5, 1.0, 0.3]), np.array([0.5, 0.3, 0.2])
    rng = np.random.default_rng(13)
    n = 3000
    k = rng.choice(3, size=n, p=weights)
    x = means[k] + sigmas[k, None] * rng.normal(size=(n, 2))
    out = mode_errors(x, means, sigmas, weights)
    assert out["dropped_modes"] == 0 and out["dropped"] == []
    assert out["tv"].ci_low == 0.0 <= out["tv"].value <= out["tv"].ci_high
    # multinomial noise: ½ Σ sqrt(2 w (1 − w) / (π n)) for exactly drawn samples
    expected = 0.5 * sum(math.sqrt(2 * w * (1 - w) / (math.pi * out["n_on_mode"])) for w in weights)
    assert out["tv"].details["expected_if_exact"] == pytest.approx(expected)
    # in 2-D, P(‖z‖ > 4) = exp(−16/2) for a standard normal z (chi-square with 2 degrees of freedom)
    assert out["off_mode_share"].details["at_most_if_exact"] == pytest.approx(math.exp(-8.0))
    for mode, s, count in zip(out["modes"], sigmas, np.bincount(k)):
        assert mode["mean_error"] < 4 * s * math.sqrt(2 / count)  # ‖mean error‖ ~ s·sqrt(χ²₂ / count)
        assert abs(mode["std_error"]) < 4 * s / math.sqrt(2 * 2 * count)  # sd of a sample std over 2·count values
    json.dumps({"tv": out["tv"].to_dict(), "off": out["off_mode_share"].to_dict(), "modes": out["modes"]})


def test_a_hand_built_sample_with_a_missing_mode_and_outliers():
    means = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    sigmas, weights = np.ones(3), np.array([0.5, 0.25, 0.25])
    x = np.concatenate([
        np.tile([[1.5, 0.0], [0.5, 0.0]], (30, 1)),  # mode 0: mean (1, 0), deviations ±0.5 in x
        np.tile([[10.0, 2.0], [10.0, -2.0]], (20, 1)),  # mode 1: mean exact, deviations ±2 in y
        np.full((25, 2), 50.0),  # off every mode
    ])
    out = mode_errors(x, means, sigmas, weights, num_resamples=50)
    m0, m1, m2 = out["modes"]
    assert (m0["count"], m1["count"], m2["count"]) == (60, 40, 0)
    assert (m0["weight_found"], m1["weight_found"], m2["weight_found"]) == pytest.approx((0.6, 0.4, 0.0))
    assert out["tv"].value == pytest.approx(0.5 * (0.1 + 0.15 + 0.25))
    assert out["tv"].ci_low <= 0.25 <= out["tv"].ci_high
    assert out["dropped_modes"] == 1 and out["dropped"] == [2]
    assert out["off_mode_share"].value == pytest.approx(25 / 125) and out["n_on_mode"] == 100
    assert m0["mean_error"] == pytest.approx(1.0) and m1["mean_error"] == pytest.approx(0.0, abs=1e-12)
    # isotropic std: squared deviations summed over samples and both coordinates / ((count − 1)·d)
    assert m0["std"] == pytest.approx(math.sqrt(60 * 0.25 / (59 * 2)))
    assert m1["std"] == pytest.approx(math.sqrt(40 * 4.0 / (39 * 2)))
    assert m1["std_error"] == pytest.approx(m1["std"] - 1.0)
    assert m2["mean_error"] is None and m2["std"] is None


def test_samples_go_to_the_most_likely_mode_not_the_nearest_mean():
    # (0.3, 0) is 3 sigmas from the narrow mode and 0.7 from the broad one; log-likelihoods (up to a
    # shared constant): log 0.01 − 2 log 0.1 − 0.09/0.02 = −4.5 against log 0.99 − 0.49/2 ≈ −0.255
    means = np.array([[0.0, 0.0], [1.0, 0.0]])
    out = mode_errors(np.array([[0.3, 0.0], [0.0, 0.0]]), means, [0.1, 1.0], [0.01, 0.99], num_resamples=0)
    assert [m["count"] for m in out["modes"]] == [1, 1]
    out = mode_errors(np.array([[0.3, 0.0], [1.0, 0.0]]), means, [0.1, 1.0], [0.01, 0.99], num_resamples=0)
    assert [m["count"] for m in out["modes"]] == [0, 2]


# --- straightness ------------------------------------------------------------------------------------------


def test_straight_paths_at_constant_speed_have_zero_straightness():
    rng = np.random.default_rng(14)
    start, end = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    times = np.concatenate([[0.0], np.sort(rng.uniform(size=9)), [1.0]])  # an uneven grid
    path = start[None] + times[:, None, None] * (end - start)[None]
    est = straightness(torch.from_numpy(path), times)
    assert est.value == pytest.approx(0.0, abs=1e-24) and est.n == 50 and est.details["steps"] == 10


def test_a_straight_path_at_changing_speed_is_not_straight():
    # X_t = t²·Δ: v = 2tΔ, S = ‖Δ‖² ∫ (1 − 2t)² dt = ‖Δ‖²/3; on N even steps v_k = Δ·(2k + 1)/N
    delta, n_steps = np.array([3.0, 4.0]), 40
    times = np.linspace(0.0, 1.0, n_steps + 1)
    path = (times[:, None] ** 2 * delta)[:, None, :]
    est = straightness(path, times, num_resamples=0)
    by_hand = sum((1 - (2 * k + 1) / n_steps) ** 2 for k in range(n_steps)) / n_steps * 25.0
    assert est.value == pytest.approx(by_hand, rel=1e-12)
    assert est.value == pytest.approx(25.0 / 3, rel=1e-3)


def test_a_quarter_circle_at_constant_speed():
    # X_t = r·(cos θ, sin θ), θ = πt/2: X₁ − X₀ = r·(−1, 1) and dX/dt = r·(π/2)·(−sin θ, cos θ), so
    # ‖X₁ − X₀ − dX/dt‖² = r²·(2 + π²/4 − π(sin θ + cos θ)) and ∫₀¹ (sin θ + cos θ) dt = 4/π:
    # S = r²·(π²/4 − 2). On N equal steps the chord velocity gives r²·(4N² sin²(π/4N) − 2).
    n_steps, radii = 200, np.array([1.0, 2.0])
    times = np.linspace(0.0, 1.0, n_steps + 1)
    theta = np.pi * times / 2
    path = radii[None, :, None] * np.stack([np.cos(theta), np.sin(theta)], -1)[:, None, :]
    est = straightness(path, times)
    mean_r2 = float((radii**2).mean())
    on_the_grid = 4 * n_steps**2 * math.sin(math.pi / (4 * n_steps)) ** 2 - 2
    assert est.value == pytest.approx(mean_r2 * on_the_grid, rel=1e-10)
    assert est.value == pytest.approx(mean_r2 * (math.pi**2 / 4 - 2), rel=1e-4)
    assert est.ci_low <= est.value <= est.ci_high


# --- bad input ---------------------------------------------------------------------------------------------


def _sampler(n, rng):
    return rng.normal(size=(n, 2))


_GOOD = np.random.default_rng(0).normal(size=(10, 2))
_BAD_CASES = [
    (lambda: energy_distance(np.full((5, 2), np.nan), _GOOD), "x"),
    (lambda: energy_distance(_GOOD, np.zeros((2, 2, 2))), "y"),
    (lambda: energy_distance(_GOOD[:1], _GOOD), "at least 2"),
    (lambda: energy_distance(_GOOD, np.zeros((5, 3))), "dimensions"),
    (lambda: energy_distance(_GOOD, "abc"), "y"),
    (lambda: energy_distance(_GOOD, _GOOD, num_resamples=-1), "num_resamples"),
    (lambda: mmd(_GOOD, _GOOD, bandwidth=0.0), "bandwidth"),
    (lambda: mmd(np.zeros((4, 2)), np.zeros((3, 2))), "bandwidth"),
    (lambda: energy_null(_sampler, 1), "n"),
    (lambda: energy_null(_sampler, 10, q=0.0), "q"),
    (lambda: energy_null(lambda n, rng: rng.normal(size=(n - 1, 2)), 10), "sample_fn"),
    (lambda: energy_null("not a function", 10), "sample_fn"),
    (lambda: reaches_floor(0.1, {"mean": 0.0}), "null"),
    (lambda: mode_errors(_GOOD, np.zeros((2, 3)), [1, 1], [0.5, 0.5]), "means"),
    (lambda: mode_errors(_GOOD, np.zeros((2, 2)), [1, -1], [0.5, 0.5]), "sigmas"),
    (lambda: mode_errors(_GOOD, np.zeros((2, 2)), [1, 1], [0.5, 0.6]), "weights"),
    (lambda: mode_errors(_GOOD, np.zeros((2, 2)), [1, 1, 1], [0.5, 0.5]), "sigmas"),
    (lambda: mode_errors(_GOOD, np.zeros((2, 2)), [1, 1], [0.5, 0.5], outlier_sigmas=0), "outlier_sigmas"),
    (lambda: straightness(np.zeros((3, 4)), [0, 0.5, 1]), "trajectory"),
    (lambda: straightness(np.zeros((3, 4, 2)), [0, 0.7, 0.5]), "times"),
    (lambda: straightness(np.zeros((3, 4, 2)), [0, 0.5, 2.0]), "times"),
    (lambda: straightness(np.zeros((3, 4, 2)), [0, 1.0]), "times"),
    (lambda: straightness(np.full((3, 4, 2), np.inf), [0, 0.5, 1]), "trajectory"),
]


@pytest.mark.parametrize("call, names", _BAD_CASES, ids=[str(i) for i in range(len(_BAD_CASES))])
def test_bad_input_is_one_sentence_naming_it(call, names):
    with pytest.raises(LatentAtlasError) as info:
        call()
    message = str(info.value)
    assert names in message and "\n" not in message and "Traceback" not in message
