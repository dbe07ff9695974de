"""What a hostile page or request meets: DNS rebinding (a foreign Host), cross-site posts (a foreign
Origin), oversized bodies, and the headers every answer carries (CSP without inline script, nosniff,
frame denial)."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi.testclient import TestClient

from latentatlas.server import create_app
from latentatlas.server.security import allowed_hosts, host_name

D = 3


@pytest.fixture(scope="module")
def app(env):
    return create_app(env["atlas"].root)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app, base_url="http://127.0.0.1:8765") as c:
        yield c


@pytest.mark.parametrize("path", ["/", "/api/runs", "/api/runs/r", "/api/runs/r/latents/mu.bin", "/static/js/app.js", "/docs", "/openapi.json"])
@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "127.0.0.1.evil.example", "localhost.evil.example", ""])
def test_a_foreign_host_gets_nothing(client, path, host):
    r = client.get(path, headers={"host": host})
    assert r.status_code == 403
    detail = r.json()["detail"]
    assert "is not a name this server answers to" in detail
    assert b"demo" not in r.content and b"latent_dim" not in r.content


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:8765", "localhost:8765", "LOCALHOST", "[::1]:8765", "::1"])
def test_loopback_names_are_served(client, host):
    r = client.get("/api/runs", headers={"host": host})
    assert r.status_code == 200, r.text
    assert {x["name"] for x in r.json()} == {"r", "bare"}


def test_the_host_it_was_bound_as_is_served(env):
    app = create_app(env["atlas"].root, host="atlas.lan", allow_hosts=("viewer.lan",))
    with TestClient(app, base_url="http://atlas.lan:8765") as c:
        assert c.get("/api/runs").status_code == 200
        assert c.get("/api/runs", headers={"host": "viewer.lan"}).status_code == 200
        assert c.get("/api/runs", headers={"host": "127.0.0.1:8765"}).status_code == 200
        assert c.get("/api/runs", headers={"host": "evil.example"}).status_code == 403


def test_host_names_parse():
    assert host_name("127.0.0.1:8765") == "127.0.0.1" and host_name("[::1]:80") == "::1" and host_name("::1") == "::1"
    assert host_name("Example.LAN") == "example.lan"
    hosts = allowed_hosts("0.0.0.0")
    assert {"127.0.0.1", "localhost", "::1"} <= hosts and len(hosts) > 3  # a wildcard bind adds this machine's names
    assert allowed_hosts() == frozenset({"127.0.0.1", "localhost", "::1"})


def test_a_post_from_another_site_is_refused(client):
    r = client.post("/api/runs/r/decode", json={"z": [0.0] * D}, headers={"origin": "http://evil.example"})
    assert r.status_code == 403 and "only the explorer's own pages" in r.json()["detail"]
    ok = client.post("/api/runs/r/decode", json={"z": [0.0] * D}, headers={"origin": "http://127.0.0.1:8765"})
    assert ok.status_code == 200 and ok.headers["content-type"] == "image/png"
    assert client.post("/api/runs/r/decode", json={"z": [0.0] * D}, headers={"origin": "http://localhost:8765"}).status_code == 200
    # reads stay open to the page's own scripts and to tools (no Origin)
    assert client.get("/api/runs", headers={"origin": "http://evil.example"}).status_code == 200


def test_bodies_are_bounded(client):
    big = json.dumps({"z": [0.0] * 400_000})  # ~2 MB
    r = client.post("/api/runs/r/decode", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "at most 1,048,576" in r.json()["detail"]
    bad = client.post("/api/runs/r/decode", content=b"{}", headers={"content-type": "application/json", "content-length": "x"})
    assert bad.status_code in (400, 422)


def test_a_streamed_body_without_length_is_bounded_too(app):
    """A chunked body declares no length; the bytes are counted as they arrive."""
    sent = {"status": None, "body": b""}
    chunks = [b'{"z": [' + b"0.0, " * 50_000] * 6 + [b"0.0]}"]

    async def run():
        queue = list(chunks)

        async def receive():
            piece = queue.pop(0)
            return {"type": "http.request", "body": piece, "more_body": bool(queue)}

        async def send(message):
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]
            elif message["type"] == "http.response.body":
                sent["body"] += message.get("body", b"")

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
                 "path": "/api/runs/r/decode", "raw_path": b"/api/runs/r/decode", "query_string": b"", "root_path": "",
                 "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")],
                 "server": ("127.0.0.1", 8765), "client": ("127.0.0.1", 1)}
        await app(scope, receive, send)

    asyncio.run(run())
    assert sent["status"] == 413 and "at most" in json.loads(sent["body"])["detail"]


@pytest.mark.parametrize("path", ["/", "/api/runs", "/api/runs/r/reconstruction/0.png", "/api/runs/r/latents/mu.bin", "/docs",
                                  "/static/js/app.js", "/api/runs/nope"])
def test_every_answer_carries_the_security_headers(client, path):
    r = client.get(path)
    csp = r.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'" and "unsafe-inline" not in directives["script-src"]
    assert directives["default-src"] == "'self'" and directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"


def test_pages_have_no_inline_script(client):
    import re

    for path in ("/", "/docs"):
        html = client.get(path).text
        scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
        assert scripts and all("src=" in attrs and not body.strip() for attrs, body in scripts), (path, scripts)
        assert not re.search(r"\son[a-z]+=", html), path  # no inline event handlers either
