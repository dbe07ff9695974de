"""Nearest neighbours over the full latent space and the per-point neighbourhood kept by a map, on
inputs whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from latentatlas.analysis.neighbours import nearest, neighbours_kept


def test_nearest_on_a_line_and_by_angle():
    x = np.array([[0.0, 0], [1, 0], [3, 0], [-2, 0], [10, 0]])
    rows, d = nearest(x, 0, k=3, metric="euclidean")
    assert rows.tolist() == [1, 3, 2] and d.tolist() == [1, 2, 3]
    # by angle: (2, 2) is as near (1, 1) as can be, whatever its length; (-1, -1) the farthest
    y = np.array([[1.0, 1], [2, 2], [1, 0], [-1, -1]])
    rows, d = nearest(y, 0, k=3, metric="cosine")
    assert rows.tolist() == [1, 2, 3]
    np.testing.assert_allclose(d, [0, 1 - np.cos(np.pi / 4), 2], atol=1e-12)


def test_nearest_matches_brute_force_on_random_data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 16))
    rows, d = nearest(x, 7, k=10, metric="euclidean")
    full = np.linalg.norm(x - x[7], axis=1)
    full[7] = np.inf
    assert rows.tolist() == np.argsort(full)[:10].tolist()
    np.testing.assert_allclose(d, np.sort(full)[:10])
    with pytest.raises(ValueError, match="metric"):
        nearest(x, 0, metric="manhattan")


def test_a_map_that_is_the_space_keeps_every_neighbourhood_and_a_shuffled_one_keeps_chance():
    rng = np.random.default_rng(1)
    low = rng.standard_normal((400, 2))
    # the latent space is the map, embedded in 5-D with a rotation: distances are the same
    q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    high = np.concatenate([low, np.zeros((400, 3))], 1) @ q
    np.testing.assert_array_equal(neighbours_kept(high, low, k=10), 1.0)
    shuffled = low[rng.permutation(400)]
    kept = neighbours_kept(high, shuffled, k=10)
    assert abs(kept.mean() - 10 / 399) < 0.02  # chance: k / (N - 1)
    assert kept.dtype == np.float32 and kept.min() >= 0 and kept.max() <= 1
