"""The flow lab's routes: a run's meta (small JSON), and as float32 binary with the shape in ``X-Shape``
the trajectories of any sampler at any NFE, the learned, exact or difference velocity field on a grid at
time t, the log-density of p_t on a grid and samples of the target. ``explore.FlowExplorer`` does the work;
one explorer is kept per version of the run."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ...limits import MAX_SEED
from ...server.http import answer, float32_response, json_response, run_explorer
from .explore import DEFAULT_N, DEFAULT_NFE, DEFAULT_SAMPLER, MAX_GRID, MAX_N, MAX_NFE, MAX_TARGET, FlowExplorer

router = APIRouter()


def explorer(request: Request, name: str) -> FlowExplorer:
    return run_explorer(request, name, ("flow",), "a flow run", ("model.safetensors", "config.json"), FlowExplorer)


@router.get("/api/runs/{run}/flow", summary="A flow run: objective, target, samplers, the view's bounds and the evaluation's sampler table")
def meta(run: str, request: Request):
    return json_response(explorer(request, run).meta())


@router.get("/api/runs/{run}/flow/trajectories.bin",
            summary="Trajectories of n noise points under a sampler within nfe evaluations on the FM path, float32 (k+1, n, 2); times in X-Times, counted NFE in X-NFE",
            response_class=Response)
def trajectories(run: str, request: Request, sampler: str = Query(DEFAULT_SAMPLER, min_length=1, max_length=24),
                 nfe: int = Query(DEFAULT_NFE, ge=1, le=MAX_NFE), n: int = Query(DEFAULT_N, ge=1, le=MAX_N),
                 seed: int = Query(0, ge=0, le=MAX_SEED)):
    x = explorer(request, run)
    traj, times, counted, steps = answer(x.trajectories, sampler, nfe, n, seed)
    r = float32_response(traj)
    r.headers["X-Times"] = ",".join(f"{t:.6g}" for t in times)
    r.headers["X-NFE"] = str(counted)
    r.headers["X-Steps"] = str(steps)
    r.headers["X-Sampler"] = sampler
    return r


@router.get("/api/runs/{run}/flow/field.bin",
            summary="The velocity at time t on a grid × grid lattice over the view (row 0 at the bottom), float32 (grid, grid, 2): the model's, the exact one or model − exact",
            response_class=Response)
def field(run: str, request: Request, t: float = Query(0.5, ge=0.0, le=1.0), grid: int = Query(64, ge=2, le=MAX_GRID),
          which: str = Query("model", min_length=1, max_length=12)):
    x = explorer(request, run)
    v, at = answer(x.field, t, grid, which)
    r = float32_response(v)
    r.headers["X-T"] = f"{at:.6g}"
    r.headers["X-Bounds"] = _bounds(x)
    return r


@router.get("/api/runs/{run}/flow/density.bin",
            summary="log p_t on a grid × grid lattice over the view (row 0 at the bottom), float32 (grid, grid); X-Density says exact (a mixture) or histogram",
            response_class=Response)
def density(run: str, request: Request, t: float = Query(1.0, ge=0.0, le=1.0), grid: int = Query(96, ge=2, le=MAX_GRID)):
    x = explorer(request, run)
    lp, how = answer(x.density, t, grid)
    r = float32_response(lp)
    r.headers["X-Density"] = how
    r.headers["X-Bounds"] = _bounds(x)
    return r


@router.get("/api/runs/{run}/flow/target.bin", summary="n samples of the run's target distribution, float32 (n, 2)", response_class=Response)
def target(run: str, request: Request, n: int = Query(DEFAULT_N, ge=1, le=MAX_TARGET), seed: int = Query(0, ge=0, le=MAX_SEED)):
    x = explorer(request, run)
    return float32_response(answer(x.target, n, seed))


def _bounds(x: FlowExplorer) -> str:
    b = x.bounds
    return ",".join(f"{v:.6g}" for v in (*b["x"], *b["y"]))


from . import train_routes  # noqa: E402  (training from painted points, in the background)

router.include_router(train_routes.router)


from . import dit_routes  # noqa: E402  (the DiT view: layers × sampling steps)

router.include_router(dit_routes.router)
