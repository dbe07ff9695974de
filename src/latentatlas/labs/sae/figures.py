"""The SAE lab's static figures: a sweep's rate–distortion frontier (drawn by the shared
``latentatlas.figures`` house style, a page wide)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.text import Text

from ... import figures as F
from ...errors import LatentAtlasError


def _offsets() -> list[tuple[float, float, str, str]]:
    """Where a point's label may go, in points from the point, in order of preference: beside it above
    right, then below left (both off a falling frontier's line), then the other corners; then farther
    out in eight directions (those get a leader line)."""
    near = [(4, 3, "left", "bottom"), (-4, -3, "right", "top"), (4, -3, "left", "top"), (-4, 3, "right", "bottom")]
    far = []
    for r in (13.0, 22.0):
        d = r * 0.7
        far += [(d, d, "left", "bottom"), (-d, -d, "right", "top"), (d, -d, "left", "top"), (-d, d, "right", "bottom"),
                (0, r, "center", "bottom"), (0, -r, "center", "top"), (r, 0, "left", "center"), (-r, 0, "right", "center")]
    return near + far


_LABEL_OFFSETS = _offsets()


def _label_points(fig: Figure, ax: Any, xs: np.ndarray, ys: np.ndarray, texts: Sequence[str]) -> None:
    """Label each point at the first corner where its label overlaps no marker and no label placed before
    it, nor leaves the axes; where none is free, the corner overlapping least."""
    from matplotlib.transforms import Bbox

    fig.draw_without_rendering()  # the layout, so display positions are final
    renderer = fig.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    r = 3.0 * fig.dpi / 72.0  # a marker's reach in pixels (3 pt: ms=4 is its diameter, plus a little)
    markers = [Bbox.from_extents(px - r, py - r, px + r, py + r) for px, py in ax.transData.transform(np.column_stack([xs, ys]))]
    placed: list[Any] = []
    for i, (xi, yi, text) in enumerate(zip(xs, ys, texts)):
        if not text:
            continue
        others = placed + markers[:i] + markers[i + 1 :]  # its own marker is what the label sits beside
        best, best_cost = None, None
        for dx, dy, ha, va in _LABEL_OFFSETS:
            leader = dict(arrowstyle="-", color=F.MUTED, lw=0.6, shrinkA=0, shrinkB=3) if abs(dx) + abs(dy) > 10 else None
            ann = ax.annotate(text, (xi, yi), textcoords="offset points", xytext=(dx, dy), ha=ha, va=va,
                              fontsize=F.MIN_FONT, color=F.NOTE, arrowprops=leader)
            ann.set_in_layout(False)  # or the layout would move the points after their labels were placed
            ann.update_positions(renderer)
            box = Text.get_window_extent(ann, renderer)  # the words, not the leader line
            cost = sum(_overlap(box, other) for other in others)
            cost += box.width * box.height - _overlap(box, inside)  # the part outside the axes
            if best_cost is None or cost < best_cost:
                if best is not None:
                    best[0].remove()
                best, best_cost = (ann, box), cost
            else:
                ann.remove()
            if cost == 0:
                break
        placed.append(best[1])


def _overlap(a: Any, b: Any) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return float(w * h) if w > 0 and h > 0 else 0.0


def rate_distortion(points: Sequence[Mapping[str, Any]], *, title: str | None = "Rate–distortion frontier") -> Figure:
    """FVU against L0 (left) and against rate in bits per token (right), one marker per SAE, with the
    FVU's interval as error bars and each point labelled by its swept value (labels kept apart)."""
    pts = sorted(points, key=lambda p: p["l0"])
    if not pts:
        raise LatentAtlasError("rate_distortion needs at least one point (an evaluated SAE).")
    with F.style():
        fig = F.new_figure(F.PAGE_WIDTH, 2.9 + (0.25 if title else 0.0))
        axes = []
        for j, (key, label) in enumerate((("l0", "L0 (active latents per token)"), ("rate_bits", "rate (bits per token)"))):
            ax = fig.add_subplot(1, 2, j + 1, sharey=axes[0] if axes else None)
            axes.append(ax)
            x = np.array([p[key] for p in pts], dtype=float)
            y = np.array([p["fvu"] for p in pts], dtype=float)
            lo = np.array([p.get("fvu_low", p["fvu"]) if p.get("fvu_low") is not None else p["fvu"] for p in pts], dtype=float)
            hi = np.array([p.get("fvu_high", p["fvu"]) if p.get("fvu_high") is not None else p["fvu"] for p in pts], dtype=float)
            # a percentile interval need not contain its estimate (a biased statistic): draw what lies beyond it
            ax.errorbar(x, y, yerr=[np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)], color=F.ACCENT, marker="o", ms=4, lw=1.2, capsize=2)
            if np.all(x > 0) and x.max() / max(x.min(), 1e-12) > 8:
                from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

                ax.set_xscale("log")
                # plain numbers at 1, 2, 5 × 10^n: the default labels every minor tick in scientific form, and they collide
                ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
                ax.xaxis.set_minor_formatter(NullFormatter())
            ax.margins(x=0.12, y=0.12)  # room for the labels at the ends
            ax.set_xlabel(label)
            if j == 0:
                ax.set_ylabel("FVU (centred)")
            ax.grid(True)
        if title:
            fig.suptitle(title)
        for j, key in enumerate(("l0", "rate_bits")):
            _label_points(fig, axes[j], np.array([p[key] for p in pts], dtype=float), np.array([p["fvu"] for p in pts], dtype=float),
                          [str(p.get("label", "")) for p in pts])
    return fig
