"""Peak memory of capture and of SAE training does not grow with the store: 1M vs 10M tokens.

    python bench/bench_sae_memory.py [--sizes 1000000,10000000] [--workdir DIR]

Capture runs MiniLM up to its `embeddings` module (the token + position embeddings after LayerNorm,
d = 384): a real module of the real model, chosen because it is cheap, so ten million tokens take
minutes on a CPU, not hours. The corpus is the built-in one written out as JSON Lines and repeated
until it holds enough tokens. Each capture and each training run is its own process; its peak
resident memory (ru_maxrss) is reported beside the bound the design promises:

- capture: the loaded model and libraries (measured: the same process's RSS after loading, before
  capturing) + one shard buffer (shard_tokens × d × 4 bytes, held ~3× while a shard is assembled and
  written) + a batch of activations;
- training: libraries + SAE parameters, gradients and two Adam moments (4 × params × 4 bytes) + one
  batch (rows are read from memory-mapped shards, mapped for the read and unmapped after) + the
  65,536-row sample that sets the input scale and b_dec at the start.

A store of 10M × 384 float32 is 15.4 GB on disk; neither process may come near that.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CAPTURE = r"""
import json, resource, sys, time
import pandas, pyarrow.parquet, transformers
from latentatlas.labs.sae.jobs import capture_store
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
at_first = {}
def on_shard(i):
    if i == 0:
        at_first["kb"] = rss()
t0 = time.perf_counter()
store = capture_store("minilm", "embeddings", sys.argv[1], tokens=int(sys.argv[2]), name=sys.argv[3], atlas=sys.argv[4],
                      shard_tokens=32768, batch_size=64, progress=False, on_shard=on_shard)
print(json.dumps({"tokens": store.n_tokens, "shards": len(store.shards), "d": store.d, "seconds": time.perf_counter() - t0,
                  "first_shard_kb": at_first["kb"], "peak_kb": rss(), "bytes_on_disk": sum(s.bytes for s in store.shards)}))
"""

TRAIN = r"""
import json, resource, sys, time
import torch
from latentatlas.labs.sae.jobs import train_sae
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
seen = {}
def on_step(step):
    if step == 45:  # well into training: everything the loop holds has been allocated
        seen["kb"] = rss()
t0 = time.perf_counter()
run, res = train_sae(sys.argv[1], "topk", expansion=16, k=32, steps=int(sys.argv[3]), batch_size=4096,
                     name=sys.argv[1] + "-sae", atlas=sys.argv[2], progress=False, checkpoint_every=50, on_step=on_step)
print(json.dumps({"steps": res.steps_done, "seconds": time.perf_counter() - t0, "steady_kb": seen["kb"],
                  "peak_kb": rss(), "fvu": res.last.get("fvu")}))
"""


def corpus(path: Path, tokens: int) -> Path:
    from latentatlas.data.text import load_corpus

    docs = list(load_corpus("builtin"))
    need = tokens // 50 + 1  # ≥ 50 kept tokens per document on average at max_length 128; over-provision
    with path.open("w", encoding="utf-8") as fh:
        for i in range(need):
            d = docs[i % len(docs)]
            fh.write(json.dumps({"text": f"{d.text} ({i // len(docs)})"}) + "\n")
    return path


def run(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000000,10000000")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--train-only", action="store_true", help="Reuse the stores already captured in --workdir.")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(args.workdir or tempfile.mkdtemp(prefix="la-mem-"))
    work.mkdir(parents=True, exist_ok=True)
    atlas = work / "atlas"
    text = None if args.train_only else corpus(work / "corpus.jsonl", max(sizes))
    mb = lambda kb: kb / 1024  # noqa: E731
    rows = []
    for n in sizes:
        if args.train_only:
            shutil.rmtree(atlas / "runs" / f"mem{n}-sae", ignore_errors=True)  # the previous measurement's run
            t = run(TRAIN, f"mem{n}", str(atlas), str(args.steps))
            print(f"train {t['steps']} steps (TopK 16x, batch 4096) on the {n:,}-token store in {t['seconds']:.0f} s "
                  f"({t['steps'] * 4096 / t['seconds']:,.0f} tok/s): peak RSS {mb(t['peak_kb']):.0f} MB; after step 45 {mb(t['steady_kb']):.0f} MB", flush=True)
            continue
        c = run(CAPTURE, str(text), str(n), f"mem{n}", str(atlas))
        print(f"capture {c['tokens']:,} tokens ({c['shards']} shards, {c['bytes_on_disk'] / 1e9:.1f} GB on disk) in {c['seconds']:.0f} s: "
              f"peak RSS {mb(c['peak_kb']):.0f} MB; after the first shard {mb(c['first_shard_kb']):.0f} MB", flush=True)
        t = run(TRAIN, f"mem{n}", str(atlas), str(args.steps))
        print(f"train {t['steps']} steps (TopK 16x, batch 4096) on {n:,} tokens in {t['seconds']:.0f} s: peak RSS "
              f"{mb(t['peak_kb']):.0f} MB; after step 45 {mb(t['steady_kb']):.0f} MB", flush=True)
        rows.append((n, c, t))
    shard_mb = 32768 * 384 * 4 / 2**20
    for n, c, t in rows:
        print(f"| capture, {n:,} tokens (MiniLM `embeddings`, {c['bytes_on_disk'] / 1e9:.1f} GB store) | peak RSS {mb(c['peak_kb']):.0f} MB | "
              f"after its first shard: {mb(c['first_shard_kb']):.0f} MB | {c['peak_kb'] / c['first_shard_kb']:.2f} |")
        print(f"| SAE training, {t['steps']} steps on {n:,} tokens | peak RSS {mb(t['peak_kb']):.0f} MB | after step 45: "
              f"{mb(t['steady_kb']):.0f} MB | {t['peak_kb'] / t['steady_kb']:.2f} |")
    print(f"(one shard is {shard_mb:.0f} MB; training reads single rows from mapped shards, never a whole shard)")


if __name__ == "__main__":
    main()
