"""The flow view's routes over a tiny real atlas, checked against known answers: trajectories start at the
noise ``jobs.noise`` draws and end where ``samplers.sample`` ends, with its times and counted NFE; the exact
field is mean − x at t = 0 and x at t = 1 at every grid point; the exact density is the standard normal at
t = 0 and the mixture at t = 1; the model's field is the network's velocity. Arrays are float32 binary with
their shape in X-Shape; bad parameters, a run of another lab and a missing run are one sentence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from api_helpers import one_sentence
from fastapi.testclient import TestClient

from latentatlas.labs.flow import jobs
from latentatlas.models.samplers import SAMPLERS, sample as run_sampler

from .conftest import BARE, EPS, FM, MOONS, OTHER, one_thread


@pytest.fixture(scope="module")
def client(flow_atlas):
    from latentatlas.server import create_app

    with one_thread(), TestClient(create_app(flow_atlas.root), base_url="http://127.0.0.1") as c:
        yield c


def floats(resp) -> np.ndarray:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/octet-stream"
    shape = tuple(int(s) for s in resp.headers["x-shape"].split(","))
    assert len(resp.content) == 4 * math.prod(shape)
    return np.frombuffer(resp.content, "<f4").reshape(shape)


def centres(meta, grid: int) -> np.ndarray:
    """The grid's cell centres over the view bounds, row i from the bottom, column j from the left: (grid, grid, 2)."""
    (x0, x1), (y0, y1) = meta["bounds"]["x"], meta["bounds"]["y"]
    xs = x0 + (np.arange(grid) + 0.5) * (x1 - x0) / grid
    ys = y0 + (np.arange(grid) + 0.5) * (y1 - y0) / grid
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx, gy], axis=-1)


@pytest.fixture(scope="module")
def meta(client):
    return client.get(f"/api/runs/{FM}/flow").json()


def test_meta(client, meta, flow_atlas):
    assert meta["objective"] == "fm" and meta["net"] == "sinusoidal" and meta["mixture"] is True
    assert meta["samplers"] == list(SAMPLERS) and meta["min_nfe"]["midpoint"] == 2 and meta["min_nfe"]["euler"] == 1
    assert meta["data"]["name"] == "three-modes" and len(meta["modes"]["means"]) == 3
    # a square holding the noise (±3.5) and the target
    (x0, x1), (y0, y1) = meta["bounds"]["x"], meta["bounds"]["y"]
    assert x1 - x0 == pytest.approx(y1 - y0) and x0 <= -3.5 and y0 <= -3.5 and x1 >= 3.5 and y1 >= 3.5
    target = jobs.target_of(flow_atlas.run(FM)).sample(2000, seed=3)
    assert (target[:, 0] > x0).all() and (target[:, 0] < x1).all() and (target[:, 1] > y0).all() and (target[:, 1] < y1).all()
    # the evaluation's sampler table
    rows = meta["metrics"]["samplers"]
    assert {(r["field"], r["sampler"], r["nfe_budget"]) for r in rows} == {(f, s, k) for f in ("model", "exact") for s in ("euler", "dpm++") for k in (4, 30)}
    assert all(isinstance(r["energy_distance"], float) and r["nfe"] == r["nfe_budget"] for r in rows)
    assert meta["metrics"]["noise_floor"] > 0
    moons = client.get(f"/api/runs/{MOONS}/flow").json()
    assert moons["mixture"] is False and "modes" not in moons and moons["metrics"] is None and moons["target"] == "moons"
    vp = client.get(f"/api/runs/{EPS}/flow").json()
    assert vp["objective"] == "eps" and vp["t_field_min"] > 0


@pytest.mark.parametrize("sampler,nfe", [("euler", 30), ("heun", 10), ("midpoint", 7), ("dpm++", 8), ("ddim", 6), ("ddpm", 5)])
def test_trajectories_are_the_samplers_own(client, flow_atlas, sampler, nfe):
    n, seed = 300, 4
    resp = client.get(f"/api/runs/{FM}/flow/trajectories.bin", params={"sampler": sampler, "nfe": nfe, "n": n, "seed": seed})
    traj = floats(resp)
    model = jobs.model_of(flow_atlas.run(FM))
    c = model.config
    x0 = jobs.noise(n, seed)
    with one_thread():
        want = run_sampler(model.prediction(), x0, sampler, nfe, objective=c.objective, schedule=c.schedule,
                           train_timesteps=c.train_timesteps, seed=seed, trajectory=True)
    times = np.array([float(v) for v in resp.headers["x-times"].split(",")])
    assert traj.shape == (len(want.times), n, 2) == tuple(want.trajectory.shape)
    np.testing.assert_allclose(times, want.times, rtol=1e-5, atol=1e-6)
    assert times[0] == 0 and times[-1] == 1 and np.all(np.diff(times) > 0)
    np.testing.assert_array_equal(traj[0], x0.numpy())  # the noise jobs.noise draws
    np.testing.assert_allclose(traj[-1], want.x.numpy(), rtol=1e-5, atol=1e-5)  # where the sampler ends
    assert int(resp.headers["x-nfe"]) == want.nfe and int(resp.headers["x-steps"]) == want.steps
    assert resp.headers["x-sampler"] == sampler
    if sampler == "heun":
        assert want.nfe == 9  # 5 Heun steps, the last one Euler: 2·5 − 1


def test_trajectories_are_cached_and_seeded(client):
    url = f"/api/runs/{FM}/flow/trajectories.bin"
    a = client.get(url, params={"sampler": "ddpm", "nfe": 6, "n": 50, "seed": 1})
    b = client.get(url, params={"sampler": "ddpm", "nfe": 6, "n": 50, "seed": 1})
    c = client.get(url, params={"sampler": "ddpm", "nfe": 6, "n": 50, "seed": 2})
    assert a.content == b.content and a.content != c.content
    d = floats(client.get(url))  # the defaults: euler, 30 NFE, 2,000 points, seed 0
    assert d.shape == (31, 2000, 2)


def test_exact_field_known_answers(client, meta, flow_atlas):
    mix = jobs.target_of(flow_atlas.run(FM)).mixture
    grid = 16
    x = centres(meta, grid)
    at0 = floats(client.get(f"/api/runs/{FM}/flow/field.bin", params={"t": 0, "grid": grid, "which": "exact"}))
    assert at0.shape == (grid, grid, 2)
    np.testing.assert_allclose(at0, mix.mean[None, None, :] - x, atol=1e-5)  # E[x1] − x0 with x_0 = x0
    at1 = floats(client.get(f"/api/runs/{FM}/flow/field.bin", params={"t": 1, "grid": grid, "which": "exact"}))
    np.testing.assert_allclose(at1, x, atol=1e-5)  # E[x1 − x0 | x1 = x] = x: the noise is independent of the data


def test_model_field_and_difference(client, meta, flow_atlas):
    grid, t = 12, 0.37
    x = centres(meta, grid)
    resp = client.get(f"/api/runs/{FM}/flow/field.bin", params={"t": t, "grid": grid, "which": "model"})
    got = floats(resp)
    assert float(resp.headers["x-t"]) == pytest.approx(t)
    assert [float(v) for v in resp.headers["x-bounds"].split(",")] == pytest.approx([*meta["bounds"]["x"], *meta["bounds"]["y"]], rel=1e-5)
    model = jobs.model_of(flow_atlas.run(FM))
    with torch.no_grad():
        want = model.prediction().velocity(torch.as_tensor(x.reshape(-1, 2), dtype=torch.float32), t).numpy().reshape(grid, grid, 2)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    exact = floats(client.get(f"/api/runs/{FM}/flow/field.bin", params={"t": t, "grid": grid, "which": "exact"}))
    diff = floats(client.get(f"/api/runs/{FM}/flow/field.bin", params={"t": t, "grid": grid, "which": "diff"}))
    np.testing.assert_allclose(diff, got - exact, atol=1e-4)
    assert floats(client.get(f"/api/runs/{FM}/flow/field.bin")).shape == (64, 64, 2)  # the defaults


def test_vp_model_field_starts_just_after_zero(client):
    resp = client.get(f"/api/runs/{EPS}/flow/field.bin", params={"t": 0, "grid": 8})
    v = floats(resp)
    assert float(resp.headers["x-t"]) == pytest.approx(0.01) and np.isfinite(v).all()
    traj = floats(client.get(f"/api/runs/{EPS}/flow/trajectories.bin", params={"sampler": "ddim", "nfe": 5, "n": 20}))
    assert traj.shape == (6, 20, 2) and np.isfinite(traj).all()


def test_density(client, meta, flow_atlas):
    mix = jobs.target_of(flow_atlas.run(FM)).mixture
    grid = 20
    x = centres(meta, grid).reshape(-1, 2)
    resp = client.get(f"/api/runs/{FM}/flow/density.bin", params={"t": 1, "grid": grid})
    lp = floats(resp)
    assert lp.shape == (grid, grid) and resp.headers["x-density"] == "exact"
    np.testing.assert_allclose(lp.ravel(), mix.log_prob(x), rtol=1e-5, atol=1e-4)  # p_1 is the target
    lp0 = floats(client.get(f"/api/runs/{FM}/flow/density.bin", params={"t": 0, "grid": grid}))
    np.testing.assert_allclose(lp0.ravel(), -math.log(2 * math.pi) - (x ** 2).sum(1) / 2, rtol=1e-5, atol=1e-4)  # p_0 = N(0, I)
    # a target that is not a mixture: a histogram of x_t, a density that integrates to about 1 over the view
    resp = client.get(f"/api/runs/{MOONS}/flow/density.bin", params={"t": 1, "grid": 48})
    h = floats(resp)
    assert resp.headers["x-density"] == "histogram" and h.shape == (48, 48) and np.isfinite(h).all()
    mm = client.get(f"/api/runs/{MOONS}/flow").json()
    cell = (mm["bounds"]["x"][1] - mm["bounds"]["x"][0]) * (mm["bounds"]["y"][1] - mm["bounds"]["y"][0]) / 48 ** 2
    assert float(np.exp(h.astype(np.float64)).sum() * cell) == pytest.approx(1.0, abs=0.05)
    # its mass sits where the moons are: the densest cell is near a point of the target
    pts = jobs.target_of(flow_atlas.run(MOONS)).sample(4000, seed=0)
    top = centres(mm, 48).reshape(-1, 2)[int(np.argmax(h))]
    assert np.min(np.linalg.norm(pts - top, axis=1)) < 0.2


def test_target(client, flow_atlas):
    got = floats(client.get(f"/api/runs/{FM}/flow/target.bin", params={"n": 64, "seed": 2}))
    np.testing.assert_array_equal(got, jobs.target_of(flow_atlas.run(FM)).sample(64, seed=2))


@pytest.mark.parametrize("path,params,says", [
    ("trajectories.bin", {"sampler": "midpoint", "nfe": 1}, "at least 2"),
    ("trajectories.bin", {"sampler": "rk4"}, "not one of"),
    ("trajectories.bin", {"sampler": ""}, "sampler"),
    ("trajectories.bin", {"nfe": 0}, "nfe"),
    ("trajectories.bin", {"nfe": 1001}, "nfe"),
    ("trajectories.bin", {"n": 20_001}, "'n'"),
    ("trajectories.bin", {"n": 0}, "'n'"),
    ("trajectories.bin", {"n": 20_000, "nfe": 1000}, "positions"),
    ("trajectories.bin", {"seed": -1}, "seed"),
    ("trajectories.bin", {"nfe": "many"}, "nfe"),
    ("field.bin", {"t": 1.5}, "'t'"),
    ("field.bin", {"t": -0.1}, "'t'"),
    ("field.bin", {"t": "nan"}, "'t'"),
    ("field.bin", {"t": "inf"}, "'t'"),
    ("field.bin", {"grid": 1}, "grid"),
    ("field.bin", {"grid": 257}, "grid"),
    ("field.bin", {"which": "both"}, "not one of"),
    ("density.bin", {"t": 2}, "'t'"),
    ("density.bin", {"grid": 10_000}, "grid"),
    ("target.bin", {"n": 0}, "'n'"),
])
def test_bad_parameters_are_one_sentence(client, path, params, says):
    detail = one_sentence(client.get(f"/api/runs/{FM}/flow/{path}", params=params), 422)
    assert says in detail


def test_no_exact_field_without_a_mixture(client):
    for which in ("exact", "diff"):
        detail = one_sentence(client.get(f"/api/runs/{MOONS}/flow/field.bin", params={"which": which}), 422)
        assert "not a Gaussian mixture" in detail and "which=model" in detail
    assert floats(client.get(f"/api/runs/{MOONS}/flow/field.bin", params={"grid": 4})).shape == (4, 4, 2)


ROUTES = ["flow", "flow/trajectories.bin", "flow/field.bin", "flow/density.bin", "flow/target.bin"]


@pytest.mark.parametrize("route", ROUTES)
def test_runs_that_cannot_answer(client, route):
    assert "not found" in one_sentence(client.get(f"/api/runs/nope/{route}"), 404)
    assert "not a flow run" in one_sentence(client.get(f"/api/runs/{OTHER}/{route}"), 422)
    assert "no trained weights" in one_sentence(client.get(f"/api/runs/{BARE}/{route}"), 422)


def test_the_run_detail_names_the_lab(client):
    d = client.get(f"/api/runs/{FM}").json()
    assert d["lab"] == "flow" and d["config"]["kind"] == "flow"
