"""The ViT lab's accuracy figures: train the default ViT on digits (several seeds) and on sprites (shape
classification) with `latentatlas attention vit`'s defaults, and print each run's held-out test accuracy
(95 % Wilson interval) and training seconds, then the medians. Not a test: it takes minutes.

    .venv/bin/python bench/vit_accuracy.py                      # digits seeds 0-4, sprites seed 0
    .venv/bin/python bench/vit_accuracy.py --digits-seeds 0 1 --sprites-seeds
    .venv/bin/python bench/vit_accuracy.py --threads 2          # torch threads (default 1, see below)

One torch thread by default: this model is too small to gain from a second one, and on a shared, busy
CPU two threads spin-waiting on each other made each step about ten times slower (measured).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--digits-seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    ap.add_argument("--sprites-seeds", type=int, nargs="*", default=[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--atlas", default=None, help="where the runs go (default: a temporary folder)")
    args = ap.parse_args()

    import torch

    from latentatlas.labs.attention.vit import DEFAULTS, train_vit

    torch.set_num_threads(args.threads)
    root = args.atlas or tempfile.mkdtemp(prefix="vit-bench-")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} on {args.threads} thread(s); "
          f"load average at start {os.getloadavg()[0]:.1f}; atlas {root}", flush=True)
    for data, seeds in (("digits", args.digits_seeds), ("sprites", args.sprites_seeds)):
        if not seeds:
            continue
        print(f"{data}: defaults {DEFAULTS[data]}", flush=True)
        accs, secs = [], []
        for seed in seeds:
            t0 = time.perf_counter()
            run, _, report = train_vit(root, data=data, seed=seed, name=f"{data}-s{seed}-{int(time.time())}", device="cpu", progress=False)
            acc = report["metrics"]["test_accuracy"]
            accs.append(acc["value"])
            secs.append(report["headline"]["train_seconds"])
            print(f"  {data} seed {seed}: test accuracy {acc['value']:.4f} [{acc['ci_low']:.4f}, {acc['ci_high']:.4f}] on {acc['n']} images; "
                  f"training {secs[-1]:.1f} s (with evaluation {time.perf_counter() - t0:.1f} s); load average now {os.getloadavg()[0]:.1f}",
                  flush=True)
        print(f"{data}: median test accuracy {statistics.median(accs):.4f} (min {min(accs):.4f}, max {max(accs):.4f}) over {len(accs)} seed(s); "
              f"median training {statistics.median(secs):.1f} s", flush=True)


if __name__ == "__main__":
    main()
