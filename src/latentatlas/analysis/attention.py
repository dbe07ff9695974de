"""Attention statistics: per-head summaries over a corpus, the induction-circuit scores of Olsson et al.
(2022), and the neuron view's arithmetic. Pure functions on tensors (probabilities are (batch, heads,
queries, keys)); docs/metrics.md gives each formula.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

# the corpus statistics, in the order HeadStats.result() returns them
CORPUS_STATS = ("entropy", "distance", "first", "self", "previous")
STAT_NAMES = (*CORPUS_STATS, "prefix_matching", "copying")


@dataclass
class HeadStats:
    """Streams per-head corpus statistics batch by batch (nothing the size of a corpus is kept).

    For query i with probabilities p_ij over its allowed keys j: entropy −Σ p log p (nats), mean attention
    distance Σ p_ij |i − j| (tokens), and the share to the first token (j = 0), to itself (j = i) and to the
    previous token (j = i − 1, queries i ≥ 1 only). Each is averaged over every valid query token of every
    document (``valid`` marks the real tokens; padding neither queries nor counts)."""
    n_layers: int
    n_heads: int
    sums: np.ndarray = field(init=False)
    counts: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.sums = np.zeros((self.n_layers, self.n_heads, len(CORPUS_STATS)))
        self.counts = np.zeros((self.n_layers, len(CORPUS_STATS)))

    def add(self, layer: int, probs: torch.Tensor, valid: torch.Tensor | None = None) -> None:
        p = probs.float()
        b, h, t, s = p.shape
        q = torch.ones(b, t, dtype=torch.bool, device=p.device) if valid is None else valid[:, :t].bool().to(p.device)
        w = q.to(p.dtype)[:, None, :]  # (b, 1, t): which queries count
        # one pass each over the (b, h, t, s) probabilities, no temporaries of that size beyond entr's (the head
        # atlas's cost over a bare forward is mostly this function: bench/head_atlas_overhead.py)
        entropy = (torch.special.entr(p).sum(-1) * w).sum((0, 2))  # entr: −p log p, 0 at p = 0
        pos_q = torch.arange(t, device=p.device, dtype=p.dtype)[:, None]
        pos_k = torch.arange(s, device=p.device, dtype=p.dtype)[None, :]
        offset = s - t  # keys before the first query (a cache); 0 here
        dmat = (pos_q + offset - pos_k).abs()  # (t, s): |i − j|
        # Σ_j p_ij |i − j| for every row: a batched matrix–vector product over the query axis
        dist = torch.bmm(p.reshape(b * h, t, s).transpose(0, 1), dmat[:, :, None]).reshape(t, b, h).permute(1, 2, 0)
        distance = (dist * w).sum((0, 2))
        first = (p[..., 0] * w).sum((0, 2))
        diag = torch.diagonal(p[..., offset:offset + t], dim1=-2, dim2=-1)
        self_share = (diag * w).sum((0, 2))
        prev = torch.diagonal(p[..., offset:offset + t], offset=-1, dim1=-2, dim2=-1)  # (b, h, t − 1): p[i, i−1] for i ≥ 1
        w_prev = w[..., 1:]
        previous = (prev * w_prev).sum((0, 2))
        n, n_prev = float(q.sum()), float(q[:, 1:].sum())
        self.sums[layer] += torch.stack([entropy, distance, first, self_share, previous], dim=-1).cpu().double().numpy()
        self.counts[layer] += [n, n, n, n, n_prev]

    def result(self) -> np.ndarray:
        """(layers, heads, 5): the means, NaN where nothing was counted."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sums / self.counts[:, None, :]


def prefix_matching(probs: torch.Tensor, half: int, offset: int = 0) -> np.ndarray:
    """Olsson et al.'s prefix-matching score per head, on a sequence of ``half`` random tokens repeated
    (starting at position ``offset``, e.g. 1 after a BOS): the attention a token in the second copy pays to
    the token that followed its earlier occurrence — query ``offset + half + j`` to key ``offset + j + 1`` —
    averaged over j and the batch. An induction head scores near 1, a head that ignores content near 1/i."""
    p = probs.float()
    j = torch.arange(half, device=p.device)
    qi, ki = offset + half + j, offset + j + 1
    return p[:, :, qi, ki].mean(dim=(0, 2)).cpu().numpy()


def copying_score(ov: torch.Tensor | np.ndarray) -> float:
    """Σ Re λ / Σ |λ| over the eigenvalues λ of a head's OV circuit ``W_U W_O W_V W_E`` (Elhage et al.
    2021): +1 when every eigenvalue is positive (attending to a token raises that token's logit: copying),
    −1 when all are negative. Pass the circuit in any form with the same nonzero eigenvalues (a cyclic
    permutation of the product, e.g. the d_head × d_head ``W_V W_E W_U W_O``)."""
    m = torch.as_tensor(ov, dtype=torch.float64)
    lam = torch.linalg.eigvals(m)
    total = float(lam.abs().sum())
    return float(lam.real.sum()) / total if total > 0 else float("nan")


def neuron(query: torch.Tensor, key: torch.Tensor, head: int, position: int, scaling: float,
           mask: torch.Tensor | None = None, softcap: float | None = None) -> dict[str, np.ndarray]:
    """The neuron view for one head and one query token of the first sequence in a batch, recomputed from
    the model's own query (batch, heads, queries, d) and key (batch, kv_heads, keys, d): ``q`` (d), every
    key ``k`` (keys, d; the kv head this query head reads, under grouped-query attention), ``q ⊙ k``
    (keys, d), the scores ``q·k·scaling`` (soft-capped) plus the mask row (keys), and their softmax."""
    groups = query.shape[1] // key.shape[1]
    q = query[0, head, position].double()
    k = key[0, head // groups].double()
    qk = q[None, :] * k
    s = qk.sum(-1) * scaling
    if softcap:
        s = torch.tanh(s / softcap) * softcap
    if mask is not None:
        m = mask[0, 0 if mask.shape[1] == 1 else head, position, : k.shape[0]] if mask.ndim == 4 else mask[..., : k.shape[0]].reshape(-1)
        s = s.masked_fill(~m, float("-inf")) if m.dtype == torch.bool else s + m.double()
    p = torch.softmax(s, dim=-1).nan_to_num(0.0)
    return {"q": q.numpy(), "k": k.numpy(), "qk": qk.numpy(), "scores": s.numpy(), "probs": p.numpy()}


def phase_change(steps: np.ndarray, icl: np.ndarray) -> int | None:
    """The step at which the in-context-learning score (loss on the repeat − loss on the first copy)
    first falls below half of its final value, the moment the induction head forms; None if it never
    falls (the final score is not below −0.1 nats)."""
    steps, icl = np.asarray(steps), np.asarray(icl, dtype=float)
    ok = np.isfinite(icl)
    if not ok.any():
        return None
    steps, icl = steps[ok], icl[ok]
    final = float(np.median(icl[-max(1, len(icl) // 10):]))
    if final > -0.1:
        return None
    below = np.nonzero(icl <= final / 2)[0]
    return int(steps[below[0]]) if len(below) else None
