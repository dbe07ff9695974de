"""Two-dimensional toy targets for the flow lab: named distributions, Gaussian mixtures and a user's points.

A target is sampled afresh at every training step, so ``Toy2D.batch_at(step)`` is a pure function of
(seed, step) — the trainer's exact resume replays a step by calling it again — and ``Toy2D.sample``
draws evaluation points from a stream no training step can reach. Three of the named toys
("three-modes", "8gaussians", "25gaussians") are exact Gaussian mixtures, for which
``analysis.flow_exact`` knows the exact velocity and score; ``mixture_of(name)`` returns them.

Named toys (all span about [-2, 2]²):

=============  ==================================================================================
three-modes    three equal modes on the circle of radius 2 at 90°, 210°, 330°; σ = 0.2 (default)
8gaussians     eight equal modes on the circle of radius 2 at 0°, 45°, …, 315°; σ = 0.1
25gaussians    25 equal modes on the grid {-2, -1, 0, 1, 2}²; σ = 0.05
moons          scikit-learn's two interleaving half circles (``make_moons``), centred on (0.5, 0.25)
               and scaled by 4/3 to [-2, 2] × [-1, 1]; Gaussian noise of std 0.1 on each coordinate
spirals        two arms, each 1.5 turns of r = 2·φ/(3π), φ = 3π·√u, u ~ U(0, 1) (√u spreads points
               roughly evenly along the arm), the second arm the first turned by 180°; noise std 0.05
checkerboard   uniform on the 8 cells (i + j even) of the 4 × 4 board of unit squares over [-2, 2]²,
               cell (i, j) = [-2 + i, -1 + i) × [-2 + j, -1 + j); the bottom-left cell is filled
rings          circles of radius 0.5, 1, 1.5, 2, each chosen with probability ∝ its radius (points
               evenly spread along the total length), radial Gaussian noise of std 0.05
=============  ==================================================================================
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.special import logsumexp

from latentatlas.errors import LatentAtlasError
from latentatlas.limits import MAX_BATCH, MAX_LATENT_DIM, MAX_SEED, MAX_STEPS, check_int

__all__ = [
    "DEFAULT_TOY",
    "TOYS",
    "GaussianMixture",
    "PointSet",
    "Toy2D",
    "load_points",
    "load_toy",
    "mixture_of",
    "sample_named",
]

TOYS = ("three-modes", "8gaussians", "25gaussians", "moons", "spirals", "checkerboard", "rings")
DEFAULT_TOY = "three-modes"
POINT_SUFFIXES = (".npy", ".csv")
MAX_POINT_ROWS = 10_000_000
MAX_COMPONENTS = 4096
MAX_SAMPLES = 10_000_000

MOONS_NOISE = 0.1
SPIRALS_NOISE = 0.05
RINGS_RADII = (0.5, 1.0, 1.5, 2.0)
RINGS_NOISE = 0.05

# Evaluation draws seed numpy with three words whose last is 1; a training step's two words [seed, step]
# are padded with zeros by numpy's SeedSequence, so the two streams can never coincide.
_EVAL_STREAM_TAG = 1


# -- Gaussian mixtures ---------------------------------------------------------------------------------


_KIND_WORDS = {"b": "boolean", "c": "complex", "O": "object", "U": "text", "S": "text", "V": "structured", "M": "date", "m": "time"}


def _numeric_array(value, what: str) -> np.ndarray:
    """``value`` as float64, refusing text, booleans, ragged lists and non-finite numbers."""
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError):
        raise LatentAtlasError(f"{what} must be a rectangular array of numbers, got a ragged list.") from None
    if raw.dtype.kind not in "iuf":
        raise LatentAtlasError(f"{what} must be numbers, got {_KIND_WORDS.get(raw.dtype.kind, str(raw.dtype))} values.")
    arr = raw.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise LatentAtlasError(f"{what} must be finite numbers, got NaN or infinite values.")
    return arr


@dataclass(frozen=True)
class GaussianMixture:
    """Σ_k w_k N(μ_k, s_k² I): isotropic components in d dimensions (d = 2 for the toys).

    ``means`` is K × d, ``sigmas`` K standard deviations (one number is used for every component) and
    ``weights`` K non-negative numbers, normalised here (equal when omitted). The fields are stored as
    tuples of floats, so a mixture is hashable and its fields are JSON-able as they are.
    """

    means: tuple
    sigmas: tuple | float = 1.0
    weights: tuple | None = None

    def __post_init__(self) -> None:
        means = _numeric_array(self.means, "mixture means")
        if means.ndim != 2 or means.shape[0] < 1 or means.shape[1] < 1:
            raise LatentAtlasError(f"mixture means have shape {means.shape}; "
                                   "expected (K, d) with K ≥ 1 components in d ≥ 1 dimensions.")
        k, d = means.shape
        if k > MAX_COMPONENTS or d > MAX_LATENT_DIM:
            raise LatentAtlasError(f"mixture means have shape {means.shape}; expected at most {MAX_COMPONENTS} components "
                                   f"in at most {MAX_LATENT_DIM} dimensions.")
        sigmas = _numeric_array(self.sigmas, "mixture sigmas")
        if sigmas.ndim == 0:
            sigmas = np.full(k, float(sigmas))
        if sigmas.shape != (k,):
            raise LatentAtlasError(f"mixture sigmas have shape {sigmas.shape}; expected one number or {k} (one per mean).")
        if np.any(sigmas <= 0):
            raise LatentAtlasError(f"mixture sigmas include {float(sigmas.min()):g}; expected standard deviations above 0.")
        if self.weights is None:
            weights = np.full(k, 1.0 / k)
        else:
            weights = _numeric_array(self.weights, "mixture weights")
            if weights.shape != (k,):
                raise LatentAtlasError(f"mixture weights have shape {weights.shape}; expected ({k},), one per mean.")
            if np.any(weights < 0) or not np.any(weights > 0):
                raise LatentAtlasError("mixture weights must be non-negative and not all zero.")
            weights = weights / weights.sum()
        object.__setattr__(self, "means", tuple(tuple(float(v) for v in row) for row in means))
        object.__setattr__(self, "sigmas", tuple(float(s) for s in sigmas))
        object.__setattr__(self, "weights", tuple(float(w) for w in weights))

    @property
    def means_array(self) -> np.ndarray:
        return np.array(self.means, dtype=np.float64)

    @property
    def sigmas_array(self) -> np.ndarray:
        return np.array(self.sigmas, dtype=np.float64)

    @property
    def weights_array(self) -> np.ndarray:
        return np.array(self.weights, dtype=np.float64)

    @property
    def dim(self) -> int:
        return len(self.means[0])

    @property
    def mean(self) -> np.ndarray:
        """The mixture's mean Σ_k w_k μ_k, shape (d,)."""
        return self.weights_array @ self.means_array

    def sample(self, n: int, rng: np.random.Generator | int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``n`` points (float32, (n, d)) and the component each came from (int64, (n,))."""
        n = check_int(_plain_int(n), "number of samples", 1, MAX_SAMPLES)
        rng = _generator(rng)
        component = rng.choice(len(self.weights), size=n, p=self.weights_array).astype(np.int64)
        noise = rng.standard_normal((n, self.dim))
        x = self.means_array[component] + self.sigmas_array[component, None] * noise
        return x.astype(np.float32), component

    def log_prob(self, x) -> np.ndarray:
        """The exact log-density log Σ_k w_k N(x; μ_k, s_k² I) at each row of x, float64 (n,)."""
        x = _numeric_array(x, "points given to log_prob")
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise LatentAtlasError(f"points given to log_prob have shape {x.shape}; expected (n, {self.dim}).")
        var = np.maximum(self.sigmas_array ** 2, np.finfo(np.float64).tiny)  # s below 1e-154 squares to 0
        sq = ((x[:, None, :] - self.means_array[None]) ** 2).sum(-1)
        with np.errstate(divide="ignore"):  # a zero weight is log 0 = -inf, which logsumexp handles
            log_w = np.log(self.weights_array)
        log_comp = log_w - 0.5 * sq / var - 0.5 * self.dim * np.log(2 * math.pi * var)
        return logsumexp(log_comp, axis=1)


def _circle_mixture(n_modes: int, radius: float, sigma: float, first_angle_deg: float) -> GaussianMixture:
    angles = np.deg2rad(first_angle_deg + 360.0 * np.arange(n_modes) / n_modes)
    means = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return GaussianMixture(means=means, sigmas=sigma)


def _grid_mixture(values: tuple[float, ...], sigma: float) -> GaussianMixture:
    means = [(a, b) for a in values for b in values]
    return GaussianMixture(means=means, sigmas=sigma)


_MIXTURE_TOYS = {
    "three-modes": lambda: _circle_mixture(3, 2.0, 0.2, 90.0),
    "8gaussians": lambda: _circle_mixture(8, 2.0, 0.1, 0.0),
    "25gaussians": lambda: _grid_mixture((-2.0, -1.0, 0.0, 1.0, 2.0), 0.05),
}


def mixture_of(name: str) -> GaussianMixture | None:
    """The exact Gaussian mixture behind a named toy, or None for a toy that is not one."""
    _check_toy_name(name)
    return _MIXTURE_TOYS[name]() if name in _MIXTURE_TOYS else None


# -- the other named toys -------------------------------------------------------------------------------


def sample_moons(n: int, rng: np.random.Generator, noise: float = MOONS_NOISE) -> np.ndarray:
    upper = rng.random(n) < 0.5
    theta = math.pi * rng.random(n)
    x = np.where(upper, np.cos(theta), 1.0 - np.cos(theta))
    y = np.where(upper, np.sin(theta), 0.5 - np.sin(theta))
    pts = (np.stack([x, y], axis=1) - (0.5, 0.25)) * (4.0 / 3.0)
    return pts + noise * rng.standard_normal((n, 2))


def sample_spirals(n: int, rng: np.random.Generator, noise: float = SPIRALS_NOISE) -> np.ndarray:
    phi = 3.0 * math.pi * np.sqrt(rng.random(n))
    r = 2.0 * phi / (3.0 * math.pi)
    arm = np.where(rng.random(n) < 0.5, 1.0, -1.0)  # -1: the point turned by 180°
    pts = arm[:, None] * np.stack([r * np.cos(phi), r * np.sin(phi)], axis=1)
    return pts + noise * rng.standard_normal((n, 2))


def _checkerboard_cells() -> np.ndarray:
    """Lower-left corners of the filled cells: (i + j) even on the 4 × 4 board from (-2, -2)."""
    return np.array([(-2.0 + i, -2.0 + j) for i in range(4) for j in range(4) if (i + j) % 2 == 0])


def sample_checkerboard(n: int, rng: np.random.Generator) -> np.ndarray:
    cells = _checkerboard_cells()
    return cells[rng.integers(0, len(cells), n)] + rng.random((n, 2))


def sample_rings(n: int, rng: np.random.Generator, noise: float = RINGS_NOISE) -> np.ndarray:
    radii = np.array(RINGS_RADII)
    r = radii[rng.choice(len(radii), size=n, p=radii / radii.sum())] + noise * rng.standard_normal(n)
    angle = 2.0 * math.pi * rng.random(n)
    return np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1)


_SAMPLERS = {"moons": sample_moons, "spirals": sample_spirals, "checkerboard": sample_checkerboard, "rings": sample_rings}


def sample_named(name: str, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """``n`` points of a named toy, float32 (n, 2)."""
    _check_toy_name(name)
    n = check_int(_plain_int(n), "number of samples", 1, MAX_SAMPLES)
    rng = _generator(rng)
    if name in _MIXTURE_TOYS:
        return _MIXTURE_TOYS[name]().sample(n, rng)[0]
    return _SAMPLERS[name](n, rng).astype(np.float32)


def _check_toy_name(name) -> None:
    if not isinstance(name, str) or name not in TOYS:
        raise LatentAtlasError(f"toy {name!r} is unknown; expected one of {', '.join(TOYS)}.")


# -- a user's points ---------------------------------------------------------------------------------


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def check_points(arr: np.ndarray, what: str) -> np.ndarray:
    """Shape, size and finiteness of an (N, 2) point array; returns it as float32."""
    if arr.ndim == 1 or (arr.ndim == 2 and arr.shape[1] == 1):
        raise LatentAtlasError(f"{what} has 1 column; expected 2 (x, y).")
    if arr.ndim != 2:
        raise LatentAtlasError(f"{what} has shape {arr.shape}; expected N rows of 2 columns (x, y).")
    if arr.shape[1] != 2:
        raise LatentAtlasError(f"{what} has {_count(arr.shape[1], 'column')}; expected 2 (x, y).")
    if arr.shape[0] < 2:
        raise LatentAtlasError(f"{what} has {_count(arr.shape[0], 'row')}; expected at least 2 points.")
    if arr.shape[0] > MAX_POINT_ROWS:
        raise LatentAtlasError(f"{what} has more than {MAX_POINT_ROWS:,} rows; expected at most {MAX_POINT_ROWS:,}.")
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise LatentAtlasError(f"{what} has NaN or infinite values in row {int(np.argmax(bad)) + 1}; expected finite numbers.")
    out = arr.astype(np.float32)
    too_big = ~np.isfinite(out).all(axis=1)
    if too_big.any():
        raise LatentAtlasError(f"{what} has values beyond the 32-bit float range (±3.4e38) in row {int(np.argmax(too_big)) + 1}; "
                               "expected smaller numbers.")
    return out


def _load_npy(p: Path, what: str) -> np.ndarray:
    # The header is read first so a file of a billion rows or of objects is refused before any loading.
    try:
        with open(p, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(version)
    except (OSError, ValueError, EOFError, SyntaxError):
        raise LatentAtlasError(f"{what} could not be read as a .npy array; expected an (N, 2) array of numbers.") from None
    if dtype.kind not in "iuf":
        kind = _KIND_WORDS.get(dtype.kind, str(dtype))
        raise LatentAtlasError(f"{what} holds {kind} values; expected an (N, 2) array of numbers.")
    if len(shape) >= 1 and shape[0] > MAX_POINT_ROWS:
        raise LatentAtlasError(f"{what} has {shape[0]:,} rows; expected at most {MAX_POINT_ROWS:,}.")
    if len(shape) == 2 and shape[1] > 2:
        raise LatentAtlasError(f"{what} has {shape[1]} columns; expected 2 (x, y).")
    try:
        arr = np.load(p, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        raise LatentAtlasError(f"{what} could not be read as a .npy array; expected an (N, 2) array of numbers.") from None
    return np.asarray(arr, dtype=np.float64)


def _parses_as_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _split(line: str, delimiter: str | None) -> list[str]:
    return [f.strip() for f in line.split(delimiter)] if delimiter else line.split()


def _first_lines(p: Path, what: str, k: int) -> list[tuple[int, str]]:
    """The first ``k`` non-blank lines with their line numbers (from 1)."""
    found = []
    try:
        with open(p, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if line.strip():
                    found.append((number, line))
                    if len(found) == k:
                        break
    except (OSError, UnicodeDecodeError):
        raise LatentAtlasError(f"{what} could not be read as text; expected rows of two comma-separated numbers.") from None
    return found


def _load_csv(p: Path, what: str) -> np.ndarray:
    """Rows of two numbers separated by a comma (or by spaces when the first row has no comma)."""
    head = _first_lines(p, what, 2)
    header_line = None
    if head and not any(_parses_as_number(v) for v in _split(head[0][1], "," if "," in head[0][1] else None)):
        header_line = head[0][0]
        head = head[1:]
    if not head:
        raise LatentAtlasError(f"{what} has 0 rows; expected at least 2 points.")
    line = head[0][1]
    delimiter = "," if "," in line else None
    fields = _split(line, delimiter)
    if all(_parses_as_number(v) for v in fields) and len(fields) != 2:
        raise LatentAtlasError(f"{what} has {_count(len(fields), 'column')}; expected 2 (x, y).")
    try:
        with warnings.catch_warnings():
            # numpy warns that blank lines no longer count towards max_rows, which is what is wanted here
            warnings.simplefilter("ignore", UserWarning)
            return np.loadtxt(p, delimiter=delimiter, ndmin=2, dtype=np.float64, encoding="utf-8", comments=None,
                              skiprows=header_line or 0, max_rows=MAX_POINT_ROWS + 1)
    except (ValueError, UnicodeDecodeError):
        raise LatentAtlasError(_csv_parse_error(p, what, delimiter, header_line)) from None


def _csv_parse_error(p: Path, what: str, delimiter: str | None, header_line: int | None) -> str:
    """The sentence for a text file np.loadtxt refused: the first line that is not two numbers."""
    with open(p, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if number == header_line or not line.strip():
                continue
            fields = _split(line, delimiter)
            if len(fields) != 2 or not all(_parses_as_number(v) for v in fields):
                shown = line.strip()
                shown = shown if len(shown) <= 40 else shown[:37] + "..."
                return f"{what} could not be parsed at line {number} ({shown!r}); expected two numbers per row."
    return f"{what} could not be parsed; expected rows of two comma-separated numbers."


def load_points(path) -> np.ndarray:
    """A user's points as float32 (N, 2) from a .npy array or a .csv of two numbers per row.

    A .csv may start with one header row of non-numbers. Rows are counted from 1 in the messages, the
    header not counted. Nothing is unpickled.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise LatentAtlasError(f"points path {path!r} is not a path; expected a .npy or .csv file.")
    p = Path(path).expanduser()
    what = f"points file '{path}'"
    if p.suffix.lower() not in POINT_SUFFIXES:
        raise LatentAtlasError(f"{what} has the extension '{p.suffix}'; expected .npy or .csv.")
    if not p.is_file():
        raise LatentAtlasError(f"{what} does not exist; expected a .npy or .csv file of points.")
    arr = _load_npy(p, what) if p.suffix.lower() == ".npy" else _load_csv(p, what)
    return check_points(arr, what)


class PointSet:
    """A user's point set, sampled by drawing rows with replacement."""

    def __init__(self, path) -> None:
        self.points = load_points(path)
        self.path = str(Path(path).expanduser().resolve())

    def __len__(self) -> int:
        return len(self.points)

    def sample(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        n = check_int(_plain_int(n), "number of samples", 1, MAX_SAMPLES)
        return self.points[_generator(rng).integers(0, len(self.points), n)]


# -- the training stream -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Toy2D:
    """An endless, seeded stream of 2-D points from a named toy, a user's points or a custom mixture.

    ``name`` is one of ``TOYS``, "points" (then ``path`` names a .npy/.csv file) or "mixture" (then
    ``means``, ``sigmas`` and optionally ``weights`` define a 2-D GaussianMixture).
    """

    name: str = DEFAULT_TOY
    path: str | None = None
    means: tuple | None = None
    sigmas: tuple | float | None = None
    weights: tuple | None = None
    batch_size: int = 256
    seed: int = 0
    _source: object = field(default=None, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "batch_size", check_int(_plain_int(self.batch_size), "batch_size", 1, MAX_BATCH))
        object.__setattr__(self, "seed", check_int(_plain_int(self.seed), "seed", 0, MAX_SEED))
        kinds = TOYS + ("points", "mixture")
        if not isinstance(self.name, str) or self.name not in kinds:
            raise LatentAtlasError(f"toy {self.name!r} is unknown; expected one of {', '.join(kinds)}.")
        has_mixture = any(v is not None for v in (self.means, self.sigmas, self.weights))
        if self.name != "points" and self.path is not None:
            raise LatentAtlasError(f"toy '{self.name}' was given a path; expected a path only with the name 'points'.")
        if self.name != "mixture" and has_mixture:
            raise LatentAtlasError(f"toy '{self.name}' was given means, sigmas or weights; "
                                   "expected them only with the name 'mixture'.")
        if self.name == "points":
            if self.path is None:
                raise LatentAtlasError("toy 'points' has no path; expected a .npy or .csv file of points.")
            source = PointSet(self.path)
            object.__setattr__(self, "path", source.path)
        elif self.name == "mixture":
            if self.means is None:
                raise LatentAtlasError("toy 'mixture' has no means; expected K pairs (x, y).")
            source = GaussianMixture(self.means, 1.0 if self.sigmas is None else self.sigmas, self.weights)
            if source.dim != 2:
                raise LatentAtlasError(f"toy 'mixture' has means in {source.dim} dimensions; expected pairs (x, y).")
            object.__setattr__(self, "means", source.means)
            object.__setattr__(self, "sigmas", source.sigmas)
            object.__setattr__(self, "weights", source.weights)
        else:
            source = mixture_of(self.name) or self.name
        object.__setattr__(self, "_source", source)

    def __len__(self) -> int:  # an endless stream; the trainer only needs a size to report
        return self.batch_size

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if isinstance(self._source, GaussianMixture):
            return self._source.sample(n, rng)[0]
        if isinstance(self._source, PointSet):
            return self._source.sample(n, rng)
        return sample_named(self._source, n, rng)

    def batch_at(self, step: int) -> np.ndarray:
        """Training batch number ``step``: float32 (batch_size, 2), the same for the same (seed, step)."""
        step = check_int(_plain_int(step), "step", 0, MAX_STEPS)
        return self._draw(self.batch_size, np.random.default_rng([self.seed, step]))

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` evaluation points, float32 (n, 2), from a stream disjoint from every training batch.

        They depend on ``seed`` only, not on the training seed, so runs with different training
        seeds are evaluated on the same points.
        """
        n = check_int(_plain_int(n), "number of samples", 1, MAX_SAMPLES)
        seed = check_int(_plain_int(seed), "seed", 0, MAX_SEED)
        return self._draw(n, np.random.default_rng([seed, 0, _EVAL_STREAM_TAG]))

    @property
    def mixture(self) -> GaussianMixture | None:
        return self._source if isinstance(self._source, GaussianMixture) else None

    @property
    def spec(self) -> dict:
        """JSON-able; ``load_toy(spec)`` rebuilds this stream."""
        out = {"kind": "toy2d", "name": self.name, "batch_size": self.batch_size, "seed": self.seed}
        if self.name == "points":
            out["path"] = self.path
        if self.name == "mixture":
            out["means"] = [list(m) for m in self.means]
            out["sigmas"] = list(self.sigmas)
            out["weights"] = list(self.weights)
        return out


_SPEC_KEYS = ("kind", "name", "path", "means", "sigmas", "weights", "batch_size", "seed")


def _looks_like_path(s: str) -> bool:
    return any(sep in s for sep in ("/", os.sep)) or s.startswith((".", "~")) or Path(s).suffix != ""


def _toy_from_dict(spec: dict, batch_size: int, seed: int) -> Toy2D:
    unknown = sorted(str(k) for k in spec if k not in _SPEC_KEYS)
    if unknown:
        raise LatentAtlasError(f"toy spec has unknown keys {', '.join(unknown)}; expected only {', '.join(_SPEC_KEYS)}.")
    if spec.get("kind", "toy2d") != "toy2d":
        raise LatentAtlasError(f"toy spec has kind {spec.get('kind')!r}; expected 'toy2d'.")
    name = spec.get("name", DEFAULT_TOY)
    if not isinstance(name, str):
        raise LatentAtlasError(f"toy spec has name {name!r}; expected a string.")
    path = spec.get("path")
    if path is not None and not isinstance(path, str):
        raise LatentAtlasError(f"toy spec has path {path!r}; expected a string.")
    for key in ("means", "sigmas", "weights"):
        value = spec.get(key)
        if value is not None and not isinstance(value, (list, tuple, int, float)):
            raise LatentAtlasError(f"toy spec has {key} of type {type(value).__name__}; expected numbers in a list.")
    return Toy2D(name=name, path=path, means=spec.get("means"), sigmas=spec.get("sigmas"), weights=spec.get("weights"),
                 batch_size=spec.get("batch_size", batch_size), seed=spec.get("seed", seed))


def load_toy(spec: str | os.PathLike | dict = DEFAULT_TOY, batch_size: int = 256, seed: int = 0) -> Toy2D:
    """A toy stream from a toy name, a path to a .npy/.csv of points, or a dict from ``Toy2D.spec``.

    A spec dict's own ``batch_size`` and ``seed`` take precedence over the arguments.
    """
    if isinstance(spec, dict):
        return _toy_from_dict(spec, batch_size, seed)
    if isinstance(spec, str) and spec in TOYS:
        return Toy2D(name=spec, batch_size=batch_size, seed=seed)
    if isinstance(spec, os.PathLike) or (isinstance(spec, str) and _looks_like_path(spec)):
        return Toy2D(name="points", path=os.fspath(spec), batch_size=batch_size, seed=seed)
    raise LatentAtlasError(f"toy {spec!r} is unknown; expected one of {', '.join(TOYS)}, a .npy/.csv file of points, "
                           "or a spec dict.")


def _plain_int(value):
    """numpy integers pass as ints (a step counter is often one); anything else is left for check_int."""
    return int(value) if isinstance(value, np.integer) else value


def _generator(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
        return np.random.default_rng(0 if rng is None else int(rng))
    raise LatentAtlasError(f"rng must be a numpy Generator, an int seed or None, got {type(rng).__name__}.")
