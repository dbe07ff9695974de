"""The ablation view in a real (headless) Chromium: the chart draws one bar per module sorted by effect,
with whiskers; the metric and ablation selectors redraw it; module names from the atlas stay text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import _serve

pytestmark = pytest.mark.slow
SHOTS = Path("/tmp/shots")
HOSTILE = '<img src=x onerror="window.pwned=1">'


@pytest.fixture(scope="module")
def ablation_server(tmp_path_factory):
    import torch

    from latentatlas.atlas import Atlas
    from latentatlas.labs.attention import ablate as A
    from latentatlas.models.sd_vae import SDVAEConfig

    torch.manual_seed(0)
    atlas = Atlas(tmp_path_factory.mktemp("ablation-atlas"))
    run = A.train_sdvae(atlas, "sd", steps=2, batch_size=4, progress=False,
                        config=SDVAEConfig(sample_size=16, block_out_channels=(8, 8), norm_num_groups=4))
    target = A.target_of_run(run)
    batch = A.make_batch(target, n=8)
    skip = A.ablate(target, "sweep", "skip", batch, num_resamples=50, figure=False)
    zero = A.ablate(target, "sweep", "zero", batch, num_resamples=50, figure=False)
    # a hand-edited report whose module name is markup: it must reach the page as text
    hostile = json.loads(json.dumps(zero))
    hostile["id"] = "0123456789ab"
    hostile["created_at"] = "2000-01-01T00:00:00+00:00"
    hostile["rows"][0]["module"] = HOSTILE
    run.file("ablation", "0123456789ab.json").write_text(json.dumps(hostile))
    for base in _serve(atlas.root):
        yield base, skip, zero


def _ready(page):
    page.wait_for_selector('body[data-ready="ablation"]', timeout=30_000)


def _painted(page) -> int:
    """Pixels of the chart in either bar colour."""
    return page.evaluate("""() => {
        const c = document.getElementById('ablation-chart'), g = c.getContext('2d');
        const d = g.getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let i = 0; i < d.length; i += 4) {
          const [r, gg, b] = [d[i], d[i + 1], d[i + 2]];
          if ((Math.abs(r - 0x3b) < 8 && Math.abs(gg - 0x6e) < 8 && Math.abs(b - 0xa8) < 8) ||
              (Math.abs(r - 0xd1) < 8 && Math.abs(gg - 0x60) < 8 && Math.abs(b - 0x3d) < 8)) n++;
        }
        return n; }""")


def test_ablation_chart_draws_sorted_by_effect(page, ablation_server, shot, frontend):
    base, skip, zero = ablation_server
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(f"{base}/?run=sd&view=ablation&abl={skip['id']}")
    _ready(page)
    assert page.locator("#tabs a").all_inner_texts() == ["Ablation", "Metrics"]
    chart = page.locator("#ablation-chart")
    n = len(skip["rows"])
    assert chart.get_attribute("data-rows") == str(n)
    order = chart.get_attribute("data-order").split("\n")
    assert order == [r["module"] for r in skip["rows"]]  # largest MSE on top, as the job sorted them
    assert _painted(page) > 40 * n  # every module has a bar
    assert page.locator("#ablation-table tbody tr").count() == n + len(skip["refused"])
    assert "decoder.mid_block.attentions.0" in page.locator("#ablation-notes").inner_text()  # beside its ResNet
    page.screenshot(path=str(SHOTS / "ablation-skip.png"), full_page=True)
    shot("skip")
    # PSNR falls as MSE rises: sorted ascending, the same modules keep their places
    page.select_option("#ablation-metric", "psnr")
    page.wait_for_url("**ametric=psnr**")
    _ready(page)
    assert page.locator("#ablation-chart").get_attribute("data-order").split("\n") == order
    page.screenshot(path=str(SHOTS / "ablation-psnr.png"), full_page=True)
    # another ablation of the run
    page.select_option("#ablation-select", zero["id"])
    page.wait_for_url(f"**abl={zero['id']}**")
    _ready(page)
    assert page.locator("#ablation-chart").get_attribute("data-rows") == str(len(zero["rows"]))
    assert page.locator("#ablation-metric").input_value() == "mse"
    page.screenshot(path=str(SHOTS / "ablation-zero.png"), full_page=True)
    # the run's other tab: its training history (an SD-VAE run has no attention samples to load)
    page.click("#tabs a[data-view=metrics]")
    page.wait_for_selector('body[data-ready="metrics"]', timeout=30_000)
    page.screenshot(path=str(SHOTS / "ablation-metrics-tab.png"), full_page=True)
    assert not page.console_errors


def test_module_names_from_the_atlas_stay_text(page, ablation_server, frontend):
    base, _, _ = ablation_server
    page.goto(f"{base}/?run=sd&view=ablation&abl=0123456789ab")
    _ready(page)
    assert page.locator("#ablation-table img").count() == 0 and not page.evaluate("window.pwned === 1")
    assert page.locator("#ablation-table tbody tr td").first.inner_text() == HOSTILE or HOSTILE in page.locator("#ablation-table").inner_text()
    page.screenshot(path=str(SHOTS / "ablation-hostile.png"), full_page=True)
