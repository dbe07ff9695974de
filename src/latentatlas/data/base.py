"""The in-memory dataset every loader returns, and the checks the loaders share."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from latentatlas.errors import LatentAtlasError

# Numpy dtype kinds accepted as numbers: bool, signed, unsigned, float.
NUMERIC_KINDS = "biuf"
# the columns of a run's latent table besides its factors: a factor may not take one of these names
RESERVED_COLUMNS = ("index", "label", "recon_error")


def check_numeric(arr: np.ndarray, what: str) -> None:
    """Refuse strings, objects, structured and complex arrays."""
    if arr.dtype.kind not in NUMERIC_KINDS:
        raise LatentAtlasError(
            f"{what} has dtype {arr.dtype}; expected a numeric (bool, integer or float) array."
        )


def as_index_array(arr, what: str, n: int, ndim: int) -> np.ndarray:
    """Labels (ndim 1) or factors (ndim 2) as int64 with n rows; integer-valued floats are accepted."""
    arr = np.asarray(arr)
    check_numeric(arr, what)
    if ndim == 2 and arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != ndim:
        expected = "(N,)" if ndim == 1 else "(N, K)"
        raise LatentAtlasError(f"{what} has shape {arr.shape}; expected {expected} with N = {n}.")
    if arr.shape[0] != n:
        raise LatentAtlasError(f"{what} has {arr.shape[0]} rows but x has {n}; expected the same length.")
    if arr.dtype.kind == "f":
        if arr.size and not (np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
            raise LatentAtlasError(f"{what} holds non-integer or non-finite values; expected integers.")
    return arr.astype(np.int64, copy=False)


def check_finite_range(x: np.ndarray, what: str, unit_range: bool) -> None:
    """NaN/inf anywhere, or (for images) values outside [0, 1], get one sentence.

    min/max propagate NaN, so two reductions cover both checks without a temporary the size of x.
    """
    lo, hi = float(np.min(x)), float(np.max(x))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise LatentAtlasError(f"{what} contains NaN or infinite values; expected finite numbers.")
    if unit_range and (lo < 0.0 or hi > 1.0):
        raise LatentAtlasError(
            f"{what} holds images with values in [{lo:g}, {hi:g}]; expected values in [0, 1] "
            "(or uint8 0..255)."
        )


@dataclass
class ArrayDataset:
    """A materialised dataset: images (N, C, H, W) in [0, 1] or vectors (N, D), plus labels and factors.

    ``factors`` holds factor *indices* (0 .. size-1), one column per name in ``factor_names``.
    ``spec`` is JSON-serialisable and rebuilds the dataset with ``load_dataset(spec)``.
    """

    x: np.ndarray
    labels: np.ndarray | None = None
    factors: np.ndarray | None = None
    factor_names: tuple[str, ...] = ()
    factor_sizes: tuple[int, ...] = ()
    name: str = "array"
    spec: dict = field(default_factory=dict)
    value_names: dict = field(default_factory=dict)  # factor name -> a name per value (legends and tables show these)

    def __post_init__(self) -> None:
        what = f"dataset '{self.name}'"
        x = np.asarray(self.x)
        check_numeric(x, f"x of {what}")
        if x.ndim not in (2, 4):
            raise LatentAtlasError(
                f"x of {what} has shape {x.shape}; expected images (N, C, H, W) or vectors (N, D)."
            )
        if x.shape[0] == 0:
            raise LatentAtlasError(f"{what} holds no samples; expected at least one.")
        if 0 in x.shape[1:]:
            raise LatentAtlasError(f"x of {what} has shape {x.shape}: its samples are empty; expected at least one value per sample.")
        self.x = x.astype(np.float32, copy=False)
        check_finite_range(self.x, f"x of {what}", unit_range=self.x.ndim == 4)
        n = self.x.shape[0]

        if self.labels is not None:
            self.labels = as_index_array(self.labels, f"labels of {what}", n, ndim=1)

        self.factor_names = tuple(str(s) for s in self.factor_names)
        self.factor_sizes = tuple(int(s) for s in self.factor_sizes)
        for fname in self.factor_names:
            if not fname.strip() or len(fname) > 100 or fname in RESERVED_COLUMNS:
                raise LatentAtlasError(f"{what} has a factor named {fname[:100]!r}; expected a name of 1-100 characters other than "
                                       f"{', '.join(RESERVED_COLUMNS)} (the latent table's own columns)")
        if len(set(self.factor_names)) != len(self.factor_names):
            raise LatentAtlasError(f"{what} names two factors alike ({', '.join(self.factor_names)[:200]}); expected one name per factor")
        if self.factors is None:
            if self.factor_names or self.factor_sizes:
                raise LatentAtlasError(f"{what} has factor names or sizes but no factors; expected both or neither.")
        else:
            self.factors = as_index_array(self.factors, f"factors of {what}", n, ndim=2)
            k = self.factors.shape[1]
            if len(self.factor_names) != k or len(self.factor_sizes) != k:
                raise LatentAtlasError(
                    f"{what} has {k} factor columns but {len(self.factor_names)} names and "
                    f"{len(self.factor_sizes)} sizes; expected one name and one size per column."
                )
            sizes = np.asarray(self.factor_sizes, dtype=np.int64)
            if np.any(self.factors < 0) or np.any(self.factors >= sizes):
                raise LatentAtlasError(
                    f"factors of {what} hold indices outside 0 .. size-1 for sizes {self.factor_sizes}; "
                    "expected factor indices."
                )
        self.name = str(self.name)
        self.spec = dict(self.spec)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def get(self, idx) -> np.ndarray:
        return self.x[idx]

    def get_factors(self, idx) -> np.ndarray | None:
        return None if self.factors is None else self.factors[idx]

    @property
    def sample_shape(self) -> tuple:
        return tuple(self.x.shape[1:])

    def factor_value_names(self) -> dict[str, tuple[str, ...]]:
        """Names for the values of the factors that have them (an image folder's class names)."""
        return {k: tuple(v) for k, v in self.value_names.items() if k in self.factor_names}

    def __repr__(self) -> str:
        return (
            f"ArrayDataset(name={self.name!r}, n={len(self)}, sample_shape={self.sample_shape}, "
            f"labels={'yes' if self.labels is not None else 'no'}, factors={self.factor_names})"
        )
