"""The explorer's HTTP app: the routes every run shares (runs list, run detail, metrics, history,
figures) under ``/api``, each lab's ``APIRouter``, the static front end and the OpenAPI docs at ``/docs``.

Every run is looked up through ``Atlas.run`` (which checks the name), every file served is resolved
inside the atlas, and every error reaches the client as ``{"detail": "<one sentence>"}``.
"""

from __future__ import annotations

import dataclasses
import os
import re
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from .. import __version__
from ..atlas import Atlas
from ..errors import LatentAtlasError
from ..labs import LABS, lab_of_kind, part
from .cache import RunCache
from .jobs import Jobs
from .http import (
    ApiError,
    error_status,
    get_run,
    json_response,
    png_response,
    validation_sentence,
)
from .security import MAX_BODY, SecurityMiddleware, allowed_hosts, headers_for

_FIGURE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,123}\.png$")
_FIGURE_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,123}\.(png|svg|pdf)$")
_FIGURE_TYPES = {"png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf"}


def create_app(atlas_root: str | os.PathLike | None = None, *, host: str = "127.0.0.1", allow_hosts: tuple[str, ...] = (),
               max_body: int = MAX_BODY, frame_ancestors: tuple[str, ...] = ()) -> FastAPI:
    """The app for the atlas at ``atlas_root``, answering requests addressed to ``host`` (the interface it
    is served on; loopback names are always accepted) and ``allow_hosts``, with bodies of at most
    ``max_body`` bytes. ``frame_ancestors``: origins whose pages may show the explorer in a frame (a
    notebook's); none by default."""
    atlas = Atlas(atlas_root)
    root = atlas.root.resolve()
    # docs_url=None: FastAPI's default /docs loads Swagger UI from a CDN; frontend.py serves it locally.
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        app.state.jobs.shutdown()

    app = FastAPI(title="latentatlas", version=__version__, docs_url=None, redoc_url=None, lifespan=lifespan,
                  description="Browse the runs of a latentatlas atlas: metrics, latents, projections, decoded images.")
    app.state.atlas = atlas
    app.state.cache = RunCache()
    app.state.jobs = Jobs(workers=1)
    app.state.hosts = allowed_hosts(host, allow_hosts)
    headers_for(frame_ancestors)  # a bad origin pattern is refused here, not on the first request
    app.add_middleware(SecurityMiddleware, hosts=app.state.hosts, max_body=max_body, frame_ancestors=tuple(frame_ancestors))

    # -- errors: one sentence, never a traceback -----------------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return JSONResponse({"detail": exc.detail, **exc.extra}, status_code=exc.status)

    @app.exception_handler(LatentAtlasError)
    async def _latentatlas_error(request: Request, exc: LatentAtlasError):
        return JSONResponse({"detail": str(exc)}, status_code=error_status(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        return JSONResponse({"detail": validation_sentence(exc)}, status_code=422)

    # -- the routes every run shares ------------------------------------------------------------------
    @app.get("/api/runs", summary="Every run in the atlas with its headline metrics")
    def list_runs():
        return json_response([dataclasses.asdict(s) for s in atlas.summaries()])

    @app.get("/api/runs/{run}", summary="A run's config, what it has, and what its lab adds (e.g. traversal ranges)")
    def run_detail(run: str, request: Request):
        r = get_run(request, run)
        cfg = r.config()
        figures, formats = [], {}
        if r.figures_dir.is_dir():
            files = sorted(p.name for p in r.figures_dir.iterdir() if _FIGURE_FILE.match(p.name) and _inside(p, root))
            figures = [f for f in files if f.endswith(".png")]
            # the same figure as vector files for a paper, where eval wrote them
            formats = {f: [x.rsplit(".", 1)[1] for x in files if x.rsplit(".", 1)[0] == f[:-4] and not x.endswith(".png")] for f in figures}
        name = lab_of_kind(str(cfg.get("kind", "")))
        detail = {"name": r.name, "lab": name, "config": cfg, "has_model": r.has_model, "has_metrics": r.read_metrics() is not None,
                  "figures": figures, "figure_formats": formats}
        run_info = getattr(part(name, "routes"), "run_info", None) if name else None
        if run_info is not None:
            detail.update(run_info(request, r))
        return json_response(detail)

    @app.get("/api/runs/{run}/metrics", summary="The run's metrics.json")
    def run_metrics(run: str, request: Request):
        r = get_run(request, run)
        metrics = r.read_metrics()
        if metrics is None:
            raise ApiError(404, f"run {r.name} has no metrics yet; run `latentatlas eval {r.name}`.")
        return json_response(metrics)

    @app.get("/api/jobs/{job_id}", summary="A background job's state: queued, running, done or failed (with why)")
    def job_state(job_id: str, request: Request):
        job = request.app.state.jobs.get(job_id)
        if job is None:
            raise ApiError(404, f"there is no job '{job_id[:40]}' on this server (jobs last as long as the server)")
        return json_response(job.as_dict())

    @app.post("/api/jobs/{job_id}/cancel", summary="Ask a running job to stop (it cleans up after itself); answers its state")
    def job_cancel(job_id: str, request: Request):
        job = request.app.state.jobs.get(job_id)
        if job is None:
            raise ApiError(404, f"there is no job '{job_id[:40]}' on this server (jobs last as long as the server)")
        job.cancel_requested.set()
        return json_response(job.as_dict(), status=202 if job.active else 200)

    @app.get("/api/runs/{run}/history", summary="The training log, one row per logged step")
    def run_history(run: str, request: Request):
        return json_response(get_run(request, run).read_history())

    @app.get("/api/runs/{run}/figures/{name}", summary="A static figure from the run's figures folder (PNG; SVG and PDF as downloads)",
             response_class=Response)
    def run_figure(run: str, name: str, request: Request):
        raw = request.scope.get("raw_path", b"").lower()
        if b"%2f" in raw or b"%5c" in raw or "/" in name or "\\" in name:
            raise ApiError(422, "figure name must be a plain file name, without path separators.")
        if ".." in name or not _FIGURE_FILE.match(name):
            raise ApiError(422, f"figure name '{name}' is not allowed; expected a plain file name ending in .png, .svg or .pdf.")
        r = get_run(request, run)
        path = r.figures_dir / name
        if not path.is_file() or not _inside(path, root):
            raise ApiError(404, f"run '{r.name}' has no figure '{name}'.")
        suffix = name.rsplit(".", 1)[1]
        if suffix == "png":
            return png_response(path.resolve().read_bytes())
        # an SVG from the atlas (untrusted) could carry script: it is a download, never a page of this origin
        return Response(path.resolve().read_bytes(), media_type=_FIGURE_TYPES[suffix],
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    # -- each lab's routes ---------------------------------------------------------------------------------
    for name in LABS:
        app.include_router(part(name, "routes").router)

    from .frontend import mount_frontend

    mount_frontend(app)
    return app


def _inside(path, root) -> bool:
    """Whether ``path``, with every symlink followed, lies inside ``root``."""
    try:
        return path.resolve(strict=True).is_relative_to(root)
    except (OSError, RuntimeError):
        return False
