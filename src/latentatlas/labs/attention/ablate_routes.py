"""The ablation lab's routes: a run's ablations, and one ablation's table (modules × metrics with their
intervals; per module, so small: JSON). Any run may hold ablations (a VAE run of the vae lab too), so the
run's kind is not checked; every file is validated against its schema by ``ablate.read_ablation``."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ...server.http import get_run, json_response
from . import ablate

router = APIRouter()


@router.get("/api/runs/{run}/ablations", summary="The run's ablations, newest first")
def ablations(run: str, request: Request):
    return json_response({"ablations": ablate.list_ablations(get_run(request, run))})


@router.get("/api/runs/{run}/ablations/{aid}", summary="One ablation: each module's effect (batch mean and 95% bootstrap interval), sorted by effect")
def ablation(run: str, aid: str, request: Request):
    return json_response(ablate.read_ablation(get_run(request, run), aid))
