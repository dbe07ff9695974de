"""Downstream fidelity: splice an SAE's reconstruction back into the transformer and see what changes.

The SAE replaces the activation at its layer for every token it was trained on (special and padding
tokens keep their original activation, as in capture), and the model runs on from there.

- Encoders (MiniLM): the sentence embedding (mean pooling over the attention mask, then L2
  normalisation, as all-MiniLM-L6-v2 is used) of each document with and without the splice:
  ``embedding_cosine`` = mean cos(e, e′); ``neighbour_overlap`` = mean over documents of
  |top-10(e) ∩ top-10(e′)| / 10, where top-10(q) are the 10 documents (other than itself) whose
  *original* embeddings are nearest to q: would a search with the spliced embedding find the same
  documents. The same two numbers with the layer replaced by its mean activation are the floor.
- Causal LMs: next-token cross-entropy with the original layer (CE_orig), the SAE (CE_sae) and the layer
  zeroed (CE_zero); ``ce_loss_recovered`` = (CE_zero − CE_sae) / (CE_zero − CE_orig) (1 = as good as
  the model, 0 = as bad as zero ablation); ``kl_to_original`` = mean over tokens of
  KL(p_orig ‖ p_sae) of the next-token distributions, in nats.

Intervals: percentile bootstrap over documents (200 resamples).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ...analysis.bootstrap import Estimate, bootstrap_ci, mean_estimate
from ...capture import spliced, tokenize


def _batches(tokenizer, texts: Sequence[str], batch_size: int, max_length: int, prepend_bos: bool):
    for a in range(0, len(texts), batch_size):
        yield tokenize(tokenizer, list(texts[a : a + batch_size]), max_length, prepend_bos)


def _replacer(sae, mask_ref: dict, mode: str, mean: torch.Tensor | None = None):
    def replace(out: torch.Tensor) -> torch.Tensor:
        m = mask_ref["mask"].to(out.device)
        new = out.clone()
        sel = out[m]
        if mode == "sae":
            new[m] = sae(sel.float())[0].to(out.dtype)
        elif mode == "mean":
            new[m] = mean.to(out.dtype).expand_as(sel)
        else:  # zero
            new[m] = 0
        return new

    return replace


def sentence_embedding(model, enc) -> torch.Tensor:
    """Mean pooling over the attention mask, then L2 normalisation (how all-MiniLM-L6-v2 is used)."""
    out = model(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).to(out.dtype)
    e = (out * m).sum(1) / m.sum(1).clamp_min(1)
    return torch.nn.functional.normalize(e, dim=-1)


@torch.inference_mode()
def encoder_fidelity(model, tokenizer, layer: str, sae, texts: Sequence[str], *, mean: torch.Tensor, batch_size: int = 32,
                     max_length: int = 128, prepend_bos: bool = False, seed: int = 0, k: int = 10) -> dict[str, Estimate]:
    device = next(model.parameters()).device
    embs: dict[str, list[torch.Tensor]] = {"orig": [], "sae": [], "mean": []}
    ref: dict[str, Any] = {}
    for enc, mask in _batches(tokenizer, texts, batch_size, max_length, prepend_bos):
        enc = {k_: v.to(device) for k_, v in enc.items()}
        ref["mask"] = mask
        embs["orig"].append(sentence_embedding(model, enc))
        for mode in ("sae", "mean"):
            with spliced(model, layer, _replacer(sae, ref, mode, mean)):
                embs[mode].append(sentence_embedding(model, enc))
    e = {k_: torch.cat(v).float().cpu().numpy() for k_, v in embs.items()}
    n = len(texts)
    rng = np.random.default_rng(seed)
    out: dict[str, Estimate] = {}
    kk = min(k, n - 1)
    sims_orig = e["orig"] @ e["orig"].T
    np.fill_diagonal(sims_orig, -np.inf)
    top_orig = np.argsort(-sims_orig, axis=1)[:, :kk]
    for mode, suffix in (("sae", ""), ("mean", "_mean_ablation")):
        cos = (e["orig"] * e[mode]).sum(1)
        out[f"embedding_cosine{suffix}"] = mean_estimate(f"embedding_cosine{suffix}", cos, rng, docs=n)
        if kk >= 1:
            sims = e[mode] @ e["orig"].T
            np.fill_diagonal(sims, -np.inf)
            top = np.argsort(-sims, axis=1)[:, :kk]
            overlap = np.array([len(set(a) & set(b)) / kk for a, b in zip(top_orig, top)])
            out[f"neighbour_overlap{suffix}"] = mean_estimate(f"neighbour_overlap{suffix}", overlap, rng, docs=n, k=kk)
    return out


@torch.inference_mode()
def causal_fidelity(model, tokenizer, layer: str, sae, texts: Sequence[str], *, batch_size: int = 16, max_length: int = 128,
                    prepend_bos: bool = False, seed: int = 0) -> dict[str, Estimate]:
    device = next(model.parameters()).device
    per_doc: dict[str, list[float]] = {"orig": [], "sae": [], "zero": [], "kl": [], "n": []}
    ref: dict[str, Any] = {}
    for enc, mask in _batches(tokenizer, texts, batch_size, max_length, prepend_bos):
        enc = {k_: v.to(device) for k_, v in enc.items()}
        ref["mask"] = mask
        ids = enc["input_ids"]
        target_ok = enc["attention_mask"][:, 1:].bool()

        def logp(mode: str | None) -> torch.Tensor:
            if mode is None:
                return torch.log_softmax(model(**enc).logits[:, :-1].float(), -1)
            with spliced(model, layer, _replacer(sae, ref, mode)):
                return torch.log_softmax(model(**enc).logits[:, :-1].float(), -1)

        lp = {"orig": logp(None), "sae": logp("sae"), "zero": logp("zero")}
        tgt = ids[:, 1:].unsqueeze(-1)
        for mode, l in lp.items():
            nll = -l.gather(-1, tgt).squeeze(-1)
            per_doc[mode].extend(((nll * target_ok).sum(1)).cpu().tolist())
        kl = (lp["orig"].exp() * (lp["orig"] - lp["sae"])).sum(-1)
        per_doc["kl"].extend(((kl * target_ok).sum(1)).cpu().tolist())
        per_doc["n"].extend(target_ok.sum(1).cpu().tolist())
    a = {k_: np.asarray(v, dtype=np.float64) for k_, v in per_doc.items()}
    n_tok = a["n"].sum()
    rng = np.random.default_rng(seed)
    docs = len(texts)

    def ce(mode, i):
        return a[mode][i].sum() / a["n"][i].sum()

    def recovered(i):
        z, s, o = ce("zero", i), ce("sae", i), ce("orig", i)
        return (z - s) / (z - o) if z != o else np.nan

    all_i = np.arange(docs)
    out: dict[str, Estimate] = {}
    lo, hi = bootstrap_ci(recovered, docs, rng)
    out["ce_loss_recovered"] = Estimate("ce_loss_recovered", float(recovered(all_i)), lo, hi, int(n_tok), {"docs": docs})
    for mode in ("orig", "sae", "zero"):
        lo, hi = bootstrap_ci(lambda i, m=mode: ce(m, i), docs, rng)
        out[f"ce_{mode}"] = Estimate(f"ce_{mode}", float(ce(mode, all_i)), lo, hi, int(n_tok), {"docs": docs})
    lo, hi = bootstrap_ci(lambda i: a["kl"][i].sum() / a["n"][i].sum(), docs, rng)
    out["kl_to_original"] = Estimate("kl_to_original", float(a["kl"].sum() / n_tok), lo, hi, int(n_tok), {"docs": docs, "unit": "nats/token"})
    return out
