"""The attention lab in a real (headless) Chromium on a 4,096-token input to a tiny random Llama with
grouped-query attention: the head view (lines, hover filter, scrolling a virtualised column), the model view
(click to enlarge), the matrix view (wheel zoom), the neuron view (recomputed softmax) and the head atlas
(click a head). Tokens with markup in them are shown as text."""

from __future__ import annotations

import time

import numpy as np
import pytest

from .conftest import _serve

pytestmark = pytest.mark.slow

RUN = "llama"
N_TOKENS = 4096
HOSTILE = '<img src=x onerror="window.__pwned=1">'


def write_tiny_llama(folder, tokenizer_from, positions: int = 8192):
    """A 2-layer Llama (4 query heads over 2 key/value heads, rotary) with the tiny GPT-2's byte-level BPE."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast.from_pretrained(tokenizer_from)
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=positions, bos_token_id=fast.bos_token_id,
                      eos_token_id=fast.eos_token_id)
    LlamaForCausalLM(cfg).save_pretrained(folder, safe_serialization=True)
    return folder, fast


@pytest.fixture(scope="module")
def att(tmp_path_factory, tiny_tf):
    from latentatlas.atlas import Atlas
    from latentatlas.labs.attention import jobs

    root = tmp_path_factory.mktemp("attention-browser")
    folder, tok = write_tiny_llama(root / "llama", tiny_tf["gpt2"])
    # exactly N_TOKENS tokens: whole words added until the count is reached, then the ids decoded back
    words = ("the quick brown fox jumps over the lazy dog and reads the file " * 800).split()
    ids = tok(" ".join(words), add_special_tokens=False)["input_ids"]
    ids = ids[: N_TOKENS - len(tok(HOSTILE + " ", add_special_tokens=False)["input_ids"])]
    text = HOSTILE + " " + tok.decode(ids)
    atlas = Atlas(root / "atlas")
    subject, run = jobs.resolve(str(folder), atlas)
    meta = jobs.show(subject, run, text, progress=False)
    small = jobs.show(subject, run, "Open the file, read its lines, and close it again.", progress=False)
    jobs.heads(subject, run, corpus=tiny_tf["corpus"], tokens=300, progress=False)
    # a short induction run (too short for the phase change, long enough for its charts)
    jobs.train_induction(atlas, name="ind", steps=150, log_every=10, progress=False, heads_tokens=1000)
    return {"root": atlas.root, "run": run.name, "meta": meta, "small": small}


@pytest.fixture(scope="module")
def att_server(att):
    yield from _serve(att["root"])


def _ready(page, view, timeout=30_000):
    page.wait_for_selector(f'body[data-ready="{view}"]', timeout=timeout)


def _open(page, base, att, view, **params):
    q = "&".join(f"{k}={v}" for k, v in {"run": att["run"], "view": view, "sample": att["meta"]["id"], **params}.items())
    t0 = time.perf_counter()
    page.goto(f"{base}/?{q}")
    _ready(page, view)
    return time.perf_counter() - t0


def test_long_input_is_4096_tokens(att):
    meta = att["meta"]
    assert abs(meta["n_tokens"] - N_TOKENS) <= 4
    assert meta["source"] == "attend" and meta["n_heads"] == 4 and meta["n_layers"] == 2


def test_head_view_draws_hovers_and_scrolls(page, att_server, att, shot, frontend):
    elapsed = _open(page, att_server, att, "head")
    page.wait_for_function("() => Number(document.querySelector('#head-canvas').dataset.lines || 0) > 0")
    assert elapsed < 20, f"the head view took {elapsed:.1f} s to render {att['meta']['n_tokens']} tokens"
    all_lines = int(page.get_attribute("#head-canvas", "data-lines"))
    assert page.locator(".head-chip").count() == 4
    shot("all")
    # hover the fifth query token: only its lines are drawn
    box = page.locator("#head-canvas").bounding_box()
    page.mouse.move(box["x"] + 40, box["y"] + 4 * 18 + 9)
    page.wait_for_function("() => document.querySelector('#head-canvas').dataset.hover === 'q4'")
    hovered = int(page.get_attribute("#head-canvas", "data-lines"))
    assert 0 < hovered < all_lines
    shot("hover")
    # jump far into the text: the virtualised columns show tokens around 3,000 and draw their lines
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] + 40)
    page.fill("#head-jump", "3000")
    page.press("#head-jump", "Enter")
    page.wait_for_function("() => /queries 3000–/.test(document.querySelector('#head-status').textContent)")
    page.wait_for_function("() => Number(document.querySelector('#head-canvas').dataset.lines || 0) > 0")
    # scrolling the key column moves it alone
    page.mouse.move(box["x"] + box["width"] - 40, box["y"] + 100)
    page.mouse.wheel(0, 18 * 10)
    page.wait_for_function("() => /keys 3010–/.test(document.querySelector('#head-status').textContent)")
    assert "queries 3000–" in page.inner_text("#head-status")
    # a head chip turns that head off
    page.click(".head-chip[data-head='0']")
    page.wait_for_url("**heads=1%2C2%2C3**")
    shot("scrolled")
    assert not page.evaluate("() => window.__pwned === 1")
    assert page.console_errors == []


def test_hostile_token_is_text(page, att_server, att, frontend):
    _open(page, att_server, att, "head")
    # the sample picker lists the text as text; nothing from it became an element
    opts = page.locator("#att-sample option").all_inner_texts()
    assert any(o.startswith(HOSTILE[:20]) for o in opts)
    assert page.locator("img").count() == 0 and not page.evaluate("() => window.__pwned === 1")


def test_model_view_click_enlarges(page, att_server, att, shot, frontend):
    _open(page, att_server, att, "model")
    assert page.locator("#model-grid .thumb").count() == 2 * 4
    shot()
    page.locator("#model-grid .thumb").nth(5).click()  # layer 1, head 1
    page.wait_for_url("**view=matrix**")
    _ready(page, "matrix")
    assert "layer=1" in page.url and "head=1" in page.url


def test_matrix_view_zooms(page, att_server, att, shot, frontend):
    _open(page, att_server, att, "matrix", layer=0, head=2)
    cv = page.locator("#matrix-canvas")
    whole = cv.get_attribute("data-cells")
    shot("whole")
    box = cv.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.1, box["y"] + box["height"] * 0.1)
    for _ in range(3):  # each step halves the window; wait for the redraw before the next
        before = page.evaluate("() => location.search")
        page.mouse.wheel(0, -100)
        page.wait_for_function("b => location.search !== b", arg=before)
        _ready(page, "matrix")
    zoomed = page.get_attribute("#matrix-canvas", "data-cells")
    r0, r1, c0, c1 = map(int, page.evaluate("() => new URLSearchParams(location.search).get('zoom')").split(","))
    assert r1 - r0 <= N_TOKENS // 8 + 1 and zoomed != whole
    shot("zoomed")
    page.mouse.move(box["x"] + 20, box["y"] + 20)
    assert "query" in page.inner_text("#matrix-hover")


def test_neuron_view_recomputes_softmax(page, att_server, att, shot, frontend):
    _open(page, att_server, att, "neuron", layer=1, head=3, query=2000)
    cv = page.locator("#neuron-canvas")
    assert int(cv.get_attribute("data-keys")) == att["meta"]["n_tokens"]
    assert abs(float(cv.get_attribute("data-sum")) - 1) < 1e-3
    # the top key is the most attended key of the stored row (causal: at most the query itself)
    from safetensors import safe_open

    path = att["root"] / "runs" / att["run"] / "attention" / "samples" / att["meta"]["id"] / "probs.safetensors"
    with safe_open(str(path), "pt") as f:
        row = f.get_slice("layer.1")[3:4, 2000:2001, :].float().numpy()[0, 0]
    top = int(cv.get_attribute("data-top"))
    assert top <= 2000 and abs(row[top] - row.max()) < 2e-3
    shot()


def test_head_atlas_opens_a_head(page, att_server, att, shot, frontend):
    page.goto(f"{att_server}/?run={att['run']}&view=atlas")
    _ready(page, "atlas")
    lo, hi = map(float, page.get_attribute("#atlas-grid", "data-range").split(","))
    assert np.isfinite(lo) and hi >= lo
    shot()
    box = page.locator("#atlas-grid").bounding_box()
    page.mouse.click(box["x"] + 40 + 5, box["y"] + 24 + 5)  # layer 0, head 0
    page.wait_for_url("**view=matrix**")
    _ready(page, "matrix")
    assert "layer=0" in page.url and "head=0" in page.url


def test_induction_metrics_chart(page, att_server, att, shot, frontend):
    page.goto(f"{att_server}/?run=ind&view=metrics")
    _ready(page, "metrics")
    page.wait_for_selector("#curves .main-svg")
    assert page.locator("#curves .legendtext").first.text_content() == "ICL score (repeat − first copy)"
    assert page.locator("#kl-chart .point").count() == 2 * 8  # two bars per head, 2 layers × 4 heads
    assert "icl_score" in page.inner_text("#metrics-table")
    shot()
