"""Static matplotlib figures for reports and notebooks, drawn from plain arrays.

Every function returns a `matplotlib.figure.Figure` built on the Agg canvas without pyplot, so no
global state changes and nothing is written; `save` writes a PNG atomically. Images are
(N, C, H, W) floats in [0, 1] with C in {1, 3} (values outside are clipped); nothing here knows
about models. Image grids are drawn as one montage per axes, so a grid has one axes however many
tiles it holds.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from cycler import cycler
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

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
]

DPI = 100
ACCENT = "#3b6ea8"
MUTED = "#b9b9b9"

STYLE: dict[str, Any] = {
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.titlepad": 6,
    "figure.titlesize": 11.5,
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
    "legend.title_fontsize": 8.5,
    "legend.frameon": False,
    "lines.linewidth": 1.4,
    "image.interpolation": "nearest",
}


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


def save(fig: Figure, path: str | os.PathLike[str], *, dpi: float | None = None) -> Path:
    """Write `fig` as a PNG at `path` atomically, then close it; returns the path.

    The bytes go to a temporary file in the same folder, are flushed to disk, and the file is renamed
    over `path`, so a crash never leaves a half-written PNG. The folder must exist. On failure the
    temporary file is removed, an existing file at `path` is unchanged, and the figure stays open.
    """
    target = Path(path)
    folder = target.parent
    tmp = folder / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        # O_EXCL: never write through someone else's file; 0o666 lets the umask decide permissions.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except FileNotFoundError:
        raise LatentAtlasError(f"cannot save figure to {target}: the folder {folder} does not exist.") from None
    except OSError as exc:
        raise LatentAtlasError(f"cannot save figure to {target}: {exc.strerror or exc}.") from exc
    try:
        with os.fdopen(fd, "wb") as f, style():
            fig.savefig(f, format="png", dpi=dpi or fig.dpi, facecolor="white")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise LatentAtlasError(f"cannot save figure to {target}: {exc.strerror or exc}.") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _close(fig)
    return target


def png_bytes(fig: Figure, *, dpi: float | None = None) -> bytes:
    """The figure as PNG bytes (for an HTTP response); the figure stays open."""
    import io

    buf = io.BytesIO()
    with style():
        fig.savefig(buf, format="png", dpi=dpi or fig.dpi, facecolor="white")
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


def _tile_inches(rows: int, cols: int, aspect: float, max_w: float = 10.0, max_h: float = 8.0) -> float:
    """Width in inches of one tile: ~0.9 in, shrunk so the grid fits about max_w × max_h."""
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
    tile = _tile_inches(r, m, aspect)
    tile_px = tile * DPI
    # Enlarge small tiles by an integer factor first, so pixels stay square and crisp and the white
    # gap between tiles can be a few screen pixels rather than one (large) source pixel.
    k = max(1, int(tile_px // w))
    if k > 1:
        grid = grid.repeat(k, axis=-2).repeat(k, axis=-1)
        h, w = h * k, w * k
    pad = max(1, round(tile_px / 30)) if gap else 0
    label_w = 0.0
    if row_labels is not None or ylabel:
        label_w = 0.2 + 0.065 * max([len(s) for s in (row_labels or [])] + [0]) + (0.25 if ylabel else 0.0)
    top = 0.4 if title else 0.12
    bottom = (0.3 if col_labels is not None else 0.1) + (0.2 if xlabel else 0.0)
    with style():
        fig = new_figure(m * tile + label_w + 0.2, r * tile * aspect + top + bottom)
        ax = fig.add_subplot()
        # Shrinking tiles (large images in a big grid) needs antialiasing; enlarged ones do not.
        interpolation = "nearest" if tile_px >= w else "antialiased"
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
    return float(np.clip(300.0 / math.sqrt(max(n, 1)), 0.6, 16.0))


def _palette(k: int) -> np.ndarray:
    cmaps = matplotlib.colormaps
    if k <= 10:
        return np.asarray(cmaps["tab10"].colors)[:k]
    if k <= 20:
        return np.asarray(cmaps["tab20"].colors)[:k]
    return cmaps["turbo"](np.linspace(0.05, 0.95, k))[:, :3]


def _is_categorical(values: np.ndarray) -> bool:
    if values.dtype.kind in "biuUSO":
        return values.dtype.kind not in "iu" or len(np.unique(values)) <= 20
    return False


def _scatter_panel(
    fig: Figure,
    ax: Any,
    coords: np.ndarray,
    values: np.ndarray | None,
    name: str,
    categorical: bool,
    *,
    legend_title: str | None,
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
        cats, codes = np.unique(values, return_inverse=True)
        colors = _palette(len(cats))
        ax.scatter(x, y, c=colors[codes.ravel()[order]], alpha=0.8, **common)
        if len(cats) <= 20:
            handles = [
                Line2D([], [], linestyle="", marker="o", markersize=5, markerfacecolor=colors[i], markeredgewidth=0)
                for i in range(len(cats))
            ]
            ax.legend(
                handles,
                [_fmt(c) for c in cats],
                title=legend_title,
                loc="upper left",
                bbox_to_anchor=(1.0, 1.0),
                handletextpad=0.2,
                borderaxespad=0.2,
                labelspacing=0.3,
                ncols=1 if len(cats) <= 12 else 2,
                columnspacing=0.6,
            )
        else:
            ax.text(0.99, 0.01, f"{len(cats)} classes", transform=ax.transAxes, ha="right", va="bottom",
                    fontsize=7.5, color="#555555")
    else:
        v = values.astype(np.float64)[order]
        ok = np.isfinite(v)
        if not ok.all():
            ax.scatter(x[~ok], y[~ok], color=MUTED, alpha=0.6, **common)
        sc = ax.scatter(x[ok], y[ok], c=v[ok], cmap="viridis", alpha=0.9, **common)
        cb = fig.colorbar(sc, ax=ax, shrink=0.85, pad=0.02, aspect=30)
        cb.outline.set_visible(False)
        cb.ax.tick_params(labelsize=7.5, length=2)
        if legend_title:
            cb.set_label(legend_title)
    ax.set_aspect("equal", adjustable="datalim")
    ax.tick_params(labelsize=7, length=2)
    ax.margins(0.04)


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


def latent_map(
    coords: Any,
    color_values: Any = None,
    color_name: str = "",
    categorical: bool = False,
    *,
    title: str | None = None,
    axis_labels: tuple[str, str] | None = None,
) -> Figure:
    """Scatter of 2-D coordinates coloured by one quantity: a legend if categorical, else a colourbar.

    One axes, plus a colourbar axes for continuous values. color_values may be None (one colour).
    """
    c = _coords(coords)
    v = _color_values(color_values, c.shape[0], color_name)
    with style():
        fig = new_figure(6.4 if (v is not None and categorical) else 6.0, 5.0)
        ax = fig.add_subplot()
        _scatter_panel(fig, ax, c, v, color_name, categorical, legend_title=color_name or None)
        if axis_labels:
            ax.set_xlabel(axis_labels[0])
            ax.set_ylabel(axis_labels[1])
        default = f"Latent map · {color_name}" if color_name else "Latent map"
        ax.set_title(title if title is not None else default)
    return fig


def latent_maps(
    coords: Any,
    colorings: Mapping[str, Any],
    *,
    title: str | None = None,
    ncols: int | None = None,
    axis_labels: tuple[str, str] | None = None,
) -> Figure:
    """One scatter panel per colouring, in a grid: colorings maps name -> (values, categorical).

    A bare array instead of a (values, categorical) pair is treated as categorical when it holds
    strings, booleans, or integers with at most 20 distinct values. Continuous panels add a colourbar
    axes each; empty colorings give one plain panel.
    """
    c = _coords(coords)
    items: list[tuple[str, np.ndarray | None, bool]] = []
    for name, spec in colorings.items():
        if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], (bool, np.bool_)):
            values, categorical = spec
            v = _color_values(values, c.shape[0], name)
            items.append((str(name), v, bool(categorical)))
        else:
            v = _color_values(spec, c.shape[0], name)
            items.append((str(name), v, _is_categorical(v)))
    if not items:
        items = [("", None, False)]
    k = len(items)
    cols = max(1, min(int(ncols) if ncols else 3, k))
    rows = math.ceil(k / cols)
    with style():
        fig = new_figure(cols * 4.3, rows * 3.7 + (0.35 if title else 0.0))
        for i, (name, v, categorical) in enumerate(items):
            ax = fig.add_subplot(rows, cols, i + 1)
            _scatter_panel(fig, ax, c, v, name, categorical, legend_title=None)
            ax.set_title(name)
            if axis_labels:
                ax.set_xlabel(axis_labels[0])
                ax.set_ylabel(axis_labels[1])
        if title:
            fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------------------------- charts


def kl_per_dim(kl: Any, *, threshold: float | None = None, title: str | None = None) -> Figure:
    """Bar chart of KL per latent dimension, sorted largest first, ticks naming each dim (one axes).

    kl is (D,) or per-example (N, D), averaged over N. With a threshold (e.g. 0.01 nats for active
    units) bars below it are greyed and a dashed line marks it.
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
    with style():
        fig = new_figure(float(np.clip(1.6 + 0.2 * d, 4.8, 12.0)), 3.6)
        ax = fig.add_subplot()
        colors = np.full(d, ACCENT, dtype=object)
        if threshold is not None:
            colors[~(sorted_kl >= threshold)] = MUTED
        ax.bar(np.arange(d), np.nan_to_num(sorted_kl), color=list(colors), width=0.8, linewidth=0)
        # Every bar is named while the labels fit; past that, every step-th bar, evenly.
        step = 1 if d <= 80 else math.ceil(d / 64)
        ticks = list(range(0, d, step))
        ax.set_xticks(ticks, [str(int(order[i])) for i in ticks], fontsize=8 if d <= 24 else 6.5)
        ax.set_xlim(-0.6, d - 0.4)
        ax.grid(axis="y")
        ax.tick_params(axis="x", length=0)
        ax.set_xlabel("latent dimension (sorted by KL)")
        ax.set_ylabel("KL (nats)")
        summary = f"total {total:.3g} nats"
        if threshold is not None:
            active = int(np.count_nonzero(values >= threshold))
            ax.axhline(threshold, color="#777777", linestyle="--", linewidth=0.9)
            summary += f"\n{active} of {d} dims ≥ {threshold:g}"
        ax.text(0.985, 0.97, summary, transform=ax.transAxes, ha="right", va="top", fontsize=8, color="#444444")
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


def training_curves(history: Sequence[Mapping[str, Any]], *, title: str | None = "Training curves",
                    notes: Mapping[str, str] | None = None) -> Figure:
    """One panel per logged quantity against step (one axes per quantity, "loss" first).

    ``notes`` puts a caption under the panel of a quantity (what an estimate means, or how it is biased).

    history is a list of dicts with "step" and numeric entries; rows may log different quantities.
    Keys that index rather than measure (step, epoch, time, …) and non-numeric values are skipped.
    Long curves are drawn faintly with a smoothed line on top; a positive quantity spanning more
    than two decades gets a log axis.
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
    steps_all = np.array([float(row.get("step", i)) if _is_number(row.get("step", i)) else float(i) for i, row in enumerate(rows)])
    k = len(names)
    cols = min(3, k)
    nrows = math.ceil(k / cols)
    with style():
        fig = new_figure(cols * 3.6, nrows * 2.7 + (0.35 if title else 0.0))
        axes = []
        for i, name in enumerate(names):
            ax = fig.add_subplot(nrows, cols, i + 1, sharex=axes[0] if axes else None)
            axes.append(ax)
            idx = [j for j, row in enumerate(rows) if _is_number(row.get(name))]
            x = steps_all[idx]
            y = np.array([float(rows[j][name]) for j in idx])
            color = STYLE["axes.prop_cycle"].by_key()["color"][i % 8]
            if len(y) > 40:
                ax.plot(x, y, color=color, alpha=0.3, linewidth=0.9)
                ax.plot(x, _smooth(y, max(3, len(y) // 40) | 1), color=color)
            else:
                ax.plot(x, y, color=color, marker="o" if len(y) <= 20 else None, markersize=3)
            finite = y[np.isfinite(y)]
            if finite.size and finite.min() == finite.max():
                v = float(finite[0])  # a constant (a fixed learning rate): centre it, no offset notation
                ax.set_ylim(v - (abs(v) * 0.5 or 1.0), v + (abs(v) * 0.5 or 1.0))
            elif finite.size and finite.min() > 0 and np.quantile(finite, 0.95) > 100 * np.quantile(finite, 0.05):
                ax.set_yscale("log")
            if ax.get_yscale() == "linear":
                ax.ticklabel_format(axis="y", useOffset=False)
            ax.grid(True)
            ax.set_title(name)
            note = (notes or {}).get(name)
            if note:  # under the panel it is about, wrapped to the panel's width
                import textwrap

                ax.set_xlabel("step\n" + textwrap.fill(note, 52), fontsize=7, linespacing=1.3)
            elif i >= k - cols:
                ax.set_xlabel("step")
        if title:
            fig.suptitle(title)
    return fig
