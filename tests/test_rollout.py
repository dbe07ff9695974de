"""Attention rollout and attention flow on hand-built attention whose answers are known in closed form."""

from __future__ import annotations

import numpy as np
import pytest

from latentatlas.analysis.rollout import attention_flow, attention_rollout, cls_map, mixed_attention
from latentatlas.errors import LatentAtlasError


def _shift(t: int) -> np.ndarray:
    """Token i attends to token i−1 only (token 0 to itself)."""
    a = np.zeros((t, t))
    a[0, 0] = 1
    for i in range(1, t):
        a[i, i - 1] = 1
    return a


def test_identity_attention_rolls_out_to_the_identity():
    eye = np.eye(5)[None].repeat(3, axis=0)  # 3 heads, each attending to itself
    for residual in (0.0, 0.5, 0.9):
        assert np.allclose(attention_rollout([eye] * 4, residual=residual), np.eye(5))
        assert np.allclose(attention_flow([eye] * 4, residual=residual, output=None), np.eye(5))


def test_two_layer_chain():
    # no residual: two previous-token layers send token i to token i−2
    a = _shift(4)
    r = attention_rollout([a, a], residual=0.0)
    assert np.allclose(r, a @ a) and r[3, 1] == 1 and r[2, 0] == 1
    assert np.allclose(attention_flow([a, a], residual=0.0, output=3), [0, 1, 0, 0])
    # with the paper's residual 0.5: Ã = (A + I)/2 each layer, so R = ((A + I)/2)²; token 3 keeps 1/4,
    # token 2 gets 2 · 1/4, token 1 gets 1/4
    r = attention_rollout([a, a], residual=0.5)
    assert np.allclose(r[3], [0, 0.25, 0.5, 0.25])
    # the flow into (2, 3): paths 3→3→3 (min ½,½), 2→2→3 and 2→3→3 (each ½ via two disjoint edges), 1→2→3:
    # raw flows token 3: ½ ; token 2: min(½,½) + min(½,½) = 1 ; token 1: min(½,½) = ½ → normalised ¼, ½, ¼
    assert np.allclose(attention_flow([a, a], residual=0.5, output=3), [0, 0.25, 0.5, 0.25])


def test_rollout_and_flow_differ_where_the_closed_forms_say():
    # Two tokens, no residual. Layer 1 mostly keeps each token; layer 2's output 0 reads 0.8 / 0.2.
    a1 = np.array([[0.9, 0.1], [0.1, 0.9]])
    a2 = np.array([[0.8, 0.2], [0.5, 0.5]])
    # rollout sums products over paths: R[0] = a2[0] · a1 = [0.8·0.9 + 0.2·0.1, 0.8·0.1 + 0.2·0.9]
    assert np.allclose(attention_rollout([a1, a2], residual=0.0)[0], [0.74, 0.26])
    # flow: the two paths j → k → 0 are disjoint, each limited by its smaller edge:
    # f(j) = Σ_k min(a1[k, j], a2[0, k]) = [min(.9,.8) + min(.1,.2), min(.1,.8) + min(.9,.2)] = [0.9, 0.3]
    assert np.allclose(attention_flow([a1, a2], residual=0.0, normalize=False), [0.9, 0.3])
    assert np.allclose(attention_flow([a1, a2], residual=0.0), [0.75, 0.25])


def test_flow_matches_a_linear_programme():
    # a reference solver of another kind: max flow as a linear programme (scipy's HiGHS)
    from scipy.optimize import linprog

    rng = np.random.default_rng(3)
    t, layers = 3, 3
    attn = [rng.dirichlet(np.ones(t), size=(2, t)) for _ in range(layers)]  # (heads, T, T), rows on the simplex
    mixed = mixed_attention(attn, residual=0.3)
    edges = [(l, j, i, mixed[l][i, j]) for l in range(layers) for i in range(t) for j in range(t)]
    for source in range(t):
        # variables: flow on each edge; maximise what leaves (0, source), conserve at inner nodes, nothing else leaves layer 0
        c = np.array([-1.0 if (l == 0 and j == source) else 0.0 for l, j, i, _ in edges])
        a_eq, b_eq = [], []
        for l in range(1, layers):
            for node in range(t):
                row = [(1.0 if (el == l - 1 and i == node) else 0.0) - (1.0 if (el == l and j == node) else 0.0) for el, j, i, _ in edges]
                a_eq.append(row)
                b_eq.append(0.0)
        for node in range(t):
            if node != source:
                a_eq.append([1.0 if (el == 0 and j == node) else 0.0 for el, j, i, _ in edges])
                b_eq.append(0.0)
        for node in range(1, t):  # only output token 0 is the sink
            a_eq.append([1.0 if (el == layers - 1 and i == node) else 0.0 for el, j, i, _ in edges])
            b_eq.append(0.0)
        lp = linprog(c, A_eq=np.array(a_eq), b_eq=b_eq, bounds=[(0, cap) for *_, cap in edges], method="highs")
        assert lp.status == 0
        assert np.isclose(attention_flow(attn, residual=0.3, normalize=False)[source], -lp.fun, atol=1e-7)


def test_rows_sum_to_one_and_normalise_the_right_axis():
    rng = np.random.default_rng(0)
    attn = [rng.dirichlet(np.ones(6) * 0.3, size=(4, 6)) for _ in range(5)]
    r = attention_rollout(attn)
    assert np.allclose(r.sum(axis=1), 1)
    assert np.allclose(attention_flow(attn, output=None).sum(axis=1), 1)
    for m in mixed_attention(attn, head_fusion="max"):
        assert np.allclose(m.sum(axis=1), 1)
    # vit-explain's issue #16: with max fusion (or its discard_ratio) a fused row no longer sums to 1, and
    # dividing (A + I)/2 by a.sum(dim=-1) broadcasts the row sums over the columns: its rows do not sum to 1
    fused = attn[0].max(axis=0)
    buggy = (fused + np.eye(6)) / 2
    buggy = buggy / buggy.sum(axis=-1)
    assert not np.allclose(buggy.sum(axis=1), 1)
    assert not np.allclose(mixed_attention(attn[:1], head_fusion="max")[0], buggy)


def test_head_fusion_and_the_cls_map():
    # head 0 attends to token 1, head 1 to token 2: mean splits, max keeps both, min keeps neither (rows then renormalise)
    a = np.zeros((2, 3, 3))
    a[0, :, 1] = 1
    a[1, :, 2] = 1
    assert np.allclose(attention_rollout([a], residual=0.0, head_fusion="mean")[0], [0, 0.5, 0.5])
    assert np.allclose(attention_rollout([a], residual=0.0, head_fusion="max")[0], [0, 0.5, 0.5])
    assert np.allclose(attention_rollout([a], residual=0.5, head_fusion="min")[0], [1, 0, 0])
    row = np.arange(5.0)
    assert np.array_equal(cls_map(row, (2, 2)), [[1, 2], [3, 4]])


def test_bad_input_is_one_sentence():
    with pytest.raises(LatentAtlasError, match="expected \\(heads, T, T\\)"):
        attention_rollout([np.ones((2, 3))])
    with pytest.raises(LatentAtlasError, match="same tokens"):
        attention_rollout([np.eye(3), np.eye(4)])
    with pytest.raises(LatentAtlasError, match="head_fusion"):
        attention_rollout([np.eye(3)], head_fusion="median")
    with pytest.raises(LatentAtlasError, match="probabilities"):
        attention_flow([np.full((3, 3), np.nan)])
    with pytest.raises(LatentAtlasError, match="out of range"):
        attention_flow([np.eye(3)], output=3)
    with pytest.raises(LatentAtlasError, match="at least one layer"):
        attention_rollout([])
