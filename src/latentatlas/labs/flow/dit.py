"""The DiT view of the flow lab: a small class-conditional DiT (diffusers' ``DiTTransformer2DModel``,
``models/dit.py``) trained here with flow matching on the 8×8 digits, sampled with classifier-free guidance
through the lab's samplers, and seen at every sampling step and every layer.

Jobs: ``train`` (then ``capture`` and ``evaluate``), ``capture`` (sample one image per class with every
block's hidden states and self-attention probabilities recorded at every network call), ``evaluate`` (a
class probe's accuracy on generated digits and the per-class energy distance to real ones). The explorer
(:class:`DiTExplorer`) turns a capture into what the page draws: one PCA-to-RGB image per layer × step from
one PCA fitted jointly over every layer, step, half and sample (so a colour means the same direction
everywhere), for the conditional half, the unconditional half and their difference; the attention maps;
the state and the predicted image at each step.

    runs/<run>/config.json, model.safetensors, history.jsonl   as every run (kind "flow_dit")
    runs/<run>/dit/capture.safetensors + capture.json          the capture (float16 hidden states and attention)
    runs/<run>/metrics.json                                    ``evaluate``

Sizes (docs/metrics.md, "The DiT view"): 8×8 digits as one channel, patch 2 (a 4×4 grid of 16 tokens), 4
blocks of 4 heads × 24 dimensions; 25 Euler steps; guidance scale ``CFG_SCALE``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from ..._io import atomic_save_safetensors, atomic_write_json, read_json
from ...atlas import Atlas, Run, now_iso
from ...errors import LatentAtlasError
from ...limits import MAX_SEED, check_float, check_int
from ...models.dit import KIND, BlockRecorder, DiTConfig, FlowDiT, GuidedField, to_image
from ...models.io import config_to_dict
from ...models.samplers import SAMPLERS, SampleResult, sample as run_sampler
from ...trainer import TrainConfig, TrainResult, fit, fit_new_run, resolve_device, resumable

DATASETS = ("digits",)
SPLIT_SEED = 0  # the held-out split never moves with the training seed
TEST_SIZE = 360  # 20 % of the 1,797 digits
DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {"model": dict(image_size=8, channels=1, patch=2, n_heads=4, head_dim=24, n_layers=4, n_classes=10, label_dropout=0.1,
                             time_scale=1000.0),
               "train": dict(steps=1000, batch_size=128, lr=1e-3, lr_warmup=100, lr_decay=0.3)},
}
SAMPLER = "euler"
SAMPLE_STEPS = 25
CFG_SCALE = 1.5  # guidance trades diversity for class fidelity; docs/metrics.md has the sweep behind this choice
PER_CLASS = 100  # generated digits per class in ``evaluate``
HALVES = ("cond", "uncond")
WHICH = ("cond", "uncond", "diff")
IMAGES = ("state", "predicted", "predicted_cond", "predicted_uncond")
RGB_QUANTILE = 0.99  # a component's colour saturates at this quantile of its |value| over the whole capture
MAX_CAPTURE_SAMPLES = 64
MAX_CAPTURE_STEPS = 200
CAPTURE_DIR = "dit"


def versions() -> dict[str, str]:
    from .jobs import versions as flow_versions

    return flow_versions()


# -- data: the digits with their class, split once -----------------------------------------------------------

class Digits:
    """The 8×8 digits split into a fixed training and held-out part. ``get`` gives what the trainer feeds
    :meth:`FlowDiT.loss`: (N, 1 + 64) float32, the class in column 0, pixels in [0, 1] after it."""

    name = "digits"

    def __init__(self, test: int = TEST_SIZE, split_seed: int = SPLIT_SEED):
        from ...data.digits import load_digits

        ds = load_digits()
        self.x, self.y = ds.x.astype(np.float32), ds.labels.astype(np.int64)
        check_int(test, "the held-out split's size", 1, len(self.x) - 10)
        check_int(split_seed, "the split seed", 0, MAX_SEED)
        self.test_size, self.split_seed = int(test), int(split_seed)
        order = np.random.default_rng(self.split_seed).permutation(len(self.x))
        self.test_index, self.train_index = np.sort(order[:test]), np.sort(order[test:])
        self.classes = [str(i) for i in range(10)]

    @property
    def spec(self) -> dict[str, Any]:
        return {"kind": self.name, "test": self.test_size, "split_seed": self.split_seed}

    def split(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        """(images (N, 1, 8, 8) in [0, 1], classes) of the ``train`` or ``test`` part."""
        idx = self.train_index if part == "train" else self.test_index
        return self.x[idx], self.y[idx]

    def __len__(self) -> int:
        return len(self.train_index)

    def get(self, idx: np.ndarray) -> np.ndarray:
        rows = self.train_index[idx]
        return np.concatenate([self.y[rows].astype(np.float32)[:, None], self.x[rows].reshape(len(rows), -1)], axis=1)


def data_of(run: Run) -> Digits:
    """The run's images and split, from its config's ``data`` section (checked: a config is untrusted)."""
    spec = run.config().get("data")
    if not isinstance(spec, dict) or spec.get("kind") not in DATASETS or set(spec) - {"kind", "test", "split_seed"}:
        raise LatentAtlasError(f"run '{run.name}' has a data section {str(spec)[:80]!r}; expected {{\"kind\": \"digits\", \"test\": N, \"split_seed\": S}}")
    test, seed = spec.get("test", TEST_SIZE), spec.get("split_seed", SPLIT_SEED)
    if isinstance(test, bool) or not isinstance(test, int) or isinstance(seed, bool) or not isinstance(seed, int):
        raise LatentAtlasError(f"run '{run.name}' has a data section whose test and split_seed are not whole numbers")
    return Digits(test, seed)


# -- training --------------------------------------------------------------------------------------------------

def train(atlas: Atlas | str | None = None, *, data: str = "digits", steps: int | None = None, batch_size: int | None = None,
          lr: float | None = None, seed: int = 0, name: str | None = None, resume: bool = False, device: str = "auto",
          log_every: int = 50, checkpoint_every: int = 500, progress: bool = True, on_step: Callable[[int], None] | None = None,
          evaluate: bool = True, per_class: int = PER_CLASS, **model_overrides: Any) -> tuple[Run, TrainResult, dict[str, Any] | None]:
    """Train the DiT on ``data`` (the digits), then, unless ``evaluate=False``, capture it and evaluate it.
    ``model_overrides`` set fields of :class:`~latentatlas.models.dit.DiTConfig` (``n_layers=2`` …)."""
    atlas = atlas if isinstance(atlas, Atlas) else Atlas(atlas)
    if resume:
        if not name:
            raise LatentAtlasError("--resume needs --name to say which run to continue")
        run = atlas.run(name)
        train_cfg = resumable(run, KIND, "a DiT flow run")
        digits = data_of(run)
        from ...models import config_from_dict

        torch.manual_seed(train_cfg.seed)
        model = FlowDiT(config_from_dict(KIND, run.config()["model"]))
        with run.lock():
            result = fit(model, digits, run, train_cfg, resume=True, progress=progress, on_step=on_step)
    else:
        if data not in DATASETS:
            raise LatentAtlasError(f"--data '{data}' is not a dataset the DiT trains on; expected one of {', '.join(DATASETS)}")
        d = DEFAULTS[data]
        unknown = sorted(set(model_overrides) - set(d["model"]))
        if unknown:
            raise LatentAtlasError(f"unknown DiT setting(s) {', '.join(unknown)}; expected some of {', '.join(d['model'])}")
        model_cfg = DiTConfig(**{**d["model"], **model_overrides})
        if model_cfg.n_classes != 10 or model_cfg.channels != 1 or model_cfg.image_size != 8:
            raise LatentAtlasError("the digits are 10 classes of 1-channel 8×8 images; n_classes, channels and image_size cannot change")
        t = d["train"]
        total = steps or t["steps"]
        train_cfg = TrainConfig(steps=total, batch_size=batch_size or t["batch_size"], lr=lr or t["lr"], seed=seed, log_every=log_every,
                                checkpoint_every=checkpoint_every, device=device, lr_warmup=min(t["lr_warmup"], total // 4),
                                lr_decay=t["lr_decay"])
        resolve_device(device)
        digits = Digits()
        torch.manual_seed(seed)
        model = FlowDiT(model_cfg)
        name = name or atlas.unique_run_name(f"dit-{data}")
        config = {"name": name, "kind": KIND, "model": config_to_dict(model_cfg), "train": train_cfg.to_dict(), "data": digits.spec,
                  "versions": versions(), "created_at": now_iso(), "origin": "trained"}
        run, result = fit_new_run(atlas, config, model, digits, train_cfg, progress=progress, on_step=on_step)
    report = None
    if evaluate:
        with run.lock():
            save_capture(run, capture(model_of(run)))
            report = evaluate_run(run, per_class=per_class, train_seconds=training_seconds(run, result))
    return run, result, report


def training_seconds(run: Run, result: TrainResult) -> float:
    """The whole training time, across resumes (the history's clock continues over them)."""
    rows = run.read_history()
    t = rows[-1].get("time") if rows else None
    return float(t) if isinstance(t, (int, float)) and math.isfinite(t) and t >= 0 else float(result.seconds)


def model_of(run: Run, device: str = "cpu") -> FlowDiT:
    kind = run.config().get("kind")
    if kind != KIND:
        raise LatentAtlasError(f"run '{run.name}' is a {str(kind)[:40]}, not a DiT flow run")
    if not run.has_model:
        raise LatentAtlasError(f"run '{run.name}' has no trained weights yet; finish it with `latentatlas flow dit --name {run.name} --resume`")
    model = run.load_model(device)
    model.eval()
    return model


# -- sampling with guidance ----------------------------------------------------------------------------------

def _check_sampling(labels: np.ndarray | torch.Tensor, scale: float, steps: int, sampler: str, seed: int, n_classes: int) -> torch.Tensor:
    check_float(scale, "the guidance scale", -20.0, 50.0)
    check_int(steps, "the number of sampling steps", 1, MAX_CAPTURE_STEPS * 10)
    check_int(seed, "--seed", 0, MAX_SEED)
    if sampler not in SAMPLERS:
        raise LatentAtlasError(f"sampler '{sampler}' is not one of {', '.join(SAMPLERS)}")
    lab = torch.as_tensor(np.asarray(labels)).reshape(-1)
    if lab.numel() < 1 or lab.dtype.is_floating_point or lab.dtype == torch.bool:
        raise LatentAtlasError(f"the labels should be at least one whole class number, got {lab.numel()} of type {lab.dtype}")
    if int(lab.min()) < 0 or int(lab.max()) >= n_classes:
        raise LatentAtlasError(f"the labels should be classes 0 to {n_classes - 1}, got {int(lab.min())} to {int(lab.max())}")
    return lab.long()


def noise(n: int, seed: int, pixels: int) -> torch.Tensor:
    return torch.randn(n, pixels, generator=torch.Generator().manual_seed(int(seed)))


def generate(model: FlowDiT, labels, *, scale: float = CFG_SCALE, steps: int = SAMPLE_STEPS, sampler: str = SAMPLER, seed: int = 0,
             record: bool = False, trajectory: bool = False) -> tuple[SampleResult, GuidedField]:
    """Images for ``labels`` with guidance ``scale`` from seeded noise, in ``steps`` network calls of
    ``sampler`` (its NFE counted). The result's ``x`` is in the model's space [−1, 1], flattened."""
    c = model.config
    lab = _check_sampling(labels, scale, steps, sampler, seed, c.n_classes)
    field = GuidedField(model, lab, scale, record=record)
    x0 = noise(len(lab), seed, c.pixels)
    res = run_sampler(field, x0, sampler, steps, objective="fm", seed=seed, trajectory=trajectory)
    return res, field


# -- capture: every layer at every step ------------------------------------------------------------------------

@dataclass
class Capture:
    """One guided sampling run seen at every network call ("step") and block ("layer"). Shapes, for S calls,
    L layers, n samples, T tokens of width D, H heads, images C × side × side:

    - ``hidden`` (S, L, 2, n, T, D): each block's output; axis 2 is the conditional then the unconditional half
    - ``attention`` (S, L, 2, n, H, T, T): each block's self-attention probabilities (rows: queries)
    - ``times`` (S,): FM time of each call; ``states`` (S + 1, n, C, side, side): the sampler's states and
      the final images; ``predicted``, ``predicted_cond``, ``predicted_uncond`` (S, n, C, side, side): the
      clean image each call predicts, x̂1 = x_t + (1 − t)·v, with the guided, conditional and unconditional
      velocity. Images are in [0, 1] units, not clipped."""
    hidden: np.ndarray
    attention: np.ndarray
    times: np.ndarray
    states: np.ndarray
    predicted: np.ndarray
    predicted_cond: np.ndarray
    predicted_uncond: np.ndarray
    labels: np.ndarray
    meta: dict[str, Any]

    @property
    def layers(self) -> int:
        return self.hidden.shape[1]

    @property
    def steps(self) -> int:
        return self.hidden.shape[0]

    @property
    def n(self) -> int:
        return self.hidden.shape[3]


def capture(model: FlowDiT, labels=None, *, scale: float = CFG_SCALE, steps: int = SAMPLE_STEPS, sampler: str = SAMPLER,
            seed: int = 0) -> Capture:
    """Sample ``labels`` (default one image per class) with guidance and record every block's hidden states
    and self-attention at every network call (:class:`~latentatlas.models.dit.BlockRecorder`)."""
    c = model.config
    labels = np.arange(c.n_classes) if labels is None else np.asarray(labels)
    check_int(int(labels.size), "the number of captured samples", 1, MAX_CAPTURE_SAMPLES)
    check_int(steps, "the number of captured steps", 1, MAX_CAPTURE_STEPS)
    t0 = time.perf_counter()
    with BlockRecorder(model.dit) as rec:
        res, field = generate(model, labels, scale=scale, steps=steps, sampler=sampler, seed=seed, record=True, trajectory=True)
    hidden, attention = rec.stacked()
    seconds = time.perf_counter() - t0
    n = len(field.labels)
    calls = rec.calls
    if calls != field.nfe:
        raise LatentAtlasError(f"the recorder saw {calls} calls but the sampler made {field.nfe}; the model was called outside the sampler")
    # (S, L, 2n, …) → (S, L, 2, n, …): the first n rows of each call are the conditional half
    hidden = hidden.unflatten(2, (2, n))
    attention = attention.unflatten(2, (2, n))
    side = (c.channels, c.image_size, c.image_size)
    recs = field.records
    times = np.array([r.t for r in recs], dtype=np.float32)

    def predicted(which: str) -> np.ndarray:
        return np.stack([to_image(r.x + (1 - r.t) * getattr(r, which)) for r in recs])

    states = to_image(res.trajectory.reshape(res.trajectory.shape[0], n, *side))
    meta = {"sampler": sampler, "steps": int(res.steps), "nfe": int(res.nfe), "scale": float(scale), "seed": int(seed),
            "labels": [int(v) for v in field.labels], "seconds": round(seconds, 4), "state_times": [float(v) for v in res.times],
            "created_at": now_iso()}
    return Capture(hidden.float().numpy(), attention.float().numpy(), times, states, predicted("out"), predicted("cond"),
                   predicted("uncond"), field.labels.numpy(), meta)


_ARRAYS = ("hidden", "attention", "times", "states", "predicted", "predicted_cond", "predicted_uncond", "labels")


def save_capture(run: Run, cap: Capture) -> None:
    """Into ``dit/capture.safetensors`` (hidden states and attention as float16, the rest float32) and
    ``dit/capture.json``, each written atomically."""
    folder = run.file(CAPTURE_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for k in _ARRAYS:
        a = getattr(cap, k)
        dtype = np.int64 if k == "labels" else np.float16 if k in ("hidden", "attention") else np.float32
        tensors[k] = torch.from_numpy(np.ascontiguousarray(a, dtype=dtype))
    atomic_save_safetensors(folder / "capture.safetensors", tensors)
    atomic_write_json(folder / "capture.json", cap.meta)


def read_capture(run: Run) -> Capture | None:
    """The run's saved capture, checked for shapes that agree, or None when it has none."""
    from ...models.io import read_weights

    folder = run.file(CAPTURE_DIR)
    data, meta_path = folder / "capture.safetensors", folder / "capture.json"
    if not (data.is_file() and meta_path.is_file()):
        return None
    meta = read_json(meta_path, "DiT capture meta", 1 << 20)
    t = read_weights(data)
    missing = [k for k in _ARRAYS if k not in t]
    if missing or not isinstance(meta, dict):
        raise LatentAtlasError(f"the DiT capture of run '{run.name}' lacks {', '.join(missing) or 'its meta'}; capture it again")
    arrays = {k: t[k].numpy() if k == "labels" else t[k].float().numpy() for k in _ARRAYS}
    h, a = arrays["hidden"], arrays["attention"]
    S, L, two, n = h.shape[:4] if h.ndim == 6 else (0, 0, 0, 0)
    ok = (h.ndim == 6 and two == 2 and a.ndim == 7 and a.shape[:4] == h.shape[:4] and a.shape[-1] == a.shape[-2] == h.shape[4]
          and arrays["times"].shape == (S,) and arrays["states"].shape[:2] == (S + 1, n) and arrays["labels"].shape == (n,)
          and all(arrays[k].shape[:2] == (S, n) for k in ("predicted", "predicted_cond", "predicted_uncond")))
    if not ok:
        raise LatentAtlasError(f"the DiT capture of run '{run.name}' has arrays whose shapes disagree; capture it again")
    return Capture(**arrays, meta=meta)


# -- one PCA for every layer and step, as colour -------------------------------------------------------------

@dataclass
class JointRGB:
    """``cond``, ``uncond``, ``diff``: arrays of the input's shape with the last axis (width D) replaced by RGB
    in [0, 1]. One PCA (3 components) is fitted on every row of both halves together; component k of a row
    is its colour channel k, 0.5 + 0.5·p_k / s_k clipped to [0, 1], where s_k is the ``RGB_QUANTILE``
    quantile of |p_k| over all rows. The difference cond − uncond goes through the same three directions
    (without the mean: a linear map of a difference) with its own joint scale, so grey is no difference."""
    cond: np.ndarray
    uncond: np.ndarray
    diff: np.ndarray
    components: np.ndarray  # (3, D)
    mean: np.ndarray  # (D,)
    explained: np.ndarray  # (3,) shares of the variance
    scale: np.ndarray  # (3,) s_k of the halves
    diff_scale: np.ndarray  # (3,) of the difference


def joint_pca_rgb(cond: np.ndarray, uncond: np.ndarray, quantile: float = RGB_QUANTILE) -> JointRGB:
    from sklearn.decomposition import PCA

    cond, uncond = np.asarray(cond, dtype=np.float64), np.asarray(uncond, dtype=np.float64)
    if cond.shape != uncond.shape or cond.ndim < 2:
        raise LatentAtlasError(f"the two halves' hidden states should have one shape (…, width), got {cond.shape} and {uncond.shape}")
    d = cond.shape[-1]
    rows = np.concatenate([cond.reshape(-1, d), uncond.reshape(-1, d)])
    k = min(3, d, len(rows))
    pca = PCA(n_components=k, svd_solver="covariance_eigh").fit(rows)
    comps = np.zeros((3, d))
    comps[:k] = pca.components_
    explained = np.zeros(3)
    explained[:k] = pca.explained_variance_ratio_
    pc, pu = (cond - pca.mean_) @ comps.T, (uncond - pca.mean_) @ comps.T
    pd = (cond - uncond) @ comps.T
    scale = _scale(np.concatenate([pc.reshape(-1, 3), pu.reshape(-1, 3)]), quantile)
    dscale = _scale(pd.reshape(-1, 3), quantile)
    colour = lambda p, s: np.clip(0.5 + 0.5 * p / s, 0.0, 1.0).astype(np.float32)  # noqa: E731
    return JointRGB(colour(pc, scale), colour(pu, scale), colour(pd, dscale), comps.astype(np.float32), pca.mean_.astype(np.float32),
                    explained.astype(np.float32), scale.astype(np.float32), dscale.astype(np.float32))


def _scale(p: np.ndarray, quantile: float) -> np.ndarray:
    s = np.quantile(np.abs(p), quantile, axis=0)
    return np.where(s > 1e-12, s, 1.0)


# -- evaluation: a class probe and the energy distance ----------------------------------------------------------

def fit_probe(digits: Digits):
    """The class probe: scikit-learn's logistic regression on the training split's pixels."""
    from sklearn.linear_model import LogisticRegression

    x, y = digits.split("train")
    return LogisticRegression(max_iter=3000).fit(x.reshape(len(x), -1), y)


def _accuracy(name: str, correct: np.ndarray, rng: np.random.Generator, **details) -> dict[str, Any]:
    from ...analysis.bootstrap import mean_estimate

    return _est(mean_estimate(name, correct.astype(np.float64), rng, num_resamples=1000, **details))


def _est(e) -> dict[str, Any]:
    d = e.to_dict()
    return {k: d[k] for k in ("value", "ci_low", "ci_high", "n", "details")}


def evaluate_run(run: Run, *, per_class: int = PER_CLASS, scale: float = CFG_SCALE, also: tuple[float, ...] = (1.0,), steps: int = SAMPLE_STEPS,
                 sampler: str = SAMPLER, seed: int = 0, train_seconds: float | None = None, num_resamples: int = 200) -> dict[str, Any]:
    """Generate ``per_class`` digits of every class at guidance ``scale`` (and at the scales ``also``, by
    default 1: no guidance, for comparison); a logistic-regression probe trained on real training digits says
    which class each is.
    Reports the probe's accuracy on the generated digits (with a bootstrap interval) and on the real
    held-out digits, and per class the energy distance of the generated digits to the held-out digits of
    that class, to the training digits of that class, and between those two real sets. Into metrics.json."""
    from ...analysis.sample_quality import energy_distance

    check_int(per_class, "--per-class", 2, 10_000)
    for s in (scale, *also):
        check_float(s, "the guidance scale", -20.0, 50.0)
    model = model_of(run)
    digits = data_of(run)
    probe = fit_probe(digits)
    xt, yt = digits.split("test")
    xr, yr = digits.split("train")
    rng = np.random.default_rng(seed)
    metrics: dict[str, Any] = {"probe_accuracy_real": _accuracy("probe_accuracy_real", probe.predict(xt.reshape(len(xt), -1)) == yt, rng,
                                                               what="the probe on the real held-out digits")}
    labels = np.repeat(np.arange(10), per_class)
    scales = [float(scale)] + sorted({float(a) for a in also} - {float(scale)})
    per_scale: dict[str, Any] = {}
    t_sample = 0.0
    nfe = 0
    for s in scales:
        t0 = time.perf_counter()
        res, field = generate(model, labels, scale=s, steps=steps, sampler=sampler, seed=seed + 1)
        secs = time.perf_counter() - t0
        if s == scales[0]:
            t_sample, nfe = secs, field.nfe
        gen = np.clip(to_image(res.x), 0.0, 1.0)
        pred = probe.predict(gen)
        rows = {"scale": s, "seconds": round(secs, 3), "nfe": int(field.nfe),
                "probe_accuracy": _accuracy("probe_accuracy", pred == labels, rng, what=f"the probe on {len(labels):,} generated digits"),
                "per_class": []}
        for k in range(10):
            g = gen[labels == k]
            test_k, train_k = xt[yt == k].reshape(-1, 64), xr[yr == k].reshape(-1, 64)
            row = {"class": k, "probe_accuracy": float((pred[labels == k] == k).mean()),
                   "energy_distance_test": _est(energy_distance(g, test_k, num_resamples=num_resamples, random_state=seed + k)),
                   "energy_distance_train": _est(energy_distance(g, train_k, num_resamples=num_resamples, random_state=seed + k))}
            rows["per_class"].append(row)
        rows["energy_distance_all"] = _est(energy_distance(gen, xt.reshape(len(xt), -1), num_resamples=num_resamples, random_state=seed))
        per_scale[f"{s:g}"] = rows
    floor = [{"class": k, "energy_distance": _est(energy_distance(xr[yr == k].reshape(-1, 64), xt[yt == k].reshape(-1, 64),
                                                                    num_resamples=num_resamples, random_state=seed + k))} for k in range(10)]
    main = per_scale[f"{scales[0]:g}"]
    metrics["probe_accuracy"] = {**main["probe_accuracy"]}
    metrics["probe_accuracy"]["details"] = {**(main["probe_accuracy"]["details"] or {}), "scale": scales[0],
                                            "per_class": [r["probe_accuracy"] for r in main["per_class"]]}
    metrics["energy_distance"] = {**main["energy_distance_all"]}
    metrics["energy_distance"]["details"] = {"what": "all generated digits against all real held-out digits (64 pixels in [0, 1])",
                                             "scale": scales[0]}
    for r in main["per_class"]:
        metrics[f"energy_distance_class_{r['class']}"] = r["energy_distance_test"]
    for s in scales[1:]:
        metrics[f"probe_accuracy_scale_{s:g}"] = per_scale[f"{s:g}"]["probe_accuracy"]
        metrics[f"energy_distance_scale_{s:g}"] = per_scale[f"{s:g}"]["energy_distance_all"]
    metrics["sample_seconds"] = {"value": round(t_sample, 3), "details": {"what": f"{len(labels):,} digits, {nfe} NFE of {sampler}, scale {scales[0]:g}"}}
    if train_seconds is not None:
        metrics["train_seconds"] = {"value": round(float(train_seconds), 2), "details": {"what": "wall-clock seconds of training, all resumes"}}
    ed_test = [r["energy_distance_test"]["value"] for r in main["per_class"]]
    headline = {"probe_accuracy": main["probe_accuracy"]["value"], "probe_accuracy_real": metrics["probe_accuracy_real"]["value"],
                "energy_distance": main["energy_distance_all"]["value"], "energy_distance_class_mean": float(np.mean(ed_test))}
    if train_seconds is not None:
        headline["train_seconds"] = float(train_seconds)
    report = {"run": run.name, "kind": KIND, "n": int(len(labels)), "created_at": now_iso(),
              "command": f"latentatlas flow dit --data digits --name {run.name}", "metrics": metrics, "headline": headline,
              "per_scale": per_scale, "real_vs_real": floor, "sampler": sampler, "steps": int(steps), "nfe": int(nfe),
              "notes": [f"class-probe accuracy on generated digits {main['probe_accuracy']['value']:.1%} at guidance {scales[0]:g} "
                        f"(the probe scores {metrics['probe_accuracy_real']['value']:.1%} on real held-out digits)",
                        f"mean per-class energy distance to held-out digits {np.mean(ed_test):.4f}; between real training and held-out "
                        f"digits {np.mean([f['energy_distance']['value'] for f in floor]):.4f}"]}
    run.write_metrics(report)
    return report


def summary_lines(report: dict[str, Any]) -> list[str]:
    """What the CLI prints after ``train``: the headline and a line per class."""
    m, h = report["metrics"], report["headline"]
    lines = list(report.get("notes", []))
    main = report["per_scale"][next(iter(report["per_scale"]))]
    for r in main["per_class"]:
        e = r["energy_distance_test"]
        lines.append(f"digit {r['class']}: probe accuracy {r['probe_accuracy']:.0%}, energy distance {e['value']:.4f} [{e['ci_low']:.4f}, {e['ci_high']:.4f}]")
    if "train_seconds" in h:
        lines.append(f"trained in {h['train_seconds']:.0f} s; sampling {report['n']:,} digits took {m['sample_seconds']['value']:.1f} s")
    return lines


# -- the explorer side ---------------------------------------------------------------------------------------------

class DiTExplorer:
    """For one version of a DiT run: its capture (the saved one, or the default capture made in memory when
    the run has none) and the joint PCA colours of it, served as arrays."""

    def __init__(self, run: Run):
        self.run = run
        self.model = model_of(run)
        self.config = self.model.config
        cap = read_capture(run)
        self.saved = cap is not None
        self.cap = cap if cap is not None else capture(self.model)
        h = self.cap.hidden
        self.rgb = joint_pca_rgb(h[:, :, 0], h[:, :, 1])

    def _sample(self, i: int) -> int:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < self.cap.n:
            raise LatentAtlasError(f"sample {i} is out of range; this capture has samples 0..{self.cap.n - 1}")
        return int(i)

    def _index(self, v: int, n: int, what: str) -> int:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < n:
            raise LatentAtlasError(f"{what} {v} is out of range; expected 0..{n - 1}")
        return int(v)

    def meta(self) -> dict[str, Any]:
        c, cap = self.config, self.cap
        metrics = self.run.read_metrics()
        return {"kind": KIND, "image": [c.channels, c.image_size, c.image_size], "patch": c.patch, "grid": [c.grid, c.grid],
                "layers": cap.layers, "steps": cap.steps, "heads": int(cap.attention.shape[4]), "tokens": int(cap.hidden.shape[4]),
                "width": int(cap.hidden.shape[5]), "n": cap.n, "labels": [int(v) for v in cap.labels], "classes": [str(i) for i in range(c.n_classes)],
                "times": [float(t) for t in cap.times], "state_times": cap.meta.get("state_times"), "scale": cap.meta.get("scale"),
                "sampler": cap.meta.get("sampler"), "nfe": cap.meta.get("nfe"), "seed": cap.meta.get("seed"), "saved": self.saved,
                "which": list(WHICH), "images": list(IMAGES),
                "pca": {"explained": [round(float(v), 4) for v in self.rgb.explained], "scale": [float(v) for v in self.rgb.scale],
                        "diff_scale": [float(v) for v in self.rgb.diff_scale], "quantile": RGB_QUANTILE},
                "metrics": (metrics or {}).get("headline") if isinstance(metrics, dict) else None}

    def grid_rgb(self, sample: int, which: str = "cond") -> np.ndarray:
        """(layers, steps, rows, cols, 3) in [0, 1]: each token's colour under the joint PCA."""
        i = self._sample(sample)
        if which not in WHICH:
            raise LatentAtlasError(f"which '{str(which)[:20]}' is not one of {', '.join(WHICH)}")
        a = getattr(self.rgb, which)[:, :, i]  # (S, L, T, 3)
        g = self.config.grid
        return np.ascontiguousarray(a.transpose(1, 0, 2, 3).reshape(a.shape[1], a.shape[0], g, g, 3), dtype=np.float32)

    def attention(self, sample: int, layer: int, step: int, half: str = "cond", head: int | None = None) -> np.ndarray:
        """(heads, tokens, tokens), or (tokens, tokens) for one head: row q is query token q's attention."""
        i = self._sample(sample)
        layer = self._index(layer, self.cap.layers, "layer")
        step = self._index(step, self.cap.steps, "step")
        if half not in HALVES:
            raise LatentAtlasError(f"half '{str(half)[:20]}' is not one of {', '.join(HALVES)}")
        a = self.cap.attention[step, layer, HALVES.index(half), i]
        if head is not None:
            a = a[self._index(head, a.shape[0], "head")]
        return np.ascontiguousarray(a, dtype=np.float32)

    def images(self, sample: int, what: str = "state") -> np.ndarray:
        """``state``: (steps + 1, C, side, side), the sampler's state before each call and the final image;
        ``predicted`` (and ``predicted_cond``, ``predicted_uncond``): (steps, C, side, side)."""
        i = self._sample(sample)
        if what not in IMAGES:
            raise LatentAtlasError(f"images '{str(what)[:20]}' is not one of {', '.join(IMAGES)}")
        arr = self.cap.states if what == "state" else getattr(self.cap, what)
        return np.ascontiguousarray(arr[:, i], dtype=np.float32)

    def finals(self) -> np.ndarray:
        """(n, C, side, side): every captured sample's final image."""
        return np.ascontiguousarray(self.cap.states[-1], dtype=np.float32)
