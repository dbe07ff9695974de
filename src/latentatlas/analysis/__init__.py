"""Pure functions on arrays: reconstruction and KL figures, active units, disentanglement metrics,
projections, traversals and interpolation. No file I/O, no plotting. See docs/metrics.md."""

from .bootstrap import Estimate, bootstrap_ci, mean_estimate
from .disentanglement import (
    all_disentanglement_metrics,
    beta_vae_score,
    dci,
    explicitness,
    factor_vae_score,
    mig,
    modularity,
    sap,
)
from .projections import Projection, pca_directions, project
from .traversal import interpolate, lerp, manifold_grid, order_dims_by_kl, slerp, traversal_latents, traversal_range
from .vae_metrics import (
    active_units,
    aggregate_posterior_kl,
    elbo,
    kl_per_dim,
    kl_per_sample,
    kl_total,
    reconstruction_error,
    reconstruction_error_per_sample,
)

__all__ = [
    "Estimate", "bootstrap_ci", "mean_estimate", "all_disentanglement_metrics", "beta_vae_score", "dci", "explicitness",
    "factor_vae_score", "mig", "modularity", "sap", "Projection", "pca_directions", "project", "interpolate",
    "lerp", "manifold_grid", "order_dims_by_kl", "slerp", "traversal_latents", "traversal_range",
    "active_units", "aggregate_posterior_kl", "elbo", "kl_per_dim", "kl_per_sample", "kl_total",
    "reconstruction_error", "reconstruction_error_per_sample",
]
