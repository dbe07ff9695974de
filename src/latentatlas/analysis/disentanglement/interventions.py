"""The intervention-based metrics: the BetaVAE score (Higgins et al. 2017) and the FactorVAE score (Kim &
Mnih 2018), which draw their own samples from a ground-truth dataset and encode them."""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np

from latentatlas.analysis.bootstrap import (
    Estimate,
    _interval,
    _rng,
)
from latentatlas.analysis.disentanglement._common import (
    DEFAULT_CHUNK_SIZE,
    _seed,
)
from latentatlas.analysis.disentanglement.predictors import _ovr_logistic
from latentatlas.errors import LatentAtlasError

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


