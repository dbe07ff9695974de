"""The VAE lab's jobs over the atlas: train a run (build the model for a kind, load the data, fit, record
the config) and evaluate it (encode a sample, measure the latent space, write metrics, latents,
projections and figures into the run folder).

This is what ``latentatlas vae train|eval`` and ``la.train`` / ``la.evaluate`` call; the trainer
(``trainer.fit``) stays model-agnostic, and what is measured, and how, is documented in
docs/metrics.md.
"""

from __future__ import annotations

import platform
import time
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ... import __version__
from ..._progress import progress_bar
from ...atlas import Atlas, Run, now_iso, writes_run
from ...data import load_dataset
from ...errors import LatentAtlasError
from ...models import VAE_KINDS, VAEConfig, build, config_from_dict
from ...models.io import config_to_dict
from ...limits import MAX_LATENT_DIM, MAX_SEED, check_float, check_int
from ...trainer import TrainConfig, TrainResult, fit, resolve_device


def versions() -> dict[str, str]:
    return {"latentatlas": __version__, "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()}


def train_run(
    kind: str,
    data: str | dict = "sprites",
    *,
    latent_dim: int = 10,
    beta: float | None = None,
    steps: int = 3000,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    name: str | None = None,
    atlas: Atlas | str | None = None,
    resume: bool = False,
    learned_variance: bool = False,
    checkpoint_every: int = 500,
    log_every: int = 50,
    device: str = "auto",
    progress: bool = True,
    on_step=None,
    origin: str | None = None,
) -> tuple[Run, TrainResult]:
    """Train a new run, or with ``resume=True`` continue run ``name`` with its stored settings."""
    atlas = atlas if isinstance(atlas, Atlas) else Atlas(atlas)
    if resume:
        if not name:
            raise LatentAtlasError("--resume needs --name to say which run to continue")
        run = atlas.run(name)
        with run.lock():
            return run, _resume(run, progress, on_step)

    if kind in ("sae", "sae_sweep"):
        raise LatentAtlasError(f"model kind '{kind}' is the SAE lab's; train it with `latentatlas sae train --activations STORE`")
    if kind not in VAE_KINDS:
        raise LatentAtlasError(f"model kind '{kind}' cannot be trained by this command; expected one of: {', '.join(VAE_KINDS)}")
    if beta is not None:
        check_float(beta, "--beta", 0.0, 1e6)
        if kind == "ae":
            raise LatentAtlasError("--beta weights a KL term, which a plain autoencoder (ae) has none of; leave it out, or train a vae, beta_vae or beta_tcvae")
    check_int(latent_dim, "--latent-dim", 1, MAX_LATENT_DIM)
    dataset = load_dataset(data)
    train_cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, checkpoint_every=checkpoint_every, log_every=log_every, device=device)
    resolve_device(device)  # refuse a bad --device before a run folder exists
    try:
        model_cfg = VAEConfig(
            kind=kind,
            input_shape=tuple(dataset.sample_shape),
            latent_dim=latent_dim,
            beta=beta,
            learned_variance=learned_variance,
            dataset_size=len(dataset),
        )
    except ValueError as exc:
        raise LatentAtlasError(f"cannot build a {kind} for data '{dataset.name}': {exc}") from exc
    torch.manual_seed(seed)  # the initial weights are part of what --seed fixes
    model = build(model_cfg)
    if name is None:
        name = atlas.unique_run_name(f"{kind}-{dataset.name}")
    config: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "model": config_to_dict(model_cfg),
        "train": train_cfg.to_dict(),
        "data": dataset.spec,
        "versions": versions(),
        "created_at": now_iso(),
    }
    if origin:
        config["origin"] = origin
    run = atlas.create_run(name, config)
    try:
        with run.lock():
            result = fit(model, dataset, run, train_cfg, resume=False, progress=progress, on_step=on_step)
    except BaseException:
        if not (run.has_checkpoint or run.has_model):
            atlas.delete_run(name)  # nothing worth keeping; do not block the name
        raise
    return run, result


def _resume(run: Run, progress: bool, on_step) -> TrainResult:
    """Continue ``run`` from its latest checkpoint with its stored settings (the caller holds its lock)."""
    cfg = run.config()
    train_cfg = TrainConfig.from_dict(cfg["train"])
    if run.has_model and not run.has_checkpoint:
        raise LatentAtlasError(f"run '{run.name}' already finished its {train_cfg.steps} steps; there is nothing to resume "
                               "(train a new run with another --name to train longer)")
    dataset = load_dataset(cfg["data"])
    # Killed before its first checkpoint, a run restarts from step 0: the same seed gives the same start.
    torch.manual_seed(train_cfg.seed)
    model = build(config_from_dict(cfg["kind"], cfg["model"]))
    return fit(model, dataset, run, train_cfg, resume=True, progress=progress, on_step=on_step)

# BetaVAE and FactorVAE scores render and encode fresh batches; disentanglement_lib's sample sizes
# (10,000 training votes of 64 pairs) mean ~2M encodes, minutes on a CPU. The default keeps their
# definitions and batch size and uses fewer votes; --full restores the library's numbers.
FAST_SCORES = {
    "beta_vae": dict(batch_size=64, num_train=300, num_eval=150),
    "factor_vae": dict(batch_size=64, num_train=300, num_eval=150, num_variance_estimate=5000),
}
FULL_SCORES = {
    "beta_vae": dict(batch_size=64, num_train=10000, num_eval=5000),
    "factor_vae": dict(batch_size=64, num_train=10000, num_eval=5000, num_variance_estimate=10000),
}
_RENAME = {"dci_informativeness_test": "dci_informativeness"}
HEADLINE = ("recon_error", "kl", "elbo", "active_units", "aggregate_kl", "total_correlation", "mig", "dci_disentanglement",
            "dci_completeness", "dci_informativeness", "sap", "modularity", "explicitness", "beta_vae", "factor_vae")


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def encode_array(model: torch.nn.Module, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Posterior means of ``x`` as float32 (N, D); the representation every metric reads."""
    dev = _device_of(model)
    out = [model.encode(torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size])).to(dev))[0].float().cpu().numpy()
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, model.latent_dim), np.float32)


@torch.no_grad()
def encode_dataset(model: torch.nn.Module, data, idx: np.ndarray, batch_size: int = 512,
                   on_batch: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
    """Encode ``data.get(idx)`` in batches: means, log-variances, per-sample reconstruction NLL and MSE."""
    model.eval()
    dev = _device_of(model)
    mus, logvars, nll, mse = [], [], [], []
    for start in range(0, len(idx), batch_size):
        xb = torch.from_numpy(np.ascontiguousarray(data.get(idx[start : start + batch_size]))).to(dev)
        mu, logvar = model.encode(xb)
        out = model.decode(mu)
        nll.append(model.recon_nll(out, xb).cpu().numpy())
        mean = torch.sigmoid(out) if model.config.likelihood == "bernoulli" else out
        mse.append((mean - xb).pow(2).flatten(1).mean(1).cpu().numpy())
        mus.append(mu.cpu().numpy())
        if logvar is not None:
            logvars.append(logvar.cpu().numpy())
        if on_batch:
            on_batch(len(xb))
    res = {"mu": np.concatenate(mus).astype(np.float32), "recon_nll": np.concatenate(nll).astype(np.float32),
           "mse": np.concatenate(mse).astype(np.float32)}
    if logvars:
        res["logvar"] = np.concatenate(logvars).astype(np.float32)
    return res


def choose_sample(data, n: int, seed: int) -> np.ndarray:
    total = len(data)
    if total <= n:
        return np.arange(total)
    return np.sort(np.random.default_rng([seed, 7]).choice(total, size=n, replace=False))


@writes_run
def evaluate_run(run: Run, n: int = 10000, seed: int = 0, projections: Sequence[str] = ("pca",), full: bool = False,
                 progress: bool = True, command: str | None = None, figures: bool = True) -> dict[str, Any]:
    from ...analysis import disentanglement as dis
    from ...analysis import vae_metrics as vm
    from ...analysis.bootstrap import mean_estimate

    if run.config().get("kind") == "embeddings":
        raise LatentAtlasError(f"run '{run.name}' holds imported embeddings, not a model: there is nothing to evaluate; its map is ready "
                               "(compute more projections from the map, or import again with --projections)")
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    cfg = run.config()
    if cfg.get("kind") in ("sae", "sae_sweep"):
        raise LatentAtlasError(f"run '{run.name}' is a sparse autoencoder; measure it with `latentatlas sae eval {run.name}`")
    if not isinstance(cfg.get("data"), (dict, str)):
        raise LatentAtlasError(f"run '{run.name}' config names no data to evaluate on (its 'data' entry is missing); the config is damaged")
    check_int(seed, "--seed", 0, MAX_SEED)
    model = run.load_model()
    torch.manual_seed(seed)
    data = load_dataset(cfg["data"])
    idx = choose_sample(data, n, seed)
    rng = np.random.default_rng(seed)

    with progress_bar(progress) as bar:
        task = bar.add_task(f"encoding {len(idx)} samples", total=len(idx))
        enc = encode_dataset(model, data, idx, on_batch=lambda k: bar.advance(task, k))
    timings["encode"] = time.perf_counter() - t_start

    metrics: dict[str, Any] = {}
    mu, logvar = enc["mu"], enc.get("logvar")
    metrics["recon_error"] = _est(mean_estimate("recon_error", enc["recon_nll"], rng,
                                                 likelihood=model.config.likelihood))
    metrics["mse_per_pixel"] = _est(mean_estimate("mse_per_pixel", enc["mse"], rng))
    kl_dims = None
    if logvar is not None:
        kl_dims = vm.kl_per_dim(mu, logvar)
        metrics["kl"] = _est(vm.kl_total(mu, logvar, rng=rng))
        metrics["elbo"] = _est(vm.elbo(enc["recon_nll"], vm.kl_per_sample(mu, logvar), rng=rng))
        metrics["aggregate_kl"] = _est(vm.aggregate_posterior_kl(mu, logvar, rng=rng))
        # the total correlation from the whole evaluated sample, not the training log's batch of 64
        metrics["total_correlation"] = _est(vm.total_correlation(mu, logvar, dataset_size=len(data), rng=rng))
    au = vm.active_units(mu, rng=rng)
    metrics["active_units"] = _est(au)
    timings["vae_metrics"] = time.perf_counter() - t_start - sum(timings.values())

    factors = data.get_factors(idx)
    notes: list[str] = []
    if factors is not None and len(getattr(data, "factor_names", ())) < 2:
        notes.append("disentanglement metrics need at least two ground-truth factors; this data has "
                     f"{len(getattr(data, 'factor_names', ()))}, so they were not computed")
    if factors is not None and len(getattr(data, "factor_names", ())) >= 2:
        t0 = time.perf_counter()
        ground_truth = data if hasattr(data, "sample_observations_from_factors") else None
        settings = FULL_SCORES if full else FAST_SCORES
        if progress:
            from rich.console import Console

            Console(stderr=True).print("measuring disentanglement …")
        results = dis.all_disentanglement_metrics(
            mu, factors, rng,
            ground_truth=ground_truth,
            representation_fn=(lambda obs: encode_array(model, obs)) if ground_truth is not None else None,
            beta_vae_kwargs=settings["beta_vae"], factor_vae_kwargs=settings["factor_vae"],
        )
        results = {_RENAME.get(k, k): v for k, v in results.items()}
        for name, est in results.items():
            metrics[name] = _est(est)
        timings["disentanglement"] = time.perf_counter() - t0

    # latents + per-row table
    import pandas as pd

    rows = pd.DataFrame({"index": idx.astype(np.int64)})
    labels = getattr(data, "labels", None)
    # a label that is one of the factors (an image folder's class, a digit) is that factor's column, not a second one
    if labels is not None and not (factors is not None and any(np.array_equal(np.asarray(labels)[idx], factors[:, j])
                                                               for j in range(factors.shape[1]))):
        rows["label"] = np.asarray(labels)[idx]
    if factors is not None:
        for j, fname in enumerate(data.factor_names):
            rows[fname] = factors[:, j]
    rows["recon_error"] = enc["recon_nll"]
    arrays = {"mu": mu, "recon_nll": enc["recon_nll"]}
    if logvar is not None:
        arrays["logvar"] = logvar
    run.write_latents(arrays, rows)
    # What the explorer shows of the data travels with the run: the factors' names and values, and, for
    # data read from a path (not built in), the evaluated inputs themselves as uint8. The server never
    # opens a path named in a run's config, and a run folder copied elsewhere opens there unchanged.
    value_names = getattr(data, "factor_value_names", lambda: {})()
    run.write_latent_meta({
        "dataset": str(getattr(data, "name", "?")),
        "factors": [{"name": str(n), "size": int(sz), "value_names": list(value_names[n]) if n in value_names else None}
                    for n, sz in zip(getattr(data, "factor_names", ()), getattr(data, "factor_sizes", ()))],
        "classes": [str(c) for c in (getattr(data, "spec", None) or {}).get("classes", [])] or None,
    })
    if isinstance(cfg.get("data"), dict) and "path" in cfg["data"]:
        x_eval = np.concatenate([np.asarray(data.get(idx[a : a + 1024])) for a in range(0, len(idx), 1024)])
        if x_eval.ndim == 4:
            run.write_inputs(np.round(np.clip(x_eval, 0.0, 1.0) * 255).astype(np.uint8))

    coords: dict[str, np.ndarray] = {}
    for method in projections if mu.shape[1] >= 2 else ():
        t0 = time.perf_counter()
        coords[method] = compute_projection(run, mu, method, seed)
        timings[f"projection_{method}"] = time.perf_counter() - t0

    order = list(np.argsort(-kl_dims)) if kl_dims is not None else list(np.argsort(-np.asarray(au.details["variance_per_dim"])))
    report: dict[str, Any] = {
        "run": run.name,
        "command": command or f"latentatlas eval {run.name}",
        "created_at": now_iso(),
        "latentatlas": __version__,
        "n": int(len(idx)),
        "seed": seed,
        "full": full,
        "data": cfg.get("data"),
        "metrics": metrics,
        "kl_per_dim": None if kl_dims is None else [float(v) for v in kl_dims],
        "dims_by_kl": [int(i) for i in order],
        "headline": {k: metrics[k]["value"] for k in HEADLINE if k in metrics},
        "notes": notes,
    }
    if figures:
        t0 = time.perf_counter()
        from .figures import write_run_figures

        report["figures"] = write_run_figures(run, model, data, idx, enc, kl_dims, order, coords, factors)
        timings["figures"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    report["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    run.write_metrics(report)
    return report


def _est(e) -> dict[str, Any]:
    d = e.to_dict()
    return {k: d[k] for k in ("value", "ci_low", "ci_high", "n", "details") if k in d}


KEPT_K = 10  # neighbours per point for the map's "neighbours kept" colour


# what a user may set per projection method, with bounds: (type, low, high) or a tuple of choices
PROJECTION_PARAMS: dict[str, dict[str, Any]] = {
    "pca": {},
    "umap": {"n_neighbors": (int, 2, 200), "min_dist": (float, 0.0, 1.0), "metric": ("euclidean", "cosine")},
    "tsne": {"perplexity": (float, 2.0, 100.0), "metric": ("euclidean", "cosine")},
}
_SHORT = {"n_neighbors": "nn", "min_dist": "md", "perplexity": "pp", "metric": ""}


def projection_key(method: str, params: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """The stored name of a projection (``eval-umap``, or ``eval-umap-nn30-md0.05-cosine`` with settings)
    and its settings, checked against :data:`PROJECTION_PARAMS` (one sentence for a bad one)."""
    allowed = PROJECTION_PARAMS.get(method)
    if allowed is None:
        raise LatentAtlasError(f"projection method '{method}' is unknown; expected one of {', '.join(PROJECTION_PARAMS)}.")
    checked: dict[str, Any] = {}
    for name, value in (params or {}).items():
        if value is None:
            continue
        rule = allowed.get(name)
        if rule is None:
            raise LatentAtlasError(f"{method} has no setting '{name}'; it takes: {', '.join(allowed) or 'none'}")
        if isinstance(rule[0], str):
            if value not in rule:
                raise LatentAtlasError(f"{method}'s {name} must be one of {', '.join(rule)}, got {value!r}")
            checked[name] = value
        elif rule[0] is int:
            checked[name] = check_int(int(value) if isinstance(value, float) and value.is_integer() else value, name, rule[1], rule[2])
        else:
            checked[name] = check_float(value, name, rule[1], rule[2])
    if not checked:
        return f"eval-{method}", {}
    tag = "-".join(f"{_SHORT[k]}{checked[k]:g}" if not isinstance(checked[k], str) else checked[k] for k in sorted(checked))
    return f"eval-{method}-{tag}", checked


def compute_projection(run: Run, mu: np.ndarray, method: str, seed: int = 0, params: dict[str, Any] | None = None) -> np.ndarray:
    """Project the eval latents to 2-D by ``method`` (with the user's ``params``) and store the coordinates
    with, per point, the share of its 10 latent-space neighbours the map keeps (analysis/neighbours.py)."""
    from ...analysis.neighbours import neighbours_kept
    from ...analysis.projections import project

    key, checked = projection_key(method, params)
    proj = project(mu, method=method, n_components=2, seed=seed, **checked)
    meta = {"method": method, "params": proj.params, "settings": checked, "explained_variance": proj.explained_variance, "n": int(len(mu)),
            "latents": "eval", "kept_k": KEPT_K}
    run.write_projection(key, proj.coords, meta, kept=neighbours_kept(mu, proj.coords, k=KEPT_K))
    return proj.coords



def import_embeddings(
    vectors: str,
    meta: str | None = None,
    *,
    key: str | None = None,
    name: str | None = None,
    atlas: Atlas | str | None = None,
    projections: Sequence[str] = ("pca",),
    seed: int = 0,
) -> Run:
    """``latentatlas vae import``: a user's own embeddings (and a metadata table) as a run of kind
    ``embeddings``, nothing trained: the vectors are its latents, the table's columns its per-row
    columns, and the map, the neighbours and the filter work on it as on a trained run's latents."""
    from pathlib import Path

    import pandas as pd

    from ...analysis.projections import METHODS
    from ...data.embeddings import read_metadata, read_vectors

    atlas = atlas if isinstance(atlas, Atlas) else Atlas(atlas)
    for method in projections:
        if method not in METHODS:
            raise LatentAtlasError(f"--projections names '{method}'; expected some of {', '.join(METHODS)}")
    check_int(seed, "--seed", 0, MAX_SEED)
    x = read_vectors(vectors, key=key)
    table = read_metadata(meta, len(x)) if meta else None
    name = name or atlas.unique_run_name(f"embeddings-{Path(vectors).stem}"[:60])
    config = {"name": name, "kind": "embeddings",
              "data": {"kind": "embeddings", "vectors": Path(vectors).name, "meta": Path(meta).name if meta else None,
                       "rows": int(len(x)), "dim": int(x.shape[1])},
              "model": {"latent_dim": int(x.shape[1])}, "versions": versions(), "created_at": now_iso()}
    run = atlas.create_run(name, config)
    try:
        with run.lock():
            rows = pd.DataFrame({"index": np.arange(len(x), dtype=np.int64)})
            for col, values in (table.columns.items() if table else ()):
                rows[col] = values
            run.write_latents({"mu": x}, rows)
            run.write_latent_meta({
                "dataset": Path(vectors).stem,
                "factors": [{"name": c, "size": len(v), "value_names": v} for c, v in (table.value_names.items() if table else ())],
                "classes": None,
            })
            for method in projections if x.shape[1] >= 2 else ():
                compute_projection(run, x, method, seed)
            notes = [f"imported {len(x):,} vectors of {x.shape[1]} dimensions from '{Path(vectors).name}'; nothing was trained"]
            notes += table.notes if table else []
            run.write_metrics({"run": name, "kind": "embeddings", "command": f"latentatlas vae import {vectors}", "created_at": now_iso(),
                               "n": int(len(x)), "metrics": {}, "headline": {}, "notes": notes})
    except BaseException:
        atlas.delete_run(name)
        raise
    return run
