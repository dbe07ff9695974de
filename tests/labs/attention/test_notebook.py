"""``la.attention`` in a notebook: show captures a text and returns arrays equal to the model's own
attention and a view that displays as a frame onto an explorer served from this process; that server lets
loopback notebook pages frame it, the default server lets no page."""

from __future__ import annotations

import urllib.request

import numpy as np
import pytest
import torch

import latentatlas as la
from latentatlas.errors import LatentAtlasError
from latentatlas.server import background


def test_show_probs_and_view(tmp_path, tiny_tf):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    text = "Open the file, read its lines, and <b>close</b> it again."
    s = la.attention.show(tiny_tf["gpt2"], text, atlas=tmp_path / "atlas")
    model = AutoModelForCausalLM.from_pretrained(tiny_tf["gpt2"], attn_implementation="eager").eval()
    ids = AutoTokenizer.from_pretrained(tiny_tf["gpt2"])(text, return_tensors="pt")
    with torch.no_grad():
        want = model(**ids, output_attentions=True).attentions
    for layer in range(2):
        got = s.probs(layer)
        assert got.shape == tuple(want[layer].shape[1:]) and np.allclose(got, want[layer][0].numpy(), atol=2e-3)  # float16 storage
    assert s.tokens == AutoTokenizer.from_pretrained(tiny_tf["gpt2"]).convert_ids_to_tokens(ids["input_ids"][0])
    v = s.view("matrix", layer=1, head=0)
    try:
        assert v.params["sample"] == s.meta["id"] and "view=matrix" in v.url and v.url.startswith("http://127.0.0.1:")
        frame = s._repr_html_()
        assert frame.startswith("<iframe src=\"http://127.0.0.1:") and "<b>" not in frame
        with urllib.request.urlopen(v.url, timeout=10) as resp:
            csp = resp.headers["Content-Security-Policy"]
            assert "frame-ancestors 'self' http://localhost:*" in csp and resp.headers.get("X-Frame-Options") is None
        assert la.attention.view(s.run, "head").base == v.base  # one server per atlas
    finally:
        background.stop(tmp_path / "atlas")
    with pytest.raises(LatentAtlasError, match="expected one of head"):
        s.view("nope")


def test_default_server_denies_frames(tmp_path):
    from fastapi.testclient import TestClient

    from latentatlas.server import create_app

    r = TestClient(create_app(tmp_path), base_url="http://127.0.0.1").get("/api/runs")
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"] and r.headers["x-frame-options"] == "DENY"
    with pytest.raises(ValueError, match="not an origin pattern"):
        create_app(tmp_path, frame_ancestors=("http://x'; script-src *",))
