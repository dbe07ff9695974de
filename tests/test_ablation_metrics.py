"""The ablation measures against known answers: PSNR of a known MSE, KL and cross-entropy of hand-made
distributions (and scipy's KL), cosines of known vectors, and the intervals they come with."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from latentatlas.analysis import ablation as A
from latentatlas.errors import LatentAtlasError


def test_mse_and_psnr_known_answers():
    a = np.zeros((2, 1, 2, 2))
    b = a.copy()
    b[0, 0, 0, 0] = 1.0  # one pixel of four off by 1: MSE 0.25
    b[1] += 0.1  # every pixel off by 0.1: MSE 0.01
    assert np.allclose(A.mse(a, b), [0.25, 0.01])
    assert np.allclose(A.mse(torch.from_numpy(a), torch.from_numpy(b)), [0.25, 0.01])  # tensors too
    assert A.psnr(0.01) == pytest.approx(20.0)  # 10·log10(1/0.01)
    assert A.psnr(0.25, data_range=2.0) == pytest.approx(10 * math.log10(16))
    assert A.psnr(0.0) == math.inf
    with pytest.raises(LatentAtlasError, match="shape"):
        A.mse(np.zeros((2, 3)), np.zeros((2, 4)))


def test_psnr_estimate_maps_the_mse_interval():
    rng = np.random.default_rng(0)
    m = rng.uniform(0.001, 0.02, size=64)
    e = A.psnr_estimate("psnr", m, np.random.default_rng(1), 300)
    assert e.value == pytest.approx(10 * math.log10(1 / m.mean()))
    assert e.ci_low < e.value < e.ci_high  # the ends swapped: a higher MSE is a lower PSNR
    # a paired change of PSNR: halving every MSE adds exactly 10·log10(2) dB, on every resample too
    d = A.psnr_change_estimate("d", m, m / 2, np.random.default_rng(1), 100)
    assert d.value == pytest.approx(10 * math.log10(2)) and d.ci_low == pytest.approx(d.value) and d.ci_high == pytest.approx(d.value)


def test_next_token_kl_known_distributions():
    p = np.array([0.5, 0.25, 0.25])
    q = np.array([0.25, 0.5, 0.25])
    expected = 0.5 * math.log(2) + 0.25 * math.log(0.5)  # Σ p log(p/q) = 0.25·ln 2
    logits_p, logits_q = np.log(p)[None, None], np.log(q)[None, None] + 3.0  # a shift of the logits changes nothing
    assert A.next_token_kl(logits_p, logits_q)[0] == pytest.approx(expected)
    from scipy.stats import entropy

    assert A.next_token_kl(logits_p, logits_q)[0] == pytest.approx(entropy(p, q))
    # per text: the mean over the positions its mask keeps (the padded position, with KL 0, is left out)
    base = np.stack([np.log(p), np.log(p)])[None]
    abl = np.stack([np.log(q), np.log(p)])[None]
    assert A.next_token_kl(base, abl)[0] == pytest.approx(expected / 2)
    assert A.next_token_kl(base, abl, mask=np.array([[True, False]]))[0] == pytest.approx(expected)
    assert A.next_token_kl(base, base)[0] == 0.0


def test_cross_entropy_known_answer():
    logits = np.log(np.array([[[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]]))
    ce = A.cross_entropy(logits, np.array([[0, 2]]))
    assert ce[0] == pytest.approx((-math.log(0.5) - math.log(0.8)) / 2)
    with pytest.raises(LatentAtlasError, match="token ids"):
        A.cross_entropy(logits, np.array([[0, 3]]))


def test_cosine_known_vectors():
    a = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0], [0.0, 0.0]])
    b = np.array([[0.0, 3.0], [2.0, 2.0], [-1.0, -2.0], [1.0, 1.0]])
    assert np.allclose(A.cosine(a, b), [0.0, 1.0, -1.0, 0.0])
