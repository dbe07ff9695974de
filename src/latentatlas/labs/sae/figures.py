"""The SAE lab's static figures: a sweep's rate–distortion frontier (drawn by the shared
``latentatlas.figures`` house style)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ... import figures as F
from ...errors import LatentAtlasError


def rate_distortion(points: Sequence[Mapping[str, Any]], *, title: str | None = "Rate–distortion frontier") -> Figure:
    """FVU against L0 (left) and against rate in bits per token (right), one marker per SAE, with the
    FVU's interval as error bars and each point labelled by its swept value."""
    pts = sorted(points, key=lambda p: p["l0"])
    if not pts:
        raise LatentAtlasError("rate_distortion needs at least one point (an evaluated SAE).")
    with F.style():
        fig = F.new_figure(9.0, 3.8)
        for j, (key, label) in enumerate((("l0", "L0 (active latents per token)"), ("rate_bits", "rate (bits per token)"))):
            ax = fig.add_subplot(1, 2, j + 1)
            x = np.array([p[key] for p in pts], dtype=float)
            y = np.array([p["fvu"] for p in pts], dtype=float)
            lo = np.array([p.get("fvu_low", p["fvu"]) if p.get("fvu_low") is not None else p["fvu"] for p in pts], dtype=float)
            hi = np.array([p.get("fvu_high", p["fvu"]) if p.get("fvu_high") is not None else p["fvu"] for p in pts], dtype=float)
            # a percentile interval need not contain its estimate (a biased statistic): draw what lies beyond it
            ax.errorbar(x, y, yerr=[np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)], color=F.ACCENT, marker="o", ms=4, lw=1.2, capsize=2)
            for p, xi, yi in zip(pts, x, y):
                ax.annotate(str(p.get("label", "")), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7, color=F.MUTED)
            if np.all(x > 0) and x.max() / max(x.min(), 1e-12) > 8:
                from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

                ax.set_xscale("log")
                # plain numbers at 1, 2, 5 × 10^n: the default labels every minor tick in scientific form, and they collide
                ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
                ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel(label)
            ax.set_ylabel("FVU (centred)")
            ax.grid(True)
        if title:
            fig.suptitle(title)
    return fig
