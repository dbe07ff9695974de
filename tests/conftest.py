import os

import numpy as np
import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(min(2, torch.get_num_threads()))


def make_bars(n: int, positions: int, widths: int, size: int, scale: int = 1, seed: int = 0):
    """Images of one vertical bar, with two ground-truth factors: its position and its width - 1.

    Column span: scale·pos up to scale·(pos + 1 + w). Every test data set of bars comes from here.
    """
    rng = np.random.default_rng(seed)
    pos = rng.integers(0, positions, n)
    width = rng.integers(0, widths, n)
    x = np.zeros((n, 1, size, size), np.float32)
    for i in range(n):
        x[i, 0, :, scale * pos[i] : scale * (pos[i] + 1 + width[i])] = 1.0
    return x, np.stack([pos, width], 1)


def save_bars(path, x, factors):
    np.savez(path, x=x, factors=factors, factor_names=np.array(["position", "width"]))
    return path


@pytest.fixture(scope="session")
def bars():
    """The bar helpers for test modules and fixtures: ``bars.make(...)``, ``bars.save(path, x, factors)``."""
    import types

    return types.SimpleNamespace(make=make_bars, save=save_bars)


@pytest.fixture
def atlas_dir(tmp_path):
    return tmp_path / "atlas"


@pytest.fixture
def tiny_images():
    """A small image set with two ground-truth factors: bar position (8) and bar width (2)."""
    return make_bars(256, positions=8, widths=2, size=8)


@pytest.fixture
def tiny_npz(tmp_path, tiny_images):
    return save_bars(tmp_path / "bars.npz", *tiny_images)


# -- a tiny evaluated atlas for the server tests (one per test module that asks for it) -------------
SERVER_N, SERVER_D = 200, 3
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from latentatlas.atlas import Atlas
    from latentatlas.evaluate import evaluate_run
    from latentatlas.runs import train_run

    x, factors = make_bars(SERVER_N, positions=8, widths=2, size=16, scale=2)
    data = save_bars(tmp_path_factory.mktemp("data") / "bars.npz", x, factors)
    root = tmp_path_factory.mktemp("atlas")
    atlas = Atlas(root)
    run, _ = train_run("vae", str(data), latent_dim=SERVER_D, steps=20, batch_size=16, name="r", atlas=atlas, progress=False)
    evaluate_run(run, n=SERVER_N, projections=["pca"], progress=False)
    # a second run with a model but no evaluation yet
    train_run("vae", str(data), latent_dim=SERVER_D, steps=2, batch_size=16, name="bare", atlas=atlas, progress=False)
    outside = tmp_path_factory.mktemp("outside") / "secret.png"
    outside.write_bytes(PNG_SIGNATURE + b"secret")
    return {"atlas": atlas, "run": run, "x": x, "outside": outside}


