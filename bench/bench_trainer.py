"""Trainer overhead: `latentatlas.trainer.fit` against a bare PyTorch loop on the same model and batches.

Both loops train the demo's β-TCVAE (conv, 10 latents) on sprites with batch 64 for the same number of
steps, starting from the same weights; they alternate, repeat, and the median time per step of each is
reported with the ratio. The trainer's timing includes everything it does in real use: the seeded batch
order, the loss bookkeeping, history.jsonl, a checkpoint every --checkpoint-every steps and saving
the model at the end.

    python bench/bench_trainer.py [--steps 60] [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time

import numpy as np
import torch

from latentatlas.atlas import Atlas
from latentatlas.data import Sprites
from latentatlas.models import VAE, VAEConfig
from latentatlas.trainer import BatchOrder, TrainConfig, fit


def make_model(n: int) -> VAE:
    torch.manual_seed(0)
    return VAE(VAEConfig(kind="beta_tcvae", latent_dim=10, dataset_size=n))


def bare_loop(data: Sprites, steps: int, batch_size: int) -> float:
    model = make_model(len(data))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = BatchOrder(len(data), batch_size, seed=0)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    for step in range(steps):
        x = torch.from_numpy(data.get(order.indices(step)))
        loss = model.loss(x)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps


def trainer_loop(data: Sprites, steps: int, batch_size: int, checkpoint_every: int, root: str, i: int) -> float:
    model = make_model(len(data))
    run = Atlas(root).create_run(f"bench-{i}", {"kind": "beta_tcvae"})
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=1e-3, seed=0, checkpoint_every=checkpoint_every, log_every=50, device="cpu")
    t0 = time.perf_counter()
    fit(model, data, run, cfg, progress=False)
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--checkpoint-every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = Sprites()
    data.get(np.arange(4))  # build the sprite patches outside the timing
    bare_loop(data, 5, args.batch_size)  # warm-up
    bare, ours = [], []
    with tempfile.TemporaryDirectory() as root:
        for i in range(args.repeats):
            bare.append(bare_loop(data, args.steps, args.batch_size))
            ours.append(trainer_loop(data, args.steps, args.batch_size, args.checkpoint_every, root, i))
    mb, mo = statistics.median(bare), statistics.median(ours)
    print(f"bare loop     : median {mb * 1e3:.1f} ms/step  runs {[round(b * 1e3, 1) for b in bare]}")
    print(f"latentatlas   : median {mo * 1e3:.1f} ms/step  runs {[round(o * 1e3, 1) for o in ours]}")
    print(f"ratio trainer/bare: {mo / mb:.3f}  (target <= 1.15)")
    print(f"| trainer step (bench/bench_trainer.py --steps {args.steps} --repeats {args.repeats}) | {platform.machine()}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__} | {mo * 1e3:.1f} ms | bare loop {mb * 1e3:.1f} ms | {mo / mb:.3f} |")


if __name__ == "__main__":
    main()
