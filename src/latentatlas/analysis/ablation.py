"""How much an ablation changed a model's output, per item (image or text), so that an interval can be
taken over the batch (``bootstrap.mean_estimate``, ``psnr_estimate``).

Autoencoders: mean squared error and PSNR of an image against a reference (the unablated decode, or the
input). Language models: the KL divergence from the unablated next-token distribution to the ablated one,
and the change of cross-entropy on the true next token. Encoders: the cosine between the unablated and
ablated embeddings. Every function takes arrays or tensors and returns one float64 value per item.
"""

from __future__ import annotations

import math

import numpy as np

from latentatlas.analysis.bootstrap import Estimate, bootstrap_ci
from latentatlas.errors import LatentAtlasError

__all__ = ["mse", "psnr", "psnr_estimate", "psnr_change_estimate", "next_token_kl", "cross_entropy", "cosine"]


def _np(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        x = x.detach().double().cpu().numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise LatentAtlasError(f"{name} must be a numeric array, got {type(x).__name__}") from exc


def _same_shape(a: np.ndarray, b: np.ndarray, an: str, bn: str) -> None:
    if a.shape != b.shape:
        raise LatentAtlasError(f"{an} has shape {a.shape} but {bn} has {b.shape}; expected the same shape")
    if a.ndim < 1 or a.shape[0] == 0:
        raise LatentAtlasError(f"{an} must hold at least one item (a leading batch axis), got shape {a.shape}")


def mse(a, b) -> np.ndarray:
    """Per-item mean squared error over every axis but the first: (N, …) × (N, …) → (N,)."""
    a, b = _np(a, "a"), _np(b, "b")
    _same_shape(a, b, "a", "b")
    return ((a - b) ** 2).reshape(len(a), -1).mean(axis=1)


def psnr(mse_value, data_range: float = 1.0):
    """Peak signal-to-noise ratio 10·log10(R² / MSE) in dB (R the data range); +inf where MSE is 0."""
    m = _np(mse_value, "mse")
    if np.any(m < 0):
        raise LatentAtlasError("mse must be non-negative")
    with np.errstate(divide="ignore"):
        out = 10.0 * np.log10(data_range**2 / m)
    return float(out) if out.ndim == 0 else out


def psnr_estimate(name: str, per_item_mse, rng: np.random.Generator, num_resamples: int = 200, data_range: float = 1.0) -> Estimate:
    """PSNR of the batch's mean MSE, with the interval of the mean MSE mapped through it. Per-image PSNR
    is not averaged: one identical image (MSE 0) would make the mean infinite. PSNR falls as MSE rises, so
    the mean MSE's percentile interval maps onto PSNR's with its ends swapped."""
    m = _np(per_item_mse, "mse")
    lo, hi = bootstrap_ci(lambda i: m[i].mean(), len(m), rng, num_resamples)
    return Estimate(name, psnr(m.mean(), data_range), psnr(hi, data_range) if math.isfinite(hi) else math.nan,
                    psnr(lo, data_range) if math.isfinite(lo) else math.nan, len(m), {"data_range": data_range})


def psnr_change_estimate(name: str, mse_base, mse_ablated, rng: np.random.Generator, num_resamples: int = 200,
                         data_range: float = 1.0) -> Estimate:
    """PSNR(ablated) − PSNR(unablated), each against the same references (the inputs), from the batch's mean
    MSEs; both are recomputed on the same resampled items, so the interval is of the paired change."""
    b, a = _np(mse_base, "mse_base"), _np(mse_ablated, "mse_ablated")
    _same_shape(b, a, "mse_base", "mse_ablated")

    def change(i: np.ndarray) -> float:
        return float(psnr(a[i].mean(), data_range) - psnr(b[i].mean(), data_range))

    lo, hi = bootstrap_ci(change, len(a), rng, num_resamples)
    return Estimate(name, change(np.arange(len(a))), lo, hi, len(a), {"data_range": data_range})


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _masked_mean(values: np.ndarray, mask, name: str) -> np.ndarray:
    """(N, T) values averaged over each row's masked-in positions: (N,)."""
    if mask is None:
        return values.mean(axis=1)
    m = np.asarray(mask, dtype=bool) if not hasattr(mask, "detach") else mask.detach().cpu().numpy().astype(bool)
    if m.shape != values.shape:
        raise LatentAtlasError(f"{name} mask has shape {m.shape}; expected {values.shape}, one entry per position")
    count = m.sum(axis=1)
    if np.any(count == 0):
        raise LatentAtlasError(f"{name} mask leaves item {int(np.argmin(count))} with no position to average over")
    return (values * m).sum(axis=1) / count


def next_token_kl(logits_base, logits_ablated, mask=None) -> np.ndarray:
    """Per-text mean over positions of KL(p_base ‖ p_ablated) = Σ_v p_base(v)·(log p_base(v) − log p_ablated(v))
    in nats, from (N, T, V) logits; ``mask`` (N, T) keeps the real (not padding) positions."""
    a, b = _np(logits_base, "logits_base"), _np(logits_ablated, "logits_ablated")
    _same_shape(a, b, "logits_base", "logits_ablated")
    if a.ndim != 3:
        raise LatentAtlasError(f"logits must be (texts, positions, vocabulary), got shape {a.shape}")
    lp, lq = _log_softmax(a), _log_softmax(b)
    kl = (np.exp(lp) * (lp - lq)).sum(axis=-1)
    return _masked_mean(np.maximum(kl, 0.0), mask, "KL")  # rounding can leave -1e-17 where the distributions agree


def cross_entropy(logits, targets, mask=None) -> np.ndarray:
    """Per-text mean over positions of −log softmax(logits)[target] in nats: (N, T, V) logits, (N, T) target ids."""
    lg = _np(logits, "logits")
    t = np.asarray(targets.detach().cpu().numpy() if hasattr(targets, "detach") else targets)
    if lg.ndim != 3 or t.shape != lg.shape[:2]:
        raise LatentAtlasError(f"cross_entropy needs (N, T, V) logits and (N, T) targets, got {lg.shape} and {t.shape}")
    if t.dtype.kind not in "iu" or (t.size and (t.min() < 0 or t.max() >= lg.shape[-1])):
        raise LatentAtlasError(f"targets must be token ids in 0..{lg.shape[-1] - 1}")
    nll = -np.take_along_axis(_log_softmax(lg), t[..., None].astype(np.int64), axis=-1)[..., 0]
    return _masked_mean(nll, mask, "cross-entropy")


def cosine(a, b, eps: float = 1e-12) -> np.ndarray:
    """Per-item cosine ⟨a, b⟩ / (‖a‖·‖b‖) of (N, D) vectors; 0 where either vector is zero."""
    a, b = _np(a, "a"), _np(b, "b")
    _same_shape(a, b, "a", "b")
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.where(norms > eps, (a * b).sum(axis=1) / np.maximum(norms, eps), 0.0)
