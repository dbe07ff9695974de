"""scikit-learn's 8x8 handwritten digits (ships with scikit-learn, so no download)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from latentatlas.data.base import ArrayDataset


def _read_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 8, 8) of counts 0..16, labels).

    The CSV that sklearn.datasets.load_digits reads is parsed directly when it is where scikit-learn
    keeps it, because importing sklearn.datasets takes seconds; otherwise scikit-learn reads it.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.origin is not None:
        csv = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
        if csv.is_file():
            data = np.loadtxt(csv, delimiter=",")
            if data.shape == (1797, 65):
                return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits as _sklearn_digits

    bunch = _sklearn_digits()
    return bunch.images, bunch.target.astype(np.int64)


def load_digits() -> ArrayDataset:
    """1,797 images (N, 1, 8, 8) in [0, 1] (pixel counts 0..16 divided by 16), labels 0..9.

    The digit is also the one ground-truth factor, so factor metrics work on this set too.
    """
    images, labels = _read_digits()
    return ArrayDataset(
        x=(images.astype(np.float32) / 16.0)[:, None],
        labels=labels,
        factors=labels[:, None].copy(),
        factor_names=("digit",),
        factor_sizes=(10,),
        name="digits",
        spec={"kind": "digits"},
    )
