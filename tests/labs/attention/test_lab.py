"""The attention lab end to end on tiny models: `attention show` writes a sample whose windows, thumbnails
and neuron view the routes serve as binary; `attention heads` writes the head atlas; bad input is one
sentence."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from latentatlas.atlas import Atlas
from latentatlas.errors import LatentAtlasError
from latentatlas.labs.attention import jobs
from latentatlas.server import create_app


@pytest.fixture(scope="module")
def lab(tmp_path_factory, tiny_tf):
    atlas = Atlas(tmp_path_factory.mktemp("atlas"))
    subject, run = jobs.resolve(tiny_tf["gpt2"], atlas)
    meta = jobs.show(subject, run, "Open the file, read its lines, and <b>close</b> it again.", progress=False)
    got = jobs.heads(subject, run, corpus=tiny_tf["corpus"], tokens=400, progress=False)
    return atlas, run, meta, got, subject


def test_show_writes_a_sample_the_routes_serve(lab):
    atlas, run, meta, _, subject = lab
    client = TestClient(create_app(atlas.root), base_url="http://127.0.0.1")
    t, h = meta["n_tokens"], meta["n_heads"]
    assert meta["source"] == "attend" and meta["n_layers"] == 2 and meta["neuron"]
    over = client.get(f"/api/runs/{run.name}/attention").json()
    assert [s["id"] for s in over["samples"]] == [meta["id"]] and over["heads"]["n_layers"] == 2
    w = client.get(f"/api/runs/{run.name}/attention/{meta['id']}/window", params={"layer": 1, "r0": 0, "r1": t, "c0": 0, "c1": t})
    assert w.status_code == 200 and w.headers["X-Shape"] == f"{h},{t},{t}" and len(w.content) == h * t * t * 2
    probs = np.frombuffer(w.content, dtype="<f2").reshape(h, t, t).astype(np.float32)
    assert np.allclose(probs.sum(-1), 1, atol=1e-2) and np.allclose(np.triu(probs[0], 1), 0)  # causal rows that sum to one
    pooled = client.get(f"/api/runs/{run.name}/attention/{meta['id']}/window", params={"layer": 1, "max": 4})
    assert pooled.headers["X-Shape"] == f"{h},4,4"
    assert np.isclose(np.frombuffer(pooled.content, dtype="<f2").reshape(h, 4, 4)[0, 0, 0], probs[0, :-(-t // 4), :-(-t // 4)].max(), atol=1e-3)
    n = client.get(f"/api/runs/{run.name}/attention/{meta['id']}/neuron", params={"layer": 1, "head": 0, "query": t - 1})
    arr = np.frombuffer(n.content, dtype="<f4").reshape(*map(int, n.headers["X-Shape"].split(",")))
    assert arr.shape[0] == t + 1 and np.allclose(arr[1:, -1], probs[0, t - 1], atol=2e-3)  # recomputed softmax = stored row
    hs = client.get(f"/api/runs/{run.name}/heads")
    assert hs.headers["X-Heads"] == "2,2" and hs.headers["X-Stats"].split(",")[-1] == "copying"


def test_head_atlas_of_a_causal_lm(lab):
    _, _, _, got, _ = lab
    table = got["table"]
    assert table.shape == (2, 2, 7) and got["tokens"] >= 400 and got["copying"]
    assert np.all((table[..., 2:6] >= 0) & (table[..., 2:6] <= 1))  # shares and prefix matching are probabilities
    assert np.all(np.abs(table[..., 6]) <= 1)


def test_bad_requests_are_one_sentence(lab):
    atlas, run, meta, _, subject = lab
    client = TestClient(create_app(atlas.root), base_url="http://127.0.0.1")
    r = client.get(f"/api/runs/{run.name}/attention/../../etc/window", params={"layer": 0})
    assert r.status_code in (404, 422)
    r = client.get(f"/api/runs/{run.name}/attention/zzzzzzzzzzzz/window", params={"layer": 0})
    assert r.status_code == 422 and "12 hex digits" in r.json()["detail"]
    r = client.get(f"/api/runs/{run.name}/attention/{meta['id']}/window", params={"layer": 9})
    assert r.status_code == 422 and "out of range" in r.json()["detail"]
    with pytest.raises(LatentAtlasError, match="positions"):
        jobs.show(subject, run, "word " * 400, progress=False)
