"""Supervised disentanglement metrics, following google-research/disentanglement_lib.

The definitions, discretisation and defaults are those of disentanglement_lib's
`evaluation/metrics/*.py` as used by Locatello et al. (2019), "Challenging Common Assumptions in the
Unsupervised Learning of Disentangled Representations". Codes are (N, D) float arrays (use posterior
means); factors are (N, K) integer arrays of factor indices. Every metric returns `Estimate`s with a
95% bootstrap interval; what each interval covers, and every deviation from disentanglement_lib, is
written down in docs/metrics.md.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable

import numpy as np

from latentatlas.analysis.bootstrap import (
    Estimate,
    _as_factor_matrix,
    _as_float_matrix,
    _check_same_cols,
    _check_same_rows,
    _centred_interval,
    _interval,
    _rng,
)
from latentatlas.errors import LatentAtlasError

__all__ = [
    "histogram_discretize",
    "discrete_mutual_info",
    "discrete_entropy",
    "mig",
    "modularity",
    "dci",
    "sap",
    "explicitness",
    "beta_vae_score",
    "factor_vae_score",
    "all_disentanglement_metrics",
    "DCI_MODELS",
]

# Representation functions are called on at most this many observations at a time.
DEFAULT_CHUNK_SIZE = 4096


# --- input checks ---------------------------------------------------------------------------------


def _codes_factors(codes, factors, codes_name="codes", factors_name="factors", continuous=False):
    z = _as_float_matrix(codes, codes_name)
    y = _as_float_matrix(factors, factors_name) if continuous else _as_factor_matrix(factors, factors_name)
    _check_same_rows(z, codes_name, y, factors_name)
    return z, y


def _train_test(codes_train, factors_train, codes_test, factors_test, continuous=False):
    z_tr, y_tr = _codes_factors(codes_train, factors_train, "codes_train", "factors_train", continuous)
    z_te, y_te = _codes_factors(codes_test, factors_test, "codes_test", "factors_test", continuous)
    _check_same_cols(z_tr, "codes_train", z_te, "codes_test")
    _check_same_cols(y_tr, "factors_train", y_te, "factors_test")
    return z_tr, y_tr, z_te, y_te


def _require_varying_factors(y: np.ndarray, name: str) -> None:
    for k in range(y.shape[1]):
        if np.all(y[:, k] == y[0, k]):
            raise LatentAtlasError(
                f"{name} column {k} takes a single value in these samples; a factor that does not vary "
                "carries no information to measure, so drop it or use more samples."
            )


def _require_dims(z: np.ndarray, name: str, metric: str, at_least: int = 2) -> None:
    if z.shape[1] < at_least:
        raise LatentAtlasError(
            f"{metric} compares code dims with each other, so {name} needs at least {at_least} "
            f"columns, got {z.shape[1]}."
        )


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))


# --- discretisation and mutual information (disentanglement_lib utils.py) ------------------------


def histogram_discretize(codes, num_bins: int = 20) -> np.ndarray:
    """Bin each code dim into `num_bins` equal-width bins over its own range.

    Same as disentanglement_lib `utils._histogram_discretize`: `np.digitize(x, np.histogram(x, num_bins)[1][:-1])`,
    so bin labels run from 1 to num_bins.
    """
    z = _as_float_matrix(codes, "codes")
    if num_bins < 1:
        raise LatentAtlasError(f"num_bins must be at least 1, got {num_bins}.")
    return _discretize(z, num_bins)


def _discretize(z: np.ndarray, num_bins: int) -> np.ndarray:
    out = np.empty(z.shape, dtype=np.int64)
    for i in range(z.shape[1]):
        edges = np.histogram_bin_edges(z[:, i], bins=num_bins)
        out[:, i] = np.digitize(z[:, i], edges[:-1])
    return out


def _dense_labels(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each column relabelled 0..c-1, plus the number of labels per column."""
    out = np.empty(y.shape, dtype=np.int64)
    sizes = np.empty(y.shape[1], dtype=np.int64)
    for j in range(y.shape[1]):
        _, inv = np.unique(y[:, j], return_inverse=True)
        out[:, j] = inv.reshape(-1)
        sizes[j] = inv.max() + 1
    return out, sizes


def _mi_from_labels(a: np.ndarray, na: int, b: np.ndarray, nb: int) -> float:
    """Plug-in mutual information in nats between two label vectors (= sklearn mutual_info_score)."""
    n = a.shape[0]
    joint = np.bincount(a * nb + b, minlength=na * nb).reshape(na, nb).astype(np.float64)
    rows, cols = np.nonzero(joint)
    pij = joint[rows, cols]
    pa = joint.sum(axis=1)
    pb = joint.sum(axis=0)
    if np.count_nonzero(pa) <= 1 or np.count_nonzero(pb) <= 1:
        return 0.0  # a constant variable shares no information (exactly, not up to rounding)
    mi = np.sum(pij / n * (np.log(pij) + math.log(n) - np.log(pa[rows]) - np.log(pb[cols])))
    return max(float(mi), 0.0)


def _mi_matrix(zd: np.ndarray, yd: np.ndarray, y_sizes: np.ndarray, num_bins: int) -> np.ndarray:
    m = np.zeros((zd.shape[1], yd.shape[1]))
    for i in range(zd.shape[1]):
        for j in range(yd.shape[1]):
            m[i, j] = _mi_from_labels(zd[:, i], num_bins + 1, yd[:, j], int(y_sizes[j]))
    return m


def _entropies(yd: np.ndarray, y_sizes: np.ndarray) -> np.ndarray:
    h = np.zeros(yd.shape[1])
    for j in range(yd.shape[1]):
        p = np.bincount(yd[:, j], minlength=int(y_sizes[j])).astype(np.float64) / yd.shape[0]
        p = p[p > 0]
        h[j] = -np.sum(p * np.log(p))
    return h


def discrete_mutual_info(codes_discrete, factors) -> np.ndarray:
    """(D, K) mutual information in nats between each discretised code dim and each factor."""
    zd = _as_factor_matrix(codes_discrete, "codes_discrete")
    y = _as_factor_matrix(factors)
    _check_same_rows(zd, "codes_discrete", y, "factors")
    zdd, z_sizes = _dense_labels(zd)
    yd, y_sizes = _dense_labels(y)
    m = np.zeros((zd.shape[1], y.shape[1]))
    for i in range(zd.shape[1]):
        for j in range(y.shape[1]):
            m[i, j] = _mi_from_labels(zdd[:, i], int(z_sizes[i]), yd[:, j], int(y_sizes[j]))
    return m


def discrete_entropy(factors) -> np.ndarray:
    """(K,) plug-in entropy in nats of each factor."""
    yd, y_sizes = _dense_labels(_as_factor_matrix(factors))
    return _entropies(yd, y_sizes)


# --- MIG (mig.py) ---------------------------------------------------------------------------------


def _mig_from(z: np.ndarray, yd: np.ndarray, y_sizes: np.ndarray, num_bins: int):
    m = _mi_matrix(_discretize(z, num_bins), yd, y_sizes, num_bins)
    h = _entropies(yd, y_sizes)
    top = np.sort(m, axis=0)[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        per_factor = (top[0] - top[1]) / h
    return per_factor, m, h


def mig(
    codes,
    factors,
    num_bins: int = 20,
    *,
    rng: np.random.Generator | int | None = None,
    num_resamples: int = 100,
) -> Estimate:
    """Mutual Information Gap (Chen et al. 2018), as disentanglement_lib `mig.py`.

    For each factor, the gap between the largest and second-largest mutual information with a
    (histogram-discretised) code dim, divided by the factor's entropy; averaged over factors.
    CI: rows resampled with replacement and everything (discretisation included) recomputed.
    """
    z, y = _codes_factors(codes, factors)
    _require_dims(z, "codes", "MIG")
    _require_varying_factors(y, "factors")
    yd, y_sizes = _dense_labels(y)
    per_factor, m, h = _mig_from(z, yd, y_sizes, num_bins)

    def stat(idx):
        pf = _mig_from(z[idx], yd[idx], y_sizes, num_bins)[0]
        return float(np.mean(pf))

    value = float(np.mean(per_factor))
    low, high, ci_info = _centred_interval(stat, value, z.shape[0], _rng(rng), num_resamples, (0.0, 1.0))
    return Estimate(
        name="mig",
        value=value,
        ci_low=low,
        ci_high=high,
        n=z.shape[0],
        details={
            "per_factor": per_factor,
            "mutual_info": m,
            "factor_entropy": h,
            "num_bins": int(num_bins),
            "ci": "rows resampled, metric recomputed",
            **ci_info,
        },
    )


# --- Modularity and explicitness (modularity_explicitness.py) --------------------------------------


def _modularity_from_mi(m: np.ndarray) -> tuple[float, np.ndarray]:
    sq = np.square(m)
    mx = sq.max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = (sq.sum(axis=1) - mx) / (mx * (sq.shape[1] - 1.0))
    per_code = 1.0 - delta
    # A code dim that shares no information with any factor scores 0, as in disentanglement_lib.
    per_code[mx == 0.0] = 0.0
    return float(np.mean(per_code)), per_code


def modularity(
    codes,
    factors,
    num_bins: int = 20,
    *,
    rng: np.random.Generator | int | None = None,
    num_resamples: int = 100,
) -> Estimate:
    """Modularity (Ridgeway & Mozer 2018), as disentanglement_lib `modularity_explicitness.py`.

    Each code dim should carry information about at most one factor: per code dim,
    1 - (sum_k m_k^2 - max_k m_k^2) / ((K - 1) max_k m_k^2) with m the discretised mutual information;
    averaged over code dims. CI: rows resampled, metric recomputed.
    """
    z, y = _codes_factors(codes, factors)
    if y.shape[1] < 2:
        raise LatentAtlasError("modularity needs at least two factors, got 1.")
    _require_varying_factors(y, "factors")
    yd, y_sizes = _dense_labels(y)

    def compute(z_, yd_):
        return _modularity_from_mi(_mi_matrix(_discretize(z_, num_bins), yd_, y_sizes, num_bins))

    value, per_code = compute(z, yd)
    low, high, ci_info = _centred_interval(
        lambda idx: compute(z[idx], yd[idx])[0], value, z.shape[0], _rng(rng), num_resamples, (0.0, 1.0)
    )
    return Estimate(
        name="modularity",
        value=value,
        ci_low=low,
        ci_high=high,
        n=z.shape[0],
        details={
            "per_code": per_code,
            "num_bins": int(num_bins),
            "ci": "rows resampled, metric recomputed",
            **ci_info,
        },
    )


def _standardise(z_train: np.ndarray, z_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = z_train.mean(axis=0)
    std = z_train.std(axis=0)
    std[std == 0.0] = 1.0  # a constant dim stays constant instead of becoming NaN
    return (z_train - mean) / std, (z_test - mean) / std


def _ovr_logistic(seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    # disentanglement_lib calls LogisticRegression() with the scikit-learn defaults of its time
    # (0.20): liblinear, one-vs-rest, C=1. Newer defaults are multinomial lbfgs; we keep the old model.
    return OneVsRestClassifier(LogisticRegression(solver="liblinear", C=1.0, random_state=seed))


class _MacroAUC:
    """Macro one-vs-rest ROC-AUC of fixed class scores, for any row weights (bootstrap counts).

    Equal to sklearn's roc_auc_score per class column (ties count one half) when every weight is 1.
    Scores are sorted once; each evaluation is a few bincounts, so resampling rows stays cheap.
    Classes with no positive or no negative row (after weighting) are left out of the mean.
    """

    def __init__(self, scores: np.ndarray, labels: np.ndarray, classes: np.ndarray):
        n, c = scores.shape
        self.order = np.argsort(scores, axis=0, kind="stable")
        ranked = np.take_along_axis(scores, self.order, axis=0)
        starts = np.vstack([np.ones((1, c), dtype=bool), np.diff(ranked, axis=0) != 0])
        local = np.cumsum(starts, axis=0) - 1  # tie-group index within each column
        groups = local[-1] + 1
        offsets = np.cumsum(groups) - groups
        # Flattened column by column, tie groups of all columns get one increasing global index.
        self.group = (local + offsets).T.ravel()
        self.group_col = np.repeat(np.arange(c), groups)
        self.group_start = offsets
        self.num_groups = int(groups.sum())
        positive = labels[:, None] == np.asarray(classes)[None, :]
        self.pos = np.take_along_axis(positive, self.order, axis=0).T.ravel().astype(np.float64)
        self.num_cols = c

    def __call__(self, weights: np.ndarray) -> float:
        w = weights[self.order].T.ravel()
        wp = w * self.pos
        gp = np.bincount(self.group, wp, minlength=self.num_groups)
        gn = np.bincount(self.group, w - wp, minlength=self.num_groups)
        cum = np.cumsum(gn)
        col_base = np.where(self.group_start > 0, cum[self.group_start - 1], 0.0)
        neg_below = cum - gn - col_base[self.group_col]
        num = np.bincount(self.group_col, gp * (neg_below + 0.5 * gn), minlength=self.num_cols)
        n_pos = np.bincount(self.group_col, gp, minlength=self.num_cols)
        n_neg = np.bincount(self.group_col, gn, minlength=self.num_cols)
        ok = (n_pos > 0) & (n_neg > 0)
        return float(np.mean(num[ok] / (n_pos[ok] * n_neg[ok]))) if ok.any() else float("nan")


def _macro_auc(scores: np.ndarray, labels: np.ndarray, classes: np.ndarray) -> float:
    return _MacroAUC(scores, labels, classes)(np.ones(scores.shape[0]))


def explicitness(
    codes_train,
    factors_train,
    codes_test,
    factors_test,
    *,
    rng: np.random.Generator | int | None = None,
    num_resamples: int = 100,
) -> Estimate:
    """Explicitness (Ridgeway & Mozer 2018), as disentanglement_lib `modularity_explicitness.py`.

    Per factor, a one-vs-rest logistic regression on all (standardised) code dims; the score is the
    macro one-vs-rest ROC-AUC of its class probabilities on the test rows, averaged over factors.
    CI: test rows resampled with the fitted classifiers fixed (covers evaluation sampling, not refitting).
    """
    z_tr, y_tr, z_te, y_te = _train_test(codes_train, factors_train, codes_test, factors_test)
    _require_varying_factors(y_tr, "factors_train")
    gen = _rng(rng)
    x_tr, x_te = _standardise(z_tr, z_te)
    auc_te, train_auc, test_auc = [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(y_tr.shape[1]):
            clf = _ovr_logistic(_seed(gen)).fit(x_tr, y_tr[:, k])
            auc_te.append(_MacroAUC(clf.predict_proba(x_te), y_te[:, k], clf.classes_))
            train_auc.append(_macro_auc(clf.predict_proba(x_tr), y_tr[:, k], clf.classes_))
            test_auc.append(auc_te[-1](np.ones(x_te.shape[0])))

    def stat(idx):
        counts = np.bincount(idx, minlength=x_te.shape[0]).astype(np.float64)
        return float(np.mean([auc(counts) for auc in auc_te]))

    low, high = _interval(stat, z_te.shape[0], gen, num_resamples)
    return Estimate(
        name="explicitness",
        value=float(np.mean(test_auc)),
        ci_low=low,
        ci_high=high,
        n=z_te.shape[0],
        details={
            "per_factor": test_auc,
            "train": float(np.mean(train_auc)),
            "train_per_factor": train_auc,
            "num_train": int(z_tr.shape[0]),
            "ci": "test rows resampled, classifiers fixed (evaluation sampling only, not refitting)",
        },
    )


# --- DCI (dci.py) ---------------------------------------------------------------------------------


def _gbt(seed: int):
    from sklearn.ensemble import GradientBoostingClassifier

    return GradientBoostingClassifier(random_state=seed)


def _extra_trees(seed: int):
    from sklearn.ensemble import ExtraTreesClassifier

    # Chosen to reproduce GradientBoostingClassifier's importance matrices at a small fraction of its
    # cost: every split considers every code dim (so importance is not spread onto dims by chance), and
    # the depth cap limits how much importance fitting noise can hand to uninformative dims.
    # docs/metrics.md records how close it stays.
    return ExtraTreesClassifier(
        n_estimators=100, max_features=None, max_depth=10, n_jobs=-1, random_state=seed
    )


# The predictor behind the DCI importance matrix, by name. "gbt" is disentanglement_lib's choice.
DCI_MODELS: dict[str, Callable[[int], object]] = {"gbt": _gbt, "extra_trees": _extra_trees}
DEFAULT_DCI_MODEL = "extra_trees"


def _entropy_base(p: np.ndarray, base: int, axis: int) -> np.ndarray:
    # scipy.stats.entropy(p + 1e-11, base=base) along `axis`, with p normalised along that axis.
    q = p + 1e-11
    q = q / q.sum(axis=axis, keepdims=True)
    return -np.sum(q * np.log(q), axis=axis) / math.log(base)


def _disentanglement(r: np.ndarray) -> tuple[float, np.ndarray]:
    per_code = 1.0 - _entropy_base(r, r.shape[1], axis=1) if r.shape[1] > 1 else np.ones(r.shape[0])
    w = r if r.sum() > 0 else np.ones_like(r)
    return float(np.sum(per_code * w.sum(axis=1) / w.sum())), per_code


def _completeness(r: np.ndarray) -> tuple[float, np.ndarray]:
    per_factor = 1.0 - _entropy_base(r, r.shape[0], axis=0) if r.shape[0] > 1 else np.ones(r.shape[1])
    w = r if r.sum() > 0 else np.ones_like(r)
    return float(np.sum(per_factor * w.sum(axis=0) / w.sum())), per_factor


def _centred(value: float, refits: list[float]) -> tuple[float | None, float | None]:
    if not refits:
        return (None, None)
    q_low, med, q_high = np.quantile(refits, [0.025, 0.5, 0.975])
    return (float(max(value - (med - q_low), 0.0)), float(min(value + (q_high - med), 1.0)))


def _fit_importance(z_tr, y_tr, z_te, y_te, model: str, seed_rng: np.random.Generator):
    make = DCI_MODELS[model]
    r = np.zeros((z_tr.shape[1], y_tr.shape[1]))
    correct_tr = np.zeros(y_tr.shape, dtype=bool)
    correct_te = None if y_te is None else np.zeros(y_te.shape, dtype=bool)
    for k in range(y_tr.shape[1]):
        clf = make(_seed(seed_rng))
        clf.fit(z_tr, y_tr[:, k])
        r[:, k] = np.abs(clf.feature_importances_)
        if z_te is not None:
            correct_tr[:, k] = clf.predict(z_tr) == y_tr[:, k]
            correct_te[:, k] = clf.predict(z_te) == y_te[:, k]
    return r, correct_tr, correct_te


def dci(
    codes_train,
    factors_train,
    codes_test,
    factors_test,
    *,
    model: str = DEFAULT_DCI_MODEL,
    rng: np.random.Generator | int | None = None,
    num_resamples: int = 100,
    num_refits: int = 0,
) -> dict[str, Estimate]:
    """Disentanglement, completeness and informativeness (Eastwood & Williams 2018), as disentanglement_lib `dci.py`.

    One tree-ensemble classifier per factor gives a (D, K) importance matrix R. Disentanglement is
    sum_d rho_d (1 - H_K(R[d, :])) with rho_d the share of total importance of code d; completeness is
    the same with the roles of codes and factors swapped; informativeness is the mean accuracy of the
    classifiers on train and test rows.

    `model="gbt"` is disentanglement_lib's GradientBoostingClassifier with default settings (slow: 100
    boosting stages of one tree per class, minutes for factors with 30-40 values). `model="extra_trees"`
    (default) is a depth-limited ExtraTreesClassifier whose impurity importances are read the same
    way; docs/metrics.md records how close its scores stay to "gbt" and why.

    CIs: informativeness resamples the evaluation rows with the classifiers fixed. Disentanglement and
    completeness have no interval unless `num_refits > 0`, in which case the classifiers are refitted
    on that many bootstrap resamples of the training rows and the median-centred 2.5/97.5 percentiles
    of the refits are reported (a coarse interval; it does cover retraining).

    Returns {"dci_disentanglement", "dci_completeness", "dci_informativeness_test",
    "dci_informativeness_train"}.
    """
    if model not in DCI_MODELS:
        raise LatentAtlasError(f"model must be one of {sorted(DCI_MODELS)}, got {model!r}.")
    if num_refits < 0:
        raise LatentAtlasError(f"num_refits must be 0 or more, got {num_refits}.")
    z_tr, y_tr, z_te, y_te = _train_test(codes_train, factors_train, codes_test, factors_test)
    _require_varying_factors(y_tr, "factors_train")
    gen = _rng(rng)
    r, correct_tr, correct_te = _fit_importance(z_tr, y_tr, z_te, y_te, model, gen)
    d_value, d_per_code = _disentanglement(r)
    c_value, c_per_factor = _completeness(r)

    if num_refits > 0:
        d_refit, c_refit = [], []
        n_tr = z_tr.shape[0]
        for _ in range(num_refits):
            idx = gen.integers(0, n_tr, size=n_tr)
            if any(np.all(y_tr[idx, k] == y_tr[idx[0], k]) for k in range(y_tr.shape[1])):
                continue
            r_b = _fit_importance(z_tr[idx], y_tr[idx], None, None, model, gen)[0]
            d_refit.append(_disentanglement(r_b)[0])
            c_refit.append(_completeness(r_b)[0])
        d_ci = _centred(d_value, d_refit)
        c_ci = _centred(c_value, c_refit)
        dc_note = (
            f"median-centred percentiles of {len(d_refit)} refits on bootstrap resamples of the training rows"
        )
    else:
        d_ci = c_ci = (None, None)
        dc_note = (
            "not computed: it needs refitting every classifier per resample; "
            "pass num_refits > 0 to get a coarse refit interval"
        )

    common = {"model": model, "num_train": int(z_tr.shape[0]), "num_test": int(z_te.shape[0])}
    te_low, te_high = _interval(
        lambda idx: float(correct_te[idx].mean()), z_te.shape[0], gen, num_resamples
    )
    tr_low, tr_high = _interval(
        lambda idx: float(correct_tr[idx].mean()), z_tr.shape[0], gen, num_resamples
    )
    fixed = "rows resampled, classifiers fixed (evaluation sampling only, not refitting)"
    return {
        "dci_disentanglement": Estimate(
            "dci_disentanglement", d_value, d_ci[0], d_ci[1], int(z_tr.shape[0]),
            {**common, "per_code": d_per_code, "importance_matrix": r, "ci": dc_note},
        ),
        "dci_completeness": Estimate(
            "dci_completeness", c_value, c_ci[0], c_ci[1], int(z_tr.shape[0]),
            {**common, "per_factor": c_per_factor, "ci": dc_note},
        ),
        "dci_informativeness_test": Estimate(
            "dci_informativeness_test", float(correct_te.mean()), te_low, te_high, int(z_te.shape[0]),
            {**common, "per_factor": correct_te.mean(axis=0), "ci": fixed},
        ),
        "dci_informativeness_train": Estimate(
            "dci_informativeness_train", float(correct_tr.mean()), tr_low, tr_high, int(z_tr.shape[0]),
            {**common, "per_factor": correct_tr.mean(axis=0), "ci": fixed},
        ),
    }


# --- SAP (sap_score.py) ---------------------------------------------------------------------------


def _top_two_gap(s: np.ndarray) -> tuple[float, np.ndarray]:
    top = np.sort(s, axis=0)
    gap = top[-1] - top[-2]
    return float(np.mean(gap)), gap


def _squared_correlation(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    zc = z - z.mean(axis=0)
    yc = y - y.mean(axis=0)
    n = z.shape[0]
    cov = zc.T @ yc / (n - 1)
    var_z = np.sum(zc**2, axis=0) / (n - 1)
    var_y = np.sum(yc**2, axis=0) / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = cov**2 / (var_z[:, None] * var_y[None, :])
    s[var_z <= 1e-12, :] = 0.0
    return np.nan_to_num(s, nan=0.0)


def sap(
    codes_train,
    factors_train,
    codes_test,
    factors_test,
    continuous_factors: bool = False,
    *,
    rng: np.random.Generator | int | None = None,
    num_resamples: int = 100,
) -> Estimate:
    """Separated Attribute Predictability (Kumar et al. 2018), as disentanglement_lib `sap_score.py`.

    Score matrix S[d, k]: for discrete factors the test accuracy of a LinearSVC(C=0.01,
    class_weight="balanced") predicting factor k from code dim d alone; for continuous factors the
    squared correlation of d and k on the training rows (factors may then be floats). SAP is the mean
    over factors of the gap
    between the two largest entries of S[:, k].
    CI (discrete): test rows resampled with the classifiers fixed. CI (continuous): training rows
    resampled and correlations recomputed.
    """
    z_tr, y_tr, z_te, y_te = _train_test(
        codes_train, factors_train, codes_test, factors_test, continuous=continuous_factors
    )
    _require_dims(z_tr, "codes_train", "SAP")
    _require_varying_factors(y_tr, "factors_train")
    gen = _rng(rng)
    num_codes, num_factors = z_tr.shape[1], y_tr.shape[1]
    if continuous_factors:
        s = _squared_correlation(z_tr, y_tr)
        stat = lambda idx: _top_two_gap(_squared_correlation(z_tr[idx], y_tr[idx]))[0]  # noqa: E731
        n, note = z_tr.shape[0], "training rows resampled, correlations recomputed"
    else:
        from sklearn.svm import LinearSVC

        correct = np.zeros((num_codes, num_factors, z_te.shape[0]), dtype=bool)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i in range(num_codes):
                for k in range(num_factors):
                    # dual=False: the same objective as disentanglement_lib's default dual solver,
                    # solved in the primal, which converges reliably on a single feature.
                    clf = LinearSVC(C=0.01, class_weight="balanced", dual=False)
                    clf.fit(z_tr[:, i : i + 1], y_tr[:, k])
                    correct[i, k] = clf.predict(z_te[:, i : i + 1]) == y_te[:, k]
        s = correct.mean(axis=2)
        stat = lambda idx: _top_two_gap(correct[:, :, idx].mean(axis=2))[0]  # noqa: E731
        n, note = z_te.shape[0], "test rows resampled, classifiers fixed (evaluation sampling only, not refitting)"
    value, per_factor = _top_two_gap(s)
    low, high, ci_info = _centred_interval(stat, value, n, gen, num_resamples, (0.0, 1.0))
    return Estimate(
        name="sap",
        value=value,
        ci_low=low,
        ci_high=high,
        n=int(n),
        details={
            "per_factor": per_factor,
            "score_matrix": s,
            "continuous_factors": bool(continuous_factors),
            "ci": note,
            **ci_info,
        },
    )


# --- BetaVAE and FactorVAE scores (beta_vae.py, factor_vae.py) --------------------------------------


def _num_factors(ground_truth) -> int:
    try:
        sizes = list(ground_truth.factor_sizes)
    except (AttributeError, TypeError) as exc:
        raise LatentAtlasError(
            "ground_truth must have .factor_sizes, .sample_factors(n, rng) and "
            ".sample_observations_from_factors(factors, rng)."
        ) from exc
    if len(sizes) < 1:
        raise LatentAtlasError("ground_truth.factor_sizes is empty; there are no factors to score.")
    return len(sizes)


def _encode_factors(ground_truth, representation_fn, factors: np.ndarray, rng, chunk_size: int) -> np.ndarray:
    """Render `factors` to observations and encode them, `chunk_size` rows per call."""
    parts = []
    for start in range(0, factors.shape[0], chunk_size):
        obs = ground_truth.sample_observations_from_factors(factors[start : start + chunk_size], rng)
        codes = np.asarray(representation_fn(obs), dtype=np.float64)
        if codes.ndim != 2 or codes.shape[0] != min(chunk_size, factors.shape[0] - start):
            raise LatentAtlasError(
                f"representation_fn must return a (n, D) array for n observations; got shape {codes.shape} "
                f"for {min(chunk_size, factors.shape[0] - start)} observations."
            )
        parts.append(codes)
    out = np.concatenate(parts, axis=0)
    if not np.all(np.isfinite(out)):
        raise LatentAtlasError("representation_fn returned NaN or infinite codes.")
    return out


def _sample_factors(ground_truth, n: int, num_factors: int, rng) -> np.ndarray:
    f = np.array(ground_truth.sample_factors(n, rng), copy=True)
    if f.shape != (n, num_factors):
        raise LatentAtlasError(
            f"ground_truth.sample_factors({n}, rng) must return shape ({n}, {num_factors}), got {f.shape}."
        )
    return f


def _check_budget(batch_size: int, num_train: int, num_eval: int) -> None:
    if batch_size < 2:
        raise LatentAtlasError(f"batch_size must be at least 2, got {batch_size}.")
    if num_train < 1 or num_eval < 1:
        raise LatentAtlasError(f"num_train and num_eval must be positive, got {num_train} and {num_eval}.")


def _beta_vae_points(ground_truth, representation_fn, rng, batch_size, num_points, num_factors, chunk_size):
    # For every point: a factor to hold fixed, two batches that share it, and the mean absolute code
    # difference over the batch as the feature vector. All batches are drawn and encoded together.
    labels = rng.integers(0, num_factors, size=num_points)
    total = num_points * batch_size
    f1 = _sample_factors(ground_truth, total, num_factors, rng)
    f2 = _sample_factors(ground_truth, total, num_factors, rng)
    rows = np.arange(total)
    fixed = np.repeat(labels, batch_size)
    f2[rows, fixed] = f1[rows, fixed]
    z1 = _encode_factors(ground_truth, representation_fn, f1, rng, chunk_size)
    z2 = _encode_factors(ground_truth, representation_fn, f2, rng, chunk_size)
    features = np.abs(z1 - z2).reshape(num_points, batch_size, -1).mean(axis=1)
    return features, labels


def beta_vae_score(
    ground_truth,
    representation_fn: Callable,
    rng: np.random.Generator | int | None,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    num_resamples: int = 200,
) -> Estimate:
    """BetaVAE score (Higgins et al. 2017), as disentanglement_lib `beta_vae.py` (compute_beta_vae_sklearn).

    A linear classifier predicts which factor was held fixed between two batches from the mean absolute
    difference of their codes; the score is its accuracy on `num_eval` fresh points.
    CI: evaluation points resampled with the classifier fixed (evaluation sampling only).
    """
    _check_budget(batch_size, num_train, num_eval)
    num_factors = _num_factors(ground_truth)
    gen = _rng(rng)
    x_tr, y_tr = _beta_vae_points(ground_truth, representation_fn, gen, batch_size, num_train, num_factors, chunk_size)
    clf = _ovr_logistic(_seed(gen))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if np.unique(y_tr).size < 2:
            raise LatentAtlasError("beta_vae_score needs num_train large enough to see at least two factors.")
        clf.fit(x_tr, y_tr)
    train_acc = float(np.mean(clf.predict(x_tr) == y_tr))
    x_ev, y_ev = _beta_vae_points(ground_truth, representation_fn, gen, batch_size, num_eval, num_factors, chunk_size)
    correct = clf.predict(x_ev) == y_ev
    low, high = _interval(lambda idx: float(correct[idx].mean()), num_eval, gen, num_resamples)
    return Estimate(
        name="beta_vae",
        value=float(correct.mean()),
        ci_low=low,
        ci_high=high,
        n=int(num_eval),
        details={
            "train_accuracy": train_acc,
            "batch_size": int(batch_size),
            "num_train": int(num_train),
            "chance": 1.0 / num_factors,
            "ci": "evaluation points resampled, classifier fixed (evaluation sampling only, not refitting)",
        },
    )


def _factor_vae_votes(ground_truth, representation_fn, rng, batch_size, num_points, num_factors,
                      global_var, active, chunk_size):
    # For every point: a factor fixed across a batch, then the active code dim with the smallest
    # variance (relative to its global variance) over that batch. Returns (factor, dim) per point.
    fixed = rng.integers(0, num_factors, size=num_points)
    f = _sample_factors(ground_truth, num_points * batch_size, num_factors, rng)
    f = f.reshape(num_points, batch_size, num_factors)
    pts = np.arange(num_points)
    f[pts, :, fixed] = f[pts, 0, fixed][:, None]
    z = _encode_factors(ground_truth, representation_fn, f.reshape(-1, num_factors), rng, chunk_size)
    local_var = z.reshape(num_points, batch_size, -1).var(axis=1, ddof=1)
    active_idx = np.flatnonzero(active)
    dims = active_idx[np.argmin(local_var[:, active_idx] / global_var[active_idx], axis=1)]
    return fixed, dims


def factor_vae_score(
    ground_truth,
    representation_fn: Callable,
    rng: np.random.Generator | int | None,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    num_variance_estimate: int = 10000,
    *,
    prune_threshold: float = 0.05,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    num_resamples: int = 200,
) -> Estimate:
    """FactorVAE score (Kim & Mnih 2018), as disentanglement_lib `factor_vae.py`.

    Codes are scaled by their global standard deviation; dims whose global standard deviation is below
    `prune_threshold` are dropped (0.05, the value of Locatello et al.'s study config). For each point
    one factor is fixed across a batch and the code dim with the smallest scaled variance votes for it;
    a majority-vote classifier (dim -> factor) is built from `num_train` votes and scored on `num_eval`
    fresh votes. CI: evaluation votes resampled with the classifier fixed (evaluation sampling only).
    """
    _check_budget(batch_size, num_train, num_eval)
    if num_variance_estimate < 2:
        raise LatentAtlasError(f"num_variance_estimate must be at least 2, got {num_variance_estimate}.")
    num_factors = _num_factors(ground_truth)
    gen = _rng(rng)
    f_var = _sample_factors(ground_truth, num_variance_estimate, num_factors, gen)
    z_var = _encode_factors(ground_truth, representation_fn, f_var, gen, chunk_size)
    global_var = z_var.var(axis=0, ddof=1)
    # Zero-variance dims are always dropped, even with prune_threshold=0, to avoid 0/0.
    active = (np.sqrt(global_var) >= prune_threshold) & (global_var > 0.0)
    num_dims = int(z_var.shape[1])
    base = {
        "num_active_dims": int(active.sum()),
        "active_dims": active,
        "prune_threshold": float(prune_threshold),
        "batch_size": int(batch_size),
        "num_train": int(num_train),
        "chance": 1.0 / num_factors,
    }
    if not active.any():
        return Estimate(
            "factor_vae", 0.0, None, None, int(num_eval),
            {**base, "train_accuracy": 0.0, "ci": "not computed: every code dim was pruned"},
        )
    tr_factor, tr_dim = _factor_vae_votes(ground_truth, representation_fn, gen, batch_size, num_train,
                                          num_factors, global_var, active, chunk_size)
    votes = np.zeros((num_factors, num_dims), dtype=np.int64)
    np.add.at(votes, (tr_factor, tr_dim), 1)
    classifier = np.argmax(votes, axis=0)  # dim -> the factor it voted for most (ties: lowest index)
    train_acc = float(np.mean(classifier[tr_dim] == tr_factor))
    ev_factor, ev_dim = _factor_vae_votes(ground_truth, representation_fn, gen, batch_size, num_eval,
                                          num_factors, global_var, active, chunk_size)
    correct = classifier[ev_dim] == ev_factor
    low, high = _interval(lambda idx: float(correct[idx].mean()), num_eval, gen, num_resamples)
    return Estimate(
        name="factor_vae",
        value=float(correct.mean()),
        ci_low=low,
        ci_high=high,
        n=int(num_eval),
        details={
            **base,
            "train_accuracy": train_acc,
            "votes": votes,
            "classifier": classifier,
            "ci": "evaluation votes resampled, classifier fixed (evaluation sampling only, not refitting)",
        },
    )


# --- everything at once ---------------------------------------------------------------------------


def all_disentanglement_metrics(
    codes,
    factors,
    rng: np.random.Generator | int | None = None,
    *,
    ground_truth=None,
    representation_fn: Callable | None = None,
    train_fraction: float = 2.0 / 3.0,
    num_bins: int = 20,
    dci_model: str = DEFAULT_DCI_MODEL,
    dci_refits: int = 0,
    num_resamples: int = 100,
    beta_vae_kwargs: dict | None = None,
    factor_vae_kwargs: dict | None = None,
) -> dict[str, Estimate]:
    """Every metric here on one sample of (codes, factors); keys are the estimates' names.

    MIG and modularity use all rows. The predictor-based metrics (DCI, SAP, explicitness) split the rows
    with a random permutation drawn from `rng`: the first `ceil(train_fraction * N)` train, the rest test.
    BetaVAE and FactorVAE draw their own samples and run only when both `ground_truth` and
    `representation_fn` are given.
    """
    z, y = _codes_factors(codes, factors)
    if not 0.0 < train_fraction < 1.0:
        raise LatentAtlasError(f"train_fraction must lie strictly between 0 and 1, got {train_fraction}.")
    if (ground_truth is None) != (representation_fn is None):
        raise LatentAtlasError(
            "ground_truth and representation_fn go together: give both for BetaVAE/FactorVAE, or neither."
        )
    gen = _rng(rng)
    n = z.shape[0]
    n_train = int(math.ceil(n * train_fraction))
    if n_train >= n:
        raise LatentAtlasError(f"{n} rows leave no test rows at train_fraction={train_fraction}.")
    perm = gen.permutation(n)
    tr, te = perm[:n_train], perm[n_train:]
    split = (z[tr], y[tr], z[te], y[te])

    out: dict[str, Estimate] = {}
    out["mig"] = mig(z, y, num_bins, rng=gen, num_resamples=num_resamples)
    out["modularity"] = modularity(z, y, num_bins, rng=gen, num_resamples=num_resamples)
    out.update(dci(*split, model=dci_model, rng=gen, num_resamples=num_resamples, num_refits=dci_refits))
    out["sap"] = sap(*split, rng=gen, num_resamples=num_resamples)
    out["explicitness"] = explicitness(*split, rng=gen, num_resamples=num_resamples)
    if ground_truth is not None:
        out["beta_vae"] = beta_vae_score(ground_truth, representation_fn, gen, **(beta_vae_kwargs or {}))
        out["factor_vae"] = factor_vae_score(ground_truth, representation_fn, gen, **(factor_vae_kwargs or {}))
    split_note = {"num_train": int(n_train), "num_test": int(n - n_train), "how": "seeded random permutation"}
    for key in ("dci_disentanglement", "dci_completeness", "dci_informativeness_test",
                "dci_informativeness_train", "sap", "explicitness"):
        out[key].details["split"] = split_note
    return out
