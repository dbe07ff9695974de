"""The module graph's routes: whether a run has a graph, and the graph laid out with some modules open.

Any run may hold a graph (`latentatlas attention graph RUN` writes it into a VAE's or an SAE's run as well),
so these routes answer for runs of every lab. The layout is per box, not per cell, so it travels as JSON.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from ...errors import LatentAtlasError, NotFound
from ...server.cache import mtime
from ...server.http import ApiError, get_run, json_response
from . import graph

router = APIRouter()
MAX_EXPANDED_CHARS = 20_000
MAX_EXPANDED = 2_000


def _doc(request: Request, run) -> dict:
    key = ("graph", run.name, mtime(graph.graph_file(run)))
    try:
        return request.app.state.cache.get(key, lambda: graph.read_doc(run))
    except NotFound as exc:
        raise ApiError(404, str(exc)) from None


@router.get("/api/runs/{run}/graph/exists", summary="Whether the run holds a module graph (for the explorer's tabs)")
def exists(run: str, request: Request):
    return json_response({"graph": graph.has_graph(get_run(request, run))})


@router.get("/api/runs/{run}/graph", summary="The module graph laid out (grandalf, Sugiyama) with the modules in `expanded` open")
def laid_out(run: str, request: Request,
             expanded: str = Query("", max_length=MAX_EXPANDED_CHARS, description="comma-separated module names to show opened")):
    r = get_run(request, run)
    names = [n for n in expanded.split(",") if n] if expanded else []
    if len(names) > MAX_EXPANDED:
        raise ApiError(422, f"expanded names {len(names):,} modules; at most {MAX_EXPANDED:,} may be open at once")
    doc = _doc(request, r)
    key = ("graph-view", r.name, mtime(graph.graph_file(r)), ",".join(sorted(set(names))))
    try:
        return json_response(request.app.state.cache.get(key, lambda: graph.view(r, doc, names)))
    except LatentAtlasError as exc:
        raise ApiError(422, str(exc)) from None
