"""The SAE lab's routes: feature list, feature pages, the text probe and steering. ``explore.py`` does the
work; this file only checks requests and caches one explorer per version of the run."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from ...errors import LatentAtlasError
from ...server.cache import mtime
from ...server.http import ApiError, get_run, jobs_of, json_response, run_kind
from .explore import MAX_PROBE_CHARS, SAEExplorer

router = APIRouter()


class ProbeBody(BaseModel):
    text: str = Field(..., max_length=MAX_PROBE_CHARS, description=f"text to run through the model (at most {MAX_PROBE_CHARS:,} characters)")


class SteerBody(BaseModel):
    text: str = Field(..., max_length=MAX_PROBE_CHARS, description="the text to steer")
    alpha: float = Field(0.5, description="how far to move along the unit direction, in units of the layer's median activation norm (−100..100)")
    feature: int | None = Field(None, description="steer along this feature's decoder direction")
    a: str | None = Field(None, max_length=MAX_PROBE_CHARS, description="or along code(a) − code(b): text a")
    b: str | None = Field(None, max_length=MAX_PROBE_CHARS, description="text b")


def explorer(request: Request, name: str, tables: bool = False) -> SAEExplorer:
    run = get_run(request, name)
    kind = run_kind(run)
    if kind != "sae":
        raise ApiError(422, f"run '{name}' is a {kind}, not a sparse autoencoder")
    if tables and not (run.features_dir / "features.safetensors").is_file():
        raise ApiError(404, f"run '{name}' has no feature tables yet; run `latentatlas sae eval {name}`")
    key = ("sae", run.name, mtime(run.path / "model.safetensors"), mtime(run.features_dir / "features.safetensors"))
    try:
        return request.app.state.cache.get(key, lambda: SAEExplorer(run))
    except LatentAtlasError as exc:
        raise ApiError(404, str(exc)) from None


@router.get("/api/runs/{run}/features", summary="The SAE's features, sortable by an interpretability proxy (default), density or max activation")
def features(run: str, request: Request, sort: Literal["interpretability", "density", "max_act", "id"] = "interpretability", order: Literal["asc", "desc"] = "desc",
             offset: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=1000),
             token: str | None = Query(None, max_length=100, description="only features whose top tokens include it")):
    return explorer(request, run, tables=True).feature_list(sort=sort, order=order, offset=offset, limit=limit, token=token)


@router.get("/api/runs/{run}/features/{feature}", summary="One feature's page: contexts, quantiles, histogram, neighbours, tokens")
def feature_page(run: str, feature: int, request: Request):
    x = explorer(request, run, tables=True)
    if not 0 <= feature < x.d_sae:
        raise ApiError(422, f"feature {feature} is out of range; this SAE has features 0..{x.d_sae - 1}")
    return x.feature_page(feature)


@router.post("/api/runs/{run}/probe", summary="Which features fire on each token of a text")
def probe(run: str, body: ProbeBody, request: Request):
    return explorer(request, run).probe(body.text)


@router.post("/api/runs/{run}/steer", summary="Add a feature's direction (or a difference of two texts' codes) at the layer")
def steer(run: str, body: SteerBody, request: Request):
    x = explorer(request, run)
    if body.feature is None and not (body.a and body.b):
        raise ApiError(422, "steering needs 'feature', or both 'a' and 'b'")
    if body.feature is not None and not 0 <= body.feature < x.d_sae:
        raise ApiError(422, f"feature {body.feature} is out of range; this SAE has features 0..{x.d_sae - 1}")
    if x.needs_corpus_index:
        # the neighbours' index is `sae eval`'s to write; for a run evaluated before it was, build it in the
        # background, never inside this request
        def work() -> None:
            with x.run.lock():
                x.corpus_index(compute=True)

        job = jobs_of(request).submit(("corpus_index", x.run.name, mtime(x.run.path / "model.safetensors")),
                                      f"steering index of run '{x.run.name}'", work)
        return json_response({"detail": f"building the steering index of run '{x.run.name}' (once); steer again when the job is done",
                              "job": job.as_dict()}, status=202)
    return x.steer(body.text, alpha=body.alpha, feature=body.feature, text_a=body.a, text_b=body.b)
