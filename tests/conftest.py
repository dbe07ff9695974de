import os

import numpy as np
import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def atlas_dir(tmp_path):
    return tmp_path / "atlas"


@pytest.fixture
def tiny_images():
    """A small image set with two ground-truth factors: bar position (8) and bar width (2)."""
    rng = np.random.default_rng(0)
    n = 256
    pos = rng.integers(0, 8, n)
    width = rng.integers(0, 2, n)
    x = np.zeros((n, 1, 8, 8), np.float32)
    for i in range(n):
        x[i, 0, :, pos[i] : pos[i] + 1 + width[i]] = 1.0
    return x, np.stack([pos, width], 1)


@pytest.fixture
def tiny_npz(tmp_path, tiny_images):
    x, factors = tiny_images
    path = tmp_path / "bars.npz"
    np.savez(path, x=x, factors=factors, factor_names=np.array(["position", "width"]))
    return path
