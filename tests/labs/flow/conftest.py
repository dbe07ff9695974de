"""A tiny flow atlas for the flow lab's tests: a three-modes flow-matching run (300 steps, evaluated on two
samplers), a moons run (not a mixture: no exact field), a VP ε-prediction run, a flow run without weights
and a run of another lab."""

from __future__ import annotations

import pytest
from torch_helpers import one_thread  # noqa: F401  (re-exported for the lab tests)

FM, MOONS, EPS, BARE, OTHER = "fm3", "moons", "eps3", "bare", "other"


@pytest.fixture(scope="session")
def flow_atlas(tmp_path_factory):
    from latentatlas.atlas import Atlas
    from latentatlas.labs.flow import jobs

    atlas = Atlas(tmp_path_factory.mktemp("flow-atlas"))
    with one_thread():
        run, _, _ = jobs.train(atlas, data="three-modes", objective="fm", steps=300, batch_size=256, name=FM, progress=False,
                               evaluate=False, device="cpu")
        jobs.evaluate(run, n=500, samplers=("euler", "dpm++"), nfes=(4, 30), progress=False, null_repeats=10)
        jobs.train(atlas, data="moons", objective="fm", steps=40, batch_size=128, name=MOONS, progress=False, evaluate=False, device="cpu")
        jobs.train(atlas, data="three-modes", objective="eps", steps=40, batch_size=128, name=EPS, progress=False, evaluate=False,
                   device="cpu")
    cfg = dict(atlas.run(FM).config())
    atlas.create_run(BARE, {**cfg, "name": BARE})  # a flow run's config, no weights
    atlas.create_run(OTHER, {"kind": "vae"})
    return atlas
