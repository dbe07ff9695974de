"""The sharded activation store: one folder, written as a stream, read by shard.

```
<store>/index.json                   format, width d, dtype, model, layer, corpus, tokens, shards, norms
<store>/shard-00000.safetensors      {"acts": float32 [rows, d]}
<store>/shard-00000.tokens.parquet   one row per activation: doc, pos, token_id, token, norm
<store>/shard-00000.docs.parquet     the documents whose tokens start in this shard: doc, source, text
```

A shard holds whole documents, so a capture stopped at any point resumes at the first document of the
next shard: ``index.json`` is rewritten (atomically) after each shard, and is the commit point. Memory is
bounded by one shard (plus one batch of documents) while writing and, while training, by one batch (rows
are read from memory-mapped shards, see :class:`ShuffledBatches`). Nothing here knows about models: :mod:`latentatlas.capture` fills the store.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ._io import atomic_write, atomic_write_json, read_json
from .errors import LatentAtlasError
from .limits import MAX_JSON_BYTES

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
        from .schemas import StoreIndex, validate

        self.path = Path(path)
        index = self.path / "index.json"
        if not index.is_file():
            raise LatentAtlasError(f"activation store '{self.path}' has no index.json; capture it first with `latentatlas capture`")
        self.index = read_json(index, "activation store index", MAX_JSON_BYTES)
        if not isinstance(self.index, dict):
            raise LatentAtlasError(f"activation store index '{index}' should hold a JSON object")
        checked = validate(StoreIndex, self.index, "activation store index", index)
        self.d = checked.d
        self.shards = [Shard(**s.model_dump()) for s in checked.shards]
        self._offsets: dict[int, int] = {}
        self._starts = np.array([s.first_row for s in self.shards], dtype=np.int64)  # global row where each shard begins

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
    def _file(self, i: int, suffix: str = ".safetensors") -> Path:
        """Shard ``i``'s file (or its token/document table), a plain file inside the store folder: the index
        names it (``shard-NNNNN…``, checked by its schema), and a link that leads out is refused."""
        path = self.path / self.shards[i].file.replace(".safetensors", suffix)
        if path.is_symlink() or not path.resolve().is_relative_to(self.path.resolve()):
            raise LatentAtlasError(f"shard file '{path}' is a link; a store's shards are read only from its own folder")
        return path

    def shard_array(self, i: int, verify: bool = False) -> np.ndarray:
        """Shard ``i``'s activations as float32 [rows, d], checked against the index."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        s = self.shards[i]
        path = self._file(i)
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

    def verify(self) -> None:
        """Read every shard and check its size, checksum, shape and token table."""
        for i in range(len(self.shards)):
            self.shard_array(i, verify=True)
            self.shard_tokens(i)

    def iter_chunks(self, rows: int = 8192, limit: int | None = None, start: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        """``(first_row, array)`` pieces of at most ``rows`` rows, in store order from global row ``start``,
        at most ``limit`` rows in all, one shard in memory."""
        done = 0
        for i, s in enumerate(self.shards):
            if s.first_row + s.rows <= start:
                continue
            arr = self.shard_array(i)
            for a in range(max(0, start - s.first_row), s.rows, rows):
                piece = arr[a : a + rows]
                if limit is not None and done + len(piece) > limit:
                    piece = piece[: limit - done]
                if len(piece):
                    yield s.first_row + a, piece
                done += len(piece)
                if limit is not None and done >= limit:
                    return

    def _data_offset(self, i: int) -> int:
        """Byte offset of shard ``i``'s float32 [rows, d] block, after checking the file against the index
        and its own safetensors header (so a mapped read can never run past the end of the file)."""
        s = self.shards[i]
        path = self._file(i)
        if not path.is_file() or path.stat().st_size != s.bytes:  # checked on every read: a mapped read past EOF would crash
            self.shard_array(i)  # raises the precise error
        if i in self._offsets:
            return self._offsets[i]
        try:
            with path.open("rb") as fh:
                n = int.from_bytes(fh.read(8), "little")
                if not 2 <= n <= s.bytes - 8:
                    raise ValueError(f"header length {n}")
                meta = json.loads(fh.read(n))[TENSOR]
            begin, end = (int(v) for v in meta["data_offsets"])
            if meta["dtype"] != "F32" or list(meta["shape"]) != [s.rows, self.d] or end - begin != s.rows * self.d * 4 or 8 + n + end > s.bytes:
                raise ValueError(f"{meta['dtype']} {meta['shape']} at bytes {begin}-{end}")
        except (ValueError, KeyError, TypeError) as exc:
            raise LatentAtlasError(f"shard '{path}' is corrupt: its safetensors header does not describe float32 ({s.rows}, {self.d}) "
                                   f"'{TENSOR}' ({exc})") from exc
        self._offsets[i] = 8 + n + begin
        return self._offsets[i]

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """The activations at global row numbers ``idx`` (any order). Only those rows are read: each
        touched shard is memory-mapped for the call and unmapped after, so memory is the output plus the
        pages touched, never whole shards."""
        idx = np.asarray(idx, dtype=np.int64)
        out = np.empty((len(idx), self.d), dtype=np.float32)
        if len(idx) and (idx.min() < 0 or idx.max() >= self.n_tokens):
            raise LatentAtlasError(f"row numbers must be in [0, {self.n_tokens}) for store '{self.name}'")
        starts = self._starts
        which = np.searchsorted(starts, idx, side="right") - 1
        order = np.argsort(which, kind="stable")
        bounds = np.searchsorted(which[order], np.arange(len(self.shards) + 1))
        for i in np.nonzero(np.diff(bounds))[0]:
            sel = order[bounds[i] : bounds[i + 1]]
            s = self.shards[i]
            mm = np.memmap(self._file(int(i)), dtype="<f4", mode="r", offset=self._data_offset(int(i)), shape=(s.rows, self.d))
            out[sel] = mm[idx[sel] - starts[i]]
            del mm
        return out

    def shard_tokens(self, i: int):
        import pyarrow.parquet as pq

        path = self._file(i, ".tokens.parquet")
        if not path.is_file():
            raise LatentAtlasError(f"token table '{path}' listed in the store's index.json is missing; capture the store again")
        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise LatentAtlasError(f"token table '{path}' is corrupt ({exc.__class__.__name__})") from exc
        if table.num_rows != self.shards[i].rows:
            raise LatentAtlasError(f"token table '{path}' has {table.num_rows} rows, expected {self.shards[i].rows}")
        return table.to_pandas()

    def document_start(self, row: int) -> tuple[int, int]:
        """``(first row, doc id)`` of the document that holds global row ``row`` (shards hold whole
        documents, so only that shard's token table is read)."""
        if not 0 <= row < self.n_tokens:
            raise LatentAtlasError(f"row {row} is outside store '{self.name}' ({self.n_tokens} tokens)")
        i = int(np.searchsorted(self._starts, row, side="right") - 1)
        docs = self.shard_tokens(i)["doc"].to_numpy()
        doc = docs[row - self.shards[i].first_row]
        return self.shards[i].first_row + int(np.flatnonzero(docs == doc)[0]), int(doc)

    def tokens(self):
        """Every activation's token metadata (doc, pos, token_id, token, norm), in store order."""
        import pandas as pd

        return pd.concat([self.shard_tokens(i) for i in range(len(self.shards))], ignore_index=True)

    def documents(self):
        import pandas as pd
        import pyarrow.parquet as pq

        parts = []
        for i in range(len(self.shards)):
            path = self._file(i, ".docs.parquet")
            try:
                parts.append(pq.read_table(path).to_pandas())
            except Exception as exc:  # pyarrow raises several types for a missing or damaged file
                raise LatentAtlasError(f"document table '{path}' listed in the store's index.json is missing or corrupt ({exc.__class__.__name__})") from exc
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


_M1, _M2, _GOLD = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)


def permute(i: np.ndarray, n: int, key: tuple[int, ...], rounds: int = 6) -> np.ndarray:
    """A seeded pseudo-random bijection of ``[0, n)``, evaluated at ``i``, in O(len(i)) time and O(1) memory.

    A balanced Feistel network on the smallest even number of bits that covers ``n`` (round function:
    the splitmix64 finaliser of the half-block plus a round key), restricted to ``[0, n)`` by cycle
    walking (Black & Rogaway 2002): values that land at or above ``n`` are encrypted again until they do
    not, which keeps it a bijection. The domain is < 4n, so a value needs at most a few walks on average.
    """
    i = np.asarray(i, dtype=np.uint64)
    if n <= 1:
        return np.zeros(i.shape, dtype=np.int64)
    half = max(1, ((n - 1).bit_length() + 1) // 2)
    mask = np.uint64((1 << half) - 1)
    keys = np.random.default_rng(list(key)).integers(0, 2**63, size=rounds, dtype=np.uint64)
    sh_half, s30, s27, s31 = np.uint64(half), np.uint64(30), np.uint64(27), np.uint64(31)

    def enc(v: np.ndarray) -> np.ndarray:
        left, right = v >> sh_half, v & mask
        for k in keys:
            z = (right + k) * _GOLD
            z = (z ^ (z >> s30)) * _M1
            z = (z ^ (z >> s27)) * _M2
            left, right = right, left ^ ((z ^ (z >> s31)) & mask)
        return (left << sh_half) | right

    with np.errstate(over="ignore"):
        out = enc(i)
        walk = out >= n
        while walk.any():
            out[walk] = enc(out[walk])
            walk = out >= n
    return out.astype(np.int64)


class ShuffledBatches:
    """Training batches drawn uniformly without replacement from the whole store, as a pure function of
    the step.

    The stream of training rows is epoch after epoch, each a seeded pseudo-random permutation of every
    training row (:func:`permute`: nothing the size of the store is held); batch ``t`` is positions
    ``t*B … t*B+B-1`` of that stream, read with :meth:`ActivationStore.rows`. So a resumed run gets the
    same batches, and memory is one batch. Shards are written in corpus order (a document's tokens are
    neighbours, neighbouring documents often share a topic), so this global shuffle matters: shuffling
    only within windows of a few shards reached a worse FVU in the same number of steps
    (docs/benchmarks.md).
    """

    def __init__(self, store: ActivationStore, batch_size: int, seed: int, stop: int | None = None):
        """Batches of rows ``[0, stop)`` of the store (default: all of it); the rows from ``stop`` on are
        the held-out range."""
        self.store = store
        stop = store.n_tokens if stop is None else int(stop)
        if not 0 <= stop <= store.n_tokens:
            raise LatentAtlasError(f"the training rows of store '{store.name}' end at {stop}, outside its {store.n_tokens} tokens")
        self.ids = np.array([i for i, s in enumerate(store.shards) if s.first_row < stop], dtype=np.int64)
        self.batch_size = batch_size
        self.seed = seed
        rows = np.array([min(store.shards[i].rows, stop - store.shards[i].first_row) for i in self.ids], dtype=np.int64)
        self.total = int(rows.sum())
        if self.total < 1:
            raise LatentAtlasError(f"activation store '{store.name}' has no tokens to train on")
        self._starts = np.concatenate([[0], np.cumsum(rows)])  # training-row number where each chosen shard begins
        self._first = np.array([store.shards[i].first_row for i in self.ids], dtype=np.int64)

    def __len__(self) -> int:
        return self.total

    def indices(self, step: int) -> np.ndarray:
        """The global store rows of batch ``step``."""
        pos = step * self.batch_size + np.arange(self.batch_size, dtype=np.int64)
        epoch, off = np.divmod(pos, self.total)
        local = np.empty_like(off)
        for e in np.unique(epoch):
            at = epoch == e
            local[at] = permute(off[at], self.total, (self.seed, int(e)))
        j = np.searchsorted(self._starts, local, side="right") - 1
        return self._first[j] + (local - self._starts[j])

    def batch_at(self, step: int) -> np.ndarray:
        return self.store.rows(self.indices(step))
