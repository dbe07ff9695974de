"""The ViT views in a real (headless) Chromium: the strip of test images, the image with its patch grid,
the layer × head grid of CLS attention (a click lays one over the image), rollout and flow, and the
position-embedding similarity and patch filters, all drawn from float32 arrays."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import _serve

pytestmark = pytest.mark.slow
RUN = "vd"
SHOTS = Path("/tmp/shots")


@pytest.fixture(scope="module")
def vit_server(tmp_path_factory):
    import torch

    from latentatlas.labs.attention.vit import train_vit

    root = tmp_path_factory.mktemp("vit-browser-atlas")
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is as fast, and never spin-waits on a busy CPU
    try:
        train_vit(root, data="digits", steps=100, lr=5e-3, name=RUN, device="cpu", progress=False,
                  d_model=32, n_heads=2, n_layers=2, dropout=0.0, shift=0)
    finally:
        torch.set_num_threads(before)
    yield from _serve(root)


def _ready(page, view):
    page.wait_for_selector(f'body[data-ready="{view}"]', timeout=30_000)


def _painted(page, selector) -> bool:
    """Whether the canvas holds anything but one colour."""
    return page.eval_on_selector(selector, """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 4; i < d.length; i += 4) if (d[i] !== d[0] || d[i + 1] !== d[1] || d[i + 2] !== d[2]) return true; return false; }""")


def test_attention_view(page, vit_server, shot, frontend):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(f"{vit_server}/?run={RUN}")
    _ready(page, "vit")
    assert page.locator("#tabs a.active").inner_text() == "ViT attention"
    assert page.locator("#vit-strip .vit-tile").count() == 48
    assert page.locator("#vit-heads canvas.vit-head").count() == 2 * 2
    for sel in ("#vit-image", "#vit-rollout", "#vit-flow", "#vit-probs"):
        assert _painted(page, sel), sel
    assert page.locator("#vit-prediction").inner_text().startswith("predicted ")
    page.screenshot(path=str(SHOTS / "vit-attention.png"), full_page=True)
    # pick another test image in the strip
    page.locator("#vit-strip .vit-tile").nth(6).click()
    page.wait_for_url("**img=6**")
    _ready(page, "vit")
    assert "test image 6" in page.locator("#vit-image-caption").inner_text()
    before = page.eval_on_selector("#vit-image", "c => c.toDataURL()")
    # lay layer 1, head 0 over the image
    page.locator('#vit-heads canvas[data-layer="1"][data-head="0"]').click()
    page.wait_for_url("**head=1.0**")
    _ready(page, "vit")
    assert page.locator("#vit-image-caption").inner_text().startswith("layer 1, head 0")
    assert page.eval_on_selector("#vit-image", "c => c.toDataURL()") != before
    assert "active" in page.locator('#vit-heads canvas[data-layer="1"][data-head="0"]').get_attribute("class")
    page.screenshot(path=str(SHOTS / "vit-attention-head.png"), full_page=True)
    shot()
    # every array arrived as binary float32; no request left the machine
    bins = [u for u in page.requests if "/vit/" in u and u.split("?")[0].endswith(".bin")]
    assert any(u.endswith("/6/attention.bin") for u in bins) and any("/6/maps.bin" in u for u in bins)
    assert all(u.startswith(vit_server) for u in page.requests)
    assert not page.console_errors, page.console_errors


def test_embeddings_view(page, vit_server, shot, frontend):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(f"{vit_server}/?run={RUN}&view=vit-embed")
    _ready(page, "vit-embed")
    assert _painted(page, "#vit-posemb") and _painted(page, "#vit-filters")
    assert "4×4 patches" in page.locator("#vit-view").inner_text()
    page.screenshot(path=str(SHOTS / "vit-embeddings.png"), full_page=True)
    shot()
    # the metrics tab shows the held-out accuracy with its interval
    page.click('#tabs a[data-view="metrics"]')
    _ready(page, "metrics")
    assert "test_accuracy" in page.locator("#metrics-view").inner_text().replace(" ", "_")
    page.screenshot(path=str(SHOTS / "vit-metrics.png"), full_page=True)
    assert not page.console_errors, page.console_errors
