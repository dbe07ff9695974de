"""Pull activations out of any ``nn.Module`` by module name, streaming into a sharded activation store.

``hooked(model, name)`` is a context manager that records the module's output on each forward pass and,
with ``stop=True``, ends the forward pass right there (the layers above are never run). ``capture`` runs
a corpus through a transformer in batches of documents and writes every kept token's activation to an
:class:`~latentatlas.activations.ActivationStore`, one shard at a time: memory stays bounded by one shard plus one batch
whatever the corpus size, and a killed capture resumes from its last shard.
"""

from __future__ import annotations

import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from ._progress import progress_bar
from .activations import ActivationStore, StoreWriter
from .data.text import Corpus
from .errors import LatentAtlasError


class _Stop(Exception):
    """Raised by a hook to end a forward pass once the wanted activation is in hand."""


def _tensor_of(output: Any) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    if hasattr(output, "last_hidden_state"):
        return output.last_hidden_state
    raise LatentAtlasError(f"the hooked module returned {type(output).__name__}, not a tensor or a tuple starting with one")


@contextmanager
def hooked(model: torch.nn.Module, name: str, stop: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """``with hooked(model, "encoder.layer.3") as got: model(**batch)`` leaves the output in ``got["out"]``."""
    try:
        module = model.get_submodule(name)
    except AttributeError as exc:
        raise LatentAtlasError(f"module '{name}' is not in {type(model).__name__}") from exc
    got: dict[str, torch.Tensor] = {}

    def hook(_module, _inputs, output):
        got["out"] = _tensor_of(output).detach()
        if stop:
            raise _Stop

    handle = module.register_forward_hook(hook)
    try:
        yield got
    finally:
        handle.remove()


def run_to(model: torch.nn.Module, name: str, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The output of module ``name`` for ``batch``, without running the layers after it."""
    with hooked(model, name, stop=True) as got, torch.inference_mode():
        try:
            model(**batch)
        except _Stop:
            pass
    if "out" not in got:
        raise LatentAtlasError(f"module '{name}' did not run during the forward pass")
    return got["out"]


def tokenize(tokenizer, texts: list[str], max_length: int, prepend_bos: bool = False) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Tokenise as capture does, for capture and for everything that later runs a store's model again
    (fidelity, probe, steering): BOS written in front when ``prepend_bos``, and a mask of the ordinary
    tokens, the ones an SAE is trained on (not padding, not special). The tokenizer's own mask marks the
    tokens it added; a BOS written into the text is caught by its id."""
    prefix = tokenizer.bos_token if prepend_bos and tokenizer.bos_token else ""
    enc = tokenizer([prefix + t for t in texts], padding=True, truncation=True, max_length=max_length,
                    return_special_tokens_mask=True, return_tensors="pt")
    special = enc.pop("special_tokens_mask").bool()
    special |= torch.isin(enc["input_ids"], torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long))
    return dict(enc), enc["attention_mask"].bool() & ~special


def length_batches(tokenizer, texts: Iterator[str], batch_size: int, max_length: int,
                   pool: int = 32) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
    """Batches of ``batch_size`` texts, each padded only to its own longest text: the texts are read
    ``pool`` batches at a time, tokenized once, sorted by token count inside the pool and cut into batches
    (length bucketing, as transformers' ``group_by_length``). Which texts are read, and in which pools, does
    not depend on the model; the order is deterministic. Yields (inputs, valid): the tokenizer's tensors
    and its attention mask as booleans."""
    texts = iter(texts)
    while True:
        chunk = [t for _, t in zip(range(batch_size * pool), texts)]
        if not chunk:
            return
        enc = tokenizer(chunk, truncation=True, max_length=max_length)
        keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
        order = sorted(range(len(chunk)), key=lambda i: (len(enc["input_ids"][i]), i))
        for s in range(0, len(order), batch_size):
            rows = [{k: enc[k][i] for k in keys} for i in order[s:s + batch_size]]
            batch = tokenizer.pad(rows, padding=True, return_tensors="pt")
            yield {k: batch[k] for k in keys}, batch["attention_mask"].bool()


def capture(
    model: torch.nn.Module,
    tokenizer: Any,
    corpus: Corpus,
    layer: str,
    path: str | Path,
    *,
    tokens: int,
    meta: dict[str, Any] | None = None,
    batch_size: int = 32,
    max_length: int = 128,
    keep_special: bool = False,
    shard_tokens: int = 32768,
    outlier_factor: float = 10.0,
    resume: bool = False,
    progress: bool = True,
    prepend_bos: bool | None = None,
    on_shard: Callable[[int], None] | None = None,
) -> ActivationStore:
    """Capture ``tokens`` token activations at module ``layer`` into the store at ``path``.

    Special and padding tokens are left out unless ``keep_special``. ``prepend_bos`` (default: when the
    tokenizer has a BOS token but adds none itself, as GPT-2's does not) starts every document with BOS,
    as the model saw in training, so the first real token is not the model's attention sink. Every token's L2 norm is stored;
    at the end the median norm is computed and tokens above ``outlier_factor`` × median are counted as
    outliers (``index.json`` → ``norm``). ``on_shard(i)`` is called after shard ``i`` is committed.
    """
    if tokens < 1:
        raise LatentAtlasError(f"--tokens must be at least 1, got {tokens}")
    device = next(model.parameters()).device
    if prepend_bos is None:
        prepend_bos = bool(getattr(tokenizer, "bos_token", None)) and tokenizer("a")["input_ids"][:1] != [tokenizer.bos_token_id]
    probe = tokenizer(["probe the layer"], return_tensors="pt")
    out = run_to(model, layer, {k: v.to(device) for k, v in probe.items()})
    if out.ndim != 3 or tuple(out.shape[:2]) != tuple(probe["input_ids"].shape):
        raise LatentAtlasError(f"module '{layer}' gives an output of shape {tuple(out.shape)}, not one vector per token "
                               f"(batch, {probe['input_ids'].shape[1]} tokens, width); pick a layer inside the model's blocks")
    d = int(out.shape[-1])
    free = shutil.disk_usage(Path(path).parent if Path(path).parent.exists() else Path(path).anchor or "/").free
    need = tokens * d * 4
    if need > free:
        from .limits import fmt_bytes

        raise LatentAtlasError(f"--tokens {tokens:,} at width {d} needs {fmt_bytes(need)} of disk; the atlas's disk has {fmt_bytes(free)} free")
    info = {"d": d, "layer": layer, **(meta or {}), "corpus": corpus.spec, "keep_special": keep_special, "prepend_bos": prepend_bos,
            "max_length": max_length, "target_tokens": tokens, "outlier_factor": outlier_factor}
    writer = StoreWriter(path, info, resume=resume)
    if writer.index.get("complete"):
        return ActivationStore(path)
    docs_iter = iter(corpus)
    for _ in range(writer.docs_done):  # documents already in committed shards
        next(docs_iter, None)
    doc_id = writer.docs_done
    buf_acts: list[np.ndarray] = []
    buf_tok: dict[str, list] = {"doc": [], "pos": [], "token_id": [], "token": [], "norm": []}
    buf_docs: dict[str, list] = {"doc": [], "source": [], "text": []}
    have = writer.n_tokens
    pending = 0
    t0 = time.perf_counter()

    def flush() -> None:
        nonlocal pending
        if not pending:
            return
        acts = np.concatenate(buf_acts)
        table = {k: (np.concatenate(v) if k != "token" else np.asarray(v)) for k, v in buf_tok.items()}
        writer.write_shard(acts, table, dict(buf_docs), len(buf_docs["doc"]))
        buf_acts.clear()
        for v in (*buf_tok.values(), *buf_docs.values()):
            v.clear()
        pending = 0
        if on_shard is not None:
            on_shard(len(writer.index["shards"]) - 1)

    with progress_bar(progress, "tokens") as bar:
        task = bar.add_task(f"capturing {Path(path).name}", total=tokens, completed=have)
        exhausted = False
        while have + pending < tokens and not exhausted:
            batch_docs = []
            while len(batch_docs) < batch_size:
                doc = next(docs_iter, None)
                if doc is None:
                    exhausted = True
                    break
                batch_docs.append(doc)
            if not batch_docs:
                break
            enc, ordinary = tokenize(tokenizer, [d_.text for d_ in batch_docs], max_length, prepend_bos)
            acts = run_to(model, layer, {k: v.to(device) for k, v in enc.items()}).float().cpu()
            keep = enc["attention_mask"].bool() if keep_special else ordinary
            # every kept token of the batch at once, in document order (row-major over [doc, position])
            keep_np = keep.numpy()
            rows_doc, rows_pos = np.nonzero(keep_np)
            room = tokens - have - pending
            n_docs = len(batch_docs)
            if len(rows_doc) > room:  # the last batch: stop at exactly `tokens`, dropping whole documents after it
                rows_doc, rows_pos = rows_doc[:room], rows_pos[:room]
                n_docs = int(rows_doc[-1]) + 1 if room else 0
            a = acts[torch.from_numpy(rows_doc), torch.from_numpy(rows_pos)].numpy()
            tid = enc["input_ids"].numpy()[rows_doc, rows_pos]
            buf_acts.append(a)
            buf_tok["doc"].append(rows_doc + doc_id)
            buf_tok["pos"].append(rows_pos)
            buf_tok["token_id"].append(tid)
            buf_tok["token"].extend(tokenizer.convert_ids_to_tokens(tid.tolist()))
            buf_tok["norm"].append(np.linalg.norm(a, axis=1))
            for j in range(n_docs):
                buf_docs["doc"].append(doc_id + j)
                buf_docs["source"].append(batch_docs[j].source)
                buf_docs["text"].append(batch_docs[j].text)
            doc_id += n_docs
            pending += len(rows_doc)
            if pending >= shard_tokens:  # a shard ends at a batch boundary, so it holds whole documents
                have += pending
                flush()
            bar.update(task, completed=have + pending)
        have += pending
        flush()
    if writer.n_tokens == 0:
        raise LatentAtlasError(f"corpus '{corpus.spec.get('path', corpus.name)}' gave no tokens to capture (it is empty, or every document is only special tokens)")
    store = ActivationStore(path)
    norms = np.concatenate([store.shard_tokens(i)["norm"].to_numpy() for i in range(len(store.shards))])
    median = float(np.median(norms))
    threshold = outlier_factor * median
    return writer.finish({
        "seconds": round(time.perf_counter() - t0, 3),
        "exhausted": bool(writer.n_tokens < tokens),
        "norm": {"median": median, "threshold": threshold, "outliers": int((norms > threshold).sum()),
                 "max": float(norms.max())},
    })


@contextmanager
def spliced(model: torch.nn.Module, name: str, replace: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """Within the block, module ``name``'s output tensor is replaced by ``replace(output)`` (same shape),
    and the rest of the model runs on it: how an SAE's reconstruction is spliced back in."""
    try:
        module = model.get_submodule(name)
    except AttributeError as exc:
        raise LatentAtlasError(f"module '{name}' is not in {type(model).__name__}") from exc

    def hook(_module, _inputs, output):
        if isinstance(output, torch.Tensor):
            return replace(output)
        if isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor):
            return (replace(output[0]), *output[1:])
        raise LatentAtlasError(f"module '{name}' returned {type(output).__name__}; cannot splice into it")

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


# -- attention ---------------------------------------------------------------------------------------------

@dataclass
class AttentionLayer:
    """One attention module's reading for a batch: probabilities (batch, heads, queries, keys) and, when
    asked for, the query (batch, heads, queries, d) and key (batch, kv_heads, keys, d) as the model computed
    them (after rotary), with the mask and the scale the scores used."""
    name: str
    probs: torch.Tensor
    query: torch.Tensor | None = None
    key: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    scaling: float = 1.0
    softcap: float | None = None


@dataclass
class AttentionCapture:
    layers: list[AttentionLayer]
    source: str  # "attend" (recomputed from q and k) or "output_attentions" (the model's own, no q/k)
    implementation: str | None = None  # what the model was loaded with (eager, sdpa, …)
    note: str | None = None

    @property
    def names(self) -> list[str]:
        return [layer.name for layer in self.layers]


def _is_hf(model: torch.nn.Module) -> bool:
    return hasattr(model, "config") and hasattr(model.config, "_attn_implementation") and hasattr(model, "set_attn_implementation")


def attention(model: torch.nn.Module, inputs: dict[str, torch.Tensor] | torch.Tensor, *, keep_qk: bool = False,
              layers: set[int] | None = None, dtype: torch.dtype = torch.float32,
              on_layer: Callable[[int, AttentionLayer], None] | None = None) -> AttentionCapture:
    """Every attention layer's probabilities for ``inputs`` (a transformers batch dict, or a token tensor
    for a model trained here), read from the model's own query and key through
    :func:`latentatlas.models.attention.attend`.

    A transformers model is switched to the ``latentatlas`` attention implementation for the pass (whatever
    it was loaded with, sdpa included) and switched back after. ``layers`` keeps only those layer indices;
    ``keep_qk`` keeps queries and keys for the neuron view; ``on_layer(i, layer)`` receives each layer as
    it is computed instead of keeping it (the head atlas streams its statistics this way). A model whose
    attention never passes through ``attend`` falls back to its own ``output_attentions`` with eager
    attention, and says so in ``note``; a model with neither is refused in one sentence."""
    from contextlib import nullcontext

    from .models.attention import hf_routed, recording, uses_interface

    names = {id(m): n for n, m in model.named_modules()}
    got: list[AttentionLayer] = []
    count = [0]

    def record(module, *, query, key, mask, scaling, probs, softcap=None, sinks=None):
        i = count[0]
        count[0] += 1
        if layers is not None and i not in layers:
            return
        layer = AttentionLayer(names.get(id(module), f"attention.{i}"), probs.detach().to(dtype),
                               query.detach() if keep_qk else None, key.detach() if keep_qk else None,
                               mask.detach() if keep_qk and mask is not None else None, scaling, softcap)
        if on_layer is not None:
            on_layer(i, layer)
        else:
            got.append(layer)

    hf = _is_hf(model)
    routed = hf and uses_interface(model)
    impl = getattr(model.config, "_attn_implementation", None) if hf else None
    call = (lambda: model(**inputs)) if isinstance(inputs, dict) else (lambda: model(inputs))
    with torch.inference_mode(), recording(record), (hf_routed(model) if routed else nullcontext()):
        call()
    if count[0]:
        return AttentionCapture(got, "attend", impl)
    if hf:
        return _output_attentions(model, inputs, layers, dtype, on_layer, impl)
    raise LatentAtlasError(f"{type(model).__name__} computes attention in a way this tool cannot read: none of its modules "
                           "calls latentatlas.models.attention.attend and it has no output_attentions")


def _output_attentions(model, inputs, layers, dtype, on_layer, impl) -> AttentionCapture:
    """The fallback for a transformers model outside ``AttentionInterface``: its own eager attentions."""
    switched = False
    try:
        if impl not in (None, "eager"):
            try:
                model.set_attn_implementation("eager")
                switched = True
            except Exception:  # a model that cannot switch: ask it as it is
                pass
        with torch.inference_mode():
            out = model(**inputs, output_attentions=True) if isinstance(inputs, dict) else model(inputs, output_attentions=True)
    finally:
        if switched:
            model.set_attn_implementation(impl)
    att = getattr(out, "attentions", None)
    if not att or any(a is None for a in att):
        raise LatentAtlasError(f"{type(model).__name__} returns no attention probabilities (its kernels are fused and it does not use "
                               "transformers' AttentionInterface); its attention cannot be read")
    got = []
    for i, a in enumerate(att):
        if layers is not None and i not in layers:
            continue
        layer = AttentionLayer(f"attentions.{i}", a.detach().to(dtype))
        if on_layer is not None:
            on_layer(i, layer)
        else:
            got.append(layer)
    return AttentionCapture(got, "output_attentions", impl, note=f"{type(model).__name__} does not route attention through "
                            "AttentionInterface; read from its own output_attentions with eager attention (no query/key, so no neuron view)")
