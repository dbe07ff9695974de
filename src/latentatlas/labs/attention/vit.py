"""The ViT part of the attention lab: train a small Vision Transformer here (digits, or the sprites'
shapes), evaluate it on a fixed held-out split, register any transformers ViT folder as a run, and give
the explorer, for one test image, the model's real attention (read by ``capture.attention``), its
rollout and flow (``analysis.rollout``), and for the model its position-embedding similarity grid and
its patch-embedding filters.

A run of kind ``vit`` is either trained here (``config.json`` + ``model.safetensors``, ``origin``
``"trained"``) or names a transformers folder (``model.spec.path``, ``origin`` ``"transformers"``; no
weights are copied, the folder is read offline). Its ``data`` section names the built-in images
(``digits`` or ``sprites``) and the held-out split, which both the evaluation and the explorer rebuild:

    runs/<run>/config.json    kind "vit", model, train, data {"kind", "test", "split_seed"}
    runs/<run>/metrics.json   test accuracy with its Wilson interval, training seconds, the command
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ... import capture
from ...analysis.rollout import attention_flow, attention_rollout, cls_map
from ...atlas import Atlas, Run, now_iso
from ...errors import LatentAtlasError
from ...models.io import config_to_dict
from ...trainer import TrainConfig, TrainResult, fit, resolve_device
from ...trainer import fit_new_run, resumable
from .jobs import versions

VIT_KIND = "vit"
DATASETS = ("digits", "sprites")
SPLIT_SEED = 0  # the held-out split never moves with the training seed
TEST_SIZE = {"digits": 360, "sprites": 3000}  # digits: 20 % of 1,797
# model and training defaults per dataset (docs/benchmarks.md has what they reach and how long they take)
DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {"model": dict(image_size=8, channels=1, patch=2, d_model=64, n_heads=4, n_layers=4, mlp_ratio=2, n_classes=10,
                             dropout=0.0, shift=1, label_smoothing=0.0),
               "train": dict(steps=3000, batch_size=64, lr=3e-3, lr_warmup=100, lr_decay=0.3)},
    "sprites": {"model": dict(image_size=64, channels=1, patch=8, d_model=64, n_heads=4, n_layers=4, mlp_ratio=2, n_classes=3,
                              dropout=0.0, shift=0, label_smoothing=0.0),
                "train": dict(steps=1500, batch_size=64, lr=3e-3, lr_warmup=100, lr_decay=0.3)},
}
STRIP = 48  # test images the page's strip shows
MAX_FILTERS = 28  # the ViT paper's figure 7 shows the first 28 principal components


# -- data: images and their class, split once ------------------------------------------------------------

class Images:
    """A built-in dataset seen as (image, class) pairs, split into a fixed training and test part. ``get``
    gives what the trainer feeds the model: (N, 1 + C·H·W) float32, the class in column 0."""

    def __init__(self, data: str, test: int | None = None, split_seed: int = SPLIT_SEED):
        if data not in DATASETS:
            raise LatentAtlasError(f"--data '{data}' is not a dataset the ViT trains on; expected one of {', '.join(DATASETS)}")
        self.name = data
        self.test_size = int(TEST_SIZE[data] if test is None else test)
        self.split_seed = int(split_seed)
        if data == "digits":
            from ...data.digits import load_digits

            ds = load_digits()
            self._x, self._y, n = ds.x, ds.labels, len(ds)
            self.classes = [str(i) for i in range(10)]
        else:
            from ...data.sprites import SHAPES, Sprites

            self._sprites, n = Sprites(), len(Sprites())
            self.classes = list(SHAPES)
        if not 1 <= self.test_size < n:
            raise LatentAtlasError(f"a test split of {self.test_size:,} images does not fit {data}'s {n:,}; expected 1 to {n - 1:,}")
        rng = np.random.default_rng(self.split_seed)
        if data == "digits":
            order = rng.permutation(n)
            self.test_index, self.train_index = np.sort(order[: self.test_size]), np.sort(order[self.test_size:])
        else:  # the full grid: draw the test images, train on every other one
            self.test_index = np.sort(rng.choice(n, size=self.test_size, replace=False))
            keep = np.ones(n, dtype=bool)
            keep[self.test_index] = False
            self.train_index = np.flatnonzero(keep)

    @property
    def spec(self) -> dict[str, Any]:
        return {"kind": self.name, "test": self.test_size, "split_seed": self.split_seed}

    def images(self, index: np.ndarray) -> np.ndarray:
        """(N, C, H, W) float32 in [0, 1] for dataset indices ``index``."""
        return self._x[index] if self.name == "digits" else self._sprites.get(index)

    def labels(self, index: np.ndarray) -> np.ndarray:
        return self._y[index] if self.name == "digits" else self._sprites.get_factors(index)[:, 0]

    def test_images(self, rows: np.ndarray | slice) -> tuple[np.ndarray, np.ndarray]:
        idx = self.test_index[rows]
        return self.images(idx), self.labels(idx)

    # the trainer's interface: the training part only
    def __len__(self) -> int:
        return len(self.train_index)

    def get(self, idx: np.ndarray) -> np.ndarray:
        rows = self.train_index[idx]
        x = self.images(rows)
        return np.concatenate([self.labels(rows).astype(np.float32)[:, None], x.reshape(len(x), -1)], axis=1)


def images_of(run: Run) -> Images:
    """The run's images and split, from its config's ``data`` section (validated: it is untrusted)."""
    from ...schemas import ViTData, validate

    data = validate(ViTData, run.config().get("data"), "data section of run config", run.file("config.json"))
    return Images(data.kind, data.test, data.split_seed)


# -- training and evaluation ---------------------------------------------------------------------------

def train_vit(atlas: Atlas | str | None = None, *, data: str = "digits", steps: int | None = None, seed: int = 0,
              name: str | None = None, resume: bool = False, device: str = "auto", batch_size: int | None = None,
              lr: float | None = None, log_every: int = 50, checkpoint_every: int = 500, progress: bool = True,
              on_step: Callable[[int], None] | None = None, command: str | None = None, weight_decay: float | None = None,
              **model_overrides: Any) -> tuple[Run, TrainResult, dict[str, Any]]:
    """Train a small ViT on ``data`` (``digits`` or ``sprites``, whose shape is the class) and evaluate it
    on the held-out split; returns the run, the training result and the metrics. ``model_overrides``
    change fields of :class:`~latentatlas.models.vit.ViTConfig` (``d_model=32``, ``n_layers=2`` …)."""
    from ...models import build, config_from_dict
    from ...models.vit import ViTConfig

    atlas = atlas if isinstance(atlas, Atlas) else Atlas(atlas)
    if resume:
        if not name:
            raise LatentAtlasError("--resume needs --name to say which run to continue")
        run = atlas.run(name)
        cfg = run.config()
        if cfg.get("kind") == VIT_KIND and cfg.get("origin") != "trained":
            raise LatentAtlasError(f"run '{name}' is not a ViT trained here (kind {cfg.get('kind')}); nothing to resume")
        train_cfg = resumable(run, VIT_KIND, "a ViT trained here")
        images = images_of(run)
        torch.manual_seed(train_cfg.seed)
        model = build(config_from_dict(VIT_KIND, cfg["model"]))
        with run.lock():
            result = fit(model, images, run, train_cfg, resume=True, progress=progress, on_step=on_step)
    else:
        images = Images(data)
        d = DEFAULTS[data]
        unknown = sorted(set(model_overrides) - set(d["model"]))
        if unknown:
            raise LatentAtlasError(f"unknown ViT setting(s) {', '.join(unknown)}; expected some of {', '.join(d['model'])}")
        model_cfg = ViTConfig(**{**d["model"], **model_overrides})
        t = d["train"]
        train_cfg = TrainConfig(steps=steps or t["steps"], batch_size=batch_size or t["batch_size"], lr=lr or t["lr"], seed=seed,
                                log_every=log_every, checkpoint_every=checkpoint_every, device=device,
                                lr_warmup=min(t["lr_warmup"], max(0, (steps or t["steps"]) // 4)), lr_decay=t["lr_decay"],
                                weight_decay=t.get("weight_decay", 0.0) if weight_decay is None else weight_decay)
        resolve_device(device)
        torch.manual_seed(seed)
        model = build(model_cfg)
        name = name or atlas.unique_run_name(f"vit-{data}")
        run, result = fit_new_run(atlas, {"name": name, "kind": VIT_KIND, "model": config_to_dict(model_cfg), "train": train_cfg.to_dict(),
                                          "data": images.spec, "versions": versions(), "created_at": now_iso(), "origin": "trained"},
                                  model, images, train_cfg, progress=progress, on_step=on_step)
    seconds = _training_seconds(run, result)
    report = evaluate_vit(run, train_seconds=seconds, command=command or f"latentatlas attention vit --data {images.name} --name {run.name}")
    return run, result, report


def _training_seconds(run: Run, result: TrainResult) -> float:
    """The whole training time, across resumes (the history's clock continues over them)."""
    rows = run.read_history()
    t = rows[-1].get("time") if rows else None
    return float(t) if isinstance(t, (int, float)) and math.isfinite(t) and t >= 0 else float(result.seconds)


def wilson_interval(correct: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (scipy's ``binomtest(...).proportion_ci``)."""
    from scipy.stats import binomtest

    ci = binomtest(int(correct), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def predict(model: torch.nn.Module, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Class probabilities (N, classes) of a model trained here for images (N, C, H, W) in [0, 1]."""
    out = []
    dev = next(model.parameters()).device
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            out.append(torch.softmax(model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size])).to(dev)).float(), -1).cpu().numpy())
    return np.concatenate(out)


def evaluate_vit(run: Run, train_seconds: float | None = None, command: str | None = None) -> dict[str, Any]:
    """Test accuracy on the held-out split with its 95 % Wilson interval, into the run's metrics.json."""
    images = images_of(run)
    model = run.load_model()
    x, y = images.test_images(slice(None))
    t0 = time.perf_counter()
    pred = predict(model, x).argmax(-1)
    correct, n = int((pred == y).sum()), len(y)
    lo, hi = wilson_interval(correct, n)
    acc = correct / n
    per_class = {c: float((pred[y == k] == k).mean()) if np.any(y == k) else None for k, c in enumerate(images.classes)}
    metrics = {
        "run": run.name, "kind": VIT_KIND, "created_at": now_iso(), "n": n,
        "command": command or f"latentatlas attention vit --name {run.name}",
        "headline": {"test_accuracy": acc, "train_seconds": train_seconds},
        "metrics": {
            "test_accuracy": {"value": acc, "ci_low": lo, "ci_high": hi, "n": n,
                              "details": {"what": f"share of the {n:,} held-out {images.name} images classified right", "interval": "Wilson score, 95 %",
                                          "correct": correct, "per_class": per_class}},
            "train_seconds": {"value": train_seconds, "details": {"what": "wall-clock seconds of training (this machine, all resumes)"}},
            "eval_seconds": {"value": round(time.perf_counter() - t0, 3)},
        },
        "notes": [f"test accuracy {acc:.2%} (95 % Wilson interval {lo:.2%}–{hi:.2%}) on {n:,} held-out {images.name} images"
                  + (f"; trained in {train_seconds:.1f} s" if train_seconds is not None else "")],
    }
    run.write_metrics(metrics)
    return metrics


# -- a transformers ViT folder as a run ------------------------------------------------------------------

def register_vit(atlas: Atlas | str | None, folder: str, *, data: str = "digits", name: str | None = None) -> Run:
    """Record a transformers ViT folder (``ViTForImageClassification`` or ``ViTModel``, safetensors) as a
    run of kind ``vit`` whose views work as a trained run's do, on ``data``'s held-out images (resized to
    the model's input and normalised as its preprocessor says). No weights are copied."""
    import re

    atlas = atlas if isinstance(atlas, Atlas) else Atlas(atlas)
    path = Path(folder).expanduser().resolve()
    model = _load_hf(str(path))  # refuses what is not a readable ViT folder before a run is made
    images = Images(data)
    c = model.config
    name = name or atlas.unique_run_name("vit-" + (re.sub(r"[^A-Za-z0-9_.-]+", "-", path.name).strip("-.")[:60] or "model"))
    return atlas.create_run(name, {"name": name, "kind": VIT_KIND, "origin": "transformers", "data": images.spec, "versions": versions(),
                                   "created_at": now_iso(),
                                   "model": {"spec": {"path": str(path)}, "architecture": type(model).__name__, "image_size": int(c.image_size),
                                             "patch": int(c.patch_size), "channels": int(c.num_channels), "n_layers": int(c.num_hidden_layers),
                                             "n_heads": int(c.num_attention_heads)}})


def _load_hf(folder: str) -> torch.nn.Module:
    """A transformers ViT from a local folder, offline, safetensors only."""
    from transformers import AutoConfig, ViTForImageClassification, ViTModel

    p = Path(folder)
    if not (p / "config.json").is_file():
        raise LatentAtlasError(f"model folder '{folder}' has no config.json; expected a transformers ViT folder")
    if not any(p.glob("*.safetensors")):
        raise LatentAtlasError(f"model folder '{folder}' has no .safetensors weights; only safetensors are loaded, never pickles")
    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        if config.model_type != "vit":
            raise LatentAtlasError(f"model folder '{folder}' holds a {config.model_type} model; expected a ViT (model_type 'vit')")
        heads = any(a.endswith("ForImageClassification") for a in (config.architectures or []))
        cls = ViTForImageClassification if heads else ViTModel
        model = cls.from_pretrained(folder, config=config, local_files_only=True, use_safetensors=True)
    except LatentAtlasError:
        raise
    except Exception as exc:  # OSError, ValueError, safetensors' errors: one sentence, whatever transformers raised
        raise LatentAtlasError(f"could not load ViT folder '{folder}': {(str(exc).splitlines() or [type(exc).__name__])[0][:300]}") from None
    return model.eval()


# -- the explorer side ------------------------------------------------------------------------------------

@dataclass
class Backbone:
    """What the views need of a ViT, whichever code it is: a model trained here or a transformers one."""
    model: torch.nn.Module
    image_size: int
    patch: int
    channels: int
    n_layers: int
    n_heads: int
    classes: list[str]
    hf: bool
    mean: np.ndarray | None = None  # a transformers model's input normalisation, per channel
    std: np.ndarray | None = None

    @property
    def grid(self) -> int:
        return self.image_size // self.patch

    def prepare(self, x: np.ndarray) -> torch.Tensor | dict[str, torch.Tensor]:
        """The model's input for images (N, C, H, W) in [0, 1] from the dataset: for a transformers model
        resized (bilinear) to its side, grey repeated to its channels, normalised by its mean and std."""
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if not self.hf:
            return t
        if t.shape[-1] != self.image_size or t.shape[-2] != self.image_size:
            t = torch.nn.functional.interpolate(t, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        if t.shape[1] != self.channels:
            t = t.mean(1, keepdim=True).expand(-1, self.channels, -1, -1)
        t = (t - torch.tensor(self.mean).view(1, -1, 1, 1)) / torch.tensor(self.std).view(1, -1, 1, 1)
        return {"pixel_values": t.float().contiguous()}

    def logits(self, x: np.ndarray) -> np.ndarray | None:
        inputs = self.prepare(x)
        with torch.inference_mode():
            out = self.model(**inputs) if isinstance(inputs, dict) else self.model(inputs)
        logits = out if isinstance(out, torch.Tensor) else getattr(out, "logits", None)
        return None if logits is None else logits.float().numpy()

    def position_embeddings(self) -> np.ndarray:
        emb = self.model.vit.embeddings if hasattr(self.model, "vit") else self.model.embeddings
        return emb.position_embeddings.detach()[0].float().numpy()

    def patch_filters(self) -> np.ndarray:
        emb = self.model.vit.embeddings if hasattr(self.model, "vit") else self.model.embeddings
        return emb.patch_embeddings.projection.weight.detach().float().numpy()  # (d, C, p, p)


def backbone_of(run: Run) -> Backbone:
    cfg = run.config()
    if cfg.get("kind") != VIT_KIND:
        raise LatentAtlasError(f"run '{run.name}' is a {cfg.get('kind')}, not a ViT run")
    classes = images_of(run).classes
    if cfg.get("origin") == "transformers":
        spec = (cfg.get("model") or {}).get("spec")
        path = spec.get("path") if isinstance(spec, dict) else None
        if not isinstance(path, str) or not Path(path).is_dir():
            raise LatentAtlasError(f"run '{run.name}' names a ViT folder '{str(path)[:200]}' that is not on this machine")
        model = _load_hf(path)
        c = model.config
        mean, std = _normalisation(Path(path), int(c.num_channels))
        id2label = getattr(c, "id2label", None) or {}
        names = [str(id2label.get(i, i)) for i in range(len(id2label))] if hasattr(model, "classifier") else []
        return Backbone(model, int(c.image_size), int(c.patch_size), int(c.num_channels), int(c.num_hidden_layers),
                        int(c.num_attention_heads), names, True, mean, std)
    model = run.load_model()
    c = model.config
    if c.n_classes != len(classes):
        raise LatentAtlasError(f"run '{run.name}' has {c.n_classes} classes but its data has {len(classes)}")
    return Backbone(model, c.image_size, c.patch, c.channels, c.n_layers, c.n_heads, classes, False)


def _normalisation(folder: Path, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """The preprocessor's image_mean and image_std (ViT's default 0.5 and 0.5 when the folder has none)."""
    from ..._io import read_json

    mean, std = [0.5] * channels, [0.5] * channels
    cfg = folder / "preprocessor_config.json"
    if cfg.is_file():
        pre = read_json(cfg, "preprocessor config", 1 << 20)
        if isinstance(pre, dict):
            m, s = pre.get("image_mean", mean), pre.get("image_std", std)
            ok = lambda v: isinstance(v, list) and len(v) == channels and all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in v)  # noqa: E731
            if ok(m) and ok(s) and all(a > 0 for a in s):
                mean, std = m, s
    return np.asarray(mean, np.float32), np.asarray(std, np.float32)


class ViTExplorer:
    """For one run: the test images, and for one of them the model's real per-layer, per-head CLS
    attention over the patches, its rollout and flow, the predicted class and probabilities; for the model
    the position-embedding similarity grid and the patch-embedding filters."""

    def __init__(self, run: Run, cache_images: int = 64):
        self.run = run
        self.images = images_of(run)
        self.net = backbone_of(run)
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self._cache_size = cache_images
        self._strip: dict[str, Any] | None = None

    @property
    def n_test(self) -> int:
        return self.images.test_size

    def _check(self, i: int) -> int:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < self.n_test:
            raise LatentAtlasError(f"test image {i} is out of range; this run has test images 0..{self.n_test - 1}")
        return int(i)

    def meta(self) -> dict[str, Any]:
        n = self.net
        cfg = self.run.config()
        x, _ = self.images.test_images(slice(0, 1))
        return {"kind": VIT_KIND, "origin": cfg.get("origin"), "data": self.images.name, "n_test": self.n_test,
                "image": list(x.shape[1:]), "model_image": n.image_size, "patch": n.patch, "grid": [n.grid, n.grid],
                "n_layers": n.n_layers, "n_heads": n.n_heads, "classes": n.classes, "data_classes": self.images.classes,
                "strip": self.strip(), "filters": self.filters_meta()}

    def strip(self, count: int = STRIP) -> dict[str, Any]:
        """The first ``count`` test images' true and predicted classes (indices into ``classes``)."""
        if self._strip is None:
            k = min(count, self.n_test)
            x, y = self.images.test_images(slice(0, k))
            logits = self.net.logits(x)
            self._strip = {"count": k, "labels": [int(v) for v in y],
                           "predicted": [int(v) for v in logits.argmax(-1)] if logits is not None and logits.shape[-1] else None}
        return self._strip

    def test_images(self, start: int, count: int) -> np.ndarray:
        """Test images ``start:start+count`` (N, C, H, W) in [0, 1], as the dataset has them."""
        start = self._check(start)
        stop = min(self.n_test, start + max(1, int(count)))
        return self.images.test_images(slice(start, stop))[0].astype(np.float32)

    def image(self, i: int) -> dict[str, np.ndarray]:
        """For test image ``i``: ``attention`` (layers, heads, grid, grid), CLS → patch, read from the model by
        ``capture.attention``; ``probs`` (classes,), empty for a bare ViTModel; ``layers``, every layer's
        whole (heads, T, T) attention, which ``maps`` rolls out."""
        i = self._check(i)
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        x, _ = self.images.test_images(slice(i, i + 1))
        got = capture.attention(self.net.model, self.net.prepare(x))
        if not got.layers:
            raise LatentAtlasError(f"no attention was read from run '{self.run.name}'s model")
        layers = [layer.probs[0].float().numpy() for layer in got.layers]  # (heads, T, T) each, T = 1 + patches
        g = self.net.grid
        skip = layers[0].shape[-1] - g * g
        logits = self.net.logits(x)
        probs = (torch.softmax(torch.from_numpy(logits[0]), -1).numpy() if logits is not None else np.zeros(0)).astype(np.float32)
        out = {"attention": np.stack([a[:, 0, skip:].reshape(-1, g, g) for a in layers]).astype(np.float32), "probs": probs,
               "layers": layers}
        self._cache[i] = out
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return out

    def maps(self, i: int) -> np.ndarray:
        """Attention rollout and attention flow of CLS over the patches for test image ``i``: (2, grid, grid).
        Flow takes one maximum-flow problem per token (seconds for 64 patches), so it is computed on first
        asking and kept with the image."""
        got = self.image(i)
        if "maps" not in got:
            g = self.net.grid
            layers = got["layers"]
            skip = layers[0].shape[-1] - g * g
            rollout = cls_map(attention_rollout(layers), (g, g), skip)
            flow = cls_map(attention_flow(layers, output=0), (g, g), skip)
            got["maps"] = np.stack([rollout, flow]).astype(np.float32)
        return got["maps"]

    def position_similarity(self) -> np.ndarray:
        """Cosine similarity of each patch's position embedding with every other's: (patches, grid, grid),
        map ``k`` for patch ``k`` (row-major), as in the ViT paper's figure 7 (centre)."""
        pos = self.net.position_embeddings()
        g = self.net.grid
        pos = pos[pos.shape[0] - g * g:]  # the patches' (the CLS position comes first)
        unit = pos / np.maximum(np.linalg.norm(pos, axis=1, keepdims=True), 1e-12)
        return (unit @ unit.T).reshape(g * g, g, g).astype(np.float32)

    def filters(self) -> tuple[np.ndarray, np.ndarray]:
        """The patch embedding's principal components (ViT paper, figure 7 left): the projection's rows
        (one C·p·p filter per embedding dimension) through PCA, the first ``MAX_FILTERS`` components as
        (k, C, p, p), and each one's share of the variance."""
        from sklearn.decomposition import PCA

        w = self.net.patch_filters()
        d, c, p, _ = w.shape
        k = min(MAX_FILTERS, d, c * p * p)
        pca = PCA(n_components=k, random_state=0).fit(w.reshape(d, -1).astype(np.float64))
        return pca.components_.reshape(k, c, p, p).astype(np.float32), pca.explained_variance_ratio_.astype(np.float32)

    def filters_meta(self) -> dict[str, Any]:
        _, ratio = self.filters()
        return {"what": "principal components of the patch-embedding filters", "k": int(len(ratio)),
                "explained": [round(float(v), 4) for v in ratio]}
