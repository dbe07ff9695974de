"""Procedural dSprites: 737,280 binary 64x64 images of a shape at every grid point of five factors.

Any index is rendered on demand, so the grid is never materialised. At first use the 720 sprite
patches (shape x scale x orientation) are drawn once into a table of pixel offsets; rendering a
batch is then one gather and one scatter, independent of batch composition, so an index always gives
the same image.

Geometry (like dSprites): at scale 1 a sprite spans about a third of the canvas; every sprite fits
inside a fixed PATCH x PATCH square, and pos 0..1 moves that square one pixel per step across the
canvas while keeping a one-pixel empty border. x is pos_x (columns), y is pos_y (rows, downwards).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from latentatlas.data.base import ArrayDataset
from latentatlas.errors import LatentAtlasError

CANVAS = 64
PATCH = 31  # 31 + 31 free steps + a 1-pixel border each side = 64: the 32 positions are distinct pixels
FACTOR_NAMES = ("shape", "scale", "orientation", "pos_x", "pos_y")
FACTOR_SIZES = (3, 6, 40, 32, 32)
SHAPES = ("square", "ellipse", "heart")
N_IMAGES = int(np.prod(FACTOR_SIZES))  # 737_280
# Mixed-radix strides, last factor fastest (dSprites' latents_classes order).
_STRIDES = np.array([int(np.prod(FACTOR_SIZES[i + 1:])) for i in range(5)], dtype=np.int64)
_SIZES = np.array(FACTOR_SIZES, dtype=np.int64)

# Sizes in pixels at scale 1 (the patch centre is 15 px from its edge).
_SQUARE_HALF = 10.0  # side 20, corner radius 14.1
_ELLIPSE_AXES = (11.0, 5.5)  # 2:1, so a half-turn is visible
_HEART_UNIT = 10.0  # pixels per unit of the heart curve: about 23 x 22 px
_HEART_CENTRE = 0.25  # centre of the heart curve's smallest enclosing circle (radius 1.25)
_SUPERSAMPLE = 4


def _scales() -> np.ndarray:
    return np.linspace(0.5, 1.0, FACTOR_SIZES[1])


def _orientations() -> np.ndarray:
    return np.linspace(0.0, 2.0 * np.pi, FACTOR_SIZES[2])


def _positions() -> np.ndarray:
    return np.linspace(0.0, 1.0, FACTOR_SIZES[3])


def _inside(shape: int, u: np.ndarray, v: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Implicit shape test in sprite coordinates (pixels, y up), for scales broadcast on axis 0."""
    u = u / scale
    v = v / scale
    if shape == 0:
        return np.maximum(np.abs(u), np.abs(v)) <= _SQUARE_HALF
    if shape == 1:
        a, b = _ELLIPSE_AXES
        return (u / a) ** 2 + (v / b) ** 2 <= 1.0
    hx = u / _HEART_UNIT
    hy = v / _HEART_UNIT + _HEART_CENTRE
    return (hx**2 + hy**2 - 1.0) ** 3 - hx**2 * hy**3 <= 0.0


@lru_cache(maxsize=1)
def _patch_tables() -> tuple[np.ndarray, np.ndarray]:
    """Draw the 720 patches once.

    Returns (patches, offsets): patches (720, PATCH, PATCH) bool, and offsets (720, K) int64, the
    lit pixels of each patch as flat offsets into a CANVAS-wide image, padded by repeating a lit
    pixel (writing a 1 twice is harmless), so a batch is placed with one fancy-indexed write.
    """
    ss = _SUPERSAMPLE
    centre = (PATCH - 1) / 2
    sub = (np.arange(PATCH * ss) + 0.5) / ss - 0.5 - centre  # supersampled pixel coordinates
    dx = sub[None, :]
    dy = -sub[:, None]  # rows go down, the shape's y goes up: a heart at orientation 0 is upright
    scales = _scales()[:, None, None]
    patches = np.zeros((3, FACTOR_SIZES[1], FACTOR_SIZES[2], PATCH, PATCH), dtype=bool)
    for k, theta in enumerate(_orientations()):
        c, s = np.cos(theta), np.sin(theta)
        u = c * dx + s * dy  # rotate the sample points by -theta = rotate the shape by +theta (CCW)
        v = -s * dx + c * dy
        for shape in range(3):
            hits = _inside(shape, u, v, scales)  # (6, PATCH*ss, PATCH*ss)
            cover = hits.reshape(-1, PATCH, ss, PATCH, ss).sum(axis=(2, 4))
            patches[shape, :, k] = cover * 2 >= ss * ss
    patches = patches.reshape(-1, PATCH, PATCH)

    flat = np.arange(PATCH)[:, None] * CANVAS + np.arange(PATCH)[None, :]
    counts = patches.reshape(len(patches), -1).sum(axis=1)
    width = int(counts.max())
    offsets = np.empty((len(patches), width), dtype=np.int64)
    for p, patch in enumerate(patches):
        lit = flat[patch]
        offsets[p, : len(lit)] = lit
        offsets[p, len(lit):] = lit[0]
    patches.setflags(write=False)
    offsets.setflags(write=False)
    return patches, offsets


# Top-left pixel of the patch for each position index: 1 .. 32, a 1-pixel border either side.
_PIXEL_OFFSETS = 1 + np.rint(_positions() * (CANVAS - PATCH - 2)).astype(np.int64)


class Sprites:
    """The full dSprites-style grid, rendered on demand (nothing is stored but 720 small patches)."""

    name = "sprites"
    factor_names = FACTOR_NAMES
    factor_sizes = FACTOR_SIZES
    labels = None
    sample_shape = (1, CANVAS, CANVAS)

    def __init__(self) -> None:
        self.spec = {"kind": "sprites"}

    def __len__(self) -> int:
        return N_IMAGES

    def __repr__(self) -> str:
        return f"Sprites(n={N_IMAGES}, factors={dict(zip(FACTOR_NAMES, FACTOR_SIZES))})"

    def factor_values(self) -> dict[str, np.ndarray]:
        """The real value behind each factor index."""
        return {
            "shape": np.arange(FACTOR_SIZES[0], dtype=np.int64),
            "scale": _scales(),
            "orientation": _orientations(),
            "pos_x": _positions(),
            "pos_y": _positions(),
        }

    def factor_value_names(self) -> dict[str, tuple[str, ...]]:
        """Names for the values of categorical factors (legends and tables show these)."""
        return {"shape": SHAPES}

    # -- indices and factors ---------------------------------------------------------------

    @staticmethod
    def _check_indices(idx) -> np.ndarray:
        idx = np.asarray(idx)
        if idx.dtype.kind not in "iu":
            raise LatentAtlasError(f"sprite indices have dtype {idx.dtype}; expected integers.")
        if idx.size and (idx.min() < 0 or idx.max() >= N_IMAGES):
            raise LatentAtlasError(
                f"sprite indices range over [{idx.min()}, {idx.max()}]; expected integers in [0, {N_IMAGES})."
            )
        return idx.astype(np.int64, copy=False)

    @staticmethod
    def _check_factors(factors) -> np.ndarray:
        f = np.asarray(factors)
        if f.dtype.kind not in "iu":
            raise LatentAtlasError(f"sprite factors have dtype {f.dtype}; expected integer factor indices.")
        if f.ndim == 0 or f.shape[-1] != 5:
            raise LatentAtlasError(
                f"sprite factors have shape {f.shape}; expected (N, 5) indices for {FACTOR_NAMES}."
            )
        if f.size and (np.any(f < 0) or np.any(f >= _SIZES)):
            raise LatentAtlasError(
                f"sprite factors hold indices outside 0 .. size-1; expected sizes {FACTOR_SIZES} for {FACTOR_NAMES}."
            )
        return f.astype(np.int64, copy=False)

    def index_to_factors(self, idx) -> np.ndarray:
        """(N,) indices -> (N, 5) int64 factor indices (a scalar gives (5,))."""
        idx = self._check_indices(idx)
        return (idx[..., None] // _STRIDES) % _SIZES

    def factors_to_index(self, factors) -> np.ndarray:
        """(N, 5) factor indices -> (N,) int64 indices (a (5,) row gives a scalar array)."""
        return self._check_factors(factors) @ _STRIDES

    # -- images ----------------------------------------------------------------------------

    def render(self, factors) -> np.ndarray:
        """(N, 5) factor indices -> (N, 1, 64, 64) float32 images of 0 and 1 ((5,) gives (1, 64, 64))."""
        f = self._check_factors(factors)
        lead = f.shape[:-1]
        f = f.reshape(-1, 5)
        n = len(f)
        _, offsets = _patch_tables()
        patch = (f[:, 0] * FACTOR_SIZES[1] + f[:, 1]) * FACTOR_SIZES[2] + f[:, 2]
        top_left = _PIXEL_OFFSETS[f[:, 4]] * CANVAS + _PIXEL_OFFSETS[f[:, 3]]
        base = np.arange(n, dtype=np.int64) * (CANVAS * CANVAS) + top_left
        out = np.zeros((n, 1, CANVAS, CANVAS), dtype=np.float32)
        out.reshape(-1)[offsets[patch] + base[:, None]] = 1.0
        return out.reshape(lead + self.sample_shape)

    def get(self, idx) -> np.ndarray:
        return self.render(self.index_to_factors(idx))

    def get_factors(self, idx) -> np.ndarray:
        return self.index_to_factors(idx)

    # -- the disentanglement_lib ground-truth interface ---------------------------------------

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, 5) int64 factor indices, uniform over the grid."""
        rng = np.random.default_rng(rng)
        return rng.integers(0, _SIZES, size=(int(n), 5), dtype=np.int64)

    def sample_observations_from_factors(self, factors, rng=None) -> np.ndarray:
        # Rendering is deterministic: one image per grid point, so rng is unused.
        return self.render(factors)

    def sample(self, n: int, seed: int = 0) -> ArrayDataset:
        """n distinct random grid images, materialised (n x 16 KiB), with their factors."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= N_IMAGES:
            raise LatentAtlasError(f"sprites sample size n={n!r} is invalid; expected an integer in [1, {N_IMAGES}].")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise LatentAtlasError(f"sprites seed {seed!r} is invalid; expected an integer.")
        rng = np.random.default_rng(int(seed))
        idx = rng.choice(N_IMAGES, size=int(n), replace=False)
        factors = self.index_to_factors(idx)
        return ArrayDataset(
            x=self.render(factors),
            labels=None,
            factors=factors,
            factor_names=FACTOR_NAMES,
            factor_sizes=FACTOR_SIZES,
            name="sprites",
            spec={"kind": "sprites", "n": int(n), "seed": int(seed)},
        )
