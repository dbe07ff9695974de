"""The attention lab's routes: a run's samples, windows of attention (float16 binary), the model view's
thumbnails, the neuron view, the head atlas, and capturing a new text from the page. ``explore.py`` does
the work; this file checks requests and keeps one explorer per version of the run."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ...errors import LatentAtlasError
from ...server.cache import mtime
from ...server.http import ApiError, float16_response, float32_response, get_run, json_response, run_kind
from . import KINDS, jobs
from .explore import MAX_CELLS, AttentionExplorer

router = APIRouter()
MAX_TEXT_CHARS = 200_000


class ShowBody(BaseModel):
    text: str = Field(..., min_length=1, max_length=MAX_TEXT_CHARS, description="the text (or, for a model trained here, token ids) to capture")


def explorer(request: Request, name: str) -> AttentionExplorer:
    run = get_run(request, name)
    kind = run_kind(run)
    if kind not in KINDS:
        raise ApiError(422, f"run '{name}' is a {kind}, not a run of the attention lab")
    key = ("attention", run.name, mtime(run.path / "model.safetensors"), mtime(run.file("attention", "heads.json")))
    try:
        return request.app.state.cache.get(key, lambda: AttentionExplorer(run))
    except LatentAtlasError as exc:
        raise ApiError(404, str(exc)) from None


@router.get("/api/runs/{run}/attention", summary="The run's attention samples, its model, and its head atlas's meta")
def overview(run: str, request: Request):
    return json_response(explorer(request, run).overview())


@router.post("/api/runs/{run}/attention", summary="Capture a new text's attention at every layer and head")
def show(run: str, body: ShowBody, request: Request):
    x = explorer(request, run)
    with x.run.lock():
        meta = jobs.show(x.subject(), x.run, body.text, progress=False)
    return json_response(meta)


@router.get("/api/runs/{run}/attention/{sample}", summary="One sample: its tokens (as text), shapes and layer names")
def sample(run: str, sample: str, request: Request):
    return json_response(explorer(request, run).sample(sample))


@router.get("/api/runs/{run}/attention/{sample}/window", summary="Queries r0:r1 × keys c0:c1 of one layer's heads, float16, max-pooled to at most `max` cells a side",
            response_class=Response)
def window(run: str, sample: str, request: Request, layer: int = Query(..., ge=0, le=4095),
           r0: int = Query(0, ge=0), r1: int = Query(1 << 17, ge=1), c0: int = Query(0, ge=0), c1: int = Query(1 << 17, ge=1),
           max: int = Query(512, ge=1, le=MAX_CELLS), h0: int | None = Query(None, ge=0, le=4095), h1: int | None = Query(None, ge=1, le=4096)):
    heads = (h0 if h0 is not None else 0, h1) if h1 is not None else None
    if h0 is not None and h1 is None:
        raise ApiError(422, "h0 needs h1 (the heads h0:h1)")
    a, (fr, fc) = explorer(request, run).window(sample, layer, r0, r1, c0, c1, max, heads)
    return float16_response(a, **{"X-Pool": f"{fr},{fc}"})


@router.get("/api/runs/{run}/attention/{sample}/thumbs", summary="Every layer × head's attention max-pooled to a small square, float16",
            response_class=Response)
def thumbs(run: str, sample: str, request: Request):
    return float16_response(explorer(request, run).thumbs(sample))


@router.get("/api/runs/{run}/attention/{sample}/neuron", summary="The neuron view: q, each k, q⊙k, scores and softmax for one head and query token (float32)",
            response_class=Response)
def neuron(run: str, sample: str, request: Request, layer: int = Query(..., ge=0, le=4095), head: int = Query(..., ge=0, le=4095),
           query: int = Query(..., ge=0)):
    return float32_response(explorer(request, run).neuron(sample, layer, head, query))


@router.get("/api/runs/{run}/heads", summary="The head atlas: (layers × heads, statistics) float32; names in X-Stats", response_class=Response)
def heads(run: str, request: Request):
    table, meta = explorer(request, run).heads()
    r = float32_response(table.reshape(-1, table.shape[-1]))
    r.headers["X-Stats"] = ",".join(meta["stats"])
    r.headers["X-Heads"] = f"{meta['n_layers']},{meta['n_heads']}"
    return r


from . import graph_routes  # noqa: E402  (the module graph answers for runs of every lab)

router.include_router(graph_routes.router)

from . import ablate_routes  # noqa: E402  (ablations answer for runs of every lab)

router.include_router(ablate_routes.router)

from . import vit_routes  # noqa: E402  (the ViT views)

router.include_router(vit_routes.router)
