"""In-memory cache of what the API loads per run (each lab's explorer, with its model, data and latents).

Entries are keyed by ``(what, run name, *modification times of the files they came from)``, so a run that
is retrained or re-evaluated while the server runs is picked up on the next request, and the entry of the
older version is dropped. Each key has its own lock, so concurrent first requests load (or compute) a
thing once while other keys stay free.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable


def mtime(path) -> int:
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
