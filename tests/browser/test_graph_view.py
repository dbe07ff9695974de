"""The module graph in a real (headless) Chromium: a tiny GPT-2's graph draws, opening a module adds its
children in a frame, closing the frame removes them, a click shows a node's statistics and the `sae capture`
command; a VAE run with a graph gets the tab too. Screenshots go to /tmp/shots/."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import _serve

SHOTS = Path("/tmp/shots")


@pytest.fixture(scope="module")
def graph_atlas(tmp_path_factory, tiny_tf, bars):
    from latentatlas.atlas import Atlas
    from latentatlas.labs.attention import graph
    from latentatlas.labs.vae.jobs import evaluate_run, train_run

    root = tmp_path_factory.mktemp("graph-browser")
    atlas = Atlas(root / "atlas")
    npz = bars.save(root / "bars.npz", *bars.make(64, positions=4, widths=2, size=16))
    vae, _ = train_run("vae", str(npz), latent_dim=2, steps=2, batch_size=16, name="v", atlas=atlas, progress=False)
    evaluate_run(vae, n=64, projections=["pca"], progress=False)  # the VAE lab's views need its latents
    for model in ("v", tiny_tf["gpt2"]):
        subject, run = graph.resolve(model, atlas)
        graph.build(subject, run)
    return {"root": atlas.root, "gpt": run.name}


@pytest.fixture(scope="module")
def graph_server(graph_atlas):
    yield from _serve(graph_atlas["root"])


def _ids(page):
    return set(page.eval_on_selector_all("#graph-svg .graph-node", "els => els.map(e => e.dataset.id)"))


def _wait(page):
    page.wait_for_selector("body[data-ready='graph']")


def test_the_graph_expands_collapses_and_shows_a_node(page, graph_server, graph_atlas):
    SHOTS.mkdir(parents=True, exist_ok=True)
    run = graph_atlas["gpt"]
    page.goto(f"{graph_server}/?run={run}&view=graph")
    _wait(page)
    assert page.locator("#tabs a[data-view='graph']").inner_text() == "Module graph"
    closed = _ids(page)
    assert {"transformer", "lm_head", ".in.input_ids", ".out"} <= closed
    assert page.locator("#graph-svg .graph-edge").count() >= 3
    page.screenshot(path=str(SHOTS / "graph-closed.png"))

    page.click("#graph-svg .graph-toggle[data-id='transformer']")
    page.wait_for_selector("#graph-svg .graph-node[data-id='transformer.wte']")
    _wait(page)
    opened = _ids(page)
    assert {"transformer.wte", "transformer.wpe", "transformer.h", "transformer.ln_f"} <= opened and "transformer" not in opened
    assert page.locator("#graph-svg .graph-frame[data-id='transformer']").count() == 1

    page.click("#graph-svg .graph-toggle[data-id='transformer.h']")
    page.wait_for_selector("#graph-svg .graph-node[data-id='transformer.h.0']")
    _wait(page)
    assert {"transformer.h.0", "transformer.h.1"} <= _ids(page)
    page.click("#graph-svg .graph-node[data-id='transformer.h.1'] rect")
    page.wait_for_selector("#graph-stats")
    panel = page.inner_text("#graph-panel")
    assert "transformer.h.1" in panel and "GPT2Block" in panel and "parameters" in panel and "zeros" in panel
    assert page.inner_text("#graph-capture").endswith("--layer transformer.h.1")
    page.screenshot(path=str(SHOTS / "graph-opened.png"))

    # zoom with the wheel, then close the outer frame: everything inside it goes
    before = page.get_attribute("#graph-world", "transform")
    page.mouse.move(400, 400)
    page.mouse.wheel(0, 300)
    assert page.get_attribute("#graph-world", "transform") != before
    page.click("#graph-svg .graph-frame[data-id='transformer'] .graph-toggle")
    page.wait_for_selector("#graph-svg .graph-node[data-id='transformer']")
    _wait(page)
    assert _ids(page) == closed
    assert page.console_errors == []


def test_a_vae_run_with_a_graph_has_the_tab(page, graph_server):
    page.goto(f"{graph_server}/?run=v&view=graph")
    _wait(page)
    assert {"encoder", "decoder", ".in.x"} <= _ids(page)
    page.click("#graph-svg .graph-node[data-id='encoder'] rect")
    page.wait_for_selector("#graph-stats")
    assert "No SAE capture" in page.inner_text("#graph-panel")
    page.screenshot(path=str(SHOTS / "graph-vae.png"))
    assert page.console_errors == []
