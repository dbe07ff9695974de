"""What the flow view shows, as plain dicts and float32 arrays: a run's meta (objective, target, the view's
bounds, the evaluation's sampler table), the trajectories of any sampler at any NFE on the FM path, the
learned and (for a Gaussian mixture) the exact velocity field on a grid at any time t, and the log-density
of p_t on a grid for contours.

Grids cover the view bounds, a square that holds the target and the noise: value [i, j] of a ``grid``-sided
grid sits at the centre of cell (i, j), row i counted from the bottom (y grows with i) and column j from the
left (x grows with j); ``grid_points`` gives those centres. Time is the flow-matching time, t = 0 noise,
t = 1 data, x_t = (1 − t)·x0 + t·x1, whatever the run's objective.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import torch

from ...atlas import Run
from ...errors import LatentAtlasError
from ...limits import MAX_SEED, check_float, check_int
from ...models.samplers import SAMPLERS, STOCHASTIC, sample as run_sampler, steps_for
from . import jobs

MAX_N = 20_000  # trajectories drawn in one request
MAX_NFE = 1_000
MAX_GRID = 256
MAX_TARGET = 200_000
MAX_STATE_POINTS = 4_000_000  # recorded states × points in one trajectory answer (32 MB of float32)
NOISE_BOUND = 3.5  # the noise the view must hold: N(0, I) within ±3.5 (all but 1 in 2,000 points)
T_VP_MIN = 0.01  # a VP model's velocity (x − ε̂)/t is 0/0 at t = 0: it is drawn from t = 0.01 on
DEFAULT_SAMPLER = "euler"
DEFAULT_NFE = 30
DEFAULT_N = 2000
HIST_SAMPLES = 200_000  # points of p_t behind a histogram density
TRAJ_CACHE = 8  # trajectory answers kept per explorer
TRAJ_CACHE_BYTES = 128 << 20
FIELDS = ("model", "exact", "diff")
MAX_TABLE_ROWS = 1000


def min_nfe(sampler: str) -> int:
    """The fewest network evaluations ``sampler`` can run on."""
    for k in range(1, 4):
        try:
            steps_for(sampler, k)
            return k
        except LatentAtlasError:
            continue
    return 1


def _states(sampler: str, nfe: int) -> int:
    """How many states a trajectory of ``sampler`` within ``nfe`` records (an upper bound)."""
    return steps_for(sampler, nfe) + 2


class FlowExplorer:
    """For one version of a flow run: its model, its target and the view's bounds; trajectories are kept in
    a small cache (the page switches back and forth between samplers)."""

    def __init__(self, run: Run):
        self.run = run
        self.model = jobs.model_of(run)
        self.config = self.model.config
        if self.config.dim != 2:
            raise LatentAtlasError(f"run '{run.name}' is a flow model in {self.config.dim} dimensions; the flow view draws 2-D runs only")
        self.toy = jobs.target_of(run)
        self.mixture = self.toy.mixture
        self.bounds = self._bounds()
        self._lock = threading.Lock()  # one trajectory computed at a time (and its cache)
        self._hist_lock = threading.Lock()
        self._traj: OrderedDict[tuple, tuple[np.ndarray, np.ndarray, int, int]] = OrderedDict()
        self._hist_points: np.ndarray | None = None

    # -- the view's square --------------------------------------------------------------------------------
    def _bounds(self) -> dict[str, list[float]]:
        """A square holding the target (its 0.2 … 99.8 % quantiles of 4,096 samples, so a stray point of a
        user's file does not shrink the rest to a dot) and the noise (±3.5), with a 4 % margin."""
        pts = np.asarray(self.toy.sample(4096, seed=0), dtype=np.float64)
        lo = np.minimum(np.quantile(pts, 0.002, axis=0), -NOISE_BOUND)
        hi = np.maximum(np.quantile(pts, 0.998, axis=0), NOISE_BOUND)
        centre = (lo + hi) / 2
        half = float((hi - lo).max() / 2) * 1.04
        return {"x": [float(centre[0] - half), float(centre[0] + half)], "y": [float(centre[1] - half), float(centre[1] + half)]}

    def grid_points(self, grid: int) -> np.ndarray:
        """The centres of a ``grid`` × ``grid`` division of the bounds, float64 (grid·grid, 2), row by row
        from the bottom (index i·grid + j is row i, column j)."""
        (x0, x1), (y0, y1) = self.bounds["x"], self.bounds["y"]
        xs = x0 + (np.arange(grid) + 0.5) * (x1 - x0) / grid
        ys = y0 + (np.arange(grid) + 0.5) * (y1 - y0) / grid
        gx, gy = np.meshgrid(xs, ys)
        return np.stack([gx.ravel(), gy.ravel()], axis=1)

    # -- meta ------------------------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        c = self.config
        cfg = self.run.config()
        out: dict[str, Any] = {
            "run": self.run.name, "kind": jobs.KIND, "origin": cfg.get("origin"),
            "objective": c.objective, "schedule": c.schedule, "net": c.net,
            "data": cfg.get("data"), "target": self.toy.name, "mixture": self.mixture is not None,
            "samplers": list(SAMPLERS), "stochastic": list(STOCHASTIC), "min_nfe": {s: min_nfe(s) for s in SAMPLERS},
            "default": {"sampler": DEFAULT_SAMPLER, "nfe": DEFAULT_NFE, "n": DEFAULT_N},
            "bounds": self.bounds, "t_field_min": 0.0 if c.objective == "fm" else T_VP_MIN,
            "limits": {"n": MAX_N, "nfe": MAX_NFE, "grid": MAX_GRID, "state_points": MAX_STATE_POINTS},
            "train_steps": (cfg.get("train") or {}).get("steps"),
        }
        if self.mixture is not None:
            m = self.mixture
            out["modes"] = {"means": [list(r) for r in m.means], "sigmas": list(m.sigmas), "weights": list(m.weights)}
        out.update(self._metrics())
        return out

    def _metrics(self) -> dict[str, Any]:
        """The evaluation's sampler table (energy distance to the target per field, sampler and NFE) and
        its headline, when ``latentatlas flow eval`` has run; a damaged metrics file is said, not raised."""
        try:
            report = self.run.read_metrics()
        except LatentAtlasError as exc:
            return {"metrics": None, "metrics_error": str(exc)}
        if report is None:
            return {"metrics": None}
        rows = []
        raw = report.get("samplers")
        for r in (raw if isinstance(raw, list) else [])[:MAX_TABLE_ROWS]:
            if not isinstance(r, dict):
                continue
            ed = r.get("energy_distance") if isinstance(r.get("energy_distance"), dict) else {}
            row = {"field": _text(r.get("field")), "sampler": _text(r.get("sampler")), "nfe_budget": _num(r.get("nfe_budget")),
                   "nfe": _num(r.get("nfe")), "seconds": _num(r.get("seconds")), "energy_distance": _num(ed.get("value")),
                   "ci_low": _num(ed.get("ci_low")), "ci_high": _num(ed.get("ci_high")), "at_floor": r.get("at_floor") is True}
            rows.append(row)
        floor = report.get("noise_floor") if isinstance(report.get("noise_floor"), dict) else {}
        headline = {k: v for k, v in (report.get("headline") or {}).items() if isinstance(v, (int, float))}
        return {"metrics": {"samplers": rows, "noise_floor": _num(floor.get("quantile")), "headline": headline,
                            "n": _num(report.get("n"))}}

    # -- trajectories -----------------------------------------------------------------------------------
    def trajectories(self, sampler: str, nfe: int, n: int = DEFAULT_N, seed: int = 0) -> tuple[np.ndarray, np.ndarray, int, int]:
        """The trajectory of ``n`` noise points (``jobs.noise(n, seed)``) under ``sampler`` within ``nfe``
        network evaluations, on the FM path: float32 (k + 1, n, 2), the k + 1 times, the NFE counted and
        the solver steps."""
        check_int(nfe, "nfe", 1, MAX_NFE)
        check_int(n, "n", 1, MAX_N)
        check_int(seed, "seed", 0, MAX_SEED)
        if sampler not in SAMPLERS:
            raise LatentAtlasError(f"sampler '{str(sampler)[:40]}' is not one of {', '.join(SAMPLERS)}")
        if nfe < min_nfe(sampler):
            raise LatentAtlasError(f"nfe {nfe} is too few for sampler '{sampler}'; it needs at least {min_nfe(sampler)}")
        states = _states(sampler, nfe)
        if states * n > MAX_STATE_POINTS:
            raise LatentAtlasError(f"{n:,} points × about {states:,} recorded states of {sampler} at {nfe} NFE is more than "
                                   f"{MAX_STATE_POINTS:,} positions; ask for at most {MAX_STATE_POINTS // states:,} points")
        key = (sampler, nfe, n, seed)
        with self._lock:
            if key in self._traj:
                self._traj.move_to_end(key)
                return self._traj[key]
            c = self.config
            x0 = jobs.noise(n, seed, c.dim)
            res = run_sampler(self.model.prediction(), x0, sampler, nfe, objective=c.objective, schedule=c.schedule,
                              train_timesteps=c.train_timesteps, seed=seed, trajectory=True)
            traj = np.ascontiguousarray(res.trajectory.detach().cpu().numpy(), dtype=np.float32)
            if not np.isfinite(traj).all():
                raise LatentAtlasError(f"sampler '{sampler}' at {nfe} NFE produced NaN or infinite states; try more steps or another sampler")
            value = (traj, np.asarray(res.times, dtype=np.float64), int(res.nfe), int(res.steps))
            self._traj[key] = value
            while len(self._traj) > TRAJ_CACHE or (len(self._traj) > 1 and sum(v[0].nbytes for v in self._traj.values()) > TRAJ_CACHE_BYTES):
                self._traj.popitem(last=False)
            return value

    # -- fields ------------------------------------------------------------------------------------------
    def _check_grid(self, grid: int) -> int:
        return check_int(grid, "grid", 2, MAX_GRID)

    def _need_mixture(self, what: str) -> None:
        if self.mixture is None:
            raise LatentAtlasError(f"the target of run '{self.run.name}' ({self.toy.name}) is not a Gaussian mixture, so it has no {what}; "
                                   "ask for which=model")

    def field_time(self, t: float) -> float:
        """The time the model's field is evaluated at for a scrubbed t (a VP model's field is 0/0 at t = 0)."""
        return t if self.config.objective == "fm" else max(t, T_VP_MIN)

    @torch.no_grad()
    def model_velocity(self, x: np.ndarray, t: float) -> np.ndarray:
        pred = self.model.prediction()
        v = pred.velocity(torch.as_tensor(x, dtype=torch.float32), float(t))
        return v.detach().cpu().numpy().astype(np.float64)

    def exact_velocity(self, x: np.ndarray, t: float) -> np.ndarray:
        self._need_mixture("exact field")
        v = jobs.ExactField(self.mixture).velocity(torch.as_tensor(x, dtype=torch.float64), float(t))
        return v.detach().cpu().numpy()

    def field(self, t: float, grid: int = 64, which: str = "model") -> tuple[np.ndarray, float]:
        """The velocity at time t on the grid, float32 (grid, grid, 2): the model's, the exact one or
        model − exact; and the time the model was asked at (``field_time``)."""
        t = check_float(t, "t", 0.0, 1.0)
        grid = self._check_grid(grid)
        if which not in FIELDS:
            raise LatentAtlasError(f"field '{str(which)[:40]}' is not one of {', '.join(FIELDS)}")
        if which != "model":
            self._need_mixture("exact field" if which == "exact" else "exact field to compare with")
        pts = self.grid_points(grid)
        tm = self.field_time(t)
        if which == "model":
            v = self.model_velocity(pts, tm)
        elif which == "exact":
            v = self.exact_velocity(pts, t)
        else:
            v = self.model_velocity(pts, tm) - self.exact_velocity(pts, tm)
        if not np.isfinite(v).all():
            raise LatentAtlasError(f"the {which} field of run '{self.run.name}' at t = {t:g} has NaN or infinite values")
        return v.reshape(grid, grid, 2).astype(np.float32), (t if which == "exact" else tm)

    # -- densities ---------------------------------------------------------------------------------------
    def density(self, t: float = 1.0, grid: int = 96) -> tuple[np.ndarray, str]:
        """log p_t on the grid, float32 (grid, grid), and how it was found: ``exact`` for a Gaussian mixture
        (``analysis.flow_exact.fm_marginal_log_prob``), ``histogram`` otherwise (200,000 draws of
        x_t = (1 − t)·x0 + t·x1 binned on the grid and lightly smoothed; an empty cell reads 10⁻⁶ of the
        largest density)."""
        t = check_float(t, "t", 0.0, 1.0)
        grid = self._check_grid(grid)
        if self.mixture is not None:
            from ...analysis.flow_exact import fm_marginal_log_prob

            lp = fm_marginal_log_prob(self.mixture, torch.from_numpy(self.grid_points(grid)), t).numpy()
            return lp.reshape(grid, grid).astype(np.float32), "exact"
        return self._histogram(t, grid), "histogram"

    def _histogram(self, t: float, grid: int) -> np.ndarray:
        from scipy.ndimage import gaussian_filter

        with self._hist_lock:
            if self._hist_points is None:
                self._hist_points = np.asarray(self.toy.sample(HIST_SAMPLES, seed=0), dtype=np.float64)
            x1 = self._hist_points
        x0 = np.random.default_rng([0, 5]).standard_normal(x1.shape)
        xt = (1 - t) * x0 + t * x1
        (a0, a1), (b0, b1) = self.bounds["x"], self.bounds["y"]
        counts, _, _ = np.histogram2d(xt[:, 1], xt[:, 0], bins=grid, range=[[b0, b1], [a0, a1]])  # rows: y
        counts = gaussian_filter(counts, sigma=max(0.6, grid / 96))
        area = (a1 - a0) * (b1 - b0) / (grid * grid)
        dens = counts / (len(xt) * area)
        top = float(dens.max())
        if not math.isfinite(top) or top <= 0:
            return np.full((grid, grid), -30.0, dtype=np.float32)
        return np.log(np.maximum(dens, top * 1e-6)).astype(np.float32)

    # -- the target -----------------------------------------------------------------------------------------
    def target(self, n: int = DEFAULT_N, seed: int = 0) -> np.ndarray:
        check_int(n, "n", 1, MAX_TARGET)
        check_int(seed, "seed", 0, MAX_SEED)
        return np.asarray(self.toy.sample(n, seed=seed), dtype=np.float32)


def _text(v) -> str | None:
    return v[:40] if isinstance(v, str) else None


def _num(v) -> float | int | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return v if math.isfinite(v) else None
