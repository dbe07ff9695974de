"""Static figures: each returns a Figure of the expected make-up, sized for print (page or column wide,
no text under 8 pt, no empty panels, colour bars beside their plots, one colour per category); save writes
PNG, SVG and PDF atomically and reproducibly."""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image

from latentatlas import figures
from latentatlas.analysis.traversal import manifold_grid
from latentatlas.errors import LatentAtlasError
from latentatlas.labs.vae.figures import training_quantities

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
    assert len(fig.axes) == 1 and len(fig.axes[0].child_axes) == 1  # the colourbar is an inset of its plot
    assert fig.axes[0].child_axes[0].get_ylabel() == "scale"
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
    assert len(fig.axes) == 4  # four panels; the two colourbars are insets of theirs
    assert [len(ax.child_axes) for ax in fig.axes] == [0, 1, 0, 1]
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


THREE = ["recon.pdf", "recon.png", "recon.svg"]


def test_save_writes_a_png_and_no_temp_file(tmp_path):
    fig = figures.reconstructions(_images(12), _images(12, seed=1), n=6)
    path = figures.save(fig, tmp_path / "recon.png")
    assert path == tmp_path / "recon.png"
    assert sorted(os.listdir(tmp_path)) == THREE
    width, height = _png_size(path)
    # a page wide at most, at the PNG's 200 dpi
    assert 600 <= width <= figures.PAGE_WIDTH * figures.PNG_DPI + 1 and 150 <= height <= 600
    # Overwriting existing files is atomic too and leaves exactly the three.
    figures.save(figures.kl_per_dim(np.arange(8.0)), path)
    assert sorted(os.listdir(tmp_path)) == THREE
    width, height = _png_size(path)
    assert width == round(figures.COLUMN_WIDTH * figures.PNG_DPI) and 300 <= height <= 600


def test_save_writes_svg_and_pdf_beside_the_png(tmp_path):
    figures.save(figures.kl_per_dim(np.arange(5.0)), tmp_path / "kl.png")
    assert sorted(os.listdir(tmp_path)) == ["kl.pdf", "kl.png", "kl.svg"]
    pdf = (tmp_path / "kl.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert b"/CreationDate" not in pdf and b"/ModDate" not in pdf
    assert b"/FontType 3" not in pdf and b"/Subtype /Type3" not in pdf  # TrueType, not Type 3 fonts
    svg = (tmp_path / "kl.svg").read_bytes()
    assert b"<svg" in svg[:1000] and b"<dc:date>" not in svg
    root = ET.fromstring(svg)  # well-formed XML
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("width") == f"{figures.COLUMN_WIDTH * 72:g}pt"  # 3.5 in: one column
    # vector=False: the PNG alone
    figures.save(figures.kl_per_dim(np.arange(5.0)), tmp_path / "only.png", vector=False)
    assert sorted(p for p in os.listdir(tmp_path) if p.startswith("only")) == ["only.png"]
    with pytest.raises(LatentAtlasError, match="name the PNG"):
        figures.save(figures.kl_per_dim(np.arange(5.0)), tmp_path / "kl.svg")


def test_save_is_reproducible(tmp_path):
    def draw(folder):
        folder.mkdir()
        c = _coords(300)
        figures.save(figures.latent_maps(c, {"a": (np.arange(300) % 3, ["x", "y", "z"]), "b": (c[:, 0], False)}),
                     folder / "map.png")
        return {p.name: p.read_bytes() for p in folder.iterdir()}

    first, second = draw(tmp_path / "a"), draw(tmp_path / "b")
    assert sorted(first) == ["map.pdf", "map.png", "map.svg"]
    assert first == second


def test_save_failing_at_the_last_format_changes_nothing(tmp_path, monkeypatch):
    path = tmp_path / "kl.png"
    figures.save(figures.kl_per_dim(np.arange(4.0)), path)
    old = {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)}
    fig = figures.kl_per_dim(np.arange(6.0))
    real = fig.savefig

    def pdf_fails(f, **kwargs):
        if kwargs.get("format") == "pdf":
            f.write(b"%PDF-partial")
            raise OSError("disk full")
        return real(f, **kwargs)

    monkeypatch.setattr(fig, "savefig", pdf_fails)
    with pytest.raises(OSError, match="disk full"):
        figures.save(fig, path)
    assert {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)} == old


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
    assert sorted(os.listdir(tmp_path)) == ["kl.pdf", "kl.png", "kl.svg"]
    assert path.read_bytes() == old


def test_save_closes_a_pyplot_figure(tmp_path):
    plt = pytest.importorskip("matplotlib.pyplot")
    fig = plt.figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    number = fig.number
    figures.save(fig, tmp_path / "line.png")
    assert not plt.fignum_exists(number)
    assert sorted(os.listdir(tmp_path)) == ["line.pdf", "line.png", "line.svg"]
    _png_size(tmp_path / "line.png")


# --------------------------------------------------------------------------------- paper-ready layout


def _drawn(fig):
    with figures.style():
        fig.draw_without_rendering()
    return fig.canvas.get_renderer()


def _overlap(a, b) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def _drawn_texts(fig, monkeypatch):
    """(text, its extent) for every text the figure really draws (ticks out of view are not drawn)."""
    drawn = []
    real = Text.draw

    def record(self, renderer):
        if self.get_visible() and self.get_text().strip():
            drawn.append(self)
        return real(self, renderer)

    with monkeypatch.context() as m:
        m.setattr(Text, "draw", record)
        renderer = _drawn(fig)
    return [(t, Text.get_window_extent(t, renderer)) for t in drawn], renderer  # an annotation's words, not its leader line


def _assert_laid_out(fig, monkeypatch):
    """At most a page wide, no text under 8 pt, no empty panel, and no text colliding with another
    text or with another panel's plot, or running off the figure."""
    texts, renderer = _drawn_texts(fig, monkeypatch)
    width, _ = fig.get_size_inches()
    assert width <= figures.PAGE_WIDTH + 1e-6
    small = [(t.get_text()[:30], t.get_fontsize()) for t, _ in texts if t.get_fontsize() < figures.MIN_FONT]
    assert not small, small
    assert all(ax.has_data() for ax in fig.axes), "an empty panel"
    plots = [a for ax in fig.axes for a in (ax, *ax.child_axes)]
    page = fig.bbox
    for t, box in texts:
        assert box.x0 >= page.x0 - 1 and box.y0 >= page.y0 - 1 and box.x1 <= page.x1 + 1 and box.y1 <= page.y1 + 1, t.get_text()[:40]
        for ax in plots:
            if ax is not t.axes:
                assert _overlap(box, ax.bbox) <= 1.0, (t.get_text()[:40], ax.get_title())
    for i, (a, box_a) in enumerate(texts):
        for b, box_b in texts[i + 1 :]:
            assert _overlap(box_a, box_b) <= 1.0, (a.get_text()[:40], b.get_text()[:40])
    assert texts


def _history(n: int = 6) -> list[dict]:
    log_n = math.log(737_280)
    dwkl = [3.6, 0.1, -0.5, 3.5, 4.4, 3.9][:n]  # the estimate itself dips below zero
    return [{"step": 50 * (i + 1), "time": 1.0 * i, "recon": 1300.0 / (i + 1), "kl": 2.0 * i,
             "mi": log_n + 0.5 * i, "tc": 9 * log_n + 0.8 * i, "dwkl": -10 * log_n + dwkl[i],
             "loss": 1300.0 / (i + 1) + 45 * log_n + 5.0 * i, "elbo": -1300.0 / (i + 1) - 2.0 * i} for i in range(n)]


TCVAE_CONFIG = {"kind": "beta_tcvae", "train": {"batch_size": 64, "log_every": 50},
                "model": {"kind": "beta_tcvae", "latent_dim": 10, "dataset_size": 737_280, "beta": 6.0,
                          "tc_alpha": 1.0, "tc_gamma": 1.0, "likelihood": "bernoulli"}}


def test_every_figure_is_laid_out_for_print(monkeypatch):
    z, _ = manifold_grid(6)
    five = {"shape": (np.arange(120) % 3, ["square", "ellipse", "heart"]), "scale": (np.linspace(0, 1, 120), False),
            "orientation": (np.linspace(0, 6, 120), False), "pos_x": (np.arange(120) % 32, False),
            "label": np.array(["a", "b", "c", "d"] * 30)}
    q, caption = training_quantities(TCVAE_CONFIG)
    from latentatlas.labs.sae.figures import rate_distortion

    pts = [{"label": f"k={k}", "l0": k, "fvu": 0.6 / math.sqrt(k), "rate_bits": 9.5 * k} for k in (4, 8, 12, 16, 24, 32, 64, 128)]
    built = {
        "reconstructions": figures.reconstructions(_images(12, h=64, w=64), _images(12, h=64, w=64, seed=1), n=10),
        "traversals": figures.traversal_grid(_images(90, h=64, w=64).reshape(10, 9, 1, 64, 64),
                                             [f"z{d} · KL {d / 3:.2f}" for d in range(10)], np.linspace(-3, 3, 9)),
        "interpolation": figures.interpolation_strip(_images(10, c=3), "slerp"),
        "manifold": figures.manifold(_images(36), 6, z=z),
        "map": figures.latent_map(_coords(), np.arange(120) % 4, "digit", categorical=True, axis_labels=("pca 1", "pca 2")),
        "maps": figures.latent_maps(_coords(), five, axis_labels=("pca 1", "pca 2"), title="Latent map (pca)"),
        # an untrained model's map: coordinates of 0.001 and long tick labels
        "maps_tiny": figures.latent_maps(_coords() * 1e-3, {**five, "big": (np.linspace(0, 3e5, 120), False)},
                                         axis_labels=("pca 1", "pca 2"), title="Latent map (pca)"),
        # an image folder's long class names: wide legends
        "maps_long_names": figures.latent_maps(_coords(), {
            f"colouring {j}": (np.arange(120) % 12, [f"a rather long class name {i}" for i in range(12)]) for j in range(3)}),
        "kl": figures.kl_per_dim(np.random.default_rng(0).random(10)),
        "kl_many": figures.kl_per_dim(np.random.default_rng(0).random(200), threshold=0.5),
        "curves": figures.training_curves(_history(), quantities=q, caption=caption),
        # titles and notes wider than a panel are wrapped to it, not run into the next one or off the page
        "curves_long_titles": figures.training_curves(
            [{"step": s, "a": 1.0 * s, "b": 2.0 * s, "c": 3.0 * s} for s in range(5)],
            quantities={key: figures.Quantity(f"a rather long title for panel {key} of this row of three",
                                              note="and a note under it that is longer than the panel is wide")
                        for key in "abc"}),
        "frontier": rate_distortion(pts),
    }
    for name, fig in built.items():
        try:
            assert not figures._collapses(fig), "constrained layout gave up"
            _assert_laid_out(fig, monkeypatch)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from exc
    assert built["kl"].get_size_inches()[0] == figures.COLUMN_WIDTH
    assert built["maps"].get_size_inches()[0] == figures.PAGE_WIDTH


def test_kl_per_dim_tick_labels_do_not_collide():
    fig = figures.kl_per_dim(np.random.default_rng(0).random(200))
    renderer = _drawn(fig)
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    boxes = [t.get_window_extent(renderer) for tick, t in zip(ax.get_xticks(), ax.get_xticklabels()) if lo <= tick <= hi and t.get_text()]
    assert 10 <= len(boxes) < 200  # thinned, but still many dims named
    assert all(_overlap(a, b) == 0 for a, b in zip(boxes, boxes[1:]))
    assert "every" in ax.get_xlabel()  # and the axis says the labels are thinned


def test_a_grid_has_no_empty_slot_and_centres_its_last_row():
    five = {name: (np.random.default_rng(i).random(120), False) for i, name in enumerate("abcde")}
    fig = figures.latent_maps(_coords(), five)
    _drawn(fig)
    assert len(fig.axes) == 5 and all(ax.has_data() for ax in fig.axes)
    boxes = [ax.get_position() for ax in fig.axes]
    top, bottom = boxes[:3], boxes[3:]
    assert all(b.y0 > bottom[0].y1 for b in top)
    # the two panels of the last row sit under the gaps between the three above, not left-aligned
    centre_top = [(b.x0 + b.x1) / 2 for b in top]
    centre_bottom = [(b.x0 + b.x1) / 2 for b in bottom]
    assert centre_top[0] < centre_bottom[0] < centre_top[1] < centre_bottom[1] < centre_top[2]
    # seven training quantities: 3 + 3 + 1, the last one centred
    curves = figures.training_curves([{"step": s, **{f"q{i}": float(s + i) for i in range(7)}} for s in range(5)])
    _drawn(curves)
    assert len(curves.axes) == 7 and all(ax.has_data() for ax in curves.axes)
    last, middle = curves.axes[6].get_position(), curves.axes[1].get_position()
    assert abs((last.x0 + last.x1) / 2 - (middle.x0 + middle.x1) / 2) < 0.02


def test_colour_bars_sit_beside_their_plots():
    values = {"a": (np.linspace(0, 1, 120), False), "shape": (np.arange(120) % 3, ["square", "ellipse", "heart"]),
              "b": (np.linspace(5, 9, 120), False), "c": (np.linspace(0, 1, 120) ** 2, False)}
    fig = figures.latent_maps(_coords(), values, ncols=2)
    renderer = _drawn(fig)
    for ax in fig.axes:
        if ax.get_title() == "shape":
            assert not ax.child_axes and ax.get_legend() is not None
            continue
        (cax,) = ax.child_axes
        plot, bar = ax.get_window_extent(renderer), cax.get_window_extent(renderer)
        gap_in = (bar.x0 - plot.x1) / fig.dpi
        assert 0 <= gap_in < 0.15, gap_in  # right beside the plot
        assert abs(bar.y0 - plot.y0) < 1 and abs(bar.y1 - plot.y1) < 1  # and as tall as it


# ------------------------------------------------------------------------------- one colour per category


def _point_colours(ax, coords):
    """The face colour drawn for each row of coords (the scatter shuffles the drawing order)."""
    col = ax.collections[0]
    where = {tuple(np.round(p, 9)): i for i, p in enumerate(col.get_offsets())}
    face = col.get_facecolors()[:, :3]
    return np.array([face[where[tuple(np.round(p, 9))]] for p in coords])


def test_categorical_map_gives_each_category_its_colour_and_name():
    names = ["square", "ellipse", "heart"]  # the data's order, not alphabetical
    codes = np.arange(120) % 3
    c = _coords()
    fig = figures.latent_map(c, codes, "shape", category_names=names)
    ax = fig.axes[0]
    legend = ax.get_legend()
    assert _tick_texts(legend.get_texts()) == names and legend.get_title().get_text() == "shape"
    palette = figures.category_colors(3)
    np.testing.assert_allclose(palette, np.asarray(matplotlib.colormaps["tab10"].colors)[:3])
    drawn = _point_colours(ax, c)
    np.testing.assert_allclose(drawn, palette[codes])  # every point in its category's colour
    assert len(np.unique(drawn, axis=0)) == 3
    for handle, colour in zip(legend.legend_handles, palette):
        np.testing.assert_allclose(to_rgb(handle.get_markerfacecolor()), colour)


def test_a_category_keeps_its_colour_when_another_is_absent():
    names = ["square", "ellipse", "heart"]
    codes = np.where(np.arange(120) % 2 == 0, 0, 2)  # no ellipse in this sample
    c = _coords()
    fig = figures.latent_maps(c, {"shape": (codes, names)})
    ax = fig.axes[0]
    assert _tick_texts(ax.get_legend().get_texts()) == ["square", "heart"]
    np.testing.assert_allclose(_point_colours(ax, c), figures.category_colors(3)[codes])
    with pytest.raises(LatentAtlasError, match="indices 0 .. 2"):
        figures.latent_map(c, codes + 1, "shape", category_names=names)


def test_many_categories_get_distinct_colours():
    for k in (4, 10, 15, 20, 25, 60, 120):
        palette = figures.category_colors(k)
        assert palette.shape == (k, 3)
        dist = np.linalg.norm(palette[:, None] - palette[None], axis=-1) + np.eye(k) * 9
        assert dist.min() > 0.05, k  # no two alike
    np.testing.assert_allclose(figures.category_colors(15), np.asarray(matplotlib.colormaps["tab20"].colors)[:15])
    np.testing.assert_allclose(figures.category_colors(25)[:20], np.asarray(matplotlib.colormaps["tab20"].colors))
    # 15 categories: 15 colours, each named; 25: 25 colours, too many to name, so the panel says how many
    c = _coords(300)
    fig = figures.latent_maps(c, {"fifteen": (np.arange(300) % 15, [f"class {i}" for i in range(15)]),
                                  "many": (np.arange(300) % 25, [f"c{i}" for i in range(25)])})
    fifteen, many = fig.axes
    assert len(np.unique(fifteen.collections[0].get_facecolors(), axis=0)) == 15
    assert _tick_texts(fifteen.get_legend().get_texts()) == [f"class {i}" for i in range(15)]
    assert len(np.unique(many.collections[0].get_facecolors(), axis=0)) == 25
    assert many.get_legend() is None and "25 categories" in _tick_texts(many.texts)


def test_sprites_factors_colour_by_shape_names_and_real_values():
    from latentatlas.data.sprites import Sprites
    from latentatlas.labs.vae.figures import factor_colorings

    data = Sprites()
    idx = np.random.default_rng(0).choice(len(data), 200, replace=False)
    factors = data.get_factors(idx)
    colorings = factor_colorings(data, factors)
    assert colorings["shape"][1] == ["square", "ellipse", "heart"]
    np.testing.assert_array_equal(colorings["shape"][0], factors[:, 0])
    assert colorings["scale"][1] is False and set(np.unique(colorings["scale"][0])) <= set(np.linspace(0.5, 1.0, 6))
    fig = figures.latent_maps(_coords(200), colorings)
    shape = fig.axes[0]
    assert _tick_texts(shape.get_legend().get_texts()) == ["square", "ellipse", "heart"]
    assert len(np.unique(shape.collections[0].get_facecolors(), axis=0)) == 3
    assert all(len(ax.child_axes) == 1 for ax in fig.axes[1:])  # scale, orientation, positions: colour bars


def test_class_names_of_an_image_folder_label_the_legend():
    from latentatlas.data.base import ArrayDataset
    from latentatlas.labs.vae.figures import factor_colorings

    labels = np.arange(60) % 3
    data = ArrayDataset(x=np.zeros((60, 4), np.float32), labels=labels, factors=labels[:, None], factor_names=("class",),
                        factor_sizes=(3,), value_names={"class": ["cats", "dogs", "owls"]})
    fig = figures.latent_maps(_coords(60), factor_colorings(data, data.factors))
    assert _tick_texts(fig.axes[0].get_legend().get_texts()) == ["cats", "dogs", "owls"]


# ---------------------------------------------------------------------------- what the curves estimate


def test_quantity_shifts_draws_zero_and_keeps_it_in_view():
    history = [{"step": s, "x": 100.0 + s, "y": 1.0 + 10.0**s} for s in range(5)]
    fig = figures.training_curves(history, quantities={
        "x": figures.Quantity("x estimate", "logged − 100", offset=100.0, zero=True, note="can be negative"),
        "y": figures.Quantity(zero=True)})
    x_ax, y_ax = fig.axes
    assert x_ax.get_title() == "x estimate" and x_ax.get_ylabel() == "logged − 100"
    curve = [ln for ln in x_ax.lines if len(ln.get_xdata()) == 5][0]
    np.testing.assert_allclose(curve.get_ydata(), np.arange(5.0))
    zero = [ln for ln in x_ax.lines if ln.get_linestyle() == "--"]
    assert len(zero) == 1 and np.all(np.asarray(zero[0].get_ydata()) == 0)
    assert x_ax.get_ylim()[0] < 0 < x_ax.get_ylim()[1]
    assert "can be negative" in x_ax.get_xlabel()
    assert y_ax.get_yscale() == "linear"  # a signed estimate never gets a log axis


def test_tcvae_training_curves_say_what_they_plot():
    q, caption = training_quantities(TCVAE_CONFIG)
    history = _history()
    fig = figures.training_curves(history, quantities=q, caption=caption)
    by_title = {ax.get_title().replace("\n", " "): ax for ax in fig.axes}
    log_n = math.log(737_280)
    expected = {"index-code MI": ("mi", log_n, "− 13.5"),
                "total correlation (TC)": ("tc", 9 * log_n, "− 121.6"),
                "dimension-wise KL": ("dwkl", -10 * log_n, "+ 135.1")}
    for title, (key, shift, label) in expected.items():
        ax = by_title[title]
        note = ax.get_xlabel().replace("\n", " ")
        assert "minibatch-weighted estimate" in note and "can be negative" in note
        curve = [ln for ln in ax.lines if ln.get_linestyle() != "--"][0]
        np.testing.assert_allclose(curve.get_ydata(), [row[key] - shift for row in history], atol=1e-9)
        assert label in ax.get_ylabel()
        assert any(ln.get_linestyle() == "--" and np.all(np.asarray(ln.get_ydata()) == 0) for ln in ax.lines)
        lo, hi = ax.get_ylim()
        assert lo < 0 < hi
    dwkl = by_title["dimension-wise KL"]
    assert min(min(ln.get_ydata()) for ln in dwkl.lines) > -10  # no −134 "KL" drawn
    assert "biased upwards at batch size 64" in by_title["total correlation (TC)"].get_xlabel().replace("\n", " ")
    loss = fig.axes[0]
    assert loss.get_title().startswith("loss = recon + α·MI + β·TC")
    curve = [ln for ln in loss.lines if ln.get_linestyle() != "--"][0]
    np.testing.assert_allclose(curve.get_ydata(), [row["loss"] - 45 * log_n for row in history], atol=1e-9)
    text = fig._supxlabel.get_text().replace("\n", " ")
    for phrase in ("minibatch-weighted", "N = 737,280", "+(D−1)·log N = 121.6", "−D·log N = −135.1",
                   "608.0 nats", "below zero", "total_correlation"):
        assert phrase in text, phrase
    # a plain VAE has no estimates to explain: its loss says what it is, no zero lines
    q, caption = training_quantities({"kind": "beta_vae", "model": {"kind": "beta_vae", "beta": 4.0}, "train": {}})
    assert q["loss"].title == "loss = recon + β·KL (β = 4)" and not caption


def test_frontier_labels_are_kept_apart(monkeypatch):
    from latentatlas.labs.sae.figures import rate_distortion

    # neighbouring sweep values sit close together on the frontier, where labels at one fixed offset collide
    pts = [{"label": f"k={k}", "l0": k, "fvu": 0.6 / math.sqrt(k), "rate_bits": 9.5 * k} for k in (4, 30, 32, 34, 36, 128)]
    fig = rate_distortion(pts)
    texts, _ = _drawn_texts(fig, monkeypatch)
    labels = [(t, box) for t, box in texts if t.get_text().startswith("k=")]
    assert len(labels) == 2 * len(pts)
    for ax in fig.axes:
        mine = [box for t, box in labels if t.axes is ax]
        assert all(_overlap(a, b) <= 1.0 for i, a in enumerate(mine) for b in mine[i + 1 :])
    _assert_laid_out(fig, monkeypatch)
