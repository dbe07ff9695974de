"""Static figures: each returns a Figure of the expected make-up; save writes PNGs atomically."""

from __future__ import annotations

import os

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from latentatlas import figures
from latentatlas.analysis.traversal import manifold_grid
from latentatlas.errors import LatentAtlasError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _images(n: int, c: int = 1, h: int = 8, w: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, c, h, w)).astype(np.float32)


def _coords(n: int = 120, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 2))


def _png_size(path) -> tuple[int, int]:
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def _tick_texts(labels) -> list[str]:
    return [t.get_text() for t in labels]


# ---------------------------------------------------------------------------------------- image grids


def test_reconstructions_one_gray_montage():
    fig = figures.reconstructions(_images(12), _images(12, seed=1), n=6)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert _tick_texts(ax.get_yticklabels()) == ["input", "reconstruction"]
    assert ax.get_xticks().size == 0
    image = ax.images[0]
    assert image.get_cmap().name == "gray" and image.get_clim() == (0.0, 1.0)
    mont = image.get_array()
    assert mont.ndim == 2 and mont.shape[1] > 3 * mont.shape[0]  # 2 rows × 6 columns


def test_reconstructions_rgb_and_bad_shapes():
    fig = figures.reconstructions(_images(3, c=3), _images(3, c=3, seed=2))
    assert len(fig.axes) == 1 and fig.axes[0].images[0].get_array().shape[-1] == 3
    with pytest.raises(LatentAtlasError, match="same shape"):
        figures.reconstructions(_images(3), _images(3, h=9))
    with pytest.raises(LatentAtlasError, match="C in"):
        figures.reconstructions(_images(3, c=2), _images(3, c=2))


def test_traversal_grid_labels_rows_and_columns():
    grid = _images(4 * 7).reshape(4, 7, 1, 8, 8)
    labels = [f"z{d} (KL {kl:.2f})" for d, kl in [(3, 2.31), (0, 1.2), (5, 0.4), (1, 0.01)]]
    values = np.linspace(-3, 3, 7)
    fig = figures.traversal_grid(grid, labels, values)
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    assert _tick_texts(ax.get_yticklabels()) == labels
    assert _tick_texts(ax.get_xticklabels()) == ["-3", "-2", "-1", "0", "1", "2", "3"]
    # Per-row ranges go into the row labels.
    per_row = np.stack([np.linspace(-k, k, 7) for k in (1.0, 2.0, 3.0, 4.0)])
    fig = figures.traversal_grid(grid, labels, per_row)
    assert _tick_texts(fig.axes[0].get_yticklabels())[1] == "z0 (KL 1.20)  [-2, 2]"
    with pytest.raises(LatentAtlasError, match="row_labels"):
        figures.traversal_grid(grid, labels[:3], values)
    with pytest.raises(LatentAtlasError, match="col_values"):
        figures.traversal_grid(grid, labels, values[:5])


def test_interpolation_strip():
    fig = figures.interpolation_strip(_images(9, c=3), "slerp")
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    assert "slerp" in ax.get_title()
    ticks = _tick_texts(ax.get_xticklabels())
    assert ticks[0] == "0" and ticks[-1] == "1" and len(ticks) == 9


def test_manifold_tiles_and_axis_values():
    n = 5
    z, _ = manifold_grid(n)
    fig = figures.manifold(_images(n * n), n, z=z)
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    assert _tick_texts(ax.get_xticklabels())[0] == "-2.5" and _tick_texts(ax.get_yticklabels())[0] == "2.5"
    mont = ax.images[0].get_array()
    assert mont.shape[0] == mont.shape[1]  # square grid of square tiles, no gaps
    assert len(figures.manifold(_images(n * n), n).axes) == 1
    with pytest.raises(LatentAtlasError, match="n\\*n = 25"):
        figures.manifold(_images(24), n)


# -------------------------------------------------------------------------------------------- scatter


def test_latent_map_categorical_has_a_legend():
    labels = np.arange(120) % 4
    fig = figures.latent_map(_coords(), labels, "digit", categorical=True)
    assert len(fig.axes) == 1
    legend = fig.axes[0].get_legend()
    assert legend is not None and legend.get_title().get_text() == "digit"
    assert _tick_texts(legend.get_texts()) == ["0", "1", "2", "3"]


def test_latent_map_continuous_has_a_colorbar():
    values = np.linspace(0, 1, 120)
    values[3] = np.nan  # drawn in grey, not dropped silently
    fig = figures.latent_map(_coords(), values, "scale", categorical=False)
    assert len(fig.axes) == 2
    assert fig.axes[1].get_ylabel() == "scale"
    assert sum(len(c.get_offsets()) for c in fig.axes[0].collections) == 120
    assert len(figures.latent_map(_coords()).axes) == 1
    with pytest.raises(LatentAtlasError, match="\\(120,\\)"):
        figures.latent_map(_coords(), values[:10], "scale")


def test_latent_maps_one_panel_per_colouring():
    n = 120
    colorings = {
        "shape": (np.arange(n) % 3, True),
        "scale": (np.linspace(0, 1, n), False),
        "label": np.array(["a", "b"] * (n // 2)),  # bare array: inferred categorical
        "x": (np.random.default_rng(0).random(n), False),
    }
    fig = figures.latent_maps(_coords(n), colorings)
    assert len(fig.axes) == 4 + 2  # four panels, two colourbars
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["shape", "scale", "label", "x"]
    assert len(figures.latent_maps(_coords(n), {}).axes) == 1


# --------------------------------------------------------------------------------------------- charts


def test_kl_per_dim_sorted_with_dim_labels():
    kl = np.array([0.1, 2.5, 0.0, 1.0, 0.005])
    fig = figures.kl_per_dim(kl, threshold=0.01)
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert heights == sorted(kl, reverse=True)
    assert _tick_texts(ax.get_xticklabels()) == ["1", "3", "0", "4", "2"]


def test_training_curves_one_panel_per_quantity():
    history = [
        {"step": s, "loss": 10.0 / (s + 1), "recon": 8.0 / (s + 1), "kl": 0.5, "epoch": s // 10, "note": "x"}
        for s in range(60)
    ]
    history[5]["tc"] = 0.3  # logged only sometimes
    history[40]["tc"] = 0.2
    fig = figures.training_curves(history)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "recon", "kl", "tc"]
    assert fig.axes[0].get_yscale() == "linear"
    with pytest.raises(LatentAtlasError, match="non-empty"):
        figures.training_curves([])
    with pytest.raises(LatentAtlasError, match="no numeric"):
        figures.training_curves([{"step": 0, "note": "x"}])


def test_training_curves_log_scale_for_a_loss_over_decades():
    fig = figures.training_curves([{"step": s, "loss": 1000.0 * 0.9**s} for s in range(100)])
    assert len(fig.axes) == 1 and fig.axes[0].get_yscale() == "log"


def test_figures_leave_global_style_alone():
    before = dict(matplotlib.rcParams)
    figures.kl_per_dim(np.ones(3))
    figures.reconstructions(_images(2), _images(2))
    assert dict(matplotlib.rcParams) == before


# ----------------------------------------------------------------------------------------------- save


def test_save_writes_a_png_and_no_temp_file(tmp_path):
    fig = figures.reconstructions(_images(12), _images(12, seed=1), n=6)
    path = figures.save(fig, tmp_path / "recon.png")
    assert path == tmp_path / "recon.png"
    assert os.listdir(tmp_path) == ["recon.png"]
    width, height = _png_size(path)
    assert 400 <= width <= 1000 and 120 <= height <= 400
    # Overwriting an existing file is atomic too and leaves exactly one file.
    figures.save(figures.kl_per_dim(np.arange(8.0)), path)
    assert os.listdir(tmp_path) == ["recon.png"]
    width, height = _png_size(path)
    assert 300 <= width <= 1300 and 200 <= height <= 500


def test_png_bytes():
    data = figures.png_bytes(figures.kl_per_dim(np.arange(4.0)))
    assert data.startswith(PNG_SIGNATURE)


def test_save_into_a_missing_folder_fails_cleanly(tmp_path):
    fig = figures.kl_per_dim(np.arange(4.0))
    with pytest.raises(LatentAtlasError, match="does not exist"):
        figures.save(fig, tmp_path / "missing" / "kl.png")
    assert os.listdir(tmp_path) == []


def test_save_failing_midway_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "kl.png"
    figures.save(figures.kl_per_dim(np.arange(4.0)), path)
    old = path.read_bytes()
    fig = figures.kl_per_dim(np.arange(6.0))

    def broken_savefig(f, **kwargs):
        f.write(PNG_SIGNATURE + b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(fig, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        figures.save(fig, path)
    assert os.listdir(tmp_path) == ["kl.png"]
    assert path.read_bytes() == old


def test_save_closes_a_pyplot_figure(tmp_path):
    plt = pytest.importorskip("matplotlib.pyplot")
    fig = plt.figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    number = fig.number
    figures.save(fig, tmp_path / "line.png")
    assert not plt.fignum_exists(number)
    _png_size(tmp_path / "line.png")
