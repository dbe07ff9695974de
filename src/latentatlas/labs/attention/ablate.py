"""The ablation lab: replace one module's output and measure how much the model's output moves.

Three ways to take a module out, each a forward hook on the module (by its dotted name):

* ``zero``: its output is replaced by zeros;
* ``mean``: by its mean over the batch (for token sequences, over every real token of the batch; the same
  vector at every position), measured on an unablated pass first;
* ``skip``: by its first input, passed through unchanged. Refused, in one sentence, where the module's
  input and output shapes differ. For a module that adds its own input back (diffusers' ResNet blocks and
  mid-block attention, transformer blocks) skip removes exactly what the module adds.

What "the output moved" means depends on the model (``family``):

* ``autoencoder`` (a VAE run, the SD-style VAE trained here, any diffusers AutoencoderKL): the decode of
  the posterior mean, as MSE and PSNR against the unablated decode and against the input;
* ``causal_lm`` (a transformers causal LM, the attention-only run): KL(unablated ‖ ablated) between
  next-token distributions, and the change of cross-entropy on the true next token;
* ``encoder`` (BERT, MiniLM): the cosine between the unablated and ablated mean-pooled embeddings.

Every measure is taken per image or per text and reported as the batch mean with a 95% percentile
bootstrap interval over the batch's items (``analysis.bootstrap``), because one number from one batch is
how the claim under test here was argued: that the attention layers of SD/SDXL/FLUX VAEs "don't do
anything" (Rudy Gilman). A sweep ablates every block-level module (``sweep_modules``) and sorts them by
effect; for an AutoencoderKL the mid-block attention is reported beside the mid-block's first ResNet.

A result is ``runs/<run>/ablation/<id>.json`` (schema ``AblationReport``) and a bar chart
``runs/<run>/figures/ablation-<id>.png`` (with SVG and PDF beside it).
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from ..._io import atomic_write_json, read_json
from ..._progress import progress_bar
from ...analysis import ablation as M
from ...analysis.bootstrap import Estimate, bootstrap_ci, mean_estimate
from ...atlas import Atlas, Run, is_name, now_iso
from ...errors import LatentAtlasError, NotFound
from ...tracing import find_module
from . import jobs

MODES = ("zero", "mean", "skip")
FAMILIES = ("autoencoder", "causal_lm", "encoder")
SD_KIND = "sd_vae"          # the SD-style VAE trained here
DIFFUSERS_KIND = "diffusers_vae"  # a user's AutoencoderKL folder under study (the run names it, holds no weights)
BUILTIN = "sdvae"
VAE_KINDS = ("ae", "vae", "beta_vae", "beta_tcvae")
ID = re.compile(r"^[0-9a-f]{12}$")
MAX_MODULES = 512

# the metrics of each family: (key, label, the primary one first); "effect" grows with the change
METRICS: dict[str, list[tuple[str, str]]] = {
    "autoencoder": [("mse", "MSE vs unablated decode"), ("psnr", "PSNR vs unablated decode (dB)"),
                    ("mse_input", "MSE vs input"), ("psnr_input", "PSNR vs input (dB)"), ("d_psnr_input", "Δ PSNR vs input (dB)")],
    "causal_lm": [("kl", "KL(unablated ‖ ablated), nats/token"), ("d_ce", "Δ cross-entropy, nats/token")],
    "encoder": [("cos_dist", "1 − cosine to unablated embedding"), ("cosine", "cosine to unablated embedding")],
}


# -- what is ablated, and on what -------------------------------------------------------------------------

@dataclass
class Batch:
    inputs: Any                      # images (N, C, H, W) in [0, 1]; token ids (N, T); or a tokenizer's dict
    n: int
    what: str                        # "images", "texts" or "sequences"
    mask: torch.Tensor | None = None  # (N, T) real tokens
    spec: dict[str, Any] = field(default_factory=dict)


@dataclass
class Target:
    """A model to ablate: ``root`` is the module whose dotted names the user gives, ``forward`` runs the
    whole model on a batch's inputs and returns what is measured (decoded images in [0, 1], next-token
    logits, or token embeddings)."""
    root: torch.nn.Module
    family: str
    label: str
    forward: Callable[[Any], torch.Tensor]
    run: Run | None = None
    info: dict[str, Any] = field(default_factory=dict)
    tokenizer: Any = None


# -- module names -----------------------------------------------------------------------------------------

def check_module(root: torch.nn.Module, name: str) -> torch.nn.Module:
    if not isinstance(name, str) or not name:
        raise LatentAtlasError(f"module name '{str(name)[:200]}' is empty or not text; expected a dotted module name")
    return find_module(root, name)


_LISTS = (torch.nn.ModuleList, torch.nn.Sequential)


def sweep_modules(root: torch.nn.Module, depth: int = 1) -> list[str]:
    """The block-level modules a sweep ablates: walking down from the root, the entries (with weights) of
    the first module lists met on each path (a transformer's blocks; an AutoencoderKL's down and up blocks
    and its mid-blocks' attention and ResNets; a Sequential body's layers). ``depth`` 2 adds the block-level
    modules inside each of those (the ResNets and resamplers of a down block), and so on."""
    if not 1 <= depth <= 8:
        raise LatentAtlasError(f"--depth {depth} is out of range; expected 1 to 8")
    out: list[str] = []

    def entries(lst: torch.nn.Module, prefix: str) -> list[str]:
        return [f"{prefix}{n}" for n, e in lst.named_children() if any(True for _ in e.parameters())]

    def units(module: torch.nn.Module, prefix: str) -> list[str]:
        found: list[str] = []
        for child_name, child in module.named_children():
            name = f"{prefix}{child_name}"
            found += entries(child, f"{name}.") if isinstance(child, _LISTS) else units(child, f"{name}.")
        return found

    def below(module: torch.nn.Module, prefix: str) -> list[str]:
        return entries(module, prefix) if isinstance(module, _LISTS) else units(module, prefix)

    level = below(root, "")
    for d in range(depth):
        out += level
        if d + 1 < depth:
            level = [u for name in level for u in below(root.get_submodule(name), f"{name}.")]
    return out


# -- hooks ------------------------------------------------------------------------------------------------

def _first_tensor(output: Any) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    if hasattr(output, "keys") and hasattr(output, "__getitem__"):  # transformers' ModelOutput
        first = output[list(output.keys())[0]]
        if isinstance(first, torch.Tensor):
            return first
    raise LatentAtlasError(f"the module returned {type(output).__name__}, not a tensor or a tuple starting with one; it cannot be ablated")


def _with_first(output: Any, new: torch.Tensor) -> Any:
    if isinstance(output, torch.Tensor):
        return new
    if isinstance(output, tuple):
        return (new, *output[1:])
    if isinstance(output, list):
        return [new, *output[1:]]
    output[list(output.keys())[0]] = new
    return output


def _first_input(args: tuple, kwargs: dict) -> torch.Tensor | None:
    if args and isinstance(args[0], torch.Tensor):
        return args[0]
    hs = kwargs.get("hidden_states")
    if isinstance(hs, torch.Tensor):
        return hs
    return next((v for v in kwargs.values() if isinstance(v, torch.Tensor)), None)


@dataclass
class Probe:
    """What the unablated pass saw at a module: its input and output shapes and, for mean ablation, its
    output's mean over the batch."""
    in_shape: tuple[int, ...] | None
    out_shape: tuple[int, ...]
    mean: torch.Tensor | None = None


def _batch_mean(out: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is not None and out.ndim == 3 and tuple(out.shape[:2]) == tuple(mask.shape):
        m = mask.to(out.device, out.dtype)[..., None]
        return ((out * m).sum((0, 1)) / m.sum().clamp_min(1)).reshape(1, 1, -1)
    return out.mean(0, keepdim=True)


@contextmanager
def _hooks(root: torch.nn.Module, hooks: dict[str, Callable]) -> Iterator[None]:
    handles = [root.get_submodule(name).register_forward_hook(fn, with_kwargs=True) for name, fn in hooks.items()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def probe(target: Target, batch: Batch, names: list[str], means: bool) -> tuple[torch.Tensor, dict[str, Probe]]:
    """One unablated pass: the model's output, and each named module's shapes (and means)."""
    seen: dict[str, Probe] = {}

    def recorder(name: str):
        def hook(_module, args, kwargs, output):
            if name in seen:
                return None
            out = _first_tensor(output)
            inp = _first_input(args, kwargs)
            seen[name] = Probe(tuple(inp.shape) if inp is not None else None, tuple(out.shape),
                               _batch_mean(out.detach(), batch.mask) if means else None)
            return None
        return hook

    with _hooks(target.root, {n: recorder(n) for n in names}), torch.inference_mode():
        base = target.forward(batch.inputs)
    missing = [n for n in names if n not in seen]
    if missing:
        raise LatentAtlasError(f"module '{missing[0]}' did not run during {target.label}'s forward pass; pick a module the model uses")
    return base, seen


def skip_refusal(name: str, p: Probe) -> str | None:
    """Why skip cannot replace this module's output by its input, or None."""
    if p.in_shape is None:
        return f"skip on module '{name}' is refused: it takes no tensor input to pass through; use --mode zero or mean"
    if p.in_shape != p.out_shape:
        return (f"skip on module '{name}' is refused: its input is {p.in_shape} and its output {p.out_shape}, and skip passes "
                "the input through, so the shapes must match; use --mode zero or mean")
    return None


def ablated_forward(target: Target, batch: Batch, name: str, mode: str, p: Probe) -> torch.Tensor:
    """The model's output with module ``name``'s output replaced (``mode``)."""
    def hook(_module, args, kwargs, output):
        out = _first_tensor(output)
        if mode == "zero":
            new = torch.zeros_like(out)
        elif mode == "mean":
            try:
                new = p.mean.to(out.device, out.dtype).expand_as(out)
            except RuntimeError:
                raise LatentAtlasError(f"module '{name}' gave an output of shape {tuple(out.shape)} unlike the {p.out_shape} its mean was taken over") from None
        else:
            inp = _first_input(args, kwargs)
            if inp is None or inp.shape != out.shape:
                raise LatentAtlasError(skip_refusal(name, Probe(None if inp is None else tuple(inp.shape), tuple(out.shape))))
            new = inp
        return _with_first(output, new)

    with _hooks(target.root, {name: hook}), torch.inference_mode():
        return target.forward(batch.inputs)


# -- measures ---------------------------------------------------------------------------------------------

def per_item(target: Target, batch: Batch, base: torch.Tensor, out: torch.Tensor) -> dict[str, np.ndarray]:
    """The per-item quantities of one ablation (the keys of METRICS plus the helpers the estimates need)."""
    if target.family == "autoencoder":
        x = batch.inputs
        return {"mse": M.mse(out, base), "mse_input": M.mse(out, x), "mse_input_base": M.mse(base, x)}
    if target.family == "causal_lm":
        ids = batch.inputs["input_ids"] if isinstance(batch.inputs, dict) else batch.inputs
        mask = batch.mask if batch.mask is not None else torch.ones(ids.shape, dtype=torch.bool)
        nxt = mask[:, 1:] & mask[:, :-1]
        # one text at a time: (T, V) float64 copies of a 50k-token vocabulary stay small
        rows = [(M.next_token_kl(base[i:i + 1], out[i:i + 1], mask[i:i + 1])[0],
                 M.cross_entropy(base[i:i + 1, :-1], ids[i:i + 1, 1:], nxt[i:i + 1])[0],
                 M.cross_entropy(out[i:i + 1, :-1], ids[i:i + 1, 1:], nxt[i:i + 1])[0]) for i in range(len(ids))]
        kl, ce_base, ce_abl = (np.array(c) for c in zip(*rows))
        return {"kl": kl, "d_ce": ce_abl - ce_base, "ce_base": ce_base}
    cos = M.cosine(_pool(base, batch.mask), _pool(out, batch.mask))
    return {"cos_dist": 1.0 - cos, "cosine": cos}


def _pool(hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over real tokens (sentence-transformers' pooling for MiniLM)."""
    if hidden.ndim == 2:
        return hidden
    m = (mask if mask is not None else torch.ones(hidden.shape[:2], dtype=torch.bool)).to(hidden.device, hidden.dtype)[..., None]
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1)


def estimates(family: str, v: dict[str, np.ndarray], seed: int, num_resamples: int) -> dict[str, Estimate]:
    """Each metric of ``family`` as a batch mean with its bootstrap interval (the same resamples for every
    module: the generator is seeded alike)."""
    rng = lambda: np.random.default_rng(seed)  # noqa: E731
    if family == "autoencoder":
        return {"mse": mean_estimate("mse", v["mse"], rng(), num_resamples),
                "psnr": M.psnr_estimate("psnr", v["mse"], rng(), num_resamples),
                "mse_input": mean_estimate("mse_input", v["mse_input"], rng(), num_resamples),
                "psnr_input": M.psnr_estimate("psnr_input", v["mse_input"], rng(), num_resamples),
                "d_psnr_input": M.psnr_change_estimate("d_psnr_input", v["mse_input_base"], v["mse_input"], rng(), num_resamples)}
    return {k: mean_estimate(k, v[k], rng(), num_resamples) for k, _ in METRICS[family]}


def _entry(e: Estimate) -> dict[str, Any]:
    fin = lambda x: float(x) if x is not None and math.isfinite(x) else None  # noqa: E731
    return {"value": fin(e.value), "ci_low": fin(e.ci_low), "ci_high": fin(e.ci_high), "n": int(e.n)}


# -- the job ----------------------------------------------------------------------------------------------

def mid_block_pairs(names: list[str]) -> list[tuple[str, str]]:
    """(mid-block attention, the same mid-block's first ResNet) for every AutoencoderKL stage named."""
    return [(n, n.replace("attentions.0", "resnets.0")) for n in names if n.endswith("mid_block.attentions.0")]


def ablate(target: Target | str, modules: list[str] | str = "sweep", mode: str = "skip", batch: Batch | None = None, *,
           depth: int = 1, seed: int = 0, num_resamples: int = 200, save: bool = True, figure: bool = True,
           command: str | None = None, progress: bool = False, atlas: Atlas | str | None = None, device: str = "cpu") -> dict[str, Any]:
    """Ablate each module of ``modules`` (a list of dotted names, or ``"sweep"``: ``sweep_modules(depth)``)
    in ``mode`` on ``batch``, one at a time; returns the report (rows sorted by effect, largest first) and,
    with ``save``, writes it into the target's run (and its figure). ``target`` may be given as the CLI
    takes it (``"sdvae"``, a run name, a folder; see ``resolve``, in ``atlas``), and ``batch`` left out
    for ``make_batch``'s default."""
    if mode not in MODES:
        raise LatentAtlasError(f"--mode '{str(mode)[:40]}' is not an ablation; expected one of {', '.join(MODES)}")
    if isinstance(target, str):
        target = resolve(target, atlas if isinstance(atlas, Atlas) else Atlas(atlas), device, progress=progress)
    if batch is None:
        batch = make_batch(target, seed=seed)
    if num_resamples < 1:
        raise LatentAtlasError(f"num_resamples must be at least 1, got {num_resamples}")
    t0 = time.perf_counter()
    sweep = isinstance(modules, str)
    if sweep:
        if modules != "sweep":
            raise LatentAtlasError(f"modules '{modules[:60]}' is neither a list of module names nor 'sweep'")
        names = sweep_modules(target.root, depth)
        if not names:
            raise LatentAtlasError(f"{target.label} has no module lists to sweep; name the modules with --module")
    else:
        names = list(dict.fromkeys(modules))
        if not names:
            raise LatentAtlasError("no module to ablate; give --module NAME (repeatable) or --sweep")
        for name in names:
            check_module(target.root, name)
    added: set[str] = set()
    if target.family == "autoencoder":  # the claim's comparison: the mid-block attention beside its first ResNet
        all_names = {m for m, _ in target.root.named_modules()}
        added = {r for _, r in mid_block_pairs(names) if r in all_names and r not in names}
        names += sorted(added)
    if len(names) > MAX_MODULES:
        raise LatentAtlasError(f"{len(names)} modules are more than the {MAX_MODULES} one ablation measures; lower --depth or name them")
    base, probes = probe(target, batch, names, means=mode == "mean")
    refused = []
    if mode == "skip":
        for name in names:
            why = skip_refusal(name, probes[name])
            if why is not None:
                if not sweep and name not in added:
                    raise LatentAtlasError(why)
                refused.append({"module": name, "reason": why})
    skip = {r["module"] for r in refused}
    todo = [n for n in names if n not in skip]
    if not todo:
        raise LatentAtlasError(f"skip is refused on every module of the sweep (their input and output shapes differ); use --mode zero or mean")
    rows, values = [], {}
    with progress_bar(progress, "modules") as bar:
        task = bar.add_task(f"ablating ({mode}) {target.label}", total=len(todo))
        for name in todo:
            out = ablated_forward(target, batch, name, mode, probes[name])
            v = per_item(target, batch, base, out)
            values[name] = v
            est = estimates(target.family, v, seed, num_resamples)
            rows.append({"module": name, "type": type(target.root.get_submodule(name)).__name__,
                         "metrics": {k: _entry(e) for k, e in est.items()}})
            bar.advance(task)
    primary = METRICS[target.family][0][0]
    rows.sort(key=lambda r: -(r["metrics"][primary]["value"] if r["metrics"][primary]["value"] is not None else math.inf))
    base_stats = _base_stats(target.family, values[todo[0]], seed, num_resamples)
    pairs = []
    for attn, res in mid_block_pairs(todo):
        if res in values:
            a, r = values[attn][primary], values[res][primary]
            lo, hi = bootstrap_ci(lambda i: float(a[i].mean() - r[i].mean()), len(a), np.random.default_rng(seed), num_resamples)
            pairs.append({"attention": attn, "resnet": res, "metric": primary,
                          "difference": _entry(Estimate("difference", float(a.mean() - r.mean()), lo, hi, len(a)))})
    report = {
        "id": ablation_id(target, names if not sweep else f"sweep:{depth}", mode, batch, seed),
        "created_at": now_iso(), "model": target.label, "family": target.family, "mode": mode,
        "items": batch.what, "n": int(batch.n), "primary": primary,
        "metrics": [{"key": k, "label": label} for k, label in METRICS[target.family]],
        "selection": f"sweep (depth {depth}: entries of the first module lists below the root)" if sweep else "named",
        "rows": rows, "refused": refused, "pairs": pairs, "base": base_stats, "data": batch.spec,
        "seed": int(seed), "num_resamples": int(num_resamples), "seconds": round(time.perf_counter() - t0, 3),
        "command": command or "", "figure": None, "info": target.info,
    }
    if save and target.run is not None:
        folder = target.run.file("ablation")
        folder.mkdir(parents=True, exist_ok=True)
        if figure:
            from ... import figures as F

            path = target.run.figure_path(f"ablation-{report['id']}.png")
            F.save(ablation_figure(report), path)
            report["figure"] = path.name
        atomic_write_json(folder / f"{report['id']}.json", report)
    return report


def _base_stats(family: str, v: dict[str, np.ndarray], seed: int, num_resamples: int) -> dict[str, dict[str, Any]]:
    """The unablated model's own quality on the batch: what the changes are measured against."""
    if family == "autoencoder":
        rng = np.random.default_rng(seed)
        return {"mse_input": _entry(mean_estimate("mse_input", v["mse_input_base"], rng, num_resamples)),
                "psnr_input": _entry(M.psnr_estimate("psnr_input", v["mse_input_base"], np.random.default_rng(seed), num_resamples))}
    if family == "causal_lm":
        return {"ce": _entry(mean_estimate("ce", v["ce_base"], np.random.default_rng(seed), num_resamples))}
    return {}


def ablation_id(target: Target, modules: list[str] | str, mode: str, batch: Batch, seed: int) -> str:
    key = repr((target.label, target.info.get("spec"), modules, mode, batch.n, sorted(batch.spec.items()), seed))
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:12]


# -- reading results back (untrusted) ---------------------------------------------------------------------

def list_ablations(run: Run) -> list[dict[str, Any]]:
    """Every readable ablation of the run, newest first (a damaged file is left out; opening it says why)."""
    folder = run.file("ablation")
    out = []
    if folder.is_dir():
        for p in sorted(folder.iterdir()):
            if p.suffix == ".json" and ID.match(p.stem):
                try:
                    r = read_ablation(run, p.stem)
                except LatentAtlasError:
                    continue
                out.append({k: r[k] for k in ("id", "created_at", "model", "family", "mode", "items", "n", "primary", "selection")}
                           | {"modules": len(r["rows"])})
    return sorted(out, key=lambda r: r["created_at"], reverse=True)


def read_ablation(run: Run, aid: str) -> dict[str, Any]:
    from ...schemas import AblationReport, validate

    if not isinstance(aid, str) or not ID.match(aid):
        raise LatentAtlasError(f"ablation id '{str(aid)[:40]}' is not one this tool writes (12 hex digits)")
    path = run.file("ablation", f"{aid}.json")
    if not path.is_file():
        raise NotFound(f"run '{run.name}' has no ablation '{aid}'")
    report = read_json(path, "ablation report", 16 << 20)
    validate(AblationReport, report, "ablation report", path)
    if report["id"] != aid:
        raise LatentAtlasError(f"ablation report '{path}' says it is '{report['id']}', not '{aid}'")
    return report


# -- the figure -------------------------------------------------------------------------------------------

def ablation_figure(report: dict[str, Any], metric: str | None = None, top: int = 30):
    """Horizontal bars of one metric per module, largest effect on top, with the 95% interval as whiskers;
    mid-block attention in orange beside the ResNets in blue."""
    from ... import figures as F

    metric = metric or report["primary"]
    label = dict((m["key"], m["label"]) for m in report["metrics"]).get(metric, metric)
    rows = [r for r in report["rows"] if r["metrics"].get(metric, {}).get("value") is not None]
    if not rows:
        raise LatentAtlasError(f"the ablation has no finite '{metric}' to draw")
    rows = sorted(rows, key=lambda r: -r["metrics"][metric]["value"])[:top]
    k = len(rows)
    vals = np.array([r["metrics"][metric]["value"] for r in rows])
    lo = np.array([r["metrics"][metric]["ci_low"] if r["metrics"][metric]["ci_low"] is not None else v for r, v in zip(rows, vals)])
    hi = np.array([r["metrics"][metric]["ci_high"] if r["metrics"][metric]["ci_high"] is not None else v for r, v in zip(rows, vals)])
    with F.style():
        fig = F.new_figure(F.PAGE_WIDTH, min(9.0, 1.0 + 0.22 * k))
        ax = fig.add_subplot()
        y = np.arange(k)
        colors = ["#d1603d" if "attention" in r["module"] or "attn" in r["module"] else F.ACCENT for r in rows]
        ax.barh(y, vals, color=colors, height=0.7, linewidth=0)
        ax.errorbar(vals, y, xerr=[np.maximum(vals - lo, 0), np.maximum(hi - vals, 0)], fmt="none", ecolor="#333333", elinewidth=0.8, capsize=2)
        ax.set_yticks(y, [r["module"] for r in rows], fontsize=F.MIN_FONT)
        ax.invert_yaxis()
        ax.grid(axis="x")
        ax.set_xlabel(f"{label}\nbars: mean over {report['n']} {report['items']}; whiskers: 95% bootstrap interval")
        ax.set_title(f"{report['mode']} ablation of {report['model']}" + (f" — top {k} of {len(report['rows'])}" if len(report["rows"]) > k else ""))
    return fig


# -- targets ----------------------------------------------------------------------------------------------

class PooledSprites:
    """The sprites grid average-pooled by ``pool`` (64 px → 32 px for pool 2): what the SD-style VAE trains on."""

    def __init__(self, pool: int = 2):
        from ...data.sprites import Sprites

        if pool not in (1, 2, 4):
            raise LatentAtlasError(f"sprites pooling {pool} is not one of 1, 2, 4")
        self.sprites, self.pool = Sprites(), pool
        self.spec = {"kind": "sprites", "pool": pool}

    def __len__(self) -> int:
        return len(self.sprites)

    def get(self, idx) -> np.ndarray:
        x = self.sprites.get(idx)
        if self.pool == 1:
            return x
        n, c, h, w = x.shape
        return x.reshape(n, c, h // self.pool, self.pool, w // self.pool, self.pool).mean((3, 5)).astype(np.float32)


SDVAE_DEFAULTS = dict(steps=400, batch_size=16, lr=2e-3)


def train_sdvae(atlas: Atlas, name: str = BUILTIN, *, steps: int = SDVAE_DEFAULTS["steps"], batch_size: int = SDVAE_DEFAULTS["batch_size"],
                lr: float = SDVAE_DEFAULTS["lr"], seed: int = 0, device: str = "auto", progress: bool = True,
                config: Any = None) -> Run:
    """The SD-style VAE run ``name``: trained on 32×32 sprites when the atlas has no such run, resumed from
    its checkpoint when a previous training was stopped, used as it is when finished."""
    from ...models.io import config_to_dict
    from ...models.registry import build, config_from_dict
    from ...models.sd_vae import SDVAEConfig
    from ...trainer import TrainConfig, fit

    if atlas.has_run(name):
        run = atlas.run(name)
        cfg = run.config()
        if cfg.get("kind") != SD_KIND:
            raise LatentAtlasError(f"run '{name}' is a {cfg.get('kind')}, not the SD-style VAE; pass another --name")
        if run.has_model and not run.has_checkpoint:
            if run.read_metrics() is None:
                evaluate_sdvae(run)
            return run
        train_cfg = TrainConfig.from_dict(cfg.get("train") or {})
        data = PooledSprites(int((cfg.get("data") or {}).get("pool", 2)))
        torch.manual_seed(train_cfg.seed)
        model = build(config_from_dict(SD_KIND, cfg["model"]))
        with run.lock():
            fit(model, data, run, train_cfg, resume=True, progress=progress)
            evaluate_sdvae(run)
        return run
    model_cfg = config or SDVAEConfig()
    data = PooledSprites(64 // model_cfg.sample_size if model_cfg.sample_size in (16, 32, 64) else 2)
    train_cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, log_every=max(1, min(25, steps)),
                            checkpoint_every=max(1, min(50, steps)), device=device)
    torch.manual_seed(seed)
    model = build(model_cfg)
    run = atlas.create_run(name, {"name": name, "kind": SD_KIND, "model": config_to_dict(model_cfg), "train": train_cfg.to_dict(),
                                  "data": data.spec, "versions": _versions(), "created_at": now_iso(), "origin": "sdvae"})
    try:
        with run.lock():
            fit(model, data, run, train_cfg, resume=False, progress=progress)
    except BaseException:
        if not (run.has_checkpoint or run.has_model):
            atlas.delete_run(name)
        raise
    evaluate_sdvae(run)
    return run


def evaluate_sdvae(run: Run, n: int = 256, seed: int = 1, num_resamples: int = 1000) -> dict[str, Any]:
    """The SD-style VAE's reconstruction of ``n`` sprites (drawn with another seed than ablations use by
    default): MSE and PSNR against the input, with 95% bootstrap intervals, into the run's metrics.json."""
    target = target_of_run(run)
    batch = make_batch(target, n=n, seed=seed)
    with torch.inference_mode():
        m = M.mse(target.forward(batch.inputs), batch.inputs)
    mse = mean_estimate("mse", m, np.random.default_rng(seed), num_resamples)
    psnr = M.psnr_estimate("psnr", m, np.random.default_rng(seed), num_resamples)
    what = f"decode of the posterior mean of {len(m)} sprites against the input, pixels in [0, 1]"
    metrics = {"run": run.name, "kind": SD_KIND, "created_at": now_iso(), "n": int(len(m)), "held_out": False,
               "command": f"latentatlas attention ablate {run.name}",
               "headline": {"recon_mse": _entry(mse)["value"], "recon_psnr": _entry(psnr)["value"]},
               "metrics": {"recon_mse": {**_entry(mse), "details": {"what": what}},
                           "recon_psnr": {**_entry(psnr), "details": {"what": "10·log10(1 / mean MSE), dB; " + what}}},
               "notes": ["reconstructions of sprites drawn from the same grid the run trained on (737,280 images; "
                         "the run saw a few thousand), so close to held out but not guaranteed"]}
    run.write_metrics(metrics)
    return metrics


def _versions() -> dict[str, str]:
    import diffusers

    return {**jobs.versions(), "diffusers": diffusers.__version__}


def _image_batch(data: Any, n: int, seed: int, shape: tuple[int, int, int]) -> tuple[torch.Tensor, dict[str, Any]]:
    """``n`` images drawn without replacement (seeded) from ``data``, shaped for the model: channels
    repeated or averaged, sides average-pooled to the model's size."""
    size = len(data)
    if n < 1:
        raise LatentAtlasError(f"--n {n} is too small; expected at least 1 image")
    idx = np.random.default_rng(seed).choice(size, size=min(n, size), replace=False)
    x = torch.from_numpy(np.ascontiguousarray(data.get(np.sort(idx)), dtype=np.float32))
    if x.ndim != 4:
        raise LatentAtlasError(f"the images have shape {tuple(x.shape)}; expected (N, C, H, W)")
    c, s = shape[0], shape[1]
    if x.shape[1] != c:
        if x.shape[1] == 1:
            x = x.repeat(1, c, 1, 1)
        elif c == 1:
            x = x.mean(1, keepdim=True)
        else:
            raise LatentAtlasError(f"the images have {x.shape[1]} channels; the model reads {c}")
    if x.shape[-1] != s or x.shape[-2] != s:
        if x.shape[-1] % s or x.shape[-2] != x.shape[-1]:
            raise LatentAtlasError(f"the images are {tuple(x.shape[-2:])}; the model reads {s}×{s}")
        x = torch.nn.functional.avg_pool2d(x, x.shape[-1] // s)
    return x.clamp(0, 1), {"kind": "images", "source": getattr(data, "spec", {"kind": type(data).__name__}), "n": int(len(x)), "seed": int(seed)}


def _text_batch(tokenizer: Any, texts: list[str] | None, corpus: str | None, n: int, max_length: int, causal: bool,
                device: torch.device) -> Batch:
    from ...capture import tokenize

    if texts:
        body, source = [t for t in texts if t.strip()], {"kind": "texts", "n": len(texts)}
        if not body:
            raise LatentAtlasError("every --text is empty; expected some text")
    else:
        from ...data.text import load_corpus

        corp = load_corpus(corpus or "builtin")
        body = [d.text for _, d in zip(range(n), iter(corp))]
        source = {"kind": "corpus", "corpus": corp.spec, "n": len(body)}
        if not body:
            raise LatentAtlasError(f"corpus '{corpus}' gave no documents")
    bos = bool(causal and getattr(tokenizer, "bos_token", None)) and tokenizer("a")["input_ids"][:1] != [tokenizer.bos_token_id]
    enc, _ = tokenize(tokenizer, body, max_length, prepend_bos=bos)
    inputs = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    mask = inputs["attention_mask"].bool()
    if causal and int(mask.sum(1).min()) < 2:
        raise LatentAtlasError("a text gives fewer than two tokens, so it has no next token to predict; give longer texts")
    return Batch(inputs, len(body), "texts", mask, {**source, "max_length": max_length})


def target_of_run(run: Run, device: str = "cpu") -> Target:
    """The model a run holds (or names), as an ablation target."""
    cfg = run.config()
    kind = cfg.get("kind")
    spec = {"run": run.name}
    if kind in VAE_KINDS:
        model = run.load_model(device)
        return Target(model, "autoencoder", f"run '{run.name}'", lambda x: model.reconstruct(x), run, {"spec": spec, "kind": kind})
    if kind == SD_KIND:
        from ...models import sd_vae  # noqa: F401  (registers the kind)

        if not run.has_model:
            raise LatentAtlasError(f"run '{run.name}' has no trained weights yet; finish it with `latentatlas attention ablate {run.name}`")
        model = run.load_model(device)
        return Target(model.vae, "autoencoder", f"run '{run.name}'", model.reconstruct, run, {"spec": spec, "kind": kind})
    if kind == DIFFUSERS_KIND:
        from ...models.sd_vae import load_autoencoder_kl, reconstruct

        path = ((cfg.get("model") or {}).get("spec") or {}).get("path")
        if not isinstance(path, str):
            raise LatentAtlasError(f"run '{run.name}' names no AutoencoderKL folder in its config (model.spec.path)")
        vae = load_autoencoder_kl(path, device)
        return Target(vae, "autoencoder", Path(path).name or path, lambda x: reconstruct(vae, x), run, {"spec": {"path": path}, "kind": kind})
    if kind in (jobs.TOY_KIND, jobs.SUBJECT_KIND):
        return _target_of_subject(jobs.subject_of_run(run, device), run)
    raise LatentAtlasError(f"run '{run.name}' is a {kind}; ablation reads an autoencoder, a language model or an encoder run")


def _target_of_subject(subject: jobs.Subject, run: Run) -> Target:
    model = subject.model
    if subject.tokenizer is None:  # the attention-only model trained here: token ids in, logits out
        return Target(model, "causal_lm", subject.label, model, run, {"spec": subject.spec, "kind": jobs.TOY_KIND})
    if subject.causal:
        return Target(model, "causal_lm", subject.label, lambda inputs: model(**inputs, use_cache=False).logits, run, {"spec": subject.spec},
                      subject.tokenizer)
    return Target(model, "encoder", subject.label, lambda inputs: model(**inputs).last_hidden_state, run, {"spec": subject.spec},
                  subject.tokenizer)


def resolve(model: str, atlas: Atlas, device: str = "cpu", *, train: dict[str, Any] | None = None, progress: bool = True) -> Target:
    """``model`` as typed: a run of the atlas; ``sdvae`` (trained on first use); an AutoencoderKL folder
    (a run of kind ``diffusers_vae`` names it); else a transformers model (``minilm``, a folder, a hub id)."""
    from ...trainer import resolve_device

    train_device, device = device, str(resolve_device(device))
    train = {"device": train_device, **(train or {})}
    if is_name(model) and atlas.has_run(model):
        run = atlas.run(model)
        if run.config().get("kind") == SD_KIND and (run.has_checkpoint or not run.has_model):
            train_sdvae(atlas, model, device=train_device, progress=progress)
        return target_of_run(run, device)
    if model == BUILTIN:
        return target_of_run(train_sdvae(atlas, BUILTIN, progress=progress, **train), device)
    from ...models.sd_vae import autoencoder_kl_folder

    folder = autoencoder_kl_folder(model) if Path(model).expanduser().is_dir() else None
    if folder is not None:
        return target_of_run(_diffusers_run(atlas, folder.resolve()), device)
    subject, run = jobs.resolve(model, atlas, device)
    return _target_of_subject(subject, run)


def _diffusers_run(atlas: Atlas, folder: Path) -> Run:
    spec = {"path": str(folder)}
    for name in atlas.run_names():
        try:
            cfg = atlas.run(name).config()
        except LatentAtlasError:
            continue
        if cfg.get("kind") == DIFFUSERS_KIND and (cfg.get("model") or {}).get("spec") == spec:
            return atlas.run(name)
    from ...models.sd_vae import describe, load_autoencoder_kl

    vae = load_autoencoder_kl(folder)  # refuses a folder that is no AutoencoderKL before a run is made for it
    base = folder.parent.name if folder.name == "vae" else folder.name
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", base).strip("-.")[:60] or "autoencoder"
    name = atlas.unique_run_name(f"vae-{slug}")
    return atlas.create_run(name, {"name": name, "kind": DIFFUSERS_KIND, "created_at": now_iso(), "versions": _versions(),
                                   "model": {"spec": spec, "architecture": "AutoencoderKL", **describe(vae)}})


def make_batch(target: Target, *, n: int | None = None, texts: list[str] | None = None, corpus: str | None = None,
               data: str | None = None, max_length: int = 64, seed: int = 0) -> Batch:
    """The batch an ablation is measured on: ``n`` images (the run's own data, or ``data``; sprites for an
    AutoencoderKL folder), ``texts`` or ``n`` documents of ``corpus``, or ``n`` repeated-span sequences for
    the attention-only model."""
    from ...limits import check_int

    dev = next(target.root.parameters()).device
    if target.family == "autoencoder":
        n = 32 if n is None else n
        check_int(n, "--n", 1, 4096)
        kind = target.info.get("kind")
        if data is not None:
            from ...data import load_dataset

            source = load_dataset(data)
        elif kind == SD_KIND:
            source = PooledSprites(int((target.run.config().get("data") or {}).get("pool", 2)))
        elif kind in VAE_KINDS:
            from ...data import load_dataset

            source = load_dataset(target.run.config()["data"])
        else:
            from ...data.sprites import Sprites

            source = Sprites()
        shape = _image_shape(target)
        x, spec = _image_batch(source, n, seed, shape)
        return Batch(x.to(dev), len(x), "images", None, spec)
    if target.info.get("kind") == jobs.TOY_KIND:
        from ...data.induction import RepeatedSpans

        n = 16 if n is None else n
        check_int(n, "--n", 1, 4096)
        d = dict(target.run.config().get("data") or {})
        gen = RepeatedSpans(**{k: v for k, v in d.items() if k in ("vocab", "length", "span_min", "span_max")}, batch_size=n, seed=seed + 7_000_003)
        ids = torch.from_numpy(gen.batch_at(0)[:, 0]).to(dev)
        return Batch(ids, n, "sequences", torch.ones(ids.shape, dtype=torch.bool, device=dev), {"kind": "repeated_spans", "n": n, "seed": seed})
    n = 16 if n is None else n
    check_int(n, "--n", 1, 4096)
    check_int(max_length, "--max-length", 2, 1 << 16)
    if target.tokenizer is None:
        raise LatentAtlasError(f"{target.label} has no tokenizer to read texts with")
    return _text_batch(target.tokenizer, texts, corpus, n, max_length, target.family == "causal_lm", dev)


def _image_shape(target: Target) -> tuple[int, int, int]:
    cfg = getattr(target.root, "config", None)
    if hasattr(cfg, "input_shape"):  # a VAE run
        return tuple(cfg.input_shape)
    get = (lambda k, d: cfg.get(k, d)) if isinstance(cfg, dict) else (lambda k, d: getattr(cfg, k, d))
    c = int(get("in_channels", 3))
    if target.info.get("kind") == SD_KIND:
        return (c, int(get("sample_size", 32)), int(get("sample_size", 32)))
    return (c, 64, 64)  # a user's AutoencoderKL reads any size its downsamplings divide; sprites are 64 px
