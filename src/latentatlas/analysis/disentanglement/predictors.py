"""The predictor-based metrics: explicitness (Ridgeway & Mozer 2018), DCI (Eastwood & Williams 2018) and
SAP (Kumar et al. 2018), each fitted on a train split of (codes, factors) and scored on the test split."""

from __future__ import annotations

import math
import warnings
from typing import Callable

import numpy as np

from latentatlas.analysis.bootstrap import (
    Estimate,
    _centred_interval,
    _interval,
    _rng,
)
from latentatlas.analysis.disentanglement._common import (
    _require_dims,
    _require_varying_factors,
    _seed,
    _train_test,
)
from latentatlas.errors import LatentAtlasError

# --- Explicitness (modularity_explicitness.py) ---------------------------------------------------


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


