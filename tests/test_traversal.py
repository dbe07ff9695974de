"""Traversal latents, traversal ranges, KL ordering, lerp/slerp and the manifold grid."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from latentatlas.analysis.traversal import (
    interpolate,
    lerp,
    manifold_grid,
    order_dims_by_kl,
    slerp,
    traversal_latents,
    traversal_range,
)
from latentatlas.errors import LatentAtlasError


def test_traversal_values_land_in_their_dim_and_nothing_else_moves():
    z0 = np.arange(6, dtype=np.float32) + 0.5
    values = np.linspace(-3, 3, 7)
    dims = [4, 1, 0]
    out = traversal_latents(z0, dims, values)
    assert out.shape == (3, 7, 6) and out.dtype == np.float32
    for r, d in enumerate(dims):
        assert np.allclose(out[r, :, d], values)
        others = np.delete(out[r], d, axis=1)
        assert np.array_equal(others, np.broadcast_to(np.delete(z0, d), others.shape))
    out[0, 0, 0] = 99.0  # the result is a fresh array, not a view of z0
    assert z0[0] == 0.5


def test_traversal_rejects_bad_dims_and_shapes():
    with pytest.raises(LatentAtlasError, match="out of range"):
        traversal_latents(np.zeros(4), [4], np.zeros(3))
    with pytest.raises(LatentAtlasError, match="out of range"):
        traversal_latents(np.zeros(4), [-1], np.zeros(3))
    with pytest.raises(LatentAtlasError, match="1-D latent"):
        traversal_latents(np.zeros((2, 4)), [0], np.zeros(3))
    with pytest.raises(LatentAtlasError, match="values"):
        traversal_latents(np.zeros(4), [0], np.zeros((2, 3)))
    assert traversal_latents(np.zeros(4), [], np.zeros(3)).shape == (0, 3, 4)


def test_traversal_range_is_mean_plus_minus_k_std():
    rng = np.random.default_rng(0)
    mu = rng.normal(loc=[0.0, 2.0, -1.0], scale=[1.0, 0.5, 0.0], size=(500, 3))
    lo, hi = traversal_range(mu, num_sigmas=2.0)
    assert lo.shape == hi.shape == (3,)
    assert np.allclose(lo, mu.mean(0) - 2 * mu.std(0), atol=1e-5)
    assert np.allclose(hi, mu.mean(0) + 2 * mu.std(0), atol=1e-5)
    assert lo[2] == pytest.approx(hi[2])  # a collapsed dim has no range
    with pytest.raises(LatentAtlasError, match="shape"):
        traversal_range(np.zeros(3))


def test_order_dims_by_kl():
    assert order_dims_by_kl(np.array([0.1, 2.0, 0.0, 2.0, 0.5])).tolist() == [1, 3, 4, 0, 2]
    assert order_dims_by_kl(np.array([1.0, np.nan, 3.0])).tolist() == [2, 0, 1]
    per_example = np.array([[0.0, 1.0, 3.0], [0.0, 3.0, 0.0]])  # means 0, 2, 1.5
    assert order_dims_by_kl(per_example).tolist() == [1, 2, 0]


def test_lerp_endpoints_and_even_steps():
    z0, z1 = np.array([1.0, -2.0, 0.3]), np.array([0.2, 4.0, -1.0])
    path = lerp(z0, z1, 5)
    assert path.shape == (5, 3)
    assert np.array_equal(path[0], z0) and np.array_equal(path[-1], z1)
    assert np.allclose(np.diff(path, axis=0), (z1 - z0) / 4)
    assert lerp(z0.astype(np.float32), z1.astype(np.float32), 3).dtype == np.float32


def test_slerp_preserves_norm_and_follows_the_great_circle():
    rng = np.random.default_rng(0)
    z0, z1 = rng.normal(size=16), rng.normal(size=16)
    z1 *= np.linalg.norm(z0) / np.linalg.norm(z1)  # equal norms
    n = 9
    path = slerp(z0, z1, n)
    assert path.shape == (n, 16)
    assert np.array_equal(path[0], z0) and np.array_equal(path[-1], z1)
    r = np.linalg.norm(z0)
    assert np.allclose(np.linalg.norm(path, axis=1), r)
    # Great circle: every point lies in span(z0, z1), and the angle from z0 grows evenly with t.
    basis, _ = np.linalg.qr(np.stack([z0, z1], axis=1))
    assert np.allclose(path @ basis @ basis.T, path)
    omega = np.arccos(z0 @ z1 / r**2)
    angles = np.arccos(np.clip(path @ z0 / r**2, -1, 1))
    assert np.allclose(angles, np.linspace(0, omega, n), atol=1e-6)
    # Not a straight line: the midpoint is further out than lerp's.
    assert np.linalg.norm(path[n // 2]) > np.linalg.norm(lerp(z0, z1, n)[n // 2]) + 1e-3


def test_slerp_endpoints_exact_for_unequal_norms_and_float32():
    z0 = np.array([3.0, 0.0], dtype=np.float32)
    z1 = np.array([0.0, 1.0], dtype=np.float32)
    path = slerp(z0, z1, 4)
    assert path.dtype == np.float32
    assert np.array_equal(path[0], z0) and np.array_equal(path[-1], z1)


@pytest.mark.parametrize(
    ("z0", "z1"),
    [
        (np.array([1.0, 2.0]), np.array([2.0, 4.0])),  # parallel
        (np.array([1.0, 2.0]), np.array([-1.0, -2.0])),  # antiparallel
        (np.zeros(2), np.array([1.0, 1.0])),  # zero vector
    ],
)
def test_slerp_falls_back_to_lerp(z0, z1):
    path = slerp(z0, z1, 5)
    assert np.all(np.isfinite(path))
    assert np.allclose(path, lerp(z0, z1, 5))


def test_interpolate_dispatch_and_errors():
    z0, z1 = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    assert np.allclose(interpolate(z0, z1, 5, "lerp"), lerp(z0, z1, 5))
    assert np.allclose(interpolate(z0, z1, 5, "slerp"), slerp(z0, z1, 5))
    with pytest.raises(LatentAtlasError, match="lerp, slerp"):
        interpolate(z0, z1, 5, "cubic")
    with pytest.raises(LatentAtlasError, match="at least 2"):
        lerp(z0, z1, 1)
    with pytest.raises(LatentAtlasError, match="same shape"):
        slerp(z0, np.zeros(3), 4)


def test_manifold_grid_symmetric_monotone_and_gaussian():
    n = 7
    z, shape = manifold_grid(n)
    assert shape == (n, n) and z.shape == (n * n, 2) and z.dtype == np.float32
    tiles = z.reshape(n, n, 2)
    xs, ys = tiles[0, :, 0], tiles[:, 0, 1]
    assert np.all(tiles[:, :, 0] == xs) and np.all(tiles[:, :, 1] == ys[:, None])  # a true grid
    assert np.all(np.diff(xs) > 0)  # left to right: increasing
    assert np.all(np.diff(ys) < 0)  # top to bottom: decreasing (y axis points up)
    assert np.array_equal(xs, -xs[::-1]) and xs[n // 2] == 0.0  # symmetric about 0
    assert xs[0] == pytest.approx(-2.5) and xs[-1] == pytest.approx(2.5)
    # Gaussian quantiles: equal prior mass between neighbours, so denser near the centre.
    assert np.allclose(np.diff(norm.cdf(xs)), np.diff(norm.cdf(xs)).mean(), atol=1e-6)
    assert np.diff(xs)[n // 2] < np.diff(xs)[0]


def test_manifold_grid_classic_quantiles_and_linear_spacing():
    n = 10
    z, _ = manifold_grid(n, lo=norm.ppf(0.05), hi=norm.ppf(0.95))
    assert np.allclose(z[:n, 0], norm.ppf(np.linspace(0.05, 0.95, n)), atol=1e-6)
    zl, _ = manifold_grid(5, lo=-1, hi=1, spacing="linear")
    assert np.allclose(zl[:5, 0], np.linspace(-1, 1, 5))
    with pytest.raises(LatentAtlasError, match="lo < hi"):
        manifold_grid(5, lo=1, hi=-1)
    with pytest.raises(LatentAtlasError, match="spacing"):
        manifold_grid(5, spacing="log")
