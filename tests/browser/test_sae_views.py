"""The SAE lab in a real (headless) Chromium: feature list, feature page, probe, steering, sweep frontier."""

from __future__ import annotations

import pytest

from .conftest import SAE_GPT2_RUN, SAE_RUN

pytestmark = pytest.mark.slow


def _ready(page, view):
    page.wait_for_selector(f'body[data-ready="{view}"]', timeout=30_000)


def _steer(page, alpha: str):
    """Move the α slider as a user would, press steer, and wait for the result."""
    page.evaluate("""a => { const s = document.getElementById('steer-alpha'); s.value = a;
                            s.dispatchEvent(new Event('input', {bubbles: true})); }""", alpha)
    page.click("#steer-run")
    page.wait_for_url(f"**alpha={alpha}**")
    _ready(page, "steer")


def test_feature_list_and_page(page, sae_server, shot, frontend):
    page.goto(f"{sae_server}/?run={SAE_RUN}")
    _ready(page, "features")
    assert page.locator("#tabs a.active").inner_text() == "Features"
    rows = page.locator("#feature-list tbody tr")
    assert rows.count() == 128
    # opens on the interpretability proxy ("focus"), highest first, with a sticky header
    focus = [float(rows.nth(i).locator("td").nth(1).inner_text().rstrip("%")) for i in range(5)]
    assert focus == sorted(focus, reverse=True)
    assert page.locator("#feature-list thead th").nth(1).inner_text().startswith("focus")
    assert page.eval_on_selector("#feature-list thead th", "th => getComputedStyle(th).position") == "sticky"
    # the first feature's page is open; click the third row to open its page
    third = rows.nth(2).get_attribute("data-feat")
    rows.nth(2).click()
    page.wait_for_url(f"**feat={third}**")
    page.wait_for_function("f => document.querySelector('#sae-right').dataset.feature === f", arg=third)
    _ready(page, "features")
    assert page.locator("#sae-right h2").inner_text() == f"Feature #{third}"
    assert page.locator("#feature-top .ctx").count() > 0
    assert page.locator("#feature-top .ctx .tok.focus").count() == page.locator("#feature-top .ctx").count()
    assert page.locator("svg.hist rect").count() == 32
    shot()
    # sort by max activation (click the header): ascending on a second click
    page.click("th[data-sort=max_act]")
    page.wait_for_url("**sort=max_act**")
    _ready(page, "features")
    page.click("th[data-sort=max_act]")
    page.wait_for_url("**order=asc**")
    _ready(page, "features")
    vals = [float(page.locator("#feature-list tbody tr").nth(i).locator("td").nth(2).inner_text()) for i in range(5)]
    assert vals == sorted(vals)
    # a neighbour chip opens that feature
    chip = page.locator("#feature-neighbours .chip").first
    target = chip.get_attribute("data-feat")
    chip.click()
    page.wait_for_function("f => document.querySelector('#sae-right').dataset.feature === f", arg=target)
    assert page.locator("#feature-logits").count() == 0  # an encoder has no unembedding
    assert not page.console_errors, page.console_errors


def test_causal_lm_feature_page_shows_the_logit_effect(page, sae_server, shot, frontend):
    page.goto(f"{sae_server}/?run={SAE_GPT2_RUN}&view=features&feat=3")
    _ready(page, "features")
    page.wait_for_function("() => document.querySelector('#sae-right').dataset.feature === '3'")
    logits = page.locator("#feature-logits")
    logits.scroll_into_view_if_needed()
    up = [float(v) for v in logits.locator("table").nth(0).locator("tbody td.num").all_inner_texts()]
    down = [float(v) for v in logits.locator("table").nth(1).locator("tbody td.num").all_inner_texts()]
    assert len(up) == len(down) == 10
    assert up == sorted(up, reverse=True) and down == sorted(down) and up[-1] > down[-1]
    shot(on=logits)
    assert not page.console_errors, page.console_errors


def test_probe_shows_tokens_and_shades_by_feature(page, sae_server, shot, frontend):
    page.goto(f"{sae_server}/?run={SAE_RUN}&view=probe")
    _ready(page, "probe")
    page.fill("#probe-text", "Open the file and read its lines.")
    page.click("#probe-run")
    page.wait_for_url("**text=Open**")
    _ready(page, "probe")
    toks = page.locator("#probe-tokens .tok")
    assert toks.first.inner_text() == "[CLS]" and "special" in toks.first.get_attribute("class")
    assert "file" in page.locator("#probe-tokens").inner_text()
    first = page.locator("#probe-features tbody tr").first
    fid = first.get_attribute("data-pf")
    first.click()
    page.wait_for_url(f"**pf={fid}**")
    _ready(page, "probe")
    shaded = page.locator("#probe-tokens .tok[style*=background]")
    assert shaded.count() >= 1
    page.locator("#probe-tokens .tok").nth(2).click()
    assert "#" in page.locator("#probe-token-detail").inner_text() or "no feature" in page.locator("#probe-token-detail").inner_text()
    shot()
    assert not page.console_errors, page.console_errors


def test_steer_moves_the_neighbours(page, sae_server, shot, frontend):
    page.goto(f"{sae_server}/?run={SAE_RUN}&view=features")
    _ready(page, "features")
    page.click("#steer-link")
    _ready(page, "steer")
    assert page.locator("#steer-feat").input_value() != ""
    _steer(page, "2")
    assert page.locator("#steer-before li").count() == 5 and page.locator("#steer-after li").count() == 5
    assert float(page.locator("#steer-cos").inner_text()) < 1.0
    # the steering-effect score against its random-direction control, and every strength with its cosine
    effect = page.locator("#steer-effect").inner_text()
    assert "percentile points" in effect and "random directions of the same norm" in effect, effect
    assert page.locator("#steer-dose tbody tr").count() == 5 and page.locator("#steer-dose tr.chosen").count() == 1
    assert "median activation norm" in page.locator("#steer-out").inner_text()
    shot()
    # the same with alpha 0 leaves the embedding where it was
    _steer(page, "0")
    assert page.locator("#steer-cos").inner_text() == "1.00"
    assert page.locator("#steer-before").inner_text() == page.locator("#steer-after").inner_text()
    assert not page.console_errors, page.console_errors


def test_sweep_frontier_view(page, sae_server, shot, frontend):
    page.goto(f"{sae_server}/?view=runs")
    _ready(page, "runs")
    page.click("#runs-table tr[data-run=sw]")
    _ready(page, "metrics")
    assert page.locator("#frontier-table tbody tr").count() == 2
    page.wait_for_selector("#frontier .main-svg")
    shot()
    page.click("#frontier-table tr[data-run=sw-k8]")
    _ready(page, "features")
    assert "run=sw-k8" in page.url
    assert not page.console_errors, page.console_errors


def test_search_features_by_activating_text(page, sae_server, shot, frontend):
    page.goto(f"{sae_server}/?run={SAE_RUN}&view=features")
    _ready(page, "features")
    page.fill("#feat-text", "Open the file and read its lines.")
    page.press("#feat-text", "Enter")
    page.wait_for_url("**ftext=**")
    _ready(page, "features")
    page.wait_for_selector("#feat-text-note")
    rows = page.locator("#feature-list tbody tr")
    assert rows.count() > 0
    maxes = [float(rows.nth(i).locator("td").nth(3).inner_text()) for i in range(min(5, rows.count()))]
    assert maxes == sorted(maxes, reverse=True)  # strongest on the text first
    shot()
    assert not page.console_errors, page.console_errors
