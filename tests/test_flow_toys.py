"""Known-answer tests of the flow lab's 2-D toy targets (data/toys.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import cKDTree
from sklearn.datasets import make_moons

from latentatlas.data.toys import (
    RINGS_RADII,
    TOYS,
    GaussianMixture,
    PointSet,
    Toy2D,
    load_points,
    load_toy,
    mixture_of,
    sample_moons,
    sample_named,
    sample_rings,
    sample_spirals,
)
from latentatlas.errors import LatentAtlasError


def _one_sentence(info) -> str:
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# -- Gaussian mixtures ---------------------------------------------------------------------------------


def test_named_mixtures_have_their_documented_parameters():
    three = mixture_of("three-modes")
    r3 = math.sqrt(3)
    np.testing.assert_allclose(three.means_array, [[0, 2], [-r3, -1], [r3, -1]], atol=1e-12)
    np.testing.assert_allclose(three.sigmas_array, [0.2] * 3)
    np.testing.assert_allclose(three.weights_array, [1 / 3] * 3)
    np.testing.assert_allclose(three.mean, [0, 0], atol=1e-12)

    eight = mixture_of("8gaussians")
    h = math.sqrt(2)
    np.testing.assert_allclose(eight.means_array, [[2, 0], [h, h], [0, 2], [-h, h], [-2, 0], [-h, -h], [0, -2], [h, -h]],
                               atol=1e-12)
    np.testing.assert_allclose(eight.sigmas_array, [0.1] * 8)

    grid = mixture_of("25gaussians")
    assert sorted(map(tuple, grid.means_array.tolist())) == [(float(a), float(b)) for a in range(-2, 3) for b in range(-2, 3)]
    np.testing.assert_allclose(grid.sigmas_array, [0.05] * 25)
    np.testing.assert_allclose(grid.weights_array, [0.04] * 25)

    for name in ("moons", "spirals", "checkerboard", "rings"):
        assert mixture_of(name) is None
    assert Toy2D("three-modes").mixture == three and Toy2D("rings").mixture is None


def test_log_prob_matches_scipy_and_mean_is_the_weighted_mean():
    mix = GaussianMixture(means=[[0.0, 1.0, 2.0], [-1.0, 0.5, 0.0]], sigmas=[0.5, 2.0], weights=[1, 3])
    np.testing.assert_allclose(mix.weights_array, [0.25, 0.75])
    np.testing.assert_allclose(mix.mean, [-0.75, 0.625, 0.5])
    assert mix.dim == 3
    x = np.random.default_rng(0).normal(size=(6, 3))
    want = np.log(0.25 * stats.multivariate_normal([0, 1, 2], 0.25 * np.eye(3)).pdf(x)
                  + 0.75 * stats.multivariate_normal([-1, 0.5, 0], 4.0 * np.eye(3)).pdf(x))
    got = mix.log_prob(x)
    assert got.dtype == np.float64 and got.shape == (6,)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # far from every mode the density underflows but its log does not
    assert np.isfinite(GaussianMixture(means=[[0.0, 0.0]], sigmas=0.01).log_prob([[50.0, 0.0]])).all()


def test_sampling_reproduces_weights_means_and_spreads():
    mix = GaussianMixture(means=[[3.0, 0.0], [-2.0, 1.0]], sigmas=[0.5, 0.2], weights=[0.7, 0.3])
    n = 20_000
    x, comp = mix.sample(n, np.random.default_rng(1))
    assert x.dtype == np.float32 and x.shape == (n, 2) and comp.dtype == np.int64
    share = np.mean(comp == 0)
    assert abs(share - 0.7) < 4 * math.sqrt(0.7 * 0.3 / n)
    for k in range(2):
        pts = x[comp == k].astype(np.float64)
        s = mix.sigmas_array[k]
        assert np.all(np.abs(pts.mean(0) - mix.means_array[k]) < 4 * s / math.sqrt(len(pts)))
        assert np.all(np.abs(pts.std(0) / s - 1) < 4 / math.sqrt(2 * len(pts)))


@pytest.mark.parametrize("kwargs, words", [
    ({"means": [[0.0, float("nan")]]}, "mixture means must be finite numbers"),
    ({"means": [["a", "b"]]}, "got text values"),
    ({"means": [[0.0, 0.0], [1.0]]}, "mixture means must be a rectangular array"),
    ({"means": [0.0, 1.0]}, "mixture means have shape (2,)"),
    ({"means": [[0.0, 0.0]], "sigmas": 0.0}, "expected standard deviations above 0"),
    ({"means": [[0.0, 0.0]], "sigmas": [1.0, 2.0]}, "mixture sigmas have shape (2,)"),
    ({"means": [[0.0, 0.0], [1.0, 1.0]], "weights": [1.0, -1.0]}, "non-negative and not all zero"),
    ({"means": [[0.0, 0.0], [1.0, 1.0]], "weights": [0.0, 0.0]}, "non-negative and not all zero"),
    ({"means": [[0.0, 0.0], [1.0, 1.0]], "weights": [1.0]}, "mixture weights have shape (1,)"),
])
def test_bad_mixtures_are_refused_in_one_sentence(kwargs, words):
    with pytest.raises(LatentAtlasError) as info:
        GaussianMixture(**kwargs)
    assert words in _one_sentence(info)


# -- the other named toys -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TOYS)
def test_every_named_toy_spans_about_minus_two_to_two(name):
    x = sample_named(name, 5000, np.random.default_rng(0))
    assert x.dtype == np.float32 and x.shape == (5000, 2)
    assert np.abs(x).max() < 3.0
    assert x[:, 0].min() < -1.6 and x[:, 0].max() > 1.6


def test_moons_are_scikit_learns_moons_centred_and_scaled():
    ours = sample_moons(2000, np.random.default_rng(0), noise=0.0)
    ref, label = make_moons(n_samples=20_000, noise=0.0, shuffle=False)
    ref = (ref - [0.5, 0.25]) * (4 / 3)
    dist, nearest = cKDTree(ref).query(ours)
    assert dist.max() < 1e-3
    upper = label[nearest] == 0  # scikit-learn's outer (upper) moon
    assert abs(upper.mean() - 0.5) < 4 * math.sqrt(0.25 / len(ours))
    # the angle along each half circle is uniform on [0, π]
    unscaled = ours * 0.75 + [0.5, 0.25]
    theta_upper = np.arctan2(unscaled[upper, 1], unscaled[upper, 0])
    theta_lower = np.arctan2(0.5 - unscaled[~upper, 1], 1 - unscaled[~upper, 0])
    for theta in (theta_upper, theta_lower):
        assert stats.kstest(theta / math.pi, "uniform").pvalue > 1e-3


def test_spirals_are_two_half_turn_symmetric_arms_spread_along_their_length():
    x = sample_spirals(4000, np.random.default_rng(2), noise=0.0)
    r = np.hypot(x[:, 0], x[:, 1])
    phi = 3 * math.pi * r / 2  # r = 2φ / (3π) on the first arm
    angle = np.arctan2(x[:, 1], x[:, 0])
    first = np.abs(np.angle(np.exp(1j * (angle - phi)))) < 1e-6
    second = np.abs(np.angle(np.exp(1j * (angle - phi - math.pi)))) < 1e-6
    assert np.all(first | second)
    assert abs(first.mean() - 0.5) < 4 * math.sqrt(0.25 / len(x))
    # φ = 3π√u makes (r / 2)² uniform on [0, 1]
    assert stats.kstest((r / 2) ** 2, "uniform").pvalue > 1e-3


def test_checkerboard_fills_alternate_cells_uniformly():
    x = sample_named("checkerboard", 8000, 3).astype(np.float64)
    cell = np.floor(x).astype(int)
    assert np.all((cell[:, 0] + cell[:, 1]) % 2 == 0)
    assert np.all((x >= -2) & (x < 2))
    counts = np.unique(cell, axis=0, return_counts=True)[1]
    assert len(counts) == 8 and stats.chisquare(counts).pvalue > 1e-3
    frac = (x - np.floor(x)).ravel()
    assert stats.kstest(frac, "uniform").pvalue > 1e-3


def test_rings_lie_on_their_radii_in_proportion_to_their_length():
    x = sample_rings(8000, np.random.default_rng(4), noise=0.0)
    r = np.hypot(x[:, 0], x[:, 1])
    nearest = np.abs(r[:, None] - np.array(RINGS_RADII)[None]).argmin(1)
    np.testing.assert_allclose(r, np.array(RINGS_RADII)[nearest], atol=1e-9)
    counts = np.bincount(nearest, minlength=4)
    expected = len(x) * np.array(RINGS_RADII) / sum(RINGS_RADII)
    assert stats.chisquare(counts, expected).pvalue > 1e-3
    assert stats.kstest((np.arctan2(x[:, 1], x[:, 0]) + math.pi) / (2 * math.pi), "uniform").pvalue > 1e-3


# -- a user's points ---------------------------------------------------------------------------------


def test_points_load_from_npy_and_csv(tmp_path):
    pts = np.array([[0.5, -1.0], [2.0, 3.25], [1e-3, 7.0]])
    np.save(tmp_path / "p.npy", pts)
    np.testing.assert_array_equal(load_points(tmp_path / "p.npy"), pts.astype(np.float32))
    (tmp_path / "h.csv").write_text("x,y\n0.5, -1.0\n\n2.0,3.25\n0.001,7\n")
    np.testing.assert_array_equal(load_points(tmp_path / "h.csv"), pts.astype(np.float32))
    (tmp_path / "s.csv").write_text("0.5 -1.0\n2.0 3.25\n0.001\t7\n")
    np.testing.assert_array_equal(load_points(tmp_path / "s.csv"), pts.astype(np.float32))


def test_points_are_drawn_with_replacement(tmp_path):
    pts = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    np.save(tmp_path / "p.npy", pts)
    draws = PointSet(tmp_path / "p.npy").sample(3000, np.random.default_rng(5))
    which = draws[:, 0] + 2 * draws[:, 1]
    assert set(np.unique(which)) == {0.0, 1.0, 2.0}
    assert stats.chisquare(np.bincount(which.astype(int))).pvalue > 1e-3


def _write(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, np.ndarray):
        np.save(path, content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def _huge_npy_header(path):
    # a valid header announcing more rows than allowed, without the data: the loader must refuse before reading on
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (10_000_001, 2)})
    return path


@pytest.mark.parametrize("name, content, words", [
    ("nan.csv", "1,2\n3,4\nnan,5\n", "has NaN or infinite values in row 3"),
    ("inf.npy", np.array([[1.0, 2.0], [np.inf, 0.0]]), "has NaN or infinite values in row 2"),
    ("one.csv", "1\n2\n3\n", "has 1 column; expected 2 (x, y)"),
    ("one.npy", np.arange(4.0), "has 1 column; expected 2 (x, y)"),
    ("three.csv", "1,2,3\n4,5,6\n", "has 3 columns; expected 2 (x, y)"),
    ("three.npy", np.zeros((4, 3)), "has 3 columns; expected 2 (x, y)"),
    ("single.csv", "x,y\n1,2\n", "has 1 row; expected at least 2 points"),
    ("empty.csv", "", "has 0 rows"),
    ("text.csv", "1,2\n3,four\n", "could not be parsed at line 2 ('3,four')"),
    ("ragged.csv", "1,2\n3,4,5\n", "could not be parsed at line 2"),
    ("binary.csv", bytes(range(256)), "could not be read as text"),
    ("objects.npy", np.array([{"a": 1}, None], dtype=object), "holds object values"),
    ("garbage.npy", b"not an array at all", "could not be read as a .npy array"),
    ("points.txt", "1,2\n3,4\n", "has the extension '.txt'; expected .npy or .csv"),
])
def test_bad_point_files_are_refused_in_one_sentence_naming_the_file(tmp_path, name, content, words):
    path = _write(tmp_path, name, content)
    with pytest.raises(LatentAtlasError) as info:
        load_points(path)
    message = _one_sentence(info)
    assert words in message and name in message


def test_missing_and_oversized_point_files_are_refused(tmp_path):
    with pytest.raises(LatentAtlasError) as info:
        load_toy(str(tmp_path / "absent.csv"))
    assert "does not exist" in _one_sentence(info)
    with pytest.raises(LatentAtlasError) as info:
        load_points(_huge_npy_header(tmp_path / "huge.npy"))
    assert "10,000,001 rows; expected at most 10,000,000" in _one_sentence(info)


# -- the training stream -------------------------------------------------------------------------------


def test_batches_are_a_pure_function_of_seed_and_step():
    toy = Toy2D("moons", batch_size=64, seed=3)
    assert len(toy) == 64
    b = toy.batch_at(5)
    assert b.dtype == np.float32 and b.shape == (64, 2)
    np.testing.assert_array_equal(b, Toy2D("moons", batch_size=64, seed=3).batch_at(np.int64(5)))
    np.testing.assert_array_equal(b, load_toy(toy.spec).batch_at(5))
    assert not np.array_equal(b, toy.batch_at(6))
    assert not np.array_equal(b, Toy2D("moons", batch_size=64, seed=4).batch_at(5))


def test_evaluation_samples_come_from_no_training_step():
    toy = Toy2D("three-modes", batch_size=32, seed=0)
    evaluation = toy.sample(32, seed=0)
    assert evaluation.dtype == np.float32 and evaluation.shape == (32, 2)
    np.testing.assert_array_equal(evaluation, toy.sample(32, seed=0))
    np.testing.assert_array_equal(evaluation, Toy2D("three-modes", batch_size=32, seed=7).sample(32, seed=0))
    training = np.concatenate([Toy2D("three-modes", batch_size=32, seed=s).batch_at(k) for s in range(4) for k in range(50)])
    assert not np.isin(evaluation[:, 0], training[:, 0]).any()


def test_the_stream_follows_its_target():
    # three-modes has mean (0, 0) and per-coordinate variance 2 + 0.2² (the means' second moment is 2 per axis)
    toy = load_toy("three-modes", batch_size=500)
    x = np.concatenate([toy.batch_at(k) for k in range(20)]).astype(np.float64)
    se = math.sqrt(2.04 / len(x))
    assert np.all(np.abs(x.mean(0)) < 4 * se)
    np.testing.assert_allclose(x.var(0), [2.04, 2.04], rtol=0.05)


def test_specs_are_json_and_rebuild_every_kind(tmp_path):
    np.save(tmp_path / "p.npy", np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]))
    toys = [
        load_toy("checkerboard", batch_size=16, seed=2),
        load_toy(str(tmp_path / "p.npy"), batch_size=16, seed=2),
        load_toy({"kind": "toy2d", "name": "mixture", "means": [[0, 0], [3, 1]], "sigmas": 0.5, "weights": [1, 3]}),
    ]
    for toy in toys:
        spec = json.loads(json.dumps(toy.spec))
        assert spec["kind"] == "toy2d"
        again = load_toy(spec)
        assert again == toy
        np.testing.assert_array_equal(again.batch_at(3), toy.batch_at(3))
    assert toys[1].spec["path"] == str(tmp_path / "p.npy")
    custom = toys[2].mixture
    np.testing.assert_allclose(custom.weights_array, [0.25, 0.75])
    np.testing.assert_allclose(custom.sigmas_array, [0.5, 0.5])


@pytest.mark.parametrize("spec, words", [
    ("swirl", "toy 'swirl' is unknown; expected one of three-modes, 8gaussians, 25gaussians, moons, spirals, checkerboard, rings"),
    ({"name": "swirl"}, "toy 'swirl' is unknown"),
    ({"name": "moons", "colour": "red"}, "unknown keys colour"),
    ({"kind": "array_file", "name": "moons"}, "kind 'array_file'; expected 'toy2d'"),
    ({"name": 3}, "name 3; expected a string"),
    ({"name": "points", "path": 5}, "path 5; expected a string"),
    ({"name": "points"}, "toy 'points' has no path"),
    ({"name": "moons", "path": "p.npy"}, "toy 'moons' was given a path"),
    ({"name": "moons", "means": [[0, 0]]}, "toy 'moons' was given means"),
    ({"name": "mixture", "means": [["0", "0"]]}, "mixture means must be numbers, got text values"),
    ({"name": "mixture", "means": "0,0"}, "means of type str"),
    ({"name": "mixture", "means": {"a": 1}}, "means of type dict"),
    ({"name": "mixture", "means": [[0, 0, 0]]}, "means in 3 dimensions; expected pairs (x, y)"),
    ({"name": "moons", "batch_size": 2.5}, "batch_size must be a whole number"),
    ({"name": "moons", "seed": -1}, "seed must be between 0"),
    (42, "toy 42 is unknown"),
])
def test_bad_specs_are_refused_in_one_sentence(spec, words):
    with pytest.raises(LatentAtlasError) as info:
        load_toy(spec)
    assert words in _one_sentence(info)
