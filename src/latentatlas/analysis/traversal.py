"""Latent traversals, interpolation paths and the 2-D manifold grid.

Pure functions on arrays: they build the latent codes; decoding and drawing happen elsewhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import ndtr, ndtri  # standard-normal cdf and its inverse; lighter than scipy.stats

from latentatlas.errors import LatentAtlasError

__all__ = [
    "traversal_latents",
    "traversal_range",
    "order_dims_by_kl",
    "lerp",
    "slerp",
    "interpolate",
    "INTERPOLATIONS",
    "manifold_grid",
]

INTERPOLATIONS = ("lerp", "slerp")


def _array(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _float_dtype(*arrays: np.ndarray) -> np.dtype:
    """The first floating dtype among the inputs, so float32 latents stay float32; float64 otherwise."""
    for a in arrays:
        if np.issubdtype(a.dtype, np.floating):
            return a.dtype
    return np.dtype(np.float64)


def _vector(z: Any, name: str) -> np.ndarray:
    v = _array(z)
    if v.ndim != 1 or v.size == 0:
        raise LatentAtlasError(f"{name} must be a non-empty 1-D latent vector, but it has shape {tuple(v.shape)}.")
    if not np.issubdtype(v.dtype, np.number) or np.issubdtype(v.dtype, np.complexfloating):
        raise LatentAtlasError(f"{name} must hold real numbers, but its dtype is {v.dtype}.")
    return v


def _steps(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise LatentAtlasError(f"n must be an integer of at least 2 (both ends are included), but it is {n!r}.")
    return int(n)


def traversal_latents(z0: Any, dims: list[int], values: Any) -> np.ndarray:
    """Latents for a traversal grid: shape (len(dims), M, D).

    Row r holds M copies of z0 with dimension dims[r] set to values[0..M-1]; all other dimensions
    keep z0's value. The dtype is z0's if it is floating (float64 otherwise).
    """
    z = _vector(z0, "z0")
    vals = _array(values)
    if vals.ndim != 1 or vals.size == 0:
        raise LatentAtlasError(f"values must be a non-empty 1-D array, but it has shape {tuple(vals.shape)}.")
    d = z.shape[0]
    dim_list = [int(i) for i in np.atleast_1d(_array(dims)).ravel()] if np.size(dims) else []
    for i in dim_list:
        if not 0 <= i < d:
            raise LatentAtlasError(f"traversal dim {i} is out of range for a {d}-dimensional latent (0..{d - 1}).")
    dtype = _float_dtype(z)
    out = np.broadcast_to(z.astype(dtype), (len(dim_list), vals.shape[0], d)).copy()
    for r, i in enumerate(dim_list):
        out[r, :, i] = vals
    return out


def traversal_range(mu: Any, num_sigmas: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension traversal limits from the aggregate posterior: mean ± num_sigmas · std of mu.

    mu is (N, D), the posterior means of N inputs. Returns (lo (D,), hi (D,)) as float32.
    """
    m = _array(mu)
    if m.ndim != 2 or m.shape[0] < 1 or m.shape[1] < 1:
        raise LatentAtlasError(f"mu must be a 2-D array of shape (N, D) with N, D >= 1, but it has shape {tuple(m.shape)}.")
    if not np.all(np.isfinite(m)):
        raise LatentAtlasError("mu must be finite, but it holds NaN or inf.")
    if num_sigmas < 0:
        raise LatentAtlasError(f"num_sigmas must be non-negative, but it is {num_sigmas!r}.")
    m = m.astype(np.float64)
    center = m.mean(axis=0)
    spread = float(num_sigmas) * m.std(axis=0)
    return (center - spread).astype(np.float32), (center + spread).astype(np.float32)


def order_dims_by_kl(kl_per_dim: Any) -> np.ndarray:
    """Dimension indices sorted by KL, largest first (ties keep index order; NaN goes last).

    Accepts (D,) or per-example (N, D), which is averaged over N first.
    """
    kl = _array(kl_per_dim).astype(np.float64)
    if kl.ndim == 2:
        kl = kl.mean(axis=0)
    if kl.ndim != 1:
        raise LatentAtlasError(f"kl_per_dim must have shape (D,) or (N, D), but it has shape {tuple(kl.shape)}.")
    key = np.where(np.isnan(kl), np.inf, -kl)
    return np.argsort(key, kind="stable")


def _pair(z0: Any, z1: Any) -> tuple[np.ndarray, np.ndarray, np.dtype]:
    a, b = _array(z0), _array(z1)
    if a.shape != b.shape or a.size == 0:
        raise LatentAtlasError(
            f"z0 and z1 must be non-empty and of the same shape, but they have shapes {tuple(a.shape)} and {tuple(b.shape)}."
        )
    return a.astype(np.float64), b.astype(np.float64), _float_dtype(a, b)


def lerp(z0: Any, z1: Any, n: int) -> np.ndarray:
    """n points on the straight line from z0 to z1, both ends included: shape (n, *z0.shape)."""
    a, b, dtype = _pair(z0, z1)
    t = np.linspace(0.0, 1.0, _steps(n)).reshape(-1, *([1] * a.ndim))
    out = (1.0 - t) * a + t * b
    out[0], out[-1] = a, b
    return out.astype(dtype)


def slerp(z0: Any, z1: Any, n: int, eps: float = 1e-7) -> np.ndarray:
    """n points on the great-circle arc from z0 to z1, both ends included: shape (n, *z0.shape).

    Uses the standard formula sin((1-t)Ω)/sin Ω · z0 + sin(tΩ)/sin Ω · z1, with Ω the angle between
    z0 and z1. For endpoints of equal norm every point keeps that norm and the path is the arc of
    the circle through both in their plane. Falls back to lerp when either vector is near zero or the two
    are (anti)parallel, where the arc is undefined or degenerate.
    """
    a, b, dtype = _pair(z0, z1)
    steps = _steps(n)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na < eps or nb < eps:
        return lerp(z0, z1, steps)
    cos = float(np.clip(np.vdot(a, b) / (na * nb), -1.0, 1.0))
    omega = np.arccos(cos)
    sin_omega = np.sin(omega)
    if sin_omega < 1e-6:
        return lerp(z0, z1, steps)
    t = np.linspace(0.0, 1.0, steps).reshape(-1, *([1] * a.ndim))
    out = (np.sin((1.0 - t) * omega) / sin_omega) * a + (np.sin(t * omega) / sin_omega) * b
    out[0], out[-1] = a, b
    return out.astype(dtype)


def interpolate(z0: Any, z1: Any, n: int, method: str = "lerp") -> np.ndarray:
    """n points from z0 to z1 by "lerp" (straight line) or "slerp" (great circle); both ends included."""
    if method == "lerp":
        return lerp(z0, z1, n)
    if method == "slerp":
        return slerp(z0, z1, n)
    raise LatentAtlasError(f"interpolation method must be one of {', '.join(INTERPOLATIONS)}, but got {method!r}.")


def manifold_grid(
    n: int, lo: float = -2.5, hi: float = 2.5, spacing: str = "gaussian"
) -> tuple[np.ndarray, tuple[int, int]]:
    """An n×n grid of 2-D latent codes for the classic decoded-manifold figure.

    Returns (z (n*n, 2) float32, (n, n)). Row-major in display order: entry i*n + j is the tile in
    row i (top to bottom) and column j (left to right), with z[..., 0] increasing to the right and
    z[..., 1] decreasing downwards, so the picture reads like a plot with the y axis pointing up.

    With spacing="gaussian" the values along each axis are standard-normal quantiles,
    norm.ppf(linspace(Φ(lo), Φ(hi), n)): they run from lo to hi with equal prior mass between
    neighbours, so tiles are denser where a N(0, I) prior puts its mass (lo, hi = ∓1.645 gives the
    familiar norm.ppf(linspace(0.05, 0.95, n))). spacing="linear" spaces them evenly instead, for
    latents without a Gaussian prior.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise LatentAtlasError(f"n must be a positive integer, but it is {n!r}.")
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise LatentAtlasError(f"manifold grid needs finite lo < hi, but got lo={lo!r}, hi={hi!r}.")
    n = int(n)
    if spacing == "gaussian":
        if n == 1:
            axis = np.array([ndtri(0.5 * (ndtr(lo) + ndtr(hi)))])
        else:
            axis = ndtri(np.linspace(ndtr(lo), ndtr(hi), n))
            axis[0], axis[-1] = lo, hi  # exact ends despite the cdf/ppf round trip
            if lo == -hi:
                axis = 0.5 * (axis - axis[::-1])  # exactly symmetric about 0
    elif spacing == "linear":
        axis = np.linspace(lo, hi, n) if n > 1 else np.array([0.5 * (lo + hi)])
    else:
        raise LatentAtlasError(f"manifold grid spacing must be 'gaussian' or 'linear', but got {spacing!r}.")
    xs, ys = np.meshgrid(axis, axis[::-1])  # rows top to bottom: y decreasing
    z = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)
    return z, (n, n)
