"""Sparse-autoencoder metrics, accumulated in one streaming pass over (x, x̂, f) batches.

Feed :class:`SAEStats` with ``update(x, x_hat, f)`` (numpy or torch, [tokens, d] and [tokens, d_sae]) in
store order, then ``result()``. Memory is O(d_sae + blocks·d): nothing per token is kept. Intervals are
a block bootstrap over consecutive blocks of ``block`` tokens (tokens of one document are correlated, so
resampling single tokens would make the intervals too narrow). Definitions (docs/metrics.md):

- L0: mean number of non-zero latents per token.
- MSE: mean over tokens of ‖x − x̂‖² (summed over the d dims, raw activation space).
- FVU = Σ‖x − x̂‖² / Σ‖x − x̄‖², x̄ the mean activation over the evaluated tokens: the *centred*
  fraction of variance unexplained; explained variance = 1 − FVU. (An uncentred denominator Σ‖x‖²
  flatters every SAE on activations with a large mean; SAELens reported that for a year, its #659.)
- cosine: mean over tokens of cos(x, x̂).
- relative reconstruction bias γ = E‖x̂‖² / E[x̂·x], the minimiser of E‖x̂/γ − x‖² (Rajamanoharan et
  al. 2024): 1 is unbiased, below 1 is shrinkage.
- dead fraction: latents that never fired on the evaluated tokens; dense fraction: latents firing on
  more than ``dense_threshold`` of them; density histogram over log10(firing rate).
"""

from __future__ import annotations

import math

import numpy as np

from .bootstrap import Estimate, _percentiles, _rng

__all__ = ["SAEStats", "relative_reconstruction_bias", "fvu", "support_bits", "VALUE_BITS"]

VALUE_BITS = 16  # an active latent's value stored as float16


def support_bits(density) -> float:
    """Σ_i H_b(p_i): bits per token to code which latents are active, each latent an independent
    Bernoulli with its firing rate p_i (ideal entropy coding; an upper bound on the support's entropy)."""
    p = np.clip(np.asarray(density, dtype=np.float64), 0.0, 1.0)
    q = p[(p > 0) & (p < 1)]
    return float(-(q * np.log2(q) + (1 - q) * np.log2(1 - q)).sum())


def _np(a) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def fvu(x, x_hat) -> float:
    """Centred fraction of variance unexplained of ``x_hat`` for ``x`` ([n, d]), in one call."""
    x, x_hat = _np(x), _np(x_hat)
    return float(((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())


def relative_reconstruction_bias(x, x_hat) -> float:
    x, x_hat = _np(x), _np(x_hat)
    return float((x_hat**2).sum() / (x_hat * x).sum())


class SAEStats:
    """Streaming accumulator of the SAE metrics, with per-block sums for the block bootstrap."""

    def __init__(self, d_sae: int, block: int = 1024, dense_threshold: float = 0.1):
        self.d_sae = d_sae
        self.block = block
        self.dense_threshold = dense_threshold
        self.fires = np.zeros(d_sae, dtype=np.int64)
        self.max_act = np.zeros(d_sae, dtype=np.float64)
        self.blocks: list[dict[str, np.ndarray | float]] = []
        self._cur = None
        self.n = 0

    def _new_block(self, d: int) -> dict:
        return {"n": 0, "err": 0.0, "sq": 0.0, "sum": np.zeros(d), "l0": 0.0, "cos": 0.0, "xh2": 0.0, "xhx": 0.0}

    def update(self, x, x_hat, f) -> None:
        x, x_hat, f = _np(x), _np(x_hat), _np(f)
        if x.shape != x_hat.shape or x.shape[0] != f.shape[0] or f.shape[1] != self.d_sae:
            raise ValueError(f"shapes do not fit: x {x.shape}, x_hat {x_hat.shape}, f {f.shape} (d_sae {self.d_sae})")
        active = f != 0
        self.fires += active.sum(0)
        np.maximum(self.max_act, f.max(0), out=self.max_act)
        err = ((x - x_hat) ** 2).sum(1)
        sq = (x**2).sum(1)
        nx, nh = np.linalg.norm(x, axis=1), np.linalg.norm(x_hat, axis=1)
        cos = (x * x_hat).sum(1) / np.maximum(nx * nh, 1e-12)
        l0 = active.sum(1)
        xh2 = (x_hat**2).sum(1)
        xhx = (x_hat * x).sum(1)
        i = 0
        while i < len(x):
            if self._cur is None or self._cur["n"] >= self.block:
                self._cur = self._new_block(x.shape[1])
                self.blocks.append(self._cur)
            take = min(self.block - self._cur["n"], len(x) - i)
            s = slice(i, i + take)
            b = self._cur
            b["n"] += take
            b["err"] += err[s].sum()
            b["sq"] += sq[s].sum()
            b["sum"] += x[s].sum(0)
            b["l0"] += l0[s].sum()
            b["cos"] += cos[s].sum()
            b["xh2"] += xh2[s].sum()
            b["xhx"] += xhx[s].sum()
            i += take
        self.n += len(x)

    # -- results -----------------------------------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        keys = ("n", "err", "sq", "l0", "cos", "xh2", "xhx")
        out = {k: np.array([b[k] for b in self.blocks], dtype=np.float64) for k in keys}
        out["sum"] = np.stack([b["sum"] for b in self.blocks])
        return out

    @staticmethod
    def _stats(a: dict[str, np.ndarray], w: np.ndarray) -> dict[str, float]:
        """The metrics of blocks weighted by ``w`` (resample counts; all ones for the plain estimate)."""
        n = (w * a["n"]).sum()
        s = (w[:, None] * a["sum"]).sum(0)
        mean = s / n
        centred = (w * a["sq"]).sum() - n * float(mean @ mean)
        err = (w * a["err"]).sum()
        return {
            "l0": (w * a["l0"]).sum() / n,
            "mse": err / n,
            "fvu": err / centred if centred > 0 else math.nan,
            "cosine": (w * a["cos"]).sum() / n,
            "relative_reconstruction_bias": (w * a["xh2"]).sum() / (w * a["xhx"]).sum(),
        }

    def result(self, rng=None, num_resamples: int = 200) -> dict[str, Estimate]:
        if not self.n:
            raise ValueError("no tokens were evaluated")
        a = self._arrays()
        nb = len(a["n"])
        point = self._stats(a, np.ones(nb))
        rng = _rng(rng)
        draws = {k: [] for k in point}
        if num_resamples and nb > 1:
            for _ in range(num_resamples):
                w = np.bincount(rng.integers(0, nb, nb), minlength=nb).astype(np.float64)
                for k, v in self._stats(a, w).items():
                    draws[k].append(v)
        out: dict[str, Estimate] = {}
        for k, v in point.items():
            lo, hi = _percentiles(np.array([d for d in draws[k] if np.isfinite(d)]), 0.05) if draws[k] else (None, None)
            out[k] = Estimate(k, float(v), lo, hi, self.n, {"ci": f"block bootstrap over {nb} blocks of {self.block} tokens"})
        fvu_est = out["fvu"]
        out["explained_variance"] = Estimate("explained_variance", 1 - fvu_est.value,
                                             None if fvu_est.ci_high is None else 1 - fvu_est.ci_high,
                                             None if fvu_est.ci_low is None else 1 - fvu_est.ci_low, self.n, {"ci": "1 − FVU's interval"})
        density = self.fires / self.n
        dead = float((self.fires == 0).mean())
        dense = float((density > self.dense_threshold).mean())
        out["dead_fraction"] = Estimate("dead_fraction", dead, None, None, self.n,
                                        {"ci": "a count over latents, not an estimate", "window_tokens": self.n})
        out["dense_fraction"] = Estimate("dense_fraction", dense, None, None, self.n, {"threshold": self.dense_threshold})
        sb = support_bits(density)
        out["rate_support_bits"] = Estimate("rate_support_bits", sb, None, None, self.n,
                                            {"definition": "sum_i H_b(p_i), p_i = firing rate of latent i", "ci": "plug-in, no interval"})
        out["rate_bits"] = Estimate("rate_bits", sb + VALUE_BITS * point["l0"], None, None, self.n,
                                    {"definition": f"rate_support_bits + {VALUE_BITS} * L0 (active values as float16)", "ci": "plug-in, no interval"})
        return out

    def mean(self) -> np.ndarray:
        """The mean activation over the evaluated tokens (x̄ of the FVU)."""
        return sum(b["sum"] for b in self.blocks) / max(self.n, 1)

    def density(self) -> np.ndarray:
        return self.fires / max(self.n, 1)

    def density_histogram(self, bins: int = 40) -> dict[str, list]:
        """Histogram of log10(firing rate) over the latents that fired; dead latents counted apart."""
        dens = self.density()
        alive = dens[dens > 0]
        lo = math.floor(math.log10(1 / max(self.n, 1)))
        counts, edges = np.histogram(np.log10(alive), bins=bins, range=(lo, 0)) if alive.size else (np.zeros(bins, int), np.linspace(lo, 0, bins + 1))
        return {"log10_density_edges": edges.tolist(), "counts": counts.astype(int).tolist(), "dead": int((dens == 0).sum())}
