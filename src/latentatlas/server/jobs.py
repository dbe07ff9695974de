"""Background jobs for the explorer: work that takes longer than a request should (a t-SNE or UMAP
projection, the steering index of an SAE run) runs in a worker thread, started by a POST, and the page
polls ``GET /api/jobs/{id}`` until it is done. A request never computes such a thing inline, and a GET
never writes.

One job per key (e.g. ``("projection", run, "tsne")``): asking again while it runs, or after it is done,
returns the same job. At most ``workers`` run at once; the rest wait in line. A job started with
``with_job=True`` gets its :class:`Job` as argument: it reports ``progress`` (a small dict the page polls)
and watches ``cancel_requested`` (``POST /api/jobs/{id}/cancel``); raising :class:`Cancelled` ends it in
state "cancelled".
"""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

from ..errors import LatentAtlasError


class Cancelled(Exception):
    """Raised by a job's work when it saw ``cancel_requested`` and cleaned up after itself."""


@dataclass
class Job:
    id: str
    what: str
    state: str = "queued"  # queued, running, done, failed, cancelled
    error: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    cancel_requested: threading.Event = field(default_factory=threading.Event)

    def as_dict(self) -> dict[str, Any]:
        elapsed = (self.finished or time.time()) - (self.started or self.created)
        return {"id": self.id, "what": self.what, "state": self.state, "error": self.error, "seconds": round(elapsed, 2),
                "progress": dict(self.progress), "result": dict(self.result)}

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")


class Jobs:
    def __init__(self, workers: int = 1):
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="latentatlas-job")
        self._lock = threading.Lock()
        self._by_key: dict[Hashable, Job] = {}
        self._by_id: dict[str, Job] = {}
        self._ids = itertools.count(1)

    def submit(self, key: Hashable, what: str, work: Callable[..., Any], with_job: bool = False) -> Job:
        """The job for ``key``: the running or finished one, or a new one running ``work()`` (``work(job)``
        with ``with_job``). A failed or cancelled job is replaced by a new try."""
        with self._lock:
            job = self._by_key.get(key)
            if job is not None and job.state not in ("failed", "cancelled"):
                return job
            job = Job(id=str(next(self._ids)), what=what)
            self._by_key[key] = job
            self._by_id[job.id] = job

        def run() -> None:
            job.state, job.started = "running", time.time()
            try:
                if job.cancel_requested.is_set():
                    raise Cancelled
                work(job) if with_job else work()
                job.state = "done"
            except Cancelled:
                job.state = "cancelled"
            except LatentAtlasError as exc:
                job.state, job.error = "failed", str(exc)
            except Exception as exc:  # a job's failure is reported on its page, never crashes the server
                job.state, job.error = "failed", f"{what} failed: {exc.__class__.__name__}: {str(exc)[:300]}"
            finally:
                job.finished = time.time()

        self._pool.submit(run)
        return job

    def running(self, key: Hashable) -> Job | None:
        """The job for ``key`` while it is queued or running, else None."""
        with self._lock:
            job = self._by_key.get(key)
            return job if job is not None and job.active else None

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._by_id.get(job_id)

    def forget(self, key: Hashable) -> None:
        """Drop a finished job (its result was replaced, e.g. the run was evaluated again)."""
        with self._lock:
            job = self._by_key.get(key)
            if job is not None and job.state in ("done", "failed"):
                del self._by_key[key]

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
