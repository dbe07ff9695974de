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
from typing import Callable

import numpy as np

from latentatlas.analysis.bootstrap import Estimate, _rng
from latentatlas.analysis.disentanglement._common import (
    DEFAULT_CHUNK_SIZE,
    _codes_factors,
    discrete_entropy,
    discrete_mutual_info,
    histogram_discretize,
)
from latentatlas.analysis.disentanglement.information import mig, modularity
from latentatlas.analysis.disentanglement.interventions import (
    beta_vae_score,
    factor_vae_score,
)
from latentatlas.analysis.disentanglement.predictors import (
    DCI_MODELS,
    DEFAULT_DCI_MODEL,
    dci,
    explicitness,
    sap,
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
    "DEFAULT_CHUNK_SIZE",
]


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
