"""The explorer in a real (headless) Chromium: the API first, then the front end's contract.

Front-end contract (set by the lead's static app):
- ``/?run=r&view=map``: ``#map`` holds a Plotly plot and gets ``data-points="<n>"`` once drawn.
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
    # Plotly marks the node it draws into: #map itself (Plotly.react(#map)) or a child of it
    page.wait_for_selector("#map.js-plotly-plot, #map .js-plotly-plot")
    page.wait_for_selector(f'#map[data-points="{N_EVAL}"]')
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

    page.click("#traverse-reset")
    page.wait_for_function("src0 => document.querySelector('#traverse-image').getAttribute('src') === src0", arg=src0)
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
