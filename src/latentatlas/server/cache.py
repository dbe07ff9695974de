"""In-memory cache of what the API loads per run: the model, the dataset and the stored latents.

Entries are keyed by run name plus the modification time of the file they came from, so a run that is
retrained or re-evaluated while the server runs is picked up on the next request. Each key has its own
lock, so concurrent first requests load (or compute) a thing once while other keys stay free.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Hashable

import numpy as np

from ..atlas import Run


@dataclass
class Latents:
    """The ``eval`` latent set of a run: arrays plus the per-row table."""

    mu: np.ndarray  # (N, D) float32
    logvar: np.ndarray | None
    recon_nll: np.ndarray | None
    rows: Any  # pandas DataFrame

    @property
    def n(self) -> int:
        return int(self.mu.shape[0])

    @property
    def dim(self) -> int:
        return int(self.mu.shape[1])


def _mtime(path) -> int:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return -1


class RunCache:
    def __init__(self, max_entries: int = 16):
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._store: OrderedDict[Hashable, Any] = OrderedDict()
        self._key_locks: dict[Hashable, threading.Lock] = {}

    def key_lock(self, key: Hashable) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def get(self, key: tuple, load: Callable[[], Any]) -> Any:
        """The cached value for ``key``, loading it once (other threads asking meanwhile wait for it)."""
        with self._lock:
            if key in self._store:
                self._store.move_to_end(key)
                return self._store[key]
        with self.key_lock(key):
            with self._lock:
                if key in self._store:
                    return self._store[key]
            value = load()
            with self._lock:
                # a newer file replaces the entries of older versions of the same thing
                for old in [k for k in self._store if k[:2] == key[:2] and k != key]:
                    del self._store[old]
                self._store[key] = value
                while len(self._store) > self.max_entries:
                    self._store.popitem(last=False)
            return value

    # -- the three things the API needs -----------------------------------------------------------
    def model(self, run: Run):
        key = ("model", run.name, _mtime(run.path / "model.safetensors"))
        return self.get(key, lambda: run.load_model(device="cpu"))

    def dataset(self, run: Run):
        from ..data import load_dataset

        key = ("data", run.name, _mtime(run.path / "config.json"))
        return self.get(key, lambda: load_dataset(run.config()["data"]))

    def latents(self, run: Run) -> Latents:
        key = ("latents", run.name, _mtime(run.latents_dir / "eval.safetensors"), _mtime(run.latents_dir / "eval.parquet"))

        def load() -> Latents:
            arrays, rows = run.read_latents("eval")
            return Latents(
                mu=np.ascontiguousarray(arrays["mu"], dtype=np.float32),
                logvar=arrays.get("logvar"),
                recon_nll=arrays.get("recon_nll"),
                rows=rows,
            )

        return self.get(key, load)
