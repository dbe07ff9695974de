"""The feature tables behind the feature pages, on codes with known answers."""

from __future__ import annotations

import numpy as np
import torch

from latentatlas.analysis.sae_features import FeatureScan, decoder_neighbours


def _codes(n=5000, seed=0):
    g = np.random.default_rng(seed)
    f = np.zeros((n, 4), np.float32)
    tokens = g.integers(0, 50, n)
    f[tokens == 7, 0] = g.uniform(0.5, 3.0, (tokens == 7).sum())  # latent 0: fires on token 7 only
    f[:, 1] = np.arange(n) / n  # latent 1: grows with the row, 0 at row 0
    f[::10, 2] = 1.0  # latent 2: constant, every 10th token
    return f, tokens


def _scan(f, tokens, chunk=700, **kw):
    s = FeatureScan(f.shape[1], **kw)
    for a in range(0, len(f), chunk):
        s.first(torch.from_numpy(f[a : a + chunk]), torch.arange(a, min(a + chunk, len(f))))
    for a in range(0, len(f), chunk):
        s.second(torch.from_numpy(f[a : a + chunk]), torch.arange(a, min(a + chunk, len(f))), torch.from_numpy(tokens[a : a + chunk]))
    return s.result()


def test_counts_max_and_top_examples():
    f, tokens = _codes()
    t = _scan(f, tokens, k=5, bins=8)
    assert t.n_tokens == len(f)
    np.testing.assert_array_equal(t.fires, (f > 0).sum(0))
    np.testing.assert_allclose(t.max_act, f.max(0))
    assert t.top_rows[1].tolist() == [4999, 4998, 4997, 4996, 4995]  # latent 1's largest are the last rows
    np.testing.assert_allclose(t.top_vals[0], np.sort(f[:, 0])[::-1][:5])
    assert (t.top_rows[3] == -1).all() and (t.top_vals[3] == 0).all()  # a dead latent has no examples


def test_histogram_and_bin_examples_are_consistent():
    f, tokens = _codes()
    t = _scan(f, tokens, bins=8)
    np.testing.assert_array_equal(t.hist.sum(1), t.fires)
    assert t.hist[2, -1] == t.fires[2]  # a constant activation lands in the top bin
    for lat in (0, 1):
        width = t.max_act[lat] / 8
        for b in range(8):
            row = t.bin_rows[lat, b]
            if t.hist[lat, b] == 0:
                assert row == -1
            else:
                v = f[row, lat]
                assert v > 0 and min(int(v / width), 7) == b, (lat, b, row, v)


def test_top_tokens_and_chunking_does_not_matter():
    f, tokens = _codes()
    t = _scan(f, tokens, top_tokens=3)
    assert t.token_ids[0, 0] == 7 and t.token_counts[0, 0] == (tokens == 7).sum() and t.token_ids[0, 1] == -1
    counts = np.bincount(tokens[::10], minlength=50)
    assert t.token_counts[2, 0] == counts.max()
    other = _scan(f, tokens, chunk=4999, top_tokens=3)
    for k in ("fires", "max_act", "top_vals", "hist", "token_counts"):  # (top rows may differ among ties)
        np.testing.assert_array_equal(getattr(t, k), getattr(other, k))


def test_decoder_neighbours():
    w = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [-1, 0, 0]], dtype=float)
    got = decoder_neighbours(w, 0, n=3)
    assert [j for j, _ in got] == [1, 2, 3]
    assert got[0][1] > 0.99 and got[2][1] == -1.0
