"""The ground truth: `attention induction` trains the attention-only transformer (about a minute), its ICL
score falls at a phase change, and the head atlas singles out a layer-0 previous-token head by its share to
the previous token and a last-layer induction head by its prefix-matching and copying scores (Olsson et al.
2022). Seed 0 on this torch build: phase change at step 950, previous-token share 0.76 (head 0.1), prefix
matching 0.74 and copying 1.00 (head 1.1)."""

from __future__ import annotations

import numpy as np
import pytest

from latentatlas.analysis.attention import STAT_NAMES
from latentatlas.atlas import Atlas
from latentatlas.labs.attention import jobs

pytestmark = pytest.mark.slow


def test_induction_head_forms_and_the_atlas_finds_it(tmp_path):
    run, result, report = jobs.train_induction(tmp_path / "atlas", name="induction", progress=False, heads_tokens=8000)
    h = report["headline"]
    assert h["phase_change_step"] is not None and 300 <= h["phase_change_step"] <= 1500
    assert h["icl_score"] < -0.7  # the repeat is predicted far better than its first copy
    table, meta = jobs.read_heads(run)
    col = {n: i for i, n in enumerate(STAT_NAMES)}
    pm, cp = table[..., col["prefix_matching"]], table[..., col["copying"]]
    last, head = report["induction"]["induction_head"]
    assert last == 1 and pm[1, head] == pm.max()
    assert pm[1, head] > 0.45 and pm[0].max() < 0.1  # layer 0 cannot do prefix matching; layer 1 does
    assert cp[1, head] > 0.8  # and its OV circuit copies
    # layer 0 grows the previous-token head that the induction head reads (K-composition): one head stands out
    prev = table[0, :, col["previous"]]
    layer, ph = report["induction"]["previous_token_head"]
    assert layer == 0 and prev[ph] == prev.max() and prev[ph] > 0.5
    assert prev[ph] > 1.5 * np.sort(prev)[-2]  # singled out, not one of several alike
    assert table[1, :, col["previous"]].max() < prev[ph]
    # the built-in name resolves to the trained run (trained into it on first use)
    subject, again = jobs.resolve("induction", Atlas(tmp_path / "atlas"))
    assert again.name == run.name and subject.tokenizer is None and subject.n_layers == 2
    hist = run.read_history()
    assert any(r["icl"] > -0.2 for r in hist[:10])  # before the phase change there is no in-context learning
