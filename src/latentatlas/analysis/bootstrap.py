"""The result type every metric returns, the bootstrap behind its interval, and shared input checks.

A metric is a number plus how far it could move: `Estimate` carries both, and `bootstrap_ci` is the one
place that turns "recompute this on resampled rows" into a 95% percentile interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from latentatlas._io import to_plain
from latentatlas.errors import LatentAtlasError

__all__ = ["Estimate", "bootstrap_ci", "bootstrap_distribution", "mean_estimate"]


@dataclass
class Estimate:
    """One metric value with its uncertainty.

    `ci_low`/`ci_high` are a 95% percentile bootstrap interval unless the metric's documentation says
    otherwise; both are None when no interval was computed (the reason is then in `details["ci"]`).
    `n` is the number of samples (rows, votes or points) the value was computed from.
    """

    name: str
    value: float
    ci_low: float | None
    ci_high: float | None
    n: int
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "value": _jsonable(self.value),
            "ci_low": _jsonable(self.ci_low),
            "ci_high": _jsonable(self.ci_high),
            "n": int(self.n),
            "details": _jsonable(self.details),
        }


def bootstrap_ci(
    stat_fn: Callable[[np.ndarray], float],
    n: int,
    rng: np.random.Generator,
    num_resamples: int = 200,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap interval of a statistic over `n` rows.

    Each resample draws `n` row indices with replacement and calls `stat_fn(idx)`. Resamples on which
    the statistic is not finite (e.g. a factor lost all but one of its values) are left out; if none is
    finite the interval is (nan, nan).
    """
    stats = bootstrap_distribution(stat_fn, n, rng, num_resamples)
    return _percentiles(stats, alpha)


def bootstrap_distribution(
    stat_fn: Callable[[np.ndarray], float],
    n: int,
    rng: np.random.Generator,
    num_resamples: int = 200,
) -> np.ndarray:
    """The finite values of `stat_fn(idx)` over `num_resamples` with-replacement resamples of n rows."""
    if n < 1:
        raise LatentAtlasError(f"bootstrap needs at least one row, got n={n}.")
    if num_resamples < 1:
        raise LatentAtlasError(f"num_resamples must be at least 1, got {num_resamples}.")
    stats = np.empty(num_resamples, dtype=np.float64)
    for i in range(num_resamples):
        idx = rng.integers(0, n, size=n)
        stats[i] = float(stat_fn(idx))
    return stats[np.isfinite(stats)]


def _percentiles(stats: np.ndarray, alpha: float) -> tuple[float, float]:
    if not 0.0 < alpha < 1.0:
        raise LatentAtlasError(f"alpha must lie strictly between 0 and 1, got {alpha}.")
    if stats.size == 0:
        return (math.nan, math.nan)
    low, high = np.quantile(stats, [alpha / 2.0, 1.0 - alpha / 2.0])
    return (float(low), float(high))


def mean_estimate(name: str, per_sample, rng: np.random.Generator, num_resamples: int = 200, **details) -> Estimate:
    """Mean of a per-sample quantity with a percentile-bootstrap 95% CI over samples."""
    v = np.asarray(per_sample, dtype=np.float64)
    lo, hi = bootstrap_ci(lambda i: v[i].mean(), len(v), rng, num_resamples=num_resamples)
    return Estimate(name=name, value=float(v.mean()), ci_low=lo, ci_high=hi, n=len(v), details=details)


# --- shared helpers for the metric modules (private to analysis/) ---------------------------------


_jsonable = to_plain


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """A Generator from a Generator, a seed, or None (seed 0, so results repeat by default)."""
    if rng is None:
        return np.random.default_rng(0)
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)):
        return np.random.default_rng(int(rng))
    raise LatentAtlasError(
        f"rng must be a numpy Generator, an int seed or None, got {type(rng).__name__}."
    )


def _interval(
    stat_fn: Callable[[np.ndarray], float],
    n: int,
    rng: np.random.Generator,
    num_resamples: int,
) -> tuple[float | None, float | None]:
    """`bootstrap_ci`, or (None, None) when resampling is switched off with num_resamples=0."""
    if num_resamples == 0:
        return (None, None)
    return bootstrap_ci(stat_fn, n, rng, num_resamples=num_resamples)


def _centred_interval(
    stat_fn: Callable[[np.ndarray], float],
    value: float,
    n: int,
    rng: np.random.Generator,
    num_resamples: int,
    bounds: tuple[float, float] = (-math.inf, math.inf),
) -> tuple[float | None, float | None, dict]:
    """Median-centred percentile interval, for statistics that resampling itself shifts.

    Plug-in mutual information and top-two gaps move systematically on a with-replacement resample
    (duplicated rows inflate plug-in MI; sorting noisy values widens gaps), so the plain percentile
    interval can sit entirely off the estimate. This keeps the bootstrap's spread but places it around
    the estimate: [value - (median - q_2.5), value + (q_97.5 - median)], clipped to `bounds`.
    The raw percentile interval and the median are returned for inspection.
    """
    if num_resamples == 0:
        return (None, None, {"ci": "not computed (num_resamples=0)"})
    stats = bootstrap_distribution(stat_fn, n, rng, num_resamples)
    if stats.size == 0:
        return (math.nan, math.nan, {"ci": "no resample gave a finite value"})
    q_low, q_high = _percentiles(stats, 0.05)
    med = float(np.median(stats))
    low = min(max(value - (med - q_low), bounds[0]), value)
    high = max(min(value + (q_high - med), bounds[1]), value)
    info = {
        "ci_method": "median-centred percentile bootstrap",
        "bootstrap_median": med,
        "bootstrap_percentile_interval": [q_low, q_high],
        "num_resamples": int(stats.size),
    }
    return (float(low), float(high), info)


def _as_float_matrix(arr, name: str) -> np.ndarray:
    """(N, D) finite float64 array; a 1-D input is read as N rows of one column."""
    try:
        out = np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise LatentAtlasError(f"{name} must be a numeric array, got {type(arr).__name__}.") from exc
    if out.ndim == 1:
        out = out[:, None]
    if out.ndim != 2:
        raise LatentAtlasError(f"{name} must be a 2-D array (samples, dims), got shape {out.shape}.")
    if out.shape[0] == 0 or out.shape[1] == 0:
        raise LatentAtlasError(f"{name} must have at least one row and one column, got shape {out.shape}.")
    if not np.all(np.isfinite(out)):
        raise LatentAtlasError(f"{name} contains NaN or infinite values.")
    return out


def _as_factor_matrix(arr, name: str = "factors") -> np.ndarray:
    """(N, K) int64 array of factor indices; floats are accepted only if they are whole numbers."""
    raw = np.asarray(arr)
    if raw.ndim == 1:
        raw = raw[:, None]
    if raw.ndim != 2:
        raise LatentAtlasError(f"{name} must be a 2-D array (samples, factors), got shape {raw.shape}.")
    if raw.shape[0] == 0 or raw.shape[1] == 0:
        raise LatentAtlasError(f"{name} must have at least one row and one column, got shape {raw.shape}.")
    if raw.dtype.kind in "iub":
        return raw.astype(np.int64)
    if raw.dtype.kind != "f":
        raise LatentAtlasError(f"{name} must hold integer factor indices, got dtype {raw.dtype}.")
    if not np.all(np.isfinite(raw)) or not np.all(raw == np.round(raw)):
        raise LatentAtlasError(f"{name} must hold integer factor indices, got non-integer values.")
    return raw.astype(np.int64)


def _check_same_rows(a: np.ndarray, a_name: str, b: np.ndarray, b_name: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise LatentAtlasError(
            f"{a_name} has {a.shape[0]} rows but {b_name} has {b.shape[0]}; "
            "they must describe the same samples."
        )


def _check_same_cols(a: np.ndarray, a_name: str, b: np.ndarray, b_name: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise LatentAtlasError(
            f"{a_name} has {a.shape[1]} columns but {b_name} has {b.shape[1]}; "
            "train and test must have the same dimensions."
        )
