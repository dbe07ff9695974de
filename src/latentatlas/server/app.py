"""The explorer's HTTP API: JSON and PNG under ``/api``, OpenAPI docs at ``/docs``.

Every run is looked up through ``Atlas.run`` (which checks the name), every file served is resolved
inside the atlas, and every error reaches the client as ``{"detail": "<one sentence>"}``.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from .. import __version__
from .._io import to_plain
from ..atlas import Atlas, Run
from ..errors import LatentAtlasError
from .cache import Latents, RunCache
from .images import image_png, strip_png

PROJECTION_METHODS = ("pca", "umap", "tsne")
MAX_ABS_Z = 1e3
MAX_STEPS = 64
_FIGURE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,123}\.png$")


class ApiError(Exception):
    """An answer other than 200: an HTTP status and one sentence."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


class DecodeBody(BaseModel):
    z: list[float]


class InterpolateBody(BaseModel):
    a: int
    b: int
    steps: int = 8
    method: Literal["lerp", "slerp"] = "lerp"


def _json(obj: Any) -> JSONResponse:
    return JSONResponse(to_plain(obj, nonfinite_as_none=True))


def _png(data: bytes) -> Response:
    return Response(content=data, media_type="image/png")


def _float32_bytes(a: np.ndarray) -> Response:
    a = np.ascontiguousarray(a, dtype="<f4")
    return Response(content=a.tobytes(), media_type="application/octet-stream",
                    headers={"X-Shape": ",".join(str(s) for s in a.shape)})


def _validation_sentence(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "the request is invalid."
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    where = ".".join(loc) or "the request body"
    msg = str(first.get("msg", "is invalid")).rstrip(".")
    return f"parameter '{where}' is invalid: {msg[0].lower() + msg[1:] if msg else 'bad value'}."


def create_app(atlas_root: str | os.PathLike | None = None) -> FastAPI:
    atlas = Atlas(atlas_root)
    root = atlas.root.resolve()
    cache = RunCache()
    # docs_url=None: FastAPI's default /docs loads Swagger UI from a CDN; frontend.py serves it locally.
    app = FastAPI(title="latentatlas", version=__version__, docs_url=None, redoc_url=None,
                  description="Browse the runs of a latentatlas atlas: metrics, latents, projections, decoded images.")
    app.state.atlas = atlas
    app.state.cache = cache

    # -- errors: one sentence, never a traceback -----------------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(LatentAtlasError)
    async def _latentatlas_error(request: Request, exc: LatentAtlasError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        return JSONResponse({"detail": _validation_sentence(exc)}, status_code=422)

    # -- lookups ---------------------------------------------------------------------------------------
    def get_run(name: str) -> Run:
        try:
            return atlas.run(name)  # checks the name too
        except LatentAtlasError as exc:
            raise ApiError(404, str(exc)) from None

    def get_latents(run: Run) -> Latents:
        if not (run.latents_dir / "eval.safetensors").is_file():
            raise ApiError(404, f"run '{run.name}' has no latents yet; run `latentatlas eval {run.name}`.")
        return cache.latents(run)

    def get_model(run: Run):
        if not run.has_model:
            raise ApiError(404, f"run '{run.name}' has no trained model yet; train it first.")
        model = cache.model(run)
        if not hasattr(model, "decode_mean"):
            raise ApiError(422, f"run '{run.name}' holds a {run.config().get('kind', '?')} model, which has no decoder to draw images with.")
        return model

    def check_row(lat: Latents, row: int, what: str = "row") -> int:
        if not 0 <= row < lat.n:
            raise ApiError(422, f"{what} {row} is out of range; this run's latent table has rows 0..{lat.n - 1}.")
        return row

    def get_row(run: str, row: int) -> tuple[Run, Latents]:
        r = get_run(run)
        lat = get_latents(r)
        check_row(lat, row)
        return r, lat

    def check_z(z: list[float], dim: int) -> np.ndarray:
        if len(z) != dim:
            raise ApiError(422, f"z has {len(z)} values, but this model's latent has {dim} dimensions.")
        a = np.asarray(z, dtype=np.float64)
        if not np.all(np.isfinite(a)):
            raise ApiError(422, "z holds NaN or infinite values; expected finite numbers.")
        if a.size and float(np.abs(a).max()) > MAX_ABS_Z:
            raise ApiError(422, f"z holds values beyond ±{MAX_ABS_Z:g}; expected latent values of moderate size.")
        return a.astype(np.float32)

    def decode(model, z: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = model.decode_mean(torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32)).reshape(-1, model.latent_dim))
        return out.float().cpu().numpy()

    def factor_info(run: Run, lat: Latents | None) -> list[dict[str, Any]]:
        try:
            data = cache.dataset(run)
            names, sizes = getattr(data, "factor_names", ()), getattr(data, "factor_sizes", ())
            value_names = getattr(data, "factor_value_names", lambda: {})()
            return [{"name": str(n), "size": int(s), "value_names": list(value_names[n]) if n in value_names else None}
                    for n, s in zip(names, sizes)]
        except LatentAtlasError:
            if lat is None:
                return []
            cols = [c for c in lat.rows.columns if c not in ("index", "label", "recon_error")]
            return [{"name": str(c), "size": int(lat.rows[c].max()) + 1} for c in cols]

    def interpolation(run: Run, a: int, b: int, steps: int, method: str) -> tuple[Latents, np.ndarray]:
        from ..analysis.traversal import interpolate

        lat = get_latents(run)
        check_row(lat, a, "row a")
        check_row(lat, b, "row b")
        if not 2 <= steps <= MAX_STEPS:
            raise ApiError(422, f"steps {steps} is out of range; expected 2..{MAX_STEPS}.")
        if method not in ("lerp", "slerp"):
            raise ApiError(422, f"method '{method}' is unknown; expected 'lerp' or 'slerp'.")
        return lat, interpolate(lat.mu[a], lat.mu[b], steps, method=method).astype(np.float32)

    # -- routes ------------------------------------------------------------------------------------------
    @app.get("/api/runs", summary="Every run in the atlas with its headline metrics")
    def list_runs():
        return _json([dataclasses.asdict(s) for s in atlas.summaries()])

    @app.get("/api/runs/{run}", summary="A run's config, what it has, and its traversal ranges")
    def run_detail(run: str):
        from ..analysis.traversal import traversal_range

        r = get_run(run)
        cfg = r.config()
        metrics = r.read_metrics()
        has_latents = (r.latents_dir / "eval.safetensors").is_file()
        lat = get_latents(r) if has_latents else None
        latent_dim = (cfg.get("model") or {}).get("latent_dim") or (lat.dim if lat is not None else None)
        traversal = None
        if lat is not None and lat.n:
            lo, hi = traversal_range(lat.mu)
            traversal = {"lo": lo.tolist(), "hi": hi.tolist()}
        figures = []
        if r.figures_dir.is_dir():
            figures = sorted(p.name for p in r.figures_dir.iterdir() if _FIGURE.match(p.name) and _inside(p, root))
        return _json({
            "name": r.name,
            "config": cfg,
            "has_model": r.has_model,
            "has_metrics": metrics is not None,
            "has_latents": has_latents,
            "n": lat.n if lat is not None else None,
            "latent_dim": latent_dim,
            "dims_by_kl": (metrics or {}).get("dims_by_kl"),
            "traversal": traversal,
            "factors": factor_info(r, lat),
            "figures": figures,
        })

    @app.get("/api/runs/{run}/metrics", summary="The run's metrics.json")
    def run_metrics(run: str):
        r = get_run(run)
        metrics = r.read_metrics()
        if metrics is None:
            raise ApiError(404, f"run {r.name} has no metrics yet; run `latentatlas eval {r.name}`.")
        return _json(metrics)

    @app.get("/api/runs/{run}/history", summary="The training log, one row per logged step")
    def run_history(run: str):
        return _json(get_run(run).read_history())

    @app.get("/api/runs/{run}/latents", summary="The per-row table of the stored latents (not the floats)")
    def run_latents(run: str):
        lat = get_latents(get_run(run))
        columns: dict[str, list] = {}
        for col in lat.rows.columns:
            values = lat.rows[col].to_numpy()
            columns[str(col)] = values.astype(np.int64).tolist() if values.dtype.kind in "biu" else values.astype(np.float64).tolist()
        return _json({"n": lat.n, "dim": lat.dim, "columns": columns,
                      "has_logvar": lat.logvar is not None})

    @app.get("/api/runs/{run}/latents/meta", summary="Row count, latent width and the names of the per-row columns")
    def run_latents_meta(run: str):
        lat = get_latents(get_run(run))
        return _json({"n": lat.n, "dim": lat.dim, "columns": [str(c) for c in lat.rows.columns],
                      "has_logvar": lat.logvar is not None})

    @app.get("/api/runs/{run}/latents/column/{name}.bin", summary="One per-row column as little-endian float32 (N)",
             response_class=Response)
    def run_latents_column(run: str, name: str):
        lat = get_latents(get_run(run))
        if name not in lat.rows.columns:
            raise ApiError(404, f"run {run} has no per-row column '{name}'; it has: {', '.join(map(str, lat.rows.columns))}.")
        return _float32_bytes(lat.rows[name].to_numpy())

    @app.get("/api/runs/{run}/latents/mu.bin", summary="Posterior means as little-endian float32 (N×D)",
             response_class=Response)
    def run_mu(run: str):
        return _float32_bytes(get_latents(get_run(run)).mu)

    @app.get("/api/runs/{run}/projection/{method}.bin", summary="2-D projection as little-endian float32 (N×2)",
             response_class=Response)
    def run_projection(run: str, method: str):
        from ..analysis.projections import project

        if method not in PROJECTION_METHODS:
            raise ApiError(422, f"projection method '{method}' is unknown; expected one of {', '.join(PROJECTION_METHODS)}.")
        r = get_run(run)
        lat = get_latents(r)
        key = f"eval-{method}"
        # one lock per run and method: concurrent first requests compute the projection once
        with cache.key_lock(("projection", r.name, method)):
            stored = r.read_projection(key)
            if stored is not None and stored[0].shape == (lat.n, 2):
                return _float32_bytes(stored[0])
            if lat.dim < 2:
                raise ApiError(422, f"run '{r.name}' has a {lat.dim}-dimensional latent; a 2-D projection needs at least 2.")
            proj = project(lat.mu, method=method, n_components=2, seed=0)
            params = {"method": method, "params": proj.params, "explained_variance": proj.explained_variance,
                      "n": lat.n, "latents": "eval"}
            r.write_projection(key, proj.coords, params)
            return _float32_bytes(proj.coords)

    @app.get("/api/runs/{run}/figures/{name}", summary="A static PNG from the run's figures folder",
             response_class=Response)
    def run_figure(run: str, name: str, request: Request):
        raw = request.scope.get("raw_path", b"").lower()
        if b"%2f" in raw or b"%5c" in raw or "/" in name or "\\" in name:
            raise ApiError(422, "figure name must be a plain file name, without path separators.")
        if ".." in name or not _FIGURE.match(name):
            raise ApiError(422, f"figure name '{name}' is not allowed; expected a plain file name ending in .png.")
        r = get_run(run)
        path = r.figures_dir / name
        if not path.is_file() or not _inside(path, root):
            raise ApiError(404, f"run '{r.name}' has no figure '{name}'.")
        return _png(path.resolve().read_bytes())

    @app.get("/api/runs/{run}/input/{row}.png", summary="The dataset image behind a latent-table row",
             response_class=Response)
    def run_input(run: str, row: int):
        r, lat = get_row(run, row)
        index = int(lat.rows["index"].iloc[row])
        data = cache.dataset(r)
        if not 0 <= index < len(data):
            raise ApiError(422, f"row {row} points at dataset index {index}, but the run's data has {len(data)} samples; re-run `latentatlas eval {r.name}`.")
        x = np.asarray(data.get(np.array([index])))
        if x.ndim != 4:
            raise ApiError(422, f"run '{r.name}' was trained on vectors, not images, so there is no picture to show.")
        return _png(image_png(x[0]))

    @app.get("/api/runs/{run}/reconstruction/{row}.png", summary="decode(mu[row]) as a PNG",
             response_class=Response)
    def run_reconstruction(run: str, row: int):
        r, lat = get_row(run, row)
        model = get_model(r)
        return _png(image_png(decode(model, lat.mu[row])[0]))

    @app.get("/api/runs/{run}/inspect/{row}", summary="Everything stored about one latent-table row")
    def run_inspect(run: str, row: int):
        _, lat = get_row(run, row)
        record = lat.rows.iloc[row]
        factors = {}
        for col in lat.rows.columns:
            if col not in ("index", "label", "recon_error"):
                factors[str(col)] = int(record[col])
        recon = record["recon_error"] if "recon_error" in lat.rows.columns else (lat.recon_nll[row] if lat.recon_nll is not None else None)
        return _json({
            "row": row,
            "index": int(record["index"]),
            "label": int(record["label"]) if "label" in lat.rows.columns else None,
            "factors": factors,
            "mu": lat.mu[row].tolist(),
            "sigma": np.exp(0.5 * lat.logvar[row].astype(np.float64)).tolist() if lat.logvar is not None else None,
            "recon_error": None if recon is None else float(recon),
        })

    @app.post("/api/runs/{run}/decode", summary="Decode a latent vector to a PNG", response_class=Response)
    def run_decode(run: str, body: DecodeBody):
        r = get_run(run)
        model = get_model(r)
        return _png(image_png(decode(model, check_z(body.z, model.latent_dim))[0]))

    @app.get("/api/runs/{run}/decode.png", summary="Decode ?z=0.1,0.2,... to a PNG (for an <img> tag)",
             response_class=Response)
    def run_decode_get(run: str, z: str = Query(..., description="comma-separated latent values")):
        r = get_run(run)
        model = get_model(r)
        try:
            values = [float(v) for v in z.split(",")] if z.strip() else []
        except ValueError:
            raise ApiError(422, "z must be comma-separated numbers, e.g. z=0.1,-0.5,2.") from None
        return _png(image_png(decode(model, check_z(values, model.latent_dim))[0]))

    @app.post("/api/runs/{run}/interpolate", summary="Latent codes on the path between two rows")
    def run_interpolate(run: str, body: InterpolateBody):
        r = get_run(run)
        lat, z = interpolation(r, body.a, body.b, body.steps, body.method)
        # the stored row nearest each point, so the browser can highlight the path on a projection
        d2 = ((z[:, None, :].astype(np.float64) - lat.mu[None, :, :]) ** 2).sum(-1)
        path_rows = d2.argmin(1)
        path_rows[0], path_rows[-1] = body.a, body.b  # the ends are the rows asked for, even where rows tie
        return _json({"a": body.a, "b": body.b, "steps": body.steps, "method": body.method,
                      "z": z.tolist(), "path_rows": path_rows.tolist()})

    @app.get("/api/runs/{run}/interpolate.png", summary="Decoded interpolation as a horizontal strip",
             response_class=Response)
    def run_interpolate_png(run: str, a: int, b: int, steps: int = 8, method: str = "lerp"):
        r = get_run(run)
        _, z = interpolation(r, a, b, steps, method)
        model = get_model(r)
        return _png(strip_png(decode(model, z)))

    @app.get("/api/runs/{run}/directions", summary="GANSpace PCA directions of the stored latents")
    def run_directions(run: str, k: int | None = Query(None, description="number of directions (default: up to 10)")):
        from ..analysis.projections import pca_directions

        lat = get_latents(get_run(run))
        limit = min(lat.n, lat.dim)
        if k is None:
            k = min(limit, 10)
        if not 1 <= k <= limit:
            raise ApiError(422, f"k {k} is out of range; expected 1..{limit} for latents of shape ({lat.n}, {lat.dim}).")
        components, ratio, mean, std = pca_directions(lat.mu, k)
        return _json({"k": k, "components": components.tolist(), "explained_variance_ratio": ratio.tolist(),
                      "mean": mean.tolist(), "std": std.tolist()})

    from .sae_routes import add_sae_routes

    add_sae_routes(app, cache, get_run, ApiError)

    from .frontend import mount_frontend

    mount_frontend(app)
    return app


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path``, with every symlink followed, lies inside ``root``."""
    try:
        return path.resolve(strict=True).is_relative_to(root)
    except (OSError, RuntimeError):
        return False
