"""The explorer in a real (headless) Chromium: the API first, then the front end's contract.

Front-end contract (set by the lead's static app):
- ``/?run=r&view=map``: ``#map`` holds the scatter's canvases and gets ``data-points="<n>"`` once drawn;
  ``data-renderer`` says ``webgl`` (or ``canvas2d`` with ``gl=0`` in the URL). ``window.latentatlas.map``
  is the scatter: ``screenOf(row)`` gives a point's client coordinates, ``view`` its visible data range.
- ``window.latentatlas.select(row)`` selects a row: ``#inspect-input`` / ``#inspect-recon`` images,
  ``#inspect-latents`` one row per latent dim, ``sel=<row>`` in the URL.
- ``view=traverse``: ``input.dim-slider[data-dim]`` per dim drive ``#traverse-image``; ``#traverse-reset``.
- ``view=interp&a=&b=&method=&steps=``: ``#interp-strip`` image.
"""

from __future__ import annotations

import pytest

from .conftest import LATENT_DIM, N_EVAL, RUN

pytestmark = pytest.mark.slow


def _img_loaded(page, selector: str) -> None:
    """Wait until the <img> at ``selector`` has finished loading a real image."""
    page.wait_for_function(
        """sel => { const el = document.querySelector(sel);
                    return el && el.tagName === 'IMG' && el.complete && el.naturalWidth > 0; }""",
        arg=selector,
    )


def _latent_rows(page):
    """The rows of ``#inspect-latents``: table rows when it is a table, else its child elements."""
    rows = page.locator("#inspect-latents tbody tr")
    if rows.count() == 0:
        rows = page.locator("#inspect-latents tr")
    if rows.count() == 0:
        rows = page.locator("#inspect-latents > *")
    return rows


def _first_latent_value(page) -> str:
    return _latent_rows(page).first.inner_text().strip()


def _assert_local_only(page, base: str) -> None:
    outside = [u for u in page.requests if not (u.startswith(base + "/") or u == base or u.startswith("data:")
                                                 or u.startswith("blob:"))]
    assert not outside, f"requests left {base}: {outside}"


# -- API alone ----------------------------------------------------------------------------------------------

def test_api_runs_in_browser(page, server, shot):
    resp = page.goto(server + "/api/runs")
    assert resp is not None and resp.status == 200
    assert [r["name"] for r in resp.json()] == [RUN]
    # Chromium shows the JSON as text (its viewer adds a "Pretty-print" box, so match, don't parse)
    assert '"name":"r"' in page.locator("body").inner_text().replace(" ", "")
    shot()
    _assert_local_only(page, server)


def test_api_reconstruction_png_in_browser(page, server):
    page.goto(f"{server}/api/runs/{RUN}/reconstruction/5.png")
    _img_loaded(page, "img")


# -- front end ----------------------------------------------------------------------------------------------

def test_map_draws_points(page, server, shot, frontend):
    page.goto(f"{server}/?run={RUN}&view=map")
    page.wait_for_selector(f'#map[data-points="{N_EVAL}"]')
    assert page.locator("#map").get_attribute("data-renderer") == "webgl"
    # the points are really on the canvas: count non-transparent pixels of the WebGL layer
    painted = page.evaluate("""() => { const c = document.querySelector('#map canvas.scatter-points');
        const gl = c.getContext('webgl'); const px = new Uint8Array(c.width * c.height * 4);
        gl.readPixels(0, 0, c.width, c.height, gl.RGBA, gl.UNSIGNED_BYTE, px);
        let n = 0; for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++; return n; }""")
    assert painted > N_EVAL, f"only {painted} pixels painted for {N_EVAL} points"
    # Plotly is not loaded for the map (it is only for the metrics view's charts)
    assert not any("plotly" in u for u in page.requests)
    shot()
    assert not page.console_errors, page.console_errors
    _assert_local_only(page, server)


def test_select_point_inspects_it(page, server, shot, frontend):
    page.goto(f"{server}/?run={RUN}&view=map")
    page.wait_for_selector(f'#map[data-points="{N_EVAL}"]')
    page.wait_for_function("() => window.latentatlas && typeof window.latentatlas.select === 'function'")
    page.evaluate("() => window.latentatlas.select(5)")
    _img_loaded(page, "#inspect-input")
    _img_loaded(page, "#inspect-recon")
    page.wait_for_function(
        """n => { const el = document.querySelector('#inspect-latents');
                  if (!el) return false;
                  let rows = el.querySelectorAll('tbody tr');
                  if (!rows.length) rows = el.querySelectorAll('tr');
                  if (!rows.length) rows = el.children;
                  return rows.length === n; }""",
        arg=LATENT_DIM,
    )
    assert _latent_rows(page).count() == LATENT_DIM
    page.wait_for_url("**sel=5**")
    shot()
    assert not page.console_errors, page.console_errors
    _assert_local_only(page, server)


def test_reload_from_copied_url_keeps_selection(page, server, shot, frontend):
    page.goto(f"{server}/?run={RUN}&view=map")
    page.wait_for_selector(f'#map[data-points="{N_EVAL}"]')
    page.wait_for_function("() => window.latentatlas && typeof window.latentatlas.select === 'function'")
    page.evaluate("() => window.latentatlas.select(5)")
    page.wait_for_url("**sel=5**")
    page.wait_for_function("() => document.querySelectorAll('#inspect-latents tr, #inspect-latents > *').length > 0")
    first = _first_latent_value(page)
    url = page.url

    other = page.context.new_page()
    other.requests = []
    other.on("request", lambda req: other.requests.append(req.url))
    other.goto(url)
    other.wait_for_selector(f'#map[data-points="{N_EVAL}"]')
    other.wait_for_function("() => document.querySelectorAll('#inspect-latents tr, #inspect-latents > *').length > 0")
    _img_loaded(other, "#inspect-recon")
    assert "sel=5" in other.url
    assert _first_latent_value(other) == first
    shot("reloaded", on=other)
    _assert_local_only(other, server)


def test_traverse_slider_changes_image(page, server, shot, frontend):
    page.goto(f"{server}/?run={RUN}&view=traverse&sel=5")
    sliders = page.locator("input.dim-slider")
    sliders.first.wait_for()
    assert sliders.count() == LATENT_DIM
    assert sorted(int(sliders.nth(i).get_attribute("data-dim")) for i in range(LATENT_DIM)) == list(range(LATENT_DIM))
    _img_loaded(page, "#traverse-image")
    img = page.locator("#traverse-image")
    src0 = img.get_attribute("src")
    # the traversed code is marked on the map: from row 5, unmoved, the nearest stored row is row 5
    page.wait_for_function("document.querySelector('#map').dataset.traversed === '5'")
    before = img.screenshot()
    shot("before")

    # range inputs cannot be `fill`ed: set the value to the far end and fire the events a user would
    page.evaluate(
        """() => { const s = document.querySelector('input.dim-slider[data-dim="0"]');
                   const lo = parseFloat(s.min), hi = parseFloat(s.max), v = parseFloat(s.value);
                   s.value = String(Math.abs(hi - v) >= Math.abs(v - lo) ? hi : lo);
                   s.dispatchEvent(new Event('input', {bubbles: true}));
                   s.dispatchEvent(new Event('change', {bubbles: true})); }"""
    )
    page.wait_for_function("src0 => document.querySelector('#traverse-image').getAttribute('src') !== src0", arg=src0)
    _img_loaded(page, "#traverse-image")
    page.wait_for_timeout(100)
    after = img.screenshot()
    shot("after")
    assert after != before, "the traversal image's pixels did not change when the slider moved"

    moved = page.evaluate("document.querySelector('#map').dataset.traversed")
    assert moved.isdigit() and 0 <= int(moved) < N_EVAL
    page.click("#traverse-reset")
    page.wait_for_function("src0 => document.querySelector('#traverse-image').getAttribute('src') === src0", arg=src0)
    page.wait_for_function("document.querySelector('#map').dataset.traversed === '5'")
    _img_loaded(page, "#traverse-image")
    assert not page.console_errors, page.console_errors
    _assert_local_only(page, server)


def test_interpolation_strip(page, server, shot, frontend):
    page.goto(f"{server}/?run={RUN}&view=interp&a=1&b=7&method=slerp&steps=8")
    page.wait_for_selector("#interp-strip")
    _img_loaded(page, "#interp-strip")
    assert "method=slerp" in page.locator("#interp-strip").get_attribute("src")
    shot()
    assert not page.console_errors, page.console_errors
    _assert_local_only(page, server)


def test_api_docs_offline(page, server, shot):
    """Swagger UI at /docs renders the API from local assets only (no CDN)."""
    page.goto(server + "/docs")
    # wait for either outcome: operations drawn, or Swagger UI's own refusal
    page.wait_for_function("""() => document.querySelector('.swagger-ui .opblock')
                                    || (document.querySelector('.swagger-ui') || {innerText: ''}).innerText
                                       .includes('Unable to render')""")
    shot()
    _assert_local_only(page, server)
    assert page.locator(".swagger-ui .opblock").count() > 0, page.locator(".swagger-ui").inner_text()[:300]


# -- the map's own interaction: real mouse events on the scatter -------------------------------------------

def _open_map(page, server, extra: str = ""):
    page.goto(f"{server}/?run={RUN}&view=map{extra}")
    page.wait_for_selector(f'#map[data-points="{N_EVAL}"]')


def _isolated_row(page) -> int:
    """A row whose nearest on-screen neighbour is more than 10 px away, so the mouse can only mean it."""
    return page.evaluate("""() => { const m = window.latentatlas.map; let best = null, gap = 0;
        const pts = []; for (let i = 0; i < m.n; i++) pts.push(m.screenOf(i));
        for (let i = 0; i < m.n; i++) { let d = Infinity;
          for (let j = 0; j < m.n; j++) if (j !== i) d = Math.min(d, Math.hypot(pts[i].x - pts[j].x, pts[i].y - pts[j].y));
          if (d > gap) { gap = d; best = i; } }
        if (gap <= 10) throw new Error('no isolated point: closest gap ' + gap); return best; }""")


def test_hover_shows_thumbnail_of_the_point(page, server, shot, frontend):
    _open_map(page, server)
    row = _isolated_row(page)
    at = page.evaluate("r => window.latentatlas.map.screenOf(r)", row)
    page.mouse.move(at["x"] + 2, at["y"] - 1)
    page.wait_for_selector("#hover-thumb:not([hidden])")
    assert page.locator("#hover-thumb").get_attribute("src").endswith(f"/input/{row}.png")
    _img_loaded(page, "#hover-thumb")
    shot()
    page.mouse.move(5, 5)  # off the map: the thumbnail goes away
    page.wait_for_selector("#hover-thumb", state="hidden")
    assert not page.console_errors, page.console_errors


def test_click_on_a_point_selects_it(page, server, shot, frontend):
    _open_map(page, server)
    row = _isolated_row(page)
    at = page.evaluate("r => window.latentatlas.map.screenOf(r)", row)
    page.mouse.click(at["x"], at["y"])
    page.wait_for_url(f"**sel={row}**")
    _img_loaded(page, "#inspect-input")
    assert page.locator("#inspect-input").get_attribute("src").endswith(f"/input/{row}.png")
    shot()


def test_drag_pans_and_wheel_zooms(page, server, frontend):
    _open_map(page, server)
    row = _isolated_row(page)
    a = page.evaluate("r => window.latentatlas.map.screenOf(r)", row)
    box = page.locator("#map").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 40, cy + 25, steps=5)
    page.mouse.up()
    page.wait_for_timeout(50)
    b = page.evaluate("r => window.latentatlas.map.screenOf(r)", row)
    assert abs(b["x"] - a["x"] - 40) < 1.5 and abs(b["y"] - a["y"] - 25) < 1.5, (a, b)
    assert "sel=" not in page.url  # a drag is not a click
    width0 = page.evaluate("() => window.latentatlas.map.view.x1 - window.latentatlas.map.view.x0")
    page.mouse.wheel(0, -300)  # wheel up: zoom in around the cursor
    page.wait_for_function("w => window.latentatlas.map.view.x1 - window.latentatlas.map.view.x0 < 0.8 * w", arg=width0)
    page.mouse.dblclick(cx, cy)  # double-click: back to the full extent
    page.wait_for_function("w => Math.abs((window.latentatlas.map.view.x1 - window.latentatlas.map.view.x0) - w) < 1e-6 * Math.abs(w)",
                           arg=width0)


def test_canvas_fallback_draws_points(page, server, shot, frontend):
    """Without WebGL (forced with gl=0) the points are rasterised into the 2-D canvas instead."""
    _open_map(page, server, "&gl=0")
    assert page.locator("#map").get_attribute("data-renderer") == "canvas2d"
    painted = page.evaluate("""() => { const c = document.querySelector('#map canvas.scatter-points');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""")
    assert painted > N_EVAL, painted
    shot()


def test_colour_by_latent_dim_shows_scale(page, server, shot, frontend):
    _open_map(page, server, "&color=z0")
    page.wait_for_selector("#map-legend .scale")
    assert "z0" in page.locator("#map-legend").inner_text()
    shot()
    assert not page.console_errors, page.console_errors


def test_metrics_view_draws_charts(page, server, shot, frontend):
    page.goto(f"{server}/?run={RUN}&view=metrics")
    page.wait_for_selector("#metrics-table tbody tr")
    page.wait_for_selector("#curves .main-svg")  # Plotly, loaded on first use, drew the training curves
    shot()
    assert not page.console_errors, page.console_errors
    _assert_local_only(page, server)
