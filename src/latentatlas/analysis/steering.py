"""The steering-effect score: did adding a direction bring the target concept's documents up, more than a
random direction of the same norm would?

Given a pool of unit-norm document embeddings, the indices of the target documents (where a feature
fires most, or the documents nearest a text), the default embedding of the steered text and its steered
embeddings (row 0: along the direction; rows 1…R: along R random directions of the same norm):

- the *target rank* of an embedding e is the mean, over the target documents t, of t's percentile rank
  in the pool ordered by cosine to e (0: the farthest document, 1: the nearest);
- the *effect* of a steered embedding is its target rank minus the default embedding's;
- the *control* is the same effect for each random direction: its mean, its 2.5–97.5% range and the
  permutation p-value (1 + #{controls ≥ effect}) / (R + 1).

Ranks, not cosines, so that a direction that moves the embedding away from everything (the usual way a
large push breaks an embedding) scores 0, not a negative number of cosine points. docs/metrics.md,
"Steering", has the formula and its reading.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def percentile_ranks(embs: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """``[B, n]``: each pool document's rank by cosine to each embedding, scaled to [0, 1] (ties broken by
    order)."""
    embs, pool = np.atleast_2d(np.asarray(embs, dtype=np.float64)), np.asarray(pool, dtype=np.float64)
    sims = embs @ pool.T
    return sims.argsort(1, kind="stable").argsort(1, kind="stable") / max(1, pool.shape[0] - 1)


def target_rank(embs: np.ndarray, pool: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``[B]``: the mean percentile rank of the target documents, per embedding."""
    return percentile_ranks(embs, pool)[:, np.asarray(targets, dtype=np.int64)].mean(1)


def steering_effect(pool: np.ndarray, targets: np.ndarray, base: np.ndarray, steered: np.ndarray) -> dict[str, Any]:
    """The effect of ``steered[0]`` against the controls ``steered[1:]``, relative to ``base`` (see the
    module's docstring)."""
    r0 = float(target_rank(base, pool, targets)[0])
    # ranks are multiples of 1/((n-1)·|targets|): rounding removes the summation-order noise, so that an
    # unchanged ranking is an effect of exactly 0 (and ties with the controls are ties)
    eff = np.round(target_rank(steered, pool, targets) - r0, 12)
    out: dict[str, Any] = {"effect": float(eff[0]), "target_rank_before": r0, "target_rank_after": r0 + float(eff[0])}
    ctrl = eff[1:]
    if len(ctrl):
        out.update({"control_mean": float(ctrl.mean()), "control_low": float(np.quantile(ctrl, 0.025)),
                    "control_high": float(np.quantile(ctrl, 0.975)), "p": float((1 + (ctrl >= eff[0]).sum()) / (len(ctrl) + 1)),
                    "controls": int(len(ctrl))})
    return out
