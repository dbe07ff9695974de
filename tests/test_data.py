"""Tests for latentatlas.data: sprites geometry and indexing, digits, image folders, array files, load_dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from latentatlas.data import (
    ArrayDataset,
    Sprites,
    load_array_file,
    load_dataset,
    load_digits,
    load_image_folder,
)
from latentatlas.errors import LatentAtlasError

N = 737_280


@pytest.fixture(scope="module")
def sprites() -> Sprites:
    return Sprites()


def _factors(shape=0, scale=5, orientation=0, pos_x=10, pos_y=10) -> np.ndarray:
    return np.array([[shape, scale, orientation, pos_x, pos_y]], dtype=np.int64)


def _centroid(img: np.ndarray) -> tuple[float, float]:
    rows, cols = np.nonzero(img.reshape(64, 64))
    return rows.mean(), cols.mean()


# -- sprites: indexing ---------------------------------------------------------------------------


def test_sprites_interface(sprites):
    assert len(sprites) == N
    assert sprites.name == "sprites" and sprites.spec == {"kind": "sprites"}
    assert sprites.factor_names == ("shape", "scale", "orientation", "pos_x", "pos_y")
    assert sprites.factor_sizes == (3, 6, 40, 32, 32)
    assert sprites.labels is None and sprites.sample_shape == (1, 64, 64)
    values = sprites.factor_values()
    np.testing.assert_array_equal(values["shape"], [0, 1, 2])
    np.testing.assert_allclose(values["scale"], np.linspace(0.5, 1, 6))
    np.testing.assert_allclose(values["orientation"][[0, -1]], [0, 2 * np.pi])
    np.testing.assert_allclose(values["pos_x"], np.linspace(0, 1, 32))
    assert [len(values[k]) for k in sprites.factor_names] == list(sprites.factor_sizes)


def test_index_factor_round_trip(sprites):
    rng = np.random.default_rng(0)
    idx = np.concatenate([[0, N - 1, 1, 32, 1024], rng.integers(0, N, 2000)])
    f = sprites.index_to_factors(idx)
    assert f.shape == (len(idx), 5) and f.dtype == np.int64
    assert np.all(f >= 0) and np.all(f < np.array(sprites.factor_sizes))
    np.testing.assert_array_equal(sprites.factors_to_index(f), idx)
    np.testing.assert_array_equal(f[0], [0, 0, 0, 0, 0])
    np.testing.assert_array_equal(f[1], [2, 5, 39, 31, 31])
    np.testing.assert_array_equal(f[2], [0, 0, 0, 0, 1])  # last factor fastest
    np.testing.assert_array_equal(f[3], [0, 0, 0, 1, 0])
    np.testing.assert_array_equal(f[4], [0, 0, 1, 0, 0])
    np.testing.assert_array_equal(sprites.get_factors(idx), f)


def test_all_factor_combinations_have_distinct_indices(sprites):
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in sprites.factor_sizes], indexing="ij"), -1).reshape(-1, 5)
    np.testing.assert_array_equal(sprites.factors_to_index(grid), np.arange(N))


def test_same_index_same_image_in_any_batch(sprites):
    rng = np.random.default_rng(1)
    idx = rng.integers(0, N, 50)
    alone = np.stack([sprites.get(np.array([i]))[0] for i in idx[:5]])
    batch = sprites.get(idx)
    shuffled = sprites.get(np.concatenate([rng.integers(0, N, 7), idx[:5][::-1]]))[7:][::-1]
    np.testing.assert_array_equal(batch[:5], alone)
    np.testing.assert_array_equal(shuffled, alone)
    np.testing.assert_array_equal(Sprites().get(idx), batch)  # a fresh instance agrees too
    assert batch.shape == (50, 1, 64, 64) and batch.dtype == np.float32


def test_images_binary_nonempty_and_inside(sprites):
    rng = np.random.default_rng(2)
    corners = sprites.factors_to_index(
        np.array([[s, 5, o, px, py] for s in range(3) for o in (0, 5, 13) for px in (0, 31) for py in (0, 31)])
    )
    x = sprites.get(np.concatenate([corners, rng.integers(0, N, 500)]))
    assert set(np.unique(x)) == {0.0, 1.0}
    assert np.all(x.sum(axis=(1, 2, 3)) >= 20)
    border = np.concatenate([x[:, 0, 0, :], x[:, 0, -1, :], x[:, 0, :, 0], x[:, 0, :, -1]], axis=1)
    assert border.sum() == 0


def test_pos_x_moves_right_and_pos_y_moves_down(sprites):
    for shape in range(3):
        for pos in (0, 15, 30):
            a = sprites.render(_factors(shape=shape, orientation=7, pos_x=pos))[0]
            b = sprites.render(_factors(shape=shape, orientation=7, pos_x=pos + 1))[0]
            (ra, ca), (rb, cb) = _centroid(a), _centroid(b)
            assert cb == pytest.approx(ca + 1) and rb == pytest.approx(ra)
            c = sprites.render(_factors(shape=shape, orientation=7, pos_y=pos + 1))[0]
            d = sprites.render(_factors(shape=shape, orientation=7, pos_y=pos))[0]
            assert _centroid(c)[0] == pytest.approx(_centroid(d)[0] + 1)
    # the full range of positions spans a good part of the canvas
    left = _centroid(sprites.render(_factors(pos_x=0))[0])[1]
    right = _centroid(sprites.render(_factors(pos_x=31))[0])[1]
    assert right - left == pytest.approx(31)


def test_scale_increases_pixel_count(sprites):
    for shape in range(3):
        f = np.array([[shape, s, 3, 16, 16] for s in range(6)])
        counts = sprites.render(f).sum(axis=(1, 2, 3))
        assert np.all(np.diff(counts) > 0), counts
    square_at_1 = sprites.render(_factors(shape=0, scale=5))[0, 0]
    rows, cols = np.nonzero(square_at_1)
    assert 16 <= cols.max() - cols.min() + 1 <= 28  # about a third of the canvas


def test_shapes_differ_and_orientation_matters(sprites):
    x = sprites.render(np.array([[s, 5, 0, 16, 16] for s in range(3)]))
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(x[i] - x[j]).sum() > 30
    hearts = sprites.render(np.array([[2, 5, o, 16, 16] for o in range(40)]))
    diffs = np.abs(hearts[1:20] - hearts[0]).sum(axis=(1, 2, 3))
    assert np.all(diffs > 0)
    assert np.abs(hearts[10] - hearts[0]).sum() > 50  # a quarter turn
    assert np.abs(hearts[20] - hearts[0]).sum() > 100  # upside down
    np.testing.assert_array_equal(hearts[0], hearts[39])  # 0 and 2*pi are the same angle, as in dSprites
    # the heart is upright at orientation 0: the point is at the bottom, so the lower rows are narrower
    rows = np.nonzero(hearts[0, 0].any(axis=1))[0]
    width = hearts[0, 0].sum(axis=1)
    assert width[rows[-1]] < width[rows[0]] + 4 and width[rows[-2]] < width[(rows[0] + rows[-1]) // 2]
    # the ellipse is elongated: a quarter turn (10 of 39 steps ~ 92 degrees) swaps its extents
    e0 = sprites.render(_factors(shape=1, orientation=0))[0, 0]
    assert e0.any(axis=0).sum() > 1.6 * e0.any(axis=1).sum()


def test_render_shapes_and_scalars(sprites):
    one = sprites.render(np.array([0, 5, 0, 3, 4]))
    assert one.shape == (1, 64, 64)
    np.testing.assert_array_equal(sprites.get(7), sprites.get(np.array([7]))[0])
    assert sprites.index_to_factors(7).shape == (5,)
    assert sprites.render(np.zeros((0, 5), dtype=np.int64)).shape == (0, 1, 64, 64)


def test_sample_factors_uniform_and_in_range(sprites):
    rng = np.random.default_rng(3)
    f = sprites.sample_factors(30_000, rng)
    assert f.shape == (30_000, 5) and f.dtype == np.int64
    for k, size in enumerate(sprites.factor_sizes):
        counts = np.bincount(f[:, k], minlength=size)
        assert len(counts) == size
        expected = len(f) / size
        assert np.all(np.abs(counts - expected) < 6 * np.sqrt(expected))
    obs = sprites.sample_observations_from_factors(f[:10], rng)
    np.testing.assert_array_equal(obs, sprites.render(f[:10]))


def test_sample_materialises_distinct_images(sprites):
    ds = sprites.sample(200, seed=4)
    assert isinstance(ds, ArrayDataset) and len(ds) == 200 and ds.name == "sprites"
    assert ds.x.shape == (200, 1, 64, 64) and ds.x.dtype == np.float32 and ds.labels is None
    assert ds.factor_names == sprites.factor_names and ds.factor_sizes == sprites.factor_sizes
    idx = sprites.factors_to_index(ds.factors)
    assert len(np.unique(idx)) == 200
    np.testing.assert_array_equal(ds.x, sprites.get(idx))
    np.testing.assert_array_equal(sprites.sample(200, seed=4).factors, ds.factors)
    assert not np.array_equal(sprites.sample(200, seed=5).factors, ds.factors)
    again = load_dataset(json.loads(json.dumps(ds.spec)))
    np.testing.assert_array_equal(again.x, ds.x)


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda s: s.get(np.array([N])), "737280"),
        (lambda s: s.get(np.array([-1])), "sprite indices"),
        (lambda s: s.get(np.array([1.5])), "integers"),
        (lambda s: s.render(np.array([[3, 0, 0, 0, 0]])), "sprite factors"),
        (lambda s: s.render(np.array([[0, 0, 0, 0]])), "(N, 5)"),
        (lambda s: s.sample(0, seed=0), "n=0"),
        (lambda s: s.sample(10, seed="a"), "seed"),
    ],
)
def test_sprites_bad_input(sprites, call, fragment):
    with pytest.raises(LatentAtlasError) as info:
        call(sprites)
    assert fragment in str(info.value)


# -- digits --------------------------------------------------------------------------------------


def test_digits():
    ds = load_digits()
    assert ds.x.shape == (1797, 1, 8, 8) and ds.x.dtype == np.float32
    assert ds.x.min() == 0.0 and ds.x.max() == 1.0
    assert ds.labels.dtype == np.int64 and set(ds.labels.tolist()) == set(range(10))
    # the exact content of sklearn.datasets.load_digits
    assert np.bincount(ds.labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert ds.labels[:5].tolist() == [0, 1, 2, 3, 4] and ds.x.sum() * 16 == 561718
    np.testing.assert_array_equal(ds.factors[:, 0], ds.labels)
    assert ds.factor_names == ("digit",) and ds.factor_sizes == (10,)
    assert ds.name == "digits" and ds.spec == {"kind": "digits"}
    assert len(ds) == 1797 and ds.sample_shape == (1, 8, 8)
    np.testing.assert_array_equal(ds.get(np.array([3, 1])), ds.x[[3, 1]])
    np.testing.assert_array_equal(ds.get_factors(np.array([3])), ds.factors[[3]])


# -- image folders -------------------------------------------------------------------------------


def _write_png(path, size, color, mode="RGB"):
    Image.new(mode, size, color).save(path)


@pytest.fixture
def image_folder(tmp_path):
    root = tmp_path / "pets"
    (root / "dogs").mkdir(parents=True)
    (root / "cats").mkdir()
    (root / "empty").mkdir()
    _write_png(root / "cats" / "a.png", (40, 30), (255, 0, 0))
    _write_png(root / "cats" / "b.png", (20, 20), (255, 0, 0))
    _write_png(root / "dogs" / "c.png", (50, 80), (0, 0, 255))
    _write_png(root / "dogs" / "d.jpg", (16, 16), (0, 0, 255))
    _write_png(root / "dogs" / "e.png", (33, 17), 128, mode="L")
    (root / "dogs" / "notes.txt").write_text("not an image")
    return root


def test_image_folder(image_folder):
    ds = load_image_folder(image_folder, size=12)
    assert ds.x.shape == (5, 3, 12, 12) and ds.x.dtype == np.float32
    np.testing.assert_array_equal(ds.labels, [0, 0, 1, 1, 1])  # cats before dogs
    np.testing.assert_array_equal(ds.factors[:, 0], ds.labels)
    assert ds.factor_names == ("class",) and ds.factor_sizes == (2,)
    np.testing.assert_allclose(ds.x[0, :, 6, 6], [1, 0, 0])  # red cat
    np.testing.assert_allclose(ds.x[2, :, 6, 6], [0, 0, 1])  # blue dog
    np.testing.assert_allclose(ds.x[4], 128 / 255, atol=1e-6)  # grey becomes RGB
    assert ds.spec["path"] == str(image_folder.resolve()) and ds.spec["size"] == 12
    assert ds.spec["grayscale"] is False and ds.spec["classes"] == ["cats", "dogs"]
    assert ds.name == "pets"

    gray = load_image_folder(image_folder, size=8, grayscale=True)
    assert gray.x.shape == (5, 1, 8, 8)
    assert 0.25 < gray.x[0].mean() < 0.35  # red in luma ~ 0.299

    again = load_dataset(json.loads(json.dumps(gray.spec)))
    np.testing.assert_array_equal(again.x, gray.x)
    by_path = load_dataset(str(image_folder), size=8, grayscale=True)
    np.testing.assert_array_equal(by_path.x, gray.x)


def test_image_folder_without_class_subfolders(tmp_path):
    _write_png(tmp_path / "a.png", (9, 9), (0, 255, 0))
    ds = load_image_folder(tmp_path, size=4)
    assert ds.x.shape == (1, 3, 4, 4) and ds.factor_sizes == (1,)


def test_image_folder_errors(tmp_path, image_folder):
    with pytest.raises(LatentAtlasError, match="does not exist") as info:
        load_image_folder(tmp_path / "nope")
    assert "nope" in str(info.value)
    empty = tmp_path / "nothing"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "readme.txt").write_text("x")
    with pytest.raises(LatentAtlasError, match="holds no images") as info:
        load_image_folder(empty)
    assert "nothing" in str(info.value)
    (image_folder / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(LatentAtlasError, match="broken.png"):
        load_image_folder(image_folder)
    with pytest.raises(LatentAtlasError, match="size"):
        load_image_folder(image_folder, size=0)


# -- array files ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, expected",
    [
        ((5, 7), (5, 7)),
        ((5, 6, 8), (5, 1, 6, 8)),
        ((5, 6, 8, 1), (5, 1, 6, 8)),
        ((5, 6, 8, 3), (5, 3, 6, 8)),
        ((5, 3, 6, 8), (5, 3, 6, 8)),
        ((5, 1, 6, 8), (5, 1, 6, 8)),
        ((5, 2, 6, 8), (5, 2, 6, 8)),
    ],
)
def test_npy_shapes(tmp_path, shape, expected):
    rng = np.random.default_rng(0)
    x = rng.random(shape).astype(np.float64)
    np.save(tmp_path / "a.npy", x)
    ds = load_array_file(tmp_path / "a.npy")
    assert ds.x.shape == expected and ds.x.dtype == np.float32
    assert ds.labels is None and ds.factors is None and ds.factor_names == ()
    if len(shape) == 4 and shape[-1] in (1, 3) and shape[1] not in (1, 3):
        np.testing.assert_allclose(ds.x, x.transpose(0, 3, 1, 2).astype(np.float32))
    else:
        np.testing.assert_allclose(ds.x.reshape(shape), x.astype(np.float32))
    assert ds.spec == {"kind": "array_file", "path": str((tmp_path / "a.npy").resolve())}
    np.testing.assert_array_equal(load_dataset(ds.spec).x, ds.x)


def test_uint8_scaled_and_vectors_unscaled(tmp_path):
    x = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    np.save(tmp_path / "u.npy", x)
    ds = load_array_file(tmp_path / "u.npy")
    np.testing.assert_allclose(ds.x[0, 0], [[0, 1], [0.2, 0.4]], atol=1e-7)
    v = np.array([[-3.0, 40.0], [1.0, 2.0]])
    np.save(tmp_path / "v.npy", v)
    np.testing.assert_allclose(load_array_file(tmp_path / "v.npy").x, v)


def test_npz_with_labels_and_factors(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (6, 4, 4, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2, 0, 1, 2], dtype=np.int32)
    factors = np.array([[0, 1], [1, 0], [2, 3], [0, 0], [1, 1], [2, 2]])
    np.savez(tmp_path / "d.npz", x=x, labels=labels, factors=factors, factor_names=np.array(["colour", "size"]))
    ds = load_array_file(tmp_path / "d.npz")
    assert ds.x.shape == (6, 3, 4, 4)
    np.testing.assert_allclose(ds.x, x.transpose(0, 3, 1, 2) / 255, atol=1e-7)
    assert ds.labels.dtype == np.int64 and ds.labels.tolist() == labels.tolist()
    assert ds.factors.dtype == np.int64 and ds.factor_names == ("colour", "size") and ds.factor_sizes == (3, 4)
    assert ds.name == "d"

    np.savez(tmp_path / "e.npz", x=rng.random((3, 2)), factors=np.array([0, 1, 1]))
    e = load_array_file(tmp_path / "e.npz")
    assert e.factors.shape == (3, 1) and e.factor_names == ("factor_0",) and e.factor_sizes == (2,)
    assert load_dataset(str(tmp_path / "e.npz")).factor_sizes == (2,)


def _expect_error(path, *fragments):
    with pytest.raises(LatentAtlasError) as info:
        load_array_file(path)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    assert "\n" not in message
    return message


def test_array_file_errors(tmp_path):
    _expect_error(tmp_path / "missing.npy", "missing.npy", "does not exist")
    np.save(tmp_path / "one_d.npy", np.zeros(5))
    _expect_error(tmp_path / "one_d.npy", "one_d.npy", "shape (5,)")
    np.save(tmp_path / "five_d.npy", np.zeros((2, 1, 2, 2, 2)))
    _expect_error(tmp_path / "five_d.npy", "five_d.npy", "expected")
    np.save(tmp_path / "strings.npy", np.array([["a", "b"]]))
    _expect_error(tmp_path / "strings.npy", "strings.npy", "numeric")
    np.save(tmp_path / "nan.npy", np.array([[0.0, np.nan]]))
    _expect_error(tmp_path / "nan.npy", "nan.npy", "NaN")
    np.save(tmp_path / "inf.npy", np.array([[0.0, np.inf]]))
    _expect_error(tmp_path / "inf.npy", "inf.npy", "infinite")
    np.save(tmp_path / "big.npy", np.full((2, 3, 3), 2.0))
    _expect_error(tmp_path / "big.npy", "big.npy", "[0, 1]")
    np.savez(tmp_path / "nox.npz", y=np.zeros((2, 2)))
    _expect_error(tmp_path / "nox.npz", "nox.npz", "'x'")
    np.savez(tmp_path / "short.npz", x=np.zeros((4, 2)), labels=np.arange(3))
    _expect_error(tmp_path / "short.npz", "short.npz", "labels", "3 rows")
    np.savez(tmp_path / "fshort.npz", x=np.zeros((4, 2)), factors=np.zeros((5, 2), dtype=int))
    _expect_error(tmp_path / "fshort.npz", "fshort.npz", "factors")
    np.savez(tmp_path / "fnames.npz", x=np.zeros((4, 2)), factors=np.zeros((4, 2), dtype=int), factor_names=np.array(["a"]))
    _expect_error(tmp_path / "fnames.npz", "fnames.npz", "factor_names")
    np.savez(tmp_path / "flab.npz", x=np.zeros((4, 2)), labels=np.array([0.5, 1, 2, 3]))
    _expect_error(tmp_path / "flab.npz", "flab.npz", "integers")
    (tmp_path / "junk.npy").write_bytes(b"not numpy at all")
    _expect_error(tmp_path / "junk.npy", "junk.npy")
    (tmp_path / "junk.npz").write_bytes(b"PK not a zip")
    _expect_error(tmp_path / "junk.npz", "junk.npz")
    (tmp_path / "x.csv").write_text("1,2")
    _expect_error(tmp_path / "x.csv", "x.csv", ".npy or .npz")
    np.save(tmp_path / "empty.npy", np.zeros((0, 3)))
    _expect_error(tmp_path / "empty.npy", "empty.npy", "no samples")


def test_object_arrays_refused_without_unpickling(tmp_path):
    class Boom:
        def __reduce__(self):  # would run on unpickling
            return (pytest.fail, ("unpickled!",))

    obj = np.empty(2, dtype=object)
    obj[0], obj[1] = Boom(), 1
    np.save(tmp_path / "obj.npy", obj, allow_pickle=True)
    _expect_error(tmp_path / "obj.npy", "obj.npy", "object array")
    np.savez(tmp_path / "obj.npz", x=np.zeros((2, 2)), labels=obj)
    _expect_error(tmp_path / "obj.npz", "obj.npz", "object array", "labels")


# -- ArrayDataset and load_dataset ---------------------------------------------------------------


def test_array_dataset_validation():
    ds = ArrayDataset(x=np.zeros((3, 2), dtype=np.float64), labels=[0, 1, 1], name="toy")
    assert ds.x.dtype == np.float32 and ds.labels.dtype == np.int64 and ds.get_factors([0]) is None
    with pytest.raises(LatentAtlasError, match="toy"):
        ArrayDataset(x=np.zeros((3, 2)), labels=np.arange(4), name="toy")
    with pytest.raises(LatentAtlasError, match="names"):
        ArrayDataset(x=np.zeros((3, 2)), factors=np.zeros((3, 2), dtype=int), factor_names=("a",), factor_sizes=(1,))
    with pytest.raises(LatentAtlasError, match="outside"):
        ArrayDataset(x=np.zeros((3, 2)), factors=np.full((3, 1), 2), factor_names=("a",), factor_sizes=(2,))
    with pytest.raises(LatentAtlasError, match=r"\[0, 1\]"):
        ArrayDataset(x=np.full((1, 1, 2, 2), 3.0))


def test_load_dataset_by_name_and_spec(tmp_path):
    sprites = load_dataset("sprites")
    assert isinstance(sprites, Sprites)
    assert isinstance(load_dataset(sprites.spec), Sprites)
    small = load_dataset("sprites", n=10, seed=1)
    assert isinstance(small, ArrayDataset) and len(small) == 10
    digits = load_dataset("digits")
    np.testing.assert_array_equal(load_dataset(json.loads(json.dumps(digits.spec))).x, digits.x)
    np.save(tmp_path / "a.npy", np.ones((2, 3)))
    assert load_dataset(tmp_path / "a.npy").x.shape == (2, 3)


@pytest.mark.parametrize(
    "spec, fragments",
    [
        ("mnist", ["'mnist'", "sprites", "digits"]),
        ("/no/such/folder", ["'/no/such/folder'", "does not exist"]),
        ("data.npz", ["'data.npz'", "does not exist"]),
        ({"kind": "cifar"}, ["'cifar'", "sprites"]),
        ({"kind": "digits", "size": 3}, ["size", "digits"]),
        ({"kind": "array_file"}, ["array_file", "path"]),
        ({"kind": "sprites", "seed": 3}, ["seed", "n"]),
        (42, ["42"]),
    ],
)
def test_load_dataset_errors(spec, fragments):
    with pytest.raises(LatentAtlasError) as info:
        load_dataset(spec)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_load_dataset_file_of_wrong_kind(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(LatentAtlasError, match="notes.txt"):
        load_dataset(str(tmp_path / "notes.txt"))


def test_data_does_not_import_torch_or_models():
    import subprocess
    import sys

    code = (
        "import sys, latentatlas.data as d; d.load_digits(); d.Sprites().get([0]); "
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('latentatlas.models', 'latentatlas.atlas'))]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_sprites_name_their_shapes():
    from latentatlas.data import Sprites

    s = Sprites()
    assert s.factor_value_names()["shape"] == ("square", "ellipse", "heart")
    assert len(s.factor_value_names()["shape"]) == s.factor_sizes[0]
