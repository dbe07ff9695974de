"""The attention lab from a notebook, as ``la.attention``::

    import latentatlas as la
    s = la.attention.show("minilm", "The cat sat on the mat because it was tired.")
    s                      # the head view, in a frame onto the explorer this process serves on 127.0.0.1
    s.probs(layer=2)       # (heads, T, T) float32, the model's own attention
    s.view("model")        # any other view: "model", "matrix", "neuron", "atlas"
    h = la.attention.heads("minilm", tokens=20_000)
    run, report = la.attention.induction()

The views are the explorer's own pages (no CDN, nothing fetched from elsewhere), served from a daemon
thread of the notebook's process; the server allows loopback notebook pages to frame it and nothing else.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import numpy as np

from ...atlas import Atlas, Run
from ...errors import LatentAtlasError
from . import jobs

VIEWS = ("head", "model", "matrix", "neuron", "atlas", "metrics")


@dataclass
class ExplorerView:
    """A view of the explorer; a notebook shows it as a frame (``_repr_html_``), ``url`` opens it in a browser."""
    base: str
    params: dict[str, Any]
    height: int = 720

    @property
    def url(self) -> str:
        return f"{self.base}/?{urlencode(self.params)}"

    def _repr_html_(self) -> str:
        return (f'<iframe src="{html.escape(self.url, quote=True)}" style="width:100%;height:{int(self.height)}px;border:1px solid #ddd" '
                f'title="latentatlas explorer"></iframe>')

    def __repr__(self) -> str:
        return f"ExplorerView({self.url})"


def _atlas(atlas: Atlas | str | None) -> Atlas:
    return atlas if isinstance(atlas, Atlas) else Atlas(atlas)


def view(run: Run, name: str = "head", *, height: int = 720, **params: Any) -> ExplorerView:
    """The explorer's ``name`` view of ``run`` (served from this process, started on first use)."""
    from ...server.background import serve_in_thread

    if name not in VIEWS:
        raise LatentAtlasError(f"view '{name}' is not one of the attention lab's: expected one of {', '.join(VIEWS)}")
    base = serve_in_thread(run.path.parent.parent)
    return ExplorerView(base, {"run": run.name, "view": name, **{k: v for k, v in params.items() if v is not None}}, height)


@dataclass
class Sample:
    """One text's captured attention: its meta (tokens, layers, how it was read), the arrays, and views."""
    run: Run
    meta: dict[str, Any]

    @property
    def tokens(self) -> list[str]:
        return list(self.meta["tokens"])

    def probs(self, layer: int) -> np.ndarray:
        """Layer ``layer``'s attention, (heads, queries, keys) float32."""
        from .explore import AttentionExplorer

        t = self.meta["n_tokens"]
        a, _ = AttentionExplorer(self.run).window(self.meta["id"], int(layer), 0, t, 0, t, max_cells=max(t, 1))
        return a.astype(np.float32)

    def view(self, name: str = "head", height: int = 720, **params: Any) -> ExplorerView:
        return view(self.run, name, height=height, sample=self.meta["id"], **params)

    def _repr_html_(self) -> str:
        return self.view()._repr_html_()


def show(model: str, text: str, *, atlas: Atlas | str | None = None, device: str = "cpu") -> Sample:
    """Capture ``text``'s attention at every layer and head of ``model`` (``minilm``, a transformers folder
    or hub id, or a run of this lab) into the atlas; the result displays as the head view."""
    subject, run = jobs.resolve(model, _atlas(atlas), device)
    with run.lock():
        meta = jobs.show(subject, run, text, progress=False)
    return Sample(run, meta)


@dataclass
class HeadAtlas:
    run: Run
    meta: dict[str, Any]
    table: np.ndarray  # (layers, heads, statistics), names in meta["stats"]

    def stat(self, name: str) -> np.ndarray:
        if name not in self.meta["stats"]:
            raise LatentAtlasError(f"'{name}' is not a head statistic; expected one of {', '.join(self.meta['stats'])}")
        return self.table[..., self.meta["stats"].index(name)]

    def view(self, height: int = 640) -> ExplorerView:
        return view(self.run, "atlas", height=height)

    def _repr_html_(self) -> str:
        return self.view()._repr_html_()


def heads(model: str, *, corpus: str = "builtin", tokens: int = 20_000, batch_size: int = 16, max_length: int = 128,
          atlas: Atlas | str | None = None, device: str = "cpu", progress: bool = False) -> HeadAtlas:
    """The head atlas of ``model`` over ``tokens`` corpus tokens (see ``latentatlas attention heads``)."""
    subject, run = jobs.resolve(model, _atlas(atlas), device)
    with run.lock():
        got = jobs.heads(subject, run, corpus=None if subject.tokenizer is None else corpus, tokens=tokens, batch_size=batch_size,
                         max_length=max_length, progress=progress)
    table = got.pop("table")
    return HeadAtlas(run, got, table)


def induction(atlas: Atlas | str | None = None, **kwargs: Any):
    """Train the induction-heads ground truth (``latentatlas attention induction``); returns (run, report)."""
    kwargs.setdefault("progress", False)
    run, _, report = jobs.train_induction(_atlas(atlas), **kwargs)
    return run, report
