"""Atomic file writes: every file goes to a temporary sibling and is renamed into place.

A process killed mid-write leaves either the old file or the new one, never half of either.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)

    return atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | os.PathLike, what: str, max_bytes: int = 64 << 20) -> Any:
    """The JSON in ``path``, read as untrusted input: at most ``max_bytes``, UTF-8, valid JSON, not nested
    deeper than Python can parse, no integer of thousands of digits. Anything else is one sentence naming
    ``what`` and the file (a ``LatentAtlasError``); a missing file raises ``FileNotFoundError`` for the
    caller to word."""
    from .errors import LatentAtlasError

    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise LatentAtlasError(f"{what} '{path}' is {size:,} bytes, more than the {max_bytes:,} such a file can be; it is not one latentatlas wrote")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise LatentAtlasError(f"{what} '{path}' is not UTF-8 text; the file is corrupt") from None
    except RecursionError:
        raise LatentAtlasError(f"{what} '{path}' is nested too deeply to be one latentatlas wrote") from None
    except ValueError as exc:  # JSONDecodeError, and ints beyond Python's digit limit
        raise LatentAtlasError(f"{what} '{path}' is not valid JSON ({str(exc).splitlines()[0][:120]}); the file is truncated or corrupt") from exc


def to_plain(obj: Any, nonfinite_as_none: bool = False) -> Any:
    """Nested dicts/lists/tuples/numpy values as plain Python JSON types.

    ``nonfinite_as_none`` turns NaN and ±inf into None: strict JSON (what browsers parse) has neither.
    """
    import math

    import numpy as np

    if isinstance(obj, dict):
        return {str(k): to_plain(v, nonfinite_as_none) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v, nonfinite_as_none) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_plain(obj.tolist(), nonfinite_as_none)
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return None if nonfinite_as_none and not math.isfinite(value) else value
    return obj


def _json_default(o: Any) -> Any:
    # numpy scalars and arrays show up in configs and metrics; store them as plain JSON values.
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"cannot store {type(o).__name__} as JSON")


def safetensors_bytes(tensors: dict, metadata: dict[str, str] | None = None) -> bytes:
    """A safetensors file's bytes, the same in every process for the same tensors and metadata.

    safetensors writes its ``__metadata__`` map in hash order, which changes from process to process,
    so two runs with bitwise-equal weights gave files with different bytes. The header is re-serialised
    here with sorted keys (compact JSON of the same length, so the data offsets stand); the data block
    is the library's, untouched."""
    from safetensors.torch import save

    contiguous = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    raw = save(contiguous, metadata=metadata)
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(text) > n:  # cannot happen for the same keys and values; keep the library's bytes if it does
        return raw
    text += b" " * (n - len(text))  # safetensors pads its header with spaces to keep the data aligned
    return raw[:8] + text + raw[8 + n :]


def atomic_save_safetensors(path: str | os.PathLike, tensors: dict, metadata: dict[str, str] | None = None) -> Path:
    return atomic_write_bytes(path, safetensors_bytes(tensors, metadata))
