"""The flow lab's page in a real (headless) Chromium: paint a target by mouse drags (spray, shift-drag erase,
undo, clear, presets), train a flow model on it from the page with live progress and land in the new run's
Flow view with its samples drawn; cancel a long training (no run is kept, the page says so); and compare
two runs side by side under one scrubber. The atlas holds two small trained runs, ``a`` (three modes) and
``b`` (moons); trainings from the page add to it. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest

from .conftest import _serve

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: one torch thread is as fast, and the page's trainings (in the server's thread) never
    spin-wait on a busy CPU."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def paint_atlas(tmp_path_factory, one_thread):
    from latentatlas.atlas import Atlas
    from latentatlas.labs.flow import jobs

    atlas = Atlas(tmp_path_factory.mktemp("flow-paint-atlas"))
    for name, data in (("a", "three-modes"), ("b", "moons")):
        run, _, _ = jobs.train(atlas, data=data, objective="fm", steps=300, batch_size=256, name=name, progress=False,
                               evaluate=False, device="cpu")
        jobs.evaluate(run, n=500, samplers=("euler", "dpm++"), nfes=(4, 30), progress=False, null_repeats=10)
    return atlas


@pytest.fixture(scope="module")
def paint_server(paint_atlas):
    yield from _serve(paint_atlas.root)


def _ready(page, view):
    page.wait_for_selector(f'body[data-ready="{view}"]', timeout=30_000)


def _count(page) -> int:
    return int(page.get_attribute("#paint-canvas", "data-points"))


def _runs(base) -> dict:
    with urllib.request.urlopen(f"{base}/api/runs") as r:
        return {x["name"]: x for x in json.load(r)}


def _drag(page, path, shift=False, steps=6):
    """Drag the brush along ``path`` (data units) on the paint canvas."""
    box = page.locator("#paint-canvas").bounding_box()
    at = [page.evaluate("([x, y]) => window.latentatlas.paint.screen(x, y)", list(p)) for p in path]
    if shift:
        page.keyboard.down("Shift")
    page.mouse.move(box["x"] + at[0][0], box["y"] + at[0][1])
    page.mouse.down()
    for x, y in at[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=steps)
    page.mouse.up()
    if shift:
        page.keyboard.up("Shift")


def _errors(page) -> list[str]:
    # a refused request (the 422 the test answers, a run not there) is logged by Chromium as a failed load
    return [e for e in page.console_errors if "Failed to load resource" not in e]


def _painted(page, selector) -> bool:
    return page.eval_on_selector(selector, """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 4; i < d.length; i += 4) if (d[i] !== d[0] || d[i + 1] !== d[1] || d[i + 2] !== d[2]) return true; return false; }""")


def test_paint_a_target_train_and_see_samples(page, paint_server, paint_atlas, shot, frontend):
    # the entry point on the runs page
    page.goto(f"{paint_server}/")
    _ready(page, "runs")
    page.click("#paint-entry")
    _ready(page, "paint")
    assert "view=paint" in page.url and page.locator("#tabs").is_hidden()
    assert _count(page) == 0 and page.locator("#paint-train").is_disabled()
    assert "at least 2 points" in page.locator("#paint-check").inner_text()
    assert page.input_value("#paint-name") == "painted"  # a free name by default
    shot("empty")

    # spray: a stroke along an arc in the upper right, a blob lower left (held a moment: a spray can keeps spraying)
    _drag(page, [(0.8, 2.2), (1.6, 1.9), (2.2, 1.2), (2.3, 0.4)])
    first = _count(page)
    assert first > 100, first
    pts = np.array(page.evaluate("window.latentatlas.paint.points()"), dtype=np.float64).reshape(-1, 2)
    assert len(pts) == first
    assert (np.hypot(pts[:, 0] - 1.7, pts[:, 1] - 1.3) < 1.6).all()  # every point near the stroke (radius 0.3)
    page.eval_on_selector("#paint-radius", "r => { r.value = '0.6'; r.dispatchEvent(new Event('input')); }")
    box = page.locator("#paint-canvas").bounding_box()
    x, y = page.evaluate("window.latentatlas.paint.screen(-1.5, -1.2)")
    page.mouse.move(box["x"] + x, box["y"] + y)
    page.mouse.down()
    page.wait_for_timeout(350)
    page.mouse.move(box["x"] + x + 20, box["y"] + y + 10, steps=4)
    page.mouse.up()
    both = _count(page)
    assert both > first + 30

    # shift-drag erases across the arc; undo brings it back; the Erase toggle does the same as shift
    _drag(page, [(1.0, 1.0), (2.6, 2.6)], shift=True)
    erased = _count(page)
    assert erased < both
    page.click("#paint-undo")
    assert _count(page) == both
    page.click("#paint-erase")
    assert page.get_attribute("#paint-erase", "aria-pressed") == "true"
    _drag(page, [(-2.4, -1.2), (-0.6, -1.2)])
    assert _count(page) < both
    page.click("#paint-undo")
    page.click("#paint-erase")
    assert _count(page) == both
    # clear, and undo the clear
    page.click("#paint-clear")
    assert _count(page) == 0
    page.click("#paint-undo")
    assert _count(page) == both
    assert "points" in page.locator("#paint-count").inner_text()
    # the painting survives a reload (sessionStorage)
    page.wait_for_timeout(400)
    page.reload()
    _ready(page, "paint")
    assert _count(page) == both

    # the name is checked here; the server's refusal is shown as text, never as markup
    page.fill("#paint-name", "bad name!")
    assert page.locator("#paint-train").is_disabled() and "letters, digits" in page.locator("#paint-check").inner_text()
    page.fill("#paint-name", "a")
    assert page.locator("#paint-train").is_disabled() and "already has a run 'a'" in page.locator("#paint-check").inner_text()
    page.fill("#paint-name", "painted")
    assert page.locator("#paint-train").is_enabled()
    page.route("**/api/flow/train**", lambda route: route.fulfill(status=422, content_type="application/json",
                                                                  body=json.dumps({"detail": "<img src=x id=bad> is refused"})))
    page.click("#paint-train")
    page.wait_for_function("() => document.getElementById('paint-notice').textContent.includes('refused')")
    assert page.locator("#paint-notice").inner_text() == "The server refused: <img src=x id=bad> is refused"
    assert page.locator("#bad").count() == 0
    page.unroute("**/api/flow/train**")
    shot("painted")

    # train: progress, then the new run's Flow view with its samples drawn
    page.fill("#paint-steps", "60")
    page.click("#paint-train")
    page.wait_for_selector("#paint-job:not([hidden])")
    assert page.locator("#paint-job-title").inner_text() == "Training painted"
    page.wait_for_function("() => ['running', 'done'].includes(document.getElementById('paint-job').dataset.state)", timeout=30_000)
    page.wait_for_function("() => / loss /.test(document.getElementById('paint-progress').textContent)"
                           " || document.body.dataset.ready === 'flow'", timeout=60_000)
    if "run=painted" not in page.url:
        shot("training")
    page.wait_for_url("**run=painted**", timeout=120_000)
    _ready(page, "flow")
    page.wait_for_selector('#flow-canvas[data-samples="2000"]', timeout=60_000)
    assert page.locator("#run-name").inner_text() == "painted"
    assert page.locator("#tabs a.active").inner_text() == "Flow"
    assert page.locator("#flow-status").inner_text().startswith("euler: 30 NFE counted")
    assert _painted(page, "#flow-canvas")
    page.wait_for_function("() => window.latentatlas.flow.layers.density")
    assert "histogram estimate" in page.locator("#flow-note").inner_text()  # the target is the painted points
    # the run holds exactly the points painted, and the evaluation filled the table
    kept = np.load(paint_atlas.run("painted").file("data", "points.npy"))
    assert kept.shape == (both, 2)
    assert page.locator("#flow-ed-model td[data-sampler]").count() > 0
    # the samples at t = 1 sit where the paint was, more than the noise at t = 0 does
    ends = np.array(page.evaluate("[...Array(2000).keys()].map((i) => window.latentatlas.flow.at(i))"), dtype=np.float64)
    page.evaluate("window.latentatlas.flow.setT(0)")
    starts = np.array(page.evaluate("[...Array(2000).keys()].map((i) => window.latentatlas.flow.at(i))"), dtype=np.float64)
    page.evaluate("window.latentatlas.flow.setT(1)")
    near = lambda p: float(np.mean([np.min(np.hypot(*(kept - q).T)) for q in p[::10]]))  # noqa: E731
    assert near(ends) < near(starts), (near(ends), near(starts))
    shot("trained")
    # back on the paint page: the training's end, a link to the run, and a free name for the next painting
    page.go_back()
    _ready(page, "paint")
    assert page.get_attribute("#paint-job", "data-state") == "done"
    assert page.locator("#paint-msg").inner_text().startswith("Trained painted (60 steps")
    page.wait_for_function("() => document.getElementById('paint-name').value === 'painted-2'")
    page.click("#paint-open")
    _ready(page, "flow")
    assert "run=painted" in page.url
    # the runs list has it
    page.click(".brand")
    _ready(page, "runs")
    assert page.locator('#runs-table tr[data-run="painted"] td.status').inner_text() == "evaluated"
    assert not _errors(page), _errors(page)


def test_cancel_a_long_training(page, paint_server, shot, frontend):
    # the entry point on a flow run's view: Paint a target, starting from that run's target
    page.goto(f"{paint_server}/?run=b")
    _ready(page, "flow")
    page.click("#flow-paint-open")
    _ready(page, "paint")
    assert "from=b" in page.url
    page.click("#paint-from")
    page.wait_for_function("() => Number(document.getElementById('paint-canvas').dataset.points) > 900")
    assert "run b's target" in page.locator("#paint-notice").inner_text()
    page.click('#paint-presets button[data-preset="three-modes"]')
    assert _count(page) == 1000
    page.click("#paint-undo")
    page.fill("#paint-name", "long")
    page.fill("#paint-steps", "20000")
    page.click("#paint-train")
    # the loss curve grows (a row every 50 steps); Train is locked while it runs
    page.wait_for_function("() => Number(document.getElementById('paint-job').dataset.step) >= 160", timeout=90_000)
    page.wait_for_function("() => / loss /.test(document.getElementById('paint-progress').textContent)", timeout=30_000)
    assert page.locator("#paint-train").is_disabled()
    assert _painted(page, "#paint-loss")
    assert "long" in _runs(paint_server)  # the run is in the atlas while it trains
    # a reload keeps the painting and picks the training up again
    step = int(page.get_attribute("#paint-job", "data-step"))
    page.reload()
    _ready(page, "paint")
    assert _count(page) == 1000
    page.wait_for_function("(s) => Number(document.getElementById('paint-job').dataset.step) > s", arg=step, timeout=30_000)
    assert page.locator("#paint-job-title").inner_text() == "Training long" and page.input_value("#paint-name") == "long"
    page.wait_for_function("() => Number(document.getElementById('paint-job').dataset.step) >= 260", timeout=60_000)
    page.wait_for_function("() => / loss /.test(document.getElementById('paint-progress').textContent)", timeout=30_000)
    shot("training", on=page)
    page.click("#paint-cancel")
    page.wait_for_selector('#paint-job[data-state="cancelled"]', timeout=60_000)
    msg = page.locator("#paint-msg").inner_text()
    assert msg.startswith("Cancelled at step ") and "'long' was not kept" in msg
    assert "long" not in _runs(paint_server)
    assert page.locator("#paint-cancel").is_hidden()
    assert page.locator("#paint-train").is_enabled()  # the name is free again
    assert "view=paint" in page.url  # still here
    shot("cancelled")
    assert not _errors(page), _errors(page)


def test_compare_two_runs_side_by_side(page, paint_server, shot, frontend):
    page.goto(f"{paint_server}/?run=a&t=0.5")
    _ready(page, "flow")
    assert page.locator("#flow-side").is_visible()
    names = page.eval_on_selector("#flow-compare", "s => [...s.options].map((o) => o.value)")
    assert names[0] == "" and "b" in names and "a" not in names
    page.select_option("#flow-compare", "b")
    page.wait_for_url("**compare=b**")
    page.wait_for_selector('#flow-canvas-b[data-samples="2000"]', timeout=30_000)
    page.wait_for_function("() => window.latentatlas.flow.layersOf(1) && window.latentatlas.flow.layersOf(1).density"
                           " && window.latentatlas.flow.layers.density")
    assert page.evaluate("window.latentatlas.flow.runs") == ["a", "b"]
    assert page.locator("#flow-side").is_hidden()
    a_box, b_box = page.locator("#flow-canvas").bounding_box(), page.locator("#flow-canvas-b").bounding_box()
    assert abs(a_box["y"] - b_box["y"]) < 1 and b_box["x"] > a_box["x"] + a_box["width"]  # side by side
    assert a_box["width"] == b_box["width"] and b_box["x"] + b_box["width"] <= 1280
    assert page.locator("#flow-head").inner_text().startswith("a · three-modes")
    assert page.locator("#flow-head-b").inner_text().startswith("b · moons")
    assert "energy distance" in page.locator("#flow-head-b").inner_text()
    assert page.locator("#flow-status-b").inner_text().startswith("euler: 30 NFE counted")
    for c in ("#flow-canvas", "#flow-canvas-b"):
        assert page.get_attribute(c, "data-t") == "0.5000" and _painted(page, c)
    shot("half")

    # the shared scrubber moves both; at t = 0 both panes start from the same noise, at t = 1 they differ
    page.focus("#flow-t")
    page.keyboard.press("Home")
    page.wait_for_function("() => document.getElementById('flow-canvas-b').dataset.t === '0.0000'")
    assert page.get_attribute("#flow-canvas", "data-t") == "0.0000"
    idx = [0, 5, 99, 1999]
    at = lambda k: np.array(page.evaluate("([idx, k]) => idx.map((i) => window.latentatlas.flow.at(i, k))", [idx, k]))  # noqa: E731
    np.testing.assert_array_equal(at(0), at(1))
    page.keyboard.press("End")
    page.wait_for_function("() => document.getElementById('flow-canvas-b').dataset.t === '1.0000'")
    assert np.abs(at(0) - at(1)).max() > 0.1
    # the shared sampler and NFE redraw both
    page.select_option("#flow-sampler", "dpm++")
    page.wait_for_selector('#flow-canvas-b[data-sampler="dpm++"]', timeout=30_000)
    page.wait_for_selector('#flow-canvas[data-sampler="dpm++"]', timeout=30_000)
    # a point followed in one pane is followed in both (the same noise point)
    box = page.locator("#flow-canvas-b").bounding_box()
    x, y = page.evaluate("window.latentatlas.flow.screen(7, 1)")
    page.mouse.click(box["x"] + x, box["y"] + y)
    page.wait_for_url("**follow=**")
    assert page.get_attribute("#flow-canvas", "data-follow") == page.get_attribute("#flow-canvas-b", "data-follow") != ""
    page.evaluate("window.latentatlas.flow.setT(0.6)")
    page.mouse.move(5, 5)
    page.wait_for_function("() => window.latentatlas.flow.layersOf(1).field && window.latentatlas.flow.layersOf(1).field.includes('@0.6@')")
    shot("compared")

    # the URL holds both: a reload restores them; "none" goes back to one run with its side panel
    page.goto(page.url)
    _ready(page, "flow")
    page.wait_for_selector('#flow-canvas-b[data-samples="2000"]', timeout=30_000)
    assert page.input_value("#flow-compare") == "b"
    page.select_option("#flow-compare", "")
    page.wait_for_function("() => !document.getElementById('flow-canvas-b')")
    assert "compare=" not in page.url and page.locator("#flow-side").is_visible()
    # a run that is not there says so where its pane would be
    page.goto(f"{paint_server}/?run=a&compare=nope")
    _ready(page, "flow")
    page.wait_for_selector("#flow-status-b.bad")
    assert "nope" in page.locator("#flow-status-b").inner_text()
    assert not _errors(page), _errors(page)
