"""Names where the data has them: an image folder's class names in the map's legend and the inspector,
one colour per class, and the class not shown twice (as `class` and as `label`)."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import _serve

pytestmark = pytest.mark.slow

CLASSES = ["cat", "dog", "zebra"]


@pytest.fixture(scope="module")
def folder_server(tmp_path_factory):
    from PIL import Image

    from latentatlas.labs.vae.jobs import evaluate_run, train_run

    tmp = tmp_path_factory.mktemp("names")
    rng = np.random.default_rng(0)
    for c, cls in enumerate(CLASSES):
        (tmp / "pets" / cls).mkdir(parents=True)
        for i in range(20):
            img = np.clip(rng.normal(60 + 80 * c, 20, (16, 16)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(tmp / "pets" / cls / f"{i}.png")
    root = tmp / "atlas"
    run, _ = train_run("vae", str(tmp / "pets"), latent_dim=2, steps=20, batch_size=16, name="pets", atlas=str(root), progress=False)
    evaluate_run(run, n=60, projections=["pca"], progress=False)
    yield from _serve(root)


def test_class_names_in_the_legend_and_the_inspector(page, folder_server, shot, frontend):
    page.goto(f"{folder_server}/?run=pets&view=map&color=class")
    page.wait_for_selector("body[data-ready=map]")
    options = page.locator("#color-select option").all_inner_texts()
    assert "class" in options and "label" not in options  # one column for the class, not two
    page.wait_for_function("document.querySelectorAll('#map-legend span').length === 3")
    assert page.locator("#map-legend span").all_inner_texts() == CLASSES
    swatches = page.eval_on_selector_all("#map-legend span i", "els => els.map(e => getComputedStyle(e).backgroundColor)")
    assert len(set(swatches)) == 3  # one colour per class
    page.evaluate("() => window.latentatlas.select(0)")
    page.wait_for_selector("#inspect-latents")
    inspector = page.locator("#inspect-panel").inner_text()
    assert any(f"class {c}" in inspector for c in CLASSES), inspector
    shot()
    assert not page.console_errors, page.console_errors


@pytest.fixture(scope="module")
def embeddings_server(tmp_path_factory):
    import pandas as pd

    from latentatlas.labs.vae.jobs import import_embeddings

    tmp = tmp_path_factory.mktemp("emb")
    rng = np.random.default_rng(0)
    kinds = np.repeat(CLASSES, 40)
    x = rng.standard_normal((120, 16)).astype(np.float32) + 4 * (np.arange(120) // 40)[:, None]
    np.save(tmp / "vectors.npy", x)
    pd.DataFrame({"animal": kinds, "weight": rng.random(120)}).to_parquet(tmp / "meta.parquet")
    import_embeddings(str(tmp / "vectors.npy"), str(tmp / "meta.parquet"), name="emb", atlas=str(tmp / "atlas"))
    yield from _serve(tmp / "atlas")


def test_imported_embeddings_open_on_the_map(page, embeddings_server, shot, frontend):
    page.goto(f"{embeddings_server}/?run=emb")
    page.wait_for_selector("body[data-ready=map]")
    assert page.locator("#tabs a").all_inner_texts() == ["Map", "Metrics"]  # no decoder: no traversal
    page.wait_for_function("document.querySelectorAll('#map-legend span').length === 3")
    assert page.locator("#map-legend span").all_inner_texts() == CLASSES
    page.evaluate("() => window.latentatlas.select(0)")
    page.wait_for_selector("#neighbours-table tbody tr")
    assert page.locator("#inspect-panel img").count() == 0 and "animal cat" in page.locator("#inspect-panel").inner_text()
    shot()
    assert not page.console_errors, page.console_errors
