"""The DiT view in a real (headless) Chromium over a tiny class-conditional DiT: the layer × step grid is
drawn, the step scrubber changes what is drawn, and the cond / uncond / difference switch repaints."""

from __future__ import annotations

import pytest

from .conftest import _serve

pytestmark = pytest.mark.slow
RUN = "dit"


@pytest.fixture(scope="module")
def dit_server(tmp_path_factory):
    import torch

    from latentatlas.atlas import Atlas
    from latentatlas.labs.flow import dit

    atlas = Atlas(tmp_path_factory.mktemp("dit-browser-atlas"))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run, result, _ = dit.train(atlas, steps=30, batch_size=32, name=RUN, device="cpu", progress=False, evaluate=False,
                                   n_layers=2, n_heads=2, head_dim=8)
        dit.save_capture(run, dit.capture(dit.model_of(run), [3, 7], steps=6, scale=2.0, seed=5))
        dit.evaluate_run(run, per_class=4, steps=6, num_resamples=20, train_seconds=result.seconds)
    finally:
        torch.set_num_threads(before)
    yield from _serve(atlas.root)


def _canvas_pixels(page) -> list[str]:
    return page.eval_on_selector_all("canvas", "cs => cs.map((c) => c.toDataURL())")


def test_dit_grid_scrubs_and_switches(page, dit_server, shot, frontend):
    page.goto(f"{dit_server}/?run={RUN}")
    page.wait_for_selector('body[data-ready="dit"]', timeout=30_000)
    assert [a.inner_text() for a in page.locator("#tabs a").all()][-1] == "Metrics"
    page.wait_for_selector("#dit-step")
    page.wait_for_timeout(300)
    first = _canvas_pixels(page)
    assert first, "the DiT view drew no canvas"
    shot("grid")
    page.eval_on_selector("#dit-step", "s => { s.value = s.max; s.dispatchEvent(new Event('input')); }")
    page.wait_for_timeout(300)
    assert _canvas_pixels(page) != first, "moving the step scrubber changed nothing"
    buttons = page.locator("#dit-which button")
    assert buttons.count() >= 3
    before = _canvas_pixels(page)
    buttons.nth(2).click()
    page.wait_for_timeout(300)
    assert _canvas_pixels(page) != before, "the difference view drew the same as the conditional one"
    shot("diff")
