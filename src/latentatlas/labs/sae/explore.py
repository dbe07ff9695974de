"""What the explorer shows about an SAE: the feature list, a feature's page, the text probe, steering.

``SAEExplorer(run)`` loads lazily what each question needs (the SAE, its feature tables from
``sae eval``, the store's token table, the transformer for the probe and steering) and answers in plain
dicts, so the server is a thin layer over it and a notebook can use it directly.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import numpy as np
import torch

from ...atlas import Run
from ...errors import LatentAtlasError

CONTEXT = 10  # tokens either side of an example
_CLOSERS = {".", ",", ";", ":", "!", "?", ")", "]", "}", "%"}
_OPENERS = {"(", "[", "{"}
MAX_PROBE_CHARS = 4000
MAX_ALPHA = 100.0  # steering strength, in units of the layer's median activation norm
DOSES = (0.25, 0.5, 1.0, 2.0, 4.0)  # the strengths every steering answer also reports
CONTROLS = 32  # random directions of the same norm per strength
TARGETS, MIN_TARGETS, TARGET_POOL = 10, 3, 16


def display_tokens(tokens: list[str]) -> list[str]:
    """Token strings as they read in running text. Byte-level BPE (GPT-2: 'Ġ' marks a space, 'Ċ' a
    newline) and sentencepiece ('▁') carry their own spaces; WordPiece (BERT) gets a space before each
    word except '##' continuations, closing punctuation and what follows an opening bracket."""
    if any(("Ġ" in t or "Ċ" in t) for t in tokens):
        return [t.replace("Ġ", " ").replace("Ċ", "\n") for t in tokens]
    if any(t.startswith("▁") for t in tokens):
        return [t.replace("▁", " ") for t in tokens]
    out = []
    for i, t in enumerate(tokens):
        if t.startswith("##"):
            out.append(t[2:])
        elif i == 0 or t in _CLOSERS or tokens[i - 1] in _OPENERS:
            out.append(t)
        else:
            out.append(" " + t)
    return out


class SAEExplorer:
    def __init__(self, run: Run):
        self.run = run
        cfg = run.config()
        if cfg.get("kind") != "sae":
            raise LatentAtlasError(f"run '{run.name}' is a {cfg.get('kind')}, not an SAE")
        self.cfg = cfg
        from .jobs import sae_data

        self.store = run.atlas.activations(sae_data(run, cfg)["name"])
        self._lock = threading.RLock()
        self._sae = self._tables = self._tokens = self._tf = self._index = None
        self._lookup: dict[int, str] | None = None
        self._freq: np.ndarray | None = None
        self._w_u: torch.Tensor | None = None
        self._w_u_loaded = False

    # -- lazily loaded pieces ----------------------------------------------------------------------
    @property
    def sae(self):
        with self._lock:
            if self._sae is None:
                self._sae = self.run.load_model().eval()
            return self._sae

    @property
    def tables(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        with self._lock:
            if self._tables is None:
                got = self.run.read_features()
                if got is None:
                    raise LatentAtlasError(f"run '{self.run.name}' has no feature tables yet; run `latentatlas sae eval {self.run.name}`")
                self._tables = self._checked(*got)
            return self._tables

    def _checked(self, a: dict[str, np.ndarray], meta: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The feature tables as ``sae eval`` writes them: every array one row per latent, the widths the
        meta says, and every stored row or token a valid one (the tables are read from the atlas, which is
        untrusted)."""
        d, n = self.d_sae, self.store.n_tokens
        widths = {"fires": None, "max_act": None, "top_vals": meta["k"], "top_rows": meta["k"], "hist": meta["bins"],
                  "bin_rows": meta["bins"], "token_ids": None, "token_counts": None}
        hint = f"; re-run `latentatlas sae eval {self.run.name}`"
        for key, width in widths.items():
            x = a.get(key)
            if x is None or x.shape[:1] != (d,) or (width is not None and x.shape != (d, width)) or (key in ("token_ids", "token_counts") and x.ndim != 2):
                raise LatentAtlasError(f"feature tables of run '{self.run.name}' hold no '{key}' of {d} rows{' × ' + str(width) if width else ''}{hint}")
        if a["token_ids"].shape != a["token_counts"].shape:
            raise LatentAtlasError(f"feature tables of run '{self.run.name}' have token ids and counts of different shapes{hint}")
        for key in ("top_rows", "bin_rows"):
            if a[key].size and (int(a[key].max()) >= n or int(a[key].min()) < -1):
                raise LatentAtlasError(f"feature tables of run '{self.run.name}' point at rows outside store '{self.store.name}' ({n:,} tokens){hint}")
        if meta["n_tokens"] > n:
            raise LatentAtlasError(f"feature tables of run '{self.run.name}' claim {meta['n_tokens']:,} scanned tokens; store '{self.store.name}' has {n:,}{hint}")
        if not np.all(np.isfinite(a["max_act"])):
            raise LatentAtlasError(f"feature tables of run '{self.run.name}' hold non-finite activations{hint}")
        return a, meta

    @property
    def tokens(self):
        with self._lock:
            if self._tokens is None:
                t = self.store.tokens()
                t["text"] = display_tokens(t["token"].tolist())
                self._tokens = t
            return self._tokens

    @property
    def transformer(self):
        from ...models.hf import load_transformer

        with self._lock:
            if self._tf is None:
                self._tf = load_transformer(self.store.index["model"], device="cpu")
            return self._tf

    @property
    def d_sae(self) -> int:
        return int(self.sae.config.d_sae)

    def _check_feature(self, i: int) -> int:
        if not 0 <= i < self.d_sae:
            raise LatentAtlasError(f"feature {i} is out of range; this SAE has features 0..{self.d_sae - 1}")
        return i

    # -- the feature list --------------------------------------------------------------------------
    def feature_list(self, sort: str = "interpretability", order: str = "desc", offset: int = 0, limit: int = 100,
                     token: str | None = None) -> dict[str, Any]:
        a, meta = self.tables
        density = a["fires"] / max(meta["n_tokens"], 1)
        focus = self.interpretability()
        keys = {"interpretability": focus, "density": density, "max_act": a["max_act"], "id": np.arange(self.d_sae)}
        if sort not in keys:
            raise LatentAtlasError(f"sort '{sort}' is not a feature column; expected interpretability, density, max_act or id")
        ids = np.arange(self.d_sae)
        if token:
            vocab = self._vocab_ids(token)
            ids = ids[np.isin(a["token_ids"][:, :3], vocab).any(1)]
        ids = ids[np.argsort(keys[sort][ids], kind="stable")]
        if order == "desc":
            ids = ids[::-1]
        page = ids[offset : offset + limit]
        items = [{"id": int(i), "density": float(density[i]), "max_act": float(a["max_act"][i]), "interpretability": float(focus[i]),
                  "top_tokens": self._token_texts(a["token_ids"][i][:3])} for i in page]
        dead = int((a["fires"] == 0).sum())
        return {"total": int(len(ids)), "offset": offset, "n_tokens": meta["n_tokens"], "items": items, "dead": dead,
                "dead_note": (f"{dead:,} features never fired on the {meta['n_tokens']:,} tokens scanned (dead: their encoder never "
                              "gives them a positive activation there); they sort last and have no page to show") if dead else None}

    def interpretability(self) -> np.ndarray:
        """A simple interpretability proxy per feature (docs/metrics.md, "Feature tables"): the share of
        its firings on its three most frequent tokens, counted only for features that fire on at least 20
        scanned tokens, at most 1% of them, and whose top token is a word (letters or digits); 0
        otherwise, so dense and punctuation features sort after the concentrated word features."""
        a, _ = self.tables
        fires = a["fires"].astype(np.float64)
        share = a["token_counts"][:, :3].clip(min=0).sum(1) / np.maximum(fires, 1)
        density = fires / max(self.tables[1]["n_tokens"], 1)
        lookup = self._token_lookup()
        wordy = np.array([any(ch.isalnum() for ch in lookup.get(int(t), "")) if t >= 0 else False for t in a["token_ids"][:, 0]])
        return np.where((fires >= 20) & (density <= 0.01) & wordy, share, 0.0)

    def _vocab_ids(self, token: str) -> np.ndarray:
        t = self.tokens
        norm = t["text"].str.strip().str.lower()
        return np.unique(t.loc[norm == token.strip().lower(), "token_id"].to_numpy())

    def _token_texts(self, ids: np.ndarray) -> list[str]:
        lookup = self._token_lookup()
        return [lookup.get(int(i), "?") for i in ids if i >= 0]

    def _token_lookup(self) -> dict[int, str]:
        if self._lookup is None:
            t = self.tokens.drop_duplicates("token_id")
            # a WordPiece continuation keeps its '##', so that a subword is seen to be one
            raw, text = t["token"].astype(str), t["text"].str.strip()
            self._lookup = dict(zip(t["token_id"].astype(int), np.where(raw.str.startswith("##"), raw, text)))
        return self._lookup

    def _token_freq(self) -> np.ndarray:
        """How often each token id occurs among the tokens the feature tables scanned (once per explorer)."""
        if self._freq is None:
            scanned = self.tokens["token_id"].to_numpy()[: self.tables[1]["n_tokens"]]
            self._freq = np.bincount(scanned, minlength=int(self.tables[0]["token_ids"].max(initial=0)) + 1)
        return self._freq

    # -- one feature's page --------------------------------------------------------------------------
    def _contexts(self, centres: list[int], feature: int) -> list[dict[str, Any]]:
        """Each centre row's context (the tokens of its document within ±CONTEXT) with ``feature``'s
        activation on every token: all of a page's rows read with one ``rows`` call and encoded at once."""
        t = self.tokens
        spans = []
        for row in centres:
            lo, hi = max(0, row - CONTEXT), min(len(t), row + CONTEXT + 1)
            doc = int(t["doc"].iat[row])
            spans.append((row, doc, np.arange(lo, hi)[(t["doc"].iloc[lo:hi] == doc).to_numpy()]))
        if not spans:
            return []
        every = np.concatenate([rows for _, _, rows in spans])
        with torch.inference_mode():
            acts = self.sae.encode(torch.from_numpy(self.store.rows(every)))[:, feature].numpy()
        out, at = [], 0
        for row, doc, rows in spans:
            a, at = acts[at : at + len(rows)], at + len(rows)
            out.append({"row": row, "doc": doc, "act": float(a[row - rows[0]]), "focus": int(row - rows[0]),
                        "tokens": [{"t": t["text"].iat[r], "a": round(float(v), 4)} for r, v in zip(rows, a)]})
        return out

    def feature_page(self, i: int, examples: int = 20) -> dict[str, Any]:
        self._check_feature(i)
        a, meta = self.tables
        n = max(meta["n_tokens"], 1)
        top = [int(r) for r in a["top_rows"][i][:examples] if r >= 0]
        width = float(a["max_act"][i]) / meta["bins"] if a["max_act"][i] > 0 else 0.0
        bins = np.nonzero(a["bin_rows"][i] >= 0)[0]
        # spread the quantile examples: at most 8, evenly over the bins that have one
        if len(bins) > 8:
            bins = bins[sorted({int(round(x)) for x in np.linspace(0, len(bins) - 1, 8)})]
        contexts = self._contexts(top + [int(a["bin_rows"][i][b]) for b in bins], i)
        quantiles = [{"bin": [b * width, (b + 1) * width], "count": int(a["hist"][i][b]), **c} for b, c in zip(bins, contexts[len(top):])]
        from ...analysis.sae_features import decoder_neighbours

        w = self.sae.decoder().detach().numpy()
        freq = self._token_freq()
        toks = [{"token": s, "count": int(c), "share": float(c / max(freq[tid], 1))}
                for tid, c, s in zip(a["token_ids"][i], a["token_counts"][i], self._token_texts(a["token_ids"][i])) if tid >= 0]
        return {
            "id": i, "n_tokens": meta["n_tokens"], "fires": int(a["fires"][i]), "density": float(a["fires"][i] / n),
            "max_act": float(a["max_act"][i]),
            "histogram": {"edges": [b * width for b in range(meta["bins"] + 1)], "counts": a["hist"][i].tolist()},
            "top": contexts[: len(top)],
            "quantiles": quantiles,
            "neighbours": [{"id": j, "cos": c, "top_tokens": self._token_texts(a["token_ids"][j][:3])} for j, c in decoder_neighbours(w, i)],
            "top_tokens": toks,
            "logits": self.logit_effect(i),
        }

    def _unembedding(self) -> torch.Tensor | None:
        """The causal LM's unembedding [vocab, d] with its final layer norm's gain folded in (None for
        encoders, or a model without an output embedding). Cached."""
        with self._lock:
            if not self._w_u_loaded:
                self._w_u_loaded = True
                if self.store.index.get("causal"):
                    model = self.transformer.model
                    head = model.get_output_embeddings()
                    if head is not None:
                        w = head.weight.detach().float()
                        base = model.base_model
                        norm = next((getattr(base, n) for n in ("ln_f", "norm", "final_layer_norm", "final_layernorm") if hasattr(base, n)), None)
                        gain = getattr(norm, "weight", None)
                        if gain is not None and gain.shape == w.shape[1:]:
                            w = w * gain.detach().float()
                        self._w_u = w
            return self._w_u

    def logit_effect(self, i: int, n: int = 10) -> dict[str, list[dict[str, Any]]] | None:
        """For a causal LM: the tokens whose logits feature ``i``'s decoder direction raises and lowers
        most along the direct path, ``(W_U · diag(γ)) d_i`` with γ the final layer norm's gain and d_i the
        unit decoder direction (the "top logits" of Neuronpedia's feature pages; it ignores the layers
        after the SAE's and the norm's scaling by the residual's size). None for encoder models."""
        w_u = self._unembedding()
        if w_u is None:
            return None
        direction = self.sae.decoder()[self._check_feature(i)].detach().float()
        scores = w_u @ (direction / direction.norm().clamp_min(1e-12))
        tok = self.transformer.tokenizer

        def pick(values: torch.Tensor, ids: torch.Tensor) -> list[dict[str, Any]]:
            names = display_tokens(tok.convert_ids_to_tokens([int(j) for j in ids]))
            # a token that is only whitespace would show as nothing: make its spaces and newlines visible
            shown = [t.strip() or t.replace(" ", "␣").replace("\n", "⏎").replace("\t", "⇥") for t in names]
            return [{"token": t, "id": int(j), "logit": float(v)} for t, j, v in zip(shown, ids, values)]

        k = min(n, len(scores))
        up, down = torch.topk(scores, k), torch.topk(-scores, k)
        return {"positive": pick(up.values, up.indices), "negative": pick(-down.values, down.indices)}

    # -- the probe: which features fire on each token of a text ------------------------------------
    def _encode_text(self, text: str):
        from ...capture import run_to, tokenize

        if not text.strip():
            raise LatentAtlasError("the text is empty; type something to probe")
        if len(text) > MAX_PROBE_CHARS:
            raise LatentAtlasError(f"the text is {len(text)} characters long; the probe takes at most {MAX_PROBE_CHARS}")
        tf = self.transformer
        tok = tf.tokenizer
        enc, ordinary = tokenize(tok, [text], int(self.store.index.get("max_length", 128)), bool(self.store.index.get("prepend_bos")))
        special = ~ordinary[0]
        h = run_to(tf.model, self.store.index["layer"], enc)[0].float()
        with torch.inference_mode():
            f = self.sae.encode(h)
        return enc, special, h, f

    def probe(self, text: str, per_token: int = 5, top: int = 20) -> dict[str, Any]:
        enc, special, _, f = self._encode_text(text)
        names = self.transformer.tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist())
        shown = display_tokens(names)
        tokens = []
        fa = f.numpy()
        fa[special.numpy()] = 0
        for j, (s, sp) in enumerate(zip(shown, special.tolist())):
            idx = np.argsort(-fa[j])[:per_token]
            tokens.append({"t": s, "special": bool(sp),
                           "features": [{"id": int(k), "a": round(float(fa[j, k]), 4)} for k in idx if fa[j, k] > 0]})
        peak = fa.max(0)
        order = np.argsort(-peak)[:top]
        return {"tokens": tokens, "features": [{"id": int(k), "max": float(peak[k]), "count": int((fa[:, k] > 0).sum()),
                                                 "top_tokens": self._top_tokens_or_none(int(k))} for k in order if peak[k] > 0]}

    def _top_tokens_or_none(self, k: int) -> list[str]:
        try:
            return self._token_texts(self.tables[0]["token_ids"][k][:3])
        except LatentAtlasError:  # no feature tables yet: the probe still works
            return []

    # -- steering ------------------------------------------------------------------------------------
    @property
    def steer_unit(self) -> float:
        """The unit of steering strength: the median L2 norm of a token's activation at the layer (from the
        store's capture; α = 1 adds a vector as long as a typical activation)."""
        norm = self.store.index.get("norm") if isinstance(self.store.index.get("norm"), dict) else {}
        median = norm.get("median")
        if isinstance(median, (int, float)) and np.isfinite(median) and median > 0:
            return float(median)
        return float(np.median(self.tokens["norm"].to_numpy()))

    def direction(self, feature: int | None = None, text_a: str | None = None, text_b: str | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """A unit direction in the layer's raw activation space, and what it is: one feature's decoder row,
        or the decoded difference of two texts' mean codes (code(a) − code(b))."""
        sae = self.sae
        with torch.inference_mode():
            if feature is not None:
                self._check_feature(feature)
                row = sae.decoder()[feature] / sae.input_scale  # raw-space vector of one unit of the feature's activation
                info: dict[str, Any] = {"mode": "feature", "feature": int(feature), "label": f"feature {feature}",
                                        "decoder_norm": float(row.norm())}
                try:
                    info["max_act"] = float(self.tables[0]["max_act"][feature])
                except LatentAtlasError:
                    info["max_act"] = None
                return row / row.norm().clamp_min(1e-12), info
            if not (text_a and text_b):
                raise LatentAtlasError("steering needs a feature, or two texts (a and b) whose codes to subtract")
            means = []
            for t in (text_a, text_b):
                _, special, _, f = self._encode_text(t)
                keep = ~special
                if not keep.any():
                    raise LatentAtlasError(f"text '{t[:40]}' has no ordinary tokens to encode")
                means.append(f[keep].mean(0))
            diff = (means[0] - means[1]) @ sae.decoder() / sae.input_scale
            if float(diff.norm()) < 1e-9:
                raise LatentAtlasError("the two texts have the same mean code; there is no direction between them")
            return diff / diff.norm(), {"mode": "texts", "label": "code(a) − code(b), decoded", "raw_norm": float(diff.norm())}

    def corpus_index(self, compute: bool = True, docs: int = 2048):
        """The pool steering ranks: ``docs`` documents spread evenly over the whole store (every n/docs-th,
        so every part of the corpus is in it), their sentence embeddings, and for each feature the pool
        documents where it fires most (``top_docs``/``top_acts``, its target documents for the
        steering-effect score). Kept in ``features/corpus_index.safetensors``, written by ``sae eval``; a
        cache that is unreadable or from another pool counts as missing. Missing and not ``compute``: None
        (the server then builds it in a background job)."""
        with self._lock:
            if self._index is None:
                table = self.store.documents().sort_values("doc")
                pick = np.unique(np.linspace(0, len(table) - 1, min(docs, len(table))).round().astype(np.int64)) if len(table) else []
                table = table.iloc[pick]
                ids = table["doc"].to_numpy().astype(np.int64)
                texts = table["text"].tolist()
                got = self._stored_index(ids)
                if got is None:
                    if not compute:
                        return None
                    got = self._build_index(ids, texts)
                self._index = {"doc": ids, "text": texts, "source": table["source"].tolist(), **got}
            return self._index

    def _stored_index(self, ids: np.ndarray) -> dict[str, np.ndarray] | None:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        path = self.run.file("features", "corpus_index.safetensors")
        try:
            got = load_file(str(path))
            emb, top, acts = got["emb"], got["top_docs"], got["top_acts"]
            if (np.array_equal(got["doc"], ids) and emb.ndim == 2 and emb.shape[0] == len(ids) and np.all(np.isfinite(emb))
                    and top.shape == acts.shape and top.ndim == 2 and top.shape[0] == self.d_sae
                    and (top.size == 0 or (top.min() >= 0 and top.max() < len(ids))) and np.all(np.isfinite(acts))):
                return {"emb": emb, "top_docs": top.astype(np.int64), "top_acts": acts.astype(np.float32)}
        except (SafetensorError, OSError, KeyError, ValueError, AttributeError):
            pass  # absent or unusable
        return None

    def _build_index(self, ids: np.ndarray, texts: list[str], top: int = TARGET_POOL) -> dict[str, np.ndarray]:
        from ..._io import atomic_save_safetensors
        from .fidelity import sentence_embedding

        tf = self.transformer
        embs = []
        with torch.inference_mode():
            for a in range(0, len(texts), 32):
                enc = tf.tokenizer(texts[a : a + 32], padding=True, truncation=True, max_length=128, return_tensors="pt")
                embs.append(sentence_embedding(tf.model, dict(enc)))
        emb = torch.cat(embs).float() if embs else torch.zeros(0, 1)
        # each pool document's largest activation of every feature, from the store's own activations
        tok = self.tokens
        where = {int(d): j for j, d in enumerate(ids)}
        pos = tok["doc"].map(where)
        rows = np.flatnonzero(pos.notna().to_numpy())
        pos = pos.to_numpy()[rows].astype(np.int64)
        doc_max = torch.zeros(len(ids), self.d_sae)
        with torch.inference_mode():
            for a in range(0, len(rows), 4096):
                f = self.sae.encode(torch.from_numpy(self.store.rows(rows[a : a + 4096])))
                idx = torch.from_numpy(pos[a : a + 4096])[:, None].expand_as(f)
                doc_max.scatter_reduce_(0, idx, f, reduce="amax")
        k = min(top, len(ids))
        acts, top_docs = torch.topk(doc_max.T, k, dim=1) if k else (torch.zeros(self.d_sae, 0), torch.zeros(self.d_sae, 0, dtype=torch.long))
        out = {"doc": torch.from_numpy(ids), "emb": emb, "top_docs": top_docs.to(torch.int32), "top_acts": acts.float()}
        try:
            atomic_save_safetensors(self.run.file("features", "corpus_index.safetensors"), out, metadata={"store": self.store.name})
        except OSError:
            pass  # a read-only atlas still steers, it just recomputes next time
        return {"emb": emb.numpy(), "top_docs": top_docs.numpy().astype(np.int64), "top_acts": acts.numpy()}

    @property
    def needs_corpus_index(self) -> bool:
        """Whether steering reports corpus neighbours (encoders) and their index is not stored yet."""
        return not self.store.index.get("causal") and self.corpus_index(compute=False) is None

    def steer(self, text: str, alpha: float = 0.5, feature: int | None = None, text_a: str | None = None,
              text_b: str | None = None, k: int = 5, controls: int = CONTROLS) -> dict[str, Any]:
        """Add ``alpha`` × unit × a unit direction to every ordinary token's activation at the layer (the unit:
        the layer's median activation norm, :attr:`steer_unit`), and say what it did: the steered output
        beside the default one, its cosine to the original, and for sentence encoders the steering-effect
        score against random directions of the same norm (docs/metrics.md, "Steering")."""
        from ...analysis.steering import steering_effect
        from ...capture import spliced
        from .fidelity import sentence_embedding

        if not np.isfinite(alpha) or abs(alpha) > MAX_ALPHA:
            raise LatentAtlasError(f"alpha {alpha} is out of range; expected a number between -{MAX_ALPHA:g} and {MAX_ALPHA:g} "
                                   "(in units of the layer's median activation norm)")
        u, info = self.direction(feature, text_a, text_b)
        unit = self.steer_unit
        enc, special, _, _ = self._encode_text(text)
        tf = self.transformer
        mask = ~special
        norm = abs(alpha) * unit
        info.update({"alpha": alpha, "unit": unit, "unit_name": "median activation norm at the layer", "added_norm": norm})
        if info["mode"] == "feature":
            # Neuronpedia's strength: the multiple of the feature's decoder row that was added
            info["strength"] = alpha * unit / info["decoder_norm"]
            if info.get("max_act"):
                info["strength_vs_max_act"] = info["strength"] / info["max_act"]
        # the random controls: directions drawn uniformly on the sphere, fixed per text and direction
        key = hashlib.blake2b(repr((text, feature, text_a, text_b)).encode(), digest_size=8).digest()
        seed = [int.from_bytes(key, "little") % (2**32), 11]
        rand = torch.from_numpy(np.random.default_rng(seed).standard_normal((controls, u.numel())).astype(np.float32))
        rand = rand / rand.norm(dim=1, keepdim=True)

        def run_with(deltas: torch.Tensor):
            """The model's output on the text with deltas[b] added at the layer, one batch row per delta."""
            B = len(deltas)
            batch = {key: v.expand(B, *v.shape[1:]) if torch.is_tensor(v) else v for key, v in enc.items()}
            m = mask[None, :, None].to(deltas.dtype)

            def add(out: torch.Tensor) -> torch.Tensor:
                return out + m * deltas[:, None, :].to(out.dtype)

            with spliced(tf.model, self.store.index["layer"], add):
                if tf.causal:
                    return torch.log_softmax(tf.model(**batch).logits[:, -1].float(), -1)
                return sentence_embedding(tf.model, batch)

        signed = float(np.sign(alpha) or 1.0)
        doses = sorted({round(x * signed, 4) for x in DOSES} | {float(alpha)}, key=abs)
        with torch.inference_mode():
            base = run_with(torch.zeros(1, u.numel()))[0]
            per_dose = {}
            for a in doses:
                out = run_with(torch.cat([(a * unit) * u[None], (abs(a) * unit) * rand]))
                per_dose[a] = out
        result: dict[str, Any] = {"direction": info["label"], "alpha": alpha, "unit": unit, "info": info, "controls": controls}
        if tf.causal:
            tok = tf.tokenizer

            def top(lp):
                v, i = torch.topk(lp.exp(), 10)
                return [{"token": display_tokens(tok.convert_ids_to_tokens([int(j)]))[0], "p": float(x)} for x, j in zip(v, i)]

            def kl(lp):
                return float((base.exp() * (base - lp)).sum())

            result.update({"kind": "next_token", "before": top(base), "after": top(per_dose[alpha][0]),
                           "kl_before_after": kl(per_dose[alpha][0]),
                           "dose": [{"alpha": a, "kl": kl(o[0])} for a, o in per_dose.items()],
                           "effect": None, "effect_note": "the steering-effect score is defined here for sentence encoders"})
            return result
        index = self.corpus_index()
        pool = index["emb"]
        targets, target_note = self._targets(info, text_a, pool)

        is_target = set() if targets is None else set(targets.tolist())

        def near(e):
            sims = pool @ e.numpy()
            order = np.argsort(-sims)[:k]
            return [{"doc": int(index["doc"][j]), "source": index["source"][j], "text": index["text"][j][:300], "cos": float(sims[j]),
                     "target": int(j) in is_target} for j in order]

        steered = per_dose[alpha][0]
        result.update({"kind": "embedding", "cos_before_after": float(base @ steered), "before": near(base), "after": near(steered),
                       "corpus_docs": int(len(index["doc"])), "targets": None if targets is None else len(targets), "target_note": target_note,
                       "effect": None})
        dose = []
        for a, out in per_dose.items():
            row: dict[str, Any] = {"alpha": a, "cos": float(base @ out[0]), "control_cos": float((out[1:] @ base).mean())}
            if targets is not None:
                row.update(steering_effect(pool, targets, base.numpy()[None], out.numpy()))
            dose.append(row)
            if a == alpha and targets is not None:
                result["effect"] = {k_: row[k_] for k_ in ("effect", "control_mean", "control_low", "control_high", "p",
                                                           "target_rank_before", "target_rank_after")}
        result["dose"] = dose
        return result

    def _targets(self, info: dict[str, Any], text_a: str | None, pool: np.ndarray) -> tuple[np.ndarray | None, str]:
        """The pool documents of the target concept: where the feature fires most (at least a quarter of
        its largest activation in the pool), or the documents nearest text a's own embedding."""
        index = self.corpus_index()
        if info["mode"] == "feature":
            acts, docs = index["top_acts"][info["feature"]], index["top_docs"][info["feature"]]
            keep = acts > max(0.25 * float(acts.max(initial=0.0)), 0.0)
            docs = docs[keep][:TARGETS]
            if len(docs) < MIN_TARGETS:
                return None, (f"feature {info['feature']} fires in {len(docs)} of the {len(pool)} pool documents; "
                              f"the steering-effect score needs at least {MIN_TARGETS}")
            return docs, f"the {len(docs)} pool documents where feature {info['feature']} fires most"
        from .fidelity import sentence_embedding

        tf = self.transformer
        with torch.inference_mode():
            enc = tf.tokenizer([text_a], truncation=True, max_length=128, return_tensors="pt")
            ea = sentence_embedding(tf.model, dict(enc))[0].numpy()
        n = min(TARGETS, len(pool))
        return np.argsort(-(pool @ ea))[:n], f"the {n} pool documents nearest text a"
