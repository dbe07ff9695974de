"""What each SAE latent responds to, gathered in two streaming passes over its codes.

Pass 1 (``FeatureScan.first``): firing counts and the largest activation of every latent, plus its top
``k`` activations and the rows they came from (a running top-k merged chunk by chunk).
Pass 2 (``FeatureScan.second``): a histogram of each latent's non-zero activations over ``bins`` equal
bins from 0 to its maximum, one example row per (latent, bin) drawn uniformly at random among the
tokens in that bin (a random key per token, the largest key wins), and the tokens that fire it most
often. Memory: O(d_sae · (k + bins + tokens kept)), independent of the number of tokens.

All inputs are torch tensors: ``f`` [n, d_sae] codes, ``rows`` [n] global store rows, ``token_ids`` [n].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class FeatureTables:
    n_tokens: int
    fires: np.ndarray  # [d_sae] int64
    max_act: np.ndarray  # [d_sae]
    top_vals: np.ndarray  # [d_sae, k], descending; 0 where fewer than k firings
    top_rows: np.ndarray  # [d_sae, k] int64, -1 where empty
    hist: np.ndarray  # [d_sae, bins] int64 over (0, max_act]
    bin_rows: np.ndarray  # [d_sae, bins] int64: a random example per bin, -1 where empty
    token_ids: np.ndarray  # [d_sae, t] int64: tokens most often firing the latent, -1 where empty
    token_counts: np.ndarray  # [d_sae, t] int64

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: np.ascontiguousarray(v) for k, v in self.__dict__.items() if isinstance(v, np.ndarray)}


class FeatureScan:
    def __init__(self, d_sae: int, k: int = 32, bins: int = 32, top_tokens: int = 16, seed: int = 0):
        self.d_sae, self.k, self.bins, self.t = d_sae, k, bins, top_tokens
        self.n = 0
        self.fires = torch.zeros(d_sae, dtype=torch.int64)
        self.max_act = torch.zeros(d_sae)
        self.top_vals = torch.zeros(k, d_sae)
        self.top_rows = torch.full((k, d_sae), -1, dtype=torch.int64)
        self.hist = torch.zeros(d_sae, bins, dtype=torch.int64)
        self.best_key = torch.full((d_sae * bins,), -1, dtype=torch.int64)
        self.gen = torch.Generator().manual_seed(seed)
        self.pairs: dict[int, int] = {}
        self._pair_chunks: list[torch.Tensor] = []

    @torch.no_grad()
    def first(self, f: torch.Tensor, rows: torch.Tensor) -> None:
        f = f.float().cpu()
        rows = rows.cpu()
        self.n += len(f)
        self.fires += (f > 0).sum(0)
        torch.maximum(self.max_act, f.max(0).values, out=self.max_act)
        vals = torch.cat([self.top_vals, f])
        idx = torch.cat([self.top_rows, rows[:, None].expand(-1, self.d_sae)])
        top = torch.topk(vals, min(self.k, len(vals)), dim=0)
        self.top_vals = top.values
        self.top_rows = torch.gather(idx, 0, top.indices)

    @torch.no_grad()
    def second(self, f: torch.Tensor, rows: torch.Tensor, token_ids: torch.Tensor) -> None:
        f = f.float().cpu()
        tok, lat = torch.nonzero(f > 0, as_tuple=True)
        if not len(tok):
            return
        v = f[tok, lat]
        width = (self.max_act[lat] / self.bins).clamp_min(1e-12)
        b = torch.clamp((v / width).long(), max=self.bins - 1)
        cell = lat * self.bins + b
        self.hist.view(-1).index_add_(0, cell, torch.ones_like(cell))
        # a uniformly random example per cell: random high bits, the row in the low 32 bits, keep the max
        r = rows.cpu()[tok]
        key = (torch.randint(0, 1 << 30, (len(tok),), generator=self.gen, dtype=torch.int64) << 32) | r
        self.best_key.scatter_reduce_(0, cell, key, reduce="amax")
        self._pair_chunks.append(lat.to(torch.int64) * (1 << 32) + token_ids.cpu()[tok].to(torch.int64))
        if sum(len(c) for c in self._pair_chunks) > 4_000_000:
            self._fold_pairs()

    def _fold_pairs(self) -> None:
        if not self._pair_chunks:
            return
        keys, counts = torch.unique(torch.cat(self._pair_chunks), return_counts=True)
        for key, c in zip(keys.tolist(), counts.tolist()):
            self.pairs[key] = self.pairs.get(key, 0) + c
        self._pair_chunks = []

    def result(self) -> FeatureTables:
        self._fold_pairs()
        token_ids = np.full((self.d_sae, self.t), -1, dtype=np.int64)
        token_counts = np.zeros((self.d_sae, self.t), dtype=np.int64)
        if self.pairs:
            keys = np.fromiter(self.pairs.keys(), dtype=np.int64, count=len(self.pairs))
            counts = np.fromiter(self.pairs.values(), dtype=np.int64, count=len(self.pairs))
            lat, tid = keys >> 32, keys & 0xFFFFFFFF
            order = np.lexsort((-counts, lat))
            lat, tid, counts = lat[order], tid[order], counts[order]
            starts = np.searchsorted(lat, np.arange(self.d_sae))
            ends = np.searchsorted(lat, np.arange(self.d_sae), side="right")
            for i in np.nonzero(ends > starts)[0]:
                m = min(self.t, ends[i] - starts[i])
                token_ids[i, :m] = tid[starts[i] : starts[i] + m]
                token_counts[i, :m] = counts[starts[i] : starts[i] + m]
        best = self.best_key.view(self.d_sae, self.bins)
        bin_rows = torch.where(best >= 0, best & 0xFFFFFFFF, torch.full_like(best, -1))
        top_rows = torch.where(self.top_vals > 0, self.top_rows, torch.full_like(self.top_rows, -1))
        return FeatureTables(
            n_tokens=self.n, fires=self.fires.numpy(), max_act=self.max_act.numpy(),
            top_vals=self.top_vals.t().contiguous().numpy(), top_rows=top_rows.t().contiguous().numpy(),
            hist=self.hist.numpy(), bin_rows=bin_rows.numpy(), token_ids=token_ids, token_counts=token_counts,
        )


def decoder_neighbours(w_dec: np.ndarray, i: int, n: int = 10) -> list[tuple[int, float]]:
    """The ``n`` latents whose decoder directions have the largest cosine with latent ``i``'s."""
    w = w_dec / np.maximum(np.linalg.norm(w_dec, axis=1, keepdims=True), 1e-12)
    cos = w @ w[i]
    cos[i] = -np.inf
    top = np.argsort(-cos)[:n]
    return [(int(j), float(cos[j])) for j in top]
