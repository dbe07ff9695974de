"""A run whose files carry HTML (factor names from an .npz, metric names and notes in metrics.json, the
steps in config.json) opens in the explorer without running any of it: every name reaches the page as
text, and the Content-Security-Policy would stop inline script even if one slipped through."""

from __future__ import annotations

import json

import numpy as np
import pytest

from .conftest import _serve

pytestmark = pytest.mark.slow

PAYLOADS = [
    '<img src=x onerror="window.__pwned=1">',
    '"><script>window.__pwned=2</script>',
    "</option><svg onload=window.__pwned=3>",
]


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory, bars):
    from latentatlas.labs.vae.jobs import evaluate_run, train_run

    tmp = tmp_path_factory.mktemp("hostile")
    x, factors = bars.make(256, positions=8, widths=3, size=16)
    npz = tmp / "hostile.npz"
    np.savez(npz, x=x, factors=factors, factor_names=np.array(PAYLOADS[:2]))
    root = tmp / "atlas"
    run, _ = train_run("vae", str(npz), latent_dim=3, steps=20, batch_size=16, name="h", atlas=str(root), progress=False)
    evaluate_run(run, n=100, projections=["pca"], progress=False)
    metrics_path = run.path / "metrics.json"
    report = json.loads(metrics_path.read_text())
    report["notes"] = [PAYLOADS[2]]
    metrics_path.write_text(json.dumps(report))
    # and a run whose config is not even JSON, whose name is fine but whose kind would be markup
    import shutil

    shutil.copytree(run.path, root / "runs" / "broken")
    (root / "runs" / "broken" / "config.json").write_text('{"name": "broken", "kind": "<img src=x onerror=window.__pwned=4>"}')
    yield from _serve(root)


def _no_script_ran(page):
    assert page.evaluate("window.__pwned === undefined"), page.evaluate("window.__pwned")


def test_hostile_factor_names_are_text_on_the_map(page, hostile_server, shot, frontend):
    failed = []
    page.on("response", lambda r: failed.append((r.status, r.url)) if r.status >= 400 else None)
    page.goto(f"{hostile_server}/?run=h&view=map&color={PAYLOADS[0]}")
    page.wait_for_selector("body[data-ready=map]")
    options = page.locator("#color-select option").all_inner_texts()
    assert PAYLOADS[0] in options and PAYLOADS[1] in options
    page.select_option("#color-select", PAYLOADS[1])
    page.wait_for_function("document.querySelector('#map-legend span') !== null")
    assert page.locator("#map-legend img, #map-legend script, #map-legend svg").count() == 0
    page.select_option("#color-select", PAYLOADS[0])
    page.wait_for_function("document.querySelector('#map-legend span') !== null")
    page.evaluate("() => window.latentatlas.select(3)")
    page.wait_for_selector("#inspect-latents")
    inspector = page.locator("#inspect-panel").inner_text()
    assert PAYLOADS[0] in inspector and PAYLOADS[1] in inspector
    assert page.locator("#inspect-panel img[src=x], #inspect-panel script").count() == 0
    shot()
    _no_script_ran(page)
    assert not failed, failed  # a name with '/' or quotes still fetches its column
    assert not page.console_errors, page.console_errors


def test_hostile_notes_are_text_in_the_metrics_view(page, hostile_server, shot, frontend):
    page.goto(f"{hostile_server}/?run=h&view=metrics")
    page.wait_for_selector("body[data-ready=metrics]")
    assert PAYLOADS[2] in page.locator("#metrics-view").inner_text()
    assert page.locator("#metrics-view svg[onload]").count() == 0
    shot()
    _no_script_ran(page)


def test_a_bad_run_is_listed_as_bad_and_the_others_open(page, hostile_server, shot, frontend):
    page.goto(f"{hostile_server}/?view=runs")
    page.wait_for_selector("body[data-ready=runs]")
    rows = {tr.locator("td").first.inner_text(): tr for tr in page.locator("#runs-table tbody tr").all()}
    assert set(rows) == {"h", "broken"}
    assert rows["broken"].locator("td.status").inner_text() == "bad" and rows["h"].locator("td.status").inner_text() == "evaluated"
    assert "run config" in page.locator(".run-error").inner_text() and "is invalid at kind" in page.locator(".run-error").inner_text()
    shot()
    rows["h"].click()
    page.wait_for_selector("body[data-ready=map]")
    _no_script_ran(page)


def test_the_policy_blocks_inline_script_even_if_markup_got_in(page, hostile_server):
    """Belt and braces: markup injected by hand (as a missed escape would) does not run."""
    page.goto(f"{hostile_server}/?view=runs")
    page.wait_for_selector("body[data-ready=runs]")
    page.evaluate("""() => { const d = document.createElement('div');
        d.innerHTML = '<img src=x onerror="window.__pwned=9">';
        document.body.append(d);
        const s = document.createElement('script'); s.textContent = 'window.__pwned = 10'; document.body.append(s); }""")
    page.wait_for_timeout(300)
    _no_script_ran(page)
