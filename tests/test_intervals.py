"""Do the intervals cover what they claim to? Coverage checked by simulation against known answers.

Each test draws 50 independent samples from a model whose true value is known (in closed form, or from
one very large sample), computes the 95% interval on each, and counts how often it contains the truth.
A correct 95% interval covers 47.5 of 50 on average; fewer than 43 happens by chance with probability
about 1% (binomial), so ``>= 43`` is the pass mark. Every test also shows that the same check rejects an
interval known to be wrong, so that it can fail. Everything is seeded. See docs/metrics.md for the
coverage measured at the sizes `latentatlas eval` uses.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from latentatlas.analysis.disentanglement import mig
from latentatlas.analysis.sae_metrics import SAEStats

REPS = 50
PASS = 43  # of 50


def _covered(lows, highs, truth) -> int:
    lows, highs = np.asarray(lows, dtype=float), np.asarray(highs, dtype=float)
    return int(np.sum((lows <= truth) & (truth <= highs)))


# -- MIG -------------------------------------------------------------------------------------------

MIG_SIZES = (3, 6, 8)
MIG_N = 2000


def _mig_sample(n: int, rng: np.random.Generator, angle_deg: float | None):
    """Factors of MIG_SIZES; one code dim per factor (standardised factor + uniform noise, so that
    each dim's range, and with it the equal-width bins, settles quickly as n grows) and two pure-noise
    dims. ``angle_deg`` rotates the first two factor dims into each other (a partly mixed code)."""
    sizes = np.asarray(MIG_SIZES)
    f = np.stack([rng.integers(0, s, n) for s in MIG_SIZES], axis=1)
    std = (f - (sizes - 1) / 2.0) / np.sqrt((sizes**2 - 1) / 12.0)
    z = std.copy()
    if angle_deg is not None:
        c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
        z[:, 0], z[:, 1] = c * std[:, 0] + s * std[:, 1], -s * std[:, 0] + c * std[:, 1]
    z += 0.5 * rng.uniform(-1.0, 1.0, z.shape)
    return np.concatenate([z, rng.standard_normal((n, 2))], axis=1), f


@pytest.mark.slow
@pytest.mark.parametrize("angle_deg", [None, 30.0], ids=["aligned", "mixed"])
def test_mig_interval_covers_the_large_sample_mig(angle_deg):
    # The truth: the plug-in MIG of one sample of a million rows (its plug-in bias there is ~1e-4 of
    # the interval widths below). Aligned: 0.773; mixed: 0.396.
    truth = mig(*_mig_sample(1_000_000, np.random.default_rng(123), angle_deg), num_resamples=0,
                bias_correction=None).value
    values, lows, highs, old_lows, old_highs = [], [], [], [], []
    for rep in range(REPS):
        est = mig(*_mig_sample(MIG_N, np.random.default_rng(rep), angle_deg), rng=rep)
        values.append(est.value)
        lows.append(est.ci_low)
        highs.append(est.ci_high)
        # The interval reported before the bias correction, rebuilt from the same resamples: the
        # median-centred percentile interval around the plug-in value.
        d = est.details
        p, med = d["plugin_value"], d["bootstrap_median"]
        q_low, q_high = d["bootstrap_percentile_interval"]
        old_lows.append(max(p - (med - q_low), 0.0))
        old_highs.append(min(p + (q_high - med), 1.0))
    new = _covered(lows, highs, truth)
    old = _covered(old_lows, old_highs, truth)
    assert new >= PASS, f"bias-corrected MIG interval covered {new}/{REPS}"
    # The plug-in interval fails the same check (measured: 0/50 aligned, 23/50 mixed): its width is
    # right but the plug-in MIG sits below the truth (MI of the runner-up dims biased upwards).
    assert old <= 30, f"plug-in interval covered {old}/{REPS}; the check has lost its power"
    # Not covering by being wide: the mean width is about 3.92 standard deviations of the estimates.
    ratio = np.mean(np.subtract(highs, lows)) / (3.92 * np.std(values))
    assert 0.7 < ratio < 1.4, ratio


# -- SAE FVU block bootstrap -----------------------------------------------------------------------

D, D_SAE, DOC_LEN, RHO = 8, 16, 128, 0.9
_setup = np.random.default_rng(2024)
_Q, _ = np.linalg.qr(_setup.standard_normal((D, D)))
SIGMA = _Q @ np.diag(np.linspace(0.5, 2.0, D)) @ _Q.T  # stationary covariance of every token
CHOL = np.linalg.cholesky(SIGMA)
MEAN = np.full(D, 5.0)  # a large mean, as transformer activations have
A = 0.7 * np.eye(D) + 0.1 * _setup.standard_normal((D, D))
W_ENC = _setup.standard_normal((D, D_SAE))
# x_hat = MEAN + A (x - MEAN), so x - x_hat = (I - A)(x - MEAN) and the population FVU is
# E||x - x_hat||^2 / E||x - MEAN||^2 = tr(B SIGMA B^T) / tr(SIGMA), B = I - A.
B = np.eye(D) - A
FVU_TRUE = float(np.trace(B @ SIGMA @ B.T) / np.trace(SIGMA))


def _documents(num_docs: int, rng: np.random.Generator) -> np.ndarray:
    """Tokens in store order: documents of DOC_LEN tokens, each a stationary Gaussian AR(1) with
    marginal N(MEAN, SIGMA) and lag-one correlation RHO; documents independent."""
    e = np.empty((num_docs, DOC_LEN, D))
    e[:, 0] = rng.standard_normal((num_docs, D)) @ CHOL.T
    for t in range(1, DOC_LEN):
        e[:, t] = RHO * e[:, t - 1] + math.sqrt(1.0 - RHO**2) * (rng.standard_normal((num_docs, D)) @ CHOL.T)
    return (MEAN + e).reshape(-1, D)


def _fvu_estimate(x: np.ndarray, block: int, seed: int):
    x_hat = MEAN + (x - MEAN) @ A.T
    f = np.maximum((x - MEAN) @ W_ENC, 0.0)  # a code with some zeros; FVU does not depend on it
    stats = SAEStats(D_SAE, block=block)
    for a in range(0, len(x), 4096):
        stats.update(x[a : a + 4096], x_hat[a : a + 4096], f[a : a + 4096])
    return stats.result(rng=seed)["fvu"]


@pytest.mark.slow
def test_fvu_block_bootstrap_covers_the_true_fvu():
    values, lows, highs = [], [], []
    for rep in range(REPS):
        # 256 documents = 32,768 tokens in 64 blocks of 512 (two documents per block).
        est = _fvu_estimate(_documents(256, np.random.default_rng(rep)), block=512, seed=rep)
        values.append(est.value)
        lows.append(est.ci_low)
        highs.append(est.ci_high)
    covered = _covered(lows, highs, FVU_TRUE)
    assert covered >= PASS, f"FVU block bootstrap covered {covered}/{REPS}"
    ratio = np.mean(np.subtract(highs, lows)) / (3.92 * np.std(values))
    assert 0.7 < ratio < 1.4, ratio

    # The check can fail: resampling single tokens (block = 1) ignores the correlation within
    # documents and gives intervals about a third as wide, which cover far less often.
    token_lows, token_highs = [], []
    for rep in range(REPS):
        est = _fvu_estimate(_documents(16, np.random.default_rng(1000 + rep)), block=1, seed=rep)
        token_lows.append(est.ci_low)
        token_highs.append(est.ci_high)
    token_covered = _covered(token_lows, token_highs, FVU_TRUE)
    assert token_covered <= 35, f"token-level bootstrap covered {token_covered}/{REPS}"
