"""Training a flow model from the page: the points a person painted arrive as little-endian float32 (N × 2)
in the request body, the training runs as a background job (``server.jobs``) that reports its step and can
be cancelled, and the page polls ``GET /api/jobs/{id}``. A cancelled training leaves no run behind; two
trainings of the same name at once are refused (409), as is a name the atlas already has."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, Query, Request

from ...atlas import is_name
from ...errors import LatentAtlasError
from ...server.http import ApiError, Cancelled, atlas_of, error_status, jobs_of, json_response

router = APIRouter()
MAX_POINTS = 100_000
MAX_PAGE_STEPS = 20_000


@router.post("/api/flow/train", status_code=202,
             summary="Train a flow run on painted points (body: float32 N × 2, little-endian) in the background; answers the job to poll")
async def train_from_points(request: Request, name: str = Query(..., min_length=1, max_length=64),
                            steps: int = Query(1500, ge=10, le=MAX_PAGE_STEPS), objective: str = Query("fm", pattern="^(fm|eps|v)$"),
                            net: str = Query("sinusoidal", pattern="^(sinusoidal|plain)$"), seed: int = Query(0, ge=0, le=1 << 31)):
    from ...trainer import TrainingInterrupted
    from . import jobs

    if not is_name(name):
        raise ApiError(422, f"run name '{name[:64]}' is not allowed; expected letters, digits, '.', '_' or '-'")
    body = await request.body()
    if len(body) % 8 or not body:
        raise ApiError(422, f"the body has {len(body):,} bytes; expected float32 pairs (x, y), 8 bytes per point")
    if len(body) // 8 > MAX_POINTS:
        raise ApiError(422, f"the body holds {len(body) // 8:,} points; expected at most {MAX_POINTS:,}")
    points = np.frombuffer(body, dtype="<f4").reshape(-1, 2).astype(np.float32)
    try:
        from ...data.toys import check_points

        check_points(points, "the painted points")
    except LatentAtlasError as exc:
        raise ApiError(error_status(exc), str(exc)) from None
    atlas, pool = atlas_of(request), jobs_of(request)
    key = ("flow-train", name)
    if pool.running(key) is not None:
        raise ApiError(409, f"a training of run '{name}' is already running; wait for it or cancel it")
    if atlas.has_run(name):
        raise ApiError(409, f"the atlas already has a run '{name}'; choose another name")

    def work(job) -> None:
        job.progress.update(step=0, total=steps, phase="training")

        def on_step(step: int) -> None:
            job.progress["step"] = step  # the trainer passes the number of steps done
            if job.cancel_requested.is_set():
                raise KeyboardInterrupt  # the trainer checkpoints and raises TrainingInterrupted

        try:
            run, _, _ = jobs.train(atlas, data=points, name=name, steps=steps, objective=objective, net=net, seed=seed, device="cpu",
                                   progress=False, on_step=on_step, evaluate=False, checkpoint_every=max(100, steps // 4))
            job.progress["phase"] = "evaluating"
            if job.cancel_requested.is_set():
                raise TrainingInterrupted(steps)
            jobs.evaluate(run, progress=False, samplers=("euler", "midpoint", "dpm++"), nfes=(4, 8, 16, 30), null_repeats=20)
        except TrainingInterrupted:
            if atlas.has_run(name):
                atlas.delete_run(name)
            raise Cancelled from None
        job.result.update(run=name)
        job.progress["phase"] = "done"

    job = pool.submit(key, f"training flow run '{name}' on {len(points):,} painted points", work, with_job=True)
    return json_response({"state": job.state, "job": job.as_dict()}, status=202)
