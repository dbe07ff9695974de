"""The flow lab's training benchmark (issue 12): flow matching on the three-modes mixture with the better
network (sinusoidal embeddings) against Diffusion Explorer's plain 3×64 ELU MLP, same steps, batch and
optimiser, side by side in one process.

    .venv/bin/python bench/flow_three_modes.py [--steps 3000] [--batch-size 512] [--repeats 5] [--threads 2]

Each repeat trains both networks (alternating which goes first) with `labs.flow.jobs.train`'s recipe and
snapshots the weights at fixed steps (a state_dict copy; its time is left out of the clock). After training,
each snapshot is measured: the energy distance of 2,000 samples (DPM-Solver++ and Euler, 30 NFE) to 2,000
fresh target samples, and the field error E‖v_θ − v*‖² against the exact velocity. Printed: the curve
(training seconds → energy distance, field error) per network, the medians over repeats, the first snapshot
at which the energy distance is ≤ 0.01, and the noise floor of the energy distance at n = 2,000.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import tempfile
import time

import torch

SNAPSHOTS = (100, 250, 500, 750, 1000, 1500, 2000, 3000)


def train_one(net: str, steps: int, batch_size: int, seed: int):
    """`labs.flow.jobs.train`'s recipe (the same model config, data stream and TrainConfig), with the model
    in hand so that ``on_step`` can snapshot it."""
    from latentatlas.atlas import Atlas, now_iso
    from latentatlas.data.toys import load_toy
    from latentatlas.labs.flow import jobs
    from latentatlas.models.flow import FlowConfig, FlowModel, data_scale
    from latentatlas.models.io import config_to_dict
    from latentatlas.trainer import TrainConfig, fit_new_run

    t = jobs.TRAIN_DEFAULTS
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=t["lr"], seed=seed, device="cpu", log_every=max(50, steps // 20),
                      checkpoint_every=steps, lr_warmup=min(t["lr_warmup"], steps // 4), lr_decay=t["lr_decay"])
    toy = load_toy("three-modes", batch_size=batch_size, seed=seed)
    torch.manual_seed(seed)
    model = FlowModel(FlowConfig(net=net, x_scale=round(data_scale(toy.sample(4096, seed=seed)), 6)))
    snaps: dict[int, tuple[float, dict]] = {}
    clock = {"t0": time.perf_counter(), "paused": 0.0}

    def on_step(step: int) -> None:
        done = step + 1
        if done in SNAPSHOTS:
            p0 = time.perf_counter()
            snaps[done] = (p0 - clock["t0"] - clock["paused"], copy.deepcopy(model.state_dict()))
            clock["paused"] += time.perf_counter() - p0

    atlas = Atlas(tempfile.mkdtemp(prefix="flow-bench-"))
    config = {"name": "b", "kind": jobs.KIND, "model": config_to_dict(model.config), "train": cfg.to_dict(), "data": toy.spec,
              "versions": jobs.versions(), "created_at": now_iso(), "origin": "trained"}
    clock["t0"] = time.perf_counter()
    run, result = fit_new_run(atlas, config, model, toy, cfg, progress=False, on_step=on_step)
    return run, result, snaps


def measure(run, state: dict, n: int, seed: int) -> dict:
    from latentatlas.analysis.flow_exact import field_error
    from latentatlas.analysis.sample_quality import energy_distance
    from latentatlas.labs.flow import jobs
    from latentatlas.models.samplers import sample

    model = jobs.model_of(run)
    model.load_state_dict(state)
    model.eval()
    toy = jobs.target_of(run)
    y = toy.sample(n, seed=seed + 1)
    x0 = jobs.noise(n, seed)
    out = {}
    for s in ("dpm++", "euler"):
        x = sample(model.prediction(), x0, s, 30).x
        out[s] = energy_distance(x, y, num_resamples=0).value
    pred = model.prediction()
    out["field_error"] = field_error(lambda x, t: pred.velocity(x, t), toy.mixture, n_samples=4096, random_state=seed, num_resamples=10).value
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--final-only", action="store_true", help="measure only the trained model (no curve), e.g. with a large --n")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from latentatlas.analysis.sample_quality import energy_null
    from latentatlas.data.toys import mixture_of

    mix = mixture_of("three-modes")
    null = energy_null(lambda k, rng: mix.sample(k, rng)[0], args.n, repeats=50)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {args.threads} thread(s); "
          f"load average {os.getloadavg()[0]:.1f}; energy-distance noise floor at n={args.n}: 95 % quantile {null['quantile']:.4f}, "
          f"mean {null['mean']:.4f}", flush=True)
    results: dict[str, list] = {"sinusoidal": [], "plain": []}
    for r in range(args.repeats):
        order = ("sinusoidal", "plain") if r % 2 == 0 else ("plain", "sinusoidal")
        for net in order:
            run, result, snaps = train_one(net, args.steps, args.batch_size, seed=r)
            curve = []
            for step in ([] if args.final_only else sorted(snaps)):
                secs, state = snaps[step]
                m = measure(run, state, args.n, seed=100 + r)
                curve.append((step, secs, m))
            final = measure(run, run.load_model().state_dict(), args.n, seed=100 + r)
            results[net].append({"seconds": result.seconds, "curve": curve, "final": final})
            first = next((f"step {s} at {t:.1f} s" for s, t, m in curve if m["dpm++"] <= 0.01), "never")
            print(f"repeat {r} {net}: {result.seconds:.1f} s for {args.steps} steps; final: dpm++30 ED {final['dpm++']:.4f}, "
                  f"euler30 ED {final['euler']:.4f}, field error {final['field_error']:.4f}; ED ≤ 0.01 first at {first}", flush=True)
    print("\nmedian over repeats (training seconds, energy distance DPM-Solver++ 30 NFE, Euler 30 NFE, field error):")
    for net, runs in results.items():
        print(f"{net}: whole run {statistics.median(r['seconds'] for r in runs):.1f} s; final ED dpm++ "
              f"{statistics.median(r['final']['dpm++'] for r in runs):.4f}, euler {statistics.median(r['final']['euler'] for r in runs):.4f}, "
              f"field error {statistics.median(r['final']['field_error'] for r in runs):.4f}")
        for i, step in enumerate([s for s, _, _ in runs[0]["curve"]]):
            rows = [r["curve"][i] for r in runs if len(r["curve"]) > i]
            print(f"  step {step:5d}: {statistics.median(x[1] for x in rows):6.1f} s  ED dpm++ {statistics.median(x[2]['dpm++'] for x in rows):.4f}  "
                  f"euler {statistics.median(x[2]['euler'] for x in rows):.4f}  field error {statistics.median(x[2]['field_error'] for x in rows):.4f}")


if __name__ == "__main__":
    main()
