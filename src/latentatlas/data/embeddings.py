"""A user's own embeddings: vectors from a file plus an optional metadata table, read as arrays for the
map (``latentatlas vae import``), with nothing trained.

- vectors: ``.npy`` (N, D); ``.safetensors`` holding one 2-D tensor (or the one named by ``key``);
  ``.parquet`` / ``.csv`` whose numeric columns are the D dimensions, or whose column ``key`` holds a
  list of D numbers per row;
- metadata: ``.parquet`` or ``.csv`` with N rows. Numeric columns stay numbers; a text column with at
  most ``MAX_CATEGORIES`` distinct values becomes a category (integer codes plus the value names the
  legend shows); other text columns (ids, free text) are left out, each named in a note.

Every file is untrusted: sizes are checked before anything large is allocated, nothing is unpickled, and
a wrong shape or type is one sentence naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import LatentAtlasError
from .base import RESERVED_COLUMNS, check_finite_range, check_numeric
from .files import _read_npy, existing_path

MAX_CATEGORIES = 1000
MAX_FILE_BYTES = 8 << 30
SUFFIXES = (".npy", ".safetensors", ".parquet", ".csv")


@dataclass
class Embeddings:
    vectors: np.ndarray  # (N, D) float32
    columns: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (N,) numbers (codes for categories)
    value_names: dict[str, list[str]] = field(default_factory=dict)  # category column -> its names, by code
    notes: list[str] = field(default_factory=list)


def _size_ok(path: Path, what: str) -> None:
    from ..limits import fmt_bytes

    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise LatentAtlasError(f"{what} '{path}' is {fmt_bytes(size)}; at most {fmt_bytes(MAX_FILE_BYTES)} is read")


def _table(path: Path, what: str):
    import pandas as pd

    _size_ok(path, what)
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pandas()
        return pd.read_csv(path, low_memory=False)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise LatentAtlasError(f"{what} '{path}' is not a readable {path.suffix} table ({exc.__class__.__name__}: {str(exc)[:120]})") from None
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise LatentAtlasError(f"{what} '{path}' is not a readable {path.suffix} table ({exc.__class__.__name__})") from None


def read_vectors(path, key: str | None = None) -> np.ndarray:
    """The (N, D) float32 vectors in ``path``."""
    p = existing_path(path)
    suffix = p.suffix.lower()
    what = f"vectors file '{path}'"
    if p.is_dir() or suffix not in SUFFIXES:
        raise LatentAtlasError(f"{what} is not a {', '.join(SUFFIXES)} file")
    _size_ok(p, "vectors file")
    if suffix == ".npy":
        x = _read_npy(p, path)["x"]
    elif suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        try:
            tensors = load_file(str(p))
        except (SafetensorError, OSError, ValueError) as exc:
            raise LatentAtlasError(f"{what} is not a readable safetensors file ({exc})") from None
        two_d = {k: v for k, v in tensors.items() if v.ndim == 2}
        if key is not None:
            if key not in tensors:
                raise LatentAtlasError(f"{what} has no tensor '{key}'; it has: {', '.join(sorted(tensors))[:300]}")
            x = tensors[key]
        elif len(two_d) == 1:
            x = next(iter(two_d.values()))
        else:
            raise LatentAtlasError(f"{what} holds {len(two_d)} 2-D tensors ({', '.join(sorted(two_d))[:300]}); name one with --key")
    else:
        table = _table(p, "vectors file")
        if key is not None:
            if key not in table.columns:
                raise LatentAtlasError(f"{what} has no column '{key}'; it has: {', '.join(map(str, table.columns))[:300]}")
            try:
                x = np.stack([np.asarray(v, dtype=np.float64) for v in table[key]])
            except (ValueError, TypeError):
                raise LatentAtlasError(f"{what}: column '{key}' does not hold a list of numbers of one length per row") from None
        else:
            numeric = [c for c in table.columns if table[c].dtype.kind in "biuf"]
            if not numeric:
                raise LatentAtlasError(f"{what} has no numeric columns; expected one column per dimension, or --key naming a list column")
            x = table[numeric].to_numpy()
    x = np.asarray(x)
    check_numeric(x, what)
    if x.ndim != 2 or 0 in x.shape:
        raise LatentAtlasError(f"{what} holds shape {tuple(x.shape)}; expected (N, D) vectors with N, D ≥ 1")
    x = x.astype(np.float32)
    check_finite_range(x, what, unit_range=False)
    return x


def read_metadata(path, n: int) -> Embeddings:
    """The metadata table for ``n`` rows: its usable columns (numbers, and categories as codes)."""
    p = existing_path(path)
    if p.is_dir() or p.suffix.lower() not in (".parquet", ".csv"):
        raise LatentAtlasError(f"metadata table '{path}' is not a .parquet or .csv file")
    table = _table(p, "metadata table")
    if len(table) != n:
        raise LatentAtlasError(f"metadata table '{path}' has {len(table):,} rows for {n:,} vectors; expected one row per vector")
    out = Embeddings(vectors=np.zeros((0, 0), np.float32))
    for col in table.columns:
        name = str(col).strip()[:100] or "column"
        if name in RESERVED_COLUMNS:
            name = f"meta_{name}"
        if name in out.columns:
            out.notes.append(f"metadata column '{name}' appears twice; the second was left out")
            continue
        values = table[col]
        if values.dtype.kind in "biuf":
            v = values.to_numpy(dtype=np.float64)
            if np.isfinite(v).all() or values.dtype.kind == "f":
                out.columns[name] = v
                continue
        text = values.astype("string").fillna("(missing)")
        cats = text.unique()
        if len(cats) > MAX_CATEGORIES:
            out.notes.append(f"metadata column '{name}' has {len(cats):,} distinct values (more than {MAX_CATEGORIES:,}), so it is not "
                             "a category to colour by; it was left out")
            continue
        names = sorted(str(c) for c in cats)
        code = {c: i for i, c in enumerate(names)}
        out.columns[name] = np.array([code[str(t)] for t in text], dtype=np.float64)
        out.value_names[name] = names
    return out
