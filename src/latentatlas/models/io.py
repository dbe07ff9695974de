"""The one save/load format for every model: ``config.json`` + ``model.safetensors`` in a folder.

Nothing else is ever opened: a pickle-based checkpoint (``.pt``, ``.pkl``, ``.ckpt`` …) is refused by
its name, before a byte of it is read.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from .._io import atomic_save_safetensors, atomic_write_json
from ..errors import LatentAtlasError
from . import registry

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".joblib"}


def config_to_dict(config) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()}


def save_model(model: torch.nn.Module, folder: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write the weights, then the config that describes them (each atomically)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_save_safetensors(folder / WEIGHTS_FILE, model.state_dict(), metadata={"format": "pt", "kind": model.config.kind})
    meta = dict(extra or {})
    meta["kind"] = model.config.kind
    meta["model"] = config_to_dict(model.config)
    atomic_write_json(folder / CONFIG_FILE, meta)
    return folder


def refuse_pickle(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise LatentAtlasError(
            f"'{path}' is a pickle-based checkpoint ({path.suffix}); latentatlas only loads safetensors "
            f"weights ({WEIGHTS_FILE} beside a {CONFIG_FILE}) and never unpickles files"
        )


def read_config(folder: str | Path) -> dict[str, Any]:
    from .._io import read_json

    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise LatentAtlasError(f"model config '{path}' does not exist; expected a {CONFIG_FILE} written by latentatlas")
    meta = read_json(path, "model config", 4 << 20)
    if not isinstance(meta, dict) or "kind" not in meta or not isinstance(meta.get("model"), dict):
        raise LatentAtlasError(f"model config '{path}' lacks the 'kind' and 'model' entries latentatlas writes")
    return meta


def load_model(path: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a model from its folder (or from the ``model.safetensors`` / ``config.json`` inside it)."""
    path = Path(path)
    refuse_pickle(path)
    if path.is_file():
        if path.name not in (CONFIG_FILE, WEIGHTS_FILE):
            raise LatentAtlasError(f"'{path}' is not a latentatlas model; expected a folder with {CONFIG_FILE} and {WEIGHTS_FILE}")
        path = path.parent
    if not path.is_dir():
        raise LatentAtlasError(f"model folder '{path}' does not exist")
    meta = read_config(path)
    config = registry.config_from_dict(meta["kind"], meta["model"])
    model = registry.build(config)
    weights = path / WEIGHTS_FILE
    state = read_weights(weights)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise LatentAtlasError(f"weights '{weights}' do not match the model described by '{path / CONFIG_FILE}': {first}") from exc
    return model.to(device).eval()


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    refuse_pickle(path)
    if not path.is_file():
        raise LatentAtlasError(f"weights file '{path}' does not exist")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise LatentAtlasError(f"weights file '{path}' is not a readable safetensors file ({exc}); it is truncated or corrupt") from exc
