"""What the explorer shows about an autoencoder run: its latent table, projections, decoded images,
the inspector's record, traversal ranges, interpolations and PCA directions.

``VAEExplorer(run)`` loads lazily what each question needs (the model, the dataset, the ``eval``
latents) and answers with plain dicts and arrays, so the server's routes only check requests and a
notebook can use it directly. Bad input raises :class:`LatentAtlasError` (one sentence; the server
answers 422) or :class:`NotFound` (404).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...atlas import Run
from ...errors import LatentAtlasError, NotFound

PROJECTION_METHODS = ("pca", "umap", "tsne")
INTERPOLATIONS = ("lerp", "slerp")
MAX_ABS_Z = 1e3
MAX_STEPS = 64
# table columns that are not factors (everything else in the per-row table is a factor or label)
NON_FACTOR_COLUMNS = ("index", "label", "recon_error")


def _cell(v) -> int | float | None:
    """A per-row table value for JSON: a whole number as int, NaN as None."""
    v = float(v)
    if not np.isfinite(v):
        return None
    return int(v) if v.is_integer() else v


@dataclass
class Latents:
    """The ``eval`` latent set of a run: arrays plus the per-row table."""

    mu: np.ndarray  # (N, D) float32
    logvar: np.ndarray | None
    recon_nll: np.ndarray | None
    rows: Any  # pandas DataFrame

    @property
    def n(self) -> int:
        return int(self.mu.shape[0])

    @property
    def dim(self) -> int:
        return int(self.mu.shape[1])


class VAEExplorer:
    def __init__(self, run: Run):
        self.run = run
        self._lock = threading.RLock()
        self._model = self._data = self._latents = self._inputs = None

    # -- lazily loaded pieces ----------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        return self.run.config()

    @property
    def has_latents(self) -> bool:
        return self.run.has_latents()

    @property
    def latents(self) -> Latents:
        with self._lock:
            if self._latents is None:
                if not self.has_latents:
                    raise NotFound(f"run '{self.run.name}' has no latents yet; run `latentatlas eval {self.run.name}`.")
                arrays, rows = self.run.read_latents("eval")
                width = (self.config.get("model") or {}).get("latent_dim")
                if isinstance(width, int) and arrays["mu"].shape[1] != width:
                    raise LatentAtlasError(f"run '{self.run.name}' stores latents of width {arrays['mu'].shape[1]} for a model of {width} "
                                           f"latent dims; re-run `latentatlas eval {self.run.name}`")
                self._latents = Latents(mu=np.ascontiguousarray(arrays["mu"], dtype=np.float32), logvar=arrays.get("logvar"),
                                        recon_nll=arrays.get("recon_nll"), rows=rows)
            return self._latents

    @property
    def model(self):
        with self._lock:
            if self._model is None:
                if not self.run.has_model:
                    raise NotFound(f"run '{self.run.name}' has no trained model yet; train it first.")
                model = self.run.load_model(device="cpu")
                if not hasattr(model, "decode_mean"):
                    raise LatentAtlasError(f"run '{self.run.name}' holds a {self.config.get('kind', '?')} model, which has no decoder to draw images with.")
                self._model = model
            return self._model

    @property
    def dataset(self):
        """The run's built-in dataset (sprites, digits). Data read from a path is never opened here: a
        run's config is untrusted, and ``eval`` stored what the explorer shows of it in the run."""
        from ...data import NAMES, load_dataset

        with self._lock:
            if self._data is None:
                spec = self.config.get("data")
                kind = spec.get("kind") if isinstance(spec, dict) else spec
                if kind not in NAMES or (isinstance(spec, dict) and "path" in spec):
                    raise NotFound(f"run '{self.run.name}' was trained on data read from a path, which the explorer does not open; "
                                   f"re-run `latentatlas eval {self.run.name}` to store its evaluated inputs in the run")
                self._data = load_dataset(spec)
            return self._data

    @property
    def inputs(self) -> np.ndarray | None:
        with self._lock:
            if self._inputs is None:
                self._inputs = self.run.read_inputs()
                if self._inputs is not None and len(self._inputs) != self.latents.n:
                    raise LatentAtlasError(f"run '{self.run.name}' stores {len(self._inputs)} inputs for {self.latents.n} latents; "
                                           f"re-run `latentatlas eval {self.run.name}`")
            return self._inputs

    # -- checks ----------------------------------------------------------------------------------------
    def check_row(self, row: int, what: str = "row") -> int:
        n = self.latents.n
        if not 0 <= row < n:
            raise LatentAtlasError(f"{what} {row} is out of range; this run's latent table has rows 0..{n - 1}.")
        return row

    def check_z(self, z: list[float]) -> np.ndarray:
        dim = self.model.latent_dim
        if len(z) != dim:
            raise LatentAtlasError(f"z has {len(z)} values, but this model's latent has {dim} dimensions.")
        a = np.asarray(z, dtype=np.float64)
        if not np.all(np.isfinite(a)):
            raise LatentAtlasError("z holds NaN or infinite values; expected finite numbers.")
        if a.size and float(np.abs(a).max()) > MAX_ABS_Z:
            raise LatentAtlasError(f"z holds values beyond ±{MAX_ABS_Z:g}; expected latent values of moderate size.")
        return a.astype(np.float32)

    # -- what the run page shows ---------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """The VAE part of ``GET /api/runs/{run}``: latent width, traversal ranges, factors."""
        from ...analysis.traversal import traversal_range

        cfg = self.config
        metrics = self.run.read_metrics()
        lat = self.latents if self.has_latents else None
        traversal = None
        if lat is not None and lat.n:
            lo, hi = traversal_range(lat.mu)
            traversal = {"lo": lo.tolist(), "hi": hi.tolist()}
        return {
            "has_latents": lat is not None,
            "n": lat.n if lat is not None else None,
            "latent_dim": (cfg.get("model") or {}).get("latent_dim") or (lat.dim if lat is not None else None),
            "dims_by_kl": (metrics or {}).get("dims_by_kl"),
            "traversal": traversal,
            "factors": self.factor_info(lat),
            "has_images": cfg.get("kind") != "embeddings" and (self.run.has_model or self.run.read_inputs() is not None),
            "imported": cfg.get("kind") == "embeddings",
        }

    def factor_info(self, lat: Latents | None = None) -> list[dict[str, Any]]:
        meta = self.run.read_latent_meta() if lat is not None else None
        if meta is not None:
            return meta["factors"]
        try:
            data = self.dataset
            names, sizes = getattr(data, "factor_names", ()), getattr(data, "factor_sizes", ())
            value_names = getattr(data, "factor_value_names", lambda: {})()
            return [{"name": str(n), "size": int(s), "value_names": list(value_names[n]) if n in value_names else None}
                    for n, s in zip(names, sizes)]
        except LatentAtlasError:
            if lat is None:
                return []
            cols = [c for c in lat.rows.columns if c not in NON_FACTOR_COLUMNS]
            return [{"name": str(c), "size": int(lat.rows[c].max()) + 1} for c in cols]

    # -- the latent table ----------------------------------------------------------------------------
    def table(self) -> dict[str, Any]:
        lat = self.latents
        columns: dict[str, list] = {}
        for col in lat.rows.columns:
            values = lat.rows[col].to_numpy()
            columns[str(col)] = values.astype(np.int64).tolist() if values.dtype.kind in "biu" else values.astype(np.float64).tolist()
        return {"n": lat.n, "dim": lat.dim, "columns": columns, "has_logvar": lat.logvar is not None}

    def table_meta(self) -> dict[str, Any]:
        lat = self.latents
        return {"n": lat.n, "dim": lat.dim, "columns": [str(c) for c in lat.rows.columns], "has_logvar": lat.logvar is not None}

    def column(self, name: str) -> np.ndarray:
        lat = self.latents
        if name not in lat.rows.columns:
            raise NotFound(f"run {self.run.name} has no per-row column '{name}'; it has: {', '.join(map(str, lat.rows.columns))}.")
        return lat.rows[name].to_numpy()

    def record(self, row: int) -> dict[str, Any]:
        """Everything stored about one row of the latent table (the inspector)."""
        lat = self.latents
        self.check_row(row)
        record = lat.rows.iloc[row]
        factors = {str(c): _cell(record[c]) for c in lat.rows.columns if c not in NON_FACTOR_COLUMNS}
        names = {f["name"]: f.get("value_names") for f in self.factor_info(lat)}
        factor_names = {k: names[k][v] for k, v in factors.items() if names.get(k) and isinstance(v, int) and 0 <= v < len(names[k])}
        recon = record["recon_error"] if "recon_error" in lat.rows.columns else (lat.recon_nll[row] if lat.recon_nll is not None else None)
        return {
            "row": row,
            "index": int(record["index"]),
            "label": int(record["label"]) if "label" in lat.rows.columns else None,
            "factors": factors,
            "factor_names": factor_names,
            "mu": lat.mu[row].tolist(),
            "sigma": np.exp(0.5 * lat.logvar[row].astype(np.float64)).tolist() if lat.logvar is not None else None,
            "recon_error": None if recon is None else float(recon),
        }

    # -- projections -----------------------------------------------------------------------------------
    def projection(self, method: str, compute: bool = True, params: dict[str, Any] | None = None) -> np.ndarray | None:
        """The stored 2-D projection of the latents by ``method`` (with ``params``: UMAP's n_neighbors,
        min_dist, metric; t-SNE's perplexity, metric); computed and written into the run when missing and
        ``compute`` (else None)."""
        from .jobs import compute_projection, projection_key

        if method not in PROJECTION_METHODS:
            raise LatentAtlasError(f"projection method '{method}' is unknown; expected one of {', '.join(PROJECTION_METHODS)}.")
        key, _ = projection_key(method, params)
        lat = self.latents
        stored = self.run.read_projection(key)
        if stored is not None and stored[0].shape == (lat.n, 2):
            return stored[0]
        if not compute:
            return None
        if lat.dim < 2:
            raise LatentAtlasError(f"run '{self.run.name}' has a {lat.dim}-dimensional latent; a 2-D projection needs at least 2.")
        return compute_projection(self.run, lat.mu, method, seed=0, params=params)

    def kept(self, method: str, params: dict[str, Any] | None = None) -> np.ndarray | None:
        """Per point, the share of its 10 nearest latent-space neighbours that projection ``method`` keeps
        among its 10 nearest on the map; None when the stored projection predates it."""
        from .jobs import projection_key

        if self.projection(method, compute=False, params=params) is None:
            return None
        return self.run.read_projection_kept(projection_key(method, params)[0])

    # -- nearest neighbours in the full latent space --------------------------------------------------
    def neighbours(self, row: int, k: int = 10, metric: str = "cosine") -> dict[str, Any]:
        """The ``k`` rows nearest ``row`` in the latent space itself (not on the map), with distances."""
        from ...analysis.neighbours import METRICS, nearest

        lat = self.latents
        self.check_row(row)
        if metric not in METRICS:
            raise LatentAtlasError(f"metric '{metric}' is unknown; expected one of {', '.join(METRICS)}.")
        if not 1 <= k <= 100:
            raise LatentAtlasError(f"k {k} is out of range; expected 1..100.")
        rows, dist = nearest(lat.mu, row, k=k, metric=metric)
        names = {f["name"]: f.get("value_names") for f in self.factor_info(lat)}
        cols = [c for c in lat.rows.columns if c not in NON_FACTOR_COLUMNS]
        out = []
        for r, d in zip(rows.tolist(), dist.tolist()):
            rec = lat.rows.iloc[r]
            facts = {}
            for c in cols:
                v = _cell(rec[c])
                nm = names.get(str(c))
                facts[str(c)] = nm[v] if nm and isinstance(v, int) and 0 <= v < len(nm) else v
            out.append({"row": r, "index": int(rec["index"]), "distance": d, "factors": facts})
        return {"row": row, "k": len(out), "metric": metric, "dim": lat.dim, "neighbours": out}

    # -- images ----------------------------------------------------------------------------------------
    def decode(self, z: np.ndarray) -> np.ndarray:
        """Decoded means of latent codes (K, D) as (K, C, H, W) floats in [0, 1]."""
        model = self.model
        with torch.inference_mode():
            out = model.decode_mean(torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32)).reshape(-1, model.latent_dim))
        return out.float().cpu().numpy()

    def input_image(self, row: int) -> np.ndarray:
        """The dataset sample behind latent-table row ``row``, as (C, H, W)."""
        lat = self.latents
        self.check_row(row)
        stored = self.inputs
        if stored is not None:
            return stored[row].astype(np.float32) / 255.0
        index = int(lat.rows["index"].iloc[row])
        data = self.dataset
        if not 0 <= index < len(data):
            raise LatentAtlasError(f"row {row} points at dataset index {index}, but the run's data has {len(data)} samples; "
                                   f"re-run `latentatlas eval {self.run.name}`.")
        x = np.asarray(data.get(np.array([index])))
        if x.ndim != 4:
            raise LatentAtlasError(f"run '{self.run.name}' was trained on vectors, not images, so there is no picture to show.")
        return x[0]

    def reconstruction(self, row: int) -> np.ndarray:
        self.check_row(row)
        return self.decode(self.latents.mu[row])[0]

    # -- interpolation and directions -----------------------------------------------------------------
    def interpolation(self, a: int, b: int, steps: int, method: str) -> np.ndarray:
        from ...analysis.traversal import interpolate

        lat = self.latents
        self.check_row(a, "row a")
        self.check_row(b, "row b")
        if not 2 <= steps <= MAX_STEPS:
            raise LatentAtlasError(f"steps {steps} is out of range; expected 2..{MAX_STEPS}.")
        if method not in INTERPOLATIONS:
            raise LatentAtlasError(f"method '{method}' is unknown; expected 'lerp' or 'slerp'.")
        return interpolate(lat.mu[a], lat.mu[b], steps, method=method).astype(np.float32)

    def interpolation_path(self, a: int, b: int, steps: int, method: str) -> dict[str, Any]:
        """The codes between rows ``a`` and ``b`` and the stored row nearest each (for the map's path)."""
        z = self.interpolation(a, b, steps, method)
        mu = self.latents.mu
        d2 = ((z[:, None, :].astype(np.float64) - mu[None, :, :]) ** 2).sum(-1)
        path_rows = d2.argmin(1)
        path_rows[0], path_rows[-1] = a, b  # the ends are the rows asked for, even where rows tie
        return {"a": a, "b": b, "steps": steps, "method": method, "z": z.tolist(), "path_rows": path_rows.tolist()}

    def directions(self, k: int | None = None) -> dict[str, Any]:
        """GANSpace PCA directions of the stored latents."""
        from ...analysis.projections import pca_directions

        lat = self.latents
        limit = min(lat.n, lat.dim)
        if k is None:
            k = min(limit, 10)
        if not 1 <= k <= limit:
            raise LatentAtlasError(f"k {k} is out of range; expected 1..{limit} for latents of shape ({lat.n}, {lat.dim}).")
        components, ratio, mean, std = pca_directions(lat.mu, k)
        return {"k": k, "components": components.tolist(), "explained_variance_ratio": ratio.tolist(),
                "mean": mean.tolist(), "std": std.tolist()}
