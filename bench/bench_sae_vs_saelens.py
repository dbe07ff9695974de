"""SAE training throughput against SAELens, on the same stored activations with the same config.

    python bench/bench_sae_vs_saelens.py --atlas DIR --store NAME --saelens-python PATH/TO/venv/bin/python
                                         [--steps 100] [--repeats 5] [--expansion 16] [--k 32] [--batch-size 4096]

sae-lens is never a dependency of latentatlas: it lives in its own virtual environment, made once with

    python -m venv /tmp/slvenv && /tmp/slvenv/bin/pip install torch==2.13.0 sae-lens==6.54.12

Both sides train a TopK SAE (d_in from the store, d_sae = expansion × d_in, k, AuxK weight 1/32, input
normalised to E‖x‖ = √d, Adam at the same lr with the same warm-up and final linear decay, dead after
the same number of tokens) on the store's training shards, with batches of the same size:

- latentatlas: `train_sae` (its full trainer: batches drawn without replacement from the whole store, gradient
  norm clipped at 1 as SAELens does, history, checkpoints, saving);
- SAELens: `SAETrainer` with `TopKTrainingSAE`, fed random batches of the same shards held in memory
  (its own activation store needs a model to run; this is its training loop on the same data).

Each side is its own process, they alternate, and each run reports training tokens/s (tokens trained ÷
wall time of the training call) and the centred FVU on the store's held-out shard (same formula for
both: Σ‖x − x̂‖² / Σ‖x − x̄‖²). Medians of --repeats runs, and the ratio ours/SAELens.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile

OURS = r"""
import json, sys, time, torch, numpy as np
from latentatlas.atlas import Atlas
from latentatlas.labs.sae.jobs import train_sae
atlas, store_name, steps, batch, expansion, k, lr, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7]), int(sys.argv[8])
name = f"bench-ours-{seed}-{time.time_ns()}"
stamps = []
run, res = train_sae(store_name, "topk", expansion=expansion, k=k, steps=steps, batch_size=batch, lr=lr, seed=seed, name=name,
                     atlas=atlas, progress=False, checkpoint_every=10**9, holdout_shards=1, on_step=lambda s: stamps.append(time.perf_counter()))
gaps = np.diff(stamps)[len(stamps) // 2 :]  # a step = batch read + forward + backward + update (+ bookkeeping), second half
store = Atlas(atlas).activations(store_name)
x = torch.from_numpy(store.shard_array(len(store.shards) - 1))
sae = run.load_model().eval()
with torch.inference_mode():
    xh = sae(x)[0]
x, xh = x.double().numpy(), xh.double().numpy()
fvu = float(((x - xh) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())
Atlas(atlas).delete_run(name)
print(json.dumps({"tokens_per_s": steps * batch / res.seconds, "seconds": res.seconds, "fvu": fvu,
                  "steady_tokens_per_s": batch / float(np.median(gaps))}))
"""

SAELENS = r"""
import json, sys, time, numpy as np, torch
from safetensors.numpy import load_file
from sae_lens import TopKTrainingSAE, TopKTrainingSAEConfig
from sae_lens.config import LoggingConfig, SAETrainerConfig
from sae_lens.training.sae_trainer import SAETrainer
index = json.load(open(sys.argv[1] + "/index.json"))
steps, batch, expansion, k, lr, seed, dead_steps, warm, decay = (int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]),
    float(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8]), int(sys.argv[9]), int(sys.argv[10]))
shards = [load_file(sys.argv[1] + "/" + s["file"])["acts"] for s in index["shards"]]
train = torch.from_numpy(np.concatenate(shards[:-1]))
held = torch.from_numpy(shards[-1])
torch.manual_seed(seed)
g = torch.Generator().manual_seed(seed)
def batches():
    while True:
        yield train[torch.randint(0, len(train), (batch,), generator=g)]
d = train.shape[1]
sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d, d_sae=expansion * d, k=k, aux_loss_coefficient=1 / 32,
                                            normalize_activations="expected_average_only_in"))
cfg = SAETrainerConfig(total_training_samples=steps * batch, train_batch_size_samples=batch, lr=lr, lr_warm_up_steps=warm,
                       lr_decay_steps=decay, lr_end=0.0, dead_feature_window=dead_steps, n_batches_for_norm_estimate=16,
                       logger=LoggingConfig(log_to_wandb=False))
trainer = SAETrainer(cfg, sae, batches())
step_times, inner = [], trainer._train_step
def timed(*a, **kw):
    t = time.perf_counter()
    out = inner(*a, **kw)
    step_times.append(time.perf_counter() - t)
    return out
trainer._train_step = timed  # a step = forward + backward + update (the batch is drawn outside)
t0 = time.perf_counter()
trainer.fit()
secs = time.perf_counter() - t0
scaler = trainer.activation_scaler
with torch.inference_mode():
    sae.eval()
    xin = scaler.scale(held)
    xh = scaler.unscale(sae.decode(sae.encode(xin)))
x, xh = held.double().numpy(), xh.double().numpy()
fvu = float(((x - xh) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())
print(json.dumps({"tokens_per_s": steps * batch / secs, "seconds": secs, "fvu": fvu,
                  "steady_tokens_per_s": batch / float(np.median(step_times[len(step_times) // 2 :]))}))
"""


def call(python: str, code: str, *args) -> dict:
    out = subprocess.run([python, "-c", code, *map(str, args)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{python} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--atlas", required=True)
    ap.add_argument("--store", required=True)
    ap.add_argument("--saelens-python", required=True)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--expansion", type=int, default=16)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--lr", type=float, default=2e-3)
    args = ap.parse_args()
    from latentatlas.atlas import Atlas

    store = Atlas(args.atlas).activations(args.store)
    # the schedule train_sae uses by default, given to SAELens in its own terms
    warm = min(args.steps // 20, 1000)
    decay = int(round(0.2 * args.steps))
    dead_tokens = min(1_000_000, max(args.batch_size, args.steps * args.batch_size // 10))
    dead_steps = max(1, dead_tokens // args.batch_size)
    ours, theirs = [], []
    for r in range(args.repeats):
        ours.append(call(sys.executable, OURS, args.atlas, args.store, args.steps, args.batch_size, args.expansion, args.k, args.lr, r))
        theirs.append(call(args.saelens_python, SAELENS, store.path, args.steps, args.batch_size, args.expansion, args.k, args.lr, r,
                           dead_steps, warm, decay))
        print(f"run {r}: latentatlas {ours[-1]['tokens_per_s']:,.0f} tok/s (steady {ours[-1]['steady_tokens_per_s']:,.0f}) "
              f"FVU {ours[-1]['fvu']:.4f} | SAELens {theirs[-1]['tokens_per_s']:,.0f} tok/s (steady {theirs[-1]['steady_tokens_per_s']:,.0f}) "
              f"FVU {theirs[-1]['fvu']:.4f}", flush=True)
    med = lambda xs, k: statistics.median(x[k] for x in xs)  # noqa: E731
    o, t = med(ours, "tokens_per_s"), med(theirs, "tokens_per_s")
    so, st = med(ours, "steady_tokens_per_s"), med(theirs, "steady_tokens_per_s")
    print(f"steady state (median step of each run's second half): latentatlas {so:,.0f} tok/s, SAELens {st:,.0f} tok/s, ratio {so / st:.2f}")
    print(f"| SAE training, TopK d={store.d} {args.expansion}x k={args.k}, batch {args.batch_size}, {args.steps} steps | "
          f"{o:,.0f} tok/s, FVU {med(ours, 'fvu'):.4f} | SAELens: {t:,.0f} tok/s, FVU {med(theirs, 'fvu'):.4f} | {o / t:.2f} | ≥ 2 |")


if __name__ == "__main__":
    main()
