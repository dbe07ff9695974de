"""The VAE lab's routes: the latent table and its binary columns, projections, decoded PNGs, the
inspector's record, interpolation and PCA directions. Each checks its request and calls
:class:`~latentatlas.labs.vae.explore.VAEExplorer`; one explorer is cached per version of the run's
files."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from ...atlas import Run
from ...server.cache import mtime
from ...server.http import (
    ApiError,
    float32_response,
    get_run,
    jobs_of,
    json_response,
    png_response,
)
from ...server.images import image_png, strip_png
from .explore import VAEExplorer

router = APIRouter()


class DecodeBody(BaseModel):
    z: list[float]


class InterpolateBody(BaseModel):
    a: int
    b: int
    steps: int = 8
    method: Literal["lerp", "slerp"] = "lerp"


def explorer_for(request: Request, run: Run) -> VAEExplorer:
    """One explorer per version of the run: a retrained or re-evaluated run is picked up on the next
    request."""
    files = ("config.json", "model.safetensors", "latents/eval.safetensors", "latents/eval.parquet")
    key = ("vae", run.name, *(mtime(run.path / f) for f in files))
    return request.app.state.cache.get(key, lambda: VAEExplorer(run))


def explorer(request: Request, name: str) -> VAEExplorer:
    return explorer_for(request, get_run(request, name))


def run_info(request: Request, run: Run) -> dict:
    """What ``GET /api/runs/{run}`` adds for an autoencoder run."""
    return explorer_for(request, run).info()


@router.get("/api/runs/{run}/latents", summary="The per-row table of the stored latents (not the floats)")
def run_latents(run: str, request: Request):
    return json_response(explorer(request, run).table())


@router.get("/api/runs/{run}/latents/meta", summary="Row count, latent width and the names of the per-row columns")
def run_latents_meta(run: str, request: Request):
    return json_response(explorer(request, run).table_meta())


@router.get("/api/runs/{run}/latents/column.bin", summary="One per-row column (?name=…) as little-endian float32 (N)",
            response_class=Response)
def run_latents_column(run: str, request: Request, name: str = Query(..., max_length=1000, description="the column's name, as in latents/meta")):
    # a query parameter, not a path segment: column names come from the data and may hold '/'

    return float32_response(explorer(request, run).column(name))


@router.get("/api/runs/{run}/latents/mu.bin", summary="Posterior means as little-endian float32 (N×D)", response_class=Response)
def run_mu(run: str, request: Request):
    return float32_response(explorer(request, run).latents.mu)


def _params(n_neighbors: int | None = Query(None, ge=2, le=200, description="UMAP: neighbours (default 15)"),
            min_dist: float | None = Query(None, ge=0, le=1, description="UMAP: minimum distance (default 0.1)"),
            perplexity: float | None = Query(None, ge=2, le=100, description="t-SNE: perplexity (default 30)"),
            metric: Literal["euclidean", "cosine"] | None = Query(None, description="UMAP/t-SNE: distance (default euclidean)")) -> dict:
    """A projection's settings from the query; the ones left out take the defaults."""
    given = {"n_neighbors": n_neighbors, "min_dist": min_dist, "perplexity": perplexity, "metric": metric}
    return {k: v for k, v in given.items() if v is not None}


@router.get("/api/runs/{run}/projection/{method}.bin", summary="2-D projection as little-endian float32 (N×2)",
            response_class=Response)
def run_projection(run: str, method: str, request: Request, params: dict = Depends(_params)):
    x = explorer(request, run)
    return float32_response(_stored(x, method, params, x.projection(method, compute=False, params=params),
                                    "is not computed yet; POST {url} to compute it (or"))


def _stored(x: VAEExplorer, method: str, params: dict, array, missing: str):
    """``array``, or a 404 that says how to compute it (``missing``: what is wrong, then the way out)."""
    if array is None:
        from urllib.parse import urlencode

        url = f"/api/runs/{x.run.name}/projection/{method}" + (f"?{urlencode(params)}" if params else "")
        raise ApiError(404, f"the {method} projection of run '{x.run.name}' {missing.format(url=url)} run "
                       f"`latentatlas eval {x.run.name} --projections {method}`)", compute=url)
    return array


@router.post("/api/runs/{run}/projection/{method}", summary="Compute a projection in the background (202 and a job to poll)")
def run_projection_compute(run: str, method: str, request: Request, params: dict = Depends(_params)):
    x = explorer(request, run)
    if x.projection(method, compute=False, params=params) is not None:
        return json_response({"state": "done", "job": None})
    if x.latents.dim < 2:
        raise ApiError(422, f"run '{x.run.name}' has a {x.latents.dim}-dimensional latent; a 2-D projection needs at least 2.")

    def work() -> None:
        with x.run.lock():  # the run's one writer meanwhile
            x.projection(method, compute=True, params=params)

    job = jobs_of(request).submit(("projection", x.run.name, method, tuple(sorted(params.items())),
                                   mtime(x.run.path / "latents" / "eval.safetensors")),
                                  f"{method} projection of run '{x.run.name}'", work)
    return json_response({"state": job.state, "job": job.as_dict()}, status=202)


@router.get("/api/runs/{run}/projection/{method}/kept.bin", response_class=Response,
            summary="Per point, the share of its 10 latent-space neighbours the map keeps, as little-endian float32 (N)")
def run_projection_kept(run: str, method: str, request: Request, params: dict = Depends(_params)):
    x = explorer(request, run)
    return float32_response(_stored(x, method, params, x.kept(method, params=params),
                                    "has no neighbourhood scores stored (it predates them; to compute them,"))


@router.get("/api/runs/{run}/neighbours/{row}", summary="The k rows nearest a row in the full latent space, with distances")
def run_neighbours(run: str, row: int, request: Request, k: int = Query(10, ge=1, le=100),
                   metric: Literal["cosine", "euclidean"] = "cosine"):
    return json_response(explorer(request, run).neighbours(row, k=k, metric=metric))


@router.get("/api/runs/{run}/input/{row}.png", summary="The dataset image behind a latent-table row", response_class=Response)
def run_input(run: str, row: int, request: Request):
    return png_response(image_png(explorer(request, run).input_image(row)))


@router.get("/api/runs/{run}/reconstruction/{row}.png", summary="decode(mu[row]) as a PNG", response_class=Response)
def run_reconstruction(run: str, row: int, request: Request):
    return png_response(image_png(explorer(request, run).reconstruction(row)))


@router.get("/api/runs/{run}/inspect/{row}", summary="Everything stored about one latent-table row")
def run_inspect(run: str, row: int, request: Request):
    return json_response(explorer(request, run).record(row))


@router.post("/api/runs/{run}/decode", summary="Decode a latent vector to a PNG", response_class=Response)
def run_decode(run: str, body: DecodeBody, request: Request):
    x = explorer(request, run)
    return png_response(image_png(x.decode(x.check_z(body.z))[0]))


@router.get("/api/runs/{run}/decode.png", summary="Decode ?z=0.1,0.2,... to a PNG (for an <img> tag)", response_class=Response)
def run_decode_get(run: str, request: Request, z: str = Query(..., max_length=100_000, description="comma-separated latent values")):
    x = explorer(request, run)
    try:
        values = [float(v) for v in z.split(",")] if z.strip() else []
    except ValueError:
        raise ApiError(422, "z must be comma-separated numbers, e.g. z=0.1,-0.5,2.") from None
    return png_response(image_png(x.decode(x.check_z(values))[0]))


@router.post("/api/runs/{run}/interpolate", summary="Latent codes on the path between two rows")
def run_interpolate(run: str, body: InterpolateBody, request: Request):
    return json_response(explorer(request, run).interpolation_path(body.a, body.b, body.steps, body.method))


@router.get("/api/runs/{run}/interpolate.png", summary="Decoded interpolation as a horizontal strip", response_class=Response)
def run_interpolate_png(run: str, a: int, b: int, request: Request, steps: int = 8, method: str = "lerp"):
    x = explorer(request, run)
    z = x.interpolation(a, b, steps, method)
    return png_response(strip_png(x.decode(z)))


@router.get("/api/runs/{run}/directions", summary="GANSpace PCA directions of the stored latents")
def run_directions(run: str, request: Request, k: int | None = Query(None, description="number of directions (default: up to 10)")):
    return json_response(explorer(request, run).directions(k))

