"""Wall time of `latentatlas eval` (every metric, figures, PCA) on 10,000 sprites, against the time
the same process spends just encoding those sprites (the floor any evaluation pays).

    python bench/bench_eval.py [--n 10000] [--repeats 5] [--steps 200]

It trains a small β-TCVAE once (few steps: the timing does not depend on how good the model is), then
runs the evaluation --repeats times.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time

import torch

from latentatlas.atlas import Atlas
from latentatlas.labs.vae.jobs import choose_sample, encode_dataset, evaluate_run
from latentatlas.data import Sprites
from latentatlas.labs.vae.jobs import train_run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as root:
        atlas = Atlas(root)
        run, _ = train_run("beta_tcvae", "sprites", steps=args.steps, name="bench", atlas=atlas, progress=False)
        model = run.load_model()
        data = Sprites()
        total, encode, parts = [], [], []
        for i in range(args.repeats):
            t0 = time.perf_counter()
            encode_dataset(model, data, choose_sample(data, args.n, i))
            encode.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            report = evaluate_run(run, n=args.n, seed=i, projections=["pca"], progress=False)
            total.append(time.perf_counter() - t0)
            parts.append(report["timings_s"])
    mt, me = statistics.median(total), statistics.median(encode)
    print(f"eval total : median {mt:.1f} s  runs {[round(t, 1) for t in total]}")
    print(f"encode only: median {me:.1f} s")
    print(f"ratio eval/encode: {mt / me:.1f}; target: total <= 60 s")
    print("last run's parts (s):", parts[-1])
    print(f"| eval, all metrics, {args.n} sprites (bench/bench_eval.py) | {platform.machine()}, {torch.get_num_threads()} threads | "
          f"{mt:.1f} s | encode only {me:.1f} s | {mt / me:.1f} |")


if __name__ == "__main__":
    main()
