"""The flow lab's jobs: train a flow-matching or diffusion model on a 2-D toy (``train``), retrain it on its
own coupling (``reflow``), sample it with any sampler (``sample``) and measure it against the target and,
for a Gaussian mixture, against the exact answer (``evaluate``).

    runs/<run>/config.json, model.safetensors, history.jsonl    as every run (kind "flow")
    runs/<run>/data/points.npy                                  a user's point set, copied in (the run is self-contained)
    runs/<run>/data/coupling.safetensors                        reflow: the (x0, x1) pairs it was trained on
    runs/<run>/samples/<sampler>-<nfe>.safetensors + .json      samples, their noise and trajectory on the FM path
    runs/<run>/metrics.json                                     ``evaluate``: per sampler and NFE, the field error, the loss floor
"""

from __future__ import annotations

import platform
import re
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..._io import atomic_save_safetensors, atomic_write_json, read_json
from ..._progress import progress_bar
from ...atlas import Atlas, Run, now_iso
from ...analysis.flow_exact import ExactField
from ...errors import LatentAtlasError
from ...models.flow import FlowConfig, FlowModel, data_scale
from ...models.io import config_to_dict
from ...models.samplers import SAMPLERS, STOCHASTIC, SampleResult, sample as run_sampler, steps_for
from ...trainer import TrainConfig, TrainResult, fit, fit_new_run, resolve_device, resumable

KIND = "flow"
DEFAULT_DATA = "three-modes"
TRAIN_DEFAULTS = dict(steps=3000, batch_size=512, lr=2e-3, lr_warmup=100, lr_decay=0.3)
EVAL_NFES = (1, 2, 4, 8, 16, 30, 50)
MAX_SAMPLES = 200_000
_SAMPLE_NAME = re.compile(r"^[a-z+\-0-9]{1,24}-[0-9]{1,5}$")


def versions() -> dict[str, str]:
    import diffusers

    from ... import __version__

    return {"latentatlas": __version__, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "python": platform.python_version()}


# -- data ------------------------------------------------------------------------------------------------

def _toy(spec: str | dict, batch_size: int, seed: int, run: Run | None = None):
    from ...data.toys import load_toy

    if isinstance(spec, dict) and spec.get("name") == "points" and run is not None:
        # a run's point set lives in the run; its config names it relative to the run folder
        rel = spec.get("path")
        if not isinstance(rel, str) or rel != "data/points.npy":
            raise LatentAtlasError(f"run '{run.name}' names its points as {str(rel)[:80]!r}; expected data/points.npy inside the run")
        spec = {**spec, "path": str(run.file("data", "points.npy"))}
    return load_toy(spec, batch_size=batch_size, seed=seed)


class Pairs:
    """Reflow's training data: fixed (x0, x1) pairs, (N, 2·d); batch ``step`` draws rows with replacement,
    a pure function of (seed, step)."""

    def __init__(self, pairs: np.ndarray, batch_size: int, seed: int):
        self.pairs, self.batch_size, self.seed = np.ascontiguousarray(pairs, dtype=np.float32), batch_size, seed

    def __len__(self) -> int:
        return len(self.pairs)

    def batch_at(self, step: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, step, 7])
        return self.pairs[rng.integers(0, len(self.pairs), self.batch_size)]


# -- training --------------------------------------------------------------------------------------------

def train(atlas: Atlas | str | None = None, *, data: str | dict | np.ndarray = DEFAULT_DATA, objective: str = "fm",
          schedule: str = "linear", net: str = "sinusoidal", steps: int | None = None, batch_size: int | None = None,
          lr: float | None = None, seed: int = 0, name: str | None = None, resume: bool = False, device: str = "auto",
          log_every: int = 50, checkpoint_every: int = 500, progress: bool = True, on_step: Callable[[int], None] | None = None,
          evaluate: bool = True, **model_overrides: Any) -> tuple[Run, TrainResult, dict[str, Any] | None]:
    """Train a flow model on a 2-D toy (a name, a .npy/.csv point file, a spec, or an (N, 2) array of points,
    e.g. painted in the page) and, unless ``evaluate=False``, evaluate it. ``model_overrides`` set fields of
    :class:`FlowConfig` (``hidden=128``). A point set is copied into the run."""
    atlas = atlas if isinstance(atlas, Atlas) else Atlas(atlas)
    if resume:
        run, result = _resume(atlas, name, progress, on_step)
        report = _evaluate(run, progress=progress) if evaluate else None
        return run, result, report
    t = TRAIN_DEFAULTS
    train_cfg = TrainConfig(steps=steps or t["steps"], batch_size=batch_size or t["batch_size"], lr=lr or t["lr"], seed=seed,
                            log_every=log_every, checkpoint_every=checkpoint_every, device=device,
                            lr_warmup=min(t["lr_warmup"], (steps or t["steps"]) // 4), lr_decay=t["lr_decay"])
    resolve_device(device)
    known = {f for f in FlowConfig.__dataclass_fields__ if f not in ("kind", "dim", "objective", "schedule", "net")}
    unknown = sorted(set(model_overrides) - known)
    if unknown:
        raise LatentAtlasError(f"unknown flow setting(s) {', '.join(unknown)}; expected some of {', '.join(sorted(known))}")
    points: np.ndarray | None = None
    if isinstance(data, np.ndarray):
        from ...data.toys import check_points

        points = check_points(data, "the point set")
        spec: dict[str, Any] = {"kind": "toy2d", "name": "points", "batch_size": train_cfg.batch_size, "seed": seed}
        label, sample = "points", points
    else:
        toy = _toy(data, train_cfg.batch_size, seed)
        spec, label, sample = dict(toy.spec), toy.name, toy.sample(4096, seed=seed)
        if toy.name == "points":
            from ...data.toys import load_points

            points = load_points(toy.path)
    if points is not None:
        spec["path"] = "data/points.npy"
    scale = model_overrides.pop("x_scale", None) or data_scale(sample)
    model_cfg = FlowConfig(dim=2, objective=objective, schedule=schedule, net=net, x_scale=round(scale, 6), **model_overrides)
    torch.manual_seed(seed)
    model = FlowModel(model_cfg)
    name = name or atlas.unique_run_name(f"flow-{label}-{objective}")
    config = {"name": name, "kind": KIND, "model": config_to_dict(model_cfg), "train": train_cfg.to_dict(), "data": spec,
              "versions": versions(), "created_at": now_iso(), "origin": "trained"}
    if points is not None:
        def write_points(run: Run) -> Any:
            run.file("data").mkdir(parents=True, exist_ok=True)
            _save_npy(run.file("data", "points.npy"), points)
            return _toy(spec, train_cfg.batch_size, seed, run)

        run, result = fit_new_run(atlas, config, model, write_points, train_cfg, progress=progress, on_step=on_step)
    else:
        run, result = fit_new_run(atlas, config, model, toy, train_cfg, progress=progress, on_step=on_step)
    report = _evaluate(run, progress=progress) if evaluate else None
    return run, result, report


def _save_npy(path: Path, arr: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(arr, dtype=np.float32), allow_pickle=False)
    tmp.replace(path)


def _resume(atlas: Atlas, name: str | None, progress: bool, on_step) -> tuple[Run, TrainResult]:
    if not name:
        raise LatentAtlasError("--resume needs --name to say which run to continue")
    run = atlas.run(name)
    cfg = run.config()
    train_cfg = resumable(run, KIND, "a flow run")
    data = _data_of(run, train_cfg)
    from ...models import config_from_dict

    torch.manual_seed(train_cfg.seed)
    model = FlowModel(config_from_dict(KIND, cfg["model"]))
    with run.lock():
        return run, fit(model, data, run, train_cfg, resume=True, progress=progress, on_step=on_step)


def _data_of(run: Run, train_cfg: TrainConfig):
    spec = run.config().get("data")
    if isinstance(spec, dict) and spec.get("kind") == "coupling":
        return Pairs(_coupling(run), train_cfg.batch_size, train_cfg.seed)
    if not isinstance(spec, dict):
        raise LatentAtlasError(f"run '{run.name}' has no data spec in its config")
    return _toy(spec, train_cfg.batch_size, train_cfg.seed, run)


def _coupling(run: Run) -> np.ndarray:
    from ...models.io import read_weights

    path = run.file("data", "coupling.safetensors")
    if not path.is_file():
        raise LatentAtlasError(f"run '{run.name}' is a reflow run without its coupling file data/coupling.safetensors")
    pairs = read_weights(path).get("pairs")
    if pairs is None or pairs.ndim != 2 or pairs.shape[1] != 4:
        raise LatentAtlasError(f"the coupling file of run '{run.name}' should hold 'pairs' of shape (N, 4)")
    return pairs.float().numpy()


def target_of(run: Run):
    """The run's target distribution (its toy; for a reflow run, its source run's toy)."""
    cfg = run.config()
    spec = cfg.get("data")
    if isinstance(spec, dict) and spec.get("kind") == "coupling":
        src = spec.get("target")
        if not isinstance(src, dict):
            raise LatentAtlasError(f"reflow run '{run.name}' does not record its target distribution")
        return _toy(src, 256, 0, None)
    return _toy(spec, 256, 0, run)


def model_of(run: Run, device: str = "cpu") -> FlowModel:
    if run.config().get("kind") != KIND:
        raise LatentAtlasError(f"run '{run.name}' is a {run.config().get('kind')}, not a flow run")
    if not run.has_model:
        raise LatentAtlasError(f"run '{run.name}' has no trained weights yet; finish it with `latentatlas flow train --name {run.name} --resume`")
    model = run.load_model(device)
    model.eval()
    return model


# -- sampling --------------------------------------------------------------------------------------------

def noise(n: int, seed: int, dim: int = 2) -> torch.Tensor:
    from ...limits import check_int

    check_int(n, "--n", 1, MAX_SAMPLES)
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(int(seed)))


def sample(run: Run, sampler: str = "euler", nfe: int = 30, *, n: int = 2000, seed: int = 0, trajectory: bool = True,
           save: bool = True) -> tuple[SampleResult, dict[str, Any]]:
    """Sample a trained run; with ``save`` the samples, their noise and their trajectory go to
    ``samples/<sampler>-<nfe>``. Returns the result and its meta."""
    from ...limits import check_int

    check_int(nfe, "--nfe", 1, 10_000)
    steps_for(sampler, nfe)
    model = model_of(run)
    c = model.config
    x0 = noise(n, seed, c.dim)
    t0 = time.perf_counter()
    res = run_sampler(model.prediction(), x0, sampler, nfe, objective=c.objective, schedule=c.schedule,
                      train_timesteps=c.train_timesteps, seed=seed, trajectory=trajectory)
    meta = {"run": run.name, "sampler": sampler, "nfe_budget": int(nfe), "nfe": int(res.nfe), "steps": int(res.steps), "n": int(n),
            "seed": int(seed), "seconds": round(time.perf_counter() - t0, 4), "times": [float(t) for t in res.times],
            "stochastic": sampler in STOCHASTIC, "created_at": now_iso()}
    if save:
        folder = run.file("samples")
        folder.mkdir(parents=True, exist_ok=True)
        key = f"{sampler}-{nfe}"
        tensors = {"samples": res.x.float().contiguous(), "noise": x0.float().contiguous()}
        if res.trajectory is not None:
            tensors["trajectory"] = res.trajectory.float().contiguous()
        atomic_save_safetensors(folder / f"{key}.safetensors", tensors)
        atomic_write_json(folder / f"{key}.json", meta)
    return res, meta


# -- evaluation --------------------------------------------------------------------------------------------

def _est(e) -> dict[str, Any]:
    d = e.to_dict()
    return {k: d[k] for k in ("value", "ci_low", "ci_high", "n", "details")}


def evaluate(run: Run, *, n: int = 2000, samplers: Sequence[str] = SAMPLERS, nfes: Sequence[int] = EVAL_NFES, seed: int = 0,
             progress: bool = True, null_repeats: int = 40) -> dict[str, Any]:
    """Energy distance to fresh target samples for every sampler × NFE (with the exact field beside the
    model where the target is a Gaussian mixture), the noise floor of that distance at this n, the learned
    field's error against the exact one and the training loss over its floor, straightness, per-mode
    errors and MMD at 30 NFE. Written to metrics.json."""
    from ...analysis.sample_quality import energy_distance, energy_null, mmd, mode_errors, straightness

    model = model_of(run)
    c = model.config
    toy = target_of(run)
    mix = toy.mixture
    y = toy.sample(n, seed=seed + 1)
    x0 = noise(n, seed, c.dim)
    null = energy_null(lambda k, rng: toy._draw(k, rng), n, repeats=null_repeats, random_state=seed)
    floor_q = float(null["quantile"])
    rows: list[dict[str, Any]] = []
    fields: list[tuple[str, Any]] = [("model", model.prediction())]
    if mix is not None:
        fields.append(("exact", ExactField(mix)))
    kept: dict[str, torch.Tensor] = {}
    combos = [(who, f, s, k) for who, f in fields for s in samplers for k in nfes if _fits(s, k)]
    t0 = time.perf_counter()
    with progress_bar(progress, "samplers") as bar:
        task = bar.add_task(f"evaluating {run.name}", total=len(combos))
        for who, f, s, k in combos:
            s0 = time.perf_counter()
            res = run_sampler(f, x0, s, k, objective=c.objective, schedule=c.schedule, train_timesteps=c.train_timesteps, seed=seed)
            if who == "model" and s == "dpm++" and k == 30:
                kept["dpm++30"] = res.x  # the samples the MMD and the mode errors below are measured on
            secs = time.perf_counter() - s0
            ed = energy_distance(res.x, y, num_resamples=100, random_state=seed)
            rows.append({"field": who, "sampler": s, "nfe_budget": k, "nfe": res.nfe, "steps": res.steps, "seconds": round(secs, 4),
                         "energy_distance": _est(ed), "at_floor": bool(ed.value <= floor_q)})
            bar.update(task, advance=1)
    metrics: dict[str, Any] = {}
    headline: dict[str, float] = {}
    best30 = _row(rows, "model", "dpm++" if "dpm++" in samplers else samplers[0], 30)
    notes: list[str] = []
    # straightness and per-mode quality at 30 NFE of the model's own ODE (Euler, 100 steps for straightness)
    traj = run_sampler(model.prediction(), x0, "euler", 100, objective=c.objective, schedule=c.schedule,
                       train_timesteps=c.train_timesteps, trajectory=True)
    metrics["straightness"] = _est(straightness(traj.trajectory, traj.times, random_state=seed))
    headline["straightness"] = metrics["straightness"]["value"]
    x30 = kept.get("dpm++30")
    if x30 is None:  # DPM-Solver++ at 30 NFE was not among the evaluated samplers
        x30 = run_sampler(model.prediction(), x0, "dpm++", 30, objective=c.objective, schedule=c.schedule,
                          train_timesteps=c.train_timesteps, seed=seed).x
    metrics["mmd_dpm++_30"] = _est(mmd(x30, y, random_state=seed))
    if best30 is not None:
        metrics["energy_distance_dpm++_30"] = best30["energy_distance"]
        headline["energy_distance_dpm++_30"] = best30["energy_distance"]["value"]
    loss = _final_loss(run)
    if mix is not None:
        from ...analysis.flow_exact import field_error, fm_loss_floor

        pred = model.prediction()
        fe = field_error(lambda x, t: pred.velocity(x, t), mix, n_samples=4096, random_state=seed)
        metrics["field_error"] = _est(fe)
        headline["field_error"] = fe.value
        if c.objective == "fm":
            floor = fm_loss_floor(mix, random_state=seed)
            metrics["fm_loss_floor"] = _est(floor)
            if loss is not None and not run.config().get("data", {}).get("kind") == "coupling":
                metrics["loss_excess"] = {"value": loss - floor.value, "ci_low": None, "ci_high": None, "n": None,
                                          "details": {"what": "final training loss (mean of the last tenth of logged steps) minus the exact floor",
                                                      "loss": loss, "floor": floor.value}}
                headline["loss_excess"] = loss - floor.value
        me = mode_errors(x30.numpy(), mix.means_array, mix.sigmas_array, mix.weights_array, random_state=seed)
        metrics["mode_weight_tv"] = _plain(me["tv"])
        metrics["off_mode_share"] = _plain(me["off_mode_share"])
        headline["mode_weight_tv"] = metrics["mode_weight_tv"]["value"]
        extra_modes = {k: v for k, v in me.items() if k not in ("tv", "off_mode_share")}
    else:
        extra_modes = None
        notes.append("the target is not a Gaussian mixture: no exact field, field error or loss floor")
    report = {"run": run.name, "kind": KIND, "n": int(n), "created_at": now_iso(),
              "command": f"latentatlas flow eval {run.name}", "metrics": metrics, "headline": headline, "notes": notes,
              "samplers": rows, "noise_floor": {k: v for k, v in null.items() if k != "values"},
              "modes": _plain(extra_modes) if extra_modes is not None else None,
              "seconds": round(time.perf_counter() - t0, 2)}
    run.write_metrics(report)
    return report


_evaluate = evaluate  # ``train``'s argument ``evaluate`` (a flag) hides the function inside it


def _plain(v):
    from ..._io import to_plain

    if hasattr(v, "to_dict"):
        return _est(v)
    return to_plain(v)


def _fits(sampler: str, nfe: int) -> bool:
    try:
        steps_for(sampler, nfe)
        return True
    except LatentAtlasError:
        return False


def _row(rows, who, sampler, nfe):
    for r in rows:
        if r["field"] == who and r["sampler"] == sampler and r["nfe_budget"] == nfe:
            return r
    return None


def _final_loss(run: Run) -> float | None:
    rows = [r for r in run.read_history() if isinstance(r.get("loss"), (int, float))]
    if not rows:
        return None
    tail = rows[-max(1, len(rows) // 10):]
    return float(np.mean([r["loss"] for r in tail]))


# -- reflow ------------------------------------------------------------------------------------------------

def reflow(atlas: Atlas | str | None, source: str, *, pairs: int = 20_000, sampler: str = "midpoint", nfe: int = 100,
           steps: int | None = None, batch_size: int | None = None, lr: float | None = None, seed: int = 0, name: str | None = None,
           device: str = "auto", progress: bool = True, on_step=None, evaluate_after: bool = True) -> tuple[Run, TrainResult, dict | None]:
    """Rectified flow's reflow (Liu et al. 2022): sample ``pairs`` (x0, x1) from run ``source``'s ODE and
    train a new model, initialised from the source's weights, on that coupling."""
    from ...limits import check_int
    from ...models import config_from_dict

    atlas = atlas if isinstance(atlas, Atlas) else Atlas(atlas)
    check_int(pairs, "--pairs", 2, MAX_SAMPLES)
    src = atlas.run(source)
    src_model = model_of(src)
    c = src_model.config
    if c.objective != "fm":
        raise LatentAtlasError(f"run '{source}' was trained with objective '{c.objective}'; reflow retrains a flow-matching (fm) model")
    if sampler in STOCHASTIC:
        raise LatentAtlasError(f"sampler '{sampler}' is stochastic; reflow needs the ODE's deterministic coupling (euler, midpoint, heun, dpm++, ddim)")
    x0 = noise(pairs, seed + 10_007, c.dim)
    res = run_sampler(src_model.prediction(), x0, sampler, nfe, objective=c.objective, schedule=c.schedule, train_timesteps=c.train_timesteps)
    coupling = torch.cat([x0, res.x.float()], dim=1)
    t = TRAIN_DEFAULTS
    src_train = src.config().get("train") or {}
    train_cfg = TrainConfig(steps=steps or t["steps"], batch_size=batch_size or src_train.get("batch_size", t["batch_size"]),
                            lr=lr or t["lr"] / 2, seed=seed, device=device, lr_warmup=0, lr_decay=t["lr_decay"])
    name = name or atlas.unique_run_name(f"{source}-reflow")[:64]
    model = FlowModel(config_from_dict(KIND, src.config()["model"]))
    model.load_state_dict(src_model.state_dict())
    config = {"name": name, "kind": KIND, "model": config_to_dict(c), "train": train_cfg.to_dict(),
              "data": {"kind": "coupling", "source": source, "pairs": int(pairs), "sampler": sampler, "nfe": int(res.nfe),
                       "target": src.config().get("data") if (src.config().get("data") or {}).get("kind") != "coupling"
                       else (src.config()["data"].get("target"))},
              "versions": versions(), "created_at": now_iso(), "origin": "reflow"}
    if (config["data"]["target"] or {}).get("name") == "points":
        raise LatentAtlasError("reflow of a run trained on a point file is not supported yet; its points live in the source run")

    def write_coupling(run: Run) -> Pairs:
        run.file("data").mkdir(parents=True, exist_ok=True)
        atomic_save_safetensors(run.file("data", "coupling.safetensors"), {"pairs": coupling.contiguous()})
        return Pairs(coupling.numpy(), train_cfg.batch_size, seed)

    run, result = fit_new_run(atlas, config, model, write_coupling, train_cfg, progress=progress, on_step=on_step)
    report = evaluate(run, progress=progress) if evaluate_after else None
    return run, result, report


# -- reading samples back -------------------------------------------------------------------------------

def read_sample(run: Run, key: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A saved sample ``<sampler>-<nfe>`` of the run: its meta and tensors, validated."""
    from ...models.io import read_weights

    if not _SAMPLE_NAME.match(key or ""):
        raise LatentAtlasError(f"sample '{str(key)[:40]}' is not a sample name; expected <sampler>-<nfe>, e.g. euler-30")
    folder = run.file("samples")
    meta_path, data_path = folder / f"{key}.json", folder / f"{key}.safetensors"
    if not (meta_path.is_file() and data_path.is_file()):
        from ...errors import NotFound

        raise NotFound(f"run '{run.name}' has no sample '{key}'; make it with `latentatlas flow sample {run.name}`")
    meta = read_json(meta_path, "flow sample", 1 << 20)
    tensors = read_weights(data_path)
    return meta, tensors
