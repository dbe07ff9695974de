"""What the attention views show, as plain dicts and arrays: a run's samples, windows of one layer's
attention (float16, max-pooled to the cells the page can draw), the model view's thumbnails, the neuron
view for one head and query, and the head atlas.

Every file read here comes from the atlas and is untrusted: sample ids are checked against their pattern,
``sample.json`` against its schema, and every tensor's shape against what the meta says before a byte of
it is served.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..._io import read_json
from ...atlas import Run
from ...errors import LatentAtlasError, NotFound
from . import KINDS, jobs

MAX_CELLS = 2048  # the most cells a side of one window is pooled to


class AttentionExplorer:
    def __init__(self, run: Run):
        self.run = run
        self.kind = str(run.config().get("kind"))
        if self.kind not in KINDS:
            raise LatentAtlasError(f"run '{run.name}' is a {self.kind}, not a run of the attention lab")
        self._subject: jobs.Subject | None = None
        self._meta: dict[str, dict[str, Any]] = {}

    # -- samples -------------------------------------------------------------------------------------
    def overview(self) -> dict[str, Any]:
        cfg = self.run.config()
        heads = jobs.read_heads(self.run)
        return {"kind": self.kind, "model": (cfg.get("model") or {}), "samples": self.samples(),
                "heads": heads[1] if heads else None, "reads_ids": self.kind == jobs.TOY_KIND}

    def samples(self) -> list[dict[str, Any]]:
        folder = jobs.samples_dir(self.run)
        out = []
        if folder.is_dir():
            for p in sorted(folder.iterdir()):
                if jobs._SAMPLE_ID.match(p.name) and (p / "sample.json").is_file():
                    try:
                        m = self.sample(p.name)
                    except LatentAtlasError:
                        continue  # a damaged sample is left out of the list; opening it says why
                    out.append({"id": m["id"], "text": m["text"][:200], "n_tokens": m["n_tokens"], "created_at": m["created_at"]})
        return sorted(out, key=lambda m: m["created_at"], reverse=True)

    def sample(self, sid: str) -> dict[str, Any]:
        from ...schemas import AttentionSampleMeta, validate

        if not isinstance(sid, str) or not jobs._SAMPLE_ID.match(sid):
            raise LatentAtlasError(f"sample id '{str(sid)[:40]}' is not one this tool writes (12 hex digits)")
        if sid in self._meta:
            return self._meta[sid]
        path = self._folder(sid) / "sample.json"
        if not path.is_file():
            raise NotFound(f"run '{self.run.name}' has no attention sample '{sid}'")
        meta = read_json(path, "attention sample", 64 << 20)
        validate(AttentionSampleMeta, meta, "attention sample", path)
        if meta["id"] != sid:
            raise LatentAtlasError(f"attention sample '{path}' says it is '{meta['id']}', not '{sid}'")
        self._meta[sid] = meta
        return meta

    def _folder(self, sid: str) -> Path:
        return self.run.file("attention", "samples", sid)

    def _tensor(self, sid: str, key: str, expect: tuple[int, ...], index: tuple[slice, ...] | None = None) -> torch.Tensor:
        from safetensors import SafetensorError, safe_open

        path = self._folder(sid) / "probs.safetensors"
        try:
            with safe_open(str(path), "pt") as f:
                if key not in f.keys():
                    raise LatentAtlasError(f"attention file '{path}' lacks '{key}'")
                sl = f.get_slice(key)
                shape = tuple(sl.get_shape())
                if shape != expect or sl.get_dtype() not in ("F16", "F32", "BF16"):
                    raise LatentAtlasError(f"attention file '{path}' holds '{key}' as {shape} {sl.get_dtype()}; its sample.json says {expect}")
                return (sl[index] if index is not None else f.get_tensor(key)).float()
        except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
            raise LatentAtlasError(f"attention file '{path}' is unreadable ({type(exc).__name__}); capture the text again") from exc

    def window(self, sid: str, layer: int, r0: int, r1: int, c0: int, c1: int, max_cells: int = 512,
               heads: tuple[int, int] | None = None) -> tuple[np.ndarray, tuple[int, int]]:
        """Rows ``r0:r1`` (queries) × columns ``c0:c1`` (keys) of every head of ``layer`` (or heads
        ``h0:h1``), max-pooled so that neither side exceeds ``max_cells``: float16 (heads, rows, cols) and
        the pooling factors."""
        m = self.sample(sid)
        t, h = m["n_tokens"], m["n_heads"]
        if not 0 <= layer < m["n_layers"]:
            raise LatentAtlasError(f"layer {layer} is out of range; this sample has layers 0..{m['n_layers'] - 1}")
        r0, r1, c0, c1 = max(0, r0), min(t, r1), max(0, c0), min(t, c1)
        if r0 >= r1 or c0 >= c1:
            raise LatentAtlasError(f"the window rows {r0}:{r1} × columns {c0}:{c1} is empty; this sample has {t} tokens")
        h0, h1 = heads if heads is not None else (0, h)
        if not 0 <= h0 < h1 <= h:
            raise LatentAtlasError(f"heads {h0}:{h1} are out of range; this layer has heads 0..{h - 1}")
        a = self._tensor(sid, f"layer.{layer}", (h, t, t), (slice(h0, h1), slice(r0, r1), slice(c0, c1)))
        cells = max(1, min(int(max_cells), MAX_CELLS))
        pooled = jobs.pool(a, cells)
        factors = (-(-(r1 - r0) // pooled.shape[-2]), -(-(c1 - c0) // pooled.shape[-1]))
        return pooled.numpy().astype(np.float16), factors

    def thumbs(self, sid: str) -> np.ndarray:
        m = self.sample(sid)
        s = min(m["thumb"], m["n_tokens"])
        return self._tensor(sid, "thumbs", (m["n_layers"], m["n_heads"], s, s)).numpy().astype(np.float16)

    # -- the neuron view -----------------------------------------------------------------------------
    def subject(self) -> jobs.Subject:
        if self._subject is None:
            self._subject = jobs.subject_of_run(self.run)
        return self._subject

    def neuron(self, sid: str, layer: int, head: int, query: int) -> np.ndarray:
        """float32 (1 + keys, 2·d + 2): row 0 holds q in its first d columns; row 1 + j holds key j's k
        (d), q ⊙ k (d), the score q·k·scale + mask, and the softmax probability."""
        from ...analysis.attention import neuron

        m = self.sample(sid)
        if not m["neuron"]:
            raise LatentAtlasError(f"this sample's attention was read from output_attentions ({m['note'] or 'no query/key'}); it has no neuron view")
        if not 0 <= layer < m["n_layers"] or not 0 <= head < m["n_heads"] or not 0 <= query < m["n_tokens"]:
            raise LatentAtlasError(f"layer {layer}, head {head}, query {query} is out of range; this sample has {m['n_layers']} layers, "
                                   f"{m['n_heads']} heads and {m['n_tokens']} tokens")
        got = jobs.neuron_inputs(self.subject(), m["text"], layer)
        n = neuron(got.query, got.key, head, query, got.scaling, got.mask, got.softcap)
        t, d = n["k"].shape
        out = np.zeros((1 + t, 2 * d + 2), dtype=np.float32)
        out[0, :d] = n["q"]
        out[1:, :d] = n["k"]
        out[1:, d:2 * d] = n["qk"]
        out[1:, 2 * d] = np.where(np.isfinite(n["scores"]), n["scores"], np.nan)
        out[1:, 2 * d + 1] = n["probs"]
        return out

    # -- the head atlas ------------------------------------------------------------------------------
    def heads(self) -> tuple[np.ndarray, dict[str, Any]]:
        got = jobs.read_heads(self.run)
        if got is None:
            raise NotFound(f"run '{self.run.name}' has no head atlas yet; run `latentatlas attention heads {self.run.name}`")
        return got
