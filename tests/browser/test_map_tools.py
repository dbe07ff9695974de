"""The map's tools for Projector and latentscope users, in Chromium: nearest neighbours in the full latent
space with distances, the "neighbours kept" colour, a metadata filter, the lasso with its summary and
export, and a hover that names the row's factors."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import N_EVAL, RUN

pytestmark = pytest.mark.slow


def _map(page, server, query=""):
    page.goto(f"{server}/?run={RUN}&view=map{query}")
    page.wait_for_selector("body[data-ready=map]")
    page.wait_for_function("document.querySelector('#map').dataset.points !== undefined")


def test_neighbours_panel_lists_the_full_space_neighbours(page, server, shot, frontend, atlas_root):
    from latentatlas.atlas import Atlas

    _map(page, server, "&sel=5")
    page.wait_for_selector("#neighbours-table tbody tr")
    rows = page.locator("#neighbours-table tbody tr")
    assert rows.count() == 10
    got = [int(rows.nth(i).get_attribute("data-row")) for i in range(10)]
    dists = [float(rows.nth(i).locator("td").nth(1).inner_text()) for i in range(10)]
    assert dists == sorted(dists)
    # the same ten a brute-force cosine search over the stored latents finds
    mu = Atlas(atlas_root).run(RUN).read_latents("eval")[0]["mu"].astype(np.float64)
    cos = mu @ mu[5] / (np.linalg.norm(mu, axis=1) * np.linalg.norm(mu[5]))
    cos[5] = -np.inf
    assert got == np.argsort(-cos, kind="stable")[:10].tolist()
    assert "position" in page.locator("#neighbours-table thead").inner_text()
    shot()
    page.select_option("#nb-metric", "euclidean")
    page.wait_for_url("**metric=euclidean**")
    page.wait_for_function("document.querySelector('#nb-metric').value === 'euclidean'")
    euclid = np.linalg.norm(mu - mu[5], axis=1)
    euclid[5] = np.inf
    page.wait_for_function("n => document.querySelector('#neighbours-table tbody tr').dataset.row === String(n)",
                           arg=int(np.argmin(euclid)))
    page.locator("#neighbours-table tbody tr").nth(0).click()
    page.wait_for_url(f"**sel={int(np.argmin(euclid))}**")
    assert not page.console_errors, page.console_errors


def test_neighbours_kept_colour_filter_lasso_and_hover(page, server, shot, frontend, tmp_path):
    _map(page, server)
    options = page.locator("#color-select option").all_inner_texts()
    assert "neighbours kept (map)" in options
    page.select_option("#color-select", "neighbours kept (map)")
    page.wait_for_selector("#map-legend .scale")
    lo, hi = (float(b) for b in page.locator("#map-legend .scale b").all_inner_texts())
    assert 0 <= lo <= hi <= 1
    # filter by metadata: the status counts the points that match
    page.fill("#map-filter", "position < 3")
    page.press("#map-filter", "Enter")
    page.wait_for_url("**filter=**")
    page.wait_for_function("/ of \\d+ points match/.test(document.querySelector('#map-status').textContent)")
    status = page.locator("#map-status").inner_text()
    matched = int(status.split(" of ")[0].replace(",", ""))
    assert 0 < matched < N_EVAL
    page.fill("#map-filter", "colour = red")
    page.press("#map-filter", "Enter")
    page.wait_for_function("document.querySelector('#map-filter').validationMessage.includes('no column')")
    page.fill("#map-filter", "")
    page.press("#map-filter", "Enter")
    # lasso: shift-drag a box around the middle of the map
    box = page.locator("#map").bounding_box()
    cx, cy, w, h = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, box["width"], box["height"]
    page.keyboard.down("Shift")
    page.mouse.move(cx - 0.45 * w, cy - 0.45 * h)
    page.mouse.down()
    for x, y in ((cx + 0.45 * w, cy - 0.45 * h), (cx + 0.45 * w, cy + 0.45 * h), (cx - 0.45 * w, cy + 0.45 * h)):
        page.mouse.move(x, y, steps=5)
    page.mouse.up()
    page.keyboard.up("Shift")
    page.wait_for_selector("#lasso-panel:not([hidden]) #lasso-count")
    count = int(page.locator("#lasso-count").inner_text().replace(",", ""))
    assert 0 < count <= N_EVAL
    assert "position" in page.locator("#lasso-summary").inner_text()
    with page.expect_download() as dl:
        page.click("#lasso-export")
    csv = (tmp_path / "lasso.csv")
    dl.value.save_as(csv)
    lines = csv.read_text().strip().splitlines()
    assert lines[0].startswith("row,") and "position" in lines[0] and len(lines) == count + 1
    shot()
    # hover names the row and its factors
    sp = page.evaluate("() => { const m = window.latentatlas.map; const [x, y] = m.toPx(m.xy[0], m.xy[1]);"
                       " const r = m.host.getBoundingClientRect(); return [r.left + x, r.top + y]; }")
    page.mouse.move(*sp)
    page.wait_for_selector("#hover-info:not([hidden])")
    text = page.locator("#hover-info").inner_text()
    assert "row" in text and "position" in text and "width" in text, text
    assert not page.console_errors, page.console_errors


def test_tsne_with_a_chosen_perplexity_is_computed_in_the_background_and_kept(page, server, shot, frontend, atlas_root):
    from latentatlas.atlas import Atlas

    _map(page, server, "&proj=tsne&pp=7&pm=cosine")
    assert page.locator("#proj-pp").is_visible() and not page.locator("#proj-nn").is_visible()
    assert page.locator("#proj-pp").input_value() == "7" and page.locator("#proj-pm").input_value() == "cosine"
    page.wait_for_function(f"document.querySelector('#map').dataset.points === '{N_EVAL}'", timeout=60_000)
    stored = Atlas(atlas_root).run(RUN).read_projection("eval-tsne-cosine-pp7")
    assert stored is not None and stored[1]["settings"] == {"perplexity": 7.0, "metric": "cosine"}
    assert stored[1]["params"]["perplexity"] == 7.0 and stored[1]["params"]["metric"] == "cosine"
    shot()
    # the one 404 is the designed first answer for a projection not computed yet (it names the POST that computes it)
    others = [e for e in page.console_errors if "status of 404" not in e]
    assert len(page.console_errors) - len(others) <= 1 and not others, page.console_errors


def test_the_metrics_view_shows_the_eval_figures(page, server, shot, frontend):
    page.goto(f"{server}/?run={RUN}&view=metrics")
    page.wait_for_selector("body[data-ready=metrics]")
    page.wait_for_selector("#figures-card figure")
    n = page.locator("#figures-card figure").count()
    assert n >= 3
    page.wait_for_function("[...document.querySelectorAll('#figures-card img')].every(i => i.complete && i.naturalWidth > 0)")
    captions = page.locator("#figures-card figcaption").all_inner_texts()
    assert any("training curves" in c for c in captions), captions
    shot()
    assert not page.console_errors, page.console_errors
