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


# -- a tiny evaluated atlas for the server tests (one per test module that asks for it) -------------
SERVER_N, SERVER_D = 200, 3
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from latentatlas.atlas import Atlas
    from latentatlas.evaluate import evaluate_run
    from latentatlas.runs import train_run

    rng = np.random.default_rng(0)
    pos = rng.integers(0, 8, SERVER_N)
    width = rng.integers(0, 2, SERVER_N)
    x = np.zeros((SERVER_N, 1, 16, 16), np.float32)
    for i in range(SERVER_N):
        x[i, 0, :, 2 * pos[i] : 2 * pos[i] + 2 + 2 * width[i]] = 1.0
    data = tmp_path_factory.mktemp("data") / "bars.npz"
    np.savez(data, x=x, factors=np.stack([pos, width], 1), factor_names=np.array(["position", "width"]))
    root = tmp_path_factory.mktemp("atlas")
    atlas = Atlas(root)
    run, _ = train_run("vae", str(data), latent_dim=SERVER_D, steps=20, batch_size=16, name="r", atlas=atlas, progress=False)
    evaluate_run(run, n=SERVER_N, projections=["pca"], progress=False)
    # a second run with a model but no evaluation yet
    train_run("vae", str(data), latent_dim=SERVER_D, steps=2, batch_size=16, name="bare", atlas=atlas, progress=False)
    outside = tmp_path_factory.mktemp("outside") / "secret.png"
    outside.write_bytes(PNG_SIGNATURE + b"secret")
    return {"atlas": atlas, "run": run, "x": x, "outside": outside}


