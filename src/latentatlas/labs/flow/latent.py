"""Latent diffusion (Dieleman, "Generative modelling in latent space", 2025; Rombach et al. 2022): the flow
lab's model trained on the encoder means of a VAE run of the atlas, sampled, decoded and measured against
two other ways of drawing latents for the same decoder: the VAE's own prior N(0, I), and the two-stage
sampler of Dai & Wipf ("Diagnosing and enhancing VAE models", 2019), a second, small VAE fitted to the
same latents.

    runs/<run>/config.json, model.safetensors, history.jsonl   a flow run (kind "flow") whose data is
                                                               {"kind": "latents", "vae": VAE_RUN, ...}
    runs/<run>/data/latents.safetensors                        the training means, copied in, with the
                                                               standardisation the flow works in
    runs/<run>/stage2/                                         the Dai–Wipf second-stage VAE, trained by
                                                               the same trainer (config, weights, history)
    runs/<run>/samples/latent-<row>.safetensors + .json        decoded samples per row of the table (uint8)
    runs/<run>/samples/latent-trajectories.safetensors + .json sampled trajectories on the VAE run's map
    runs/<run>/figures/latent_samples.png, latent_trajectories.png
    runs/<run>/metrics.json                                    the table (``latent_table``) and its metrics
    runs/factor-classifier-<data>/                             the factor classifier (kind "factor_classifier"),
                                                               one per dataset, reused by every VAE run on it

The flow run is self-contained for training (resume needs only its own folder); decoding, classifying real
images and projecting onto the map need the VAE run, and say so in one sentence when it is gone.

What is measured, how, and why, is in docs/metrics.md ("Latent diffusion").
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..._io import atomic_save_safetensors, atomic_write_json, read_json
from ...analysis.bootstrap import Estimate, mean_estimate
from ...atlas import Atlas, Run, now_iso
from ...errors import LatentAtlasError, NotFound
from ...limits import MAX_SEED, check_int
from ...models import factor_classifier as _fc  # registers the "factor_classifier" kind
from ...models.flow import FlowConfig, FlowModel, data_scale
from ...models.io import config_to_dict, read_weights
from ...models.samplers import STOCHASTIC, sample as run_sampler, steps_for
from ...trainer import TrainConfig, TrainResult, fit, fit_new_run, resolve_device, resumable

KIND = "flow"
CLASSIFIER_KIND = _fc.KIND
# about a minute or two each on one CPU thread for d = 10
LATENT_TRAIN = dict(steps=5000, batch_size=256, lr=1e-3, lr_warmup=200, lr_decay=0.3)
LATENT_MODEL = dict(hidden=256, depth=3)
STAGE2_TRAIN = dict(steps=5000, batch_size=256, lr=1e-3, lr_warmup=200, lr_decay=0.3)
STAGE2_HIDDEN = 256
CLASSIFIER_TRAIN = dict(steps=1500, batch_size=64, lr=1e-3, lr_warmup=0, lr_decay=0.3)
# orientation is left out of the classifier: a square repeats every quarter turn and an ellipse every half
# turn, so an image does not determine its orientation index (neither a classifier nor an encoder can read it)
SKIP_FACTORS = ("orientation",)
HELD_OUT = 4000  # eval rows kept from the flow: half the reference, half the "encoder means" row
SAMPLER, NFE = "dpm++", 30
ROWS = ("data", "encoder", "prior", "flow", "stage2")
ROW_LABELS = {
    "data": "real images (held out)",
    "encoder": "encoder means of held-out images",
    "prior": "VAE prior N(0, I)",
    "flow": "latent flow",
    "stage2": "two-stage VAE (Dai & Wipf)",
}
JOINT_BINS = 3  # an ordinal factor's values fall into this many bins for the joint TV
_HASH = 2654435761  # Knuth's multiplicative hash: the classifier's held-out tenth of a dataset


# -- the latent flow run ------------------------------------------------------------------------------------

def versions() -> dict[str, str]:
    from .jobs import versions as flow_versions

    return flow_versions()


class LatentBatches:
    """The flow's (or the second stage's) training batches: rows of fixed points drawn with replacement,
    batch ``step`` a pure function of (seed, step)."""

    def __init__(self, points: np.ndarray, batch_size: int, seed: int):
        self.points, self.batch_size, self.seed = np.ascontiguousarray(points, dtype=np.float32), batch_size, seed

    def __len__(self) -> int:
        return len(self.points)

    def batch_at(self, step: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, step, 11])
        return self.points[rng.integers(0, len(self.points), self.batch_size)]


def is_latent_run(run: Run) -> bool:
    """Whether ``run`` is a flow run trained on a VAE run's latents."""
    cfg = run.config()
    data = cfg.get("data")
    return cfg.get("kind") == KIND and isinstance(data, dict) and data.get("kind") == "latents"


def _spec(run: Run) -> dict[str, Any]:
    if not is_latent_run(run):
        raise LatentAtlasError(f"run '{run.name}' is not a latent flow run (its data is not a VAE run's latents); train one with `latentatlas flow latent --vae RUN`")
    return run.config()["data"]


def vae_of(run: Run) -> Run:
    """The VAE run whose latents the latent flow run ``run`` was trained on (needed to decode and project)."""
    name = _spec(run).get("vae")
    if not isinstance(name, str) or not name:
        raise LatentAtlasError(f"latent flow run '{run.name}' does not name the VAE run it was trained on; its config is damaged")
    if not run.atlas.has_run(name):
        raise NotFound(f"latent flow run '{run.name}' needs its VAE run '{name}' to decode and project samples, but atlas '{run.atlas.root}' no longer has that run")
    return run.atlas.run(name)


def _vae_model(vae_run: Run):
    model = vae_run.load_model("cpu")
    if not (hasattr(model, "decode_mean") and hasattr(model, "encode")):
        raise LatentAtlasError(f"run '{vae_run.name}' is a {vae_run.config().get('kind')}, not an autoencoder whose latents can be decoded")
    model.eval()
    return model


def training_latents(run: Run) -> dict[str, np.ndarray]:
    """The latent flow run's own copy of its data: ``z`` the training means (N, d), ``rows`` their positions
    in the VAE run's latent set, ``held_out`` the positions kept from training, and the standardisation
    ``mean``, ``std`` (d,) the flow works in (x = (z − mean) / std)."""
    path = run.file("data", "latents.safetensors")
    if not path.is_file():
        raise LatentAtlasError(f"latent flow run '{run.name}' has lost its training latents data/latents.safetensors; train it again")
    arrays = {k: v.numpy() for k, v in read_weights(path).items()}
    z = arrays.get("z")
    if z is None or z.ndim != 2 or z.dtype.kind != "f" or len(z) < 2 or not np.all(np.isfinite(z)):
        raise LatentAtlasError(f"the training latents '{path}' hold no finite float (N, d) 'z' with N ≥ 2; train the run again")
    d = z.shape[1]
    for key, shape in (("mean", (d,)), ("std", (d,)), ("rows", (len(z),))):
        if key not in arrays or arrays[key].shape != shape:
            raise LatentAtlasError(f"the training latents '{path}' hold no '{key}' of shape {shape}; train the run again")
    if not (np.all(np.isfinite(arrays["std"])) and np.all(arrays["std"] > 0)):
        raise LatentAtlasError(f"the training latents '{path}' hold a non-positive or non-finite standard deviation; train the run again")
    return arrays


def _standardised(arrays: dict[str, np.ndarray]) -> np.ndarray:
    return ((arrays["z"] - arrays["mean"]) / arrays["std"]).astype(np.float32)


def _split(n_rows: int, held_out: int, n: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    # held-out rows stay in random order: the evaluation halves them into the reference and the "encoder
    # means" row, and a latent set is often sorted by dataset index (sprites: by shape first)
    perm = np.random.default_rng([seed, 1]).permutation(n_rows)
    held, train = perm[:held_out], perm[held_out:]
    if n is not None:
        train = train[:n]
    return np.sort(train), held


def train_latent(atlas: Atlas | str | None = None, vae: str = "demo", *, latents: str = "eval", n: int | None = None,
                 held_out: int | None = None, standardise: bool = True, steps: int | None = None, batch_size: int | None = None,
                 lr: float | None = None, seed: int = 0, name: str | None = None, resume: bool = False, device: str = "auto",
                 log_every: int = 50, checkpoint_every: int = 500, progress: bool = True,
                 on_step: Callable[[int], None] | None = None, **model_overrides: Any) -> tuple[Run, TrainResult]:
    """Train a flow-matching model on the encoder means of VAE run ``vae`` (its latent set ``latents``),
    keeping ``held_out`` rows out for the evaluation (default: 4,000, or a third of a smaller set); ``n`` caps
    the training rows. With ``standardise`` the
    flow works in per-dimension standardised coordinates. ``resume`` continues run ``name`` from its
    checkpoint with nothing but its own folder."""
    atlas = atlas if isinstance(atlas, Atlas) else Atlas(atlas)
    if resume:
        if not name:
            raise LatentAtlasError("--resume needs --name to say which latent flow run to continue")
        run = atlas.run(name)
        _spec(run)
        train_cfg = resumable(run, KIND, "a flow run")
        from ...models import config_from_dict

        points = _standardised(training_latents(run))
        torch.manual_seed(train_cfg.seed)
        model = FlowModel(config_from_dict(KIND, run.config()["model"]))
        with run.lock():
            return run, fit(model, LatentBatches(points, train_cfg.batch_size, train_cfg.seed), run, train_cfg, resume=True,
                            progress=progress, on_step=on_step)
    t = LATENT_TRAIN
    total = steps or t["steps"]
    train_cfg = TrainConfig(steps=total, batch_size=batch_size or t["batch_size"], lr=lr or t["lr"], seed=seed, log_every=log_every,
                            checkpoint_every=checkpoint_every, device=device, lr_warmup=min(t["lr_warmup"], total // 4),
                            lr_decay=t["lr_decay"])
    resolve_device(device)
    known = {f for f in FlowConfig.__dataclass_fields__ if f not in ("kind", "dim")}
    unknown = sorted(set(model_overrides) - known)
    if unknown:
        raise LatentAtlasError(f"unknown flow setting(s) {', '.join(unknown)}; expected some of {', '.join(sorted(known))}")
    vae_run = atlas.run(vae)
    if vae_run.config().get("kind") not in _vae_kinds():
        raise LatentAtlasError(f"run '{vae}' is a {vae_run.config().get('kind')}, not a VAE run; expected one of {', '.join(_vae_kinds())}")
    arrays, _ = vae_run.read_latents(latents)
    mu = arrays["mu"].astype(np.float32)
    if len(mu) < 10:
        raise LatentAtlasError(f"run '{vae_run.name}' has {len(mu)} latents in '{latents}'; a latent flow needs at least 10 (8 held out, 2 to train on)")
    if held_out is None:
        held_out = min(HELD_OUT, max(8, len(mu) // 3))
    check_int(held_out, "--held-out", 8, max(8, len(mu) - 2))
    if n is not None:
        check_int(n, "--n", 2, len(mu) - held_out)
    rows, held = _split(len(mu), held_out, n, seed)
    z = mu[rows]
    mean = z.mean(0) if standardise else np.zeros(z.shape[1], np.float32)
    std = np.maximum(z.std(0), 1e-6) if standardise else np.ones(z.shape[1], np.float32)
    stored = {"z": z, "rows": rows.astype(np.int64), "held_out": held.astype(np.int64),
              "mean": mean.astype(np.float32), "std": std.astype(np.float32)}
    points = _standardised(stored)
    settings = {**LATENT_MODEL, **model_overrides}
    scale = settings.pop("x_scale", None) or data_scale(points)
    model_cfg = FlowConfig(dim=int(z.shape[1]), x_scale=round(float(scale), 6), **settings)
    torch.manual_seed(seed)
    model = FlowModel(model_cfg)
    name = name or atlas.unique_run_name(f"flow-latent-{vae}"[:120])
    spec = {"kind": "latents", "vae": vae_run.name, "latents": latents, "n": int(len(z)), "held_out": int(len(held)),
            "standardise": bool(standardise), "seed": int(seed), "path": "data/latents.safetensors"}
    config = {"name": name, "kind": KIND, "model": config_to_dict(model_cfg), "train": train_cfg.to_dict(), "data": spec,
              "versions": versions(), "created_at": now_iso(), "origin": "latent"}

    def write_latents(run: Run) -> LatentBatches:
        atomic_save_safetensors(run.file("data", "latents.safetensors"), {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in stored.items()})
        return LatentBatches(points, train_cfg.batch_size, seed)

    return fit_new_run(atlas, config, model, write_latents, train_cfg, progress=progress, on_step=on_step)


def _vae_kinds() -> tuple[str, ...]:
    from ...models.vae import FAMILY

    return tuple(FAMILY)


# -- the Dai–Wipf second stage ---------------------------------------------------------------------------------

class _Part(Run):
    """A model trained inside a run's folder (``runs/<run>/<part>/``): its own config, checkpoint, history
    and weights, written by the one trainer, invisible to the runs list."""

    def __init__(self, run: Run, part: str):
        super().__init__(run.atlas, run.name)
        self.name = f"{run.name}/{part}"
        self.path = run.path / part


def stage2_of(run: Run) -> Run:
    return _Part(run, "stage2")


def train_stage2(run: Run, *, steps: int | None = None, batch_size: int | None = None, lr: float | None = None,
                 hidden: int = STAGE2_HIDDEN, seed: int = 0, device: str = "auto", progress: bool = True,
                 on_step: Callable[[int], None] | None = None) -> TrainResult | None:
    """Train (or continue, or leave alone when finished) the second-stage VAE of latent flow run ``run``:
    an MLP VAE d → d with a learned decoder variance γ (Dai & Wipf 2019) on the flow's own standardised
    training latents. Returns None when it was already trained."""
    from ...models import VAEConfig, build, config_from_dict

    part = stage2_of(run)
    points = _standardised(training_latents(run))
    d = points.shape[1]
    with run.lock():
        if (part.path / "config.json").is_file():
            if part.has_model and not part.has_checkpoint:
                return None
            cfg = part.config()
            train_cfg = TrainConfig.from_dict(cfg.get("train") or {})
            torch.manual_seed(train_cfg.seed)
            model = build(config_from_dict(cfg["kind"], cfg["model"]))
            return fit(model, LatentBatches(points, train_cfg.batch_size, train_cfg.seed + 1), part, train_cfg, resume=True,
                       progress=progress, on_step=on_step)
        t = STAGE2_TRAIN
        total = steps or t["steps"]
        train_cfg = TrainConfig(steps=total, batch_size=batch_size or t["batch_size"], lr=lr or t["lr"], seed=seed, device=device,
                                lr_warmup=min(t["lr_warmup"], total // 4), lr_decay=t["lr_decay"], checkpoint_every=1000)
        model_cfg = VAEConfig(kind="vae", input_shape=(d,), latent_dim=d, hidden=hidden, learned_variance=True, arch="mlp")
        torch.manual_seed(seed)
        model = build(model_cfg)
        part.path.mkdir(parents=True, exist_ok=True)
        part.write_config({"name": run.name, "kind": "vae", "model": config_to_dict(model_cfg), "train": train_cfg.to_dict(),
                           "data": {"kind": "latents", "path": "../data/latents.safetensors", "standardised": True},
                           "versions": versions(), "created_at": now_iso(), "origin": "stage2"})
        return fit(model, LatentBatches(points, train_cfg.batch_size, seed + 1), part, train_cfg, resume=False, progress=progress,
                   on_step=on_step)


# -- the factor classifier -------------------------------------------------------------------------------------

def held_out_mask(idx: np.ndarray) -> np.ndarray:
    """The classifier's held-out tenth of a dataset, by index: (index · 2654435761 mod 2³²) mod 10 = 0."""
    idx = np.asarray(idx, dtype=np.uint64)
    return ((idx * np.uint64(_HASH)) % np.uint64(1 << 32)) % np.uint64(10) == 0


class FactorBatches:
    """The classifier's training batches: images of the dataset's training part with their factor indices,
    packed as one array (``models.factor_classifier.pack``); batch ``step`` a pure function of (seed, step)."""

    def __init__(self, data, pool: np.ndarray, columns: Sequence[int], batch_size: int, seed: int):
        self.data, self.pool, self.columns = data, pool, list(columns)
        self.batch_size, self.seed = batch_size, seed

    def __len__(self) -> int:
        return len(self.pool)

    def batch_at(self, step: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, step, 13])
        idx = self.pool[rng.integers(0, len(self.pool), self.batch_size)]
        return _fc.pack(self.data.get(idx), self.data.get_factors(idx)[:, self.columns])


def _classifier_factors(data, factors: Sequence[str] | None) -> list[int]:
    names = list(getattr(data, "factor_names", ()) or ())
    if data.get_factors(np.arange(1)) is None or not names:
        raise LatentAtlasError(f"dataset '{getattr(data, 'name', '?')}' has no ground-truth factors for a factor classifier to learn")
    if factors is None:
        chosen = [n for n in names if n not in SKIP_FACTORS and data.factor_sizes[names.index(n)] >= 2]
    else:
        bad = [f for f in factors if f not in names]
        if bad:
            raise LatentAtlasError(f"factor(s) {', '.join(map(str, bad))} are not factors of dataset '{data.name}'; expected some of {', '.join(names)}")
        chosen = list(dict.fromkeys(factors))
    if not chosen:
        raise LatentAtlasError(f"dataset '{data.name}' has no factor with two or more values for a classifier to learn")
    return [names.index(n) for n in chosen]


def train_classifier(atlas: Atlas | str | None = None, data: str | dict = "sprites", *, factors: Sequence[str] | None = None,
                     steps: int | None = None, batch_size: int | None = None, lr: float | None = None, hidden: int = 256,
                     seed: int = 0, name: str | None = None, device: str = "auto", progress: bool = True,
                     on_step: Callable[[int], None] | None = None, eval_n: int = 3000) -> Run:
    """Train a factor classifier (``models/factor_classifier.py``) on the dataset ``data`` (a name or a
    dataset spec) and measure its held-out accuracy per factor (written to its metrics.json). Every tenth
    image by :func:`held_out_mask` is never trained on."""
    from ...data import load_dataset

    atlas = atlas if isinstance(atlas, Atlas) else Atlas(atlas)
    dataset = load_dataset(data)
    if len(getattr(dataset, "sample_shape", ())) not in (1, 3):
        raise LatentAtlasError(f"dataset '{dataset.name}' is not images or vectors a classifier can read")
    cols = _classifier_factors(dataset, factors)
    names = [dataset.factor_names[j] for j in cols]
    sizes = [int(dataset.factor_sizes[j]) for j in cols]
    t = CLASSIFIER_TRAIN
    total = steps or t["steps"]
    train_cfg = TrainConfig(steps=total, batch_size=batch_size or t["batch_size"], lr=lr or t["lr"], seed=seed, device=device,
                            lr_decay=t["lr_decay"], checkpoint_every=500)
    resolve_device(device)
    model_cfg = _fc.FactorClassifierConfig(input_shape=tuple(int(s) for s in dataset.sample_shape), factor_names=tuple(names),
                                          factor_sizes=tuple(sizes), hidden=hidden)
    torch.manual_seed(seed)
    model = _fc.FactorClassifier(model_cfg)
    idx = np.arange(len(dataset), dtype=np.int64)
    pool = idx[~held_out_mask(idx)]
    name = name or atlas.unique_run_name(f"factor-classifier-{dataset.name}"[:120])
    config = {"name": name, "kind": CLASSIFIER_KIND, "model": config_to_dict(model_cfg), "train": train_cfg.to_dict(),
              "data": dict(dataset.spec), "versions": versions(), "created_at": now_iso(), "origin": "factor-classifier"}
    run, _ = fit_new_run(atlas, config, model, FactorBatches(dataset, pool, cols, train_cfg.batch_size, seed), train_cfg,
                         progress=progress, on_step=on_step)
    evaluate_classifier(run, n=eval_n, seed=seed)
    return run


def evaluate_classifier(run: Run, *, n: int = 3000, seed: int = 0) -> dict[str, Any]:
    """Held-out accuracy of a factor classifier per factor (and, for ordinal factors, the share within one
    step of the truth), with bootstrap intervals; written to the classifier run's metrics.json."""
    from ...data import load_dataset

    model = _classifier_model(run)
    data = load_dataset(run.config()["data"])
    names = list(model.config.factor_names)
    cols = [list(data.factor_names).index(f) for f in names]
    idx = np.arange(len(data), dtype=np.int64)
    held = idx[held_out_mask(idx)]
    rng = np.random.default_rng([seed, 5])
    pick = np.sort(rng.choice(held, size=min(n, len(held)), replace=False))
    pred, _ = model.predict(data.get(pick))
    truth = data.get_factors(pick)[:, cols]
    ordinal = _ordinal_values(data)
    metrics: dict[str, Any] = {}
    headline: dict[str, float] = {}
    for k, f in enumerate(names):
        e = mean_estimate(f"accuracy_{f}", (pred[:, k] == truth[:, k]).astype(np.float64), rng)
        metrics[f"accuracy_{f}"] = _est(e)
        headline[f"accuracy_{f}"] = e.value
        if f in ordinal:
            e1 = mean_estimate(f"accuracy_within_one_{f}", (np.abs(pred[:, k] - truth[:, k]) <= 1).astype(np.float64), rng)
            metrics[f"accuracy_within_one_{f}"] = _est(e1)
    report = {"run": run.name, "kind": CLASSIFIER_KIND, "n": int(len(pick)), "created_at": now_iso(), "metrics": metrics,
              "headline": headline, "held_out": True,
              "notes": ["held-out images: the tenth of the dataset with (index · 2654435761 mod 2³²) mod 10 = 0, never trained on"]}
    run.write_metrics(report)
    return report


def _classifier_model(run: Run):
    cfg = run.config()
    if cfg.get("kind") != CLASSIFIER_KIND:
        raise LatentAtlasError(f"run '{run.name}' is a {cfg.get('kind')}, not a factor classifier")
    model = run.load_model("cpu")
    model.eval()
    return model


def classifier_for(atlas: Atlas, data_spec: dict | str, factors: Sequence[str] | None = None, *, name: str | None = None,
                   train: bool = True, progress: bool = True, device: str = "auto", steps: int | None = None, seed: int = 0) -> Run:
    """The factor classifier for dataset ``data_spec``: run ``name`` if given, else the first trained
    classifier run of the atlas on the same data (and covering ``factors``), else (with ``train``) a new one."""
    if name is not None:
        run = atlas.run(name)
        _classifier_model(run)
        return run
    want = set(factors or ())
    for other in atlas.run_names():
        try:
            r = atlas.run(other)
            cfg = r.config()
        except LatentAtlasError:
            continue
        if (cfg.get("kind") == CLASSIFIER_KIND and cfg.get("data") == data_spec and r.has_model
                and want <= set((cfg.get("model") or {}).get("factor_names") or ())):
            return r
    if not train:
        raise NotFound(f"atlas '{atlas.root}' has no factor classifier for data {data_spec!r}; train one with `latentatlas flow latent`")
    return train_classifier(atlas, data_spec, factors=factors, progress=progress, device=device, steps=steps, seed=seed)


def _ordinal_values(data) -> dict[str, np.ndarray]:
    """The real value behind each index of the dataset's ordinal factors (those with values and no value
    names): sprites' scale, orientation and positions."""
    values = getattr(data, "factor_values", lambda: {})()
    named = getattr(data, "factor_value_names", lambda: {})()
    out = {}
    for j, f in enumerate(getattr(data, "factor_names", ())):
        v = values.get(f)
        if f not in named and v is not None and len(v) == data.factor_sizes[j] and len(v) > 1:
            out[f] = np.asarray(v, dtype=np.float64)
    return out


# -- factor-distribution distances (pure functions on class codes) --------------------------------------------

def factor_tv(p_codes: np.ndarray, q_codes: np.ndarray, size: int) -> float:
    """Total variation ½ Σ_k |p̂_k − q̂_k| between the histograms of two samples of class codes 0 … size − 1."""
    p = np.bincount(p_codes, minlength=size)[:size] / max(1, len(p_codes))
    q = np.bincount(q_codes, minlength=size)[:size] / max(1, len(q_codes))
    return 0.5 * float(np.abs(p - q).sum())


def factor_w1(p_codes: np.ndarray, q_codes: np.ndarray, values: np.ndarray) -> float:
    """Wasserstein-1 distance between two samples of an ordinal factor, in units of the factor's range:
    Σ_k |F_p(k) − F_q(k)|·(v_{k+1} − v_k) / (v_max − v_min), with F the empirical CDFs over the sorted values."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    size = len(values)
    sv = values[order]
    span = sv[-1] - sv[0]
    if span <= 0:
        return 0.0
    p = np.bincount(rank[p_codes], minlength=size)[:size] / max(1, len(p_codes))
    q = np.bincount(rank[q_codes], minlength=size)[:size] / max(1, len(q_codes))
    gaps = np.diff(sv)
    return float((np.abs(np.cumsum(p)[:-1] - np.cumsum(q)[:-1]) * gaps).sum() / span)


def _basic_interval(value: float, resampled: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """Basic (reflected) bootstrap [2v − q97.5, 2v − q2.5], clipped to [lo, hi] and widened to hold v."""
    resampled = resampled[np.isfinite(resampled)]
    if resampled.size == 0:
        return (math.nan, math.nan)
    q_low, q_high = np.quantile(resampled, [0.025, 0.975])
    return (float(min(max(2 * value - q_high, lo), value)), float(max(min(2 * value - q_low, hi), value)))


@dataclass
class _Distance:
    """One distance of one row to the reference, its bootstrap draws (for paired differences) and its floor."""

    value: float
    draws: np.ndarray
    floor_mean: float
    floor_q95: float

    def estimate(self, name: str, n: int, lo: float = 0.0, hi: float = 1.0, **details) -> Estimate:
        low, high = _basic_interval(self.value, self.draws, lo, hi)
        return Estimate(name, self.value, low, high, n, {"ci_method": "basic bootstrap over the row's samples and the reference's, clipped",
                                                         "expected_if_same_law": self.floor_mean, "floor_q95": self.floor_q95,
                                                         "at_floor": bool(self.value <= self.floor_q95), **details})


def compare_factors(rows: dict[str, np.ndarray], reference: np.ndarray, sizes: Sequence[int], names: Sequence[str],
                    ordinal: dict[str, np.ndarray] | None = None, *, num_resamples: int = 200, floor_repeats: int = 200,
                    random_state: int = 0) -> dict[str, dict[str, _Distance]]:
    """For each row of predicted factor codes (n_r, K), its distance to the reference codes (m, K): per factor
    the TV (``tv:<factor>``) and, for ordinal factors, W1 (``w1:<factor>``), their mean over factors
    (``tv_mean``), and the TV of the joint histogram of coarsened factors (``joint_tv``). The bootstrap
    resamples each row's samples and the reference's, the same reference resample for every row (so
    differences between rows are paired); the floor is the same distance between two samples of those
    sizes drawn from the reference's own histogram."""
    ordinal = ordinal or {}
    ref = np.asarray(reference, dtype=np.int64)
    k_f = len(names)
    coarse_ref, joint_size = _joint_codes(ref, sizes, names, ordinal)
    m = len(ref)
    rng = np.random.default_rng([random_state, 17])
    ref_draws = [rng.integers(0, m, m) for _ in range(num_resamples)]

    def distances(codes: np.ndarray, refc: np.ndarray, joint: np.ndarray, joint_ref: np.ndarray) -> dict[str, float]:
        out: dict[str, float] = {}
        tvs = []
        for k, f in enumerate(names):
            out[f"tv:{f}"] = factor_tv(codes[:, k], refc[:, k], sizes[k])
            tvs.append(out[f"tv:{f}"])
            if f in ordinal:
                out[f"w1:{f}"] = factor_w1(codes[:, k], refc[:, k], ordinal[f])
        out["tv_mean"] = float(np.mean(tvs))
        if joint_size:
            out["joint_tv"] = factor_tv(joint, joint_ref, joint_size)
        return out

    floors: dict[int, dict[str, tuple[float, float]]] = {}

    def floor(n: int) -> dict[str, tuple[float, float]]:
        if n not in floors:
            frng = np.random.default_rng([random_state, 19, n])
            vals: dict[str, list[float]] = {}
            for _ in range(floor_repeats):
                a = ref[frng.integers(0, m, n)]  # a draw from the reference histogram: resampling its rows
                b = ref[frng.integers(0, m, m)]
                ja, _ = _joint_codes(a, sizes, names, ordinal)
                jb, _ = _joint_codes(b, sizes, names, ordinal)
                for key, v in distances(a, b, ja, jb).items():
                    vals.setdefault(key, []).append(v)
            floors[n] = {key: (float(np.mean(v)), float(np.quantile(v, 0.95))) for key, v in vals.items()}
        return floors[n]

    result: dict[str, dict[str, _Distance]] = {}
    for row, codes in rows.items():
        codes = np.asarray(codes, dtype=np.int64)
        if codes.ndim != 2 or codes.shape[1] != k_f or len(codes) < 2:
            raise LatentAtlasError(f"row '{row}' holds factor codes of shape {codes.shape}; expected (n ≥ 2, {k_f})")
        joint, _ = _joint_codes(codes, sizes, names, ordinal)
        value = distances(codes, ref, joint, coarse_ref)
        draws: dict[str, list[float]] = {key: [] for key in value}
        rrng = np.random.default_rng([random_state, 23, len(result)])
        for b in range(num_resamples):
            i, j = rrng.integers(0, len(codes), len(codes)), ref_draws[b]
            for key, v in distances(codes[i], ref[j], joint[i], coarse_ref[j]).items():
                draws[key].append(v)
        fl = floor(len(codes))
        result[row] = {key: _Distance(value[key], np.asarray(draws[key]), *fl[key]) for key in value}
    return result


def _joint_codes(codes: np.ndarray, sizes: Sequence[int], names: Sequence[str], ordinal: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
    """One code per row for the joint histogram: each ordinal factor cut into JOINT_BINS bins of its index
    range, categorical factors kept; 0 cells when that grid has more than 1,000 cells."""
    cells, joint = 1, np.zeros(len(codes), dtype=np.int64)
    for k, f in enumerate(names):
        size = int(sizes[k])
        c = codes[:, k]
        if f in ordinal and size > JOINT_BINS:
            c, size = (c * JOINT_BINS) // int(sizes[k]), JOINT_BINS
        joint = joint * size + c
        cells *= size
    return (joint, cells) if cells <= 1000 else (joint, 0)


# -- the map: the VAE run's own PCA, refitted ------------------------------------------------------------------

@dataclass
class MapProjection:
    """A projection of latents onto the VAE run's latent map: ``transform(z)`` gives (n, 2) map coordinates."""

    key: str
    method: str
    mean: np.ndarray
    components: np.ndarray
    error: float | None  # the largest difference from the stored coordinates when refitted on the stored latents
    note: str | None

    def transform(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        return ((z.reshape(-1, z.shape[-1]) - self.mean) @ self.components.T).reshape(*z.shape[:-1], 2).astype(np.float32)


def map_projection(vae_run: Run, key: str = "eval-pca", tol: float = 1e-5) -> MapProjection:
    """The VAE run's PCA map as a function of new latents: sklearn's PCA refitted on the run's stored latents
    with the stored settings, checked to give back the stored coordinates to within ``tol`` (relative to
    their scale). A run whose map is UMAP or t-SNE (which cannot place new points) or has no map gets a PCA
    of the same latents and a note saying so."""
    from sklearn.decomposition import PCA

    stored = vae_run.read_projection(key)
    note = None
    if stored is not None and stored[1].get("method") != "pca":
        stored, note = None, f"the map '{key}' is {stored[1].get('method')}, which cannot place new points; trajectories are drawn on a PCA of the same latents"
    latents = "eval"
    seed = 0
    if stored is not None:
        coords, meta = stored
        latents = meta.get("latents") if isinstance(meta.get("latents"), str) else "eval"
        params = meta.get("params") or {}
        seed = params.get("random_state", 0)
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED or params.get("n_components", 2) != 2:
            raise LatentAtlasError(f"projection '{key}' of run '{vae_run.name}' records settings that are not a 2-D PCA's; re-run `latentatlas eval {vae_run.name}`")
    elif note is None:
        note = f"run '{vae_run.name}' has no PCA map '{key}'; trajectories are drawn on a PCA of its latents fitted here"
    arrays, _ = vae_run.read_latents(latents)
    mu = arrays["mu"].astype(np.float64)
    pca = PCA(n_components=2, random_state=seed).fit(mu)
    proj = MapProjection(key if stored is not None else "pca (refitted)", "pca", pca.mean_.copy(), pca.components_.copy(), None, note)
    if stored is not None:
        coords = stored[0]
        if coords.shape != (len(mu), 2):
            raise LatentAtlasError(f"projection '{key}' of run '{vae_run.name}' has {coords.shape[0]} points for {len(mu)} latents; re-run `latentatlas eval {vae_run.name}`")
        err = float(np.abs(proj.transform(mu) - coords).max())
        scale = max(1.0, float(np.abs(coords).max()))
        if err > tol * scale:
            raise LatentAtlasError(f"the PCA map '{key}' of run '{vae_run.name}' is not reproduced by a PCA of its latents (largest difference {err:.3g}); "
                                   f"re-run `latentatlas eval {vae_run.name}`")
        proj.error = err
    return proj


# -- sampling ------------------------------------------------------------------------------------------------

def _noise(n: int, d: int, seed: int, stream: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(int(seed) * 1000 + stream))


def _flow_model(run: Run) -> FlowModel:
    if not run.has_model:
        raise LatentAtlasError(f"latent flow run '{run.name}' has no trained weights yet; finish it with `latentatlas flow latent --name {run.name} --resume`")
    model = run.load_model("cpu")
    model.eval()
    return model


def sample_latents(run: Run, how: str, n: int, *, seed: int = 0, sampler: str = SAMPLER, nfe: int = NFE,
                   trajectory: bool = False) -> dict[str, Any]:
    """``n`` latents in the VAE's latent space drawn by ``how``: "prior" (N(0, I)), "flow" (the run's model
    with ``sampler`` at ``nfe``) or "stage2" (N(0, I) → the second stage's decoder mean → un-standardised).
    Returns {"z": (n, d), and for the flow "trajectory" (k + 1, n, d) and "times", "nfe"}."""
    arrays = training_latents(run)
    mean, std = arrays["mean"].astype(np.float64), arrays["std"].astype(np.float64)
    d = len(mean)
    if how == "prior":
        return {"z": _noise(n, d, seed, 1).numpy()}
    if how == "flow":
        model = _flow_model(run)
        c = model.config
        steps_for(sampler, nfe)
        res = run_sampler(model.prediction(), _noise(n, d, seed, 2), sampler, nfe, objective=c.objective, schedule=c.schedule,
                          train_timesteps=c.train_timesteps, seed=seed, trajectory=trajectory)
        out = {"z": (res.x.double().numpy() * std + mean).astype(np.float32), "nfe": int(res.nfe), "times": res.times}
        if res.trajectory is not None:
            out["trajectory"] = (res.trajectory.double().numpy() * std + mean).astype(np.float32)
        return out
    if how == "stage2":
        part = stage2_of(run)
        if not part.has_model:
            raise LatentAtlasError(f"latent flow run '{run.name}' has no trained second-stage VAE; train it with `latentatlas flow latent --name {run.name} --resume`")
        model = part.load_model("cpu")
        with torch.no_grad():
            x = model.decode(_noise(n, model.latent_dim, seed, 3)).double().numpy()
        return {"z": (x * std + mean).astype(np.float32)}
    raise LatentAtlasError(f"latent sampler '{how}' is not one of prior, flow, stage2")


@torch.no_grad()
def decode(vae_model, z: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Decoded images in [0, 1] (n, C, H, W) float32 of latents z (n, d)."""
    out = [vae_model.decode_mean(torch.from_numpy(np.ascontiguousarray(z[i : i + batch_size], dtype=np.float32))).float().numpy()
           for i in range(0, len(z), batch_size)]
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


def _uint8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0.0, 1.0) * 255).astype(np.uint8)


# -- the evaluation ------------------------------------------------------------------------------------------

def _est(e: Estimate) -> dict[str, Any]:
    d = e.to_dict()
    return {k: d[k] for k in ("value", "ci_low", "ci_high", "n", "details")}


def _real_images(vae_run: Run, rows_table, positions: np.ndarray) -> np.ndarray:
    """The real images behind rows ``positions`` of the VAE run's latent set: its stored inputs when it keeps
    them (data read from a path), else the dataset its config names."""
    from ...data import load_dataset

    stored = vae_run.read_inputs()
    if stored is not None and len(stored) == len(rows_table):
        return stored[positions].astype(np.float32) / 255.0
    data = load_dataset(vae_run.config()["data"])
    return np.asarray(data.get(rows_table["index"].to_numpy()[positions]), dtype=np.float32)


def _energy_floor(pool: np.ndarray, n: int, m: int, repeats: int, seed: int) -> dict[str, float]:
    """The energy distance between two disjoint draws (n and m rows) of the aggregate posterior's means."""
    from ...analysis.sample_quality import energy_distance

    rng = np.random.default_rng([seed, 29])
    k = min(n + m, len(pool))
    n_a = max(2, min(n, k // 2))
    vals = []
    for _ in range(repeats):
        perm = rng.permutation(len(pool))[:k]
        vals.append(energy_distance(pool[perm[:n_a]], pool[perm[n_a:k]], num_resamples=0).value)
    return {"mean": float(np.mean(vals)), "quantile": float(np.quantile(vals, 0.95)), "q": 0.95, "repeats": int(repeats),
            "n": int(n_a), "m": int(k - n_a)}


def evaluate_latent(run: Run, *, classifier: str | None = None, n: int | None = None, sampler: str = SAMPLER, nfe: int = NFE,
                    seed: int = 0, num_resamples: int = 200, null_repeats: int = 20, grid: int = 16, trajectories: int = 12,
                    train_classifier_if_missing: bool = True, progress: bool = True) -> dict[str, Any]:
    """The latent-diffusion table of latent flow run ``run``: for real held-out images, their encoder means,
    the VAE prior, the latent flow (``sampler`` at ``nfe``) and the two-stage VAE, the factor distribution
    read by the factor classifier against the real images' (TV per factor and their mean, W1 for ordinal
    factors, joint TV of coarsened factors) and the latent energy distance to held-out encoder means, each
    with a 95 % interval and its noise floor. Writes metrics.json (with ``latent_table``), decoded sample
    grids, the figures and the trajectories on the VAE run's map."""
    from ...analysis.sample_quality import energy_distance

    t_start = time.perf_counter()
    if sampler in STOCHASTIC:
        raise LatentAtlasError(f"sampler '{sampler}' is stochastic; the latent table uses an ODE sampler (euler, midpoint, heun, dpm++, ddim)")
    steps_for(sampler, nfe)
    spec = _spec(run)
    vae_run = vae_of(run)
    vae_model = _vae_model(vae_run)
    arrays = training_latents(run)
    all_lat, rows_table = vae_run.read_latents(spec.get("latents", "eval"))
    mu_all = all_lat["mu"].astype(np.float32)
    rows_pos = arrays["rows"]
    if rows_pos.max(initial=-1) >= len(mu_all) or not np.array_equal(mu_all[rows_pos], arrays["z"]):
        raise LatentAtlasError(f"the latents of VAE run '{vae_run.name}' changed since latent flow run '{run.name}' was trained on them (it was evaluated again); train a new latent flow run")
    held = arrays.get("held_out")
    if held is None or held.ndim != 1 or len(held) < 8 or held.max() >= len(mu_all):
        raise LatentAtlasError(f"latent flow run '{run.name}' keeps no held-out rows of at least 8 latents; train it again with --held-out")
    half = len(held) // 2
    ref_pos, enc_pos = held[:half], held[half : 2 * half]
    n = half if n is None else check_int(n, "--n", 2, 200_000)
    timings: dict[str, float] = {}

    # the classifier, on the VAE's data
    t0 = time.perf_counter()
    vae_data = vae_run.config().get("data")
    clf_run = classifier_for(run.atlas, vae_data, name=classifier, train=train_classifier_if_missing, progress=progress, seed=seed)
    clf = _classifier_model(clf_run)
    timings["classifier"] = time.perf_counter() - t0
    names = list(clf.config.factor_names)
    sizes = [int(s) for s in clf.config.factor_sizes]
    ordinal = _ordinal_of(vae_data, names)

    # every row's latents and images
    t0 = time.perf_counter()
    real_ref = _real_images(vae_run, rows_table, ref_pos)
    latents: dict[str, np.ndarray] = {"encoder": mu_all[enc_pos]}
    images: dict[str, np.ndarray] = {"data": _real_images(vae_run, rows_table, enc_pos)}
    extra: dict[str, dict[str, Any]] = {}
    for how in ("prior", "flow", "stage2"):
        s0 = time.perf_counter()
        out = sample_latents(run, how, n, seed=seed, sampler=sampler, nfe=nfe)
        latents[how] = out["z"]
        extra[how] = {"seconds": round(time.perf_counter() - s0, 3)}
        if how == "flow":
            extra[how].update(sampler=sampler, nfe=out["nfe"])
    for row, z in latents.items():
        images[row] = decode(vae_model, z)
    timings["sample_and_decode"] = time.perf_counter() - t0

    # classify: the real reference images, and the reference's own encoder means decoded (what the decoder
    # makes of the aggregate posterior: the best any latent sampler can do with this decoder)
    t0 = time.perf_counter()
    mu_ref = mu_all[ref_pos]
    ref_codes, _ = clf.predict(real_ref)
    dec_codes, _ = clf.predict(decode(vae_model, mu_ref))
    codes, conf = {}, {}
    for row in ROWS:
        codes[row], conf[row] = clf.predict(images[row])
    timings["classify"] = time.perf_counter() - t0

    # the factor distances, to the real images and to the decoded encoder means
    t0 = time.perf_counter()
    dist = compare_factors(codes, ref_codes, sizes, names, ordinal, num_resamples=num_resamples, random_state=seed)
    latent_rows = [r for r in ROWS if r != "data"]
    dist_dec = compare_factors({r: codes[r] for r in latent_rows}, dec_codes, sizes, names, ordinal, num_resamples=num_resamples,
                               random_state=seed + 1)
    timings["factor_distances"] = time.perf_counter() - t0

    # the latent energy distance to held-out encoder means, in all dimensions and in the active ones (whose
    # means vary: Var > 0.01, Burda et al. 2016): the decoder ignores the others, where N(0, I) differs most
    t0 = time.perf_counter()
    active = np.flatnonzero(mu_all.var(0, ddof=1) > 0.01)
    spaces = {"all": np.arange(mu_all.shape[1])}
    if 0 < len(active) < mu_all.shape[1]:
        spaces["active"] = active
    floor_cache: dict[tuple[str, int], dict[str, float]] = {}
    energies: dict[str, dict[str, Estimate]] = {space: {} for space in spaces}
    for space, cols in spaces.items():
        for row, z in latents.items():
            e = energy_distance(z[:, cols], mu_ref[:, cols], num_resamples=num_resamples, random_state=seed)
            if (space, len(z)) not in floor_cache:
                floor_cache[(space, len(z))] = _energy_floor(mu_all[:, cols], len(z), len(mu_ref), null_repeats, seed)
            fl = floor_cache[(space, len(z))]
            e.details.update(floor_mean=fl["mean"], floor_q95=fl["quantile"], at_floor=bool(e.value <= fl["quantile"]),
                             dims=[int(c) for c in cols])
            energies[space][row] = e
    timings["energy"] = time.perf_counter() - t0

    # the table
    metrics: dict[str, Any] = {}
    table: list[dict[str, Any]] = []
    rng = np.random.default_rng([seed, 31])
    truth_ref = _true_codes(rows_table, ref_pos, names)
    for row in ROWS:
        m = len(codes[row])
        entry: dict[str, Any] = {"row": row, "label": ROW_LABELS[row], "n": int(m), **extra.get(row, {})}
        entry.update(_distances_entry(dist[row], names, ordinal, m))
        entry["to_decoded_means"] = _distances_entry(dist_dec[row], names, ordinal, m) if row in dist_dec else None
        entry["confidence"] = _est(mean_estimate("confidence", conf[row].mean(1), rng))
        entry["latent_energy"] = _est(energies["all"][row]) if row in energies["all"] else None
        entry["latent_energy_active"] = _est(energies["active"][row]) if row in energies.get("active", {}) else None
        entry["histograms"] = _histograms(codes[row], names, sizes)
        table.append(entry)
        metrics[f"factor_tv_mean_{row}"] = entry["factor_tv_mean"]
        for f in names:
            metrics[f"factor_tv_{f}_{row}"] = entry["factor_tv"][f]
        for f, v in entry["factor_w1"].items():
            metrics[f"factor_w1_{f}_{row}"] = v
        if "joint_tv" in entry:
            metrics[f"joint_tv_{row}"] = entry["joint_tv"]
        if entry["to_decoded_means"] is not None:
            metrics[f"decoded_tv_mean_{row}"] = entry["to_decoded_means"]["factor_tv_mean"]
            for f in names:
                metrics[f"decoded_tv_{f}_{row}"] = entry["to_decoded_means"]["factor_tv"][f]
        metrics[f"confidence_{row}"] = entry["confidence"]
        if entry["latent_energy"] is not None:
            metrics[f"latent_energy_{row}"] = entry["latent_energy"]
        if entry["latent_energy_active"] is not None:
            metrics[f"latent_energy_active_{row}"] = entry["latent_energy_active"]
    comparisons: dict[str, dict[str, Any]] = {}
    for a, b in (("prior", "flow"), ("prior", "stage2"), ("stage2", "flow")):
        for suffix, dd in (("", dist), ("_decoded", dist_dec)):
            diff = _paired_difference(dd[a]["tv_mean"], dd[b]["tv_mean"], len(codes[b]))
            comparisons[f"{a}_minus_{b}{suffix}"] = diff
            metrics[f"{'decoded' if suffix else 'factor'}_tv_mean_{a}_minus_{b}"] = diff
    clf_report = clf_run.read_metrics() or {}
    accuracy = {k: v for k, v in (clf_report.get("metrics") or {}).items() if k.startswith("accuracy")}
    notes = _reading(table, comparisons, names)
    if vae_run.config().get("kind") == "ae":
        notes.append(f"run '{vae_run.name}' is a plain autoencoder: it has no prior, so the N(0, I) row is only a reference point")
    headline = {k: metrics[k]["value"] for k in (f"factor_tv_mean_{r}" for r in ROWS) if k in metrics}
    headline.update({f"decoded_tv_mean_{r}": metrics[f"decoded_tv_mean_{r}"]["value"] for r in ("prior", "flow", "stage2")})
    headline.update({f"latent_energy_{r}": metrics[f"latent_energy_{r}"]["value"] for r in ("prior", "flow", "stage2")})
    report: dict[str, Any] = {
        "run": run.name, "kind": KIND, "n": int(n), "created_at": now_iso(),
        "command": f"latentatlas flow latent --vae {vae_run.name} --name {run.name}",
        "vae": vae_run.name, "classifier": clf_run.name, "factors": names, "ordinal_factors": [f for f in names if f in ordinal],
        "reference": {"what": "factor classifier's predictions on held-out real images", "n": int(len(ref_codes)),
                      "histograms": _histograms(ref_codes, names, sizes),
                      "true_histograms": _histograms(truth_ref, names, sizes) if truth_ref is not None else None,
                      "classifier_vs_truth_tv": ({f: factor_tv(ref_codes[:, k], truth_ref[:, k], sizes[k]) for k, f in enumerate(names)}
                                                 if truth_ref is not None else None)},
        "decoded_reference": {"what": "factor classifier's predictions on the reference images' encoder means, decoded",
                              "n": int(len(dec_codes)), "histograms": _histograms(dec_codes, names, sizes)},
        "comparisons": comparisons,
        "classifier_accuracy": accuracy, "sampler": sampler, "nfe": int(nfe),
        "metrics": metrics, "headline": headline, "notes": notes, "latent_table": table,
        "energy_floor": floor_cache.get(("all", int(n))), "active_dims": [int(c) for c in active],
    }
    # samples, figures, trajectories
    t0 = time.perf_counter()
    _write_samples(run, images, latents, grid)
    report["figures"] = _samples_figure(run, images, grid)
    timings["samples"] = time.perf_counter() - t0
    if trajectories:
        t0 = time.perf_counter()
        traj = write_trajectories(run, k=trajectories, sampler=sampler, nfe=nfe, seed=seed, vae_run=vae_run, vae_model=vae_model)
        report["trajectories"] = {k: v for k, v in traj.items() if k in ("projection", "reproduction_error", "note", "k", "file")}
        report["figures"] += traj.get("figures", [])
        timings["trajectories"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    report["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    run.write_metrics(report)
    return report


def _distances_entry(d: dict[str, _Distance], names: Sequence[str], ordinal: dict[str, np.ndarray], n: int) -> dict[str, Any]:
    out: dict[str, Any] = {"factor_tv": {f: _est(d[f"tv:{f}"].estimate(f"factor_tv_{f}", n)) for f in names},
                           "factor_tv_mean": _est(d["tv_mean"].estimate("factor_tv_mean", n)),
                           "factor_w1": {f: _est(d[f"w1:{f}"].estimate(f"factor_w1_{f}", n)) for f in names if f in ordinal}}
    if "joint_tv" in d:
        out["joint_tv"] = _est(d["joint_tv"].estimate("joint_tv", n, bins=JOINT_BINS))
    return out


def _histograms(codes: np.ndarray, names: Sequence[str], sizes: Sequence[int]) -> dict[str, list[float]]:
    """Each factor's predicted (or true) distribution: the share of rows per class."""
    return {f: [float(v) for v in np.bincount(codes[:, k], minlength=sizes[k])[: sizes[k]] / max(1, len(codes))]
            for k, f in enumerate(names)}


def _ordinal_of(data_spec, names: Sequence[str]) -> dict[str, np.ndarray]:
    from ...data import load_dataset

    try:
        data = load_dataset(data_spec)
    except LatentAtlasError:
        return {}
    values = _ordinal_values(data)
    return {f: values[f] for f in names if f in values}


def _true_codes(rows_table, positions: np.ndarray, names: Sequence[str]) -> np.ndarray | None:
    if not all(f in rows_table.columns for f in names):
        return None
    return np.stack([rows_table[f].to_numpy()[positions] for f in names], 1).astype(np.int64)


def _paired_difference(a: _Distance, b: _Distance, n: int) -> dict[str, Any]:
    """a − b with a basic bootstrap interval from the paired draws (the same reference resample in each)."""
    value = a.value - b.value
    k = min(len(a.draws), len(b.draws))
    low, high = _basic_interval(value, a.draws[:k] - b.draws[:k], -1.0, 1.0)
    return _est(Estimate("factor_tv_mean_difference", value, low, high, n,
                         {"ci_method": "basic bootstrap of the paired difference (each row's samples and the shared reference resampled)",
                          "positive_means": "the second row is closer to the data"}))


def _reading(table: list[dict[str, Any]], comparisons: dict[str, dict[str, Any]], names: Sequence[str]) -> list[str]:
    """Plain sentences: which sampler is closer to the data's factor distribution (and to the decoded
    encoder means'), and by how much."""
    by = {r["row"]: r for r in table}
    notes = []

    def tv(row: str, decoded: bool = False) -> str:
        e = (by[row]["to_decoded_means"] if decoded else by[row])["factor_tv_mean"]
        return f"{e['value']:.3f} [{e['ci_low']:.3f}, {e['ci_high']:.3f}]"

    notes.append(f"mean factor TV to held-out real images (over {', '.join(names)}): data {tv('data')} (the floor), encoder means {tv('encoder')} "
                 f"(the decoder's own loss), prior {tv('prior')}, latent flow {tv('flow')}, two-stage VAE {tv('stage2')}")
    notes.append(f"mean factor TV to the decoded encoder means of the same images: encoder means {tv('encoder', True)} (the floor), "
                 f"prior {tv('prior', True)}, latent flow {tv('flow', True)}, two-stage VAE {tv('stage2', True)}")
    for suffix, target in (("", "the data's factor distribution"), ("_decoded", "the decoded encoder means' factor distribution")):
        for key, (a, b) in (("prior_minus_flow", ("prior", "latent flow")), ("prior_minus_stage2", ("prior", "two-stage VAE")),
                            ("stage2_minus_flow", ("two-stage VAE", "latent flow"))):
            c = comparisons[key + suffix]
            if c["ci_low"] > 0:
                verdict = f"the {b} is closer to {target} than the {a}"
            elif c["ci_high"] < 0:
                verdict = f"the {a} is closer to {target} than the {b}"
            else:
                verdict = f"the {b} and the {a} cannot be told apart on {target} at this n"
            notes.append(f"{verdict} (mean TV difference {c['value']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}])")
    return notes


def _write_samples(run: Run, images: dict[str, np.ndarray], latents: dict[str, np.ndarray], grid: int) -> None:
    folder = run.file("samples")
    folder.mkdir(parents=True, exist_ok=True)
    for row, x in images.items():
        k = min(grid, len(x))
        tensors = {"images": torch.from_numpy(np.ascontiguousarray(_uint8(x[:k])))}
        if row in latents:
            tensors["latents"] = torch.from_numpy(np.ascontiguousarray(latents[row][:k], dtype=np.float32))
        atomic_save_safetensors(run.file("samples", f"latent-{row}.safetensors"), tensors)
        atomic_write_json(run.file("samples", f"latent-{row}.json"), {"run": run.name, "row": row, "label": ROW_LABELS[row], "n": int(k),
                                                                       "created_at": now_iso()})


def _samples_figure(run: Run, images: dict[str, np.ndarray], grid: int) -> list[str]:
    from ... import figures as F

    k = min([grid] + [len(x) for x in images.values()])
    if k < 1 or images["data"].ndim != 4:
        return []
    stack = np.stack([np.clip(images[r][:k], 0, 1) for r in ROWS])
    fig = F.traversal_grid(stack, [ROW_LABELS[r] for r in ROWS], np.arange(1, k + 1), title="Decoded samples per sampler", xlabel="sample")
    F.save(fig, run.figure_path("latent_samples.png"), vector=False)
    return ["latent_samples.png"]


def write_trajectories(run: Run, *, k: int = 12, sampler: str = SAMPLER, nfe: int = NFE, seed: int = 0, strip: int = 8,
                       vae_run: Run | None = None, vae_model=None) -> dict[str, Any]:
    """``k`` trajectories of the latent flow's sampler, every state projected onto the VAE run's PCA map
    (:func:`map_projection`), with the decoded image at ``strip`` times along each; written to
    ``samples/latent-trajectories.safetensors`` (coords (steps + 1, k, 2), times, latents, images) and a
    figure of the map with the paths drawn on it."""
    check_int(k, "--trajectories", 1, 1000)
    vae_run = vae_run or vae_of(run)
    vae_model = vae_model if vae_model is not None else _vae_model(vae_run)
    proj = map_projection(vae_run)
    out = sample_latents(run, "flow", k, seed=seed + 7, sampler=sampler, nfe=nfe, trajectory=True)
    traj = out["trajectory"]  # (steps + 1, k, d)
    coords = proj.transform(traj)
    times = np.asarray(out["times"], dtype=np.float32)
    at = np.unique(np.round(np.linspace(0, len(times) - 1, min(strip, len(times)))).astype(int))
    strip_images = np.stack([_uint8(decode(vae_model, traj[i])) for i in at])
    tensors = {"coords": coords, "times": times, "latents": traj, "strip_index": at.astype(np.int64), "images": strip_images}
    folder = run.file("samples")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_save_safetensors(run.file("samples", "latent-trajectories.safetensors"),
                            {key: torch.from_numpy(np.ascontiguousarray(v)) for key, v in tensors.items()})
    meta = {"run": run.name, "vae": vae_run.name, "projection": proj.key, "method": proj.method, "reproduction_error": proj.error,
            "note": proj.note, "k": int(k), "sampler": sampler, "nfe": int(out["nfe"]), "seed": int(seed), "created_at": now_iso(),
            "file": "samples/latent-trajectories.safetensors"}
    atomic_write_json(run.file("samples", "latent-trajectories.json"), meta)
    meta["figures"] = _trajectory_figure(run, vae_run, proj, coords)
    return meta


def _trajectory_figure(run: Run, vae_run: Run, proj: MapProjection, coords: np.ndarray) -> list[str]:
    from ... import figures as F

    arrays, _ = vae_run.read_latents("eval")
    base = proj.transform(arrays["mu"])
    fig = F.latent_map(base, title="Flow trajectories on the VAE map", axis_labels=("pca 1", "pca 2"))
    ax = fig.axes[0]
    colours = F.category_colors(coords.shape[1])  # each path its colour: hollow dot the noise (t = 0), filled the sample
    for j in range(coords.shape[1]):
        ax.plot(coords[:, j, 0], coords[:, j, 1], color=colours[j], linewidth=0.9)
        ax.plot(coords[0, j, 0], coords[0, j, 1], "o", color=colours[j], markersize=2.5, markerfacecolor="white")
        ax.plot(coords[-1, j, 0], coords[-1, j, 1], "o", color=colours[j], markersize=3.0)
    F.save(fig, run.figure_path("latent_trajectories.png"), vector=False)
    return ["latent_trajectories.png"]


# -- the whole job -------------------------------------------------------------------------------------------

def latent_diffusion(atlas: Atlas | str | None = None, vae: str = "demo", *, name: str | None = None, resume: bool = False,
                     classifier: str | None = None, n: int | None = None, held_out: int | None = None, standardise: bool = True,
                     steps: int | None = None, stage2_steps: int | None = None, classifier_steps: int | None = None,
                     batch_size: int | None = None, eval_n: int | None = None, sampler: str = SAMPLER, nfe: int = NFE, seed: int = 0,
                     device: str = "auto", progress: bool = True, on_step: Callable[[int], None] | None = None,
                     **model_overrides: Any) -> tuple[Run, dict[str, Any]]:
    """``latentatlas flow latent --vae RUN``: train the latent flow on VAE run ``vae`` (or, with ``resume``,
    finish run ``name``), train its second-stage VAE, find or train the factor classifier for the VAE's
    data, and write the table. ``model_overrides`` set fields of the flow's :class:`FlowConfig`. Returns the
    run and the report (with ``timings_s`` for every step)."""
    atlas = atlas if isinstance(atlas, Atlas) else Atlas(atlas)
    steps_for(sampler, nfe)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if resume:
        if not name:
            raise LatentAtlasError("--resume needs --name to say which latent flow run to continue")
        run = atlas.run(name)
        _spec(run)
        if not run.has_model or run.has_checkpoint:
            run, _ = train_latent(atlas, name=name, resume=True, progress=progress, on_step=on_step)
    else:
        run, _ = train_latent(atlas, vae, n=n, held_out=held_out, standardise=standardise, steps=steps, batch_size=batch_size, seed=seed,
                              name=name, device=device, progress=progress, on_step=on_step, **model_overrides)
    timings["flow"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    train_stage2(run, steps=stage2_steps, seed=seed, device=device, progress=progress)
    timings["stage2"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    vae_run = vae_of(run)
    classifier_run = classifier_for(atlas, vae_run.config().get("data"), name=classifier, progress=progress, device=device,
                                    steps=classifier_steps, seed=seed)
    timings["classifier"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = evaluate_latent(run, classifier=classifier_run.name, n=eval_n, sampler=sampler, nfe=nfe, seed=seed, progress=progress)
    timings["evaluate"] = time.perf_counter() - t0
    report["timings_s"] = {**{f"train_{k}": round(v, 3) for k, v in timings.items() if k != "evaluate"},
                           **{f"evaluate_{k}": v for k, v in report["timings_s"].items()}}
    run.write_metrics(report)
    return run, report


def table_text(report: dict[str, Any]) -> str:
    """The table as plain text for a terminal (what the CLI prints): mean and per-factor TV to the real
    images, mean TV to the decoded encoder means, joint TV, latent energy distance, confidence."""
    names = report.get("factors") or []
    head = ["row", "n", "TV mean", *[f"TV {f}" for f in names], "joint TV", "TV mean to decoded means", "latent energy",
            "latent energy (active dims)", "confidence"]
    lines = [" | ".join(head), " | ".join("---" for _ in head)]

    def cell(e) -> str:
        if not e:
            return "—"
        mark = "*" if (e.get("details") or {}).get("at_floor") else ""
        return f"{e['value']:.3f} [{e['ci_low']:.3f}, {e['ci_high']:.3f}]{mark}"

    for r in report.get("latent_table") or []:
        label = r["label"] + (f" ({r['sampler']}, {r['nfe']} NFE)" if r.get("sampler") else "")
        dec = (r.get("to_decoded_means") or {}).get("factor_tv_mean")
        lines.append(" | ".join([label, str(r["n"]), cell(r["factor_tv_mean"]), *[cell(r["factor_tv"].get(f)) for f in names],
                                 cell(r.get("joint_tv")), cell(dec), cell(r.get("latent_energy")), cell(r.get("latent_energy_active")),
                                 cell(r.get("confidence"))]))
    lines.append("* at the noise floor (at most the 95th percentile of the same distance between two samples of the reference)")
    return "\n".join(lines)


def read_latent_samples(run: Run, row: str) -> dict[str, np.ndarray]:
    """The saved decoded samples of one row of the table (``images`` uint8 (m, C, H, W), ``latents``)."""
    if row not in ROWS and row != "trajectories":
        raise LatentAtlasError(f"latent sample '{str(row)[:40]}' is not one of {', '.join(ROWS)}, trajectories")
    path = run.file("samples", f"latent-{row}.safetensors")
    if not path.is_file():
        raise NotFound(f"run '{run.name}' has no latent samples '{row}'; make them with `latentatlas flow latent --name {run.name} --resume`")
    return {k: v.numpy() for k, v in read_weights(path).items()}


def read_trajectory_meta(run: Run) -> dict[str, Any]:
    path = run.file("samples", "latent-trajectories.json")
    if not path.is_file():
        raise NotFound(f"run '{run.name}' has no latent trajectories; make them with `latentatlas flow latent --name {run.name} --resume`")
    return read_json(path, "latent trajectories", 1 << 20)


def latent_view(run: Run) -> dict[str, Any]:
    """What a page shows of a latent flow run, as plain JSON values: the VAE run, the table and its notes
    (from metrics.json), the rows with saved decoded samples, and the trajectories on the VAE run's map
    (coords (steps + 1, k, 2), times, the projection and its reproduction error). Needs no VAE run."""
    spec = _spec(run)
    report = run.read_metrics() or {}
    view: dict[str, Any] = {"run": run.name, "vae": spec.get("vae"), "vae_present": run.atlas.has_run(str(spec.get("vae"))),
                            "evaluated": bool(report.get("latent_table")), "table": report.get("latent_table") or [],
                            "notes": report.get("notes") or [], "factors": report.get("factors") or [],
                            "classifier": report.get("classifier"), "classifier_accuracy": report.get("classifier_accuracy") or {},
                            "samples": [r for r in ROWS if run.file("samples", f"latent-{r}.safetensors").is_file()],
                            "trajectories": None}
    path = run.file("samples", "latent-trajectories.safetensors")
    if path.is_file():
        t = {k: v.numpy() for k, v in read_weights(path).items()}
        coords, times = t.get("coords"), t.get("times")
        if coords is None or times is None or coords.ndim != 3 or coords.shape[2] != 2 or coords.shape[0] != len(times):
            raise LatentAtlasError(f"the trajectories of run '{run.name}' are damaged; make them again with `latentatlas flow latent --name {run.name} --resume`")
        meta = read_trajectory_meta(run)
        view["trajectories"] = {"coords": np.round(coords, 5).tolist(), "times": [float(x) for x in times],
                                "strip_index": [int(i) for i in t.get("strip_index", np.zeros(0, np.int64))],
                                **{k: meta.get(k) for k in ("projection", "reproduction_error", "note", "sampler", "nfe", "k")}}
    return view


__all__ = ["LatentBatches", "FactorBatches", "MapProjection", "classifier_for", "compare_factors", "decode", "evaluate_classifier",
           "evaluate_latent", "factor_tv", "factor_w1", "held_out_mask", "is_latent_run", "latent_diffusion", "latent_view", "map_projection",
           "read_latent_samples", "read_trajectory_meta", "sample_latents", "stage2_of", "table_text", "train_classifier", "train_latent",
           "train_stage2", "training_latents", "vae_of", "write_trajectories"]

