"""Sprites rendering speed on one CPU core, next to the memory-bound floor of the same output.

    python bench/bench_sprites.py [--batch 256] [--seconds 2] [--repeats 7]

Prints the median images/s over repeats for rendering batches of random grid indices, and for a
baseline that only allocates and copies the same number of 64x64 float32 images (np.zeros + copy),
then a markdown table row for docs/benchmarks.md.
"""

from __future__ import annotations

import os

# One core, one thread: set before numpy is imported so its BLAS pools start single-threaded.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from latentatlas.data import Sprites  # noqa: E402


def images_per_second(step, batches: list[np.ndarray], seconds: float) -> float:
    """Run step over the batches (cycling) for about `seconds`; images per second."""
    done, i = 0, 0
    start = time.perf_counter()
    while True:
        batch = batches[i % len(batches)]
        step(batch)
        done += len(batch)
        i += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=2.0, help="per repeat and per method")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    sprites = Sprites()
    t0 = time.perf_counter()
    sprites.get(np.array([0]))  # builds the 720 patches once
    setup_s = time.perf_counter() - t0

    rng = np.random.default_rng(0)
    batches = [rng.integers(0, len(sprites), args.batch) for _ in range(64)]
    source = np.ones((args.batch, 1, 64, 64), dtype=np.float32)

    def render(idx):
        sprites.get(idx)

    def floor(idx):
        out = np.zeros((len(idx), 1, 64, 64), dtype=np.float32)
        out[...] = source[: len(idx)]

    render_runs, floor_runs = [], []
    for _ in range(args.repeats):  # interleaved, so drift in the machine hits both alike
        render_runs.append(images_per_second(render, batches, args.seconds))
        floor_runs.append(images_per_second(floor, batches, args.seconds))
    render_med, floor_med = statistics.median(render_runs), statistics.median(floor_runs)

    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    print(f"cpu: {cpu_name()}  cores used: {cores}  numpy {np.__version__}  python {platform.python_version()}")
    print(f"patch tables built in {setup_s * 1000:.0f} ms (once per process)")
    print(f"render, batch {args.batch}: median {render_med:,.0f} images/s "
          f"(runs: {', '.join(f'{r:,.0f}' for r in render_runs)})")
    print(f"floor (np.zeros + copy), batch {args.batch}: median {floor_med:,.0f} images/s")
    print(f"render / floor: {render_med / floor_med:.2f}")
    print()
    print("| benchmark | setting | median images/s | floor: zeros + copy, images/s | ratio | machine |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| sprites render (bench/bench_sprites.py) | batch {args.batch}, 1 core, {args.repeats} x {args.seconds:g} s "
          f"| {render_med:,.0f} | {floor_med:,.0f} | {render_med / floor_med:.2f} | {cpu_name()}, numpy {np.__version__} |")


if __name__ == "__main__":
    main()
