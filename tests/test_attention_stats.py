"""The attention statistics on probabilities whose answers are known by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from latentatlas.analysis.attention import HeadStats, copying_score, neuron, phase_change, prefix_matching


def _causal_uniform(t: int) -> torch.Tensor:
    p = torch.ones(t, t).tril()
    return p / p.sum(-1, keepdim=True)


def _previous_token(t: int) -> torch.Tensor:
    p = torch.zeros(t, t)
    p[0, 0] = 1
    p[torch.arange(1, t), torch.arange(t - 1)] = 1
    return p


def test_head_stats_on_hand_built_heads():
    t = 6
    probs = torch.stack([_causal_uniform(t), _previous_token(t), torch.eye(t)])[None]  # 1 × 3 heads × t × t
    s = HeadStats(n_layers=1, n_heads=3)
    s.add(0, probs)
    r = s.result()[0]
    entropy, distance, first, self_, previous = r.T
    assert entropy[0] == pytest.approx(np.mean([math.log(i + 1) for i in range(t)]))
    assert entropy[1] == pytest.approx(0) and entropy[2] == pytest.approx(0)
    # uniform over 0..i: mean distance i/2; first-token share 1/(i+1); previous share (i ≥ 1) 1/(i+1)
    assert distance[0] == pytest.approx(np.mean([i / 2 for i in range(t)]))
    assert first[0] == pytest.approx(np.mean([1 / (i + 1) for i in range(t)]))
    assert previous[0] == pytest.approx(np.mean([1 / (i + 1) for i in range(1, t)]))
    assert previous[1] == pytest.approx(1) and self_[1] == pytest.approx(1 / t) and distance[1] == pytest.approx((t - 1) / t)
    assert self_[2] == pytest.approx(1) and previous[2] == pytest.approx(0)


def test_head_stats_skip_padding_and_stream():
    t = 5
    p = _previous_token(t)[None, None].repeat(2, 1, 1, 1)
    p[1, 0, 3:] = 0.25  # garbage on the padded queries of document 1
    valid = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    whole, parts = HeadStats(1, 1), HeadStats(1, 1)
    whole.add(0, p, valid)
    parts.add(0, p[:1], valid[:1])
    parts.add(0, p[1:], valid[1:])
    assert whole.result()[0, 0, 4] == pytest.approx(1.0)
    assert np.allclose(whole.result(), parts.result())


def test_prefix_matching_of_an_induction_pattern():
    half, off = 4, 1
    t = off + 2 * half
    ind = torch.zeros(t, t)
    ind[:, 0] = 1  # everything else rests on BOS
    for j in range(half):
        ind[off + half + j] = 0
        ind[off + half + j, off + j + 1] = 1
    probs = torch.stack([ind, _previous_token(t)])[None]
    score = prefix_matching(probs, half, off)
    assert score[0] == pytest.approx(1.0) and score[1] == pytest.approx(0.0)


def test_copying_score_signs():
    assert copying_score(np.eye(4)) == pytest.approx(1.0)
    assert copying_score(-2 * np.eye(3)) == pytest.approx(-1.0)
    rot = np.array([[0.0, -1.0], [1.0, 0.0]])  # eigenvalues ±i: no copying either way
    assert copying_score(rot) == pytest.approx(0.0, abs=1e-12)
    assert copying_score(np.diag([3.0, -1.0])) == pytest.approx(0.5)


def test_neuron_softmax_with_mask_by_hand():
    q = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2).expand(1, 1, 3, 2)
    k = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]]).view(1, 1, 3, 2)
    mask = torch.tensor([[True, True, False]] * 3).view(1, 1, 3, 3)
    n = neuron(q, k, head=0, position=2, scaling=0.5, mask=mask)
    assert np.allclose(n["qk"], [[1, 0], [0, 0], [2, 0]])
    assert np.allclose(n["scores"][:2], [0.5, 0.0]) and n["scores"][2] == -np.inf
    e = np.exp([0.5, 0.0])
    assert np.allclose(n["probs"], [e[0] / e.sum(), e[1] / e.sum(), 0.0])


def test_phase_change_step():
    steps = np.arange(100, 2100, 100)
    icl = np.where(steps < 1200, -0.05, -3.0)
    assert phase_change(steps, icl) == 1200
    assert phase_change(steps, np.full(len(steps), -0.02)) is None
