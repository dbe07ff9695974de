"""Tests for latentatlas.analysis.disentanglement: known answers on codes whose structure we built.

Factors come from a small grid (sizes 3, 6, 10, 8). An aligned code is the factors plus tiny noise, a
mixed code rotates two (standardised) factors by 45 degrees, a random code is independent noise.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.stats
from sklearn.metrics import mutual_info_score, roc_auc_score

from latentatlas.analysis import disentanglement as dis
from latentatlas.analysis.disentanglement import predictors
from latentatlas.analysis.bootstrap import Estimate
from latentatlas.errors import LatentAtlasError

SIZES = (3, 6, 10, 8)
N = 1500
NTR = 1000
RESAMPLES = 30


def _factors(n=N, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, s, n) for s in SIZES], axis=1)


@pytest.fixture(scope="module")
def codes():
    rng = np.random.default_rng(1)
    f = _factors()
    aligned = f + 0.01 * rng.standard_normal(f.shape)
    std = (f - f.mean(0)) / f.std(0)
    mixed = std.copy()
    mixed[:, 2] = (std[:, 2] + std[:, 3]) / math.sqrt(2)
    mixed[:, 3] = (std[:, 2] - std[:, 3]) / math.sqrt(2)
    mixed += 0.01 * rng.standard_normal(f.shape)
    random = rng.standard_normal(f.shape)
    return {"factors": f, "aligned": aligned, "mixed": mixed, "random": random}


def _split(z, f):
    return z[:NTR], f[:NTR], z[NTR:], f[NTR:]


def _ci_ok(est: Estimate):
    assert est.ci_low is not None and est.ci_high is not None
    assert est.ci_low <= est.value <= est.ci_high, est
    return est.ci_low < est.ci_high


# -- building blocks match disentanglement_lib -----------------------------------------------------


def test_discretisation_and_mutual_info_match_disentanglement_lib(codes):
    z, f = codes["mixed"], codes["factors"]
    zd = dis.histogram_discretize(z, 20)
    for i in range(z.shape[1]):
        ref = np.digitize(z[:, i], np.histogram(z[:, i], 20)[1][:-1])
        np.testing.assert_array_equal(zd[:, i], ref)
    assert zd.min() >= 1 and zd.max() <= 20
    m = dis.discrete_mutual_info(zd, f)
    ref = np.array([[mutual_info_score(f[:, j], zd[:, i]) for j in range(f.shape[1])] for i in range(z.shape[1])])
    np.testing.assert_allclose(m, ref, atol=1e-12)
    h = dis.discrete_entropy(f)
    np.testing.assert_allclose(h, [mutual_info_score(f[:, j], f[:, j]) for j in range(f.shape[1])], atol=1e-12)


def test_dci_scores_of_an_importance_matrix_match_disentanglement_lib():
    rng = np.random.default_rng(0)
    r = rng.random((6, 4)) ** 3
    per_code = 1.0 - scipy.stats.entropy(r.T + 1e-11, base=4)
    per_factor = 1.0 - scipy.stats.entropy(r + 1e-11, base=6)
    d, _ = predictors._disentanglement(r)
    c, _ = predictors._completeness(r)
    assert d == pytest.approx(np.sum(per_code * r.sum(1) / r.sum()))
    assert c == pytest.approx(np.sum(per_factor * r.sum(0) / r.sum()))
    assert predictors._disentanglement(np.eye(4))[0] == pytest.approx(1.0)
    assert predictors._completeness(np.eye(4))[0] == pytest.approx(1.0)
    assert predictors._disentanglement(np.ones((4, 4)))[0] == pytest.approx(0.0, abs=1e-9)


def test_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    scores = np.round(rng.random((200, 3)), 1)
    labels = rng.integers(0, 3, 200)
    ref = np.mean([roc_auc_score(labels == k, scores[:, k]) for k in range(3)])
    assert predictors._macro_auc(scores, labels, np.arange(3)) == pytest.approx(ref)


# -- MIG -------------------------------------------------------------------------------------------


def test_mig_orders_aligned_mixed_random(codes):
    f = codes["factors"]
    aligned = dis.mig(codes["aligned"], f, rng=0, num_resamples=RESAMPLES)
    mixed = dis.mig(codes["mixed"], f, rng=0, num_resamples=RESAMPLES)
    random = dis.mig(codes["random"], f, rng=0, num_resamples=RESAMPLES)
    assert aligned.value > 0.9
    assert random.value < 0.1
    assert random.value + 0.2 < mixed.value < aligned.value - 0.2
    for est in (aligned, mixed, random):
        assert _ci_ok(est)
    assert est.n == N and len(aligned.details["per_factor"]) == len(SIZES)


def _mig_disentanglement_lib(z, f, num_bins=20):
    """disentanglement_lib's mig.py written out: _histogram_discretize, sklearn mutual_info_score per
    (code dim, factor) pair, entropies as mutual_info_score(f, f), mean normalised top-two gap."""
    zd = np.stack([np.digitize(z[:, i], np.histogram(z[:, i], num_bins)[1][:-1]) for i in range(z.shape[1])], 1)
    m = np.array([[mutual_info_score(f[:, j], zd[:, i]) for j in range(f.shape[1])] for i in range(z.shape[1])])
    h = np.array([mutual_info_score(f[:, j], f[:, j]) for j in range(f.shape[1])])
    top = np.sort(m, axis=0)[::-1]
    return float(np.mean((top[0] - top[1]) / h))


def test_mig_plugin_value_is_disentanglement_libs(codes):
    f = codes["factors"]
    for kind in ("aligned", "mixed", "random"):
        ref = _mig_disentanglement_lib(codes[kind], f)
        est = dis.mig(codes[kind], f, rng=0, num_resamples=RESAMPLES)
        assert abs(est.details["plugin_value"] - ref) < 1e-14
        plain = dis.mig(codes[kind], f, rng=0, num_resamples=RESAMPLES, bias_correction=None)
        assert abs(plain.value - ref) < 1e-14 and plain.details["ci_method"].startswith("median-centred")
        assert _ci_ok(plain)


def test_mig_bias_correction_moves_the_value_by_the_bootstrap_bias(codes):
    # The plug-in MI of the runner-up dims is biased upwards, so the plug-in gap of an aligned code is
    # too small; the correction adds back mean(resamples) - plug-in, and the interval is its reflection.
    f = codes["factors"]
    est = dis.mig(codes["aligned"], f, rng=0, num_resamples=RESAMPLES)
    d = est.details
    assert d["bias_correction"] == "bootstrap" and d["bias_estimate"] < 0
    assert est.value == pytest.approx(min(d["plugin_value"] - d["bias_estimate"], 1.0))
    assert est.value > d["plugin_value"]
    q_low, q_high = d["bootstrap_percentile_interval"]
    assert est.ci_low == pytest.approx(max(2 * d["plugin_value"] - q_high, 0.0))
    assert est.ci_high == pytest.approx(min(2 * d["plugin_value"] - q_low, 1.0))
    assert _ci_ok(est)
    np.testing.assert_allclose(np.mean(d["per_factor"]), d["plugin_value"] - d["bias_estimate"], atol=1e-12)
    # Without resamples there is nothing to correct with: the plug-in value, no interval.
    bare = dis.mig(codes["aligned"], f, num_resamples=0)
    assert bare.value == d["plugin_value"] and bare.ci_low is None
    with pytest.raises(LatentAtlasError, match="bias_correction"):
        dis.mig(codes["aligned"], f, bias_correction="miller_madow")


def test_mig_survives_a_constant_code_dim(codes):
    z = np.concatenate([codes["aligned"], np.zeros((N, 1))], axis=1)
    est = dis.mig(z, codes["factors"], rng=0, num_resamples=5)
    assert est.value > 0.9
    assert np.all(np.asarray(est.details["mutual_info"])[-1] == 0.0)


# -- modularity / explicitness ---------------------------------------------------------------------


def test_modularity_prefers_aligned_over_mixed(codes):
    f = codes["factors"]
    aligned = dis.modularity(codes["aligned"], f, rng=0, num_resamples=RESAMPLES)
    mixed = dis.modularity(codes["mixed"], f, rng=0, num_resamples=RESAMPLES)
    assert aligned.value > 0.9
    assert mixed.value < aligned.value - 0.05
    _ci_ok(mixed)


def test_explicitness_high_for_informative_codes_and_chance_for_noise(codes):
    f = codes["factors"]
    aligned = dis.explicitness(*_split(codes["aligned"], f), rng=0, num_resamples=RESAMPLES)
    random = dis.explicitness(*_split(codes["random"], f), rng=0, num_resamples=RESAMPLES)
    assert aligned.value > 0.9
    assert abs(random.value - 0.5) < 0.05
    assert _ci_ok(aligned) and _ci_ok(random)
    assert random.n == N - NTR


# -- DCI -------------------------------------------------------------------------------------------


def test_dci_orders_aligned_mixed_random(codes):
    f = codes["factors"]
    res = {k: dis.dci(*_split(codes[k], f), rng=0, num_resamples=RESAMPLES) for k in ("aligned", "mixed", "random")}
    assert set(res["aligned"]) == {
        "dci_disentanglement", "dci_completeness", "dci_informativeness_test", "dci_informativeness_train",
    }
    d = {k: v["dci_disentanglement"].value for k, v in res.items()}
    c = {k: v["dci_completeness"].value for k, v in res.items()}
    assert d["aligned"] > 0.9 and c["aligned"] > 0.9
    assert d["random"] < 0.2
    assert d["random"] + 0.2 < d["mixed"] < d["aligned"] - 0.1
    assert res["aligned"]["dci_informativeness_test"].value > 0.95
    assert res["random"]["dci_informativeness_test"].value < 0.35
    # Informativeness is resampled; disentanglement/completeness say why they have no interval.
    assert _ci_ok(res["random"]["dci_informativeness_test"])
    _ci_ok(res["mixed"]["dci_informativeness_test"])  # may be [1, 1]: every test row predicted right
    assert res["mixed"]["dci_disentanglement"].ci_low is None
    assert "num_refits" in res["mixed"]["dci_disentanglement"].details["ci"]
    r = np.asarray(res["aligned"]["dci_disentanglement"].details["importance_matrix"])
    assert r.shape == (4, 4) and np.all(np.argmax(r, axis=0) == np.arange(4))


def test_dci_refits_give_an_interval(codes):
    f = codes["factors"]
    z = codes["mixed"]
    out = dis.dci(z[:400], f[:400], z[400:600], f[400:600], rng=0, num_refits=4)
    assert _ci_ok(out["dci_disentanglement"]) and _ci_ok(out["dci_completeness"])


def test_dci_gbt_and_extra_trees_agree_on_clear_cases():
    # disentanglement_lib's exact model, on a problem small enough to be quick.
    rng = np.random.default_rng(3)
    f = np.stack([rng.integers(0, 3, 300), rng.integers(0, 4, 300)], axis=1)
    z = np.concatenate([f + 0.01 * rng.standard_normal(f.shape), rng.standard_normal((300, 1))], axis=1)
    gbt = dis.dci(z[:200], f[:200], z[200:], f[200:], model="gbt", rng=0, num_resamples=10)
    fast = dis.dci(z[:200], f[:200], z[200:], f[200:], model="extra_trees", rng=0, num_resamples=10)
    for out in (gbt, fast):
        assert out["dci_disentanglement"].value > 0.85
        assert out["dci_informativeness_test"].value > 0.95
    with pytest.raises(LatentAtlasError, match="model must be one of"):
        dis.dci(z[:200], f[:200], z[200:], f[200:], model="xgboost")


# -- SAP -------------------------------------------------------------------------------------------


def test_sap_continuous_orders_aligned_mixed_random(codes):
    f = codes["factors"]
    est = {k: dis.sap(*_split(codes[k], f), continuous_factors=True, rng=0, num_resamples=RESAMPLES)
           for k in ("aligned", "mixed", "random")}
    assert est["aligned"].value > 0.9
    assert est["random"].value < 0.1
    assert est["random"].value + 0.2 < est["mixed"].value < est["aligned"].value - 0.2
    assert all(_ci_ok(e) for e in est.values())
    # Continuous factors may be real-valued.
    u = f / np.asarray(SIZES, dtype=float)
    real = dis.sap(*_split(codes["aligned"], u), continuous_factors=True, rng=0, num_resamples=5)
    assert real.value == pytest.approx(est["aligned"].value)


def test_sap_discrete_orders_aligned_mixed_random(codes):
    # With discrete factors each cell is a 1-D linear classifier, which cannot single out the middle
    # values of a many-valued factor; so even a perfect code stays far below 1 (see docs/metrics.md).
    f = codes["factors"]
    est = {k: dis.sap(*_split(codes[k], f), rng=0, num_resamples=RESAMPLES) for k in ("aligned", "mixed", "random")}
    assert est["random"].value < 0.1
    assert est["random"].value + 0.05 < est["mixed"].value < est["aligned"].value - 0.05
    assert est["aligned"].value > 0.3
    assert all(_ci_ok(e) for e in est.values())
    s = np.asarray(est["aligned"].details["score_matrix"])
    assert s.shape == (4, 4) and np.all(np.argmax(s, axis=0) == np.arange(4))


# -- BetaVAE / FactorVAE ---------------------------------------------------------------------------


class NoisyFactors:
    """Ground truth whose observations are the factors themselves plus a little noise."""

    factor_sizes = SIZES

    def __init__(self):
        self.calls = 0

    def sample_factors(self, n, rng):
        return np.stack([rng.integers(0, s, n) for s in self.factor_sizes], axis=1)

    def sample_observations_from_factors(self, factors, rng):
        self.calls += 1
        return factors + 0.05 * rng.standard_normal(factors.shape)


def _rotation(seed=0, d=4):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q


def test_factor_vae_score_aligned_near_one_random_near_chance():
    gt = NoisyFactors()
    kw = dict(batch_size=32, num_train=300, num_eval=200, num_variance_estimate=1000)
    aligned = dis.factor_vae_score(gt, lambda x: x, np.random.default_rng(0), **kw)
    assert aligned.value > 0.9
    _ci_ok_or_degenerate(aligned)
    # Sampling is vectorised: a handful of render calls, not one per batch.
    assert gt.calls <= 8  # one call per 4096 observations, not one per batch (~500 batches)
    noise_rng = np.random.default_rng(9)
    random = dis.factor_vae_score(gt, lambda x: noise_rng.standard_normal(x.shape), np.random.default_rng(0), **kw)
    assert abs(random.value - 0.25) < 0.12
    assert _ci_ok(random)
    rotated = dis.factor_vae_score(gt, lambda x: x @ _rotation(), np.random.default_rng(0), **kw)
    assert rotated.value < aligned.value


def _ci_ok_or_degenerate(est):
    assert est.ci_low <= est.value <= est.ci_high


def test_factor_vae_prunes_a_constant_dim():
    gt = NoisyFactors()
    est = dis.factor_vae_score(
        gt, lambda x: np.concatenate([x, np.zeros((x.shape[0], 1))], axis=1), np.random.default_rng(0),
        batch_size=32, num_train=200, num_eval=100, num_variance_estimate=500,
    )
    assert est.details["num_active_dims"] == 4
    assert list(est.details["active_dims"]) == [True, True, True, True, False]
    assert est.value > 0.9
    everything_pruned = dis.factor_vae_score(
        gt, lambda x: np.zeros_like(x), np.random.default_rng(0),
        batch_size=8, num_train=10, num_eval=10, num_variance_estimate=20,
    )
    assert everything_pruned.value == 0.0 and everything_pruned.ci_low is None


def test_beta_vae_score_aligned_near_one_random_near_chance():
    gt = NoisyFactors()
    kw = dict(batch_size=32, num_train=300, num_eval=200)
    aligned = dis.beta_vae_score(gt, lambda x: x, np.random.default_rng(0), **kw)
    assert aligned.value > 0.9
    assert gt.calls <= 12
    noise_rng = np.random.default_rng(9)
    random = dis.beta_vae_score(gt, lambda x: noise_rng.standard_normal(x.shape), np.random.default_rng(0), **kw)
    assert abs(random.value - 0.25) < 0.12
    assert _ci_ok(random)


# -- the convenience wrapper -----------------------------------------------------------------------


def test_all_disentanglement_metrics(codes):
    gt = NoisyFactors()
    out = dis.all_disentanglement_metrics(
        codes["aligned"], codes["factors"], np.random.default_rng(0), num_resamples=10,
        ground_truth=gt, representation_fn=lambda x: x,
        beta_vae_kwargs=dict(batch_size=16, num_train=100, num_eval=100),
        factor_vae_kwargs=dict(batch_size=16, num_train=100, num_eval=100, num_variance_estimate=300),
    )
    assert set(out) == {
        "mig", "modularity", "dci_disentanglement", "dci_completeness", "dci_informativeness_test",
        "dci_informativeness_train", "sap", "explicitness", "beta_vae", "factor_vae",
    }
    for key, est in out.items():
        assert est.name == key
        json.dumps(est.to_dict())
    assert out["sap"].details["split"]["num_train"] == NTR
    assert out["mig"].n == N
    without = dis.all_disentanglement_metrics(codes["aligned"][:300], codes["factors"][:300], 0, num_resamples=5)
    assert "beta_vae" not in without and "factor_vae" not in without


# -- bad input -------------------------------------------------------------------------------------


def test_mismatched_rows_raise_a_clear_error(codes):
    z, f = codes["aligned"], codes["factors"]
    for call in (
        lambda: dis.mig(z, f[:-1]),
        lambda: dis.modularity(z[:-5], f),
        lambda: dis.dci(z[:100], f[:99], z[100:200], f[100:200]),
        lambda: dis.sap(z[:100], f[:100], z[100:200], f[100:199]),
        lambda: dis.explicitness(z[:100], f[:100], z[100:200], f[100:201]),
        lambda: dis.all_disentanglement_metrics(z, f[:10]),
    ):
        with pytest.raises(LatentAtlasError, match=r"has \d+ rows but .* has \d+"):
            call()


def test_other_bad_input_raises_a_clear_error(codes):
    z, f = codes["aligned"], codes["factors"]
    with pytest.raises(LatentAtlasError, match="train and test"):
        dis.sap(z[:100], f[:100], z[100:200, :3], f[100:200])
    with pytest.raises(LatentAtlasError, match="integer factor indices"):
        dis.mig(z, f + 0.5)
    with pytest.raises(LatentAtlasError, match="NaN"):
        dis.mig(np.where(z > 5, np.nan, z), f)
    with pytest.raises(LatentAtlasError, match="single value"):
        dis.mig(z, np.concatenate([f, np.zeros((N, 1), int)], axis=1))
    with pytest.raises(LatentAtlasError, match="at least 2"):
        dis.mig(z[:, :1], f)
    with pytest.raises(LatentAtlasError, match="go together"):
        dis.all_disentanglement_metrics(z, f, ground_truth=NoisyFactors())
    with pytest.raises(LatentAtlasError, match="factor_sizes"):
        dis.factor_vae_score(object(), lambda x: x, 0, num_train=5, num_eval=5)
