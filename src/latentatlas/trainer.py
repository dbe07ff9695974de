"""The one training loop for every model.

A model only has to expose ``loss(batch) -> dict`` with a ``"loss"`` entry; everything else here is
model-agnostic: seeded batch order, learning-rate warm-up and decay, progress bar, atomic checkpoints,
bitwise-exact resume on CPU, ``history.jsonl``, CUDA when available. Two optional hooks: a model's
``before_step(step, total)`` (schedules inside the model, e.g. an SAE's sparsity warm-up) and
``after_step()`` (constraints, e.g. unit-norm decoder rows).

The data is either indexable (``len`` + ``get(indices)``: batches are slices of a per-epoch
permutation) or a batch source with ``batch_at(step)`` (such as an activation store's
``ShuffledBatches``), which must itself be a pure function of the step.

Resume is exact because nothing the next step depends on lives outside the checkpoint: the batch at
step ``t`` is a pure function of (seed, t) (a per-epoch permutation seeded by the epoch number), and the
checkpoint holds the weights, the optimizer state and the torch RNG state, all as safetensors.
"""

from __future__ import annotations

import json
import math
import re
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Protocol

import numpy as np
import torch

from ._progress import progress_bar
from .atlas import Atlas, Run
from .errors import LatentAtlasError


class Indexable(Protocol):
    def __len__(self) -> int: ...
    def get(self, idx: np.ndarray) -> np.ndarray: ...


class BatchSource(Protocol):
    def __len__(self) -> int: ...
    def batch_at(self, step: int) -> np.ndarray: ...


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 50
    device: str = "auto"
    grad_clip: float | None = None
    adam_betas: tuple[float, float] = (0.9, 0.999)
    lr_warmup: int = 0  # steps of linear warm-up from 0
    lr_decay: float = 0.0  # fraction of the run, at its end, over which the lr decays linearly to 0
    weight_decay: float = 0.0  # decoupled weight decay (AdamW, Loshchilov & Hutter 2019); 0 is plain Adam

    def __post_init__(self) -> None:
        from .limits import MAX_BATCH, MAX_SEED, MAX_STEPS, check_float, check_int

        check_int(self.steps, "--steps", 1, MAX_STEPS)
        check_int(self.batch_size, "--batch-size", 1, MAX_BATCH)
        check_int(self.seed, "--seed", 0, MAX_SEED)
        check_int(self.checkpoint_every, "--checkpoint-every", 1, MAX_STEPS)
        check_int(self.log_every, "--log-every", 1, MAX_STEPS)
        check_int(self.lr_warmup, "--lr-warmup", 0, MAX_STEPS)
        check_float(self.lr, "--lr", 0.0, lo_open=True)
        check_float(self.lr_decay, "--lr-decay", 0.0, 1.0)
        check_float(self.weight_decay, "--weight-decay", 0.0, 10.0)
        if self.grad_clip is not None:
            check_float(self.grad_clip, "--grad-clip", 0.0)
        check_device(self.device)
        if (not isinstance(self.adam_betas, tuple) or len(self.adam_betas) != 2
                or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0.0 <= b < 1.0 for b in self.adam_betas)):
            raise LatentAtlasError(f"adam_betas must be two numbers in [0, 1), got {self.adam_betas!r}")

    def lr_at(self, step: int) -> float:
        """The learning rate of step ``step`` (0-based): a pure function of the step, so resume is exact."""
        factor = 1.0
        if self.lr_warmup:
            factor = min(factor, (step + 1) / self.lr_warmup)
        decay_steps = int(round(self.lr_decay * self.steps))
        if decay_steps:
            factor = min(factor, (self.steps - step) / decay_steps)
        return self.lr * factor

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """The config a run recorded with ``to_dict`` (JSON turns the betas tuple into a list), checked: a
        run's config.json is untrusted input, so unknown keys and wrong types are one sentence."""
        from .models.registry import check_types

        if not isinstance(d, dict):
            raise LatentAtlasError(f"the run's training settings should be a JSON object, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise LatentAtlasError(f"the run's training settings have unknown key(s) {', '.join(map(str, unknown))[:200]}; expected only: {', '.join(sorted(known))}")
        values = {**d}
        if isinstance(values.get("adam_betas"), list):
            values["adam_betas"] = tuple(values["adam_betas"])
        check_types(cls, values, "the run's training settings")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["adam_betas"] = list(self.adam_betas)
        return d


@dataclass
class TrainResult:
    steps_done: int
    resumed_from: int | None
    seconds: float
    last: dict[str, float] = field(default_factory=dict)


class TrainingInterrupted(Exception):
    """Raised after Ctrl-C once the state at the last finished step is checkpointed."""

    def __init__(self, step: int):
        super().__init__(f"training interrupted at step {step}; continue from the latest checkpoint with --resume")
        self.step = step


SHOWN = ("loss", "recon", "kl", "tc", "l0", "fvu", "dead")


_DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]{1,2})?|mps")


def check_device(device: str) -> str:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; anything else (``meta``, which holds no data, or a
    typo) is one sentence."""
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise LatentAtlasError(f"--device {device!r} is not a device this tool trains on; expected auto, cpu, cuda, cuda:N or mps")
    return device


def resolve_device(device: str) -> torch.device:
    check_device(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise LatentAtlasError(f"device '{device}' is not a torch device name (expected auto, cpu or cuda)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LatentAtlasError(f"device '{device}' was asked for but CUDA is not available on this machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise LatentAtlasError(f"device '{device}' was asked for but this machine has {torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise LatentAtlasError(f"device '{device}' was asked for but MPS is not available on this machine")
    return dev


class BatchOrder:
    """Batch ``t`` = slice of the permutation of epoch ``t // steps_per_epoch``, seeded by (seed, epoch)."""

    def __init__(self, n: int, batch_size: int, seed: int):
        if n < 1:
            raise LatentAtlasError("the training data is empty; expected at least one sample")
        self.n = n
        self.batch_size = min(batch_size, n)
        self.steps_per_epoch = n // self.batch_size
        self.seed = seed
        self._epoch = -1
        self._perm: np.ndarray | None = None

    def indices(self, step: int) -> np.ndarray:
        epoch, pos = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            self._epoch = epoch
        return self._perm[pos * self.batch_size : (pos + 1) * self.batch_size]


# -- optimizer state as safetensors (no pickle) -------------------------------------------------------
def optimizer_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = value
    groups = json.loads(json.dumps(sd["param_groups"], default=lambda o: list(o) if isinstance(o, tuple) else str(o)))
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_from_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    for pid, extra in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(extra)
    groups = meta["param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    opt.load_state_dict({"state": state, "param_groups": groups})


def _rng_tensors(device: torch.device) -> dict[str, torch.Tensor]:
    out = {"torch_cpu": torch.get_rng_state()}
    if device.type == "cuda":
        out["torch_cuda"] = torch.cuda.get_rng_state(device)
    return out


def _restore_rng(tensors: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    if device.type == "cuda" and "torch_cuda" in tensors:
        torch.cuda.set_rng_state(tensors["torch_cuda"], device)


@contextmanager
def _deferred_sigint():
    """Turn the first Ctrl-C into a flag checked between steps, so a checkpoint never holds half a step."""
    flag = {"hit": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if flag["hit"]:  # a second Ctrl-C stops at once
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        flag["hit"] = True

    signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def fit(
    model: torch.nn.Module,
    data: Indexable | BatchSource,
    run: Run,
    config: TrainConfig,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train ``model`` on ``data`` for ``config.steps`` steps, checkpointing into ``run``.

    With ``resume=True`` the latest checkpoint in ``run`` is loaded and training continues from the
    step after it; the final weights equal those of an uninterrupted run (bitwise on CPU).
    ``on_step(step)`` is called after each finished step (tests use it to kill the process).
    """
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model.to(device).train()
    if config.weight_decay:
        opt = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=config.adam_betas, weight_decay=config.weight_decay)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.adam_betas)
    if hasattr(data, "batch_at"):
        batch_of = data.batch_at
    else:
        order = BatchOrder(len(data), config.batch_size, config.seed)
        batch_of = lambda s: data.get(order.indices(s))  # noqa: E731
    before = getattr(model, "before_step", None)
    after = getattr(model, "after_step", None)
    scheduled = bool(config.lr_warmup or config.lr_decay)

    start = 0
    resumed_from = None
    if resume:
        ckpt = run.read_checkpoint()
        if ckpt is not None:
            step, parts, meta = ckpt
            if step >= config.steps:
                # never finish a run from such a checkpoint: that would write its weights as the final model
                # and delete the checkpoint
                raise LatentAtlasError(f"the checkpoint in '{run.checkpoint_dir}' is at step {step}, but the run has only {config.steps} steps; "
                                       "it does not belong to this run (nothing was changed)")
            try:
                model.load_state_dict({k: v.to(device) for k, v in parts["model"].items()}, strict=True)
                optimizer_from_tensors(opt, {k: v.to(device) for k, v in parts["optimizer"].items()}, meta["optimizer"])
                _restore_rng(parts["rng"], device)
            except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as exc:
                raise LatentAtlasError(f"checkpoint in '{run.checkpoint_dir}' does not fit this run's model ({exc.__class__.__name__}); delete it to start over") from exc
            start = resumed_from = step
            run.truncate_history(step)
        else:
            run.truncate_history(0)
    # history's time is the run's training time: a resumed run continues from its last logged row
    before_s = 0.0
    if start:
        rows = run.read_history()
        t = rows[-1].get("time") if rows else None
        before_s = float(t) if isinstance(t, (int, float)) and math.isfinite(t) and t >= 0 else 0.0

    def checkpoint(step: int) -> None:
        opt_tensors, opt_meta = optimizer_to_tensors(opt)
        run.write_checkpoint(
            step,
            {"model": model.state_dict(), "optimizer": opt_tensors, "rng": _rng_tensors(device)},
            {"step": step, "optimizer": opt_meta, "train": config.to_dict()},
        )

    sums: dict[str, torch.Tensor] = {}
    count = 0
    last: dict[str, float] = {}
    t0 = time.perf_counter()
    step = start
    with progress_bar(progress, "{task.fields[metrics]}") as bar, _deferred_sigint() as interrupted:
        task = bar.add_task(f"training {run.name}", total=config.steps, completed=start, metrics="")
        try:
            while step < config.steps:
                batch = torch.from_numpy(np.ascontiguousarray(batch_of(step))).to(device, non_blocking=True)
                if scheduled:
                    for group in opt.param_groups:
                        group["lr"] = config.lr_at(step)
                if before is not None:
                    before(step, config.steps)
                out = model.loss(batch)
                loss = out["loss"]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                opt.step()
                if after is not None:
                    after()
                step += 1
                for k, v in out.items():
                    v = v.detach()
                    sums[k] = sums[k] + v if k in sums else v
                count += 1
                if step % config.log_every == 0 or step == config.steps:
                    last = {k: float(v) / count for k, v in sums.items()}
                    if not math.isfinite(last["loss"]):
                        raise LatentAtlasError(
                            f"the loss became {last['loss']} by step {step}; lower --lr (now {config.lr}) — "
                            f"the checkpoint before it is kept"
                        )
                    run.append_history([{"step": step, "time": round(before_s + time.perf_counter() - t0, 3), **last}])
                    sums, count = {}, 0
                    bar.update(task, completed=step, metrics="  ".join(f"{k} {v:.3g}" for k, v in last.items() if k in SHOWN))
                elif step % 10 == 0:
                    bar.update(task, completed=step)
                if step % config.checkpoint_every == 0 and step < config.steps:
                    checkpoint(step)
                if on_step is not None:
                    on_step(step)
                if interrupted["hit"]:
                    checkpoint(step)
                    raise TrainingInterrupted(step)
        except KeyboardInterrupt:
            # A second Ctrl-C may land mid-step: keep the last clean checkpoint rather than write this state.
            raise TrainingInterrupted(step) from None
        bar.update(task, completed=step)

    model.eval()
    run.save_model(model)
    run.clear_checkpoint()
    return TrainResult(steps_done=step, resumed_from=resumed_from, seconds=time.perf_counter() - t0, last=last)


def fit_new_run(atlas: Atlas, config: dict[str, Any], model: torch.nn.Module, data, train_cfg: TrainConfig, *,
                progress: bool = True, on_step=None) -> tuple[Run, "TrainResult"]:
    """Create run ``config["name"]`` and train it; a run that fails before its first checkpoint leaves no
    folder. ``data`` may be a callable ``data(run)`` that writes what the run keeps of its data (a user's
    points, a coupling) into the new folder and returns the data to train on."""
    run = atlas.create_run(config["name"], config)
    try:
        if callable(data) and not hasattr(data, "batch_at") and not hasattr(data, "get"):
            data = data(run)
        with run.lock():
            result = fit(model, data, run, train_cfg, resume=False, progress=progress, on_step=on_step)
    except BaseException:
        if not (run.has_checkpoint or run.has_model):
            atlas.delete_run(run.name)
        raise
    return run, result


def resumable(run: Run, kind: str | tuple[str, ...], what: str) -> TrainConfig:
    """The training settings of run ``run`` to continue it: it must be of ``kind`` and not finished."""
    cfg = run.config()
    kinds = (kind,) if isinstance(kind, str) else kind
    if cfg.get("kind") not in kinds:
        raise LatentAtlasError(f"run '{run.name}' is a {cfg.get('kind')}, not {what}; nothing to resume")
    train_cfg = TrainConfig.from_dict(cfg.get("train") or {})
    if run.has_model and not run.has_checkpoint:
        raise LatentAtlasError(f"run '{run.name}' already finished its {train_cfg.steps} steps; there is nothing to resume")
    return train_cfg
