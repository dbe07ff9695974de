"""The explorer API's shared routes over a tiny real atlas: runs list, run detail, metrics, history,
figures (and path traversal on them), unknown runs, the front end and the docs."""

from __future__ import annotations

import os

import pytest
from api_helpers import PNG_SIGNATURE, one_sentence, png
from fastapi.testclient import TestClient

from latentatlas.server import create_app, serve

N, D = 200, 3


@pytest.fixture(scope="module")
def client(env):
    with TestClient(create_app(env["atlas"].root), base_url="http://127.0.0.1") as c:
        yield c


def test_docs_and_openapi(client):
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/runs/{run}/decode" in paths



def test_list_runs(client):
    runs = {r["name"]: r for r in client.get("/api/runs").json()}
    assert set(runs) == {"r", "bare"}
    assert runs["r"]["kind"] == "vae" and runs["r"]["steps"] == 20
    assert "recon_error" in runs["r"]["metrics"] and runs["bare"]["metrics"] == {}



def test_metrics_and_history(client):
    m = client.get("/api/runs/r/metrics").json()
    assert m["run"] == "r" and "headline" in m
    detail = one_sentence(client.get("/api/runs/bare/metrics"), 404)
    assert "latentatlas eval bare" in detail
    hist = client.get("/api/runs/r/history").json()
    assert isinstance(hist, list) and hist and "step" in hist[0]



def test_figures(client, env):
    names = client.get("/api/runs/r").json()["figures"]
    assert names, "evaluate should have written figures"
    im = png(client.get(f"/api/runs/r/figures/{names[0]}"))
    assert im.size[0] > 0
    one_sentence(client.get("/api/runs/r/figures/missing.png"), 404)
    one_sentence(client.get("/api/runs/r/figures/config.json"), 422)


def test_vector_figures_are_downloads_never_pages(client, env):
    # an SVG in a (possibly hostile) atlas could carry script: it comes back as an attachment
    detail = client.get("/api/runs/r").json()
    first = detail["figures"][0]
    stem = first[:-4]
    root = env["atlas"].root
    (root / "runs" / "r" / "figures" / f"{stem}.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    detail = client.get("/api/runs/r").json()
    assert "svg" in detail["figure_formats"][first] and f"{stem}.svg" not in detail["figures"]
    r = client.get(f"/api/runs/r/figures/{stem}.svg")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    assert r.headers["content-disposition"].startswith("attachment") and "script-src 'self'" in r.headers["content-security-policy"]
    (root / "runs" / "r" / "figures" / f"{stem}.svg").unlink()



@pytest.mark.parametrize("path", [
    "/api/runs/r/figures/..",
    "/api/runs/r/figures/%2e%2e",
    "/api/runs/r/figures/..%2Fconfig.json",
    "/api/runs/r/figures/..%2F..%2F..%2Fsecret.png",
    "/api/runs/r/figures/..%5Cconfig.json",
    "/api/runs/r/figures/%2Fetc%2Fpasswd",
    "/api/runs/r/figures//etc/passwd",
    "/api/runs/r/figures/../../r/config.json",
    "/api/runs/r/figures/%2e%2e%2f%2e%2e%2fsecret.png",
])
def test_figures_path_traversal(client, env, path):
    config = (env["run"].path / "config.json").read_bytes()
    # sent unaltered, straight to the app
    status, body = raw_get(client.app, path)
    assert status in (404, 422), (path, status)
    assert not body.startswith(PNG_SIGNATURE) and b"secret" not in body and body != config
    # through httpx, which folds literal '..' segments first (so it may land on another API route)
    resp = client.get(path, follow_redirects=False)
    assert not resp.content.startswith(PNG_SIGNATURE) and b"secret" not in resp.content and resp.content != config



def raw_get(app, raw: str) -> tuple[int, bytes]:
    """GET exactly ``raw`` (no client-side normalisation), straight through ASGI."""
    import asyncio
    from urllib.parse import unquote

    path, _, query = raw.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": unquote(path), "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
             "headers": [(b"host", b"127.0.0.1")], "server": ("testserver", 80), "client": ("testclient", 1)}
    out = {"status": 0, "body": b""}

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    asyncio.run(app(scope, receive, send))
    return out["status"], out["body"]



def test_figures_symlink_outside_is_refused(client, env):
    figures = env["run"].figures_dir
    link = figures / "escape.png"
    try:
        os.symlink(env["outside"], link)
    except (OSError, NotImplementedError):
        pytest.skip("symlinks are not available here")
    try:
        resp = client.get("/api/runs/r/figures/escape.png")
        assert resp.status_code == 404 and b"secret" not in resp.content
        assert "escape.png" not in client.get("/api/runs/r").json()["figures"]
    finally:
        link.unlink()



@pytest.mark.parametrize("suffix", ["", "/metrics", "/history", "/latents", "/latents/mu.bin", "/projection/pca.bin",
                                    "/figures/a.png", "/input/0.png", "/reconstruction/0.png", "/inspect/0",
                                    "/decode.png?z=0,0,0", "/interpolate.png?a=0&b=1", "/directions"])
def test_unknown_run_is_404(client, suffix):
    detail = one_sentence(client.get(f"/api/runs/nope{suffix}"), 404)
    assert "nope" in detail



def test_unknown_run_post_and_bad_names(client):
    one_sentence(client.post("/api/runs/nope/decode", json={"z": [0.0] * D}), 404)
    one_sentence(client.post("/api/runs/nope/interpolate", json={"a": 0, "b": 1}), 404)
    one_sentence(client.get("/api/runs/.hidden"), 404)
    one_sentence(client.get("/api/runs/%2e%2e"), 404)
    assert client.get("/api/runs/..%2Fr").status_code == 404



def test_broken_metrics_is_not_500(client, env, tmp_path):
    run = env["run"]
    metrics = run.path / "metrics.json"
    saved = metrics.read_bytes()
    try:
        metrics.write_text("{not json")
        one_sentence(client.get("/api/runs/r/metrics"), 422)
    finally:
        metrics.write_bytes(saved)



def test_serve_signature():
    import inspect

    params = inspect.signature(serve).parameters
    assert list(params) == ["atlas_root", "host", "port", "allow_hosts"]
    assert params["host"].default == "127.0.0.1" and params["port"].default == 8765



def test_front_end_and_plotly_are_served_locally(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "/static/js/app.js" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN
    js = client.get("/vendor/plotly.min.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"] and len(js.content) > 1_000_000
    # Plotly is loaded on demand (metrics charts) from the local copy the client names
    assert '"/vendor/plotly.min.js"' in client.get("/static/js/api.js").text
    from latentatlas.server.frontend import STATIC

    assets = sorted("/static/" + p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*") if p.suffix in (".js", ".css"))
    # the shell and one folder of views per lab
    assert {"/static/js/app.js", "/static/js/scatter.js", "/static/js/vae/map.js", "/static/js/sae/views.js"} <= set(assets)
    for asset in assets:
        r = client.get(asset)
        assert r.status_code == 200, asset
        assert "https://" not in r.text, asset
    assert client.get("/static/../app.py").status_code == 404
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/vendor/swagger/swagger-ui-bundle.js" in docs.text and "cdn" not in docs.text.lower()
    assert client.get("/vendor/swagger/swagger-ui-bundle.js").status_code == 200
    assert client.get("/openapi.json").json()["info"]["title"] == "latentatlas"
    assert client.get("/docs/openapi.json").json()["openapi"] == "3.0.3"


