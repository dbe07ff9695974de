"""The sharded activation store: one folder, written as a stream, read by shard.

```
<store>/index.json                   format, width d, dtype, model, layer, corpus, tokens, shards, norms
<store>/shard-00000.safetensors      {"acts": float32 [rows, d]}
<store>/shard-00000.tokens.parquet   one row per activation: doc, pos, token_id, token, norm
<store>/shard-00000.docs.parquet     the documents whose tokens start in this shard: doc, source, text
```

A shard holds whole documents, so a capture stopped at any point resumes at the first document of the
next shard: ``index.json`` is rewritten (atomically) after each shard, and is the commit point. Memory is
bounded by one shard (plus one batch of documents) while writing and, while training, by the shuffle window (two windows of
``window`` shards). Nothing here knows about models: :mod:`latentatlas.capture` fills the store.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ._io import atomic_write, atomic_write_json
from .errors import LatentAtlasError

FORMAT = 1
TENSOR = "acts"


def _file_hash(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_parquet(path: Path, table: dict[str, Any]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    atomic_write(path, lambda tmp: pq.write_table(pa.table(table), tmp, compression="zstd"))


@dataclass(frozen=True)
class Shard:
    file: str
    rows: int
    bytes: int
    hash: str
    first_row: int
    first_doc: int
    docs: int


class ActivationStore:
    """A store folder. ``ActivationStore(path)`` opens an existing one (``index.json`` must be there)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        index = self.path / "index.json"
        if not index.is_file():
            raise LatentAtlasError(f"activation store '{self.path}' has no index.json; capture it first with `latentatlas capture`")
        try:
            self.index = json.loads(index.read_text(encoding="utf-8"))
            self.d = int(self.index["d"])
            self.shards = [Shard(**s) for s in self.index["shards"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise LatentAtlasError(f"activation store index '{index}' is corrupt ({exc.__class__.__name__}: {exc})") from exc

    # -- facts -----------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def n_tokens(self) -> int:
        return sum(s.rows for s in self.shards)

    @property
    def complete(self) -> bool:
        return bool(self.index.get("complete"))

    def __len__(self) -> int:
        return self.n_tokens

    def __repr__(self) -> str:
        return f"ActivationStore({self.name!r}, tokens={self.n_tokens}, d={self.d}, shards={len(self.shards)})"

    # -- reading ---------------------------------------------------------------------------------
    def shard_array(self, i: int, verify: bool = False) -> np.ndarray:
        """Shard ``i``'s activations as float32 [rows, d], checked against the index."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        s = self.shards[i]
        path = self.path / s.file
        if not path.is_file():
            raise LatentAtlasError(f"shard '{path}' listed in the store's index.json is missing; capture the store again")
        size = path.stat().st_size
        if size != s.bytes:
            raise LatentAtlasError(f"shard '{path}' is corrupt: {size} bytes on disk, {s.bytes} expected from index.json")
        if verify and _file_hash(path) != s.hash:
            raise LatentAtlasError(f"shard '{path}' is corrupt: its checksum does not match index.json")
        try:
            arr = load_file(str(path))[TENSOR]
        except (SafetensorError, KeyError, OSError, ValueError) as exc:
            raise LatentAtlasError(f"shard '{path}' is corrupt: not a readable safetensors file with '{TENSOR}' ({exc})") from exc
        if arr.shape != (s.rows, self.d):
            raise LatentAtlasError(f"shard '{path}' holds shape {tuple(arr.shape)}, expected ({s.rows}, {self.d}) from index.json")
        return np.asarray(arr, dtype=np.float32)

    def span(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start`` … ``stop − 1`` read straight from the shard files (only those bytes), for
        looking up a few contexts without loading whole shards."""
        from safetensors import SafetensorError, safe_open

        start, stop = max(0, start), min(self.n_tokens, stop)
        parts = []
        for s in self.shards:
            a, b = max(start, s.first_row), min(stop, s.first_row + s.rows)
            if a >= b:
                continue
            path = self.path / s.file
            if not path.is_file() or path.stat().st_size != s.bytes:
                self.shard_array(self.shards.index(s))  # raises the precise error
            try:
                with safe_open(str(path), framework="numpy") as fh:
                    parts.append(np.asarray(fh.get_slice(TENSOR)[a - s.first_row : b - s.first_row], dtype=np.float32))
            except (SafetensorError, OSError, ValueError) as exc:
                raise LatentAtlasError(f"shard '{path}' is corrupt: not a readable safetensors file ({exc})") from exc
        return np.concatenate(parts) if parts else np.zeros((0, self.d), np.float32)

    def verify(self) -> None:
        """Read every shard and check its size, checksum, shape and token table."""
        for i in range(len(self.shards)):
            self.shard_array(i, verify=True)
            self.shard_tokens(i)

    def iter_chunks(self, rows: int = 8192, limit: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """``(first_row, array)`` pieces of at most ``rows`` rows, in store order, one shard in memory."""
        done = 0
        for i, s in enumerate(self.shards):
            arr = self.shard_array(i)
            for a in range(0, s.rows, rows):
                piece = arr[a : a + rows]
                if limit is not None and done + len(piece) > limit:
                    piece = piece[: limit - done]
                if len(piece):
                    yield s.first_row + a, piece
                done += len(piece)
                if limit is not None and done >= limit:
                    return

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """The activations at global row numbers ``idx`` (any order), reading only the shards they touch."""
        idx = np.asarray(idx, dtype=np.int64)
        out = np.empty((len(idx), self.d), dtype=np.float32)
        starts = np.array([s.first_row for s in self.shards], dtype=np.int64)
        which = np.searchsorted(starts, idx, side="right") - 1
        for i in np.unique(which):
            sel = np.nonzero(which == i)[0]
            out[sel] = self.shard_array(int(i))[idx[sel] - starts[i]]
        return out

    def shard_tokens(self, i: int):
        import pyarrow.parquet as pq

        path = self.path / self.shards[i].file.replace(".safetensors", ".tokens.parquet")
        if not path.is_file():
            raise LatentAtlasError(f"token table '{path}' listed in the store's index.json is missing; capture the store again")
        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise LatentAtlasError(f"token table '{path}' is corrupt ({exc.__class__.__name__})") from exc
        if table.num_rows != self.shards[i].rows:
            raise LatentAtlasError(f"token table '{path}' has {table.num_rows} rows, expected {self.shards[i].rows}")
        return table.to_pandas()

    def tokens(self):
        """Every activation's token metadata (doc, pos, token_id, token, norm), in store order."""
        import pandas as pd

        return pd.concat([self.shard_tokens(i) for i in range(len(self.shards))], ignore_index=True)

    def documents(self):
        import pandas as pd
        import pyarrow.parquet as pq

        parts = [pq.read_table(self.path / s.file.replace(".safetensors", ".docs.parquet")).to_pandas() for s in self.shards]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["doc", "source", "text"])

    def outlier_threshold(self) -> float | None:
        return (self.index.get("norm") or {}).get("threshold")

    def mean(self, limit: int | None = None) -> np.ndarray:
        total = np.zeros(self.d, dtype=np.float64)
        n = 0
        for _, a in self.iter_chunks(limit=limit):
            total += a.sum(0, dtype=np.float64)
            n += len(a)
        return (total / max(n, 1)).astype(np.float32)

    def check_width(self, d: int, what: str) -> None:
        if d != self.d:
            raise LatentAtlasError(f"{what} expects activations of width {d}, but store '{self.name}' holds width {self.d}")


class StoreWriter:
    """Appends shards to a store folder and keeps ``index.json`` current (it is the commit point)."""

    def __init__(self, path: str | os.PathLike, meta: dict[str, Any], resume: bool = False):
        self.path = Path(path)
        index = self.path / "index.json"
        if resume and index.is_file():
            self.index = ActivationStore(self.path).index
            for key in ("d", "model", "layer"):
                if key in meta and meta[key] != self.index.get(key):
                    raise LatentAtlasError(f"store '{self.path}' was captured with {key}={self.index.get(key)!r}, not {meta[key]!r}; "
                                           "use another --name")
        else:
            if index.is_file():
                raise LatentAtlasError(f"activation store '{self.path}' already exists; pick another --name, or pass --resume to continue it")
            self.path.mkdir(parents=True, exist_ok=True)
            self.index = {"format": FORMAT, **meta, "dtype": "float32", "shards": [], "docs_done": 0, "complete": False}
            atomic_write_json(index, self.index)

    @property
    def n_tokens(self) -> int:
        return sum(s["rows"] for s in self.index["shards"])

    @property
    def docs_done(self) -> int:
        return int(self.index["docs_done"])

    def write_shard(self, acts: np.ndarray, tokens: dict[str, np.ndarray], docs: dict[str, list], n_docs: int) -> None:
        i = len(self.index["shards"])
        stem = f"shard-{i:05d}"
        acts = np.ascontiguousarray(acts, dtype=np.float32)
        path = self.path / f"{stem}.safetensors"
        from safetensors.numpy import save_file

        atomic_write(path, lambda tmp: save_file({TENSOR: acts}, tmp))
        _write_parquet(self.path / f"{stem}.tokens.parquet", tokens)
        _write_parquet(self.path / f"{stem}.docs.parquet", docs)
        self.index["shards"].append({"file": path.name, "rows": int(len(acts)), "bytes": path.stat().st_size, "hash": _file_hash(path),
                                     "first_row": self.n_tokens, "first_doc": self.docs_done, "docs": int(n_docs)})
        self.index["docs_done"] = self.docs_done + int(n_docs)
        atomic_write_json(self.path / "index.json", self.index)

    def finish(self, extra: dict[str, Any]) -> ActivationStore:
        self.index.update(extra)
        self.index["complete"] = True
        self.index["tokens"] = self.n_tokens
        atomic_write_json(self.path / "index.json", self.index)
        return ActivationStore(self.path)


class ShuffledBatches:
    """Training batches from a store through a shuffling buffer, as a pure function of the step.

    Each epoch visits the shards in a seeded random order, grouped into windows of ``window`` shards;
    a window's rows are permuted (seeded by epoch and window) and the stream of batches runs through the
    windows in turn. Batch ``t`` is rows ``t*B … t*B+B-1`` of that stream, so a resumed run gets the same
    batches, and at most two windows are in memory.
    """

    def __init__(self, store: ActivationStore, batch_size: int, seed: int, window: int = 4, shards: list[int] | None = None):
        self.store = store
        self.ids = np.arange(len(store.shards)) if shards is None else np.asarray(shards, dtype=np.int64)
        self.batch_size = batch_size
        self.seed = seed
        self.window = max(1, window)
        self.rows = np.array([store.shards[i].rows for i in self.ids], dtype=np.int64)
        if self.rows.sum() < 1:
            raise LatentAtlasError(f"activation store '{store.name}' has no tokens to train on")
        self.total = int(self.rows.sum())
        self._windows: dict[tuple[int, int], np.ndarray] = {}

    def __len__(self) -> int:
        return self.total

    def _layout(self, epoch: int) -> tuple[list[np.ndarray], np.ndarray]:
        order = np.random.default_rng([self.seed, epoch, 0]).permutation(len(self.rows))
        groups = [order[a : a + self.window] for a in range(0, len(order), self.window)]
        sizes = np.array([self.rows[g].sum() for g in groups], dtype=np.int64)
        return groups, np.concatenate([[0], np.cumsum(sizes)])

    def _window(self, epoch: int, w: int, groups: list[np.ndarray]) -> np.ndarray:
        key = (epoch, w)
        if key not in self._windows:
            data = np.concatenate([self.store.shard_array(int(self.ids[i])) for i in groups[w]])
            perm = np.random.default_rng([self.seed, epoch, w + 1]).permutation(len(data))
            if len(self._windows) >= 2:
                self._windows.pop(next(iter(self._windows)))
            self._windows[key] = data[perm]
        return self._windows[key]

    def batch_at(self, step: int) -> np.ndarray:
        out = []
        pos, need = step * self.batch_size, self.batch_size
        while need:
            epoch, off = divmod(pos, self.total)
            groups, bounds = self._layout(epoch)
            w = int(np.searchsorted(bounds, off, side="right") - 1)
            data = self._window(epoch, w, groups)
            a = off - bounds[w]
            take = min(need, len(data) - a)
            out.append(data[a : a + take])
            pos += take
            need -= take
        return out[0] if len(out) == 1 else np.concatenate(out)
