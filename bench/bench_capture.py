"""Capture throughput against a bare forward pass of the same model on the same batches.

    python bench/bench_capture.py [--docs 600] [--repeats 5] [--layers 3,5]

For each layer: `capture` (tokenise, hook the layer, stop the forward there, keep the non-special
tokens, compute norms, write safetensors shards, token and document parquet tables, index.json) into
a fresh store, against a bare loop that tokenises the same batches of the same documents and runs the
full model forward under inference_mode, keeping nothing. They alternate; the median of --repeats runs
of each gives tokens per second and the ratio (capture / bare; target ≥ 0.9). Layer 5 is MiniLM's last
block, where stopping early saves nothing, so its ratio is the honest cost of capturing.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import tempfile
import time

import torch

from latentatlas.capture import capture
from latentatlas.data.text import Corpus, load_corpus
from latentatlas.models.hf import load_transformer, resolve_layer


class Fixed(Corpus):
    """The first N documents of the built-in corpus, held in memory so both loops read the same."""

    def __init__(self, docs):
        super().__init__({"kind": "builtin"}, "builtin")
        self.docs = docs

    def __iter__(self):
        return iter(self.docs)


def bare(tf, docs, batch_size: int, max_length: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    kept = 0
    with torch.inference_mode():
        for a in range(0, len(docs), batch_size):
            enc = tf.tokenizer([d.text for d in docs[a : a + batch_size]], padding=True, truncation=True, max_length=max_length,
                               return_special_tokens_mask=True, return_tensors="pt")
            special = enc.pop("special_tokens_mask")
            tf.model(**enc)
            kept += int((enc["attention_mask"].bool() & ~special.bool()).sum())
    return time.perf_counter() - t0, kept


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=600)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--layers", default="3,5")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    args = ap.parse_args()
    tf = load_transformer("minilm")
    docs = load_corpus("builtin").take(args.docs)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}; "
          f"{len(docs)} documents, batch {args.batch_size}, max_length {args.max_length}")
    bare(tf, docs[:64], args.batch_size, args.max_length)  # warm-up
    for layer in [int(x) for x in args.layers.split(",")]:
        module = resolve_layer(tf.model, layer)
        tb, tc = [], []
        for _ in range(args.repeats):
            secs, n = bare(tf, docs, args.batch_size, args.max_length)
            tb.append(n / secs)
            root = tempfile.mkdtemp()
            t0 = time.perf_counter()
            store = capture(tf.model, tf.tokenizer, Fixed(docs), module, f"{root}/s", tokens=10**9, batch_size=args.batch_size,
                            max_length=args.max_length, progress=False)
            tc.append(store.n_tokens / (time.perf_counter() - t0))
            assert store.n_tokens == n, (store.n_tokens, n)
            shutil.rmtree(root)
        b, c = statistics.median(tb), statistics.median(tc)
        print(f"layer {layer} ({module}): capture {c:,.0f} tok/s (runs {[round(x) for x in tc]}), bare forward {b:,.0f} tok/s "
              f"(runs {[round(x) for x in tb]}), ratio {c / b:.2f}")
        print(f"| capture, MiniLM layer {layer}, {n:,} tokens | {c:,.0f} tok/s | bare forward: {b:,.0f} tok/s | {c / b:.2f} | ≥ 0.9 |")


if __name__ == "__main__":
    main()
