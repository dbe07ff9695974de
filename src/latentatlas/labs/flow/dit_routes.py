"""The DiT view's routes: the run's meta (small JSON), and as float32 with the shape in ``X-Shape`` the
layer × step grid of PCA colours (conditional, unconditional or their difference), the self-attention of
one layer at one step (every head, or one), the sampler's state and the predicted clean image at every
step, and every captured sample's final image. ``dit.DiTExplorer`` does the work; one explorer is kept per
version of the run."""

from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ...server.http import answer, float32_response, json_response, run_explorer
from . import dit

router = APIRouter()
MAX_INDEX = 1 << 16


def explorer(request: Request, name: str) -> dit.DiTExplorer:
    return run_explorer(request, name, (dit.KIND,), "a DiT flow run",
                        ("model.safetensors", "config.json", f"{dit.CAPTURE_DIR}/capture.safetensors"), dit.DiTExplorer)


@router.get("/api/runs/{run}/dit", summary="A DiT run: image, patch grid, layers, captured steps and their times, heads, samples and labels, guidance scale, the joint PCA")
def meta(run: str, request: Request):
    return json_response(explorer(request, run).meta())


@router.get("/api/runs/{run}/dit/rgb.bin",
            summary="Captured sample `sample`: each token's colour under the joint PCA for every layer and step, float32 (layers, steps, rows, cols, 3) in [0, 1]; which = cond, uncond or diff",
            response_class=Response)
def rgb(run: str, request: Request, sample: int = Query(0, ge=0, le=MAX_INDEX), which: str = Query("cond", min_length=1, max_length=12)):
    x = explorer(request, run)
    return float32_response(answer(x.grid_rgb, sample, which))


@router.get("/api/runs/{run}/dit/attention.bin",
            summary="Captured sample `sample`, layer `layer`, step `step`, half cond or uncond: self-attention probabilities, float32 (heads, tokens, tokens), or (tokens, tokens) for one `head`",
            response_class=Response)
def attention(run: str, request: Request, sample: int = Query(0, ge=0, le=MAX_INDEX), layer: int = Query(..., ge=0, le=MAX_INDEX),
              step: int = Query(..., ge=0, le=MAX_INDEX), half: str = Query("cond", min_length=1, max_length=12),
              head: Optional[int] = Query(None, ge=0, le=MAX_INDEX)):
    x = explorer(request, run)
    return float32_response(answer(x.attention, sample, layer, step, half, head))


@router.get("/api/runs/{run}/dit/images.bin",
            summary="Captured sample `sample` at every step, float32 in [0, 1] units (not clipped): what = state (steps + 1, C, H, W), predicted, predicted_cond or predicted_uncond (steps, C, H, W)",
            response_class=Response)
def images(run: str, request: Request, sample: int = Query(0, ge=0, le=MAX_INDEX), what: str = Query("state", min_length=1, max_length=20)):
    x = explorer(request, run)
    return float32_response(answer(x.images, sample, what))


@router.get("/api/runs/{run}/dit/finals.bin", summary="Every captured sample's final image, float32 (n, C, H, W) in [0, 1] units",
            response_class=Response)
def finals(run: str, request: Request):
    return float32_response(explorer(request, run).finals())
