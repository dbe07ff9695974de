"""The attention lab's jobs: look at a model's attention for a text (``show``), summarise every head over a
corpus (``heads``, the head atlas) and train the induction-heads ground truth (``induction``).

A *subject* is the model under study: a transformers model (``minilm``, a folder, a hub id), or a run of
this lab trained here (the attention-only transformer). ``show`` and ``heads`` write into a run of kind
``attention`` that names the transformers model (no weights are copied), or into the trained run itself:

    runs/<run>/attention/samples/<id>/sample.json       the tokens, shapes, layer names, how it was read
    runs/<run>/attention/samples/<id>/probs.safetensors  "layer.<i>": (heads, T, T) float16; "thumbs": (layers, heads, s, s)
    runs/<run>/attention/heads.json + heads.safetensors  the head atlas: "stats" (layers, heads, 7)
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ... import capture
from ..._io import atomic_save_safetensors, atomic_write_json, read_json
from ..._progress import progress_bar
from ...analysis.attention import STAT_NAMES, HeadStats, copying_score, phase_change, prefix_matching
from ...atlas import Atlas, Run, now_iso
from ...errors import LatentAtlasError
from ...models.io import config_to_dict
from ...trainer import TrainConfig, TrainResult, fit, fit_new_run, resolve_device, resumable

SUBJECT_KIND = "attention"
TOY_KIND = "attn_only"
THUMB = 64  # the model view's per-head image side
MAX_SAMPLE_BYTES = 4 << 30  # layers × heads × T² × 2 bytes of float16 above this are refused
_SAMPLE_ID = re.compile(r"^[0-9a-f]{12}$")


def versions() -> dict[str, str]:
    import platform

    import transformers

    from ... import __version__

    return {"latentatlas": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version()}


# -- the subject ---------------------------------------------------------------------------------------------

@dataclass
class Subject:
    """The model under study, with what is needed to feed it text (or token ids) and to name its parts."""
    model: torch.nn.Module
    tokenizer: Any | None  # None: a model trained here, fed token ids
    causal: bool
    max_positions: int | None
    vocab: int
    label: str
    spec: dict[str, Any] = field(default_factory=dict)  # rebuilds it: {"run": name} or a transformers spec
    n_layers: int = 0
    n_heads: int = 0

    def encode(self, text: str) -> tuple[dict[str, torch.Tensor] | torch.Tensor, list[str], int]:
        """The model's input for ``text``, its tokens as strings, and the token count; a text longer than
        the model's positions is refused with both numbers."""
        if self.tokenizer is None:
            ids = _parse_ids(text, self.vocab)
            n = len(ids)
            self._check_length(n)
            return torch.tensor([ids]), [str(i) for i in ids], n
        enc = self.tokenizer([text], return_tensors="pt", truncation=False)
        n = int(enc["input_ids"].shape[1])
        self._check_length(n)
        dev = next(self.model.parameters()).device
        tokens = self.tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist())
        return {k: v.to(dev) for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}, tokens, n

    def _check_length(self, n: int) -> None:
        if n == 0:
            raise LatentAtlasError("the text gives no tokens; expected some text")
        if self.max_positions and n > self.max_positions:
            raise LatentAtlasError(f"the text is {n:,} tokens long, more than the {self.max_positions:,} positions {self.label} has; shorten it")


def _parse_ids(text: str, vocab: int) -> list[int]:
    parts = [p for p in re.split(r"[\s,]+", text.strip()) if p]
    if not parts or not all(re.fullmatch(r"[0-9]{1,9}", p) for p in parts):
        raise LatentAtlasError(f"a model trained here reads token ids: expected integers 0..{vocab - 1} separated by spaces, got '{text[:40]}'")
    ids = [int(p) for p in parts]
    bad = [i for i in ids if i >= vocab]
    if bad:
        raise LatentAtlasError(f"token id {bad[0]} is out of range; this model's vocabulary is 0..{vocab - 1}")
    return ids


def _counts(model: torch.nn.Module) -> tuple[int, int]:
    cfg = getattr(model, "config", None)
    layers = getattr(cfg, "n_layers", None) or getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer", None) or 0
    heads = getattr(cfg, "n_heads", None) or getattr(cfg, "num_attention_heads", None) or getattr(cfg, "n_head", None) or 0
    return int(layers), int(heads)


def subject_of_run(run: Run, device: str = "cpu") -> Subject:
    """The subject a run of this lab studies (its own weights, or the transformers model it names, offline)."""
    cfg = run.config()
    kind = cfg.get("kind")
    if kind == TOY_KIND:
        if not run.has_model:
            raise LatentAtlasError(f"run '{run.name}' has no trained weights yet; finish it with `latentatlas attention induction --name {run.name} --resume`")
        model = run.load_model(device)
        c = model.config
        return Subject(model, None, True, c.ctx, c.vocab, f"run '{run.name}'", {"run": run.name}, c.n_layers, c.n_heads)
    if kind == SUBJECT_KIND:
        spec = (cfg.get("model") or {}).get("spec")
        if not isinstance(spec, dict):
            raise LatentAtlasError(f"run '{run.name}' names no model in its config (model.spec)")
        return _transformers_subject(spec, device, offline=True)
    raise LatentAtlasError(f"run '{run.name}' is a {kind}, not a run of the attention lab")


def _transformers_subject(spec: str | dict[str, Any], device: str, offline: bool | None = None) -> Subject:
    from ...models.hf import load_transformer

    tf = load_transformer(spec, device, offline=offline)
    cfg = tf.model.config
    max_pos = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
    layers, heads = _counts(tf.model)
    label = tf.spec.get("name") or Path(str(tf.spec.get("path", ""))).name or tf.spec.get("hub") or "the model"
    return Subject(tf.model, tf.tokenizer, tf.causal, int(max_pos) if max_pos else None, int(getattr(cfg, "vocab_size", 0) or 0),
                   str(label), dict(tf.spec), layers, heads)


BUILTIN_INDUCTION = "induction"


def resolve(model: str, atlas: Atlas, device: str = "cpu", progress: bool = False) -> tuple[Subject, Run]:
    """``model`` as given on the command line: a run of this lab in the atlas; ``induction``, the built-in
    induction-heads model (trained into run ``induction`` on first use); else a transformers model (which
    gets, or reuses, a run of kind ``attention`` that names it)."""
    from ...atlas import is_name

    if is_name(model) and atlas.has_run(model):
        run = atlas.run(model)
        return subject_of_run(run, device), run
    if model == BUILTIN_INDUCTION:  # the built-in ground truth: trained here on first use (about a minute)
        run, _, _ = train_induction(atlas, name=BUILTIN_INDUCTION, progress=progress)
        return subject_of_run(run, device), run
    subject = _transformers_subject(model, device)
    for name in atlas.run_names():
        try:
            cfg = atlas.run(name).config()
        except LatentAtlasError:
            continue
        if cfg.get("kind") == SUBJECT_KIND and (cfg.get("model") or {}).get("spec") == subject.spec:
            return subject, atlas.run(name)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", subject.label).strip("-.")[:60] or "model"
    name = atlas.unique_run_name(f"attn-{slug}")
    run = atlas.create_run(name, {"name": name, "kind": SUBJECT_KIND, "created_at": now_iso(), "versions": versions(),
                                  "model": {"spec": subject.spec, "architecture": type(subject.model).__name__,
                                            "n_layers": subject.n_layers, "n_heads": subject.n_heads, "causal": subject.causal}})
    return subject, run


# -- show: one text's attention ---------------------------------------------------------------------------

def samples_dir(run: Run) -> Path:
    return run.file("attention", "samples")


def sample_id(text: str, spec: dict[str, Any]) -> str:
    return hashlib.sha1(repr((text, sorted(spec.items()))).encode("utf-8")).hexdigest()[:12]


def pool(a: torch.Tensor, size: int) -> torch.Tensor:
    """Max-pool the last two axes to at most ``size`` × ``size`` (a sparse pattern stays visible)."""
    t, s = a.shape[-2:]
    fr, fc = max(1, -(-t // size)), max(1, -(-s // size))
    if fr == 1 and fc == 1:
        return a
    pad = (0, (-s) % fc, 0, (-t) % fr)
    x = torch.nn.functional.pad(a.float(), pad)
    return torch.nn.functional.max_pool2d(x.reshape(-1, 1, *x.shape[-2:]), (fr, fc)).reshape(*a.shape[:-2], x.shape[-2] // fr, x.shape[-1] // fc)


def show(subject: Subject, run: Run, text: str, *, progress: bool = True) -> dict[str, Any]:
    """Capture ``text``'s attention at every layer and head into the run; returns the sample's meta."""
    inputs, tokens, n = subject.encode(text)
    sid = sample_id(text, subject.spec)
    folder = samples_dir(run) / sid
    if (folder / "sample.json").is_file() and (folder / "probs.safetensors").is_file():
        return read_json(folder / "sample.json", "attention sample", 64 << 20)
    need = max(subject.n_layers, 1) * max(subject.n_heads, 1) * n * n * 2
    if need > MAX_SAMPLE_BYTES:
        from ...limits import fmt_bytes

        raise LatentAtlasError(f"{n:,} tokens at {subject.n_layers} layers × {subject.n_heads} heads take {fmt_bytes(need)} of float16 attention, "
                               f"over the {fmt_bytes(MAX_SAMPLE_BYTES)} this tool writes for one text; shorten it")
    t0 = time.perf_counter()
    tensors: dict[str, torch.Tensor] = {}
    thumbs: list[torch.Tensor] = []
    names: list[str] = []

    def keep(i: int, layer: capture.AttentionLayer) -> None:
        p = layer.probs[0]
        tensors[f"layer.{i}"] = p.to(torch.float16).contiguous()
        thumbs.append(pool(p, THUMB).to(torch.float16))
        names.append(layer.name)

    got = capture.attention(subject.model, inputs, on_layer=keep)
    heads = int(tensors["layer.0"].shape[0])
    side = thumbs[0].shape[-1]
    tensors["thumbs"] = torch.stack([th if th.shape[-1] == side else pool(th, side) for th in thumbs]).contiguous()
    meta = {"id": sid, "text": text, "tokens": tokens, "n_tokens": n, "n_layers": len(names), "n_heads": heads,
            "layers": names, "causal": subject.causal, "source": got.source, "implementation": got.implementation,
            "note": got.note, "neuron": got.source == "attend", "model": subject.label, "created_at": now_iso(),
            "seconds": round(time.perf_counter() - t0, 3), "thumb": int(side)}
    folder.mkdir(parents=True, exist_ok=True)
    atomic_save_safetensors(folder / "probs.safetensors", tensors, metadata={"format": "latentatlas-attention"})
    atomic_write_json(folder / "sample.json", meta)
    return meta


def neuron_inputs(subject: Subject, text: str, layer: int) -> capture.AttentionLayer:
    """One layer's query, key and mask for the neuron view (the model is run again; nothing is stored)."""
    inputs, _, _ = subject.encode(text)
    got = capture.attention(subject.model, inputs, keep_qk=True, layers={layer})
    if got.source != "attend" or not got.layers:
        raise LatentAtlasError(f"{subject.label} gives its attention only through output_attentions, so its query and key cannot be read")
    return got.layers[0]


# -- heads: the head atlas --------------------------------------------------------------------------------

def _ov_circuits(model: torch.nn.Module) -> dict[tuple[int, int], torch.Tensor] | None:
    """Each head's OV circuit (reduced to d_head × d_head) where the model's weights make it readable:
    the attention-only model here, GPT-2 and Llama-style causal LMs with an unembedding. None otherwise."""
    if hasattr(model, "ov_circuit"):
        c = model.config
        return {(l, h): model.ov_circuit(l, h).detach() for l in range(c.n_layers) for h in range(c.n_heads)}
    out_emb = getattr(model, "get_output_embeddings", lambda: None)()
    in_emb = getattr(model, "get_input_embeddings", lambda: None)()
    if out_emb is None or in_emb is None:
        return None
    from ...models.hf import block_list

    w_e, w_u = in_emb.weight.detach().T, out_emb.weight.detach()  # d × V, V × d
    cfg = model.config
    heads = int(getattr(cfg, "num_attention_heads", 0) or getattr(cfg, "n_head", 0))
    kv = int(getattr(cfg, "num_key_value_heads", heads) or heads)
    d_model = w_e.shape[0]
    d_head = int(getattr(cfg, "head_dim", 0) or d_model // heads)
    eu = w_e @ w_u  # d × d: the embedding read back by the unembedding
    _, blocks = block_list(model)
    out = {}
    for l, block in enumerate(blocks):
        attn = getattr(block, "self_attn", None) or getattr(block, "attn", None)
        if attn is None:
            return None
        if hasattr(attn, "v_proj") and hasattr(attn, "o_proj"):
            w_v, w_o = attn.v_proj.weight.detach(), attn.o_proj.weight.detach()  # (kv·d_head) × d, d × (heads·d_head)
        elif hasattr(attn, "c_attn") and hasattr(attn, "c_proj"):  # GPT-2's Conv1D stores weights transposed
            w_v = attn.c_attn.weight.detach()[:, 2 * d_model:].T
            w_o = attn.c_proj.weight.detach().T
        else:
            return None
        g = heads // kv
        for h in range(heads):
            v = w_v[(h // g) * d_head:(h // g + 1) * d_head]
            o = w_o[:, h * d_head:(h + 1) * d_head]
            out[(l, h)] = v @ eu @ o
    return out


def heads(subject: Subject, run: Run, *, corpus: str | dict | None = "builtin", tokens: int = 20_000, batch_size: int = 16,
          max_length: int = 128, repeats: int = 16, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """The head atlas: every head's corpus statistics over ``tokens`` tokens (the built-in corpus for a
    transformers model; its own task's sequences for a model trained here), its prefix-matching score on
    ``repeats`` sequences of repeated random tokens, and its copying score where the weights allow. Written
    into the run; returns the meta with the (layers, heads, 7) array under ``"stats"``."""
    from ...limits import check_int

    check_int(tokens, "--tokens", 1, 100_000_000)
    check_int(batch_size, "--batch-size", 1, 4096)
    t0 = time.perf_counter()
    acc: HeadStats | None = None
    layer_names: dict[int, str] = {}

    def add(valid):
        def on_layer(i: int, layer: capture.AttentionLayer) -> None:
            nonlocal acc
            if acc is None:
                acc = HeadStats(max(subject.n_layers, i + 1), layer.probs.shape[1])
            layer_names[i] = layer.name
            acc.add(i, layer.probs, valid)
        return on_layer

    seen = 0
    forward_s = 0.0
    with progress_bar(progress, "tokens") as bar:
        task = bar.add_task(f"head atlas of {subject.label}", total=tokens)
        if subject.tokenizer is None:
            from ...data.induction import RepeatedSpans

            data_spec = run.config().get("data") or {}
            c = subject.model.config
            gen = RepeatedSpans(vocab=c.vocab, length=c.ctx, span_min=int(data_spec.get("span_min", 8)), span_max=int(data_spec.get("span_max", 24)),
                                batch_size=batch_size, seed=seed + 1_000_003)
            corpus_spec: dict[str, Any] = {"kind": "repeated_spans", **{k: v for k, v in gen.spec.items() if k != "kind"}}
            step = 0
            while seen < tokens:
                batch = torch.from_numpy(gen.batch_at(step))[:, 0]
                step += 1
                f0 = time.perf_counter()
                capture.attention(subject.model, batch, on_layer=add(None))
                forward_s += time.perf_counter() - f0
                seen += batch.numel()
                bar.update(task, completed=min(seen, tokens))
        else:
            from ...data.text import load_corpus

            corp = load_corpus(corpus or "builtin")
            corpus_spec = {**corp.spec, "batching": "length-bucketed"}
            # documents sorted by length within pools of batches, so a batch is padded to little more than
            # its own documents (statistics over padding rows were most of the atlas's cost over a forward)
            for inputs, valid in capture.length_batches(subject.tokenizer, (d.text for d in corp), batch_size,
                                                        min(max_length, subject.max_positions or max_length)):
                if seen >= tokens:
                    break
                f0 = time.perf_counter()
                capture.attention(subject.model, inputs, on_layer=add(valid))
                forward_s += time.perf_counter() - f0
                seen += int(valid.sum())
                bar.update(task, completed=min(seen, tokens))
    if acc is None:
        raise LatentAtlasError(f"corpus '{corpus}' gave no tokens for the head atlas")
    stats = acc.result()
    n_layers, n_heads = stats.shape[:2]
    pm = _prefix_scores(subject, n_layers, n_heads, repeats, seed)
    ov = _ov_circuits(subject.model)
    cp = np.full((n_layers, n_heads), np.nan)
    if ov is not None:
        for (l, h), m in ov.items():
            if l < n_layers and h < n_heads:
                cp[l, h] = copying_score(m)
    table = np.concatenate([stats, pm[..., None], cp[..., None]], axis=-1)
    meta = {"stats": list(STAT_NAMES), "n_layers": int(n_layers), "n_heads": int(n_heads), "tokens": int(seen),
            "corpus": corpus_spec, "layers": [layer_names.get(i, f"layer.{i}") for i in range(n_layers)],
            "prefix_matching": {"repeats": repeats, "half": _half(subject)}, "copying": ov is not None,
            "seconds": round(time.perf_counter() - t0, 3), "forward_seconds": round(forward_s, 3), "created_at": now_iso(),
            "model": subject.label}
    folder = run.file("attention")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_save_safetensors(folder / "heads.safetensors", {"stats": torch.from_numpy(table.astype(np.float32))})
    atomic_write_json(folder / "heads.json", meta)
    return {**meta, "table": table}


def _half(subject: Subject) -> int:
    limit = subject.max_positions or 512
    half = max(4, min(50, (limit - 2) // 2))
    if subject.tokenizer is None:  # a model trained here: distinct tokens in each half (data.induction.repeated_random)
        half = min(half, subject.vocab)
    return int(half)


def _prefix_scores(subject: Subject, n_layers: int, n_heads: int, repeats: int, seed: int) -> np.ndarray:
    """Prefix-matching per head on ``repeats`` sequences of random tokens repeated once (after BOS where
    the model has one), as Olsson et al. measure it."""
    from ...data.induction import repeated_random

    rng = np.random.default_rng(seed)
    half = _half(subject)
    scores = np.zeros((n_layers, n_heads))
    tok = subject.tokenizer
    if tok is None:
        seq = torch.from_numpy(repeated_random(rng, repeats, subject.vocab, half))
        inputs, offset = seq, 0
    else:
        special = set(tok.all_special_ids)
        ordinary = np.array([i for i in range(min(subject.vocab or len(tok), len(tok))) if i not in special])
        r = ordinary[repeated_random(rng, repeats, len(ordinary), half)]
        start = tok.bos_token_id if tok.bos_token_id is not None else tok.cls_token_id
        if start is not None:
            r = np.concatenate([np.full((repeats, 1), start), r], axis=1)
        offset = 1 if start is not None else 0
        inputs = {"input_ids": torch.from_numpy(r.astype(np.int64))}
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])

    def on_layer(i: int, layer: capture.AttentionLayer) -> None:
        if i < n_layers:
            scores[i] = prefix_matching(layer.probs, half, offset)

    capture.attention(subject.model, inputs, on_layer=on_layer)
    return scores


def read_heads(run: Run) -> tuple[np.ndarray, dict[str, Any]] | None:
    folder = run.file("attention")
    if not (folder / "heads.json").is_file():
        return None
    from safetensors import SafetensorError, safe_open

    from ...schemas import HeadAtlasMeta, validate

    meta = read_json(folder / "heads.json", "head atlas", 16 << 20)
    validate(HeadAtlasMeta, meta, "head atlas", folder / "heads.json")
    try:
        with safe_open(str(folder / "heads.safetensors"), "pt") as f:
            table = f.get_tensor("stats").float().numpy()
    except (SafetensorError, OSError, KeyError, RuntimeError, ValueError) as exc:
        raise LatentAtlasError(f"head atlas '{folder / 'heads.safetensors'}' is unreadable ({type(exc).__name__}); rerun `latentatlas attention heads`") from exc
    if table.shape != (meta["n_layers"], meta["n_heads"], len(meta["stats"])):
        raise LatentAtlasError(f"head atlas '{folder / 'heads.safetensors'}' holds {tuple(table.shape)}, not the "
                               f"({meta['n_layers']}, {meta['n_heads']}, {len(meta['stats'])}) its heads.json says")
    return table, meta


# -- induction: the ground truth --------------------------------------------------------------------------

# Rotary positions: with learned absolute positions the model often solves the task without a previous-token
# head (layer 0 near-uniform, a "smeared key"); with RoPE "attend to the previous token" is one fixed
# rotation, and layer 0 grows a clear previous-token head (share 0.67-0.84 over seeds 0-2; docs/benchmarks.md)
INDUCTION_DEFAULTS = dict(vocab=20, d_model=64, n_heads=4, n_layers=2, ctx=64, span_min=8, span_max=24, steps=1600, batch_size=64, lr=3e-3,
                          positions="rotary")


def train_induction(atlas: Atlas | str | None = None, *, name: str | None = None, steps: int = INDUCTION_DEFAULTS["steps"],
                    batch_size: int = INDUCTION_DEFAULTS["batch_size"], lr: float = INDUCTION_DEFAULTS["lr"], seed: int = 0,
                    vocab: int = 20, d_model: int = 64, n_heads: int = 4, n_layers: int = 2, ctx: int = 64,
                    span_min: int = 8, span_max: int = 24, positions: str = "rotary", log_every: int = 25, checkpoint_every: int = 200,
                    device: str = "auto", resume: bool = False, progress: bool = True, heads_tokens: int = 20_000,
                    on_step=None) -> tuple[Run, TrainResult, dict[str, Any]]:
    """Train the two-layer attention-only transformer on repeated random spans, then write its head atlas
    and its metrics (the phase change, the ICL score, which heads are the previous-token and induction
    heads)."""
    from ...data.induction import RepeatedSpans
    from ...models import build, config_from_dict
    from ...models.toylm import AttnOnlyConfig

    atlas = atlas if isinstance(atlas, Atlas) else Atlas(atlas)
    if resume:
        if not name:
            raise LatentAtlasError("--resume needs --name to say which run to continue")
        run = atlas.run(name)
        cfg = run.config()
        train_cfg = resumable(run, TOY_KIND, "an induction run")
        data = RepeatedSpans(**{k: v for k, v in cfg["data"].items() if k != "kind"})
        torch.manual_seed(train_cfg.seed)
        model = build(config_from_dict(TOY_KIND, cfg["model"]))
        with run.lock():
            result = fit(model, data, run, train_cfg, resume=True, progress=progress, on_step=on_step)
    else:
        data = RepeatedSpans(vocab=vocab, length=ctx, span_min=span_min, span_max=span_max, batch_size=batch_size, seed=seed)
        model_cfg = AttnOnlyConfig(vocab=vocab, d_model=d_model, n_heads=n_heads, n_layers=n_layers, ctx=ctx, positions=positions)
        train_cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, log_every=log_every,
                                checkpoint_every=checkpoint_every, device=device)
        resolve_device(device)
        torch.manual_seed(seed)
        model = build(model_cfg)
        name = name or atlas.unique_run_name("induction")
        run, result = fit_new_run(atlas, {"name": name, "kind": TOY_KIND, "model": config_to_dict(model_cfg), "train": train_cfg.to_dict(),
                                          "data": data.spec, "versions": versions(), "created_at": now_iso(), "origin": "induction"},
                                  model, data, train_cfg, progress=progress, on_step=on_step)
    report = evaluate_induction(run, tokens=heads_tokens, progress=progress)
    return run, result, report


def evaluate_induction(run: Run, tokens: int = 20_000, progress: bool = True) -> dict[str, Any]:
    """The head atlas of a trained induction run, and its metrics.json: the phase change (the step the ICL
    score first falls to half its final value), the final ICL score, and the heads that score highest as
    previous-token head (layer 0) and induction head (prefix matching, last layer)."""
    subject = subject_of_run(run)
    atlas_ = heads(subject, run, corpus=None, tokens=tokens, progress=progress)
    table = atlas_["table"]
    hist = run.read_history()
    steps = np.array([r["step"] for r in hist if "icl" in r])
    icl = np.array([r["icl"] for r in hist if "icl" in r], dtype=float)
    change = phase_change(steps, icl) if len(steps) else None
    col = {n: i for i, n in enumerate(STAT_NAMES)}
    prev_head = int(np.nanargmax(table[0, :, col["previous"]]))
    last = table.shape[0] - 1
    ind_head = int(np.nanargmax(table[last, :, col["prefix_matching"]]))
    final = float(np.median(icl[-max(1, len(icl) // 10):])) if len(icl) else float("nan")
    metrics = {
        "run": run.name, "kind": TOY_KIND, "created_at": now_iso(),
        "command": f"latentatlas attention induction --name {run.name}",
        "headline": {"icl_score": final, "phase_change_step": change, "prefix_matching": float(table[last, ind_head, col["prefix_matching"]]),
                     "copying": float(table[last, ind_head, col["copying"]]), "previous_token": float(table[0, prev_head, col["previous"]])},
        "metrics": {"icl_score": {"value": final, "ci_low": None, "ci_high": None, "n": int(max(1, len(icl) // 10)),
                                  "details": {"what": "loss on the span's second copy minus its first copy (nats per token), median of the last tenth of training"}},
                    "phase_change_step": {"value": change, "ci_low": None, "ci_high": None, "n": None,
                                          "details": {"what": "first logged step whose ICL score is at most half its final value"}},
                    "previous_token_share": {"value": float(table[0, prev_head, col["previous"]]), "ci_low": None, "ci_high": None, "n": None,
                                             "details": {"what": f"head 0.{prev_head}'s mean attention to the previous token"}},
                    "prefix_matching": {"value": float(table[last, ind_head, col["prefix_matching"]]), "ci_low": None, "ci_high": None, "n": None,
                                        "details": {"what": f"head {last}.{ind_head}'s prefix-matching score (Olsson et al. 2022)"}},
                    "copying": {"value": float(table[last, ind_head, col["copying"]]), "ci_low": None, "ci_high": None, "n": None,
                                "details": {"what": f"head {last}.{ind_head}'s copying score (OV-circuit eigenvalues)"}}},
        "induction": {"previous_token_head": [0, prev_head], "induction_head": [last, ind_head]},
        "notes": [f"head {last}.{ind_head} is the induction head (prefix matching {table[last, ind_head, col['prefix_matching']]:.2f}, "
                  f"copying {table[last, ind_head, col['copying']]:.2f}); head 0.{prev_head} the previous-token head "
                  f"(share to the previous token {table[0, prev_head, col['previous']]:.2f})"],
    }
    run.write_metrics(metrics)
    return metrics
