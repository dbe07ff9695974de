"""Train a run end to end: build the model for a kind, load the data, fit, record the config.

This is what ``latentatlas train`` and ``la.train`` call; the trainer itself (``train.fit``) stays
model-agnostic.
"""

from __future__ import annotations

import platform
from typing import Any

from . import __version__
from .atlas import Atlas, Run, now_iso
from .data import load_dataset
from .errors import LatentAtlasError
from .models import VAE_KINDS, VAEConfig, build, config_from_dict
from .models.io import config_to_dict
from .train import TrainConfig, TrainResult, fit, resolve_device


def versions() -> dict[str, str]:
    import numpy
    import torch

    return {"latentatlas": __version__, "torch": torch.__version__, "numpy": numpy.__version__, "python": platform.python_version()}


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
    import torch

    atlas = atlas if isinstance(atlas, Atlas) else Atlas(atlas)
    if resume:
        if not name:
            raise LatentAtlasError("--resume needs --name to say which run to continue")
        run = atlas.run(name)
        cfg = run.config()
        train_cfg = TrainConfig.from_dict(cfg["train"])
        if run.has_model and not run.has_checkpoint:
            raise LatentAtlasError(f"run '{name}' already finished its {train_cfg.steps} steps; there is nothing to resume "
                                   "(train a new run with another --name to train longer)")
        dataset = load_dataset(cfg["data"])
        # Killed before its first checkpoint, a run restarts from step 0: the same seed gives the same start.
        torch.manual_seed(train_cfg.seed)
        model = build(config_from_dict(cfg["kind"], cfg["model"]))
        result = fit(model, dataset, run, train_cfg, resume=True, progress=progress, on_step=on_step)
        return run, result

    if kind not in VAE_KINDS:
        raise LatentAtlasError(f"model kind '{kind}' cannot be trained by this command; expected one of: {', '.join(VAE_KINDS)}")
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
        result = fit(model, dataset, run, train_cfg, resume=False, progress=progress, on_step=on_step)
    except LatentAtlasError:
        if not (run.has_checkpoint or run.has_model):
            atlas.delete_run(name)  # nothing worth keeping; do not block the name
        raise
    return run, result
