"""The flow view in a real (headless) Chromium over a tiny atlas with a 300-step three-modes flow-matching
run: the samples at the scrubbed time are where the sampler put them (noise at t = 0, its samples at
t = 1), switching sampler and NFE redraws in place with the counted NFE, a click follows a point's path and
a second click drops it, the field and contour choices repaint their layers, play moves time, and a
scrubber step draws in well under 50 ms. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import _serve

pytestmark = pytest.mark.slow
RUN = "fm"


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory):
    import torch

    from latentatlas.atlas import Atlas
    from latentatlas.labs.flow import jobs

    atlas = Atlas(tmp_path_factory.mktemp("flow-browser-atlas"))
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is as fast, and never spin-waits on a busy CPU
    try:
        run, _, _ = jobs.train(atlas, data="three-modes", objective="fm", steps=300, batch_size=256, name=RUN, progress=False,
                               evaluate=False, device="cpu")
        jobs.evaluate(run, n=500, samplers=("euler", "dpm++"), nfes=(4, 30), progress=False, null_repeats=10)
    finally:
        torch.set_num_threads(before)
    return run


@pytest.fixture(scope="module")
def flow_server(flow_run):
    yield from _serve(flow_run.atlas.root)


def _ready(page, view="flow"):
    page.wait_for_selector(f'body[data-ready="{view}"]', timeout=30_000)


def _painted(page, selector) -> bool:
    return page.eval_on_selector(selector, """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 4; i < d.length; i += 4) if (d[i] !== d[0] || d[i + 1] !== d[1] || d[i + 2] !== d[2]) return true; return false; }""")


def _pixels(page) -> str:
    return page.eval_on_selector("#flow-canvas", "c => c.toDataURL()")


def _positions(page, idx) -> np.ndarray:
    return np.array(page.evaluate("(idx) => idx.map((i) => window.latentatlas.flow.at(i))", list(idx)), dtype=np.float64)


def _wait_attr(page, name, value):
    page.wait_for_function("([n, v]) => document.getElementById('flow-canvas').getAttribute(n) === v", arg=[name, value], timeout=30_000)


def test_flow_view(page, flow_server, flow_run, shot, frontend):
    import torch

    from latentatlas.labs.flow import jobs
    from latentatlas.models.samplers import sample as run_sampler

    page.goto(f"{flow_server}/?run={RUN}")
    _ready(page)
    assert page.locator("#tabs a.active").inner_text() == "Flow"
    assert [a.inner_text() for a in page.locator("#tabs a").all()] == ["Flow", "Metrics"]
    assert _painted(page, "#flow-canvas") and _painted(page, "#flow-ticks")
    status = page.locator("#flow-status")
    assert status.inner_text().startswith("euler: 30 NFE counted")
    assert page.get_attribute("#flow-canvas", "data-nfe") == "30"
    page.wait_for_function("() => window.latentatlas.flow.layers.field && window.latentatlas.flow.layers.density")
    assert "model field at t = 1.00" in page.locator("#flow-note").inner_text()
    assert "exact density" in page.locator("#flow-note").inner_text()
    # the evaluation's table: energy distance per sampler and NFE, the drawn one marked
    assert page.locator("#flow-ed-model td.cur").get_attribute("data-sampler") == "euler"
    shot("t1")

    # t = 1: the samples are the sampler's own; t = 0 (the Home key on the scrubber): the noise they started from
    idx = [0, 1, 7, 500, 1999]
    model = jobs.model_of(flow_run)
    c = model.config
    x0 = jobs.noise(2000, 0)
    torch.set_num_threads(1)
    end = run_sampler(model.prediction(), x0, "euler", 30, objective=c.objective, schedule=c.schedule, train_timesteps=c.train_timesteps).x
    np.testing.assert_allclose(_positions(page, idx), end.numpy()[idx], atol=1e-5)
    at1 = _pixels(page)
    page.focus("#flow-t")
    page.keyboard.press("Home")
    _wait_attr(page, "data-t", "0.0000")
    np.testing.assert_allclose(_positions(page, idx), x0.numpy()[idx], atol=1e-6)
    assert _pixels(page) != at1
    page.wait_for_url("**t=0.000**")
    page.wait_for_function("() => (window.latentatlas.flow.layers.field || '').startsWith('model@0@')")
    shot("t0")

    # halfway between two recorded states the points are interpolated between them
    times = page.evaluate("window.latentatlas.flow.times")
    assert len(times) == 31 and times[0] == 0 and times[-1] == 1
    page.evaluate("(t) => window.latentatlas.flow.setT(t)", (times[10] + times[11]) / 2)
    traj = jobs.sample(flow_run, "euler", 30, n=2000, seed=0, save=False)[0].trajectory.numpy()
    np.testing.assert_allclose(_positions(page, idx), (traj[10][idx] + traj[11][idx]) / 2, atol=1e-4)

    # a scrubber step draws in well under 50 ms (2,000 points over the field and contour layers)
    ms = page.evaluate("""() => { const f = window.latentatlas.flow; let worst = 0;
        for (let k = 0; k <= 40; k++) { f.setT(k / 40); worst = Math.max(worst, f.drawMs); } return worst; }""")
    assert ms < 50, ms

    # another sampler and NFE: refetched and redrawn in place, the status says the counted NFE
    page.evaluate("() => { window.__same_page = true; document.getElementById('flow-canvas').dataset.mark = 'kept'; }")
    page.evaluate("window.latentatlas.flow.setT(0.5)")
    page.select_option("#flow-sampler", "heun")
    _wait_attr(page, "data-sampler", "heun")
    assert status.inner_text().startswith("heun: 29 NFE counted (budget 30)")
    page.fill("#flow-nfe", "10")
    page.press("#flow-nfe", "Enter")
    _wait_attr(page, "data-nfe", "9")
    assert status.inner_text().startswith("heun: 9 NFE counted (budget 10), 5 solver steps, 6 recorded states")
    assert "sampler=heun" in page.url and "nfe=10" in page.url
    assert page.evaluate("window.__same_page === true") and page.get_attribute("#flow-canvas", "data-mark") == "kept"
    assert page.get_attribute("#flow-canvas", "data-t") == "0.5000"  # time kept across the switch
    assert page.evaluate("window.latentatlas.flow.times.length") == 6
    # midpoint spends two evaluations a step
    page.select_option("#flow-sampler", "midpoint")
    _wait_attr(page, "data-sampler", "midpoint")
    assert status.inner_text().startswith("midpoint: 10 NFE counted")

    # click a point to follow it: its path is drawn; a click on it again drops it; Clear drops them all
    before = _pixels(page)
    box = page.locator("#flow-canvas").bounding_box()
    sx, sy = page.evaluate("window.latentatlas.flow.screen(7)")
    page.mouse.click(box["x"] + sx, box["y"] + sy)
    page.wait_for_url("**follow=**")
    followed = [int(i) for i in page.get_attribute("#flow-canvas", "data-follow").split(",")]
    assert len(followed) == 1
    fx, fy = page.evaluate("(i) => window.latentatlas.flow.screen(i)", followed[0])
    assert (fx - sx) ** 2 + (fy - sy) ** 2 <= 100  # the nearest point within 10 px of the click
    assert _pixels(page) != before
    page.mouse.click(box["x"] + fx, box["y"] + fy)
    _wait_attr(page, "data-follow", "")
    assert "follow=" not in page.url
    # three points on screen with no other point within 12 px (the left-, right- and top-most such), so each
    # click finds its own
    far = page.evaluate("""() => { const f = window.latentatlas.flow, c = document.getElementById('flow-canvas');
        const w = parseFloat(c.style.width), h = parseFloat(c.style.height), n = 2000;
        const p = [...Array(n).keys()].map((i) => f.screen(i));
        const alone = [...Array(n).keys()].filter((i) => p[i][0] > 50 && p[i][0] < w - 20 && p[i][1] > 40 && p[i][1] < h - 40
          && p.every((q, j) => j === i || (q[0] - p[i][0]) ** 2 + (q[1] - p[i][1]) ** 2 > 144));
        const by = (k, s) => alone.reduce((a, b) => (s * p[b][k] > s * p[a][k] ? b : a));
        return [...new Set([by(0, -1), by(0, 1), by(1, -1)])]; }""")
    assert len(far) == 3
    for i in far:
        x, y = page.evaluate("(i) => window.latentatlas.flow.screen(i)", i)
        page.mouse.click(box["x"] + x, box["y"] + y)
        page.wait_for_timeout(150)
    assert sorted(int(i) for i in page.get_attribute("#flow-canvas", "data-follow").split(",")) == sorted(far)
    page.mouse.move(box["x"] - 40, box["y"])
    shot("followed")
    page.click("#flow-clear")
    _wait_attr(page, "data-follow", "")
    for i in (7, 300):
        x, y = page.evaluate("(i) => window.latentatlas.flow.screen(i)", i)
        page.mouse.click(box["x"] + x, box["y"] + y)
        page.wait_for_timeout(150)

    # the field: exact, the difference, none; the contours: p_t at t, off
    for which, key in (("exact", "exact@0.5@"), ("diff", "diff@0.5@")):
        page.select_option("#flow-field", which)
        page.wait_for_function("(k) => (window.latentatlas.flow.layers.field || '').startsWith(k)", arg=key)
        _wait_attr(page, "data-field", which)
    assert "model − exact field at t = 0.50" in page.locator("#flow-note").inner_text()
    shot("diff")
    with_field = _pixels(page)
    page.select_option("#flow-field", "none")
    page.wait_for_function("() => window.latentatlas.flow.layers.field === null")
    assert _pixels(page) != with_field
    page.select_option("#flow-field", "exact")
    page.select_option("#flow-contours", "pt")
    page.wait_for_function("() => (window.latentatlas.flow.layers.density || '').startsWith('0.5@')")
    assert "contours of p_t at t = 0.50 (exact density)" in page.locator("#flow-note").inner_text()
    shot("pt")
    page.select_option("#flow-contours", "off")
    page.wait_for_function("() => window.latentatlas.flow.layers.density === null")

    # play moves time forward; pause stops it and keeps t in the URL
    page.evaluate("window.latentatlas.flow.setT(0.1)")
    page.click("#flow-play")
    page.wait_for_function("() => window.latentatlas.flow.t > 0.2")
    page.click("#flow-play")
    t = page.evaluate("window.latentatlas.flow.t")
    assert 0.2 < t < 1 and page.locator("#flow-play").inner_text().endswith("Play")
    page.wait_for_url(f"**t={t:.3f}**")

    # the evaluation table switches sampler and NFE with a click
    page.click('#flow-ed-model td[data-sampler="dpm++"][data-nfe="4"]')
    _wait_attr(page, "data-sampler", "dpm++")
    assert status.inner_text().startswith("dpm++: 4 NFE counted")
    assert page.locator("#flow-ed-model td.cur").get_attribute("data-nfe") == "4"

    # a reload from the URL restores the same view
    url = page.url
    page.goto(url)
    _ready(page)
    _wait_attr(page, "data-sampler", "dpm++")
    assert page.get_attribute("#flow-canvas", "data-field") == "exact" and page.get_attribute("#flow-canvas", "data-contours") == "off"
    assert len(page.get_attribute("#flow-canvas", "data-follow").split(",")) == 2

    # every array arrived as float32 binary; nothing left the machine
    flow_calls = [u for u in page.requests if f"/api/runs/{RUN}/flow/" in u]
    assert flow_calls and all(u.split("?")[0].endswith(".bin") for u in flow_calls)
    assert all(u.startswith(flow_server) for u in page.requests)
    assert not page.console_errors, page.console_errors


def test_flow_view_sharp_on_a_dense_screen_and_metrics(browser, flow_server, shot, frontend):
    context = browser.new_context(viewport={"width": 1280, "height": 860}, device_scale_factor=2)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{flow_server}/?run={RUN}&t=0.35&field=diff&contours=pt&follow=3,1200")
        _ready(page)
        page.wait_for_function("() => (window.latentatlas.flow.layers.field || '').startsWith('diff@0.34@')"
                               " || (window.latentatlas.flow.layers.field || '').startsWith('diff@0.36@')")
        w, css = page.eval_on_selector("#flow-canvas", "c => [c.width, parseFloat(c.style.width)]")
        assert w == 2 * css  # the backing store at the screen's pixel ratio
        assert page.get_attribute("#flow-canvas", "data-t") == "0.3500"
        shot("dpr2", on=page)
        page.click('#tabs a[data-view="metrics"]')
        _ready(page, "metrics")
        text = page.locator("#metrics-view").inner_text()
        assert "field_error" in text and "straightness" in text
        page.wait_for_selector("#kl-chart .main-svg", timeout=20_000)
        shot("metrics", on=page)
        assert not errors, errors
    finally:
        context.close()
