"""The module graph job: trace a model into its module tree and data flow (``tracing.trace``) on one example
batch, and keep it in a run as ``runs/<run>/graph/graph.json``.

MODEL is one of:
- a run of any lab whose model loads with ``Run.load_model`` (a VAE, an SAE, the attention-only transformer,
  …): the graph is stored in that run, traced on a batch of the run's own data through ``model.loss(batch)``
  (the one interface every model trained here has; the attention-only transformer is run forward on token ids);
- a transformers model (``minilm``, a folder, a hub id) or a run of kind ``attention``: traced forward on a
  text, stored in the ``attention`` run that names it (``jobs.resolve`` finds or makes it);
- a diffusers ``AutoencoderKL`` folder: traced forward on a random image, stored in a run of kind
  ``attention`` whose spec names the folder (``{"path": …, "library": "diffusers"}``; the attention views
  refuse it in one sentence, having no tokenizer).
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ... import tracing
from ..._io import atomic_write_json, read_json
from ...atlas import Atlas, Run, is_name, now_iso
from ...errors import LatentAtlasError, NotFound
from . import jobs

DEFAULT_TEXT = "The quick brown fox jumps over the lazy dog."
MAX_GRAPH_BYTES = 128 << 20
MAX_VISIBLE = 3000  # boxes one layout may place (grandalf is pure Python)
EXAMPLE_BATCH = 4
DIFFUSERS_CLASSES = ("AutoencoderKL",)


@dataclass
class GraphSubject:
    model: torch.nn.Module
    inputs: Any
    label: str
    method: str | None = None  # "loss" for a run trained here
    spec: dict[str, Any] = field(default_factory=dict)
    capture_model: str | None = None  # the --model that `sae capture` reads it by, when it can


def graph_file(run: Run) -> Path:
    return run.file("graph", "graph.json")


# -- the subject and its example batch ---------------------------------------------------------------------

def _diffusers_folder(model: str) -> Path | None:
    path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        return None
    try:
        cfg = read_json(path / "config.json", "model config", 4 << 20)
    except LatentAtlasError:
        return None
    return path.resolve() if isinstance(cfg, dict) and "_diffusers_version" in cfg else None


def _load_diffusers(path: Path, device: str) -> GraphSubject:
    import diffusers
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # its advice about `accelerate` is noise on a terminal
    cfg = read_json(path / "config.json", "model config", 4 << 20)
    cls_name = cfg.get("_class_name")
    if cls_name not in DIFFUSERS_CLASSES:
        raise LatentAtlasError(f"diffusers folder '{path}' holds a {str(cls_name)[:60]}; the module graph reads {', '.join(DIFFUSERS_CLASSES)} folders")
    if not any(path.glob("*.safetensors")):
        raise LatentAtlasError(f"diffusers folder '{path}' has no .safetensors weights; only safetensors are loaded, never pickles")
    try:
        model = getattr(diffusers, cls_name).from_pretrained(str(path), use_safetensors=True, local_files_only=True)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise LatentAtlasError(f"could not load diffusers model '{path}': {(str(exc).splitlines() or [type(exc).__name__])[0][:200]}") from exc
    model.to(device).eval()
    c = model.config
    down = 2 ** max(len(getattr(c, "block_out_channels", ()) or ()) - 1, 0)
    side = max(down, min(int(getattr(c, "sample_size", 64) or 64), 64) // down * down)
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, int(c.in_channels), side, side, generator=gen) * 2 - 1  # the [-1, 1] range a VAE reads
    return GraphSubject(model, {"sample": image.to(device)}, path.name, spec={"path": str(path), "library": "diffusers"})


def _hf_subject(subject: jobs.Subject, text: str | None) -> GraphSubject:
    if subject.tokenizer is None:  # the attention-only transformer: token ids
        text = text or " ".join(str(i % subject.vocab) for i in range(min(16, subject.max_positions or 16)))
    inputs, _, _ = subject.encode(text or DEFAULT_TEXT)
    if isinstance(inputs, dict) and subject.causal:
        inputs = {**inputs, "use_cache": False}  # no cache object in the output (torch.export refuses one)
    capture = None
    if subject.tokenizer is not None:
        spec = subject.spec
        capture = str(spec.get("name") or spec.get("path") or spec.get("hub") or "") or None
    return GraphSubject(subject.model, inputs, subject.label, spec=dict(subject.spec), capture_model=capture)


def _run_batch(run: Run, device: str) -> torch.Tensor:
    """A few rows of the run's own data, as its trainer feeds them to ``model.loss``."""
    cfg = run.config()
    data = cfg.get("data")
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind == "activations":
        store = run.atlas.activations(str(data.get("name")))
        batch = store.rows(np.arange(min(EXAMPLE_BATCH, store.n_tokens)))
    elif kind == "repeated_spans":
        from ...data.induction import RepeatedSpans

        batch = RepeatedSpans(**{k: v for k, v in data.items() if k != "kind"}).batch_at(0, EXAMPLE_BATCH)
    elif data is not None:
        from ...data import load_dataset

        dataset = load_dataset(data)
        batch = dataset.get(np.arange(min(EXAMPLE_BATCH, len(dataset))))
    else:
        raise LatentAtlasError(f"run '{run.name}' records no data to build an example batch from")
    return torch.from_numpy(np.ascontiguousarray(batch)).to(device)


def resolve(model: str, atlas: Atlas, device: str = "cpu", text: str | None = None) -> tuple[GraphSubject, Run]:
    """MODEL as the command line gives it: the model with its example batch, and the run the graph goes into."""
    if is_name(model) and atlas.has_run(model):
        run = atlas.run(model)
        cfg = run.config()
        kind = cfg.get("kind")
        spec = (cfg.get("model") or {}).get("spec")
        if kind == jobs.SUBJECT_KIND and isinstance(spec, dict) and spec.get("library") == "diffusers":
            return _load_diffusers(Path(str(spec.get("path"))), device), run
        if kind in (jobs.SUBJECT_KIND, jobs.TOY_KIND):
            return _hf_subject(jobs.subject_of_run(run, device), text), run
        if text is not None:
            raise LatentAtlasError(f"--text is for language models; run '{run.name}' is a {kind}, traced on a batch of its own data")
        net = run.load_model(device)
        return GraphSubject(net, _run_batch(run, device), f"run '{run.name}'", method="loss", spec={"run": run.name}), run
    folder = _diffusers_folder(model)
    if folder is not None:
        subject = _load_diffusers(folder, device)
        return subject, _subject_run(atlas, subject)
    hf, run = jobs.resolve(model, atlas, device)
    return _hf_subject(hf, text), run


def _subject_run(atlas: Atlas, subject: GraphSubject) -> Run:
    """The ``attention`` run that names this (diffusers) model, made on first use."""
    for name in atlas.run_names():
        try:
            cfg = atlas.run(name).config()
        except LatentAtlasError:
            continue
        if cfg.get("kind") == jobs.SUBJECT_KIND and (cfg.get("model") or {}).get("spec") == subject.spec:
            return atlas.run(name)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", subject.label).strip("-.")[:60] or "model"
    name = atlas.unique_run_name(f"attn-{slug}")
    return atlas.create_run(name, {"name": name, "kind": jobs.SUBJECT_KIND, "created_at": now_iso(), "versions": jobs.versions(),
                                   "model": {"spec": subject.spec, "architecture": type(subject.model).__name__}})


# -- the job -------------------------------------------------------------------------------------------------

def build(subject: GraphSubject, run: Run, tracer: str = "hooks") -> dict[str, Any]:
    """Trace the subject and write its graph into the run; returns what was written."""
    t0 = time.perf_counter()
    graph = tracing.trace(subject.model, subject.inputs, tracer, method=subject.method)
    inputs = subject.inputs if isinstance(subject.inputs, dict) else {"x": subject.inputs}
    doc = {"format": "latentatlas-graph", "model": subject.label, "architecture": type(subject.model).__name__,
           "spec": subject.spec, "method": subject.method or "forward", "tracer": graph.tracer, "requested": tracer,
           "note": graph.note, "capture_model": subject.capture_model, "created_at": now_iso(),
           "seconds": round(time.perf_counter() - t0, 3),
           "inputs": {k: [int(s) for s in v.shape] for k, v in inputs.items() if isinstance(v, torch.Tensor)},
           **{k: v for k, v in graph.to_dict().items() if k in ("nodes", "edges")}}
    doc = _finite(doc)
    with run.lock():
        atomic_write_json(graph_file(run), doc)
    return doc


def graph(model: str, atlas: Atlas | str | None = None, *, tracer: str = "hooks", text: str | None = None,
          device: str = "cpu") -> tuple[Run, dict[str, Any]]:
    """``latentatlas attention graph MODEL`` for a notebook: trace MODEL (a run, ``minilm``, a transformers
    folder or hub id, a diffusers AutoencoderKL folder) and store its graph; returns the run and the graph."""
    if tracer not in tracing.TRACERS:
        raise LatentAtlasError(f"--tracer '{tracer}' is not one of {', '.join(tracing.TRACERS)}")
    atlas = atlas if isinstance(atlas, Atlas) else Atlas(atlas)
    subject, run = resolve(model, atlas, device, text)
    return run, build(subject, run, tracer)


def _finite(doc: dict[str, Any]) -> dict[str, Any]:
    # strict JSON has no NaN or infinity: a statistic that overflowed is stored as null
    for n in doc["nodes"]:
        if n.get("stats"):
            n["stats"] = {k: (v if isinstance(v, float) and np.isfinite(v) else None) for k, v in n["stats"].items()}
    return doc


def summary(doc: dict[str, Any]) -> dict[str, int]:
    nodes = doc["nodes"]
    root = next((n for n in nodes if n["id"] == ""), None)
    return {"modules": sum(n["kind"] == "module" for n in nodes) - 1, "ops": sum(n["kind"] == "op" for n in nodes),
            "edges": len(doc["edges"]), "parameters": int(root["params_total"]) if root else 0}


def read(run: Run) -> tracing.ModuleGraph:
    """The run's graph, validated (the file is untrusted); NotFound when it has none."""
    return tracing.ModuleGraph.from_dict(read_doc(run))


def read_doc(run: Run) -> dict[str, Any]:
    from ...schemas import GraphFile, validate

    path = graph_file(run)
    if not path.is_file():
        raise NotFound(f"run '{run.name}' has no module graph yet; make it with `latentatlas attention graph {run.name}`")
    doc = read_json(path, "module graph", MAX_GRAPH_BYTES)
    validate(GraphFile, doc, "module graph", path)
    return doc


def has_graph(run: Run) -> bool:
    return graph_file(run).is_file()


def check_expanded(graph: tracing.ModuleGraph, expanded: list[str]) -> set[str]:
    modules = set(graph.modules)
    for name in expanded:
        if name not in modules:
            raise tracing.unknown_module(name, modules, f"the graph of {graph.model}")
    return set(expanded)


def view(run: Run, doc: dict[str, Any], expanded: list[str]) -> dict[str, Any]:
    """The laid-out graph the page draws with ``expanded`` open: boxes, edge routes, frames, and per box
    what the side panel shows (with the `sae capture` command where one applies)."""
    graph = tracing.ModuleGraph.from_dict(doc)
    open_ = check_expanded(graph, expanded)
    visible = tracing.collapse(graph, open_)
    if len(visible.nodes) > MAX_VISIBLE:
        raise LatentAtlasError(f"{len(visible.nodes):,} boxes are too many to lay out (at most {MAX_VISIBLE:,}); collapse some modules")
    types = {n.id: n.type for n in graph.nodes.values() if n.kind == "module"}
    out = tracing.layout(visible, types=types)
    for node in out["nodes"]:
        node["capture"], node["capture_note"] = _capture(doc, node)
    return {"run": run.name, "model": doc["model"], "architecture": doc.get("architecture", ""), "tracer": doc["tracer"],
            "note": doc.get("note"), "method": doc.get("method"), "inputs": doc.get("inputs", {}), "summary": summary(doc),
            "expanded": sorted(open_), **out}


def _capture(doc: dict[str, Any], node: dict[str, Any]) -> tuple[str | None, str | None]:
    """The command that captures this module's activations for the SAE lab, or why there is none."""
    if node["kind"] != "module":
        return None, "only a module's output can be captured by name"
    model = doc.get("capture_model")
    if not model:
        return None, "`sae capture` reads transformers language models; this model is not one"
    shape = node["shapes"][0] if node["shapes"] else None
    if shape is None or len(shape) != 3:
        return None, f"`sae capture` stores one vector per token (batch, tokens, width); this module gives {shape or 'no tensor'}"
    return f"latentatlas sae capture --model {shlex.quote(model)} --layer {shlex.quote(node['id'])}", None
