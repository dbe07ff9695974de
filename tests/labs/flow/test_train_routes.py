"""Training from the page: painted points as binary, a background job with progress, cancel that leaves
no run, and the refusals (same name twice, bad bodies)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from latentatlas.atlas import Atlas
from latentatlas.server import create_app
from api_helpers import one_sentence


@pytest.fixture
def client(tmp_path):
    with TestClient(create_app(tmp_path), base_url="http://127.0.0.1") as c:
        yield c, Atlas(tmp_path)


def _points(n=300, seed=0):
    return (np.random.default_rng(seed).normal(size=(n, 2)) * 0.3 + [1.0, -1.0]).astype("<f4")


def _wait(c, job_id, until=("done", "failed", "cancelled"), timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        j = c.get(f"/api/jobs/{job_id}").json()
        if j["state"] in until:
            return j
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {j}")


def test_painted_points_train_a_run_in_the_background(client):
    c, atlas = client
    pts = _points()
    r = c.post("/api/flow/train?name=painted&steps=60", content=pts.tobytes())
    assert r.status_code == 202, r.text
    job = _wait(c, r.json()["job"]["id"])
    assert job["state"] == "done", job
    assert job["progress"]["step"] == 60 and job["result"]["run"] == "painted"
    run = atlas.run("painted")
    np.testing.assert_array_equal(np.load(run.file("data", "points.npy")), pts)
    assert run.read_metrics()["run"] == "painted"
    assert c.get("/api/runs/painted/flow").status_code == 200
    again = c.post("/api/flow/train?name=painted&steps=60", content=pts.tobytes())
    assert again.status_code == 409 and "already has a run 'painted'" in again.json()["detail"]


def test_cancel_leaves_no_run_and_a_second_training_of_the_name_is_refused(client):
    c, atlas = client
    r = c.post("/api/flow/train?name=long&steps=20000", content=_points().tobytes())
    job_id = r.json()["job"]["id"]
    t0 = time.time()
    while c.get(f"/api/jobs/{job_id}").json()["progress"].get("step", 0) < 5 and time.time() - t0 < 60:
        time.sleep(0.05)
    twice = c.post("/api/flow/train?name=long&steps=50", content=_points().tobytes())
    assert twice.status_code == 409 and "already running" in twice.json()["detail"]
    assert c.post(f"/api/jobs/{job_id}/cancel").status_code == 202
    job = _wait(c, job_id)
    assert job["state"] == "cancelled" and 5 <= job["progress"]["step"] < 20000
    assert not atlas.has_run("long") and not (atlas.root / "runs" / "long").exists()


@pytest.mark.parametrize("body,query,needle", [
    (b"\x00" * 7, "name=a", "8 bytes per point"),
    (b"", "name=a", "8 bytes per point"),
    (np.array([[0, 1], [np.nan, 2], [3, 4]], "<f4").tobytes(), "name=a", "NaN or infinite values in row 2"),
    (np.zeros((1, 2), "<f4").tobytes(), "name=a", "at least 2 points"),
    (np.zeros((10, 2), "<f4").tobytes(), "name=../x", "not allowed"),
    (np.zeros((10, 2), "<f4").tobytes(), "name=a&steps=0", "steps"),
    (np.zeros((10, 2), "<f4").tobytes(), "name=a&objective=gan", "objective"),
])
def test_bad_requests_are_one_sentence(client, body, query, needle):
    c, atlas = client
    r = c.post(f"/api/flow/train?{query}", content=body)
    assert needle in one_sentence(r, 422)
    assert atlas.run_names() == []


def test_cancel_of_an_unknown_job_is_404(client):
    c, _ = client
    assert c.post("/api/jobs/999/cancel").status_code == 404
