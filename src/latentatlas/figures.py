"""Static matplotlib figures for reports and notebooks, drawn from plain arrays.

Every function returns a `matplotlib.figure.Figure` built on the Agg canvas without pyplot, so no
global state changes and nothing is written; `save` writes it atomically as a PNG and, beside it with
the same stem, as SVG and PDF (for a paper). Figures are sized for print: one column (3.5 in) or a
page (7 in) wide, no text under 8 pt at that size, constrained layout so labels do not collide,
colour bars attached to their plots, and no empty panels in a grid. Images are
(N, C, H, W) floats in [0, 1] with C in {1, 3} (values outside are clipped); nothing here knows
about models. Image grids are drawn as one montage per axes, so a grid has one axes however many
tiles it holds.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from cycler import cycler
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, ScalarFormatter

from latentatlas.analysis.traversal import order_dims_by_kl
from latentatlas.errors import LatentAtlasError

__all__ = [
    "STYLE",
    "style",
    "save",
    "png_bytes",
    "reconstructions",
    "traversal_grid",
    "interpolation_strip",
    "latent_map",
    "latent_maps",
    "kl_per_dim",
    "training_curves",
    "manifold",
    "new_figure",
    "Quantity",
    "category_colors",
    "COLUMN_WIDTH",
    "PAGE_WIDTH",
]

DPI = 100  # the canvas's: sizes are in inches, so only pixel-based spacing depends on it
PNG_DPI = 200  # the PNG written by `save`: 1,400 pixels across a page-wide figure
VECTOR_DPI = 300  # the rasterised parts (dense scatter clouds) inside the SVG and PDF
COLUMN_WIDTH = 3.5  # inches: one column of a two-column paper
PAGE_WIDTH = 7.0  # inches: the full text width
MIN_FONT = 8.0  # points, at the figure's own (printed) size
ACCENT = "#3b6ea8"
MUTED = "#b9b9b9"
NOTE = "#444444"  # secondary text: dark enough to read in print
FORMATS = ("png", "svg", "pdf")

STYLE: dict[str, Any] = {
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.titleweight": "bold",
    "axes.titlepad": 5,
    "figure.titlesize": 10,
    "figure.titleweight": "bold",
    "axes.labelsize": 9,
    "axes.labelcolor": "#333333",
    "axes.edgecolor": "#555555",
    "axes.linewidth": 0.8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "axes.axisbelow": True,
    "grid.color": "#e4e4e4",
    "grid.linewidth": 0.7,
    "axes.prop_cycle": cycler(
        color=["#3b6ea8", "#d1603d", "#4f9a55", "#8e6bb5", "#c8a23b", "#3fa3a2", "#b5577d", "#6d6d6d"]
    ),
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "xtick.color": "#444444",
    "ytick.color": "#444444",
    "xtick.major.size": 3,
    "ytick.major.size": 3,
    "legend.fontsize": 8,
    "legend.title_fontsize": 8,
    "legend.frameon": False,
    "lines.linewidth": 1.4,
    "image.interpolation": "nearest",
    # Reproducible vector files: fixed element ids, text as outlines (no font needed to view them),
    # and TrueType rather than Type 3 fonts in the PDF (what journals ask for).
    "svg.hashsalt": "latentatlas",
    "svg.fonttype": "path",
    "pdf.fonttype": 42,
}

# No dates in the files, so the same figure gives the same bytes on every run.
_METADATA: dict[str, dict[str, Any]] = {"png": {}, "svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None}}


def style() -> contextlib.AbstractContextManager:
    """The house style as a context manager (matplotlib.rc_context); global rcParams are untouched."""
    return matplotlib.rc_context(STYLE)


def new_figure(width: float, height: float) -> Figure:
    """A constrained-layout figure on the Agg canvas (no pyplot, no global state)."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


# --------------------------------------------------------------------------------------------- saving


def _close(fig: Figure) -> None:
    # Figures made here are not registered with pyplot and are freed by the garbage collector; one a
    # caller made with pyplot must be closed there or pyplot keeps it alive.
    if getattr(fig.canvas, "manager", None) is not None:
        import matplotlib.pyplot as plt

        plt.close(fig)


def _open_temp(target: Path) -> tuple[Path, int]:
    folder = target.parent
    tmp = folder / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        # O_EXCL: never write through someone else's file; 0o666 lets the umask decide permissions.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except FileNotFoundError:
        raise LatentAtlasError(f"cannot save figure to {target}: the folder {folder} does not exist.") from None
    except OSError as exc:
        raise LatentAtlasError(f"cannot save figure to {target}: {exc.strerror or exc}.") from exc
    return tmp, fd


def _settle_layout(fig: Figure) -> Any:
    """Run the layout engine once and then switch it off, returning it (to restore on failure).

    Constrained layout and data-limited aspect ratios nudge each other a little on every draw, so
    without this the PNG, SVG and PDF would each be drawn with a slightly different layout.
    """
    engine = fig.get_layout_engine()
    if engine is None:
        return None
    with style():
        fig.draw_without_rendering()
    fig.set_layout_engine("none")
    return engine


@contextlib.contextmanager
def _unsampled_images(fig: Figure, on: bool):
    """In a vector file, embed each image's own pixels (the viewer scales them, crisply) rather than
    resampling it at the file's dpi: smaller, faster, and sharp at any zoom."""
    images = [im for ax in fig.axes for im in ax.images] if on else []
    before = [im.get_interpolation() for im in images]
    for im in images:
        im.set_interpolation("none")
    try:
        yield
    finally:
        for im, interpolation in zip(images, before):
            im.set_interpolation(interpolation)


def save(fig: Figure, path: str | os.PathLike[str], *, dpi: float | None = None, vector: bool = True) -> Path:
    """Write `fig` as a PNG at `path` and as SVG and PDF beside it (same stem), atomically; then close it.

    Returns the PNG's path, the file the explorer and the run's reports name. ``dpi`` is the PNG's
    resolution (default 200); ``vector=False`` writes the PNG alone. The files are identical from one run to
    the next (no dates; fixed SVG ids). Each file's bytes go to a temporary file in the same folder, are
    flushed to disk, and are renamed into place only once all of them are written (the PNG last), so a
    crash never leaves a half-written file. The folder must exist. On failure the temporary files are
    removed, existing files are unchanged, and the figure stays open.
    """
    target = Path(path)
    if target.suffix.lower() in (".svg", ".pdf"):
        raise LatentAtlasError(f"cannot save figure to {target}: name the PNG (….png); the SVG and PDF are written beside it.")
    formats = FORMATS if vector else ("png",)
    dests = {fmt: target if fmt == "png" else target.with_suffix(f".{fmt}") for fmt in formats}
    temps: list[tuple[Path, Path]] = []
    engine = None
    try:
        engine = _settle_layout(fig)
        for fmt in formats:
            tmp, fd = _open_temp(dests[fmt])
            temps.append((tmp, dests[fmt]))
            with os.fdopen(fd, "wb") as f, style(), _unsampled_images(fig, fmt != "png"):
                res = (dpi or PNG_DPI) if fmt == "png" else VECTOR_DPI
                fig.savefig(f, format=fmt, dpi=res, facecolor="white", metadata=_METADATA[fmt])
                f.flush()
                os.fsync(f.fileno())
        # the PNG (what the run's reports and the explorer list) is renamed last: when it is there, so are the others
        for tmp, dest in reversed(temps):
            try:
                os.replace(tmp, dest)
            except OSError as exc:
                raise LatentAtlasError(f"cannot save figure to {dest}: {exc.strerror or exc}.") from exc
    except BaseException:
        for tmp, _ in temps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if engine is not None:
            fig.set_layout_engine(engine)
        raise
    _close(fig)
    return target


def png_bytes(fig: Figure, *, dpi: float | None = None) -> bytes:
    """The figure as PNG bytes (for an HTTP response); the figure stays open."""
    import io

    buf = io.BytesIO()
    with style():
        fig.savefig(buf, format="png", dpi=dpi or PNG_DPI, facecolor="white")
    return buf.getvalue()


# --------------------------------------------------------------------------------------------- images


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def _images(x: Any, name: str, lead_dims: int = 1) -> np.ndarray:
    """Validate images with `lead_dims` leading axes before (C, H, W); returns float32 in [0, 1]."""
    a = _numpy(x)
    if a.ndim == lead_dims + 2:  # (…, H, W): one channel implied
        a = a[..., None, :, :]
    expected = "(N, C, H, W)" if lead_dims == 1 else "(R, M, C, H, W)"
    if a.ndim != lead_dims + 3 or a.shape[-3] not in (1, 3) or a.shape[-1] < 1 or a.shape[-2] < 1:
        raise LatentAtlasError(f"{name} must be images of shape {expected} with C in {{1, 3}}, but got shape {tuple(a.shape)}.")
    if not np.issubdtype(a.dtype, np.number):
        raise LatentAtlasError(f"{name} must hold numbers in [0, 1], but its dtype is {a.dtype}.")
    return np.clip(np.nan_to_num(a.astype(np.float32), nan=0.0), 0.0, 1.0)


def _montage(grid: np.ndarray, pad: int) -> np.ndarray:
    """(R, M, C, H, W) tiles -> one (H', W', C) image, tiles separated by `pad` white pixels."""
    r, m, c, h, w = grid.shape
    out = np.ones((r * h + (r - 1) * pad, m * w + (m - 1) * pad, c), dtype=np.float32)
    for i in range(r):
        for j in range(m):
            y, x = i * (h + pad), j * (w + pad)
            out[y : y + h, x : x + w] = np.moveaxis(grid[i, j], 0, -1)
    return out


def _thin(n: int, most: int) -> list[int]:
    """At most `most` evenly spread indices of range(n), always including both ends."""
    if n <= most:
        return list(range(n))
    return sorted({int(round(v)) for v in np.linspace(0, n - 1, most)})


def _fmt(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        if float(v).is_integer() and abs(v) < 1e6:
            return str(int(v))
        return f"{float(v):.3g}"
    return str(v)


def _tile_inches(rows: int, cols: int, aspect: float, max_w: float = PAGE_WIDTH, max_h: float = 8.5) -> float:
    """Width in inches of one tile: ~0.9 in, shrunk so the grid fits max_w × max_h (a page)."""
    return max(0.18, min(0.9, max_w / cols, max_h / (rows * aspect)))


def _image_grid(
    grid: np.ndarray,
    *,
    title: str | None,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    col_positions: Sequence[int] | None = None,
    row_positions: Sequence[int] | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    gap: bool = True,
) -> Figure:
    r, m, c, h, w = grid.shape
    aspect = h / w
    label_w = 0.0
    if row_labels is not None or ylabel:
        # about 0.062 in per character of an 8 pt tick label, the tick pad, and the axis label's line
        label_w = 0.12 + 0.062 * max([len(s) for s in (row_labels or [])] + [0]) + (0.22 if ylabel else 0.0)
    top = 0.32 if title else 0.1
    bottom = (0.25 if col_labels is not None else 0.08) + (0.2 if xlabel else 0.0)
    tile = _tile_inches(r, m, aspect, max_w=PAGE_WIDTH - label_w - 0.16, max_h=8.5 - top - bottom)
    tile_px = tile * PNG_DPI  # the tile's width in the saved PNG
    # Enlarge small tiles by an integer factor first, so pixels stay square and crisp and the white
    # gap between tiles can be a few screen pixels rather than one (large) source pixel.
    k = max(1, int(tile_px // w))
    if k > 1:
        grid = grid.repeat(k, axis=-2).repeat(k, axis=-1)
        h, w = h * k, w * k
    pad = max(1, round(tile_px / 30)) if gap else 0
    with style():
        fig = new_figure(m * tile + label_w + 0.16, r * tile * aspect + top + bottom)
        ax = fig.add_subplot()
        # Shrinking tiles (large images in a big grid) needs antialiasing; enlarged ones do not.
        # Nearest-neighbour only where each source pixel becomes a whole number of PNG pixels.
        interpolation = "nearest" if w <= tile_px <= 1.05 * w else "antialiased"
        img = _montage(grid, pad)
        if c == 1:
            ax.imshow(img[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation=interpolation)
        else:
            ax.imshow(img, interpolation=interpolation)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.tick_params(length=0, pad=3)
        if col_labels is not None:
            cols = list(col_positions) if col_positions is not None else list(range(m))
            ax.set_xticks([j * (w + pad) + (w - 1) / 2 for j in cols], [col_labels[i] for i in range(len(cols))])
        else:
            ax.set_xticks([])
        if row_labels is not None:
            rows = list(row_positions) if row_positions is not None else list(range(r))
            ax.set_yticks([i * (h + pad) + (h - 1) / 2 for i in rows], [row_labels[i] for i in range(len(rows))])
        else:
            ax.set_yticks([])
        if xlabel:
            ax.set_xlabel(xlabel)
        if ylabel:
            ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title)
        _trim_to_image(fig, ax)
    return fig


def _trim_to_image(fig: Figure, ax: Any, margin: float = 0.08) -> None:
    """Shrink the figure to its content: a fixed image aspect otherwise leaves blank bands."""
    renderer = fig.canvas.get_renderer()
    fig.draw_without_rendering()
    content = fig.get_tightbbox(renderer)  # inches
    width, height = fig.get_size_inches()
    new_w = min(width, content.width + 2 * margin)
    new_h = min(height, content.height + 2 * margin)
    if width - new_w > 0.02 or height - new_h > 0.02:
        fig.set_size_inches(new_w, new_h)


def reconstructions(x: Any, x_hat: Any, n: int = 10, *, title: str | None = "Reconstructions") -> Figure:
    """Two rows of the first n images: inputs above, their reconstructions below (one axes)."""
    a, b = _images(x, "x"), _images(x_hat, "x_hat")
    if a.shape[1:] != b.shape[1:]:
        raise LatentAtlasError(
            f"x and x_hat must hold images of the same shape, but got {tuple(a.shape[1:])} and {tuple(b.shape[1:])}."
        )
    k = min(int(n), a.shape[0], b.shape[0])
    if k < 1:
        raise LatentAtlasError("reconstructions need at least one image in both x and x_hat (and n >= 1).")
    grid = np.stack([a[:k], b[:k]])
    return _image_grid(grid, title=title, row_labels=["input", "reconstruction"])


def traversal_grid(
    images: Any,
    row_labels: Sequence[str],
    col_values: Any,
    *,
    title: str | None = "Latent traversals",
    xlabel: str | None = "value",
) -> Figure:
    """Decoded traversals: images (R, M, C, H, W), one row per latent dim (one axes).

    row_labels name the rows (e.g. "z3 (KL 2.31)", in the order the caller sorted them). col_values
    are the M values set along each row: shape (M,), shared by all rows and shown under the columns;
    or (R, M) when each row has its own range, which is then appended to that row's label.
    """
    grid = _images(images, "images", lead_dims=2)
    r, m = grid.shape[:2]
    labels = [str(s) for s in row_labels]
    if len(labels) != r:
        raise LatentAtlasError(f"row_labels must name each of the {r} rows, but there are {len(labels)}.")
    values = _numpy(col_values)
    if values.shape == (m,):
        cols = _thin(m, 11)
        return _image_grid(
            grid,
            title=title,
            row_labels=labels,
            col_labels=[_fmt(values[j]) for j in cols],
            col_positions=cols,
            xlabel=xlabel,
        )
    if values.shape == (r, m):
        labels = [f"{s}  [{_fmt(values[i, 0])}, {_fmt(values[i, -1])}]" for i, s in enumerate(labels)]
        return _image_grid(grid, title=title, row_labels=labels)
    raise LatentAtlasError(f"col_values must have shape ({m},) or ({r}, {m}), but got {tuple(values.shape)}.")


def interpolation_strip(images: Any, method: str, *, title: str | None = None) -> Figure:
    """Decoded interpolation path: images (M, C, H, W) in one row, labelled by t from 0 to 1 (one axes)."""
    a = _images(images, "images")
    m = a.shape[0]
    cols = _thin(m, 11)
    t = np.linspace(0.0, 1.0, m) if m > 1 else np.zeros(1)
    return _image_grid(
        a[None],
        title=title if title is not None else f"Interpolation ({method})",
        col_labels=[f"{t[j]:.2g}" for j in cols],
        col_positions=cols,
        xlabel="t",
    )


def manifold(images: Any, n: int, *, z: Any = None, title: str | None = "Decoded latent manifold") -> Figure:
    """Tiled decoded manifold for a 2-D latent: images (n*n, C, H, W) in row-major display order (one axes).

    Pass z, the (n*n, 2) grid from `analysis.traversal.manifold_grid`, to label the axes with latent values.
    """
    a = _images(images, "images")
    n = int(n)
    if n < 1 or a.shape[0] != n * n:
        raise LatentAtlasError(f"manifold needs n*n = {n * n} images for n={n}, but got {a.shape[0]}.")
    grid = a.reshape(n, n, *a.shape[1:])
    if z is None:
        return _image_grid(grid, title=title, gap=False)
    zz = _numpy(z)
    if zz.shape != (n * n, 2):
        raise LatentAtlasError(f"z must have shape ({n * n}, 2) to label a {n}×{n} manifold, but got {tuple(zz.shape)}.")
    ticks = _thin(n, 7)
    return _image_grid(
        grid,
        title=title,
        col_labels=[f"{zz[j, 0]:.2g}" for j in ticks],
        col_positions=ticks,
        row_labels=[f"{zz[i * n, 1]:.2g}" for i in ticks],
        row_positions=ticks,
        xlabel="z[0]",
        ylabel="z[1]",
        gap=False,
    )


# --------------------------------------------------------------------------------------------- scatter


def _marker_size(n: int) -> float:
    return float(np.clip(120.0 / math.sqrt(max(n, 1)), 0.5, 9.0))


def _srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] (…, 3) -> CIELAB (D65), for perceptual distances between palette colours."""
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = lin @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]).T
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


@functools.lru_cache(maxsize=8)
def _distinct_colors(k: int) -> np.ndarray:
    """k colours, each as far (CIELAB) from those before it as a 16-level RGB grid allows, starting from tab20.

    A greedy farthest-point palette (in the spirit of Glasbey et al. 2007) for more categories than tab20
    has; too light (invisible on white) and too dark (indistinguishable) colours are left out.
    """
    levels = np.linspace(0.0, 1.0, 16)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    lab = _srgb_to_lab(grid)
    keep = (lab[:, 0] > 25) & (lab[:, 0] < 88)
    grid, lab = grid[keep], lab[keep]
    chosen = [np.asarray(c, dtype=np.float64) for c in matplotlib.colormaps["tab20"].colors][:k]
    nearest = np.min(np.linalg.norm(lab[:, None, :] - _srgb_to_lab(np.asarray(chosen))[None], axis=-1), axis=1)
    while len(chosen) < k:
        i = int(np.argmax(nearest))
        chosen.append(grid[i])
        nearest = np.minimum(nearest, np.linalg.norm(lab - lab[i], axis=1))
    return np.asarray(chosen)


def category_colors(k: int) -> np.ndarray:
    """(k, 3) RGB colours, one per category, all distinct: tab10 up to 10, tab20 up to 20, then more by
    farthest-point sampling in CIELAB (the first 20 still tab20's). Category i always gets colour i."""
    k = int(k)
    if k <= 10:
        return np.asarray(matplotlib.colormaps["tab10"].colors)[:k]
    if k <= 20:
        return np.asarray(matplotlib.colormaps["tab20"].colors)[:k]
    return _distinct_colors(k)


def _is_categorical(values: np.ndarray) -> bool:
    if values.dtype.kind in "biuUSO":
        return values.dtype.kind not in "iu" or len(np.unique(values)) <= 20
    return False


def _category_codes(values: np.ndarray, names: Sequence[str] | None, what: str) -> tuple[np.ndarray, list[str]]:
    """(codes into labels, labels): given names, values are their indices; else the sorted distinct values."""
    if names is None:
        cats, codes = np.unique(values, return_inverse=True)
        return codes.ravel(), [_fmt(c) for c in cats]
    labels = [str(n) for n in names]
    codes = np.asarray(values)
    if codes.dtype.kind not in "iu" and not (codes.dtype.kind == "f" and np.all(np.isfinite(codes)) and np.all(codes == np.round(codes))):
        raise LatentAtlasError(f"colour values for {what or 'the map'} must be category indices when category names are given, "
                               f"but their dtype is {codes.dtype}.")
    codes = codes.astype(np.int64)
    if codes.size and (codes.min() < 0 or codes.max() >= len(labels)):
        raise LatentAtlasError(f"colour values for {what or 'the map'} must be indices 0 .. {len(labels) - 1} into its "
                               f"{len(labels)} category names, but range over {codes.min()} .. {codes.max()}.")
    return codes, labels


MAX_LEGEND = 20  # categories named in a legend; past that the panel says how many there are


def _scatter_panel(
    fig: Figure,
    ax: Any,
    coords: np.ndarray,
    values: np.ndarray | None,
    name: str,
    categorical: bool,
    *,
    legend_title: str | None,
    names: Sequence[str] | None = None,
) -> None:
    n = coords.shape[0]
    size = _marker_size(n)
    # A fixed shuffle so no class is systematically drawn on top of the others.
    order = np.random.default_rng(0).permutation(n)
    x, y = coords[order, 0], coords[order, 1]
    common = dict(s=size, linewidths=0, rasterized=True)
    if values is None:
        ax.scatter(x, y, color=ACCENT, alpha=0.7, **common)
    elif categorical:
        codes, labels = _category_codes(values, names, name)
        colors = category_colors(len(labels))
        ax.scatter(x, y, c=colors[codes[order]], alpha=0.85, **common)
        present = np.unique(codes)  # name only the categories drawn, each in its own colour
        if len(present) <= MAX_LEGEND:
            handles = [
                Line2D([], [], linestyle="", marker="o", markersize=5, markerfacecolor=colors[i], markeredgewidth=0)
                for i in present
            ]
            ax.legend(
                handles,
                [labels[i] for i in present],
                title=legend_title,
                loc="upper left",
                bbox_to_anchor=(1.0, 1.0),
                handletextpad=0.1,
                borderaxespad=0.2,
                borderpad=0.2,
                labelspacing=0.25,
                # two columns only for many short names: long ones (an image folder's classes) stack
                ncols=2 if len(present) > 10 and max(len(labels[i]) for i in present) <= 12 else 1,
                columnspacing=0.5,
            )
        else:
            ax.text(0.99, 0.01, f"{len(present)} categories", transform=ax.transAxes, ha="right", va="bottom",
                    fontsize=MIN_FONT, color=NOTE)
    else:
        v = values.astype(np.float64)[order]
        ok = np.isfinite(v)
        if not ok.all():
            ax.scatter(x[~ok], y[~ok], color=MUTED, alpha=0.6, **common)
        sc = ax.scatter(x[ok], y[ok], c=v[ok], cmap="viridis", alpha=0.9, **common)
        # an inset in axes coordinates stays beside the plot (a gridspec slot would drift away from it)
        cax = ax.inset_axes([1.03, 0.0, 0.05, 1.0])
        cb = fig.colorbar(sc, cax=cax)
        cb.outline.set_visible(False)
        cb.locator = MaxNLocator(nbins=5)
        cb.formatter = _compact_formatter()
        cb.ax.tick_params(labelsize=MIN_FONT, length=2, pad=1.5)
        if legend_title:
            cb.set_label(legend_title)
    ax.set_aspect("equal", adjustable="datalim")
    # a few short tick labels: long ones (0.0025, −0.0050) would crowd a panel a third of a page wide
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(nbins=4))
        axis.set_major_formatter(_compact_formatter())
    ax.tick_params(labelsize=MIN_FONT, length=2, pad=1.5)
    ax.margins(0.04)


def _compact_formatter() -> ScalarFormatter:
    """Plain numbers from 0.01 to 9999; outside that range, a common ×10ⁿ at the axis's end."""
    fmt = ScalarFormatter(useMathText=True)
    fmt.set_powerlimits((-2, 4))
    return fmt


def _coords(coords: Any) -> np.ndarray:
    c = _numpy(coords)
    if c.ndim != 2 or c.shape[1] != 2 or c.shape[0] < 1:
        raise LatentAtlasError(f"coords must have shape (N, 2) with N >= 1, but got {tuple(c.shape)}.")
    return c.astype(np.float64)


def _color_values(values: Any, n: int, name: str) -> np.ndarray | None:
    if values is None:
        return None
    v = _numpy(values)
    if v.ndim != 1 or v.shape[0] != n:
        raise LatentAtlasError(f"colour values for {name or 'the map'} must have shape ({n},), but got {tuple(v.shape)}.")
    return v


def _panel_axes(fig: Figure, k: int, cols: int, *, sharex: bool = False) -> list[Any]:
    """k axes in rows of `cols`, a short last row centred: no empty slot is left in the grid.

    Each row is a grid of its own (nested in one column of rows), so constrained layout sizes one row's
    margins (legends, colour bars) without squeezing the others; the short last row is padded on both
    sides by half the missing slots, which hold no axes.
    """
    rows = math.ceil(k / cols)
    outer = fig.add_gridspec(rows, 1)
    axes: list[Any] = []
    for r in range(rows):
        in_row = min(cols, k - r * cols)
        if in_row == cols:
            inner, slots = outer[r].subgridspec(1, cols), range(cols)
        else:
            pad = (cols - in_row) / 2
            inner = outer[r].subgridspec(1, in_row + 2, width_ratios=[pad, *([1] * in_row), pad])
            slots = range(1, in_row + 1)
        for j in slots:
            axes.append(fig.add_subplot(inner[0, j], sharex=axes[0] if axes and sharex else None))
    return axes


def _even_last_row(fig: Figure, axes: list[Any], cols: int) -> None:
    """Widen the padding of a short last row until its panels are as wide as those above them.

    Its panels have fewer neighbours' margins to share the row with, so at the first layout they come
    out wider; one measured correction of the padding makes them match.
    """
    k = len(axes)
    m = k % cols
    if k <= cols or m == 0:
        return
    gs = axes[-1].get_subplotspec().get_gridspec()
    pad0 = gs.get_width_ratios()[0]
    with style():
        fig.draw_without_rendering()
    width = fig.get_size_inches()[0]
    above = min(ax.get_position().width for ax in axes[:-m]) * width
    below = min(ax.get_position().width for ax in axes[-m:]) * width
    if above <= 0 or below <= above * 1.01:
        return
    pad = max(pad0, ((2 * pad0 + m) * below / above - m) / 2)
    gs.set_width_ratios([pad, *([1] * m), pad])


def latent_map(
    coords: Any,
    color_values: Any = None,
    color_name: str = "",
    categorical: bool = False,
    *,
    title: str | None = None,
    axis_labels: tuple[str, str] | None = None,
    category_names: Sequence[str] | None = None,
) -> Figure:
    """Scatter of 2-D coordinates coloured by one quantity: a legend if categorical, else a colourbar.

    One column wide (3.5 in). One axes; continuous values add a colourbar inset beside it (in the axes'
    ``child_axes``, so it stays attached to the plot). color_values may be
    None (one colour). With ``category_names``, categorical values are indices into them: category i is
    drawn in ``category_colors(len(names))[i]`` and the legend shows its name.
    """
    c = _coords(coords)
    v = _color_values(color_values, c.shape[0], color_name)
    with style():
        fig = new_figure(COLUMN_WIDTH, 3.0)
        ax = fig.add_subplot()
        _scatter_panel(fig, ax, c, v, color_name, categorical or category_names is not None,
                       legend_title=color_name or None, names=category_names)
        if axis_labels:
            ax.set_xlabel(axis_labels[0])
            ax.set_ylabel(axis_labels[1])
        default = f"Latent map · {color_name}" if color_name else "Latent map"
        ax.set_title(title if title is not None else default)
    if _cramped(fig):  # a legend of long names leaves a column-wide plot no room: a page wide then
        fig.set_size_inches(PAGE_WIDTH, 4.2)
    return fig


def latent_maps(
    coords: Any,
    colorings: Mapping[str, Any],
    *,
    title: str | None = None,
    ncols: int | None = None,
    axis_labels: tuple[str, str] | None = None,
) -> Figure:
    """One scatter panel per colouring, in a grid a page wide: colorings maps name -> (values, categorical).

    A (values, names) pair, with names a list of strings, is categorical with values indexing names
    (the legend shows the names; category i keeps colour i whichever categories the sample holds). A
    bare array instead of a pair is treated as categorical when it holds strings, booleans, or
    integers with at most 20 distinct values. Continuous panels get a colourbar inset each; empty
    colorings give one plain panel. A short last row is centred, so no slot of the grid is empty.
    """
    c = _coords(coords)
    items: list[tuple[str, np.ndarray | None, bool, Sequence[str] | None]] = []
    for name, spec in colorings.items():
        if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], (bool, np.bool_)):
            values, categorical = spec
            v = _color_values(values, c.shape[0], name)
            items.append((str(name), v, bool(categorical), None))
        elif isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], (list, tuple)) and all(isinstance(t, str) for t in spec[1]):
            v = _color_values(spec[0], c.shape[0], name)
            items.append((str(name), v, True, list(spec[1])))
        else:
            v = _color_values(spec, c.shape[0], name)
            items.append((str(name), v, _is_categorical(v), None))
    if not items:
        items = [("", None, False, None)]
    k = len(items)
    cols = max(1, min(int(ncols), k)) if ncols else (2 if k in (2, 4) else min(3, k))
    # wide legends (long class names) can leave no room for the plots: fewer panels to a row then, and
    # a lone column a page wide rather than a column wide
    layouts = [(n, PAGE_WIDTH if n > 1 else COLUMN_WIDTH) for n in range(cols, 0, -1)] + [(1, PAGE_WIDTH)]
    for cols, width in layouts:
        rows = math.ceil(k / cols)
        with style():
            fig = new_figure(width, rows * (width / cols) * 0.82 + (0.3 if title else 0.0))
            for ax, (name, v, categorical, names) in zip(_panel_axes(fig, k, cols), items):
                _scatter_panel(fig, ax, c, v, name, categorical, legend_title=None, names=names)
                ax.set_title(name)
                if axis_labels:
                    ax.set_xlabel(axis_labels[0], labelpad=1)
                    ax.set_ylabel(axis_labels[1], labelpad=1)
            if title:
                fig.suptitle(title)
        if not _cramped(fig):
            break
    _even_last_row(fig, fig.axes, cols)
    return fig


MIN_PANEL = 1.2  # inches: the narrowest scatter panel worth drawing beside its legend or colour bar


def _cramped(fig: Figure) -> bool:
    """Whether the layout gave up, or left some panel narrower than MIN_PANEL."""
    if _collapses(fig):
        return True
    width = fig.get_size_inches()[0]
    return any(ax.get_position().width * width < MIN_PANEL for ax in fig.axes)


def _collapses(fig: Figure) -> bool:
    """Whether constrained layout gives up on the figure (its decorations leave the axes no room)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught, style():
        warnings.simplefilter("always")
        fig.draw_without_rendering()
    return any("constrained_layout not applied" in str(w.message) for w in caught)


# --------------------------------------------------------------------------------------------- charts


def kl_per_dim(kl: Any, *, threshold: float | None = None, title: str | None = None) -> Figure:
    """Bar chart of KL per latent dimension, sorted largest first, ticks naming each dim (one axes).

    kl is (D,) or per-example (N, D), averaged over N. With a threshold (e.g. 0.01 nats for active
    units) bars below it are greyed and a dashed line marks it. One column wide up to 24 dims, else a page.
    """
    values = _numpy(kl).astype(np.float64)
    if values.ndim == 2:
        values = values.mean(axis=0)
    if values.ndim != 1 or values.size == 0:
        raise LatentAtlasError(f"kl must have shape (D,) or (N, D) with D >= 1, but got {tuple(_numpy(kl).shape)}.")
    order = order_dims_by_kl(values)
    sorted_kl = values[order]
    d = values.size
    total = float(np.nansum(values))
    width = COLUMN_WIDTH if d <= 24 else PAGE_WIDTH
    with style():
        fig = new_figure(width, 2.4 if width == COLUMN_WIDTH else 2.6)
        ax = fig.add_subplot()
        colors = np.full(d, ACCENT, dtype=object)
        if threshold is not None:
            colors[~(sorted_kl >= threshold)] = MUTED
        ax.bar(np.arange(d), np.nan_to_num(sorted_kl), color=list(colors), width=0.8, linewidth=0)
        # Every bar is named while the 8 pt labels fit side by side (about 0.065 in per digit plus a gap);
        # past that, every step-th bar, evenly.
        digits = len(str(d - 1))
        per_bar = (width - 0.7) / d
        step = max(1, math.ceil((0.065 * digits + 0.06) / per_bar))
        ticks = list(range(0, d, step))
        ax.set_xticks(ticks, [str(int(order[i])) for i in ticks])
        ax.set_xlim(-0.6, d - 0.4)
        ax.grid(axis="y")
        ax.tick_params(axis="x", length=0, pad=2)
        ax.set_xlabel("latent dimension (sorted by KL)" + (f"; every {step}th named" if step > 1 else ""))
        ax.set_ylabel("KL (nats)")
        summary = f"total {total:.3g} nats"
        if threshold is not None:
            active = int(np.count_nonzero(values >= threshold))
            ax.axhline(threshold, color="#777777", linestyle="--", linewidth=0.9)
            summary += f"\n{active} of {d} dims ≥ {threshold:g}"
        ax.text(0.985, 0.97, summary, transform=ax.transAxes, ha="right", va="top", fontsize=MIN_FONT, color=NOTE)
        ax.set_title(title if title is not None else "KL per latent dimension")
    return fig


# Keys in a history row that index it rather than measure the model.
_INDEX_KEYS = {"step", "epoch", "time", "timestamp", "elapsed", "wall_time"}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average that steps over NaN and narrows at the ends (no lag, unlike an EMA)."""
    ok = np.isfinite(y)
    kernel = np.ones(window)
    total = np.convolve(np.where(ok, y, 0.0), kernel, mode="same")
    count = np.convolve(ok.astype(np.float64), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


@dataclass(frozen=True)
class Quantity:
    """How `training_curves` draws one logged quantity.

    title: what the panel shows (default: the key). ylabel: the y axis (e.g. "nats", or what was
    subtracted). offset: a constant subtracted from every logged value before drawing it (an
    estimator's known shift), which the ylabel should then say. zero: draw a dashed line at 0 and keep
    it in view (an estimate that can be negative). note: a short caption under the panel.
    """

    title: str | None = None
    ylabel: str | None = None
    offset: float = 0.0
    zero: bool = False
    note: str | None = None


def _wrap(fig: Figure, text: str, width_in: float, fontsize: float, bold: bool = False) -> str:
    """Wrap text at spaces into lines no wider than `width_in` inches at `fontsize`, as the canvas measures them."""
    from matplotlib.font_manager import FontProperties

    with style():
        prop = FontProperties(size=fontsize, weight="bold" if bold else "normal")
    renderer = fig.canvas.get_renderer()
    limit = width_in * fig.dpi

    def fits(line: str) -> bool:
        return renderer.get_text_width_height_descent(line, prop, ismath=False)[0] <= limit

    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            trial = f"{line} {word}" if line else word
            if line and not fits(trial):
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return "\n".join(lines)


def training_curves(history: Sequence[Mapping[str, Any]], *, title: str | None = "Training curves",
                    notes: Mapping[str, str] | None = None, quantities: Mapping[str, Quantity] | None = None,
                    caption: str | None = None) -> Figure:
    """One panel per logged quantity against step (one axes per quantity, "loss" first), a page wide.

    ``quantities`` says per key what its panel shows (`Quantity`: title, y label, a constant shift to
    remove, a zero line, a note). ``notes`` puts a caption under the panel of a
    quantity (the same as a `Quantity` note). ``caption`` is a paragraph under the whole figure (what the
    estimates are, and how they are biased).

    history is a list of dicts with "step" and numeric entries; rows may log different quantities.
    Keys that index rather than measure (step, epoch, time, …) and non-numeric values are skipped.
    Long curves are drawn faintly with a smoothed line on top; a positive quantity spanning more
    than two decades gets a log axis. Three panels to a row; a short last row is centred.
    """
    rows = list(history)
    if not rows:
        raise LatentAtlasError("training_curves needs a non-empty history (a list of dicts with 'step').")
    names: list[str] = []
    for row in rows:
        for key, value in row.items():
            if key not in _INDEX_KEYS and key not in names and _is_number(value):
                names.append(key)
    if not names:
        raise LatentAtlasError("history has no numeric quantities to plot besides its step counter.")
    if "loss" in names:
        names.remove("loss")
        names.insert(0, "loss")
    specs = dict(quantities or {})
    for key, note in (notes or {}).items():
        if key in names and not (specs.get(key) and specs[key].note):
            base = specs.get(key, Quantity())
            specs[key] = Quantity(base.title, base.ylabel, base.offset, base.zero, note)
    steps_all = np.array([float(row.get("step", i)) if _is_number(row.get("step", i)) else float(i) for i, row in enumerate(rows)])
    k = len(names)
    cols = min(3, k)
    nrows = math.ceil(k / cols)
    width = PAGE_WIDTH if cols > 1 else COLUMN_WIDTH
    with style():
        fig = new_figure(width, 1.0)
    panel_w = width / cols - 0.55  # the axes, beside its y tick labels and y label
    title_size = 8.5  # a little under the house 9 pt: a panel is a third of a page
    # centred over its axes, a title or note wider than the axes would run into the next panel or off the page
    titles = [_wrap(fig, specs.get(q, Quantity()).title or q, panel_w + 0.2, title_size, bold=True) for q in names]
    captions = [_wrap(fig, specs[q].note, panel_w + 0.2, MIN_FONT) if specs.get(q) and specs[q].note else "" for q in names]
    caption_text = _wrap(fig, caption, width - 0.15, MIN_FONT) if caption else ""
    line = 1.25 * MIN_FONT / 72  # inches per line of 8-9 pt text
    height = 0.0
    for r in range(nrows):
        block = slice(r * cols, (r + 1) * cols)
        lines_t = max(t.count("\n") + 1 for t in titles[block])
        lines_n = max((c.count("\n") + 1 if c else 0) for c in captions[block])
        height += 1.3 + line * 1.15 * lines_t + line * (lines_n + 1) + 0.25
    height += (0.3 if title else 0.0) + (line * 1.05 * (caption_text.count("\n") + 1) + 0.1 if caption_text else 0.0)
    fig.set_size_inches(width, height)
    with style():
        axes = _panel_axes(fig, k, cols, sharex=True)
        for i, (ax, name) in enumerate(zip(axes, names)):
            spec = specs.get(name, Quantity())
            idx = [j for j, row in enumerate(rows) if _is_number(row.get(name))]
            x = steps_all[idx]
            y = np.array([float(rows[j][name]) for j in idx]) - spec.offset
            color = STYLE["axes.prop_cycle"].by_key()["color"][i % 8]
            if spec.zero:
                ax.axhline(0.0, color="#555555", linestyle="--", linewidth=0.8, zorder=1)
            if len(y) > 40:
                ax.plot(x, y, color=color, alpha=0.3, linewidth=0.9)
                ax.plot(x, _smooth(y, max(3, len(y) // 40) | 1), color=color)
            else:
                ax.plot(x, y, color=color, marker="o" if len(y) <= 20 else None, markersize=3)
            finite = y[np.isfinite(y)]
            if finite.size and finite.min() == finite.max() and not spec.zero:
                v = float(finite[0])  # a constant (a fixed learning rate): centre it, no offset notation
                ax.set_ylim(v - (abs(v) * 0.5 or 1.0), v + (abs(v) * 0.5 or 1.0))
            elif (finite.size and not spec.zero and finite.min() > 0
                  and np.quantile(finite, 0.95) > 100 * np.quantile(finite, 0.05)):
                ax.set_yscale("log")
            if spec.zero and finite.size:
                lo, hi = min(0.0, float(finite.min())), max(0.0, float(finite.max()))
                pad = 0.08 * ((hi - lo) or 1.0)
                ax.set_ylim(lo - pad, hi + pad)
            if ax.get_yscale() == "linear":
                ax.ticklabel_format(axis="y", useOffset=False)
            ax.grid(True)
            ax.set_title(titles[i], linespacing=1.15, fontsize=title_size)
            if spec.ylabel:
                ax.set_ylabel(spec.ylabel, labelpad=2)
            if captions[i]:  # under the panel it is about
                ax.set_xlabel("step\n" + captions[i], fontsize=MIN_FONT, linespacing=1.25)
            else:
                ax.set_xlabel("step")
        if title:
            fig.suptitle(title)
        if caption_text:
            fig.supxlabel(caption_text, x=0.01, ha="left", fontsize=MIN_FONT, color=NOTE, linespacing=1.3)
    _even_last_row(fig, axes, cols)
    return fig
