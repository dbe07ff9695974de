"""The atlas folder: the only module that knows its layout.

```
atlas/
  runs/<run>/config.json  model.safetensors  checkpoint/  history.jsonl  metrics.json
  runs/<run>/latents/  projections/  figures/  features/
  activations/<name>/
```

Every write is atomic (temporary file + rename). Names are checked so that no path built here can
leave the atlas.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ._io import atomic_save_safetensors, atomic_write, atomic_write_json, atomic_write_text
from .errors import LatentAtlasError

ENV_VAR = "LATENTATLAS_ATLAS"
DEFAULT_ATLAS = "atlas"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def resolve_atlas_path(path: str | os.PathLike | None = None) -> Path:
    """``--atlas DIR``, else ``$LATENTATLAS_ATLAS``, else ``./atlas``."""
    chosen = path if path not in (None, "") else os.environ.get(ENV_VAR) or DEFAULT_ATLAS
    return Path(chosen).expanduser().resolve()


def check_name(name: str, what: str = "run name") -> str:
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise LatentAtlasError(
            f"{what} '{name}' is not allowed; use 1-128 letters, digits, '_', '-' or '.', starting with a letter or digit"
        )
    return name


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class RunSummary:
    name: str
    kind: str
    data: str
    created_at: str
    steps: int | None
    metrics: dict[str, float]


class Atlas:
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = resolve_atlas_path(root)

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def run_names(self) -> list[str]:
        if not self.runs_dir.is_dir():
            return []
        return sorted(p.name for p in self.runs_dir.iterdir() if p.is_dir() and _NAME.match(p.name) and (p / "config.json").is_file())

    def run(self, name: str) -> "Run":
        check_name(name)
        path = self.runs_dir / name
        if not (path / "config.json").is_file():
            available = self.run_names()
            hint = f"; runs there: {', '.join(available)}" if available else "; it has no runs yet"
            raise LatentAtlasError(f"run '{name}' was not found in atlas '{self.root}'{hint}")
        return Run(self, name)

    def has_run(self, name: str) -> bool:
        return (self.runs_dir / check_name(name) / "config.json").is_file()

    def create_run(self, name: str, config: dict[str, Any], overwrite: bool = False) -> "Run":
        check_name(name)
        path = self.runs_dir / name
        if path.exists():
            if not overwrite:
                raise LatentAtlasError(f"run '{name}' already exists in atlas '{self.root}'; pick another --name, or pass --resume to continue it")
            shutil.rmtree(path)
        path.mkdir(parents=True)
        run = Run(self, name)
        config = dict(config)
        config.setdefault("name", name)
        config.setdefault("created_at", now_iso())
        run.write_config(config)
        return run

    def delete_run(self, name: str) -> None:
        path = self.runs_dir / check_name(name)
        if path.is_dir():
            shutil.rmtree(path)

    def summaries(self) -> list[RunSummary]:
        out = []
        for name in self.run_names():
            run = Run(self, name)
            try:
                cfg = run.config()
            except LatentAtlasError:
                continue
            try:
                metrics = run.read_metrics() or {}
            except LatentAtlasError:
                metrics = {}  # a damaged metrics.json hides the metrics, not the run
            headline = {k: v["value"] if isinstance(v, dict) else v for k, v in (metrics.get("headline") or {}).items()}
            data = cfg.get("data", {})
            out.append(
                RunSummary(
                    name=name,
                    kind=cfg.get("kind", "?"),
                    data=data.get("kind", "?") if isinstance(data, dict) else str(data),
                    created_at=cfg.get("created_at", ""),
                    steps=(cfg.get("train") or {}).get("steps"),
                    metrics=headline,
                )
            )
        return out

    # activation stores (their inside is activations.py's business) ---------------------------------
    @property
    def activations_root(self) -> Path:
        return self.root / "activations"

    def activations_path(self, name: str) -> Path:
        return self.activations_root / check_name(name, "activation store name")

    def activation_names(self) -> list[str]:
        if not self.activations_root.is_dir():
            return []
        return sorted(p.name for p in self.activations_root.iterdir() if _NAME.match(p.name) and (p / "index.json").is_file())

    def activations(self, name: str):
        from .activations import ActivationStore

        path = self.activations_path(name)
        if not (path / "index.json").is_file():
            have = self.activation_names()
            hint = f"; stores there: {', '.join(have)}" if have else "; it has none yet (capture one with `latentatlas capture`)"
            raise LatentAtlasError(f"activation store '{name}' was not found in atlas '{self.root}'{hint}")
        return ActivationStore(path)

    def unique_run_name(self, base: str) -> str:
        check_name(base)
        if not (self.runs_dir / base).exists():
            return base
        i = 2
        while (self.runs_dir / f"{base}-{i}").exists():
            i += 1
        return f"{base}-{i}"


class Run:
    def __init__(self, atlas: Atlas, name: str):
        self.atlas = atlas
        self.name = check_name(name)
        self.path = atlas.runs_dir / name

    # config -----------------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        path = self.path / "config.json"
        try:
            cfg = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise LatentAtlasError(f"run config '{path}' does not exist") from exc
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LatentAtlasError(f"run config '{path}' is not valid JSON; the file is truncated or corrupt") from exc
        if not isinstance(cfg, dict):
            raise LatentAtlasError(f"run config '{path}' should hold a JSON object")
        return cfg

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_json(self.path / "config.json", config)

    def update_config(self, **changes: Any) -> dict[str, Any]:
        cfg = self.config()
        cfg.update(changes)
        self.write_config(cfg)
        return cfg

    @property
    def has_model(self) -> bool:
        return (self.path / "model.safetensors").is_file()

    # model ------------------------------------------------------------------------------------------
    def save_model(self, model) -> None:
        from .models.io import save_model

        save_model(model, self.path, extra={k: v for k, v in self.config().items() if k not in ("kind", "model")})

    def load_model(self, device: str = "cpu"):
        from .models.io import load_model

        if not self.has_model:
            raise LatentAtlasError(f"run '{self.name}' has no trained model yet ({self.path / 'model.safetensors'} is missing); train it first")
        return load_model(self.path, device=device)

    # checkpoint: checkpoint/step-XXXXXXXX/{model,optimizer,state}.safetensors + checkpoint/latest.json ---
    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoint"

    def write_checkpoint(self, step: int, parts: dict[str, dict], meta: dict[str, Any]) -> Path:
        """Write each part as a safetensors file, then flip ``latest.json`` to it (the commit point)."""
        folder = self.checkpoint_dir / f"step-{step:09d}"
        folder.mkdir(parents=True, exist_ok=True)
        for part, tensors in parts.items():
            atomic_save_safetensors(folder / f"{part}.safetensors", tensors)
        atomic_write_json(folder / "meta.json", meta)
        atomic_write_json(self.checkpoint_dir / "latest.json", {"step": step, "folder": folder.name})
        for old in self.checkpoint_dir.glob("step-*"):
            if old.is_dir() and old.name != folder.name:
                shutil.rmtree(old, ignore_errors=True)
        return folder

    @property
    def has_checkpoint(self) -> bool:
        return (self.checkpoint_dir / "latest.json").is_file()

    def read_checkpoint(self) -> tuple[int, dict[str, dict], dict[str, Any]] | None:
        from .models.io import read_weights

        latest = self.checkpoint_dir / "latest.json"
        if not latest.is_file():
            return None
        try:
            pointer = json.loads(latest.read_text())
            folder = self.checkpoint_dir / check_name(pointer["folder"], "checkpoint folder")
            step = int(pointer["step"])
            meta = json.loads((folder / "meta.json").read_text())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LatentAtlasError(f"checkpoint '{latest}' is corrupt ({exc.__class__.__name__}); delete the checkpoint folder to start over") from exc
        parts = {p.stem: read_weights(p) for p in sorted(folder.glob("*.safetensors"))}
        return step, parts, meta

    def clear_checkpoint(self) -> None:
        shutil.rmtree(self.checkpoint_dir, ignore_errors=True)

    # history ----------------------------------------------------------------------------------------
    @property
    def history_path(self) -> Path:
        return self.path / "history.jsonl"

    def append_history(self, rows: Iterable[dict[str, Any]]) -> None:
        text = "".join(json.dumps(r) + "\n" for r in rows)
        if text:
            with open(self.history_path, "a", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()

    def read_history(self) -> list[dict[str, Any]]:
        if not self.history_path.is_file():
            return []
        rows = []
        for line in self.history_path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a kill; the rest of the history is still good
        return rows

    def truncate_history(self, step: int) -> None:
        """Keep only the rows logged at or before ``step`` (used when resuming from a checkpoint)."""
        rows = [r for r in self.read_history() if r.get("step", 0) <= step]
        atomic_write_text(self.history_path, "".join(json.dumps(r) + "\n" for r in rows))

    # metrics ----------------------------------------------------------------------------------------
    def write_metrics(self, metrics: dict[str, Any]) -> None:
        atomic_write_json(self.path / "metrics.json", metrics)

    def read_metrics(self) -> dict[str, Any] | None:
        path = self.path / "metrics.json"
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LatentAtlasError(f"metrics file '{path}' is not valid JSON; re-run `latentatlas eval {self.name}`") from exc

    # latents ----------------------------------------------------------------------------------------
    @property
    def latents_dir(self) -> Path:
        return self.path / "latents"

    def has_latents(self, name: str = "eval") -> bool:
        return (self.latents_dir / f"{check_name(name, 'latent set name')}.safetensors").is_file()

    def write_latents(self, arrays: dict[str, np.ndarray], rows: "Any", name: str = "eval") -> None:
        """Latent arrays as safetensors plus a per-row table (pandas DataFrame) as parquet."""
        import torch

        check_name(name, "latent set name")
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
        atomic_save_safetensors(self.latents_dir / f"{name}.safetensors", tensors)
        atomic_write(self.latents_dir / f"{name}.parquet", lambda tmp: rows.to_parquet(tmp, index=False))

    def read_latents(self, name: str = "eval") -> tuple[dict[str, np.ndarray], "Any"]:
        import pandas as pd

        from .models.io import read_weights

        check_name(name, "latent set name")
        arrays = {k: v.numpy() for k, v in read_weights(self.latents_dir / f"{name}.safetensors").items()}
        path = self.latents_dir / f"{name}.parquet"
        try:
            rows = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise LatentAtlasError(f"latent metadata '{path}' is missing or unreadable; re-run `latentatlas eval {self.name}`") from exc
        return arrays, rows

    # SAE feature tables ----------------------------------------------------------------------------
    @property
    def features_dir(self) -> Path:
        return self.path / "features"

    def write_features(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        import torch

        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
        atomic_save_safetensors(self.features_dir / "features.safetensors", tensors)
        atomic_write_json(self.features_dir / "features.json", meta)

    def read_features(self) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        from .models.io import read_weights

        path = self.features_dir / "features.safetensors"
        if not path.is_file():
            return None
        arrays = {k: v.numpy() for k, v in read_weights(path).items()}
        try:
            meta = json.loads((self.features_dir / "features.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LatentAtlasError(f"feature table '{self.features_dir / 'features.json'}' is missing or corrupt; re-run `latentatlas sae eval {self.name}`") from exc
        return arrays, meta

    # projections ------------------------------------------------------------------------------------
    @property
    def projections_dir(self) -> Path:
        return self.path / "projections"

    def write_projection(self, key: str, coords: np.ndarray, params: dict[str, Any]) -> None:
        import torch

        check_name(key, "projection name")
        atomic_save_safetensors(self.projections_dir / f"{key}.safetensors", {"coords": torch.from_numpy(np.ascontiguousarray(coords, dtype=np.float32))})
        atomic_write_json(self.projections_dir / f"{key}.json", params)

    def read_projection(self, key: str) -> tuple[np.ndarray, dict[str, Any]] | None:
        from .models.io import read_weights

        check_name(key, "projection name")
        path = self.projections_dir / f"{key}.safetensors"
        meta = self.projections_dir / f"{key}.json"
        if not (path.is_file() and meta.is_file()):
            return None
        return read_weights(path)["coords"].numpy(), json.loads(meta.read_text())

    # figures ----------------------------------------------------------------------------------------
    @property
    def figures_dir(self) -> Path:
        return self.path / "figures"

    def figure_path(self, name: str) -> Path:
        check_name(name, "figure name")
        self.figures_dir.mkdir(parents=True, exist_ok=True)
        return self.figures_dir / name
