"""The one attention function that every model here runs through, and the door for Hugging Face models.

``attend(module, q, k, v, mask, scaling)`` computes ``softmax(q·kᵀ·scaling + mask) · v`` in plain torch
(grouped-query attention by repeating the key/value heads, an optional tanh soft-cap and attention sinks)
and, while a recorder is installed (``recording(fn)``; ``capture.attention`` installs one), hands the
recorder the module, the query and key *as the model computed them* (after rotary, where it has it), the
mask, the scale and the probabilities. Nothing is copied from a fused kernel: the probabilities are
recomputed from the model's own projections.

Transformers models reach it through transformers' ``AttentionInterface``: ``register_hf()`` adds an
implementation called ``"latentatlas"`` (and its mask builder, the eager one), and a model switched to it
calls ``attend`` from each of its attention modules. The numbers equal those of the model's eager path;
its sdpa or flash path differs from eager only by kernel round-off.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Iterator

import torch

HF_NAME = "latentatlas"
Recorder = Callable[..., None]
_recorder: ContextVar[Recorder | None] = ContextVar("latentatlas_attention_recorder", default=None)


@contextmanager
def recording(fn: Recorder) -> Iterator[None]:
    """Within the block every ``attend`` call reports to ``fn(module, query=…, key=…, mask=…, scaling=…,
    probs=…, softcap=…)``."""
    token = _recorder.set(fn)
    try:
        yield
    finally:
        _recorder.reset(token)


def scores(query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None, scaling: float,
           softcap: float | None = None) -> torch.Tensor:
    """The pre-softmax attention logits ``q·kᵀ·scaling`` (soft-capped), plus the mask. ``query`` is
    (batch, heads, queries, d), ``key`` (batch, kv_heads, keys, d) with kv_heads dividing heads; ``mask``
    is additive (0 / −inf or a large negative number) or boolean (True = may attend), broadcastable to
    (batch, heads, queries, keys)."""
    key = repeat_kv(key, query.shape[1])
    s = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if softcap:
        s = torch.tanh(s / softcap) * softcap
    if mask is not None:
        mask = mask[..., : key.shape[-2]]
        s = s.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else s + mask
    return s


def repeat_kv(x: torch.Tensor, heads: int) -> torch.Tensor:
    """Key/value heads repeated to ``heads`` (grouped-query attention: query head h reads kv head h // g)."""
    groups = heads // x.shape[1]
    return x if groups == 1 else x.repeat_interleave(groups, dim=1)


def softmax(s: torch.Tensor, sinks: torch.Tensor | None = None, check_empty: bool = True) -> torch.Tensor:
    """Softmax over keys; a row whose every key is masked gives zeros, not NaN. ``sinks`` (one logit per
    head, as gpt-oss has) take part in the normalisation and are then dropped."""
    if sinks is not None:
        s = torch.cat([s, sinks.reshape(1, -1, 1, 1).expand(*s.shape[:-1], 1).to(s.dtype)], dim=-1)
    p = torch.softmax(s.float(), dim=-1)
    if check_empty:  # rows with nothing to attend to (padding queries) give NaN: make them zeros
        dead = torch.isneginf(s.amax(dim=-1, keepdim=True))
        if bool(dead.any()):
            p = p.masked_fill(dead, 0.0)
    return p[..., :-1] if sinks is not None else p


def attend(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None,
           scaling: float | None = None, *, softcap: float | None = None, sinks: torch.Tensor | None = None,
           dropout: float = 0.0, causal_only: bool = False, need_probs: bool = True,
           is_causal: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attention output (batch, queries, heads, d) and probabilities (batch, heads, queries, keys).
    ``causal_only``: the mask is a plain causal one, so no query row is empty (skips that check).
    ``need_probs=False`` (the models trained here, while training or sampling): when no recorder is
    installed the fused ``scaled_dot_product_attention`` kernel runs instead, with ``is_causal`` in place
    of ``mask``, and the probabilities come back as None; a recorder always gets the explicit path."""
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    if not need_probs and softcap is None and sinks is None and _recorder.get() is None:
        # the same numbers up to kernel round-off, without materialising (and differentiating through)
        # the probabilities: about half an induction run's training time was the explicit softmax path
        p_drop = dropout if dropout and getattr(module, "training", False) else 0.0
        out = torch.nn.functional.scaled_dot_product_attention(
            query, repeat_kv(key, query.shape[1]), repeat_kv(value, query.shape[1]),
            attn_mask=None if is_causal else mask, dropout_p=p_drop, is_causal=is_causal, scale=scaling)
        return out.transpose(1, 2).contiguous(), None
    probs = softmax(scores(query, key, mask, scaling, softcap), sinks, check_empty=not causal_only)
    fn = _recorder.get()
    if fn is not None:
        fn(module, query=query, key=key, mask=mask, scaling=float(scaling), probs=probs, softcap=softcap, sinks=sinks)
    p = probs.to(value.dtype)
    if dropout and getattr(module, "training", False):
        p = torch.nn.functional.dropout(p, p=dropout)
    out = torch.matmul(p, repeat_kv(value, query.shape[1]))
    return out.transpose(1, 2).contiguous(), probs


def _hf_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    softcap = kwargs.get("softcap")
    sinks = kwargs.get("s_aux")
    if sinks is None:
        sinks = getattr(module, "sinks", None) if isinstance(getattr(module, "sinks", None), torch.Tensor) else None
    return attend(module, query, key, value, attention_mask, scaling, softcap=softcap, sinks=sinks, dropout=dropout)


_registered = False


def register_hf() -> None:
    """Make ``"latentatlas"`` an attention implementation transformers' models can be switched to."""
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(HF_NAME, _hf_attention)
    AttentionMaskInterface.register(HF_NAME, eager_mask)
    _registered = True


def uses_interface(model: torch.nn.Module) -> bool:
    """Whether a transformers model dispatches its attention through ``AttentionInterface``."""
    can = getattr(model, "_can_set_attn_implementation", None)
    try:
        return bool(can()) if callable(can) else False
    except Exception:  # an old or remote-code model that cannot answer
        return False


@contextmanager
def hf_routed(model: torch.nn.Module) -> Iterator[str]:
    """Within the block the transformers ``model`` runs its attention through ``attend``; the implementation
    it was loaded with (eager, sdpa, flash) is put back afterwards. Yields that implementation's name."""
    register_hf()
    before = getattr(model.config, "_attn_implementation", None) or "eager"
    model.set_attn_implementation(HF_NAME)
    try:
        yield before
    finally:
        model.set_attn_implementation(before)
