"""The information-based metrics: MIG (Chen et al. 2018) and modularity (Ridgeway & Mozer 2018), both
from the discrete mutual information between binned codes and factors."""

from __future__ import annotations

import numpy as np

from latentatlas.analysis.bootstrap import (
    Estimate,
    _centred_interval,
    _rng,
)
from latentatlas.analysis.disentanglement._common import (
    _codes_factors,
    _dense_labels,
    _discretize,
    _entropies,
    _mi_matrix,
    _require_dims,
    _require_varying_factors,
)
from latentatlas.errors import LatentAtlasError

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


