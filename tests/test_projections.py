"""Projections (PCA / UMAP / t-SNE) and GANSpace-style PCA directions."""

from __future__ import annotations

import numpy as np
import pytest

from latentatlas.analysis.projections import Projection, pca_directions, project
from latentatlas.errors import LatentAtlasError


def _blobs(n: int = 200, d: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=6.0, size=(4, d))
    return (centers[np.arange(n) % 4] + rng.normal(size=(n, d))).astype(np.float32)


def _plane(n: int = 120, d: int = 6, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Points on a 2-D affine plane inside R^d, and their in-plane coordinates."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(d, 2)))  # orthonormal columns
    uv = rng.normal(size=(n, 2)) * np.array([3.0, 1.0])
    return uv @ basis.T + rng.normal(size=d), uv


def _pairwise(a: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a[:, None, :] - a[None, :, :], axis=-1)


# ----------------------------------------------------------------------------------------------- PCA


def test_pca_shape_dtype_and_variance_order():
    x = _blobs(150, 8)
    p = project(x, "pca", n_components=3)
    assert isinstance(p, Projection)
    assert p.method == "pca" and p.n_components == 3
    assert p.coords.shape == (150, 3) and p.coords.dtype == np.float32
    ev = np.asarray(p.explained_variance)
    assert ev.shape == (3,)
    assert np.all(np.diff(ev) <= 1e-12) and np.all(ev > 0) and ev.sum() <= 1 + 1e-9
    # Coordinates are centred and their variances follow the same order.
    assert np.allclose(p.coords.mean(axis=0), 0, atol=1e-4)
    assert np.all(np.diff(p.coords.var(axis=0)) <= 1e-6)


def test_pca_recovers_a_plane():
    x, uv = _plane()
    p = project(x, "pca", n_components=2)
    assert sum(p.explained_variance) == pytest.approx(1.0, abs=1e-9)
    # A rigid motion of the plane: every pairwise distance survives.
    assert np.allclose(_pairwise(p.coords.astype(np.float64)), _pairwise(uv), atol=1e-3)
    # Asked for a third component, it explains nothing.
    p3 = project(x, "pca", n_components=3)
    assert p3.explained_variance[2] < 1e-12
    assert p3.explained_variance[0] == pytest.approx(9.0 / 10.0, abs=0.1)


def test_pca_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    x = _blobs(40, 5)
    p = project(torch.from_numpy(x), "pca")
    assert np.allclose(p.coords, project(x, "pca").coords)


# ------------------------------------------------------------------------------------- UMAP and t-SNE


@pytest.fixture(scope="module")
def umap_runs():
    x = _blobs(200, 8)
    return x, project(x, "umap", seed=3), project(x, "umap", seed=3)


@pytest.mark.slow
def test_umap_shape_and_reproducible(umap_runs):
    x, a, b = umap_runs
    assert a.method == "umap"
    assert a.coords.shape == (200, 2) and a.coords.dtype == np.float32
    assert np.all(np.isfinite(a.coords))
    assert np.array_equal(a.coords, b.coords)
    assert a.params["n_neighbors"] == 15 and a.params["min_dist"] == 0.1 and a.params["random_state"] == 3
    assert a.explained_variance is None
    # Four well separated blobs stay separated: each point's nearest neighbour is in its own blob.
    d = _pairwise(a.coords.astype(np.float64))
    np.fill_diagonal(d, np.inf)
    labels = np.arange(200) % 4
    assert np.mean(labels[d.argmin(axis=1)] == labels) > 0.95


def test_umap_clips_neighbours_on_tiny_input():
    p = project(_blobs(8, 4), "umap", n_neighbors=15)
    assert p.params["n_neighbors"] == 7
    assert p.coords.shape == (8, 2)


def test_tsne_shape_reproducible_and_perplexity_clipped():
    x = _blobs(61, 6)
    a = project(x, "tsne", seed=0, max_iter=250)
    b = project(x, "tsne", seed=0, max_iter=250)
    assert a.method == "tsne"
    assert a.coords.shape == (61, 2) and a.coords.dtype == np.float32
    assert np.array_equal(a.coords, b.coords)
    assert a.params["perplexity"] == pytest.approx(20.0)  # 30 clipped to (61 - 1) / 3
    assert a.params["init"] == "pca"


def test_tsne_keeps_a_small_perplexity():
    p = project(_blobs(40, 6), "tsne", perplexity=5, max_iter=250)
    assert p.params["perplexity"] == 5.0


# ----------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("latents", "method", "n_components", "match"),
    [
        (np.zeros((20, 1)), "pca", 2, "fewer than the n_components"),
        (np.zeros((20, 2)), "tsne", 3, "fewer than the n_components"),
        (np.zeros((2, 5)), "pca", 2, "at least 3 latents"),
        (np.zeros((3, 5)), "umap", 2, "at least 4 latents"),
        (np.zeros((3, 5)), "tsne", 2, "at least 4 latents"),
        (np.zeros(5), "pca", 2, "2-D array"),
        (np.zeros((4, 2, 2)), "pca", 2, "2-D array"),
        (np.zeros((20, 5)), "isomap", 2, "one of pca, umap, tsne"),
        (np.zeros((20, 5)), "pca", 0, "positive integer"),
        (np.full((20, 5), np.nan), "pca", 2, "finite"),
        (np.array([["a", "b"], ["c", "d"]]), "pca", 2, "real numbers"),
    ],
)
def test_bad_input_is_one_clear_sentence(latents, method, n_components, match):
    with pytest.raises(LatentAtlasError, match=match) as info:
        project(latents, method, n_components=n_components)
    message = str(info.value)
    assert message.endswith(".") and "\n" not in message


# ------------------------------------------------------------------------------------- PCA directions


def test_pca_directions():
    rng = np.random.default_rng(0)
    scales = np.array([5.0, 2.0, 1.0, 0.5, 0.1])
    x = rng.normal(size=(2000, 5)) * scales + np.arange(5.0)
    components, ratio, mean, std = pca_directions(x, 3)
    assert components.shape == (3, 5) and ratio.shape == (3,) and mean.shape == (5,) and std.shape == (3,)
    assert all(a.dtype == np.float32 for a in (components, ratio, mean, std))
    assert np.allclose(components @ components.T, np.eye(3), atol=1e-5)  # orthonormal
    assert np.all(np.diff(ratio) < 0) and np.all(np.diff(std) < 0)
    assert np.allclose(mean, x.mean(axis=0), atol=1e-4)
    # std is the spread of the data along each direction.
    projected = (x - x.mean(axis=0)) @ components.T.astype(np.float64)
    assert np.allclose(std, projected.std(axis=0, ddof=1), rtol=1e-4)
    # The axis-aligned scales come back as the directions.
    assert np.allclose(np.abs(components), np.eye(5)[:3], atol=0.05)
    assert np.allclose(std, scales[:3], rtol=0.08)


def test_pca_directions_bad_k():
    with pytest.raises(LatentAtlasError, match="k=6"):
        pca_directions(np.zeros((10, 5)), 6)
    with pytest.raises(LatentAtlasError, match="positive integer"):
        pca_directions(np.zeros((10, 5)), 0)
