"""The head atlas's cost against bare forward passes over the same batches (issue 11).

    python bench/head_atlas_overhead.py [--tokens 100000] [--repeats 5] [--batch-size 16] [--max-length 128]

Both sides read the built-in corpus (the standard library's docstrings) through the same length-bucketed
batches (``capture.length_batches``: ``--batch-size`` documents sorted by length within pools of 32
batches, padded to the batch's longest, truncated to ``--max-length``) and stop once ``--tokens`` real
tokens have been seen:

- bare: ``model(**inputs)`` under ``torch.inference_mode`` with the model as ``load_transformer`` loads
  it (its default attention implementation), nothing kept;
- head atlas: ``labs.attention.jobs.heads(...)`` on a run in a temporary atlas: the attention read at every
  layer through ``capture.attention`` (the ``latentatlas`` attention implementation, which materialises
  the probabilities), the streaming ``HeadStats``, the prefix-matching pass on 16 repeated random
  sequences, and writing heads.json/heads.safetensors.

The two alternate (bare, atlas, bare, atlas, …), one warm-up of each first, plus once per repeat the bare
loop over the documents in corpus order (unsorted batches, as the atlas read them before bucketing); the report is the median of
``--repeats`` whole-call times of each and their ratio (target ≤ 1.2), plus the atlas's own split
(``forward_seconds``: its corpus loop's forward passes with the statistics).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch


def bare(subject, tokens: int, batch_size: int, max_length: int, bucketed: bool = True) -> tuple[float, int]:
    """The head atlas's corpus loop (jobs.heads) with nothing but the forward pass: the same length-bucketed
    batches (``capture.length_batches``), or with ``bucketed=False`` the documents in corpus order, each
    batch padded to its longest (the loop before length bucketing, for context)."""
    from latentatlas.capture import length_batches
    from latentatlas.data.text import load_corpus

    t0 = time.perf_counter()
    texts = (d.text for d in load_corpus("builtin"))
    length = min(max_length, subject.max_positions or max_length)
    seen = 0

    def in_order():
        while True:
            chunk = [t for _, t in zip(range(batch_size), texts)]
            if not chunk:
                return
            enc = subject.tokenizer(chunk, return_tensors="pt", padding=True, truncation=True, max_length=length)
            yield {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}, enc["attention_mask"].bool()

    for inputs, valid in (length_batches(subject.tokenizer, texts, batch_size, length) if bucketed else in_order()):
        if seen >= tokens:
            break
        with torch.inference_mode():
            subject.model(**inputs)
        seen += int(valid.sum())
    return time.perf_counter() - t0, seen


def atlas_pass(subject, run, tokens: int, batch_size: int, max_length: int) -> tuple[float, dict]:
    from latentatlas.labs.attention.jobs import heads

    t0 = time.perf_counter()
    got = heads(subject, run, corpus="builtin", tokens=tokens, batch_size=batch_size, max_length=max_length, progress=False)
    return time.perf_counter() - t0, got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--tokens", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--no-warmup", action="store_true")
    args = ap.parse_args()

    from latentatlas.atlas import Atlas
    from latentatlas.labs.attention.jobs import resolve

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as root:
        subject, run = resolve(args.model, Atlas(root))
        impl = getattr(subject.model.config, "_attn_implementation", None)
        print(f"model {subject.label}: {subject.n_layers} layers × {subject.n_heads} heads, attention implementation as loaded: {impl}")
        if not args.no_warmup:
            small = min(args.tokens, 5_000)
            bare(subject, small, args.batch_size, args.max_length)
            atlas_pass(subject, run, small, args.batch_size, args.max_length)
        b_times, a_times, fwd, o_times = [], [], [], []
        seen_b = seen_a = 0
        for r in range(args.repeats):
            tb, seen_b = bare(subject, args.tokens, args.batch_size, args.max_length)
            to, _ = bare(subject, args.tokens, args.batch_size, args.max_length, bucketed=False)
            o_times.append(to)
            ta, got = atlas_pass(subject, run, args.tokens, args.batch_size, args.max_length)
            seen_a = got["tokens"]
            b_times.append(tb)
            a_times.append(ta)
            fwd.append(got["forward_seconds"])
            print(f"run {r + 1}: bare {tb:.2f} s ({seen_b:,} tokens), head atlas {ta:.2f} s ({seen_a:,} tokens; "
                  f"corpus loop's forward+stats {got['forward_seconds']:.2f} s), ratio {ta / tb:.3f}; bare in corpus order {to:.2f} s", flush=True)
        if seen_a != seen_b:
            raise SystemExit(f"the two loops saw different token counts: {seen_a} and {seen_b}")
        mb, ma, mf = statistics.median(b_times), statistics.median(a_times), statistics.median(fwd)
        ratios = [a / b for a, b in zip(a_times, b_times)]
        print(f"\nmedian of {args.repeats}: bare {mb:.2f} s ({seen_b / mb:,.0f} tok/s), head atlas {ma:.2f} s "
              f"({seen_a / ma:,.0f} tok/s), ratio {ma / mb:.3f} (per-pair ratios {min(ratios):.3f}–{max(ratios):.3f}; target ≤ 1.2)")
        print(f"bare forward over unsorted batches (corpus order): median {statistics.median(o_times):.2f} s")
        print(f"| head atlas, {subject.label}, {seen_a:,} tokens | {ma:.1f} s | bare forward: {mb:.1f} s | **{ma / mb:.2f}** | ≤ 1.2 |")


if __name__ == "__main__":
    main()
