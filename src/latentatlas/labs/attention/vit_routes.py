"""The ViT views' routes: the run's meta (small JSON), the test images, and for one test image the real
CLS attention of every layer and head, its rollout and flow, and the class probabilities; for the model
the position-embedding similarity grid and the patch-embedding filters. Every array is float32 with its
shape in ``X-Shape``. ``vit.ViTExplorer`` does the work; one explorer is kept per version of the run."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ...errors import LatentAtlasError
from ...server.cache import mtime
from ...server.http import ApiError, float32_response, get_run, json_response, run_kind
from . import vit

router = APIRouter()
MAX_IMAGES = 256  # test images in one request


def explorer(request: Request, name: str) -> vit.ViTExplorer:
    run = get_run(request, name)
    kind = run_kind(run)
    if kind != vit.VIT_KIND:
        raise ApiError(422, f"run '{name}' is a {kind}, not a ViT run")
    key = ("vit", run.name, mtime(run.path / "model.safetensors"), mtime(run.path / "config.json"))
    try:
        return request.app.state.cache.get(key, lambda: vit.ViTExplorer(run))
    except LatentAtlasError as exc:
        raise ApiError(int(getattr(exc, "status", 422)), str(exc)) from None


@router.get("/api/runs/{run}/vit", summary="A ViT run: image and patch sizes, layers, heads, classes, the strip's labels and predictions")
def meta(run: str, request: Request):
    return json_response(explorer(request, run).meta())


@router.get("/api/runs/{run}/vit/images.bin", summary="Test images start:start+count as float32 (N, C, H, W) in [0, 1]",
            response_class=Response)
def images(run: str, request: Request, start: int = Query(0, ge=0, le=1 << 20), count: int = Query(vit.STRIP, ge=1, le=MAX_IMAGES)):
    return float32_response(explorer(request, run).test_images(start, count))


@router.get("/api/runs/{run}/vit/posemb.bin", summary="Cosine similarity of each patch's position embedding with all others, float32 (patches, rows, cols)",
            response_class=Response)
def posemb(run: str, request: Request):
    return float32_response(explorer(request, run).position_similarity())


@router.get("/api/runs/{run}/vit/filters.bin", summary="Principal components of the patch-embedding filters, float32 (k, C, p, p); shares of variance in X-Explained",
            response_class=Response)
def filters(run: str, request: Request):
    comps, ratio = explorer(request, run).filters()
    r = float32_response(comps)
    r.headers["X-Explained"] = ",".join(f"{v:.4f}" for v in ratio)
    return r


def _image(request: Request, run: str, index: int) -> dict:
    return explorer(request, run).image(index)


@router.get("/api/runs/{run}/vit/{index}/attention.bin", summary="Test image `index`: each layer's and head's CLS attention over the patches, float32 (layers, heads, rows, cols)",
            response_class=Response)
def attention(run: str, index: int, request: Request):
    return float32_response(_image(request, run, index)["attention"])


@router.get("/api/runs/{run}/vit/{index}/maps.bin", summary="Test image `index`: attention rollout and attention flow of CLS over the patches, float32 (2, rows, cols)",
            response_class=Response)
def maps(run: str, index: int, request: Request):
    return float32_response(explorer(request, run).maps(index))


@router.get("/api/runs/{run}/vit/{index}/probs.bin", summary="Test image `index`: the model's class probabilities, float32 (classes,)",
            response_class=Response)
def probs(run: str, index: int, request: Request):
    return float32_response(_image(request, run, index)["probs"])
