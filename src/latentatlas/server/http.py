"""What every route shares: the error answer, the response encoders, and the lookups that go through
the atlas (so a lab's routes never build a path themselves).

A lab's ``routes.py`` imports this module, ``cache`` and ``images``, never ``server.app`` (which imports
the labs).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from .._io import to_plain
from ..atlas import Atlas, Run
from ..errors import LatentAtlasError
from .cache import RunCache
from .jobs import Cancelled  # noqa: F401  (re-exported: a lab's background job raises it when cancelled)


class ApiError(Exception):
    """An answer other than 200: an HTTP status and one sentence (plus, for the page, a few fields such as
    the URL that would compute what is missing)."""

    def __init__(self, status: int, detail: str, **extra: Any):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.extra = extra


def json_response(obj: Any, status: int = 200) -> JSONResponse:
    # strict JSON (what browsers parse) has no NaN or infinity
    return JSONResponse(to_plain(obj, nonfinite_as_none=True), status_code=status)


def png_response(data: bytes) -> Response:
    return Response(content=data, media_type="image/png")


def float32_response(a: np.ndarray) -> Response:
    """Per-row data as raw little-endian float32, its shape in the ``X-Shape`` header."""
    a = np.ascontiguousarray(a, dtype="<f4")
    return Response(content=a.tobytes(), media_type="application/octet-stream",
                    headers={"X-Shape": ",".join(str(s) for s in a.shape)})


def float16_response(a: np.ndarray, **headers: str) -> Response:
    """Attention-sized data as raw little-endian float16 (half the bytes), its shape in ``X-Shape``."""
    a = np.ascontiguousarray(a, dtype="<f2")
    return Response(content=a.tobytes(), media_type="application/octet-stream",
                    headers={"X-Shape": ",".join(str(s) for s in a.shape), **headers})


def error_status(exc: LatentAtlasError) -> int:
    return int(getattr(exc, "status", 422))


def validation_sentence(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "the request is invalid."
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    where = ".".join(loc) or "the request body"
    msg = str(first.get("msg", "is invalid")).rstrip(".")
    return f"parameter '{where}' is invalid: {msg[0].lower() + msg[1:] if msg else 'bad value'}."


def atlas_of(request: Request) -> Atlas:
    return request.app.state.atlas


def cache_of(request: Request) -> RunCache:
    return request.app.state.cache


def jobs_of(request: Request):
    """The app's background jobs (``server.jobs.Jobs``)."""
    return request.app.state.jobs


def get_run(request: Request, name: str) -> Run:
    """The run called ``name`` (the name is checked by the atlas), or a 404; a run whose config.json is
    damaged or hostile is a 422 on every route, with the reason."""
    try:
        run = atlas_of(request).run(name)
    except LatentAtlasError as exc:
        raise ApiError(404 if "not found" in str(exc) or "not allowed" in str(exc) else 422, str(exc)) from None
    run.config()  # raises the one sentence (422) for a bad run
    return run


def run_kind(run: Run) -> str:
    """The run's kind, or a 422 when its config cannot be read (a bad run answers; it never crashes)."""
    return str(run.config().get("kind", "?"))


def run_explorer(request: Request, name: str, kinds: tuple[str, ...], what: str, files: tuple[str, ...], factory):
    """The explorer object of run ``name`` (``factory(run)``), kept in the app's cache per version of the
    run: ``files`` (paths inside the run) give the version by their modification times. A run of another
    kind is a 422 naming ``what`` it should be; a LatentAtlasError while building is its one sentence."""
    from .cache import mtime

    run = get_run(request, name)
    kind = run_kind(run)
    if kind not in kinds:
        raise ApiError(422, f"run '{name}' is a {kind[:40]}, not {what}")
    key = (kinds[0], run.name, *(mtime(run.path / f) for f in files))
    try:
        return cache_of(request).get(key, lambda: factory(run))
    except LatentAtlasError as exc:
        raise ApiError(error_status(exc), str(exc)) from None


def answer(fn, *args):
    """``fn(*args)``, a LatentAtlasError answered as its one sentence (and its status)."""
    try:
        return fn(*args)
    except LatentAtlasError as exc:
        raise ApiError(error_status(exc), str(exc)) from None
