"""Low-dimensional projections of latents (PCA, UMAP, t-SNE) and PCA directions.

Pure functions on arrays: no file I/O, no plotting. UMAP and t-SNE are imported lazily because
importing umap-learn pulls in numba, which costs seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from latentatlas.errors import LatentAtlasError

__all__ = ["METHODS", "Projection", "project", "pca_directions"]

METHODS = ("pca", "umap", "tsne")

# The fewest rows each method can work with at all; results on so few points mean little.
_MIN_ROWS = {"pca": 2, "umap": 4, "tsne": 4}


@dataclass
class Projection:
    """Coordinates of N latents in `n_components` dimensions and how they were made.

    `explained_variance` holds, for PCA only, the fraction of total variance each component
    explains (sklearn's `explained_variance_ratio_`), in decreasing order; it is None otherwise.
    `params` holds the parameters actually used, after defaults and clipping.
    """

    coords: np.ndarray
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    explained_variance: list[float] | None = None

    @property
    def n_components(self) -> int:
        return int(self.coords.shape[1])


def _as_latents(latents: Any, what: str = "latents") -> np.ndarray:
    if hasattr(latents, "detach"):  # a torch tensor, without importing torch here
        latents = latents.detach().cpu().numpy()
    x = np.asarray(latents)
    if x.ndim != 2:
        raise LatentAtlasError(
            f"{what} must be a 2-D array of shape (N, D), but it has shape {tuple(x.shape)}."
        )
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise LatentAtlasError(f"{what} must hold real numbers, but its dtype is {x.dtype}.")
    if x.size and not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.all(np.isfinite(x), axis=1)))
        raise LatentAtlasError(f"{what} must be finite, but {bad} of its {x.shape[0]} rows hold NaN or inf.")
    return x


def _check_sizes(x: np.ndarray, method: str, n_components: int) -> None:
    n, d = x.shape
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) or n_components < 1:
        raise LatentAtlasError(f"n_components must be a positive integer, but it is {n_components!r}.")
    if d < n_components:
        raise LatentAtlasError(
            f"latents have {d} dimension(s), fewer than the n_components={n_components} asked of {method}."
        )
    need = max(_MIN_ROWS[method], n_components + 1)
    if n < need:
        raise LatentAtlasError(
            f"{method} with n_components={n_components} needs at least {need} latents, but got {n}."
        )


def project(
    latents: np.ndarray,
    method: str = "pca",
    n_components: int = 2,
    seed: int = 0,
    **kw: Any,
) -> Projection:
    """Project latents (N, D) to (N, n_components) float32 coordinates.

    method: "pca" (sklearn PCA), "umap" (umap-learn; n_neighbors=15, min_dist=0.1 unless given) or
    "tsne" (sklearn TSNE; perplexity 30 clipped to (N-1)/3, PCA initialisation). Extra keyword
    arguments go to the estimator. The same seed gives the same coordinates; UMAP is single-threaded
    as a result, which is umap-learn's price for reproducibility.
    """
    method_key = str(method).lower().replace("-", "")
    if method_key not in METHODS:
        raise LatentAtlasError(f"projection method must be one of {', '.join(METHODS)}, but got {method!r}.")
    x = _as_latents(latents)
    _check_sizes(x, method_key, n_components)
    n_components = int(n_components)
    seed = int(seed)

    if method_key == "pca":
        return _pca(x, n_components, seed, kw)
    if method_key == "umap":
        return _umap(x, n_components, seed, kw)
    return _tsne(x, n_components, seed, kw)


def _pca(x: np.ndarray, n_components: int, seed: int, kw: dict[str, Any]) -> Projection:
    from sklearn.decomposition import PCA

    params = {"n_components": n_components, "random_state": seed, **kw}
    pca = PCA(**params)
    coords = pca.fit_transform(x.astype(np.float64, copy=False))
    return Projection(
        coords=np.ascontiguousarray(coords, dtype=np.float32),
        method="pca",
        params=params,
        explained_variance=[float(v) for v in pca.explained_variance_ratio_],
    )


def _umap(x: np.ndarray, n_components: int, seed: int, kw: dict[str, Any]) -> Projection:
    import warnings

    n = x.shape[0]
    params: dict[str, Any] = {"n_neighbors": 15, "min_dist": 0.1, **kw}
    # umap-learn needs 2 <= n_neighbors < N.
    params["n_neighbors"] = int(max(2, min(int(params["n_neighbors"]), n - 1)))
    params.update(n_components=n_components, random_state=seed)
    params.setdefault("n_jobs", 1)  # a seed forces one thread anyway; saying so avoids umap's warning
    # Spectral initialisation needs more points than components + 1; random init works on any size.
    if n <= n_components + 2 and "init" not in kw:
        params["init"] = "random"

    with warnings.catch_warnings():
        # umap-learn and pynndescent warn about numba threading and small-data fallbacks; nothing a
        # caller can act on.
        warnings.simplefilter("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*n_jobs.*")
        import umap

        coords = umap.UMAP(**params).fit_transform(x.astype(np.float32, copy=False))
    return Projection(coords=np.ascontiguousarray(coords, dtype=np.float32), method="umap", params=params)


def _tsne(x: np.ndarray, n_components: int, seed: int, kw: dict[str, Any]) -> Projection:
    from sklearn.manifold import TSNE

    n = x.shape[0]
    params: dict[str, Any] = {"perplexity": 30.0, "init": "pca", **kw}
    # sklearn needs perplexity < N; (N-1)/3 keeps about 3*perplexity neighbours available.
    params["perplexity"] = float(min(float(params["perplexity"]), (n - 1) / 3.0))
    if n_components >= 4:
        params.setdefault("method", "exact")  # Barnes-Hut only supports fewer than 4 components
    params.update(n_components=n_components, random_state=seed)
    coords = TSNE(**params).fit_transform(x.astype(np.float32, copy=False))
    return Projection(coords=np.ascontiguousarray(coords, dtype=np.float32), method="tsne", params=params)


def pca_directions(
    latents: np.ndarray, k: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """GANSpace-style principal directions of a set of latents.

    Returns (components (k, D) unit rows, explained_variance_ratio (k,), mean (D,), std (k,)), where
    std[i] is the standard deviation of the latents projected on components[i], so
    `mean + a * std[i] * components[i]` walks a along direction i in units of its natural spread.
    Signs follow sklearn's deterministic convention. Arrays are float32.
    """
    x = _as_latents(latents)
    n, d = x.shape
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise LatentAtlasError(f"k must be a positive integer, but it is {k!r}.")
    if k > min(n, d):
        raise LatentAtlasError(
            f"k={k} PCA directions need at least {k} latents of at least {k} dimensions, "
            f"but latents have shape ({n}, {d})."
        )
    if n < 2:
        raise LatentAtlasError(f"PCA directions need at least 2 latents, but got {n}.")
    from sklearn.decomposition import PCA

    pca = PCA(n_components=int(k), random_state=int(seed)).fit(x.astype(np.float64, copy=False))
    return (
        pca.components_.astype(np.float32),
        pca.explained_variance_ratio_.astype(np.float32),
        pca.mean_.astype(np.float32),
        np.sqrt(pca.explained_variance_).astype(np.float32),
    )
