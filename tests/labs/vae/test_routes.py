"""The VAE lab's API routes over a tiny real atlas: the latent table, binary columns, projections,
decoded images, the inspector, interpolation and directions; errors, caching and concurrency."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from api_helpers import PNG_SIGNATURE, one_sentence, png
from fastapi.testclient import TestClient

from latentatlas.server import create_app

N, D = 200, 3


@pytest.fixture(scope="module")
def client(env):
    with TestClient(create_app(env["atlas"].root), base_url="http://127.0.0.1") as c:
        yield c


def test_run_detail(client):
    d = client.get("/api/runs/r").json()
    assert d["latent_dim"] == D and d["has_metrics"] and d["has_latents"] and d["n"] == N
    assert sorted(d["dims_by_kl"]) == list(range(D))
    lo, hi = np.array(d["traversal"]["lo"]), np.array(d["traversal"]["hi"])
    assert lo.shape == (D,) and np.all(lo < hi)
    assert d["factors"] == [{"name": "position", "size": 8, "value_names": None}, {"name": "width", "size": 2, "value_names": None}]
    assert d["config"]["kind"] == "vae"
    bare = client.get("/api/runs/bare").json()
    assert not bare["has_metrics"] and not bare["has_latents"] and bare["traversal"] is None



def test_latents_table(client):
    t = client.get("/api/runs/r/latents").json()
    assert t["n"] == N and t["dim"] == D
    cols = t["columns"]
    assert cols["index"] == list(range(N))
    assert all(isinstance(v, int) for v in cols["position"]) and len(cols["width"]) == N
    assert "mu" not in cols
    one_sentence(client.get("/api/runs/bare/latents"), 404)



def test_mu_bin(client, env):
    resp = client.get("/api/runs/r/latents/mu.bin")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/octet-stream"
    assert resp.headers["x-shape"] == f"{N},{D}" and len(resp.content) == N * D * 4
    mu = np.frombuffer(resp.content, "<f4").reshape(N, D)
    arrays, _ = env["run"].read_latents()
    np.testing.assert_array_equal(mu, arrays["mu"])



def test_inspect(client, env):
    d = client.get("/api/runs/r/inspect/5").json()
    assert d["row"] == 5 and d["index"] == 5
    assert set(d["factors"]) == {"position", "width"}
    assert len(d["mu"]) == D and len(d["sigma"]) == D and all(s > 0 for s in d["sigma"])
    assert isinstance(d["recon_error"], float)



def test_directions(client):
    d = client.get("/api/runs/r/directions?k=2").json()
    comps = np.array(d["components"])
    assert comps.shape == (2, D) and np.allclose(np.linalg.norm(comps, axis=1), 1, atol=1e-4)
    assert len(d["explained_variance_ratio"]) == 2 and len(d["mean"]) == D and len(d["std"]) == 2
    assert len(client.get("/api/runs/r/directions").json()["components"]) == D
    one_sentence(client.get("/api/runs/r/directions?k=0"), 422)
    one_sentence(client.get("/api/runs/r/directions?k=99"), 422)
    one_sentence(client.get("/api/runs/r/directions?k=abc"), 422)



def test_projection_stored_by_eval(client):
    resp = client.get("/api/runs/r/projection/pca.bin")
    assert resp.status_code == 200 and resp.headers["x-shape"] == f"{N},2"
    assert len(resp.content) == N * 2 * 4



def test_projection_is_computed_by_a_background_job_once(client, env, monkeypatch):
    """A GET never computes or writes: an unstored projection is a 404 naming the POST that computes it; the
    POST starts one background job however often it is sent; the page polls the job, then GETs the array."""
    import time

    import latentatlas.analysis.projections as projections

    run = env["run"]
    stored = run.projections_dir / "eval-tsne.safetensors"
    assert not stored.exists()
    calls = []
    real = projections.project

    def counting(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(projections, "project", counting)
    missing = client.get("/api/runs/r/projection/tsne.bin")
    assert missing.status_code == 404 and missing.json()["compute"] == "/api/runs/r/projection/tsne"
    assert "POST /api/runs/r/projection/tsne" in missing.json()["detail"] and not stored.exists() and not calls
    results = [None] * 4

    def post(i):
        results[i] = client.post("/api/runs/r/projection/tsne")

    threads = [threading.Thread(target=post, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.status_code == 202 for r in results), [r.text for r in results]
    job_ids = {r.json()["job"]["id"] for r in results}
    assert len(job_ids) == 1
    (job_id,) = job_ids
    deadline = time.time() + 120
    while (state := client.get(f"/api/jobs/{job_id}").json())["state"] not in ("done", "failed"):
        assert time.time() < deadline
        time.sleep(0.1)
    assert state["state"] == "done", state
    got = client.get("/api/runs/r/projection/tsne.bin")
    assert got.status_code == 200 and len(got.content) == N * 2 * 4 and stored.is_file()
    assert len(calls) == 1
    again = client.post("/api/runs/r/projection/tsne")
    assert again.status_code == 200 and again.json()["state"] == "done" and len(calls) == 1
    assert client.get("/api/runs/r/projection/tsne.bin").content == got.content
    assert client.get("/api/jobs/999999").status_code == 404


def test_projection_errors(client):
    assert "expected one of" in one_sentence(client.get("/api/runs/r/projection/mds.bin"), 422)
    assert "expected one of" in one_sentence(client.post("/api/runs/r/projection/mds"), 422)
    one_sentence(client.get("/api/runs/bare/projection/pca.bin"), 404)
    one_sentence(client.post("/api/runs/bare/projection/umap"), 404)



def test_input_png(client, env):
    im = png(client.get("/api/runs/r/input/3.png"))
    assert im.mode == "L" and im.size == (64, 64)
    expected = np.round(env["x"][3, 0] * 255).astype(np.uint8).repeat(4, 0).repeat(4, 1)
    np.testing.assert_array_equal(np.asarray(im), expected)
    one_sentence(client.get(f"/api/runs/r/input/{N}.png"), 422)
    one_sentence(client.get("/api/runs/r/input/-1.png"), 422)
    one_sentence(client.get("/api/runs/r/input/x.png"), 422)



def test_reconstruction_png(client):
    im = png(client.get("/api/runs/r/reconstruction/0.png"))
    assert im.size == (64, 64)
    one_sentence(client.get(f"/api/runs/r/reconstruction/{N}.png"), 422)
    one_sentence(client.get("/api/runs/bare/reconstruction/0.png"), 404)



def test_decode_post_and_get(client):
    a = client.post("/api/runs/r/decode", json={"z": [0.0] * D})
    b = client.post("/api/runs/r/decode", json={"z": [2.0, -2.0, 1.5]})
    assert png(a).size == (64, 64) and png(b).size == (64, 64)
    assert a.content != b.content
    g = client.get("/api/runs/r/decode.png?z=0,0,0")
    assert png(g).size == (64, 64) and g.content == a.content
    # a run without latents still decodes: only the model is needed
    png(client.post("/api/runs/bare/decode", json={"z": [0.0] * D}))



@pytest.mark.parametrize("z", [[0.0] * (D - 1), [0.0] * (D + 1), [], [0.0, 0.0, 2e3], [0.0, 0.0, -1e4]])
def test_decode_rejects_bad_z(client, z):
    one_sentence(client.post("/api/runs/r/decode", json={"z": z}), 422)
    one_sentence(client.get("/api/runs/r/decode.png", params={"z": ",".join(map(str, z))}), 422)



@pytest.mark.parametrize("query", ["z=nan,0,0", "z=inf,0,0", "z=0,0,-inf", "z=a,b,c", "z=", ""])
def test_decode_get_rejects_bad_query(client, query):
    one_sentence(client.get(f"/api/runs/r/decode.png?{query}"), 422)



def test_decode_post_rejects_non_finite(client):
    body = b'{"z": [NaN, 0, 0]}'
    resp = client.post("/api/runs/r/decode", content=body, headers={"content-type": "application/json"})
    one_sentence(resp, 422)
    one_sentence(client.post("/api/runs/r/decode", json={"z": "zero"}), 422)
    one_sentence(client.post("/api/runs/r/decode", json={}), 422)



def test_decode_concurrent(client):
    results = [None] * 16
    barrier = threading.Barrier(16)

    def call(i):
        barrier.wait()
        results[i] = client.post("/api/runs/r/decode", json={"z": [i / 8 - 1.0, 0.5, -0.5]})

    threads = [threading.Thread(target=call, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r is not None and r.status_code == 200 for r in results)
    assert all(r.content.startswith(PNG_SIGNATURE) for r in results)



def test_interpolate_json(client, env):
    d = client.post("/api/runs/r/interpolate", json={"a": 0, "b": 7, "steps": 5, "method": "slerp"}).json()
    z = np.array(d["z"])
    arrays, _ = env["run"].read_latents()
    assert z.shape == (5, D)
    np.testing.assert_allclose(z[0], arrays["mu"][0], atol=1e-5)
    np.testing.assert_allclose(z[-1], arrays["mu"][7], atol=1e-5)
    assert d["path_rows"][0] == 0 and d["path_rows"][-1] == 7 and len(d["path_rows"]) == 5



@pytest.mark.parametrize("body", [
    {"a": 0, "b": N, "steps": 4},
    {"a": -1, "b": 1, "steps": 4},
    {"a": 0, "b": 1, "steps": 1},
    {"a": 0, "b": 1, "steps": 65},
    {"a": 0, "b": 1, "steps": 4, "method": "cubic"},
    {"a": "x", "b": 1},
])
def test_interpolate_rejects(client, body):
    one_sentence(client.post("/api/runs/r/interpolate", json=body), 422)



def test_interpolate_png(client):
    im = png(client.get("/api/runs/r/interpolate.png?a=0&b=9&steps=4&method=lerp"))
    assert im.size == (4 * 64 + 3 * 2, 64)
    one_sentence(client.get("/api/runs/r/interpolate.png?a=0&b=9&steps=100"), 422)
    one_sentence(client.get("/api/runs/r/interpolate.png?a=0&b=9&method=cubic"), 422)
    one_sentence(client.get("/api/runs/r/interpolate.png?a=0"), 422)



def test_latent_columns_travel_as_binary(client, env):
    meta = client.get("/api/runs/r/latents/meta").json()
    assert meta["n"] == 200 and meta["dim"] == 3 and {"index", "position", "width"} <= set(meta["columns"])
    r = client.get("/api/runs/r/latents/column.bin", params={"name": "position"})
    assert r.status_code == 200 and r.headers["x-shape"] == "200" and len(r.content) == 200 * 4
    values = np.frombuffer(r.content, dtype="<f4")
    _, rows = env["run"].read_latents()
    assert np.array_equal(values, rows["position"].to_numpy().astype(np.float32))
    missing = client.get("/api/runs/r/latents/column.bin", params={"name": "nope"})
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]
    assert client.get("/api/runs/r/latents/column.bin", params={"name": "../config"}).status_code == 404
    assert client.get("/api/runs/r/latents/column.bin").status_code == 422



def test_neighbours_and_the_neighbourhood_a_map_keeps(client):
    from latentatlas.analysis.neighbours import neighbours_kept

    def floats(path):
        r = client.get(path)
        assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream", r.text
        shape = [int(v) for v in r.headers["x-shape"].split(",")]
        return np.frombuffer(r.content, dtype="<f4").reshape(shape)

    mu = floats("/api/runs/r/latents/mu.bin").astype(np.float64)
    r = client.get("/api/runs/r/neighbours/3", params={"k": 5, "metric": "euclidean"})
    assert r.status_code == 200, r.text
    body = r.json()
    full = np.linalg.norm(mu - mu[3], axis=1)
    full[3] = np.inf
    assert [nb["row"] for nb in body["neighbours"]] == np.argsort(full, kind="stable")[:5].tolist()
    np.testing.assert_allclose([nb["distance"] for nb in body["neighbours"]], np.sort(full)[:5], rtol=1e-6)
    for bad in ({"k": 0}, {"k": 101}, {"metric": "manhattan"}):
        assert client.get("/api/runs/r/neighbours/3", params=bad).status_code == 422
    assert client.get("/api/runs/r/neighbours/99999").status_code == 422
    # the stored "neighbours kept" of the eval's projection is the map's own, recomputed here
    kept, coords = floats("/api/runs/r/projection/pca/kept.bin"), floats("/api/runs/r/projection/pca.bin")
    np.testing.assert_allclose(kept, neighbours_kept(mu, coords.astype(np.float64), k=10), atol=1e-6)


def test_projection_settings_are_checked_and_name_their_own_projection(client):
    r = client.get("/api/runs/r/projection/umap.bin", params={"n_neighbors": 5, "metric": "cosine"})
    assert r.status_code == 404 and r.json()["compute"] == "/api/runs/r/projection/umap?n_neighbors=5&metric=cosine"
    assert client.get("/api/runs/r/projection/pca.bin", params={"perplexity": 10}).status_code == 422  # PCA has no perplexity
    for bad in ({"n_neighbors": 1}, {"min_dist": 2}, {"perplexity": 1000}, {"metric": "manhattan"}):
        assert client.get("/api/runs/r/projection/umap.bin", params=bad).status_code == 422
