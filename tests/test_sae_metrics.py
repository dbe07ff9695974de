"""SAE metrics on inputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from latentatlas.analysis.sae_metrics import SAEStats, fvu, relative_reconstruction_bias


def _data(n=4000, d=16, offset=50.0, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) + offset  # a large mean, as transformer activations have


def _stats(x, x_hat, f, chunk=777, **kw):
    s = SAEStats(f.shape[1], **kw)
    for a in range(0, len(x), chunk):
        s.update(x[a : a + chunk], x_hat[a : a + chunk], f[a : a + chunk])
    return s


def test_perfect_reconstruction():
    x = _data()
    f = np.ones((len(x), 4))
    r = _stats(x, x, f).result(num_resamples=50)
    assert r["fvu"].value == 0 and r["mse"].value == 0
    assert r["cosine"].value == pytest.approx(1.0) and r["relative_reconstruction_bias"].value == pytest.approx(1.0)
    assert r["l0"].value == 4 and r["explained_variance"].value == 1


def test_predicting_the_mean_is_fvu_one_centred_not_uncentred():
    x = _data()
    x_hat = np.broadcast_to(x.mean(0), x.shape)
    r = _stats(x, x_hat, np.zeros((len(x), 3))).result(num_resamples=50)
    assert r["fvu"].value == pytest.approx(1.0, abs=1e-9)
    assert fvu(x, x_hat) == pytest.approx(1.0)
    # the uncentred version would call this a near-perfect SAE: that is the bug the centred one avoids
    uncentred = ((x - x_hat) ** 2).sum() / (x**2).sum()
    assert uncentred < 0.001


def test_scaled_reconstruction_gives_its_shrinkage():
    x = _data(offset=0.0)
    for c in (0.5, 0.8, 1.25):
        r = _stats(x, c * x, np.zeros((len(x), 2))).result(num_resamples=0)
        assert r["relative_reconstruction_bias"].value == pytest.approx(c)
        assert relative_reconstruction_bias(x, c * x) == pytest.approx(c)
        assert r["fvu"].value == pytest.approx((1 - c) ** 2 * (x**2).sum() / ((x - x.mean(0)) ** 2).sum())


def test_l0_dead_dense_and_density_histogram():
    n = 5000
    f = np.zeros((n, 6))
    f[:, 0] = 1.0  # fires always: dense
    f[::2, 1] = 2.0  # half the time: dense
    f[::100, 2] = 0.5  # 1%: neither
    f[0, 3] = 0.1  # once
    x = _data(n, 3)
    s = _stats(x, x, f)
    r = s.result(num_resamples=0)
    assert r["l0"].value == pytest.approx(1 + 0.5 + 0.01 + 1 / n)
    assert r["dead_fraction"].value == pytest.approx(2 / 6)
    assert r["dense_fraction"].value == pytest.approx(2 / 6)
    np.testing.assert_allclose(s.density(), [1, 0.5, 0.01, 1 / n, 0, 0])
    h = s.density_histogram(bins=8)
    assert h["dead"] == 2 and sum(h["counts"]) == 4
    assert s.max_act.tolist() == [1.0, 2.0, 0.5, 0.1, 0.0, 0.0]


def test_streaming_equals_one_shot_and_intervals_cover_and_shrink():
    rng = np.random.default_rng(1)
    x = _data(8000, 8)
    x_hat = x + rng.normal(scale=0.5, size=x.shape)
    f = (rng.random((len(x), 10)) < 0.1).astype(float)
    a = _stats(x, x_hat, f, chunk=8000).result(num_resamples=0)
    b = _stats(x, x_hat, f, chunk=333).result(num_resamples=0)
    for k in ("fvu", "mse", "cosine", "l0", "relative_reconstruction_bias"):
        assert a[k].value == pytest.approx(b[k].value, rel=1e-10)
    assert a["fvu"].value == pytest.approx(fvu(x, x_hat))
    small = _stats(x[:2000], x_hat[:2000], f[:2000], block=100).result(rng=0, num_resamples=200)
    big = _stats(x, x_hat, f, block=100).result(rng=0, num_resamples=200)
    for r in (small, big):
        assert r["fvu"].ci_low <= r["fvu"].value <= r["fvu"].ci_high
    assert (big["fvu"].ci_high - big["fvu"].ci_low) < (small["fvu"].ci_high - small["fvu"].ci_low)
    # the true FVU of this noise model: 0.25·d / total variance (1 per dim + nothing else) = 0.25
    assert big["fvu"].ci_low < 0.25 < big["fvu"].ci_high


def test_shape_mismatch_is_refused():
    s = SAEStats(4)
    with pytest.raises(ValueError, match="shapes do not fit"):
        s.update(np.zeros((3, 2)), np.zeros((3, 2)), np.zeros((3, 5)))


def test_support_bits_known_answers():
    from latentatlas.analysis.sae_metrics import support_bits

    assert support_bits([0.5]) == pytest.approx(1.0)
    assert support_bits([0.0, 1.0]) == 0.0
    assert support_bits([0.5, 0.5, 0.25]) == pytest.approx(2 + (-(0.25 * np.log2(0.25) + 0.75 * np.log2(0.75))))
    x = _data(1000, 4)
    f = np.zeros((1000, 3))
    f[::2, 0] = 1
    r = _stats(x, x, f).result(num_resamples=0)
    assert r["rate_support_bits"].value == pytest.approx(1.0)
    assert r["rate_bits"].value == pytest.approx(1.0 + 16 * 0.5)
