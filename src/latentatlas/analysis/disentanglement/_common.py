"""What the disentanglement metrics share: input checks, histogram discretisation and discrete mutual
information (disentanglement_lib's ``utils.py``)."""

from __future__ import annotations

import math

import numpy as np

from latentatlas.analysis.bootstrap import (
    _as_factor_matrix,
    _as_float_matrix,
    _check_same_cols,
    _check_same_rows,
)
from latentatlas.errors import LatentAtlasError

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
    """np.digitize(z_i, np.histogram_bin_edges(z_i, num_bins)[:-1]) per column, without the per-call
    checks of np.histogram_bin_edges (the edges are the same linspace over the column's range)."""
    out = np.empty(z.shape, dtype=np.int64)
    lows, highs = z.min(axis=0), z.max(axis=0)
    for i in range(z.shape[1]):
        first, last = float(lows[i]), float(highs[i])
        if first == last:  # as np.histogram_bin_edges does for a constant column
            first, last = first - 0.5, last + 0.5
        edges = np.linspace(first, last, num_bins + 1, endpoint=True)
        out[:, i] = np.searchsorted(edges[:-1], z[:, i], side="right")
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
    joint = np.bincount(a * nb + b, minlength=na * nb).reshape(1, na, nb).astype(np.float64)
    return float(_mi_of_blocks(joint, np.array([0, nb]), a.shape[0])[0, 0])


def _mi_of_blocks(joint: np.ndarray, offsets: np.ndarray, n: int) -> np.ndarray:
    """(D, K) plug-in mutual information in nats from D contingency tables of counts (D, rows, width)
    whose column blocks [offsets[j], offsets[j+1]) each sum to n: sklearn's `mutual_info_score` formula,
    sum p_ab (log p_ab + log n - log p_a - log p_b), clipped at 0 and exactly 0 when either variable is
    constant."""
    starts = offsets[:-1]
    sizes = np.diff(offsets)
    pa = np.add.reduceat(joint, starts, axis=2)  # (D, rows, K): each block's row sums
    pb = joint.sum(axis=1)  # (D, width)
    pa_wide = np.repeat(pa, sizes, axis=2)  # p_a beside every cell of its block
    nz = joint > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(
            nz, joint / n * (np.log(joint) + math.log(n) - np.log(pa_wide) - np.log(pb)[:, None, :]), 0.0
        )
    mi = np.maximum(np.add.reduceat(terms.sum(axis=1), starts, axis=1), 0.0)
    constant = (np.count_nonzero(pa, axis=1) <= 1) | (np.add.reduceat(pb > 0, starts, axis=1) <= 1)
    mi[constant] = 0.0  # a constant variable shares no information (exactly, not up to rounding)
    return mi


def _mi_matrix(zd: np.ndarray, yd: np.ndarray, y_sizes: np.ndarray, num_bins: int) -> np.ndarray:
    """(D, K) plug-in mutual information (disentanglement_lib's, = sklearn mutual_info_score) between
    binned code dims (labels 0..num_bins) and dense factor labels; one bincount per code dim covers all
    factors at once."""
    n, d = zd.shape
    na = num_bins + 1
    offsets = np.concatenate([[0], np.cumsum(np.asarray(y_sizes, dtype=np.int64))])
    width = int(offsets[-1])
    shifted = yd + offsets[:-1]  # factor j's labels occupy columns offsets[j] .. offsets[j+1]-1
    joint = np.empty((d, na, width))
    for i in range(d):
        joint[i] = np.bincount((zd[:, i, None] * width + shifted).ravel(), minlength=na * width).reshape(na, width)
    return _mi_of_blocks(joint, offsets, n)


def _entropies(yd: np.ndarray, y_sizes: np.ndarray) -> np.ndarray:
    """(K,) plug-in entropy in nats of each factor."""
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


