"""The atlas folder: the only module that knows its layout.

```
atlas/
  runs/<run>/config.json  model.safetensors  checkpoint/  history.jsonl  metrics.json
  runs/<run>/latents/  projections/  figures/  features/
  activations/<name>/
```

Every write is atomic (temporary file + rename). The atlas's files are untrusted input: names are
checked so that no path built here can leave the atlas, every path read or written is resolved (links
followed) and refused when it lands outside the atlas, and every JSON file is validated against its
schema (``schemas.py``) before a value of it is used. A run that fails these checks is reported as bad
by name; it never takes the others down.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ._io import atomic_save_safetensors, atomic_write, atomic_write_json, atomic_write_text, read_json
from .errors import Busy, LatentAtlasError, NotFound
from .limits import MAX_CONFIG_BYTES, MAX_JSON_BYTES

ENV_VAR = "LATENTATLAS_ATLAS"
DEFAULT_ATLAS = "atlas"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def resolve_atlas_path(path: str | os.PathLike | None = None) -> Path:
    """``--atlas DIR``, else ``$LATENTATLAS_ATLAS``, else ``./atlas``."""
    chosen = path if path not in (None, "") else os.environ.get(ENV_VAR) or DEFAULT_ATLAS
    return Path(chosen).expanduser().resolve()


def check_name(name: str, what: str = "run name") -> str:
    # fullmatch: `$` would let a trailing newline through
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise LatentAtlasError(
            f"{what} {name!r} is not allowed; use 1-128 letters, digits, '_', '-' or '.', starting with a letter or digit"
        )
    return name


def is_name(name: str) -> bool:
    return isinstance(name, str) and bool(_NAME.fullmatch(name)) and ".." not in name


_HELD: dict[str, list] = {}  # lock file → [open file, depth]: a lock is re-entrant within this process


@contextmanager
def writer_lock(folder: Path, what: str, atlas: "Atlas | None" = None):
    """Hold ``folder/.lock`` exclusively while writing ``what`` (a run or a store): a second writer, in
    another process, gets one sentence naming the first instead of interleaving its files with it. The
    lock is the kernel's (``flock``), so it goes with the process, however that ends; within one process
    it is re-entrant (a sweep holds its members' locks while it trains them)."""
    import fcntl

    path = folder / ".lock"
    if atlas is not None:
        atlas.inside(path, f"lock of {what}")
    key = str(path.resolve())
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield
        finally:
            _HELD[key][1] -= 1
        return
    folder.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+", encoding="utf-8")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read(300).strip() or "another process"
        fh.close()
        raise Busy(f"{what} is being written by {holder}; wait for it to finish (or stop it) and try again") from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"process {os.getpid()} ({' '.join(sys.argv[:6])[:200]})")
    fh.flush()
    _HELD[key] = [fh, 1]
    try:
        yield
    finally:
        _HELD.pop(key, None)
        fh.close()  # closing the file releases the lock


def writes_run(fn):
    """Decorate a job whose first argument is the :class:`Run` it writes: it runs holding the run's lock."""
    import functools

    @functools.wraps(fn)
    def wrapper(run, *args, **kwargs):
        with run.lock():
            return fn(run, *args, **kwargs)

    return wrapper


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
    status: str = "new"  # new, training, trained, evaluated, or bad
    error: str | None = None  # what is wrong with the run's files, one sentence


class Atlas:
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = resolve_atlas_path(root)

    def inside(self, path: str | os.PathLike, what: str = "file") -> Path:
        """``path`` itself, once its every link is followed and it is found to stay inside the atlas."""
        path = Path(path)
        try:
            target = path.resolve()
        except (OSError, RuntimeError) as exc:  # a link loop
            raise LatentAtlasError(f"{what} '{path}' cannot be resolved ({exc.__class__.__name__}); it is a broken link") from None
        if not target.is_relative_to(self.root):
            raise LatentAtlasError(f"{what} '{path}' leads outside the atlas (to '{target}'); links out of the atlas are never followed")
        return path

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def run_names(self) -> list[str]:
        if not self.runs_dir.is_dir():
            return []
        return sorted(p.name for p in self.runs_dir.iterdir() if is_name(p.name) and (p / "config.json").is_file())

    def run(self, name: str) -> "Run":
        check_name(name)
        path = self.runs_dir / name
        if not (path / "config.json").is_file():
            available = self.run_names()
            hint = f"; runs there: {', '.join(available)}" if available else "; it has no runs yet"
            raise NotFound(f"run '{name}' was not found in atlas '{self.root}'{hint}")
        self.inside(path, f"run '{name}'")
        return Run(self, name)

    def has_run(self, name: str) -> bool:
        return (self.runs_dir / check_name(name) / "config.json").is_file()

    def create_run(self, name: str, config: dict[str, Any], overwrite: bool = False) -> "Run":
        check_name(name)
        path = self.runs_dir / name
        if path.exists() or path.is_symlink():
            if not overwrite:
                raise LatentAtlasError(f"run '{name}' already exists in atlas '{self.root}'; pick another --name, or pass --resume to continue it")
            self.delete_run(name)
        self.inside(self.runs_dir, "the runs folder")
        path.mkdir(parents=True)
        run = Run(self, name)
        config = dict(config)
        config.setdefault("name", name)
        config.setdefault("created_at", now_iso())
        run.write_config(config)
        return run

    def delete_run(self, name: str) -> None:
        path = self.runs_dir / check_name(name)
        if path.is_symlink():
            path.unlink()  # the link goes, never what it points at
        elif path.is_dir():
            self.inside(path, f"run '{name}'")
            shutil.rmtree(path)

    def summary(self, name: str) -> RunSummary:
        """One run's line in `latentatlas runs` and the explorer's runs list; a bad run says why."""
        try:
            run = self.run(name)
            cfg = run.config()
        except LatentAtlasError as exc:
            return RunSummary(name=name, kind="?", data="?", created_at="", steps=None, metrics={}, status="bad", error=str(exc))
        kind = cfg.get("kind", "?")
        error = None
        try:
            metrics = run.read_metrics() or {}
        except LatentAtlasError as exc:
            metrics, error = {}, str(exc)  # a damaged metrics.json hides the metrics, not the run
        headline = {k: v for k, v in (metrics.get("headline") or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        data = cfg.get("data", {})
        try:
            status = "evaluated" if metrics else "trained" if run.has_model else "training" if run.has_checkpoint else "new"
        except LatentAtlasError as exc:
            status, error = "bad", str(exc)
        return RunSummary(
            name=name,
            kind=kind,
            data=str(data.get("kind", "?") if isinstance(data, dict) else data)[:200],
            created_at=cfg.get("created_at", ""),
            steps=(cfg.get("train") or {}).get("steps") if isinstance((cfg.get("train") or {}).get("steps"), int) else None,
            metrics=headline,
            status=status,
            error=error,
        )

    def summaries(self) -> list[RunSummary]:
        return [self.summary(name) for name in self.run_names()]

    # activation stores (their inside is activations.py's business) ---------------------------------
    @property
    def activations_root(self) -> Path:
        return self.root / "activations"

    def activations_path(self, name: str) -> Path:
        return self.activations_root / check_name(name, "activation store name")

    def activation_names(self) -> list[str]:
        if not self.activations_root.is_dir():
            return []
        return sorted(p.name for p in self.activations_root.iterdir() if is_name(p.name) and (p / "index.json").is_file())

    def activations(self, name: str):
        from .activations import ActivationStore

        path = self.activations_path(name)
        if not (path / "index.json").is_file():
            have = self.activation_names()
            hint = f"; stores there: {', '.join(have)}" if have else "; it has none yet (capture one with `latentatlas capture`)"
            raise NotFound(f"activation store '{name}' was not found in atlas '{self.root}'{hint}")
        self.inside(path, f"activation store '{name}'")
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

    def lock(self):
        """``with run.lock():`` — this process is the run's one writer while the block runs."""
        return writer_lock(self.path, f"run '{self.name}'", self.atlas)

    def file(self, *parts: str) -> Path:
        """The path of a file (or folder) of this run, checked to stay inside the atlas."""
        return self.atlas.inside(self.path.joinpath(*parts), f"file '{'/'.join(parts)}' of run '{self.name}'")

    # config -----------------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        from .schemas import RunConfig, validate

        path = self.file("config.json")
        try:
            cfg = read_json(path, "run config", MAX_CONFIG_BYTES)
        except FileNotFoundError as exc:
            raise NotFound(f"run config '{path}' does not exist") from exc
        if not isinstance(cfg, dict):
            raise LatentAtlasError(f"run config '{path}' should hold a JSON object")
        validate(RunConfig, cfg, "run config", path)
        return cfg  # the folder's name is the run's name: a run folder copied under another name opens as that

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_json(self.file("config.json"), config)

    def update_config(self, **changes: Any) -> dict[str, Any]:
        cfg = self.config()
        cfg.update(changes)
        self.write_config(cfg)
        return cfg

    @property
    def has_model(self) -> bool:
        return self.file("model.safetensors").is_file()

    # model ------------------------------------------------------------------------------------------
    def save_model(self, model) -> None:
        from .models.io import save_model

        self.file("model.safetensors")
        save_model(model, self.path, extra={k: v for k, v in self.config().items() if k not in ("kind", "model")})

    def load_model(self, device: str = "cpu"):
        from .models.io import load_model

        if not self.has_model:
            raise NotFound(f"run '{self.name}' has no trained model yet ({self.path / 'model.safetensors'} is missing); train it first")
        self.config()  # validated before the model is built from it
        return load_model(self.path, device=device)

    # checkpoint: checkpoint/step-XXXXXXXX/{model,optimizer,state}.safetensors + checkpoint/latest.json ---
    @property
    def checkpoint_dir(self) -> Path:
        return self.file("checkpoint")

    def write_checkpoint(self, step: int, parts: dict[str, dict], meta: dict[str, Any]) -> Path:
        """Write each part as a safetensors file, then flip ``latest.json`` to it (the commit point)."""
        folder = self.file("checkpoint", f"step-{step:09d}")
        folder.mkdir(parents=True, exist_ok=True)
        for part, tensors in parts.items():
            atomic_save_safetensors(self.atlas.inside(folder / f"{part}.safetensors"), tensors)
        atomic_write_json(self.atlas.inside(folder / "meta.json"), meta)
        atomic_write_json(self.file("checkpoint", "latest.json"), {"step": step, "folder": folder.name})
        for old in self.checkpoint_dir.glob("step-*"):
            if old.is_dir() and not old.is_symlink() and old.name != folder.name:
                shutil.rmtree(old, ignore_errors=True)
        return folder

    @property
    def has_checkpoint(self) -> bool:
        return self.file("checkpoint", "latest.json").is_file()

    def read_checkpoint(self) -> tuple[int, dict[str, dict], dict[str, Any]] | None:
        from .models.io import read_weights
        from .schemas import CheckpointMeta, CheckpointPointer, validate

        latest = self.file("checkpoint", "latest.json")
        if not latest.is_file():
            return None
        hint = "; delete the checkpoint folder to start over"
        try:
            pointer = validate(CheckpointPointer, read_json(latest, "checkpoint pointer", 4096), "checkpoint pointer", latest)
            folder = self.file("checkpoint", pointer.folder)
            meta_path = self.atlas.inside(folder / "meta.json")
            meta = read_json(meta_path, "checkpoint meta", MAX_JSON_BYTES)
            checked = validate(CheckpointMeta, meta, "checkpoint meta", meta_path)
        except FileNotFoundError as exc:
            raise LatentAtlasError(f"checkpoint '{latest}' points at a missing file ({exc.filename}){hint}") from None
        except LatentAtlasError as exc:
            raise LatentAtlasError(f"{exc}{hint}") from None
        if checked.step != pointer.step:
            raise LatentAtlasError(f"checkpoint '{latest}' is at step {pointer.step} but its meta.json says {checked.step}{hint}")
        parts = {}
        for name in ("model", "optimizer", "rng"):
            path = self.atlas.inside(folder / f"{name}.safetensors")
            if not path.is_file():
                raise LatentAtlasError(f"checkpoint '{folder}' has no {name}.safetensors{hint}")
            parts[name] = read_weights(path)
        return pointer.step, parts, meta

    def clear_checkpoint(self) -> None:
        path = self.checkpoint_dir
        if path.is_symlink():
            path.unlink()
        else:
            shutil.rmtree(path, ignore_errors=True)

    # history ----------------------------------------------------------------------------------------
    @property
    def history_path(self) -> Path:
        return self.file("history.jsonl")

    def append_history(self, rows: Iterable[dict[str, Any]]) -> None:
        text = "".join(json.dumps(r) + "\n" for r in rows)
        if text:
            with open(self.history_path, "a", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()

    def read_history(self) -> list[dict[str, Any]]:
        """The logged rows: objects of numbers with an integer ``step``. A line cut short by a kill, or any
        line that is not such a row, is skipped; the rest of the history is still good."""
        path = self.history_path
        if not path.is_file():
            return []
        if path.stat().st_size > MAX_JSON_BYTES:
            raise LatentAtlasError(f"training history '{path}' is {path.stat().st_size:,} bytes, more than a history latentatlas writes")
        rows = []
        for line in path.read_bytes().decode("utf-8", errors="replace").splitlines():
            if len(line) > 100_000:
                continue
            try:
                row = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if (isinstance(row, dict) and isinstance(row.get("step"), int) and not isinstance(row.get("step"), bool)
                    and all(isinstance(k, str) and len(k) < 100 and isinstance(v, (int, float)) and not isinstance(v, bool)
                            for k, v in row.items())):
                rows.append(row)
        return rows

    def truncate_history(self, step: int) -> None:
        """Keep only the rows logged at or before ``step`` (used when resuming from a checkpoint)."""
        rows = [r for r in self.read_history() if r.get("step", 0) <= step]
        atomic_write_text(self.history_path, "".join(json.dumps(r) + "\n" for r in rows))

    # metrics ----------------------------------------------------------------------------------------
    def write_metrics(self, metrics: dict[str, Any]) -> None:
        atomic_write_json(self.file("metrics.json"), metrics)

    def read_metrics(self) -> dict[str, Any] | None:
        from .schemas import MetricsReport, validate

        path = self.file("metrics.json")
        if not path.is_file():
            return None
        hint = f"; re-run `latentatlas eval {self.name}`"
        try:
            report = read_json(path, "metrics file", MAX_JSON_BYTES)
            if not isinstance(report, dict):
                raise LatentAtlasError(f"metrics file '{path}' should hold a JSON object")
            validate(MetricsReport, report, "metrics file", path)
        except LatentAtlasError as exc:
            raise LatentAtlasError(f"{exc}{hint}") from None
        return report

    # latents ----------------------------------------------------------------------------------------
    @property
    def latents_dir(self) -> Path:
        return self.file("latents")

    def has_latents(self, name: str = "eval") -> bool:
        return self.file("latents", f"{check_name(name, 'latent set name')}.safetensors").is_file()

    def write_latents(self, arrays: dict[str, np.ndarray], rows: "Any", name: str = "eval") -> None:
        """Latent arrays as safetensors plus a per-row table (pandas DataFrame) as parquet."""
        import torch

        check_name(name, "latent set name")
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
        atomic_save_safetensors(self.file("latents", f"{name}.safetensors"), tensors)
        atomic_write(self.file("latents", f"{name}.parquet"), lambda tmp: rows.to_parquet(tmp, index=False))

    def read_latents(self, name: str = "eval") -> tuple[dict[str, np.ndarray], "Any"]:
        """The latent set ``name``, checked: ``mu`` is finite float (N, D), ``logvar`` (if any) the same shape,
        ``recon_nll`` (if any) (N,), and the per-row table has N rows and a non-negative integer ``index``."""
        import pandas as pd

        from .models.io import read_weights

        check_name(name, "latent set name")
        hint = f"; re-run `latentatlas eval {self.name}`"
        tensors = self.file("latents", f"{name}.safetensors")
        if not tensors.is_file():
            raise NotFound(f"run '{self.name}' has no latents yet; run `latentatlas eval {self.name}`")
        arrays = {k: v.numpy() for k, v in read_weights(tensors).items()}
        mu = arrays.get("mu")
        if mu is None or mu.ndim != 2 or mu.dtype.kind != "f" or not mu.shape[1]:
            raise LatentAtlasError(f"latents '{tensors}' hold no float (N, D) 'mu' array{hint}")
        if not np.all(np.isfinite(mu)):
            raise LatentAtlasError(f"latents '{tensors}' hold NaN or infinite means{hint}")
        n = mu.shape[0]
        for key, shape in (("logvar", mu.shape), ("recon_nll", (n,))):
            if key in arrays and (arrays[key].shape != shape or arrays[key].dtype.kind != "f"):
                raise LatentAtlasError(f"latents '{tensors}' hold '{key}' of shape {arrays[key].shape}, expected {shape}{hint}")
        path = self.file("latents", f"{name}.parquet")
        try:
            rows = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise LatentAtlasError(f"latent metadata '{path}' is missing or unreadable{hint}") from exc
        if len(rows) != n:
            raise LatentAtlasError(f"latent metadata '{path}' has {len(rows)} rows for {n} latents{hint}")
        index = rows.get("index")
        if index is None or index.dtype.kind not in "iu" or (n and int(index.min()) < 0):
            raise LatentAtlasError(f"latent metadata '{path}' has no non-negative integer 'index' column{hint}")
        return arrays, rows

    def write_latent_meta(self, meta: dict[str, Any], name: str = "eval") -> None:
        """What the latent set's rows are samples of: the dataset's name, its factors (names, sizes, value
        names) and class names."""
        atomic_write_json(self.file("latents", f"{check_name(name, 'latent set name')}.json"), meta)

    def read_latent_meta(self, name: str = "eval") -> dict[str, Any] | None:
        from .schemas import LatentMeta, validate

        path = self.file("latents", f"{check_name(name, 'latent set name')}.json")
        if not path.is_file():
            return None
        meta = read_json(path, "latent metadata", MAX_CONFIG_BYTES)
        validate(LatentMeta, meta, "latent metadata", path)
        return meta

    def write_inputs(self, x: np.ndarray, name: str = "eval") -> None:
        """The evaluated inputs, uint8 (N, C, H, W), beside the latents they were encoded to."""
        import torch

        atomic_save_safetensors(self.file("latents", f"{check_name(name, 'latent set name')}-inputs.safetensors"),
                                {"x": torch.from_numpy(np.ascontiguousarray(x, dtype=np.uint8))})

    def read_inputs(self, name: str = "eval") -> np.ndarray | None:
        """The stored inputs (N, C, H, W) as uint8, or None when the run keeps none (built-in data)."""
        from safetensors import SafetensorError, safe_open

        path = self.file("latents", f"{check_name(name, 'latent set name')}-inputs.safetensors")
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="numpy") as f:
                x = f.get_tensor("x") if "x" in f.keys() else None
        except (SafetensorError, OSError, ValueError) as exc:
            raise LatentAtlasError(f"stored inputs '{path}' are not a readable safetensors file ({exc}); re-run `latentatlas eval {self.name}`") from None
        if x is None or x.dtype != np.uint8 or x.ndim != 4 or x.shape[1] not in (1, 3):
            raise LatentAtlasError(f"stored inputs '{path}' hold no uint8 (N, 1|3, H, W) images 'x'; re-run `latentatlas eval {self.name}`")
        return x

    # SAE feature tables ----------------------------------------------------------------------------
    @property
    def features_dir(self) -> Path:
        return self.file("features")

    def write_features(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        import torch

        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
        atomic_save_safetensors(self.file("features", "features.safetensors"), tensors)
        atomic_write_json(self.file("features", "features.json"), meta)

    def read_features(self) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        from .models.io import read_weights
        from .schemas import FeaturesMeta, validate

        path = self.file("features", "features.safetensors")
        if not path.is_file():
            return None
        arrays = {k: v.numpy() for k, v in read_weights(path).items()}
        meta_path = self.file("features", "features.json")
        hint = f"; re-run `latentatlas sae eval {self.name}`"
        try:
            meta = read_json(meta_path, "feature table", MAX_CONFIG_BYTES)
            validate(FeaturesMeta, meta, "feature table", meta_path)
        except FileNotFoundError:
            raise LatentAtlasError(f"feature table '{meta_path}' is missing{hint}") from None
        except LatentAtlasError as exc:
            raise LatentAtlasError(f"{exc}{hint}") from None
        return arrays, meta

    # projections ------------------------------------------------------------------------------------
    @property
    def projections_dir(self) -> Path:
        return self.file("projections")

    def write_projection(self, key: str, coords: np.ndarray, params: dict[str, Any], kept: np.ndarray | None = None) -> None:
        """A 2-D projection (N, 2) and, with ``kept``, the share of each point's latent-space neighbours
        the map keeps (N) (analysis/neighbours.py)."""
        import torch

        check_name(key, "projection name")
        tensors = {"coords": torch.from_numpy(np.ascontiguousarray(coords, dtype=np.float32))}
        if kept is not None:
            tensors["kept"] = torch.from_numpy(np.ascontiguousarray(kept, dtype=np.float32))
        atomic_save_safetensors(self.file("projections", f"{key}.safetensors"), tensors)
        atomic_write_json(self.file("projections", f"{key}.json"), params)

    def read_projection_kept(self, key: str) -> np.ndarray | None:
        """The per-point neighbourhood kept by projection ``key`` (N) in [0, 1], or None when it was not
        stored (a projection written before it was)."""
        from .models.io import read_weights

        check_name(key, "projection name")
        path = self.file("projections", f"{key}.safetensors")
        if not path.is_file():
            return None
        weights = read_weights(path)
        kept, coords = weights.get("kept"), weights.get("coords")
        if kept is None:
            return None
        if coords is None or kept.shape != (coords.shape[0],) or not bool(kept.isfinite().all()) or float(kept.min()) < 0 or float(kept.max()) > 1:
            raise LatentAtlasError(f"projection '{path}' holds a 'kept' that is not one share in [0, 1] per point; re-run `latentatlas eval {self.name}`")
        return kept.numpy()

    def read_projection(self, key: str) -> tuple[np.ndarray, dict[str, Any]] | None:
        from .models.io import read_weights
        from .schemas import ProjectionMeta, validate

        check_name(key, "projection name")
        path = self.file("projections", f"{key}.safetensors")
        meta_path = self.file("projections", f"{key}.json")
        if not (path.is_file() and meta_path.is_file()):
            return None
        meta = read_json(meta_path, "projection", MAX_CONFIG_BYTES)
        validate(ProjectionMeta, meta, "projection", meta_path)
        coords = read_weights(path).get("coords")
        if coords is None or coords.ndim != 2 or coords.shape[1] != 2 or not bool(coords.isfinite().all()):
            raise LatentAtlasError(f"projection '{path}' holds no finite (N, 2) 'coords'; re-run `latentatlas eval {self.name}`")
        return coords.numpy(), meta

    # figures ----------------------------------------------------------------------------------------
    @property
    def figures_dir(self) -> Path:
        return self.file("figures")

    def figure_path(self, name: str) -> Path:
        check_name(name, "figure name")
        folder = self.file("figures")
        folder.mkdir(parents=True, exist_ok=True)
        return self.file("figures", name)
